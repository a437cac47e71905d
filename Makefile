# Set-up is automatic: every target below creates .venv first when it is missing
# (or when pyproject.toml changed), so a fresh clone needs only `make lab` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# One install set per user (pyproject's extras): CI's `test` (a superset of the others), a student's
# `lab`, an instructor's `grade`. Each stamp is remade when pyproject.toml changes.
STAMP  := $(VENV)/.labkit-installed
LAB_STAMP   := $(VENV)/.labkit-lab
GRADE_STAMP := $(VENV)/.labkit-grade
# The notebooks pin kernel `python3`; registered inside .venv it is this project's Python, shown by this name.
KERNEL_NAME := Python 3 (labkit)
CHROMIUM ?= /usr/bin/chromium
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)  # containers and CI machines run as root
PYTEST_ARGS ?=
# The notebooks' data_root=None means this folder, wherever their kernel runs (JupyterLab starts it in notebooks/).
export LABKIT_DATA ?= $(CURDIR)/data

.PHONY: setup data lab test run handouts browser sandbox clean-venv

PROFILE ?= full
PARAMS ?=
NOTEBOOKS ?=

setup: $(STAMP)

define install_extra
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[$(1)]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "$(KERNEL_NAME)"
	touch $@
endef

$(STAMP): pyproject.toml
	$(call install_extra,test)

$(LAB_STAMP): pyproject.toml
	$(call install_extra,lab)

$(GRADE_STAMP): pyproject.toml
	$(call install_extra,grade)

data: $(STAMP)
	$(PY) -m labkit fetch-data

# JupyterLab on localhost only, with token auth (the URL with the token is printed), serving notebooks/
# (a folder given to `jupyter lab` becomes its root). tests/test_browser.py runs this very command.
lab: $(LAB_STAMP)
	$(PY) -m labkit fetch-data
	$(VENV)/bin/jupyter lab --no-browser --ip 127.0.0.1 $(ALLOW_ROOT) notebooks/

# The real browser tests/test_browser.py drives: Debian's chromium (Playwright's own download is not needed).
# Installed only when missing, and only as root; otherwise say how (the test then fails, naming the same fix).
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium (apt-get) for tests/test_browser.py"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; } \
			|| echo "could not install chromium: tests/test_browser.py will fail" >&2; \
	else \
		echo "tests/test_browser.py needs Chromium at $(CHROMIUM): sudo apt-get install -y chromium" >&2; \
	fi

# bubblewrap (bwrap), the sandbox labkit/sandbox.py runs students' code in (tests/test_sandbox.py).
# Installed only when missing, and only as root; otherwise say how (the test then fails, naming the same fix).
sandbox:
	@if command -v bwrap >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing bubblewrap (apt-get) for labkit/sandbox.py"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q bubblewrap; } \
			|| echo "could not install bubblewrap: tests/test_sandbox.py will fail" >&2; \
	else \
		echo "tests/test_sandbox.py needs bubblewrap (bwrap): sudo apt-get install -y bubblewrap" >&2; \
	fi

test: data browser sandbox
	$(PY) -m pytest $(PYTEST_ARGS)

# Every solution notebook, headless, into runs/<profile>-<time>/ with report.html.
# make run PROFILE=quick PARAMS="epochs=2 nz=64" NOTEBOOKS="01_dcgan"
run: $(GRADE_STAMP)
	$(PY) -m labkit fetch-data
	$(PY) -m labkit run --profile "$(PROFILE)" --params "$(PARAMS)" --notebooks "$(NOTEBOOKS)"

handouts: $(GRADE_STAMP)
	$(PY) -m labkit handouts

clean-venv:
	rm -rf $(VENV)

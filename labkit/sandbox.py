"""Run untrusted programs (students' notebook kernels, small probe processes) in a Linux sandbox.

Each run, started by root through bubblewrap (``bwrap``), gets:

* only binds: read-only the system folders (/usr /etc /lib /lib64 /bin /sbin), the running Python
  (``sys.prefix``, ``sys.base_prefix``, the prefix ``sys.executable`` resolves into) and ``ro_binds``;
  read-write ``workdir`` (HOME and working directory) and ``rw_binds``; a private /tmp and /dev/shm
  (tmpfs of ``Limits.file_size`` bytes), its own /proc, a minimal /dev. Nothing else exists inside
  (/root, the repository, the host's /tmp...). Binds keep their host paths.
* no network (an empty network namespace: 127.0.0.1 is not the host's), its own pid, IPC, UTS and
  cgroup namespaces, a new session (nothing typed into the grader's terminal);
* uid/gid 65534 (nobody) inside and as seen from the host, no capabilities, no_new_privs, OOM score
  1000 (the OOM killer's first pick), ``Limits`` as rlimits (and no core files), a clean environment;
* an end: when the command exits, its timeout passes or the caller dies, all its processes are
  killed, double-forked daemons included.

Choices, measured here (Debian 12, kernel 6.18, bubblewrap 0.8, root, 2 cores):

* uid. ``bwrap --unshare-user --uid 65534`` run by root maps the sandbox user onto host uid 0: its
  files are root's and the kernel never enforces RLIMIT_NPROC for uid 0. Dropping to 65534 *before*
  bwrap fails: the Python lives under /root (0700) and bwrap resolves bind sources as its caller
  ("Can't find source path ...: Permission denied", ``--ro-bind-fd`` too). So bwrap runs as root
  without a user namespace, builds the mounts, keeps 4 capabilities for the first program inside,
  ``setpriv``, which drops to 65534, clears groups, capabilities and bounding set, sets no_new_privs.
* processes. RLIMIT_NPROC counts a uid's processes per user namespace: with every run as host uid
  65534 in one namespace, a fork bomb at its limit left another run unable to start one thread
  ("can't start new thread"). So ``unshare --user`` gives each run its own user namespace (65534
  inside and out) and ``prlimit`` sets the limits in it: the bomb stops at ``Limits.processes`` while
  the other run starts 30 threads and a child. No cgroup needed (whether cgroups are writable varies
  between CI containers; this machine's memory cgroup is its supervisor's).
* memory. RLIMIT_AS per process: ``import torch`` and a small DCGAN step peak at 3.6 GiB of address
  space (torch fails to load under 2 GiB, works at 4): default 8 GiB. A run's total is bounded only
  by processes x address_space, hence the OOM score.
* end. bwrap's launcher exits with the command; bwrap's init in the pid namespace has
  PDEATHSIG=SIGKILL (``--die-with-parent``) and the kernel kills a pid namespace with its init. So
  the command's exit, ``kill()`` of the launcher or the caller's death ends the tree. PDEATHSIG is
  per thread: start runs from threads that outlive them. The kernel tears a namespace down in the
  background (a fork bomb of 150 processes with torch loaded: about a second, still running), so
  after ``kill()``, ``wait()`` returns only once the init has exited, which it does last.
* kernels. A zmq DEALER with no peer blocks on send for ever, and jupyter_client interrupts a kernel
  before it kills it: once a cell had written into the kernel's sockets and the kernel died,
  shutting it down never returned. The control channel's sends give up after a second.
* cost: 5 execs and the mounts, ~30 ms (``python -c pass``: 45 ms bare, ~75 ms sandboxed; more under
  load); ``import torch`` ~4.3 s either way.

Not covered: seccomp (the syscall surface is any unprivileged user's), disk use in the workdir
(RLIMIT_FSIZE is per file), CPU shares between runs.

``enabled=False`` (``--no-sandbox``, e.g. macOS) runs the same argv with the same environment and
the rlimits the OS enforces (not processes: outside a user namespace that counts all the user's
processes), in a session killed as a group. It isolates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union

BWRAP = "bwrap"  # looked up on PATH at each call
UID = GID = 65534
MiB, GiB = 1 << 20, 1 << 30
SYSTEM_DIRS = ("/usr", "/etc", "/lib", "/lib64", "/bin", "/sbin")
_TOOLS = ("setpriv", "unshare", "choom", "prlimit")  # util-linux, essential on Debian
_NAMESPACES = ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup",
               "--hostname", "sandbox", "--die-with-parent", "--new-session",
               # what setpriv needs to drop to nobody and empty the bounding set; bwrap's --chdir
               # needs DAC_READ_SEARCH to enter a 0700 workdir (already nobody's)
               "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
               "--cap-add", "CAP_SETPCAP", "--cap-add", "CAP_DAC_READ_SEARCH")
_BOUNDS = {"address_space": (64 * MiB, 1 << 48, "bytes"), "processes": (1, 1 << 22, "processes and threads"),
           "cpu_seconds": (1, 1 << 31, "seconds"), "file_size": (4096, 1 << 48, "bytes"),
           "open_files": (16, 1 << 20, "descriptors")}
# Without bwrap: the same limits, set by the interpreter itself (no prlimit on macOS), then exec.
_LAUNCHER = """import os, resource, sys
a, c, f, n = map(int, sys.argv[1:5])
for name, soft, hard in (("AS", a, a), ("CPU", c, c + 1), ("FSIZE", f, f), ("NOFILE", n, n), ("CORE", 0, 0)):
    try:
        resource.setrlimit(getattr(resource, "RLIMIT_" + name), (soft, hard))
    except (ValueError, OSError):  # not enforced by this OS (RLIMIT_AS on macOS)
        pass
os.chdir(sys.argv[5])
os.execvp(sys.argv[6], sys.argv[6:])"""

Bind = Union[str, os.PathLike, "tuple[str | os.PathLike, str | os.PathLike]"]


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run here; the message says why (``available()``'s reason)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of every process of a run (rlimits); sizes in bytes.

    address_space: RLIMIT_AS, virtual memory per process (``import torch`` alone reserves ~3.6 GiB).
    processes: RLIMIT_NPROC, processes and threads of the run together.
    cpu_seconds: RLIMIT_CPU per process: SIGXCPU at the limit, SIGKILL a second later.
    file_size: RLIMIT_FSIZE, the largest file written (``run()``'s captured output too); also the
        size of the private /tmp and /dev/shm.
    open_files: RLIMIT_NOFILE.
    """

    address_space: int = 8 * GiB
    processes: int = 256
    cpu_seconds: int = 3600
    file_size: int = 1 * GiB
    open_files: int = 1024

    def __post_init__(self) -> None:
        for field in fields(self):
            low, high, unit = _BOUNDS[field.name]
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"Limits.{field.name} must be an int from {low} to {high} ({unit}), "
                                 f"got {value!r}")


@dataclass(frozen=True)
class Finished:
    """What a ``Sandbox.run`` ended with.

    returncode: the exit status, negative for a signal (as subprocess); None when the wall-clock
        timeout ended the run. reason: "" or why it was stopped: "time limit 5 s", "CPU time limit
        60 s", "memory limit", "file size limit", "killed by signal 9 (SIGKILL)", "sandbox: <error>".
    """

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    reason: str
    seconds: float = 0.0


def available() -> str | None:
    """None when sandboxed runs work here, else a one-line reason (not Linux, not root, no bwrap...)."""
    if not sys.platform.startswith("linux"):
        return f"no sandbox on {sys.platform}: bubblewrap needs Linux (run without the sandbox)"
    if os.geteuid() != 0:
        return "the sandbox needs root (it drops every run to uid 65534): run as root or without it"
    bwrap = shutil.which(BWRAP)
    if bwrap is None:
        return f"bubblewrap ({BWRAP}) is not installed: apt-get install bubblewrap (make sandbox)"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"util-linux's {', '.join(missing)} not found: apt-get install util-linux"
    return _probe(bwrap)


@functools.lru_cache(maxsize=None)
def _probe(bwrap: str) -> str | None:
    argv = [bwrap, *_NAMESPACES, *_system_mounts(), "--proc", "/proc", "--dev", "/dev", "--",
            *_drop_and_limit(Limits()), "true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap cannot start: {error}"
    if done.returncode != 0:
        first = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[0]
        return f"bwrap cannot create the sandbox here (namespaces refused?): {first}"
    return None


def _system_mounts() -> list[str]:
    args: list[str] = []
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):  # merged /usr: /lib -> usr/lib
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    return args


def _drop_and_limit(limits: Limits) -> list[str]:
    """The programs bwrap runs first, each exec'ing the next: see the module docstring."""
    tool = {name: shutil.which(name) or name for name in _TOOLS}
    rlimits = [f"--as={limits.address_space}:{limits.address_space}",
               f"--nproc={limits.processes}:{limits.processes}",
               f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
               f"--fsize={limits.file_size}:{limits.file_size}",
               f"--nofile={limits.open_files}:{limits.open_files}", "--core=0:0"]
    return [tool["setpriv"], f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--",
            tool["unshare"], "--user", f"--map-user={UID}", f"--map-group={GID}", "--",
            tool["choom"], "-n", "1000", "--",
            tool["prlimit"], *rlimits, "--"]


def _python_dirs() -> list[Path]:
    """The running interpreter's install trees (venv and base), minus system folders and nesting."""
    found = sorted({Path(p).resolve() for p in
                    (sys.prefix, sys.base_prefix, Path(os.path.realpath(sys.executable)).parent.parent)},
                   key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in found:
        if not any(path == k or k in path.parents for k in [*map(Path, SYSTEM_DIRS), *kept]):
            kept.append(path)
    return kept


def _pairs(binds: Iterable[Bind]) -> list[tuple[Path, Path]]:
    pairs = []
    for bind in binds:
        source, dest = bind if isinstance(bind, tuple) else (bind, None)
        source = Path(source).resolve()
        pairs.append((source, Path(dest) if dest is not None else source))
    return pairs


#: seconds to wait for a killed sandbox's processes to be gone (a fork bomb's hundreds take a few)
TEARDOWN_SECONDS = 30.0


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (state first), or [] once the pid is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of the processes whose parent is ``pid``: for bwrap's launcher, the sandbox's init."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if len(fields) > 19 and fields[1] == str(pid):
            found.append((int(entry.name), fields[19]))
    return found


def _running(process: tuple[int, str]) -> bool:
    """True while the process exists and has not exited (a zombie has; a reused pid is another process)."""
    fields = _stat(process[0])
    return len(fields) > 19 and fields[0] != "Z" and fields[19] == process[1]


def wait_for_teardown(inits: list[tuple[int, str]], timeout: float = TEARDOWN_SECONDS) -> bool:
    """Wait until each of the sandboxes' ``inits`` has exited; False if ``timeout`` passed first.

    Killing bwrap's launcher kills its init, and the kernel then kills every process of the pid
    namespace, but the init exits only once they all have: hundreds of processes (a fork bomb's)
    take seconds to tear down, during which they still exist and use the CPU.
    """
    deadline = time.monotonic() + timeout
    while any(_running(init) for init in inits):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class SandboxProcess(subprocess.Popen):
    """A Popen whose ``kill()``, ``terminate()`` and ``with``-block exit end the run's whole tree.

    After ``kill()``, ``wait()`` returns once the tree is gone, not only bwrap's launcher.
    """

    def __init__(self, args: list[str], *, group: bool, **kwargs: Any) -> None:
        self._group = group
        self._killed_inits: list[tuple[int, str]] = []
        super().__init__(args, start_new_session=True, **kwargs)

    def kill(self) -> None:
        if self._group:  # no sandbox: the session's process group (setsid daemons escape it)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        elif self.returncode is None:
            self._killed_inits += _children(self.pid)
            super().kill()  # bwrap's launcher: its death takes the pid namespace down

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        inits, self._killed_inits = self._killed_inits, []
        wait_for_teardown(inits)
        return code

    terminate = kill  # bwrap forwards no signal: a SIGTERM would end the tree as abruptly

    def __exit__(self, *exc: Any) -> None:
        self.kill()
        super().__exit__(*exc)


class Sandbox:
    """A sandbox configuration: run commands with ``run``/``popen`` or build argv with ``command``.

    workdir: created if missing, bound read-write at its own path, owned by uid 65534 (files put
        there beforehand stay the caller's: readable, not writable). ro_binds/rw_binds: paths, or
        (host path, path inside) pairs, e.g. a package copy bound over the installed one; rw_binds
        are handed to uid 65534 like the workdir. env: added to the clean environment.
    enabled=False: no isolation, same argv and environment (see the module docstring).
    Raises SandboxUnavailable when enabled and ``available()`` gives a reason.
    """

    def __init__(self, workdir: str | os.PathLike, *, ro_binds: Iterable[Bind] = (),
                 rw_binds: Iterable[Bind] = (), limits: Limits = Limits(),
                 env: Mapping[str, str] | None = None, enabled: bool = True) -> None:
        self.workdir = Path(workdir).resolve()
        self.ro_binds = _pairs(ro_binds)
        self.rw_binds = _pairs(rw_binds)
        self.limits = limits
        self.enabled = enabled
        self.env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                    "HOME": str(self.workdir), "LANG": "C.UTF-8", "TMPDIR": "/tmp",
                    "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
        bad = [key for key in self.env if not key or "=" in key or "\0" in key + str(self.env[key])]
        if bad:
            raise ValueError(f"env names must be non-empty without '=', values without NUL: {bad}")
        if enabled and (reason := available()):
            raise SandboxUnavailable(reason)

    def extended(self, *, ro_binds: Iterable[Bind] = (), rw_binds: Iterable[Bind] = (),
                 env: Mapping[str, str] | None = None) -> Sandbox:
        """A copy with more binds and environment."""
        box = object.__new__(Sandbox)
        box.__dict__.update(self.__dict__, ro_binds=self.ro_binds + _pairs(ro_binds),
                            rw_binds=self.rw_binds + _pairs(rw_binds), env={**self.env, **(env or {})})
        return box

    def command(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None) -> list[str]:
        """The full argv running ``argv`` in this sandbox (in ``cwd``, default the workdir).

        For callers that spawn it themselves: it carries the environment and the limits, and killing
        the process it starts (SIGKILL or SIGTERM) ends the whole tree. Prepares the workdir.
        """
        argv = [os.fspath(arg) for arg in argv]
        if not argv:
            raise ValueError("empty command")
        here = str(Path(cwd).resolve() if cwd is not None else self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.enabled:
            limits = self.limits
            numbers = (limits.address_space, limits.cpu_seconds, limits.file_size, limits.open_files)
            return [shutil.which("env") or "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in self.env.items()),
                    sys.executable, "-c", _LAUNCHER, *map(str, numbers), here, *argv]
        for folder in [self.workdir, *(source for source, _ in self.rw_binds)]:
            os.chown(folder, UID, GID)
        bwrap = shutil.which(BWRAP)
        if bwrap is None:
            raise SandboxUnavailable(available() or f"{BWRAP} not found")
        setenv = [arg for key, value in self.env.items() for arg in ("--setenv", key, value)]
        return [bwrap, *_NAMESPACES, *self._mounts(), "--chdir", here, "--clearenv", *setenv, "--",
                *_drop_and_limit(self.limits), *argv]

    def _mounts(self) -> list[str]:
        size = str(self.limits.file_size)
        args = [*_system_mounts(), "--proc", "/proc", "--dev", "/dev",
                "--size", size, "--perms", "1777", "--tmpfs", "/dev/shm",
                "--size", size, "--perms", "1777", "--tmpfs", "/tmp"]
        binds = ([("--ro-bind", path, path) for path in _python_dirs()]
                 + [("--ro-bind", source, dest) for source, dest in self.ro_binds]
                 + [("--bind", source, dest) for source, dest in [*self.rw_binds, (self.workdir, self.workdir)]])
        binds.sort(key=lambda bind: len(bind[2].parts))  # outer mounts before the ones inside them
        made = {Path("/"), Path("/tmp")}  # tmpfs folders where bwrap may create more
        mounted = {Path(p) for p in (*SYSTEM_DIRS, "/proc", "/dev")}
        for flag, source, dest in binds:
            if dest in mounted:
                continue
            for parent in reversed(dest.parents):
                # bwrap would make missing parents 0700 (owner root): unreadable to uid 65534
                if parent not in made and not any(m == parent or m in parent.parents for m in mounted):
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            args += [flag, str(source), str(dest)]
            mounted.add(dest)
        return args + ["--remount-ro", "/"]

    def popen(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None,
              **popen_kwargs: Any) -> SandboxProcess:
        """Start ``argv`` in the sandbox; ``kill()`` or leaving a ``with`` block ends its whole tree.

        popen_kwargs go to subprocess.Popen (stdin/stdout/stderr...), not env: use ``Sandbox(env=)``.
        """
        if "env" in popen_kwargs:
            raise TypeError("the sandbox's environment is Sandbox(env=...), not popen(env=...)")
        return SandboxProcess(self.command(argv, cwd=cwd), group=not self.enabled, **popen_kwargs)

    def run(self, argv: Sequence[str | os.PathLike], *, input: bytes | None = None, timeout: float,
            cwd: str | os.PathLike | None = None) -> Finished:
        """Run ``argv`` to its end or for ``timeout`` seconds of wall-clock time, whichever is first.

        stdout and stderr go to temporary files, so they are bounded by ``Limits.file_size``.
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        start = time.monotonic()
        timed_out = False
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
            with self.popen(argv, cwd=cwd, stdin=stdin, stdout=out, stderr=err) as process:
                try:
                    process.communicate(input, timeout=timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        code = process.returncode
        if self.enabled and code is not None and 128 < code < 128 + signal.NSIG:
            code = 128 - code  # bwrap exits 128 + N for a command killed by signal N
        returncode = None if timed_out else code
        return Finished(returncode, stdout, stderr, timed_out,
                        self._reason(returncode, timed_out, timeout, stderr), time.monotonic() - start)

    def _reason(self, code: int | None, timed_out: bool, timeout: float, stderr: bytes) -> str:
        if timed_out:
            return f"time limit {timeout:g} s"
        if code is not None and code < 0:
            if -code == signal.SIGXCPU:
                return f"CPU time limit {self.limits.cpu_seconds} s"
            if -code == signal.SIGXFSZ:
                return "file size limit"
            try:
                return f"killed by signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                return f"killed by signal {-code}"
        if not code:
            return ""
        tail = stderr[-4000:]
        if any(word in tail for word in (b"MemoryError", b"bad_alloc", b"t allocate memory")):
            return "memory limit"
        if b"File too large" in tail:  # Python ignores SIGXFSZ: writes fail with EFBIG instead
            return "file size limit"
        first = stderr.split(b"\n", 1)[0].decode(errors="replace")
        if self.enabled and first.startswith((f"{BWRAP}:", *(f"{tool}:" for tool in _TOOLS))):
            return f"sandbox: {first}"
        return ""


#: how long a message to a sandboxed kernel's control channel may wait for a kernel to take it
CONTROL_SEND_TIMEOUT_MS = 1000


@functools.lru_cache(maxsize=None)
def _kernel_manager_class(asynchronous: bool) -> type:
    import zmq
    from jupyter_client import AsyncKernelManager, KernelManager

    class SandboxedKernelManager(AsyncKernelManager if asynchronous else KernelManager):
        """A kernel manager whose kernel command runs through ``self.sandbox.command``."""

        sandbox: Sandbox

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            cmd = super().format_kernel_cmd(extra_arguments)
            if self.sandbox.enabled:
                os.chown(self.connection_file, UID, GID)  # written 0600 by us; the kernel reads it
            return self.sandbox.command(cmd, cwd=self._launch_args.get("cwd"))

        def _connect_control_socket(self) -> None:
            super()._connect_control_socket()
            # a zmq DEALER with no peer blocks on send, for ever: a kernel that died, or whose connection a
            # submission broke by writing into its sockets, has none. Shutting down first sends it an interrupt.
            self._control_socket.sndtimeo = CONTROL_SEND_TIMEOUT_MS

        async def _async_interrupt_kernel(self) -> None:
            try:
                await super()._async_interrupt_kernel()
            except zmq.Again:  # nobody is listening: the kill that follows a shutdown ends the kernel anyway
                self.log.warning("sandboxed kernel: the interrupt request found no kernel listening")

        async def _async_request_shutdown(self, restart: bool = False) -> None:
            try:
                await super()._async_request_shutdown(restart=restart)
            except zmq.Again:  # then _async_finish_shutdown waits its while and kills the kernel
                self.log.warning("sandboxed kernel: the shutdown request found no kernel listening")

        async def _async_kill_kernel(self, restart: bool = False) -> None:
            process = getattr(self.provisioner, "process", None)
            inits = _children(process.pid) if self.sandbox.enabled and process is not None else []
            await super()._async_kill_kernel(restart=restart)
            await asyncio.to_thread(wait_for_teardown, inits)  # shut down means no process of it is left

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:  # shut down for good: the socket folder goes too
                shutil.rmtree(Path(self.connection_file).parent, ignore_errors=True)

    return SandboxedKernelManager


def kernel_manager(sandbox: Sandbox, kernel_name: str = "python3", *, asynchronous: bool = True,
                   **kwargs: Any) -> Any:
    """A jupyter_client (Async)KernelManager whose kernel runs inside ``sandbox``.

    The sandbox has no network, so kernel and client talk over unix sockets (``transport="ipc"``)
    in a fresh folder bound read-write into it, which holds the connection file too and is removed
    with the manager. The kernel's environment is the sandbox's: the ``env`` given to
    ``start_kernel``/``setup_kernel`` is ignored. Its working directory is ``cwd`` (nbclient: the
    ``resources["metadata"]["path"]``), which must be inside the sandbox, else the workdir.
    Interrupts are messages (bwrap forwards no SIGINT). Shutting the kernel down, or killing it,
    ends its whole process tree; nbclient does not shut down a kernel it was given unless told:
    ``NotebookClient(nb, km=kernel_manager(box)).execute(cleanup_kc=True)`` (or ``setup_kernel``).
    """
    ipc = Path(tempfile.mkdtemp(prefix="labkit-kernel-"))  # short: unix socket paths have 107 bytes
    manager = _kernel_manager_class(asynchronous)(kernel_name=kernel_name, transport="ipc",
                                                  ip=str(ipc / "kernel"),
                                                  connection_file=str(ipc / "kernel.json"), **kwargs)
    # JPY_PARENT_PID: the kernel's parent is the sandbox's init, pid 1, which ipykernel then neither
    # polls nor greets by printing its connection help on the grader's terminal
    manager.sandbox = sandbox.extended(rw_binds=[ipc], env={"JPY_PARENT_PID": "1"})
    manager.kernel_spec.interrupt_mode = "message"
    weakref.finalize(manager, shutil.rmtree, ipc, True)
    return manager

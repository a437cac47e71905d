"""The feedback run: the submission in a sandboxed notebook kernel, for what its own checks print.

The frame is the solution notebook's code cells up to its last exercise, with small
parameters; each exercise cell is replaced by the student's cells for that id, and the
check cell under it runs as it would for the student. Where that check fails, the solution's
cell and the check run again after it, so the rest of the frame can go on. Nothing here scores: points come from :mod:`.probes`. A cell over its time limit, or a
kernel that dies, ends the run with a note.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from .. import sandbox
from . import guard, submissions

CHECK_CELL = re.compile(r"=\s*\w*checks\.\w+\(")
#: the notebook kernel trains a small model: more room than a probe
KERNEL_LIMITS = sandbox.Limits(processes=256, cpu_seconds=1800, file_size=256 << 20, open_files=1024)


def _declared_parameters(nb: Any) -> list[str]:
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return re.findall(r"^(\w+)\s*=", cell.source, flags=re.M)
    return []


def build_frame(solution: Any, code: dict[str, str], params: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(source, role) for every cell of the feedback run.

    role: None for a plain cell, ``"check:<id>"`` for the check under exercise <id>, and
    ``"fallback"`` for the solution's cell and check, which run only when that check failed.
    """
    cells = [c for c in solution.cells if c.cell_type == "code"]
    last = max((i for i, c in enumerate(cells) if submissions.exercise_of(c)), default=-1)
    declared = _declared_parameters(solution)
    steps: list[tuple[str, str | None]] = []
    pending: tuple[str, str] | None = None  # (exercise id, solution source) whose check comes next
    for index, cell in enumerate(cells[: last + 2]):
        ex = submissions.exercise_of(cell)
        if ex is not None:
            steps.append((code.get(ex, cell.source), None))
            pending = (ex, cell.source)
            continue
        if CHECK_CELL.search(cell.source) and pending:
            ex_id, solution_source = pending
            steps += [(cell.source, f"check:{ex_id}"), (solution_source, "fallback"), (cell.source, "fallback")]
            pending = None
            continue
        if index > last:
            break
        steps.append((cell.source, None))
        if "parameters" in cell.metadata.get("tags", []):
            chosen = {k: v for k, v in params.items() if k in declared}
            steps.append(("\n".join(f"{k} = {v!r}" for k, v in chosen.items()), None))
    return steps


def _text(outputs: list) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    text = re.sub(r"\x1b\[[0-9;]*m", "", "".join(parts)).strip()
    return text if len(text) <= 3000 else text[:3000] + "\n..."


def feedback_run(solution: Any, code: dict[str, str], params: dict[str, Any], *,
                 cell_timeout: float, time_limit: float, sandboxed: bool = True,
                 threads: int | None = None) -> tuple[dict[str, str], list[str], Any]:
    """Run the frame; return (exercise id -> what its check cell printed, notes, the executed notebook)."""
    import time

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    started = time.monotonic()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    printed: dict[str, str] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="labkit-grade-kernel-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        data_root = Path(params["data_root"])
        params = {**params, "run_dir": str(work / "runs")}
        env = {"LABKIT_FRONTEND": "headless", "LABKIT_DATA": str(data_root), "MPLBACKEND": "agg",
               "LABKIT_FAST_PATH": "off"}
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        binds = [guard.PACKAGE, *([data_root] if data_root.is_dir() else [])]
        box = sandbox.Sandbox(work, ro_binds=binds, limits=KERNEL_LIMITS, env=env, enabled=sandboxed)
        km = sandbox.kernel_manager(box)
        client = NotebookClient(nb, km=km, timeout=cell_timeout, allow_errors=True, interrupt_on_timeout=False,
                                resources={"metadata": {"path": str(work)}})
        try:
            with client.setup_kernel():
                failed = False
                for source, role in build_frame(solution, code, params):
                    if role == "fallback" and not failed:
                        continue
                    if time.monotonic() - started > time_limit:
                        notes.append("the feedback run stopped at the submission's time limit")
                        break
                    cell = nbformat.v4.new_code_cell(source)
                    nb.cells.append(cell)
                    try:
                        client.execute_cell(cell, len(nb.cells) - 1)
                    except CellTimeoutError:
                        notes.append(f"the feedback run stopped: a cell ran over {cell_timeout:g} s")
                        break
                    except CellExecutionError:
                        pass
                    if role and role.startswith("check:"):
                        printed[role[6:]] = _text(cell.outputs)
                        failed = any(out.get("output_type") == "error" for out in cell.outputs)
        except DeadKernelError as exc:
            notes.append(f"the feedback run's kernel died: {exc}")
        except Exception as exc:  # a kernel that cannot start or be reached: feedback lost, points kept
            notes.append(f"the feedback run failed: {type(exc).__name__}: {exc}")
        finally:  # a kernel manager passed in is not shut down by nbclient: end the sandbox's tree here
            try:
                run_sync(km.shutdown_kernel)(now=True)
            except Exception:
                pass
    return printed, notes, nb

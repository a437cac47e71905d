"""What grading leaves behind: one result file per student, grades.csv, feedback pages, a summary.

Each submission's result is written by the grader process alone, atomically (a temporary
file renamed into place), as soon as it is known, into ``out/results/<student>.json``; jobs
sharing ``out`` never touch each other's files. :func:`collect` merges whatever results are
there; an earlier grades.csv or summary is kept under ``out/previous/``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import json
import os
import tempfile
from pathlib import Path

from ..exercises import OUTCOMES
from .submissions import safe_name


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` through a temporary file in its folder, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def write_result(result: dict, out: str | Path) -> Path:
    """out/results/<student>.json; an earlier result of that student moves to results/history/ first."""
    results = Path(out) / "results"
    target = results / f"{safe_name(result['student'])}.json"
    if target.exists():
        history = results / "history"
        history.mkdir(parents=True, exist_ok=True)
        kept = history / f"{target.stem}.{_stamp()}-{os.getpid()}.json"
        try:
            os.replace(target, kept)
            print(f"kept the earlier result of {result['student']} as {kept}")
        except FileNotFoundError:
            pass
    atomic_write(target, json.dumps(result, indent=1))
    return target


def load_results(out: str | Path) -> list[dict]:
    results = []
    for path in sorted((Path(out) / "results").glob("*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print(f"skipped {path}: not a result file ({exc})")
    return results


def _keep_previous(path: Path) -> None:
    if path.exists():
        previous = path.parent / "previous"
        previous.mkdir(exist_ok=True)
        os.replace(path, previous / f"{path.stem}.{_stamp()}{path.suffix}")


def collect(out: str | Path) -> Path:
    """Merge out/results/*.json into grades.csv, outcomes.csv, feedback/<student>.html and summary.html."""
    out = Path(out)
    results = load_results(out)
    if not results:
        raise ValueError(f"out: {out}/results holds no result files; grade some submissions first")
    exercises: list[str] = []
    for r in results:
        for e in r["exercises"]:
            if e["exercise"] not in exercises:
                exercises.append(e["exercise"])
    kept = [p.name for p in (out / "grades.csv", out / "summary.html", out / "summary.png") if p.exists()]
    for name in kept:
        _keep_previous(out / name)
    if kept:
        print(f"earlier {', '.join(kept)} kept in {out / 'previous'}")
    from . import answers, marks

    stored = marks.load(out)
    written = marks.apply(results, stored)  # written answers' marks: grades.csv's q<N> columns, in the totals
    ordered = sorted(results, key=lambda r: r["student"])
    rows = [["student", *exercises, *(f"q{n}" for n in written), "total", "max_total", "flags"]]
    for r in ordered:
        pts = {e["exercise"]: e["points"] for e in r["exercises"]}
        flags = "; ".join(f"{e['exercise']}: {e['flag']}" for e in r["exercises"] if e.get("flag"))
        rows.append([r["student"], *(f"{pts[ex]:g}" if ex in pts else "" for ex in exercises),
                     *marks.cells(r, written), f"{r['total']:g}", f"{r['max_total']:g}", flags])
    _write_csv(out / "grades.csv", rows)
    _write_csv(out / "outcomes.csv", [["student", *exercises]] + [
        [r["student"], *({e["exercise"]: e["outcome"] for e in r["exercises"]}.get(ex, "") for ex in exercises)]
        for r in ordered])
    for r in results:
        atomic_write(out / "feedback" / f"{safe_name(r['student'])}.html", feedback_html(r))
    _summary(results, exercises, out)
    answers.write_pages(out, results, stored)
    marks.write_template(out, results, stored)
    return out / "grades.csv"


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    atomic_write(path, buffer.getvalue())


CSS = """body{font-family:system-ui,sans-serif;max-width:56em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;margin:0;font-size:.9em}.passed{background:#e6f4e6}.partial{background:#fff6d6}
.failed,.error,.timed-out,.missing{background:#fde2e2}.not-attempted{background:#eee}.note{color:#8a4b00}"""


def feedback_html(r: dict) -> str:
    """What the student reads: every exercise's outcome, points, the grader's message and their check's output."""
    rows = []
    for e in r["exercises"]:
        printed = (f"<details><summary>what your notebook's check printed</summary><pre>"
                   f"{html.escape(e['notebook_output'])}</pre></details>" if e.get("notebook_output") else "")
        flag = f"<p class='note'>{html.escape(e['flag'])}</p>" if e.get("flag") else ""
        rows.append(f"<tr class='{e['outcome'].replace(' ', '-')}'><td>{html.escape(e['exercise'])}</td>"
                    f"<td>{html.escape(e['outcome'])}</td><td>{e['points']:g} / {e['max_points']:g}</td>"
                    f"<td><pre>{html.escape(e['message'])}</pre>{flag}{printed}</td></tr>")
    from .marks import feedback_html as written

    notes = "".join(f"<li>{html.escape(n)}</li>" for n in r["notes"])
    sandbox_note = "" if r.get("sandboxed", True) else "<p class='note'>Graded without the sandbox.</p>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Feedback: {html.escape(r['student'])}</title>"
            f"<style>{CSS}</style></head><body><h1>Feedback for {html.escape(r['student'])}</h1>"
            f"<p>Notebook {html.escape(str(r.get('solution')))}: <b>{r['total']:g} / {r['max_total']:g} points</b>. "
            f"Each exercise was run on inputs chosen by the grader and compared with labkit's reference, "
            f"with the same judgement as the notebook's check.</p>{sandbox_note}"
            f"<table><tr><th>exercise</th><th>outcome</th><th>points</th><th>what the grader found</th></tr>"
            f"{''.join(rows)}</table>{written(r)}" + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
            + "</body></html>\n")


def _summary(results: list[dict], exercises: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    maxima = {e["exercise"]: e["max_points"] for r in results for e in r["exercises"]}
    means = [sum(e["points"] for r in results for e in r["exercises"] if e["exercise"] == ex) / len(results)
             for ex in exercises]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(exercises)), 3.6))
    ax.bar(range(len(exercises)), [maxima[ex] for ex in exercises], color="0.88", label="maximum")
    ax.bar(range(len(exercises)), means, color="tab:blue", label="class mean")
    ax.set_xticks(range(len(exercises)), exercises, rotation=30, ha="right")
    ax.set(ylabel="points", title=f"points per exercise, {len(results)} submission(s)",
           ylim=(0, 1.3 * max(maxima.values(), default=1)))  # head room: the legend never hides a bar
    ax.legend(loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=100)
    plt.close(fig)
    counts = {ex: {o: 0 for o in OUTCOMES} for ex in exercises}
    for r in results:
        for e in r["exercises"]:
            counts[e["exercise"]][e["outcome"]] += 1
    head = "".join(f"<th>{o}</th>" for o in OUTCOMES)
    rows = "".join(f"<tr><td>{html.escape(ex)}</td><td>{m:.2f} / {maxima[ex]:g}</td>"
                   + "".join(f"<td>{counts[ex][o]}</td>" for o in OUTCOMES) + "</tr>" for ex, m in zip(exercises, means))
    unsandboxed = sorted(r["student"] for r in results if not r.get("sandboxed", True))
    warning = (f"<p class='note'><b>Graded without the sandbox</b> ({len(unsandboxed)} submission(s): "
               f"{html.escape(', '.join(unsandboxed))}): their code could read files and the references.</p>"
               if unsandboxed else "")
    flagged = sum(1 for r in results for e in r["exercises"] if e.get("flag"))
    from .marks import summary_html as written
    atomic_write(out / "summary.html",
                 f"<!doctype html><html><head><meta charset='utf-8'><title>Grading summary</title><style>{CSS}</style>"
                 f"</head><body><h1>Grading summary</h1>{warning}<p>{len(results)} submission(s); grades in grades.csv "
                 f"(its flags column: {flagged} exercise(s) identical to a reference after normalisation), outcomes in "
                 f"outcomes.csv, each student's feedback in feedback/.</p><img src='summary.png' "
                 f"alt='points per exercise'><table><tr><th>exercise</th><th>mean points</th>{head}</tr>{rows}</table>"
                 f"{written(results)}</body></html>\n")

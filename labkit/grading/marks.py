"""Manual marks of the written answers: the template, checking marks files, merging them, counting them.

A marks file is CSV with the columns ``student,question,points,comment`` (a question page's
export, ``answers/marks-template.csv`` filled by hand, or a spreadsheet of one's own). An empty
``points`` means not marked yet. :func:`merge` checks every row of every file given before
anything is written (known student, a question of that student's notebook, points a number from
0 to the question's points in :mod:`labkit.exercises.questions`, no two different marks for one
student and question) and, if any row is bad, refuses them all, naming file and row of each;
accepted marks go into ``out/marks.json``, field by field (an empty field keeps what was merged
before), so merging the same file twice changes nothing. :func:`labkit.grading.outputs.collect`
then counts them (:func:`apply`) from marks.json, never adding a mark twice.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from pathlib import Path

from ..exercises import questions

MARKS_FILE = "marks.json"
TEMPLATE = "answers/marks-template.csv"
HEADER = ["student", "question", "points", "comment"]

#: (student, question) -> {"points": float | None, "comment": str}
Marks = dict[tuple[str, int], dict]


def load(out: str | Path) -> Marks:
    """The marks merged so far (out/marks.json), or none."""
    path = Path(out) / MARKS_FILE
    if not path.is_file():
        return {}
    return {(m["student"], int(m["question"])): {"points": m["points"], "comment": m.get("comment", "")}
            for m in json.loads(path.read_text())["marks"]}


def _dump(marks: Marks) -> str:
    rows = [{"student": s, "question": q, **marks[(s, q)]} for s, q in sorted(marks, key=lambda k: (k[1], k[0]))]
    return json.dumps({"marks": rows}, indent=1) + "\n"


def _num(points: float) -> str:
    """Points as text, short (2.5, 3) and read back as the same number."""
    return f"{points:g}" if float(f"{points:g}") == points else repr(points)


def _question(text: str) -> int | None:
    match = re.fullmatch(r"\s*[qQ]?\s*(\d+)\s*", text)
    return int(match.group(1)) if match and int(match.group(1)) in questions.BY_NUMBER else None


def _points(text: str, maximum: float) -> tuple[float | None, str]:
    """(points, problem): None for an empty field; a problem for anything but a number from 0 to ``maximum``."""
    if not text.strip():
        return None, ""
    try:
        value = float(text)
    except ValueError:
        return None, f"points {text!r} is not a number"
    if not math.isfinite(value):
        return None, f"points {text!r} is not a number"
    if value < 0:
        return None, f"points {value:g} below 0"
    if value > maximum:
        return None, f"points {value:g} above the question's maximum of {maximum:g}"
    return value, ""


def read(paths: list[str | Path], known: dict[str, set[int]]) -> Marks:
    """The marks of every file, checked against ``known`` (student -> the questions of their notebook).

    Raises ValueError naming each bad row (file and row; the header is row 1) before returning anything.
    """
    problems: list[str] = []
    found: Marks = {}
    origin: dict[tuple[str, int], str] = {}
    for path in map(Path, paths):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot be read ({exc})")
            continue
        reader = csv.reader(io.StringIO(text))
        header = [h.strip().lower() for h in next(reader, [])]
        if not {"student", "question", "points"} <= set(header):
            problems.append(f"{path}, row 1: the header must name the columns student, question, points "
                            f"(and comment); found {header}")
            continue
        col = {name: header.index(name) for name in HEADER if name in header}
        for row_number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            cell = {name: (row[i] if i < len(row) else "") for name, i in col.items()}
            where = f"{path}, row {row_number}"
            student, number = cell["student"].strip(), _question(cell["question"])
            if student not in known:
                problems.append(f"{where}: unknown student {student!r} (not among the graded results)")
                continue
            if number is None:
                problems.append(f"{where}: unknown question {cell['question']!r} "
                                f"(known: {', '.join(map(str, questions.BY_NUMBER))})")
                continue
            if number not in known[student]:
                problems.append(f"{where}: question {number} is not in {student}'s notebook "
                                f"(its questions: {', '.join(map(str, sorted(known[student]))) or 'none'})")
                continue
            points, problem = _points(cell["points"], questions.get(number).points)
            if problem:
                problems.append(f"{where}: {problem} ({student}, question {number})")
                continue
            mark = {"points": points, "comment": cell.get("comment", "").strip()}
            key = (student, number)
            if key in found:
                before = found[key]
                clash = [f for f in ("points", "comment") if mark[f] not in (None, "") and
                         before[f] not in (None, "") and mark[f] != before[f]]
                if clash:
                    problems.append(f"{where}: a different mark for {student}, question {number} than "
                                    f"{origin[key]} ({' and '.join(clash)} differ)")
                    continue
                mark = {f: before[f] if mark[f] in (None, "") else mark[f] for f in mark}
            found[key] = mark
            origin.setdefault(key, where)
    if problems:
        raise ValueError("marks refused, nothing merged or written:\n  " + "\n  ".join(problems))
    return found


def merge(out: str | Path, paths: list[str | Path]) -> Path:
    """Check every marks file, then fold them into out/marks.json field by field (an empty field keeps the old one)."""
    from .outputs import atomic_write, load_results

    out = Path(out)
    results = load_results(out)
    if not results:
        raise ValueError(f"out: {out}/results holds no result files; grade some submissions first")
    known = {r["student"]: {a["question"] for a in r.get("answers") or []} for r in results}
    incoming = read(paths, known)
    merged = load(out)
    for key, mark in incoming.items():
        before = merged.get(key, {"points": None, "comment": ""})
        merged[key] = {f: before[f] if mark[f] in (None, "") else mark[f] for f in ("points", "comment")}
    atomic_write(out / MARKS_FILE, _dump(merged))
    return out / MARKS_FILE


def apply(results: list[dict], marks: Marks) -> list[int]:
    """Add each result's written answers with their marks (``written``) and count them in its totals.

    ``total`` and ``max_total`` then include the written answers (``exercises_total`` keeps the
    exercises' alone); a question not marked yet adds its maximum but no points. Returns the
    questions of all results, in order. Only in memory: result files are not changed.
    """
    numbers: set[int] = set()
    for r in results:
        written = []
        for answer in r.get("answers") or []:
            number = answer["question"]
            q, mark = questions.get(number), marks.get((r["student"], answer["question"]), {})
            numbers.add(number)
            written.append({"question": number, "title": q.title, "status": answer["status"],
                            "points": mark.get("points"), "max_points": q.points, "comment": mark.get("comment", "")})
        r["written"] = written
        r["exercises_total"] = r["total"]
        r["total"] = round(r["total"] + sum(w["points"] or 0 for w in written), 2)
        r["max_total"] = r["max_total"] + sum(w["max_points"] for w in written)
    return sorted(numbers)


def cells(r: dict, numbers: list[int]) -> list[str]:
    """grades.csv's q<N> cells of one result: the points, or empty (not marked yet, or not asked)."""
    points = {w["question"]: w["points"] for w in r.get("written", [])}
    return ["" if points.get(n) is None else _num(points[n]) for n in numbers]


def _points_text(w: dict) -> str:
    return "not marked yet" if w["points"] is None else f"{w['points']:g} / {w['max_points']:g}"


def feedback_html(r: dict) -> str:
    """The written answers' part of a student's feedback: points and the marker's comment, per question."""
    if not r.get("written"):
        return ""
    rows = "".join(
        f"<tr><td>question {w['question']}: {html.escape(w['title'])}</td><td>{w['status']}</td>"
        f"<td>{_points_text(w)}</td><td><pre>{html.escape(w['comment'])}</pre></td></tr>" for w in r["written"])
    marked = sum(1 for w in r["written"] if w["points"] is not None)
    return (f"<h2>Written answers</h2><p>{marked} of {len(r['written'])} marked; the total above counts the "
            f"marked ones.</p><table><tr><th>question</th><th>answer</th><th>points</th><th>comment</th></tr>"
            f"{rows}</table>")


def summary_html(results: list[dict]) -> str:
    """The written answers' part of the summary: per question, how many answered and marked, the mean mark."""
    rows = []
    for number in sorted({w["question"] for r in results for w in r.get("written", [])}):
        written = [w for r in results for w in r.get("written", []) if w["question"] == number]
        marked = [w["points"] for w in written if w["points"] is not None]
        top = questions.get(number).points
        mean = f"{sum(marked) / len(marked):.2f} / {top:g}" if marked else f"not marked yet ({top:g} points)"
        answered = sum(1 for w in written if w["status"] == "answered")
        rows.append(f"<tr><td><a href='answers/q{number}.html'>question {number}</a>: "
                    f"{html.escape(questions.get(number).title)}</td><td>{mean}</td>"
                    f"<td>{len(marked)} of {len(written)}</td><td>{answered}</td></tr>")
    if not rows:
        return ""
    return (f"<h2>Written answers</h2><p>Marked on the pages of <a href='answers/index.html'>answers/</a>, merged "
            f"with <code>grade-collect --marks</code>.</p><table><tr><th>question</th><th>mean of marked</th>"
            f"<th>marked</th><th>answered</th></tr>{''.join(rows)}</table>")


def template_text(results: list[dict], marks: Marks) -> str:
    """answers/marks-template.csv: one row per student and question; points empty unless merged already."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for r in sorted(results, key=lambda r: r["student"]):
        for answer in r.get("answers") or []:
            mark = marks.get((r["student"], answer["question"]), {})
            points = mark.get("points")
            writer.writerow([r["student"], answer["question"], "" if points is None else _num(points),
                             mark.get("comment", "")])
    return buffer.getvalue()


def write_template(out: str | Path, results: list[dict], marks: Marks) -> Path | None:
    """Write the template; one edited by hand and not merged yet is first kept under answers/previous/."""
    from .outputs import _keep_previous, atomic_write

    if not any(r.get("answers") for r in results):
        return None
    path = Path(out) / TEMPLATE
    if path.is_file():
        known = {r["student"]: {a["question"] for a in r.get("answers") or []} for r in results}
        try:
            unmerged = [k for k, m in read([path], known).items()
                        if any(m[f] not in (None, "") and m[f] != marks.get(k, {}).get(f) for f in m)]
        except ValueError:
            unmerged = ["unreadable"]
        if unmerged:
            _keep_previous(path)
            print(f"{path} held marks not merged yet: kept in {path.parent / 'previous'}")
    atomic_write(path, template_text(results, marks))
    return path

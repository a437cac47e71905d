"""Written answers: collected from each submission by question id, and marked one question at a time.

Collecting (:func:`collect`, called by the grader, no kernel needed): every answer cell
carries its question's number in its metadata (``{"labkit": {"question": n}}``), so cells the
student moved, split or duplicated are found and joined in notebook order, as exercise cells
are. Each question of the submission's notebook is ``answered``, ``blank`` (empty, or still the
handout's prompt) or ``missing`` (no cell carries its number).

Marking (:func:`write_pages`, called by :func:`labkit.grading.outputs.collect`): one page per
question, ``answers/q<N>.html``, shows every student's answer with a point field (its maximum
is the question's points in :mod:`labkit.exercises.questions`) and a comment field, beside the
reference answer (the solution notebook's answer cell) and the marking notes; its export button
downloads the page's marks as CSV for ``grade-collect --marks`` (:mod:`.marks`).
``answers/index.html`` links the pages. They work offline from files: no CDN, our own inline
CSS and script, and a Content-Security-Policy that allows only that script (by its hash) and
``data:`` pictures. Student text is Markdown rendered by mistune with raw HTML escaped; links
keep only http(s) and mailto targets, pictures only ``data:`` images and cell attachments.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..exercises import questions
from .submissions import SOLUTIONS_DIR

STATUSES = ("answered", "blank", "missing")
#: the handout's answer prompt (labkit.handouts._answer_prompt), whatever its label says
PROMPT = re.compile(r"\*\*Your answer[^*\n]*:\*\*[ \t]*_write it here\._")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_DATA_IMAGE = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=\s]+)", re.I)
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):")


# --------------------------------------------------------------------------- collecting


def question_of(cell: Any) -> int | None:
    """The question number a cell carries in its metadata, or None (also for a value that is no number)."""
    labkit = cell.get("metadata", {}).get("labkit", {})
    number = labkit.get("question") if isinstance(labkit, dict) else None
    try:
        return int(number) if number is not None and not isinstance(number, bool) else None
    except (TypeError, ValueError):
        return None


def question_numbers(nb: Any) -> list[int]:
    """The question numbers of a notebook's answer cells, in notebook order, each once."""
    found: list[int] = []
    for cell in nb.cells:
        number = question_of(cell)
        if number is not None and number not in found:
            found.append(number)
    return found


def is_blank(source: str) -> bool:
    """Nothing written: empty, or nothing but the handout's untouched prompt."""
    return not PROMPT.sub("", source).strip()


def _images(attachments: Any) -> dict[str, dict[str, str]]:
    """A cell's attachments, pictures only (PNG, JPEG, GIF, WebP as base64 text)."""
    kept: dict[str, dict[str, str]] = {}
    for name, bundle in (attachments or {}).items() if isinstance(attachments, dict) else ():
        if isinstance(bundle, dict):
            pictures = {m: "".join(d) if isinstance(d, list) else d for m, d in bundle.items()
                        if m in IMAGE_TYPES and isinstance(d, (str, list))}
            if pictures:
                kept[str(name)] = pictures
    return kept


def collect(sub: Any, sol: Any) -> tuple[list[dict], list[str]]:
    """The submission's answer to each question of the solution notebook, and notes to report.

    Each answer: ``question``, ``title``, ``max_points`` (from questions.py), ``status`` and the
    ``cells`` carrying its number (cell type, source, picture attachments) in notebook order.
    """
    wanted = question_numbers(sol)
    found: dict[int, list[dict]] = {}
    for cell in sub.cells:
        number = question_of(cell)
        if number is not None:
            found.setdefault(number, []).append({"cell_type": cell.cell_type, "source": cell.source,
                                                 "attachments": _images(cell.get("attachments"))})
    answers, notes = [], []
    for number in wanted:
        question, cells = questions.get(number), found.get(number, [])
        status = "missing" if not cells else "blank" if all(is_blank(c["source"]) for c in cells) else "answered"
        answers.append({"question": number, "title": question.title, "max_points": question.points,
                        "status": status, "cells": cells})
        if status == "missing":
            notes.append(f"question {number}: no cell carries its number (cell metadata labkit.question); "
                         f"no answer found")
        elif len(cells) > 1:
            notes.append(f"question {number}: answer found in {len(cells)} cells; they were joined in notebook order")
    notes += [f"a cell carries question number {n}, which this notebook does not ask: not collected"
              for n in found if n not in wanted]
    return answers, notes


# --------------------------------------------------------------------------- rendering, safely


def safe_href(url: str) -> str | None:
    """A link target kept live: http(s), mailto or a #fragment; anything else (javascript:, data:, files) None."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(unquote(url))).lower()
    scheme = _SCHEME.match(cleaned)
    if scheme:
        return url if scheme.group(1) in ("http", "https", "mailto") else None
    return url if cleaned.startswith("#") else None


def image_src(url: str, attachments: dict[str, dict[str, str]]) -> str | None:
    """A picture's data: URI (a cell attachment or a data:image URI), or None: nothing is fetched from elsewhere."""
    if url.startswith("attachment:"):
        bundle = attachments.get(unquote(url[len("attachment:"):]), {})
        mime = next((m for m in IMAGE_TYPES if m in bundle), None)
        data = re.sub(r"\s", "", bundle.get(mime, "")) if mime else ""
        return f"data:{mime};base64,{data}" if data and _DATA_IMAGE.fullmatch(f"data:{mime};base64,{data}") else None
    match = _DATA_IMAGE.fullmatch(url.strip())
    return f"data:{match.group(1).lower()};base64,{re.sub(r'[^A-Za-z0-9+/=]', '', match.group(2))}" if match else None


def render_markdown(text: str, attachments: dict[str, dict[str, str]] | None = None) -> str:
    """Markdown as HTML with nothing live from the text: raw HTML escaped, unsafe links and pictures as text.

    LaTeX stays as text (``$...$``), escaped. Without mistune the text is shown as it was typed.
    """
    try:
        import mistune
        from mistune.util import striptags
    except ImportError:  # pragma: no cover - mistune comes with the grade extra
        return f"<pre>{html.escape(text)}</pre>"
    pictures = attachments or {}

    class Renderer(mistune.HTMLRenderer):
        def link(self, text: str, url: str, title: str | None = None) -> str:
            href = safe_href(url)
            if href is None:
                return f"{text} <span class='dropped'>(link not kept: {html.escape(url)})</span>"
            return f"<a href=\"{html.escape(href)}\" rel=\"noopener noreferrer nofollow\">{text}</a>"

        def image(self, text: str, url: str, title: str | None = None) -> str:
            src = image_src(url, pictures)
            if src is None:
                return f"<span class='dropped'>[picture not shown: {html.escape(url[:200])}]</span>"
            return f"<img src=\"{src}\" alt=\"{html.escape(html.unescape(striptags(text)))}\">"

    markdown = mistune.create_markdown(escape=True, renderer=Renderer(escape=True),
                                       plugins=["strikethrough", "table", "url", "math"])
    markdown.renderer.register("inline_math", lambda _, t: f"<span class='math'>${html.escape(t)}$</span>")
    markdown.renderer.register("block_math", lambda _, t: f"<span class='math block'>$${html.escape(t)}$$</span>\n")
    return str(markdown(text))


def render_cells(cells: list[dict]) -> str:
    """An answer's cells as HTML, in order: Markdown rendered safely, any other cell shown as typed."""
    parts = []
    for cell in cells:
        source = PROMPT.sub("", cell["source"], count=1).strip()
        if not source:
            continue
        parts.append(render_markdown(source, cell.get("attachments")) if cell["cell_type"] == "markdown"
                     else f"<pre>{html.escape(source)}</pre>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- the marking pages


CSS = """*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0;color:#222;line-height:1.45}
header{position:sticky;top:0;background:#f4f6f8;border-bottom:1px solid #ccd;padding:.5em 1em;z-index:1}
header h1{font-size:1.2em;margin:.2em 0}main{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:1.2em;
padding:1em}aside{position:sticky;top:6.5em;align-self:start;max-height:calc(100vh - 7.5em);overflow:auto;
background:#fbfaf4;border:1px solid #ddd6b8;padding:0 1em}article{border:1px solid #ccc;border-radius:4px;
margin-bottom:1em;padding:0 1em .8em}article h2{font-size:1.05em}.status{font-size:.8em;padding:.1em .5em;
border-radius:3px;margin-left:.5em}.answered .status{background:#e6f4e6}
.blank .status,.missing .status{background:#fde2e2}
.mark{display:flex;gap:1em;align-items:flex-start;background:#f4f6f8;padding:.5em;border-radius:3px}
.mark input{width:5em}.mark textarea{width:100%;min-height:3em}.mark label:last-child{flex:1}
input:invalid{outline:2px solid #c00}.dropped,.note{color:#8a4b00}.math{color:#204a87}
.math.block{display:block;margin:.5em 0}img{max-width:100%}
pre{white-space:pre-wrap}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
@media (max-width:60em){main{grid-template-columns:1fr}aside{position:static;max-height:none}}"""

SCRIPT = """(function () {
  "use strict";
  var q = document.body.getAttribute("data-question");
  var marks = function () { return Array.prototype.slice.call(document.querySelectorAll("article[data-student]")); };
  var quote = function (s) { return '"' + String(s).replace(/"/g, '""') + '"'; };
  function count() {
    var n = marks().filter(function (a) { return a.querySelector("input").value.trim() !== ""; }).length;
    document.getElementById("marked").textContent = String(n);
  }
  document.getElementById("export").addEventListener("click", function () {
    var lines = ["student,question,points,comment"], bad = [];
    marks().forEach(function (a) {
      var input = a.querySelector("input"), points = input.value.trim();
      var student = a.getAttribute("data-student");
      if (input.validity.badInput || (points !== "" && !input.checkValidity())) { bad.push(student); }
      lines.push([quote(student), q, points, quote(a.querySelector("textarea").value)].join(","));
    });
    var status = document.getElementById("export-status");
    if (bad.length) { status.textContent = "not exported: points out of range for " + bad.join(", "); return; }
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([lines.join("\\r\\n") + "\\r\\n"], {type: "text/csv"}));
    link.download = "marks-q" + q + ".csv";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    status.textContent = "exported " + link.download + ": merge it with grade-collect --marks";
  });
  document.addEventListener("input", function () {
    count();
    document.getElementById("export-status").textContent = "";
  });
  count();
}());
"""


def _page(title: str, body: str, body_attrs: str = "", script: str = "") -> str:
    """A whole page: our CSS inline, and a policy under which only ``script`` (by its hash) may run."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    scripts = f"'sha256-{digest}'" if script else "'none'"
    policy = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {scripts}; "
              f"base-uri 'none'; form-action 'none'")
    tail = f"<script>{script}</script>" if script else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{policy}\">"
            f"<meta name='viewport' content='width=device-width'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body{body_attrs}>{body}{tail}</body></html>\n")


def references(labs: set[str], solutions_dir: Path = SOLUTIONS_DIR) -> dict[int, dict[str, str]]:
    """question -> its text (the cell above the answer cell) and reference answer, rendered, from the solutions."""
    import nbformat

    found: dict[int, dict[str, str]] = {}
    for lab in sorted(labs):
        path = Path(solutions_dir) / f"{lab}.ipynb"
        if not path.is_file():
            continue
        cells = nbformat.read(path, as_version=4).cells
        for i, cell in enumerate(cells):
            number = question_of(cell)
            if number is None or cell.cell_type != "markdown":
                continue
            answer = render_markdown(cell.source, _images(cell.get("attachments")))
            if number in found:  # a long answer continues in later cells (instructor-only): one reference
                found[number]["answer"] += answer
                continue
            above = cells[i - 1] if i and question_of(cells[i - 1]) is None else None
            found[number] = {"question": render_markdown(above.source) if above and above.cell_type == "markdown"
                             else "", "answer": answer}
    return found


def _same_text(rows: list[tuple[str, dict]]) -> dict[str, list[str]]:
    """student -> the other students whose answer has the same text (whitespace and case aside)."""
    by_text: dict[str, list[str]] = {}
    for student, answer in rows:
        if answer["status"] == "answered":
            text = " ".join(" ".join(c["source"] for c in answer["cells"]).lower().split())
            by_text.setdefault(text, []).append(student)
    return {s: [o for o in group if o != s] for group in by_text.values() if len(group) > 1 for s in group}


def _fmt(points: float | None) -> str:
    return "" if points is None else f"{points:g}" if float(f"{points:g}") == points else repr(points)


def question_page(number: int, rows: list[tuple[str, dict]], reference: dict[str, str] | None,
                  stored: dict[tuple[str, int], dict]) -> str:
    """answers/q<N>.html: each student's answer with its point and comment fields, beside the reference."""
    q = questions.get(number)
    counts = {s: sum(1 for _, a in rows if a["status"] == s) for s in STATUSES}
    same = _same_text(rows)
    articles = []
    for i, (student, answer) in enumerate(rows):
        mark = stored.get((student, number), {})
        name = html.escape(student)
        text = render_cells(answer["cells"]) if answer["status"] == "answered" else (
            "<p class='note'>No answer cell for this question in the submission.</p>" if answer["status"] == "missing"
            else "<p class='note'>The answer cell was left blank.</p>")
        joined = (f"<p class='note'>joined from {len(answer['cells'])} cells, in notebook order</p>"
                  if len(answer["cells"]) > 1 else "")
        twins = (f"<p class='note'>same text as: {html.escape(', '.join(same[student]))}</p>"
                 if student in same else "")
        articles.append(
            f"<article id='s{i}' class='{answer['status']}' data-student=\"{name}\"><h2>{name}"
            f"<span class='status'>{answer['status']}</span></h2>{joined}{twins}<div class='text'>{text}</div>"
            f"<div class='mark'><label>points <input type='number' name='points' min='0' max='{q.points:g}' "
            f"step='any' value='{_fmt(mark.get('points'))}' aria-label=\"points for {name}\"> / {q.points:g}"
            f"</label><label>comment<br><textarea name='comment' aria-label=\"comment for {name}\">"
            f"{html.escape(mark.get('comment', ''))}</textarea></label></div></article>")
    ref = reference or {"question": "", "answer": f"<p class='note'>not found: solutions/{q.lab}.ipynb</p>"}
    head = (f"<header><h1>Question {number} ({q.points:g} points): {html.escape(q.title)}</h1>"
            f"<span>{html.escape(q.lab)} · {len(rows)} student(s): {counts['answered']} answered, "
            f"{counts['blank']} blank, {counts['missing']} missing · marked <b id='marked'>0</b> of {len(rows)}"
            f"</span> "
            f"<button id='export' type='button'>Export marks-q{number}.csv</button> <span id='export-status'></span>"
            f" · <a href='index.html'>all questions</a></header>")
    aside = (f"<aside><h2>The question</h2>{ref['question']}<h2>Reference answer</h2>{ref['answer']}"
             f"<h2>Marking notes ({q.points:g} points)</h2><p>{html.escape(q.notes)}</p></aside>")
    return _page(f"Question {number}: answers", f"{head}<main><div>{''.join(articles)}</div>{aside}</main>",
                 f" data-question='{number}'", SCRIPT)


def by_question(results: list[dict]) -> dict[int, list[tuple[str, dict]]]:
    """question -> (student, answer) for every result holding answers, students in name order."""
    found: dict[int, list[tuple[str, dict]]] = {}
    for r in sorted(results, key=lambda r: r["student"]):
        for answer in r.get("answers") or []:
            found.setdefault(answer["question"], []).append((r["student"], answer))
    return dict(sorted(found.items()))


def write_pages(out: str | Path, results: list[dict], stored: dict[tuple[str, int], dict],
                solutions_dir: Path = SOLUTIONS_DIR) -> Path | None:
    """answers/q<N>.html for each question answered in ``results``, and answers/index.html; None if none."""
    from .outputs import atomic_write

    pages = by_question(results)
    if not pages:
        return None
    folder = Path(out) / "answers"
    refs = references({questions.get(n).lab for n in pages}, solutions_dir)
    rows = []
    for number, answers in pages.items():
        atomic_write(folder / f"q{number}.html", question_page(number, answers, refs.get(number), stored))
        q = questions.get(number)
        counts = [sum(1 for _, a in answers if a["status"] == s) for s in STATUSES]
        marked = [stored[(s, number)]["points"] for s, _ in answers
                  if stored.get((s, number), {}).get("points") is not None]
        mean = f"{sum(marked) / len(marked):.2f}" if marked else ""
        rows.append(f"<tr><td><a href='q{number}.html'>question {number}</a></td><td>{html.escape(q.lab)}</td>"
                    f"<td>{html.escape(q.title)}</td><td>{q.points:g}</td>"
                    + "".join(f"<td>{c}</td>" for c in counts) + f"<td>{len(marked)}</td><td>{mean}</td></tr>")
    without = sorted(r["student"] for r in results if "answers" not in r)
    missing = (f"<p class='note'>No answers collected for {html.escape(', '.join(without))} (their grading "
               f"failed: see their results).</p>" if without else "")
    body = (f"<main style='display:block;max-width:60em'><h1>Written answers</h1>{missing}<ol>"
            f"<li>Open a question, read each answer beside the reference, fill in points and comments.</li>"
            f"<li>Export the page's marks (its button downloads marks-q&lt;N&gt;.csv), or fill "
            f"<a href='marks-template.csv'>marks-template.csv</a> by hand.</li>"
            f"<li>Merge: <code>python -m labkit grade-collect OUT --marks marks-q3.csv [--marks ...]</code>; "
            f"grades.csv, feedback and summary then count them, and these pages show them.</li></ol>"
            f"<table><tr><th>page</th><th>notebook</th><th>question</th><th>points</th><th>answered</th>"
            f"<th>blank</th><th>missing</th><th>marked</th><th>mean of marked</th></tr>{''.join(rows)}</table></main>")
    atomic_write(folder / "index.html", _page("Written answers", body))
    return folder / "index.html"

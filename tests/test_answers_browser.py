"""The marking page in a real browser: open answers/q3.html from file://, mark three students, export, merge.

Chromium (Debian's ``/usr/bin/chromium``, launched as tests/test_browser.py launches it) opens
the page with no server; a point above the maximum is refused on the page; the three marks and
comments (a comma, quotes and a line break among them) are exported by the page's button and the
downloaded CSV is merged by ``python -m labkit grade-collect --marks``, giving the same numbers in
grades.csv and back on the regenerated page. No console error; the answers' injected HTML stays
text (``window.__pwned`` stays undefined). A screenshot goes to ``/tmp/labkit-answers-q3.png``
and the round trip's grades.csv to ``/tmp/labkit-answers-grades.csv``.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

from test_answers import class_of_01, result_of  # the class of 01 the other answer tests mark
from test_browser import browser, chromium_path  # noqa: F401  (fixtures: Chromium as the browser test launches it)

from labkit.grading import outputs

ROOT = Path(__file__).resolve().parents[1]
SHOT = Path("/tmp/labkit-answers-q3.png")
GRADES_COPY = Path("/tmp/labkit-answers-grades.csv")
MARKS = {"alice": ("2.5", 'Good, but "why" is missing,\nsee the notes.'), "bob": ("1", "Only half an answer."),
         "carol": ("3", "Full marks.")}


def test_mark_export_and_merge_back_in_chromium(browser, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    exercise_points = {"alice": 5, "bob": 2, "carol": 3.5}
    for student, nb in class_of_01().items():
        outputs.write_result(result_of(student, nb, exercise_points=exercise_points[student]), out)
    outputs.collect(out)
    page_path = out / "answers" / "q3.html"
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:",
                                                                                                 "blob:")) else None)
    try:
        page.goto(page_path.as_uri())
        assert page.locator("article[data-student]").count() == 3
        assert page.locator("#marked").text_content() == "0"
        first = page.locator("article[data-student='alice'] input[name=points]")
        first.fill("5")  # above question 3's 3 points: the page refuses to export
        page.click("#export")
        assert "not exported: points out of range for alice" in page.locator("#export-status").text_content()
        for student, (points, comment) in MARKS.items():
            page.locator(f"article[data-student='{student}'] input[name=points]").fill(points)
            page.locator(f"article[data-student='{student}'] textarea[name=comment]").fill(comment)
        assert page.locator("#marked").text_content() == "3"
        assert page.locator("article[data-student='alice'] .text img").count() == 0  # the injected <img> is text
        assert "<script>window.__pwned = 1</script>" in page.locator("article[data-student='alice'] .text").inner_text()
        page.screenshot(path=str(tmp_path / "q3.png"), full_page=True)
        shutil.copy(tmp_path / "q3.png", SHOT)
        with page.expect_download() as download:
            page.click("#export")
        assert download.value.suggested_filename == "marks-q3.csv"
        exported = tmp_path / "marks-q3.csv"
        download.value.save_as(exported)
        assert "exported marks-q3.csv" in page.locator("#export-status").text_content()
        assert page.evaluate("typeof window.__pwned") == "undefined"
    finally:
        context.close()
    with open(exported, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["student"], r["question"], r["points"], r["comment"]) for r in rows] == \
        [(s, "3", p, c) for s, (p, c) in MARKS.items()]
    done = subprocess.run([sys.executable, "-m", "labkit", "grade-collect", str(out), "--marks", str(exported)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (out / "grades.csv").read_text()
    GRADES_COPY.write_text(text)
    grades = {r["student"]: r for r in csv.DictReader(text.splitlines())}
    for student, (points, _) in MARKS.items():
        assert grades[student]["q3"] == points
        assert float(grades[student]["total"]) == exercise_points[student] + float(points)
    assert 'Good, but &quot;why&quot; is missing,\nsee the notes.' in (out / "feedback" / "alice.html").read_text()
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    try:
        page.goto(page_path.as_uri())  # regenerated by grade-collect: the merged marks are back in the fields
        for student, (points, comment) in MARKS.items():
            assert page.locator(f"article[data-student='{student}'] input[name=points]").input_value() == points
            assert page.locator(f"article[data-student='{student}'] textarea").input_value() == comment
        assert page.locator("#marked").text_content() == "3"
        assert page.evaluate("typeof window.__pwned") == "undefined"
    finally:
        context.close()
    assert not problems, problems

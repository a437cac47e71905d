"""Written answers: found by question id, marked one question across the class, marks merged back.

Submissions are built as notebooks from the handouts (answers, blanks, a missing cell, moved,
split and duplicated cells, HTML and script injection, an attached picture); the answers are
collected, the pages written and the marks merged by calling labkit.grading.answers and
labkit.grading.marks directly. One small class is graded end to end at the end, to prove the
wiring (the grader's result, grades.csv, feedback, summary, pages, template, grade-collect --marks).
"""

from __future__ import annotations

import copy
import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from labkit import grading, handouts
from labkit.exercises import questions
from labkit.grading import answers, cli, marks, outputs

ROOT = Path(__file__).resolve().parents[1]
LABS = ("01_dcgan", "02_cgan", "03_wgan_metrics")
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
INJECTION = ("Mine. <script>window.__pwned = 1</script> <img src=x onerror=\"window.__pwned = 2\"> "
             "[click](javascript:window.__pwned=3) <iframe src=\"https://example.org/\"></iframe> "
             "![remote](https://example.org/tracker.png)")


def solution(lab: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / f"{lab}.ipynb", as_version=4)


def answer_cell(nb, number: int):
    return next(c for c in nb.cells if answers.question_of(c) == number)


def class_of_01() -> dict[str, nbformat.NotebookNode]:
    """Three students of 01_dcgan (questions 1-5), each with what the tests look for."""
    handout = handouts.make_handout(solution("01_dcgan"))
    alice = copy.deepcopy(handout)  # answers everything; injects into 3; a picture in 1
    for n in range(1, 6):
        answer_cell(alice, n).source = f"Alice's answer to question {n}: $D(G(z))$ and **bold**."
    answer_cell(alice, 3).source = INJECTION
    pic = answer_cell(alice, 1)
    pic.source = f"My figure:\n\n![plot](attachment:plot.png)\n\nand an inline one ![dot](data:image/png;base64,{PNG})"
    pic["attachments"] = {"plot.png": {"image/png": PNG}}
    bob = copy.deepcopy(handout)  # 1 untouched, 2 emptied, 3 moved and split, 4 deleted, 5 duplicated
    answer_cell(bob, 2).source = ""
    three = answer_cell(bob, 3)
    bob.cells.remove(three)
    first, second = copy.deepcopy(three), copy.deepcopy(three)
    first.source, second.source = "Bob, first half.", "Bob, second half."
    bob.cells += [first, v4.new_code_cell("x = 1"), second]
    bob.cells.remove(answer_cell(bob, 4))
    five = answer_cell(bob, 5)
    five.source = "Bob's ablations."
    copy_of_five = copy.deepcopy(five)
    copy_of_five.source = "Bob's ablations, continued."
    bob.cells.insert(bob.cells.index(five) + 1, copy_of_five)
    carol = copy.deepcopy(handout)  # answers 3 as alice does (same text) and 1 with a stray prompt kept
    answer_cell(carol, 3).source = INJECTION
    answer_cell(carol, 1).source = answer_cell(handout, 1).source + "\n\nCarol wrote under the prompt."
    return {"alice": alice, "bob": bob, "carol": carol}


def result_of(student: str, nb, lab: str = "01_dcgan", exercise_points: float = 4) -> dict:
    """A result as the grader writes it (one exercise row), with the answers collected from ``nb``."""
    written, notes = answers.collect(nb, solution(lab))
    return {"student": student, "submission": f"{student}.ipynb", "solution": f"{lab}.ipynb", "notes": notes,
            "seconds": 1, "graded_at": "x", "sandboxed": True, "total": exercise_points, "max_total": 5,
            "exercises": [{"exercise": "dcgan-d-loss", "outcome": "partial", "points": exercise_points,
                           "max_points": 5, "message": "m", "parts": [], "summary": "", "title": "t", "flag": "",
                           "notebook_output": ""}],
            "answers": written}


@pytest.fixture
def graded_01(tmp_path) -> Path:
    """out/ of the class of 01, collected: results, grades.csv, feedback, summary, answers/."""
    out = tmp_path / "out"
    for student, nb in class_of_01().items():
        outputs.write_result(result_of(student, nb, exercise_points={"alice": 5, "bob": 2, "carol": 3.5}[student]),
                             out)
    outputs.collect(out)
    return out


def grades(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def write_csv(path: Path, rows: list[list], header=("student", "question", "points", "comment")) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([list(header), *rows])
    return path


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


# --------------------------------------------------------------------------- answer cells in the handouts


def test_every_question_is_followed_by_its_answer_cell_showing_its_points():
    seen = []
    for lab in LABS:
        sol, handout = solution(lab), nbformat.read(ROOT / "notebooks" / f"{lab}.ipynb", as_version=4)
        assert answers.question_numbers(sol) == [q.number for q in questions.for_lab(lab)]
        for i, cell in enumerate(handout.cells):
            heading = re.match(r"#+ Question (\d+) ", cell.source) if cell.cell_type == "markdown" else None
            if not heading:
                continue
            number = int(heading.group(1))
            answer = handout.cells[i + 1]
            q = questions.get(number)
            assert answers.question_of(answer) == number and answer.cell_type == "markdown", (lab, number)
            assert "answer" in answer.metadata["tags"] and "solution" not in answer.metadata["tags"]
            assert answer.source == f"**Your answer (question {number}, {q.points:g} points):** _write it here._"
            assert answers.is_blank(answer.source)
            assert q.lab == lab
            seen.append(number)
    assert seen == [q.number for q in questions.QUESTIONS] == list(range(1, 14))


# --------------------------------------------------------------------------- collecting


def test_answers_are_found_by_id_joined_in_order_and_blanks_and_missing_reported():
    sub = class_of_01()
    alice, _ = answers.collect(sub["alice"], solution("01_dcgan"))
    assert [a["status"] for a in alice] == ["answered"] * 5
    assert [(a["question"], a["max_points"], a["title"]) for a in alice] == \
        [(q.number, q.points, q.title) for q in questions.for_lab("01_dcgan")]
    assert alice[0]["cells"][0]["attachments"] == {"plot.png": {"image/png": PNG}}
    bob, notes = answers.collect(sub["bob"], solution("01_dcgan"))
    by = {a["question"]: a for a in bob}
    assert by[1]["status"] == by[2]["status"] == "blank"
    assert by[3]["status"] == "answered" and [c["source"] for c in by[3]["cells"]] == \
        ["Bob, first half.", "Bob, second half."]
    assert by[4]["status"] == "missing" and by[4]["cells"] == []
    assert [c["source"] for c in by[5]["cells"]] == ["Bob's ablations.", "Bob's ablations, continued."]
    assert any("question 4: no cell carries its number" in n for n in notes)
    assert any("question 3: answer found in 2 cells" in n for n in notes)
    carol, _ = answers.collect(sub["carol"], solution("01_dcgan"))
    assert carol[0]["status"] == "answered"  # text under the kept prompt counts
    assert "Your answer" not in answers.render_cells(carol[0]["cells"])


def test_a_question_of_another_notebook_and_a_bad_id_are_noted_not_collected():
    nb = handouts.make_handout(solution("02_cgan"))
    nb.cells.append(v4.new_markdown_cell("stray", metadata={"labkit": {"question": 3}}))
    nb.cells.append(v4.new_markdown_cell("odd", metadata={"labkit": {"question": "three"}}))
    written, notes = answers.collect(nb, solution("02_cgan"))
    assert [a["question"] for a in written] == [6, 7, 8, 9] and all(a["status"] == "blank" for a in written)
    assert any("question number 3, which this notebook does not ask" in n for n in notes)


# --------------------------------------------------------------------------- the pages


def test_question_page_shows_each_answer_beside_the_reference_and_notes(graded_01):
    page = (graded_01 / "answers" / "q5.html").read_text()
    sol = solution("01_dcgan")
    reference = answer_cell(sol, 5)
    heading = sol.cells[sol.cells.index(reference) - 1].source  # the question, from above the answer cell
    for text in (reference.source, heading):
        assert re.search(r"[A-Za-z][A-Za-z ,]{20,}", text).group(0) in page
    assert questions.get(5).notes.split(";")[0] in page and "Marking notes (4 points)" in page
    assert "Question 5 (4 points)" in page
    assert "3 student(s): 2 answered, 1 blank, 0 missing" in page
    assert "<p>Bob's ablations.</p>" in page and "continued" in page and "joined from 2 cells" in page
    inputs = [a for t, a in tags(page) if t == "input"]
    assert len(inputs) == 3 and all(a["max"] == "4" and a["min"] == "0" and a["type"] == "number" for a in inputs)
    assert len([t for t, _ in tags(page) if t == "textarea"]) == 3
    q4 = (graded_01 / "answers" / "q4.html").read_text()
    assert "1 answered, 1 blank, 1 missing" in q4 and "No answer cell for this question" in q4
    q2 = (graded_01 / "answers" / "q2.html").read_text()
    assert "1 answered, 2 blank, 0 missing" in q2 and "left blank" in q2
    assert r"<span class='math'>$D(G(z))$</span>" in q2 and "<strong>bold</strong>" in q2  # LaTeX kept as text


def test_student_html_and_scripts_never_run_and_nothing_is_fetched(graded_01):
    page = (graded_01 / "answers" / "q3.html").read_text()
    found = tags(page)
    assert [t for t, _ in found].count("script") == 1 and "iframe" not in [t for t, _ in found]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;window.__pwned = 2&quot;&gt;" in page
    assert "&lt;iframe" in page and "link not kept: javascript:window.__pwned=3" in page
    assert "picture not shown: https://example.org/tracker.png" in page
    for tag, attrs in found:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)  # no event handler attributes
        if "href" in attrs:
            assert re.match(r"(https?:|mailto:|#|index\.html$)", attrs["href"]), attrs
        if "src" in attrs:
            assert attrs["src"].startswith("data:image/"), attrs
    assert "same text as: carol" in page  # alice and carol handed in the same text
    policy = next(a["content"] for t, a in found if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "img-src data:" in policy
    assert "http" not in re.sub(r"<a [^>]*>|https://example\.org/\S*", "", page.split("<aside>")[0]).replace(
        "http-equiv", "")  # no other address at all in the answers' column


def test_attached_and_inline_pictures_are_shown_as_data_uris(graded_01):
    page = (graded_01 / "answers" / "q1.html").read_text()
    images = [a for t, a in tags(page) if t == "img"]
    assert {a["alt"] for a in images} == {"plot", "dot"}
    assert all(a["src"] == f"data:image/png;base64,{PNG}" for a in images)
    assert "Carol wrote under the prompt." in page and "2 answered, 1 blank, 0 missing" in page


def test_index_links_every_question_with_counts(graded_01):
    index = (graded_01 / "answers" / "index.html").read_text()
    for n in range(1, 6):
        assert f"<a href='q{n}.html'>question {n}</a>" in index
    assert "<td>2</td><td>1</td><td>2</td><td>0</td>" in index  # question 2: 2 points, 1 answered, 2 blank
    assert "marks-template.csv" in index and "grade-collect" in index


def test_rendering_keeps_safe_links_and_drops_the_rest():
    assert answers.safe_href("https://example.org/a") == "https://example.org/a"
    assert answers.safe_href("#top") == "#top"
    for bad in ("javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:x", "jav&#x61;script:x",
                "data:text/html,<b>", "vbscript:x", "file:///etc/passwd", "relative.html"):
        assert answers.safe_href(bad) is None, bad
    assert answers.image_src("data:image/svg+xml;base64,PHN2Zz4=", {}) is None
    assert answers.image_src("attachment:missing.png", {}) is None
    html_ = answers.render_markdown("![x\" onerror=\"y](data:image/png;base64,AAAA) <b onclick=x>b</b>")
    assert [a for t, a in tags(html_) if t == "img"] == [{"src": "data:image/png;base64,AAAA",
                                                          "alt": "x\" onerror=\"y"}]
    assert "<b" not in html_.replace("&lt;b", "")


# --------------------------------------------------------------------------- marks


def test_template_has_a_row_per_student_and_question_with_empty_points(graded_01):
    with open(graded_01 / "answers" / "marks-template.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "question", "points", "comment"]
    assert rows[1:] == [[s, str(n), "", ""] for s in ("alice", "bob", "carol") for n in range(1, 6)]
    before = grades(graded_01)
    assert list(before["alice"])[:9] == ["student", "dcgan-d-loss", "q1", "q2", "q3", "q4", "q5", "total", "max_total"]
    assert before["alice"]["q1"] == "" and before["alice"]["total"] == "5" and before["alice"]["max_total"] == "20"


def test_marks_merge_into_grades_feedback_and_summary_and_remerging_changes_nothing(graded_01, tmp_path):
    template = graded_01 / "answers" / "marks-template.csv"
    rows = list(csv.reader(open(template, newline="")))[1:]
    points = {("alice", "3"): "2.5", ("alice", "1"): "3", ("bob", "4"): "0", ("carol", "3"): "1"}
    filled = [[s, q, points.get((s, q), ""), "see the <b>notes</b>" if (s, q) == ("alice", "3") else ""]
              for s, q, _, _ in rows]
    by_hand = write_csv(tmp_path / "by-hand.csv", filled)
    assert cli.main(["grade-collect", str(graded_01), "--marks", str(by_hand)]) == 0
    first = grades(graded_01)
    assert (first["alice"]["q1"], first["alice"]["q3"], first["alice"]["q2"]) == ("3", "2.5", "")
    assert first["alice"]["total"] == "10.5" and first["alice"]["max_total"] == "20"  # 5 + 3 + 2.5
    assert first["bob"]["total"] == "2" and first["bob"]["q4"] == "0" and first["carol"]["total"] == "4.5"
    feedback = (graded_01 / "feedback" / "alice.html").read_text()
    assert "2.5 / 3" in feedback and "see the &lt;b&gt;notes&lt;/b&gt;" in feedback and "not marked yet" in feedback
    assert "10.5 / 20 points" in feedback and "2 of 5 marked" in feedback
    summary = (graded_01 / "summary.html").read_text()
    assert "1.75 / 3" in summary and "2 of 3" in summary  # question 3: (2.5 + 1) / 2, marked 2 of 3
    page = (graded_01 / "answers" / "q3.html").read_text()
    assert "value='2.5'" in page and "see the &lt;b&gt;notes&lt;/b&gt;</textarea>" in page  # the page shows them
    snapshot = {p: (graded_01 / p).read_text() for p in ("grades.csv", "marks.json", "feedback/alice.html",
                                                         "summary.html", "answers/q3.html",
                                                         "answers/marks-template.csv")}
    for _ in range(2):
        assert cli.main(["grade-collect", str(graded_01), "--marks", str(by_hand), "--marks", str(by_hand)]) == 0
        assert {p: (graded_01 / p).read_text() for p in snapshot} == snapshot
    assert not (graded_01 / "answers" / "previous").exists()  # the template held nothing unmerged


def test_later_files_change_a_mark_field_by_field(graded_01, tmp_path):
    marks.merge(graded_01, [write_csv(tmp_path / "a.csv", [["bob", 3, 2, "good start"]])])
    marks.merge(graded_01, [write_csv(tmp_path / "b.csv", [["bob", "q3", "", "second half is better"]])])
    assert marks.load(graded_01)[("bob", 3)] == {"points": 2.0, "comment": "second half is better"}
    marks.merge(graded_01, [write_csv(tmp_path / "c.csv", [["bob", 3, 1.5, ""]])])
    assert marks.load(graded_01)[("bob", 3)] == {"points": 1.5, "comment": "second half is better"}
    outputs.collect(graded_01)
    assert grades(graded_01)["bob"]["q3"] == "1.5"


@pytest.mark.parametrize("rows, problem", [
    ([["alice", 3, 2, ""], ["mallory", 3, 1, ""]], r"row 3: unknown student 'mallory'"),
    ([["alice", 14, 1, ""]], r"row 2: unknown question '14'"),
    ([["alice", 7, 1, ""]], r"row 2: question 7 is not in alice's notebook"),
    ([["alice", 3, 3.5, ""]], r"row 2: points 3.5 above the question's maximum of 3"),
    ([["alice", 3, -1, ""]], r"row 2: points -1 below 0"),
    ([["alice", 3, "three", ""]], r"row 2: points 'three' is not a number"),
    ([["alice", 3, "nan", ""]], r"row 2: points 'nan' is not a number"),
    ([["alice", 3, 2, ""], ["alice", 3, 1, ""]], r"row 3: a different mark for alice, question 3 than .*row 2"),
])
def test_bad_rows_are_refused_before_anything_is_written(graded_01, tmp_path, capsys, rows, problem):
    good = write_csv(tmp_path / "good.csv", [["bob", 1, 1, ""]])
    bad = write_csv(tmp_path / "bad.csv", rows)
    before = (graded_01 / "grades.csv").read_text()
    assert cli.main(["grade-collect", str(graded_01), "--marks", str(good), "--marks", str(bad)]) == 2
    printed = capsys.readouterr().out
    assert re.search(re.escape(str(bad)) + ", " + problem, printed), printed
    assert not (graded_01 / "marks.json").exists() and (graded_01 / "grades.csv").read_text() == before


def test_two_files_disagreeing_are_refused_naming_both(graded_01, tmp_path):
    a = write_csv(tmp_path / "a.csv", [["carol", 3, 2, "fine"]])
    b = write_csv(tmp_path / "b.csv", [["carol", 3, 2, "not fine"]])
    with pytest.raises(ValueError, match=rf"{re.escape(str(b))}, row 2: a different mark for carol, question 3 than "
                                         rf"{re.escape(str(a))}, row 2 \(comment differ\)"):
        marks.merge(graded_01, [a, b])
    with pytest.raises(ValueError, match=r"row 1: the header must name the columns student, question, points"):
        marks.merge(graded_01, [write_csv(tmp_path / "c.csv", [["carol", 3, 2]], header=("who", "q", "p"))])
    assert not (graded_01 / "marks.json").exists()
    same = write_csv(tmp_path / "same.csv", [["carol", 3, 2, "fine"]])
    marks.merge(graded_01, [a, same])  # the same mark twice is no conflict
    assert marks.load(graded_01) == {("carol", 3): {"points": 2.0, "comment": "fine"}}


def test_a_template_filled_by_hand_and_not_merged_is_kept_aside(graded_01):
    template = graded_01 / "answers" / "marks-template.csv"
    template.write_text(template.read_text().replace("alice,2,,", "alice,2,1,by hand"))
    outputs.collect(graded_01)
    kept = list((graded_01 / "answers" / "previous").glob("marks-template.*.csv"))
    assert len(kept) == 1 and "alice,2,1,by hand" in kept[0].read_text()


def test_results_without_answers_still_collect(tmp_path):
    result = result_of("dan", handouts.make_handout(solution("01_dcgan")))
    del result["answers"]  # a result from before, or a grader that died
    outputs.write_result(result, tmp_path)
    outputs.collect(tmp_path)
    assert list(grades(tmp_path)["dan"]) == ["student", "dcgan-d-loss", "total", "max_total", "flags"]
    assert not (tmp_path / "answers").exists()


# --------------------------------------------------------------------------- end to end


def test_grading_a_class_collects_answers_and_merges_marks(tmp_path):
    """A class of 3 on notebook 02 through grade(): answers in the results, pages, template, --marks merged."""
    sol = solution("02_cgan")
    handout = handouts.make_handout(sol)
    wrote = copy.deepcopy(handout)
    for n in (6, 7, 8):
        answer_cell(wrote, n).source = f"My answer to {n}: <script>window.__pwned = 1</script>"
    wrote.cells.remove(answer_cell(wrote, 9))
    subs = []
    for name, nb in {"ref": sol, "blank": handout, "wrote": wrote}.items():
        nb = handouts.strip_outputs(nb)
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
        subs.append(tmp_path / f"{name}.ipynb")
    out = tmp_path / "out"
    results = {r["student"]: r for r in grading.grade(subs, out, jobs=3, timeout=40, notebook_timeout=400,
                                                        feedback_run=False)}
    assert [a["status"] for a in results["ref"]["answers"]] == ["answered"] * 4
    assert [a["status"] for a in results["blank"]["answers"]] == ["blank"] * 4
    assert [a["status"] for a in results["wrote"]["answers"]] == ["answered"] * 3 + ["missing"]
    assert json.loads((out / "results" / "wrote.json").read_text())["answers"][0]["cells"][0]["source"].startswith(
        "My answer to 6")
    assert {p.name for p in (out / "answers").iterdir()} == {"index.html", "marks-template.csv", "q6.html",
                                                            "q7.html", "q8.html", "q9.html"}
    assert "&lt;script&gt;window.__pwned" in (out / "answers" / "q6.html").read_text()
    exercise_total = {name: r["total"] for name, r in results.items()}
    template = (out / "answers" / "marks-template.csv").read_text().splitlines()
    assert len(template) == 1 + 3 * 4
    filled = write_csv(tmp_path / "m.csv", [["ref", 6, 2, "full"], ["ref", 7, 3, ""], ["wrote", 6, 1, "half"],
                                            ["wrote", 9, 0, "missing"], ["blank", 8, 0, ""]])
    assert cli.main(["grade-collect", str(out), "--marks", str(filled)]) == 0
    rows = grades(out)
    assert [k for k in rows["ref"] if k.startswith("q")] == ["q6", "q7", "q8", "q9"]
    assert float(rows["ref"]["total"]) == exercise_total["ref"] + 5
    assert float(rows["ref"]["max_total"]) == results["ref"]["max_total"] + 9
    assert float(rows["wrote"]["total"]) == exercise_total["wrote"] + 1 and rows["wrote"]["q9"] == "0"
    assert rows["blank"]["q8"] == "0" and rows["blank"]["q6"] == ""
    assert "half" in (out / "feedback" / "wrote.html").read_text()


def test_a_reference_answer_split_over_cells_is_shown_whole(tmp_path):
    """A long answer continues in instructor-only cells; the marking page's reference joins them, in order."""
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("### Question 5 — ablations"),
        v4.new_markdown_cell("First part, the size of z.", metadata={"tags": ["solution"], "labkit": {"question": 5}}),
        v4.new_code_cell("display(claims)", metadata={"tags": ["solution-only"]}),
        v4.new_markdown_cell("Second part, the widths.", metadata={"tags": ["solution-only"], "labkit": {"question": 5}}),
    ])
    nbformat.write(nb, tmp_path / "01_dcgan.ipynb")
    found = answers.references({"01_dcgan"}, solutions_dir=tmp_path)
    assert "ablations" in found[5]["question"]
    answer = found[5]["answer"]
    assert "First part" in answer and "Second part" in answer and answer.index("First") < answer.index("Second")
    handout = handouts.make_handout(nb)
    assert [c.source for c in handout.cells if "Second part" in c.source] == []

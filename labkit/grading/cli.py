"""The grading commands: ``grade``, ``grade-one``, ``grade-collect`` (``python -m labkit ...``)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path


def _missing_extra(command: str) -> str | None:
    """labkit's one-line "needs" message for ``command`` when the grade extra is missing, else None."""
    from ..__main__ import needs_extra

    missing = [m for m in ("nbformat", "nbclient") if importlib.util.find_spec(m) is None]
    return None if not missing else f"{needs_extra(command, 'grade')} (missing {', '.join(missing)})"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (results/, grades.csv, feedback/, summary.html)")
    p.add_argument("--timeout", type=float, default=120, help="seconds per exercise probe and per feedback cell")
    p.add_argument("--notebook-timeout", type=float, default=900, help="seconds per submission")
    p.add_argument("--solution", default=None, help="solution notebook (default: matched by exercise ids)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="grade without bubblewrap (e.g. macOS): submissions can then read the references")
    p.add_argument("--no-feedback", action="store_true",
                   help="skip the feedback run (the submission in a kernel, for what its checks print); points are the same")
    p.add_argument("--params", default=None, help=argparse.SUPPRESS)  # JSON: the feedback run's parameters


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grade", help="grade submitted notebooks into grades.csv, feedback and a summary")
    p.add_argument("submissions", nargs="+", help="notebooks or folders (the student's name is the file/folder name)")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel")
    _common(p)
    p.set_defaults(func=cmd_grade)
    p = sub.add_parser("grade-one", help="grade one notebook into OUT/results/<student>.json (job arrays)")
    p.add_argument("notebook")
    p.add_argument("--student", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads of the feedback kernel")
    _common(p)
    p.set_defaults(func=cmd_grade_one)
    p = sub.add_parser("grade-collect",
                       help="merge DIR/results/*.json (and --marks) into grades.csv, feedback and summary")
    p.add_argument("dir")
    p.add_argument("--marks", action="append", default=[], metavar="CSV",
                   help="marks of the written answers (student,question,points,comment) to merge; repeatable")
    p.set_defaults(func=cmd_grade_collect)


def cmd_grade(args: argparse.Namespace) -> int:
    from . import grade

    if (why := _missing_extra("grade")):
        print(why)
        return 2
    results = grade(args.submissions, args.out, jobs=args.jobs, timeout=args.timeout,
                    notebook_timeout=args.notebook_timeout, solution=args.solution,
                    params=json.loads(args.params) if args.params else None, sandboxed=not args.no_sandbox,
                    feedback_run=not args.no_feedback)
    print(f"graded {len(results)} submission(s): {Path(args.out) / 'grades.csv'}, feedback/, summary.html")
    return 0


def cmd_grade_one(args: argparse.Namespace) -> int:
    from . import grade_one

    if (why := _missing_extra("grade-one")):
        print(why)
        return 2
    path = grade_one(args.notebook, args.out, student=args.student, cell_timeout=args.timeout,
                     notebook_timeout=args.notebook_timeout, solution=args.solution, kernel_threads=args.threads,
                     params=json.loads(args.params) if args.params else None, sandboxed=not args.no_sandbox,
                     feedback_run=not args.no_feedback)
    print(f"wrote {path}")
    return 0


def cmd_grade_collect(args: argparse.Namespace) -> int:
    from .outputs import collect

    if args.marks:  # checked whole before anything is written; a bad row refuses them all
        from .marks import merge

        print(f"merged {len(args.marks)} marks file(s) into {merge(args.dir, args.marks)}")
    print(f"wrote {collect(args.dir)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.grading grade|grade-one|grade-collect ...``."""
    parser = argparse.ArgumentParser(prog="python -m labkit.grading")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

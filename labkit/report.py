"""The report of a ``make run``: one page with every model's numbers, the key figures and the notebooks.

:func:`write_report` reads what the executed notebooks left in the run folder
— each trained run's ``config.json``, ``history.json`` and cached metrics, the
figures the notebooks saved — and writes ``report.md`` and ``report.html``
beside them. Nothing in it is typed in: a number that was not measured shows
as a dash.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import tables
from .tables import METRIC_KEYS

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "run", "{}"),
    ("epochs", "epochs", "{:d}"),
    ("images", "images", "{:d}"),
    ("wall_time", "time (s)", "{:.0f}"),
    ("images_per_second", "images/s", "{:.0f}"),
    ("fid", "FID", "{:.2f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("density", "density", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("classes_covered", "classes >= 5 %", "{:d}"),
    ("label_accuracy", "label accuracy", "{:.3f}"),
)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _metrics_of(folder: Path) -> dict[str, Any] | None:
    """The run's cached metrics with the most samples (``metrics-n<N>-...json``), if any."""
    best: tuple[int, dict[str, Any]] | None = None
    for path in folder.glob("metrics-*.json"):
        found = _read_json(path)
        if isinstance(found, dict) and "fid" in found:
            n = int(found.get("n") or 0)
            if best is None or n > best[0]:
                best = (n, found)
    return best[1] if best else None


def collect_rows(runs_dir: Path) -> list[dict[str, Any]]:
    """One row per trained run folder under ``runs_dir`` (a folder with config.json and history.json)."""
    rows = []
    for folder in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()) if Path(runs_dir).is_dir() else []:
        config, summary = _read_json(folder / "config.json"), _read_json(folder / "history.json")
        if not isinstance(config, dict) or not isinstance(summary, dict):
            continue
        scores = _metrics_of(folder) or {}
        name = folder.name.rpartition("-")[0] or folder.name
        images = sum(summary.get("epoch_images", [])) or None
        rows.append({
            "model": f"{name} ({config.get('model')}, {config.get('loss')})",
            "epochs": summary.get("epochs"),
            "images": images,
            "wall_time": summary.get("wall_time"),
            "images_per_second": summary.get("images_per_second"),
            **{k: scores.get(k) for k in METRIC_KEYS},
            "n_eval": scores.get("n"),
            "folder": folder.name,
        })
    return rows


def table(rows: Sequence[dict[str, Any]], floor: dict[str, Any] | None) -> list[list[str]]:
    """Header plus one list of cells per row; the real-vs-real floor last."""
    if not floor:
        return tables.grid(rows, COLUMNS)
    # _floor_for puts its failure ("floor unavailable: ...") where the label goes.
    label = floor.get("model", f"real MNIST vs real (floor, n={floor.get('n')})")
    return tables.grid(rows, COLUMNS, floor, floor_label=label)


def _floor_for(rows: Sequence[dict[str, Any]], data_root: str | None) -> dict[str, Any] | None:
    """The real floor at the sample count the runs were evaluated with (cached by labkit.metrics)."""
    sizes = sorted({int(r["n_eval"]) for r in rows if r.get("n_eval")})
    if not sizes:
        return None
    try:
        from . import metrics

        return metrics.real_floor(root=data_root, n=sizes[-1])
    except Exception as exc:  # the report must still be written
        return {"model": f"floor unavailable: {exc}"}


def _figures(runs_dir: Path) -> dict[str, list[Path]]:
    """PNG figures the notebooks saved, grouped by the folder they are in (trained-run folders too)."""
    groups: dict[str, list[Path]] = {}
    for png in sorted(Path(runs_dir).rglob("*.png")) if Path(runs_dir).is_dir() else []:
        groups.setdefault(png.parent.name, []).append(png)
    return groups


def _export_html(notebook: Path) -> Path | None:
    """An HTML copy of an executed notebook, for reading in a browser; None when nbconvert fails."""
    out = notebook.with_suffix(".html")
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--log-level", "ERROR",
                           str(notebook)], capture_output=True, text=True)
    return out if done.returncode == 0 and out.exists() else None


def write_report(folder: Path, results: Sequence[Any], profile: str, data_root: str | None = None
                 ) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for a run folder; returns their paths."""
    folder = Path(folder)
    runs_dir = folder / "runs"
    rows = collect_rows(runs_dir)
    cells = table(rows, _floor_for(rows, data_root))
    figures = _figures(runs_dir)
    notebooks = []
    for r in results:
        exported = _export_html(folder / r.output) if (folder / r.output).exists() else None
        notebooks.append((r, exported))

    md = [f"# Course pack run — profile `{profile}`", ""]
    md += ["## Notebooks", "", "| notebook | status | time (s) | executed copy |", "|---|---|---|---|"]
    for r, exported in notebooks:
        status = "ok" if r.ok else f"**failed** in cell {r.error_cell}: {r.error}"
        link = f"[{r.output}]({r.output})" + (f" ([html]({exported.name}))" if exported else "")
        md.append(f"| {r.name} | {status} | {r.seconds:.0f} | {link} |")
    md += ["", "## Results", "", "| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    md += ["| " + " | ".join(line) + " |" for line in cells[1:]]
    for r, _ in notebooks:
        if not r.ok:
            md += ["", f"## Failure: {r.name}", "", f"Cell {r.error_cell}: `{r.error}`", "", "```python",
                   (r.error_source or "").strip(), "```"]
    md += ["", "## Figures"]
    for group, paths in figures.items():
        md += ["", f"### {group}", ""] + [f"![{p.stem}]({p.relative_to(folder).as_posix()})" for p in paths]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    e = html.escape
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>labkit run — {e(profile)}</title>",
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
            "text-align:right}td:first-child,th:first-child{text-align:left}.fail{color:#b00020}"
            "img{max-width:560px;margin:6px;border:1px solid #eee}pre{background:#f6f6f6;padding:1em}</style>"
            "</head><body>", f"<h1>Course pack run — profile <code>{e(profile)}</code></h1>",
            "<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>time (s)</th><th>executed copy</th></tr>"]
    for r, exported in notebooks:
        status = "ok" if r.ok else f"<span class='fail'>failed in cell {r.error_cell}: {e(r.error or '')}</span>"
        link = f"<a href='{e(r.output)}'>{e(r.output)}</a>" + (
            f" (<a href='{e(exported.name)}'>html</a>)" if exported else "")
        page.append(f"<tr><td>{e(r.name)}</td><td>{status}</td><td>{r.seconds:.0f}</td><td>{link}</td></tr>")
    page.append("</table><h2>Results</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in cells[0]) + "</tr>")
    page += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in line) + "</tr>" for line in cells[1:]]
    page.append("</table>")
    for r, _ in notebooks:
        if not r.ok:
            page += [f"<h2 class='fail'>Failure: {e(r.name)}</h2><p>Cell {r.error_cell}: <code>{e(r.error or '')}"
                     f"</code></p><pre>{e((r.error_source or '').strip())}</pre>"]
    page.append("<h2>Figures</h2>")
    for group, paths in figures.items():
        page.append(f"<h3>{e(group)}</h3>" + "".join(
            f"<img src='{e(p.relative_to(folder).as_posix())}' alt='{e(p.stem)}' title='{e(p.stem)}'>" for p in paths))
    page.append("</body></html>")
    html_path = folder / "report.html"
    html_path.write_text("\n".join(page))
    return md_path, html_path

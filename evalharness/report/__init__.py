"""Reports of a run: a self-contained HTML page next to results.json, the Markdown
summary, and the index of every run under ``reports/``.

The CLI calls :func:`write_run_reports` after every run.
"""

from __future__ import annotations

from pathlib import Path

from evalharness.results import RunResults, write_atomic

__all__ = ["write_run_reports", "write_html_report", "is_reports_root"]


def write_html_report(path: str | Path, runs: list[RunResults]) -> Path:
    from evalharness.report.html import render_html

    path = Path(path)
    write_atomic(path, render_html(runs))
    return path


def is_reports_root(folder: Path) -> bool:
    """A folder whose sub-folders are runs: named ``reports`` or already indexed."""
    return folder.name == "reports" or (folder / "index.html").is_file()


def write_run_reports(folder: Path, results: RunResults) -> list[Path]:
    """Write ``report.html`` into the run folder; refresh the parent's ``index.html``
    when the run lives in a reports folder (the default ``reports/<run-id>``)."""
    folder = Path(folder)
    written = [write_html_report(folder / "report.html", [results])]
    root = folder.resolve().parent
    if is_reports_root(root):
        from evalharness.report.index import write_index

        written.append(write_index(root))
    return written

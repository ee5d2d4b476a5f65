"""Reports of a run: a self-contained HTML page next to results.json, the Markdown
summary, and the index of every run under ``reports/``.

The CLI calls :func:`write_run_reports` after every run.
"""

from __future__ import annotations

from pathlib import Path

from evalharness.atomic import write_atomic
from evalharness.results import RunResults

__all__ = ["write_run_reports", "write_html_report", "is_reports_root"]


def write_html_report(path: str | Path, runs: list[RunResults]) -> Path:
    from evalharness.report.html import render_html

    path = Path(path)
    write_atomic(path, render_html(runs))
    return path


GENERATOR = '<meta name="generator" content="evalharness index">'


def is_reports_root(folder: Path) -> bool:
    """A folder whose sub-folders are runs: named ``reports``, or holding an index.html
    that evalharness wrote (never someone else's index.html)."""
    if folder.name == "reports":
        return True
    index = folder / "index.html"
    try:
        with open(index, encoding="utf-8", errors="replace") as fh:
            return GENERATOR in fh.read(4096)
    except OSError:
        return False


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

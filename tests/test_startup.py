"""``--help`` and ``validate`` must not import the heavy libraries (torch, transformers,
sentence-transformers, mteb, scikit-learn, scipy.stats, matplotlib): they are imported
lazily by the commands that use them. (Checked by module presence, never by timing.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "transformers", "sentence_transformers", "mteb", "sklearn", "scipy.stats",
         "matplotlib", "pandas", "datasets"]


def _loaded_after(code: str) -> list[str]:
    probe = (code + "\nimport sys\n"
             f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("LOADED="))
    return [m for m in line[len("LOADED="):].split(",") if m]


def test_help_imports_nothing_heavy():
    assert _loaded_after("from evalharness.cli import build_parser; build_parser()") == []


def test_validate_imports_nothing_heavy():
    code = ("from evalharness.cli import main\n"
            "for s in ('suites/quick.yaml', 'suites/standard.yaml', 'suites/deployment.yaml'):\n"
            "    assert main(['validate', s]) == 0")
    assert _loaded_after(code) == []

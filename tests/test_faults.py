"""Faults (issue 20): kill -9 and Ctrl-C during encoding, two runs sharing one cache, an
output folder that cannot be written. The runs are real ``python -m evalharness run``
subprocesses on a tiny STS suite whose encoder (tests/fault_encoders.py) is slow enough
to be interrupted half-way; the write faults go through ``evalharness.cli.main``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalharness.cli import main

from helpers import TINY_SUITE, make_sts

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
N_PAIRS = 700  # 1400 unique texts: 6 blocks of 256 texts (one cache write each)
SUITE = """\
suite: faults
seed: 3
bootstrap: 100
encoders:
  slow: py:fault_encoders:slow_encode?batch_size=1
tasks:
  sts: {type: sts, dataset: manysts}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    rows = [(f"pair {i}: the first sentence mentions item {i * 7 % 101}.",
             f"pair {i}: a second sentence about thing {i * 13 % 89} and more.",
             float(i % 6)) for i in range(N_PAIRS)]
    make_sts(root / "data", "manysts", rows)
    (root / "suite.yaml").write_text(SUITE, encoding="utf-8")
    # the reference: one uninterrupted run on its own cache
    proc = start(root, root / "ref-cache", root / "ref-out", sleep=0)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return root, numbers(root / "ref-out")


def start(root: Path, cache: Path, out: Path, *, sleep: float = 0.25,
          marker: Path | None = None, flush_seconds: float | None = None) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", FAULT_SLEEP=str(sleep),
               PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO),
                                           os.environ.get("PYTHONPATH", "")]))
    env.pop("FAULT_MARKER", None)
    env.pop("FAULT_FLUSH_SECONDS", None)
    if flush_seconds is not None:  # write each encoded block to the cache at once
        env["FAULT_FLUSH_SECONDS"] = str(flush_seconds)
    if marker is not None:
        env["FAULT_MARKER"] = str(marker)
    return subprocess.Popen(
        [sys.executable, "-m", "evalharness", "run", str(root / "suite.yaml"),
         "--data-dir", str(root / "data"), "--cache-dir", str(cache), "-o", str(out)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_calls(marker: Path, n: int, proc: subprocess.Popen, timeout: float = 120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if marker.exists() and len(marker.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {n} encode calls: "
                                 f"{proc.communicate()[1]}")
        time.sleep(0.02)
    raise AssertionError("the run never reached the encode stage")


def numbers(out: Path) -> dict:
    """Every metric's value and CI, and the encoder's cache counts."""
    res = json.loads((out / "results.json").read_text())
    metrics = {name: (m["value"], m["ci"])
               for name, m in res["results"]["slow"]["sts"]["metrics"].items()}
    return {"metrics": metrics, "cache": res["encoders"]["slow"]["cache"]}


def no_temp_files(cache: Path) -> bool:
    return not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]


def test_kill_9_during_encoding_then_rerun_resumes(world):
    root, ref = world
    cache, out, marker = root / "k9-cache", root / "k9-out", root / "k9-marker"
    proc = start(root, cache, out, marker=marker, flush_seconds=0)
    wait_for_calls(marker, 3, proc)  # two blocks are in the cache, the third may be
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()

    again = start(root, cache, out, sleep=0)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    got = numbers(out)
    assert got["metrics"] == ref["metrics"]  # identical numbers
    total = ref["cache"]["misses"]
    assert got["cache"]["hits"] >= 2 * 256  # resumed from what reached the cache
    assert got["cache"]["hits"] + got["cache"]["misses"] == total
    final = start(root, cache, root / "k9-out2", sleep=0)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert numbers(root / "k9-out2")["cache"] == {"hits": total, "misses": 0}


def test_sigint_exits_130_writes_nothing_and_keeps_the_cache(world):
    root, ref = world
    cache, out, marker = root / "int-cache", root / "int-out", root / "int-marker"
    proc = start(root, cache, out, marker=marker)
    wait_for_calls(marker, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "evalharness: interrupted" in err and len(err.strip().splitlines()) <= 4
    assert not (out / "results.json").exists()
    assert not out.exists() or not any(out.iterdir())
    assert no_temp_files(cache)  # every cache write finished or was removed

    again = start(root, cache, out, sleep=0)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    got = numbers(out)
    assert got["metrics"] == ref["metrics"]
    assert got["cache"]["hits"] >= 256


def test_two_concurrent_runs_on_one_cache(world):
    root, ref = world
    cache = root / "shared-cache"
    procs = [start(root, cache, root / f"conc-out{i}", sleep=0.1) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    a, b = numbers(root / "conc-out0"), numbers(root / "conc-out1")
    assert a["metrics"] == b["metrics"] == ref["metrics"]
    assert no_temp_files(cache)
    after = start(root, cache, root / "conc-out2", sleep=0)
    _, err = after.communicate(timeout=300)
    assert after.returncode == 0, err
    got = numbers(root / "conc-out2")
    assert got["metrics"] == ref["metrics"]
    assert got["cache"]["misses"] == 0  # the shared cache holds every vector


# -- the output folder cannot be written ------------------------------------------------


@pytest.fixture
def tiny(tmp_path):
    make_sts(tmp_path / "data")
    (tmp_path / "suite.yaml").write_text(TINY_SUITE, encoding="utf-8")
    return tmp_path


def _fail_writes_into(folder: Path, err: int, monkeypatch):
    """os.replace into ``folder`` fails with ``err`` (the last step of every atomic write);
    writes anywhere else (the embedding cache) work."""
    real = os.replace

    def replace(src, dst, *a, **kw):
        if Path(dst).resolve().parent == folder.resolve():
            raise OSError(err, os.strerror(err), str(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_unwritable_output_folder_is_exit_2_and_keeps_the_cache(tiny, monkeypatch, capsys,
                                                                  err):
    out, cache = tiny / "out", tiny / "cache"
    out.mkdir()
    args = ["run", str(tiny / "suite.yaml"), "--data-dir", str(tiny / "data"),
            "--cache-dir", str(cache), "-o", str(out)]
    with monkeypatch.context() as m:
        _fail_writes_into(out, err, m)
        code = main(args)
    stdout, stderr = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in stdout + stderr
    assert str(out) in stderr and os.strerror(err) in stderr
    assert not (out / "results.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # the cache kept what was encoded: the re-run encodes nothing
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["encoders"]["rnd"]["cache"] == {"hits": 20, "misses": 0}


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_output_folder_really(tiny, capsys):
    out = tiny / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code = main(["run", str(tiny / "suite.yaml"), "--data-dir", str(tiny / "data"),
                     "--cache-dir", str(tiny / "cache"), "-o", str(out)])
    finally:
        out.chmod(0o755)
    _, stderr = capsys.readouterr()
    assert code == 2 and str(out) in stderr and "Traceback" not in stderr

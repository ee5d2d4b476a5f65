"""Corpus scale: whole retrieval runs over synthetic BEIR corpora of 100k and 1M documents.

``python -m evalharness.bench.scale`` builds, per size, a BEIR folder of unique synthetic
documents (20-60 words from a 20,000-word vocabulary, about 300 characters, each with a
unique id token), 1,000 queries and graded qrels (seeded), then runs
``evalharness run`` on a one-task suite with the ``random`` encoder (a fixed Gaussian
vector per text: deterministic and cheap, so the harness is measured, not a model):

- cold: an empty cache folder; warm: the same command again on the filled cache;
  wall seconds and the peak RSS of that process alone (``os.wait4``), each in its own
  subprocess; the stage seconds come from its results.json;
- cache bytes after the cold run (and the vectors' own bytes, for comparison);
- the cache alone, in a separate process: ``EmbeddingCache.store`` of as many 384-dim
  vectors as the corpus has documents, in the embed stage's 32 MB groups (MB/s of vectors,
  compaction included), then ``find`` of every key in shuffled order (membership,
  keys/s) and ``read_into`` of the vectors (keys/s and MB/s, checksums checked).

Writes ``reports/bench/scale.json`` (with the issue's targets and whether each is met)
and prints a table. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 2**20
GiB = 2**30
DEFAULT_OUT = Path("reports/bench/scale.json")
DIM = 384
ENCODER = f"random?dim={DIM}&seed=0"
TARGETS = {"cold_1m_over_100k": 13.0, "warm_over_cold_1m": 0.3,
           "peak_rss_1m_bytes": 3.5e9, "cache_write_mb_per_s": 200.0,
           "lookup_keys_per_s": 1e6}
# the same measurements of the code before the v2 cache (the corpus-scale issue)
BEFORE = {"cold_100k_seconds": 13.1, "cold_1m_seconds": 511.0, "warm_1m_seconds": 28.0,
          "peak_rss_1m_bytes": int(4.84 * GiB)}


# -- the synthetic corpus ------------------------------------------------------------------
def make_corpus(folder: Path, n_docs: int, n_queries: int = 1000, seed: int = 0) -> Path:
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv); kept and reused when
    it was built with the same parameters."""
    import numpy as np

    stamp = {"docs": n_docs, "queries": n_queries, "seed": seed, "version": 1}
    if (folder / "stamp.json").exists() and \
            json.loads((folder / "stamp.json").read_text()) == stamp:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "qrels").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(letters[rng.integers(0, 26, rng.integers(3, 10))]) for _ in range(20000)]
    vocab = np.array(vocab, dtype=object)
    dumps = json.dumps
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        block = 50_000
        for s in range(0, n_docs, block):
            k = min(block, n_docs - s)
            lengths = rng.integers(20, 61, k)
            words = vocab[rng.integers(0, len(vocab), int(lengths.sum()))]
            cuts = np.cumsum(lengths)[:-1]
            lines = []
            for i, ws in enumerate(np.split(words, cuts)):
                lines.append(dumps({"_id": f"d{s + i}", "title": "",
                                    "text": f"doc{s + i} " + " ".join(ws)}))
            fh.write("\n".join(lines))
            fh.write("\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh, \
            open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as qr:
        qr.write("query-id\tcorpus-id\tscore\n")
        for q in range(n_queries):
            words = vocab[rng.integers(0, len(vocab), int(rng.integers(4, 12)))]
            fh.write(dumps({"_id": f"q{q}", "text": f"query{q} " + " ".join(words)}) + "\n")
            for d in rng.choice(n_docs, size=int(rng.integers(1, 4)), replace=False):
                qr.write(f"q{q}\td{int(d)}\t{int(rng.integers(1, 3))}\n")
    (folder / "stamp.json").write_text(json.dumps(stamp))
    return folder


def write_suite(path: Path, dataset: Path) -> Path:
    path.write_text(
        "suite: scale\n"
        "description: synthetic BEIR corpus, random encoder (corpus-scale benchmark)\n"
        "seed: 0\n"
        f"encoders:\n  rnd: \"{ENCODER}\"\n"
        f"tasks:\n  retrieval: {{type: retrieval, dataset: {{path: {json.dumps(str(dataset))}}}}}\n",
        encoding="utf-8")
    return path


# -- measuring a process -------------------------------------------------------------------
def run_measured(cmd: list[str], *, env=None) -> dict:
    """Wall seconds, exit code and the peak RSS of this one child (``os.wait4``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    stderr_chunks = []
    # drain stderr in a thread so the child never blocks on a full pipe
    import threading

    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()),
                              daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    rss = int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    err = b"".join(stderr_chunks).decode("utf-8", "replace")
    return {"seconds": round(seconds, 3), "peak_rss_bytes": rss, "exit_code": proc.returncode,
            "stderr_tail": err[-2000:] if proc.returncode else ""}


def _stages(results: Path) -> dict:
    try:
        res = json.loads(results.read_text())
    except (OSError, ValueError):
        return {}
    rec = res.get("encoders", {}).get("rnd", {})
    return {"encoder": rec.get("seconds", {}), "run": res.get("seconds", {}),
            "cache": rec.get("cache"),
            "ndcg_at_10": (res.get("results", {}).get("rnd", {}).get("retrieval", {})
                           .get("metrics", {}).get("ndcg_at_10", {}).get("value"))}


def cache_worker(n: int, folder: str, seed: int = 0) -> dict:
    """The cache alone: store n vectors in 32 MB groups, then find and read them all."""
    import resource

    import numpy as np

    from evalharness.embeddings.cache import EmbeddingCache
    from evalharness.embeddings.planner import FLUSH_BYTES

    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    group = max(1, FLUSH_BYTES // (DIM * 4))
    cache = EmbeddingCache(folder)
    vec = np.empty((group, DIM), np.float32)
    store_s = 0.0
    for s in range(0, n, group):
        k = min(group, n - s)
        vec[:k] = rng.standard_normal((k, DIM), dtype=np.float32)
        t0 = time.perf_counter()
        cache.store("bench", "any", keys[s:s + k], vec[:k])
        store_s += time.perf_counter() - t0
    shuffled = keys[rng.permutation(n)]
    reader = EmbeddingCache(folder)
    t0 = time.perf_counter()
    found = reader.find("bench", "any", shuffled)
    find_s = time.perf_counter() - t0
    out = np.empty((n, DIM), np.float32)
    out[:] = 0  # touch the pages first: reading is measured, not page faults
    t0 = time.perf_counter()
    got = found.read_into(out)
    read_s = time.perf_counter() - t0
    vec_bytes = n * DIM * 4
    return {"vectors": n, "dim": DIM, "vector_bytes": vec_bytes,
            "store_seconds": round(store_s, 3),
            "write_mb_per_s": round(vec_bytes / 1e6 / store_s, 1),
            "bytes_written": cache.bytes_written,
            "write_amplification": round(cache.bytes_written / vec_bytes, 3),
            "find_seconds": round(find_s, 3),
            "lookup_keys_per_s": round(n / find_s),
            "read_seconds": round(read_s, 3),
            "read_keys_per_s": round(n / read_s),
            "read_mb_per_s": round(vec_bytes / 1e6 / read_s, 1),
            "lookup_and_read_keys_per_s": round(n / (find_s + read_s)),
            "all_found": bool(found.mask.all() and got.all()),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure_size(n: int, n_queries: int, work: Path, *, seed: int = 0,
                 cache_bench: bool = True, log=print) -> dict:
    data = make_corpus(work / f"corpus-{n}", n, n_queries, seed)
    suite = write_suite(work / f"scale-{n}.yaml", data)
    cache = work / f"cache-{n}"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    row = {"docs": n, "queries": n_queries, "dim": DIM, "encoder": ENCODER,
           "vectors_bytes": (n + n_queries) * DIM * 4}
    for side in ("cold", "warm"):
        out = work / f"out-{n}-{side}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "evalharness.cli", "run", str(suite), "--cache-dir",
               str(cache), "-o", str(out)]
        log(f"scale: {n:,} documents, {side} run ...")
        row[side] = run_measured(cmd, env=env)
        row[side].update(_stages(out / "results.json"))
        log(f"scale: {n:,} documents, {side}: {row[side]['seconds']:.1f} s, peak RSS "
            f"{row[side]['peak_rss_bytes'] / GiB:.2f} GiB, exit {row[side]['exit_code']}")
        if side == "cold":
            row["cache_bytes"] = _dir_bytes(cache)
    shutil.rmtree(cache, ignore_errors=True)
    if cache_bench:
        folder = work / f"cachebench-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        proc = subprocess.run([sys.executable, "-m", "evalharness.bench.scale", "--cache-worker",
                               str(n), str(folder)], capture_output=True, text=True, env=env)
        shutil.rmtree(folder, ignore_errors=True)
        if proc.returncode != 0:
            raise SystemExit(f"cache benchmark for {n} vectors failed:\n{proc.stderr}")
        row["cache"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row


def summarize(rows: list[dict]) -> dict:
    by = {r["docs"]: r for r in rows}
    out: dict = {}
    small, big = by.get(100_000), by.get(1_000_000)
    if small and big:
        out["cold_1m_over_100k"] = round(big["cold"]["seconds"] / small["cold"]["seconds"], 2)
    if big:
        out["warm_over_cold_1m"] = round(big["warm"]["seconds"] / big["cold"]["seconds"], 3)
        out["peak_rss_1m_bytes"] = max(big["cold"]["peak_rss_bytes"],
                                       big["warm"]["peak_rss_bytes"])
    caches = [r["cache"] for r in rows if "cache" in r]
    if caches:
        largest = max(caches, key=lambda c: c["vectors"])
        out["cache_write_mb_per_s"] = largest["write_mb_per_s"]
        out["lookup_keys_per_s"] = largest["lookup_keys_per_s"]
    met = {}
    for k, target in TARGETS.items():
        if k in out:
            higher = k in ("cache_write_mb_per_s", "lookup_keys_per_s")
            met[k] = bool(out[k] >= target) if higher else bool(out[k] <= target)
    return {"figures": out, "targets": TARGETS, "met": met}


def table(report: dict) -> str:
    head = (f"{'docs':>9} {'cold s':>8} {'warm s':>8} {'warm/cold':>9} {'cold GiB':>9} "
            f"{'warm GiB':>9} {'cache MB':>9} {'write MB/s':>10} {'find keys/s':>12} "
            f"{'read keys/s':>12}")
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        c = r.get("cache", {})
        lines.append(
            f"{r['docs']:>9,} {r['cold']['seconds']:>8.1f} {r['warm']['seconds']:>8.1f} "
            f"{r['warm']['seconds'] / r['cold']['seconds']:>9.3f} "
            f"{r['cold']['peak_rss_bytes'] / GiB:>9.2f} {r['warm']['peak_rss_bytes'] / GiB:>9.2f} "
            f"{r.get('cache_bytes', 0) / 1e6:>9.0f} {c.get('write_mb_per_s', float('nan')):>10.0f} "
            f"{c.get('lookup_keys_per_s', float('nan')):>12,.0f} "
            f"{c.get('read_keys_per_s', float('nan')):>12,.0f}")
    s = report["summary"]
    for k, v in s["figures"].items():
        target = s["targets"].get(k)
        mark = "" if k not in s["met"] else ("  met" if s["met"][k] else "  NOT MET")
        lines.append(f"{k}: {v:,} (target {'>=' if 'per_s' in k else '<='} {target:,}){mark}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m evalharness.bench.scale",
                                description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None,
                   help="corpora, caches and run outputs (default: a folder in the temp "
                        "dir, kept so the corpora are built once)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUT)
    p.add_argument("--no-cache-bench", action="store_true")
    p.add_argument("--cache-worker", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.cache_worker:
        print(json.dumps(cache_worker(int(a.cache_worker[0]), a.cache_worker[1], a.seed)))
        return 0
    work = a.workdir or Path(tempfile.gettempdir()) / "evalharness-bench-scale"
    work.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    rows = [measure_size(n, a.queries, work, seed=a.seed, cache_bench=not a.no_cache_bench,
                         log=log) for n in a.sizes]
    report = {"benchmark": "corpus scale: synthetic BEIR retrieval runs, random encoder",
              "environment": {"python": platform.python_version(),
                              "machine": platform.machine(), "cpu_count": os.cpu_count()},
              "note": "cold: empty cache; warm: the same run again; peak RSS of that run's "
                      "process (os.wait4); cache: the EmbeddingCache alone in its own process",
              "before": BEFORE, "results": rows}
    report["summary"] = summarize(rows)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, a.output)
    print(table(report))
    print(f"wrote {a.output}")
    bad = [r["docs"] for r in rows for side in ("cold", "warm") if r[side]["exit_code"] != 0]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

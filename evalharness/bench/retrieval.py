"""The retrieval search step alone: exact chunked cosine top-k on random unit vectors.

``python -m evalharness.bench.retrieval`` measures, for 1,000 queries against 100k and
1M documents (dim 384, float32, seeded), the seconds of ``exact_topk`` and the peak RSS of
the process (``resource.getrusage(...).ru_maxrss``). Each corpus size runs in its own
subprocess, so a peak belongs to one size. Next to the peak it writes the parts that
should bound it: the RSS of the runtime before any data (interpreter, numpy, and BLAS's
buffers, warmed up by a tiny search), the bytes of the embeddings (queries + documents)
and the chunk budget; ``within_bound`` says whether peak <= runtime + embeddings + chunk
budget, and ``search_overhead_bytes`` (peak minus the peak before the search) is what
the search itself added.

Writes ``reports/bench/retrieval.json`` and prints a table. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

MiB = 2**20
DEFAULT_OUT = Path("reports/bench/retrieval.json")


def _peak_rss_bytes() -> int:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb) * (1 if sys.platform == "darwin" else 1024)  # Linux reports KiB


def _current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def random_unit(n: int, dim: int, rng, *, block: int = 1024):
    """(n, dim) float32 unit vectors, generated block by block (no float64 temporaries
    of the full size)."""
    import numpy as np

    out = np.empty((n, dim), np.float32)
    for s in range(0, n, block):
        b = out[s:s + block]
        b[...] = rng.standard_normal(b.shape, dtype=np.float32)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
    return out


def worker(n_docs: int, n_queries: int, dim: int, k: int, chunk_mb: float, seed: int) -> dict:
    import numpy as np

    from evalharness.tasks.search import block_shape, exact_topk

    # the runtime before any data: interpreter, numpy, BLAS's own buffers and the
    # allocator's state, warmed up by the same calls on a tiny input
    warm = random_unit(512, dim, np.random.default_rng(seed + 1))
    exact_topk(warm, warm, min(k, 512), chunk_bytes=int(chunk_mb * MiB))
    del warm
    interpreter = _peak_rss_bytes()
    rng = np.random.default_rng(seed)
    docs = random_unit(n_docs, dim, rng)
    queries = random_unit(n_queries, dim, rng)
    after_data = _peak_rss_bytes()
    chunk_bytes = int(chunk_mb * MiB)
    t0 = time.perf_counter()
    scores, idx = exact_topk(queries, docs, k, chunk_bytes=chunk_bytes)
    seconds = time.perf_counter() - t0
    peak = _peak_rss_bytes()
    # a spot check that the search returned the true top-1 of a few queries
    probe = np.arange(0, n_queries, max(1, n_queries // 8))
    top1 = np.argmax(queries[probe] @ docs.T, axis=1)
    emb = docs.nbytes + queries.nbytes
    bound = interpreter + emb + chunk_bytes
    qb, db = block_shape(n_queries, n_docs, k, chunk_bytes)
    return {"n_docs": n_docs, "n_queries": n_queries, "dim": dim, "k": k,
            "seconds": round(seconds, 3),
            "queries_per_second": round(n_queries / seconds, 1),
            "peak_rss_bytes": peak, "interpreter_rss_bytes": interpreter,
            "rss_after_data_bytes": after_data, "current_rss_bytes": _current_rss_bytes(),
            "embeddings_bytes": emb, "chunk_budget_bytes": chunk_bytes,
            "bound_bytes": bound, "within_bound": bool(peak <= bound),
            "search_overhead_bytes": peak - after_data,
            "search_within_budget": bool(peak - after_data <= chunk_bytes),
            "block": {"queries": qb, "documents": db},
            "top1_spot_check": bool(np.array_equal(top1, idx[probe, 0]))}


def run(sizes, n_queries, dim, k, chunk_mb, seed, out: Path) -> dict:
    rows = []
    for n in sizes:
        cmd = [sys.executable, "-m", "evalharness.bench.retrieval", "--worker", str(n),
               "--queries", str(n_queries), "--dim", str(dim), "--k", str(k),
               "--chunk-mb", str(chunk_mb), "--seed", str(seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark worker for {n} documents failed:\n{proc.stderr}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {
        "benchmark": "retrieval search step (exact chunked cosine top-k)",
        "seed": seed, "chunk_mb": chunk_mb,
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpu_count": os.cpu_count(),
                        "numpy": __import__("numpy").__version__},
        "note": "peak RSS from getrusage ru_maxrss, one subprocess per size; "
                "bound = interpreter RSS + embeddings bytes + chunk budget",
        "results": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)
    return report


def table(report: dict) -> str:
    head = (f"{'docs':>9} {'queries':>7} {'seconds':>8} {'peak MiB':>9} {'interp MiB':>10} "
            f"{'emb MiB':>8} {'chunk MiB':>9} {'bound MiB':>9} {'within':>6} {'search MiB':>10}")
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        lines.append(f"{r['n_docs']:>9} {r['n_queries']:>7} {r['seconds']:>8.2f} "
                     f"{r['peak_rss_bytes'] / MiB:>9.0f} {r['interpreter_rss_bytes'] / MiB:>10.0f} "
                     f"{r['embeddings_bytes'] / MiB:>8.0f} {r['chunk_budget_bytes'] / MiB:>9.0f} "
                     f"{r['bound_bytes'] / MiB:>9.0f} {str(r['within_bound']):>6} "
                     f"{r['search_overhead_bytes'] / MiB:>10.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m evalharness.bench.retrieval",
                                description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--chunk-mb", type=float, default=256.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, default=DEFAULT_OUT)
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker is not None:
        print(json.dumps(worker(a.worker, a.queries, a.dim, a.k, a.chunk_mb, a.seed)))
        return 0
    report = run(a.sizes, a.queries, a.dim, a.k, a.chunk_mb, a.seed, a.output)
    print(table(report))
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

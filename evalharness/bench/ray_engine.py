"""The ray engine's overhead against the local engine, on this machine.

``python -m evalharness.bench.ray_engine [--texts N] [--encoders random,minilm]`` encodes
the same N texts (AG News, else synthetic sentences) with the embed stage
(``planner.embed``, no cache) once per engine, each in a fresh subprocess:

- ``local``: one process, torch with every core (``--local-threads N`` to pin it);
- ``ray``: a local Ray started for the run with ``--actors`` (default 2) actors of 1 CPU
  (1 torch thread each).

Reported per (encoder, engine): wall seconds of the embed stage (model load, actor start
and the model load in every actor included), texts/s, and for ray the seconds of
``ray.init`` apart; then ray/local = wall(ray) / wall(local), with and without the
start of Ray. For ``minilm`` it also checks that the two engines' vectors agree (max abs
difference). Writes ``reports/bench/ray_engine.json``. Timings are reported, never
asserted; on a machine shared with other work they vary by 10% or more.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path("reports/bench/ray_engine.json")
SPECS = {"random": "random?dim=384&seed=0", "minilm": "minilm"}


def bench_texts(n: int) -> list[str]:
    """``n`` unique texts: AG News (test, then train) from the data dir, then synthetic."""

    out: dict[str, None] = {}
    roots = [os.environ.get("EVALHARNESS_DATA"),
             str(Path(__file__).resolve().parents[2].parent / "shared" / "datasets")]
    for root in filter(None, roots):
        for split in ("test", "train"):
            f = Path(root) / "agnews" / f"{split}.jsonl"
            if f.exists():
                for line in f.read_text(encoding="utf-8").splitlines():
                    out.setdefault(json.loads(line)["text"], None)
                    if len(out) >= n:
                        return list(out)
        if out:
            break
    i = 0
    while len(out) < n:
        out.setdefault(f"synthetic sentence number {i} about topic {i % 97}", None)
        i += 1
    return list(out)


def run_one(engine: str, encoder: str, n: int, vectors_out: str | None, *,
            actors: int = 2, local_threads: int | None = None) -> dict:
    """One measurement, in this process (the parent starts a subprocess per call)."""
    import numpy as np

    from evalharness.embeddings.engines import ExecutionConfig, LocalEngine
    from evalharness.embeddings.planner import embed
    from evalharness.encoders.pool import build_encoder
    from evalharness.encoders.spec import parse_encoder_entry

    texts = bench_texts(n)
    enc = build_encoder(parse_encoder_entry(encoder, SPECS[encoder]))
    res = {"engine": engine, "encoder": encoder, "texts": len(texts),
           "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    if engine == "local":
        if local_threads:
            import torch

            torch.set_num_threads(local_threads)
            res["threads"] = local_threads
        eng = LocalEngine()
        loader = getattr(enc, "load", None)
    else:
        from evalharness.embeddings.ray_engine import RayEngine

        eng = RayEngine(ExecutionConfig(engine="ray", actors=actors, cpus_per_actor=1))
        t0 = time.perf_counter()
        eng.start()
        res["ray_init_seconds"] = round(time.perf_counter() - t0, 3)
        loader = None  # the model loads in the actors, not here
    t0 = time.perf_counter()
    vectors, stats = embed(enc, {"text": texts}, None, before_encode=loader, engine=eng)
    res["embed_seconds"] = round(time.perf_counter() - t0, 3)
    res["texts_per_second"] = round(len(texts) / res["embed_seconds"], 1)
    res["describe"] = eng.describe()
    if engine != "local":
        t0 = time.perf_counter()
        eng.close()
        res["ray_shutdown_seconds"] = round(time.perf_counter() - t0, 3)
    if vectors_out:
        np.save(vectors_out, vectors.get("text", texts))
    return res


def _child(engine: str, encoder: str, n: int, vectors_out: str | None, args) -> dict:
    cmd = [sys.executable, "-m", "evalharness.bench.ray_engine", "--one", engine,
           "--encoders", encoder, "--texts", str(n), "--actors", str(args.actors)]
    if args.local_threads:
        cmd += ["--local-threads", str(args.local_threads)]
    if vectors_out:
        cmd += ["--vectors", vectors_out]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_seconds"] = round(time.perf_counter() - t0, 3)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=4000)
    ap.add_argument("--encoders", default="random,minilm")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure each engine this many times, alternating the order "
                         "(local first, then ray first, ...); the minimum is reported")
    ap.add_argument("--actors", type=int, default=2, help="ray actors (1 CPU each)")
    ap.add_argument("--local-threads", type=int, default=None,
                    help="torch threads of the local run (default: torch's, every core)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--one", choices=("local", "ray"), help=argparse.SUPPRESS)
    ap.add_argument("--vectors", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.encoders, args.texts, args.vectors,
                                 actors=args.actors, local_threads=args.local_threads)))
        return 0

    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for encoder in args.encoders.split(","):
            vec = {e: os.path.join(tmp, f"{encoder}-{e}.npy") for e in ("local", "ray")}
            runs: dict[str, list] = {"local": [], "ray": []}
            for i in range(max(1, args.repeat)):
                for engine in (("local", "ray") if i % 2 == 0 else ("ray", "local")):
                    runs[engine].append(_child(engine, encoder, args.texts, vec[engine], args))
            local = min(runs["local"], key=lambda r: r["embed_seconds"])
            ray = min(runs["ray"], key=lambda r: r["embed_seconds"])
            diff = float(np.abs(np.load(vec["local"]) - np.load(vec["ray"])).max())
            rows.append({"encoder": encoder, "texts": local["texts"], "local": local,
                         "ray": ray, "max_abs_diff": diff,
                         "all_seconds": {e: [r["embed_seconds"] for r in rs]
                                         for e, rs in runs.items()},
                         "ray_over_local": round(ray["embed_seconds"] / local["embed_seconds"], 3),
                         "ray_with_init_over_local": round(
                             (ray["embed_seconds"] + ray["ray_init_seconds"])
                             / local["embed_seconds"], 3)})
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "python": platform.python_version()},
           "settings": {"actors": args.actors, "local_threads": args.local_threads,
                        "repeat": args.repeat}, "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"{'encoder':8} {'texts':>6} {'local s':>8} {'ray s':>8} {'init s':>7} "
          f"{'ray/local':>9} {'+init':>6} {'local t/s':>9} {'ray t/s':>8} {'max diff':>9}")
    for r in rows:
        print(f"{r['encoder']:8} {r['texts']:>6} {r['local']['embed_seconds']:>8.1f} "
              f"{r['ray']['embed_seconds']:>8.1f} {r['ray']['ray_init_seconds']:>7.1f} "
              f"{r['ray_over_local']:>9.2f} {r['ray_with_init_over_local']:>6.2f} "
              f"{r['local']['texts_per_second']:>9.0f} {r['ray']['texts_per_second']:>8.0f} "
              f"{r['max_abs_diff']:>9.1e}")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

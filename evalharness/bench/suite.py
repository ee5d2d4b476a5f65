"""``make bench``: the harness against the encode-only floor and against mteb.

Every side runs as its own process (wall seconds measured around the process, peak RSS
read by the process itself), on the same data and model (MiniLM fp32, torch on 2 threads):

1. floor: sentence-transformers ``encode`` (batch 32) of the unique texts that
   ``suites/standard.yaml`` needs, once, nothing else;
2. evalharness cold (empty cache) and warm (full cache) runs of standard.yaml (MiniLM only);
3. evalharness cold on the tasks mteb also runs (same work as 4.);
4. mteb: the same task families run by mteb's own evaluators (its ``AbsTask.evaluate``) on
   the same local data: STS (STS-B, SICK-R), few-shot classification (AG News), clustering
   (20 Newsgroups, all texts, 10 k-means runs) and retrieval (MS MARCO), no result cache.

Also times ``evalharness --help`` and ``validate`` (fresh processes, best of 3). Writes
``reports/bench/suite.json`` and prints a table. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

THREADS = "2"
MTEB_TASKS = ["stsb", "sick", "agnews_fewshot", "news20", "msmarco"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _bench_suite(src: Path, dest: Path) -> Path:
    """standard.yaml with MiniLM only and no thresholds (gating is not what is timed)."""
    data = yaml.safe_load(src.read_text())
    data["encoders"] = {"minilm": data["encoders"]["minilm"]}
    data.pop("thresholds", None)
    data["suite"] = "bench-standard"
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


# -- children (each runs in its own process) -------------------------------------------

def child_floor(args) -> dict:
    import torch

    torch.set_num_threads(int(THREADS))
    texts = json.loads(Path(args["texts"]).read_text())
    t0 = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    from evalharness.encoders.weights import minilm_path

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    return {"load_seconds": t_load, "encode_seconds": time.perf_counter() - t0,
            "texts": len(texts)}


def child_evalharness(args) -> dict:
    # no torch import here: OMP_NUM_THREADS=2 sets torch's threads when (and only if) the
    # run loads a model, and a warm run that loads none should not pay for importing it
    from evalharness.cli import main

    argv = ["run", args["suite"], "--cache-dir", args["cache"], "-o", args["out"]]
    if args.get("only"):
        argv += ["--only", *args["only"]]
    code = main(argv)
    res = json.loads((Path(args["out"]) / "results.json").read_text())
    rec = res["encoders"]["minilm"]
    return {"exit_code": code, "stages": rec["seconds"], "cache": rec["cache"],
            "run_seconds": res["seconds"],
            "main_scores": {cid: r["metrics"][r["main_metric"]]["value"]
                            for cid, r in res["results"]["minilm"].items()
                            if r.get("main_metric") and r["metrics"].get(r["main_metric"])}}


def child_mteb(args) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(int(THREADS))
    import mteb
    from datasets import Dataset, DatasetDict
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from evalharness.data.local import load_labelled, load_pairs, load_retrieval
    from evalharness.encoders.weights import minilm_path

    root = Path(args["data"])
    t0 = time.perf_counter()
    model = SentenceTransformerEncoderWrapper(SentenceTransformer(str(minilm_path()),
                                                                  device="cpu"))
    out = {"load_seconds": time.perf_counter() - t0, "tasks": {}}
    enc_kw = {"batch_size": 32}

    def run(name, task):
        task.data_loaded = True
        t = time.perf_counter()
        scores = task.evaluate(model, "test", encode_kwargs=enc_kw)["default"]
        out["tasks"][name] = {"seconds": time.perf_counter() - t,
                              "main_score": scores.get("main_score")}

    for name, mteb_name in (("stsb", "STSBenchmark"), ("sick", "SICK-R")):
        d = load_pairs(root / name, "test", name)
        task = mteb.get_task(mteb_name)
        task.dataset = {"default": DatasetDict({"test": Dataset.from_dict(
            {"sentence1": d.sentence1, "sentence2": d.sentence2,
             "score": d.scores.tolist()})})}
        run(name, task)

    tr = load_labelled(root / "agnews", "train", "agnews")
    te = load_labelled(root / "agnews", "test", "agnews")
    task = mteb.get_task("NewsClassification")
    task.n_experiments, task.samples_per_label, task.seed = 10, 8, 42
    task.dataset = {"default": DatasetDict({
        "train": Dataset.from_dict({"text": tr.texts, "label": tr.labels.tolist()}),
        "test": Dataset.from_dict({"text": te.texts, "label": te.labels.tolist()})})}
    run("agnews_fewshot", task)

    ng = load_labelled(root / "twentynewsgroups", "test", "twentynewsgroups")
    task = mteb.get_task("TwentyNewsgroupsClustering.v2")
    task.max_fraction_of_documents_to_embed = None
    task.max_document_to_embed = len(ng)
    task.max_documents_per_cluster = len(ng)
    task.n_clusters = 10
    task.dataset = {"default": DatasetDict({"test": Dataset.from_dict(
        {task.input_column_name: ng.texts, task.label_column_name: ng.labels.tolist()})})}
    run("news20", task)

    ms = load_retrieval(root / "msmarco", "test", "msmarco")
    task = mteb.get_task("MSMARCO")
    task.dataset = {"default": {"test": {
        "corpus": Dataset.from_dict({"id": ms.corpus_ids, "text": ms.corpus_texts,
                                     "title": [""] * len(ms.corpus_ids)}),
        "queries": Dataset.from_dict({"id": ms.query_ids, "text": ms.query_texts}),
        "relevant_docs": ms.qrels, "top_ranked": None}}}
    run("msmarco", task)
    del np
    return out


CHILDREN = {"floor": child_floor, "evalharness": child_evalharness, "mteb": child_mteb}


def _child_main(kind: str, args_json: str) -> None:
    t0 = time.perf_counter()
    result = CHILDREN[kind](json.loads(args_json))
    result["inner_seconds"] = time.perf_counter() - t0
    result["peak_rss_mb"] = _peak_rss_mb()
    print("BENCH-RESULT " + json.dumps(result))


def run_child(kind: str, args: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=THREADS, MKL_NUM_THREADS=THREADS,
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evalharness.bench.suite", "--child", kind,
                           json.dumps(args)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT ")), None)
    if proc.returncode != 0 or line is None:
        sys.stderr.write(proc.stderr[-4000:])
        return {"error": f"{kind} exited {proc.returncode}", "seconds": wall}
    out = json.loads(line[len("BENCH-RESULT "):])
    out["seconds"] = wall
    return out


def measure_startup(suite: str, repeat: int = 3) -> dict:
    """Wall seconds (best of ``repeat``) of ``evalharness --help`` and ``validate``, each a
    fresh process: the CLI imports no torch, transformers, sentence-transformers or mteb."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = {}
    for name, argv in (("help", ["--help"]), ("validate", ["validate", suite])):
        best = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "evalharness", *argv], env=env,
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-2000:])
                out[name] = {"error": f"exited {proc.returncode}"}
                break
            best = wall if best is None else min(best, wall)
        else:
            out[name] = {"seconds": round(best, 3)}
    return out


def plan_texts(suite_path: Path, data_dir: str | None) -> list[str]:
    from evalharness.data.resolve import DatasetResolver
    from evalharness.runner import load_components, make_plan
    from evalharness.suite import load_suite

    suite = load_suite(suite_path)
    comps = load_components(suite, DatasetResolver(data_dir, base_dir=suite_path.parent), [])
    return make_plan(comps).all_texts  # the run's unique texts (MiniLM: roles share vectors)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="suites/standard.yaml")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="reports/bench/suite.json")
    p.add_argument("--skip-mteb", action="store_true")
    p.add_argument("--sides", default="floor,cold,warm,cold_tasks,mteb",
                   help="re-measure only these sides; the others are kept from --out")
    p.add_argument("--child", nargs=2, metavar=("KIND", "ARGS"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child_main(*a.child)
        return 0

    from evalharness.data.resolve import search_dirs

    data_dir = a.data_dir or next((str(d) for _, d in search_dirs() if (d / "stsb").is_dir()),
                                  None)
    work = Path(tempfile.mkdtemp(prefix="evalharness-bench-"))
    try:
        suite = _bench_suite(Path(a.suite), work / "bench.yaml")
        texts = plan_texts(Path(a.suite), data_dir)
        (work / "texts.json").write_text(json.dumps(texts))
        print(f"bench: {len(texts)} unique texts in {a.suite}; data {data_dir}", file=sys.stderr)
        wanted = set(a.sides.split(","))
        if a.skip_mteb:
            wanted.discard("mteb")
        previous = {}
        if Path(a.out).exists() and wanted != {"floor", "cold", "warm", "cold_tasks", "mteb"}:
            previous = json.loads(Path(a.out).read_text()).get("sides", {})
        if data_dir:
            os.environ["EVALHARNESS_DATA"] = data_dir
        common = {"suite": str(suite)}
        plan = {
            "floor": lambda: run_child("floor", {"texts": str(work / "texts.json")}),
            "cold": lambda: run_child("evalharness", {**common, "cache": str(work / "c1"),
                                                      "out": str(work / "r1")}),
            "warm": lambda: run_child("evalharness", {**common, "cache": str(work / "c1"),
                                                      "out": str(work / "r2")}),
            "cold_tasks": lambda: run_child("evalharness", {**common, "cache": str(work / "c2"),
                                                            "out": str(work / "r3"),
                                                            "only": MTEB_TASKS}),
            "mteb": lambda: run_child("mteb", {"data": data_dir}),
        }
        sides = {}
        for name, fn in plan.items():
            if name in wanted or (name == "warm" and "cold" in wanted):
                sides[name] = fn()  # warm needs the cache its cold run filled
                sides[name]["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            elif name in previous:
                sides[name] = previous[name]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    startup = measure_startup(a.suite)

    def ratio(x, y, key="seconds"):
        sx, sy = sides.get(x, {}).get(key), sides.get(y, {}).get(key)
        return round(sx / sy, 3) if sx and sy else None

    report = {
        "suite": a.suite, "unique_texts": len(texts), "torch_threads": int(THREADS),
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sides": sides,
        "ratios": {"cold/floor": ratio("cold", "floor"),
                   "cold_tasks/mteb": ratio("cold_tasks", "mteb"),
                   "warm/cold": ratio("warm", "cold"),
                   "peak RSS cold/mteb": ratio("cold", "mteb", "peak_rss_mb"),
                   "peak RSS cold_tasks/mteb": ratio("cold_tasks", "mteb", "peak_rss_mb")},
        "targets": {"cold/floor": 1.15, "cold_tasks/mteb": 0.8, "warm/cold": 0.05,
                    "peak RSS cold/mteb": 1.0, "peak RSS cold_tasks/mteb": 1.0},
        "startup_seconds": startup, "startup_target_seconds": 1.0,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    rows = []
    for name, s in sides.items():
        stages = s.get("stages") or {}
        rows.append([name, f"{s.get('seconds', 0):.1f}", f"{s.get('peak_rss_mb', 0):.0f}",
                     " ".join(f"{k}={v:.1f}" for k, v in stages.items()) or
                     s.get("error", "")])
    from evalharness.console import table

    print(table(rows, ["side", "wall s", "peak RSS MB", "stages (s)"]))
    print("ratios: " + "; ".join(f"{k} = {v} (target {report['targets'][k]})"
                                  for k, v in report["ratios"].items()))
    print("startup: " + ", ".join(f"{k} {v.get('seconds', v.get('error'))} s"
                                  for k, v in startup.items()) + " (target 1.0 s)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

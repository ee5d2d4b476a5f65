"""GPU section of ``make bench``: sentence-transformers ``encode`` against evalharness's
encoder on the same texts and the same card.

``python -m evalharness.bench.gpu [--device cuda|cpu] [--limit N] [--datasets a,b]``

On each dataset (STS-B sentences, SICK-R sentences, AG News test, 20 Newsgroups test,
MS MARCO passages; at most ``--limit`` unique texts each) it times, after a warm-up and
with ``torch.cuda.synchronize()`` around every timing (best of ``--repeats``):

- ``st_encode_bs32``: ``SentenceTransformer.encode`` with its default batch size (32);
- ``st_encode_bs256``: the same with batches of 256;
- ``evalharness_fp32``: the embed stage (``planner.embed``, no cache) with the ``minilm``
  encoder: the token path (encoders/token_path.py) with the device's batch defaults;
- ``evalharness_bf16``: the same with the ``{base: minilm, dtype: bfloat16}`` variant.

Then STS-B equality: the largest absolute difference between sentence-transformers'
fp32 vectors and evalharness's (target 1e-5) and both Spearman correlations. Writes
``reports/bench/gpu.json``.

Without CUDA it says the GPU section is skipped (the GPU figures stay unmeasured) and
exits 0 without writing anything, unless ``--device cpu`` asks for the same measurement
on the CPU (how it is tested). Sized for one H100 in well under 6 minutes: the five
datasets hold about 27,000 texts, each configuration encodes them ``--repeats`` (3) times.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path("reports/bench/gpu.json")
FOLDERS = {"stsb": "stsb", "sick": "sick", "agnews": "agnews", "news20": "twentynewsgroups",
           "msmarco": "msmarco"}
DEFAULT_LIMIT = {"cuda": 20000, "cpu": 400}
EQUALITY_TARGET = 1e-5
WARMUP_TEXTS = 256


def find_folder(name: str, data_dir=None) -> Path | None:
    from evalharness.data.resolve import search_dirs

    for _origin, root in search_dirs(data_dir):
        folder = Path(root) / FOLDERS[name]
        if folder.is_dir():
            return folder
    return None


def load_texts(name: str, folder: Path, limit: int | None) -> list[str]:
    """Unique texts of a dataset's test split (MS MARCO: the passages), first ``limit``."""
    from evalharness.data import local

    if name in ("stsb", "sick"):
        data = local.load_pairs(folder, "test", name)
        texts = data.sentence1 + data.sentence2
    elif name == "msmarco":
        texts = local.load_retrieval(folder, "test", name).corpus_texts
    else:
        texts = local.load_labelled(folder, "test", name).texts
    uniq = list(dict.fromkeys(texts))
    return uniq[:limit] if limit else uniq


def stsb_pairs(folder: Path, limit: int | None):
    from evalharness.data import local

    data = local.load_pairs(folder, "test", "stsb")
    n = min(len(data.scores), limit) if limit else len(data.scores)
    return data.sentence1[:n], data.sentence2[:n], np.asarray(data.scores[:n])


def spearman(a: np.ndarray, b: np.ndarray, gold: np.ndarray) -> float:
    from scipy.stats import spearmanr

    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                      1e-12)
    return float(spearmanr(cos, gold).statistic)


class Bench:
    """The models, loaded once: sentence-transformers' own and evalharness's encoders."""

    def __init__(self, device: str):
        import torch
        from sentence_transformers import SentenceTransformer

        from evalharness.encoders.pool import build_encoder
        from evalharness.encoders.spec import parse_encoder_entry, parse_spec_string
        from evalharness.encoders.variants import build_variant, embedding_source
        from evalharness.encoders.weights import minilm_path

        self.torch = torch
        self.device = device
        self.st = SentenceTransformer(str(minilm_path()), device=device)
        self.st.eval()
        self.ours = build_encoder(parse_spec_string("minilm", f"minilm?device={device}"))
        self.ours.load()
        variant = build_variant(parse_encoder_entry(
            "minilm_bf16", {"base": "minilm", "dtype": "bfloat16"}), self.ours)
        variant.load()
        self.bf16 = embedding_source(variant)
        self.configs = {
            "st_encode_bs32": lambda t: self._st(t, 32),
            "st_encode_bs256": lambda t: self._st(t, 256),
            "evalharness_fp32": lambda t: self._embed(self.ours, t),
            "evalharness_bf16": lambda t: self._embed(self.bf16, t),
        }

    def _st(self, texts, batch_size):
        return self.st.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                              show_progress_bar=False)

    @staticmethod
    def _embed(encoder, texts):
        from evalharness.embeddings.planner import embed

        vectors, _ = embed(encoder, {"text": texts}, None)
        return vectors.get("text", texts)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def time(self, name: str, texts: list[str], repeats: int) -> tuple[dict, np.ndarray]:
        best, out = None, None
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            out = self.configs[name](texts)
            self.sync()
            took = time.perf_counter() - t0
            best = took if best is None else min(best, took)
        return {"seconds": round(best, 4), "texts_per_second": round(len(texts) / best, 1)}, out

    def warm_up(self, texts: list[str]) -> None:
        for fn in self.configs.values():
            fn(texts[:WARMUP_TEXTS])
        self.sync()


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("torch", "sentence_transformers", "transformers", "tokenizers"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:  # pragma: no cover
            pass
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if "
                   "torch sees one, else skip)")
    p.add_argument("--limit", type=int, default=None, help="unique texts per dataset "
                   f"(default: {DEFAULT_LIMIT['cuda']} on a GPU, {DEFAULT_LIMIT['cpu']} on CPU)")
    p.add_argument("--datasets", default=",".join(FOLDERS))
    p.add_argument("--repeats", type=int, default=None, help="timed runs per configuration, "
                   "the best counts (default: 3 on a GPU, 1 on CPU)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    device = args.device
    if device is None:
        if not torch.cuda.is_available():
            print("GPU section skipped: torch sees no CUDA device, so the GPU figures stay "
                  "unmeasured (python -m evalharness.bench.gpu --device cpu measures the same "
                  "on the CPU)", flush=True)
            return 0
        device = "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {device}, but torch sees no CUDA device", file=sys.stderr)
        return 2
    on_gpu = device.startswith("cuda")
    kind = "cuda" if on_gpu else "cpu"
    limit = args.limit or DEFAULT_LIMIT[kind]
    repeats = args.repeats or (3 if on_gpu else 1)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in FOLDERS]
    if unknown:
        print(f"error: unknown dataset(s) {unknown}; choose from {list(FOLDERS)}",
              file=sys.stderr)
        return 2

    t_start = time.perf_counter()
    texts_of: dict[str, list[str]] = {}
    for name in names:
        folder = find_folder(name, args.data_dir)
        if folder is None:
            print(f"  {name}: not found in the data folders, left out", flush=True)
            continue
        texts_of[name] = load_texts(name, folder, limit)
    if not texts_of:
        print("error: none of the datasets was found (see --data-dir)", file=sys.stderr)
        return 2

    bench = Bench(device)
    from evalharness.encoders.device import device_name

    first = next(iter(texts_of.values()))
    bench.warm_up(first)
    res = {
        "bench": "gpu", "device": device, "device_name": device_name(device),
        "measured_on_gpu": on_gpu, "versions": versions(),
        "model": "all-MiniLM-L6-v2 (embedded minilm), fp32 unless noted",
        "limit_per_dataset": limit, "repeats": repeats,
        "evalharness_batching": bench.ours.options.batching(bench.ours.torch_device),
        "token_path": "on" if bench.ours._tokens.off is None else f"off: {bench.ours._tokens.off}",
        "datasets": {},
    }
    for name, texts in texts_of.items():
        row = {"texts": len(texts), "mean_chars": round(float(np.mean([len(t) for t in texts])), 1)}
        for config in bench.configs:
            row[config], _ = bench.time(config, texts, repeats)
        base = row["st_encode_bs32"]["texts_per_second"]
        row["speedup_fp32_vs_st_bs32"] = round(row["evalharness_fp32"]["texts_per_second"] / base, 3)
        row["speedup_bf16_vs_st_bs32"] = round(row["evalharness_bf16"]["texts_per_second"] / base, 3)
        res["datasets"][name] = row
        print(f"  {name:8s} {len(texts):6d} texts  " + "  ".join(
            f"{c} {row[c]['texts_per_second']:>9.1f}/s" for c in bench.configs), flush=True)

    folder = find_folder("stsb", args.data_dir)
    if folder is not None:
        s1, s2, gold = stsb_pairs(folder, limit)
        sentences = list(dict.fromkeys(s1 + s2))
        st_vecs = bench._st(sentences, 32)
        ours = bench._embed(bench.ours, sentences)
        bf16 = bench._embed(bench.bf16, sentences)
        row = {i: k for k, i in enumerate(sentences)}

        def get(v, s):
            return v[[row[t] for t in s]]

        diff = float(np.abs(st_vecs - ours).max())
        res["stsb_equality"] = {
            "pairs": len(gold), "sentences": len(sentences), "max_abs_diff": diff,
            "target": EQUALITY_TARGET, "ok": diff <= EQUALITY_TARGET,
            "spearman_st": spearman(get(st_vecs, s1), get(st_vecs, s2), gold),
            "spearman_evalharness": spearman(get(ours, s1), get(ours, s2), gold),
            "spearman_evalharness_bf16": spearman(get(bf16, s1), get(bf16, s2), gold),
        }
        eq = res["stsb_equality"]
        print(f"  STS-B equality: max |diff| {diff:.2e} (target {EQUALITY_TARGET:g}), Spearman "
              f"ST {eq['spearman_st']:.5f} / evalharness {eq['spearman_evalharness']:.5f} / "
              f"bf16 {eq['spearman_evalharness_bf16']:.5f}", flush=True)
    res["seconds"] = round(time.perf_counter() - t_start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out} ({res['seconds']} s on {res['device_name']})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m evalharness.bench`` (``make bench``): every benchmark, one after another."""

from __future__ import annotations

import sys

from evalharness.bench import gpu, ray_engine, retrieval, scale, suite


def main() -> int:
    codes = []
    print("== retrieval search step (reports/bench/retrieval.json) ==", flush=True)
    codes.append(retrieval.main([]))
    print("\n== suite: floor vs evalharness vs mteb (reports/bench/suite.json) ==", flush=True)
    codes.append(suite.main(sys.argv[1:]))
    print("\n== corpus scale: 100k and 1M documents (reports/bench/scale.json) ==", flush=True)
    codes.append(scale.main([]))
    print("\n== ray engine vs local (reports/bench/ray_engine.json) ==", flush=True)
    codes.append(ray_engine.main(["--texts", "4000", "--encoders", "random,minilm"]))
    print("\n== GPU: sentence-transformers encode vs evalharness (reports/bench/gpu.json) ==",
          flush=True)
    codes.append(gpu.main([]))  # skipped (exit 0, nothing written) without CUDA
    return max(codes)


if __name__ == "__main__":
    raise SystemExit(main())

"""One run: suite -> plan -> embed once per encoder (cached) -> evaluate -> gate -> write."""

from __future__ import annotations

import gc
import platform
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from evalharness import __version__, registry
from evalharness.checks.latency import make_timer
from evalharness.checks.perturb_store import PerturbStore
from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.cache import EmbeddingCache
from evalharness.embeddings.facts import EncoderFacts, LazyLoad
from evalharness.embeddings.planner import collect, embed
from evalharness.encoders.spec import EncoderSpec, parse_encoder_entry
from evalharness.encoders.variants import (EncoderPool, check_bases, embedding_source,
                                           timing_target)
from evalharness.errors import EncoderError, EvalHarnessError, UserError
from evalharness.gate import evaluate_thresholds, overall_passed
from evalharness.memory import release_free_memory
from evalharness.results import ComponentResult, EncoderRecord, RunResults, save_results
from evalharness.retention import compute_retention
from evalharness.suite import Suite
from evalharness.tasks.base import EncoderContext

PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "transformers", "sentence-transformers",
            "mteb", "pydantic")


@dataclass
class RunOptions:
    data_dir: str | None = None
    output: str | None = None
    cache_dir: str | None = None
    no_cache: bool = False
    only: list[str] = field(default_factory=list)
    encoders: dict[str, str] = field(default_factory=dict)  # --encoder ID=SPEC overrides
    reports_root: str = "reports"
    write_report: bool = True
    log: object = print


@dataclass
class RunOutcome:
    results: RunResults
    folder: Path
    exit_code: int
    errors: list[str] = field(default_factory=list)


def environment() -> dict:
    from importlib import metadata

    pkgs = {}
    for name in PACKAGES:
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"evalharness": __version__, "python": platform.python_version(),
            "platform": platform.platform(), "packages": pkgs}


def encoder_specs(suite: Suite, overrides: dict[str, str]) -> dict[str, EncoderSpec]:
    specs = {eid: parse_encoder_entry(eid, raw, source=suite.source)
             for eid, raw in suite.encoders.items()}
    for eid, text in overrides.items():
        specs[eid] = parse_encoder_entry(eid, text, source="--encoder")
    check_bases(specs, source=suite.source)
    return specs


def build_components(suite: Suite, resolver: DatasetResolver, only: list[str]):
    comps = {}
    known = suite.components()
    for cid in only:
        if cid not in known:
            raise UserError(f"--only names '{cid}', which is not a task or check of the suite",
                            hint=registry.suggest(cid, known) or f"ids: {', '.join(known)}")
    for cid, (kind, cfg) in known.items():
        if only and cid not in only:
            continue
        cls = registry.resolve(kind, cfg.type)
        comps[cid] = cls(cid, cfg, resolver, seed=suite.seed, bootstrap=suite.bootstrap)
    return comps


def lazy_timer(encoder, loader: LazyLoad):
    """The latency check's ``timer(texts) -> seconds``; loads the model on first use."""
    built = []

    def timer(texts) -> float:
        if not built:
            loader()
            built.append(make_timer(*timing_target(encoder)))
        return built[0](texts)

    return timer


def new_run_id(suite_name: str) -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + suite_name


def run_suite(suite: Suite, opts: RunOptions | None = None) -> RunOutcome:
    opts = opts or RunOptions()
    log = opts.log or (lambda *a, **k: None)
    t_start = time.perf_counter()
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    base_dir = Path(suite.source).parent if suite.source else Path.cwd()
    specs = encoder_specs(suite, opts.encoders)

    cache = None if opts.no_cache else EmbeddingCache(opts.cache_dir)
    t0 = time.perf_counter()
    resolver = DatasetResolver(opts.data_dir, base_dir=base_dir)
    # derived texts (robustness perturbations) are cached beside the vectors
    resolver.perturb_store = PerturbStore(cache.root / "perturbed" if cache else None)
    comps = build_components(suite, resolver, opts.only)
    t_data = time.perf_counter() - t0

    t0 = time.perf_counter()
    needs = {cid: c.needs() for cid, c in comps.items()}
    wanted = collect(n for ns in needs.values() for n in ns)
    all_texts = sorted({t for texts in wanted.values() for t in texts})
    t_plan = time.perf_counter() - t0
    log(f"plan: {len(comps)} tasks/checks need {len(all_texts)} unique texts "
        f"({', '.join(f'{r}: {len(t)}' for r, t in wanted.items())})")

    results = RunResults(suite=suite.suite, created=created, environment=environment(),
                         datasets={k: v.record() for k, v in resolver.used.items()},
                         thresholds=[t.model_dump(exclude_none=True) for t in suite.thresholds])
    exit_codes = [0]
    errors: list[str] = []

    aside: dict[str, dict[str, object]] = {}  # cross-encoder checks: cid -> eid -> vectors
    for cid, comp in comps.items():
        other = getattr(comp, "other_encoder", None)
        if other and other not in specs:
            raise UserError(f"check '{cid}' compares with encoder '{other}', which is not an "
                            "encoder of this run",
                            hint=registry.suggest(other, specs) or f"encoders: {', '.join(specs)}")
    pool = EncoderPool(specs)  # a base with variants is loaded once, shared with them
    for eid, spec in specs.items():
        rec = EncoderRecord(spec=spec.spec_string())
        results.encoders[eid] = rec
        results.results[eid] = {}
        encoder = None
        if spec.type == "variant":
            rec.base = spec.target
        try:
            encoder = pool.build(eid)
            loader = LazyLoad(encoder)
            if not getattr(encoder, "defer_load", False):
                loader()  # torch models wait until a text misses the cache
            rec.seconds["load"] = round(loader.seconds or 0.0, 4)
            t0 = time.perf_counter()
            encoder.prepare(all_texts)
            loaded_before = loader.seconds or 0.0
            vectors, stats = embed(embedding_source(encoder), wanted, cache,
                                   before_encode=loader)
            if hasattr(encoder, "postprocess"):  # variants: output settings (int8, binary, dim)
                vectors = encoder.postprocess(vectors)
            total = time.perf_counter() - t0 - ((loader.seconds or 0.0) - loaded_before)
            rec.seconds["load"] = round(loader.seconds or 0.0, 4)
            rec.seconds["plan"] = round(t_plan + total - stats.encode_seconds, 4)
            rec.seconds["encode"] = round(stats.encode_seconds, 4)
            rec.cache = {"hits": stats.hits, "misses": stats.misses}
            if stats.texts_per_second:
                rec.texts_per_second = round(stats.texts_per_second, 2)
            rec.fingerprint = encoder.fingerprint()
            rec.dim = vectors.dim or encoder.dim
            log(f"{eid}: {stats.misses} texts encoded, {stats.hits} from cache "
                f"({rec.seconds['encode']:.1f}s)")
            if stats.misses:  # the encode pass's freed activations, before evaluate allocates
                release_free_memory()
        except Exception as exc:  # an encoder crashing is an encoder failure, not ours
            err = exc if isinstance(exc, EvalHarnessError) else \
                EncoderError(eid, f"{type(exc).__name__}: {exc}")
            rec.error = str(err)
            if err is not exc:
                rec.traceback = traceback.format_exc(limit=8)
            errors.append(str(err))
            exit_codes.append(err.exit_code)
            log(f"{eid}: FAILED: {err}")
            encoder = None
            pool.release(eid)
            gc.collect()
            continue

        # what the cache cannot answer (token counts, max_seq_length, the latency check's
        # timer, which is the one sanctioned encoder call of a component) loads the model
        facts = EncoderFacts(encoder, rec.fingerprint, cache, loader)
        ctx = EncoderContext(eid, rec.dim,
                             facts.token_lengths if facts.has_token_lengths else None,
                             facts.max_seq_length, timer=lazy_timer(encoder, loader),
                             load_seconds=facts.load_seconds)
        t_eval = 0.0
        for cid, comp in comps.items():
            if getattr(comp, "other_encoder", None):  # compared across encoders, after the loop
                aside.setdefault(cid, {})[eid] = comp.sample_vectors(vectors)
                continue
            t0 = time.perf_counter()
            try:
                res = comp.evaluate(vectors, ctx)
            except EvalHarnessError as exc:
                res = ComponentResult(type=comp.config.type, kind=comp.kind, error=str(exc))
                errors.append(f"{eid}/{cid}: {exc}")
                exit_codes.append(exc.exit_code)
            except Exception as exc:
                res = ComponentResult(type=comp.config.type, kind=comp.kind,
                                      error=f"{type(exc).__name__}: {exc}",
                                      traceback=traceback.format_exc(limit=8))
                errors.append(f"{eid}/{cid}: internal error: {type(exc).__name__}: {exc}")
                exit_codes.append(3)
            res.seconds = round(time.perf_counter() - t0, 4)
            t_eval += res.seconds
            results.results[eid][cid] = res
        t_eval -= (loader.seconds or 0.0) - rec.seconds["load"]  # a load the evaluate stage caused
        rec.seconds["load"] = round(loader.seconds or 0.0, 4)
        rec.seconds["evaluate"] = round(t_eval, 4)
        del encoder, vectors, ctx, facts, loader
        pool.release(eid)
        gc.collect()
        release_free_memory()

    for cid, by_encoder in aside.items():  # checks that compare two encoders' vectors
        comp = comps[cid]
        for eid, mine in by_encoder.items():
            t0 = time.perf_counter()
            theirs = by_encoder.get(comp.other_encoder)
            try:
                if theirs is None:
                    raise UserError(f"check '{cid}': encoder '{comp.other_encoder}' produced "
                                    "no vectors (it failed)")
                res = comp.evaluate_pair(mine, theirs, encoder=eid)
            except UserError as exc:
                res = ComponentResult(type=comp.config.type, kind=comp.kind, error=str(exc))
                if eid != comp.other_encoder:
                    errors.append(f"{eid}/{cid}: {exc}")
                    exit_codes.append(2)
            res.seconds = round(time.perf_counter() - t0, 4)
            results.results[eid][cid] = res

    retention = compute_retention(results, specs)
    if retention:
        results.retention = retention

    results.verdicts = evaluate_thresholds(results, suite.thresholds)
    results.passed = overall_passed(results.verdicts) and not errors
    if not overall_passed(results.verdicts):
        exit_codes.append(1)
    if len(results.encoders) > 1:  # paired comparisons (first encoder vs each other)
        from evalharness.compare import compare_encoders

        results.comparisons = compare_encoders(results, n_boot=suite.bootstrap, seed=suite.seed)

    folder = Path(opts.output) if opts.output else Path(opts.reports_root) / new_run_id(suite.suite)
    t0 = time.perf_counter()
    results.seconds = {"load_data": round(t_data, 4), "plan": round(t_plan, 4)}
    save_results(results, folder / "results.json")
    results.seconds["write"] = round(time.perf_counter() - t0, 4)
    results.seconds["total"] = round(time.perf_counter() - t_start, 4)
    save_results(results, folder / "results.json")

    code = 3 if 3 in exit_codes else 2 if 2 in exit_codes else 1 if 1 in exit_codes else 0
    return RunOutcome(results, folder, code, errors)

"""One run, as the stages of DESIGN.md's flow:

    load (suite -> datasets + components) -> plan (texts by role) ->
    per encoder: embed (cache, engine) -> evaluate (pure components) ->
    cross-encoder checks -> finish (retention, gates, comparisons) -> write (once)

``run_suite`` only sequences the stages; each stage is a function of its own, and an
encoder is only ever touched through its :class:`~evalharness.session.EncoderSession`.
"""

from __future__ import annotations

import platform
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from evalharness import __version__, registry
from evalharness.checks.perturb_store import PerturbStore
from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.cache import EmbeddingCache
from evalharness.embeddings.engines import Engine, ExecutionConfig, LocalEngine
from evalharness.embeddings.planner import collect
from evalharness.encoders.pool import EncoderPool
from evalharness.errors import EncoderError, EvalHarnessError, UserError
from evalharness.gate import evaluate_thresholds, overall_passed
from evalharness.results import RunResults, dumps_results, write_atomic
from evalharness.retention import compute_retention
from evalharness.session import EncoderSession
from evalharness.suite import Suite

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
    write_results: bool = True  # False: the Python API without an output folder
    execution: ExecutionConfig | None = None  # --engine/--ray-address; None: the suite's
    device: str | None = None  # --device for torch encoders (auto, cpu, cuda, cuda:N, mps)
    log: object = print


@dataclass
class RunOutcome:
    results: RunResults
    folder: Path
    exit_code: int
    errors: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """What the run must embed: role -> unique texts, and every unique text."""
    wanted: dict[str, list[str]]
    all_texts: list[str]
    seconds: float

    def summary(self, n_components: int) -> str:
        roles = ", ".join(f"{r}: {len(t)}" for r, t in self.wanted.items())
        return (f"plan: {n_components} tasks/checks need {len(self.all_texts)} unique texts "
                f"({roles})")


class Problems:
    """Errors met along the run; the exit code is the worst of them (3 > 2 > 1 > 0)."""

    def __init__(self):
        self.messages: list[str] = []
        self.codes: list[int] = [0]

    def add(self, message: str, code: int) -> None:
        self.messages.append(message)
        self.codes.append(code)

    @property
    def exit_code(self) -> int:
        return next((c for c in (3, 2, 1) if c in self.codes), 0)


@contextmanager
def timed(store: dict, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        store[key] = round(time.perf_counter() - t0, 4)


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


def with_device(suite: Suite, device: str | None) -> Suite:
    """``--device``: the torch device of every encoder that has one (variants follow
    their base). The device is not part of a fingerprint: vectors agree across devices."""
    if not device:
        return suite
    from dataclasses import replace as replaced

    from evalharness.encoders.device import check_syntax

    try:
        device = check_syntax(device)
    except ValueError as exc:
        raise UserError(str(exc), field="--device",
                        hint="auto, cpu, cuda, cuda:N or mps") from None
    specs = {}
    for eid, spec in suite.encoder_specs.items():
        fields = {} if spec.type in ("variant", "object") else \
            registry.resolve("encoder", spec.type).Options.model_fields
        specs[eid] = replaced(spec, options={**spec.options, "device": device}) \
            if "device" in fields else spec
    return suite.model_copy(update={"encoder_specs": specs})


def new_run_id(suite_name: str) -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + suite_name


# ------------------------------------------------------------------------------ stages
def load_components(suite: Suite, resolver: DatasetResolver, only: list[str]) -> dict:
    """Stage *load*: build every task/check (``--only`` keeps some), loading its data."""
    known = suite.components()
    for cid in only:
        if cid not in known:
            raise UserError(f"--only names '{cid}', which is not a task or check of the suite",
                            hint=registry.suggest(cid, known) or f"ids: {', '.join(known)}")
    comps = {}
    for cid, (kind, cfg) in known.items():
        if only and cid not in only:
            continue
        cls = registry.resolve(kind, cfg.type)
        comps[cid] = cls(cid, cfg, resolver, seed=suite.seed, bootstrap=suite.bootstrap)
    for cid, comp in comps.items():
        other = comp.other_encoder
        if other and other not in suite.encoder_specs:
            specs = suite.encoder_specs
            raise UserError(f"check '{cid}' compares with encoder '{other}', which is not an "
                            "encoder of this run",
                            hint=registry.suggest(other, specs) or f"encoders: {', '.join(specs)}")
    return comps


def make_engine(config: ExecutionConfig | None) -> Engine:
    """The engine a run asks for; Ray is imported only here, only when asked for."""
    if config is None or config.engine == "local":
        return LocalEngine()
    from evalharness.embeddings.ray_engine import RayEngine

    return RayEngine(config)


def prompted(comp):
    """The component's text needs, each with the component's prompt for its role."""
    prompts = comp.prompts()
    for need in comp.needs():
        yield replace(need, prompt=prompts.get(need.role)) if prompts else need


def make_plan(comps: dict) -> Plan:
    """Stage *plan*: every (role, text) the components need, de-duplicated."""
    t0 = time.perf_counter()
    wanted = collect(need for c in comps.values() for need in prompted(c))
    all_texts = sorted({t for texts in wanted.values() for t in texts})
    return Plan(wanted, all_texts, time.perf_counter() - t0)


def evaluate_encoder(session: EncoderSession, comps: dict, results: RunResults,
                     problems: Problems, aside: dict) -> None:
    """Stage *evaluate* for one encoder: each component is a pure function of
    (data, vectors); cross-encoder checks keep a sample of the vectors for later."""
    eid, vectors, ctx = session.eid, session.vectors, session.context()
    t_eval = 0.0
    for cid, comp in comps.items():
        prompts = comp.prompts()
        seen = vectors.with_prompts(prompts)
        if comp.other_encoder:
            aside.setdefault(cid, {})[eid] = comp.sample_vectors(seen)
            continue
        t0 = time.perf_counter()
        try:
            res = comp.evaluate(seen, ctx)
            if prompts:
                res.details["prompts"] = prompts
        except EvalHarnessError as exc:
            res = comp.error_result(str(exc))
            problems.add(f"{eid}/{cid}: {exc}", exc.exit_code)
        except Exception as exc:
            res = comp.error_result(f"{type(exc).__name__}: {exc}",
                                    traceback=traceback.format_exc(limit=8))
            problems.add(f"{eid}/{cid}: internal error: {type(exc).__name__}: {exc}", 3)
        res.seconds = round(time.perf_counter() - t0, 4)
        t_eval += res.seconds
        results.results[eid][cid] = res
    session.finish_evaluate(t_eval)


def run_encoder(session: EncoderSession, plan: Plan, comps: dict, results: RunResults,
                problems: Problems, aside: dict, log) -> None:
    """Stages *embed* then *evaluate* for one encoder; an encoder that fails is marked
    failed and the run goes on with the others."""
    eid = session.eid
    results.encoders[eid] = session.record
    results.results[eid] = {}
    try:
        session.open()
        _, stats = session.embed(plan.wanted, plan.all_texts, plan_seconds=plan.seconds)
        log(f"{eid}: {stats.misses} texts encoded, {stats.hits} from cache "
            f"({session.record.seconds['encode']:.1f}s)")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # an encoder crashing is an encoder failure, not ours
        err = exc if isinstance(exc, EvalHarnessError) else \
            EncoderError(eid, f"{type(exc).__name__}: {exc}")
        session.record.error = str(err)
        if err is not exc:
            session.record.traceback = traceback.format_exc(limit=8)
        problems.add(str(err), err.exit_code)
        log(f"{eid}: FAILED: {err}")
        session.close()
        return
    evaluate_encoder(session, comps, results, problems, aside)
    try:
        session.record.model = session.model_facts(plan.all_texts)
    except Exception as exc:  # noqa: BLE001  facts are a report detail, never a failure
        log(f"{eid}: could not read model facts: {type(exc).__name__}: {exc}")
    session.close()


def evaluate_pairs(comps: dict, aside: dict, results: RunResults, problems: Problems) -> None:
    """Stage *evaluate*, cross-encoder checks: after every encoder has embedded."""
    for cid, by_encoder in aside.items():
        comp = comps[cid]
        other = comp.other_encoder
        for eid, mine in by_encoder.items():
            t0 = time.perf_counter()
            theirs = by_encoder.get(other)
            try:
                if theirs is None:
                    raise UserError(f"check '{cid}': encoder '{other}' produced "
                                    "no vectors (it failed)")
                res = comp.evaluate_pair(mine, theirs, encoder=eid)
            except UserError as exc:
                res = comp.error_result(str(exc))
                if eid != other:
                    problems.add(f"{eid}/{cid}: {exc}", 2)
            res.seconds = round(time.perf_counter() - t0, 4)
            results.results[eid][cid] = res


def finish(results: RunResults, suite: Suite, problems: Problems) -> None:
    """Stage *finish*: variant retention, threshold verdicts, paired comparisons."""
    results.retention = compute_retention(results, suite.encoder_specs) or None
    results.verdicts = evaluate_thresholds(results, suite.thresholds)
    gates_passed = overall_passed(results.verdicts)
    results.passed = gates_passed and not problems.messages
    if not gates_passed:
        problems.codes.append(1)
    if len(results.encoders) > 1:  # paired comparisons (first encoder vs each other)
        from evalharness.compare import compare_encoders

        results.comparisons = compare_encoders(results, n_boot=suite.bootstrap, seed=suite.seed)


def write(results: RunResults, folder: Path, t_start: float) -> None:
    """Stage *write*: results.json, once, atomically. A folder that cannot be written is
    bad input (exit 2) that names it; the embedding cache keeps what was encoded."""
    t0 = time.perf_counter()
    # one serialisation: the write/total seconds are stamped into the text afterwards
    results.seconds["write"] = _WRITE_MARK
    results.seconds["total"] = _TOTAL_MARK
    text = dumps_results(results.model_dump(mode="json", exclude_none=False)) + "\n"
    results.seconds["write"] = round(time.perf_counter() - t0, 4)
    results.seconds["total"] = round(time.perf_counter() - t_start, 4)
    for mark, key in ((_WRITE_MARK, "write"), (_TOTAL_MARK, "total")):
        head, sep, tail = text.rpartition(f'"{key}": {mark!r}')
        text = head + f'"{key}": {results.seconds[key]!r}' + tail if sep else text
    try:
        write_atomic(folder / "results.json", text)
    except OSError as exc:
        raise UserError(f"cannot write the run's results into {folder}: {exc.strerror or exc}",
                        field="--output",
                        hint="choose a writable folder with free space (--output DIR); "
                             "the encoded vectors are kept in the embedding cache, so "
                             "re-running costs no encoding") from None


_WRITE_MARK, _TOTAL_MARK = -7.123456789, -8.123456789  # placeholders, never real seconds


def dataset_records(resolver: DatasetResolver, comps: dict) -> dict:
    """Each dataset used, with ``rows_used`` next to ``rows`` where ``limit`` /
    ``train_limit`` made the run use fewer rows than the file holds."""
    records = {k: v.record() for k, v in resolver.used.items()}
    caps: dict[str, list[int | None]] = {}
    for comp in comps.values():
        cfg = comp.config
        name = getattr(cfg, "dataset", None)
        if not isinstance(name, str):
            continue
        for split, cap in ((getattr(cfg, "split", "test"), getattr(cfg, "limit", None)),
                           (getattr(cfg, "train_split", None), getattr(cfg, "train_limit", None))):
            if split:
                caps.setdefault(name if split == "test" else f"{name}/{split}", []).append(cap)
    for key, rec in records.items():
        limits = caps.get(key)
        if not limits or rec.get("layout") == "retrieval":  # retrieval limits queries
            continue
        used = rec["rows"] if None in limits else min(rec["rows"], max(limits))
        rec["rows_used"] = used
    return records


def new_results(suite: Suite, resolver: DatasetResolver, comps: dict) -> RunResults:
    from evalharness.suite import resolved_config

    return RunResults(suite=suite.suite,
                      created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      environment=environment(),
                      datasets=dataset_records(resolver, comps),
                      thresholds=[t.model_dump(exclude_none=True) for t in suite.thresholds],
                      suite_config=resolved_config(suite, only=list(comps)))


# ------------------------------------------------------------------------------ the run
def run_suite(suite: Suite, opts: RunOptions | None = None) -> RunOutcome:
    opts = opts or RunOptions()
    log = opts.log or (lambda *a, **k: None)
    t_start = time.perf_counter()
    suite = with_device(suite.with_encoders(opts.encoders), opts.device)
    cache = None if opts.no_cache else EmbeddingCache(opts.cache_dir)
    stage_seconds: dict[str, float] = {}
    with timed(stage_seconds, "load_data"):
        base_dir = Path(suite.source).parent if suite.source else Path.cwd()
        resolver = DatasetResolver(opts.data_dir, base_dir=base_dir,  # perturbed texts
                                   perturb_store=PerturbStore(cache.root / "perturbed"
                                                              if cache else None))
        comps = load_components(suite, resolver, opts.only)
    plan = make_plan(comps)
    stage_seconds["plan"] = round(plan.seconds, 4)
    log(plan.summary(len(comps)))

    results = new_results(suite, resolver, comps)
    problems, aside = Problems(), {}
    pool = EncoderPool(suite.encoder_specs)  # a base with variants is loaded once
    execution = opts.execution or suite.execution
    engine = make_engine(execution)
    if execution.engine == "ray" and execution.address:
        engine.start()  # an unreachable cluster is exit 2 before anything is encoded
    try:
        for eid, spec in suite.encoder_specs.items():
            run_encoder(EncoderSession(eid, spec, pool, cache, engine), plan, comps,
                        results, problems, aside, log)
    finally:
        getattr(engine, "close", lambda: None)()
    evaluate_pairs(comps, aside, results, problems)
    finish(results, suite, problems)

    folder = Path(opts.output) if opts.output else Path(opts.reports_root) / new_run_id(suite.suite)
    results.seconds = dict(stage_seconds)
    if opts.write_results:
        write(results, folder, t_start)
    else:
        results.seconds["total"] = round(time.perf_counter() - t_start, 4)
    return RunOutcome(results, folder, problems.exit_code, problems.messages)

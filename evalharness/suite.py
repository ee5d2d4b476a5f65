"""Suite files: pydantic models (extra="forbid") and YAML loading with file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evalharness import registry
from evalharness.components import DatasetPath, DatasetRef  # noqa: F401  (suite API)
from evalharness.embeddings.engines import ExecutionConfig
from evalharness.errors import UserError
from evalharness.yamlio import Locations, line_of, load_yaml


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThresholdSpec(Strict):
    metric: str = Field(description="TASK_OR_CHECK_ID.METRIC_NAME")
    min: float | None = None
    max: float | None = None
    between: tuple[float, float] | None = None
    severity: Literal["error", "warn"] = "error"
    encoders: list[str] | None = None
    confidence: Literal["point", "lower", "upper"] = "point"

    @model_validator(mode="after")
    def _one_bound(self):
        if self.min is None and self.max is None and self.between is None:
            raise ValueError("a threshold needs 'min', 'max' or 'between'")
        if self.between is not None and (self.min is not None or self.max is not None):
            raise ValueError("use either 'between' or 'min'/'max', not both")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("'between' must be [low, high] with low <= high")
        if "." not in self.metric:
            raise ValueError("'metric' must be TASK_OR_CHECK_ID.METRIC_NAME, e.g. stsb.cosine_spearman")
        return self

    @property
    def target(self) -> str:
        return self.metric.split(".", 1)[0]

    @property
    def metric_name(self) -> str:
        return self.metric.split(".", 1)[1]


class Suite(Strict):
    suite: str
    description: str = ""
    seed: int = 42
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for confidence intervals")
    encoders: dict[str, str | dict[str, Any]]
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    thresholds: list[ThresholdSpec] = Field(default_factory=list)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig,
                                       description="where the embed stage encodes (local | ray)")
    track: str | None = Field(None, description="experiment tracker: mlflow or mlflow:URI")

    # resolved after validation (not part of the YAML)
    source: str | None = Field(None, exclude=True)
    encoder_specs: dict[str, Any] = Field(default_factory=dict, exclude=True)  # id -> EncoderSpec
    task_configs: dict[str, Any] = Field(default_factory=dict, exclude=True)
    check_configs: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="after")
    def _non_empty(self):
        if not self.encoders:
            raise ValueError("a suite needs at least one encoder")
        if not self.tasks and not self.checks:
            raise ValueError("a suite needs at least one task or check")
        clash = set(self.tasks) & set(self.checks)
        if clash:
            raise ValueError(f"ids used for both a task and a check: {sorted(clash)}")
        return self

    def with_encoders(self, overrides: dict[str, str], *, source: str = "--encoder") -> "Suite":
        """A copy whose encoders ``overrides`` adds or replaces (``--encoder ID=SPEC``),
        validated exactly as the suite file's own encoders."""
        if not overrides:
            return self
        from evalharness.encoders.spec import check_bases, parse_encoder_entry

        from evalharness.encoders.spec import EncoderSpec

        specs, raw = dict(self.encoder_specs), dict(self.encoders)
        for eid, value in overrides.items():
            if isinstance(value, (str, dict)):
                specs[eid] = parse_encoder_entry(eid, value, source=source)
                raw[eid] = value
            else:  # the Python API: an object with encode(), or a callable
                specs[eid] = EncoderSpec(eid, "object", None, {}, raw=value)
                raw[eid] = specs[eid].spec_string()
        check_bases(specs, source=source)
        return self.model_copy(update={"encoders": raw, "encoder_specs": specs})

    def components(self) -> dict[str, tuple[str, Any]]:
        """id -> (kind, config) for every task and check, in suite order."""
        out = {tid: ("task", cfg) for tid, cfg in self.task_configs.items()}
        out.update({cid: ("check", cfg) for cid, cfg in self.check_configs.items()})
        return out


def format_validation_error(exc: ValidationError, *, source: str, locs: Locations,
                            prefix: tuple = (), model=None) -> UserError:
    errors = exc.errors()
    err = errors[0]
    if err["type"] == "missing":  # a misspelt key ('encoderz') is the likelier cause
        parent = tuple(err["loc"][:-1])
        err = next((e for e in errors if e["type"] == "extra_forbidden"
                    and tuple(e["loc"][:-1]) == parent), err)
    loc = prefix + tuple(err["loc"])
    field = ".".join(str(p) for p in loc) or None
    line = line_of(locs, loc)
    etype = err["type"]
    hint = None
    if etype == "extra_forbidden":
        key = loc[-1]
        msg = f"unknown key '{key}'"
        if model is not None:
            known = _fields_at(model, err["loc"][:-1])
            if known:
                hint = registry.suggest(str(key), known) or f"allowed keys: {', '.join(known)}"
    elif etype == "missing":
        msg = f"missing required key '{loc[-1]}'"
    else:
        got = err.get("input")
        got_s = repr(got) if not isinstance(got, dict) else "a mapping"
        msg = f"{err['msg']} (got {got_s})"
    return UserError(msg, source=source, line=line, field=field, hint=hint)


def _fields_at(model, loc: tuple) -> list[str]:
    """Field names of the (sub)model at ``loc`` when it can be found."""
    import typing

    cur = model
    for part in loc:
        if isinstance(part, int) or cur is None:
            continue
        fields = getattr(cur, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        cur = None
        for cand in (ann, *typing.get_args(ann)):
            for sub in (cand, *typing.get_args(cand)):
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    cur = sub
    return sorted(getattr(cur, "model_fields", {}) or [])


def _expand_thresholds(raw: Any, base_dir: Path, source: str, locs: Locations,
                       seen: tuple[str, ...] = ()) -> list[tuple[dict, str, int | None]]:
    """Flatten ``include:`` entries. Returns (threshold dict, source file, line)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError("'thresholds' must be a list", source=source,
                        line=line_of(locs, ("thresholds",)), field="thresholds")
    out = []
    for i, item in enumerate(raw):
        line = line_of(locs, ("thresholds", i))
        if isinstance(item, dict) and set(item) == {"include"}:
            path = (base_dir / str(item["include"])).resolve()
            if str(path) in seen:
                raise UserError(f"include cycle through {path}", source=source, line=line)
            if not path.exists():
                raise UserError(f"included threshold file not found: {path}", source=source,
                                line=line, field=f"thresholds.{i}.include")
            data, sub_locs = load_yaml(path)
            if isinstance(data, dict) and "thresholds" in data:
                data = data["thresholds"]
                sub_locs = {k[1:]: v for k, v in sub_locs.items() if k[:1] == ("thresholds",)}
            sub_locs = {("thresholds",) + k: v for k, v in sub_locs.items()}
            out.extend(_expand_thresholds(data, path.parent, str(path), sub_locs,
                                          seen + (str(path),)))
        else:
            out.append((item, source, line))
    return out


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    source = str(path)
    data, locs = load_yaml(path)
    if not isinstance(data, dict):
        raise UserError("a suite file must be a YAML mapping with 'suite', 'encoders', "
                        "'tasks'/'checks' and optional 'thresholds'", source=source, line=1)
    return build_suite(data, locs, source=source, base_dir=path.parent)


def build_suite(data: dict, locs: Locations | None = None, *, source: str = "<suite>",
                base_dir: Path | None = None) -> Suite:
    locs = locs or {}
    base_dir = base_dir or Path.cwd()
    data = dict(data)
    thresholds = _expand_thresholds(data.get("thresholds"), base_dir, source, locs)
    data["thresholds"] = []
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source=source, locs=locs, model=Suite) from None
    suite.source = source

    for kind, table, store in (("task", suite.tasks, suite.task_configs),
                               ("check", suite.checks, suite.check_configs)):
        section = kind + "s"
        for cid, raw in table.items():
            if not isinstance(raw, dict) or "type" not in raw:
                raise UserError(f"{kind} '{cid}' needs a 'type'", source=source,
                                line=line_of(locs, (section, cid)), field=f"{section}.{cid}")
            cls = registry.resolve(kind, str(raw["type"]), source=source,
                                   line=line_of(locs, (section, cid, "type")),
                                   field=f"{section}.{cid}.type")
            try:
                store[cid] = cls.Config.model_validate(raw)
            except ValidationError as exc:
                raise format_validation_error(exc, source=source, locs=locs,
                                              prefix=(section, cid), model=cls.Config) from None

    from evalharness.encoders.spec import check_bases, parse_encoder_entry

    specs = {eid: parse_encoder_entry(eid, raw, source=source,
                                      line=line_of(locs, ("encoders", eid)))
             for eid, raw in suite.encoders.items()}
    check_bases(specs, source=source)
    suite.encoder_specs = specs

    parsed = []
    for item, src, line in thresholds:
        try:
            parsed.append(ThresholdSpec.model_validate(item))
        except ValidationError as exc:
            err = format_validation_error(exc, source=src, locs={}, model=ThresholdSpec)
            err.line = line
            raise UserError(err.message, source=src, line=line, field=err.field,
                            hint=err.hint) from None
        check_threshold_metric(suite, parsed[-1], source=src, line=line)
    suite.thresholds = parsed
    return suite


def resolved_config(suite: Suite, only: list[str] | None = None) -> dict:
    """The suite as it ran: every option of every encoder, task and check, defaults
    included (what results.json records, so a number can be traced to its settings)."""
    from evalharness.encoders.spec import VariantOptions

    encoders = {}
    for eid, spec in suite.encoder_specs.items():
        if spec.type == "variant":
            opts = VariantOptions.model_validate(spec.options).model_dump()
        elif spec.type == "object":
            opts = {}
        else:
            cls = registry.resolve("encoder", spec.type)
            opts = cls.Options.model_validate(spec.options).model_dump(mode="json")
        encoders[eid] = {"type": spec.type, "target": spec.target, "spec": spec.spec_string(),
                         "options": opts}
    comps = {cid: {"kind": kind, **cfg.model_dump(mode="json")}
             for cid, (kind, cfg) in suite.components().items()
             if only is None or cid in only}
    return {"suite": suite.suite, "source": suite.source, "seed": suite.seed,
            "bootstrap": suite.bootstrap, "encoders": encoders, "components": comps,
            "execution": suite.execution.model_dump(mode="json"), "track": suite.track}


def metric_catalog(suite: Suite) -> dict[str, list[str]]:
    """id -> metric names that task/check produces."""
    out = {}
    for cid, (kind, cfg) in suite.components().items():
        cls = registry.resolve(kind, cfg.type)
        out[cid] = list(cls.metric_names(cfg))
    return out


def check_threshold_metric(suite: Suite, th: ThresholdSpec, *, source: str,
                           line: int | None) -> None:
    catalog = metric_catalog(suite)
    full = [f"{cid}.{m}" for cid, names in catalog.items() for m in names]
    if th.metric not in full:
        hint = registry.suggest(th.metric, full) or (
            f"metrics of this suite: {', '.join(full[:12])}{' ...' if len(full) > 12 else ''}")
        raise UserError(f"threshold names metric '{th.metric}', which no task or check of "
                        f"this suite produces", source=source, line=line, field="metric",
                        hint=hint)
    if th.encoders:
        unknown = [e for e in th.encoders if e not in suite.encoders]
        if unknown:
            raise UserError(f"threshold filters on unknown encoder(s) {unknown}", source=source,
                            line=line, field="encoders",
                            hint=f"encoders of this suite: {', '.join(suite.encoders)}")

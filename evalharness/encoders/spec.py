"""Encoder spec strings (``st:NAME?k=v``) and YAML mappings -> ``EncoderSpec``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evalharness import registry
from evalharness.errors import UserError

# which mapping key carries the spec string's target, per encoder type
TARGET_KEY = {"st": "model", "hf": "model", "mteb": "model", "py": "callable", "http": "url",
              "minilm": "model"}


@dataclass
class EncoderSpec:
    id: str
    type: str
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    raw: Any = None

    def spec_string(self) -> str:
        if self.type == "object":
            return f"object:{type(self.raw).__name__}"
        s = self.type
        if self.target and self.type != "minilm":
            s += f":{self.target}"
        if self.options:
            s += "?" + "&".join(f"{k}={v}" for k, v in sorted(self.options.items())
                                if k not in ("api_key_env",))
        return s


_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _coerce(value: str) -> Any:
    """Numbers, booleans and null from a query string; everything else stays text."""
    if _SCIENTIFIC.fullmatch(value.strip()):  # YAML 1.1 reads "1e11" as text
        return float(value)
    try:
        out = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return out if isinstance(out, (bool, int, float)) or out is None and value == "null" \
        else value


def parse_spec_string(eid: str, text: str, *, source=None, line=None) -> EncoderSpec:
    text = text.lstrip()
    head, _, query = text.partition("?")
    head = head.strip()
    if head.lower().startswith(("http://", "https://")):  # a bare URL: an http encoder
        etype, target = "http", head
    elif ":" in head:
        etype, _, target = head.partition(":")
    else:
        etype, target = head, None
    options = {k: _coerce(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    if etype not in registry.ENCODERS:
        hint = registry.suggest(etype, registry.ENCODERS) or (
            "spec strings look like st:NAME, hf:NAME?pooling=mean, tfidf-lsa?dim=256, "
            "random?dim=384&seed=0, py:pkg.module:fn, minilm")
        raise UserError(f"unknown encoder type '{etype}' in spec '{text}'", source=source,
                        line=line, field=f"encoders.{eid}", hint=hint)
    return EncoderSpec(eid, etype, target or None, options, raw=text)


def parse_encoder_entry(eid: str, raw: Any, *, source=None, line=None) -> EncoderSpec:
    if isinstance(raw, str):
        spec = parse_spec_string(eid, raw, source=source, line=line)
    elif isinstance(raw, dict) and "base" in raw:  # a deployment variant of another encoder
        return parse_variant(eid, raw, source=source, line=line)
    elif isinstance(raw, dict):
        data = dict(raw)
        etype = data.pop("type", None)
        if etype is None:
            raise UserError("an encoder mapping needs a 'type' (st, hf, tfidf-lsa, random, py, "
                            "minilm, ...)", source=source, line=line, field=f"encoders.{eid}")
        etype = str(etype)
        if etype not in registry.ENCODERS:
            hint = registry.suggest(etype, registry.ENCODERS) or (
                f"known encoder types: {', '.join(sorted(registry.ENCODERS))}")
            raise UserError(f"unknown encoder type '{etype}'", source=source, line=line,
                            field=f"encoders.{eid}.type", hint=hint)
        key = TARGET_KEY.get(etype)
        target = data.pop(key, None) if key else None
        spec = EncoderSpec(eid, etype, None if target is None else str(target), data, raw=raw)
    else:
        raise UserError(f"an encoder must be a spec string or a mapping, got {type(raw).__name__}",
                        source=source, line=line, field=f"encoders.{eid}")
    validate_options(spec, source=source, line=line)
    return spec


def options_error(exc: ValidationError, model, *, owner: str, known_label: str,
                  source=None, line=None, field=None) -> UserError:
    """The one mapping of an options model's ValidationError to a UserError: an unknown
    option (with a did-you-mean), or the bad value of a known one."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        known = sorted(model.model_fields)
        sep = " " if known_label.endswith(",") else ": "
        return UserError(f"unknown option '{key}' for {owner}", source=source, line=line,
                         field=field, hint=registry.suggest(key, known) or
                         f"{known_label}{sep}{', '.join(known)}")
    msg = err["msg"].removeprefix("Value error, ")
    if not key:  # a model-level rule (e.g. a variant needs at least one setting)
        return UserError(msg, source=source, line=line, field=field)
    return UserError(f"option '{key}': {msg} (got {err.get('input')!r})", source=source,
                     line=line, field=field)


def validate_options(spec: EncoderSpec, *, source=None, line=None):
    cls = registry.resolve("encoder", spec.type, source=source, line=line,
                           field=f"encoders.{spec.id}")
    try:
        opts = cls.Options.model_validate(spec.options)
    except ValidationError as exc:
        raise options_error(exc, cls.Options, owner=f"encoder type '{spec.type}'",
                            known_label=f"options of '{spec.type}'", source=source,
                            line=line, field=f"encoders.{spec.id}") from None
    if getattr(cls, "needs_target", False) and not spec.target:
        raise UserError(f"encoder type '{spec.type}' needs a target "
                        f"('{TARGET_KEY.get(spec.type, 'model')}' or '{spec.type}:TARGET')",
                        source=source, line=line, field=f"encoders.{spec.id}")
    check = getattr(cls, "check_target", None)  # e.g. http: a URL; py: module:callable
    problem = check(spec.target) if check is not None and spec.target else None
    if problem:
        message, hint = problem
        raise UserError(message, source=source, line=line, field=f"encoders.{spec.id}",
                        hint=hint)
    return opts


# -- variants: {base: ID, dtype|quantize|embedding|truncate_dim} (encoders/variants.py) ---
VARIANT_TORCH_TYPES = ("st", "minilm", "hf", "mteb")
MODEL_SETTINGS = ("dtype", "quantize")
OUTPUT_SETTINGS = ("truncate_dim", "embedding")


class VariantOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    quantize: Literal["dynamic-int8"] | None = None
    embedding: Literal["float32", "int8", "binary"] | None = None
    truncate_dim: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _valid(self):
        if not self.settings():
            raise ValueError("a variant needs at least one of dtype, quantize, embedding, "
                             "truncate_dim")
        if self.quantize and self.dtype not in (None, "float32"):
            raise ValueError("quantize: dynamic-int8 works on float32 weights; do not combine "
                             "it with dtype")
        return self

    def settings(self) -> dict:
        return {k: v for k, v in self.model_dump().items()
                if v is not None and not (k == "embedding" and v == "float32")
                and not (k == "dtype" and v == "float32")}

    @property
    def model_level(self) -> bool:
        return any(k in self.settings() for k in MODEL_SETTINGS)


def parse_variant(eid: str, data: dict, *, source=None, line=None):
    """``{base: ID, ...}`` -> an EncoderSpec of type ``variant`` (target: the base id)."""
    data = dict(data)
    if "type" in data:
        raise UserError("a variant takes its type from its base: give either 'type' or "
                        "'base', not both", source=source, line=line, field=f"encoders.{eid}")
    base = data.pop("base")
    if not isinstance(base, str) or not base:
        raise UserError("'base' must be the id of another encoder of the suite",
                        source=source, line=line, field=f"encoders.{eid}.base")
    try:
        VariantOptions.model_validate(data)
    except ValidationError as exc:
        raise options_error(exc, VariantOptions, owner="an encoder variant",
                            known_label="variant options: base,", source=source, line=line,
                            field=f"encoders.{eid}") from None
    return EncoderSpec(eid, "variant", base, data, raw={"base": base, **data})


def check_bases(specs: dict, *, source=None) -> None:
    """Every variant names an existing, non-variant encoder; model settings need torch."""
    for eid, spec in specs.items():
        if spec.type != "variant":
            continue
        base = specs.get(spec.target)
        if base is None:
            others = [e for e in specs if e != eid]
            raise UserError(f"variant '{eid}' names base '{spec.target}', which is not an "
                            f"encoder of the suite", source=source, field=f"encoders.{eid}.base",
                            hint=registry.suggest(spec.target, others) or
                            f"encoders: {', '.join(others)}")
        if base.type == "variant":
            raise UserError(f"variant '{eid}' names another variant ('{spec.target}') as its "
                            "base", source=source, field=f"encoders.{eid}.base",
                            hint="give the settings of both in one variant of the base model")
        opts = VariantOptions.model_validate(spec.options)
        if opts.model_level and base.type not in VARIANT_TORCH_TYPES:
            raise UserError(f"variant '{eid}': dtype/quantize need a torch encoder "
                            f"({', '.join(VARIANT_TORCH_TYPES)}), but base '{spec.target}' is "
                            f"'{base.type}'", source=source, field=f"encoders.{eid}",
                            hint="output settings (embedding, truncate_dim) work on any base")

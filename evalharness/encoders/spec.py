"""Encoder spec strings (``st:NAME?k=v``) and YAML mappings -> ``EncoderSpec``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import yaml
from pydantic import ValidationError

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
        s = self.type
        if self.target and self.type != "minilm":
            s += f":{self.target}"
        if self.options:
            s += "?" + "&".join(f"{k}={v}" for k, v in sorted(self.options.items())
                                if k not in ("api_key_env",))
        return s


def _coerce(value: str) -> Any:
    """Numbers, booleans and null from a query string; everything else stays text."""
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
    if ":" in head:
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
        from evalharness.encoders.variants import parse_variant

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


def validate_options(spec: EncoderSpec, *, source=None, line=None):
    cls = registry.resolve("encoder", spec.type, source=source, line=line,
                           field=f"encoders.{spec.id}")
    try:
        opts = cls.Options.model_validate(spec.options)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = sorted(cls.Options.model_fields)
            hint = registry.suggest(key, known) or f"options of '{spec.type}': {', '.join(known)}"
            raise UserError(f"unknown option '{key}' for encoder type '{spec.type}'",
                            source=source, line=line, field=f"encoders.{spec.id}",
                            hint=hint) from None
        raise UserError(f"option '{key}': {err['msg']} (got {err.get('input')!r})",
                        source=source, line=line, field=f"encoders.{spec.id}") from None
    if getattr(cls, "needs_target", False) and not spec.target:
        raise UserError(f"encoder type '{spec.type}' needs a target "
                        f"('{TARGET_KEY.get(spec.type, 'model')}' or '{spec.type}:TARGET')",
                        source=source, line=line, field=f"encoders.{spec.id}")
    return opts


def build_encoder(spec: EncoderSpec):
    cls = registry.resolve("encoder", spec.type)
    opts = cls.Options.model_validate(spec.options)
    return cls(spec.id, spec.target, opts, spec_string=spec.spec_string())

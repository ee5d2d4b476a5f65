"""Any Python callable as an encoder (``py:package.module:callable``).

The target is a function ``f(texts) -> array`` (an optional ``role`` keyword is passed
when the function accepts it), an object with an ``encode`` method, or a class that
is instantiated with no arguments and then used as such an object.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys

import numpy as np

from evalharness.encoders.base import BaseOptions, EncoderBase, fingerprint_of
from evalharness.errors import UserError


SIGNATURE = "f(texts: list[str]) -> array (n, dim)"


def takes_role(fn) -> bool:
    """Whether ``fn`` accepts a ``role`` keyword (named, or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "role" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def as_array(out) -> np.ndarray:
    """A callable's output as a numpy array (torch tensors detached and moved to CPU)."""
    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out)


class PythonOptions(BaseOptions):
    version: str = ""  # bump to invalidate cached vectors when the callable changes behaviour


def target_problem(target: str) -> tuple[str, str] | None:
    """(message, hint) when ``target`` is not ``package.module:callable`` (validate)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr or ":" in attr:
        return (f"py encoder target must be 'package.module:callable', got '{target}'",
                f"e.g. py:mypkg.embed:encode, where encode is {SIGNATURE}")
    return None


class PythonEncoder(EncoderBase):
    Options = PythonOptions
    needs_target = True
    check_target = staticmethod(target_problem)

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self._fn = None
        self._source_digest = ""

    def load(self) -> None:
        if self._fn is not None:
            return
        module_name, _, attr = (self.target or "").partition(":")
        if not module_name or not attr:
            raise UserError(f"py encoder target must be 'package.module:callable', got "
                            f"'{self.target}'", field=f"encoders.{self.name}")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserError(f"cannot import module '{module_name}': {exc}",
                            field=f"encoders.{self.name}",
                            hint="is it installed or on PYTHONPATH?") from None
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise UserError(f"module '{module_name}' has no attribute '{attr}'",
                                field=f"encoders.{self.name}")
            obj = getattr(obj, part)
        if inspect.isclass(obj):
            obj = obj()
        target = obj.encode if hasattr(obj, "encode") else obj
        if not callable(target):
            raise UserError(f"'{self.target}' is neither callable nor has an encode method",
                            field=f"encoders.{self.name}")
        self._fn = (target, takes_role(target))
        src = getattr(sys.modules.get(module_name), "__file__", None)
        if src:
            with open(src, "rb") as fh:
                self._source_digest = hashlib.sha256(fh.read()).hexdigest()

    def fingerprint(self) -> str:
        self.load()
        o = self.options
        return fingerprint_of("py", 1, self.target, self._source_digest, o.version,
                              o.query_prefix, o.document_prefix, o.text_prefix)

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        self.load()
        fn, takes_role = self._fn
        texts = self.with_prefix(texts, role)
        try:
            out = fn(texts, role=role) if takes_role else fn(texts)
        except TypeError as exc:  # a callable of another shape (e.g. os.path:basename)
            raise UserError(f"encoder '{self.name}' (py:{self.target}) cannot be called as "
                            f"{SIGNATURE}: TypeError: {exc}", field=f"encoders.{self.name}",
                            hint="point py: at a function f(texts) (optionally with a "
                                 "'role' keyword), an object with such an encode method, or "
                                 "a class whose instances have one") from None
        if isinstance(out, (str, bytes)) or np.ndim(out) == 0:
            raise UserError(f"encoder '{self.name}' (py:{self.target}) returned "
                            f"{type(out).__name__}, not an array: expected {SIGNATURE}",
                            field=f"encoders.{self.name}")
        arr = as_array(out)
        if arr.ndim == 2 and self._dim is None:
            self._dim = arr.shape[1]
        return arr

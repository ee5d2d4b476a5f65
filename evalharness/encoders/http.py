"""OpenAI-compatible embedding endpoints (``http:URL?model=NAME``), standard library only.

Request: ``POST {url}`` with JSON ``{"model": MODEL, "input": [texts...]}`` (plus
``"dimensions"`` when set); response ``{"data": [{"embedding": [...], "index": i}, ...]}``,
rows put back in ``index`` order. The URL may be the endpoint itself (``.../embeddings``),
an API root ending in ``/v1`` (``/embeddings`` is appended) or a bare host
(``/v1/embeddings`` is appended). ``http://HOST/v1?model=NAME`` (the URL alone) is the same
encoder as ``http:http://HOST/v1?model=NAME``; a URL without a scheme gets ``http://``.

Options: ``model``, ``batch_size`` (texts per request), ``timeout`` (seconds per request),
``max_retries``, ``backoff`` (first delay, seconds), ``max_backoff`` (cap of every delay,
including a server's ``Retry-After``), ``seed`` (of the jitter), ``api_key_env`` (NAME of
an environment variable holding the key, sent as ``Authorization: Bearer``),
``dimensions``.

Retries: 429 and 5xx responses, timeouts and connection errors are retried up to
``max_retries`` times. Delay before retry ``a`` (0-based) is ``min(max_backoff, backoff *
2**a)`` with "equal jitter" (half fixed, half uniform from a ``random.Random(seed)``), so a
run's delays are reproducible; a ``Retry-After`` header (seconds or an HTTP date) replaces
it, capped at ``max_backoff``. Other 4xx responses fail at once.

The API key is read from the environment at request time and kept only in the request
header: it is not an option value (only the variable's name is), not part of the
fingerprint or the spec string, and is masked (``***``) in every error message.
A malformed JSON body, a missing ``data`` list, or a wrong number of vectors is an
``EncoderError`` naming the encoder (exit code 3).
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import socket
import time
import urllib.error
import urllib.request

import numpy as np
from pydantic import Field

from evalharness.encoders.base import BaseOptions, EncoderBase, fingerprint_of
from evalharness.errors import EncoderError, UserError

RETRY_STATUS = (429, 500, 502, 503, 504)


class HttpOptions(BaseOptions):
    model: str | None = None
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    max_retries: int = Field(4, ge=0)
    backoff: float = Field(0.5, ge=0, description="first retry delay, seconds")
    max_backoff: float = Field(30.0, ge=0, description="cap of every delay and Retry-After")
    seed: int = 0
    api_key_env: str | None = Field(None, description="NAME of the env var holding the key")
    dimensions: int | None = Field(None, ge=1)


def with_scheme(target: str) -> str:
    """``target`` with ``http://`` in front when it names no scheme (``host:port/v1``)."""
    t = target.strip()
    return t if "://" in t else "http://" + t.lstrip("/")


def target_problem(target: str) -> tuple[str, str] | None:
    """(message, hint) when ``target`` cannot be an endpoint URL, else None (validate)."""
    from urllib.parse import urlsplit

    working = "http://HOST:PORT/v1?model=NAME (or http:http://HOST:PORT/v1?model=NAME)"
    parts = urlsplit(with_scheme(target))
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return (f"'{target}' is not an http(s) URL of an embeddings endpoint",
                f"write the encoder as {working}")
    try:
        parts.port
    except ValueError:
        return f"'{target}' has an invalid port", f"write the encoder as {working}"
    return None


def endpoint_url(target: str) -> str:
    url = with_scheme(target).rstrip("/")
    if url.endswith("/embeddings"):
        return url
    if url.endswith("/v1"):
        return url + "/embeddings"
    return url + "/v1/embeddings"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, backoff: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: d/2 + U(0, d/2), d = min(cap, backoff*2^a)."""
    d = min(cap, backoff * (2 ** attempt))
    return d / 2 + rng.uniform(0, d / 2)


def parse_embeddings(name: str, body: bytes, n_expected: int, *, offset: int = 0) -> np.ndarray:
    """The vectors of an OpenAI-style response body, in ``index`` order."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EncoderError(name, f"the endpoint returned malformed JSON ({exc})",
                           row=offset) from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise EncoderError(name, "the endpoint's response has no 'data' list", row=offset)
    if len(data) != n_expected:
        raise EncoderError(name, f"the endpoint returned {len(data)} vectors for "
                                 f"{n_expected} texts", row=offset + min(len(data), n_expected))
    try:
        if all(isinstance(d, dict) and "index" in d for d in data):
            data = sorted(data, key=lambda d: int(d["index"]))
            idx = [int(d["index"]) for d in data]
            if idx != list(range(n_expected)):
                raise EncoderError(name, f"the endpoint's 'index' values are not 0..{n_expected - 1}",
                                   row=offset)
        rows = [d["embedding"] for d in data]
        arr = np.asarray(rows, dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise EncoderError(name, f"the endpoint's 'data' items are not "
                                 f"{{'embedding': [numbers], 'index': i}} ({type(exc).__name__}: "
                                 f"{exc})", row=offset) from None
    if arr.ndim != 2:
        raise EncoderError(name, "the endpoint's embeddings do not all have the same length",
                           row=offset)
    return arr


class HttpEncoder(EncoderBase):
    Options = HttpOptions
    needs_target = True
    check_target = staticmethod(target_problem)

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self.url = endpoint_url(target) if target else None
        self._rng = random.Random(options.seed)
        self.sleep = time.sleep  # replaceable in tests
        self.requests = 0
        self.retries = 0

    # -- secrets ---------------------------------------------------------------
    def _key(self) -> str | None:
        env = self.options.api_key_env
        if not env:
            return None
        key = os.environ.get(env)
        if not key:
            raise UserError(f"encoder '{self.name}': api_key_env names the environment "
                            f"variable {env}, which is not set",
                            field=f"encoders.{self.name}.api_key_env",
                            hint=f"export {env}=... before the run")
        return key

    def _mask(self, text: str) -> str:
        env = self.options.api_key_env
        key = os.environ.get(env) if env else None
        return text.replace(key, "***") if key else text

    def load(self) -> None:
        self._key()  # fail early, with a message, when the key's variable is missing

    def fingerprint(self) -> str:
        o = self.options
        return fingerprint_of("http", 1, self.url, o.model, o.dimensions, o.query_prefix,
                              o.document_prefix, o.text_prefix)

    # -- requests ----------------------------------------------------------------
    def _request(self, texts: list[str], offset: int) -> bytes:
        o = self.options
        body = {"model": o.model, "input": texts}
        if o.dimensions:
            body["dimensions"] = o.dimensions
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last = ""
        for attempt in range(o.max_retries + 1):
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            wait = None
            self.requests += 1
            try:
                with urllib.request.urlopen(req, timeout=o.timeout) as resp:
                    return resp.read()
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:200].decode("utf-8", "replace") if exc.fp else ""
                last = f"HTTP {exc.code} {exc.reason}: {detail}".strip()
                if exc.code not in RETRY_STATUS:
                    raise EncoderError(self.name, self._mask(f"{self.url} answered {last}"),
                                       row=offset) from None
                wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers
                                           else None)
            except (TimeoutError, socket.timeout):
                last = f"no response within {o.timeout:g}s (timeout)"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    last = f"no response within {o.timeout:g}s (timeout)"
                else:
                    last = f"connection failed: {exc.reason}"
            except (ConnectionError, OSError) as exc:
                last = f"connection failed: {exc}"
            if attempt == o.max_retries:
                break
            delay = backoff_delay(attempt, o.backoff, o.max_backoff, self._rng)
            if wait is not None:
                delay = min(wait, o.max_backoff)
            self.retries += 1
            self.sleep(delay)
        raise EncoderError(self.name, self._mask(
            f"{self.url} failed after {o.max_retries + 1} attempt(s): {last}"), row=offset)

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        texts = self.with_prefix(texts, role)
        bs = self.options.batch_size
        out = []
        for start in range(0, len(texts), bs):
            batch = texts[start:start + bs]
            body = self._request(batch, start)
            out.append(parse_embeddings(self.name, body, len(batch), offset=start))
        if not out:
            return np.zeros((0, self.dim or 1), dtype=np.float32)
        dims = {a.shape[1] for a in out}
        if len(dims) > 1:
            raise EncoderError(self.name, f"the endpoint's vector dimension changed between "
                                          f"requests ({sorted(dims)})")
        arr = np.concatenate(out)
        if self._dim is None:
            self._dim = arr.shape[1]
        return arr


__all__ = ["HttpEncoder", "HttpOptions", "backoff_delay", "endpoint_url", "parse_embeddings",
           "retry_after_seconds"]

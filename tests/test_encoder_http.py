"""HTTP (OpenAI-compatible) encoder against a local server started by the test."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from evalharness.cli import main
from evalharness.encoders.http import (HttpEncoder, HttpOptions, backoff_delay, endpoint_url,
                                       parse_embeddings, retry_after_seconds)
from evalharness.errors import EncoderError

KEY = "sk-test-5f1c9e0d-never-log-me"
DIM = 8


def fake_vector(text: str) -> list[float]:
    """Deterministic vector per text; close texts share nothing, but it is a valid model."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).round(6).tolist()


class Server:
    """A tiny /v1/embeddings server; ``mode`` picks the behaviour."""

    def __init__(self, mode: str = "ok", *, fail_first: int = 0, retry_after: str | None = None,
                 delay: float = 0.0):
        self.mode = mode
        self.fail_first = fail_first
        self.retry_after = retry_after
        self.delay = delay
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n))
                outer.requests.append(body)
                outer.auth.append(self.headers.get("Authorization"))
                count = len(outer.requests)
                if outer.delay:
                    time.sleep(outer.delay)
                if count <= outer.fail_first:
                    self.send_response(429)
                    if outer.retry_after is not None:
                        self.send_header("Retry-After", outer.retry_after)
                    self.end_headers()
                    self.wfile.write(b'{"error": "rate limited"}')
                    return
                if outer.mode == "unauthorized":
                    self.send_response(401)
                    self.end_headers()
                    # a careless server echoing the credentials it was given
                    self.wfile.write(f"bad key {self.headers.get('Authorization')}".encode())
                    return
                texts = body["input"]
                if outer.mode == "malformed":
                    payload = b'{"data": [{"embedding": [0.1, 0.2'
                else:
                    data = [{"object": "embedding", "index": i, "embedding": fake_vector(t)}
                            for i, t in enumerate(texts)]
                    data.reverse()  # servers may answer out of order: 'index' decides
                    if outer.mode == "short":
                        data = data[:-1]
                    payload = json.dumps({"object": "list", "data": data,
                                          "model": body.get("model")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- unit level -----------------------------------------------------------------------
def test_endpoint_url_forms():
    assert endpoint_url("http://h:1") == "http://h:1/v1/embeddings"
    assert endpoint_url("http://h:1/v1/") == "http://h:1/v1/embeddings"
    assert endpoint_url("http://h:1/api/embeddings") == "http://h:1/api/embeddings"


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("garbage") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= retry_after_seconds(future) <= 61


def test_backoff_is_exponential_capped_and_seeded():
    a = [backoff_delay(i, 0.5, 4.0, random.Random(7)) for i in range(6)]
    b = [backoff_delay(i, 0.5, 4.0, random.Random(7)) for i in range(6)]
    assert a == b
    for i, d in enumerate(a):
        full = min(4.0, 0.5 * 2 ** i)
        assert full / 2 <= d <= full


def test_parse_embeddings_orders_by_index_and_checks_count():
    body = json.dumps({"data": [{"index": 1, "embedding": [3, 4]},
                                {"index": 0, "embedding": [1, 2]}]}).encode()
    np.testing.assert_array_equal(parse_embeddings("e", body, 2), [[1, 2], [3, 4]])
    with pytest.raises(EncoderError, match="encoder 'e'.*returned 2 vectors for 3 texts"):
        parse_embeddings("e", body, 3)
    with pytest.raises(EncoderError, match="malformed JSON"):
        parse_embeddings("e", b"{nope", 2)


def _encoder(url, **opts):
    return HttpEncoder("api", url, HttpOptions(**{"model": "m", **opts}), spec_string="http:x")


def test_encode_roundtrip_batches_and_auth(monkeypatch):
    monkeypatch.setenv("EH_TEST_KEY", KEY)
    texts = [f"text number {i}" for i in range(7)]
    with Server() as srv:
        enc = _encoder(srv.url, batch_size=3, api_key_env="EH_TEST_KEY", dimensions=8)
        out = enc.encode(texts, role="text")
    np.testing.assert_allclose(out, np.array([fake_vector(t) for t in texts], dtype=np.float32))
    assert [len(r["input"]) for r in srv.requests] == [3, 3, 1]
    assert srv.requests[0]["model"] == "m" and srv.requests[0]["dimensions"] == 8
    assert srv.auth == [f"Bearer {KEY}"] * 3
    assert KEY not in enc.fingerprint() and KEY not in enc.spec_string


def test_429_then_success_honours_retry_after_capped():
    with Server(fail_first=2, retry_after="100") as srv:
        enc = _encoder(srv.url, max_backoff=0.05)
        sleeps = []
        enc.sleep = sleeps.append
        out = enc.encode(["a", "b"], role="text")
    assert out.shape == (2, DIM)
    assert len(srv.requests) == 3
    assert sleeps == [0.05, 0.05]  # Retry-After: 100 capped at max_backoff


def test_429_without_retry_after_uses_backoff():
    with Server(fail_first=1) as srv:
        enc = _encoder(srv.url, backoff=0.02, max_backoff=1.0, seed=3)
        sleeps = []
        enc.sleep = sleeps.append
        enc.encode(["a"], role="text")
    assert sleeps == [backoff_delay(0, 0.02, 1.0, random.Random(3))]


def test_timeout_is_retried_then_fails_naming_the_encoder():
    with Server(delay=0.6) as srv:
        enc = _encoder(srv.url, timeout=0.15, max_retries=1, backoff=0.0)
        with pytest.raises(EncoderError, match=r"encoder 'api'.*2 attempt\(s\).*timeout"):
            enc.encode(["a"], role="text")
    assert len(srv.requests) == 2


# -- through the CLI ------------------------------------------------------------------
def _tiny_sts(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "tinysts"
    folder.mkdir(parents=True)
    with open(folder / "test.jsonl", "w") as fh:
        for i in range(20):
            fh.write(json.dumps({"sentence1": f"a sentence about topic {i}",
                                 "sentence2": f"another sentence on subject {i % 7}",
                                 "score": float(rng.uniform(0, 5))}) + "\n")
    return folder


def _run(tmp_path, url, extra="", name="run"):
    _tiny_sts(tmp_path)
    suite = tmp_path / f"{name}.yaml"
    suite.write_text(
        "suite: http-test\n"
        "bootstrap: 50\n"
        "encoders:\n"
        f"  api: 'http:{url}?model=test-model&api_key_env=EH_TEST_KEY&backoff=0.01"
        f"&max_backoff=0.05{extra}'\n"
        "tasks:\n"
        "  sts: {type: sts, dataset: tinysts}\n")
    out = tmp_path / name
    code = main(["run", str(suite), "--data-dir", str(tmp_path / "data"), "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache")])
    return code, out


def _all_output_files(folder):
    return [p for p in folder.rglob("*") if p.is_file()]


def test_cli_429_then_success_and_key_never_written(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("EH_TEST_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    with Server(fail_first=1, retry_after="0") as srv:
        code, out = _run(tmp_path, srv.url)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    res = json.loads((out / "results.json").read_text())
    assert res["results"]["api"]["sts"]["metrics"]["cosine_spearman"]["value"] is not None
    assert res["encoders"]["api"]["spec"].startswith("http:")
    assert len(srv.requests) >= 2 and srv.auth[-1] == f"Bearer {KEY}"
    for f in _all_output_files(out):  # results.json and every report written next to it
        assert KEY not in f.read_text(errors="replace"), f
    assert KEY not in captured.out + captured.err
    assert KEY not in caplog.text


@pytest.mark.parametrize("mode,message", [
    ("malformed", "malformed JSON"),
    ("short", "returned 26 vectors for 27 texts"),  # 27 unique texts in 20 pairs
])
def test_cli_bad_body_exits_3_naming_the_encoder(tmp_path, monkeypatch, capsys, mode, message):
    monkeypatch.setenv("EH_TEST_KEY", KEY)
    with Server(mode) as srv:
        code, out = _run(tmp_path, srv.url, name=mode)
    err = capsys.readouterr().err
    assert code == 3
    assert "encoder 'api'" in err and message in err
    res = json.loads((out / "results.json").read_text())
    assert message in res["encoders"]["api"]["error"]


def test_cli_timeout_exits_3(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EH_TEST_KEY", KEY)
    with Server(delay=0.6) as srv:
        code, _ = _run(tmp_path, srv.url, "&timeout=0.15&max_retries=1", name="slow")
    err = capsys.readouterr().err
    assert code == 3 and "encoder 'api'" in err and "timeout" in err


def test_cli_key_echoed_by_server_is_masked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EH_TEST_KEY", KEY)
    with Server("unauthorized") as srv:
        code, out = _run(tmp_path, srv.url, name="unauth")
    captured = capsys.readouterr()
    assert code == 3 and "HTTP 401" in captured.err and "***" in captured.err
    assert KEY not in captured.out + captured.err
    for f in _all_output_files(out):
        assert KEY not in f.read_text(errors="replace"), f


def test_missing_key_variable_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EH_TEST_KEY", raising=False)
    with Server() as srv:
        code, _ = _run(tmp_path, srv.url, name="nokey")
    assert code == 2
    assert "EH_TEST_KEY" in capsys.readouterr().err

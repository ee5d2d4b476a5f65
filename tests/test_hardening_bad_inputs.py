"""Bad inputs (issue 20): each is exit 2 with one clear message and no traceback.

Every case is a file under tests/bad_inputs/ run through ``evalharness.cli.main``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from evalharness.cli import main
from evalharness.encoders.spec import parse_spec_string

from helpers import make_sts

BAD = Path(__file__).parent / "bad_inputs"


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def data_dir(tmp_path):
    make_sts(tmp_path / "data")
    return tmp_path / "data"


def test_not_utf8_suite(capsys):
    code, _, err = run_cli(capsys, "validate", BAD / "not_utf8.yaml")
    assert code == 2
    assert "not_utf8.yaml:2: not a UTF-8 text file (byte 0xff at offset 14" in err
    assert "internal error" not in err and err.count("error:") == 1


def test_alias_bomb_fails_fast(capsys):
    code, _, err = run_cli(capsys, "validate", BAD / "alias_bomb.yaml")
    assert code == 2
    assert "alias_bomb.yaml" in err and "expands to more than 100,000 values" in err
    assert "aliases" in err


def test_alias_bomb_is_capped_by_node_count():
    """The cap counts values, so the work is bounded whatever the nesting (9**9 here)."""
    from evalharness import yamlio
    from evalharness.errors import UserError

    calls = []
    real = yamlio._Budget.spend

    def spend(self, node):
        calls.append(1)
        return real(self, node)

    yamlio._Budget.spend = spend
    try:
        with pytest.raises(UserError, match="expands to more than"):
            yamlio.load_yaml(BAD / "alias_bomb.yaml")
    finally:
        yamlio._Budget.spend = real
    assert len(calls) == yamlio.MAX_NODES + 1
    # aliases within the budget still work, and report their key's line
    data, locs = yamlio.parse_yaml("base: &b {dim: 8}\nother:\n  copy: *b\n", "x.yaml")
    assert data["other"]["copy"] == {"dim": 8}
    assert locs[("other",)] == 2
    with pytest.raises(UserError, match="nested too deeply|refers to"):
        yamlio.parse_yaml("a: &a [*a]\n", "x.yaml")


def test_top_level_typo_names_the_key_and_suggests(capsys):
    code, _, err = run_cli(capsys, "validate", BAD / "toplevel_typo.yaml")
    assert code == 2
    assert "toplevel_typo.yaml:2: encoderz: unknown key 'encoderz'" in err
    assert "did you mean 'encoders'?" in err
    assert "missing required key" not in err


# -- http: the natural spelling of a URL ------------------------------------------------
def _vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(8).round(6).tolist()


@pytest.fixture
def embeddings_server():
    """An OpenAI-format /v1/embeddings stub on a free local port."""
    paths = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            paths.append(self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = [{"object": "embedding", "index": i, "embedding": _vector(t)}
                    for i, t in enumerate(body["input"])]
            payload = json.dumps({"object": "list", "data": data,
                                  "model": body["model"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], paths
    httpd.shutdown()
    httpd.server_close()


def test_bare_http_url_is_an_http_encoder(capsys, tmp_path, data_dir, embeddings_server):
    port, paths = embeddings_server
    code, out, _ = run_cli(capsys, "validate", BAD / "http_bare_url.yaml")
    assert code == 0 and "1 encoder(s)" in out
    suite = tmp_path / "suite.yaml"
    suite.write_text((BAD / "http_bare_url.yaml").read_text().replace("8000", str(port)))
    code, out, err = run_cli(capsys, "run", suite, "--data-dir", data_dir, "--no-cache",
                             "-o", tmp_path / "out")
    assert code == 0, err
    assert paths and set(paths) == {"/v1/embeddings"}
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["encoders"]["api"]["dim"] == 8
    assert res["encoders"]["api"]["spec"] == f"http:http://127.0.0.1:{port}/v1?model=x"
    assert "cosine_spearman" in res["results"]["api"]["sts"]["metrics"]


@pytest.mark.parametrize("text, target", [
    ("http://127.0.0.1:8000/v1?model=x", "http://127.0.0.1:8000/v1"),
    ("http:http://127.0.0.1:8000/v1?model=x", "http://127.0.0.1:8000/v1"),
    ("https://api.example.com/v1/embeddings?model=x", "https://api.example.com/v1/embeddings"),
])
def test_http_spellings(text, target):
    spec = parse_spec_string("e", text)
    assert (spec.type, spec.target, spec.options) == ("http", target, {"model": "x"})


def test_http_target_that_is_no_url_fails_at_validate(capsys, tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\nencoders:\n  e: 'http:ftp://host/v1?model=x'\n"
                     "tasks:\n  t: {type: sts, dataset: tinysts}\n")
    code, _, err = run_cli(capsys, "validate", suite)
    assert code == 2 and "is not an http(s) URL" in err
    assert "http://HOST:PORT/v1?model=NAME" in err


def test_http_url_without_scheme_gets_http():
    from evalharness.encoders.http import endpoint_url

    assert endpoint_url("127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1/embeddings"


# -- dimensions -----------------------------------------------------------------------
def test_tfidf_dim_above_what_the_texts_allow_records_and_warns(capsys, caplog, tmp_path,
                                                                 data_dir):
    with caplog.at_level(logging.WARNING, logger="evalharness.encoders.tfidf_lsa"):
        code, _, err = run_cli(capsys, "run", BAD / "tfidf_dim_5000.yaml", "--data-dir",
                               data_dir, "--no-cache", "-o", tmp_path / "out")
    assert code == 0, err
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    dim = res["encoders"]["lsa"]["dim"]
    assert dim == 19  # 20 unique texts in the tiny STS set
    warned = [r.getMessage() for r in caplog.records]
    assert any("dim=5000" in m and f"have {dim} dimensions" in m for m in warned)


@pytest.mark.parametrize("name", ["tfidf_dim_absurd.yaml", "random_dim_huge.yaml"])
def test_impossible_dims_fail_at_validate(capsys, name):
    code, _, err = run_cli(capsys, "validate", BAD / name)
    assert code == 2
    assert f"{name}:3: encoders." in err and "option 'dim': must be at most 65,536 dimensions" in err


def test_random_dim_bound_is_inclusive():
    from evalharness.encoders.random import MAX_DIM, RandomOptions

    assert RandomOptions(dim=MAX_DIM).dim == MAX_DIM
    with pytest.raises(ValueError):
        RandomOptions(dim=MAX_DIM + 1)


# -- py: a callable of the wrong shape -------------------------------------------------
def test_py_callable_of_the_wrong_shape(capsys, tmp_path, data_dir):
    code, out, err = run_cli(capsys, "run", BAD / "py_wrong_shape.yaml", "--data-dir",
                             data_dir, "--no-cache", "-o", tmp_path / "out")
    assert code == 2
    assert "encoder 'base' (py:os.path:basename) cannot be called as " \
           "f(texts: list[str]) -> array (n, dim)" in err
    assert "internal error" not in err


def test_py_target_without_callable_fails_at_validate(capsys, tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\nencoders:\n  e: 'py:os.path'\n"
                     "tasks:\n  t: {type: sts, dataset: tinysts}\n")
    code, _, err = run_cli(capsys, "validate", suite)
    assert code == 2 and "'package.module:callable'" in err

"""The BEIR corpus reader: pyarrow's fast path gives exactly what the line-by-line reader
gives, and every file it does not take (bad rows, numeric ids, BOM, invalid UTF-8) goes
to the line-by-line reader, whose file:line errors stay as they were."""

from __future__ import annotations

import json

import pytest

from evalharness.data import local
from evalharness.data.local import load_retrieval
from evalharness.errors import UserError


def beir(folder, corpus_lines: list[bytes] | bytes):
    folder.mkdir(parents=True, exist_ok=True)
    body = corpus_lines if isinstance(corpus_lines, bytes) else b"\n".join(corpus_lines) + b"\n"
    (folder / "corpus.jsonl").write_bytes(body)
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "what"}\n')
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


def slow(folder, monkeypatch):
    monkeypatch.setattr(local, "_read_corpus_fast", lambda path, hasher: (None, None))
    return load_retrieval(folder, "test", "x")


ROWS = [{"_id": "d1", "title": "A title", "text": "first text"},
        {"_id": "d2", "title": "", "text": "no title"},
        {"_id": "d3", "title": None, "text": "null title"},
        {"_id": "d4", "text": "  spaces kept  "},
        {"_id": "d5", "title": " T ", "text": "strip"},
        {"_id": "d6", "title": "x", "text": "uni\u2028code \u00e9\u4e2d \U0001f600", "extra": [1]},
        {"_id": "d7", "text": ""}]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_fast_path_equals_the_line_reader(tmp_path, monkeypatch, eol):
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in ROWS]
    body = eol.join(lines[:3]) + eol + eol + eol.join(lines[3:]) + eol  # a blank line
    folder = beir(tmp_path / "c", body)
    taken = []
    real = local._read_corpus_fast
    monkeypatch.setattr(local, "_read_corpus_fast",
                        lambda p, h: taken.append(1) or real(p, h))
    fast = load_retrieval(folder, "test", "x")
    assert taken and fast.corpus_ids == [r["_id"] for r in ROWS]
    monkeypatch.undo()
    ref = slow(folder, monkeypatch)
    assert fast.corpus_ids == ref.corpus_ids
    assert fast.corpus_texts == ref.corpus_texts
    assert fast.corpus_texts[0] == "A title first text" and fast.corpus_texts[4] == "T  strip"
    assert fast.info.checksum == ref.info.checksum


def test_numeric_ids_take_the_line_reader(tmp_path):
    folder = beir(tmp_path / "c", [b'{"_id": 1, "text": "a"}', b'{"_id": "d1", "text": "b"}'])
    assert local._read_corpus_fast(folder / "corpus.jsonl", local._Hasher()) == (None, None)
    assert load_retrieval(folder, "test", "x").corpus_ids == ["1", "d1"]


@pytest.mark.parametrize("bad, line, words", [
    (b'{"_id": "d2", "text": 5}', 2, "column 'text' must be a string"),
    (b'{"_id": "d2"}', 2, "missing column 'text'"),
    (b'{"_id": "d2", "text": "a"', 2, "invalid JSON"),
    (b'[1, 2]', 2, "JSON object"),
    (b'{"_id": "d2", "text": "\xff\xfe"}', 2, "not UTF-8"),
])
def test_bad_rows_keep_their_file_and_line(tmp_path, bad, line, words):
    folder = beir(tmp_path / "c", [b'{"_id": "d1", "text": "ok"}', bad, b'{"_id": "d3", "text": "c"}'])
    assert local._read_corpus_fast(folder / "corpus.jsonl", local._Hasher()) == (None, None)
    with pytest.raises(UserError) as info:
        load_retrieval(folder, "test", "x")
    assert info.value.line == line and words in str(info.value)
    assert "corpus.jsonl" in str(info.value)


def test_byte_order_mark_is_refused_as_before(tmp_path):
    folder = beir(tmp_path / "c", b'\xef\xbb\xbf{"_id": "d1", "text": "a"}\n')
    with pytest.raises(UserError) as info:
        load_retrieval(folder, "test", "x")
    assert info.value.line == 1

"""Dataset loaders, resolution order, bad data files (file + line), and the Hub path
with the Hub mocked at its single boundary (``evalharness.data.hub._load_dataset``)."""

from __future__ import annotations

import json

import pytest

from evalharness.cli import main
from evalharness.data import hub
from evalharness.data.local import load_labelled, load_pairs, load_retrieval
from evalharness.data.resolve import DatasetResolver
from evalharness.errors import UserError

from helpers import TINY_SUITE, make_sts, write_jsonl, write_suite


def test_pairs_loader_and_checksum(tmp_path):
    folder = make_sts(tmp_path)
    data = load_pairs(folder, "test", "tinysts")
    assert len(data) == 10 and data.scores[0] == 4.8
    assert data.info.checksum.startswith("sha256:") and data.info.rows == 10
    again = load_pairs(folder, "test", "tinysts")
    assert again.info.checksum == data.info.checksum
    (folder / "test.jsonl").write_text((folder / "test.jsonl").read_text().replace("4.8", "4.7"))
    assert load_pairs(folder, "test", "tinysts").info.checksum != data.info.checksum


def test_missing_column_names_file_and_line(tmp_path):
    write_jsonl(tmp_path / "d" / "test.jsonl", [
        {"sentence1": "a", "sentence2": "b", "score": 1},
        {"sentence1": "a", "score": 2}])
    with pytest.raises(UserError) as info:
        load_pairs(tmp_path / "d", "test", "d")
    assert info.value.line == 2 and "sentence2" in str(info.value)
    assert str(tmp_path / "d" / "test.jsonl") in str(info.value)


def test_non_numeric_score(tmp_path):
    write_jsonl(tmp_path / "d" / "test.jsonl", [
        {"sentence1": "a", "sentence2": "b", "score": 1},
        {"sentence1": "a", "sentence2": "b", "score": 2},
        {"sentence1": "a", "sentence2": "b", "score": "high"}])
    with pytest.raises(UserError) as info:
        load_pairs(tmp_path / "d", "test", "d")
    assert info.value.line == 3 and "'score' must be a number" in str(info.value)


def test_invalid_json_line(tmp_path):
    write_jsonl(tmp_path / "d" / "test.jsonl", ['{"sentence1": "a"', "x"])
    with pytest.raises(UserError) as info:
        load_pairs(tmp_path / "d", "test", "d")
    assert info.value.line == 1 and "invalid JSON" in str(info.value)


def test_labelled_loader(tmp_path):
    write_jsonl(tmp_path / "l" / "train.jsonl", [
        {"text": "x", "label": 2, "label_name": "b", "subject": "Re: s"},
        {"text": "y", "label": 0, "label_name": "a", "subject": "t"}])
    d = load_labelled(tmp_path / "l", "train", "l")
    assert d.labels.tolist() == [1, 0] and d.label_names == ["a", "b"]
    assert d.field("subject") == ["Re: s", "t"]


def test_retrieval_loader_layouts(tmp_path):
    root = tmp_path / "beir"
    write_jsonl(root / "corpus.jsonl", [{"_id": "d1", "title": "T", "text": "one"},
                                        {"_id": 2, "text": "two"}])
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "q"}, {"_id": "q2", "text": "r"}])
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t2\t0\n")
    d = load_retrieval(root, "test", "beir")
    assert d.corpus_texts == ["T one", "two"] and d.corpus_ids == ["d1", "2"]
    assert d.query_ids == ["q1"] and d.qrels == {"q1": {"d1": 2, "2": 0}}
    (root / "qrels" / "test.tsv").unlink()
    with pytest.raises(UserError) as info:
        load_retrieval(root, "test", "beir")
    assert "qrels" in str(info.value)


def test_resolution_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    make_sts(a, "ds")
    make_sts(b, "ds", rows=[("x", "y", 1.0), ("z", "w", 2.0)])
    monkeypatch.setenv("EVALHARNESS_DATA", str(b))
    assert DatasetResolver(allow_hub=False).folder("ds")[1] == b / "ds"
    assert DatasetResolver(a, allow_hub=False).folder("ds")[1] == a / "ds"


def test_missing_dataset_lists_folders(tmp_path):
    with pytest.raises(UserError) as info:
        DatasetResolver(tmp_path, allow_hub=False).folder("stsb")
    msg = str(info.value)
    assert str(tmp_path / "stsb") in msg and "sentence1, sentence2, score" in msg
    assert "evalharness data pull stsb" in msg


def test_run_with_missing_dataset_exits_2(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", TINY_SUITE)
    code = main(["run", str(suite), "--data-dir", str(tmp_path / "empty"),
                 "-o", str(tmp_path / "out"), "--no-cache"])
    assert code == 2
    err = capsys.readouterr().err
    assert "dataset 'tinysts' not found" in err and "Traceback" not in err


def test_run_with_bad_data_file_exits_2(tmp_path, capsys):
    write_jsonl(tmp_path / "data" / "tinysts" / "test.jsonl", [
        {"sentence1": "a", "sentence2": "b", "score": 1},
        {"sentence1": "a", "sentence2": "b", "score": "n/a"}])
    suite = write_suite(tmp_path / "s.yaml", TINY_SUITE)
    code = main(["run", str(suite), "--data-dir", str(tmp_path / "data"),
                 "-o", str(tmp_path / "out"), "--no-cache"])
    assert code == 2
    err = capsys.readouterr().err
    assert "test.jsonl:2" in err and "score" in err


class FakeDataset(list):
    pass


def test_pull_from_mocked_hub(tmp_path, monkeypatch):
    calls = []

    def fake_load(path, *args, split=None, revision=None):
        calls.append((path, args, split, revision))
        if path == "mteb/stsbenchmark-sts":
            return FakeDataset([{"sentence1": "a", "sentence2": "b", "score": 2.5},
                                {"sentence1": "c", "sentence2": "d", "score": 4}])
        if path == "mteb/msmarco":
            cfg = args[0]
            if cfg == "corpus":
                return FakeDataset([{"_id": "d1", "title": "", "text": "doc"}])
            if cfg == "queries":
                return FakeDataset([{"_id": "q1", "text": "query"}])
            return FakeDataset([{"query-id": "q1", "corpus-id": "d1", "score": 1}])
        raise AssertionError(path)

    monkeypatch.setattr(hub, "_load_dataset", fake_load)
    dest = hub.pull("stsb", tmp_path)
    assert calls[0][3] == hub.HUB_SOURCES["stsb"]["revision"]
    d = load_pairs(dest, "test", "stsb")
    assert d.sentence1 == ["a", "c"] and d.scores.tolist() == [2.5, 4.0]
    r = load_retrieval(hub.pull("msmarco", tmp_path), "test", "msmarco")
    assert r.qrels == {"q1": {"d1": 1}} and r.corpus_texts == ["doc"]


def test_hub_failure_is_user_error(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(hub, "_load_dataset", boom)
    with pytest.raises(UserError) as info:
        hub.pull("sick", tmp_path)
    assert "could not pull 'sick'" in str(info.value) and str(tmp_path / "sick") in str(info.value)


def test_missing_named_dataset_pulled_when_hub_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "_load_dataset", lambda *a, **k: FakeDataset(
        [{"sentence1": "a", "sentence2": "b", "score": 1.0},
         {"sentence1": "c", "sentence2": "d", "score": 2.0}]))
    r = DatasetResolver(tmp_path, allow_hub=True)
    assert len(r.pairs("sick")) == 2 and (tmp_path / "sick" / "test.jsonl").exists()


def test_data_list_and_import(tmp_path, capsys):
    src = make_sts(tmp_path / "src", "mine")
    assert main(["data", "import", str(src), "--as", "copy", "--data-dir",
                 str(tmp_path / "dd")]) == 0
    assert main(["data", "list", "--data-dir", str(tmp_path / "dd")]) == 0
    out = capsys.readouterr().out
    assert "copy" in out and "test.jsonl: 10 rows" in out


def test_unknown_pull_name(tmp_path):
    with pytest.raises(UserError) as info:
        hub.pull("stbs", tmp_path)
    assert "did you mean 'stsb'" in str(info.value)


def test_dataset_recorded_in_results(tmp_path):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", TINY_SUITE)
    assert main(["run", str(suite), "--data-dir", str(tmp_path / "data"),
                 "-o", str(tmp_path / "out"), "--no-cache"]) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    rec = res["datasets"]["tinysts"]
    assert rec["rows"] == 10 and rec["split"] == "test" and rec["checksum"].startswith("sha256:")

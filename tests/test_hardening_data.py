"""`data list` row counts and the hints of a missing dataset (issue 20)."""

from __future__ import annotations

import pytest

from evalharness.cli import main
from evalharness.data.resolve import DatasetResolver, count_rows
from evalharness.errors import UserError

from helpers import make_sts, write_jsonl


def _beir(folder, qrels_text):
    write_jsonl(folder / "corpus.jsonl", [{"_id": f"d{i}", "title": "", "text": f"doc {i}"}
                                          for i in range(3)])
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "query"}])
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text(qrels_text)


def test_data_list_counts_data_rows_not_the_qrels_header(tmp_path, capsys):
    _beir(tmp_path / "withheader", "query-id\tcorpus-id\tscore\nq1\td0\t1\nq1\td2\t0\n\n")
    _beir(tmp_path / "noheader", "q1\td0\t1\nq1\td1\t2\nq1\td2\t0\n")
    _beir(tmp_path / "trec", "q1 0 d0 1\nq1 0 d1 1\n")  # TREC qrels: space separated
    make_sts(tmp_path)
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "qrels/test.tsv: 2 rows" in lines["withheader"]
    assert "corpus.jsonl: 3 rows" in lines["withheader"]
    assert "qrels/test.tsv: 3 rows" in lines["noheader"]
    assert "qrels/test.tsv: 2 rows" in lines["trec"]
    assert "test.jsonl: 10 rows" in lines["tinysts"]


def test_count_rows_agrees_with_the_loader(tmp_path):
    """The loader's qrels rows (judgements) equal what data list reports."""
    _beir(tmp_path / "b", "query-id\tcorpus-id\tscore\nq1\td0\t1\nq1\td1\t0\nq1\td2\t2\n")
    data = DatasetResolver(tmp_path).retrieval("b")
    assert count_rows(tmp_path / "b" / "qrels" / "test.tsv") == \
        sum(len(v) for v in data.qrels.values()) == 3


def test_missing_dataset_suggests_pull_only_for_names_it_can_pull(tmp_path):
    resolver = DatasetResolver(tmp_path, allow_hub=False)
    with pytest.raises(UserError) as exc:
        resolver.folder("mydata")
    text = str(exc.value)
    assert "data pull" in text and "data pull mydata" not in text  # names what pull knows
    assert "evalharness data import PATH --as mydata" in text
    with pytest.raises(UserError) as exc:
        resolver.folder("sick")
    assert "'evalharness data pull sick'" in str(exc.value)
    with pytest.raises(UserError) as exc:
        resolver.folder("stbs")
    assert "did you mean 'stsb'?" in str(exc.value)
    assert "data pull stbs" not in str(exc.value)


def test_data_pull_of_an_unknown_name_is_exit_2_with_the_known_names(tmp_path, capsys):
    assert main(["data", "pull", "mydata", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no Hub source is known for dataset 'mydata'" in err
    assert "data import PATH --as NAME" in err and "Traceback" not in err

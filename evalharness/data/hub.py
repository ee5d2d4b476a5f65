"""Pull the named datasets from the Hugging Face Hub (pinned revisions) into the
canonical local layout. Used by ``evalharness data pull NAME`` and, when the network
allows, for a named dataset missing locally. Tested with the Hub mocked."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from evalharness.errors import UserError

# name -> where it lives on the Hub (revisions as pinned by mteb's task metadata)
HUB_SOURCES: dict[str, dict] = {
    "stsb": {"layout": "pairs", "path": "mteb/stsbenchmark-sts",
             "revision": "b0fddb56ed78048fa8b90373c8a3cfc37b684831", "splits": ["test"]},
    "sick": {"layout": "pairs", "path": "mteb/sickr-sts",
             "revision": "20a6d6f312dd54037fe07a32d58e5e168867909d", "splits": ["test"]},
    "agnews": {"layout": "labelled", "path": "fancyzhx/ag_news",
               "revision": "eb185aade064a813bc0b7f42de02595523103ca4",
               "splits": ["train", "test"],
               "label_names": ["World", "Sports", "Business", "Sci/Tech"]},
    # mteb's copy carries the subjects (titles) of the bydate test messages, grouped
    "twentynewsgroups": {"layout": "clustering", "path": "mteb/twentynewsgroups-clustering",
                         "revision": "6125ec4e24fa026cec8a478383ee943acfbd5449",
                         "splits": ["test"]},
    "msmarco": {"layout": "retrieval", "path": "mteb/msmarco",
                "revision": "c5a29a104738b98a9e76336939199e264163d4a0", "splits": ["test"]},
}


def _load_dataset(*args, **kwargs):
    """The single boundary with the Hub (mocked in tests)."""
    try:
        import datasets
    except ImportError:
        raise UserError("pulling from the Hugging Face Hub needs the 'datasets' package",
                        hint="pip install 'evalharness[hub]'") from None
    return datasets.load_dataset(*args, **kwargs)


def _write_jsonl(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    n = 0
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def pull(name: str, dest_root: Path) -> Path:
    if name not in HUB_SOURCES:
        from evalharness.registry import suggest

        raise UserError(f"no Hub source is known for dataset '{name}'",
                        hint=suggest(name, HUB_SOURCES) or
                        f"known: {', '.join(HUB_SOURCES)}; or import a local folder with "
                        "'evalharness data import PATH --as NAME'")
    src = HUB_SOURCES[name]
    dest = dest_root / name
    kw = {"revision": src["revision"]}
    try:
        if src["layout"] == "pairs":
            for split in src["splits"]:
                ds = _load_dataset(src["path"], split=split, **kw)
                _write_jsonl(dest / f"{split}.jsonl",
                             ({"sentence1": r["sentence1"], "sentence2": r["sentence2"],
                               "score": float(r["score"])} for r in ds))
        elif src["layout"] == "labelled":
            names = src.get("label_names")
            for split in src["splits"]:
                ds = _load_dataset(src["path"], split=split, **kw)
                _write_jsonl(dest / f"{split}.jsonl",
                             ({"text": r["text"], "label": int(r["label"]),
                               **({"label_name": names[int(r["label"])]} if names else {})}
                              for r in ds))
        elif src["layout"] == "clustering":
            for split in src["splits"]:
                ds = _load_dataset(src["path"], split=split, **kw)
                rows = []
                for r in ds:
                    sents, labels = r["sentences"], r["labels"]
                    if isinstance(sents, str):
                        sents, labels = [sents], [labels]
                    for s, lab in zip(sents, labels):
                        rows.append({"text": s, "subject": s, "label": lab})
                seen, out = set(), []
                for row in rows:  # the clustering copy repeats the texts over several sets
                    key = (row["text"], row["label"])
                    if key not in seen:
                        seen.add(key)
                        out.append(row)
                _write_jsonl(dest / f"{split}.jsonl", out)
        elif src["layout"] == "retrieval":
            corpus = _load_dataset(src["path"], "corpus", split="corpus", **kw)
            _write_jsonl(dest / "corpus.jsonl",
                         ({"_id": str(r["_id"]), "title": r.get("title") or "",
                           "text": r["text"]} for r in corpus))
            queries = _load_dataset(src["path"], "queries", split="queries", **kw)
            _write_jsonl(dest / "queries.jsonl",
                         ({"_id": str(r["_id"]), "text": r["text"]} for r in queries))
            for split in src["splits"]:
                qrels = _load_dataset(src["path"], "default", split=split, **kw)
                path = dest / "qrels" / f"{split}.tsv"
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write("query-id\tcorpus-id\tscore\n")
                    for r in qrels:
                        fh.write(f"{r['query-id']}\t{r['corpus-id']}\t{int(r['score'])}\n")
    except UserError:
        raise
    except Exception as exc:  # network, hub or format failures
        raise UserError(f"could not pull '{name}' from the Hugging Face Hub "
                        f"({src['path']}@{src['revision'][:8]}): {type(exc).__name__}: {exc}",
                        hint=f"without network, put the files in {dest} yourself "
                             "(see README: datasets)") from None
    return dest

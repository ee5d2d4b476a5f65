"""A fake Hugging Face Hub for mteb's own data loading: tiny datasets in the Hub
repositories' layout (``<repo>/<config>/<split>.jsonl``) under a folder, served by
stand-ins for ``datasets.load_dataset`` / ``get_dataset_config_names`` /
``get_dataset_split_names`` wherever mteb imported them. A request for another revision
than the one mteb pins fails, as the Hub would not have the data."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("apple banana cherry delta echo fox golf hotel india juliet kilo lima mike nova "
         "oscar papa quartz river sierra tango umbra victor whisky xray yankee zulu").split()


def sentence(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def tiny_repos(rng: random.Random | None = None) -> dict:
    """repo -> {config ("default" when none) -> {split -> rows}} for one task per type."""
    rng = rng or random.Random(7)
    sts = [{"sentence1": sentence(rng), "sentence2": sentence(rng),
            "score": round(rng.uniform(0, 5), 2)} for _ in range(40)]
    banking_labels = ["card_lost", "top_up", "refund", "pin_blocked"]
    bank = {split: [{"text": sentence(rng, 5) + f" {lab}" * (i % 2),
                     "label": k, "label_text": lab}
                    for i in range(n) for k, lab in [(i % 4, banking_labels[i % 4])]]
            for split, n in (("train", 60), ("test", 30))}
    groups = ["sci.space", "rec.autos", "talk.politics"]
    clustering = [{"sentences": [sentence(rng, 4) for _ in range(45)],
                   "labels": [groups[i % 3] for i in range(45)]} for _ in range(3)]
    corpus = [{"_id": f"d{i}", "title": ("Title " + sentence(rng, 2)) if i % 3 else "",
               "text": sentence(rng, 8)} for i in range(50)]
    queries = [{"_id": f"q{i}", "text": sentence(rng, 4)} for i in range(12)]
    qrels = [{"query-id": f"q{i}", "corpus-id": f"d{(i * 7 + j) % 50}", "score": 1}
             for i in range(10) for j in range(1 + i % 3)]  # q10, q11: no judgements
    pairs = [{"sent1": sentence(rng, 5), "sent2": sentence(rng, 5), "labels": i % 2}
             for i in range(40)]
    return {
        "mteb/stsbenchmark-sts": {"default": {"test": sts}},
        "mteb/banking77": {"default": bank},
        "mteb/twentynewsgroups-clustering": {"default": {"test": clustering}},
        "mteb/scifact": {"corpus": {"corpus": corpus}, "queries": {"queries": queries},
                         "default": {"test": qrels}},
        "mteb/sprintduplicatequestions-pairclassification": {"default": {"test": pairs}},
    }


def write_hub(root: Path, repos: dict | None = None) -> Path:
    for repo, configs in (repos or tiny_repos()).items():
        for config, splits in configs.items():
            for split, rows in splits.items():
                write_jsonl(root / repo / config / f"{split}.jsonl", rows)
    return root


class FakeHub:
    """Serves ``root``; ``pinned`` maps repo -> the revision mteb asks for."""

    def __init__(self, root: Path, pinned: dict[str, str]):
        self.root = root
        self.pinned = pinned
        self.calls: list[tuple] = []
        self.offline = False

    def _repo(self, path: str, revision):
        if self.offline:
            raise ConnectionError("Couldn't reach the Hugging Face Hub (offline)")
        folder = self.root / path
        if not folder.is_dir():
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")
        if revision != self.pinned.get(path):
            raise ValueError(f"Revision '{revision}' does not exist for dataset '{path}'")
        return folder

    def _read(self, file: Path):
        from datasets import Dataset

        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
        return Dataset.from_list(rows)

    def load_dataset(self, path, name=None, *, split=None, revision=None, **kwargs):
        from datasets import DatasetDict

        self.calls.append(("load_dataset", path, name, split, revision))
        folder = self._repo(path, revision) / (name or "default")
        if not folder.is_dir():
            raise ValueError(f"BuilderConfig '{name}' not found in {path}")
        if split is not None:
            return self._read(folder / f"{split}.jsonl")
        return DatasetDict({f.stem: self._read(f) for f in sorted(folder.glob("*.jsonl"))})

    def get_dataset_config_names(self, path, revision=None, **kwargs):
        self.calls.append(("config_names", path, revision))
        return sorted(p.name for p in self._repo(path, revision).iterdir() if p.is_dir())

    def get_dataset_split_names(self, path, config_name=None, *, revision=None, **kwargs):
        self.calls.append(("split_names", path, config_name, revision))
        folder = self._repo(path, revision) / (config_name or "default")
        return sorted(f.stem for f in folder.glob("*.jsonl"))

    def install(self, monkeypatch) -> "FakeHub":
        import datasets
        import mteb.abstasks.abstask as abstask
        import mteb.abstasks.retrieval_dataset_loaders as rdl

        for mod in (datasets, abstask, rdl):
            for fn in ("load_dataset", "get_dataset_config_names", "get_dataset_split_names"):
                if hasattr(mod, fn):
                    monkeypatch.setattr(mod, fn, getattr(self, fn))
        return self


def pinned_revisions(task_names) -> dict[str, str]:
    import mteb

    out = {}
    for name in task_names:
        meta = mteb.get_task(name).metadata
        out[meta.dataset["path"]] = meta.dataset["revision"]
    return out

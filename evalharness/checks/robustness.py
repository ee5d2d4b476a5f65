"""Robustness to text noise: how far vectors move when their texts are lightly perturbed,
and what that does to the neighbourhoods and to a task score.

The perturbed texts (``evalharness.checks.perturb``, seeded by the suite seed) are made in
``load`` and declared in ``needs`` next to the originals, so they are encoded in the same
pass and cached like every other text.

Texts: a pairs (STS) dataset gives the unique sentences of its first ``limit`` pairs; a
labelled dataset gives its first ``limit`` unique texts (default 1000, to keep runs quick;
``limit: null`` uses everything). ``source`` forces the layout (see ``checks/base.py``).
The metric names depend on the layout; ``metric_names`` (which validates thresholds before
any data is read) takes it from ``source``, the known dataset names (stsb, sick: pairs;
agnews, twentynewsgroups: labelled) or the first row of the dataset in the default data
folders, and lists only the layout-free metrics when none of these tells: set ``source``
for a dataset found only through ``--data-dir``.

Metrics, for each perturbation ``p`` (names ``{p}_...``; a threshold addresses them as
``robustness.synonym_fluctuation``):

- ``{p}_mean_cosine``: mean over texts of cos(v(text), v(perturbed text)) (CI: bootstrap);
  ``{p}_fluctuation`` = 1 - ``{p}_mean_cosine`` (lower is better).
- ``{p}_nn_stability``: overlap@k of nearest-neighbour sets. For text i, N(i) is the set of
  the k clean texts j != i most cosine-similar to text i, and Ñ(i) the set of the k clean
  texts j != i most similar to the perturbed text i; stability_i = |N(i) ∩ Ñ(i)| / k,
  averaged over texts (k = ``neighbours``, at most n - 1).
- pairs datasets: ``{p}_sts_spearman``, the STS Spearman of cosine vs gold when both
  sentences of every pair are perturbed, and ``{p}_sts_drop`` = (clean - perturbed) /
  clean, its relative drop (CI: paired bootstrap over pairs).
- labelled datasets: ``{p}_knn_accuracy``, the k-NN label accuracy of the perturbed texts
  (majority label of Ñ(i), ties to the smallest label id) against their gold labels, and
  ``{p}_knn_drop`` = (clean - perturbed) / clean, where the clean accuracy
  (``clean_knn_accuracy``) votes with N(i) (leave-one-out k-NN).

Aggregates over the perturbations: ``mean_cosine``, ``fluctuation`` (main metric),
``nn_stability`` (per-text means over perturbations) and ``sts_drop`` / ``knn_drop``
(means of the per-perturbation drops) next to ``clean_sts_spearman`` /
``clean_knn_accuracy``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from evalharness.checks.base import CheckConfig, TextsCheck, detect_layout, unique_first
from evalharness.checks.perturb import PERTURBATIONS, SynonymSource, perturb
from evalharness.checks.perturb_store import perturbed_texts
from evalharness.components import TextNeed
from evalharness.errors import UserError
from evalharness.results import Metric
from evalharness.stats import bootstrap_distribution, resample_indices
from evalharness.tasks.sts import sts_scores
from evalharness.vectors_math import cosine_rows, unit_rows

PerturbationName = Literal["synonym", "swap", "shuffle", "delete", "typo"]

PER_TEXT = ("mean_cosine", "fluctuation", "nn_stability")
BY_LAYOUT = {"pairs": ("sts_spearman", "sts_drop"), "labelled": ("knn_accuracy", "knn_drop")}
AGG_BY_LAYOUT = {"pairs": ("clean_sts_spearman", "sts_drop"),
                 "labelled": ("clean_knn_accuracy", "knn_drop")}


class RobustnessConfig(CheckConfig):
    type: Literal["robustness"] = "robustness"
    perturbations: list[PerturbationName] = Field(
        default_factory=lambda: list(PERTURBATIONS), min_length=1,
        description="perturbations to apply, each on its own")
    rate: float = Field(0.10, gt=0, le=1, description="fraction of the words touched")
    limit: int | None = Field(1000, ge=1, description="pairs (pairs dataset) or unique texts "
                              "(labelled dataset) to use; null for all")
    samples: int = Field(5, ge=0, description="(original, perturbed) examples kept per "
                         "perturbation for the report")
    neighbours: int = Field(10, ge=1, description="k of the nearest-neighbour metrics")

    @field_validator("perturbations")
    @classmethod
    def _unique(cls, v):
        dup = sorted({p for p in v if v.count(p) > 1})
        if dup:
            raise ValueError(f"perturbations are listed more than once: {dup}")
        return v


# pure metric functions ------------------------------------------------------------------
def top_k_neighbours(queries: np.ndarray, base: np.ndarray, k: int,
                     exclude: np.ndarray | None = None, *, chunk: int = 1024) -> np.ndarray:
    """(m, k) indices of the k rows of ``base`` most cosine-similar to each query row,
    most similar first (ties: lower index first); ``exclude[i]`` is a base row query i may
    not return (its own text)."""
    q = unit_rows(queries)
    b = unit_rows(base)
    k = min(k, len(b) - (exclude is not None))
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), chunk):
        sims = q[s:s + chunk] @ b.T
        rows = np.arange(len(sims))
        if exclude is not None:
            sims[rows, exclude[s:s + chunk]] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else \
            np.tile(np.arange(sims.shape[1]), (len(sims), 1))
        vals = np.take_along_axis(sims, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        out[s:s + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def neighbour_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, |set(a[i]) ∩ set(b[i])| / k for two (m, k) index arrays."""
    a = np.asarray(a)
    b = np.asarray(b)
    shared = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    return shared / a.shape[1]


def knn_vote(neighbours: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority label among each row's neighbours; ties go to the smallest label id."""
    m = len(neighbours)
    votes = labels[neighbours]  # (m, k)
    flat = (np.arange(m)[:, None] * n_classes + votes).ravel()
    counts = np.bincount(flat, minlength=m * n_classes).reshape(m, n_classes)
    return counts.argmax(axis=1)


def relative_drop(clean, noisy):
    """(clean - noisy) / clean, elementwise (NaN where clean is 0)."""
    clean = np.asarray(clean, dtype=np.float64)
    noisy = np.asarray(noisy, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(clean != 0, (clean - noisy) / clean, np.nan)


def _ci(dist: np.ndarray, confidence: float = 0.95) -> list[float] | None:
    dist = dist[np.isfinite(dist)]
    if not len(dist):
        return None
    a = (1 - confidence) / 2
    lo, hi = np.quantile(dist, [a, 1 - a])
    return [float(lo), float(hi)]


def _layout_for_names(config) -> str | None:
    """The layout ``metric_names`` can know without the run's resolver (None: unknown)."""
    if config.source != "auto":
        return config.source
    from evalharness.data.resolve import LAYOUT_OF, DatasetResolver

    if isinstance(config.dataset, str) and config.dataset in LAYOUT_OF:
        return LAYOUT_OF[config.dataset]
    try:
        return detect_layout(DatasetResolver(allow_hub=False), config.dataset, config.split)
    except UserError:
        return None


class RobustnessCheck(TextsCheck):
    Config = RobustnessConfig
    metrics = {
        # aggregates over the perturbations
        "mean_cosine": True, "fluctuation": False, "nn_stability": True,
        "clean_sts_spearman": True, "sts_drop": False,  # pairs datasets
        "clean_knn_accuracy": True, "knn_drop": False,  # labelled datasets
        # per perturbation p
        "{p}_mean_cosine": True, "{p}_fluctuation": False, "{p}_nn_stability": True,
        "{p}_sts_spearman": True, "{p}_sts_drop": False,
        "{p}_knn_accuracy": True, "{p}_knn_drop": False,
    }
    main_metric = "fluctuation"

    @classmethod
    def metric_names(cls, config) -> list[str]:
        layout = _layout_for_names(config)
        extra = BY_LAYOUT.get(layout, ())
        names = list(PER_TEXT) + list(AGG_BY_LAYOUT.get(layout, ()))
        for p in config.perturbations:
            names += [f"{p}_{m}" for m in PER_TEXT + tuple(extra)]
        return names

    # load / needs -------------------------------------------------------------------------
    def load(self, resolver) -> None:
        cfg = self.config
        layout = cfg.source if cfg.source != "auto" else \
            detect_layout(resolver, cfg.dataset, cfg.split)
        self.layout = layout
        self.pairs = None
        self.labels = None
        if layout == "pairs":
            data = resolver.pairs(cfg.dataset, cfg.split)
            n = len(data) if cfg.limit is None else min(cfg.limit, len(data))
            self.pairs = (data.sentence1[:n], data.sentence2[:n], data.scores[:n])
            inter = [t for pair in zip(self.pairs[0], self.pairs[1]) for t in pair]
            self.texts = [inter[i] for i in unique_first(inter)]
            self.dataset_name = data.info.name
        elif layout == "labelled":
            data = resolver.labelled(cfg.dataset, cfg.split)
            keep = unique_first(data.texts)
            keep = keep if cfg.limit is None else keep[:cfg.limit]
            self.texts = [data.texts[i] for i in keep]
            self.labels = data.labels[keep]
            self.n_classes = len(data.label_names)
            self.dataset_name = data.info.name
        else:
            raise UserError(f"check 'robustness' needs a pairs or labelled dataset, got "
                            f"layout '{layout}'", field="source")
        if len(self.texts) < 2:
            raise UserError(f"check '{self.id}': dataset '{cfg.dataset}' has fewer than 2 "
                            f"texts; the robustness check needs at least 2")
        self.perturbed: dict[str, list[str]] = {}
        store = getattr(resolver, "perturb_store", None)  # the run's cache, if any
        source = []

        def compute(p):
            kwargs = {}
            if p == "synonym":  # WordNet is read only when a synonym list is computed
                if not source:
                    source.append(SynonymSource())
                kwargs["source"] = source[0]
            return [perturb(p, t, cfg.rate, self.seed, **kwargs) for t in self.texts]

        for p in cfg.perturbations:
            self.perturbed[p] = perturbed_texts(p, self.texts, cfg.rate, self.seed, store,
                                                lambda p=p: compute(p))

    def needs(self):
        return [TextNeed("text", tuple(self.texts))] + [
            TextNeed("text", tuple(v)) for v in self.perturbed.values()]

    # evaluate -----------------------------------------------------------------------------
    def evaluate(self, vectors, encoder):
        cfg = self.config
        clean = np.asarray(vectors.get("text", self.texts), dtype=np.float32)
        n = len(self.texts)
        k = min(cfg.neighbours, n - 1)
        own = np.arange(n)
        clean_nn = top_k_neighbours(clean, clean, k, own)
        metrics: dict[str, Metric] = {}
        items: dict[str, list] = {}
        cos_all, overlap_all = [], []
        drops_dist, drops = [], []

        if self.layout == "pairs":
            s1, s2, gold = self.pairs
            index = {t: i for i, t in enumerate(self.texts)}
            i1 = np.fromiter((index[t] for t in s1), dtype=np.int64, count=len(s1))
            i2 = np.fromiter((index[t] for t in s2), dtype=np.int64, count=len(s2))
            clean_pair = cosine_rows(clean[i1], clean[i2])
            clean_sts = sts_scores(gold, clean_pair)["cosine_spearman"]
            boot = resample_indices(len(gold), self.n_boot, self.seed) if self.n_boot > 0 \
                and len(gold) > 1 else None
            clean_dist = (bootstrap_distribution("spearman", [gold, clean_pair], n_boot=0,
                                                 seed=self.seed, idx=boot)
                          if boot is not None else None)
            items["gold"] = gold.tolist()
            items["clean_pair_cosine"] = clean_pair.tolist()
        else:
            clean_correct = (knn_vote(clean_nn, self.labels, self.n_classes)
                             == self.labels).astype(np.float64)
            clean_acc = float(clean_correct.mean())
            boot = resample_indices(n, self.n_boot, self.seed) if self.n_boot > 0 else None
            clean_dist = clean_correct[boot].mean(axis=1) if boot is not None else None
            items["label"] = self.labels.tolist()
            items["clean_knn_correct"] = clean_correct.tolist()

        details = {"layout": self.layout, "rate": cfg.rate, "seed": self.seed, "texts": n,
                   "neighbours": k, "changed": {}, "samples": {}}
        if self.pairs is not None:
            details["pairs"] = len(self.pairs[2])

        for p in cfg.perturbations:
            pert_texts = self.perturbed[p]
            noisy = np.asarray(vectors.get("text", pert_texts), dtype=np.float32)
            cos = cosine_rows(clean, noisy)
            overlap = neighbour_overlap(clean_nn, top_k_neighbours(noisy, clean, k, own))
            cos_all.append(cos)
            overlap_all.append(overlap)
            items[f"{p}_cosine"] = cos.tolist()
            items[f"{p}_distance"] = (1.0 - cos).tolist()
            items[f"{p}_nn_overlap"] = overlap.tolist()
            metrics[f"{p}_mean_cosine"] = self.stat_metric("mean", {f"{p}_cosine": cos})
            metrics[f"{p}_fluctuation"] = self.stat_metric("mean", {f"{p}_distance": 1.0 - cos})
            metrics[f"{p}_nn_stability"] = self.stat_metric("mean", {f"{p}_nn_overlap": overlap})

            if self.layout == "pairs":
                pair = cosine_rows(noisy[i1], noisy[i2])
                items[f"{p}_pair_cosine"] = pair.tolist()
                score = sts_scores(gold, pair)["cosine_spearman"]
                metrics[f"{p}_sts_spearman"] = self.stat_metric(
                    "spearman", {"gold": gold, f"{p}_pair_cosine": pair}, value=score)
                dist = (bootstrap_distribution("spearman", [gold, pair], n_boot=0,
                                               seed=self.seed, idx=boot)
                        if boot is not None else None)
            else:
                correct = (knn_vote(top_k_neighbours(noisy, clean, k, own), self.labels,
                                    self.n_classes) == self.labels).astype(np.float64)
                items[f"{p}_knn_correct"] = correct.tolist()
                score = float(correct.mean())  # the perturbed task score
                metrics[f"{p}_knn_accuracy"] = self.stat_metric(
                    "mean", {f"{p}_knn_correct": correct})
                dist = correct[boot].mean(axis=1) if boot is not None else None
            base = clean_sts if self.layout == "pairs" else clean_acc
            drop = float(relative_drop(base, score))
            drop_dist = relative_drop(clean_dist, dist) if dist is not None else None
            drops.append(drop)
            drops_dist.append(drop_dist)
            name = "sts_drop" if self.layout == "pairs" else "knn_drop"
            metrics[f"{p}_{name}"] = Metric(
                value=drop, ci=_ci(drop_dist) if drop_dist is not None else None,
                n=len(gold) if self.layout == "pairs" else n)

            changed = [i for i in range(n) if pert_texts[i] != self.texts[i]]
            details["changed"][p] = len(changed) / n
            details["samples"][p] = [{"original": self.texts[i], "perturbed": pert_texts[i]}
                                     for i in changed[:cfg.samples]]

        cos_mean = np.mean(cos_all, axis=0)
        items["cosine_over_perturbations"] = cos_mean.tolist()
        items["distance_over_perturbations"] = (1.0 - cos_mean).tolist()
        items["nn_overlap_over_perturbations"] = np.mean(overlap_all, axis=0).tolist()
        agg = {
            "mean_cosine": self.stat_metric("mean", {"cosine_over_perturbations": cos_mean}),
            "fluctuation": self.stat_metric(
                "mean", {"distance_over_perturbations": 1.0 - cos_mean}),
            "nn_stability": self.stat_metric(
                "mean", {"nn_overlap_over_perturbations": np.mean(overlap_all, axis=0)}),
        }
        name = "sts_drop" if self.layout == "pairs" else "knn_drop"
        if self.layout == "pairs":
            agg["clean_sts_spearman"] = self.stat_metric(
                "spearman", {"gold": gold, "clean_pair_cosine": clean_pair}, value=clean_sts)
        else:
            agg["clean_knn_accuracy"] = self.stat_metric(
                "mean", {"clean_knn_correct": clean_correct})
        agg[name] = Metric(
            value=float(np.mean(drops)),
            ci=_ci(np.mean(drops_dist, axis=0)) if boot is not None else None,
            n=len(gold) if self.layout == "pairs" else n)
        return self.result({**agg, **metrics}, details=details, items=items)

"""Clustering of labelled texts: MiniBatchKMeans with k = number of gold labels over
several seeds; V-measure (main, mean and std over seeds), ARI and AMI (means), and the
geometry of the embedding space: silhouette (cosine) and Davies-Bouldin for the gold
labels and for the predicted clusters.

The clustering is MTEB's ``ClusteringEvaluator`` run once per seed: ``MiniBatchKMeans(
n_clusters=k, batch_size=500, n_init="auto", compute_labels=True, random_state=seed)``
fit on the vectors as the encoder returns them; seeds are ``seed, seed+1, ...``. V-measure
is scikit-learn's ``v_measure_score`` (as MTEB), its std the population std over seeds.

Silhouette uses cosine distance on a seeded sample of ``silhouette_sample`` items when
there are more (the sample size is each metric's ``n``); the predicted-cluster silhouette
and Davies-Bouldin are means over seeds. Davies-Bouldin is Euclidean (its definition in
scikit-learn), on all items. With ``field: subject`` leading "Re:" markers (any case,
repeated) are stripped so replies do not cluster by their prefix.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
from pydantic import Field

from evalharness.errors import UserError
from evalharness.results import Metric
from evalharness.components import ComponentConfig, TextNeed
from evalharness.tasks.base import Task
from evalharness.vectors_math import normalize_rows

_REPLY = re.compile(r"^\s*(?:re\s*:\s*)+", re.IGNORECASE)


class ClusteringConfig(ComponentConfig):
    type: Literal["clustering"] = "clustering"
    field: str = Field("text", description="text column to cluster: text | subject | any "
                                           "other string column of the dataset")
    n_seeds: int = Field(10, ge=1, description="MiniBatchKMeans runs (seeds seed..seed+n-1)")
    batch_size: int = Field(500, ge=1, description="MiniBatchKMeans batch size (MTEB: 500)")
    silhouette_sample: int = Field(2000, ge=3, description="silhouette on a seeded sample of "
                                                           "at most this many items")


def strip_reply(subject: str) -> str:
    """'Re: RE:re: Subject' -> 'Subject'."""
    return _REPLY.sub("", subject)


def kmeans_labels(x: np.ndarray, n_clusters: int, *, seed: int, batch_size: int = 500
                  ) -> np.ndarray:
    """Cluster assignments of MTEB's ClusteringEvaluator for one seed."""
    from sklearn.cluster import MiniBatchKMeans

    model = MiniBatchKMeans(n_clusters=n_clusters, batch_size=batch_size, n_init="auto",
                            compute_labels=True, random_state=seed)
    model.fit(x)
    return model.labels_


def partition_scores(gold, pred) -> dict[str, float]:
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, v_measure_score

    return {"v_measure": float(v_measure_score(gold, pred)),
            "ari": float(adjusted_rand_score(gold, pred)),
            "ami": float(adjusted_mutual_info_score(gold, pred))}


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """Pairwise cosine distance (float64), zero diagonal, clipped at 0."""
    u = normalize_rows(x).astype(np.float64)
    d = 1.0 - u @ u.T
    np.clip(d, 0.0, 2.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def silhouette_cosine(dist: np.ndarray, labels) -> float | None:
    """Silhouette of ``labels`` given precomputed distances; None when undefined."""
    from sklearn.metrics import silhouette_score

    k = len(np.unique(labels))
    if not 2 <= k <= len(labels) - 1:
        return None
    return float(silhouette_score(dist, labels, metric="precomputed"))


def davies_bouldin(x: np.ndarray, labels) -> float | None:
    from sklearn.metrics import davies_bouldin_score

    if not 2 <= len(np.unique(labels)) <= len(labels) - 1:
        return None
    return float(davies_bouldin_score(x, labels))


def truncated_fraction(texts, encoder) -> float | None:
    """Fraction of texts longer than the encoder's max_seq_length, when it can tell."""
    if encoder is None or encoder.token_lengths is None or not encoder.max_seq_length:
        return None
    lengths = np.asarray(encoder.token_lengths(list(texts)))
    return float(np.mean(lengths > encoder.max_seq_length))


class ClusteringTask(Task):
    Config = ClusteringConfig
    metrics = {"v_measure": True, "ari": True, "ami": True, "silhouette_gold": True,
               "silhouette_pred": True, "davies_bouldin_gold": False,
               "davies_bouldin_pred": False, "truncated_fraction": False}
    main_metric = "v_measure"

    def load(self, resolver) -> None:
        cfg = self.config
        data = resolver.labelled(cfg.dataset, cfg.split)
        self.dataset_name = data.info.name
        if cfg.field != "text" and cfg.field not in data.fields:
            have = ", ".join(["text", *sorted(data.fields)])
            raise UserError(f"dataset '{data.info.name}' has no text column '{cfg.field}'",
                            field="field", hint=f"string columns there: {have}")
        n = cfg.limit or len(data)
        texts = data.field(cfg.field)[:n]
        if cfg.field == "subject":
            texts = [strip_reply(t) for t in texts]
        self.texts = texts
        self.labels = data.labels[:n]
        self.n_clusters = len(np.unique(self.labels))
        if not 2 <= self.n_clusters < len(self.labels):
            raise UserError(f"clustering needs at least 2 gold labels and more items than "
                            f"labels; got {self.n_clusters} labels over {len(self.labels)} "
                            f"items", hint="check the dataset, or raise 'limit'")

    def needs(self):
        return [TextNeed("text", tuple(self.texts))]

    def evaluate(self, vectors, encoder):
        cfg = self.config
        x = vectors.get("text", self.texts)
        gold, n = self.labels, len(self.labels)
        seeds = [self.seed + i for i in range(cfg.n_seeds)]
        preds = [kmeans_labels(x, self.n_clusters, seed=s, batch_size=cfg.batch_size)
                 for s in seeds]
        scores = [partition_scores(gold, p) for p in preds]

        m = min(n, cfg.silhouette_sample)
        sample = (np.arange(n) if m == n else
                  np.sort(np.random.default_rng(self.seed).choice(n, m, replace=False)))
        dist = cosine_distances(x[sample])
        sil_pred = [silhouette_cosine(dist, p[sample]) for p in preds]
        db_pred = [davies_bouldin(x, p) for p in preds]

        def mean_std(values):
            vals = [v for v in values if v is not None]
            if not vals:
                return None, None
            return float(np.mean(vals)), float(np.std(vals))

        metrics = {}
        for name in ("v_measure", "ari", "ami"):
            v, s = mean_std([sc[name] for sc in scores])
            metrics[name] = Metric(value=v, std=s, n=n)
        metrics["silhouette_gold"] = Metric(value=silhouette_cosine(dist, gold[sample]), n=m)
        v, s = mean_std(sil_pred)
        metrics["silhouette_pred"] = Metric(value=v, std=s, n=m)
        metrics["davies_bouldin_gold"] = Metric(value=davies_bouldin(x, gold), n=n)
        v, s = mean_std(db_pred)
        metrics["davies_bouldin_pred"] = Metric(value=v, std=s, n=n)
        details = {"field": cfg.field, "n_clusters": self.n_clusters, "n": n, "seeds": seeds,
                   "batch_size": cfg.batch_size, "silhouette_sample": m,
                   "per_seed": {k: [sc[k] for sc in scores] for k in scores[0]}}
        frac = truncated_fraction(self.texts, encoder)
        if frac is not None:
            metrics["truncated_fraction"] = Metric(value=frac, n=n)
            details["max_seq_length"] = encoder.max_seq_length
        return self.result(metrics, details=details)

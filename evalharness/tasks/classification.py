"""Classification of labelled texts from their embeddings: accuracy (main), macro-F1,
weighted-F1, and a confusion matrix for the report.

Protocols (``protocol:``):

- ``linear-probe``: scikit-learn ``LogisticRegression`` (lbfgs, C=1, ``max_iter`` 1000) fit
  on the embeddings of the whole train split, scored on the test split.
- ``mteb-fewshot``: MTEB's ``AbsTaskClassification`` protocol, reproduced exactly:
  ``n_experiments`` (10) experiments, each trains ``LogisticRegression(max_iter=100,
  random_state=seed)`` on ``samples_per_label`` (8) train items per label and predicts the
  whole test split. The train items are drawn as MTEB draws them: one list of train
  indices is shuffled in place by a fresh ``np.random.RandomState(seed)`` before every
  experiment (so experiment i uses the seed's permutation applied i+1 times), then the
  first ``samples_per_label`` indices of each label are kept, in shuffled order. Vectors
  are used as the encoder returns them (MTEB does not normalise). Scores are the means
  over experiments, with ``Metric.std`` the (population) standard deviation over them.
- ``knn``: ``k`` nearest train neighbours by cosine similarity, majority vote
  (scikit-learn ``KNeighborsClassifier``, brute force; ties go to the smallest label).

Without a train split (``train_split: null``, or a dataset that has no such split) every
protocol runs on stratified ``folds``-fold cross-validation of the test split
(``StratifiedKFold(shuffle=True, random_state=seed)``): each item is predicted once, by a
model trained on the other folds, and ``details["protocol_note"]`` says so.

Per-item arrays (``items``) for paired comparisons: ``id``, ``y_true``, ``y_pred``,
``correct``. ``accuracy`` is the ``mean`` of ``correct`` (bootstrap CI over test items);
for ``linear-probe`` and ``knn``, ``macro_f1`` is the ``macro_f1`` statistic of
``[y_true, y_pred]``. For ``mteb-fewshot``, ``correct`` is the fraction of experiments in
which the item was classified correctly, so its mean is exactly the mean accuracy over
experiments and the CI is over test items (the spread over training draws is ``std``);
``y_pred`` holds the first experiment's predictions, and the F1 scores (means over
experiments) carry ``std`` but no CI. The confusion matrix sums all experiments.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from pydantic import Field

from evalharness.errors import UserError
from evalharness.results import Metric
from evalharness.components import ComponentConfig, TextNeed
from evalharness.tasks.base import Task

DEFAULT_MAX_ITER = {"linear-probe": 1000, "mteb-fewshot": 100, "knn": None}


class ClassificationConfig(ComponentConfig):
    type: Literal["classification"] = "classification"
    protocol: Literal["linear-probe", "mteb-fewshot", "knn"] = "linear-probe"
    train_split: str | None = Field(
        "train", description="split to train on; null (or a missing split): k-fold on `split`")
    train_limit: int | None = Field(None, ge=1, description="use only the first N train items")
    k: int = Field(5, ge=1, description="knn: neighbours")
    n_experiments: int = Field(10, ge=1, description="mteb-fewshot: experiments")
    samples_per_label: int = Field(8, ge=1, description="mteb-fewshot: train items per label")
    max_iter: int | None = Field(None, ge=1, description="LogisticRegression max_iter; "
                                 "default 1000 (linear-probe), 100 (mteb-fewshot, as MTEB)")
    folds: int = Field(5, ge=2, description="folds when there is no train split")


# pure functions -----------------------------------------------------------------------

def first_per_label(order: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` indices of each label in ``order``, keeping ``order``'s order."""
    order = np.asarray(order, dtype=np.int64)
    lab = np.asarray(labels)[order]
    srt = np.argsort(lab, kind="stable")
    lab_s = lab[srt]
    starts = np.r_[0, np.flatnonzero(lab_s[1:] != lab_s[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(lab_s)])
    rank = np.empty(len(lab), dtype=np.int64)
    rank[srt] = np.arange(len(lab_s)) - np.repeat(starts, sizes)
    return order[rank < k]


def mteb_undersample(labels: np.ndarray, *, n_experiments: int, samples_per_label: int,
                     seed: int) -> list[np.ndarray]:
    """Train indices of each experiment, exactly as MTEB's ``_undersample_data`` picks them.

    MTEB shuffles one index list in place with a fresh ``RandomState(seed)`` per
    experiment; the shuffle is a fixed permutation ``p`` (it does not depend on the
    list's contents), so after experiment i the list is ``arange(n)`` permuted i+1 times.
    """
    n = len(labels)
    perm = np.random.RandomState(seed).permutation(n)
    order = np.arange(n)
    out = []
    for _ in range(n_experiments):
        order = order[perm]
        out.append(first_per_label(order, labels, samples_per_label))
    return out


def logreg_predict(x_train, y_train, x_test, *, max_iter: int, seed: int
                   ) -> tuple[np.ndarray, bool]:
    """LogisticRegression (lbfgs, C=1) predictions and whether the fit converged."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y_train)) < 2:
        raise UserError("the training data has a single label: a classifier needs at least "
                        "two", hint="check the train split's labels, or raise train_limit")
    clf = LogisticRegression(max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    return clf.predict(x_test), bool(np.all(np.asarray(clf.n_iter_) < max_iter))


def knn_predict(x_train, y_train, x_test, *, k: int) -> np.ndarray:
    """Majority vote of the ``k`` most cosine-similar train items (ties: smallest label)."""
    from sklearn.neighbors import KNeighborsClassifier

    if k > len(y_train):
        raise UserError(f"knn needs k <= the number of train items; got k={k} with "
                        f"{len(y_train)} train items", hint="lower 'k'")
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    return clf.fit(x_train, y_train).predict(x_test)


def classification_scores(y_true, y_pred) -> dict[str, float]:
    """Accuracy, macro-F1 and weighted-F1 (scikit-learn, as MTEB computes them)."""
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
            "weighted_f1": float(f1_score(y_true, y_pred, average="weighted"))}


def confusion(y_true: np.ndarray, preds: np.ndarray, n_labels: int) -> np.ndarray:
    """Confusion counts (rows: gold, columns: predicted) summed over rows of ``preds``."""
    preds = np.atleast_2d(preds)
    flat = (np.asarray(y_true)[None, :] * n_labels + preds).ravel()
    return np.bincount(flat, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def predict(protocol: str, x_train, y_train, x_test, *, k: int = 5, max_iter: int = 100,
            n_experiments: int = 10, samples_per_label: int = 8, seed: int = 42
            ) -> tuple[np.ndarray, list[bool]]:
    """Predictions of shape (experiments, n_test) and the convergence flag of each fit."""
    if protocol == "linear-probe":
        pred, ok = logreg_predict(x_train, y_train, x_test, max_iter=max_iter, seed=seed)
        return pred[None, :], [ok]
    if protocol == "knn":
        return knn_predict(x_train, y_train, x_test, k=k)[None, :], []
    if protocol == "mteb-fewshot":
        runs = [logreg_predict(x_train[sel], y_train[sel], x_test, max_iter=max_iter, seed=seed)
                for sel in mteb_undersample(y_train, n_experiments=n_experiments,
                                            samples_per_label=samples_per_label, seed=seed)]
        return np.stack([p for p, _ in runs]), [ok for _, ok in runs]
    raise ValueError(f"unknown protocol {protocol!r}")


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    if len(y) < folds:
        raise UserError(f"{folds}-fold cross-validation needs at least {folds} items, "
                        f"got {len(y)}", hint="lower 'folds' or raise 'limit'")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a label with fewer members than folds is fine here
        warnings.simplefilter("ignore", UserWarning)
        return list(skf.split(np.zeros(len(y)), y))


def align_labels(train, test) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Train and test label codes on one shared scale, matched by label name."""
    names = list(train.label_names)
    for name in test.label_names:
        if name not in names:
            names.append(name)
    if len(set(names)) != len(names):
        raise UserError("two labels share one label_name", source=train.info.path,
                        hint="label_name must be unique per label")
    code = {n: i for i, n in enumerate(names)}
    tr = np.array([code[n] for n in train.label_names], dtype=np.int64)[train.labels]
    te = np.array([code[n] for n in test.label_names], dtype=np.int64)[test.labels]
    return tr, te, names


# the task ------------------------------------------------------------------------------

class ClassificationTask(Task):
    Config = ClassificationConfig
    metrics = {"accuracy": True, "macro_f1": True, "weighted_f1": True}
    main_metric = "accuracy"

    def load(self, resolver) -> None:
        cfg = self.config
        test = resolver.labelled(cfg.dataset, cfg.split)
        self.dataset_name = test.info.name
        n = cfg.limit or len(test)
        self.test_texts = test.texts[:n]
        self.test_ids = (test.ids or list(range(len(test))))[:n]
        self.protocol_note = None
        self.cross_validation = (cfg.train_split is None
                                 or not resolver.has_split(cfg.dataset, cfg.train_split))
        if cfg.train_split is not None and cfg.train_split == cfg.split:
            raise UserError(f"train_split and split are both '{cfg.split}': the classifier "
                            f"would be scored on its own training data",
                            hint="use train_split: null for k-fold cross-validation on the "
                                 "test split")
        if self.cross_validation:
            self.y_test, self.label_names = test.labels[:n], list(test.label_names)
            self.train_texts, self.y_train = [], np.zeros(0, dtype=np.int64)
            why = ("train_split is null" if cfg.train_split is None else
                   f"dataset '{test.info.name}' has no '{cfg.train_split}' split")
            self.protocol_note = (f"{why}: stratified {cfg.folds}-fold cross-validation on "
                                  f"the '{cfg.split}' split (seed {self.seed}); each item is "
                                  f"predicted by a model trained on the other folds")
            self.folds = stratified_folds(self.y_test, cfg.folds, self.seed)
        else:
            train = resolver.labelled(cfg.dataset, cfg.train_split)
            y_train, y_test, self.label_names = align_labels(train, test)
            m = cfg.train_limit or len(train)
            self.train_texts, self.y_train = train.texts[:m], y_train[:m]
            self.y_test = y_test[:n]
        self.max_iter = cfg.max_iter or DEFAULT_MAX_ITER[cfg.protocol]
        # few-shot needs only the train items some experiment draws (as MTEB encodes them)
        self.train_rows = np.arange(len(self.train_texts))
        if cfg.protocol == "mteb-fewshot" and not self.cross_validation:
            sels = mteb_undersample(self.y_train, n_experiments=cfg.n_experiments,
                                    samples_per_label=cfg.samples_per_label, seed=self.seed)
            self.train_rows = np.unique(np.concatenate(sels))

    def needs(self):
        out = [TextNeed("text", tuple(self.test_texts))]
        if len(self.train_rows):
            out.append(TextNeed("text", tuple(self.train_texts[i] for i in self.train_rows)))
        return out

    def _predict(self, x_train, y_train, x_test) -> tuple[np.ndarray, list[bool]]:
        cfg = self.config
        return predict(cfg.protocol, x_train, y_train, x_test, k=cfg.k, max_iter=self.max_iter,
                       n_experiments=cfg.n_experiments, samples_per_label=cfg.samples_per_label,
                       seed=self.seed)

    def evaluate(self, vectors, encoder):
        x_test = vectors.get("text", self.test_texts)
        if self.cross_validation:
            preds, converged = None, []
            for tr, te in self.folds:
                p, ok = self._predict(x_test[tr], self.y_test[tr], x_test[te])
                if preds is None:
                    preds = np.empty((p.shape[0], len(self.y_test)), dtype=np.int64)
                preds[:, te] = p
                converged += ok
        else:
            x_train = np.zeros((len(self.train_texts), x_test.shape[1]), dtype=x_test.dtype)
            x_train[self.train_rows] = vectors.get(
                "text", [self.train_texts[i] for i in self.train_rows])
            preds, converged = self._predict(x_train, self.y_train, x_test)
        return self._result(np.asarray(preds, dtype=np.int64), converged)

    def _result(self, preds: np.ndarray, converged: list[bool]):
        cfg, y = self.config, self.y_test
        per_exp = [classification_scores(y, p) for p in preds]
        mean = {m: float(np.mean([s[m] for s in per_exp])) for m in per_exp[0]}
        n = len(y)
        correct = (preds == y[None, :]).mean(axis=0)
        if len(preds) == 1:
            correct = correct.astype(np.int64)
            metrics = {
                "accuracy": self.stat_metric("mean", {"correct": correct},
                                             value=mean["accuracy"]),
                "macro_f1": self.stat_metric("macro_f1", {"y_true": y, "y_pred": preds[0]},
                                             value=mean["macro_f1"]),
                "weighted_f1": Metric(value=mean["weighted_f1"], n=n),
            }
        else:
            std = {m: float(np.std([s[m] for s in per_exp])) for m in per_exp[0]}
            metrics = {"accuracy": self.stat_metric("mean", {"correct": correct},
                                                    value=mean["accuracy"])}
            metrics["accuracy"].std = std["accuracy"]
            for m in ("macro_f1", "weighted_f1"):
                metrics[m] = Metric(value=mean[m], n=n, std=std[m])
        details = {
            "protocol": cfg.protocol,
            "labels": self.label_names,
            "confusion_matrix": confusion(y, preds, len(self.label_names)).tolist(),
            "n_test": n,
            "n_train": len(self.y_test) if self.cross_validation else len(self.y_train),
            "train_split": None if self.cross_validation else cfg.train_split,
        }
        if self.protocol_note:
            details["protocol_note"] = self.protocol_note
            details["folds"] = cfg.folds
        if cfg.protocol == "knn":
            details["k"] = cfg.k
        else:
            details["max_iter"] = self.max_iter
            details["converged"] = all(converged)
            details["fits_not_converged"] = int(sum(not c for c in converged))
        if cfg.protocol == "mteb-fewshot":
            details.update(n_experiments=cfg.n_experiments,
                           samples_per_label=cfg.samples_per_label,
                           per_experiment={m: [s[m] for s in per_exp] for m in per_exp[0]},
                           items_note="correct: fraction of experiments that got the item "
                                      "right; y_pred: experiment 1; confusion matrix: sum "
                                      "over experiments")
        items = {"id": list(self.test_ids), "y_true": y.tolist(), "y_pred": preds[0].tolist(),
                 "correct": correct.tolist()}
        return self.result(metrics, details=details, items=items)

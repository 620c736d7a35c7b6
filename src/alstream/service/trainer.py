"""Model versions for the service: when to train, how, and which version serves.

A version is trained in full from every current label (:func:`retrain`, a pure function: labels in,
a model version out), or updated online (``partial_fit``) from the newest labels only. Selection
always uses the newest *finished* version: a new one becomes ``current`` only after training
succeeded; a failed training (an estimator error, labels of one class only, probabilities that are
not finite) leaves the previous one serving.

>>> from sklearn.linear_model import LogisticRegression
>>> version = retrain(LogisticRegression(), np.array([[0.0], [1.0]]), np.array(["a", "b"]), number=1)
>>> version.version, version.kind, version.n_labels
(1, 'full', 2)
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.pipeline import make_pipeline

from alstream.errors import NoModelYet
from alstream.learning import estimators
from alstream.learning.estimators import Classifier


@dataclass(frozen=True)
class ModelVersion:
    """A trained model and what it was trained on."""

    version: int
    model: Classifier
    kind: str  # "full" or "online"
    n_labels: int
    created_at: float
    metrics: dict[str, float] = field(default_factory=dict)
    last_label_id: int = 0  # the newest stored label event it was trained with (0: unknown)
    train_s: float = 0.0  # how long training took, seconds (ending at created_at)


@dataclass(frozen=True)
class RetrainPolicy:
    """Full retrain after ``after_labels`` new labels, or every ``interval_s`` when any are new
    (``full_here`` False: full retrains run elsewhere, a Prefect deployment; online updates only)."""

    after_labels: int = 20
    interval_s: float = 30.0
    online: bool = True
    full_every: int = 5  # with online updates, a full refit every that many versions
    min_per_class: int = 2
    full_here: bool = True

    def cold(self, counts: dict[str, int], classes: list[str]) -> bool:
        """Too few labels per class to train: the queue serves random samples."""
        return any(counts.get(c, 0) < self.min_per_class for c in classes)

    def wants_full(self, new_labels: int, since_s: float, online_versions: int) -> bool:
        return new_labels > 0 and (
            new_labels >= self.after_labels
            or since_s >= self.interval_s
            or online_versions >= self.full_every
        )


class Trainer:
    """Holds the serving model version and trains the next one."""

    def __init__(
        self,
        model_name: str,
        classes: list[str],
        policy: RetrainPolicy,
        seed: int = 0,
        *,
        standardize: bool = True,
    ) -> None:
        model = estimators.make_model(model_name, seed)  # a pipeline either way: its last step is the model
        self.prototype = (
            estimators.standardized(model) if standardize else make_pipeline("passthrough", model)
        )
        self.classes = np.asarray(classes)
        self.policy = policy
        self.current: ModelVersion | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.failed_version = 0
        self._lock = threading.Lock()
        self._next_version = 1
        self._online_since_full = 0

    @property
    def online(self) -> bool:
        return self.policy.online and estimators.supports_partial_fit(self.prototype)

    def start_at(self, version: int) -> None:
        """Continue numbering after the versions already recorded."""
        self._next_version = max(self._next_version, version + 1)

    def train_full(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> ModelVersion:
        """A new version trained on all of ``X``, ``y`` (rows weighted by ``sample_weight``); becomes
        current if training succeeds."""
        return self.finish(self.full_fit(X, y, sample_weight), "full")

    def update_online(self, X: np.ndarray, y: np.ndarray, n_labels: int) -> ModelVersion:
        """A new version updated from the newest labels only (``partial_fit`` on a copy);
        ``n_labels`` is how many labels the model has now seen in all."""
        return self.finish(self.online_fit(X, y, n_labels), "online")

    def full_fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> Callable[[], ModelVersion]:
        """A full retrain on ``X``, ``y`` to run on any thread (it reads the prototype and nothing
        else here); :meth:`finish` makes what it returns the next version."""
        return functools.partial(retrain, self.prototype, X, y, number=0, sample_weight=sample_weight)

    def online_fit(self, X: np.ndarray, y: np.ndarray, n_labels: int) -> Callable[[], ModelVersion]:
        """An online update of the current version on ``X``, ``y`` to run on any thread (on a copy of
        its model); :meth:`finish` makes what it returns the next version."""
        base = self.current
        if base is None:
            raise NoModelYet("no model to update yet: train one in full first")
        return functools.partial(update, base, X, y, self.classes, number=0, n_labels=n_labels)

    def finish(self, fitted: Callable[[], ModelVersion], kind: str) -> ModelVersion:
        """The version ``fitted()`` returns (a :meth:`full_fit` or :meth:`online_fit`, run anywhere),
        numbered now, becomes current; raises the fit's error, keeping the previous one."""
        return self._publish(lambda number: dataclasses.replace(fitted(), version=number), kind)

    def restore(self, version: ModelVersion) -> None:
        """Serve ``version`` (saved by an earlier run) and number the next ones after it."""
        with self._lock:
            self.current = version
            self._next_version = max(self._next_version, version.version + 1)
            self._online_since_full = 0

    @property
    def next_version(self) -> int:
        """The number the next version (trained or failed) gets."""
        return self._next_version

    def _publish(self, make: Callable[[int], ModelVersion], kind: str) -> ModelVersion:
        """``make(number)`` becomes the current version, or fails keeping the previous one (and says why)."""
        try:
            version = make(self._next_version)
        except Exception as error:  # keep serving the previous version, say why
            with self._lock:
                self.failed_version = self._next_version  # a failed version keeps its number
                self._next_version += 1
            self.failures += 1
            self.last_error = (
                f"version {self.failed_version} ({kind}) failed: {type(error).__name__}: {error}"
            )
            raise
        with self._lock:
            self._next_version += 1
            self._online_since_full = self._online_since_full + 1 if kind == "online" else 0
            self.current = version
            self.last_error = None
            return version

    @property
    def online_since_full(self) -> int:
        return self._online_since_full


def retrain(
    prototype: Classifier,
    X: np.ndarray,
    y: np.ndarray,
    *,
    number: int,
    sample_weight: np.ndarray | None = None,
    fit: Callable[..., Classifier] = estimators.fit,
) -> ModelVersion:
    """Version ``number``: ``prototype`` refit on every label (``X``, ``y``; rows weighted by
    ``sample_weight``). Labels in, a model version out: nothing else is read or changed. Raises when
    training fails (labels of one class only, an estimator error, a model that diverged)."""
    started = time.perf_counter()
    classes = np.unique(y)
    if len(classes) < 2:
        found = f"every label is {str(classes[0])!r}" if len(classes) else "there are no labels"
        raise ValueError(f"{found}: a model needs labels of at least two classes")
    model = fit(prototype, X, y) if sample_weight is None else fit(prototype, X, y, sample_weight)
    _check_finite(model, X)
    return ModelVersion(number, model, "full", len(y), time.time(), train_s=time.perf_counter() - started)


def update(
    base: ModelVersion, X: np.ndarray, y: np.ndarray, classes: np.ndarray, *, number: int, n_labels: int
) -> ModelVersion:
    """Version ``number``: a copy of ``base``'s model updated with ``partial_fit`` on ``X``, ``y``
    (``n_labels``: how many labels it has seen in all). Raises when the update fails or diverges."""
    started = time.perf_counter()
    model = estimators.update(base.model, X, y, classes)
    _check_finite(model, X)
    return ModelVersion(number, model, "online", n_labels, time.time(), train_s=time.perf_counter() - started)


def _check_finite(model: Classifier, X: np.ndarray) -> None:
    """Refuse a model whose probabilities on its own training data are not all finite."""
    if len(X) and not np.isfinite(model.predict_proba(X)).all():
        raise FloatingPointError("the model diverged: its probabilities on the training data are not finite")

"""A full retrain is a pure function: labels in, a model version out."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from alstream.errors import AlstreamError
from alstream.learning import estimators
from alstream.service.trainer import retrain
from alstream.service.trainer_role import full_retrain
from alstream.settings import Settings
from alstream.store import Store

from .test_trainer_role import Labeler

X, Y = load_digits(return_X_y=True)
Y = Y.astype(str)


def test_a_full_retrain_depends_on_the_labels_only_and_changes_nothing():
    prototype = estimators.standardized(estimators.make_model("logreg", 0))
    first = retrain(prototype, X[:300], Y[:300], number=3)
    again = retrain(prototype, X[:300], Y[:300], number=3)
    assert (first.version, first.kind, first.n_labels) == (3, "full", 300)
    assert first.train_s > 0 and first.created_at >= first.train_s
    np.testing.assert_array_equal(first.model.predict_proba(X), again.model.predict_proba(X))
    assert not hasattr(prototype[-1], "classes_")  # the prototype is left as it was: unfitted


def test_labels_of_one_class_are_refused():
    prototype = estimators.standardized(estimators.make_model("logreg", 0))
    with pytest.raises(ValueError, match="every label is '3': a model needs labels of at least two classes"):
        retrain(prototype, X[Y == "3"], Y[Y == "3"], number=1)


class OutOfMemory(LogisticRegression):
    """A test-only estimator that never trains."""

    def fit(self, X, y, sample_weight=None):
        raise MemoryError("out of memory")


def test_a_full_retrain_that_fails_raises_an_alstream_error_saying_why(tmp_path, monkeypatch):
    monkeypatch.setitem(estimators.MODELS, "out_of_memory", lambda seed: OutOfMemory())
    database = f"sqlite:///{tmp_path}/alstream.db"
    store = Store(database)
    store.create()
    Labeler(store).label(40)  # past the cold start: a full retrain is due
    store.close()
    settings = Settings(data_dir=tmp_path / "data", database_url=database, demo=False, model="out_of_memory")
    with pytest.raises(AlstreamError, match=r"version 1 \(full\) failed: MemoryError: out of memory"):
        full_retrain(settings, track=False)
    store = Store(database)
    [failed] = store.models()
    store.close()
    assert failed["status"] == "failed"

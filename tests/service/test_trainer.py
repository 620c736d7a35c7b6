"""A full retrain is a pure function: labels in, a model version out."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alstream.learning import estimators
from alstream.service.trainer import retrain

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

import numpy as np
from sklearn.linear_model import LogisticRegression

from alstream.learning.evaluation import aligned_proba, evaluate


def test_a_model_that_never_saw_a_class_still_scores_against_all_classes():
    X = np.array([[0.0], [0.1], [2.0], [2.1]])
    model = LogisticRegression().fit(X, [0, 0, 2, 2])  # class 1 never labeled yet
    classes = np.array([0, 1, 2])
    proba = aligned_proba(model, X, classes)
    assert proba.shape == (4, 3) and (proba[:, 1] == 0).all()
    metrics = evaluate(model, np.vstack([X, [[1.0]]]), np.array([0, 0, 2, 2, 1]), classes)
    assert metrics["accuracy"] == 0.8
    assert np.isfinite(metrics["log_loss"])
    assert 0 < metrics["macro_f1"] < 1

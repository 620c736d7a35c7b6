"""Tests for query by committee: the disagreement measures, the committee, and the picks."""

import numpy as np
import pytest
from modAL.disagreement import KL_max_disagreement, max_disagreement_sampling, vote_entropy
from modAL.models import ActiveLearner, Committee
from skactiveml.pool import _query_by_committee as skactiveml_qbc
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from alstream.learning import committee as qbc
from alstream.learning.committee import QueryByCommittee, fit_committee, kl_disagreement, member_proba
from alstream.learning.estimators import make_model, standardized


@pytest.fixture(scope="module")
def pool():
    X, y = make_classification(
        600, n_features=8, n_informative=5, n_classes=3, n_clusters_per_class=2, random_state=0
    )
    labeled = np.arange(0, 600, 10)
    labels = np.where(np.isin(np.arange(600), labeled), y, -1)  # -1: not read
    return X, labels, labeled, np.setdiff1d(np.arange(600), labeled)


def test_measures_by_hand():
    # 3 members, 3 samples: all agree; 2 against 1; three ways
    proba = np.array(
        [
            [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.5, 0.3, 0.2]],
            [[0.7, 0.2, 0.1], [0.6, 0.2, 0.2], [0.2, 0.5, 0.3]],
            [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]],
        ]
    )
    np.testing.assert_allclose(
        qbc.vote_entropy(proba), [0.0, -(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)), np.log(3)]
    )
    consensus = proba.mean(axis=0)
    kl = (proba * np.log(proba / consensus)).sum(axis=2)
    np.testing.assert_allclose(kl_disagreement(proba), kl.mean(axis=0))
    np.testing.assert_allclose(kl_disagreement(proba, reduce="max"), kl.max(axis=0))
    same = np.repeat(proba[:1], 4, axis=0)
    np.testing.assert_allclose(kl_disagreement(same), 0.0, atol=1e-15)
    # a zero probability adds nothing, and no NaN
    assert kl_disagreement(np.array([[[1.0, 0.0]], [[1.0, 0.0]]])).tolist() == [0.0]
    with pytest.raises(ValueError, match="members, samples, classes"):
        qbc.vote_entropy(proba[0])
    with pytest.raises(ValueError, match="mean or max"):
        kl_disagreement(proba, reduce="sum")


def test_the_committee_resamples_every_class_and_seeds_its_members(pool):
    X, labels, labeled, _ = pool
    y = labels[labeled]
    members = fit_committee(make_model("sgd"), X[labeled], y, n_members=4, seed=2)
    assert len({m.random_state for m in members}) == 4
    assert all(m.classes_.tolist() == [0, 1, 2] for m in members)  # every class in every bootstrap
    coefs = [m.coef_ for m in members]
    assert not np.allclose(coefs[0], coefs[1])
    again = fit_committee(make_model("sgd"), X[labeled], y, n_members=4, seed=2)
    for a, b in zip(members, again, strict=True):
        np.testing.assert_array_equal(a.coef_, b.coef_)
    # a pipeline's steps are seeded too; bagging=False fits all members on all the labels
    piped = fit_committee(standardized(make_model("sgd")), X[labeled], y, n_members=2, bagging=False, seed=2)
    assert [m[-1].random_state for m in piped] == [m.random_state for m in members[:2]]
    huge = fit_committee(
        make_model("sgd"), X[labeled], y, n_members=2, seed=2**63
    )  # any seed: 31-bit members
    assert all(0 <= m.random_state < 2**31 for m in huge)
    plain = fit_committee(LogisticRegression(max_iter=1000), X[labeled], y, n_members=2, bagging=False)
    np.testing.assert_allclose(plain[0].coef_, plain[1].coef_)
    with pytest.raises(ValueError, match="at least 2 members"):
        fit_committee(LogisticRegression(), X[labeled], y, n_members=1)


def test_member_proba_puts_each_class_in_its_column(pool):
    X, labels, labeled, _ = pool
    two = labeled[labels[labeled] != 1]
    members = [LogisticRegression(max_iter=1000).fit(X[two], labels[two])]
    proba = member_proba(members, X[:5], np.array([0, 1, 2]))
    assert proba.shape == (1, 5, 3)
    np.testing.assert_array_equal(proba[0, :, 1], 0.0)
    np.testing.assert_allclose(proba[0][:, [0, 2]], members[0].predict_proba(X[:5]))


def _modal_committee(members):
    return Committee(learner_list=[ActiveLearner(estimator=m) for m in members])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("model", ["logreg", "random_forest"])
def test_same_scores_and_picks_as_modal(pool, seed, model):
    X, labels, labeled, unlabeled = pool
    estimator = LogisticRegression(max_iter=1000) if model == "logreg" else RandomForestClassifier(20)
    members = fit_committee(estimator, X[labeled], labels[labeled], seed=seed)
    modal = _modal_committee(members)
    classes = np.array([0, 1, 2])
    ours = member_proba(members, X[unlabeled], classes)
    np.testing.assert_allclose(qbc.vote_entropy(ours), vote_entropy(modal, X[unlabeled]), atol=1e-12)
    np.testing.assert_allclose(
        kl_disagreement(ours, reduce="max"), KL_max_disagreement(modal, X[unlabeled]), atol=1e-10
    )
    # the picks: QueryByCommittee trains the same members (same seed, same labels in id order)
    for k in (1, 15):
        picked = QueryByCommittee("vote").query(X, unlabeled, k, model=estimator, labels=labels, seed=seed)
        theirs = vote_entropy(modal, X[unlabeled])
        top = np.sort(theirs)[::-1][:k]
        np.testing.assert_allclose(picked.scores, top, atol=1e-12)  # vote entropy ties: the same scores
    if model == "logreg":  # continuous scores: the very same rows
        mean = QueryByCommittee("kl").query(X, unlabeled, 15, model=estimator, labels=labels, seed=seed)
        np.testing.assert_allclose(mean.scores, np.sort(kl_disagreement(ours))[::-1][:15])
        chosen, _ = max_disagreement_sampling(modal, X[unlabeled], n_instances=15)
        by_max = np.argsort(-kl_disagreement(ours, reduce="max"))[:15]
        assert set(by_max.tolist()) == set(np.asarray(chosen).tolist())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_scores_and_picks_as_scikit_activeml(pool, seed):
    X, labels, labeled, unlabeled = pool
    members = fit_committee(LogisticRegression(max_iter=1000), X[labeled], labels[labeled], seed=seed)
    ours = member_proba(members, X[unlabeled], np.array([0, 1, 2]))
    votes = np.stack([m.predict(X[unlabeled]) for m in members], axis=1)
    np.testing.assert_allclose(
        qbc.vote_entropy(ours), skactiveml_qbc.vote_entropy(votes, classes=[0, 1, 2]), atol=1e-12
    )
    theirs = skactiveml_qbc.average_kl_divergence(ours.copy())  # clips at 1e-7, then renormalizes
    np.testing.assert_allclose(kl_disagreement(ours), theirs, rtol=1e-4, atol=1e-6)
    picked = QueryByCommittee("kl").query(
        X, unlabeled, 20, model=LogisticRegression(max_iter=1000), labels=labels, seed=seed
    )
    assert set(picked.indices.tolist()) == set(unlabeled[np.argsort(-theirs)[:20]].tolist())


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_members_are_scored_together_as_predict_proba_would(n_classes, dtype, monkeypatch):
    X, y = make_classification(300, n_features=6, n_informative=4, n_classes=n_classes, random_state=1)
    members = fit_committee(LogisticRegression(max_iter=1000), X[:100], y[:100], n_members=3)
    expected = np.stack([m.predict_proba(X[100:]) for m in members])
    monkeypatch.setattr(LogisticRegression, "predict_proba", lambda self, X: 1 / 0)
    proba = member_proba(members, X[100:].astype(dtype), np.arange(n_classes))
    assert proba.shape == (3, 200, n_classes) and proba.dtype == np.float64
    np.testing.assert_allclose(proba, expected, rtol=1e-12 if dtype == np.float64 else 1e-4, atol=1e-12)


def test_chunks_do_not_change_the_picks(pool):
    X, labels, _, unlabeled = pool
    model = LogisticRegression(max_iter=1000)
    picks = [
        QueryByCommittee("kl").query(X, unlabeled, 10, model=model, labels=labels, chunk_size=size).indices
        for size in (7, 100, 10_000)
    ]
    np.testing.assert_array_equal(picks[0], picks[1])
    np.testing.assert_array_equal(picks[0], picks[2])


def test_bad_arguments_raise(pool):
    X, labels, _, unlabeled = pool
    model = LogisticRegression()
    with pytest.raises(ValueError, match="needs a fitted model"):
        QueryByCommittee().query(X, unlabeled, 3, labels=labels)
    with pytest.raises(ValueError, match="labels"):
        QueryByCommittee().query(X, unlabeled, 3, model=model)
    with pytest.raises(ValueError, match="vote, kl"):
        QueryByCommittee("bald").query(X, unlabeled, 3, model=model, labels=labels)

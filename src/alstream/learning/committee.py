"""Query by committee: copies of the model, trained on resampled labels, vote; ask where they disagree.

A committee is ``n_members`` clones of the model (``sklearn.base.clone``), each fitted on a bootstrap
of the labeled rows drawn class by class (so every member sees every class) and, where the model
takes a ``random_state``, seeded apart. Two measures of their disagreement, from the members'
probabilities ``member_proba`` of shape ``(members, samples, classes)``:

* ``vote_entropy``: the entropy of the members' hard votes (Dagan & Engelson 1995);
* ``kl_disagreement``: the mean KL divergence of each member from the consensus, the members' mean
  (McCallum & Nigam 1998); ``reduce="max"`` takes the largest instead, as modAL does.

>>> votes = np.array([[[0.9, 0.1], [0.6, 0.4]], [[0.8, 0.2], [0.3, 0.7]]])  # 2 members, 2 samples
>>> vote_entropy(votes).round(4).tolist()
[0.0, 0.6931]
>>> kl_disagreement(votes).round(4).tolist()
[0.01, 0.0462]

>>> from sklearn.datasets import load_iris
>>> from sklearn.linear_model import LogisticRegression
>>> X, y = load_iris(return_X_y=True)
>>> labels, unlabeled = np.where(np.arange(150) % 10 == 0, y, -1), np.flatnonzero(np.arange(150) % 10)
>>> qbc = QueryByCommittee("kl").query(X, unlabeled, 3, model=LogisticRegression(), labels=labels)
>>> len(set(qbc.indices.tolist())), bool(np.isin(qbc.indices, unlabeled).all())
(3, True)
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from alstream.learning.estimators import Classifier
from alstream.learning.inference import has_fast_path, linear_proba
from alstream.learning.pool_strategies import in_id_order, labeled_rows, needs_model
from alstream.learning.strategies import Selection, chunk_slices, entropy, select_from_chunks

DISAGREEMENTS = ("vote", "kl")
CHUNK = 8192  # rows whose members' probabilities are alive at once


def vote_entropy(member_proba: np.ndarray) -> np.ndarray:
    """The entropy (nats) of the share of members voting for each class, one value per sample.

    >>> vote_entropy(np.array([[[0.6, 0.4]], [[0.4, 0.6]], [[0.7, 0.3]]])).round(4).tolist()
    [0.6365]
    """
    member_proba = _three_d(member_proba)
    members, n, n_classes = member_proba.shape
    votes = np.argmax(member_proba, axis=2)  # (members, samples)
    shares = np.zeros((n, n_classes))
    for vote in votes:
        shares[np.arange(n), vote] += 1.0
    return entropy(shares / members)


def kl_disagreement(member_proba: np.ndarray, reduce: str = "mean") -> np.ndarray:
    """Each member's KL divergence from the consensus (the members' mean), averaged over members
    (``reduce="max"``: the largest), one value per sample; a zero probability adds nothing.

    >>> kl_disagreement(np.array([[[1.0, 0.0]], [[0.0, 1.0]]])).round(4).tolist()  # log 2
    [0.6931]
    """
    member_proba = _three_d(member_proba)
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be mean or max, got {reduce!r}")
    consensus = member_proba.mean(axis=0)
    if reduce == "mean":  # the consensus's entropy less the members' mean entropy: one log per value
        own = sum(entropy(proba) for proba in member_proba) / len(member_proba)
        return np.maximum(entropy(consensus) - own, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = member_proba * (np.log(member_proba) - np.log(consensus))
    terms[member_proba == 0] = 0.0
    return terms.sum(axis=2).max(axis=0)


def _three_d(member_proba: np.ndarray) -> np.ndarray:
    member_proba = np.asarray(member_proba)
    if member_proba.ndim != 3:
        raise ValueError(f"member_proba must be (members, samples, classes), got shape {member_proba.shape}")
    return member_proba


def fit_committee(
    model: Classifier,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_members: int = 5,
    bagging: bool = True,
    seed: int = 0,
) -> list[Classifier]:
    """``n_members`` fitted clones of ``model``: each on a class-by-class bootstrap of ``X, y``
    (``bagging=False``: all of it) and, if the model has a ``random_state``, its own seed.

    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    >>> [m.classes_.tolist() for m in fit_committee(LogisticRegression(), X, y, n_members=2)]
    [[0, 1], [0, 1]]
    """
    if n_members < 2:
        raise ValueError(f"a committee needs at least 2 members, got {n_members}")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    member_seeds = (
        np.random.SeedSequence(seed).generate_state(n_members) >> 1
    )  # 31 bits: any estimator takes them
    by_class = [np.flatnonzero(y == label) for label in np.unique(y)]
    members = []
    for i in range(n_members):
        member = clone(model)
        keys = [key for key in member.get_params() if key.split("__")[-1] == "random_state"]
        member.set_params(**dict.fromkeys(keys, int(member_seeds[i])))  # a pipeline's steps too
        rows = np.arange(len(y))
        if bagging:
            rows = np.sort(np.concatenate([rng.choice(c, size=len(c), replace=True) for c in by_class]))
        members.append(member.fit(X[rows], y[rows]))
    return members


def member_proba(members: list[Classifier], X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(members, samples, classes)``: each member's probabilities, a column per class of ``classes``.

    Logistic regressions that know every class are scored together: one matrix product in the
    pool's float type for all members, then a softmax per member in float64.
    """
    stacked = _stacked_linear(members, X, classes)
    if stacked is not None:
        weights, bias = stacked
        logits = np.matmul(X, weights).astype(np.float64, copy=False)
        logits += bias
        logits = logits.reshape(len(X), len(members), len(classes))
        logits -= logits.max(axis=2, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=2, keepdims=True)
        return logits.transpose(1, 0, 2)
    out = np.zeros((len(members), len(X), len(classes)))
    for i, member in enumerate(members):
        proba = linear_proba(member, X) if has_fast_path(member, X) else member.predict_proba(X)
        out[i][:, np.searchsorted(classes, member.classes_)] = proba
    return out


def _stacked_linear(
    members: list[Classifier], X: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The members' weights side by side ``(features, members x classes)`` in ``X``'s float type, and
    their biases, when every member is a fitted logistic regression on ``classes`` (binary: logits
    ``[0, z]``, whose softmax is ``[1 - sigmoid(z), sigmoid(z)]``); else None."""
    if not all(has_fast_path(m, X) and np.array_equal(m.classes_, classes) for m in members):
        return None
    weights, biases = [], []
    for member in members:
        coef, intercept = member.coef_, member.intercept_
        if len(coef) == 1 and len(classes) == 2:
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
        weights.append(coef)
        biases.append(intercept)
    return np.concatenate(weights).T.astype(X.dtype), np.concatenate(biases)


class QueryByCommittee:
    """Query by committee: rows where a committee of resampled copies of the model disagrees most.

    ``disagreement``: ``"vote"`` (vote entropy) or ``"kl"`` (mean KL divergence from the consensus);
    ``n_members``, ``bagging``: as in ``fit_committee``. The committee is trained anew at each query
    on the labels known then (``labels`` at the rows outside ``unlabeled``); ``members_`` keeps it.
    """

    def __init__(self, disagreement: str = "vote", n_members: int = 5, bagging: bool = True) -> None:
        self.disagreement = disagreement
        self.n_members = n_members
        self.bagging = bagging

    def query(
        self,
        X: np.ndarray,
        unlabeled: np.ndarray,
        k: int,
        *,
        model: Classifier | None = None,
        labels: np.ndarray | None = None,
        seed: int = 0,
        ids: np.ndarray | None = None,
        chunk_size: int = CHUNK,
    ) -> Selection:
        """The ``k`` rows of ``unlabeled`` the committee disagrees on most, most disputed first."""
        model = needs_model(model, "query by committee")
        if self.disagreement not in DISAGREEMENTS:
            raise ValueError(
                f"disagreement must be one of {', '.join(DISAGREEMENTS)}, got {self.disagreement!r}"
            )
        if labels is None:
            raise ValueError("query by committee trains its members: give the labels of the labeled rows")
        rows, ids = in_id_order(unlabeled, ids=ids, k=k, n=len(X))
        known = labeled_rows(len(X), rows, ids)
        y = np.asarray(labels)[known]
        self.members_ = fit_committee(
            model, X[known], y, n_members=self.n_members, bagging=self.bagging, seed=seed
        )
        top = query_committee(
            self.members_,
            X[rows],
            k,
            self.disagreement,
            classes=np.unique(y),
            seed=seed,
            ids=ids[rows],
            chunk_size=chunk_size,
        )
        return Selection(indices=rows[top.indices], scores=top.scores)


def query_committee(
    members: list[Classifier],
    X: np.ndarray,
    k: int,
    disagreement: str = "vote",
    *,
    classes: np.ndarray | None = None,
    seed: int = 0,
    ids: np.ndarray | None = None,
    chunk_size: int = CHUNK,
) -> Selection:
    """The ``k`` rows of ``X`` that fitted ``members`` disagree on most (``disagreement``: vote or kl),
    scored ``chunk_size`` rows at a time; ``classes`` default to every class a member knows.

    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    >>> members = [LogisticRegression(C=c).fit(X, y) for c in (0.01, 100.0)]
    >>> sorted(query_committee(members, X, 2, "kl").indices.tolist())  # they part most at the ends
    [0, 3]
    """
    if disagreement not in DISAGREEMENTS:
        raise ValueError(f"disagreement must be one of {', '.join(DISAGREEMENTS)}, got {disagreement!r}")
    if classes is None:
        classes = np.unique(np.concatenate([member.classes_ for member in members]))
    score = vote_entropy if disagreement == "vote" else kl_disagreement
    chunks = ((part, member_proba(members, X[part], classes)) for part in chunk_slices(len(X), chunk_size))
    return select_from_chunks(chunks, len(X), k, score, seed, ids)

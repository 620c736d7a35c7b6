import numpy as np

from alstream.messages import ProjectSchema
from alstream.service.featurize import HashedText, StoredFeatures, featurizer
from alstream.store import SampleRow, Store


def test_texts_hash_to_fixed_width_unit_rows_without_fitting():
    hash_texts = HashedText(width=64)
    texts = ["the match ended in a late goal", "simmer the sauce with garlic", "the match ended"]
    rows = hash_texts(texts)
    assert rows.shape == (3, 64) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert (rows >= 0).all()  # no alternating signs: counts only
    assert np.array_equal(HashedText(width=64)(texts[::-1]), rows[::-1])  # stateless: same text, same row
    assert hash_texts([]).shape == (0, 64)


def test_bigrams_tell_word_order_apart():
    rows = HashedText(width=2**12)(["dog bites man", "man bites dog", "dog bites man"])
    assert not np.array_equal(rows[0], rows[1])
    assert np.array_equal(rows[0], rows[2])


def test_the_project_picks_the_featurizer():
    texts = ProjectSchema(classes=["a", "b"], data="text")
    assert isinstance(featurizer(texts, 128), HashedText) and featurizer(texts, 128).width == 128
    assert featurizer(ProjectSchema.digits(), 128) == StoredFeatures(64)
    named = ProjectSchema(classes=["a", "b"], feature_names=["x", "y", "z"])
    assert featurizer(named, 128).width == 3


def test_texts_are_hashed_as_they_are_read_from_the_store(tmp_path):
    with Store(f"sqlite:///{tmp_path}/store.db") as store:
        store.create()
        store.add_samples([SampleRow("t1", None, "a first text"), SampleRow("t2", None, "a second one")])
        seqs, ids, rows = HashedText(width=32).after(store, 0, 10)
    assert ids == ["t1", "t2"] and len(seqs) == 2
    assert np.array_equal(rows, HashedText(width=32)(["a first text", "a second one"]))

import pytest

from alstream.idempotency import check_key, with_ids_from_key


def test_ids_depend_on_key_scope_and_place_and_stay_unique_in_a_batch():
    batch = [{"features": [float(i)]} for i in range(100)]
    ids = [item["id"] for item in with_ids_from_key(batch, key="k", scope="a")]
    assert len(set(ids)) == 100
    assert ids != [item["id"] for item in with_ids_from_key(batch, key="k", scope="b")]
    assert ids != [item["id"] for item in with_ids_from_key(batch, key="k2", scope="a")]
    assert with_ids_from_key(batch[0], key="k", scope="a")["id"] == ids[0]  # one object is index 0


def test_given_ids_labels_and_malformed_items_are_left_for_validation():
    batch = [
        {"id": "given", "features": [1.0]},
        {"id": None, "features": [1.0]},
        {"kind": "sample", "features": [1.0]},
        {"kind": "label", "id": "given", "label": "x"},
        {"kind": "nonsense"},
        "not an object",
    ]
    out = with_ids_from_key(batch, key="k")
    assert out[0]["id"] == "given" and out[1]["id"] and out[2]["id"]
    assert out[3:] == batch[3:]
    assert with_ids_from_key(42, key="k") == 42


@pytest.mark.parametrize(
    ("key", "why"), [("", "empty"), ("é", "ASCII"), ("a\nb", "ASCII"), ("k" * 201, "too long")]
)
def test_unusable_keys_say_why(key, why):
    with pytest.raises(ValueError, match=why):
        check_key(key)

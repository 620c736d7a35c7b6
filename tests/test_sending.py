import pandas as pd
import pytest

from alstream.sending import read_messages


def test_csv_rows_become_samples_with_named_features_ids_and_labels(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0], "y": [3.0, 4.0], "label": ["cat", None]}).to_csv(
        path, index=False
    )
    messages = read_messages(path)
    assert messages == [
        {"features": {"x": 1.0, "y": 3.0}, "id": "a", "label": "cat"},
        {"features": {"x": 2.0, "y": 4.0}, "id": "b"},
    ]


def test_jsonl_lines_are_taken_as_they_are_and_bad_files_are_refused(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"kind": "label", "id": "a", "label": "cat"}\n\n{"features": [1, 2]}\n')
    assert read_messages(path) == [{"kind": "label", "id": "a", "label": "cat"}, {"features": [1, 2]}]
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_messages(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        read_messages(path.rename(tmp_path / "data.txt"))

import numpy as np
import pandas as pd
import pytest

from alstream.errors import InvalidInput
from alstream.experiment.datasets import dataset_names, load_dataset


@pytest.mark.parametrize(
    ("name", "shape", "n_classes"),
    [
        ("digits", (1797, 64), 10),
        ("breast_cancer", (569, 30), 2),
        ("wine", (178, 13), 3),
        ("iris", (150, 4), 3),
    ],
)
def test_bundled_datasets_load_without_a_network(name, shape, n_classes):
    data = load_dataset(name)
    assert data.X.shape == shape and data.X.dtype == np.float64
    assert len(data.classes) == n_classes
    assert len(data.feature_names) == shape[1]


def test_generated_data_has_the_asked_size_and_is_reproducible():
    a = load_dataset("generated", n_samples=2000, n_features=50, n_classes=10, seed=1)
    b = load_dataset("generated", n_samples=2000, n_features=50, n_classes=10, seed=1)
    assert a.X.shape == (2000, 50) and len(a.classes) == 10
    np.testing.assert_array_equal(a.X, b.X)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_users_file_with_a_label_column(tmp_path, suffix):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0, 1, 0, 1], "target": ["x", "y", "x", "y"]})
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    data = load_dataset(str(path), label_column="target")
    assert data.X.shape == (4, 2) and data.feature_names == ("a", "b")
    assert data.y.tolist() == ["x", "y", "x", "y"] and data.name == "data"


def test_a_missing_label_column_names_the_columns(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"no label column 'label' \(columns: a, b\)"):
        load_dataset(str(path))


def test_text_features_and_missing_values_are_refused(tmp_path):
    text = tmp_path / "t.csv"
    pd.DataFrame({"a": ["x", "y"], "label": [0, 1]}).to_csv(text, index=False)
    with pytest.raises(ValueError, match="numeric, not a"):
        load_dataset(str(text))
    holes = tmp_path / "h.csv"
    pd.DataFrame({"a": [1.0, None], "label": [0, 1]}).to_csv(holes, index=False)
    with pytest.raises(ValueError, match="missing or infinite"):
        load_dataset(str(holes))


def test_unknown_names_and_missing_files_are_clear(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*digits"):
        load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_dataset(str(tmp_path / "nope.csv"))
    assert "generated" in dataset_names()


def test_data_that_cannot_be_made_or_read_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="generated data: n_classes"):
        load_dataset("generated", n_samples=100, n_features=3, n_classes=50)
    with pytest.raises(InvalidInput, match="10 samples cannot make 10 blocks of 2 or more: fewer drifts"):
        load_dataset("drift", n_samples=10, drifts=9)
    (tmp_path / "garbled.csv").write_bytes(b"a,label\n\xff\xfe,x\n")
    (tmp_path / "garbled.parquet").write_text("a,label\n1,x\n")
    for name in ("garbled.csv", "garbled.parquet"):
        with pytest.raises(InvalidInput, match=f"{name} cannot be read"):
            load_dataset(str(tmp_path / name))

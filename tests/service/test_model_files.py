"""Model versions saved as files: written atomically, read only from their folder, and served again
by a restarted engine, which skips a file that is missing, corrupt, foreign or outside the folder."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest

from alstream.service import model_files
from alstream.service.engine import Engine, EngineConfig
from alstream.service.model_files import ModelFiles
from alstream.service.trainer import RetrainPolicy
from alstream.store import LabelRow, SampleRow, Store

CLASSES = ["a", "b"]
PROBE = np.array([[0.0, 0.0], [1.0, 1.0], [0.4, 0.6], [3.0, -1.0]], dtype=np.float32)


@pytest.fixture
def store(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 0.3, (20, 2)), rng.normal(1, 0.3, (20, 2))]).astype(np.float32)
    store.add_samples([SampleRow(f"s{i}", row) for i, row in enumerate(points)])
    yield store
    store.close()


def engine_on(store: Store, folder: Path, model: str = "sgd") -> Engine:
    policy = RetrainPolicy(after_labels=1, online=False)
    config = EngineConfig(classes=CLASSES, n_features=2, model=model, policy=policy, track=False)
    return Engine(config, store, model_files=ModelFiles(folder, keep=20))


def label(store: Store, ids: range, offset: int = 0) -> None:
    rows = [LabelRow(f"s{i}", CLASSES[i >= 20], "ann", False, "labels:0", offset + i) for i in ids]
    store.add_labels(rows)


def train_versions(store: Store, folder: Path, n: int) -> dict[int, np.ndarray]:
    """``n`` full versions, each on more labels; returns each one's probabilities on PROBE."""
    engine = engine_on(store, folder)
    seen = {}
    try:
        for k in range(n):
            label(store, range(k, 40, 4), offset=100 * k)
            engine.sync()
            version = engine.train_step()
            assert version is not None
            seen[version.version] = version.model.predict_proba(PROBE)
    finally:
        engine.close()  # waits for the versions to be saved and recorded
    return seen


def test_a_restarted_engine_serves_the_last_saved_version_and_numbers_on(store, tmp_path):
    folder = tmp_path / "models"
    seen = train_versions(store, folder, 2)
    assert [(m["version"], m["path"]) for m in store.models()] == [
        (1, "v00000001-full.joblib"),
        (2, "v00000002-full.joblib"),
    ]
    engine = engine_on(store, folder)
    try:
        assert engine.serving is not None and engine.serving.version == 2
        assert engine.stats()["model_version"] == 2
        engine.sync()  # the pool fills, scored by the restored version: the queue is not a cold start
        items = engine.queue(3, "ann")
        assert {item.model_version for item in items} == {2}
        assert {item.reason for item in items} <= {"uncertainty", "random"}
        _, _, proba = engine.predict(PROBE)
        np.testing.assert_array_equal(proba, seen[2])
        assert engine.train_step() is None  # the stored labels are all in the restored version
        label(store, range(1, 40, 2), offset=1000)
        engine.sync()
        assert engine.train_step().version == 3
    finally:
        engine.close()
    assert [m["version"] for m in store.models()] == [1, 2, 3]


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),  # cut mid-write
        lambda path: path.write_bytes(os.urandom(2048)),
        lambda path: path.unlink(),
        lambda path: joblib.dump({"not": "a model"}, path),
    ],
    ids=["truncated", "garbage", "missing", "not-a-model"],
)
def test_a_damaged_newest_file_is_skipped_for_the_one_before(store, tmp_path, caplog, damage):
    folder = tmp_path / "models"
    seen = train_versions(store, folder, 2)
    damage(folder / "v00000002-full.joblib")
    with caplog.at_level(logging.WARNING, logger="alstream.service"):
        engine = engine_on(store, folder)
    try:
        assert engine.serving.version == 1
        np.testing.assert_array_equal(engine.predict(PROBE)[2], seen[1])
        assert "model version 2 is not restored from v00000002-full.joblib" in caplog.text
        label(store, range(1, 40, 2), offset=1000)
        engine.sync()
        assert engine.train_step().version == 3  # the damaged version's number is not reused
    finally:
        engine.close()


def test_files_are_read_only_from_the_models_folder(store, tmp_path, caplog):
    folder = tmp_path / "models"
    train_versions(store, folder, 1)
    outside = tmp_path / "v00000002-full.joblib"  # a loadable version, but not in the folder
    shutil.copy(folder / "v00000001-full.joblib", outside)
    os.symlink(outside, folder / "v00000003-full.joblib")
    for version, path in [(2, "../v00000002-full.joblib"), (3, "v00000003-full.joblib"), (4, str(outside))]:
        store.record_model(kind="full", n_labels=1, metrics={}, status="ok", path=path, version=version)
    with caplog.at_level(logging.WARNING, logger="alstream.service"):
        engine = engine_on(store, folder)
    try:
        assert engine.serving.version == 1
        assert caplog.text.count("model files are read only from") == 3
    finally:
        engine.close()


def test_a_version_made_for_other_settings_is_not_served(store, tmp_path, caplog):
    folder = tmp_path / "models"
    train_versions(store, folder, 1)
    with caplog.at_level(logging.WARNING, logger="alstream.service"):
        engine = engine_on(store, folder, model="random_forest")  # the settings changed the model
    try:
        assert engine.serving is None and engine.trainer.current is None
        assert "it is a SGDClassifier; the settings ask for RandomForestClassifier" in caplog.text
    finally:
        engine.close()


def test_a_write_that_fails_midway_leaves_no_file_under_the_version_name(store, tmp_path, monkeypatch):
    folder = tmp_path / "models"
    train_versions(store, folder, 1)
    version = ModelFiles(folder).load("v00000001-full.joblib")

    def crash(value, f):
        f.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(model_files.joblib, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        ModelFiles(folder).save(dataclasses.replace(version, version=2))
    assert sorted(p.name for p in folder.iterdir()) == ["v00000001-full.joblib"]


def test_only_the_newest_files_are_kept(store, tmp_path):
    folder = tmp_path / "models"
    train_versions(store, folder, 1)
    files = ModelFiles(folder, keep=3)
    version = files.load("v00000001-full.joblib")
    (folder / ".left-by-a-crash.tmp").write_bytes(b"x")
    for number in range(2, 8):
        files.save(dataclasses.replace(version, version=number))
    assert sorted(p.name for p in folder.iterdir()) == [f"v{n:08d}-full.joblib" for n in (5, 6, 7)]
    assert files.load("v00000007-full.joblib").version == 7

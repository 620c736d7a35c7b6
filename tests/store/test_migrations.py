"""Migrations: a fresh database equals the models; a database made before migrations keeps its rows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc

from alstream.store import LabelRow, Store
from alstream.store import store as store_module
from alstream.store.tables import metadata

# The tables as alstream made them before migrations (metadata.create_all of that day's schema.py).
LEGACY = sa.MetaData()
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
sa.Table(
    "samples",
    LEGACY,
    sa.Column("seq", _BigId, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False),
    sa.Column("features", sa.LargeBinary),
    sa.Column("text", sa.Text),
    sa.Column("meta", sa.Text),
    sa.UniqueConstraint("id", name="uq_samples_id"),
)
sa.Table(
    "labels",
    LEGACY,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("sample_id", sa.String, nullable=False),
    sa.Column("label", sa.String),
    sa.Column("annotator", sa.String),
    sa.Column("skipped", sa.Boolean, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("stream_offset", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("source", "stream_offset", name="uq_labels_source_offset"),
    sa.Index("ix_labels_sample_id_id", "sample_id", "id"),
)
sa.Table(
    "models",
    LEGACY,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("n_labels", sa.Integer, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("mlflow_run_id", sa.String),
    sa.Column("path", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "tokens",
    LEGACY,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("role", sa.String, nullable=False),
    sa.Column("digest", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

CHECKS = {
    "samples": {"ck_samples_id_length"},
    "labels": {"ck_labels_sample_id_length", "ck_labels_annotator_length", "ck_labels_label_length"},
    "candidates": {"ck_candidates_sample_id_length"},
    "audits": {"ck_audits_sample_id_length"},
}


def differences(store: Store) -> list:
    """What alembic's autogenerate would change to make the database equal the models."""
    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def check_names(store: Store) -> dict[str, set[str]]:
    inspector = sa.inspect(store.engine)
    return {table: {c["name"] for c in inspector.get_check_constraints(table)} for table in CHECKS}


def version(store: Store) -> str:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()


def assert_checks_refuse_long_values(store: Store) -> None:
    for row in (
        LabelRow("s" * 1001, "a", "ann", False, "labels:0", 900),
        LabelRow("s", "a", "n" * 201, False, "labels:0", 901),
        LabelRow("s", "l" * 201, "ann", False, "labels:0", 902),
    ):
        with pytest.raises(exc.IntegrityError):
            store.add_labels([row])
    with pytest.raises(exc.IntegrityError), store.transaction() as conn:
        conn.execute(sa.text("INSERT INTO samples (id, text) VALUES (:id, 't')"), {"id": "x" * 1001})
    store.add_labels([LabelRow("s" * 1000, "l" * 200, "n" * 200, False, "labels:0", 903)])  # at the limits


HEAD = "0010"


def test_a_fresh_database_equals_the_models(make_store) -> None:
    store = make_store()
    assert differences(store) == []
    assert check_names(store) == CHECKS
    assert version(store) == HEAD
    assert_checks_refuse_long_values(store)
    store.create()  # again: nothing to do
    assert version(store) == HEAD


def test_the_migrations_build_the_models_from_an_empty_database(make_store) -> None:
    store = make_store(create=False)
    store.create(always_migrate=True)  # what create does for an empty one: the tables, stamped
    assert differences(store) == []
    assert check_names(store) == CHECKS
    assert version(store) == HEAD
    assert_checks_refuse_long_values(store)


def test_the_newest_revision_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(store_module.MIGRATIONS))
    assert store_module.HEAD == ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_a_database_made_before_migrations_keeps_its_rows_and_gains_the_new_columns(make_store) -> None:
    store = make_store(create=False)
    LEGACY.create_all(store.engine)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(
            LEGACY.tables["samples"].insert(), [{"id": f"s{i}", "text": f"text {i}"} for i in range(3)]
        )
        conn.execute(
            LEGACY.tables["labels"].insert(),
            [
                {
                    "sample_id": "s1",
                    "label": "a",
                    "annotator": "ann",
                    "skipped": False,
                    "source": "labels:0",
                    "stream_offset": 7,
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            LEGACY.tables["models"].insert(),
            [{"kind": "full", "n_labels": 1, "metrics": "{}", "status": "ok", "created_at": now}],
        )
        conn.execute(
            LEGACY.tables["tokens"].insert(),
            [{"key": "k1", "name": "gil", "role": "annotator", "digest": "d", "created_at": now}],
        )

    store.create()

    assert version(store) == HEAD
    assert differences(store) == []
    assert check_names(store) == CHECKS
    assert store.counts() == {"samples": 3, "labeled": 1, "skipped": 0, "labels_total": 1}
    assert [s["text"] for s in store.get_samples(["s0", "s1", "s2"])] == ["text 0", "text 1", "text 2"]
    _, old = store.arrivals_after(0, now, 10)
    assert old.tolist() == [True] * 3  # stored before arrival times were kept: as old as can be
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sample_id, annotator, token_key FROM labels")).all() == [
            ("s1", "ann", None)
        ]
        assert conn.execute(sa.text("SELECT key, name, annotators FROM tokens")).all() == [
            ("k1", "gil", None)
        ]
    assert [m["version"] for m in store.models()] == [1]
    # New rows still get the next ids (the primary keys kept their autoincrement).
    store.add_labels([LabelRow("s2", "b", "bob", False, "labels:0", 8, token_key="k1")])
    assert [e[0] for e in store.labels_after(0)] == [1, 2]
    assert store.record_model(kind="full", n_labels=2, metrics={}, status="ok") == 2
    assert_checks_refuse_long_values(store)


def test_stores_created_at_once_migrate_once(make_store) -> None:
    first = make_store(create=False)
    others = [Store(first.engine.url) for _ in range(3)]
    errors: list[BaseException] = []

    def create(store: Store) -> None:
        try:
            store.create()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=create, args=(s,)) for s in [first, *others]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in others:
        store.close()
    assert errors == []
    assert version(first) == HEAD and differences(first) == []

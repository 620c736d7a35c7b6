"""Tables: ``samples`` (arrival order in ``seq``), ``labels`` (full history), ``models``, ``tokens``,
``candidates`` (the shared queue and its leases), ``shard_stats`` (what each shard reports),
``shard_owners`` (each shard's owner and generation: the fence of its candidates), ``audits`` (the
random items replicas served, the model's guess and whether it was right), ``audit_tallies`` (the
older scored guesses, counted per model version), ``trainer_stats`` (what the active trainer reports
of them).

These are the models the migrations (``store/migrations/``, Alembic) build: a change here needs
a new revision there, and the tests check that a migrated database equals these models.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only auto-assigns ``INTEGER PRIMARY KEY`` (the rowid); PostgreSQL gets BIGSERIAL.
BigId = BigInteger().with_variant(Integer(), "sqlite")

samples = Table(
    "samples",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String, nullable=False),
    Column("features", LargeBinary),  # raw little-endian float32; NULL for text samples
    Column("text", Text),
    Column("meta", Text),  # JSON
    Column("arrived_at", DateTime(timezone=True)),  # when stored; NULL: before 0003 (counted as old)
    Column("shard", Integer),  # the stream partition it came from (NULL: written not by a consumer)
    UniqueConstraint("id", name="uq_samples_id"),
    Index("ix_samples_shard_seq", "shard", "seq"),  # a worker follows its shards
    CheckConstraint("length(id) <= 1000", name="ck_samples_id_length"),
)

labels = Table(
    "labels",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("sample_id", String, nullable=False),  # a label may arrive before its sample
    Column("label", String),  # NULL when skipped
    Column("annotator", String),
    Column("skipped", Boolean, nullable=False),
    Column("source", String, nullable=False),  # "topic:partition"
    Column("stream_offset", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("token_key", String),  # the key of the token that sent it (NULL: sent before keys were kept)
    UniqueConstraint("source", "stream_offset", name="uq_labels_source_offset"),
    Index("ix_labels_sample_id_id", "sample_id", "id"),
    CheckConstraint("length(sample_id) <= 1000", name="ck_labels_sample_id_length"),
    CheckConstraint("length(annotator) <= 200", name="ck_labels_annotator_length"),
    CheckConstraint("length(label) <= 200", name="ck_labels_label_length"),
)

models = Table(
    "models",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=True),
    Column("kind", String, nullable=False),
    Column("n_labels", Integer, nullable=False),
    Column("metrics", Text, nullable=False),  # JSON
    Column("status", String, nullable=False),
    Column("error", Text),
    Column("mlflow_run_id", String),
    Column("path", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("key", String, primary_key=True),  # the public part of the token, safe to show
    Column("name", String, nullable=False),
    Column("role", String, nullable=False),
    Column("digest", String, nullable=False),  # SHA-256 of the whole token; the token is never stored
    Column("annotators", Text),  # JSON list of the names it may label as; NULL: its name only
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

# Each shard's best samples and their leases (alstream.store.candidates): a shard's unleased rows
# are replaced whenever it publishes, so the table holds what the shards published last, plus leases.
candidates = Table(
    "candidates",
    metadata,
    Column("sample_id", String, primary_key=True),
    Column("shard", Integer, nullable=False),  # the partition whose worker published it
    Column("score", Double, nullable=False),  # higher: leased sooner
    Column("version", Integer, nullable=False),  # the model version that scored it
    Column("reason", String, nullable=False),  # why the shard chose it: "uncertainty", ...
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("leased_by", String),  # the annotator holding it; NULL: free
    Column("token_key", String),  # the key of the token it was leased through
    Column("leased_until", DateTime(timezone=True)),  # free again after this (NULL: free)
    Column("weight", Double),  # a random pick: the stream samples it stands for (NULL: not one)
    Column("owner", String),  # the worker that published it (NULL: published unfenced, or before 0007)
    Column("generation", Integer),  # its shard's generation that worker held (shard_owners)
    Index(  # the best first, read backwards; the random picks are not in it (migration 0010)
        "ix_candidates_best",
        "score",
        "sample_id",
        postgresql_where=text("weight IS NULL"),
        sqlite_where=text("weight IS NULL"),
    ),
    Index(  # the random picks alone: a lease's draw reads those free (migration 0010)
        "ix_candidates_picks",
        "leased_until",
        postgresql_where=text("weight IS NOT NULL"),
        sqlite_where=text("weight IS NOT NULL"),
    ),
    Index("ix_candidates_shard_leased_until", "shard", "leased_until"),  # publish, drop a shard, held
    Index("ix_candidates_leased_by_leased_until", "leased_by", "leased_until"),  # an annotator's cap
    Index("ix_candidates_token_key_leased_until", "token_key", "leased_until"),  # a token's cap
    CheckConstraint("length(sample_id) <= 1000", name="ck_candidates_sample_id_length"),
)

# What each shard's worker reported last (alstream.store.shard_stats): one row per shard, replaced.
shard_stats = Table(
    "shard_stats",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("worker", String, nullable=False),  # the member that reported it
    Column("stats", Text, nullable=False),  # JSON: the shard's numbers
    Column("reported_at", DateTime(timezone=True), nullable=False),
)

# Who owns each shard, and since which generation (alstream.store.candidates: the fence): one row per
# shard, its generation bumped by one each time a worker gains the shard.
shard_owners = Table(
    "shard_owners",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("owner", String, nullable=False),  # the worker that gained it last
    Column("generation", Integer, nullable=False),  # 1 at the first gain, then one more at each
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)

# The random items the replicas served with the model's guess and, once labeled, whether it was right
# (alstream.store.audits): the stream's unbiased accuracy, across replicas and trainer restarts.
audits = Table(
    "audits",
    metadata,
    Column("sample_id", String, primary_key=True),  # its first guess only, as one process keeps
    Column("version", Integer, nullable=False),  # the model version that guessed
    Column("predicted", String, nullable=False),
    Column("served_at", DateTime(timezone=True), nullable=False),
    Column("label_id", BigInteger),  # the label event that scored it (NULL: not labeled yet)
    Column("correct", Boolean),  # whether the guess was right (NULL: not labeled yet)
    Index("ix_audits_label_id", "label_id"),  # the scored ones in label order
    Index("ix_audits_served_at", "served_at"),  # the open ones pruned, oldest first
    CheckConstraint("length(sample_id) <= 1000", name="ck_audits_sample_id_length"),
)

# The scored guesses folded out of ``audits`` (alstream.store.audits: all but the newest), counted: one
# row per model version, added to as more are folded.
audit_tallies = Table(
    "audit_tallies",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),  # the model version that guessed
    Column("correct", BigInteger, nullable=False),  # its folded guesses that were right
    Column("scored", BigInteger, nullable=False),  # its folded guesses
)

# What the active trainer reports (alstream.store.trainer_stats): one row, replaced.
trainer_stats = Table(
    "trainer_stats",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("trainer", String, nullable=False),  # the process that reported it
    Column("stats", Text, nullable=False),  # JSON: the stream's accuracy, drift and its boost
    Column("reported_at", DateTime(timezone=True), nullable=False),
)

"""The schema before migrations: samples, labels, models, tokens.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "samples",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("features", sa.LargeBinary),
        sa.Column("text", sa.Text),
        sa.Column("meta", sa.Text),
        sa.UniqueConstraint("id", name="uq_samples_id"),
    )
    op.create_table(
        "labels",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sample_id", sa.String, nullable=False),
        sa.Column("label", sa.String),
        sa.Column("annotator", sa.String),
        sa.Column("skipped", sa.Boolean, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("stream_offset", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("source", "stream_offset", name="uq_labels_source_offset"),
    )
    op.create_index("ix_labels_sample_id_id", "labels", ["sample_id", "id"])
    op.create_table(
        "models",
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
    op.create_table(
        "tokens",
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("role", sa.String, nullable=False),
        sa.Column("digest", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    for table in ("tokens", "models", "labels", "samples"):
        op.drop_table(table)

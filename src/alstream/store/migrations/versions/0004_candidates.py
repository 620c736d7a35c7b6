"""The shared queue: candidates, each shard's best samples with their scores, versions and leases.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candidates",
        sa.Column("sample_id", sa.String, primary_key=True),
        sa.Column("shard", sa.Integer, nullable=False),
        sa.Column("score", sa.Double, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_by", sa.String),
        sa.Column("token_key", sa.String),
        sa.Column("leased_until", sa.DateTime(timezone=True)),
        sa.CheckConstraint("length(sample_id) <= 1000", name="ck_candidates_sample_id_length"),
    )
    op.create_index("ix_candidates_score_sample_id", "candidates", ["score", "sample_id"])
    op.create_index("ix_candidates_shard_leased_until", "candidates", ["shard", "leased_until"])
    op.create_index("ix_candidates_leased_by_leased_until", "candidates", ["leased_by", "leased_until"])


def downgrade() -> None:
    op.drop_table("candidates")

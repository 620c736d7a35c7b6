"""The random items' guesses and outcomes (audits), and what the active trainer reports of them.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audits",
        sa.Column("sample_id", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("predicted", sa.String, nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("label_id", sa.BigInteger),
        sa.Column("correct", sa.Boolean),
        sa.CheckConstraint("length(sample_id) <= 1000", name="ck_audits_sample_id_length"),
    )
    op.create_index("ix_audits_label_id", "audits", ["label_id"])
    op.create_index("ix_audits_served_at", "audits", ["served_at"])
    op.create_table(
        "trainer_stats",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("trainer", sa.String, nullable=False),
        sa.Column("stats", sa.Text, nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trainer_stats")
    op.drop_table("audits")

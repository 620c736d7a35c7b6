"""Fencing the shared queue: each shard's owner and generation (shard_owners), and on each candidate
the owner and generation that published it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shard_owners",
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("candidates") as batch:
        batch.add_column(sa.Column("owner", sa.String))
        batch.add_column(sa.Column("generation", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("generation")
        batch.drop_column("owner")
    op.drop_table("shard_owners")

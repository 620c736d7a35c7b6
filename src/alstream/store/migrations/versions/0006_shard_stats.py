"""What each shard reports (shard_stats), the random picks' weights, and the index of a token's cap.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shard_stats",
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("worker", sa.String, nullable=False),
        sa.Column("stats", sa.Text, nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("candidates") as batch:
        batch.add_column(sa.Column("weight", sa.Double))
    op.create_index("ix_candidates_token_key_leased_until", "candidates", ["token_key", "leased_until"])


def downgrade() -> None:
    op.drop_index("ix_candidates_token_key_leased_until", "candidates")
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("weight")
    op.drop_table("shard_stats")

"""Which shard (stream partition) each sample came from: samples.shard, so a worker reads its own.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("samples") as batch:
        batch.add_column(sa.Column("shard", sa.Integer))
    op.create_index("ix_samples_shard_seq", "samples", ["shard", "seq"])


def downgrade() -> None:
    op.drop_index("ix_samples_shard_seq", "samples")
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("shard")

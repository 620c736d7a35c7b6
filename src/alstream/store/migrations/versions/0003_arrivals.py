"""When each sample arrived: samples.arrived_at, for retention (rows stored before it: NULL, as old).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("samples") as batch:
        batch.add_column(sa.Column("arrived_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("arrived_at")

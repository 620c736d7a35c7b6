"""The scored guesses folded out of audits, counted per model version (audit_tallies): the audits'
scored rows bounded like their open ones.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_tallies",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("correct", sa.BigInteger, nullable=False),
        sa.Column("scored", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_tallies")

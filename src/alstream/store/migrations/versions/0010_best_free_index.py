"""The lease's partial indexes: the best candidates without the random picks (a lease reads the best
free rows best first and stops at its LIMIT, never walking past the picks), and the random picks
alone (a lease's draw reads those free, not the whole table).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BEST = sa.text("weight IS NULL")
_PICKS = sa.text("weight IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_candidates_score_sample_id", "candidates")
    op.create_index(
        "ix_candidates_best",
        "candidates",
        ["score", "sample_id"],
        postgresql_where=_BEST,
        sqlite_where=_BEST,
    )
    op.create_index(
        "ix_candidates_picks", "candidates", ["leased_until"], postgresql_where=_PICKS, sqlite_where=_PICKS
    )


def downgrade() -> None:
    op.drop_index("ix_candidates_picks", "candidates")
    op.drop_index("ix_candidates_best", "candidates")
    op.create_index("ix_candidates_score_sample_id", "candidates", ["score", "sample_id"])

"""Who labeled: labels.token_key and tokens.annotators; length checks on ids, annotators, labels.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a CHECK to a table, so the table is copied into a new one.
    with op.batch_alter_table("samples") as batch:
        batch.create_check_constraint("ck_samples_id_length", "length(id) <= 1000")
    with op.batch_alter_table("labels") as batch:
        batch.add_column(sa.Column("token_key", sa.String))
        batch.create_check_constraint("ck_labels_sample_id_length", "length(sample_id) <= 1000")
        batch.create_check_constraint("ck_labels_annotator_length", "length(annotator) <= 200")
        batch.create_check_constraint("ck_labels_label_length", "length(label) <= 200")
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("annotators", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("annotators")
    with op.batch_alter_table("labels") as batch:
        for name in ("label", "annotator", "sample_id"):
            batch.drop_constraint(f"ck_labels_{name}_length", type_="check")
        batch.drop_column("token_key")
    with op.batch_alter_table("samples") as batch:
        batch.drop_constraint("ck_samples_id_length", type_="check")

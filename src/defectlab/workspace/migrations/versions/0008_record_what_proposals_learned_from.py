"""record what proposals learned from

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("proposals", sa.Column("labeled_images", sa.Integer(), nullable=True))
    op.add_column("proposals", sa.Column("blind_share", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("blind_share")
        batch.drop_column("labeled_images")

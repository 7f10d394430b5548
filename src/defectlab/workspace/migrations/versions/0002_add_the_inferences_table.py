"""add the inferences table

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inferences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=1000), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=1000), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('is_defect', sa.Boolean(), nullable=False),
    sa.Column('probabilities', sa.JSON(), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inferences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inferences_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inferences_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inferences_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inferences_sha256'), ['sha256'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('inferences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inferences_sha256'))
        batch_op.drop_index(batch_op.f('ix_inferences_project_id'))
        batch_op.drop_index(batch_op.f('ix_inferences_image_id'))
        batch_op.drop_index(batch_op.f('ix_inferences_created_at'))

    op.drop_table('inferences')

"""add labeling tasks, decisions and the defect book

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('labeling_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('labelers', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'name')
    )
    with op.batch_alter_table('labeling_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_labeling_tasks_project_id'), ['project_id'], unique=False)

    op.create_table('book_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=False),
    sa.Column('change', sa.String(length=1000), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['defect_classes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('class_id', 'version')
    )
    with op.batch_alter_table('book_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_book_versions_class_id'), ['class_id'], unique=False)

    op.create_table('decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=100), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('class_name', sa.String(length=200), nullable=False),
    sa.Column('source_labeler', sa.String(length=100), nullable=True),
    sa.Column('note', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['labeling_tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisions_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_task_id'), ['task_id'], unique=False)

    op.create_table('task_annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('labeler', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('geometry', sa.JSON(), nullable=True),
    sa.Column('mask_sha256', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['defect_classes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['labeling_tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('task_annotations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_annotations_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_annotations_task_id'), ['task_id'], unique=False)

    op.create_table('task_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['labeling_tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', 'image_id')
    )
    with op.batch_alter_table('task_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_images_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_images_task_id'), ['task_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('task_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_images_task_id'))
        batch_op.drop_index(batch_op.f('ix_task_images_image_id'))

    op.drop_table('task_images')
    with op.batch_alter_table('task_annotations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_annotations_task_id'))
        batch_op.drop_index(batch_op.f('ix_task_annotations_image_id'))

    op.drop_table('task_annotations')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_task_id'))
        batch_op.drop_index(batch_op.f('ix_decisions_image_id'))

    op.drop_table('decisions')
    with op.batch_alter_table('book_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_book_versions_class_id'))

    op.drop_table('book_versions')
    with op.batch_alter_table('labeling_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_labeling_tasks_project_id'))

    op.drop_table('labeling_tasks')

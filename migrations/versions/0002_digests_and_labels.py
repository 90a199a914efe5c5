"""digests and labels

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 01:03:10.936296
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('digests',
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('style', sa.String(length=20), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('sections', sa.Text(), nullable=False),
    sa.Column('covers', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('month')
    )
    op.create_table('labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('selected', sa.Boolean(), nullable=False),
    sa.Column('section', sa.Text(), nullable=True),
    sa.Column('editor_summary', sa.Text(), nullable=False),
    sa.Column('printed_source', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['post_id'], ['posts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('post_id', 'month', name='uq_labels_post_month')
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_labels_month'), ['month'], unique=False)
        batch_op.create_index(batch_op.f('ix_labels_post_id'), ['post_id'], unique=False)

    with op.batch_alter_table('drafts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('selected_urls', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('drafts', schema=None) as batch_op:
        batch_op.drop_column('selected_urls')

    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_labels_post_id'))
        batch_op.drop_index(batch_op.f('ix_labels_month'))

    op.drop_table('labels')
    op.drop_table('digests')


"""the review desk: labels carry a revision (a change made elsewhere is refused, not overwritten), and
desk_actions logs every decision the desk made, with the state it replaced, so it can be undone

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('labels') as batch:
        batch.add_column(sa.Column('revision', sa.Integer(), nullable=False, server_default='1'))
    op.create_table(
        'desk_actions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=100), nullable=False),
        sa.Column('month', sa.String(length=10), nullable=False),
        sa.Column('post_id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('before', sa.Text(), nullable=True),
        sa.Column('after', sa.Text(), nullable=True),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('undone', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(['post_id'], ['posts.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_desk_actions_digest_month', 'desk_actions', ['digest', 'month'])


def downgrade() -> None:
    op.drop_index('ix_desk_actions_digest_month', table_name='desk_actions')
    op.drop_table('desk_actions')
    with op.batch_alter_table('labels') as batch:
        batch.drop_column('revision')

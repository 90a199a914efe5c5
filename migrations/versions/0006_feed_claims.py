"""several pollers on one PostgreSQL database: feeds.claimed_by and feeds.claimed_until hold a poller's
lease on a feed while it fetches it; feeds.last_fetched_by names the poller that last recorded it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.add_column(sa.Column('claimed_by', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('claimed_until', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('last_fetched_by', sa.String(length=200), nullable=True))
        batch.create_index('ix_feeds_claimed_until', ['claimed_until'])


def downgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.drop_index('ix_feeds_claimed_until')
        batch.drop_column('last_fetched_by')
        batch.drop_column('claimed_until')
        batch.drop_column('claimed_by')

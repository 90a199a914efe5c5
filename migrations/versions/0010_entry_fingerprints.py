"""feeds.entry_fingerprints: the fingerprints of the last body's entries, so that a changed body reads and
writes only its new or changed entries; empty on every existing feed (its next changed body is read whole)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.add_column(sa.Column('entry_fingerprints', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.drop_column('entry_fingerprints')

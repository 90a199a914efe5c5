"""feeds.body_sha256: skip parsing a body identical to the last one

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.add_column(sa.Column('body_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.drop_column('body_sha256')

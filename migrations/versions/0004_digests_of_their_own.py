"""each digest its own: labels, imported digests and drafts belong to a digest; editions may be ISO weeks;
an imported digest keeps the emoji of its section headings

Every row already there belongs to the digest "default" (the one a feeds.yaml without `digests:` has).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

DEFAULT = "default"


def _rebuild(table: str, columns: list[sa.Column], key: list[str], copied: list[str]) -> None:
    """Recreate `table` with `columns` and primary key `key`, copying `copied` and setting digest to "default"."""
    op.create_table(f"{table}_new", *columns, sa.PrimaryKeyConstraint(*key))
    names = ", ".join(copied)
    op.execute(f"INSERT INTO {table}_new (digest, {names}) SELECT '{DEFAULT}', {names} FROM {table}")
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)


def upgrade() -> None:
    _rebuild("digests", [
        sa.Column('digest', sa.String(length=100), nullable=False),
        sa.Column('month', sa.String(length=10), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('style', sa.String(length=20), nullable=False),
        sa.Column('title', sa.Text(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('sections', sa.Text(), nullable=False),
        sa.Column('covers', sa.Text(), nullable=False),
        sa.Column('imported_at', sa.DateTime(), nullable=False),
        sa.Column('emoji', sa.Text(), nullable=False, server_default='{}'),
    ], ["digest", "month"], ["month", "path", "style", "title", "sha256", "sections", "covers", "imported_at"])
    _rebuild("drafts", [
        sa.Column('digest', sa.String(length=100), nullable=False),
        sa.Column('month', sa.String(length=10), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('written_at', sa.DateTime(), nullable=False),
        sa.Column('selected_urls', sa.Text(), nullable=True),
    ], ["digest", "month"], ["month", "path", "sha256", "written_at", "selected_urls"])
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest', sa.String(length=100), nullable=False, server_default=DEFAULT))
        batch_op.alter_column('month', type_=sa.String(length=10), existing_type=sa.String(length=7),
                              existing_nullable=False)
        batch_op.drop_constraint('uq_labels_post_month', type_='unique')
        batch_op.create_unique_constraint('uq_labels_digest_post_month', ['digest', 'post_id', 'month'])
        batch_op.create_index(batch_op.f('ix_labels_digest'), ['digest'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("labels of several digests cannot be folded back into one")

"""drafts, digests, labels and desk_actions name their edition column `edition` (it was `month`, from
before weekly digests), and the constraint and indexes on it say so; no row changes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_TABLES = ('drafts', 'digests', 'labels', 'desk_actions')


def _rename(old: str, new: str) -> None:
    """Rename the edition column of every table from `old` to `new`, with the constraint and indexes on it.
    On SQLite each batch copies its table, and one that renames a column cannot also build a constraint or
    an index on the new name: those come after it."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            if table == 'labels':
                batch.drop_constraint(f'uq_labels_digest_post_{old}', type_='unique')
                batch.drop_index(f'ix_labels_{old}')
            elif table == 'desk_actions':
                batch.drop_index(f'ix_desk_actions_digest_{old}')
            batch.alter_column(old, new_column_name=new, existing_type=sa.String(length=10), existing_nullable=False)
    with op.batch_alter_table('labels') as batch:
        batch.create_unique_constraint(f'uq_labels_digest_post_{new}', ['digest', 'post_id', new])
    op.create_index(f'ix_labels_{new}', 'labels', [new], unique=False)
    op.create_index(f'ix_desk_actions_digest_{new}', 'desk_actions', ['digest', new], unique=False)


def upgrade() -> None:
    _rename('month', 'edition')


def downgrade() -> None:
    _rename('edition', 'month')

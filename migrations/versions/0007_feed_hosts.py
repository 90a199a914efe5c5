"""feeds.host: the host a feed's requests go to, written where its URL is (feeds.yaml, a permanent
redirect), so the claims of several pollers count the per-host limit by the fetcher's own rule

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


# aggregator.links.Site's reading of a URL's host when this migration was made (a copy: migrations do not change)
_HOST = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]/?#]*\]|[^/:?#]*)")


def _host(url: str) -> str:
    match = _HOST.match(url)
    return match.group(1).lower() if match else ""


def upgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.add_column(sa.Column('host', sa.Text(), nullable=False, server_default=''))
    feeds = sa.table('feeds', sa.column('id', sa.Integer), sa.column('url', sa.Text), sa.column('host', sa.Text))
    conn = op.get_bind()
    rows = [{"feed_id": id_, "host": _host(url)} for id_, url in conn.execute(sa.select(feeds.c.id, feeds.c.url))]
    if rows:
        conn.execute(feeds.update().where(feeds.c.id == sa.bindparam("feed_id")).values(host=sa.bindparam("host")), rows)


def downgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.drop_column('host')

"""every stored label moves to the edition its post's date gives, and the desk's log of it moves with it;
the schema is unchanged

Before this revision an import filed all of a digest's entries under one edition (a November post listed
in a December digest, or first listed by a December commit, was a label of 2022-12). Now an entry belongs
to the edition its own date gives. The printed date of an entry ("(Nov 2022, …)") was never stored, so
each label's post gives the date:

- a post fetched from a feed that gave its publication date: that date;
- a post known only from a digest: its stored date, which the import set to the first day of the month
  the entry printed (or, when it printed none, of the month the digest was filed under). A monthly
  digest's label moves to that month; a weekly digest's label stays where it is, since a month names
  no ISO week;
- neither (a fetched post whose feed gave no date): the label stays in its edition, since the moment
  the post was first seen says nothing about the edition the editor chose it for.

The edition is the month ("YYYY-MM", for a monthly digest's label) or the ISO week ("YYYY-Www") of that
date, in UTC. When a label moves into an edition that already holds a label of the same post in the same
digest, one label stays: the one updated last (the one already there on a tie); the other is deleted.
The desk's actions on a moved label move to the same edition, so that its undo log and revisions go on
there. A weekly digest's imported rows (`digests.covers`) cover their own ISO week, where they covered
calendar months. The downgrade changes nothing: the editions the labels had are not recorded.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12 10:00:00
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_labels = sa.table('labels', sa.column('id', sa.Integer), sa.column('digest', sa.String), sa.column('post_id', sa.Integer),
                   sa.column('edition', sa.String), sa.column('updated_at', sa.DateTime))
_posts = sa.table('posts', sa.column('id', sa.Integer), sa.column('feed_id', sa.Integer),
                  sa.column('published_at', sa.DateTime))
_desk = sa.table('desk_actions', sa.column('id', sa.Integer), sa.column('digest', sa.String),
                 sa.column('post_id', sa.Integer), sa.column('edition', sa.String))
_digests = sa.table('digests', sa.column('digest', sa.String), sa.column('edition', sa.String),
                    sa.column('covers', sa.Text))


def _target(edition: str, fetched: bool, published: datetime | None) -> str:
    """The edition a label of `edition` belongs to, its post fetched or not and dated `published` (UTC)."""
    weekly = edition[5:6] == 'W'
    if published is None or (weekly and not fetched):
        return edition
    if weekly:
        year, week, _ = published.isocalendar()
        return f'{year:04d}-W{week:02d}'
    return f'{published.year:04d}-{published.month:02d}'


def upgrade() -> None:
    conn = op.get_bind()
    query = (sa.select(_labels.c.id, _labels.c.digest, _labels.c.post_id, _labels.c.edition, _labels.c.updated_at,
                       _posts.c.feed_id, _posts.c.published_at)
             .select_from(_labels.join(_posts, _labels.c.post_id == _posts.c.id)).order_by(_labels.c.id))
    groups: dict[tuple[str, int, str], list[tuple[int, str, datetime]]] = {}
    for id_, digest, post, edition, updated, feed, published in conn.execute(query):
        target = _target(edition, feed is not None, published)
        groups.setdefault((digest, post, target), []).append((id_, edition, updated))
    for (digest, post, target), rows in groups.items():
        if all(edition == target for _, edition, _ in rows):
            continue
        # the row that stays: updated last, the one already in the target edition on a tie, then the newest
        keep = max(rows, key=lambda r: (r[2], r[1] == target, r[0]))
        gone = [r[0] for r in rows if r is not keep]
        if gone:
            conn.execute(sa.delete(_labels).where(_labels.c.id.in_(gone)))
        if keep[1] != target:
            conn.execute(sa.update(_labels).where(_labels.c.id == keep[0]).values(edition=target))
        moved_from = sorted({edition for _, edition, _ in rows if edition != target})
        conn.execute(sa.update(_desk).where(_desk.c.digest == digest, _desk.c.post_id == post,
                                            _desk.c.edition.in_(moved_from)).values(edition=target))
    for digest, edition, covers in conn.execute(sa.select(_digests.c.digest, _digests.c.edition, _digests.c.covers)):
        if edition[5:6] == 'W' and json.loads(covers) != [edition]:
            conn.execute(sa.update(_digests).where(_digests.c.digest == digest, _digests.c.edition == edition)
                         .values(covers=json.dumps([edition])))


def downgrade() -> None:
    pass  # the editions labels had before are not recorded: they stay where the upgrade filed them

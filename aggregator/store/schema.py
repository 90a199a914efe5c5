"""The ORM rows, mapped onto the tables of store/tables.py: for the labels and desk code that reads and writes objects (a polling pass never imports it)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase, relationship

from aggregator.store import tables
from aggregator.store.tables import SCHEMA_VERSION, UTCDateTime, metadata, migrations_dir


class Base(DeclarativeBase):
    metadata = tables.metadata


class FeedRow(Base):
    __table__ = tables.feeds

    posts = relationship("PostRow", back_populates="feed")


class PostRow(Base):
    __table__ = tables.posts

    feed = relationship(FeedRow, back_populates="posts")


class DraftRow(Base):
    """The last draft aggregator wrote of one edition of one digest."""

    __table__ = tables.drafts


class DigestRow(Base):
    """One imported edition of a digest: the latest version of it that was imported."""

    __table__ = tables.digests


class LabelRow(Base):
    """The editor's decision on one post in one edition of one digest."""

    __table__ = tables.labels


class DeskActionRow(Base):
    """One decision the review desk made, with the label state it replaced (JSON, None: no label), for undo."""

    __table__ = tables.desk_actions


__all__ = ["SCHEMA_VERSION", "DeskActionRow", "DigestRow", "DraftRow", "FeedRow", "LabelRow", "PostRow", "UTCDateTime",
           "metadata", "migrations_dir"]

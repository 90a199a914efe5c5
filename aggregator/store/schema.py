"""The tables (SQLAlchemy ORM rows), the datetime type they share, and the schema's version."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from aggregator.models import DEFAULT_DIGEST


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and gives them back aware, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass UTC-aware datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class FeedRow(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config_url: Mapped[str] = mapped_column(Text)  # as written in feeds.yaml
    url: Mapped[str] = mapped_column(Text)  # where we poll now (moves on permanent redirects)
    host: Mapped[str] = mapped_column(Text, default="", server_default="")  # links.Site.of(url).hostname: the per-host key
    source: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str | None] = mapped_column(Text)
    interval: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # still listed in feeds.yaml
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    gone: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body_sha256: Mapped[str | None] = mapped_column(String(64))  # of the last body parsed; an equal one is skipped
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # the poller fetching it now (PostgreSQL: store/claims.py)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # when that claim lapses
    last_fetched_by: Mapped[str | None] = mapped_column(String(200))  # the poller that last recorded a fetch
    # The fingerprints of the last body's entries whose posts are stored as they read (poll/fingerprints.py):
    # a changed body reads and writes only its other entries.
    entry_fingerprints: Mapped[str | None] = mapped_column(Text)

    posts: Mapped[list[PostRow]] = relationship(back_populates="feed")


class PostRow(Base):
    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("feed_id", "key", name="uq_posts_feed_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id"), index=True)
    key: Mapped[str] = mapped_column(Text)  # identity within the feed (guid, link or hash)
    url: Mapped[str | None] = mapped_column(Text, unique=True)  # canonical link: identity across feeds
    title: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(200), default="")  # for posts known only from a digest
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    content_hash: Mapped[str] = mapped_column(String(64), default="")

    feed: Mapped[FeedRow | None] = relationship(back_populates="posts")


class DraftRow(Base):
    """The last draft aggregator wrote of one edition of one digest."""

    __tablename__ = "drafts"

    digest: Mapped[str] = mapped_column(String(100), primary_key=True)
    edition: Mapped[str] = mapped_column(String(10), primary_key=True)  # "2022-12" or "2023-W40"
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)
    selected_urls: Mapped[str | None] = mapped_column(Text)  # JSON list: what the draft offered the editor


class DigestRow(Base):
    """One imported edition of a digest: the latest version of it that was imported."""

    __tablename__ = "digests"

    digest: Mapped[str] = mapped_column(String(100), primary_key=True)
    edition: Mapped[str] = mapped_column(String(10), primary_key=True)  # "2022-12" or "2023-W40"
    path: Mapped[str] = mapped_column(Text)
    style: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))
    sections: Mapped[str] = mapped_column(Text)  # JSON list of section paths, in order
    covers: Mapped[str] = mapped_column(Text)  # JSON list of the months whose posts the editor chose from
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    emoji: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # JSON: section name -> its heading's emoji


class LabelRow(Base):
    """The editor's decision on one post in one edition of one digest."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("digest", "post_id", "edition", name="uq_labels_digest_post_edition"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(100), index=True, server_default=DEFAULT_DIGEST)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    edition: Mapped[str] = mapped_column(String(10), index=True)
    selected: Mapped[bool] = mapped_column(Boolean)
    section: Mapped[str | None] = mapped_column(Text)  # JSON list of headings; None when not selected
    editor_summary: Mapped[str] = mapped_column(Text, default="")
    printed_source: Mapped[str] = mapped_column(Text, default="")  # the source label the digest printed
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # raised by every change


class DeskActionRow(Base):
    """One decision the review desk made, with the label state it replaced (JSON, None: no label), for undo."""

    __tablename__ = "desk_actions"
    __table_args__ = (Index("ix_desk_actions_digest_edition", "digest", "edition"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(100))
    edition: Mapped[str] = mapped_column(String(10))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    action: Mapped[str] = mapped_column(String(20))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)  # the label's revision this action left
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    undone: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


metadata = Base.metadata


def migrations_dir() -> Path:
    """Where the Alembic scripts are: the top-level migrations/ folder, installed as aggregator.migrations."""
    import aggregator.migrations

    return Path(aggregator.migrations.__file__).parent


SCHEMA_VERSION = "0010"  # the newest revision in migrations/versions (a test keeps the two in step)


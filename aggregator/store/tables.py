"""The tables (SQLAlchemy Core), the datetime type they share, and the schema's version: the one declaration of the schema."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)

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


metadata = MetaData()

feeds = Table(
    "feeds", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), unique=True, nullable=False),
    Column("config_url", Text, nullable=False),  # as written in feeds.yaml
    Column("url", Text, nullable=False),  # where we poll now (moves on permanent redirects)
    Column("host", Text, nullable=False, default="", server_default=""),  # links.Site.of(url).hostname: the per-host key
    Column("source", String(200), nullable=False, default=""),
    Column("title", Text),
    Column("interval", Integer),
    Column("active", Boolean, nullable=False, default=True),  # still listed in feeds.yaml
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_checked_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("error_count", Integer, nullable=False, default=0),
    Column("next_check_at", UTCDateTime, index=True),
    Column("gone", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("body_sha256", String(64)),  # of the last body parsed; an equal one is skipped
    Column("claimed_by", String(200)),  # the poller fetching it now (PostgreSQL: store/claims.py)
    Column("claimed_until", UTCDateTime, index=True),  # when that claim lapses
    Column("last_fetched_by", String(200)),  # the poller that last recorded a fetch
    # The fingerprints of the last body's entries whose posts are stored as they read (poll/fingerprints.py):
    # a changed body reads and writes only its other entries.
    Column("entry_fingerprints", Text),
)

posts = Table(
    "posts", metadata,
    Column("id", Integer, primary_key=True),
    Column("feed_id", ForeignKey("feeds.id"), index=True),
    Column("key", Text, nullable=False),  # identity within the feed (guid, link or hash)
    Column("url", Text, unique=True),  # canonical link: identity across feeds
    Column("title", Text, nullable=False, default=""),
    Column("summary", Text, nullable=False, default=""),
    Column("author", Text, nullable=False, default=""),
    Column("source", String(200), nullable=False, default=""),  # for posts known only from a digest
    Column("published_at", UTCDateTime, index=True),
    Column("first_seen_at", UTCDateTime, nullable=False, index=True),
    Column("updated_at", UTCDateTime),
    Column("content_hash", String(64), nullable=False, default=""),
    UniqueConstraint("feed_id", "key", name="uq_posts_feed_key"),
)

# The last draft aggregator wrote of one edition of one digest.
drafts = Table(
    "drafts", metadata,
    Column("digest", String(100), primary_key=True),
    Column("edition", String(10), primary_key=True),  # "2022-12" or "2023-W40"
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("written_at", UTCDateTime, nullable=False),
    Column("selected_urls", Text),  # JSON list: what the draft offered the editor
)

# One imported edition of a digest: the latest version of it that was imported.
digests = Table(
    "digests", metadata,
    Column("digest", String(100), primary_key=True),
    Column("edition", String(10), primary_key=True),  # "2022-12" or "2023-W40"
    Column("path", Text, nullable=False),
    Column("style", String(20), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("sha256", String(64), nullable=False),
    Column("sections", Text, nullable=False),  # JSON list of section paths, in order
    Column("covers", Text, nullable=False),  # JSON list of the months whose posts the editor chose from
    Column("imported_at", UTCDateTime, nullable=False),
    Column("emoji", Text, nullable=False, default="{}", server_default="{}"),  # JSON: section name -> its heading's emoji
)

# The editor's decision on one post in one edition of one digest.
labels = Table(
    "labels", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(100), nullable=False, index=True, server_default=DEFAULT_DIGEST),
    Column("post_id", ForeignKey("posts.id"), nullable=False, index=True),
    Column("edition", String(10), nullable=False, index=True),
    Column("selected", Boolean, nullable=False),
    Column("section", Text),  # JSON list of headings; None when not selected
    Column("editor_summary", Text, nullable=False, default=""),
    Column("printed_source", Text, nullable=False, default=""),  # the source label the digest printed
    Column("updated_at", UTCDateTime, nullable=False),
    Column("revision", Integer, nullable=False, default=1, server_default="1"),  # raised by every change
    UniqueConstraint("digest", "post_id", "edition", name="uq_labels_digest_post_edition"),
)

# One decision the review desk made, with the label state it replaced (JSON, None: no label), for undo.
desk_actions = Table(
    "desk_actions", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(100), nullable=False),
    Column("edition", String(10), nullable=False),
    Column("post_id", ForeignKey("posts.id"), nullable=False),
    Column("action", String(20), nullable=False),
    Column("before", Text),
    Column("after", Text),
    Column("revision", Integer, nullable=False),  # the label's revision this action left
    Column("at", UTCDateTime, nullable=False),
    Column("undone", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_desk_actions_digest_edition", "digest", "edition"),
)


def migrations_dir() -> Path:
    """Where the Alembic scripts are: the top-level migrations/ folder, installed as aggregator.migrations."""
    import aggregator.migrations

    return Path(aggregator.migrations.__file__).parent


SCHEMA_VERSION = "0010"  # the newest revision in migrations/versions (a test keeps the two in step)

"""The database, one module per domain (schema, feeds and their claims, posts, drafts, labels, the desk's decisions); Store composes them."""

from __future__ import annotations

from aggregator.store.claims import FeedClaims
from aggregator.store.decisions import Decisions
from aggregator.store.drafts import Drafts
from aggregator.store.feeds import Feeds
from aggregator.store.labels import Labels
from aggregator.store.posts import Posts


class Store(Feeds, FeedClaims, Posts, Drafts, Labels, Decisions):
    """A database of feeds, posts and the editor's decisions, opened from a SQLAlchemy URL."""


__all__ = ["Store"]

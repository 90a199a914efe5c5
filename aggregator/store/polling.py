"""The part of the store a polling pass uses (feeds, claims, posts, drafts): SQLAlchemy Core alone, no ORM."""

from __future__ import annotations

from aggregator.store.claims import FeedClaims
from aggregator.store.drafts import Drafts
from aggregator.store.feeds import Feeds
from aggregator.store.posts import Posts


class PollingStore(Feeds, FeedClaims, Posts, Drafts):
    """A database of feeds and their posts, opened from a SQLAlchemy URL: what `fetch` and the daemon's poll
    tick open (store/whole.py adds the editor's decisions)."""

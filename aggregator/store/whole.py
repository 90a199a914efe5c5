"""The whole store: the polling part and the editor's labels and desk decisions, which read and write ORM rows."""

from __future__ import annotations

from aggregator.store.decisions import Decisions
from aggregator.store.labels import Labels
from aggregator.store.polling import PollingStore


class Store(PollingStore, Labels, Decisions):
    """A database of feeds, posts and the editor's decisions, opened from a SQLAlchemy URL."""

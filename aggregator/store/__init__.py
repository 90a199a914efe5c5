"""The database, one module per domain (tables, feeds and their claims, posts, drafts, labels, the desk's decisions); PollingStore composes the Core-only domains a polling pass uses, Store all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.store.polling import PollingStore

if TYPE_CHECKING:
    from aggregator.store.whole import Store


def __getattr__(name: str) -> type:
    """`Store`, imported when first asked for: its labels and decisions load the ORM, which polling never needs."""
    if name == "Store":
        from aggregator.store.whole import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PollingStore", "Store"]

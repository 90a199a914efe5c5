"""Wiring: opens the configuration, database and HTTP client once, and offers the jobs that the CLI and the scheduler run."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.poll.claims import Claims
from aggregator.config import Config, DigestSettings
from aggregator.errors import ConfigError, ModelError, ModelFormatError
from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.limits import MAX_NAME
from aggregator.models import Edition, PassSummary
from aggregator.store import PollingStore
from aggregator.poll.run import Progress, Schedule, run_pass

if TYPE_CHECKING:
    from aggregator.learn.classify import Model
    from aggregator.store import Store


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def default_worker_id() -> str:
    """This poller's name when --worker-id gives none: host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Runtime:
    """One configuration and one database, opened (and migrated) on first use."""

    def __init__(self, config: Config, db_url: str | None = None, *, clock: Callable[[], datetime] = utc_now,
                 stop: threading.Event | None = None, worker_id: str | None = None) -> None:
        self.config = config
        self.db_url = db_url or config.default_db_url()
        self.worker_id = worker_id or default_worker_id()
        if len(self.worker_id) > MAX_NAME:
            raise ConfigError(f"--worker-id: at most {MAX_NAME} characters, got {len(self.worker_id)}")
        self.clock = clock
        self.stop = stop or threading.Event()
        self._store: PollingStore | None = None
        self._whole = False  # whether _store is the whole Store

    @property
    def store(self) -> Store:
        """The whole store, opened (migrated, feeds.yaml synced) on first use."""
        if not self._whole:
            from aggregator.store import Store

            # a polling store opened first (a poll, then a draft): the same database, as the whole store
            self._store = self._store.opened_as(Store) if self._store is not None else self._open(Store)
            self._whole = True
        return self._store  # type: ignore[return-value]  # a Store, as _whole says

    @property
    def polling_store(self) -> PollingStore:
        """What a polling pass uses of the store: the one open, or else the part of it that needs SQLAlchemy
        Core alone (cron's `fetch` never imports the ORM)."""
        if self._store is None:
            self._store = self._open(PollingStore)
        return self._store

    def _open(self, kind: type[PollingStore]) -> PollingStore:
        store = kind(self.db_url, worker=self.worker_id)
        try:
            store.migrate()
            store.sync_feeds(self.config.feed_configs(), self.clock())
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store, self._whole = None, False

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schedule(self) -> Schedule:
        d = self.config.defaults
        return Schedule(interval=d.interval, max_backoff=d.max_backoff, concurrency=d.concurrency)

    def fetch_settings(self) -> FetchSettings:
        return FetchSettings.of(self.config.defaults)

    def poll(self, *, names: Sequence[str] = (), everything: bool = False, wait: float = 0.0,
             progress: Progress | None = None, on_start: Callable[[int], None] | None = None) -> PassSummary:
        """One polling pass over the due feeds (or the named ones, or all). On SQLite it holds the database's
        polling lock (BusyError when another pass still holds it after `wait` seconds); on PostgreSQL it
        claims its share of the feeds beside any other pollers, and never waits."""
        store = self.polling_store
        if names:
            unknown = sorted(set(names) - set(store.feed_names()))
            if unknown:
                raise ConfigError(f"--feed: no feed named {unknown[0]!r} in the configuration")
        if store.engine.dialect.name == "postgresql":
            return self._poll_claiming(names, everything, progress)
        with store.polling_lock(wait=wait, stop=self.stop):
            feeds = store.feeds_due(self.clock(), names=names or None, everything=everything)
            if on_start:
                on_start(len(feeds))
            with Fetcher(self.fetch_settings(), stop=self.stop) as fetcher:
                return run_pass(store, fetcher, feeds, clock=self.clock, schedule=self.schedule(),
                                progress=progress)

    def _poll_claiming(self, names: Sequence[str], everything: bool, progress: Progress | None) -> PassSummary:
        d = self.config.defaults
        claims = Claims(self.polling_store, worker=self.worker_id, clock=self.clock, lease=d.lease, per_host=d.per_host,
                        names=names, everything=everything)
        try:
            with Fetcher(self.fetch_settings(), stop=self.stop) as fetcher:
                return run_pass(self.polling_store, fetcher, (), clock=self.clock, schedule=self.schedule(),
                                progress=progress, more=claims)
        finally:
            claims.release()

    def model_dir(self, digest: DigestSettings | None = None) -> Path:
        """Where a digest's model is saved: models/NAME/ (models/ itself without `digests:`)."""
        return self.config.models_dir(digest or self.config.digest(None))

    def load_model(self, digest: DigestSettings | None = None) -> Model | None:
        """The digest's trained model, or None before its first `train`; ModelError when it is damaged or stale."""
        directory = self.model_dir(digest)
        if not directory.exists():
            return None
        from aggregator.learn.model_file import load  # scikit-learn stays off the polling path

        return load(directory)

    def retrain_if_stale(self, model: Model, digest: DigestSettings | None = None) -> tuple[Model, str | None]:
        """The model, trained again and saved when posts were fetched or decisions recorded since it was
        trained (so the first day's prior becomes a learned priority once enough posts are in); with a
        one-line account when it was."""
        try:
            trained_at = datetime.fromisoformat(str(model.meta.get("trained_at")))
        except ValueError:
            trained_at = None
        changed = self.store.last_change()
        if trained_at is not None and (changed is None or changed <= trained_at):
            return model, None
        return self._train_again(digest, "posts or decisions changed since it was trained")

    def fresh_model(self, digest: DigestSettings | None = None, *, train: bool = True) -> tuple[Model | None, str | None]:
        """The digest's model for a draft, with a one-line account when it was trained now: trained again
        when posts or decisions changed since it was trained, or when the saved one is of an older format
        (a new release reads posts differently); None before the digest's first `train`. With `train`
        False, the saved model as it is (ModelError when it cannot be used)."""
        try:
            model = self.load_model(digest)
        except ModelFormatError:
            if not train:
                raise
            return self._train_again(digest, "the saved model was of an older format")
        if model is None or not train:
            return model, None
        return self.retrain_if_stale(model, digest)

    def _train_again(self, digest: DigestSettings | None, why: str) -> tuple[Model, str]:
        from aggregator.learn.jobs import scope_of, train_model
        from aggregator.learn.model_file import save

        digest = digest or self.config.digest(None)
        model = train_model(self.store, now=self.clock(), scope=scope_of(self.config, digest))
        save(model, self.model_dir(digest))
        meta = model.meta
        return model, (f"model trained again ({why}): {meta['n_examples']} decisions, {meta['n_background']} "
                       f"undecided fetched posts, priority {meta['priority_mode']}")

    def refresh_drafts(self, *, only: str | None = None) -> list[str]:
        """For every digest, keep the current edition's draft fresh (this month's, or this ISO week's for a
        weekly digest), and finish the previous edition's once it has ended; a model older than the posts
        or decisions is trained again first (`only`: one digest's). A damaged or stale model leaves that
        digest's drafts alone and says so; polling and the other digests go on. Several pollers on one
        PostgreSQL database take turns: one refreshes, the others skip it and say so."""
        with self.store.once_at_a_time("drafts") as mine:
            if not mine:
                return ["drafts not refreshed: another poller is refreshing them now"]
            messages = []
            for digest in self.config.digest_list():
                if only is None or digest.name == only:
                    messages += self._refresh(digest)
            return messages

    def _refresh(self, digest: DigestSettings) -> list[str]:
        from aggregator.digest.draft import refresh_draft  # Markdown and the digest reader stay off the polling path

        named = f"{digest.name}: " if self.config.digests else ""
        messages = []
        try:
            model, retrained = self.fresh_model(digest)
            messages += [named + retrained] if retrained else []
        except ModelError as exc:
            return [f"{named}drafts not refreshed: {exc}"]
        now = self.clock()
        current = Edition.of(digest.cadence, now)
        start, _ = current.bounds()
        previous = Edition.of(digest.cadence, start - timedelta(seconds=1))
        recorded = self.store.draft_written_at(previous, digest=digest.name)
        if recorded is not None and recorded < start:
            messages.append(named + refresh_draft(self.store, self.config, previous, now, model, digest))
        messages.append(named + refresh_draft(self.store, self.config, current, now, model, digest))
        return messages

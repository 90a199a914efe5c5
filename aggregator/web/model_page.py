"""The model page: its figures gathered in one job (the replay `eval --json` prints, sources, the audit),
kept per state of the posts and decisions, and rendered as HTML for the desk or as a self-contained file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from aggregator.audit import Audit, Uncovered, run_audit
from aggregator.config import Config, DigestSettings, add_feeds
from aggregator.errors import AggregatorError
from aggregator.models import Edition, FeedConfig
from aggregator.store import Store
from aggregator.web import charts

if TYPE_CHECKING:
    from aggregator.learn.evaluate import Report, ReplayCache

HERE = Path(__file__).parent
AUDIT_MONTHS = 6  # the feeds with no pick are those without one in this many months, as `audit` counts by default
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Source:
    """One feed's yield over everything stored: posts fetched, and those of them the digest picked."""

    feed: str
    posts: int
    picks: int

    @property
    def rate(self) -> float | None:
        return self.picks / self.posts if self.posts else None


@dataclass(frozen=True)
class ModelPage:
    """Everything the model page shows, computed at once."""

    digest: str
    title: str
    report: Report
    sources: tuple[Source, ...]
    audit: Audit
    computed_at: datetime
    seconds: float  # how long computing it took (the replay, mostly)


def gather(store: Store, config: Config, digest: DigestSettings, *, now: datetime,
           progress: Callable[[int, int], None] | None = None, first: Edition | None = None,
           cache: ReplayCache | None = None) -> ModelPage:
    """The page's figures: the replay exactly as `eval --replay --json` computes it (with `cache`, only the
    editions whose decisions or posts changed since the last computation are fitted again), each feed's
    posts and picks, and the audit (without fetching anything)."""
    from aggregator.learn.jobs import evaluate_editions, scope_of

    started = time.perf_counter()
    report = evaluate_editions(store, now=now, progress=progress, scope=scope_of(config, digest), first=first,
                               cache=cache)
    audit = run_audit(store, config, digest, months=AUDIT_MONTHS, now=now)
    feeds = config.digest_feeds(digest)
    sources = tuple(Source(name, posts, picks) for name, posts, picks in store.feed_yield(EPOCH, digest=digest.name)
                    if feeds is None or name in feeds)
    return ModelPage(digest.name, digest.title or digest.name, report, sources, audit, now,
                     time.perf_counter() - started)


def discover(store: Store, config: Config, digest: DigestSettings, *, now: datetime) -> tuple[Uncovered, ...]:
    """The uncovered sites of the digest's picks, each with the feed its home page advertises (as `audit
    --discover` finds it: fetched under the polling limits)."""
    return run_audit(store, config, digest, months=AUDIT_MONTHS, now=now, discover=True).uncovered


# --- rendering ------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["pct"] = _fmt
    return env


_ENV = environment()


@dataclass(frozen=True)
class Charts:
    """The page's pictures, as SVG text (made by `charts`, every value escaped there)."""

    ap: str
    f1: str
    calibration: str
    confusion: str
    rates: str


def draw(page: ModelPage) -> Charts:
    """The page's charts from its figures (pure)."""
    report = page.report
    names = [s.name for s in report.per_split]
    methods = [f.method for f in report.per_split[0].methods] if report.per_split else []

    def series(attr: str) -> list[tuple[str, list[float | None]]]:
        return [(m, [getattr(s.methods[i], attr) for s in report.per_split]) for i, m in enumerate(methods)]

    rated = sorted((s for s in page.sources if s.posts), key=lambda s: (-(s.rate or 0.0), s.feed))[:30]
    return Charts(
        charts.line_chart("Average precision per edition", names, series("average_precision")),
        charts.line_chart("Cut F1 per edition", names, series("cut_f1")),
        charts.calibration_chart(report.calibration),
        charts.confusion_chart(report.confusion.sections, report.confusion.cells),
        charts.bar_chart("Pick rate per feed", [(s.feed, s.rate or 0.0, f"{s.picks}/{s.posts}") for s in rated]))


def stylesheet() -> str:
    """The desk's and the model page's CSS, for a file that must carry its own."""
    return "\n".join((HERE / "static" / name).read_text(encoding="utf-8") for name in ("desk.css", "model.css"))


def render(page: ModelPage, *, offline: bool, csrf: str = "", discovered: Sequence[Uncovered] | None = None,
           note: str = "") -> str:
    """The model page as HTML: `offline` for a file that names nothing outside itself (its CSS inline, no
    script, no buttons); otherwise for the desk, with the "add this feed" buttons of `discovered`."""
    found = {u.site: u.feed for u in discovered or () if u.feed}
    context: dict[str, Any] = dict(page=page, report=page.report, charts=draw(page), offline=offline, csrf=csrf,
                                   found=found, searched=discovered is not None, note=note,
                                   css=stylesheet() if offline else "")
    return _ENV.get_template("model.html").render(**context)


def write_page(store: Store, config: Config, digest: DigestSettings, path: Path, *, now: datetime,
               progress: Callable[[int, int], None] | None = None, first: Edition | None = None) -> tuple[Report, float]:
    """Compute the model page and write it to `path` as one self-contained HTML file; the report (what
    `eval --json` prints) and the seconds computing took."""
    from aggregator.files import atomic_write

    page = gather(store, config, digest, now=now, progress=progress, first=first)
    atomic_write(path, render(page, offline=True).encode("utf-8"), replace=True)
    return page.report, page.seconds


# --- the desk's copy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelView:
    """What the desk's model page shows now."""

    page: ModelPage | None  # None before the first computation ends
    computing: bool
    failed: str
    discovered: tuple[Uncovered, ...] | None  # None until the editor asked to look for feeds

    def html(self, csrf: str) -> str:
        note = ("recomputing for the latest decisions; reload in a moment" if self.computing else self.failed)
        assert self.page is not None
        return render(self.page, offline=False, csrf=csrf, discovered=self.discovered, note=note)


def state_of(store: Store, model_trained: str | None) -> tuple[object, ...]:
    """What the page depends on: when posts or decisions last changed, how many decisions there are, and the
    model's training time."""
    return (store.last_change(), store.count_labels(), model_trained)


@dataclass
class ModelPages:
    """The desk's model page: computed in the background once per state of the posts, decisions and model,
    shown from the last computation meanwhile; the feeds discovery found, which "add this feed" adds."""

    store: Store
    config: Config
    digest: DigestSettings
    config_path: Path | None
    clock: Callable[[], datetime]
    page: ModelPage | None = None
    state: tuple[object, ...] | None = None
    computing: bool = False
    failed: str = ""
    discovered: tuple[Uncovered, ...] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    replay: dict[str, Any] = field(default_factory=dict)  # the last computation's guesses per split (ReplayCache)

    def current(self, model_trained: str | None) -> ModelView:
        """The last page computed, and whether a fresher one is being computed; starts that computation
        when the posts, decisions or model changed since the last one."""
        state = state_of(self.store, model_trained)
        with self.lock:
            if state != self.state and not self.computing:
                self.computing, self.failed = True, ""
                threading.Thread(target=self._compute, args=(state,), name="model-page", daemon=True).start()
            return ModelView(self.page, self.computing, self.failed, self.discovered)

    def _compute(self, state: tuple[object, ...]) -> None:
        page, failed = None, ""
        try:
            page = gather(self.store, self.config, self.digest, now=self.clock(), cache=self.replay)
        except (AggregatorError, ValueError) as exc:  # ValueError: what scikit-learn cannot fit
            failed = f"the model page could not be computed: {exc}"
        with self.lock:
            self.computing, self.failed = False, failed
            self.state = state
            if page is not None:
                self.page = page

    def discover(self) -> tuple[Uncovered, ...]:
        found = discover(self.store, self.config, self.digest, now=self.clock())
        with self.lock:
            self.discovered = found
        return found

    def add_feed(self, site: str) -> FeedConfig:
        """Add the feed discovery found for `site` to feeds.yaml, as `feeds import-opml` adds feeds; only a
        feed found by discovery can be added."""
        feed = next((u.feed for u in self.discovered or () if u.site == site and u.feed), None)
        if feed is None:
            raise AggregatorError(f"no feed found for {site[:200]!r}: look for the feeds again")
        if self.config_path is None:
            raise AggregatorError("this desk does not know its feeds.yaml")
        entry = FeedConfig(name=site, url=feed)
        if not add_feeds(self.config_path, [entry]):
            raise AggregatorError(f"{self.config_path} already has a feed named {site!r} or at {feed}")
        return entry

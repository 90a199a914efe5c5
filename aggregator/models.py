"""Plain immutable records that cross module boundaries, the Edition value, and the month arithmetic they share; no I/O lives here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Literal

# ASCII digits only ([0-9], not \d, which takes fullwidth "２０２２-１２") and always matched whole with
# fullmatch (never `$`, which lets a trailing newline through): an edition has exactly one spelling.
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")

DEFAULT_DIGEST = "default"
"""The digest a feeds.yaml without `digests:` has, and the one every label stored before digests existed belongs to."""

SectionPath = tuple[str, ...]
"""A section of the digest as its headings, e.g. ("2. Business Cases ...", "2.4. Training ...")."""


@dataclass(frozen=True)
class FeedConfig:
    """One feed as feeds.yaml declares it."""

    name: str
    url: str
    source: str = ""
    interval: int | None = None  # seconds between polls; None = the default
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedState:
    """What a polling pass needs to know about a feed, read from the database."""

    id: int
    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    error_count: int = 0
    interval: int | None = None
    body_sha256: str | None = None  # of the last body parsed without error


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one HTTP fetch of a feed; `error` is set when it failed."""

    url: str  # the URL finally answered (after redirects)
    status: int | None = None
    body: bytes | None = None  # None on 304 and on errors
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # set when a 301/308 chain moved the feed
    retry_after: datetime | None = None
    error: str | None = None
    gone: bool = False  # 410: stop polling until reset


@dataclass(frozen=True)
class ParsedPost:
    """One entry of a feed, normalised: plain text, UTC dates, canonical link."""

    key: str  # stable identity within the feed: guid, else link, else hash
    url: str | None
    title: str
    summary: str
    published: datetime | None
    author: str = ""
    content_hash: str = ""


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed body."""

    title: str
    link: str | None
    posts: tuple[ParsedPost, ...]
    warning: str | None = None  # set when the XML was malformed but readable
    # With the feed's known fingerprints (parse_feed's `known`): this body's, to store; its entries read in
    # full; its posts left out of `posts` because they are stored as they read.
    fingerprints: str | None = field(default=None, compare=False)
    read: int = field(default=0, compare=False)
    unchanged: int = field(default=0, compare=False)


OutcomeStatus = Literal["ok", "not_modified", "error", "gone"]


@dataclass(frozen=True)
class FeedOutcome:
    """What one feed did during a polling pass."""

    feed: str
    status: OutcomeStatus
    new_posts: int = 0
    message: str | None = None


@dataclass(frozen=True)
class PassSummary:
    """The totals of one polling pass."""

    outcomes: tuple[FeedOutcome, ...]
    parse_workers: int = 0  # worker processes the pass started to parse bodies (0: every body parsed in-process)
    parse_workers_forked: bool = False  # they were forked from the pass's process, sharing its imported pages
    entries_read: int = 0  # entries of the bodies parsed that were read in full
    entries_unchanged: int = 0  # entries of changed bodies left unread, or unwritten, being as they were

    def count(self, status: OutcomeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def new_posts(self) -> int:
        return sum(o.new_posts for o in self.outcomes)


@dataclass(frozen=True)
class Candidate:
    """A stored post as the classifier and the draft see it."""

    id: int
    url: str
    title: str
    summary: str
    source: str
    published: datetime  # UTC; the first-seen time where the feed gave no date
    feed: str | None = None


@dataclass(frozen=True)
class Prediction:
    """The classifier's view of one candidate."""

    section: SectionPath
    section_confidence: float | None = None
    priority: float | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class DraftItem:
    """One candidate placed in a draft."""

    candidate: Candidate
    prediction: Prediction
    selected: bool = True


@dataclass(frozen=True)
class DigestEntry:
    """One post listed in a digest, as the editor wrote it."""

    title: str
    url: str
    section: SectionPath
    source: str = ""
    month: str | None = None  # "YYYY-MM" from "(Dec 2022, Netflix)", when given
    summary: str = ""
    line: int = 0  # 1-based line in the file, for messages


DigestStyle = Literal["house", "footnote", "weekly"]


@dataclass(frozen=True)
class Digest:
    """A whole digest file, read."""

    style: DigestStyle
    title: str
    sections: tuple[SectionPath, ...]  # the section tree in order, leaves and parents
    entries: tuple[DigestEntry, ...]
    month: str | None = None  # "YYYY-MM" the digest covers, when known
    candidates_below_cut: tuple[str, ...] = field(default=())  # URLs listed as not selected
    day: str | None = None  # "YYYY-MM-DD" of the front matter's date, when it has one
    emoji: tuple[tuple[str, str], ...] = ()  # (section name, the emoji its heading wears), footnote style


@dataclass(frozen=True)
class Label:
    """One editor decision about a post: selected into a section, or left out."""

    candidate: Candidate
    section: SectionPath | None  # None when the editor did not select the post
    selected: bool
    editor_summary: str = ""  # may enrich training text; never used for prediction


@dataclass(frozen=True)
class ImportEntry:
    """One selected post of an imported digest, ready to store."""

    url: str  # canonical
    title: str
    source: str
    published: datetime  # the first instant of the entry's edition: the digest gives no day
    section: SectionPath
    editor_summary: str
    printed: str | None = None  # "YYYY-MM" the entry printed ("(Nov 2022, …)", house style); None: it printed none


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in UTC for "YYYY-MM"; ValueError otherwise."""
    bounds = _month_bounds(month)
    if bounds is None:
        raise ValueError(f"{month!r} is not a month like 2022-12")
    return bounds


def month_of(when: datetime) -> str:
    return f"{when.year:04d}-{when.month:02d}"


Cadence = Literal["monthly", "weekly"]


def _month_bounds(text: str) -> tuple[datetime, datetime] | None:
    match = _MONTH.fullmatch(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    year, mon = int(match.group(1)), int(match.group(2))
    try:
        return (datetime(year, mon, 1, tzinfo=timezone.utc),
                datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=timezone.utc))
    except ValueError:  # year 0, or the month after 9999-12
        return None


def _week_bounds(text: str) -> tuple[datetime, datetime] | None:
    match = _WEEK.fullmatch(text)
    if not match:
        return None
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
        start = datetime(monday.year, monday.month, monday.day, tzinfo=timezone.utc)
        return start, start + timedelta(days=7)
    except (ValueError, OverflowError):  # no such week that year, or the week after 9999's last
        return None


def _not_an_edition(text: str, cadence: Cadence | None) -> str:
    """The one-line reason `text` is no edition (of `cadence`, when given)."""
    week = _WEEK.fullmatch(text)
    if cadence == "weekly" or (cadence is None and week):
        detail = f" (that year has no week {week.group(2)})" if week and _week_bounds(text) is None else ""
        return f"{text!r} is not an ISO week like 2023-W40{detail}"
    if cadence == "monthly" or _MONTH.fullmatch(text):
        return f"{text!r} is not a month like 2022-12"
    return f"{text!r} is not a month like 2022-12 or an ISO week like 2023-W40"


class Edition(str):
    """One edition of a digest: a month "YYYY-MM" (monthly cadence) or an ISO week "YYYY-Www" (weekly).

    A str, so it stores, compares, sorts, prints and serialises as its text; made once where text comes
    in (an option, a URL, a file name, a manifest, a row), which checks it: ValueError, in one line naming
    the value, for anything else. The text must be the edition exactly: ASCII digits, and no surrounding
    whitespace (a trailing newline is refused, not stripped), so that no edition has a second spelling
    that the desk could store decisions under or that a file name could carry."""

    __slots__ = ()

    def __new__(cls, text: str) -> Edition:
        if type(text) is cls:
            return text
        if not isinstance(text, str):
            raise TypeError(f"an edition is text, not {type(text).__name__}")
        if (_week_bounds(text) if text[5:6] == "W" else _month_bounds(text)) is None:
            raise ValueError(_not_an_edition(text, None))
        return super().__new__(cls, text)

    @classmethod
    def named(cls, text: str, cadence: Cadence) -> Edition:
        """The edition `text` names, which must be of `cadence` (a month, or an ISO week); ValueError otherwise."""
        try:
            edition = cls(text)
        except ValueError:
            edition = None
        if edition is None or edition.cadence != cadence:
            raise ValueError(_not_an_edition(text, cadence))
        return edition

    @classmethod
    def month(cls, when: datetime | date) -> Edition:
        """The month a moment (UTC) or a day falls in."""
        return cls(f"{when.year:04d}-{when.month:02d}")

    @classmethod
    def week(cls, when: datetime | date) -> Edition:
        """The ISO week a moment (UTC) or a day falls in."""
        year, week, _ = when.isocalendar()
        return cls(f"{year:04d}-W{week:02d}")

    @classmethod
    def of(cls, cadence: Cadence, when: datetime | date) -> Edition:
        """The edition of a digest with `cadence` that `when` (UTC) falls in."""
        return cls.week(when) if cadence == "weekly" else cls.month(when)

    @property
    def weekly(self) -> bool:
        """Whether this is an ISO week (the edition of a weekly digest), not a month."""
        return self[5] == "W"

    @property
    def cadence(self) -> Cadence:
        return "weekly" if self.weekly else "monthly"

    def bounds(self) -> tuple[datetime, datetime]:
        """[first instant, first instant of the next edition) in UTC: a month's, or a week's from Monday 00:00."""
        bounds = _week_bounds(self) if self.weekly else _month_bounds(self)
        assert bounds is not None  # checked when it was made
        return bounds

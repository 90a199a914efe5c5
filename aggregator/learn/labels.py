"""Turning a read digest into training labels (pure): each entry's edition, the editions a digest covers, sections aligned to the taxonomy."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone

from aggregator.errors import DigestError
from aggregator.limits import MAX_NAME, MAX_SUMMARY, MAX_TITLE, cap
from aggregator.links import canonical_url
from aggregator.models import Cadence, Digest, Edition, ImportEntry, SectionPath

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)*)\.?\s+(.*)$")
_FILE_MONTH = re.compile(r"(?<![0-9])([0-9]{4})-(0[1-9]|1[0-2])(?![0-9])")
_FILE_WEEK = re.compile(r"(?<![0-9])([0-9]{4})-W(0[1-9]|[1-4][0-9]|5[0-3])(?![0-9])")
COVER_SHARE = 0.25  # a month covers a digest when at least this share of its entries is from it
YEARS = (1990, 2100)  # the years a digest's dates may name: outside them a date is a typo or an attack


def out_of_range(edition: str) -> bool:
    """Whether an edition ("YYYY-MM" or "YYYY-Www") names a year outside YEARS."""
    return not YEARS[0] <= int(edition[:4]) <= YEARS[1]


def month_from_name(path: str) -> Edition | None:
    """The month a YYYY-MM in a file name names, as monthly drafts are named (drafts/2022-12.md)."""
    match = _FILE_MONTH.search(path.rsplit("/", 1)[-1])
    return _edition(match.group(0), path) if match else None


def week_from_name(path: str) -> Edition | None:
    """The ISO week a YYYY-Www in a file name names, as weekly drafts are named (drafts/2023-W40.md)."""
    match = _FILE_WEEK.search(path.rsplit("/", 1)[-1])
    return _edition(match.group(0), path) if match else None


def outside_years(path: str, edition: str) -> DigestError:
    return DigestError(f"{path}: edition {edition} is outside the years {YEARS[0]}-{YEARS[1]}; pass --month or --week")


def _edition(text: str, path: str) -> Edition:
    """The edition a digest file's name or what it says gives; DigestError naming the file when it is none."""
    if out_of_range(text):
        raise outside_years(path, text)
    try:
        return Edition(text)
    except ValueError as exc:
        raise DigestError(f"{path}: {exc}") from None


def entry_edition(cadence: Cadence, *, printed: str | None, published: datetime | None, fallback: Edition) -> Edition:
    """The edition one entry of a digest belongs to: the one rule every command files an entry by.

    A monthly digest's entry belongs to the month it printed ("(Nov 2022, …)", house style), else to the
    month of its post's publication date when that is known (the post was fetched from a feed with a date),
    else to `fallback`, the edition of the digest that lists it (footnote and weekly styles print no date).
    A weekly digest's entry belongs to the ISO week of its post's publication date, else to `fallback`: a
    printed month names no week. A post nobody decided on yet belongs, by the same rule, to the edition its
    date falls in, which is what `aggregator draft` holds."""
    if cadence == "monthly":
        if printed is not None:
            return Edition.named(printed, "monthly")
        return Edition.month(published) if published is not None else fallback
    return Edition.week(published) if published is not None else fallback


def covered_months(entry_months: Sequence[str | None]) -> list[str]:
    """Months (or any editions) holding at least COVER_SHARE of the entries (at least 2 of them), oldest first."""
    counts = Counter(m for m in entry_months if m)
    if not counts:
        return []
    total = sum(counts.values())
    covered = sorted(m for m, n in counts.items() if n >= max(2, COVER_SHARE * total))
    return covered or [counts.most_common(1)[0][0]]


def busy_editions(counts: Mapping[Edition, int]) -> list[Edition]:
    """The editions a running digest's history speaks for whole, oldest first: those listing at least 2
    entries and at least COVER_SHARE as many as its busiest edition (not one old post it cites)."""
    most = max(counts.values(), default=0)
    return sorted(e for e, n in counts.items() if n >= max(2, COVER_SHARE * most))


def digest_month(digest: Digest, path: str, given: Edition | None) -> Edition | None:
    """The month a digest is for: --month, else the file name, else what the reader found, else
    the latest month that holds a good share of its entries (a digest also cites older posts)."""
    if given:
        return given
    months = covered_months([e.month for e in digest.entries])
    found = month_from_name(path) or digest.month or (months[-1] if months else None)
    return None if found is None else _edition(found, path)


def digest_week(digest: Digest, path: str, given: Edition | None) -> Edition | None:
    """The ISO week a weekly digest is for: --week, else a YYYY-Www in the file name (as weekly drafts
    are named), else the week of its front matter's date."""
    if given:
        return given
    found = week_from_name(path)
    if found is None and digest.day:
        try:
            found = Edition.week(date.fromisoformat(digest.day))
        except ValueError as exc:  # the last week of 9999
            raise DigestError(f"{path}: {exc}") from None
    return found


def number_and_name(heading: str) -> tuple[str | None, str]:
    """("2.4", "training, inference and mlops") for "2.4. Training, Inference and MLOps"; (None, name) unnumbered."""
    match = _NUMBER.match(heading)
    return (match.group(1), match.group(2).strip().casefold()) if match else (None, heading.strip().casefold())


def leaves(tree: Sequence[SectionPath]) -> tuple[SectionPath, ...]:
    """The sections an entry can stand in: those no other section of the tree nests under."""
    return tuple(s for s in tree if not any(len(o) > len(s) and o[: len(s)] == s for o in tree))


def _numbers(section: SectionPath) -> tuple[str | None, ...]:
    return tuple(number_and_name(h)[0] for h in section)


def _number_key(section: SectionPath) -> tuple[int, ...]:
    return tuple(int(part) for part in (number_and_name(section[-1])[0] or "").split(".") if part.isdigit())


def merge_trees(trees: Sequence[Sequence[SectionPath]]) -> tuple[SectionPath, ...]:
    """The newest section tree (the last), with every section of the older ones that it neither has nor
    renamed (the same numbers at every level): an edition lists only the sections it used, so a draft
    exported with three sections drops none of the others. A numbered tree is kept in number order."""
    if not trees:
        return ()
    tree = list(trees[-1])
    for older in reversed(trees[:-1]):
        for section in older:
            numbers = _numbers(section)
            renamed = None not in numbers and any(_numbers(t) == numbers for t in tree)
            if section not in tree and not renamed:
                tree.append(section)
    if all(None not in _numbers(s) for s in tree):
        tree.sort(key=_number_key)
    return tuple(tree)


def align_section(section: SectionPath, taxonomy: Sequence[SectionPath]) -> SectionPath:
    """The taxonomy section an old heading path means: the same path, else the leaf with the same
    number (e.g. "2.4." when the parent was renamed), else the first leaf with the same name
    (unnumbered digests); otherwise the path as written."""
    if not taxonomy or section in taxonomy:
        return section
    number, name = number_and_name(section[-1])
    if number:
        for leaf in leaves(taxonomy):
            if number_and_name(leaf[-1])[0] == number:
                return leaf
    for leaf in leaves(taxonomy):
        if number_and_name(leaf[-1])[1] == name:
            return leaf
    return section


def import_entries(digest: Digest, month: str) -> list[ImportEntry]:
    """The digest's entries with canonical URLs, sections as written; the first of duplicates wins. Titles,
    sources, headings and summaries are cut to the limits (`aggregator.limits`). An entry's `printed` month
    is the one a house-style line printed; the other styles' entries carry the digest's month, printed by nobody."""
    seen: set[str] = set()
    out = []
    for entry in digest.entries:
        url = canonical_url(entry.url)
        if url is None or url in seen:
            continue
        seen.add(url)
        year, mon = (entry.month or month).split("-")
        out.append(ImportEntry(url, cap(entry.title, MAX_TITLE), cap(entry.source, MAX_NAME),
                               datetime(int(year), int(mon), 1, tzinfo=timezone.utc),
                               tuple(cap(h, MAX_NAME) for h in entry.section), cap(entry.summary, MAX_SUMMARY),
                               entry.month if digest.style == "house" else None))
    return out


def sections_without_source(digests_entries: Sequence[tuple[SectionPath, str]]) -> list[str]:
    """Top-level sections whose entries mostly print no source label (the house style's "3. AWS ML Only")."""
    totals: Counter[str] = Counter()
    with_source: Counter[str] = Counter()
    for section, source in digests_entries:
        if section:
            totals[section[0]] += 1
            with_source[section[0]] += bool(source)
    return sorted(top for top, n in totals.items() if n >= 2 and with_source[top] / n < 0.5)

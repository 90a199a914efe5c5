"""Reading a digest: the bounds, telling its style, and handing it to that style's reader."""

from __future__ import annotations

from collections.abc import Sequence

from markdown_it.token import Token

from aggregator.errors import DigestError
from aggregator.learn.reading.footnote import footnote_signals, read_footnote
from aggregator.learn.reading.house import CUT_HEADING, house_signals, read_house
from aggregator.learn.reading.markdown import check_bounds, parse
from aggregator.learn.reading.weekly import read_weekly, weekly_signals
from aggregator.models import Digest, DigestStyle, Edition

STYLES: tuple[DigestStyle, ...] = ("house", "footnote", "weekly")


def read_digest(
    text: str,
    *,
    path: str = "<string>",
    style: DigestStyle | None = None,
    month: str | None = None,
    cut_heading: str = CUT_HEADING,
) -> Digest:
    """Read one digest file into a `Digest`.

    Args:
        text: the Markdown source.
        path: the file name, used in error messages.
        style: force a style instead of detecting it.
        month: "YYYY-MM" the digest covers; overrides what the file says (footnote and
            weekly take it from the front matter date, house leaves it None otherwise).
        cut_heading: the heading of a draft's "not selected" section (house style).

    Raises:
        DigestError: the text is in no known style, or an entry has no URL.
    """
    if month is not None:
        try:
            month = Edition.named(month, "monthly")
        except ValueError:
            raise DigestError(f"{path}: month must be YYYY-MM, got {month!r}") from None
    check_bounds(text, path)
    doc = parse(text)
    chosen = style or _detect(doc.tokens)
    if chosen is None:
        raise _not_a_digest(path)
    if chosen == "house":
        return read_house(doc, path, month, cut_heading)
    if chosen == "footnote":
        return read_footnote(doc, path, month)
    if chosen == "weekly":
        return read_weekly(doc, path, month)
    raise DigestError(f"{path}: unknown digest style {chosen!r}")


def detect_style(text: str, *, path: str = "<string>") -> DigestStyle:
    """Tell which style a digest is written in.

    Raises:
        DigestError: the text looks like none of them.
    """
    found = _detect(parse(text).tokens)
    if found is None:
        raise _not_a_digest(path)
    return found


def _detect(tokens: Sequence[Token]) -> DigestStyle | None:
    """The style with the most entry-shaped signals; ties go house > footnote > weekly."""
    scores: dict[DigestStyle, int] = {
        "house": house_signals(tokens),
        "footnote": footnote_signals(tokens),
        "weekly": weekly_signals(tokens),
    }
    best = max(STYLES, key=lambda s: scores[s])
    return best if scores[best] > 0 else None


def _not_a_digest(path: str) -> DigestError:
    return DigestError(f"{path}: not a digest in any known style ({', '.join(STYLES)})")

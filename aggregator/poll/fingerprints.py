"""Per-entry fingerprints of a feed's last body: which entries of a changed body are as they were."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a pass of 304s loads fingerprints without importing a parser
    from xml.etree import ElementTree

MAX_ENTRIES = 500  # fingerprints kept per feed (about 50 bytes each); entries past these are read every time

EntryIds = tuple[str, str]  # short ids of an entry's post key and link ("" for a post without a link)
Known = dict[str, EntryIds]  # fingerprint -> the ids of the post it gave
Record = tuple[str, EntryIds]


def short(text: str) -> str:
    """A 64-bit hash of `text` in hex: enough to tell one feed's entries apart."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def element_print(context: str, element: ElementTree.Element) -> str:
    """An entry's element as ElementTree read it, in the context it is read in (the feed's URL, base and link):
    equal prints read as equal posts. Every element inside it in document order, each with its tag, text, tail,
    attributes and number of children (which fix the tree's shape), joined by NUL, which XML never holds
    (nor \\x01, which marks the numbers)."""
    parts = [context]
    add = parts.append
    for inner in element.iter():
        add(inner.tag)
        add(inner.text or "")
        add("" if inner is element else inner.tail or "")
        attrib = inner.attrib
        if len(inner) or attrib:  # a leaf without attributes, the usual element, needs no shape
            add(f"\x01{len(inner)} {len(attrib)}")
            for name, value in attrib.items():
                add(name)
                add(value)
    return "e" + short("\x00".join(parts))


def post_print(key: str, content_hash: str) -> str:
    """A parsed post's identity and content, for bodies the fast reader hands to feedparser."""
    return "p" + short(key + "\x00" + content_hash)


def ids(key: str, url: str | None) -> EntryIds:
    return short(key), short(url) if url else ""


def load(text: str | None) -> Known:
    """The fingerprints a feed's row holds ("print.keyid.urlid" separated by spaces); malformed ones are dropped."""
    known: Known = {}
    for record in (text or "").split():
        parts = record.split(".")
        if len(parts) == 3 and parts[0] and parts[1]:
            known[parts[0]] = (parts[1], parts[2])
    return known


def dump(records: Sequence[Record]) -> str:
    """The fingerprints of one body as stored on its feed's row: the first MAX_ENTRIES of them."""
    return " ".join(f"{fp}.{key}.{url}" for fp, (key, url) in records[:MAX_ENTRIES])

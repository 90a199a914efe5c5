"""Loading and validating feeds.yaml: the only module that reads the configuration file."""

from __future__ import annotations

import io
import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from aggregator.checked import After, Before, Problem, Rule, build
from aggregator.errors import ConfigError
from aggregator.files import atomic_write
from aggregator.limits import MAX_NAME, MAX_URL
from aggregator.models import DEFAULT_DIGEST, FeedConfig

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> int:
    """Turn 90, "90", "30m", "6h", "1d" or "2w" into seconds (a positive int)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m, 6h or 1d")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30m, 6h or 1d")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


Duration = Annotated[int, Before(parse_duration)]


def check_http_url(url: str) -> str:
    """Accept only absolute http(s) URLs with a host."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL, got {url!r}")
    return url.strip()


def not_blank(text: str) -> str:
    """Refuse a name or title of spaces alone: it would name nothing once stripped."""
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Name = Annotated[str, Rule(min_length=1, max_length=MAX_NAME), After(not_blank)]


@dataclass(frozen=True)
class FeedEntry:
    """One item of `feeds:`."""

    name: Name
    url: Annotated[str, Rule(max_length=MAX_URL), After(check_http_url)]
    source: Annotated[str, Rule(max_length=MAX_NAME)] = ""
    interval: Duration | None = None
    tags: tuple[str, ...] = ()

    def to_feed(self) -> FeedConfig:
        return FeedConfig(self.name.strip(), self.url, self.source.strip(), self.interval, self.tags)


@dataclass(frozen=True)
class Polling:
    """How feeds are polled (`defaults:`)."""

    interval: Duration = 3600
    tick: Duration = 300  # how often the daemon looks for due feeds
    timeout: Duration = 30  # total seconds one fetch may take
    connect_timeout: Duration = 10
    max_bytes: Annotated[int, Rule(gt=0)] = 5 * 1024 * 1024
    concurrency: Annotated[int, Rule(gt=0, le=256)] = 64  # feeds fetched at once (per_host still applies)
    per_host: Annotated[int, Rule(gt=0, le=16)] = 6  # as browsers do over HTTP/1.1
    max_backoff: Duration = 86400  # the longest wait between retries of a failing feed
    broken_after: Annotated[int, Rule(gt=0)] = 3  # consecutive errors before a feed shows as broken
    lease: Duration = 300  # PostgreSQL: how long a poller's claim on a feed lasts if it dies before recording it
    user_agent: str = "aggregator/0.1 (+https://github.com/aggregator; monthly AI/ML digest)"

    def __post_init__(self) -> None:
        if self.lease <= self.timeout:
            raise ValueError(f"lease ({self.lease} s) must be longer than timeout ({self.timeout} s): a claim must "
                             "outlast the fetch it was taken for")


def _check_networks(value: Any) -> bool | tuple[str, ...]:
    """`fetch.allow_private`: true, false, or a list of addresses and networks ("127.0.0.1", "10.0.0.0/8")."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be true, false or a list of addresses and networks such as 10.0.0.0/8")
    for item in value:
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an address or network such as 127.0.0.1 or 10.0.0.0/8") from None
    return tuple(v.strip() for v in value)


@dataclass(frozen=True)
class PageFetching:
    """How single web pages (a post added by URL) are fetched (`fetch:`); the limits are `defaults:`'s."""

    # A page on a private, loopback or link-local address is refused unless allowed here: true for every
    # such address, or a list of the addresses and networks allowed.
    allow_private: Annotated[bool | tuple[str, ...], Before(_check_networks)] = False


@dataclass(frozen=True)
class DraftSettings:
    """Where and how drafts are written (`draft:`)."""

    dir: str = "drafts"
    title: str = "Summary of Important AI & ML Blog Posts"
    section: str = "1. Posts"  # the single section used until a model is trained
    refresh: Duration = 86400  # how often the daemon rewrites the current month's draft
    below_cut: Annotated[int, Rule(ge=0)] = 15  # candidates listed under "Candidates below the cut"


@dataclass(frozen=True)
class DigestSettings:
    """One item of `digests:`: a digest with its own taxonomy, model, style and cadence."""

    name: Annotated[str, Rule(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]  # also a folder name (models/NAME/)
    title: Name
    style: Literal["house", "footnote", "weekly"] = "house"
    cadence: Literal["monthly", "weekly"] = "monthly"
    feeds: tuple[str, ...] | None = None  # feed names and/or "tag:NAME"; None: every feed
    dir: str | None = None  # where its drafts go; default drafts/NAME
    tags: tuple[str, ...] = ()  # the footnote and weekly styles' front-matter tags
    category: str | None = None  # the weekly style's front-matter category (its one section); default: the title
    link_label: str = "참고링크"  # the weekly style's link to the post


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    defaults: Polling = field(default_factory=Polling)
    fetch: PageFetching = field(default_factory=PageFetching)
    draft: DraftSettings = field(default_factory=DraftSettings)
    digests: tuple[DigestSettings, ...] = ()
    database: str | None = None  # SQLAlchemy URL; default: aggregator.db beside feeds.yaml
    models: str = "models"  # where `train` saves the models
    feeds: tuple[FeedEntry, ...] = ()
    base_dir: Path = Path(".")  # the folder of feeds.yaml; relative paths resolve against it

    def settings_json(self) -> str:
        """The settings as compact JSON, in the order declared (the folder of feeds.yaml left out): the same
        text for the same settings, whose hash a draft's manifest records."""
        settings = asdict(self)
        del settings["base_dir"]
        return json.dumps(settings, ensure_ascii=False, separators=(",", ":"))

    def feed_configs(self) -> tuple[FeedConfig, ...]:
        return tuple(f.to_feed() for f in self.feeds)

    def digest_list(self) -> tuple[DigestSettings, ...]:
        """The declared digests; without `digests:`, one house-style monthly digest from `draft:`."""
        if self.digests:
            return self.digests
        return (DigestSettings(name=DEFAULT_DIGEST, title=self.draft.title, dir=self.draft.dir),)

    def digest(self, name: str | None) -> DigestSettings:
        """The digest called `name`; None picks the only one. ConfigError names the choices otherwise."""
        digests = self.digest_list()
        if name is None:
            if len(digests) == 1:
                return digests[0]
            raise ConfigError(f"there are {len(digests)} digests ({', '.join(d.name for d in digests)}): pass --digest NAME")
        for d in digests:
            if d.name == name:
                return d
        raise ConfigError(f"no digest named {name!r} (digests: {', '.join(d.name for d in digests)})")

    def digest_feeds(self, digest: DigestSettings) -> frozenset[str] | None:
        """The names of the feeds a digest reads, or None for all of them."""
        if digest.feeds is None:
            return None
        names = set()
        for selector in digest.feeds:
            if selector.startswith("tag:"):
                names |= {f.name.strip() for f in self.feeds if selector[4:] in f.tags}
            else:
                names.add(selector.strip())
        return frozenset(names)

    def drafts_dir(self, digest: DigestSettings) -> Path:
        return self.resolve(digest.dir or f"{self.draft.dir}/{digest.name}")

    def models_dir(self, digest: DigestSettings) -> Path:
        """models/NAME/ for a declared digest; models/ itself for the implicit one (where it always was)."""
        base = self.resolve(self.models)
        return base if not self.digests else base / digest.name

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def default_db_url(self) -> str:
        return self.database or f"sqlite:///{self.resolve('aggregator.db')}"


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.indent(mapping=2, sequence=4, offset=2)  # the "  - name: ..." layout of the bundled file
    yaml.width = 4096
    return yaml


def _line_of(doc: Any, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line in the YAML of the deepest node on `loc` that has one."""
    line = None
    node = doc
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def _field_name(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _cross_problems(doc: Any) -> list[Problem]:
    """What no single field can check: duplicate feeds or digests, and digests naming feeds or tags that do not exist."""
    problems = _duplicate_problems(doc)
    feeds = doc.get("feeds") if isinstance(doc, dict) else None
    digests = doc.get("digests") if isinstance(doc, dict) else None
    if not isinstance(digests, list):
        return problems
    feeds = [f for f in feeds if isinstance(f, dict)] if isinstance(feeds, list) else []
    names = {str(f.get("name", "")).strip() for f in feeds}
    tags = {str(t) for f in feeds if isinstance(f.get("tags"), list) for t in f["tags"]}
    seen: dict[str, int] = {}
    for i, digest in enumerate(digests):
        if not isinstance(digest, dict):
            continue
        name = digest.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append((("digests", i, "name"), f"duplicate name {name!r} (first used by digests[{seen[name]}])"))
            seen.setdefault(name, i)
        selectors = digest.get("feeds")
        for j, selector in enumerate(selectors if isinstance(selectors, list) else []):
            if not isinstance(selector, str):
                continue
            if selector.startswith("tag:") and selector[4:] not in tags:
                problems.append((("digests", i, "feeds", j), f"no feed has the tag {selector[4:]!r}"))
            elif not selector.startswith("tag:") and selector.strip() not in names:
                problems.append((("digests", i, "feeds", j), f"no feed named {selector!r}"))
    return problems


def _duplicate_problems(doc: Any) -> list[Problem]:
    problems: list[Problem] = []
    feeds = doc.get("feeds") if isinstance(doc, dict) else None
    if not isinstance(feeds, list):
        return problems
    seen: dict[tuple[str, str], int] = {}
    for i, feed in enumerate(feeds):
        if not isinstance(feed, dict):
            continue
        for key in ("name", "url"):
            value = feed.get(key)
            if not isinstance(value, str):
                continue
            norm = value.strip().lower().rstrip("/")
            if (key, norm) in seen:
                problems.append(((("feeds", i, key)), f"duplicate {key} {value!r} (first used by feeds[{seen[key, norm]}])"))
            else:
                seen[key, norm] = i
    return problems


MAX_DEPTH = 50  # levels of nesting feeds.yaml may have (it needs four); deeper ones crash YAML parsers
_MAX_INDENT = 100


def _nesting_problem(text: str, path: str) -> str | None:
    """One line about nesting deeper than MAX_DEPTH, found by a linear scan before any YAML parser (the C
    one crashes on a hundred thousand levels, the pure one runs out of recursion at a few hundred)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        dashes = 0
        while body.startswith("- "):
            dashes += 1
            body = body[2:].lstrip(" ")
        quote, escaped = "", False
        for ch in body:
            if escaped:  # the character after a backslash in a double-quoted scalar: never its end
                escaped = False
            elif quote == '"' and ch == "\\":
                escaped = True
            elif quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                break
            elif ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            if depth > MAX_DEPTH:
                break
        if indent > _MAX_INDENT or dashes > MAX_DEPTH // 2 or depth > MAX_DEPTH:
            return f"{path}:{number}: nested deeper than feeds.yaml can be ({MAX_DEPTH} levels at most)"
    return None


def parse_config(text: str, *, path: str = "feeds.yaml", base_dir: Path | None = None) -> Config:
    """Validate the text of a feeds.yaml; raise ConfigError with one line per problem."""
    problem = _nesting_problem(text, path)
    if problem:
        raise ConfigError(problem)
    try:  # fast path: the C loader, ten times quicker on a long feed list; no line numbers needed when valid
        safe = YAML(typ="safe", pure=False)
        safe.allow_duplicate_keys = False
        doc = safe.load(text)
        if isinstance(doc, dict) and not _cross_problems(doc):
            config = build(Config, {**doc, "base_dir": base_dir or Path(".")}, [])
            if config is not None:
                return config
    except (YAMLError, RecursionError):
        pass
    return _parse_with_lines(text, path=path, base_dir=base_dir)


def _parse_with_lines(text: str, *, path: str, base_dir: Path | None) -> Config:
    """The slow path: the round-trip loader, which knows each value's line, for precise messages."""
    try:
        doc = _yaml().load(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested deeper than feeds.yaml can be ({MAX_DEPTH} levels at most)") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else path
        raise ConfigError(f"{where}: {' '.join(str(exc.problem or exc.context or 'invalid YAML').split())}") from None
    except YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}:1: the file must be a mapping with a `feeds:` list")
    problems: list[Problem] = []
    config = build(Config, {**doc, "base_dir": base_dir or Path(".")}, problems)
    problems += _cross_problems(doc)
    if problems:
        lines = []
        for loc, msg in problems:
            line = _line_of(doc, loc)
            where = f"{path}:{line}" if line else path
            lines.append(f"{where}: {_field_name(loc)}: {msg}")
        raise ConfigError("\n".join(lines))
    assert config is not None
    return config


def load_config(path: Path) -> Config:
    """Read and validate feeds.yaml at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (pass --config or set AGGREGATOR_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(text, path=str(path), base_dir=path.resolve().parent)


def add_feeds(path: Path, feeds: list[FeedConfig]) -> list[FeedConfig]:
    """Append feeds to feeds.yaml keeping its comments and order; skip names/URLs it has. Returns those added."""
    config = load_config(path)  # refuse to edit an invalid file
    known_urls = {f.url.strip().lower().rstrip("/") for f in config.feeds}
    known_names = {f.name.strip().lower() for f in config.feeds}
    yaml = _yaml()
    doc = yaml.load(path.read_text(encoding="utf-8")) or CommentedMap()
    if doc.get("feeds") is None:
        doc["feeds"] = CommentedSeq()
    added: list[FeedConfig] = []
    for feed in feeds:
        url_key, name_key = feed.url.strip().lower().rstrip("/"), feed.name.strip().lower()
        if url_key in known_urls or name_key in known_names:
            continue
        item = CommentedMap(name=feed.name, url=feed.url)
        if feed.source:
            item["source"] = feed.source
        if feed.tags:
            item["tags"] = list(feed.tags)
        doc["feeds"].append(item)
        known_urls.add(url_key)
        known_names.add(name_key)
        added.append(feed)
    if added:
        buffer = io.StringIO()
        yaml.dump(doc, buffer)
        parse_config(buffer.getvalue(), path=str(path))  # what is written must read back
        atomic_write(path, buffer.getvalue().encode("utf-8"), follow_links=True)
    return added

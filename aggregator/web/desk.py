"""The review desk's jobs: one edition's candidates as the desk shows them, the editor's actions on them
(stored at once as decisions), posts added by URL, export of the draft, and retraining in the background."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aggregator.config import Config, DigestSettings
from aggregator.errors import AggregatorError, ConflictError, DigestError, StaleError
from aggregator.learn.labels import leaves, out_of_range
from aggregator.limits import MAX_SUMMARY, cap
from aggregator.models import DraftItem, Edition, FeedConfig, SectionPath
from aggregator.store import Store
from aggregator.store.decisions import Decision, DeskResult

if TYPE_CHECKING:
    from aggregator.adding import Added, Preview
    from aggregator.learn.classify import Model
    from aggregator.poll.fetch import Fetcher
    from aggregator.web.model_page import ModelView

State = Literal["accepted", "rejected", "undecided"]
ACTIONS: tuple[str, ...] = ("accept", "reject", "move", "edit")
BELOW = "below"  # the group of undecided rows under the model's cut
LEFT_OUT = "left-out"  # the group of rejected rows
CHANGED_ELSEWHERE = "changed elsewhere (another tab or an import) since this page was loaded; reload to see it"


class DeskError(AggregatorError):
    """A request the desk refuses: unknown edition, post or section, or a bad form; `status` is its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Row:
    """One candidate as the desk shows it."""

    id: int
    title: str
    link: str | None  # only an http(s) URL is ever a link
    url: str
    source: str
    date: str
    opening: str
    priority: float | None
    confidence: float | None
    reasons: tuple[str, ...]
    section: SectionPath  # its decided section, else the model's
    state: State
    selected: bool  # in the digest: accepted, or undecided and above the cut
    summary: str  # the editor's own, when they wrote one
    revision: int


@dataclass(frozen=True)
class Group:
    """A section of the digest (or one of the two groups under it) and its rows, in the desk's order."""

    key: str
    label: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class EditionView:
    """Everything the desk page shows for one edition."""

    edition: Edition
    digest: str
    groups: tuple[Group, ...]
    sections: tuple[SectionPath, ...]  # what a post can be moved to, in the taxonomy's order
    sources: tuple[str, ...]
    trained: str | None  # when the model was trained (None: no model yet)
    cut: float  # the lowest priority of an undecided selected row (an undone row goes back by it)

    @property
    def rows(self) -> int:
        return sum(len(g.rows) for g in self.groups)

    @property
    def chosen(self) -> int:
        """Rows the draft holds now: those filed under a section, neither below the cut nor left out."""
        return sum(len(g.rows) for g in self.groups if g.key not in (BELOW, LEFT_OUT))


def section_key(section: SectionPath) -> str:
    return " > ".join(section)


def _opening(text: str, limit: int = 300) -> str:
    from aggregator.digest.render import first_sentences

    return first_sentences(text, 2, limit)


def state_of(decision: Decision) -> State:
    return "undecided" if decision.selected is None else ("accepted" if decision.selected else "rejected")


def _row(item: DraftItem, decision: Decision, own_text: str | None = None) -> Row:
    """A candidate as a row; its opening is the post's own text (`own_text` where the placement gave the
    candidate the editor's summary instead), never the editor's line."""
    post, prediction = item.candidate, item.prediction
    own = post.summary if own_text is None else own_text
    state = state_of(decision)
    link = post.url if post.url.lower().startswith(("http://", "https://")) else None
    return Row(post.id, post.title or post.url, link, post.url, post.source or post.feed or "",
               post.published.strftime("%Y-%m-%d"), _opening(own), prediction.priority,
               prediction.section_confidence, prediction.reasons, prediction.section, state,
               item.selected and state != "rejected", decision.summary, decision.revision)


def arrange(items: Sequence[DraftItem], decisions: dict[int, Decision], tree: Sequence[SectionPath],
            own_texts: dict[int, str] | None = None) -> tuple[Group, ...]:
    """The desk's order: the sections in the taxonomy's order, each with its accepted rows first (in the
    order they were decided, so re-ranking never moves them) and then its undecided rows by priority;
    then the undecided rows under the cut, then the rejected ones. `own_texts` holds the posts' own texts
    where the candidates carry the editor's summary instead."""
    own_texts = own_texts or {}
    rows = [_row(i, decisions.get(i.candidate.id, Decision()), own_texts.get(i.candidate.id)) for i in items]
    order = {r.id: decisions[r.id].order for r in rows if r.id in decisions}

    def ranked(row: Row) -> tuple[float, float, str]:
        return (0 if row.state == "accepted" else 1, order.get(row.id, 0) if row.state == "accepted" else -(row.priority or 0.0),
                row.url)

    sections = list(leaves(tree))
    for row in rows:
        if row.selected and row.section not in sections:
            sections.append(row.section)
    groups = [Group(section_key(s), " › ".join(s), tuple(sorted((r for r in rows if r.selected and r.section == s), key=ranked)))
              for s in sections]
    below = sorted((r for r in rows if not r.selected and r.state == "undecided"), key=ranked)
    left_out = sorted((r for r in rows if r.state == "rejected"), key=lambda r: order.get(r.id, 0))
    return (*groups, Group(BELOW, "Below the cut", tuple(below)), Group(LEFT_OUT, "Left out", tuple(left_out)))


@dataclass(frozen=True)
class Outcome:
    """A row after an action: what the page needs to show it where it now belongs."""

    post: int
    state: State
    section: SectionPath | None
    summary: str
    revision: int
    action: int  # the log entry, for undo

    def as_dict(self) -> dict[str, object]:
        return {"post": self.post, "state": self.state, "section": section_key(self.section) if self.section else None,
                "summary": self.summary, "revision": self.revision, "action": self.action}


def _outcome(post: int, result: DeskResult) -> Outcome:
    d = result.decision
    return Outcome(post, state_of(d), d.section, d.summary, d.revision, result.action_id)


def clean_summary(text: str) -> str:
    """The editor's summary as one line, within the limit."""
    return cap(" ".join(text.split()), MAX_SUMMARY)


@dataclass(frozen=True)
class Export:
    """What an export wrote and how it differs from what the file held before."""

    path: Path
    selected: int
    undecided: int  # selected rows the editor has not decided on (an import would record them as picks)
    diff: str

    @property
    def changed(self) -> bool:
        return bool(self.diff)


@dataclass
class Retraining:
    """The state of the background retraining, shared by every request."""

    running: bool = False
    failed: bool = False
    message: str = ""
    generation: int = 0  # raised each time a new model is in place
    lock: threading.Lock = field(default_factory=threading.Lock)


class Desk:
    """The desk's jobs for one digest, over one store; the web routes only parse requests and call these."""

    def __init__(self, store: Store, config: Config, digest: DigestSettings, *, model: Model | None,
                 model_dir: Path, clock: Callable[[], datetime], edition: Edition | None = None,
                 config_path: Path | None = None) -> None:
        from aggregator.web.model_page import ModelPages

        self.store, self.config, self.digest = store, config, digest
        self.model, self.model_dir, self.clock = model, model_dir, clock
        self.edition = edition  # the one `review` was asked for: where the desk's root leads
        self._pages: dict[str, Preview] = {}  # pages fetched for adding, by canonical URL: each is fetched once
        self._fetcher: Fetcher | None = None
        self.retraining = Retraining()
        self.model_pages = ModelPages(store, config, digest, config_path, clock)
        self._candidates: dict[Edition, frozenset[int]] = {}
        self._write = threading.Lock()  # one export or model swap at a time

    def home(self) -> Edition:
        """The edition the desk opens on: the one asked for, else the current one."""
        return self.edition or Edition.of(self.digest.cadence, self.clock())

    def check_edition(self, edition: str) -> Edition:
        """The edition a URL names, if it is one of this digest's; DeskError (404) otherwise. The desk's
        jobs check what they are given with it too, for callers other than the routes."""
        try:
            checked = Edition(edition)
        except ValueError:
            form = "YYYY-Www" if self.digest.cadence == "weekly" else "YYYY-MM"
            raise DeskError(f"no edition {edition!r}: use {form}", 404) from None
        if out_of_range(checked):
            raise DeskError(f"no edition {edition!r}: outside the years aggregator reads", 404)
        if checked.cadence != self.digest.cadence:
            raise DeskError(f"no edition {edition!r}: digest {self.digest.name!r} is {self.digest.cadence}", 404)
        return checked

    def view(self, edition: Edition) -> EditionView:
        """The edition's rows: the same placement as `aggregator draft`, with the editor's decisions."""
        from aggregator.digest.draft import place_draft

        edition = self.check_edition(edition)
        model = self.model
        placed = place_draft(self.store, self.config, edition, model=model, digest=self.digest)
        decisions = self.store.decisions(edition, digest=self.digest.name)
        sections = self._sections(placed.tree)
        edited = [i.candidate.id for i in placed.items if decisions.get(i.candidate.id, Decision()).summary]
        groups = arrange(placed.items, decisions, sections, self.store.own_texts(edited) if edited else {})
        self._candidates[edition] = frozenset(i.candidate.id for i in placed.items)
        undecided = [r.priority or 0.0 for g in groups[:-2] for r in g.rows if r.state == "undecided"]
        sources = sorted({r.source for g in groups for r in g.rows if r.source})
        trained = str(model.meta.get("trained_at", "?"))[:19] if model is not None else None
        return EditionView(edition, self.digest.name, groups, sections, tuple(sources), trained,
                         min(undecided) if undecided else 2.0)

    def _check_post(self, edition: Edition, post: int) -> None:
        if post not in self._candidates.get(edition, frozenset()):
            self.view(edition)  # posts may have arrived since the page was made
            if post not in self._candidates[edition]:
                raise DeskError(f"post {post} is not a candidate of {edition} in digest {self.digest.name!r}", 404)

    def _check_section(self, section: str | None) -> SectionPath:
        if not section:
            raise DeskError("a section is required")
        tree = self._sections()
        if self.model is None:  # unranked rows stand in the draft's one section until the editor moves them
            tree = (*tree, (self.config.draft.section,))
        for s in tree:
            if section_key(s) == section:
                return s
        raise DeskError(f"section {section[:200]!r} is not in the taxonomy of digest {self.digest.name!r}")

    def _sections(self, tree: tuple[SectionPath, ...] = ()) -> tuple[SectionPath, ...]:
        """The sections a post can be filed under: the leaves of `tree` (the placement's, when the caller
        has it) or of the digest's taxonomy, or the draft's one section."""
        from aggregator.learn.jobs import scope_of, taxonomy

        tree = tree or taxonomy(self.store, scope_of(self.config, self.digest)) or (tuple(self.model.sections) if self.model else ())
        return leaves(tree) if tree else ((self.config.draft.section,),)

    def act(self, edition: Edition, post: int, action: str, *, revision: int, section: str | None = None,
            summary: str | None = None) -> Outcome:
        """Accept (into `section`), reject, move (to `section`) or edit the summary of (accepting it into
        `section` when it was not accepted) one post; stored at once. ConflictError when the row changed
        since `revision`."""
        edition = self.check_edition(edition)
        if action not in ACTIONS:
            raise DeskError(f"unknown action {action[:40]!r}: one of {', '.join(ACTIONS)}")
        self._check_post(edition, post)
        current = self.store.decision(edition, post, digest=self.digest.name)
        if current.revision != revision:
            raise ConflictError(CHANGED_ELSEWHERE)  # before the section is checked: the page is out of date
        if action == "reject":
            after = Decision(False, None, current.summary)
        elif action == "edit":
            if summary is None:
                raise DeskError("a summary is required")
            where = current.section if current.selected else self._check_section(section)
            after = Decision(True, where, clean_summary(summary))
        else:
            after = Decision(True, self._check_section(section), current.summary)
        try:
            result = self.store.decide(edition, post, after, revision=revision, action=action, now=self.clock(),
                                       digest=self.digest.name)
        except StaleError:
            raise ConflictError(CHANGED_ELSEWHERE) from None
        return _outcome(post, result)

    def preview_page(self, edition: Edition, url: str) -> Preview:
        """The page at `url` as the add form shows it, fetched once under the polling limits (a URL already
        stored is read from the store); a page that cannot be had comes back with its one-line reason."""
        from aggregator.adding import page_settings, preview
        from aggregator.poll.fetch import Fetcher

        self.check_edition(edition)
        with self._write:
            if self._fetcher is None:
                self._fetcher = Fetcher(page_settings(self.config))
            fetcher = self._fetcher
        page = preview(self.store, url, fetcher=fetcher, model=self.model, now=self.clock())
        with self._write:
            self._pages.pop(page.url, None)
            self._pages[page.url] = page
            while len(self._pages) > 64:
                self._pages.pop(next(iter(self._pages)))
        return page

    def add_page(self, edition: Edition, url: str, *, title: str, summary: str, section: str | None) -> Added:
        """Add the page at `url` as a pick of `edition` with the editor's title, summary and section: from
        what its preview read, without fetching it again; by hand (title and URL) when it was never read."""
        from aggregator.adding import add_pick, by_hand, check_url, stored_preview

        edition = self.check_edition(edition)
        url = check_url(url)
        page = stored_preview(self.store, url, model=self.model) or self._pages.get(url) or by_hand(url)
        added = add_pick(self.store, self.config, self.digest, edition, page, title=title, summary=summary,
                         section=section or None, model=self.model, now=self.clock())
        self._candidates.pop(edition, None)
        return added

    def undo(self, edition: Edition, action: int) -> Outcome:
        edition = self.check_edition(edition)
        post, result = self.store.undo(edition, action, now=self.clock(), digest=self.digest.name)
        return _outcome(post, result)

    def export(self, edition: Edition) -> Export:
        """Write the edition's Markdown draft (the renderer `draft` uses, with every decision and edited
        summary) into the drafts folder, unless the file there was edited by hand since aggregator wrote it."""
        from aggregator.digest.draft import default_path, make_draft, save_draft, unedited_text

        edition = self.check_edition(edition)
        with self._write:
            path = default_path(self.config, edition, "markdown", self.digest)
            try:
                old = unedited_text(self.store, path, edition, self.digest)
            except DigestError as exc:
                raise DigestError(f"{path}: {exc}") from None
            if old is None:
                raise DeskError(f"{path} was edited by hand since aggregator wrote it: import it "
                                "(aggregator import-digest) or move it away, then export again", 409)
            draft = make_draft(self.store, self.config, edition, "markdown", model=self.model, digest=self.digest)
            save_draft(self.store, self.config, self.digest, draft, self.model, path, self.clock(), force=True)
        decided = self.store.decisions(edition, digest=self.digest.name)
        undecided = sum(1 for i in draft.items if i.selected and i.candidate.id not in decided)
        diff = "".join(difflib.unified_diff(old.splitlines(keepends=True), draft.text.splitlines(keepends=True),
                                            "before", "now", n=1))
        return Export(path, len(draft.selected_urls), undecided, diff)

    def model_view(self) -> ModelView:
        """The model page as computed last (computed again in the background when the posts, decisions or
        model changed since)."""
        trained = str(self.model.meta.get("trained_at")) if self.model is not None else None
        return self.model_pages.current(trained)

    def discover_feeds(self) -> int:
        """Look for the feeds of the sites of picks no feed covers; how many were found."""
        return sum(1 for u in self.model_pages.discover() if u.feed)

    def add_discovered_feed(self, site: str) -> FeedConfig:
        """Add to feeds.yaml the feed `discover_feeds` found for `site`."""
        return self.model_pages.add_feed(site)

    def start_retraining(self) -> bool:
        """Train the digest's model again in a background thread; False when a retraining is already running."""
        with self.retraining.lock:
            if self.retraining.running:
                return False
            self.retraining.running, self.retraining.message = True, "retraining…"
        threading.Thread(target=self._retrain, name="desk-retrain", daemon=True).start()
        return True

    def _retrain(self) -> None:
        from aggregator.learn.jobs import scope_of, train_model
        from aggregator.learn.model_file import save

        try:
            model = train_model(self.store, now=self.clock(), scope=scope_of(self.config, self.digest))
            with self._write:
                save(model, self.model_dir)
                self.model = model
            meta = model.meta
            message, failed = (f"trained on {meta['n_examples']} decisions ({meta['n_positives']} picks); "
                               f"priority {meta['priority_mode']}"), False
        except (AggregatorError, ValueError) as exc:  # ValueError: what scikit-learn cannot fit (one class only, ...)
            message, failed = f"retraining failed: {exc}", True
        with self.retraining.lock:
            self.retraining.running, self.retraining.failed, self.retraining.message = False, failed, message
            self.retraining.generation += 1

"""The desk's commands: review serves an edition's candidates in the browser for the editor's decisions; add makes a page no feed carries a pick."""

from __future__ import annotations

from typing import Annotated

import typer

from aggregator.cli.common import DigestOption, WeekOption, chosen_edition, reports_errors, runtime, say, warn


@reports_errors
def review(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option("--month", help="The edition to open, YYYY-MM (default: this month).", show_default=False)] = None,
    week: WeekOption = None,
    digest: DigestOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8765,
    token: Annotated[str | None, typer.Option("--token", envvar="AGGREGATOR_DESK_TOKEN", help="A secret every request must carry (generated and printed once when --host is not loopback).", show_default=False)] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the desk in the browser.")] = False,
) -> None:
    """Serve the review desk: accept, move and reject an edition's candidates in the browser, each decision stored at once."""
    import secrets

    from aggregator.errors import ModelError
    from aggregator.web.app import LOOPBACK, serve
    from aggregator.web.desk import Desk

    if token is not None and len(token) < 16:
        raise typer.BadParameter("a token needs at least 16 characters", param_hint="--token")
    if host not in LOOPBACK and token is None:
        token = secrets.token_urlsafe(24)
    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        edition = chosen_edition(settings, month, week, default=True)
        try:
            model = rt.load_model(settings)
        except ModelError as exc:
            warn(f"warning: {exc}; the desk shows the posts unranked until you retrain")
            model = None
        desk = Desk(rt.store, rt.config, settings, model=model, model_dir=rt.model_dir(settings), clock=rt.clock,
                    edition=edition, config_path=ctx.obj.config)

        serve(desk, host=host, port=port, token=token, start=f"/edition/{edition}", open_browser=open_browser,
              ready=lambda url: say(f"the desk for {edition} is at {url} (Ctrl-C stops it)"))


@reports_errors
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The post's address (http or https).", show_default=False)],
    section: Annotated[str | None, typer.Option("--section", help="The section to file it under: its full path (\"2. Cases > 2.4. MLOps\") or its last heading (default: the model's).", show_default=False)] = None,
    title: Annotated[str | None, typer.Option("--title", help="The title to store (default: the page's); with it, a page that cannot be fetched is added by hand.", show_default=False)] = None,
    summary: Annotated[str | None, typer.Option("--summary", help="Your own line for the digest (default: the page's description).", show_default=False)] = None,
    month: Annotated[str | None, typer.Option("--month", help="The edition, YYYY-MM (default: this month).", show_default=False)] = None,
    week: WeekOption = None,
    digest: DigestOption = None,
) -> None:
    """Add a post no feed carries, by its URL, as a pick of the edition: the page is fetched once under the polling limits and read for its title, description and site."""
    from aggregator.adding import add_url
    from aggregator.errors import ModelError

    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        edition = chosen_edition(settings, month, week, default=True)
        assert edition is not None
        try:
            model = rt.load_model(settings)
        except ModelError as exc:
            warn(f"warning: {exc}; give --section")
            model = None
        added, page = add_url(rt.store, rt.config, settings, edition, url, title=title, summary=summary,
                              section=section, model=model, now=rt.clock())
    if page.error is not None and not page.stored:
        warn(f"warning: {page.url}: {page.error}; added by hand")
    how = "stored and picked" if added.new else "already stored; picked"
    say(f"{edition}: {added.title} ({page.url}) {how} under {' > '.join(added.section)}")

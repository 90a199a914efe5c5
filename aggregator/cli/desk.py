"""The desk command: review serves an edition's candidates in the browser for the editor's decisions."""

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
                    config_path=ctx.obj.config)

        serve(desk, host=host, port=port, token=token, start=f"/edition/{edition}", open_browser=open_browser,
              ready=lambda url: say(f"the desk for {edition} is at {url} (Ctrl-C stops it)"))

"""The desk's web application: routes that parse a request and call one desk job, the security every
response carries (token, CSRF, Content-Security-Policy), and serving it with uvicorn."""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from aggregator.errors import AggregatorError, ConfigError, ConflictError
from aggregator.models import Edition
from aggregator.web.desk import Desk, DeskError, section_key

HERE = Path(__file__).parent
MAX_BODY = 64 * 1024  # a form post is a few hundred bytes; an edited summary at most a few thousand
COOKIE = "aggregator_desk"
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # the addresses a desk may listen on without a token
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]

# What a visitor without the token gets: one line, and nothing of the desk (no CSRF token, no markup,
# stylesheet or link of it).
UNAUTHORISED = ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>401</title></head>\n'
                "<body><p>this desk needs its token: open the address aggregator review printed</p></body></html>\n")

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class SecurityHeaders:
    """Adds the security headers to every response, static files and errors included."""

    def __init__(self, app: ASGI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((k, v) for k, v in HEADERS if k not in names)]
            await send(message)

        await self.app(scope, receive, with_headers)


def host_name(header: str) -> str | None:
    """The host of a Host header without its port: "127.0.0.1:8000" -> "127.0.0.1", "[::1]:8000" -> "::1"
    (an IPv6 address comes in brackets); None for a malformed header."""
    if header.startswith("["):
        end = header.find("]")
        if end < 0 or header[end + 1:] and not (header[end + 1] == ":" and header[end + 2:].isdigit()):
            return None
        return header[1:end]
    name, _, port = header.partition(":")
    return name if not port or port.isdigit() else None


class TrustedHost:
    """Refuses a request whose Host header names none of `hosts` ("*": any), as DNS rebinding would send;
    unlike Starlette's TrustedHostMiddleware it reads a bracketed IPv6 host with its port ([::1]:8000)."""

    def __init__(self, app: ASGI, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] in ("http", "websocket") and "*" not in self.hosts:
            name = host_name(Headers(scope=scope).get("host", ""))
            if name is None or name.lower() not in self.hosts:
                await PlainTextResponse("Invalid host header", status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.2f}"
    return env


def create_app(desk: Desk, *, token: str | None = None, hosts: tuple[str, ...] = LOOPBACK) -> Starlette:
    """The desk as an ASGI application. With `token`, every request must carry it (once as ?token=,
    then as a cookie); state-changing requests always need the page's CSRF token and a same-origin Origin."""
    env = _templates()
    csrf = secrets.token_urlsafe(32)

    def page(name: str, code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(csrf=csrf, **context), status_code=code)

    def error_page(message: str, status: int) -> HTMLResponse:
        return page("error.html", status, message=message, status=status)

    def allowed(request: Request) -> Response | None:
        """None when the request may go on, else the response refusing it."""
        if token is None:
            return None
        given = request.cookies.get(COOKIE) or request.headers.get("x-desk-token") or ""
        if hmac.compare_digest(given.encode(), token.encode()):
            return None
        query = request.query_params.get("token", "")
        if request.method == "GET" and query and hmac.compare_digest(query.encode(), token.encode()):
            response = RedirectResponse(request.url.remove_query_params("token").path, status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        return HTMLResponse(UNAUTHORISED, status_code=401)

    async def read_form(request: Request) -> dict[str, Any]:
        """The JSON body of a state-changing request, after the CSRF checks."""
        if not hmac.compare_digest(request.headers.get("x-csrf-token", "").encode(), csrf.encode()):
            raise BadRequest("stale or foreign form: reload the page", 403)
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
            raise BadRequest("cross-site request refused", 403)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise BadRequest("the desk takes JSON", 415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise BadRequest("request too large", 413)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the request is not JSON") from None
        except RecursionError:  # e.g. 64 KB of [[[[...]]]]: the parser gives up before it ends
            raise BadRequest("the request nests too deeply") from None
        if not isinstance(data, dict):
            raise BadRequest("the request is not a JSON object")
        return data

    def guarded(handler: Callable[[Request], Awaitable[Response]], *, html: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            refused = allowed(request)
            if refused is not None:
                return refused
            try:
                return await handler(request)
            except (BadRequest, DeskError) as exc:
                status, message = exc.status, str(exc)
            except ConflictError as exc:
                status, message = 409, str(exc)
            except AggregatorError as exc:
                status, message = 400, str(exc)
            return error_page(message, status) if html else JSONResponse({"error": message}, status_code=status)

        return endpoint

    def edition_in(request: Request) -> Edition:
        """The edition the URL names (/edition/2022-12/...), parsed here: DeskError 404 when it is none of the digest's."""
        return desk.check_edition(request.path_params["edition"])

    async def home(request: Request) -> Response:
        return RedirectResponse(f"/edition/{desk.home()}", status_code=303)

    async def edition_page(request: Request) -> Response:
        view = await run_in_threadpool(desk.view, edition_in(request))
        return page("desk.html", view=view, digest=desk.digest)

    async def act(request: Request) -> Response:
        data = await read_form(request)
        outcome = await run_in_threadpool(
            desk.act, edition_in(request), _int(data, "post"), _text(data, "action", 20),
            revision=_int(data, "revision"), section=_text(data, "section", 2000, optional=True),
            summary=_text(data, "summary", 20000, optional=True))
        return JSONResponse(outcome.as_dict())

    async def undo(request: Request) -> Response:
        data = await read_form(request)
        outcome = await run_in_threadpool(desk.undo, edition_in(request), _int(data, "action"))
        return JSONResponse(outcome.as_dict())

    async def page_preview(request: Request) -> Response:
        data = await read_form(request)
        page = await run_in_threadpool(desk.preview_page, edition_in(request), _text(data, "url", 4096))
        return JSONResponse({"url": page.url, "title": page.title, "summary": page.summary, "source": page.source,
                             "section": section_key(page.section) if page.section else None,
                             "stored": page.stored, "error": page.error})

    async def add_page(request: Request) -> Response:
        data = await read_form(request)
        added = await run_in_threadpool(
            desk.add_page, edition_in(request), _text(data, "url", 4096), title=_text(data, "title", 2000),
            summary=_text(data, "summary", 20000), section=_text(data, "section", 2000, optional=True))
        return JSONResponse({"post": added.post, "title": added.title, "section": section_key(added.section),
                             "new": added.new, "action": added.action})

    async def export(request: Request) -> Response:
        await read_form(request)
        done = await run_in_threadpool(desk.export, edition_in(request))
        return JSONResponse({"path": str(done.path), "selected": done.selected, "undecided": done.undecided,
                             "changed": done.changed, "diff": done.diff})

    async def retrain(request: Request) -> Response:
        if request.method == "POST":
            await read_form(request)
            started = desk.start_retraining()
            return JSONResponse({"started": started, "generation": desk.retraining.generation}, status_code=202)
        r = desk.retraining
        return JSONResponse({"running": r.running, "failed": r.failed, "message": r.message, "generation": r.generation})

    async def model(request: Request) -> Response:
        view = await run_in_threadpool(desk.model_view)
        if view.page is None:
            code = 503 if view.failed else 200
            return page("model_wait.html", code, status=code, message=view.failed or
                        "computing the model page (the replay trains one model per edition); this page reloads itself")
        return HTMLResponse(await run_in_threadpool(view.html, csrf))

    async def model_discover(request: Request) -> Response:
        await read_form(request)
        found = await run_in_threadpool(desk.discover_feeds)
        return JSONResponse({"found": found})

    async def model_add_feed(request: Request) -> Response:
        data = await read_form(request)
        added = await run_in_threadpool(desk.add_discovered_feed, _text(data, "site", 2000))
        return JSONResponse({"name": added.name, "url": added.url})

    async def not_found(request: Request) -> Response:
        return error_page("no such page", 404)

    routes = [
        Route("/", guarded(home, html=True)),
        Route("/edition/{edition}", guarded(edition_page, html=True)),
        Route("/edition/{edition}/act", guarded(act), methods=["POST"]),
        Route("/edition/{edition}/undo", guarded(undo), methods=["POST"]),
        Route("/edition/{edition}/export", guarded(export), methods=["POST"]),
        Route("/edition/{edition}/page", guarded(page_preview), methods=["POST"]),
        Route("/edition/{edition}/add", guarded(add_page), methods=["POST"]),
        Route("/retrain", guarded(retrain), methods=["GET", "POST"]),
        Route("/model", guarded(model, html=True)),
        Route("/model/discover", guarded(model_discover), methods=["POST"]),
        Route("/model/feeds", guarded(model_add_feed), methods=["POST"]),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        Route("/{rest:path}", guarded(not_found, html=True)),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders), Middleware(TrustedHost, hosts=hosts)])
    return app


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
        raise BadRequest(f"{key}: a whole number is required")
    return value


def _text(data: dict[str, Any], key: str, limit: int, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"{key}: text of at most {limit} characters is required")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800", which JSON can spell and no database stores
        raise BadRequest(f"{key}: the text is not valid Unicode (it holds a lone surrogate)") from None
    return value


def serve(desk: Desk, *, host: str, port: int, token: str | None, ready: Callable[[str], None], start: str = "/",
          open_browser: bool = False) -> None:
    """Serve the desk until Ctrl-C or SIGTERM; `ready` gets the address of `start` to open (with the token)."""
    import socket

    import uvicorn

    # Try the address first, for a one-line error; uvicorn then binds it itself (handing it this socket
    # instead made each action take 48 ms rather than 2 ms in benchmarks/bench_desk.py).
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}") from None
    hosts = ("127.0.0.1", "localhost", host) if host not in ("0.0.0.0", "::") else ("*",)
    app = create_app(desk, token=token, hosts=hosts)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="off", server_header=False))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}{start}" + (f"?token={token}" if token else "")

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            ready(url)
            if open_browser:
                import webbrowser

                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run()

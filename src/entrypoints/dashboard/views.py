"""The pages: overview, message list, one message, retries, login."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import attrs
import jinja2
from aiohttp import web

from domain.model import State as RowState
from entrypoints.dashboard import auth
from entrypoints.dashboard.chart import bars
from entrypoints.dashboard.fields import BadFilter, count_of, cursor, parse_filter

if TYPE_CHECKING:
    from entrypoints.dashboard.app import Dashboard

STATIC = Path(__file__).parent / "static"
PAGE_SIZE = 50


@attrs.frozen(kw_only=True)
class State:
    dashboard: Dashboard
    guard: auth.Guard
    env: jinja2.Environment


STATE = web.AppKey("state", State)


def routes(app: web.Application) -> None:
    app.router.add_get("/", overview)
    app.router.add_get("/messages", messages)
    app.router.add_get("/messages/{id:[0-9]+}", message)
    app.router.add_post("/messages/{id:[0-9]+}/retry", retry_one)
    app.router.add_get("/retry", confirm_retry)
    app.router.add_post("/retry", retry_matching)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_static("/static/", STATIC)


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    state = request.app[STATE]
    page = state.env.get_template(name).render(
        csrf=state.guard.csrf_token(),
        token_required=state.guard.token is not None,
        database=state.dashboard.database,
        **context,
    )
    return web.Response(text=page, status=status, content_type="text/html")


async def blocking(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


# --- pages -------------------------------------------------------------------


async def overview(request: web.Request) -> web.Response:
    dashboard = request.app[STATE].dashboard
    now = dashboard.clock.now()
    figures = await blocking(dashboard.browser.figures, now)
    health = await blocking(dashboard.browser.type_health, now)
    breakers = await blocking(dashboard.admin.target_health)
    return render(
        request,
        "overview.html",
        figures=figures,
        chart=bars(figures.activity),
        health=health,
        breakers=breakers,
        targets=dashboard.targets,
        now=now,
    )


async def messages(request: web.Request) -> web.Response:
    try:
        where, raw = parse_filter(request.query)
        before, after = cursor(request.query, "before"), cursor(request.query, "after")
    except BadFilter as error:
        return render(request, "error.html", status=400, error=str(error))
    browser = request.app[STATE].dashboard.browser
    page = await blocking(
        lambda: browser.messages(where, before=before, after=after, limit=PAGE_SIZE)
    )
    dead = await blocking(browser.count_dead, where)
    return render(
        request,
        "messages.html",
        page=page,
        raw=raw,
        query=urlencode(raw),
        dead=dead,
        requeued=count_of(request.query.get("requeued")),
    )


async def message(request: web.Request) -> web.Response:
    admin = request.app[STATE].dashboard.admin
    message_id = int(request.match_info["id"])
    row = await blocking(admin.get, message_id)
    if row is None:
        return render(request, "error.html", status=404, error=f"no message with ID {message_id}")
    history = await blocking(admin.history_of, message_id)
    return render(
        request,
        "message.html",
        message=row,
        history=history,
        dead=row.state is RowState.DEAD,
        requeued=count_of(request.query.get("requeued")),
    )


async def confirm_retry(request: web.Request) -> web.Response:
    try:
        where, raw = parse_filter(request.query)
    except BadFilter as error:
        return render(request, "error.html", status=400, error=str(error))
    count = await blocking(request.app[STATE].dashboard.browser.count_dead, where)
    return render(request, "confirm.html", raw=raw, count=count, query=urlencode(raw))


# --- actions -----------------------------------------------------------------


async def retry_one(request: web.Request) -> web.Response:
    await checked_form(request)
    message_id = int(request.match_info["id"])
    count = await blocking(request.app[STATE].dashboard.admin.requeue_dead, [message_id])
    raise web.HTTPSeeOther(f"/messages/{message_id}?requeued={count}")


async def retry_matching(request: web.Request) -> web.Response:
    form = await checked_form(request)
    try:
        where, raw = parse_filter(form)
    except BadFilter as error:
        return render(request, "error.html", status=400, error=str(error))
    count = await blocking(request.app[STATE].dashboard.browser.requeue_dead, where)
    raise web.HTTPSeeOther("/messages?" + urlencode({**raw, "requeued": count}))


async def login_form(request: web.Request) -> web.Response:
    return render(
        request, "login.html", next=auth.safe_next(request.query.get("next")), failed=False
    )


async def login(request: web.Request) -> web.Response:
    guard = request.app[STATE].guard
    form = await checked_form(request)
    target = auth.safe_next(str(form.get("next", "")))
    if guard.token is None:
        raise web.HTTPSeeOther(target)
    if not guard.token_matches(str(form.get("token", ""))):
        await asyncio.sleep(0.5)  # slows guessing; the token's length does the rest
        return render(request, "login.html", status=401, next=target, failed=True)
    response = web.HTTPSeeOther(target)
    auth.set_cookie(response, auth.SESSION_COOKIE, guard.session_value())
    raise response


async def logout(request: web.Request) -> web.Response:
    await checked_form(request)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(auth.SESSION_COOKIE, path="/")
    raise response


async def checked_form(request: web.Request) -> Mapping[str, Any]:
    """The POSTed form, once its CSRF token checks out (bearer clients carry no cookies)."""
    form = await request.post()
    guard = request.app[STATE].guard
    bearer = guard.token is not None and request.headers.get("Authorization", "").startswith(
        "Bearer "
    )
    if not bearer and not guard.csrf_valid(request, str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="forbidden: missing or stale CSRF token; reload the page")
    return form

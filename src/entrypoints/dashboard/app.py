"""The dashboard's aiohttp application and its runner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
import jinja2
from aiohttp import web

from application.ports import Clock, OutboxAdmin, OutboxBrowser
from entrypoints.dashboard import auth, fields, views

GUARD = web.AppKey("guard", auth.Guard)


class BindRefused(ValueError):
    """No token and a non-loopback address: the dashboard would be open to the network."""


@attrs.frozen(kw_only=True)
class Dashboard:
    """What the pages read from and act on."""

    browser: OutboxBrowser
    admin: OutboxAdmin
    clock: Clock
    targets: dict[str, str]  # message type → target URL, credentials already removed
    database: str  # dialect and table, never the URL


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("entrypoints.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(fields.FILTERS)
    return env


def make_app(dashboard: Dashboard, token: str | None) -> web.Application:
    guard = auth.Guard(token)
    app = web.Application(middlewares=[auth.middleware(guard)], client_max_size=64 * 1024)
    app[GUARD] = guard
    app[views.STATE] = views.State(dashboard=dashboard, guard=guard, env=templates())
    views.routes(app)
    return app


def check_bind(host: str, token: str | None) -> None:
    if token is None and not auth.is_loopback(host):
        raise BindRefused(
            f"refusing to serve the dashboard on {host} without OUTBOX_DASHBOARD_TOKEN: "
            "set a token, or bind to 127.0.0.1"
        )


def _announce(line: str) -> None:
    print(line, flush=True)


async def serve(
    app: web.Application, host: str, port: int, ready: Callable[[str], Any] = _announce
) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    ready(f"dashboard on http://{bound[0]}:{bound[1]}/ (Ctrl-C stops)")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

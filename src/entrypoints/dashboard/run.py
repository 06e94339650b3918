"""`outbox dashboard`: build the pages' dependencies from the container and serve."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from entrypoints.config import ConfigError
from entrypoints.container import Container, build, dashboard_token
from entrypoints.dashboard.app import Dashboard, check_bind, make_app, serve


class BindRefused(ConfigError):
    pass


def public_target(url: str) -> str:
    """Scheme, host, port and path only: no credentials, no query string."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def dashboard_of(container: Container) -> Dashboard:
    settings = container.settings()
    targets = {kind: public_target(url) for kind, url in settings.target_urls.items()}
    if settings.target_url:
        targets["*"] = public_target(settings.target_url)
    memory = settings.database_url == "memory://"
    if not memory:
        from adapters.sql.migrate import check_schema

        check_schema(container.engine(), settings.table)
    dialect = "memory" if memory else container.engine().dialect.name
    return Dashboard(
        browser=container.browser(),
        admin=container.store(),
        clock=container.clock(),
        targets=targets,
        database=f"{dialect} · table {settings.table}",
    )


def run_dashboard(host: str, port: int) -> None:
    token = dashboard_token()
    try:
        check_bind(host, token)
    except ValueError as error:
        raise BindRefused(str(error)) from None
    app = make_app(dashboard_of(build()), token)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(app, host, port))

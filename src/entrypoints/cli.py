"""`outbox`: the command line. Thin: parse, build the container, call, print."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from entrypoints.version import package_version

F = TypeVar("F", bound=Callable[..., Any])


def _fail_cleanly(func: F) -> F:
    """Start-up errors (configuration, schema, target, message types) are one line, exit 2."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            from entrypoints.errors import describe_startup_error  # heavy: only on failure

            line = describe_startup_error(error)
            if line is None:
                raise
            click.echo(f"outbox: error: {line}", err=True)
            sys.exit(2)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def _whsec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from adapters.webhooks import secret_key

    try:
        for each in (value or "").split():
            secret_key(each)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), prog_name="outbox")
def main() -> None:
    """Deliver rows flagged in a SQL outbox table to HTTP endpoints, reliably.

    Configuration comes from OUTBOX_* environment variables (see README).
    """


@main.command()
@_fail_cleanly
def migrate() -> None:
    """Create the outbox table, or adopt an existing one (adds columns and indexes only)."""
    from adapters.sql.migrate import migrate as run_migrations
    from entrypoints.container import build

    container = build()
    settings = container.settings()
    run_migrations(container.engine(), settings.table)
    container.shutdown_resources()
    click.echo(f"migrated table {settings.table!r} at {_safe_url(settings.database_url)}")


def _processes(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from entrypoints.config import ConfigError, parse_processes

    try:
        return None if value is None else parse_processes(value, "--processes")
    except ConfigError as error:
        raise click.BadParameter(str(error).removeprefix("--processes ")) from None


@main.command()
@click.option(
    "--processes",
    callback=_processes,
    metavar="N|auto",
    help="Worker processes under one supervisor (default: OUTBOX_PROCESSES, else 1).",
)
@_fail_cleanly
def worker(processes: int | None) -> None:
    """Dispatch perpetually; SIGTERM/SIGINT finish in-flight work and exit 0."""
    _exit_at_once_on_stop_signals()
    from entrypoints import logs
    from entrypoints.container import build
    from entrypoints.worker import run, run_loop

    container = build()
    settings = container.settings()
    logs.configure(settings.log_format, settings.signing_secrets())
    if (processes or settings.processes) > 1:
        from entrypoints.supervisor import supervise

        sys.exit(run_loop(supervise(container, processes or settings.processes)))
    summary = run_loop(run(container, "worker"))
    _exit_at_once_on_stop_signals()
    click.echo(_summary_line(summary), err=True)


@main.command()
@click.option(
    "--settle",
    is_flag=True,
    help="Also wait out scheduled retries until every row is sent or dead.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal)."
)
@_fail_cleanly
def drain(settle: bool, progress: bool | None) -> None:
    """Dispatch until nothing is due, then print a summary and exit."""
    _exit_at_once_on_stop_signals()
    from entrypoints import logs
    from entrypoints.container import build
    from entrypoints.drain import drain_with_progress

    container = build()
    settings = container.settings()
    logs.configure(settings.log_format, settings.signing_secrets())
    show = sys.stderr.isatty() if progress is None else progress
    summary = drain_with_progress(container, settle=settle, show=show)
    _exit_at_once_on_stop_signals()
    click.echo(_summary_line(summary))


@main.command()
@click.option("--user-id", type=int, required=True, help="Recipient (UserID).")
@click.option("--message", required=True, help="The Message text.")
@click.option("--type", "message_type", default="default", show_default=True, help="Message type.")
@click.option("--count", type=click.IntRange(1, 10_000_000), default=1, show_default=True)
@_fail_cleanly
def enqueue(user_id: int, message: str, message_type: str, count: int) -> None:
    """Insert rows with ToSend = 1."""
    from application.ports import NewMessage
    from entrypoints.container import build

    container = build()
    store = container.store()
    new = NewMessage(user_id=user_id, body=message, message_type=message_type)
    first = last = None
    for start in range(0, count, 5000):
        ids = store.enqueue([new] * min(5000, count - start))
        first = first if first is not None else ids[0]
        last = ids[-1]
    container.shutdown_resources()
    click.echo(f"enqueued {count} row(s), ids {first}..{last}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--dead", "dead_limit", type=click.IntRange(0, 1000), default=10, show_default=True)
@_fail_cleanly
def status(as_json: bool, dead_limit: int) -> None:
    """Counts per state, oldest pending age, leases by owner, the latest dead rows, the retry
    schedule and each target's health."""
    from entrypoints.container import build
    from entrypoints.status_view import Health, render_overview

    container = build()
    store = container.store()
    overview = store.overview(container.clock().now(), dead_limit)
    health = Health(retries=container.policy().describe(), targets=store.target_health())
    container.shutdown_resources()
    click.echo(render_overview(overview, as_json=as_json, health=health))


@main.command()
@click.option("--id", "ids", type=int, multiple=True, help="Row id to re-queue (repeatable).")
@click.option("--all-dead", is_flag=True, help="Re-queue every dead row.")
@_fail_cleanly
def retry(ids: tuple[int, ...], all_dead: bool) -> None:
    """Re-queue dead rows as new requests (fresh idempotency key, attempts reset)."""
    from entrypoints.container import build

    if bool(ids) == all_dead:
        raise click.UsageError("give either --id N (repeatable) or --all-dead")
    container = build()
    count = container.store().requeue_dead(None if all_dead else list(ids))
    container.shutdown_resources()
    click.echo(f"re-queued {count} dead row(s)")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--secret",
    envvar="OUTBOX_SIGNING_SECRET",
    default=None,
    callback=_whsec,
    help="whsec_… to verify signatures (several, space-separated, while rotating).",
)
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
def receiver(host: str, port: int, secret: str | None, fail_rate: float) -> None:
    """A local endpoint that verifies signatures, dedupes by idempotency key and reports."""
    from entrypoints.receiver import run_receiver

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_receiver(host, port, secret, fail_rate))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@_fail_cleanly
def dashboard(host: str, port: int) -> None:
    """The operator dashboard in the browser; OUTBOX_DASHBOARD_TOKEN guards it (see README)."""
    from entrypoints.dashboard.run import run_dashboard

    run_dashboard(host, port)


@main.command()
@click.option(
    "--database", default="outbox-demo.db", show_default=True, help="SQLite file for the demo."
)
@_fail_cleanly
def demo(database: str) -> None:
    """The embedded default end to end: SQLite, the local receiver, sample rows, a worker."""
    from entrypoints.demo import run_demo

    run_demo(database)


def _exit_at_once_on_stop_signals() -> None:
    """Before the event loop takes the signals over (start-up: nothing claimed yet) and after
    it hands them back (every outcome written), SIGTERM/SIGINT have nothing to finish: exit 0
    at once instead of dying by the signal."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)


def _summary_line(summary: Any) -> str:
    fields = ("claimed", "sent", "retried", "dead", "invalid", "released", "refused")
    return "summary: " + ", ".join(f"{name}={getattr(summary, name)}" for name in fields)


def _safe_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)

"""The one place that reads configuration and builds adapters. No `wire()`, nothing at import."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers
from sqlalchemy import Engine

from adapters.aiohttp_sender import AiohttpMessageSender
from adapters.clock import SystemClock
from adapters.http_common import HttpOptions
from adapters.in_memory import InMemoryOutboxStore
from adapters.in_memory_browse import InMemoryOutboxBrowser
from adapters.reqwest_sender import ReqwestMessageSender
from adapters.sql.browse import SqlOutboxBrowser
from adapters.sql.engine import make_engine
from adapters.sql.store import SqlOutboxStore
from application.dispatcher import Dispatcher, DispatchSettings, TargetUrls
from application.message_type_registry import BUILT_IN, discover
from application.pipeline import Pipeline, PipelineSettings
from application.ports import MessageSender
from application.target_pool import TargetSettings
from domain.breaker import BreakerSettings
from domain.message_type import MessageTypes
from domain.retry import Backoff, RetryPolicy, RetrySchedule
from entrypoints.config import ConfigError, Settings
from entrypoints.version import user_agent

if TYPE_CHECKING:
    import httpx

    from adapters.httpx_sender import HttpxMessageSender

MEMORY_URL = "memory://"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(
        settings.database_url,
        connect_timeout=settings.connect_timeout,
        pool_size=4,
    )
    yield engine
    engine.dispose()


def _sql_store(engine: Engine, table: str) -> Iterator[SqlOutboxStore]:
    store = SqlOutboxStore(engine, table)
    yield store
    store.close()


async def _closed_at_shutdown(sender: MessageSender) -> AsyncIterator[MessageSender]:
    """A sender opens its pool lazily, in the loop that sends; this closes it in that loop."""
    yield sender
    await sender.aclose()


def _store_kind(settings: Settings) -> str:
    return "memory" if settings.database_url == MEMORY_URL else "sql"


def _message_types(settings: Settings) -> MessageTypes:
    return discover((BUILT_IN, *settings.message_type_packages))


def _targets(settings: Settings) -> TargetUrls:
    if settings.target_url is None:
        raise ConfigError("OUTBOX_TARGET_URL must be set to the endpoint messages are POSTed to")
    return TargetUrls(default=settings.target_url, by_type=dict(settings.target_urls))


def _policy(settings: Settings) -> Backoff:
    if settings.retry_schedule != "exponential":
        return RetrySchedule(steps=settings.retry_schedule)
    return RetryPolicy(
        base_seconds=settings.retry_base_seconds,
        max_seconds=settings.retry_max_seconds,
        max_attempts=settings.max_attempts,
    )


def _dispatch_settings(settings: Settings) -> DispatchSettings:
    return DispatchSettings(
        owner=worker_id(),
        batch_size=settings.batch_size,
        lease_seconds=settings.lease_seconds,
        concurrency=settings.concurrency,
        per_user=settings.ordering == "per-user",
    )


def _stall_seconds(settings: Settings) -> float:
    """How long rows may be held with no outcome before the pipeline counts as stuck: three
    whole attempts (connect + response timeouts), and never under a minute."""
    return max(60.0, 3 * (settings.connect_timeout + settings.http_timeout))


def _target_settings(settings: Settings) -> TargetSettings:
    return TargetSettings(
        concurrency=settings.concurrency,
        target_concurrency=settings.target_concurrency or None,
        breaker=BreakerSettings(
            failures=settings.breaker_failures,
            cooldown_seconds=settings.breaker_cooldown,
            cooldown_max_seconds=settings.breaker_cooldown_max,
            park_seconds=settings.breaker_park,
        ),
    )


def _http_client(**options: Any) -> httpx.AsyncClient:
    """Imported on use: httpx is the alternative engine, and `outbox drain` starts faster
    without loading it."""
    from adapters.httpx_sender import make_http_client

    return make_http_client(**options)


def _httpx_sender(client: httpx.AsyncClient, **options: Any) -> HttpxMessageSender:
    from adapters.httpx_sender import HttpxMessageSender

    return HttpxMessageSender(client, **options)


def _http_options(settings: Settings) -> HttpOptions:
    return HttpOptions(
        timeout=settings.http_timeout,
        connect_timeout=settings.connect_timeout,
        concurrency=settings.concurrency,
        allow_private=settings.allow_private_targets,
    )


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    rng = providers.Singleton(random.SystemRandom)
    engine = providers.Resource(_engine, settings)
    store = providers.Selector(
        providers.Callable(_store_kind, settings),
        sql=providers.Resource(_sql_store, engine, table=settings.provided.table),
        memory=providers.Singleton(InMemoryOutboxStore),
    )
    browser = providers.Selector(
        providers.Callable(_store_kind, settings),
        sql=providers.Singleton(SqlOutboxBrowser, store),
        memory=providers.Singleton(InMemoryOutboxBrowser, store),
    )
    message_types = providers.Singleton(_message_types, settings)
    policy = providers.Callable(_policy, settings)
    http_client = providers.Singleton(
        _http_client,
        timeout=settings.provided.http_timeout,
        connect_timeout=settings.provided.connect_timeout,
        concurrency=settings.provided.concurrency,
        allow_private=settings.provided.allow_private_targets,
    )
    sender = providers.Selector(
        settings.provided.http_engine,
        reqwest=providers.Singleton(
            ReqwestMessageSender,
            providers.Callable(_http_options, settings),
            secrets=providers.Callable(Settings.signing_secrets, settings),
            user_agent=providers.Callable(user_agent),
        ),
        aiohttp=providers.Singleton(
            AiohttpMessageSender,
            providers.Callable(_http_options, settings),
            secrets=providers.Callable(Settings.signing_secrets, settings),
            user_agent=providers.Callable(user_agent),
        ),
        httpx=providers.Singleton(
            _httpx_sender,
            http_client,
            secrets=providers.Callable(Settings.signing_secrets, settings),
            user_agent=providers.Callable(user_agent),
        ),
    )
    sender_pool = providers.Resource(_closed_at_shutdown, sender)
    dispatcher = providers.Singleton(
        Dispatcher,
        store=store,
        sender=sender,
        clock=clock,
        types=message_types,
        targets=providers.Callable(_targets, settings),
        policy=policy,
        rng=rng,
        settings=providers.Callable(_dispatch_settings, settings),
    )
    pipeline_settings = providers.Factory(
        PipelineSettings,
        poll_interval=settings.provided.poll_interval,
        stall_seconds=providers.Callable(_stall_seconds, settings),
        targets=providers.Callable(_target_settings, settings),
    )
    pipeline = providers.Factory(Pipeline, dispatcher, pipeline_settings)


def dashboard_token(env: Mapping[str, str] | None = None) -> str | None:
    """OUTBOX_DASHBOARD_TOKEN: the dashboard's shared secret (unset: loopback only)."""
    token = (os.environ if env is None else env).get("OUTBOX_DASHBOARD_TOKEN", "").strip()
    if token and len(token) < 16:
        raise ConfigError("OUTBOX_DASHBOARD_TOKEN must be at least 16 characters")
    return token or None


def build(env: Mapping[str, str] | None = None) -> Container:
    """A container for the given environment (default: the process's)."""
    return Container(settings=Settings.from_env(os.environ if env is None else env))


async def hold_sender_pool(container: Container) -> None:
    """From here on `release` closes the sender's pool, in this event loop."""
    await _settled(container.sender_pool.init())


async def release(container: Container) -> None:
    """Close what the container opened (sender pool, store, engine), dependents first.

    Outside an event loop, where `hold_sender_pool` never ran, `container.shutdown_resources()`
    does the same."""
    await _settled(container.shutdown_resources())


async def _settled(pending: Awaitable[object] | None) -> None:
    if pending is not None:
        await pending

"""Settings from `OUTBOX_*` environment variables; a bad value is one clear line naming it."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import attrs

from domain.retry import STANDARD_WEBHOOKS

PREFIX = "OUTBOX_"
MAX_BATCH_SIZE = 1000  # well below SQL Server's lock escalation threshold (5,000 locks)
MAX_PROCESSES = 256
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@attrs.frozen(kw_only=True)
class Settings:
    database_url: str = attrs.field(
        default="sqlite:///outbox.db", repr=lambda url: repr(masked_url(url))
    )
    table: str = "Messages"
    target_url: str | None = None
    target_urls: Mapping[str, str] = attrs.field(factory=dict)
    signing_secret: str | None = attrs.field(default=None, repr=False)
    batch_size: int = 500
    concurrency: int = 64
    poll_interval: float = 1.0
    lease_seconds: float = 30.0
    retry_schedule: tuple[float, ...] | Literal["exponential"] = STANDARD_WEBHOOKS
    max_attempts: int = 8
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    target_concurrency: int = 0
    breaker_failures: int = 5
    breaker_cooldown: float = 5.0
    breaker_cooldown_max: float = 60.0
    breaker_park: float = 3600.0
    http_timeout: float = 10.0
    connect_timeout: float = 5.0
    metrics_port: int = 0
    ordering: Literal["none", "per-user"] = "none"
    allow_private_targets: bool = False
    log_format: Literal["text", "json"] = "text"
    http_engine: Literal["aiohttp", "httpx"] = "aiohttp"
    message_type_packages: tuple[str, ...] = ()
    history_days: float = 7.0
    processes: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        reader = _Reader(env)
        values = {name: parse(reader, name) for name, parse in _PARSERS.items() if reader.has(name)}
        _pick_backoff(values)
        settings = cls(**values)
        _check_consistency(settings)
        return settings

    def signing_secrets(self) -> tuple[str, ...]:
        return tuple(self.signing_secret.split()) if self.signing_secret else ()


def masked_url(url: str) -> str:
    """The URL with any password replaced, for logs and reprs."""
    return re.sub(r"(://[^/:@\s]*:)[^/\s]*@", r"\1***@", url)


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def has(self, name: str) -> bool:
        return self._env.get(_var(name), "").strip() != ""

    def text(self, name: str) -> str:
        return self._env[_var(name)].strip()

    def number(self, name: str, kind: Callable[[str], T], low: float, high: float) -> T:
        raw = self.text(name)
        try:
            value = kind(raw)
        except ValueError:
            raise _bad(name, raw, f"a number between {low:g} and {high:g}") from None
        if not low <= value <= high:  # type: ignore[operator]
            raise _bad(name, raw, f"a number between {low:g} and {high:g}")
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        raw = self.text(name).lower()
        if raw not in options:
            raise _bad(name, raw, "one of " + ", ".join(options))
        return raw

    def flag(self, name: str) -> bool:
        raw = self.text(name).lower()
        if raw not in _TRUE | _FALSE:
            raise _bad(name, raw, "true or false")
        return raw in _TRUE


def _var(name: str) -> str:
    return PREFIX + name.upper()


def _bad(name: str, raw: str, expected: str) -> ConfigError:
    return ConfigError(f"{_var(name)} must be {expected}, got {raw!r}")


def _table(reader: _Reader, name: str) -> str:
    raw = reader.text(name)
    if not _IDENTIFIER.match(raw):
        raise _bad(name, raw, "a plain SQL identifier (letters, digits, underscore)")
    return raw


def _url(reader: _Reader, name: str) -> str:
    raw = reader.text(name)
    if not re.match(r"^https?://[^\s/]+", raw, re.IGNORECASE):
        raise _bad(name, raw, "an http:// or https:// URL")
    return raw


def _url_map(reader: _Reader, name: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in reader.text(name).split(","):
        type_name, sep, url = item.strip().partition("=")
        if not sep or not type_name.strip() or not re.match(r"^https?://\S+$", url.strip()):
            raise _bad(name, item, "comma-separated type=http(s)://url pairs")
        pairs[type_name.strip()] = url.strip()
    return pairs


def _secret(reader: _Reader, name: str) -> str:
    raw = reader.text(name)
    for secret in raw.split():
        if not re.match(r"^whsec_[A-Za-z0-9+/]{16,}={0,2}$", secret):
            raise ConfigError(
                f"{_var(name)} must be one or more space-separated whsec_<base64> secrets"
            )
    return raw


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXPONENTIAL = frozenset({"max_attempts", "retry_base_seconds", "retry_max_seconds"})


def _schedule(reader: _Reader, name: str) -> tuple[float, ...] | Literal["exponential"]:
    """`exponential`, `standard`, or waits like `5s,5m,30m,2h` (a bare number is seconds)."""
    raw = reader.text(name).lower()
    if raw in ("exponential", "standard"):
        return "exponential" if raw == "exponential" else STANDARD_WEBHOOKS
    steps: list[float] = []
    for item in raw.split(","):
        match = _DURATION.match(item.strip())
        seconds = float(match[1]) * _SECONDS[match[2] or "s"] if match else 0.0
        if not match or not 0 < seconds <= 30 * 86400 or len(steps) >= 100:
            raise _bad(
                name,
                raw,
                "comma-separated waits such as 5s,5m,30m,2h (each > 0 and <= 30d), "
                "'standard' or 'exponential'",
            )
        steps.append(seconds)
    return tuple(steps)


def _pick_backoff(values: dict[str, Any]) -> None:
    """Setting any exponential knob without OUTBOX_RETRY_SCHEDULE selects the exponential policy
    (as before the schedule existed); with an explicit list the knobs would be ignored: refuse."""
    knobs = sorted(_EXPONENTIAL.intersection(values))
    schedule = values.get("retry_schedule")
    if schedule is None and knobs:
        values["retry_schedule"] = "exponential"
    elif isinstance(schedule, tuple) and knobs:
        raise ConfigError(
            f"{_var(knobs[0])} applies only to OUTBOX_RETRY_SCHEDULE=exponential; "
            "a listed schedule makes one attempt more than it has waits"
        )


def parse_processes(raw: str, name: str = "OUTBOX_PROCESSES") -> int:
    """A worker process count: 1..MAX_PROCESSES, or `auto` for the cores this process may use."""
    value = raw.strip().lower()
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if value.isdigit() and 1 <= int(value) <= MAX_PROCESSES:
        return int(value)
    raise ConfigError(f"{name} must be auto or a number between 1 and {MAX_PROCESSES}, got {raw!r}")


def _packages(reader: _Reader, name: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in reader.text(name).split(",") if p.strip())
    for part in parts:
        if not re.match(r"^[A-Za-z_][\w.]*$", part):
            raise _bad(name, part, "comma-separated Python package names")
    return parts


_PARSERS: dict[str, Callable[[_Reader, str], Any]] = {
    "database_url": lambda r, n: r.text(n),
    "table": _table,
    "target_url": _url,
    "target_urls": _url_map,
    "signing_secret": _secret,
    "batch_size": lambda r, n: r.number(n, int, 1, MAX_BATCH_SIZE),
    "concurrency": lambda r, n: r.number(n, int, 1, 1024),
    "poll_interval": lambda r, n: r.number(n, float, 0.01, 3600),
    "lease_seconds": lambda r, n: r.number(n, float, 1, 86400),
    "retry_schedule": _schedule,
    "max_attempts": lambda r, n: r.number(n, int, 1, 1000),
    "retry_base_seconds": lambda r, n: r.number(n, float, 0.001, 86400),
    "retry_max_seconds": lambda r, n: r.number(n, float, 0.001, 7 * 86400),
    "target_concurrency": lambda r, n: r.number(n, int, 0, 1024),
    "breaker_failures": lambda r, n: r.number(n, int, 1, 1000),
    "breaker_cooldown": lambda r, n: r.number(n, float, 0.1, 86400),
    "breaker_cooldown_max": lambda r, n: r.number(n, float, 0.1, 86400),
    "breaker_park": lambda r, n: r.number(n, float, 1, 86400),
    "http_timeout": lambda r, n: r.number(n, float, 0.05, 600),
    "connect_timeout": lambda r, n: r.number(n, float, 0.05, 600),
    "metrics_port": lambda r, n: r.number(n, int, 0, 65535),
    "ordering": lambda r, n: r.choice(n, ("none", "per-user")),
    "allow_private_targets": lambda r, n: r.flag(n),
    "log_format": lambda r, n: r.choice(n, ("text", "json")),
    "http_engine": lambda r, n: r.choice(n, ("aiohttp", "httpx")),
    "message_type_packages": _packages,
    "history_days": lambda r, n: r.number(n, float, 0, 3650),
    "processes": lambda r, n: parse_processes(r.text(n), _var(n)),
}


def _check_consistency(settings: Settings) -> None:
    if settings.breaker_cooldown_max < settings.breaker_cooldown:
        raise ConfigError(
            f"OUTBOX_BREAKER_COOLDOWN_MAX ({settings.breaker_cooldown_max:g}) must be >= "
            f"OUTBOX_BREAKER_COOLDOWN ({settings.breaker_cooldown:g})"
        )
    if settings.retry_max_seconds < settings.retry_base_seconds:
        raise ConfigError(
            f"OUTBOX_RETRY_MAX_SECONDS ({settings.retry_max_seconds:g}) must be >= "
            f"OUTBOX_RETRY_BASE_SECONDS ({settings.retry_base_seconds:g})"
        )
    if settings.lease_seconds < 2 * settings.http_timeout:
        raise ConfigError(
            f"OUTBOX_LEASE_SECONDS ({settings.lease_seconds:g}) must be at least twice "
            f"OUTBOX_HTTP_TIMEOUT ({settings.http_timeout:g}) so a live worker keeps its rows"
        )

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


def _between(
    low: float, high: float, expected: str = ""
) -> Callable[[Any, attrs.Attribute[Any], float], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        if not low <= value <= high:  # also refuses NaN
            wanted = expected or f"a number between {low:g} and {high:g}"
            raise _bad(attribute.name, str(value), wanted)

    return check


def _one_of(*options: str) -> Callable[[Any, attrs.Attribute[Any], str], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in options:
            raise _bad(attribute.name, value, "one of " + ", ".join(options))

    return check


def _matching(pattern: str, expected: str) -> Callable[[Any, attrs.Attribute[Any], str], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if not re.match(pattern, value, re.IGNORECASE):
            raise _bad(attribute.name, value, expected)

    return check


def _optional(
    check: Callable[[Any, attrs.Attribute[Any], Any], None],
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def maybe(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            check(instance, attribute, value)

    return maybe


def _check_target_urls(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    for type_name, url in value.items():
        if not type_name.strip() or not re.match(r"^https?://\S+$", url, re.IGNORECASE):
            raise _bad(
                attribute.name, f"{type_name}={url}", "comma-separated type=http(s)://url pairs"
            )


def _check_secret(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    for secret in (value or "").split():
        if not re.match(r"^whsec_[A-Za-z0-9+/]{16,}={0,2}$", secret):  # never echo a secret
            raise ConfigError(
                f"{_var(attribute.name)} must be one or more space-separated whsec_<base64> secrets"
            )


def _check_schedule(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value == "exponential":
        return
    if not 0 < len(value) <= 100 or not all(0 < step <= 30 * 86400 for step in value):
        raise _bad(attribute.name, ",".join(f"{s:g}s" for s in value), _SCHEDULE_FORM)


def _check_packages(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    for part in value:
        if not re.match(r"^[A-Za-z_][\w.]*$", part):
            raise _bad(attribute.name, part, "comma-separated Python package names")


_PROCESSES_FORM = f"auto or a number between 1 and {MAX_PROCESSES}"
_SCHEDULE_FORM = (
    "comma-separated waits such as 5s,5m,30m,2h (each > 0 and <= 30d), 'standard' or 'exponential'"
)


@attrs.frozen(kw_only=True)
class Settings:
    """Every bound is checked here, so settings built in code are held to the same rules as
    the environment; `from_env` only turns text into values."""

    database_url: str = attrs.field(
        default="sqlite:///outbox.db", repr=lambda url: repr(masked_url(url))
    )
    table: str = attrs.field(
        default="Messages",
        validator=_matching(
            _IDENTIFIER.pattern, "a plain SQL identifier (letters, digits, underscore)"
        ),
    )
    target_url: str | None = attrs.field(
        default=None,
        validator=_optional(_matching(r"^https?://[^\s/]+", "an http:// or https:// URL")),
    )
    target_urls: Mapping[str, str] = attrs.field(factory=dict, validator=_check_target_urls)
    signing_secret: str | None = attrs.field(default=None, repr=False, validator=_check_secret)
    batch_size: int = attrs.field(default=500, validator=_between(1, MAX_BATCH_SIZE))
    concurrency: int = attrs.field(default=64, validator=_between(1, 1024))
    poll_interval: float = attrs.field(default=1.0, validator=_between(0.01, 3600))
    lease_seconds: float = attrs.field(default=30.0, validator=_between(1, 86400))
    retry_schedule: tuple[float, ...] | Literal["exponential"] = attrs.field(
        default=STANDARD_WEBHOOKS, validator=_check_schedule
    )
    max_attempts: int = attrs.field(default=8, validator=_between(1, 1000))
    retry_base_seconds: float = attrs.field(default=1.0, validator=_between(0.001, 86400))
    retry_max_seconds: float = attrs.field(default=300.0, validator=_between(0.001, 7 * 86400))
    target_concurrency: int = attrs.field(default=0, validator=_between(0, 1024))
    breaker_failures: int = attrs.field(default=5, validator=_between(1, 1000))
    breaker_cooldown: float = attrs.field(default=5.0, validator=_between(0.1, 86400))
    breaker_cooldown_max: float = attrs.field(default=60.0, validator=_between(0.1, 86400))
    breaker_park: float = attrs.field(default=3600.0, validator=_between(1, 86400))
    http_timeout: float = attrs.field(default=10.0, validator=_between(0.05, 600))
    connect_timeout: float = attrs.field(default=5.0, validator=_between(0.05, 600))
    metrics_port: int = attrs.field(default=0, validator=_between(0, 65535))
    ordering: Literal["none", "per-user"] = attrs.field(
        default="none", validator=_one_of("none", "per-user")
    )
    allow_private_targets: bool = False
    log_format: Literal["text", "json"] = attrs.field(
        default="text", validator=_one_of("text", "json")
    )
    http_engine: Literal["reqwest", "aiohttp", "httpx"] = attrs.field(
        default="reqwest", validator=_one_of("reqwest", "aiohttp", "httpx")
    )
    message_type_packages: tuple[str, ...] = attrs.field(default=(), validator=_check_packages)
    history_days: float = attrs.field(default=7.0, validator=_between(0, 3650))
    processes: int = attrs.field(default=1, validator=_between(1, MAX_PROCESSES, _PROCESSES_FORM))

    def __attrs_post_init__(self) -> None:
        _check_consistency(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        reader = _Reader(env)
        values = {name: parse(reader, name) for name, parse in _PARSERS.items() if reader.has(name)}
        _pick_backoff(values)
        return cls(**values)

    def signing_secrets(self) -> tuple[str, ...]:
        return tuple(self.signing_secret.split()) if self.signing_secret else ()


def masked_url(url: str) -> str:
    """The URL with any password replaced, for logs and reprs."""
    return re.sub(r"(://[^/:@\s]*:)[^/\s]*@", r"\1***@", url)


class _Reader:
    """Turns each variable's text into a value; the bounds are the `Settings` type's."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def has(self, name: str) -> bool:
        return self._env.get(_var(name), "").strip() != ""

    def text(self, name: str) -> str:
        return self._env[_var(name)].strip()

    def number(self, name: str, kind: Callable[[str], T]) -> T:
        raw = self.text(name)
        try:
            return kind(raw)
        except ValueError:
            whole = " whole" if kind is int else ""
            raise _bad(name, raw, f"a{whole} number") from None

    def lower(self, name: str) -> str:
        return self.text(name).lower()

    def flag(self, name: str) -> bool:
        raw = self.text(name).lower()
        if raw not in _TRUE | _FALSE:
            raise _bad(name, raw, "true or false")
        return raw in _TRUE


def _var(name: str) -> str:
    return PREFIX + name.upper()


def _bad(name: str, raw: str, expected: str) -> ConfigError:
    return ConfigError(f"{_var(name)} must be {expected}, got {raw!r}")


def _url_map(reader: _Reader, name: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in reader.text(name).split(","):
        type_name, sep, url = item.strip().partition("=")
        if not sep:
            raise _bad(name, item, "comma-separated type=http(s)://url pairs")
        pairs[type_name.strip()] = url.strip()
    return pairs


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
        if not match:
            raise _bad(name, raw, _SCHEDULE_FORM)
        steps.append(float(match[1]) * _SECONDS[match[2] or "s"])
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
    """A worker process count: 1..MAX_PROCESSES, or `auto` for the cores this process may use.
    Also the grammar of `outbox worker --processes`, which does not go through `Settings`."""
    value = raw.strip().lower()
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if value.isdigit() and 1 <= int(value) <= MAX_PROCESSES:
        return int(value)
    raise ConfigError(f"{name} must be {_PROCESSES_FORM}, got {raw!r}")


def _packages(reader: _Reader, name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in reader.text(name).split(",") if p.strip())


_PARSERS: dict[str, Callable[[_Reader, str], Any]] = {
    "database_url": _Reader.text,
    "table": _Reader.text,
    "target_url": _Reader.text,
    "target_urls": _url_map,
    "signing_secret": _Reader.text,
    "batch_size": lambda r, n: r.number(n, int),
    "concurrency": lambda r, n: r.number(n, int),
    "poll_interval": lambda r, n: r.number(n, float),
    "lease_seconds": lambda r, n: r.number(n, float),
    "retry_schedule": _schedule,
    "max_attempts": lambda r, n: r.number(n, int),
    "retry_base_seconds": lambda r, n: r.number(n, float),
    "retry_max_seconds": lambda r, n: r.number(n, float),
    "target_concurrency": lambda r, n: r.number(n, int),
    "breaker_failures": lambda r, n: r.number(n, int),
    "breaker_cooldown": lambda r, n: r.number(n, float),
    "breaker_cooldown_max": lambda r, n: r.number(n, float),
    "breaker_park": lambda r, n: r.number(n, float),
    "http_timeout": lambda r, n: r.number(n, float),
    "connect_timeout": lambda r, n: r.number(n, float),
    "metrics_port": lambda r, n: r.number(n, int),
    "ordering": _Reader.lower,
    "allow_private_targets": _Reader.flag,
    "log_format": _Reader.lower,
    "http_engine": _Reader.lower,
    "message_type_packages": _packages,
    "history_days": lambda r, n: r.number(n, float),
    "processes": lambda r, n: parse_processes(r.text(n), _var(n)),
}


def _check_consistency(settings: Settings) -> None:
    if settings.breaker_cooldown_max < settings.breaker_cooldown:
        raise ConfigError(
            f"OUTBOX_BREAKER_COOLDOWN_MAX ({settings.breaker_cooldown_max:g}) must be >= "
            f"OUTBOX_BREAKER_COOLDOWN ({settings.breaker_cooldown:g})"
        )
    if settings.breaker_park < settings.breaker_cooldown_max:
        raise ConfigError(
            f"OUTBOX_BREAKER_PARK ({settings.breaker_park:g}) must be >= "
            f"OUTBOX_BREAKER_COOLDOWN_MAX ({settings.breaker_cooldown_max:g})"
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

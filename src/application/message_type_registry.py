"""Finds the message types at start-up: each module of the given packages with `MESSAGE_TYPE`."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator

from domain.message_type import MessageType, MessageTypes

BUILT_IN = "domain.message_types"


class MessageTypeError(Exception):
    """A message type module is broken; the worker does not start."""


def discover(packages: Iterable[str] = (BUILT_IN,)) -> MessageTypes:
    return MessageTypes(_found(packages))


def _found(packages: Iterable[str]) -> Iterator[tuple[str, MessageType]]:
    for package_name in packages:
        package = _import(package_name)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if info.name.startswith("_"):
                continue
            module_name = f"{package_name}.{info.name}"
            yield module_name, _message_type_of(_import(module_name), module_name)


def _import(name: str) -> object:
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise MessageTypeError(f"cannot import message type module {name}: {error}") from error


def _message_type_of(module: object, module_name: str) -> MessageType:
    message_type = getattr(module, "MESSAGE_TYPE", None)
    if message_type is None:
        raise MessageTypeError(f"{module_name} defines no MESSAGE_TYPE")
    for attribute in ("name", "validate", "build"):
        if not hasattr(message_type, attribute):
            raise MessageTypeError(f"{module_name}.MESSAGE_TYPE has no {attribute!r}")
    return message_type  # type: ignore[no-any-return]

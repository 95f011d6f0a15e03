"""Loggers fetched on use: ``import ormcache`` does not import ``logging`` (issue #21: import
cost); the first message does, and goes to ``logging.getLogger(name)`` as before."""
from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from logging import Logger
    from typing import Any


class _LazyLogger:
    """Forwards every attribute to ``logging.getLogger(name)``, looked up at each use (so a
    test's or an application's logging configuration applies as to a plain logger)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        import logging

        return getattr(logging.getLogger(self.name), attr)

    def __repr__(self) -> str:
        return f"<logger {self.name!r}, fetched on use>"


def get_logger(name: str) -> Logger:
    """``logging.getLogger(name)`` without importing ``logging`` until a message is logged."""
    return _LazyLogger(name)  # type: ignore[return-value]  # a Logger by delegation

"""One structured log format for every pyk8s process: a JSON object per line on stderr.

Fields: ts (RFC 3339, UTC), level, component, logger, msg, plus anything passed in
``extra=``; exceptions as ``exc``. Machines parse it, people can still read it. The
component is the process's, or what :func:`set_component` named for the asyncio task
(a component running inside another's process, :mod:`pyk8s.server.cohost`).
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from contextvars import ContextVar
from typing import Any

import orjson

#: the component of this context (asyncio task) when not the process's own
_component: ContextVar[str | None] = ContextVar("pyk8s_log_component", default=None)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "component": _component.get() or self.component,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def set_component(component: str) -> None:
    """Log as ``component`` from this context (an asyncio task and the tasks it starts)."""
    _component.set(component)


def setup(component: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

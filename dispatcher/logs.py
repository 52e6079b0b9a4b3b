"""structlog set-up: JSON lines in production, readable console output on a TTY.

Secrets never reach the logs: nothing logs a secret or signature header, and as a second line
of defence the :func:`_redact` processor masks any value that looks like a signing secret or a
bearer token, whatever key it is under.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal

import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError

# Signing secrets, tenant and console-admin tokens (token_urlsafe bodies), bearer credentials.
_SECRETISH = re.compile(
    r"whsec_[A-Za-z0-9+/=]+|dsp_(?:tenant|admin)_[A-Za-z0-9_-]+|(?i:bearer\s+)\S+"
)
_SENSITIVE_KEYS = frozenset({"secret", "token", "authorization", "webhook-signature", "password"})


def _mask(value: Any) -> Any:
    # The substring test is much cheaper than the regex and almost always false.
    if isinstance(value, str) and (
        "whsec_" in value or "dsp_" in value or "earer" in value or "EARER" in value
    ):
        return _SECRETISH.sub("[redacted]", value)
    return value


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    # Runs for every log line (one per delivery attempt): keys are nearly always lower case
    # already, and only strings can hold a secret-looking value.
    for key, value in event.items():
        if key in _SENSITIVE_KEYS or (not key.islower() and key.lower() in _SENSITIVE_KEYS):
            event[key] = "[redacted]"
        elif type(value) is str:
            event[key] = _mask(value)
    return event


def _utc_now(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    # orjson writes the datetime as ISO 8601 (with Z): several times cheaper than formatting
    # it in Python with structlog's TimeStamper.
    event["timestamp"] = datetime.now(UTC)
    return event


# Info and debug lines wait at most this long to be written, together: one write per line was
# a system call per delivery attempt. Warnings and worse are written at once.
FLUSH_DELAY = 0.05


class LineBuffer:
    """structlog's final logger for JSON lines: writes them in batches.

    Lines logged on a thread without a running event loop, and every warning or worse, are
    written at once (with whatever is waiting before them, so the order holds). The rest is
    written ``FLUSH_DELAY`` after the first of them, and at exit.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lines: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        atexit.register(self.flush)

    def _later(self, line: bytes) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: write now
            loop = None
        with self._lock:
            self._lines.append(line)
            if loop is not None:
                # A timer left on a loop that has since closed would never fire.
                if self._timer is None or self._timer_loop is not loop:
                    self._timer = loop.call_later(FLUSH_DELAY, self.flush)
                    self._timer_loop = loop
                return
        self.flush()

    def _now(self, line: bytes) -> None:
        with self._lock:
            self._lines.append(line)
        self.flush()

    def flush(self) -> None:
        """Write what is waiting."""
        with self._lock:
            lines, self._lines = self._lines, []
            # A pending timer is left to fire on an empty buffer: it may belong to another
            # thread's loop, and a loop's handles are not to be touched from elsewhere.
            self._timer = None
            if lines:
                lines.append(b"")
                self._out.write(b"\n".join(lines))
                self._out.flush()

    debug = info = _later
    msg = warning = warn = error = err = critical = exception = fatal = failure = _now


_buffer: LineBuffer | None = None


def flush() -> None:
    """Write the JSON lines still waiting (before a short-lived event loop's end, a fork...)."""
    if _buffer is not None:
        _buffer.flush()


# An exception's text up to where it would quote what was received: a colon (llhttp's
# "reason: <the bytes>"), a quote or a bytes literal (the pure-Python parser's "... b'<line>'").
_REASON_END = re.compile(r"\bb['\"]|[:'\"\r\n\\]")
REASON_LIMIT = 120


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words that quote nothing received ("" if unknown)."""
    if isinstance(exc, HttpProcessingError):
        text = str(exc.message)
    elif isinstance(exc, OSError):
        text = exc.strerror or ""
    else:
        return ""  # any other exception's text may hold anything
    text = _REASON_END.split(text, maxsplit=1)[0].strip()
    return str(_mask(text))[:REASON_LIMIT]


class _AiohttpRecords(logging.Handler):
    """aiohttp's log records as structlog events: the error's class and a short reason.

    aiohttp logs a malformed request as a plain-text traceback whose exception quotes the raw
    request bytes, bearer tokens included, past structlog and its redaction. Here it becomes
    one line: ``bad_http_request`` (info) for what the client sent wrong, else the record's
    fixed message text without its arguments; never the request's bytes.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc = record.exc_info[1] if record.exc_info else None
            fields: dict[str, Any] = {"logger": record.name}
            if exc is not None:
                fields["error"] = type(exc).__name__
                if reason := _reason(exc):
                    fields["reason"] = reason
            if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
                _aiohttp_log.info("bad_http_request", status=exc.code or 400, **fields)
                return
            # The message template only: its arguments may be a request's parts.
            event = " ".join(str(record.msg).replace("%s", "").replace("%r", "").split())
            method = record.levelname.lower() if record.levelno >= logging.INFO else "debug"
            getattr(_aiohttp_log, method, _aiohttp_log.warning)(event[:200], **fields)
        except Exception:
            self.handleError(record)


_aiohttp_log = structlog.get_logger("aiohttp")
AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal")


def _route_aiohttp_logs() -> None:
    handler = _AiohttpRecords()
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _AiohttpRecords)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        # Not also to the root logger's plain-text handler. Debug records are dropped: aiohttp
        # logs non-HTTP traffic (a TLS hello on the port) at debug, and that is noise.
        logger.propagate = False
        logger.setLevel(logging.INFO)


def configure(fmt: Literal["console", "json"], level: int = logging.INFO) -> None:
    """Configure structlog (and route stdlib logging through the same output)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _utc_now if fmt == "json" else structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    if fmt == "json":
        renderer: Any = structlog.processors.JSONRenderer(
            serializer=functools.partial(orjson.dumps, option=orjson.OPT_UTC_Z)
        )
        shared.append(structlog.processors.format_exc_info)
        global _buffer
        if _buffer is None:
            _buffer = LineBuffer(sys.stdout.buffer)
        buffer = _buffer
        factory: Any = lambda *_: buffer  # noqa: E731
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _route_aiohttp_logs()

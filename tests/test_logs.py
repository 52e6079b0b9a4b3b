"""The JSON log output: lines batched on the event loop, warnings written at once, in order."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time

from dispatcher.logs import LineBuffer


async def test_info_lines_are_written_together_shortly_after() -> None:
    out = io.BytesIO()
    buffer = LineBuffer(out)
    buffer.info(b'{"event":"one"}')
    buffer.info(b'{"event":"two"}')
    assert out.getvalue() == b""  # waiting for the batch
    deadline = time.monotonic() + 5
    while not out.getvalue() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert out.getvalue() == b'{"event":"one"}\n{"event":"two"}\n'


async def test_a_warning_is_written_at_once_after_the_lines_before_it() -> None:
    out = io.BytesIO()
    buffer = LineBuffer(out)
    buffer.info(b"first")
    buffer.warning(b"second")
    assert out.getvalue() == b"first\nsecond\n"
    buffer.info(b"third")
    buffer.error(b"fourth")
    assert out.getvalue() == b"first\nsecond\nthird\nfourth\n"


def test_without_an_event_loop_lines_are_written_at_once() -> None:
    out = io.BytesIO()
    LineBuffer(out).info(b"now")
    assert out.getvalue() == b"now\n"


def test_lines_still_waiting_are_written_when_the_process_exits() -> None:
    # The loop ends (and the process exits) before the batch is due.
    script = (
        "import asyncio, structlog\n"
        "from dispatcher import logs\n"
        "logs.configure('json')\n"
        "async def main():\n"
        "    structlog.get_logger('t').info('last_words', n=1)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True
    )
    assert b'"event":"last_words"' in done.stdout


def test_tenant_and_admin_tokens_are_masked_in_any_value() -> None:
    from dispatcher.logs import _redact

    tenant = "dsp_tenant_" + "Ab-_9" * 8
    admin = "dsp_admin_" + "Zy_-0" * 8
    event = {"event": "odd", "detail": f"got {tenant} and {admin}.", "path": "/x"}
    out = _redact(None, "info", event)
    assert tenant not in out["detail"] and admin not in out["detail"]
    assert "dsp_tenant_" not in out["detail"] and "dsp_admin_" not in out["detail"]
    assert out["detail"] == "got [redacted] and [redacted]."
    assert out["path"] == "/x"

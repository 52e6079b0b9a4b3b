"""The outbound client's allocator runs without transparent huge pages, unless the operator
says otherwise: with them, each attempt in flight holds a third more resident memory."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import dispatcher.sender_reqwest\n"
    "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('THP_enabled')))"
)


def thp_enabled(**env: str) -> str:
    """THP_enabled of a fresh process that imported the pyreqwest sender."""
    clean = {k: v for k, v in os.environ.items() if k != "MIMALLOC_ALLOW_THP"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_huge_pages_are_off_for_the_service_process() -> None:
    assert thp_enabled() == "0"


def test_an_operators_own_setting_wins() -> None:
    assert thp_enabled(MIMALLOC_ALLOW_THP="1") == "1"

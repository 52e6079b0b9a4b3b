"""The outbound client's allocator runs without transparent huge pages, unless the operator
says otherwise: with them, each attempt in flight holds a third more resident memory."""

from __future__ import annotations

import os
import subprocess
import sys

# THP turned off is inherited from the parent process (and pytest itself may have loaded
# pyreqwest first), so the probe turns it back on before it imports the sender.
PROBE = """
import ctypes
PR_SET_THP_DISABLE = 41

def thp() -> str:
    return next(l.split()[1] for l in open("/proc/self/status") if l.startswith("THP_enabled"))

assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0) == 0
assert thp() == "1", "THP could not be turned on for the probe"
import {module}
print(thp())
"""


def thp_enabled(module: str = "dispatcher.sender_reqwest", **env: str) -> str:
    """THP_enabled of a fresh process, once it imported ``module``."""
    clean = {k: v for k, v in os.environ.items() if k != "MIMALLOC_ALLOW_THP"}
    probe = PROBE.replace("{module}", module)
    out = subprocess.run(
        [sys.executable, "-c", probe], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_huge_pages_are_off_for_the_service_process() -> None:
    assert thp_enabled() == "0"


def test_an_operators_own_setting_wins() -> None:
    assert thp_enabled(MIMALLOC_ALLOW_THP="1") == "1"


def test_the_setting_is_made_before_any_module_loads_pyreqwest() -> None:
    # dispatcher.sender imports pyreqwest too, and the engine imports it before the senders.
    assert thp_enabled("dispatcher.sender") == "0"

"""The benchmarks' CPU accounting: a process tree's CPU counts children that exited."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.measure import ProcessCpu, tree_cpu_s

# A child that burns 0.5 s of its own CPU, then exits.
BURN = "import time\nwhile time.process_time() < 0.5:\n    pass\n"


def test_a_reaped_child_still_counts() -> None:
    # The parent is a shell that runs the burner and waits for it (reaps it), then sleeps: by
    # the end the burner is gone and only the shell's cutime/cstime hold its CPU.
    parent = subprocess.Popen(
        ["/bin/sh", "-c", f"{sys.executable} -c '{BURN}'; exec sleep 30"],
    )
    try:
        meter = ProcessCpu({"tree": [parent.pid], "none": []}).start()
        before = tree_cpu_s(parent.pid)
        # Wait until the shell has become `sleep` (the burner has exited and been reaped).
        while True:
            with open(f"/proc/{parent.pid}/cmdline", "rb") as f:
                if f.read().startswith(b"sleep"):
                    break
            time.sleep(0.01)
        meter.stop()
        assert tree_cpu_s(parent.pid) - before >= 0.4
        per = meter.per(1000, "delivery")
        assert per["tree_cpu_us_per_delivery"] >= 400
        assert per["none_cpu_us_per_delivery"] != per["none_cpu_us_per_delivery"]  # NaN
    finally:
        parent.kill()
        parent.wait()

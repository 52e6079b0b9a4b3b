"""Dispatcher: a self-hosted, asyncio-native webhook dispatcher on Postgres."""

import os

# Here, before any module imports pyreqwest (the outbound client): its allocator, mimalloc, reads
# this once as the library loads. Left on, the kernel may back mimalloc's arena with 2 MiB
# transparent huge pages: 50 KiB resident per attempt in flight instead of 37
# (benchmarks/sender_memory.py). Off, mimalloc turns THP off for this process (prctl), as
# Postgres' own advice is for its hosts. An operator's own MIMALLOC_ALLOW_THP wins.
os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")

__version__ = "0.1.0"

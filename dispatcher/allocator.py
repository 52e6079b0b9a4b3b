"""pyreqwest's allocator settings, made before the library loads.

pyreqwest (the outbound client) links mimalloc as its allocator, which reads its options from
the environment once, as the library loads; so every module that imports pyreqwest imports this
one first. Left on, mimalloc lets the kernel back its arena with 2 MiB transparent huge pages:
50 KiB resident per attempt in flight instead of 37 (benchmarks/sender_memory.py). With
``MIMALLOC_ALLOW_THP=0`` mimalloc turns THP off for this process and the processes it starts,
the embedded Postgres included (``prctl(PR_SET_THP_DISABLE)``), as Postgres' own advice is for
its hosts. An operator's own ``MIMALLOC_ALLOW_THP`` wins.
"""

import os

os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")

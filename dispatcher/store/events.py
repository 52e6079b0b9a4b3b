"""The event log. Inserts happen in :mod:`dispatcher.ingest` (group commit); reads here."""

from __future__ import annotations

from pathlib import Path

from dispatcher.db import load_queries

Q = load_queries(Path(__file__).with_suffix(".sql"))

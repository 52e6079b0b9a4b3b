"""The distribution's version (also in the ``User-Agent`` of every request)."""

__version__ = "0.1.0"

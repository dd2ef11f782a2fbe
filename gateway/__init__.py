"""gateway: a self-hosted, single-process real-time sports-odds gateway."""

__version__ = "0.1.0"

"""Runtime backends: one module per format, each imports only numpy and its own inference library."""

from vitedge.runtime.backends.base import Backend, open_backend

__all__ = ["Backend", "open_backend"]

"""devserve: the ASGI development server built for developers."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

"""The version string the reload bench rewrites (in its temporary copy) to trigger a reload."""

from __future__ import annotations

VERSION = "v0"

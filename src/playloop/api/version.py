"""The installed playloop version (shown in the OpenAPI document and ``/health``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("playloop")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0.0.0"

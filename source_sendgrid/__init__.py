"""The SendGrid source. Importing the package imports nothing else: `SourceSendgrid` loads airbyte-cdk
when first asked for, and the command line (run.py) tunes its start-up."""

from typing import Any

__all__ = ["SourceSendgrid"]


def __getattr__(name: str) -> Any:
    if name == "SourceSendgrid":
        from .source import SourceSendgrid

        return SourceSendgrid
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

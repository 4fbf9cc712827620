from .source import SourceSendgrid

__all__ = ["SourceSendgrid"]

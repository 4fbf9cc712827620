from .startup import lean_import

with lean_import():  # the first import of airbyte_cdk
    from .source import SourceSendgrid

__all__ = ["SourceSendgrid"]

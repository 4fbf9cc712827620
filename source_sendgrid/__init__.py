from .startup import skip_serializer_docstrings

skip_serializer_docstrings()  # before the first import of airbyte_cdk

from .source import SourceSendgrid  # noqa: E402

__all__ = ["SourceSendgrid"]

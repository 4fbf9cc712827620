import sys

from airbyte_cdk.entrypoint import launch

from .source import SourceSendgrid


def run() -> None:
    launch(SourceSendgrid(), sys.argv[1:])

"""Start-up (source_sendgrid.startup): importing the connector parses no source code for the CDK's serializers,
and leaves what the import made frozen out of the garbage collector, which it leaves as it found it."""

import subprocess
import sys

import pytest

DOCSTRING_LOOKUPS = (
    "import serpyco_rs._utils as utils\n"
    "{imports}\n"
    "print(utils.get_attributes_doc.cache_info().misses)\n"
)


def python(code: str) -> str:
    """What `code` prints in a fresh interpreter, where nothing has imported airbyte_cdk yet."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def lookups_after(imports: str) -> int:
    return int(python(DOCSTRING_LOOKUPS.format(imports=imports)))


def test_airbyte_cdk_alone_looks_up_the_docstrings_of_the_protocol_classes():
    assert lookups_after("import airbyte_cdk") > 10


@pytest.mark.parametrize("imports", ["import source_sendgrid", "import source_sendgrid.run"])
def test_importing_the_connector_builds_the_cdks_serializers_without_docstrings(imports):
    assert lookups_after(imports + "\nimport airbyte_cdk.models") == 0


def test_importing_the_connector_freezes_what_the_import_made_and_leaves_the_collector_on():
    frozen, enabled = python("import gc, source_sendgrid; print(gc.get_freeze_count(), gc.isenabled())").split()
    assert int(frozen) > 100_000 and enabled == "True"


def test_a_collector_the_caller_turned_off_stays_off():
    assert python("import gc; gc.disable(); import source_sendgrid; print(gc.isenabled())") == "False"


def test_the_serializers_still_write_and_read_messages():
    import source_sendgrid  # noqa: F401
    from airbyte_cdk.models import (AirbyteMessage, AirbyteMessageSerializer, AirbyteRecordMessage,
                                    AirbyteStateBlob, AirbyteStateMessage, AirbyteStateType, AirbyteStreamState,
                                    StreamDescriptor, Type)

    record = AirbyteMessage(type=Type.RECORD, record=AirbyteRecordMessage(stream="bounces", data={"email": "a@b.c"},
                                                                        emitted_at=1))
    state = AirbyteMessage(type=Type.STATE, state=AirbyteStateMessage(
        type=AirbyteStateType.STREAM,
        stream=AirbyteStreamState(stream_descriptor=StreamDescriptor(name="bounces"),
                                  stream_state=AirbyteStateBlob(created=5))))
    assert AirbyteMessageSerializer.dump(record) == {
        "type": "RECORD", "record": {"stream": "bounces", "data": {"email": "a@b.c"}, "emitted_at": 1}}
    assert AirbyteMessageSerializer.dump(state)["state"]["stream"]["stream_state"] == {"created": 5}
    assert AirbyteMessageSerializer.load(AirbyteMessageSerializer.dump(record)) == record

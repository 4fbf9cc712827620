"""Start-up (source_sendgrid.startup): the command line parses no source code for the CDK's serializers, and
leaves what its import made frozen out of the garbage collector, which it leaves as it found it. Importing
the package changes neither."""

import subprocess
import sys
from pathlib import Path

import pytest

DOCSTRING_LOOKUPS = (
    "import serpyco_rs._utils as utils\n"
    "{imports}\n"
    "print(utils.get_attributes_doc.cache_info().misses)\n"
)
# What the process did to the collector and the serializers, written after the command line's own output.
AFTER_THE_COMMAND = (
    "import gc, runpy, sys\n"
    "import serpyco_rs._utils as utils\n"
    "sys.argv = ['source-sendgrid', 'spec']\n"
    "{entry}\n"
    "sys.stderr.write(f'\\nafter: {{gc.get_freeze_count()}} {{gc.isenabled()}} {{utils.get_attributes_doc.cache_info().misses}}')\n"
)
COMMAND_LINE_ENTRIES = {
    "python -m source_sendgrid": "runpy.run_module('source_sendgrid', run_name='__main__')",
    "the source-sendgrid script": "from source_sendgrid.run import run; run()",
    "main.py": f"runpy.run_path({str(Path(__file__).parents[1] / 'main.py')!r}, run_name='__main__')",
}


def python(code: str) -> str:
    """What `code` prints in a fresh interpreter, where nothing has imported airbyte_cdk yet."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def lookups_after(imports: str) -> int:
    return int(python(DOCSTRING_LOOKUPS.format(imports=imports)))


def test_airbyte_cdk_alone_looks_up_the_docstrings_of_the_protocol_classes():
    assert lookups_after("import airbyte_cdk") > 10


def test_importing_the_command_line_builds_the_cdks_serializers_without_docstrings():
    assert lookups_after("import source_sendgrid.run\nimport airbyte_cdk.models") == 0


def test_importing_the_package_and_its_source_leaves_the_serializers_and_the_collector_as_they_were():
    code = (DOCSTRING_LOOKUPS.format(imports="import gc, source_sendgrid\nfrom source_sendgrid import SourceSendgrid")
            + "print(gc.get_freeze_count(), gc.isenabled())")
    lookups, frozen_and_enabled = python(code).splitlines()
    assert int(lookups) > 10
    assert frozen_and_enabled == "0 True"


def test_importing_the_package_leaves_a_collector_the_caller_turned_off_alone():
    assert python("import gc; gc.disable(); from source_sendgrid import SourceSendgrid; gc.enable(); "
                  "print(gc.get_freeze_count())") == "0"


@pytest.mark.parametrize("entry", COMMAND_LINE_ENTRIES.values(), ids=COMMAND_LINE_ENTRIES.keys())
def test_every_command_line_entry_freezes_what_the_import_made_skips_the_docstrings_and_leaves_the_collector_on(entry):
    done = subprocess.run([sys.executable, "-c", AFTER_THE_COMMAND.format(entry=entry)], capture_output=True, text=True,
                          check=True)
    assert '"type":"SPEC"' in done.stdout
    frozen, enabled, lookups = done.stderr.rsplit("after: ", 1)[1].split()
    assert int(frozen) > 100_000 and enabled == "True" and lookups == "0"


def test_a_collector_the_caller_turned_off_stays_off():
    assert python("import gc; gc.disable(); import source_sendgrid.run; print(gc.isenabled())") == "False"


def test_the_serializers_still_write_and_read_messages():
    import source_sendgrid.run  # noqa: F401
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

"""The seam to airbyte-cdk (source_sendgrid/cdk_seam.py): every private part of the CDK the connector relies on
is there in the installed CDK; a missing or changed one stops the connector at once with a message naming
the CDK's version and the part, or, where the CDK has a public path, the connector takes it and writes the
same messages."""

import json
import logging
import subprocess
import sys
from importlib.metadata import version

import pytest
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, SyncMode
from airbyte_cdk.test.mock_http import HttpMocker

from source_sendgrid import SourceSendgrid, cdk_seam
from source_sendgrid.cdk_seam import READ_STREAM_PARAMETERS, CdkSeamError, Expected, source_digest
from source_sendgrid.run import run
from unit_tests.builders import api_request, catalog, config, json_response, scopes_request, scopes_response

CDK_VERSION = version("airbyte-cdk")


class OlderSource:
    """Stands in for a CDK class whose private parts changed."""

    def __init__(self):
        self._client = object()

    def _read_stream(self, logger, stream_instance, configured_stream, state_manager, internal_config, limits):
        return iter(())

    def _read_pages(self, records_generator_fn, stream_slice=None, stream_state=None, page_limit=None):
        return iter(())

    def _fetch(self, url, params, timeout):
        return None

    def run(self, parsed_args):
        return self.read(parsed_args)


class AsCopied:
    def run(self, parsed_args):
        return self.read(parsed_args)


class Changed:
    def run(self, parsed_args):
        self.logger.info("a new step")
        return self.read(parsed_args)


class Recommented:
        def run(self, parsed_args):
            # the same steps, other words and indentation around them

            return self.read(parsed_args)


def python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_every_private_part_of_the_cdk_the_connector_relies_on_is_as_it_expects_in_the_installed_cdk():
    assert cdk_seam.problems(cdk_seam.REQUIRED) == []
    assert cdk_seam.FALLBACKS == []
    assert cdk_seam.PAGE_READS and cdk_seam.DIRECT_RECORDS and cdk_seam.CONCURRENT_READS and cdk_seam.OWN_OUTPUT


def test_given_a_cdk_without_a_method_the_connector_overrides_when_checked_then_it_fails_naming_the_version_and_the_method():
    with pytest.raises(ImportError) as raised:
        cdk_seam.require([Expected(OlderSource, "_get_message", ("self", "record_data_or_message", "stream"), overridden=True)])
    assert isinstance(raised.value, CdkSeamError)
    assert str(raised.value).startswith(f"source-sendgrid cannot run with airbyte-cdk {CDK_VERSION}: OlderSource._get_message is gone.")
    assert "bin/check-cdk-upgrade" in str(raised.value)


def test_given_an_overridden_method_with_other_parameters_when_checked_then_the_error_shows_both_signatures():
    with pytest.raises(CdkSeamError, match=r"OlderSource\._read_stream takes \(self, logger, stream_instance, configured_stream, "
                                           r"state_manager, internal_config, limits\), where the connector expects \(self, logger, "
                                           r"stream_instance, configured_stream, state_manager, internal_config\)"):
        cdk_seam.require([Expected(OlderSource, "_read_stream", READ_STREAM_PARAMETERS, overridden=True)])


def test_given_a_called_method_when_it_gains_an_optional_parameter_then_it_passes_and_when_a_required_one_then_it_fails():
    assert cdk_seam.problems([Expected(OlderSource, "_read_pages", ("self", "records_generator_fn", "stream_slice", "stream_state"))]) == []
    assert cdk_seam.problems([Expected(OlderSource, "_fetch", ("self", "url", "params"))]) == [
        "OlderSource._fetch takes (self, url, params, timeout), where the connector expects (self, url, params)"]


def test_given_an_attribute_its_class_no_longer_sets_or_a_module_that_is_gone_when_checked_then_each_is_named():
    assert cdk_seam.problems([Expected(OlderSource, "_http_client", set_in="__init__"),
                              Expected("serpyco_rs._no_such_module", "get_attributes_doc")]) == [
        "OlderSource._http_client is no longer set by __init__",
        "the module serpyco_rs._no_such_module is gone",
    ]


def test_a_copied_functions_digest_ignores_comments_blank_lines_and_indentation_but_not_a_changed_line():
    assert source_digest(Recommented.run) == source_digest(AsCopied.run)
    assert source_digest(Changed.run) != source_digest(AsCopied.run)


def test_given_a_copied_function_that_changed_when_checked_then_the_connector_falls_back_and_warns_once(caplog, monkeypatch):
    monkeypatch.setattr(cdk_seam, "FALLBACKS", [])
    copied = Expected(OlderSource, "run", followed=(source_digest(AsCopied.run),))
    with caplog.at_level(logging.WARNING, logger="airbyte"):
        assert cdk_seam.usable([copied], "messages are written by the CDK's entrypoint") is True
        changed = Expected(OlderSource, "run", followed=(source_digest(Changed.run),))
        assert cdk_seam.usable([changed], "messages are written by the CDK's entrypoint") is False
    [warning] = [record.getMessage() for record in caplog.records]
    assert warning.startswith(f"With airbyte-cdk {CDK_VERSION}, messages are written by the CDK's entrypoint, because "
                              "OlderSource.run is not the version the connector follows (its digest is ")
    assert cdk_seam.FALLBACKS == [warning.split(" The output")[0]]


def test_given_a_cdk_without_a_private_method_when_the_connector_is_imported_then_the_import_fails_with_the_clear_error():
    done = python("import airbyte_cdk.sources.abstract_source as m\n"
                  "del m.AbstractSource._get_message\n"
                  "from source_sendgrid import SourceSendgrid")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"source_sendgrid.cdk_seam.CdkSeamError: source-sendgrid cannot run with airbyte-cdk {CDK_VERSION}: "
        f"AbstractSource._get_message is gone. Install airbyte-cdk=={cdk_seam.CHECKED_CDK}, the version it was checked "
        "with; to adopt this version, run bin/check-cdk-upgrade and adapt source_sendgrid/cdk_seam.py.")


def test_given_a_cdk_whose_read_loop_changed_when_the_command_line_runs_then_it_reads_with_the_cdks_loop_and_says_so():
    done = python("import airbyte_cdk.sources.abstract_source as m\n"
                  "original = m.AbstractSource._read_stream\n"
                  "def _read_stream(self, logger, stream_instance, configured_stream, state_manager, internal_config):\n"
                  "    yield from original(self, logger, stream_instance, configured_stream, state_manager, internal_config)\n"
                  "m.AbstractSource._read_stream = _read_stream\n"
                  "from source_sendgrid import cdk_seam\n"
                  "from source_sendgrid.run import run\n"
                  "run(['spec'])\n"
                  "print(cdk_seam.PAGE_READS, cdk_seam.DIRECT_RECORDS)")
    assert done.returncode == 0, done.stderr
    messages = done.stdout.strip().splitlines()
    warnings = [json.loads(line)["log"]["message"] for line in messages[:-1] if json.loads(line)["type"] == "LOG"
                and json.loads(line)["log"]["level"] == "WARN"]
    [warning] = warnings
    assert warning.startswith(f"With airbyte-cdk {CDK_VERSION}, streams are read a record at a time by the CDK's loop "
                              "(AbstractSource._read_stream), because AbstractSource._read_stream is not the version the "
                              "connector follows (its digest is ")
    assert warning.endswith("). The output is the same, only slower.")
    assert any(json.loads(line)["type"] == "SPEC" for line in messages[:-1])
    assert messages[-1] == "False True"


def _bounces(count, first=0):
    return [{"created": 1704067260, "email": f"b{first + n}@example.com", "reason": "550", "status": "5.1.1"}
            for n in range(count)]


def _comparable(line):
    message = json.loads(line)
    for part in ("record", "trace"):
        if part in message:
            message[part].pop("emitted_at", None)
    return message


def _read_twice(tmp_path, capsys):
    """What the command line writes for one incremental read, and what the CDK's own entrypoint writes."""
    (tmp_path / "config.json").write_text(json.dumps(config(window_days=30)))
    (tmp_path / "catalog.json").write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog("bounces", SyncMode.incremental))))
    arguments = ["read", "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json")]
    written = []
    for read in (run, lambda args: [print(line) for line in AirbyteEntrypoint(SourceSendgrid()).run(AirbyteEntrypoint.parse_args(args))]):
        with HttpMocker() as http:
            http.get(scopes_request(), scopes_response())
            http.get(api_request("/v3/suppression/bounces"), [json_response(_bounces(500)), json_response(_bounces(3, 500)),
                                                              json_response([])])
            capsys.readouterr()
            read(arguments)
            written.append([_comparable(line) for line in capsys.readouterr().out.splitlines()])
    return written


@pytest.mark.parametrize("changed", [("PAGE_READS",), ("DIRECT_RECORDS",), ("PAGE_READS", "DIRECT_RECORDS"),
                                     ("PAGE_READS", "DIRECT_RECORDS", "CONCURRENT_READS", "OWN_OUTPUT")])
def test_given_a_cdk_whose_copied_methods_changed_when_the_command_line_reads_then_it_writes_what_the_cdk_writes(
        changed, tmp_path, capsys, monkeypatch):
    for fast_path in changed:
        monkeypatch.setattr(cdk_seam, fast_path, False)
    ours, cdks = _read_twice(tmp_path, capsys)
    assert sum(message["type"] == "RECORD" for message in ours) == 503
    assert ours == cdks

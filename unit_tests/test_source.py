"""spec, check and discover through the entrypoint."""

from airbyte_cdk.models import Status
from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.mock_http import HttpMocker

from source_sendgrid import SourceSendgrid
from unit_tests.builders import API_KEY, config, error_response, scopes_request, scopes_response


def check(cfg):
    from airbyte_cdk.entrypoint import AirbyteEntrypoint
    from airbyte_cdk.test.entrypoint_wrapper import _run_command  # the same path `source-sendgrid check` takes
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(cfg, file)
    return _run_command(SourceSendgrid(), ["check", "--config", file.name])


def test_spec_marks_the_key_secret_and_hides_the_base_url():
    spec = SourceSendgrid().spec(logger=None).connectionSpecification
    properties = spec["properties"]
    assert spec["required"] == ["api_key"]
    assert properties["api_key"]["airbyte_secret"] is True
    assert properties["api_base_url"]["airbyte_hidden"] is True
    assert properties["region"]["enum"] == ["global", "eu"]
    orders = [p["order"] for p in properties.values()]
    assert orders == sorted(orders)


def test_check_succeeds_and_names_streams_the_key_cannot_read():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["suppression.bounces.read", "asm.groups.read"]))
        output = check(config())
    status = output.connection_status_messages[0].connectionStatus
    assert status.status == Status.SUCCEEDED
    assert "blocks (needs suppression.blocks.read)" in status.message
    assert "suppression_group_members (needs asm.groups.suppressions.read)" in status.message


def test_check_fails_clearly_for_a_rejected_key_without_printing_it():
    with HttpMocker() as http:
        http.get(scopes_request(), error_response(401, "The provided authorization grant is invalid, expired, or revoked"))
        output = check(config())
    status = output.connection_status_messages[0].connectionStatus
    assert status.status == Status.FAILED
    assert status.message.startswith("SendGrid rejected the API key (401 Unauthorized)")
    assert API_KEY not in status.message


def test_check_uses_the_eu_host_for_the_eu_region():
    with HttpMocker() as http:
        http.get(scopes_request("https://api.eu.sendgrid.com"), scopes_response())
        output = check(config(region="eu"))
    assert output.connection_status_messages[0].connectionStatus.status == Status.SUCCEEDED


def test_discover_lists_every_suppression_stream_with_keys_and_cursors():
    streams = {s.name: s for s in discover(SourceSendgrid(), config()).catalog.catalog.streams}
    assert streams["bounces"].source_defined_primary_key == [["email"]]
    assert streams["bounces"].default_cursor_field == ["created"]
    assert streams["suppression_group_members"].source_defined_primary_key == [["group_id"], ["email"]]
    assert streams["bounces"].json_schema["properties"]["created"]["format"] == "date-time"

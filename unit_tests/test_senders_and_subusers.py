"""Verified senders (keyset by lastSeenID), legacy sender identities and subusers (parent accounts only)."""

from airbyte_cdk.test.mock_http import HttpMocker

from unit_tests.builders import (
    api_request,
    config,
    error_response,
    json_response,
    records,
    run_read,
    scopes_request,
    scopes_response,
)


def sender(sender_id):
    return {"id": sender_id, "nickname": f"s{sender_id}", "from_email": f"s{sender_id}@example.com", "verified": True}


def test_given_a_full_page_of_verified_senders_when_read_then_the_next_page_starts_after_the_last_id():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        first = [sender(1000 + 3 * i) for i in range(100)]
        http.get(api_request("/v3/verified_senders", {"limit": 100}), json_response({"results": first}))
        http.get(api_request("/v3/verified_senders", {"limit": 100, "lastSeenID": 1297}),
                 json_response({"results": [sender(1400)]}))
        output = run_read(config(), "verified_senders")
    assert len(records(output)) == 101 and records(output)[-1]["id"] == 1400


def test_given_legacy_senders_when_read_then_epoch_times_become_rfc3339():
    legacy = {"id": 1, "nickname": "My Sender ID", "from": {"email": "from@example.com", "name": "Example INC"},
              "address": "123 Elm St.", "city": "Denver", "country": "United States", "verified": True,
              "created_at": 1449872165, "updated_at": 1449872165}
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/senders", {}), json_response({"result": [legacy]}))
        output = run_read(config(), "legacy_senders")
    emitted = records(output)[0]
    assert emitted["created_at"] == emitted["updated_at"] == "2015-12-11T22:16:05Z"
    assert emitted["from"] == {"email": "from@example.com", "name": "Example INC"}


def test_given_a_parent_account_when_subusers_are_read_then_pages_of_100_ask_for_the_region():
    def subuser(n):
        return {"id": n, "username": f"u{n}", "email": f"u{n}@example.com", "disabled": False, "region": "eu"}

    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/subusers", {"limit": 100, "offset": 0, "include_region": "true"}),
                 json_response([subuser(i) for i in range(100)]))
        http.get(api_request("/v3/subusers", {"limit": 100, "offset": 100, "include_region": "true"}),
                 json_response([subuser(100)]))
        output = run_read(config(), "subusers")
    assert len(records(output)) == 101 and records(output)[0]["region"] == "eu"


def test_given_an_account_that_is_not_a_parent_when_subusers_are_read_then_the_stream_is_skipped():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/subusers"), error_response(401, "authorization required"))
        output = run_read(config(), "subusers", expecting_exception=True)
    assert records(output) == []
    assert output.is_in_logs("Skipping stream subusers: SendGrid answered 401")
    # It was the only stream selected: a sync that read nothing fails rather than pass for an empty account.
    assert "None of the selected streams could be read" in output.errors[-1].trace.error.message

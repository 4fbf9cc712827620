"""The contacts export when what SendGrid (or whoever answers in its place) sends is hostile or broken: links to
places export files do not come from, rows that are not contacts, exports that hold fewer contacts than they
count, decompression bombs, malformed files, and records dated in the future."""

import gzip
import json

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse

from unit_tests.builders import BASE, config, json_response, records, run_read, scopes_request, scopes_response, state
from unit_tests.test_marketing import CSV_HEADER, FILE_URL, FILE_URL_2, binary, csv_row, export_file, mock_export, mock_fields

EXPORTS = f"{BASE}/v3/marketing/contacts/exports"
# Past the 16 MiB a line or item of an export file may hold once decompressed.
HUGE = 17 * 1024 * 1024
ADMIN_ANSWER = json.dumps({"id": "node-1", "email": "ops@corp.example", "token": "internal-secret"}).encode()


def requests_to(http, url_part):
    return [r for r in http._mocker.request_history if url_part in r.url]


def mock_jobs(http, jobs, files=()):
    """Export jobs started one after another; `jobs` are their ready bodies (without `id`), `files` the downloads."""
    http.post(HttpRequest(EXPORTS, body={"file_type": "csv"}),
              [json_response({"id": f"job-{n}"}, 202) for n in range(len(jobs))])
    for n, job in enumerate(jobs):
        http.get(HttpRequest(f"{EXPORTS}/job-{n}"), json_response({"id": f"job-{n}", "status": "ready", **job}))
    for url, payload in files:
        http.get(HttpRequest(url), payload if isinstance(payload, (HttpResponse, list)) else binary(payload))


def error_message(output):
    assert output.errors, "the sync did not fail"
    return output.errors[0].trace.error.message


# --- item 6: links --------------------------------------------------------------------------------

@pytest.mark.parametrize("link", [
    "http://127.0.0.1:8500/v1/agent/self",
    "https://127.0.0.1/admin",
    "https://localhost/admin",
    "https://127.1/admin",
    "https://2130706433/admin",
    "https://[::ffff:127.0.0.1]/admin",
    "https://169.254.169.254/latest/meta-data/iam",
    "https://10.1.2.3/internal",
    "https://100.64.0.1/internal",
    "http://sendgrid-exports.s3.amazonaws.com/contacts/part-0.csv.gz",
], ids=["http-loopback", "https-loopback", "localhost", "short-loopback", "decimal-loopback", "mapped-loopback",
        "link-local", "private", "shared-address-space", "plain-http-public"])
def test_given_a_download_link_to_an_internal_service_or_over_http_when_read_then_it_is_never_fetched_and_the_sync_fails(link):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [ADMIN_ANSWER], statuses=("ready",), urls=[link])
        output = run_read(config(), "contacts", expecting_exception=True)
        fetched = [r for r in http._mocker.request_history if r.method == "GET" and "/v3/" not in r.url]
    assert records(output) == [] and fetched == []
    message = error_message(output)
    assert "does not follow" in message and "https from public hosts only" in message
    assert "X-Amz" not in message and "internal-secret" not in message


def test_given_a_file_host_that_redirects_to_https_and_then_to_http_when_read_then_the_first_is_followed_and_the_second_refused():
    hop = "https://sendgrid-exports-2.s3.amazonaws.com/contacts/part-0.csv.gz?X-Amz-Signature=abc"
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [HttpResponse(body="", status_code=302, headers={"Location": hop})], statuses=("ready",))
        http.get(HttpRequest(hop), HttpResponse(body="", status_code=307, headers={"Location": metadata}))
        http.get(HttpRequest(metadata), binary(ADMIN_ANSWER))
        output = run_read(config(), "contacts", expecting_exception=True)
        followed, refused = requests_to(http, "sendgrid-exports-2"), requests_to(http, "169.254")
    assert len(followed) == 1 and refused == [] and records(output) == []
    assert "http://169.254.169.254 is plain http" in error_message(output)


# --- item 6: rows that are not contacts -----------------------------------------------------------

def test_given_rows_without_a_contact_id_or_an_email_when_read_then_they_are_rejected_counted_and_warned_about():
    no_id = csv_row(2).replace("id-2,", ",")
    no_email = csv_row(3).replace("c3@example.com", "")
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(csv_row(1), no_id, no_email, csv_row(4))], statuses=("ready",))
        output = run_read(config(), "contacts")
    assert [r["id"] for r in records(output)] == ["id-1", "id-4"] and not output.errors
    assert output.is_in_logs("rejected 2 of the 4 rows of file 1 of 1")


# --- item 6: exports that are not the whole account ---------------------------------------------

@pytest.mark.parametrize("job", [{}, {"urls": []}, {"urls": [], "contact_count": 3}], ids=["no-urls", "empty-urls", "counted"])
def test_given_an_export_ready_without_a_download_link_when_read_then_it_is_made_again_and_the_sync_fails(job):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_jobs(http, [job] * 3)
        output = run_read(config(), "contacts", expecting_exception=True)
        posts = [r for r in http._mocker.request_history if r.method == "POST"]
    assert len(posts) == 3 and records(output) == []
    assert "ready but gave no download link" in error_message(output)


def test_given_an_export_whose_files_hold_fewer_contacts_than_it_counts_when_read_then_a_new_export_gives_them_all():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_jobs(http, [{"urls": [FILE_URL], "contact_count": 3}, {"urls": [FILE_URL_2], "contact_count": 3}],
                  [(FILE_URL, export_file(csv_row(1), csv_row(2))), (FILE_URL_2, export_file(csv_row(1), csv_row(2), csv_row(3)))])
        output = run_read(config(), "contacts")
    assert {r["id"] for r in records(output)} == {"id-1", "id-2", "id-3"} and not output.errors
    assert output.is_in_logs("its files hold 2 of the 3 contacts it counts")


def test_given_exports_that_always_hold_fewer_contacts_than_they_count_when_read_then_the_sync_fails_after_three():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_jobs(http, [{"urls": [FILE_URL], "contact_count": 5}] * 3, [(FILE_URL, export_file(csv_row(1), csv_row(2)))])
        output = run_read(config(), "list_members", expecting_exception=True)
        posts = [r for r in http._mocker.request_history if r.method == "POST"]
    assert len(posts) == 3
    message = error_message(output)
    assert "could not be read whole after 3 exports: its files hold 2 of the 5 contacts it counts" in message


# --- item 7: unbounded records --------------------------------------------------------------------

def _bomb(kind):
    filler = "a" * HUGE
    if kind == "json-lines":
        return gzip.compress(json.dumps({"contact_id": "id-1", "email": "c1@example.com", "first_name": filler}).encode() + b"\n")
    if kind == "json-array":
        return gzip.compress(json.dumps([{"contact_id": "id-1", "email": "c1@example.com", "first_name": filler}]).encode())
    return export_file(csv_row(1), "," * HUGE + "\n")


@pytest.mark.parametrize("kind, where", [("json-lines", "line 1"), ("json-array", "item 1"), ("csv", "line 3")])
def test_given_a_small_gzip_file_that_expands_to_one_huge_line_when_read_then_no_huge_record_is_emitted_and_the_sync_fails_at_once(kind, where):
    bomb = _bomb(kind)
    assert len(bomb) < 100_000  # a small download...
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [bomb], statuses=("ready",))
        output = run_read(config(), "contacts", expecting_exception=True)
        downloads = requests_to(http, "amazonaws")
    assert all(len(r.get("first_name") or "") < 1000 for r in records(output))
    assert f"{where} is longer than 16 MiB" in error_message(output)
    assert len(downloads) == 1  # the same bytes would come again: not retried


# --- item 8: errors that will not go away ---------------------------------------------------------

@pytest.mark.parametrize("payload, problem", [
    (export_file(csv_row(1), "x,y,z\n", csv_row(3)), "row 2 has 3 columns, the header has 11"),
    (export_file(csv_row(1), csv_row(2).replace("\n", ",extra\n"), csv_row(3)), "row 2 has 12 columns, the header has 11"),
    (b'{"contact_id": "id-1", "email": "c1@example.com"}\n{"contact_id": \n{"contact_id": "id-3", "email": "c3@example.com"}\n',
     "line 2 is not JSON"),
    (b'{"contact_id": "id-1", "email": "c1@example.com"}\n[1, 2]\n', "line 2 is a JSON list, not an object"),
    (gzip.compress(b'[{"contact_id": "id-1", "email": "c1@example.com"}, 7]'), "item 2 is a JSON int, not an object"),
    (b'{"contact_id": "id-1", "email": "c1@example.com", "list_ids": 5}\n', "line 1 has a value of the wrong type"),
    (gzip.compress(CSV_HEADER.encode() + b"\xff\xfe broken\n"), "it is not UTF-8 text"),
], ids=["short-row", "long-row", "bad-json-line", "json-line-not-object", "json-item-not-object",
                              "json-value-of-the-wrong-type", "not-utf8"])
def test_given_a_malformed_export_file_when_read_then_it_is_downloaded_once_and_the_error_says_what_is_wrong(payload, problem):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [payload], statuses=("ready",))
        output = run_read(config(), "contacts", expecting_exception=True)
        downloads = requests_to(http, "amazonaws")
    message = error_message(output)
    assert len(downloads) == 1, message
    assert f"file 1 of 1 of contacts export" in message and problem in message, message
    assert "Traceback" not in message


# --- item 3: records dated in the future ----------------------------------------------------------

@pytest.fixture
def sync_starts_at(monkeypatch):
    from datetime import datetime, timezone

    moment = datetime(2024, 3, 1, 0, 0, 1, tzinfo=timezone.utc)
    # raising=False: 0.2.2 has no clock here (its tests must fail on their assertions, not on this line).
    monkeypatch.setattr("source_sendgrid.streams.contacts_export.utc_now", lambda: moment, raising=False)
    return "2024-03-01T00:00:01Z"


def test_given_a_contact_dated_in_the_future_when_read_incrementally_then_it_is_emitted_and_the_state_stops_at_the_sync_start(sync_starts_at):
    rows = [csv_row(1, updated="2024-02-20T00:00:00Z"), csv_row(2, updated="2099-01-01T00:00:00Z")]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(*rows)], statuses=("ready",))
        output = run_read(config(), "contacts", SyncMode.incremental)
    assert [r["id"] for r in records(output)] == ["id-1", "id-2"] and not output.errors
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [{"updated_at": sync_starts_at}]
    assert output.is_in_logs(r"1 record\(s\) are dated after this sync started")


def test_given_a_state_in_the_future_when_read_incrementally_then_nothing_is_emitted_the_state_stays_and_a_warning_says_to_reset(sync_starts_at):
    # As every incremental stream (and Airbyte's abnormally-large-state check): nothing newer exists yet.
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(csv_row(1, updated="2024-02-20T00:00:00Z"))], statuses=("ready",))
        output = run_read(config(), "contacts", SyncMode.incremental, state("contacts", {"updated_at": "2099-01-01T00:00:00Z"}))
    assert records(output) == [] and not output.errors
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages][-1] == {"updated_at": "2099-01-01T00:00:00Z"}
    assert output.is_in_logs("is in the future")

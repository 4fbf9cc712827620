"""Templates of both generations, every page, and each template's versions from its detail."""

from airbyte_cdk.test.mock_http import HttpMocker

from unit_tests.builders import (
    api_request,
    config,
    ended_with_nothing_readable,
    error_response,
    json_response,
    records,
    run_read,
    scopes_request,
    scopes_response,
)

T1 = "0c314114-a2b7-4523-8cbc-a293d7d19007"
T2 = "fae7c985-eb92-4b47-9987-28ec29dbc698"


def template(template_id, generation="dynamic", updated_at="2021-04-28 13:12:46", versions=()):
    return {"id": template_id, "name": f"n-{template_id[:4]}", "generation": generation, "updated_at": updated_at,
            "versions": list(versions)}


def version(version_id, template_id, updated_at="2019-03-13 18:56:33"):
    return {"id": version_id, "template_id": template_id, "active": 1, "name": "v", "subject": "s",
            "html_content": "<p>x</p>", "plain_content": "x", "generate_plain_content": True, "editor": "code",
            "updated_at": updated_at}


def list_page(token=None):
    query = {"generations": "legacy,dynamic", "page_size": 200, **({"page_token": token} if token else {})}
    return api_request("/v3/templates", query)


def test_given_two_pages_of_both_generations_when_read_then_every_page_is_read_with_times_in_rfc3339():
    next_url = "https://api.sendgrid.com/v3/templates?generations=legacy%2Cdynamic&page_size=200&page_token=pt2"
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(list_page(), json_response({"result": [template(T1, "legacy", versions=[version("v1", T1)])],
                                             "_metadata": {"self": "x", "next": next_url, "count": 2}}))
        http.get(list_page("pt2"), json_response({"result": [template(T2)], "_metadata": {"self": "y", "count": 2}}))
        output = run_read(config(), "templates")
    emitted = records(output)
    assert [(r["id"], r["generation"]) for r in emitted] == [(T1, "legacy"), (T2, "dynamic")]
    assert emitted[0]["updated_at"] == "2021-04-28T13:12:46Z"
    assert emitted[0]["versions"][0]["updated_at"] == "2019-03-13T18:56:33Z"


def test_given_templates_when_versions_are_read_then_each_detail_is_read_and_a_deleted_one_is_skipped():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(list_page(), json_response({"result": [template(T1), template(T2)], "_metadata": {"self": "x"}}))
        http.get(api_request(f"/v3/templates/{T1}", {}), error_response(404, "Resource not found"))
        http.get(api_request(f"/v3/templates/{T2}", {}),
                 json_response(template(T2, versions=[version("v2", T2), version("v3", T2, "2020-01-02 03:04:05")])))
        output = run_read(config(), "template_versions")
    emitted = records(output)
    assert [(r["template_id"], r["id"]) for r in emitted] == [(T2, "v2"), (T2, "v3")]
    assert emitted[1]["updated_at"] == "2020-01-02T03:04:05Z" and emitted[1]["html_content"] == "<p>x</p>"
    assert not output.errors


def test_given_a_key_without_the_versions_scope_when_read_then_template_versions_is_skipped_naming_it():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["templates.read"]))
        output = run_read(config(), "template_versions", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream template_versions: the API key lacks the scope templates.versions.read")


def test_given_the_eu_region_when_templates_are_read_then_the_eu_host_is_used():
    eu = "https://api.eu.sendgrid.com"
    with HttpMocker() as http:
        http.get(scopes_request(eu), scopes_response())
        http.get(api_request("/v3/templates", {"generations": "legacy,dynamic", "page_size": 200}, base=eu),
                 json_response({"result": [template(T1)], "_metadata": {"self": "x"}}))
        output = run_read(config(region="eu"), "templates")
    assert [r["id"] for r in records(output)] == [T1]

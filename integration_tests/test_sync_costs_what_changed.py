"""An incremental sync costs what changed: per-template and per-single-send detail calls are made only for
what the lists say changed since the state, counted in the emulator's request log."""

from __future__ import annotations

import re
import time

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, latest_states, read_in_process, records_of

STREAMS = ["templates", "template_versions", "singlesends"]
TEMPLATE_DETAIL = re.compile(r"^/v3/templates/[^/]+$")
SINGLESEND_DETAIL = re.compile(r"^/v3/marketing/singlesends/[^/]+$")


@pytest.fixture
def account():
    with Emulator(size=60, seed=23, counts={"templates": 30, "singlesends": 12}, families=["templates", "marketing"]) as running:
        yield running


def detail_calls(emulator: Emulator, since: int, pattern: re.Pattern) -> list:
    return [entry["path"] for entry in list(emulator.requests_log)[since:] if pattern.match(entry["path"])]


def sync(emulator: Emulator, config: dict, catalog: dict, state=None):
    since = len(emulator.requests_log)
    output = read_in_process(config, catalog, state=state)
    assert not output.errors, [e.trace.error.message for e in output.errors]
    return output, since


def test_an_incremental_sync_asks_for_the_detail_of_only_the_templates_that_changed_and_a_full_refresh_for_all(account):
    config = config_for(account)
    catalog = catalog_for(config, STREAMS)
    templates = account.truth()["templates"]

    first, since = sync(account, config, catalog)
    assert len(detail_calls(account, since, TEMPLATE_DETAIL)) == len(templates) == 30
    assert len(records_of(first)["template_versions"]) == len(account.truth()["template_versions"])

    nothing_new, since = sync(account, config, catalog, latest_states(first))
    assert detail_calls(account, since, TEMPLATE_DETAIL) == []
    assert detail_calls(account, since, SINGLESEND_DETAIL) == []
    assert records_of(nothing_new).get("template_versions", []) == []

    touched = account.mutate("templates", "touch", count=1)["touched"]
    with account.account.lock:  # another template: only one of its versions changed, the template's own time not
        edited = account.account.data["templates"][5]
        edited["versions"][0]["updated_at"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    changed, since = sync(account, config, catalog, latest_states(nothing_new))
    assert sorted(detail_calls(account, since, TEMPLATE_DETAIL)) == sorted(f"/v3/templates/{t}" for t in touched + [edited["id"]])
    emitted = records_of(changed)["template_versions"]
    assert {r["template_id"] for r in emitted} == set(touched) | {edited["id"]}
    assert len(emitted) == sum(len(t["versions"]) for t in templates if t["id"] in set(touched) | {edited["id"]})

    after, since = sync(account, config, catalog, latest_states(changed))
    assert detail_calls(account, since, TEMPLATE_DETAIL) == []

    # A full refresh still asks for every template.
    _, since = sync(account, config, catalog_for(config, ["template_versions"], mode="full_refresh"))
    assert len(detail_calls(account, since, TEMPLATE_DETAIL)) == 30

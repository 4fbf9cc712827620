"""Data that changes while a sync reads it (the emulator's `on_request` hook mutates between pages).

What each stream guarantees (README, "Reliability"):
- suppression lists: a record that exists for the whole sync is emitted, even when records already read are
  deleted between pages (the pages are anchored on `created`, not on a bare offset that a deletion shifts);
  a record created during the sync is newer than the sync's last window and comes with the next incremental
  sync; a deleted one is gone only after a full refresh.
- one-request streams (suppression_groups, suppression_group_members): a consistent snapshot per request.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Mapping

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, key_of, latest_states, read_in_process, records_of, union_of

LISTS = ["bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions"]


def keys(records: List[Mapping[str, Any]], primary_key: List[str]) -> set:
    return {key_of(r, primary_key) for r in records}


def test_deleting_records_already_read_between_pages_loses_no_record_that_still_exists():
    with Emulator(size=1300, seed=31, families=["suppressions"]) as emulator:
        before = emulator.truth()
        triggered = set()

        def delete_newest_after_the_first_page(request) -> None:
            # Before the second page of each list is answered, delete 7 of the records its first page held.
            if request.path.startswith("/v3/suppression/") and request.path not in triggered and seen.get(request.path):
                triggered.add(request.path)
                emulator.mutate("suppressions", "remove_newest", count=7)
            seen[request.path] = seen.get(request.path, 0) + 1

        seen: Dict[str, int] = {}
        emulator.on_request = delete_newest_after_the_first_page
        config = config_for(emulator, start_date="2022-12-01T00:00:00Z", window_days=3650)
        output = read_in_process(config, catalog_for(config, LISTS, mode="full_refresh"))
        emulator.on_request = None
        after = emulator.truth()
    assert not output.errors
    assert len(triggered) == len(LISTS), "the hook never deleted anything: the test proves nothing"
    emitted = records_of(output)
    for stream in LISTS:
        got = keys(emitted.get(stream, []), ["email"])
        still_there = keys(after[stream], ["email"])
        assert len(still_there) < len(before[stream])
        missed = still_there - got
        assert not missed, f"{stream}: {len(missed)} records that existed for the whole sync were not emitted"
        assert got <= keys(before[stream], ["email"])


def test_records_created_during_a_sync_come_with_the_next_incremental_sync():
    families = [f for f in os.environ.get("RELIABILITY_FAMILIES", "").split(",") if f] or None
    with Emulator(size=200, seed=32, families=families) as emulator:
        truth = emulator.truth()
        config = config_for(emulator, start_date="2022-12-01T00:00:00Z", window_days=365)
        catalog = catalog_for(config)
        catalog = {"streams": [c for c in catalog["streams"] if c["stream"]["name"] in truth]}
        pks = {c["stream"]["name"]: [p[0] for p in c["stream"]["source_defined_primary_key"] or []] for c in catalog["streams"]}
        added = []

        def add_midway(request) -> None:
            if emulator.api_requests in (5, 25, 60):
                for family in emulator.families:
                    try:
                        emulator.mutate(family, "add", count=3)
                        added.append(family)
                    except (ValueError, KeyError):
                        pass

        emulator.on_request = add_midway
        first = read_in_process(config, catalog)
        emulator.on_request = None
        assert not first.errors, [e.trace.error.message for e in first.errors]
        assert added, "nothing was added during the sync"
        time.sleep(1.1)
        second = read_in_process(config, catalog, state=latest_states(first))
        assert not second.errors, [e.trace.error.message for e in second.errors]
        after = emulator.truth()
    union = union_of(records_of(first), records_of(second))
    for stream, primary_key in pks.items():
        if not primary_key:
            continue
        missing = keys(after[stream], primary_key) - keys(union.get(stream, []), primary_key)
        assert not missing, f"{stream}: {len(missing)} records created during the first sync never arrived"


# --- the pager on its own ---------------------------------------------------------------------

def _response(query: str):
    import requests

    response = requests.Response()
    response.request = requests.Request("GET", f"https://api.sendgrid.com/v3/suppression/bounces?{query}").prepare()
    return response


def test_the_newest_first_pager_anchors_each_next_page_on_the_oldest_second_read():
    from source_sendgrid.pagination import NewestFirstTimePager

    pager = NewestFirstTimePager(limit=4)
    page = [{"created": t} for t in (90, 80, 70, 70)]
    assert pager.next_page(_response("limit=4&offset=0&start_time=0&end_time=100"), page, page) == \
        {"limit": 4, "offset": 2, "end_time": 70}
    same_second = [{"created": 70}] * 4
    assert pager.next_page(_response("limit=4&offset=2&start_time=0&end_time=70"), same_second, same_second) == \
        {"limit": 4, "offset": 6, "end_time": 70}
    # Not newest first: plain offsets, as before, so nothing is skipped either.
    unsorted = [{"created": t} for t in (10, 80, 70, 60)]
    assert pager.next_page(_response("limit=4&offset=4&start_time=0&end_time=100"), unsorted, unsorted) == \
        {"limit": 4, "offset": 8, "end_time": "100"}
    assert pager.next_page(_response("limit=4&offset=0&end_time=100"), page[:3], page[:3]) is None

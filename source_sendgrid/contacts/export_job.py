"""The contacts export job: create it, poll it until its files are ready, and share it within a sync.

Kept apart from the streams because one ready export serves several of them (contacts, list_members,
segment_members) and, in a read spread over worker processes, every process: the slot that holds it
(`_SyncExport`), keyed by the sync, lives here with the job it holds. `GET /v3/marketing/contacts` is a
50-contact sample, so the export job is the only complete source: `POST /v3/marketing/contacts/exports`,
then `GET .../exports/{id}` until `ready`, which gives the download links (read by `download.py`).
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing import sharedctypes
from typing import Any, Callable, Dict, Optional, Tuple

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..errors import response_body
from ..shared_lock import Claim

EXPORT_PATH = "/v3/marketing/contacts/exports"
FAILED_STATUSES = frozenset({"failure", "failed"})
# A job is created again after a failure or an expired link, at most this many times in all.
MAX_EXPORT_ATTEMPTS = 3
# Polling waits grow from the first to the largest wait; a job still pending after the total gives up.
POLL_FIRST_WAIT = 1.0
POLL_MAX_WAIT = 30.0
POLL_TOTAL_WAIT = 3 * 3600.0
# Room for the ready export's id and download links when worker processes share it (thousands of links).
SHARED_EXPORT_BYTES = 4 * 1024 * 1024


class ExportFailed(Exception):
    """SendGrid ended the job in a failure state."""


@dataclass(frozen=True)
class ReadyExport:
    id: str
    urls: Tuple[str, ...]
    contact_count: Optional[int] = None  # as the job states it; None when it does not


def failure(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=f"Contacts export: {message}.", failure_type=FailureType.system_error)


def start_and_wait(api: Callable[..., requests.Response],
                   unreadable: Callable[[requests.Response], None]) -> Optional[ReadyExport]:
    """Start an export job and poll it until its files are ready. None when SendGrid refused to start it
    (`unreadable` is told why); ExportFailed when the job failed, so that a new one can be started."""
    response = api("POST", EXPORT_PATH, json={"file_type": "csv"})
    if response.status_code >= 400:
        unreadable(response)
        return None
    job_id = (response_body(response) or {}).get("id")
    if not job_id:
        raise failure("SendGrid accepted the contacts export but sent no job id")
    waited, wait = 0.0, POLL_FIRST_WAIT
    while True:
        time.sleep(wait)
        waited += wait
        job = response_body(api("GET", f"{EXPORT_PATH}/{job_id}")) or {}
        status = str(job.get("status") or "").lower()
        if status == "ready":
            urls, count = job.get("urls"), job.get("contact_count")
            # The spec: `urls` holds "one or more download URLs" once ready. None is not an empty account.
            if not isinstance(urls, list) or not urls or not all(isinstance(url, str) for url in urls):
                raise ExportFailed(f"contacts export {job_id} is ready but gave no download link")
            return ReadyExport(id=job_id, urls=tuple(urls),
                               contact_count=count if isinstance(count, int) and not isinstance(count, bool) else None)
        if status in FAILED_STATUSES:
            raise ExportFailed(f"contacts export {job_id} ended with status {status!r}: {job.get('message') or 'no message'}")
        if waited >= POLL_TOTAL_WAIT:
            raise failure(f"contacts export {job_id} was still {status!r} after {int(waited)} seconds")
        wait = min(POLL_MAX_WAIT, wait * 1.5)


class _SyncExport:
    """The ready unfiltered export of one sync. Its `lock` is a claim on creating the export: streams read
    concurrently wait for the one creating it instead of starting their own, and take the job over if that
    one's process dies. Shared with worker processes, the claim is theirs too and the export is kept in shared
    memory, so one job serves the whole sync there as well."""

    def __init__(self, owner: Any):
        self.owner = weakref.ref(owner)
        self.lock = Claim("contacts export")
        self._export: Optional[ReadyExport] = None
        self._shared: Optional[Any] = None  # a ctypes char array: 8 bytes of length, then the export as JSON

    def share_with_processes(self, context: Any) -> None:
        self.lock.share_with_processes()
        self._shared = sharedctypes.RawArray(ctypes.c_char, SHARED_EXPORT_BYTES)  # pages are touched only when used

    @property
    def export(self) -> Optional[ReadyExport]:
        if self._shared is None:
            return self._export
        size = int.from_bytes(self._shared[:8], "little")
        if not size:
            return self._export
        found = orjson.loads(self._shared[8:8 + size])
        return ReadyExport(id=found["id"], urls=tuple(found["urls"]), contact_count=found.get("contact_count"))

    @export.setter
    def export(self, export: Optional[ReadyExport]) -> None:
        self._export = export
        if self._shared is None:
            return
        body = orjson.dumps({"id": export.id, "urls": export.urls, "contact_count": export.contact_count}) \
            if export is not None else b""
        if len(body) + 8 > len(self._shared):
            body = b""  # too many files to share: this process keeps it, others make their own
        # The length last: a process killed while writing leaves no export, never half of one.
        self._shared[:8] = bytes(8)
        self._shared[8:8 + len(body)] = body
        self._shared[:8] = len(body).to_bytes(8, "little")


# Keyed by the id of the sync's RequestStats (one per read, shared by all its streams); the weak reference
# tells a live sync from a finished one whose id was reused.
_sync_exports: Dict[int, _SyncExport] = {}
_sync_exports_lock = threading.Lock()


def _sync_export_of(stats: Any) -> _SyncExport:
    with _sync_exports_lock:
        for key, holder in list(_sync_exports.items()):
            if holder.owner() is None:
                del _sync_exports[key]
        holder = _sync_exports.get(id(stats))
        if holder is None or holder.owner() is not stats:
            holder = _sync_exports[id(stats)] = _SyncExport(stats)
        return holder


def share_sync_export_with_processes(stats: Any, context: Any) -> None:
    """Before worker processes fork: the streams of the sync (of `stats`) in every process share one export."""
    _sync_export_of(stats).share_with_processes(context)


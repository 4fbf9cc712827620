"""The locks worker processes share, with real forked processes: one is SIGKILLed while it holds a lock (as
the out-of-memory killer may kill a worker at any instruction), and another must still get through within
seconds. A process that does not finish within BOUND_SECONDS is killed and fails the test, so a lock left
held forever fails here instead of hanging the suite."""

from __future__ import annotations

import os
import signal
import time
from typing import Callable, Optional

from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction

from source_sendgrid.budget import RateBudget, RequestStats
from source_sendgrid.parallel import fork_context
from source_sendgrid.contacts.export_job import ReadyExport, _sync_export_of, share_sync_export_with_processes

BOUND_SECONDS = 10.0
context = fork_context()


def exit_code_of(target: Callable[[], None]) -> Optional[int]:
    """Run `target` in a forked process: its exit code (negative: the signal), or None if it was still
    running after BOUND_SECONDS (then it is killed)."""
    process = context.Process(target=target, daemon=True)
    process.start()
    process.join(BOUND_SECONDS)
    if process.exitcode is None:
        process.kill()
        process.join()
        return None
    return process.exitcode


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def a_budget_that_can_die_in_its_lock() -> tuple:
    """A shared RateBudget whose clock, read inside the budget's lock, kills the process once `dying` is set."""
    dying = []

    def clock() -> float:
        if dying:
            die()
        return time.time()

    budget = RateBudget(clock=clock)
    budget.share_with_processes(context)
    return budget, dying


def test_a_worker_killed_inside_the_rate_budget_lock_does_not_stop_the_other_workers():
    budget, dying = a_budget_that_can_die_in_its_lock()

    def die_inside_the_lock() -> None:
        dying.append(True)
        budget.acquire_call(None)

    def send_a_request() -> None:
        budget.acquire_call(None)
        budget.update_from_response(None, None)

    assert exit_code_of(die_inside_the_lock) == -signal.SIGKILL
    assert exit_code_of(send_a_request) == 0, "the budget's lock stayed held by the killed worker"
    assert exit_code_of(send_a_request) == 0


def test_a_worker_killed_inside_the_request_counts_lock_does_not_stop_the_other_workers():
    stats = RequestStats()
    stats.share_with_processes(context)

    def die_inside_the_lock() -> None:
        with stats._lock:  # the lock `count` takes
            die()

    def count_a_request() -> None:
        stats.count(ResponseAction.SUCCESS)

    assert exit_code_of(die_inside_the_lock) == -signal.SIGKILL
    assert exit_code_of(count_a_request) == 0, "the counts' lock stayed held by the killed worker"
    assert stats.requests == 1


def test_a_worker_killed_while_it_creates_the_shared_export_leaves_the_job_to_the_next_stream():
    stats = RequestStats()
    stats.share_with_processes(context)
    share_sync_export_with_processes(stats, context)
    shared = _sync_export_of(stats)

    def die_creating_the_export() -> None:
        with shared.lock:
            die()

    def create_the_export() -> None:
        with shared.lock:
            if shared.export is None:
                shared.export = ReadyExport(id="job-2", urls=("https://example.invalid/1",))

    assert exit_code_of(die_creating_the_export) == -signal.SIGKILL
    assert exit_code_of(create_the_export) == 0, "the export stayed claimed by the killed worker"
    assert shared.export == ReadyExport(id="job-2", urls=("https://example.invalid/1",))


def test_a_lock_a_live_worker_keeps_too_long_fails_the_waiting_request_clearly_instead_of_hanging(monkeypatch):
    monkeypatch.setattr("source_sendgrid.shared_lock.HOLD_LIMIT_SECONDS", 0.5)
    budget, _ = a_budget_that_can_die_in_its_lock()
    holder_in, holder_out = context.Pipe()

    def hold_the_lock() -> None:
        with budget._lock:  # the lock acquire_call takes
            holder_out.send("holding")
            holder_out.recv()  # until the test is over

    def send_a_request() -> None:
        try:
            budget.acquire_call(None)
        except Exception as error:  # what the stream that waited fails with
            message = getattr(error, "message", "") or ""
            os._exit(3 if "not free within 0.5 seconds" in message and "bug in the connector" in message else 4)

    holder = context.Process(target=hold_the_lock, daemon=True)
    holder.start()
    try:
        assert holder_in.poll(BOUND_SECONDS) and holder_in.recv() == "holding"
        assert exit_code_of(send_a_request) == 3
    finally:
        holder.kill()
        holder.join()

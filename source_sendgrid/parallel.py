"""Reading independent streams at the same time.

`read_concurrently` does what `AbstractSource.read` does for each configured stream (STARTED, RUNNING,
COMPLETE or INCOMPLETE status messages, an error trace for a failed stream, the other streams going on, one
final error naming every failed stream), but reads up to `workers` streams at once and merges their
messages into one sequence. Each stream is read by one worker from start to end, so its records and state
messages keep their order; messages of different streams interleave, which the Airbyte protocol allows
(every state message is per stream).

Workers are threads, or, when the command line writes the output (`SerializedLines`) and the platform can
fork, processes: records are parsed, fitted and serialised in the worker that read them, on every core,
instead of taking turns for one interpreter. Against SendGrid most of a page's time is spent waiting for
the network, which either kind overlaps. The rate-limit budget and request counts every stream shares
(budget.RequestStats) are moved to shared memory before the processes fork, so they stay one budget; their
locks are ones a worker killed while holding them cannot keep (shared_lock). A worker that dies fails only
the stream it was reading.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Union

from airbyte_cdk.exception_handler import generate_failed_streams_error_message
from airbyte_cdk.logger import AirbyteLogFormatter
from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteStreamStatus,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    FailureType,
    StreamDescriptor,
)
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.utils.schema_helpers import InternalConfig, split_config
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as status_message
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import cdk_seam, shared_lock
from .output import RecordLineBatch, SerializedLines

# Messages handed from a worker to the merging thread at once (fewer hand-offs, same order).
BATCH_SIZE = 500
# Batches waiting to be written, per worker thread: bounds memory when the destination reads slowly.
QUEUED_BATCHES_PER_WORKER = 4
_FINISHED = object()
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# How often the main process looks whether the workers it waits for are still there.
_LIVENESS_SECONDS = 1.0
# How long a worker that is told to stop, or has died, may take to be reaped before it is killed.
_STOP_SECONDS = 5.0

Failures = Dict[str, AirbyteTracedException]
ReadOne = Callable[[ConfiguredAirbyteStream, Failures], Iterator[AirbyteMessage]]


def can_read_in_processes() -> bool:
    # Linux (the image, and most hosts): fork is safe after the imports, and a worker can ask to die with
    # its parent. macOS and Windows read in threads.
    # The locks the workers share must be ones a killed worker cannot keep (shared_lock).
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and shared_lock.available())


def fork_context() -> Any:
    return multiprocessing.get_context("fork")


def read_concurrently(
    source: AbstractSource,
    logger: logging.Logger,
    config: Mapping[str, Any],
    catalog: ConfiguredAirbyteCatalog,
    state: Optional[List[AirbyteStateMessage]],
    workers: int,
    in_processes: bool = False,
) -> Iterator[Union[AirbyteMessage, SerializedLines]]:
    """`in_processes`: workers are forked processes that yield their records as SerializedLines; the
    caller must have shared what the streams share (`share_with_processes`) before."""
    logger.info(f"Starting syncing {source.name}, {workers} streams at a time")
    config, internal_config = split_config(config)
    instances = {stream.name: stream for stream in source.streams(config)}
    cdk_seam.set_stream_instances(source, instances)  # what AbstractSource.read sets, for error messages

    # Streams that wait for the server before their first record (an export job) start first, so the
    # wait overlaps the other streams; otherwise the catalog's order.
    configured = sorted(catalog.streams, key=lambda c: not getattr(instances.get(c.stream.name), "slow_start", False))
    workers = max(1, min(workers, len(configured)))
    read_one: ReadOne = functools.partial(_read_one, source, logger, instances, state, internal_config)
    failures: Failures = {}
    crashes: List[str] = []
    if in_processes:
        yield from _run_in_processes(source, logger, configured, read_one, workers, failures, crashes)
    else:
        yield from _run_in_threads(source, configured, read_one, workers, failures, crashes)
    yield from cdk_seam.queued_messages(source)
    if crashes:
        raise RuntimeError(f"A stream reader crashed: {crashes[0]}")
    if failures:
        message = generate_failed_streams_error_message({name: [error] for name, error in failures.items()})
        logger.info(message)
        # As AbstractSource.read: a non-zero exit; the streams' own errors were emitted already.
        raise AirbyteTracedException(message=message, failure_type=FailureType.config_error)
    logger.info(f"Finished syncing {source.name}")


def _run_in_threads(
    source: AbstractSource, configured: List[ConfiguredAirbyteStream], read_one: ReadOne, workers: int,
    failures: Failures, crashes: List[str],
) -> Iterator[AirbyteMessage]:
    pending: "queue.SimpleQueue[ConfiguredAirbyteStream]" = queue.SimpleQueue()
    for item in configured:
        pending.put(item)
    out: "queue.Queue[Any]" = queue.Queue(maxsize=workers * QUEUED_BATCHES_PER_WORKER)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    configured_stream = pending.get_nowait()
                except queue.Empty:
                    return
                batch: List[AirbyteMessage] = []
                for message in read_one(configured_stream, failures):
                    batch.append(message)
                    if len(batch) >= BATCH_SIZE or isinstance(message, SerializedLines) or message.type != MessageType.RECORD:
                        if not hand_over(batch):
                            return
                        batch = []
                if batch and not hand_over(batch):
                    return
        except BaseException:  # a bug outside any stream's own error handling
            crashes.append(traceback.format_exc())
        finally:
            hand_over(_FINISHED)

    threads = [threading.Thread(target=work, name=f"sendgrid-read-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        finished = 0
        while finished < workers:
            batch = out.get()
            if batch is _FINISHED:
                finished += 1
                continue
            yield from batch
            yield from cdk_seam.queued_messages(source)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def _run_in_processes(
    source: AbstractSource, logger: logging.Logger, configured: List[ConfiguredAirbyteStream], read_one: ReadOne,
    workers: int, failures: Failures, crashes: List[str],
) -> Iterator[Union[AirbyteMessage, SerializedLines]]:
    """The parent hands each worker one stream at a time and passes on what the workers send, as it comes.

    A worker that dies (killed, out of memory) fails the stream it was reading, with an error that says
    how it died; the streams not started yet go to the other workers, or to a worker started in its place.
    Every wait here is bounded, and every worker is reaped (killed if it must be) before this returns."""
    context = fork_context()
    pending = deque(configured)
    processes: Dict[Connection, Any] = {}
    busy = set()  # workers not yet told to stop
    reading: Dict[Connection, ConfiguredAirbyteStream] = {}  # the stream each worker reads, until it ends
    # Each replacement reads at least one stream, unless workers keep dying before they get one.
    most_workers = workers + len(configured)

    def start_worker() -> None:
        sys.stdout.flush()  # a child must not inherit, and write again, output the parent has buffered
        ours, theirs = context.Pipe()
        # The child closes its copies of the parent's ends, so that it sees the parent go.
        parent_ends = [*processes, ours]
        process = context.Process(target=_serve, args=(theirs, parent_ends, os.getpid(), source, read_one),
                                  name=f"sendgrid-read-{len(processes)}", daemon=True)
        process.start()
        theirs.close()
        processes[ours] = process
        busy.add(ours)
        hand_next(ours)

    def hand_next(connection: Connection) -> None:
        next_stream = pending.popleft() if pending else None
        try:
            connection.send(next_stream)
        except OSError:  # the worker died: its end of the pipe tells, next
            if next_stream is not None:
                pending.appendleft(next_stream)
            return
        if next_stream is None:
            busy.discard(connection)
        else:
            reading[connection] = next_stream
            logger.info(f"Stream {next_stream.stream.name}: read by worker process {processes[connection].pid}")

    def bury(connection: Connection, how: Optional[str] = None) -> Iterator[AirbyteMessage]:
        """A worker that is gone: its stream fails, and a new worker takes its place if streams wait."""
        busy.discard(connection)
        process = processes[connection]
        process.join(_STOP_SECONDS)  # gone or going: reap it
        if process.exitcode is None:
            process.kill()
            process.join(_STOP_SECONDS)
        how = how or _how_it_ended(process.exitcode)
        stream = reading.pop(connection, None)
        if stream is None:
            logger.warning(f"Worker process {process.pid} {how} between two streams; no stream lost anything.")
        else:
            yield from _failed_by_dead_worker(stream, f"the worker process reading it (pid {process.pid}) {how}", failures)
        if pending and len(processes) < most_workers:
            start_worker()

    try:
        for _ in range(workers):
            start_worker()
        while busy:
            ready = wait(list(busy), timeout=_LIVENESS_SECONDS)
            if not ready:  # a worker that died with its pipe still open elsewhere is found here
                for connection in list(busy):
                    if not processes[connection].is_alive() and not connection.poll():
                        yield from bury(connection)
                continue
            for connection in ready:
                try:
                    kind, payload = connection.recv()
                except (EOFError, OSError):  # the worker died without a word (killed, out of memory)
                    yield from bury(connection)
                    continue
                if kind == "output":
                    if _ends_stream(payload):
                        reading.pop(connection, None)
                    yield payload
                elif kind == "done":  # payload: (stream, its failure), or None
                    if payload is not None:
                        failures[payload[0]] = payload[1]
                    reading.pop(connection, None)
                    hand_next(connection)
                else:  # "crash": payload is the traceback
                    crashes.append(payload)
                    yield from bury(connection, "stopped on an unexpected error (its traceback ends the sync's output)")
        for never_started in pending:  # only when worker after worker died before it got a stream
            yield from _failed_by_dead_worker(never_started, "no worker process lived to read it", failures)
    finally:
        for connection, process in processes.items():
            connection.close()  # a worker still sending stops at its next message
            if connection in busy and process.is_alive():
                process.terminate()
        for process in processes.values():
            process.join(_STOP_SECONDS)
            if process.exitcode is None:
                process.kill()
                process.join(_STOP_SECONDS)


def _ends_stream(message: Any) -> bool:
    return (isinstance(message, AirbyteMessage) and message.type == MessageType.TRACE and message.trace is not None
            and message.trace.stream_status is not None
            and message.trace.stream_status.status in (AirbyteStreamStatus.COMPLETE, AirbyteStreamStatus.INCOMPLETE))


def _how_it_ended(exitcode: Optional[int]) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown"
        return (f"was killed by signal {-exitcode} ({name}), as the out-of-memory killer or an operator does; "
                "if memory ran out, lower `concurrency` or give the connector more memory")
    return f"exited unexpectedly (exit code {exitcode})"


def _failed_by_dead_worker(stream: ConfiguredAirbyteStream, why: str, failures: Failures) -> Iterator[AirbyteMessage]:
    name = stream.stream.name
    error = AirbyteTracedException(
        message=(f"Stream {name} was not read to its end: {why}. The other streams went on. What the stream "
                 "emitted up to its last state message is complete, and the next sync resumes from that state."),
        internal_message=f"stream {name}: {why}",
        failure_type=FailureType.system_error,
    )
    yield status_message(stream.stream, AirbyteStreamStatus.INCOMPLETE)
    yield error.as_sanitized_airbyte_message(stream_descriptor=StreamDescriptor(name=name))
    failures[name] = error


class _ToParent:
    """The worker's stdout, stderr and log stream: text goes to the parent, in order with the records."""

    def __init__(self, connection: Connection):
        self._connection = connection

    def write(self, text: str) -> int:
        if text.strip():
            self._connection.send(("output", SerializedLines(text.rstrip("\n"))))
        return len(text)

    def flush(self) -> None:
        pass


def _serve(connection: Connection, parent_ends: List[Connection], parent: int, source: AbstractSource, read_one: ReadOne) -> None:
    """A worker process: reads the streams the parent sends until it sends None, and dies with the parent."""
    _die_with(parent)
    for end in parent_ends:
        end.close()
    to_parent = _ToParent(connection)
    sys.stdout = sys.stderr = to_parent  # type: ignore[assignment]
    # The parent's log handlers write to its buffers: here, log lines go to the parent, as the CDK formats them.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(to_parent)  # type: ignore[arg-type]
    handler.setFormatter(AirbyteLogFormatter())
    root.addHandler(handler)

    def send(item: Any) -> None:
        connection.send(("output", item))

    def send_queued() -> None:
        for queued in cdk_seam.queued_messages(source):
            send(queued)

    try:
        while (configured_stream := connection.recv()) is not None:
            failures: Failures = {}
            records = RecordLineBatch()
            for message in read_one(configured_stream, failures):
                # A page a stream serialised itself (SerializedLines) goes on as it is, like a state or status.
                if not isinstance(message, SerializedLines) and message.type == MessageType.RECORD:
                    records.add(message)
                    if len(records) >= BATCH_SIZE:
                        send(records.take())
                        send_queued()
                    continue
                if records:  # what follows comes after the records before it
                    send(records.take())
                send(message)
                send_queued()
            if records:
                send(records.take())
            send_queued()
            failure = next(iter(failures.items()), None)
            connection.send(("done", failure and (failure[0], _picklable(failure[1]))))
    except (BrokenPipeError, ConnectionResetError, EOFError):  # the parent is gone (killed or closed): stop reading
        return
    except BaseException:  # a bug outside any stream's own error handling
        connection.send(("crash", traceback.format_exc()))


def _die_with(parent: int) -> None:
    """A parent killed mid-sync (kill -9) takes its workers along, even one waiting for SendGrid: they hold
    its stdout open, and their output would be lost anyway. Without prctl, a worker stops at its next
    message to the parent."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _picklable(error: AirbyteTracedException) -> AirbyteTracedException:
    """The failure as the parent reports it (its messages and type), without the cause, which may not pickle."""
    return AirbyteTracedException(internal_message=error.internal_message, message=error.message, failure_type=error.failure_type)


def _read_one(
    source: AbstractSource,
    logger: logging.Logger,
    instances: Mapping[str, Any],
    state: Optional[List[AirbyteStateMessage]],
    internal_config: InternalConfig,
    configured_stream: ConfiguredAirbyteStream,
    failures: Failures,
) -> Iterator[AirbyteMessage]:
    """One stream, as the loop body of AbstractSource.read (which does not continue on error either)."""
    name = configured_stream.stream.name
    instance = instances.get(name)
    if instance is None:
        yield status_message(configured_stream.stream, AirbyteStreamStatus.INCOMPLETE)
        return
    try:
        logger.info(f"Marking stream {name} as STARTED")
        yield status_message(configured_stream.stream, AirbyteStreamStatus.STARTED)
        yield from cdk_seam.read_stream(
            source,
            logger=logger,
            stream_instance=instance,
            configured_stream=configured_stream,
            state_manager=ConnectorStateManager(state=state),
            internal_config=internal_config,
        )
        logger.info(f"Marking stream {name} as STOPPED")
        yield status_message(configured_stream.stream, AirbyteStreamStatus.COMPLETE)
    except Exception as error:
        yield from cdk_seam.queued_messages(source)
        logger.exception(f"Encountered an exception while reading stream {name}")
        logger.info(f"Marking stream {name} as STOPPED")
        yield status_message(configured_stream.stream, AirbyteStreamStatus.INCOMPLETE)
        descriptor = StreamDescriptor(name=name)
        if isinstance(error, AirbyteTracedException):
            traced = error
        else:
            traced = cdk_seam.serialize_exception(source, descriptor, error, stream_instance=instance)
        yield traced.as_sanitized_airbyte_message(stream_descriptor=descriptor)
        failures[instance.name] = traced
    finally:
        logger.info(f"Finished syncing {name}")

"""Reading independent streams at the same time.

`read_concurrently` does what `AbstractSource.read` does for each configured stream (STARTED, RUNNING,
COMPLETE or INCOMPLETE status messages, an error trace for a failed stream, the other streams going on, one
final error naming every failed stream), but reads up to `workers` streams at once in worker threads and
merges their messages into one sequence. Each stream is read by one thread from start to end, so its
records and state messages keep their order; messages of different streams interleave, which the
Airbyte protocol allows (every state message is per stream).

Most of a sync's time is spent waiting for SendGrid, so threads overlap those waits. The rate-limit budget
every stream shares (errors.RateBudget) keeps the streams together under SendGrid's limit.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional

from airbyte_cdk.exception_handler import generate_failed_streams_error_message
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

# Messages handed from a worker to the merging thread at once (fewer hand-offs, same order).
BATCH_SIZE = 500
# Batches waiting to be written, per worker: bounds memory when the destination reads slowly.
QUEUED_BATCHES_PER_WORKER = 4
_FINISHED = object()


def read_concurrently(
    source: AbstractSource,
    logger: logging.Logger,
    config: Mapping[str, Any],
    catalog: ConfiguredAirbyteCatalog,
    state: Optional[List[AirbyteStateMessage]],
    workers: int,
) -> Iterator[AirbyteMessage]:
    logger.info(f"Starting syncing {source.name}, {workers} streams at a time")
    config, internal_config = split_config(config)
    instances = {stream.name: stream for stream in source.streams(config)}
    source._stream_to_instance_map = instances  # what AbstractSource.read sets, for error messages

    # Streams that wait for the server before their first record (an export job) start first, so the
    # wait overlaps the other streams; otherwise the catalog's order.
    configured = sorted(catalog.streams, key=lambda c: not getattr(instances.get(c.stream.name), "slow_start", False))
    pending: "queue.SimpleQueue[ConfiguredAirbyteStream]" = queue.SimpleQueue()
    for item in configured:
        pending.put(item)
    workers = max(1, min(workers, len(configured)))
    out: "queue.Queue[Any]" = queue.Queue(maxsize=workers * QUEUED_BATCHES_PER_WORKER)
    stop = threading.Event()
    failures: Dict[str, AirbyteTracedException] = {}
    crashes: List[BaseException] = []

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
                for message in _read_one(source, logger, configured_stream, instances, state, internal_config, failures):
                    batch.append(message)
                    if len(batch) >= BATCH_SIZE or message.type != MessageType.RECORD:
                        if not hand_over(batch):
                            return
                        batch = []
                if batch and not hand_over(batch):
                    return
        except BaseException as error:  # a bug outside any stream's own error handling
            crashes.append(error)
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
            yield from source._emit_queued_messages()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    yield from source._emit_queued_messages()
    if crashes:
        raise crashes[0]
    if failures:
        message = generate_failed_streams_error_message({name: [error] for name, error in failures.items()})
        logger.info(message)
        # As AbstractSource.read: a non-zero exit; the streams' own errors were emitted already.
        raise AirbyteTracedException(message=message, failure_type=FailureType.config_error)
    logger.info(f"Finished syncing {source.name}")


def _read_one(
    source: AbstractSource,
    logger: logging.Logger,
    configured_stream: ConfiguredAirbyteStream,
    instances: Mapping[str, Any],
    state: Optional[List[AirbyteStateMessage]],
    internal_config: InternalConfig,
    failures: Dict[str, AirbyteTracedException],
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
        yield from source._read_stream(
            logger=logger,
            stream_instance=instance,
            configured_stream=configured_stream,
            state_manager=ConnectorStateManager(state=state),
            internal_config=internal_config,
        )
        logger.info(f"Marking stream {name} as STOPPED")
        yield status_message(configured_stream.stream, AirbyteStreamStatus.COMPLETE)
    except Exception as error:
        yield from source._emit_queued_messages()
        logger.exception(f"Encountered an exception while reading stream {name}")
        logger.info(f"Marking stream {name} as STOPPED")
        yield status_message(configured_stream.stream, AirbyteStreamStatus.INCOMPLETE)
        descriptor = StreamDescriptor(name=name)
        if isinstance(error, AirbyteTracedException):
            traced = error
        else:
            traced = source._serialize_exception(descriptor, error, stream_instance=instance)
        yield traced.as_sanitized_airbyte_message(stream_descriptor=descriptor)
        failures[instance.name] = traced
    finally:
        logger.info(f"Finished syncing {name}")

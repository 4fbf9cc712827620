"""Every private part of airbyte-cdk the connector relies on, named here and checked when this module loads.

The connector is fast where it reaches past the CDK's public API: a stream is read a page at a time
(HttpStream._read_pages, an override of AbstractSource._read_stream), record messages are built directly
(an override of AbstractSource._get_message), the message queue is drained under a lock (an override of
AbstractSource._emit_queued_messages), streams are read at the same time (parallel.py follows the loop of
AbstractSource.read), and the command line writes the output of `read` itself (run.py follows the read
branch of AirbyteEntrypoint.run and counts records its own way). pyproject.toml accepts any airbyte-cdk
from 7.39 to 8, and a release may change any private name. So the CDK's private names are used through
this module only, and each is checked here:

- a name the connector cannot do without (a method it overrides or calls, an attribute it reads) must be
  there with the parameters the connector uses: if one is not, loading fails at once with CdkSeamError,
  which names the installed airbyte-cdk and what changed;
- a function the connector follows (a copy with a change) is recognised by a digest of its source, and a
  name with a public equivalent is looked up: when either differs, the connector takes the CDK's own,
  public path instead and warns once. The messages are the same; the sync is slower.

The overrides themselves stay in source.py and run.py, where they belong to the source and the entrypoint;
the methods they override are checked here. serpyco-rs's docstring lookup, which start-up skips, is
replaced in startup.py, because that must happen before airbyte-cdk is imported and this module imports
it; its names are checked here too. Run `bin/check-cdk-upgrade` before accepting a new airbyte-cdk.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import linecache
import logging
import threading
import tokenize
from contextlib import nullcontext
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, ContextManager, Iterable, Iterator, List, Mapping, Optional, Tuple

from airbyte_cdk import logger as cdk_logger
from airbyte_cdk.connector import BaseConnector
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessage, StreamDescriptor
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources import connector_state_manager
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.http_client import HttpClient
from airbyte_cdk.sources.utils import record_helper
from airbyte_cdk.sources.utils.slice_logger import SliceLogger
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .startup import LOOKUP_USERS

# The newest airbyte-cdk whose private parts were checked (bin/check-cdk-upgrade) and the copies reviewed.
CHECKED_CDK = "7.39.1"


class CdkSeamError(ImportError):
    """The installed airbyte-cdk lacks, or has changed, a private part the connector cannot do without."""


@dataclass(frozen=True)
class Expected:
    """One name of another package as the connector relies on it."""

    owner: Any  # the class or module that holds the name, or a module's dotted name
    name: str
    # A function: the parameters the connector passes, in order ("self" included). When `overridden`, the
    # function must take exactly these, as the connector's override does; otherwise any further ones
    # must be optional.
    parameters: Optional[Tuple[str, ...]] = None
    overridden: bool = False
    # An attribute of an instance: the method of `owner` that sets it.
    set_in: Optional[str] = None
    # A function the connector follows: the digests (source_digest) of the versions its copy follows.
    followed: Tuple[str, ...] = ()

    def problem(self) -> Optional[str]:
        """What differs from the expectation in the installed package, or None."""
        owner = self.owner
        if isinstance(owner, str):
            try:
                owner = importlib.import_module(owner)
            except ImportError:
                return f"the module {owner} is gone"
        label = f"{getattr(owner, '__qualname__', None) or owner.__name__}.{self.name}"
        if self.set_in is not None:
            code = getattr(getattr(owner, self.set_in, None), "__code__", None)
            if code is None or self.name not in code.co_names:
                return f"{label} is no longer set by {self.set_in}"
            return None
        if not hasattr(owner, self.name):
            return f"{label} is gone"
        value = getattr(owner, self.name)
        if self.parameters is not None:
            takes = _parameters(value)
            if takes is None:
                return f"{label} is no longer a function"
            names = tuple(parameter.name for parameter in takes)
            fits = names == self.parameters if self.overridden else (
                names[:len(self.parameters)] == self.parameters
                and all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                        for p in takes[len(self.parameters):]))
            if not fits:
                return f"{label} takes ({', '.join(names)}), where the connector expects ({', '.join(self.parameters)})"
        if self.followed:
            digest = source_digest(value)
            if digest not in self.followed:
                return f"{label} is not the version the connector follows (its digest is {digest})"
        return None


def _parameters(function: Any) -> Optional[Tuple[inspect.Parameter, ...]]:
    try:
        return tuple(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return None


def source_digest(function: Any) -> str:
    """A digest of a function's source text, without its blank lines, indentation and whole-line comments."""
    code = getattr(inspect.unwrap(function), "__code__", None)
    lines = linecache.getlines(code.co_filename) if code else []
    if not lines:
        return "unknown (no source)"
    try:  # as inspect.getsource, without its search of every loaded module for the function's own
        block = [line.strip() for line in inspect.getblock(lines[code.co_firstlineno - 1:])]
    except (SyntaxError, tokenize.TokenError):
        return "unknown (unreadable source)"
    text = "\n".join(line for line in block if line and not line.startswith("#"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def problems(expected: Iterable[Expected]) -> List[str]:
    return [problem for problem in (item.problem() for item in expected) if problem]


def require(expected: Iterable[Expected]) -> None:
    """Raise CdkSeamError, naming the installed airbyte-cdk and every difference, unless all is as expected."""
    found = problems(expected)
    if found:
        raise CdkSeamError(
            f"source-sendgrid cannot run with airbyte-cdk {installed('airbyte-cdk')}: {'; '.join(found)}. "
            f"Install airbyte-cdk=={CHECKED_CDK}, the version it was checked with; to adopt this version, "
            "run bin/check-cdk-upgrade and adapt source_sendgrid/cdk_seam.py."
        )


# What the connector does instead of a fast path, because the installed packages differ (see `usable`).
FALLBACKS: List[str] = []


def usable(expected: Iterable[Expected], instead: str, package: str = "airbyte-cdk") -> bool:
    """Whether all is as expected; if not, warn that the connector does `instead` (its public path)."""
    found = problems(expected)
    if found:
        FALLBACKS.append(f"With {package} {installed(package)}, {instead}, because {'; '.join(found)}.")
        logging.getLogger("airbyte").warning(f"{FALLBACKS[-1]} The output is the same, only slower.")
    return not found


# --- What the connector cannot do without --------------------------------------------------------------

READ_STREAM_PARAMETERS = ("self", "logger", "stream_instance", "configured_stream", "state_manager", "internal_config")
REQUIRED = (
    # Overridden in source.py and called by the CDK's read (and by parallel.py, through read_stream).
    Expected(AbstractSource, "_read_stream", READ_STREAM_PARAMETERS, overridden=True),
    Expected(AbstractSource, "_get_message", ("self", "record_data_or_message", "stream"), overridden=True),
    Expected(AbstractSource, "_emit_queued_messages", ("self",), overridden=True),
    Expected(AbstractSource, "_slice_logger"),
    Expected(BaseConnector, "_read_json_file", ("file_path",)),
    Expected(HttpStream, "_read_pages", ("self", "records_generator_fn", "stream_slice", "stream_state")),
    Expected(HttpStream, "_http_client", set_in="__init__"),
    Expected(HttpClient, "send_request", ("self", "http_method", "url", "request_kwargs", "headers", "params", "json")),
)
require(REQUIRED)


def read_stream(source: AbstractSource, **arguments: Any) -> Iterator[Any]:
    """One stream's messages, as AbstractSource.read has them read (source.py overrides the method)."""
    return source._read_stream(**arguments)


def slice_logger(source: AbstractSource) -> SliceLogger:
    return source._slice_logger


def read_json_file(path: str) -> Any:
    """A JSON file as the CDK reads its config, catalog and state files (with its error for bad JSON)."""
    return BaseConnector._read_json_file(path)


def read_pages(stream: HttpStream, records_of_page: Callable[..., Iterable[StreamData]],
               stream_slice: Optional[Mapping[str, Any]], stream_state: Optional[Mapping[str, Any]]) -> Iterable[StreamData]:
    """The stream's pages, each turned into records (or a block of record lines) by `records_of_page`."""
    return stream._read_pages(records_of_page, stream_slice, stream_state)


def http_client(stream: HttpStream) -> HttpClient:
    """The stream's own client (its authenticator, error handler, backoff and rate budget), for a request
    that is not one of its pages."""
    return stream._http_client


# --- What the connector follows, or has a public path for --------------------------------------------

# source.py's _read_stream hands over a page at a time what this loop hands over a record at a time.
PAGE_READS = usable(
    [Expected(AbstractSource, "_read_stream", followed=("3b13d2d5237e",))],
    "streams are read a record at a time by the CDK's loop (AbstractSource._read_stream)")
# source.py's _get_message builds a plain record's message as these two do.
DIRECT_RECORDS = usable(
    [Expected(AbstractSource, "_get_message", followed=("993d40de5b55",)),
     Expected(record_helper, "stream_data_to_airbyte_message", followed=("b281b7819d85",))],
    "record messages are built by the CDK (AbstractSource._get_message)")
# parallel.py reads each stream as the body of this loop does.
CONCURRENT_READS = usable(
    [Expected(AbstractSource, "read", followed=("a34e58dd835d",))],
    "streams are read one after another, by AbstractSource.read")
# run.py's entrypoint: the read branch of run, and the record counts that read sets on state messages.
OWN_OUTPUT = usable(
    [Expected(AirbyteEntrypoint, "run", followed=("8dfaf8d2a510",)),
     Expected(AirbyteEntrypoint, "read", followed=("bd3954932f17",)),
     Expected(AirbyteEntrypoint, "handle_record_counts", ("message", "stream_message_count"), followed=("c44346967a30",)),
     Expected(connector_state_manager, "HashableStreamDescriptor")],
    "messages are written by the CDK's entrypoint (AirbyteEntrypoint)")
HashableStreamDescriptor = getattr(connector_state_manager, "HashableStreamDescriptor", None)

_QUEUE_PEEK = usable(
    [Expected(InMemoryMessageRepository, "_message_queue", set_in="__init__")],
    "the message queue is drained under a lock at every record")
_SERIALIZE_EXCEPTION = usable(
    [Expected(AbstractSource, "_serialize_exception", ("stream_descriptor", "e", "stream_instance"))],
    "a failed stream's error is described by AirbyteTracedException.from_exception")
_PRINT_BUFFER = usable(
    [Expected(cdk_logger, "PRINT_BUFFER")], "the command line writes to stdout without the CDK's print buffer")
# Nothing in airbyte-cdk 7.39 reads it back: set for parity with AbstractSource.read when it is there.
_INSTANCE_MAP = hasattr(AbstractSource, "_stream_to_instance_map")
# startup.py replaces serpyco-rs's docstring lookup in the modules that took it by name.
usable([Expected(module, "get_attributes_doc") for module in ("serpyco_rs._utils", *LOOKUP_USERS)],
       "start-up reads the serializers' docstrings (slower)", package="serpyco-rs")

_QUEUE_LOCK = threading.Lock()


def queued_messages(source: AbstractSource) -> Iterable[AirbyteMessage]:
    """The messages queued in the source's repository (logs, state of the CDK's own), taken out at once.
    The queue is one deque for the whole process; streams read in several threads drain it under a lock
    (an unguarded drain can pop from a deque another thread just emptied). Called once per record, so an
    empty queue returns at once."""
    repository = source.message_repository
    if repository is None:
        return ()
    if _QUEUE_PEEK:
        pending = getattr(repository, "_message_queue", None)
        if pending is not None and not pending:
            return ()
    with _QUEUE_LOCK:
        return list(repository.consume_queue())


def serialize_exception(source: AbstractSource, descriptor: StreamDescriptor, error: Exception,
                        stream_instance: Optional[Stream] = None) -> AirbyteTracedException:
    """A failed stream's error as AbstractSource.read reports it."""
    if _SERIALIZE_EXCEPTION:
        return source._serialize_exception(descriptor, error, stream_instance=stream_instance)
    display = stream_instance.get_error_display_message(error) if stream_instance else None
    if display:
        return AirbyteTracedException.from_exception(error, message=display, stream_descriptor=descriptor)
    return AirbyteTracedException.from_exception(error, stream_descriptor=descriptor)


def set_stream_instances(source: AbstractSource, instances: Mapping[str, Stream]) -> None:
    """What AbstractSource.read records of the streams it reads."""
    if _INSTANCE_MAP:
        source._stream_to_instance_map = instances


def output_buffer() -> ContextManager[Any]:
    """The CDK's buffer, which its log handler writes to; its `launch` writes the messages inside it."""
    return cdk_logger.PRINT_BUFFER if _PRINT_BUFFER else nullcontext()

"""Which config values the CDK's secret filter masks, and in which spellings.

The CDK masks each `airbyte_secret` value exactly as the config holds it. That misses the spellings in which
a value reaches the output: stripped of the spaces around it, as the connector sends it; inside a repr
(an exception about a header writes a newline as `\\n`); inside a JSON string (a crash's trace is masked
after it was serialised). And it masks any value, however short, in whole serialised messages: a
one-letter subuser turns `{"type":` into `{"typ****":`, which is no longer the Airbyte protocol.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterable, List

import orjson
from airbyte_cdk.models import AirbyteMessageSerializer, FailureType, StreamDescriptor
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

# A shorter value is not masked: it would match ordinary words by chance. A SendGrid key is ~69 characters.
MIN_MASKED_LENGTH = 6
# Text that could be part of a number (a timestamp in every message) is never masked either.
_NUMBER_LIKE = re.compile(r"^[0-9.eE+-]+$")


def masked_spellings(values: Iterable[Any]) -> List[str]:
    """The strings to hand to the CDK's secret filter for these secret values, longest first (so that a
    longer spelling is masked whole before a shorter one inside it)."""
    spellings = set()
    for value in values:
        text = value.strip() if isinstance(value, str) else ""
        if not safe_to_mask(text):
            continue
        for spelling in (text, repr(text)[1:-1], json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]):
            spellings.add(spelling)
            spellings.add(json.dumps(spelling)[1:-1])  # a repr inside a serialised message
    return sorted(spellings, key=len, reverse=True)


def safe_to_mask(text: str) -> bool:
    """Whether replacing every occurrence of `text` leaves every message the CDK masks valid protocol JSON."""
    return len(text) >= MIN_MASKED_LENGTH and not _NUMBER_LIKE.match(text) and text not in _protocol_text()


@lru_cache(maxsize=1)
def _protocol_text() -> str:
    """The words of the messages the CDK masks whole once serialised: an error trace (written on a crash),
    with every failure type, and a debug line (`AirbyteLogFormatter` writes it as this dict)."""
    trace = AirbyteTracedException(message="", internal_message="", failure_type=FailureType.system_error,
                                   stream_descriptor=StreamDescriptor(name="", namespace=""))
    message = AirbyteMessageSerializer.dump(trace.as_airbyte_message())
    message["trace"]["error"]["stack_trace"] = ""
    failure_types = " ".join(f'"{failure_type.value}"' for failure_type in FailureType)
    debug_line = json.dumps({"type": "DEBUG", "message": "", "data": {}})
    return "\n".join([orjson.dumps(message).decode(), failure_types, debug_line])

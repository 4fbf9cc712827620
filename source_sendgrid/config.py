"""Parse and validate the user's config once, so every stream reads the same, already-checked values."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

REGION_BASE_URLS = {
    "global": "https://api.sendgrid.com",
    "eu": "https://api.eu.sendgrid.com",
}
# SendGrid started in 2009: reading from here replicates an account's whole history.
DEFAULT_START_DATE = "2009-01-01T00:00:00Z"
# The whole-number options' defaults and bounds are the ones spec.json shows users, read from it so the two
# cannot drift apart.
_SPEC_PROPERTIES: Mapping[str, Mapping[str, Any]] = json.loads(
    Path(__file__).with_name("spec.json").read_text(encoding="utf-8"))["connectionSpecification"]["properties"]
_START_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# SendGrid's time filters are epoch seconds and answer 400 to a moment before 1970 (spec.json says the same).
EARLIEST_START_DATE = datetime(1970, 1, 1, tzinfo=timezone.utc)
# What a base URL is made of here: scheme://host[:port][/path]. Anything else (whitespace, `\`, `@`, `?`,
# `#`, `%`, control characters) is refused, so no two URL parsers can disagree about the host.
_BASE_URL_CHARACTERS = re.compile(r"^[A-Za-z0-9\-._~:/\[\]]+$")


def config_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)


@dataclass(frozen=True)
class SendgridConfig:
    api_key: str
    base_url: str
    region: str
    subuser: Optional[str]
    start_date: datetime
    lookback: timedelta
    window: timedelta
    concurrency: int

    @property
    def base_url_overridden(self) -> bool:
        return self.base_url != REGION_BASE_URLS[self.region]

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> "SendgridConfig":
        api_key = str(config.get("api_key") or "").strip()
        if not api_key:
            raise config_error("The config has no `api_key`. Create one in SendGrid under Settings → API Keys.")
        if not _is_printable_ascii(api_key, spaces=False):
            # The key itself is never quoted: it may be the real key with one wrong character.
            raise config_error(
                "`api_key` is not a SendGrid API key: it may hold only printable ASCII characters, without spaces "
                "or line breaks inside (a key looks like SG.xxxx.yyyy). Copy it again from SendGrid "
                "(Settings → API Keys) and paste it whole."
            )
        region = config.get("region") or "global"
        if region not in REGION_BASE_URLS:
            raise config_error(f"`region` must be one of {sorted(REGION_BASE_URLS)}, not {region!r}.")
        base_url = _checked_base_url(config.get("api_base_url")) or REGION_BASE_URLS[region]
        subuser = (config.get("subuser") or "").strip() or None
        if subuser is not None and not _is_printable_ascii(subuser, spaces=True):
            raise config_error(
                "`subuser` may hold only printable ASCII characters and spaces (no line breaks or tabs): give the "
                "subuser's username, or 'account-id <id>' for a customer account."
            )
        return cls(
            api_key=api_key,
            base_url=base_url,
            region=region,
            subuser=subuser,
            start_date=parse_start_date(config.get("start_date") or DEFAULT_START_DATE),
            lookback=timedelta(days=_bounded_int(config, "lookback_days")),
            window=timedelta(days=_bounded_int(config, "window_days")),
            concurrency=_bounded_int(config, "concurrency"),
        )


def parse_start_date(value: Any) -> datetime:
    text = str(value).strip()
    if not _START_DATE_PATTERN.match(text):
        raise config_error(
            f"`start_date` must look like 2024-01-31T00:00:00Z (UTC, ISO 8601), not {text!r}."
        )
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise config_error(f"`start_date` {text!r} is not a real date and time.") from None
    if moment < EARLIEST_START_DATE:
        raise config_error(
            f"`start_date` {text!r} is before 1970-01-01T00:00:00Z, which SendGrid does not accept. "
            "Use a later date, or leave it empty to replicate the account's whole history."
        )
    return moment


def _bounded_int(config: Mapping[str, Any], key: str) -> int:
    """`config[key]`, or the spec's default, held to the spec's minimum and maximum."""
    spec = _SPEC_PROPERTIES[key]
    value, low, high = config.get(key), spec["minimum"], spec["maximum"]
    if value is None:
        return spec["default"]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise config_error(f"`{key}` must be a whole number from {low} to {high}, not {value!r}.")
    return value


def _is_printable_ascii(text: str, spaces: bool) -> bool:
    """Only characters an HTTP header carries as they are; a space only if `spaces`."""
    return all(33 <= ord(character) <= 126 or (spaces and character == " ") for character in text)


def _checked_base_url(value: Optional[str]) -> Optional[str]:
    """Allow any https:// URL, and http:// only to this machine (the emulator, a local proxy).

    The host is the one the HTTP client (requests, through urllib3's `parse_url`) will connect to, and the
    standard library's `urlsplit` must agree with it: `http://HOST\\@127.0.0.1` reads as 127.0.0.1 to one
    and as HOST to the other.
    """
    if not value:
        return None
    text = str(value).strip().rstrip("/")
    scheme, host = _scheme_and_host(text) or ("", "")
    if scheme == "https" or scheme == "http" and _is_loopback(host):
        return text
    raise config_error(
        "`api_base_url` must be an https:// URL (http:// is accepted only for localhost or 127.0.0.1) of the "
        f"form scheme://host[:port][/path], without user, query, fragment, spaces or backslashes; not {value!r}."
    )


def _scheme_and_host(text: str) -> Optional[Tuple[str, str]]:
    """The scheme and host of `text` if it is a plain scheme://host[:port][/path] URL both parsers read
    alike, else None."""
    if not _BASE_URL_CHARACTERS.match(text):
        return None
    try:
        client, standard = parse_url(text), urlsplit(text)
        standard_port = standard.port
    except (LocationParseError, ValueError):
        return None
    if client.scheme not in ("http", "https") or client.scheme != standard.scheme.lower():
        return None
    if client.auth or client.query or client.fragment or not client.host or not standard.hostname:
        return None
    host = client.host.lower().strip("[]")
    if host != standard.hostname.lower() or client.port != standard_port:
        return None
    return client.scheme, host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

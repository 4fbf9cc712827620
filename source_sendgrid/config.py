"""Parse and validate the user's config once, so every stream reads the same, already-checked values."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

REGION_BASE_URLS = {
    "global": "https://api.sendgrid.com",
    "eu": "https://api.eu.sendgrid.com",
}
# SendGrid started in 2009: reading from here replicates an account's whole history.
DEFAULT_START_DATE = "2009-01-01T00:00:00Z"
DEFAULT_LOOKBACK_DAYS = 1
DEFAULT_WINDOW_DAYS = 180
DEFAULT_CONCURRENCY = 4
_START_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


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
        region = config.get("region") or "global"
        if region not in REGION_BASE_URLS:
            raise config_error(f"`region` must be one of {sorted(REGION_BASE_URLS)}, not {region!r}.")
        base_url = _checked_base_url(config.get("api_base_url")) or REGION_BASE_URLS[region]
        subuser = (config.get("subuser") or "").strip() or None
        return cls(
            api_key=api_key,
            base_url=base_url,
            region=region,
            subuser=subuser,
            start_date=parse_start_date(config.get("start_date") or DEFAULT_START_DATE),
            lookback=timedelta(days=_bounded_int(config, "lookback_days", DEFAULT_LOOKBACK_DAYS, 0, 365)),
            window=timedelta(days=_bounded_int(config, "window_days", DEFAULT_WINDOW_DAYS, 1, 3650)),
            concurrency=_bounded_int(config, "concurrency", DEFAULT_CONCURRENCY, 1, 16),
        )


def parse_start_date(value: Any) -> datetime:
    text = str(value).strip()
    if not _START_DATE_PATTERN.match(text):
        raise config_error(
            f"`start_date` must look like 2024-01-31T00:00:00Z (UTC, ISO 8601), not {text!r}."
        )
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise config_error(f"`start_date` {text!r} is not a real date and time.") from None


def _bounded_int(config: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise config_error(f"`{key}` must be a whole number from {low} to {high}, not {value!r}.")
    return value


def _checked_base_url(value: Optional[str]) -> Optional[str]:
    """Allow any https:// URL, and http:// only to this machine (the emulator, a local proxy)."""
    if not value:
        return None
    parts = urlsplit(str(value).strip())
    if parts.scheme == "https" and parts.hostname:
        return str(value).strip().rstrip("/")
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return str(value).strip().rstrip("/")
    raise config_error(
        "`api_base_url` must be an https:// URL (http:// is accepted only for localhost or 127.0.0.1), "
        f"not {value!r}."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

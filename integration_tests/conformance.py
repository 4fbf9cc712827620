"""Validate the emulator's responses against SendGrid's OpenAPI spec, so the emulator follows SendGrid, not us."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Mapping, Optional

import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from sendgrid_emulator import FULL_ACCESS_KEY, Emulator

SPEC_PATH = Path(__file__).parent / "spec" / "openapi-read.json"
# Engagement Quality is a product document of its own, not part of openapi-read.json.
SEQ_SPEC_PATH = Path(__file__).parent / "spec" / "tsg_seq_v3.json"
SPEC_SERVER = "https://api.sendgrid.com"


@functools.lru_cache(maxsize=2)
def sendgrid_spec(path: Path = SPEC_PATH) -> OpenAPI:
    return OpenAPI.from_dict(json.loads(path.read_text()))


def fetch_and_validate(emulator: Emulator, method: str, path: str, params: Optional[Mapping[str, Any]] = None,
                       body: Any = None, key: str = FULL_ACCESS_KEY, spec_path: Path = SPEC_PATH) -> requests.Response:
    """Call the emulator and validate the response (status, headers, body schema) against the spec.

    The request is validated as if it had gone to SendGrid's server, since the spec names only its hosts.
    """
    from sendgrid_emulator import secrets_guard

    secrets_guard.register_config({"api_base_url": emulator.url})
    response = requests.request(method, emulator.url + path, params=params, json=body,
                                headers={"Authorization": f"Bearer {key}", "Accept": "application/json"}, timeout=30)
    validate(emulator, response, spec_path)
    return response


def validate(emulator: Emulator, response: requests.Response, spec_path: Path = SPEC_PATH) -> None:
    as_sent_to_sendgrid = response.request.copy()
    as_sent_to_sendgrid.url = as_sent_to_sendgrid.url.replace(emulator.url, SPEC_SERVER, 1)
    sendgrid_spec(spec_path).validate_response(RequestsOpenAPIRequest(as_sent_to_sendgrid), RequestsOpenAPIResponse(response))

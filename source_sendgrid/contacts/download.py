"""Downloading the files of a ready contacts export, and the checks a download link must pass first.

Kept apart because the files sit on another host, behind pre-signed links that are not the API: they are
fetched with a plain session (our `Authorization` header must not go with them), over https from public
hosts only (every redirect checked too, so a tampered job cannot make the connector read a service inside
the network), and a download cut short is resumed by skipping the rows already read. Errors never show a
link: it lets anyone download the contacts until it expires.
"""

from __future__ import annotations

import gzip
import ipaddress
import logging
import re
import socket
import time
import zlib
from typing import Any, Dict, Generator, Mapping, Optional
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from .export_job import ReadyExport, failure
from .parse import IDENTIFIERS, FieldTypes, MalformedExport, parse_export

# A download cut short is started again (skipping the rows already read) at most this many times per file.
MAX_DOWNLOAD_RETRIES = 5
DOWNLOAD_TIMEOUT = (10, 300)
# A file host may redirect (S3 does, https to https); each hop is checked like the link itself.
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Statuses of a pre-signed link that no longer works: expired (403), refused (400) or gone (404, 410).
_DEAD_LINK = frozenset({400, 401, 403, 404, 410})


class DeadLink(Exception):
    """A download link that no longer works: the export must be created again."""


class RefusedLink(Exception):
    """A download link (or a redirect) to somewhere export files are not fetched from."""


def download(url: str, fields: FieldTypes, export: ReadyExport, number: int, api_base_url: str,
             logger: logging.Logger, stream: str) -> Generator[Dict[str, Any], None, int]:
    """The contacts of file `number` of `export`; returns how many rows it held. The link is pre-signed: our
    API key must not go with it. A download cut short is retried, skipping the rows already read (the file
    does not change); a file that cannot be read as contacts fails the stream at once, saying why."""
    local_api = _is_loopback_host(urlsplit(api_base_url).hostname or "")
    rows = rejected = 0
    which = f"file {number} of {len(export.urls)} of contacts export {export.id}"
    for retry in range(MAX_DOWNLOAD_RETRIES + 1):
        try:
            with _open_download(url, local_api) as response:
                if response.status_code in _DEAD_LINK:
                    raise DeadLink(f"HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
                response.raw.decode_content = True
                skip = rows
                for contact in parse_export(response.raw, fields):
                    if skip:
                        skip -= 1
                        continue
                    rows += 1
                    if _is_contact(contact):
                        yield contact
                    else:
                        rejected += 1
            break
        except RefusedLink as refused:
            raise failure(f"{which} has a download link the connector does not follow: {refused}. Export files "
                          f"are fetched over https from public hosts only") from None
        except (MalformedExport, UnicodeDecodeError, gzip.BadGzipFile, zlib.error) as error:
            raise failure(f"{which} cannot be read: {_described(error)}. Downloading it again would give the "
                          f"same file; if a new sync fails the same way, tell SendGrid support about export "
                          f"{export.id}") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, EOFError, OSError, ValueError) as error:
            if retry == MAX_DOWNLOAD_RETRIES:
                raise failure(f"{which} could not be downloaded ({_described(error)})") from None
            logger.warning(f"Stream {stream}: the export download broke off ({_described(error)}); "
                           f"retrying from contact {rows}.")
            time.sleep(min(30.0, 2.0 ** retry))
    if rejected:
        logger.warning(f"Stream {stream}: rejected {rejected} of the {rows} rows of {which}: a row without "
                       f"a contact id, or without an email ({', '.join(IDENTIFIERS[1:])} either), is not a "
                       f"contact.")
    return rows


def _open_download(url: str, local_api: bool) -> requests.Response:
    """The response to GET `url`, redirects followed here rather than by requests, so that each hop is held
    to the same rule as the link itself (see refused_link)."""
    session = _download_session()
    for _ in range(MAX_REDIRECTS + 1):
        reason = refused_link(url, local_api)
        if reason:
            raise RefusedLink(reason)
        response = session.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT, allow_redirects=False)
        location = response.headers.get("Location")
        if response.status_code not in _REDIRECT_STATUSES or not location:
            return response
        response.close()
        url = urljoin(url, location)
    raise RefusedLink(f"the file host redirected more than {MAX_REDIRECTS} times")


def _is_contact(record: Mapping[str, Any]) -> bool:
    contact_id = record.get("id")
    return (contact_id.__class__ is str and contact_id.strip() != ""
            and (bool(record.get("email")) or any(record.get(key) for key in IDENTIFIERS[1:])))


def _described(error: BaseException) -> str:
    """What went wrong, without the link: a connection error's text names the pre-signed URL, which lets anyone
    download the contacts until it expires."""
    if isinstance(error, MalformedExport):
        return str(error)
    if isinstance(error, requests.RequestException) and not isinstance(error, requests.HTTPError):
        return type(error).__name__
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return f"{type(error).__name__}: {error}"


def refused_link(url: str, local_api: bool) -> Optional[str]:
    """Why an export file is not fetched from `url`, or None. Files come over https; plain http and private,
    loopback or link-local addresses are for an `api_base_url` on this machine (the emulator, a local proxy)
    only, so a tampered job cannot make the connector read a service inside the network and emit its answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    where = f"{parts.scheme}://{host}" if parts.scheme else "a link without a scheme"
    if parts.scheme not in ("http", "https") or not host:
        return f"{where} is not an http(s) URL"
    address = _ip_literal(host)
    loopback = _is_loopback_host(host)
    if parts.scheme == "http" and not (local_api and loopback):
        return f"{where} is plain http"
    if not local_api and (loopback or (address is not None and not address.is_global)):
        return f"{where} is a private, loopback or link-local address"
    return None


def _ip_literal(host: str) -> Optional[Any]:
    """The address `host` spells, in any form a resolver accepts (127.1, 0x7f000001, ::ffff:127.0.0.1), or None."""
    address: Any = None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if re.fullmatch(r"[0-9a-fx.]+", host.lower()):
            try:
                address = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_loopback_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _ip_literal(host)
    return address is not None and address.is_loopback


def _download_session() -> requests.Session:
    """A plain session: no authenticator, so no `Authorization` header reaches the file host."""
    session = requests.Session()
    session.headers["Accept"] = "*/*"
    return session

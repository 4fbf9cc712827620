"""A session-wide guard against leaked secrets, used by both test directories' conftest.

For every test it
- registers the API keys and subuser names of every config a test reads with (and every key added to an
  emulator), besides the fixed test keys;
- scans everything the connector printed (in-process entrypoint output and the CLI's stdout and stderr) and
  everything pytest captured on stdout/stderr for those secrets;
- records every HTTP request sent in-process, and fails the test if a request carries a secret to a host other
  than the configured API host, or carries one in its URL.

A failure names where the secret appeared, never the secret itself.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Mapping, Optional, Set, Tuple
from urllib.parse import urlsplit

import pytest
import requests

_secrets: Set[str] = set()
_allowed_origins: Set[str] = {"https://api.sendgrid.com", "https://api.eu.sendgrid.com"}
_requests: List[Tuple[str, str]] = []
_leaks: List[str] = []

# Shorter strings would match ordinary text by chance.
_MIN_SECRET_LENGTH = 6


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def register_config(config: Optional[Mapping[str, Any]]) -> None:
    if not isinstance(config, Mapping):
        return
    for field in ("api_key", "subuser"):
        value = config.get(field)
        if isinstance(value, str) and len(value.strip()) >= _MIN_SECRET_LENGTH:
            _secrets.add(value.strip())
    base = config.get("api_base_url")
    if isinstance(base, str) and base:
        _allowed_origins.add(_origin(base.strip()))


def register_secret(value: str) -> None:
    if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
        _secrets.add(value)


def leaked_in(text: str) -> List[str]:
    """The secrets found in `text`, masked."""
    return [f"{secret[:3]}…({len(secret)} chars)" for secret in _secrets if secret in text]


def scan(text: str, where: str) -> None:
    found = leaked_in(text or "")
    if found:
        _leaks.append(f"{where}: {', '.join(found)}")


def _output_text(output: Any) -> str:
    from airbyte_cdk.models import AirbyteMessageSerializer

    try:
        lines = [json.dumps(AirbyteMessageSerializer.dump(m)) for m in output.get_message_iterator()]
    except Exception:  # noqa: BLE001 - a test may hand over a partial output
        lines = [str(getattr(output, "_messages", ""))]
    return "\n".join(lines) + "\n" + str(getattr(output, "stderr", "") or "")


def _wrap_entrypoint(function):
    def wrapped(source, config, *args, **kwargs):
        register_config(config)
        output = function(source, config, *args, **kwargs)
        scan(_output_text(output), f"{function.__name__} output")
        return output

    return wrapped


def _wrap_subprocess_run(run):
    def wrapped(args, *rest, **kwargs):
        args_list = list(args) if isinstance(args, (list, tuple)) else [args]
        if "--config" in args_list:
            try:
                with open(args_list[args_list.index("--config") + 1]) as handle:
                    register_config(json.load(handle))
            except (OSError, ValueError, IndexError):
                pass
        done = run(args, *rest, **kwargs)
        scan(f"{done.stdout or ''}\n{done.stderr or ''}", "CLI stdout/stderr")
        return done

    return wrapped


def _wrap_parse_messages(parse):
    def wrapped(stdout: str):
        scan(stdout, "CLI stdout")
        return parse(stdout)

    return wrapped


def _wrap_send(send):
    def wrapped(session, request, **kwargs):
        body = request.body if isinstance(request.body, str) else (request.body or b"").decode("utf-8", "replace") \
            if isinstance(request.body, bytes) else ""
        carried = "\n".join([request.url or "", *(f"{k}: {v}" for k, v in request.headers.items()), body])
        if leaked_in(carried):
            _requests.append((request.url or "", "secret"))
            if _origin(request.url or "") not in _allowed_origins:
                _leaks.append(f"a request to {_origin(request.url or '')} carried a secret")
            if leaked_in(request.url or ""):
                _leaks.append("a request carried a secret in its URL")
        return send(session, request, **kwargs)

    return wrapped


@pytest.fixture(autouse=True)
def no_secret_leaks(monkeypatch):
    """Watch the connector's output and requests during the test; fail it if a secret got out."""
    from sendgrid_emulator import harness
    from sendgrid_emulator import FULL_ACCESS_KEY, Emulator

    _leaks.clear()
    _requests.clear()
    register_secret(FULL_ACCESS_KEY)
    try:
        from unit_tests import builders

        register_secret(builders.API_KEY)
        monkeypatch.setattr(builders, "read", _wrap_entrypoint(builders.read))
    except ImportError:
        pass
    monkeypatch.setattr(harness, "read", _wrap_entrypoint(harness.read))
    monkeypatch.setattr(harness, "discover", _wrap_entrypoint(harness.discover))
    monkeypatch.setattr(harness.subprocess, "run", _wrap_subprocess_run(harness.subprocess.run))
    monkeypatch.setattr(harness, "_parse_messages", _wrap_parse_messages(harness._parse_messages))
    original_add_key = Emulator.add_key

    def add_key(self, key, scopes):
        register_secret(key)
        return original_add_key(self, key, scopes)

    monkeypatch.setattr(Emulator, "add_key", add_key)
    monkeypatch.setattr(requests.Session, "send", _wrap_send(requests.Session.send))
    yield _leaks
    leaks, _leaks[:] = list(_leaks), []
    assert not leaks, "a secret leaked: " + "; ".join(sorted(set(leaks)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Also fail a test whose captured stdout/stderr holds a secret (the connector's own log handler masks
    secrets; pytest's log capture does not, so captured logging is not scanned)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        return
    text = "\n".join(content for name, content in report.sections if "stdout" in name or "stderr" in name)
    found = leaked_in(text)
    if found and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = f"a secret appeared in the test's captured stdout/stderr: {', '.join(found)}"


def secrets_seen() -> Iterable[str]:
    """For tests that check the guard itself."""
    return set(_secrets)

import pytest


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch):
    """Retries wait through time.sleep; unit tests record the waits instead of sleeping them."""
    waits = []
    monkeypatch.setattr("time.sleep", lambda seconds: waits.append(seconds) if seconds else None)
    return waits


FROZEN_NOW = "2024-03-01T00:00:01Z"


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    """Windows end at "now"; freeze it so requests are exact (2024-03-01T00:00:01Z, epoch 1709251201)."""
    from datetime import datetime, timezone

    moment = datetime(2024, 3, 1, 0, 0, 1, tzinfo=timezone.utc)
    monkeypatch.setattr("source_sendgrid.base.utc_now", lambda: moment)
    monkeypatch.setattr("source_sendgrid.incremental.utc_now", lambda: moment)
    return moment


# Every test: no API key or subuser name in any output, and no key sent to a host other than the API host.
from sendgrid_emulator.secrets_guard import no_secret_leaks, pytest_runtest_makereport  # noqa: E402,F401

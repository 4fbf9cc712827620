import pytest

from sendgrid_emulator import Emulator


@pytest.fixture
def emulator():
    """A small seeded account on 127.0.0.1, fresh for each test."""
    with Emulator(size=60, seed=7) as running:
        yield running


@pytest.fixture(scope="module")
def shared_emulator():
    """One larger account for read-only tests of a module (do not mutate it)."""
    with Emulator(size=1200, seed=11) as running:
        yield running


# Every test: no API key or subuser name in any output, and no key sent to a host other than the API host.
from sendgrid_emulator.secrets_guard import no_secret_leaks, pytest_runtest_makereport  # noqa: E402,F401

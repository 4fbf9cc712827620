import pytest

from integration_tests.emulator import Emulator


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

"""A local SendGrid v3 API emulator for end-to-end tests, the demo and benchmarks.

`server.Emulator` serves a seeded account (`families/`, one module per API family, each with its ground truth),
with faults, rate limits and refused keys on demand. `harness` runs the connector against it (in-process or as
a process) and `secrets_guard` checks that no test output holds the API key: both are used by the unit and
end-to-end tests, the benchmarks and the demo. The connector never imports this package.
"""

from .server import FULL_ACCESS_KEY, Emulator

__all__ = ["Emulator", "FULL_ACCESS_KEY"]

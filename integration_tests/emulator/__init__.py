"""A local SendGrid v3 API emulator for end-to-end tests, the demo and benchmarks."""

from .server import FULL_ACCESS_KEY, Emulator

__all__ = ["Emulator", "FULL_ACCESS_KEY"]

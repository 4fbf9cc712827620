"""The seeded SendGrid account the emulator serves: deterministic for a seed and a size."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, Dict

# Seeded records are created inside this range (epoch seconds), so they never depend on today's date.
SEED_START = 1672531200  # 2023-01-01T00:00:00Z
SEED_END = 1767139200  # 2025-12-31T00:00:00Z


@dataclass
class Account:
    seed: int = 42
    size: int = 100
    counts: Dict[str, int] = field(default_factory=dict)
    data: Dict[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def rng(self, family: str) -> random.Random:
        """One generator per family, so adding a family never changes another family's data."""
        return random.Random(f"{self.seed}:{family}")

    def count(self, name: str, default: int) -> int:
        return int(self.counts.get(name, default))

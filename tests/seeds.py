"""Seeds for tests that make random choices (kill moments, delays)."""
from __future__ import annotations

import os


def seed_for(name: str) -> int:
    """A seed for a test's random choices: $MSM4SR_TEST_SEED to replay a failure, else a fresh
    one. Printed (pytest shows it with a failure) so the failing run can be repeated."""
    env = os.environ.get("MSM4SR_TEST_SEED", "").strip()
    seed = int(env) if env else int.from_bytes(os.urandom(4), "little")
    print(f"{name}: seed {seed} (replay with MSM4SR_TEST_SEED={seed})")
    return seed

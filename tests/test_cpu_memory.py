"""core.train.keep_freed_memory: freed big tensors stay in the process, so allocating them
again does not page-fault (measured in fresh processes, since the setting is process-wide)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHILD = r"""
import resource, sys
sys.path.insert(0, sys.argv[1])
import torch
from core.train import keep_freed_memory
kept = keep_freed_memory() if sys.argv[2] == "1" else False
for _ in range(8):                        # warm up: the heap grows over the first rounds
    torch.empty(16 << 20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(16 << 20).fill_(1.0)      # 64 MB, freed at once: what a training step does
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep: bool) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), "1" if keep else "0"],
                         capture_output=True, text=True, check=True, timeout=120).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux only")
def test_freed_tensors_are_reused_without_page_faults():
    kept, with_setting = _faults(True)
    assert kept
    _, default = _faults(False)
    # by default each 64 MB block is mapped afresh: ~16k faults of 4 KiB pages per round
    assert default > 10 * 10_000
    assert with_setting < default / 5   # 0 once warm; at most a round of late heap growth

"""core.train.keep_freed_memory: a freed big tensor's memory stays in the process, so the next
step's tensor reuses it instead of mapping fresh pages. Counted in bytes by glibc's own
mallinfo2 (page-fault counts depend on transparent huge pages and glibc settings; their
effect on speed is bench/bench_cpu_steps.py's figure). Fresh processes: the setting is
process-wide."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = 64 << 20                          # what a training step allocates and frees, in bytes
CHILD = r"""
import ctypes, json, sys
sys.path.insert(0, sys.argv[1])
import torch
from core.train import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

def info():
    m = libc.mallinfo2()
    return {"heap": m.arena, "mmapped": m.hblkhd, "free_in_heap": m.fordblks}

kept = keep_freed_memory() if sys.argv[2] == "1" else False
n = int(sys.argv[3]) // 4
for _ in range(4):                        # warm up: the heap grows over the first rounds
    torch.empty(n).fill_(1.0)
out = {"kept": kept, "base": info(), "rounds": []}
for _ in range(5):                        # allocated, filled and freed: what a training step does
    t = torch.empty(n).fill_(1.0)
    live = info()
    del t
    out["rounds"].append({"live": live, "freed": info()})
print(json.dumps(out))
"""


def _memory(keep: bool) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(REPO), "1" if keep else "0", str(BLOCK)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def _has_mallinfo2() -> bool:
    import ctypes
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_mallinfo2(),
                    reason="glibc's mallopt and mallinfo2 (glibc 2.33+) are Linux only")
def test_freed_tensors_stay_in_the_process_and_are_reused():
    default = _memory(False)
    # glibc's default: each 64 MB block is mapped on its own and handed back when freed
    base = default["base"]
    for r in default["rounds"]:
        assert r["live"]["mmapped"] - base["mmapped"] >= BLOCK
        assert r["freed"]["mmapped"] == base["mmapped"]

    kept = _memory(True)
    assert kept["kept"] is True
    base = kept["base"]
    slack = BLOCK // 8                    # small allocations of the interpreter around it
    # a busy machine can leave the warm-up one block short, so the heap may grow once more; without
    # reuse it would grow by a block every round (5 blocks here)
    heaps = [r["live"]["heap"] for r in kept["rounds"]]
    assert max(heaps) - base["heap"] < BLOCK + slack
    assert max(heaps[-3:]) - min(heaps[-3:]) < slack             # then the same heap every step
    for r in kept["rounds"]:
        assert r["live"]["mmapped"] == base["mmapped"]         # taken from the heap, never mapped
        assert abs(r["freed"]["heap"] - r["live"]["heap"]) < slack  # not trimmed when freed ...
        assert r["freed"]["free_in_heap"] >= BLOCK             # ... but kept free for the next step

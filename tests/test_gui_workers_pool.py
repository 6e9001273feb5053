"""A short background task never waits behind long ones (a 2-core machine has 2 pool threads
by default, and the item map's UMAP or the CLIP check runs for a minute)."""
import threading

from gui.workers import run_task, wait_all


def test_a_short_task_runs_while_three_long_ones_block(qtbot):
    release = threading.Event()
    for _ in range(3):
        run_task(release.wait, 60)
    done = []
    run_task(lambda: 42, on_done=done.append)
    try:
        qtbot.waitUntil(lambda: done == [42], timeout=20_000)
    finally:
        release.set()
        wait_all()

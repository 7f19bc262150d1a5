"""`anchorlens.files.file_lock`: exclusive, and gone once released (a finished run leaves no lock file)."""

from __future__ import annotations

import threading
import time

from anchorlens.files import file_lock


def test_a_released_lock_leaves_no_file(tmp_path):
    lock = tmp_path / "parts" / "part.lock"
    with file_lock(lock):
        assert lock.is_file()
    assert not lock.exists()


def test_the_lock_stays_exclusive_while_holders_remove_its_file(tmp_path):
    """Each holder removes the file on release; a waiter that locked the removed file must not run beside the
    next holder of a new one (the check that the path still names the locked file)."""
    lock = tmp_path / "part.lock"
    inside, overlaps = [0], []

    def work():
        for _ in range(5):
            with file_lock(lock):
                inside[0] += 1
                overlaps.append(inside[0])
                time.sleep(0.005)
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(overlaps) == 20 and max(overlaps) == 1
    assert not lock.exists()

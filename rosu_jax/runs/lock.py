"""One run at a time per work directory: an advisory lock that the operating system releases when the process ends
(even on SIGKILL), so a crashed run never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path


class WorkDirBusy(RuntimeError):
    """Another process holds the work directory."""


class WorkDirLock:
    """``with WorkDirLock(work_dir, wait=False):`` holds ``<work_dir>/.lock``.

    With ``wait=False`` a second run fails at once, naming the process that holds the directory; with
    ``wait=True`` it says so and waits for it (then reuses everything that run finished).
    """

    def __init__(self, work_dir: str | os.PathLike, *, wait: bool = False, poll_s: float = 0.5):
        self.path = Path(work_dir) / ".lock"
        self.wait = wait
        self.poll_s = poll_s
        self._file = None

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def __enter__(self) -> WorkDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+")  # noqa: SIM115 (held for the lock's lifetime)
        announced = False
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder()
                if not self.wait:
                    self._file.close()
                    raise WorkDirBusy(
                        f"the work directory {self.path.parent} is in use by {holder}; wait for it to finish "
                        "(--wait-for-lock), or give this run another --work-dir."
                    ) from None
                if not announced:
                    print(f"rosu-unlearn: {self.path.parent} is in use by {holder}; waiting for it", file=sys.stderr)
                    announced = True
                time.sleep(self.poll_s)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"process {os.getpid()} ({' '.join(sys.argv[:3])}, since {time.strftime('%H:%M:%S')})")
        self._file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

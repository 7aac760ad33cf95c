"""The committed benchmark files carry no absolute path of the machine they were written on."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from benchmarks import common

# This machine's folders: the checkout's parent, the home folder and the temporary folder (derived, not written
# out, so the check follows whichever machine runs it).
FOLDERS = (common.REPO.parent, Path.home(), Path(tempfile.gettempdir()))
MACHINE_PATHS = tuple(sorted({f"{folder.as_posix()}/".encode() for folder in FOLDERS if folder != Path("/")}))


def test_no_machine_paths_in_committed_files():
    listed = subprocess.run(["git", "ls-files", "-z", "benchmarks"], cwd=common.REPO, capture_output=True, check=False)
    files = [common.REPO / name for name in listed.stdout.decode().split("\0") if name]
    if listed.returncode or not files:  # not a git checkout: every file under benchmarks/
        files = [p for p in (common.REPO / "benchmarks").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    offending = [
        (str(p.relative_to(common.REPO)), path.decode())
        for p in files
        if p.exists()
        for path in MACHINE_PATHS
        if path in p.read_bytes()
    ]
    assert not offending, offending

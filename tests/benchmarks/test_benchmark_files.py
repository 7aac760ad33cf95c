"""The committed benchmark files carry no absolute path of the machine they were written on."""

from __future__ import annotations

import subprocess

from benchmarks import common

MACHINE_PATHS = (b"/work/", b"/root/", b"/tmp/")


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

"""What keys cached results, and the cache of finished rows.

Every checkpoint and cached row is named by ``stable_hash`` of what produced it: the data's content fingerprint,
every setting that changes the numbers (the device mesh included), and ``code_fingerprint()`` (the package version
plus a hash of the package's source files), so a stale entry is never found, let alone used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from pathlib import Path

import rosu_jax
from rosu_jax.core.paths import cache_root


def default_work_dir() -> Path:
    """Where checkpoints and finished rows live when no --work-dir is given."""
    return cache_root() / "runs"


@functools.cache
def code_fingerprint() -> str:
    """``<version>-<hash of every source and data file of the package>``: changing the library changes it."""
    return f"{rosu_jax.__version__}-{source_hash(Path(rosu_jax.__file__).parent)}"


def source_hash(root: Path) -> str:
    """A hash of the names and contents of the .py/.json/.jsonl/.yaml files under ``root``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".json", ".jsonl", ".yaml") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


class RowCache:
    """One JSON file per finished row, named by the hash of everything that determines it.

    Writes are atomic (a temporary file renamed into place). A damaged entry (empty, truncated, not a row) is
    reported with its path, removed and recomputed; it never stops a run.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> dict | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or not isinstance(record.get("row"), dict):
                raise ValueError("not a cached row")
            return record
        except (OSError, ValueError) as err:
            warnings.warn(f"damaged cached row {path} ({err}); removed, it will be recomputed", stacklevel=2)
            path.unlink(missing_ok=True)
            return None

    def save(self, key: str, record: dict) -> None:
        path = self.path(key)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, allow_nan=False))
        tmp.replace(path)


def strict(value):
    """``value`` with every non-finite float replaced by None, so it is valid strict JSON."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value

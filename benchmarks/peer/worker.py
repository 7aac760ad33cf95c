"""The line protocol between ``peer_torchunlearn.py`` (the driver) and its two timing workers (stdlib only).

The driver writes one JSON command per line to a worker's stdin; the worker answers each with one JSON line on
its *original* stdout (``serve`` moves everything else printed to stdout onto stderr, so library chatter
cannot corrupt the protocol). Commands: ``{"cmd": "info"}``, ``{"cmd": "setup", ...}``,
``{"cmd": "run", "case_id": ..., "steps": K}``, ``{"cmd": "diag", ...}``, ``{"cmd": "quit"}``.
A handler raising an exception answers ``{"error": "..."}`` instead of killing the worker.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def serve(handlers: dict[str, Handler]) -> None:
    """Answer commands from stdin until ``quit`` or end of input."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        cmd = message.get("cmd")
        if cmd == "quit":
            proto.write(json.dumps({"ok": True}) + "\n")
            break
        try:
            if cmd not in handlers:
                raise ValueError(f"unknown command {cmd!r}")
            reply = handlers[cmd](message)
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which decides
            traceback.print_exc()
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        proto.write(json.dumps(reply) + "\n")
    proto.close()


def loadavg_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None

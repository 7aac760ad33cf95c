"""TOFU's reference files shipped with the package (from locuslab/tofu, commit bdc209e; MIT licence in
``assets/LICENSE``): the real-author and world-fact questions of Model Utility and the refusal strings that are the
targets of the IdK objective (Maini et al. 2024, arXiv 2401.06121)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def _read(name: str) -> str:
    return resources.files("rosu_jax.tasks.tofu").joinpath("assets", name).read_text(encoding="utf-8")


def _read_jsonl(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _read(name).splitlines() if line.strip()]


def load_idontknow() -> list[str]:
    """The 100 refusal strings ("I'm not sure.", ...), stripped as the reference code used them."""
    return [line.strip() for line in _read("idontknow.jsonl").splitlines() if line.strip()]


def load_real_authors() -> list[dict[str, Any]]:
    """The 100 real-author items: ``question``, ``answer``, ``perturbed_answer`` (3 wrong answers)."""
    return _read_jsonl("real_authors_perturbed.json")


def load_world_facts() -> list[dict[str, Any]]:
    """The 117 world-fact items: ``question``, ``answer``, ``perturbed_answer`` (3 wrong answers)."""
    return _read_jsonl("world_facts_perturbed.json")

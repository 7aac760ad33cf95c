"""Trainable subsets of a parameter tree: which leaves an unlearning run may change.

A run trains ``trainable`` and keeps ``frozen`` fixed; both are nested dicts holding disjoint leaves of ``params``,
and ``combine(trainable, frozen)`` gives the whole tree back. Gradients, inner products and norms (ROSU's
projection included) then run over the trainable leaves only, and the optimizer keeps state for them only.

Leaves are named by their dotted path, e.g. ``layers.5.mlp.down_proj.kernel``. A selection is ``"all"``, a regular
expression over these names (``re.search``), or a layer range ``layers.5-7.mlp.down_proj`` (a shorthand for
layers 5, 6 and 7). A selection that matches nothing is an error that lists the names there are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from flax.nnx import traversals

from rosu_jax.core.types import PyTree

_RANGE = re.compile(r"(\w+)\.(\d+)-(\d+)")


def leaf_names(params: Mapping) -> list[str]:
    """The dotted names of every leaf, in tree order."""
    return [".".join(map(str, path)) for path in traversals.flatten_mapping(params)]


def selection_pattern(selection: str) -> re.Pattern:
    """The regular expression of a selection (``layers.5-7.x`` becomes ``layers\\.(5|6|7)\\.x``)."""

    def expand(match: re.Match) -> str:
        first, last = int(match.group(2)), int(match.group(3))
        if last < first:
            raise ValueError(f"trainable selection {selection!r}: range {first}-{last} is empty.")
        return rf"{match.group(1)}\.({'|'.join(str(i) for i in range(first, last + 1))})"

    if _RANGE.search(selection):
        escaped = _RANGE.sub(lambda m: "\0" + m.group(0) + "\0", selection).split("\0")
        text = "".join(
            expand(_RANGE.fullmatch(part)) if _RANGE.fullmatch(part) else part.replace(".", r"\.") for part in escaped
        )
        return re.compile(rf"(^|\.){text}(\.|$)")
    try:
        return re.compile(selection)
    except re.error as err:
        raise ValueError(f"trainable selection {selection!r} is not a regular expression ({err}).") from None


def partition(params: Mapping, selection: str = "all") -> tuple[PyTree, PyTree]:
    """``(trainable, frozen)``: the leaves whose dotted name the selection matches, and the others."""
    flat = traversals.flatten_mapping(params)
    if selection == "all":
        return params, {}
    pattern = selection_pattern(selection)
    chosen = {path for path in flat if pattern.search(".".join(map(str, path)))}
    if not chosen:
        names = leaf_names(params)
        sample = ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
        raise ValueError(f"trainable selection {selection!r} matches no parameter; the names are: {sample}.")
    trainable = traversals.unflatten_mapping({p: v for p, v in flat.items() if p in chosen})
    frozen = traversals.unflatten_mapping({p: v for p, v in flat.items() if p not in chosen})
    return trainable, frozen


def combine(trainable: Mapping, frozen: Mapping) -> dict:
    """The whole tree from two disjoint parts (dict union at every level)."""
    if not frozen:
        return trainable
    merged = dict(frozen)
    for key, value in trainable.items():
        merged[key] = combine(value, frozen[key]) if key in frozen and isinstance(value, Mapping) else value
    return merged

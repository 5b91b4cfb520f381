"""digest_sensitive and redact test each key once (issue 13): the same result as testing
every node's whole path, for secrets at any depth, under lists and under secret parents."""

from __future__ import annotations

import random
from collections.abc import Sequence

from reconciler.core.model import JSON
from reconciler.core.sensitive import (
    MASK,
    digest_sensitive,
    is_sensitive_path,
    redact,
    sensitive_digest,
)

KEYS = ["name", "spec", "userData", "password", "apiToken", "disks", "volumes", "ssh_key", "a"]


def by_path(value: JSON, path: Sequence[str | int], hide: str) -> JSON:
    """The definition: a node is hidden when its path, or any ancestor's, is sensitive."""
    if is_sensitive_path(path):
        return MASK if hide == "mask" else sensitive_digest(value)
    if isinstance(value, dict):
        return {k: by_path(v, (*path, k), hide) for k, v in value.items()}
    if isinstance(value, list):
        return [by_path(v, (*path, i), hide) for i, v in enumerate(value)]
    return value


def tree(rng: random.Random, depth: int) -> JSON:
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(["x", 1, None, True, 2.5])
    if rng.random() < 0.3:
        return [tree(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS): tree(rng, depth - 1) for _ in range(rng.randint(0, 4))}


def test_one_test_per_key_equals_the_whole_path_definition() -> None:
    rng = random.Random(13)
    for _ in range(400):
        value = tree(rng, 6)
        for path in [(), ("spec",), ("spec", 0), ("cloudInit", "userData")]:
            assert digest_sensitive(value, path) == by_path(value, path, "digest")
            assert redact(value, path) == by_path(value, path, "mask")

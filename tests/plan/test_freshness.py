"""Safety rule 15 at the unit level (issue 14): a saved plan runs only against the inputs
it was computed from; the content hash identifies a set of files exactly."""

from __future__ import annotations

import dataclasses

import pytest
from plan_helpers import plan_of

from reconciler.core.model import VirtsyncError
from reconciler.planning.plan_model import Fingerprints, check_fresh, content_hash

FP = Fingerprints("c1", "t1", "sha256:" + "a" * 64, "git:main@c0", "sha256:" + "b" * 64)


def test_same_inputs_are_fresh() -> None:
    plan = dataclasses.replace(plan_of("", ""), fingerprints=FP)
    check_fresh(plan, FP)
    # The commit and tree are shown to users, not compared: the content hash is the input.
    check_fresh(plan, dataclasses.replace(FP, desired_commit="c2", desired_tree="t2"))


def test_changed_tree_is_stale_and_says_which_hashes() -> None:
    plan = dataclasses.replace(plan_of("", ""), fingerprints=FP)
    now = dataclasses.replace(FP, desired_hash="sha256:" + "c" * 64)
    with pytest.raises(VirtsyncError) as exc:
        check_fresh(plan, now)
    assert f"({'sha256:' + 'a' * 12} → {'sha256:' + 'c' * 12})" in str(exc.value)


def test_changed_live_state_is_stale() -> None:
    plan = dataclasses.replace(plan_of("", ""), fingerprints=FP)
    with pytest.raises(VirtsyncError, match=r"live state changed.*git:main@c0"):
        check_fresh(plan, dataclasses.replace(FP, live_hash="sha256:" + "d" * 64))


def test_content_hash_is_order_free_and_exact() -> None:
    items = [("a.yaml", "sha1"), ("b.yaml", "sha2")]
    assert content_hash(items) == content_hash(reversed(items))
    assert content_hash(items) != content_hash([("a.yaml", "sha1")])
    # path and digest are kept apart: moving a character across them is a change
    assert content_hash([("ab", "c")]) != content_hash([("a", "bc")])
    assert content_hash([]).startswith("sha256:") and len(content_hash([])) == 71

"""The saved-plan comparison (safety rule 15): strict, leaf by leaf, naming each path."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.planning.savedplan import ABSENT, check_prune_scope, mismatches


@pytest.mark.parametrize(("saved", "derived"), [
    (True, 1), (1, 1.0), (0, False), (None, False), ("1", 1), ([], {}), ({}, None),
])
def test_equal_in_python_is_not_equal_in_a_plan(saved: Any, derived: Any) -> None:
    (m,) = mismatches({"a": [saved]}, {"a": [derived]})
    assert (m.path, m.saved, m.derived) == ("a[0]", saved, derived)


def test_every_added_removed_and_changed_leaf_is_named() -> None:
    derived = {"changes": [{"actions": ["update"], "wave": 0}], "backend": "libvirt"}
    saved = {"changes": [{"actions": ["update", "delete"], "force": True}, {"x": 1}],
             "backend": "libvirt"}
    found = {m.path: (m.saved, m.derived) for m in mismatches(saved, derived)}
    assert found == {"changes[0].actions[1]": ("delete", ABSENT),
                     "changes[0].wave": (ABSENT, 0),
                     "changes[0].force": (True, ABSENT),
                     "changes[1]": ({"x": 1}, ABSENT)}
    assert mismatches(derived, derived) == []


def test_prune_scope_checks_both_spellings_of_the_key() -> None:
    mine = [ObjectKey("VirtualMachine", "ns", "mine")]
    own = {"key": "VirtualMachine/ns/mine", "kind": "VirtualMachine", "namespace": "ns",
           "name": "mine", "actions": ["delete"]}
    check_prune_scope({"changes": [own]}, mine, "p.json")
    for edit in ({"key": "VirtualMachine/ns/theirs"}, {"name": "theirs"},
                 {"namespace": "other"}):
        with pytest.raises(VirtsyncError, match="not in this source's inventory"):
            check_prune_scope({"changes": [dict(own, **edit)]}, mine, "p.json")
    # Not a deletion: out of scope for this check (the comparison refuses it).
    check_prune_scope({"changes": [dict(own, name="theirs", actions=["update"])]}, mine, "p")


def test_prune_scope_of_a_replace_is_the_name_a_rename_leaves() -> None:
    # Plan format 2 writes a replace as ["delete", "create"]: it redefines its own key
    # (not a prune), and a rename undefines its previous key, which must be ours.
    mine = [ObjectKey("VirtualMachine", "ns", "old")]
    replace = {"key": "VirtualMachine/ns/new", "kind": "VirtualMachine", "namespace": "ns",
               "name": "new", "actions": ["delete", "create"], "previous_key": None}
    check_prune_scope({"changes": [replace]}, mine, "p.json")
    check_prune_scope({"changes": [dict(replace, previous_key="VirtualMachine/ns/old")]},
                      mine, "p.json")
    with pytest.raises(VirtsyncError, match="VirtualMachine/ns/theirs, not in this source"):
        check_prune_scope({"changes": [dict(replace, previous_key="VirtualMachine/ns/theirs")]},
                          mine, "p.json")

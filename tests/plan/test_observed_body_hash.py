"""A live object's body hash is computed once per Observed (issue 13: the live hash and
the unchanged memo both use it) and always stands for that object's own body: another
body, also under the same key, hashes anew."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.model import Manifest, SourceRef
from reconciler.planning.plan_model import Observed
from reconciler.planning.reconcile import live_hash
from reconciler.tree.desired import body_hash


def _vm(cores: int) -> Manifest:
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "web", "namespace": "team"},
            "spec": {"template": {"spec": {"domain": {"cpu": {"cores": cores}}}}}}
    return Manifest("kubevirt.io/v1", "VirtualMachine", "team", "web", body,
                    SourceRef("<live>", 0))


def test_the_hash_is_the_body_hash_of_its_own_body() -> None:
    one = Observed(_vm(1), node="n1", running=False)
    assert one.body_hash == body_hash(one.manifest.body)
    two = replace(one, manifest=_vm(2))
    assert two.body_hash == body_hash(_vm(2).body) != one.body_hash


def test_a_changed_body_changes_the_live_hash() -> None:
    before = [Observed(_vm(1), node="n1", running=False)]
    assert live_hash(before) == live_hash([Observed(_vm(1), node="n1", running=False)])
    assert live_hash(before) != live_hash([replace(before[0], manifest=_vm(2))])

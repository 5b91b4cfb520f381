"""Issue 13: a plan reads its pairs and each desired object's claims once
(`PlanFacts`); those facts belong to that plan's objects and never carry over to the
next plan in the same process (watch plans again and again)."""

from __future__ import annotations

from plan_helpers import FP, LIBVIRT
from test_disk_ownership import _disk, _vm

from reconciler.core.model import Action, Manifest
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_facts import PlanFacts
from reconciler.planning.plan_model import Observed


def _order(desired: list[Manifest], live: list[Observed]) -> list[tuple[str, tuple[Action, ...]]]:
    plan = make_plan(desired, live, fingerprints=FP, profile=LIBVIRT)
    return [(c.key.name, c.actions) for c in plan.changes]


def test_same_keys_other_claims_and_pairs_plan_by_their_own_facts() -> None:
    # Same VM keys both times; who owns what the other mounts flips, and a lives only
    # in the first plan: each plan orders and pairs by its own objects.
    a_first = [_vm("a", mounts={"v": {"dataVolume": {"name": "b-own"}}}),
               _vm("b", owns=("b-own",))]
    b_first = [_vm("a", owns=("a-own",)),
               _vm("b", mounts={"v": {"dataVolume": {"name": "a-own"}}})]
    live_a = [Observed(_vm("a", mounts={"v": {"dataVolume": {"name": "b-own"}}}))]
    for _ in range(2):
        assert _order(a_first, live_a) == [("b", (Action.CREATE,))]
        assert _order(b_first, []) == [("a", (Action.CREATE,)), ("b", (Action.CREATE,))]
        assert _order(a_first, []) == [("b", (Action.CREATE,)), ("a", (Action.CREATE,))]


def test_claim_users_come_from_this_plans_desired_vms() -> None:
    # Rule 13: the deleted VM's owned claim is kept while a desired VM mounts it, and
    # deleted in the next plan where no VM of that plan mounts it any more.
    gone = Observed(_vm("gone", owns=("data",), delete=True), disks=(_disk("d", "data"),))
    user = _vm("user", mounts={"v": {"persistentVolumeClaim": {"claimName": "data"}}})
    other = _vm("user", mounts={"v": {"persistentVolumeClaim": {"claimName": "else"}}})
    for _ in range(2):
        for desired, deleted in (([user], False), ([other], True)):
            plan = make_plan(desired, [gone], fingerprints=FP, profile=LIBVIRT)
            (change,) = [c for c in plan.changes if c.is_delete]
            assert [d.delete for d in change.disks] == [deleted]


def test_facts_are_each_objects_own() -> None:
    x = _vm("x", owns=("x-own",), mounts={"v": {"dataVolume": {"name": "shared"}}})
    y = _vm("y", mounts={"v": {"persistentVolumeClaim": {"claimName": "x-own"}}})
    z = _vm("z", owns=("z-img", "z-blank"))
    z.body["spec"]["dataVolumeTemplates"][0]["spec"] = {"source": {"http": {"url": "u"}}}
    facts = PlanFacts.of([x, _vm("w"), y, z], [Observed(y)])  # w names no claim
    assert [(c.key.name, set(c.owned), set(c.referenced), set(c.blank))
            for c in facts.claims] == [
        ("x", {"x-own"}, {"x-own", "shared"}, {"x-own"}), ("y", set(), {"x-own"}, set()),
        ("z", {"z-img", "z-blank"}, {"z-img", "z-blank"}, {"z-blank"})]
    assert [(p.key.name, p.live is not None) for p in facts.pairs] == [
        ("x", False), ("w", False), ("y", True), ("z", False)]

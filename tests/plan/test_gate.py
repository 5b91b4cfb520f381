"""apply's gate, table-driven (issue 14: kills surviving mutants of reconciler/execute/apply.py):
for each disruption class, which flag or VM policy annotation in git lets it through.
Restart and replace need --allow-restart (or --allow-data-loss, or the policy restart,
replace or data-loss); data loss needs --allow-data-loss or the policy data-loss; live
and none never need anything; a delete is gated only with --prune."""

from __future__ import annotations

import pytest
from plan_helpers import manifests, plan_of

from reconciler.execute.apply import ApplyOptions, allowed_by_policy, gate
from reconciler.planning.classify import Disruption

VM = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
  namespace: prod
  annotations: {annotations}
spec:
  runStrategy: {run}
  dataVolumeTemplates:
  - metadata:
      name: web-data
    spec:
      storage:
        resources:
          requests:
            storage: {size}
      source:
        blank: {{}}
  template:
    spec:
      nodeSelector: {selector}
      domain:
        firmware:
          uuid: 6d3c0b52-3f5e-4d16-9a1f-000000000001
        cpu:
          cores: {cores}
        devices:
          disks:
          - name: data
            disk:
              bus: virtio
      volumes:
      - name: data
        dataVolume:
          name: web-data
"""


def vm(policy: str | None = None, *, run: str = "Always", cores: int = 1,
       size: str = "2Gi", disk_policy: str | None = None, zone: str = "a",
       name: str = "web") -> str:
    ann = {}
    if policy:
        ann["virtsync.io/allow-disruption"] = policy
    if disk_policy:
        ann["virtsync.io/disk-policy"] = disk_policy
    text = ", ".join(f'"{k}": "{v}"' for k, v in ann.items())
    return VM.format(annotations="{" + text + "}", run=run, cores=cores, size=size, name=name,
                     selector="{zone: " + zone + "}")


CHANGES = {  # name → (base, head after, expected class)
    "live": (dict(run="Halted"), dict(run="Always"), Disruption.LIVE),
    "restart": (dict(cores=1), dict(cores=2), Disruption.RESTART),
    # A rename (paired by the pinned firmware UUID) defines the domain again.
    "replace": (dict(name="web"), dict(name="web2"), Disruption.REPLACE),
    "data-loss": (dict(size="2Gi"), dict(size="1Gi"), Disruption.DATA_LOSS),
}
NEEDS = {  # (class, policy) → the flag still needed, or None
    ("live", None): None, ("live", "restart"): None,
    ("restart", None): "--allow-restart", ("restart", "restart"): None,
    ("restart", "replace"): None, ("restart", "data-loss"): None,
    ("restart", "bogus"): "--allow-restart",
    ("replace", None): "--allow-restart", ("replace", "replace"): None,
    ("replace", "data-loss"): None,
    ("data-loss", None): "--allow-data-loss", ("data-loss", "restart"): "--allow-data-loss",
    ("data-loss", "replace"): "--allow-data-loss", ("data-loss", "data-loss"): None,
}
FLAGS = {
    "none": ApplyOptions(),
    "restart": ApplyOptions(allow_restart=True),
    "data-loss": ApplyOptions(allow_data_loss=True),
}


@pytest.mark.parametrize("flags", sorted(FLAGS))
@pytest.mark.parametrize(("change", "policy"), sorted(NEEDS, key=str))
def test_gate(change: str, policy: str | None, flags: str) -> None:
    before, after, cls = CHANGES[change]
    head = vm(policy, **after)
    plan = plan_of(head, vm(policy, **before))
    (c,) = plan.changes
    assert c.disruption == cls
    desired = {m.key: m for m in manifests(head)}
    needed = NEEDS[(change, policy)]
    if needed == "--allow-restart" and flags in ("restart", "data-loss"):
        needed = None  # --allow-data-loss implies --allow-restart
    if needed == "--allow-data-loss" and flags == "data-loss":
        needed = None
    assert [r.needs for r in gate(plan, desired, FLAGS[flags])] == \
        ([needed] if needed else [])


@pytest.mark.parametrize(("disk_policy", "needs"), [(None, []), ("Delete", ["--allow-data-loss"])])
def test_gate_on_deletes(disk_policy: str | None, needs: list[str]) -> None:
    plan = plan_of("", vm(disk_policy=disk_policy))
    assert gate(plan, {}, ApplyOptions()) == []  # without --prune: skipped, not gated
    assert [r.needs for r in gate(plan, {}, ApplyOptions(prune=True))] == needs
    assert gate(plan, {}, ApplyOptions(prune=True, allow_data_loss=True)) == []


def test_policy_values() -> None:
    assert allowed_by_policy(None) == Disruption.LIVE
    for policy, allowed in [(None, Disruption.LIVE), ("bogus", Disruption.LIVE),
                            ("restart", Disruption.REPLACE), ("replace", Disruption.REPLACE),
                            ("data-loss", Disruption.DATA_LOSS)]:
        (m,) = manifests(vm(policy))
        assert allowed_by_policy(m) == allowed, policy

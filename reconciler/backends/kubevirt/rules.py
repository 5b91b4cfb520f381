"""KubeVirt's live-update rules as classification rows, per VM rollout strategy.

KubeVirt decides which template changes reach a running VM (`vmRolloutStrategy` in the
KubeVirt CR): with `LiveUpdate` (the default from KubeVirt 1.6) CPU sockets, guest memory,
node selector, affinity, tolerations and hotpluggable volumes are propagated, CPU and
memory by live-migrating the VM; any other template change sets the VM's
`RestartRequired` condition and takes effect at the next restart. With `Stage` (the
default before 1.6) every template change does. Sources: kubevirt
`pkg/virt-controller/watch/vm/vm.go` (`syncRestartRequired`) and
https://kubevirt.io/user-guide/user_workloads/vm_rollout_strategies/ .

These rows come before COMMON_RULES (reconciler/planning/classify.py): its identity and
data-loss rows still decide what they match, and its `spec.template.spec.**` row is the
RestartRequired default. docs/plan.md has the table with one citation per row.
"""

from __future__ import annotations

from enum import StrEnum

from reconciler.core.model import DiffOp
from reconciler.planning.classify import ADD_REMOVE, Disruption, Rule

L, R = Disruption.LIVE, Disruption.RESTART
TPL = "spec.template.spec"
DEV = f"{TPL}.domain.devices"
CHANGE = frozenset({DiffOp.CHANGE})


class RolloutStrategy(StrEnum):
    """The KubeVirt CR's `spec.configuration.vmRolloutStrategy`."""

    LIVE_UPDATE = "LiveUpdate"
    STAGE = "Stage"


DEFAULT_STRATEGY = RolloutStrategy.LIVE_UPDATE  # KubeVirt >= 1.6

_RESTART_REQUIRED = "KubeVirt sets RestartRequired: applied at the next restart"

# Either strategy: template fields COMMON_RULES calls harmless, which KubeVirt still
# holds back until a restart, and network changes (not propagated, see below).
_ALWAYS: tuple[Rule, ...] = (
    Rule(f"{TPL}.terminationGracePeriodSeconds", R, _RESTART_REQUIRED),
    Rule(f"{TPL}.evictionStrategy", R, _RESTART_REQUIRED),
    # Interface hotplug is not propagated by the rollout strategy (gitops-facts: network
    # changes set RestartRequired, except a Multus network swap).
    Rule(f"{DEV}.interfaces[*]", R, "interface added or removed: " + _RESTART_REQUIRED,
         ops=ADD_REMOVE),
    Rule(f"{TPL}.networks[*]", R, "network added or removed: " + _RESTART_REQUIRED,
         ops=ADD_REMOVE),
)

_LIVE_UPDATE: tuple[Rule, ...] = (
    Rule(f"{TPL}.domain.cpu.sockets", L,
         "CPU hotplug up to maxSockets: KubeVirt live-migrates the VM",
         when="within_max_sockets_or_ratio"),
    Rule(f"{TPL}.domain.cpu.sockets", R,
         "fewer sockets or beyond maxSockets: KubeVirt sets RestartRequired"),
    Rule(f"{TPL}.domain.memory.guest", L,
         "memory hotplug up to maxGuest: KubeVirt live-migrates the VM",
         when="within_max_guest_or_ratio"),
    Rule(f"{TPL}.domain.memory.guest", R,
         "less memory or beyond maxGuest: KubeVirt sets RestartRequired"),
    Rule(f"{TPL}.nodeSelector.**", L, "placement: updated on the running VMI (LiveUpdate)"),
    Rule(f"{TPL}.affinity.**", L, "placement: updated on the running VMI (LiveUpdate)"),
    Rule(f"{TPL}.tolerations.**", L, "placement: updated on the running VMI (LiveUpdate)"),
    # the one network change KubeVirt propagates: a Multus network swapped by migration
    Rule(f"{TPL}.networks[*].multus.networkName", L,
         "Multus network swapped: KubeVirt live-migrates the VM", ops=CHANGE),
    # hotpluggable volumes and their disks: COMMON_RULES' hotplug rows (live)
)

_STAGE: tuple[Rule, ...] = (
    # With Stage nothing in the template reaches a running VM, hotplug included.
    Rule(f"{TPL}.volumes[*]", R, "volume hotplug needs LiveUpdate: " + _RESTART_REQUIRED,
         ops=ADD_REMOVE, when="hotpluggable"),
    Rule(f"{DEV}.disks[*]", R, "disk hotplug needs LiveUpdate: " + _RESTART_REQUIRED,
         ops=ADD_REMOVE, when="hotpluggable"),
    Rule(f"{TPL}.domain.memory.guest", R, "memory hotplug needs LiveUpdate: "
         + _RESTART_REQUIRED),
    Rule(f"{TPL}.domain.cpu.sockets", R, "CPU hotplug needs LiveUpdate: " + _RESTART_REQUIRED),
    Rule(f"{TPL}.tolerations.**", R, "placement: " + _RESTART_REQUIRED),
)

RULES: dict[RolloutStrategy, tuple[Rule, ...]] = {
    RolloutStrategy.LIVE_UPDATE: _ALWAYS + _LIVE_UPDATE,
    RolloutStrategy.STAGE: _ALWAYS + _STAGE,
}

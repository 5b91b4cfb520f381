"""KubeVirt: for now a planning profile only (`virtsync plan --base --target kubevirt`).

Its rules follow KubeVirt's VM rollout strategy, read from the tree's Cluster object
(`spec.kubevirt.vmRolloutStrategy`, default LiveUpdate as in KubeVirt >= 1.6): see
`rules.py`. A backend that executes on a Kubernetes cluster adds `open_backend` here.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.backends.base import BackendProfile
from reconciler.backends.kubevirt.rules import DEFAULT_STRATEGY, RULES, RolloutStrategy
from reconciler.core.model import JSON, RUNNABLE_KINDS
from reconciler.planning.classify import INSTANCETYPE_KINDS, ClassificationProfile, Disruption, Rule

# KubeVirt stores a ControllerRevision per VM: an instancetype change reaches a VM only
# when it is restarted with a new revision.
_REVISIONS = Rule("spec.**", Disruption.NONE, "running VMs keep their revision until they "
                  "restart", kinds=INSTANCETYPE_KINDS)


def rollout_strategy(cluster_spec: Mapping[str, JSON]) -> RolloutStrategy:
    """The Cluster config's `spec.kubevirt.vmRolloutStrategy` (schema-checked), else
    KubeVirt's default."""
    kubevirt = cluster_spec.get("kubevirt")
    value = kubevirt.get("vmRolloutStrategy") if isinstance(kubevirt, Mapping) else None
    return RolloutStrategy(value) if isinstance(value, str) else DEFAULT_STRATEGY


def profile_for(strategy: RolloutStrategy) -> BackendProfile:
    return BackendProfile(
        classification=ClassificationProfile(
            "kubevirt",
            own_rules=(_REVISIONS, *RULES[strategy]),
            vm_delete_takes_owned_volumes=True,
        ),
        kinds=RUNNABLE_KINDS,
        configure=configure,
        plans_from_digests=False,  # the dry run sends the desired object to the server
    )


def configure(cluster_spec: Mapping[str, JSON]) -> BackendProfile:
    return PROFILES[rollout_strategy(cluster_spec)]


PROFILES: dict[RolloutStrategy, BackendProfile] = {s: profile_for(s) for s in RolloutStrategy}
PROFILE = PROFILES[DEFAULT_STRATEGY]

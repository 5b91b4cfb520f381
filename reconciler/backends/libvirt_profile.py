"""The libvirt backend's profile: how its changes are classified, what it applies.

Kept apart from `reconciler.backends.libvirt` (which opens it) so that planning with
libvirt's rules (git mode, no host) loads neither the libvirt bindings nor the node
components.
"""

from __future__ import annotations

from reconciler.backends.base import BackendProfile
from reconciler.core.model import RUNNABLE_KINDS
from reconciler.planning.classify import ClassificationProfile, Disruption, Rule

_PLACEMENT = "placement changed: the domain moves to another node"

PROFILE = BackendProfile(
    classification=ClassificationProfile(
        "libvirt",
        own_rules=(
            # No live migration yet: a VM whose placement changes is defined on its new
            # node and undefined on the old one.
            Rule("spec.template.spec.nodeSelector.**", Disruption.REPLACE, _PLACEMENT),
            Rule("spec.template.spec.affinity.**", Disruption.REPLACE, _PLACEMENT),
        ),
        # apply pins a content-hash revisionName: VMs follow their instancetype.
        vms_follow_references=True,
    ),
    # Instancetypes, preferences, DataVolumes and the Cluster object are configuration:
    # kept in git and the inventory, read when a VM is defined.
    kinds=RUNNABLE_KINDS,
)

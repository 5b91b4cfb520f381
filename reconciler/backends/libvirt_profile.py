"""The libvirt backend's profile: how its changes are classified, what it applies.

Kept apart from `reconciler.backends.libvirt` (which opens it) so that planning with
libvirt's rules (git mode, no host) loads neither the libvirt bindings nor the node
components.
"""

from __future__ import annotations

from reconciler.backends.base import BackendProfile
from reconciler.core.model import RUNNABLE_KINDS
from reconciler.planning.classify import ClassificationProfile, Disruption, Rule

_PLACEMENT = "placement: moves the VM only when its node no longer satisfies it (live migration when it can)"

PROFILE = BackendProfile(
    classification=ClassificationProfile(
        "libvirt",
        own_rules=(
            # Placement is virtsync's own (the domain XML does not hold it): an edit that
            # keeps the VM on its node changes nothing there; one that moves it is a live
            # migration when the VM can migrate, else a replace on the new node (the move
            # decision in reconciler.planning.moves says which, and why).
            Rule("spec.template.spec.nodeSelector.**", Disruption.LIVE, _PLACEMENT),
            Rule("spec.template.spec.affinity.**", Disruption.LIVE, _PLACEMENT),
        ),
        live_migration=True,
        # apply pins a content-hash revisionName: VMs follow their instancetype.
        vms_follow_references=True,
    ),
    # Instancetypes, preferences, DataVolumes and the Cluster object are configuration:
    # kept in git and the inventory, read when a VM is defined.
    kinds=RUNNABLE_KINDS,
)

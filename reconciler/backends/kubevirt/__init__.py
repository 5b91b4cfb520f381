"""KubeVirt: for now a planning profile only (`virtsync plan --base --backend kubevirt`).

A backend that executes on a Kubernetes cluster adds `open_backend` here.
"""

from __future__ import annotations

from reconciler.backends.base import BackendProfile
from reconciler.core.model import RUNNABLE_KINDS
from reconciler.planning.classify import INSTANCETYPE_KINDS, ClassificationProfile, Disruption, Rule

PROFILE = BackendProfile(
    classification=ClassificationProfile(
        "kubevirt",
        own_rules=(
            # KubeVirt stores a ControllerRevision per VM: an instancetype change reaches
            # a VM only when it is restarted with a new revision.
            Rule("spec.**", Disruption.NONE,
                 "running VMs keep their revision until they restart",
                 kinds=INSTANCETYPE_KINDS),
        ),
        vm_delete_takes_owned_volumes=True,
    ),
    kinds=RUNNABLE_KINDS,
)

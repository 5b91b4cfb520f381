"""The health-check cases: ours (examples/argocd/health, Argo CD's health_test.yaml layout)
and upstream Argo CD's (reference data), loaded the same way."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lua_sandbox import ArgoHealth, HealthStatus
from refdata import REFERENCE

ROOT = Path(__file__).resolve().parents[2]
HEALTH = ROOT / "examples" / "argocd" / "health" / "kubevirt.io"
KUSTOMIZATION = ROOT / "examples" / "flux" / "kustomization.yaml"
KINDS = ("VirtualMachine", "VirtualMachineInstance")

UPSTREAM = REFERENCE / "argocd-kubevirt-health" / "kubevirt.io"
# Locally a missing copy skips the upstream replays; in CI it is laid beside the clone,
# so there its absence must fail, as the other reference-data tests do.
UPSTREAM_SKIP = not UPSTREAM.is_dir() and os.environ.get("CI") != "true"

# kubevirt staging/src/kubevirt.io/api/core/v1/types.go, VirtualMachinePrintableStatus.
PRINTABLE_STATUSES = (
    "Stopped", "Provisioning", "Starting", "Running", "Paused", "Stopping", "Terminating",
    "CrashLoopBackOff", "Migrating", "Unknown", "ErrorUnschedulable", "ErrImagePull",
    "ImagePullBackOff", "ErrorPvcNotFound", "ErrorDataVolumeNotFound", "DataVolumeError",
    "WaitingForVolumeBinding", "WaitingForReceiver",
)
# ... and VirtualMachineInstancePhase.
VMI_PHASES = ("Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed", "Unknown")

# Upstream cases answered differently on purpose (docs/gitops.md lists them too).
DIFFERENT_FROM_UPSTREAM = {
    # `running: false` asks for a stopped VM: stopped is its goal, not a suspension.
    # Suspended stalls multi-wave syncs (argo-cd#29663).
    "upstream/VirtualMachine/suspended_stopped": HealthStatus(ArgoHealth.HEALTHY, "Stopped"),
    # A finished instance (the guest shut down) is done, like a VM with runStrategy Once.
    "upstream/VirtualMachineInstance/suspended_succeeded": HealthStatus(ArgoHealth.HEALTHY, "Succeeded"),
}


@dataclass(frozen=True)
class Case:
    kind: str
    input_path: str
    status: ArgoHealth
    message: str
    obj: dict[str, Any]
    origin: str = ""  # "upstream/" for Argo CD's own cases

    @property
    def id(self) -> str:
        return f"{self.origin}{self.kind}/{Path(self.input_path).stem}"

    @property
    def expected(self) -> HealthStatus:
        """What our script must answer: the case's own, or our deliberate difference."""
        return DIFFERENT_FROM_UPSTREAM.get(self.id, HealthStatus(self.status, self.message))


def load_object(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    # Upstream keeps one fixture as a List holding the object.
    if doc.get("kind") == "List":
        (doc,) = doc["items"]
    return doc


def load_cases(kind_dir: Path, origin: str = "") -> list[Case]:
    spec = yaml.safe_load((kind_dir / "health_test.yaml").read_text(encoding="utf-8"))
    return [Case(kind=kind_dir.name, input_path=t["inputPath"],
                 status=ArgoHealth(t["healthStatus"]["status"]),
                 message=t["healthStatus"]["message"],
                 obj=load_object(kind_dir / t["inputPath"]), origin=origin)
            for t in spec["tests"]]


def script(kind: str) -> str:
    return (HEALTH / kind / "health.lua").read_text(encoding="utf-8")


def our_cases() -> list[Case]:
    return [case for kind in KINDS for case in load_cases(HEALTH / kind)]


def upstream_cases() -> list[Case]:
    if UPSTREAM_SKIP:
        return []
    return [case for kind in KINDS for case in load_cases(UPSTREAM / kind, "upstream/")]

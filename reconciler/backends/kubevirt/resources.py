"""Where each kind lives in the Kubernetes API: group, version, plural, scope. Pure.

The backend talks to fixed REST paths instead of discovering them: the kinds it sends
are a closed set (those `virtsync render` emits, plus the ones it reads and creates
itself), and skipping discovery keeps every call one request.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from reconciler.core.model import VirtsyncError


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str  # '' for the core group
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """The REST path: /apis/<group>/<version>[/namespaces/<ns>]/<plural>[/<name>]."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


_KV, _INST, _CDI = "kubevirt.io", "instancetype.kubevirt.io", "cdi.kubevirt.io"

VM = Resource("VirtualMachine", _KV, "v1", "virtualmachines")
VMI = Resource("VirtualMachineInstance", _KV, "v1", "virtualmachineinstances")
VMIM = Resource("VirtualMachineInstanceMigration", _KV, "v1",
                "virtualmachineinstancemigrations")
# start/stop/restart/migrate are subresources of the API server's aggregated KubeVirt API
VM_SUBRESOURCES = Resource("VirtualMachine", "subresources.kubevirt.io", "v1",
                           "virtualmachines")
DATA_VOLUME = Resource("DataVolume", _CDI, "v1beta1", "datavolumes")
CONFIG_MAP = Resource("ConfigMap", "", "v1", "configmaps")

APPLIED: dict[str, Resource] = {r.kind: r for r in (
    Resource("VirtualMachineClusterInstancetype", _INST, "v1beta1",
             "virtualmachineclusterinstancetypes", namespaced=False),
    Resource("VirtualMachineClusterPreference", _INST, "v1beta1",
             "virtualmachineclusterpreferences", namespaced=False),
    Resource("VirtualMachineInstancetype", _INST, "v1beta1", "virtualmachineinstancetypes"),
    Resource("VirtualMachinePreference", _INST, "v1beta1", "virtualmachinepreferences"),
    DATA_VOLUME,
    VM,
)}


def resource_for(kind: str, api_version: str = "") -> Resource:
    """The resource of an object virtsync applies; the version is the manifest's own
    (git may hold instancetype.kubevirt.io/v1alpha2, say) when it names the same group."""
    found = APPLIED.get(kind)
    if found is None:
        raise VirtsyncError(f"the kubevirt backend does not apply kind {kind}")
    group, _, version = api_version.rpartition("/")
    if version and group == found.group and version != found.version:
        return Resource(found.kind, found.group, version, found.plural, found.namespaced)
    return found

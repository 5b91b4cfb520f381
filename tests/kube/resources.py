"""The resource types the Kubernetes API model serves, and their discovery documents.

Part of the test-side MODEL of a Kubernetes API server (see README.md): the table below is
what this model knows, not what a cluster has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

_VERBS_NAMESPACED = ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                     "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: group/version, kind, plural, scope, and whether `/status` exists."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    status_subresource: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version


CORE = ""
KUBEVIRT = "kubevirt.io"
SUBRESOURCES = "subresources.kubevirt.io"
CDI = "cdi.kubevirt.io"
INSTANCETYPE = "instancetype.kubevirt.io"

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(CORE, "v1", "ConfigMap", "configmaps", status_subresource=False),
    ResourceType(CORE, "v1", "Secret", "secrets", status_subresource=False),
    ResourceType(CORE, "v1", "Namespace", "namespaces", namespaced=False),
    ResourceType(KUBEVIRT, "v1", "VirtualMachine", "virtualmachines"),
    ResourceType(KUBEVIRT, "v1", "VirtualMachineInstance", "virtualmachineinstances"),
    ResourceType(KUBEVIRT, "v1", "VirtualMachineInstanceMigration",
                 "virtualmachineinstancemigrations"),
    ResourceType(CDI, "v1beta1", "DataVolume", "datavolumes"),
    ResourceType(INSTANCETYPE, "v1beta1", "VirtualMachineInstancetype",
                 "virtualmachineinstancetypes", status_subresource=False),
    ResourceType(INSTANCETYPE, "v1beta1", "VirtualMachinePreference",
                 "virtualmachinepreferences", status_subresource=False),
    ResourceType(INSTANCETYPE, "v1beta1", "VirtualMachineClusterInstancetype",
                 "virtualmachineclusterinstancetypes", namespaced=False,
                 status_subresource=False),
    ResourceType(INSTANCETYPE, "v1beta1", "VirtualMachineClusterPreference",
                 "virtualmachineclusterpreferences", namespaced=False,
                 status_subresource=False),
)

# KubeVirt's aggregated API (virt-api) serves the VM power verbs as PUT subresources.
VM_SUBRESOURCES = ("start", "stop", "restart")
SUBRESOURCE_VERSION = "v1"


def by_plural(group: str, version: str, plural: str) -> ResourceType | None:
    for r in RESOURCES:
        if (r.group, r.version, r.plural) == (group, version, plural):
            return r
    return None


def by_kind(api_version: str, kind: str) -> ResourceType:
    for r in RESOURCES:
        if (r.api_version, r.kind) == (api_version, kind):
            return r
    raise KeyError(f"the model serves no {kind} in {api_version}")


def _resource_entry(r: ResourceType) -> list[JSON]:
    main: JSON = {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                  "kind": r.kind, "verbs": _VERBS_NAMESPACED}
    entries = [main]
    if r.status_subresource:
        entries.append({"name": f"{r.plural}/status", "singularName": "",
                        "namespaced": r.namespaced, "kind": r.kind,
                        "verbs": ["get", "patch", "update"]})
    return entries


def resource_list(group: str, version: str) -> JSON | None:
    """`/api/v1` or `/apis/<group>/<version>`: an APIResourceList, None if not served."""
    gv = f"{group}/{version}" if group else version
    if group == SUBRESOURCES and version == SUBRESOURCE_VERSION:
        resources = [{"name": f"virtualmachines/{verb}", "singularName": "", "namespaced": True,
                      "kind": "", "verbs": ["update"]} for verb in VM_SUBRESOURCES]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}
    served = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not served:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [e for r in served for e in _resource_entry(r)]}


def core_versions() -> JSON:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": "127.0.0.1"}]}


def _groups() -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for r in RESOURCES:
        if r.group and (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    seen.append((SUBRESOURCES, SUBRESOURCE_VERSION))
    return seen


def group_list() -> JSON:
    groups = []
    for group, version in _groups():
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(name: str) -> JSON | None:
    for g in group_list()["groups"]:
        if g["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **g}
    return None

"""Typed, read-only view of a KubeVirt VirtualMachine body.

This is the one place that knows the KubeVirt spec shape (`spec.template.spec.domain...`).
The planner (placement, grace periods, run strategy), the libvirt backend and the node
(identity, disks, networks, domain builder, spec hash) read a `VmSpec` instead of poking
into dicts.

Building a `VmSpec` parses nothing; each part is parsed on first use and kept
(`functools.cached_property`), so the planner can build one per VM for the few fields it
reads. The node's parts (`cpu`, `disks`, ...) expect a validated, expanded body
(instancetypes/preferences applied) and raise VirtsyncError naming the field for shapes
that still do not fit; `from_body` parses all of them at once so such an error surfaces
there. The planner's parts (`node_selector`, `grace_period`, ...) read leniently: a value
of the wrong shape counts as absent (validation reports it in git). Secret-bearing values
(cloud-init user/network data) are kept out of `repr` so they cannot leak through logs.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from reconciler.core.hostdisk import vm_host_disks
from reconciler.core.model import (
    JSON,
    JSONPath,
    Manifest,
    VirtsyncError,
    format_path,
    template_spec_of,
)
from reconciler.core.model import TEMPLATE_PATH as TEMPLATE_PATH
from reconciler.core.power import RunStrategy, run_strategy
from reconciler.core.quantity import byte_size

DOMAIN_PATH: JSONPath = ("spec", "template", "spec", "domain")
# KubeVirt's default when terminationGracePeriodSeconds is not set.
DEFAULT_GRACE_SECONDS = 180

_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Interface bindings KubeVirt knows; the first one present on an interface wins.
_BINDINGS = ("masquerade", "bridge", "slirp", "passt", "sriov", "macvtap", "binding")
# Volume source kinds the node understands (others are refused by validation).
_VOLUME_KINDS = (
    "containerDisk",
    "dataVolume",
    "persistentVolumeClaim",
    "emptyDisk",
    "hostDisk",
    "cloudInitNoCloud",
)
_REQUIRED_TERMS = ("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                   "nodeSelectorTerms")


def canonical_mac(value: str) -> str:
    """'02-AB-...' or '02:ab:...' → '02:ab:...' (the spelling libvirt reports)."""
    return value.lower().replace("-", ":")


def normalize_mac(value: object, path: JSONPath) -> str:
    """'02-AB-...' or '02:ab:...' → '02:ab:...'. Refuses non-strings (a YAML 1.1 integer)."""
    if not isinstance(value, str) or not _MAC.match(value.lower()):
        raise VirtsyncError(f"{format_path(path)}: not a MAC address: {value!r}")
    return canonical_mac(value)


def normalize_uuid(value: object, path: JSONPath) -> str:
    if not isinstance(value, str) or not _UUID.match(value.lower()):
        raise VirtsyncError(f"{format_path(path)}: not a UUID: {value!r}")
    return value.lower()


def _lenient(value: object, *keys: str) -> JSON:
    """The value at `keys` under `value`, or None where a step is not a mapping."""
    for key in keys:
        if type(value) is not dict and not isinstance(value, Mapping):  # see get_path
            return None
        value = value.get(key)
    return value


def _map(value: JSON, path: JSONPath) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise VirtsyncError(f"{format_path(path)}: expected a mapping")
    return value


def _list(value: JSON, path: JSONPath) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise VirtsyncError(f"{format_path(path)}: expected a list")
    return value


def _opt_str(value: JSON, path: JSONPath) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise VirtsyncError(f"{format_path(path)}: expected a string, got {value!r}")
    return value


def _opt_int(value: JSON, path: JSONPath, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise VirtsyncError(f"{format_path(path)}: expected an integer >= {minimum}")
    return value


def _bool(value: JSON, path: JSONPath, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise VirtsyncError(f"{format_path(path)}: expected true or false")
    return value


@dataclass(frozen=True)
class CpuTopology:
    sockets: int = 1
    cores: int = 1
    threads: int = 1
    model: str | None = None

    @property
    def vcpus(self) -> int:
        return self.sockets * self.cores * self.threads


@dataclass(frozen=True)
class KernelBootSpec:
    """spec.domain.firmware.kernelBoot: the image holding the kernel and where in it."""

    image: str
    kernel_path: str | None
    initrd_path: str | None
    kernel_args: str | None


@dataclass(frozen=True)
class FirmwareSpec:
    """Pinned identity (uuid/serial, None when not pinned) and boot firmware."""

    uuid: str | None = None
    serial: str | None = None
    bootloader: str = "bios"  # 'bios' | 'efi'
    secure_boot: bool = False
    kernel_boot: KernelBootSpec | None = None


@dataclass(frozen=True)
class DiskSpec:
    """spec.domain.devices.disks[]: `device` is 'disk', 'cdrom' or 'lun'; `bus` is the
    KubeVirt bus with KubeVirt's defaults applied (virtio for disks, sata for cdroms)."""

    name: str
    device: str
    bus: str
    readonly: bool
    serial: str | None
    boot_order: int | None
    shareable: bool
    index: int


@dataclass(frozen=True)
class InterfaceSpec:
    """spec.domain.devices.interfaces[]: `mac` is a normalized pin or None."""

    name: str
    model: str
    mac: str | None
    binding: str | None
    boot_order: int | None
    index: int


@dataclass(frozen=True)
class NetworkSpec:
    """spec.networks[]: `kind` is 'pod' or 'multus'; `network_name` for multus."""

    name: str
    kind: str
    network_name: str | None


@dataclass(frozen=True)
class CloudInitSpec:
    """cloudInitNoCloud data. Values are secret: never in repr, logs or messages."""

    user_data: str | None = field(default=None, repr=False)
    network_data: str | None = field(default=None, repr=False)
    user_data_secret: str | None = None
    network_data_secret: str | None = None


@dataclass(frozen=True)
class VolumeSpec:
    """spec.volumes[]: `kind` is the source key; the fields that kind uses are set."""

    name: str
    kind: str
    image: str | None = None  # containerDisk
    claim_name: str | None = None  # dataVolume.name / persistentVolumeClaim.claimName
    capacity_bytes: int | None = None  # emptyDisk / hostDisk
    path: str | None = None  # hostDisk
    host_disk_type: str | None = None  # hostDisk: 'Disk' | 'DiskOrCreate'
    cloud_init: CloudInitSpec | None = None


@dataclass(frozen=True)
class DataVolumeTemplate:
    """spec.dataVolumeTemplates[]: a claim the VM owns. `spec` is the DataVolume spec as
    written ({} when absent); `path` is where it is in the VM."""

    name: str
    spec: Mapping[str, JSON]
    path: JSONPath


@dataclass(frozen=True, eq=False)
class VmSpec:
    """One VirtualMachine body, read through typed parts (see the module docstring)."""

    namespace: str
    name: str
    body: Mapping[str, JSON] = field(repr=False)  # holds secrets: never in repr

    @classmethod
    def of(cls, manifest: Manifest) -> VmSpec:
        """The view of a manifest, nothing parsed yet (cheap: the planner's way in)."""
        return cls(manifest.namespace, manifest.name, manifest.body)

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> VmSpec:
        return cls.from_body(manifest.namespace, manifest.name, manifest.body)

    @classmethod
    def from_body(cls, namespace: str, name: str, body: Mapping[str, JSON]) -> VmSpec:
        """The view with every node part parsed now (shape errors name the field)."""
        vm = cls(namespace, name, body)
        for part in _NODE_PARTS:
            getattr(vm, part)
        return vm

    def disk(self, name: str) -> DiskSpec | None:
        return next((d for d in self.disks if d.name == name), None)

    def volume(self, name: str) -> VolumeSpec | None:
        return next((v for v in self.volumes if v.name == name), None)

    def network(self, name: str) -> NetworkSpec | None:
        return next((n for n in self.networks if n.name == name), None)

    # --- the planner's parts: lenient, wrong shapes read as absent. Each is a few dict
    # lookups under the cached template_spec, read once per VM: recomputing is cheaper
    # than caching (cached_property takes a lock on first use).

    @cached_property  # every other planner part starts here
    def template_spec(self) -> Mapping[str, JSON]:
        """spec.template.spec, {} when absent."""
        return template_spec_of(self.body)

    def reference(self, kind_field: str) -> JSON:
        """spec.instancetype or spec.preference as written; None when absent."""
        return _lenient(self.body, "spec", kind_field)

    @property
    def run_strategy(self) -> RunStrategy | None:
        """See `reconciler.core.power.run_strategy` (`running: true` is Always)."""
        return run_strategy(self.body)

    @property
    def grace_period(self) -> int | None:
        """terminationGracePeriodSeconds as declared (0 is a valid value), None when unset."""
        value = self.template_spec.get("terminationGracePeriodSeconds")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def termination_grace_seconds(self) -> int:
        """How long a graceful stop waits: the declared grace period, else KubeVirt's 180."""
        grace = self.grace_period
        return DEFAULT_GRACE_SECONDS if grace is None else grace

    @property
    def node_selector(self) -> Mapping[str, str]:
        """spec.template.spec.nodeSelector (the VM's own; an instancetype may add more)."""
        selector = self.template_spec.get("nodeSelector")
        if not isinstance(selector, Mapping):
            return {}
        return {str(k): str(v) for k, v in selector.items()}

    @property
    def required_node_terms(self) -> tuple[Mapping[str, Any], ...]:
        """The required node affinity's nodeSelectorTerms (any one must match)."""
        terms = _lenient(self.template_spec, *_REQUIRED_TERMS)
        if not isinstance(terms, list):
            return ()
        return tuple(t for t in terms if isinstance(t, Mapping))

    @property
    def declared_memory(self) -> JSON:
        """The guest memory quantity as written (memory.guest, else
        resources.requests.memory), None when the VM leaves it to an instancetype."""
        domain = self.template_spec.get("domain")
        return (_lenient(domain, "memory", "guest")
                or _lenient(domain, "resources", "requests", "memory"))

    @property
    def host_disks(self) -> tuple[tuple[str, JSONPath], ...]:
        """(path, where it is written) of every hostDisk volume."""
        return vm_host_disks(self.template_spec)

    @property
    def host_disk_paths(self) -> tuple[str, ...]:
        """The path of every hostDisk volume."""
        return tuple(path for path, _ in self.host_disks)

    @property
    def raw_volumes(self) -> Mapping[str, Mapping[str, JSON]]:
        """spec.template.spec.volumes by name, as written (for observing disks as applied)."""
        volumes = self.template_spec.get("volumes")
        return {str(v.get("name")): v for v in (volumes if isinstance(volumes, list) else ())
                if isinstance(v, Mapping)}

    @property
    def data_volume_templates(self) -> tuple[DataVolumeTemplate, ...]:
        """spec.dataVolumeTemplates[] with a name: the claims the VM owns."""
        templates = _lenient(self.body, "spec", "dataVolumeTemplates")
        out = []
        for i, tmpl in enumerate(templates if isinstance(templates, list) else ()):
            name, spec = _lenient(tmpl, "metadata", "name"), _lenient(tmpl, "spec")
            if isinstance(name, str):
                out.append(DataVolumeTemplate(name, spec if isinstance(spec, Mapping) else {},
                                              ("spec", "dataVolumeTemplates", i, "spec")))
        return tuple(out)

    # --- the node's parts: strict, parsed once ----------------------------------------

    @cached_property
    def _template(self) -> Mapping[str, Any]:
        spec = _map(self.body.get("spec"), ("spec",))
        return _map(
            _map(spec.get("template"), ("spec", "template")).get("spec"), TEMPLATE_PATH)

    @cached_property
    def _domain(self) -> Mapping[str, Any]:
        return _map(self._template.get("domain"), DOMAIN_PATH)

    @cached_property
    def _devices(self) -> Mapping[str, Any]:
        return _map(self._domain.get("devices"), (*DOMAIN_PATH, "devices"))

    @cached_property
    def cpu(self) -> CpuTopology:
        return _cpu(self._domain)

    @cached_property
    def memory_kib(self) -> int:
        return _memory_kib(self._domain)

    @cached_property
    def machine_type(self) -> str | None:
        return _opt_str(
            _map(self._domain.get("machine"), (*DOMAIN_PATH, "machine")).get("type"),
            (*DOMAIN_PATH, "machine", "type"),
        )

    @cached_property
    def firmware(self) -> FirmwareSpec:
        return _firmware(self._domain)

    @cached_property
    def disks(self) -> tuple[DiskSpec, ...]:
        return _disks(self._devices)

    @cached_property
    def interfaces(self) -> tuple[InterfaceSpec, ...]:
        return _interfaces(self._devices)

    @cached_property
    def networks(self) -> tuple[NetworkSpec, ...]:
        return _networks(self._template)

    @cached_property
    def volumes(self) -> tuple[VolumeSpec, ...]:
        return _volumes(self._template)

    @cached_property
    def serial_console(self) -> bool:
        return _bool(self._devices.get("autoattachSerialConsole"),
                     (*DOMAIN_PATH, "devices", "autoattachSerialConsole"), True)

    @cached_property
    def graphics(self) -> bool:
        # KubeVirt attaches VNC by default; virtsync's nodes are headless unless asked.
        return _bool(self._devices.get("autoattachGraphicsDevice"),
                     (*DOMAIN_PATH, "devices", "autoattachGraphicsDevice"), False)


# What `from_body` parses up front: everything the node builds a domain from.
_NODE_PARTS = ("cpu", "memory_kib", "machine_type", "firmware", "disks", "interfaces",
               "networks", "volumes", "serial_console", "graphics")


def _cpu(domain: Mapping[str, Any]) -> CpuTopology:
    path = (*DOMAIN_PATH, "cpu")
    cpu = _map(domain.get("cpu"), path)
    return CpuTopology(
        sockets=_opt_int(cpu.get("sockets"), (*path, "sockets"), minimum=1) or 1,
        cores=_opt_int(cpu.get("cores"), (*path, "cores"), minimum=1) or 1,
        threads=_opt_int(cpu.get("threads"), (*path, "threads"), minimum=1) or 1,
        model=_opt_str(cpu.get("model"), (*path, "model")),
    )


def _memory_kib(domain: Mapping[str, Any]) -> int:
    guest_path = (*DOMAIN_PATH, "memory", "guest")
    guest = _map(domain.get("memory"), guest_path[:-1]).get("guest")
    if guest is None:
        req_path = (*DOMAIN_PATH, "resources", "requests", "memory")
        resources = _map(domain.get("resources"), req_path[:-2])
        guest = _map(resources.get("requests"), req_path[:-1]).get("memory")
        if guest is None:
            raise VirtsyncError(
                f"{format_path(guest_path)}: no guest memory (set memory.guest or "
                "resources.requests.memory)"
            )
        guest_path = req_path
    size = byte_size(guest, guest_path)
    if size < 1024 * 1024:
        raise VirtsyncError(f"{format_path(guest_path)}: guest memory below 1Mi")
    return -(-size // 1024)


def _firmware(domain: Mapping[str, Any]) -> FirmwareSpec:
    path = (*DOMAIN_PATH, "firmware")
    fw = _map(domain.get("firmware"), path)
    uuid = fw.get("uuid")
    serial = _opt_str(fw.get("serial"), (*path, "serial"))
    loader = _map(fw.get("bootloader"), (*path, "bootloader"))
    efi = loader.get("efi")
    kernel = None
    if fw.get("kernelBoot") is not None:
        kpath = (*path, "kernelBoot")
        kb = _map(fw.get("kernelBoot"), kpath)
        container = _map(kb.get("container"), (*kpath, "container"))
        image = _opt_str(container.get("image"), (*kpath, "container", "image"))
        if not image:
            raise VirtsyncError(f"{format_path((*kpath, 'container', 'image'))}: required")
        kernel = KernelBootSpec(
            image=image,
            kernel_path=_opt_str(container.get("kernelPath"), (*kpath, "container", "kernelPath")),
            initrd_path=_opt_str(container.get("initrdPath"), (*kpath, "container", "initrdPath")),
            kernel_args=_opt_str(kb.get("kernelArgs"), (*kpath, "kernelArgs")),
        )
    return FirmwareSpec(
        uuid=normalize_uuid(uuid, (*path, "uuid")) if uuid is not None else None,
        serial=serial or None,
        bootloader="efi" if efi is not None else "bios",
        secure_boot=efi is not None
        and _bool(
            _map(efi, (*path, "bootloader", "efi")).get("secureBoot"),
            (*path, "bootloader", "efi", "secureBoot"),
            True,
        ),
        kernel_boot=kernel,
    )


def _disks(devices: Mapping[str, Any]) -> tuple[DiskSpec, ...]:
    base = (*DOMAIN_PATH, "devices", "disks")
    out: list[DiskSpec] = []
    for i, raw in enumerate(_list(devices.get("disks"), base)):
        path = (*base, i)
        disk = _map(raw, path)
        name = _opt_str(disk.get("name"), (*path, "name"))
        if not name:
            raise VirtsyncError(f"{format_path((*path, 'name'))}: required")
        device = next((d for d in ("cdrom", "lun", "disk") if d in disk), "disk")
        target = _map(disk.get(device), (*path, device))
        default_bus = "sata" if device == "cdrom" else "scsi" if device == "lun" else "virtio"
        out.append(
            DiskSpec(
                name=name,
                device=device,
                bus=_opt_str(target.get("bus"), (*path, device, "bus")) or default_bus,
                readonly=_bool(
                    target.get("readonly"), (*path, device, "readonly"), device == "cdrom"
                ),
                serial=_opt_str(disk.get("serial"), (*path, "serial")) or None,
                boot_order=_opt_int(disk.get("bootOrder"), (*path, "bootOrder"), minimum=1),
                shareable=_bool(disk.get("shareable"), (*path, "shareable"), False),
                index=i,
            )
        )
    return tuple(out)


def _interfaces(devices: Mapping[str, Any]) -> tuple[InterfaceSpec, ...]:
    base = (*DOMAIN_PATH, "devices", "interfaces")
    out: list[InterfaceSpec] = []
    for i, raw in enumerate(_list(devices.get("interfaces"), base)):
        path = (*base, i)
        iface = _map(raw, path)
        name = _opt_str(iface.get("name"), (*path, "name"))
        if not name:
            raise VirtsyncError(f"{format_path((*path, 'name'))}: required")
        mac = iface.get("macAddress")
        out.append(
            InterfaceSpec(
                name=name,
                model=_opt_str(iface.get("model"), (*path, "model")) or "virtio",
                mac=normalize_mac(mac, (*path, "macAddress")) if mac is not None else None,
                binding=next((b for b in _BINDINGS if b in iface), None),
                boot_order=_opt_int(iface.get("bootOrder"), (*path, "bootOrder"), minimum=1),
                index=i,
            )
        )
    return tuple(out)


def _networks(tmpl: Mapping[str, Any]) -> tuple[NetworkSpec, ...]:
    base: JSONPath = ("spec", "template", "spec", "networks")
    out: list[NetworkSpec] = []
    for i, raw in enumerate(_list(tmpl.get("networks"), base)):
        path = (*base, i)
        net = _map(raw, path)
        name = _opt_str(net.get("name"), (*path, "name")) or ""
        if "multus" in net:
            multus = _map(net.get("multus"), (*path, "multus"))
            out.append(
                NetworkSpec(
                    name,
                    "multus",
                    _opt_str(multus.get("networkName"), (*path, "multus", "networkName")),
                )
            )
        else:
            out.append(NetworkSpec(name, "pod", None))
    return tuple(out)


def _volumes(tmpl: Mapping[str, Any]) -> tuple[VolumeSpec, ...]:
    base: JSONPath = ("spec", "template", "spec", "volumes")
    out: list[VolumeSpec] = []
    for i, raw in enumerate(_list(tmpl.get("volumes"), base)):
        path = (*base, i)
        vol = _map(raw, path)
        name = _opt_str(vol.get("name"), (*path, "name")) or ""
        kind = next((k for k in _VOLUME_KINDS if k in vol), None)
        if kind is None:
            others = sorted(k for k in vol if k != "name")
            raise VirtsyncError(
                f"{format_path(path)}: unsupported volume source {', '.join(others) or '(none)'}"
            )
        src = _map(vol.get(kind), (*path, kind))
        sp = (*path, kind)
        if kind == "containerDisk":
            out.append(VolumeSpec(name, kind, image=_opt_str(src.get("image"), (*sp, "image"))))
        elif kind == "dataVolume":
            out.append(VolumeSpec(name, kind, claim_name=_opt_str(src.get("name"), (*sp, "name"))))
        elif kind == "persistentVolumeClaim":
            out.append(
                VolumeSpec(
                    name, kind, claim_name=_opt_str(src.get("claimName"), (*sp, "claimName"))
                )
            )
        elif kind == "emptyDisk":
            out.append(
                VolumeSpec(
                    name,
                    kind,
                    capacity_bytes=byte_size(src.get("capacity"), (*sp, "capacity")),
                )
            )
        elif kind == "hostDisk":
            cap = src.get("capacity")
            out.append(
                VolumeSpec(
                    name,
                    kind,
                    path=_opt_str(src.get("path"), (*sp, "path")),
                    host_disk_type=_opt_str(src.get("type"), (*sp, "type")),
                    capacity_bytes=byte_size(cap, (*sp, "capacity"))
                    if cap is not None
                    else None,
                )
            )
        else:
            out.append(VolumeSpec(name, kind, cloud_init=_cloud_init(src, sp)))
    return tuple(out)


def _cloud_init(src: Mapping[str, Any], path: JSONPath) -> CloudInitSpec:
    def secret_name(key: str) -> str | None:
        ref = _map(src.get(key), (*path, key))
        return _opt_str(ref.get("name"), (*path, key, "name"))

    user = src.get("userData")
    if user is None and src.get("userDataBase64") is not None:
        user = _b64(src.get("userDataBase64"), (*path, "userDataBase64"))
    network = src.get("networkData")
    if network is None and src.get("networkDataBase64") is not None:
        network = _b64(src.get("networkDataBase64"), (*path, "networkDataBase64"))
    if user is not None and not isinstance(user, str):
        raise VirtsyncError(f"{format_path((*path, 'userData'))}: expected a string")
    if network is not None and not isinstance(network, str):
        raise VirtsyncError(f"{format_path((*path, 'networkData'))}: expected a string")
    return CloudInitSpec(
        user_data=user,
        network_data=network,
        user_data_secret=secret_name("secretRef"),
        network_data_secret=secret_name("networkDataSecretRef"),
    )


def _b64(value: JSON, path: JSONPath) -> str:
    if not isinstance(value, str):
        raise VirtsyncError(f"{format_path(path)}: expected base64 text")
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        # Never echo the value: it is secret.
        raise VirtsyncError(f"{format_path(path)}: not valid base64 UTF-8 text") from exc

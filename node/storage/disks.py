"""VM volumes as files inside the node's storage directory, format always explicit.

Layout (every name checked as a DNS-1123 component, every path confined):

    <storageDir>/<namespace>/claims/<claim>.qcow2           persistentVolumeClaim / dataVolume
    <storageDir>/<namespace>/vms/<vm>/containerdisk-<volume>.qcow2   overlay on an image
    <storageDir>/<namespace>/vms/<vm>/empty-<volume>.qcow2           emptyDisk scratch
    <storageDir>/<namespace>/vms/<vm>/cidata-<volume>.iso            cloudInitNoCloud seed
    <imageDir>/<image>                    containerDisk base image (a file, or a folder
                                          holding disk.qcow2 / disk.img / disk.raw)
    <imageDir>/<image>/<kernelPath>       firmware.kernelBoot kernel and initrd

- A claim disk is created once (size from the DataVolume or the VM's
  dataVolumeTemplates), then kept across restarts, recreations and VM deletion; it
  is removed only by `remove_files`, with the list a plan made (a pruned VM with disk
  policy Delete that owns the claim, nothing else referencing it: safety rule 13). It
  may grow; shrinking is refused.
- containerDisk: nothing is pulled from a registry; a missing image is an error that
  says where the file should be.
- emptyDisk is scratch for one incarnation: `fresh_scratch=True` (a new incarnation
  is about to start) recreates it.
- hostDisk paths must resolve (symlinks followed) inside the node's hostDiskDir, which
  must not overlap storageDir, imageDir or the state directory; without a hostDiskDir,
  hostDisk is refused (safety rule 14).
- Files are created under a temporary name and renamed, so a crash never leaves a
  half-made disk that a rerun would take for a real one; `sweep_temp_files` removes
  such leftovers once a later apply has converged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree

from node.identity.node_store import Identity
from node.storage.paths import UnsafePath, checked_chain, confine, safe_component
from node.storage.staging import Stager, made_temp, qemu_img
from reconciler.core.hostdisk import dir_conflict
from reconciler.core.model import CLAIM_SOURCES, JSON, Manifest, VirtsyncError, format_path
from reconciler.core.quantity import byte_size
from reconciler.core.vmspec import DiskSpec, VmSpec, VolumeSpec

if TYPE_CHECKING:  # imported where a VM's disks are prepared: not on a no-op (issue 13)
    from node.domain.model import DiskBus, KernelBoot, ResolvedDisk
    from node.storage.cloudinit import SeedFiles

KERNEL_NAMES = ("vmlinux", "vmlinuz", "kernel", "bzImage")
_BUSES: dict[str, DiskBus] = {"virtio": "virtio", "sata": "sata", "scsi": "scsi", "usb": "usb"}
BASE_IMAGE_NAMES = ("disk.qcow2", "disk.img", "disk.raw")


@dataclass(frozen=True)
class NodeStorage:
    """Where one node keeps disks (`storage_dir`), reads base images (`image_dir`) and
    lets hostDisk volumes live (`host_disk_dir`, apart from those and `protected`)."""

    storage_dir: Path
    image_dir: Path
    host_disk_dir: Path | None = None
    protected: tuple[Path, ...] = ()  # more of virtsync's own trees (the state directory)

    @classmethod
    def of(
        cls,
        storage_dir: str | os.PathLike[str],
        image_dir: str | os.PathLike[str],
        host_disk_dir: str | os.PathLike[str] | None = None,
        protected: Iterable[str | os.PathLike[str]] = (),
    ) -> NodeStorage:
        return cls(Path(storage_dir).resolve(), Path(image_dir).resolve(),
                   Path(host_disk_dir).resolve() if host_disk_dir is not None else None,
                   tuple(Path(p).resolve() for p in protected))

    def host_disk_root(self, where: str) -> Path:
        """The hostDisk root, refused when unset or when, symlinks followed, it overlaps
        one of virtsync's own trees (safety rule 14)."""
        if self.host_disk_dir is None:
            raise UnsafePath(
                f"{where}: hostDisk is refused on this node: its Cluster entry sets no "
                "hostDiskDir (hostDisk files live only there; safety rule 14)")
        own = [("storageDir", str(self.storage_dir)), ("imageDir", str(self.image_dir)),
               *(("state directory", str(p)) for p in self.protected)]
        problem = dir_conflict(str(self.host_disk_dir), own)
        if problem is not None:
            raise UnsafePath(f"{where}: {problem}")
        return self.host_disk_dir

    def claim_path(self, namespace: str, claim: str) -> Path:
        ns = safe_component(namespace, "namespace")
        name = safe_component(claim, "claim name")
        return confine(self.storage_dir, Path(ns, "claims", f"{name}.qcow2"), f"claim {claim}")

    def vm_dir(self, namespace: str, name: str) -> Path:
        ns = safe_component(namespace, "namespace")
        vm = safe_component(name, "VM name")
        return confine(self.storage_dir, Path(ns, "vms", vm), f"VM {namespace}/{name}")

    @staticmethod
    def own_file(vm_dir: Path, source: str, volume: str) -> Path:
        """The file in the VM's own directory (`vm_dir`) of a volume it owns alone
        (overlay, scratch disk, seed)."""
        return vm_dir / OWN_FILES[source].format(safe_component(volume, "volume name"))


# Files inside a VM's own directory, per volume source.
OWN_FILES: Mapping[str, str] = {
    "containerDisk": "containerdisk-{}.qcow2",
    "emptyDisk": "empty-{}.qcow2",
    "cloudInitNoCloud": "cidata-{}.iso",
}


@dataclass(frozen=True)
class DiskAction:
    """What preparing one volume did: created, kept, grown, recreated, written, unchanged."""

    volume: str
    action: str
    path: str


@dataclass(frozen=True)
class PreparedDisks:
    disks: tuple[ResolvedDisk, ...]
    kernel: KernelBoot | None
    actions: tuple[DiskAction, ...]

    @property
    def changed(self) -> bool:
        return any(a.action not in ("kept", "unchanged") for a in self.actions)


# ---------------------------------------------------------------- claim sizes (pure)


def _get(data: JSON, *keys: str) -> JSON:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


# DataVolume sources the node can honour: an empty disk. Importing (http, registry,
# s3, gcs, upload, clone, imageio, vddk...) would mean downloading or copying data the
# node cannot verify here; refused rather than silently creating a blank disk.
SUPPORTED_DV_SOURCES = frozenset({"blank"})


def _dv_size(spec: JSON, where: tuple[str | int, ...]) -> int | None:
    source = _get(spec, "source")
    if isinstance(source, Mapping):
        unsupported = sorted(k for k in source if k not in SUPPORTED_DV_SOURCES)
        if unsupported:
            raise VirtsyncError(
                f"{format_path((*where, 'source', unsupported[0]))}: the libvirt backend "
                "cannot import disk contents (nothing is downloaded or cloned); use "
                "source: {blank: {}}, or put the image in the node's image directory and "
                "use a containerDisk volume")
    if _get(spec, "sourceRef") is not None:
        raise VirtsyncError(f"{format_path((*where, 'sourceRef'))}: DataSources are not "
                            "available on the libvirt backend; use source: {blank: {}}")
    for section in ("storage", "pvc"):
        size = _get(spec, section, "resources", "requests", "storage")
        if size is not None:
            return byte_size(size, (*where, section, "resources", "requests", "storage"))
    return None


def claim_sizes(vm: VmSpec, datavolumes: Iterable[Manifest] = ()) -> dict[str, int]:
    """Claim name → size in bytes, from the VM's `spec.dataVolumeTemplates` and from
    DataVolume manifests (same namespace as the VM is the caller's filter)."""
    sizes: dict[str, int] = {}
    for dv in datavolumes:
        size = _dv_size(dv.body.get("spec"), ("spec",))
        if size is not None:
            sizes[dv.name] = size
    for tmpl in vm.data_volume_templates:
        size = _dv_size(tmpl.spec, tmpl.path)
        if size is not None:
            sizes[tmpl.name] = size
    return sizes


# ---------------------------------------------------------------- qemu-img


def _create_atomically(target: Path, make: list[str], staged: Stager | None = None) -> None:
    """Run `qemu-img create ... TMP ...` into a temp name, then rename onto `target`.
    `make` holds the arguments with "{}" where the file name goes. With `staged`, a
    temp file made ahead for exactly this creation is taken instead (node.storage.staging)."""
    tmp = staged.take(target, make) if staged is not None else None
    if tmp is None:
        tmp = made_temp(target, make)
    try:
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _qcow2_make(size: int) -> list[str]:
    return ["create", "-q", "-f", "qcow2", "{}", str(size)]


def _overlay_make(base: Path, base_fmt: str) -> list[str]:
    return ["create", "-q", "-f", "qcow2", "-b", str(base), "-F", base_fmt, "{}"]


def _new_qcow2(path: Path, size: int, staged: Stager | None = None) -> None:
    _create_atomically(path, _qcow2_make(size), staged)


def new_blank(path: Path, fmt: str, size: int) -> None:
    """A blank image of `size` bytes (a live migration's copy target)."""
    _create_atomically(path, ["create", "-q", "-f", fmt, "{}", str(size)])


def new_overlay(path: Path, base: Path, base_fmt: str) -> None:
    """A qcow2 overlay on `base` (a live migration's copy target for a containerDisk)."""
    _create_atomically(path, _overlay_make(base, base_fmt))


# ---------------------------------------------------------------- per-volume preparation


@dataclass(frozen=True)
class _Volume:
    path: Path
    format: str
    action: str


def _prepare_claim(
    vm: VmSpec, vol: VolumeSpec, storage: NodeStorage, sizes: Mapping[str, int], where: str,
    staged: Stager | None = None,
) -> _Volume:
    claim = vol.claim_name
    if not claim:
        raise VirtsyncError(f"{where}: claim name missing")
    path = storage.claim_path(vm.namespace, claim)
    wanted = sizes.get(claim)
    if not path.exists():
        if wanted is None:
            raise VirtsyncError(
                f"{where}: claim {claim!r} does not exist on this node and no size is known; "
                f"declare a DataVolume named {claim!r} (spec.storage.resources.requests.storage) "
                "or a dataVolumeTemplate"
            )
        _new_qcow2(path, wanted, staged)
        return _Volume(path, "qcow2", "created")
    info = checked_chain(path, "qcow2", [storage.storage_dir], where)[0]
    if wanted is None or wanted == info.virtual_size:
        return _Volume(path, "qcow2", "kept")
    if wanted < info.virtual_size:
        raise VirtsyncError(
            f"{where}: refusing to shrink claim {claim!r} from {info.virtual_size} to "
            f"{wanted} bytes (shrinking destroys guest data)"
        )
    # qemu-img takes QEMU's write lock, so this fails instead of corrupting a running disk.
    qemu_img("resize", "-q", "-f", "qcow2", str(path), str(wanted))
    return _Volume(path, "qcow2", "grown")


def _base_image(storage: NodeStorage, image: str, where: str) -> tuple[Path, str]:
    """(path, format) of a containerDisk base image in the node's image directory."""
    from node.storage.base_facts import base_format

    candidate = confine(storage.image_dir, image, where)
    if candidate.is_dir():
        found = [candidate / n for n in BASE_IMAGE_NAMES if (candidate / n).is_file()]
        if len(found) != 1:
            raise VirtsyncError(
                f"{where}: image folder {candidate} must hold exactly one of "
                f"{', '.join(BASE_IMAGE_NAMES)}"
            )
        candidate = confine(storage.image_dir, found[0], where)
    if not candidate.is_file():
        raise VirtsyncError(
            f"{where}: image {image!r} not found: expected the file {candidate} in the node's "
            "image directory (virtsync never pulls images from a registry; copy it there)"
        )
    # Base images are the operator's files, not guest-written: probing their format is safe,
    # and from here on it is stated explicitly. Worked out once per image while unchanged.
    return candidate, base_format(candidate, storage.image_dir, where)


def _prepare_container_disk(
    vm: VmSpec, vol: VolumeSpec, storage: NodeStorage, where: str, staged: Stager | None = None
) -> _Volume:
    if not vol.image:
        raise VirtsyncError(f"{where}: image missing")
    base, base_fmt = _base_image(storage, vol.image, where)
    path = storage.own_file(storage.vm_dir(vm.namespace, vm.name), vol.kind, vol.name)
    make = _overlay_make(base, base_fmt)
    if path.exists():
        chain = checked_chain(path, "qcow2", [storage.storage_dir, storage.image_dir], where)
        if len(chain) > 1 and Path(chain[1].path) == base and chain[1].format == base_fmt:
            return _Volume(path, "qcow2", "kept")
        # The image changed: an overlay only makes sense on the base it was made on.
        _create_atomically(path, make, staged)
        return _Volume(path, "qcow2", "recreated")
    _create_atomically(path, make, staged)
    return _Volume(path, "qcow2", "created")


def _prepare_empty_disk(
    vm: VmSpec, vol: VolumeSpec, storage: NodeStorage, fresh: bool, where: str,
    staged: Stager | None = None,
) -> _Volume:
    if not vol.capacity_bytes:
        raise VirtsyncError(f"{where}: capacity missing")
    path = storage.own_file(storage.vm_dir(vm.namespace, vm.name), vol.kind, vol.name)
    if path.exists() and not fresh:
        info = checked_chain(path, "qcow2", [storage.storage_dir], where)[0]
        if info.virtual_size == vol.capacity_bytes:
            return _Volume(path, "qcow2", "kept")
    existed = path.exists()
    _new_qcow2(path, vol.capacity_bytes, staged)
    return _Volume(path, "qcow2", "recreated" if existed else "created")


def _prepare_host_disk(vol: VolumeSpec, storage: NodeStorage, where: str) -> _Volume:
    if not vol.path:
        raise VirtsyncError(f"{where}: path missing")
    root = storage.host_disk_root(where)
    path = confine(root, vol.path, f"{where} path")
    kind = vol.host_disk_type or "Disk"
    if not path.exists():
        if kind != "DiskOrCreate":
            raise VirtsyncError(f"{where}: {path} does not exist (type {kind})")
        if not vol.capacity_bytes:
            raise VirtsyncError(f"{where}: capacity is required for DiskOrCreate")
        _create_atomically(path, ["create", "-q", "-f", "raw", "{}", str(vol.capacity_bytes)])
        return _Volume(path, "raw", "created")
    if not path.is_file():
        raise VirtsyncError(f"{where}: {path} is not a regular file")
    info = checked_chain(path, "raw", [root], where)[0]
    if vol.capacity_bytes is not None and vol.capacity_bytes < info.virtual_size:
        raise VirtsyncError(
            f"{where}: refusing to shrink {path} from {info.virtual_size} to "
            f"{vol.capacity_bytes} bytes"
        )
    return _Volume(path, "raw", "kept")


def _prepare_cloud_init(
    vm: VmSpec, vol: VolumeSpec, identity: Identity, storage: NodeStorage, where: str
) -> _Volume:
    from node.storage.cloudinit import write_seed

    path, seed = _cloud_init_seed(vm, vol, identity, storage, where)
    existed = path.exists()
    wrote = write_seed(path, seed)
    return _Volume(path, "raw", ("written" if existed else "created") if wrote else "unchanged")


def new_seeds(vm: VmSpec, identity: Identity, storage: NodeStorage) -> list[tuple[Path, SeedFiles]]:
    """The cloud-init seeds `prepare_disks` would create for the VM's disks, where no file
    is yet (a batch of new VMs writes them together: cloudinit.write_seeds). VirtsyncError
    where `prepare_disks` would refuse the volume."""
    out = []
    for disk in vm.disks:
        vol = vm.volume(disk.name)
        if vol is not None and vol.kind == "cloudInitNoCloud":
            path, seed = _cloud_init_seed(vm, vol, identity, storage, disk.name)
            if not path.exists():
                out.append((path, seed))
    return out


def new_disk_files(vm: VmSpec, storage: NodeStorage, sizes: Mapping[str, int]
                   ) -> list[tuple[Path, list[str], tuple[Path, ...]]]:
    """The `qemu-img create` runs `prepare_disks(..., fresh_scratch=True)` would make for
    the VM's disks where no file is yet: (target, arguments, files read), for a batch to
    start ahead (node.storage.staging). A volume it would refuse is left out; a wrong
    guess costs only the time: a step takes a creation only when it makes the same one."""
    out: list[tuple[Path, list[str], tuple[Path, ...]]] = []
    for disk in vm.disks:
        vol = vm.volume(disk.name)
        if vol is None:
            continue
        with contextlib.suppress(VirtsyncError):
            made = _new_disk_file(vm, vol, storage, sizes, disk.name)
            if made is not None and not made[0].exists():
                out.append(made)
    return out


def _new_disk_file(vm: VmSpec, vol: VolumeSpec, storage: NodeStorage,
                   sizes: Mapping[str, int], where: str
                   ) -> tuple[Path, list[str], tuple[Path, ...]] | None:
    if vol.kind in CLAIM_SOURCES and vol.claim_name and vol.claim_name in sizes:
        return (storage.claim_path(vm.namespace, vol.claim_name),
                _qcow2_make(sizes[vol.claim_name]), ())
    own = storage.vm_dir(vm.namespace, vm.name)
    if vol.kind == "containerDisk" and vol.image:
        base, base_fmt = _base_image(storage, vol.image, where)
        return storage.own_file(own, vol.kind, vol.name), _overlay_make(base, base_fmt), (base,)
    if vol.kind == "emptyDisk" and vol.capacity_bytes:
        return storage.own_file(own, vol.kind, vol.name), _qcow2_make(vol.capacity_bytes), ()
    return None


def _cloud_init_seed(
    vm: VmSpec, vol: VolumeSpec, identity: Identity, storage: NodeStorage, where: str
) -> tuple[Path, SeedFiles]:
    ci = vol.cloud_init
    if ci is None:
        raise VirtsyncError(f"{where}: cloudInitNoCloud missing")
    if ci.user_data_secret or ci.network_data_secret:
        raise VirtsyncError(
            f"{where}: secretRef is not supported on libvirt nodes (there is no Kubernetes "
            "Secret to read); put the data in userData/networkData"
        )
    from node.storage.cloudinit import seed_files

    path = storage.own_file(storage.vm_dir(vm.namespace, vm.name), vol.kind, vol.name)
    seed = seed_files(
        instance_id=identity.uuid,
        hostname=vm.name,
        user_data=ci.user_data,
        network_data=ci.network_data,
    )
    return path, seed


# ---------------------------------------------------------------- kernel boot


def resolve_kernel(vm: VmSpec, storage: NodeStorage) -> KernelBoot | None:
    """Host paths of firmware.kernelBoot: `container.image` names a folder in the node's
    image directory; kernelPath/initrdPath are paths inside that folder."""
    from node.domain.model import KernelBoot

    kb = vm.firmware.kernel_boot
    if kb is None:
        return None
    where = format_path(("spec", "template", "spec", "domain", "firmware", "kernelBoot"))
    folder = confine(storage.image_dir, kb.image, f"{where}.container.image")
    if not folder.is_dir():
        raise VirtsyncError(
            f"{where}.container.image: {kb.image!r} not found: expected a folder {folder} with "
            "the kernel and initrd in the node's image directory (virtsync never pulls images "
            "from a registry)"
        )

    def inside(rel: str, field: str) -> Path:
        path = confine(folder, rel.lstrip("/"), f"{where}.container.{field}")
        if not path.is_file():
            raise VirtsyncError(f"{where}.container.{field}: {path} not found")
        return path

    if kb.kernel_path:
        kernel = inside(kb.kernel_path, "kernelPath")
    else:
        found = [folder / n for n in KERNEL_NAMES if (folder / n).is_file()]
        if not found:
            raise VirtsyncError(
                f"{where}.container.kernelPath: not set and none of {', '.join(KERNEL_NAMES)} "
                f"is in {folder}"
            )
        kernel = inside(found[0].name, "kernelPath")
    initrd = inside(kb.initrd_path, "initrdPath") if kb.initrd_path else None
    return KernelBoot(
        kernel=str(kernel), initrd=str(initrd) if initrd else None, cmdline=kb.kernel_args
    )


# ---------------------------------------------------------------- the whole VM


def _device_and_bus(disk: DiskSpec, vol: VolumeSpec, where: str) -> tuple[str, DiskBus]:
    if disk.device == "lun":
        raise VirtsyncError(
            f"{where}: lun disks (SCSI passthrough) are not supported on libvirt nodes"
        )
    device = "cdrom" if vol.kind == "cloudInitNoCloud" else disk.device
    bus = disk.bus
    if device == "cdrom" and bus == "virtio":
        bus = "sata"  # QEMU has no virtio cdrom; the seed is found by its label on any bus
    known = _BUSES.get(bus)
    if known is None:
        raise VirtsyncError(f"{where}: unsupported bus {bus!r}")
    return device, known


def prepare_disks(
    vm: VmSpec,
    identity: Identity,
    storage: NodeStorage,
    *,
    sizes: Mapping[str, int] | None = None,
    fresh_scratch: bool = False,
    staged: Stager | None = None,
) -> PreparedDisks:
    """Create or check every volume the VM's disks use and return them resolved.

    `sizes` maps claim names to bytes (see `claim_sizes`). `fresh_scratch` recreates
    emptyDisks: pass it when a new incarnation starts, never while the domain runs.
    The caller must make sure no other running domain uses these files
    (`ensure_not_attached_elsewhere`) before starting the domain. `staged`: creations
    a batch started ahead (`new_disk_files`), taken where this makes the same one.
    """
    from node.domain.model import ResolvedDisk

    sizes = sizes or {}
    disks: list[ResolvedDisk] = []
    actions: list[DiskAction] = []
    base = ("spec", "template", "spec")
    for disk in vm.disks:
        dwhere = format_path((*base, "domain", "devices", "disks", disk.index))
        vol = vm.volume(disk.name)
        if vol is None:
            raise VirtsyncError(f"{dwhere}: no volume named {disk.name!r}")
        vindex = vm.volumes.index(vol)
        where = format_path((*base, "volumes", vindex, vol.kind))
        device, bus = _device_and_bus(disk, vol, dwhere)
        if vol.kind in CLAIM_SOURCES:
            v = _prepare_claim(vm, vol, storage, sizes, where, staged)
        elif vol.kind == "containerDisk":
            v = _prepare_container_disk(vm, vol, storage, where, staged)
        elif vol.kind == "emptyDisk":
            v = _prepare_empty_disk(vm, vol, storage, fresh_scratch, where, staged)
        elif vol.kind == "hostDisk":
            v = _prepare_host_disk(vol, storage, where)
        elif vol.kind == "cloudInitNoCloud":
            v = _prepare_cloud_init(vm, vol, identity, storage, where)
        else:
            raise VirtsyncError(f"{where}: unsupported volume source {vol.kind}")
        actions.append(DiskAction(vol.name, v.action, str(v.path)))
        disks.append(
            ResolvedDisk(
                name=disk.name,
                path=str(v.path),
                format="qcow2" if v.format == "qcow2" else "raw",
                device="cdrom" if device == "cdrom" else "disk",
                bus=bus,
                readonly=disk.readonly or device == "cdrom",
                serial=disk.serial or identity.disk_serials.get(disk.name),
                boot_order=disk.boot_order,
                shareable=disk.shareable,
            )
        )
    return PreparedDisks(tuple(disks), resolve_kernel(vm, storage), tuple(actions))


# ---------------------------------------------------------------- live checks and removal


def files_of_running_domains(conn: Any, *, defined_too: bool = False) -> dict[str, str]:
    """Resolved disk file → name of the running domain using it (`conn` is a
    libvirt.virConnect); with `defined_too`, of every defined domain, running or not,
    managed or not."""
    import libvirt

    used: dict[str, str] = {}
    flags = 0 if defined_too else libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
    for dom in conn.listAllDomains(flags):
        try:
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if defined_too else 0)
        except libvirt.libvirtError as exc:
            # Gone between the listing and the read: it holds no disk any more.
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue
            raise
        root = etree.fromstring(xml.encode())
        for src in root.iterfind("devices/disk/source"):
            f = src.get("file")
            if f:
                used[str(Path(f).resolve())] = dom.name()
    return used


def ensure_not_attached_elsewhere(
    conn: Any, disks: Sequence[ResolvedDisk], own_domain: str
) -> None:
    """Safety rule 6: refuse a disk that another running domain already has open."""
    used = files_of_running_domains(conn)
    for disk in disks:
        holder = used.get(str(Path(disk.path).resolve()))
        if holder is not None and holder != own_domain and not disk.shareable:
            raise VirtsyncError(
                f"disk {disk.name!r} ({disk.path}) is in use by running domain {holder!r}; "
                "a disk is never attached to two running domains"
            )


def remove_files(storage: NodeStorage, namespace: str, name: str, paths: Iterable[str],
                 *, in_use: Mapping[str, str]) -> tuple[str, ...]:
    """Delete exactly `paths` (the plan's list, safety rule 13), each confined to the
    storage directory, except a file a defined domain still uses (`in_use`, resolved
    path → domain; the plan cannot see unmanaged domains); then the VM's own directory
    if nothing else is left in it. Returns what went."""
    removed: list[str] = []
    for raw in paths:
        path = confine(storage.storage_dir, Path(raw), f"disk file of {namespace}/{name}")
        if str(path.resolve()) in in_use:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(str(path))
    vm_dir = storage.vm_dir(namespace, name)
    with contextlib.suppress(FileNotFoundError, OSError):
        vm_dir.rmdir()  # only when empty: a file not in the plan stays
    return tuple(removed)


# Names `_create_atomically` and cloudinit.write_seed give their temp files (mkstemp
# adds 8 characters): what a `kill -9` between create and rename leaves behind.
TEMP_NAME = re.compile(r"^\.(?:[a-z0-9][a-z0-9.-]*\.(?:qcow2|iso|raw|img)\.|cidata-)[a-z0-9_]{8}$")
TEMP_MIN_AGE = 60.0  # seconds: never take a file another writer may still be renaming


def sweep_temp_files(storage: NodeStorage, now: float,
                     min_age: float = TEMP_MIN_AGE) -> tuple[str, ...]:
    """Delete temp files of interrupted disk creations in the claims and VM folders
    (`<ns>/claims/`, `<ns>/vms/<vm>/`) older than `min_age`. Call only once the state
    has converged, under the state lock. Returns what went."""
    removed: list[str] = []
    for folder in sweep_folders(str(storage.storage_dir)):
        # os.scandir, not pathlib: this visits every VM's folder after each apply (issue 13)
        with os.scandir(folder) as it:
            temps = [e.path for e in it
                     if TEMP_NAME.match(e.name) and e.is_file(follow_symlinks=False)]
        for entry in temps:
            with contextlib.suppress(FileNotFoundError):
                if now - os.stat(entry).st_mtime >= min_age:
                    os.unlink(entry)
                    removed.append(entry)
    return tuple(sorted(removed))


_SKIPPED = (FileNotFoundError, NotADirectoryError, PermissionError)


def _listed(folder: str) -> list[os.DirEntry[str]]:
    """os.scandir(folder) as pathlib's glob reads it: nothing for a folder that is not
    there, not one, or not readable."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except _SKIPPED:
        return []
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return []
        raise


def sweep_folders(root: str) -> list[str]:
    """The real folders (no link) among root.glob("*/claims") and root.glob("*/vms/*"),
    listed with os.scandir instead (issue 13: pathlib made a Path per VM folder after
    every apply). As the glob does, any name matches `*` (hidden ones too) and links are
    followed on the way (a linked namespace or `vms` folder), never at the end."""
    claims: list[str] = []
    vms: list[str] = []
    for ns in _listed(root):
        if not ns.is_dir():  # follows a link, as the glob does on the way
            continue
        claims.append(os.path.join(ns.path, "claims"))
        vms += [e.path for e in _listed(os.path.join(ns.path, "vms"))
                if e.is_dir(follow_symlinks=False)]
    return [c for c in claims if _real_dir(Path(c))] + vms


def _real_dir(path: Path) -> bool:
    """A folder, not a symbolic link to one (one lstat; a path gone is no folder)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def own_leftovers(vm_dir: str, known: Iterable[str]) -> list[str]:
    """Files in the VM's own directory that none of its volumes uses now (an overlay of
    a removed volume, a temp file from a killed apply): its own, for prune to list."""
    try:
        with os.scandir(vm_dir) as it:
            entries = [e.path for e in it if e.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    used = set(known)
    # Equal strings are equal paths: only the others pay for pathlib's normalisation
    # (this runs for every VM on every observe, issue 13).
    rest = [e for e in entries if e not in used]
    if not rest:
        return []
    used_paths = {Path(f) for f in used}
    return [str(p) for p in sorted(Path(e) for e in rest) if p not in used_paths]


__all__ = [
    "DiskAction",
    "NodeStorage",
    "PreparedDisks",
    "UnsafePath",
    "claim_sizes",
    "ensure_not_attached_elsewhere",
    "files_of_running_domains",
    "new_disk_files",
    "new_seeds",
    "own_leftovers",
    "prepare_disks",
    "remove_files",
    "resolve_kernel",
    "sweep_temp_files",
]

"""node/disks: volumes become files inside the storage directory, with explicit formats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.identity.node_store import Identity
from node.storage.cloudinit import read_iso
from node.storage.disks import NodeStorage, claim_sizes, prepare_disks, remove_files
from node.storage.paths import UnsafePath
from reconciler.core.model import Manifest, SourceRef, VirtsyncError
from reconciler.core.vmspec import VmSpec

MiB = 1024 * 1024
IDENT = Identity(
    uuid="5e2f3a52-7d0c-4f1e-9a57-0d6b1c2e3f40",
    serial="0123456789ABCDEF0123",
    macs={"default": "02:00:00:00:00:01"},
    disk_serials={"root": "SERIALROOT", "data": "SERIALDATA", "scratch": "S3", "seed": "S4"},
)


def vm_body(
    disks: list[dict[str, Any]], volumes: list[dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm1", "namespace": "ns1"},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "spec": {
                    "domain": {"memory": {"guest": "128Mi"}, "devices": {"disks": disks}},
                    "volumes": volumes,
                }
            },
            **spec,
        },
    }


def vm_of(body: dict[str, Any]) -> VmSpec:
    return VmSpec.from_body("ns1", "vm1", body)


def info(path: str | Path, fmt: str) -> dict[str, Any]:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", "-f", fmt, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture
def storage(tmp_path: Path) -> NodeStorage:
    (tmp_path / "storage").mkdir()
    (tmp_path / "images").mkdir()
    return NodeStorage.of(tmp_path / "storage", tmp_path / "images")


def pvc_vm(claim: str = "data1") -> VmSpec:
    return vm_of(
        vm_body(
            [{"name": "data", "disk": {"bus": "virtio"}}],
            [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        )
    )


def test_claim_is_created_once_then_kept(storage: NodeStorage) -> None:
    vm = pvc_vm()
    first = prepare_disks(vm, IDENT, storage, sizes={"data1": 64 * MiB})
    [disk] = first.disks
    assert first.actions[0].action == "created"
    assert disk.path == str(storage.storage_dir / "ns1" / "claims" / "data1.qcow2")
    assert (disk.format, disk.device, disk.bus, disk.serial) == (
        "qcow2",
        "disk",
        "virtio",
        "SERIALDATA",
    )
    assert info(disk.path, "qcow2")["virtual-size"] == 64 * MiB
    Path(disk.path).chmod(0o600)
    # Guest data written to the disk survives the next preparation untouched.
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 4k", disk.path],
        check=True,
        capture_output=True,
    )
    before = Path(disk.path).read_bytes()
    again = prepare_disks(vm, IDENT, storage, sizes={"data1": 64 * MiB}, fresh_scratch=True)
    assert again.actions[0].action == "kept"
    assert Path(disk.path).read_bytes() == before
    assert not again.changed


def test_claim_grows_but_never_shrinks(storage: NodeStorage) -> None:
    vm = pvc_vm()
    prepare_disks(vm, IDENT, storage, sizes={"data1": 64 * MiB})
    grown = prepare_disks(vm, IDENT, storage, sizes={"data1": 128 * MiB})
    assert grown.actions[0].action == "grown"
    path = grown.disks[0].path
    assert info(path, "qcow2")["virtual-size"] == 128 * MiB
    with pytest.raises(VirtsyncError, match="refusing to shrink claim 'data1'"):
        prepare_disks(vm, IDENT, storage, sizes={"data1": 64 * MiB})
    assert info(path, "qcow2")["virtual-size"] == 128 * MiB


def test_claim_without_known_size_is_a_clear_error(storage: NodeStorage) -> None:
    with pytest.raises(
        VirtsyncError,
        match=r"volumes\[0\]\.persistentVolumeClaim: claim 'data1' does not exist.*DataVolume",
    ):
        prepare_disks(pvc_vm(), IDENT, storage)
    assert not (storage.storage_dir / "ns1" / "claims" / "data1.qcow2").exists()


def test_claim_sizes_from_datavolumes_and_templates() -> None:
    dv = Manifest(
        "cdi.kubevirt.io/v1beta1", "DataVolume", "ns1", "dv-a",
        {"spec": {"storage": {"resources": {"requests": {"storage": "2Gi"}}}}},
        SourceRef("dv.yaml"),
    )  # fmt: skip
    body = vm_body([], [], dataVolumeTemplates=[
        {"metadata": {"name": "dv-b"}, "spec": {"pvc": {"resources": {"requests": {"storage": "512Mi"}}}}},
    ])  # fmt: skip
    assert claim_sizes(vm_of(body), [dv]) == {"dv-a": 2 * 1024 * MiB, "dv-b": 512 * MiB}


def test_datavolume_volume_uses_claim_layout(storage: NodeStorage) -> None:
    body = vm_body(
        [{"name": "root", "disk": {}}],
        [{"name": "root", "dataVolume": {"name": "vm1-root"}}],
        dataVolumeTemplates=[
            {
                "metadata": {"name": "vm1-root"},
                "spec": {"storage": {"resources": {"requests": {"storage": "32Mi"}}}},
            }
        ],
    )
    prepared = prepare_disks(vm_of(body), IDENT, storage, sizes=claim_sizes(vm_of(body)))
    assert prepared.disks[0].path.endswith("/ns1/claims/vm1-root.qcow2")
    assert info(prepared.disks[0].path, "qcow2")["virtual-size"] == 32 * MiB


def test_container_disk_is_an_overlay_on_the_image(storage: NodeStorage) -> None:
    base = storage.image_dir / "debian.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "48M"], check=True)
    vm = vm_of(
        vm_body(
            [{"name": "root", "disk": {}}],
            [{"name": "root", "containerDisk": {"image": "debian.qcow2"}}],
        )
    )
    prepared = prepare_disks(vm, IDENT, storage)
    top = prepared.disks[0].path
    assert top == str(storage.storage_dir / "ns1" / "vms" / "vm1" / "containerdisk-root.qcow2")
    meta = info(top, "qcow2")
    assert meta["full-backing-filename"] == str(base)
    assert meta["backing-filename-format"] == "qcow2"
    assert meta["virtual-size"] == 48 * MiB
    assert prepare_disks(vm, IDENT, storage).actions[0].action == "kept"


def test_container_disk_image_folder_and_changed_image(storage: NodeStorage) -> None:
    (storage.image_dir / "img-a").mkdir()
    (storage.image_dir / "img-b").mkdir()
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "raw",
            str(storage.image_dir / "img-a" / "disk.img"),
            "8M",
        ],
        check=True,
    )
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "raw",
            str(storage.image_dir / "img-b" / "disk.img"),
            "8M",
        ],
        check=True,
    )

    def vm(image: str) -> VmSpec:
        return vm_of(
            vm_body(
                [{"name": "root", "disk": {}}],
                [{"name": "root", "containerDisk": {"image": image}}],
            )
        )

    first = prepare_disks(vm("img-a"), IDENT, storage)
    assert info(first.disks[0].path, "qcow2")["backing-filename-format"] == "raw"
    second = prepare_disks(vm("img-b"), IDENT, storage)
    assert second.actions[0].action == "recreated"
    assert info(second.disks[0].path, "qcow2")["full-backing-filename"].endswith("img-b/disk.img")


def test_missing_container_image_says_nothing_is_pulled(storage: NodeStorage) -> None:
    vm = vm_of(
        vm_body(
            [{"name": "root", "disk": {}}],
            [{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:39"}}],
        )
    )
    with pytest.raises(VirtsyncError, match=r"never pulls images from a registry") as err:
        prepare_disks(vm, IDENT, storage)
    assert str(storage.image_dir / "quay.io/containerdisks/fedora:39") in str(err.value)


def test_container_image_symlink_escape_is_refused(storage: NodeStorage, tmp_path: Path) -> None:
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "raw", str(tmp_path / "elsewhere.img"), "1M"], check=True
    )
    (storage.image_dir / "sneaky.img").symlink_to(tmp_path / "elsewhere.img")
    vm = vm_of(
        vm_body(
            [{"name": "root", "disk": {}}],
            [{"name": "root", "containerDisk": {"image": "sneaky.img"}}],
        )
    )
    with pytest.raises(UnsafePath, match="outside"):
        prepare_disks(vm, IDENT, storage)


def test_empty_disk_is_scratch_per_incarnation(storage: NodeStorage) -> None:
    vm = vm_of(
        vm_body(
            [{"name": "scratch", "disk": {}}],
            [{"name": "scratch", "emptyDisk": {"capacity": "16Mi"}}],
        )
    )
    path = prepare_disks(vm, IDENT, storage).disks[0].path
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 64k", path],
        check=True,
        capture_output=True,
    )
    used = info(path, "qcow2")["actual-size"]
    assert prepare_disks(vm, IDENT, storage).actions[0].action == "kept"
    fresh = prepare_disks(vm, IDENT, storage, fresh_scratch=True)
    assert fresh.actions[0].action == "recreated"
    assert info(path, "qcow2")["actual-size"] < used
    assert info(path, "qcow2")["virtual-size"] == 16 * MiB


def host_vm(path: str) -> VmSpec:
    return vm_of(vm_body(
        [{"name": "h", "disk": {}}],
        [{"name": "h", "hostDisk": {"path": path, "type": "DiskOrCreate", "capacity": "4Mi"}}],
    ))


@pytest.fixture
def host_storage(storage: NodeStorage, tmp_path: Path) -> NodeStorage:
    (tmp_path / "hostdisks").mkdir()
    return NodeStorage.of(storage.storage_dir, storage.image_dir, tmp_path / "hostdisks",
                          protected=[tmp_path / "state"])


@pytest.mark.parametrize("path", ["vm1/disk.img", "{root}/vm1/disk.img"])
def test_host_disk_inside_host_disk_dir_created_raw(host_storage: NodeStorage,
                                                    path: str) -> None:
    root = host_storage.host_disk_dir
    assert root is not None
    prepared = prepare_disks(host_vm(path.format(root=root)), IDENT, host_storage)
    assert prepared.disks[0].format == "raw"
    assert prepared.disks[0].path == str(root / "vm1" / "disk.img")
    assert Path(prepared.disks[0].path).stat().st_size == 4 * MiB


@pytest.mark.parametrize("path", [
    "/etc/passwd", "../escape.img", "vm1/../../escape.img", "/var/lib/libvirt/images/x.img",
    "{storage}/default/claims/other.qcow2", "{storage}/.virtsync-identity/default/x.json",
    "{state}/inventory.json",
])
def test_host_disk_outside_host_disk_dir_is_refused(host_storage: NodeStorage,
                                                    tmp_path: Path, path: str) -> None:
    """Rule 14: never another namespace's claim, the identity store or the state dir."""
    bad = path.format(storage=host_storage.storage_dir, state=tmp_path / "state")
    with pytest.raises(UnsafePath, match=r"volumes\[0\]\.hostDisk path"):
        prepare_disks(host_vm(bad), IDENT, host_storage)
    assert not list((tmp_path / "hostdisks").iterdir())


def test_host_disk_symlink_into_identity_store_is_refused(host_storage: NodeStorage,
                                                          tmp_path: Path) -> None:
    store = host_storage.storage_dir / ".virtsync-identity" / "default"
    store.mkdir(parents=True)
    (tmp_path / "hostdisks" / "link").symlink_to(store)
    with pytest.raises(UnsafePath, match="outside"):
        prepare_disks(host_vm("link/evil.json"), IDENT, host_storage)
    assert not list(store.iterdir())


def test_host_disk_without_host_disk_dir_is_refused(storage: NodeStorage) -> None:
    with pytest.raises(UnsafePath, match="sets no hostDiskDir"):
        prepare_disks(host_vm(str(storage.storage_dir / "x.img")), IDENT, storage)
    assert not (storage.storage_dir / "x.img").exists()


@pytest.mark.parametrize("target", ["storage", "state"])
def test_host_disk_dir_resolving_into_own_trees_is_refused(storage: NodeStorage,
                                                           tmp_path: Path, target: str) -> None:
    """A hostDiskDir that is a symlink to (or under) virtsync's own trees is refused."""
    (tmp_path / "state").mkdir()
    real = storage.storage_dir / "hd" if target == "storage" else tmp_path / "state"
    real.mkdir(exist_ok=True)
    (tmp_path / "innocent").symlink_to(real)
    s = NodeStorage.of(storage.storage_dir, storage.image_dir, tmp_path / "innocent",
                       protected=[tmp_path / "state"])
    with pytest.raises(UnsafePath, match="overlaps virtsync's"):
        prepare_disks(host_vm("x.img"), IDENT, s)
    assert not (real / "x.img").exists()


def test_tampered_claim_with_backing_outside_is_refused(
    storage: NodeStorage, tmp_path: Path
) -> None:
    vm = pvc_vm()
    path = prepare_disks(vm, IDENT, storage, sizes={"data1": MiB}).disks[0].path
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "raw", str(tmp_path / "host-secret"), "1M"], check=True
    )
    subprocess.run(
        [
            "qemu-img",
            "rebase",
            "-q",
            "-u",
            "-f",
            "qcow2",
            "-b",
            str(tmp_path / "host-secret"),
            "-F",
            "raw",
            path,
        ],
        check=True,
    )
    with pytest.raises(UnsafePath, match="host-secret is outside"):
        prepare_disks(vm, IDENT, storage, sizes={"data1": MiB})


def test_cloud_init_seed_is_a_cidata_iso_with_uuid_instance_id(storage: NodeStorage) -> None:
    body = vm_body(
        [{"name": "seed", "disk": {"bus": "virtio"}}],
        [
            {
                "name": "seed",
                "cloudInitNoCloud": {
                    "userData": "#cloud-config\npassword: hunter2\n",
                    "networkData": "version: 2\n",
                },
            }
        ],
    )
    prepared = prepare_disks(vm_of(body), IDENT, storage)
    [seed] = prepared.disks
    assert (seed.device, seed.format, seed.readonly, seed.bus) == ("cdrom", "raw", True, "sata")
    assert Path(seed.path).stat().st_mode & 0o077 == 0  # secret content: owner only
    label, files = read_iso(Path(seed.path).read_bytes())
    assert label == "cidata"
    assert files["user-data"] == b"#cloud-config\npassword: hunter2\n"
    assert files["network-config"] == b"version: 2\n"
    assert files["meta-data"].decode().startswith(f"instance-id: {IDENT.uuid}\n")
    blkid = subprocess.run(
        ["blkid", "-o", "export", seed.path], capture_output=True, text=True
    ).stdout
    assert "LABEL=cidata" in blkid and "TYPE=iso9660" in blkid
    # Same content: no rewrite (an empty plan makes zero writes).
    mtime = Path(seed.path).stat().st_mtime_ns
    assert prepare_disks(vm_of(body), IDENT, storage).actions[0].action == "unchanged"
    assert Path(seed.path).stat().st_mtime_ns == mtime
    # Secrets stay out of the results' text.
    assert "hunter2" not in repr(prepared) and "hunter2" not in repr(vm_of(body))


def test_cloud_init_secret_ref_is_refused(storage: NodeStorage) -> None:
    body = vm_body(
        [{"name": "seed", "disk": {}}],
        [{"name": "seed", "cloudInitNoCloud": {"secretRef": {"name": "s"}}}],
    )
    with pytest.raises(VirtsyncError, match="secretRef is not supported"):
        prepare_disks(vm_of(body), IDENT, storage)


def test_kernel_boot_resolves_inside_the_image_folder(storage: NodeStorage) -> None:
    folder = storage.image_dir / "tiny-guest"
    folder.mkdir()
    (folder / "vmlinux").write_bytes(b"k")
    (folder / "initramfs.cpio.gz").write_bytes(b"i")
    fw = {
        "kernelBoot": {
            "container": {
                "image": "tiny-guest",
                "kernelPath": "/vmlinux",
                "initrdPath": "/initramfs.cpio.gz",
            },
            "kernelArgs": "console=ttyS0",
        }
    }
    body = vm_body([], [])
    body["spec"]["template"]["spec"]["domain"]["firmware"] = fw
    kernel = prepare_disks(vm_of(body), IDENT, storage).kernel
    assert kernel is not None
    assert (kernel.kernel, kernel.initrd, kernel.cmdline) == (
        str(folder / "vmlinux"),
        str(folder / "initramfs.cpio.gz"),
        "console=ttyS0",
    )
    fw["kernelBoot"]["container"]["kernelPath"] = "/../../../etc/passwd"
    with pytest.raises(UnsafePath):
        prepare_disks(vm_of(body), IDENT, storage)
    fw["kernelBoot"]["container"]["image"] = "missing"
    with pytest.raises(VirtsyncError, match="never pulls"):
        prepare_disks(vm_of(body), IDENT, storage)


def test_remove_deletes_exactly_the_listed_files(storage: NodeStorage) -> None:
    """Rule 13: removal takes the plan's list and nothing else; a file a defined domain
    still uses is kept; the VM's directory goes only once empty."""
    body = vm_body(
        [{"name": "data", "disk": {}}, {"name": "scratch", "disk": {}}],
        [
            {"name": "data", "persistentVolumeClaim": {"claimName": "keepme"}},
            {"name": "scratch", "emptyDisk": {"capacity": "1Mi"}},
        ],
    )
    vm = vm_of(body)
    prepared = prepare_disks(vm, IDENT, storage, sizes={"keepme": MiB})
    claim, scratch = (Path(d.path) for d in prepared.disks)
    assert remove_files(storage, vm.namespace, vm.name, [str(scratch)], in_use={}) == (
        str(scratch),)
    assert claim.exists() and not scratch.exists()
    assert not scratch.parent.exists()
    assert remove_files(storage, vm.namespace, vm.name, [str(claim)],
                        in_use={str(claim.resolve()): "other"}) == ()
    assert claim.exists()
    assert remove_files(storage, vm.namespace, vm.name, [str(claim)], in_use={}) == (str(claim),)
    assert not claim.exists()
    with pytest.raises(UnsafePath):
        remove_files(storage, vm.namespace, vm.name, ["/etc/hostname"], in_use={})


def test_unsafe_names_never_become_paths(storage: NodeStorage) -> None:
    with pytest.raises(UnsafePath):
        prepare_disks(pvc_vm("../../etc"), IDENT, storage, sizes={"../../etc": MiB})


def test_disk_of_another_running_domain_is_refused() -> None:
    import libvirt

    from node.domain.model import ResolvedDisk
    from node.storage.disks import ensure_not_attached_elsewhere, files_of_running_domains

    conn = libvirt.open("test:///default")  # its running domain 'test' uses /guest/diskimage1
    try:
        assert files_of_running_domains(conn) == {"/guest/diskimage1": "test"}
        disk = ResolvedDisk("d", "/guest/diskimage1", "qcow2", "disk", "virtio", False, None, None)
        with pytest.raises(VirtsyncError, match="in use by running domain 'test'"):
            ensure_not_attached_elsewhere(conn, [disk], own_domain="ns1_vm1")
        ensure_not_attached_elsewhere(conn, [disk], own_domain="test")  # its own disk
        conn.lookupByName("test").destroy()
        ensure_not_attached_elsewhere(conn, [disk], own_domain="ns1_vm1")  # off: free
    finally:
        conn.close()


def test_disks_keep_spec_order_and_lun_is_refused(storage: NodeStorage) -> None:
    body = vm_body(
        [{"name": "scratch", "disk": {"bus": "sata"}}, {"name": "data", "disk": {}}],
        [
            {"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "scratch", "emptyDisk": {"capacity": "1Mi"}},
        ],
    )
    prepared = prepare_disks(vm_of(body), IDENT, storage, sizes={"c": MiB})
    assert [(d.name, d.bus, d.serial) for d in prepared.disks] == [
        ("scratch", "sata", "S3"),
        ("data", "virtio", "SERIALDATA"),
    ]
    lun = vm_body(
        [{"name": "data", "lun": {}}],
        [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}],
    )
    with pytest.raises(VirtsyncError, match=r"disks\[0\]: lun disks"):
        prepare_disks(vm_of(lun), IDENT, storage, sizes={"c": MiB})


def test_datavolume_import_sources_are_refused_not_blanked() -> None:
    from node.storage.disks import claim_sizes
    from reconciler.core.model import Manifest, SourceRef, VirtsyncError

    dv = Manifest("cdi.kubevirt.io/v1beta1", "DataVolume", "ns", "fedora", {
        "spec": {"source": {"http": {"url": "https://example.invalid/f.qcow2"}},
                 "storage": {"resources": {"requests": {"storage": "1Gi"}}}}},
        SourceRef("dv.yaml"))
    with pytest.raises(VirtsyncError, match=r"spec\.source\.http: the libvirt backend cannot"):
        claim_sizes(VmSpec("ns", "vm", {}), [dv])
    blank = Manifest("cdi.kubevirt.io/v1beta1", "DataVolume", "ns", "data", {
        "spec": {"source": {"blank": {}},
                 "storage": {"resources": {"requests": {"storage": "1Gi"}}}}},
        SourceRef("dv.yaml"))
    assert claim_sizes(VmSpec("ns", "vm", {}), [blank]) == {"data": 1024**3}

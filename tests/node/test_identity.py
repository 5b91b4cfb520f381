"""The durable identity store: allocation, stability, pins, collisions, durability."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from pathlib import Path
from typing import Any

import pytest
from domain_cases import MINIMAL, NODE, vm_body
from lxml import etree

import node.identity.node_store as identity_mod
from node.domain.builder import build_domain, to_xml
from node.domain.model import ResolvedDisk, ResolvedInterface, UserNet
from node.identity.node_store import Identity, IdentityStore
from reconciler.core.model import ObjectKey, VirtsyncError
from reconciler.core.vmspec import VmSpec

KEY = ObjectKey("VirtualMachine", "default", "web")


def vm(nics: list[str], disks: list[str], **pins: Any) -> VmSpec:
    firmware = {k: v for k, v in pins.items() if k in ("uuid", "serial")}
    mac_pins: dict[str, str] = pins.get("macs", {})
    serial_pins: dict[str, str] = pins.get("disk_serials", {})
    domain: dict[str, Any] = {
        "memory": {"guest": "256Mi"},
        "firmware": firmware,
        "devices": {
            "interfaces": [
                {
                    "name": n,
                    "masquerade": {},
                    **({"macAddress": mac_pins[n]} if n in mac_pins else {}),
                }
                for n in nics
            ],
            "disks": [
                {"name": d, **({"serial": serial_pins[d]} if d in serial_pins else {})}
                for d in disks
            ],
        },
    }
    return VmSpec.from_body("default", "web", vm_body(domain))


def snapshot(store: IdentityStore) -> dict[str, tuple[int, int, bytes]]:
    """Every file under the store: (inode, mtime_ns, bytes) — to prove 'no write'."""
    out = {}
    for p in sorted(store.root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            st = p.stat()
            out[str(p)] = (st.st_ino, st.st_mtime_ns, p.read_bytes())
    return out


def test_first_ensure_allocates_everything(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    ident = store.ensure(KEY, vm(["default", "prod"], ["root", "data"]))
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", ident.uuid
    )
    assert re.fullmatch(r"[0-9A-F]{20}", ident.serial)
    assert set(ident.macs) == {"default", "prod"} and set(ident.disk_serials) == {"root", "data"}
    for mac in ident.macs.values():
        first = int(mac[:2], 16)
        assert first & 0b10 and not first & 0b01  # locally administered, unicast
    assert len(set(ident.macs.values())) == 2
    assert all(len(s) <= 20 for s in ident.disk_serials.values())
    record = tmp_path / ".virtsync-identity" / "default" / "web.json"
    assert json.loads(record.read_text())["uuid"] == ident.uuid
    assert store.get(KEY) == ident


def test_identity_is_random_not_derived_from_the_name(tmp_path: Path) -> None:
    a = IdentityStore(tmp_path / "a").ensure(KEY, vm(["n"], ["d"]))
    b = IdentityStore(tmp_path / "b").ensure(KEY, vm(["n"], ["d"]))
    assert a.uuid != b.uuid and a.serial != b.serial and a.macs != b.macs


def test_converged_ensure_writes_nothing(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    first = store.ensure(KEY, vm(["default"], ["root"]))
    before = snapshot(store)
    assert store.ensure(KEY, vm(["default"], ["root"])) == first
    assert snapshot(store) == before


def test_adding_and_removing_other_devices_keeps_identity(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    base = store.ensure(KEY, vm(["default"], ["root"]))
    grown = store.ensure(KEY, vm(["default", "prod"], ["root", "data"]))
    assert (grown.uuid, grown.serial) == (base.uuid, base.serial)
    assert grown.macs["default"] == base.macs["default"]
    assert grown.disk_serials["root"] == base.disk_serials["root"]
    # Removing 'default' and 'root' from the spec keeps everything else as it was...
    shrunk = store.ensure(KEY, vm(["prod"], ["data"]))
    assert shrunk.macs["prod"] == grown.macs["prod"]
    assert shrunk.disk_serials["data"] == grown.disk_serials["data"]
    # ...and re-adding them gives back their old values.
    back = store.ensure(KEY, vm(["default", "prod"], ["root", "data"]))
    assert back == grown


def test_survives_agent_restart_and_lost_libvirt_definition(tmp_path: Path, test_conn: Any) -> None:
    """ensure → define → start/stop → undefine (restart-class change, or the libvirt
    definition is simply lost) → a new store object (agent restart) → same identity in
    the new domain."""
    spec = vm(["default"], ["root"])
    first = IdentityStore(tmp_path).ensure(KEY, spec)

    def define(ident: Identity) -> Any:
        disks = [ResolvedDisk("root", "/s/root.qcow2", "qcow2", "disk", "virtio", False,
                              ident.disk_serials["root"], 1)]  # fmt: skip
        nics = [ResolvedInterface("default", ident.macs["default"], "virtio", UserNet())]
        el = build_domain(spec, ident, NODE, disks, nics, None, MINIMAL.metadata)
        return test_conn.defineXML(to_xml(el))

    def observed(dom: Any) -> tuple[str, ...]:
        x = etree.fromstring(dom.XMLDesc(0).encode())
        return (
            dom.UUIDString(),
            x.findtext("sysinfo/system/entry[@name='serial']") or "",
            x.find("devices/interface/mac").get("address"),  # type: ignore[union-attr]
            x.findtext("devices/disk/serial") or "",
        )

    dom = define(first)
    dom.create()
    dom.destroy()
    dom.create()  # stop/start
    seen = observed(dom)
    dom.destroy()
    dom.undefine()  # lost definition / restart-class redefine
    again = IdentityStore(tmp_path).ensure(KEY, spec)  # fresh process view
    assert again == first
    assert (
        observed(define(again))
        == seen
        == (first.uuid, first.serial, first.macs["default"], first.disk_serials["root"])
    )


def test_pins_win_on_creation_and_agree_later(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    pins = dict(
        uuid="11111111-2222-4333-8444-555555555555",
        serial="PINNED-SERIAL",
        macs={"default": "02:aa:bb:cc:dd:ee"},
        disk_serials={"root": "ROOTSERIAL"},
    )
    ident = store.ensure(KEY, vm(["default", "prod"], ["root"], **pins))
    assert ident.uuid == pins["uuid"] and ident.serial == "PINNED-SERIAL"
    assert (
        ident.macs["default"] == "02:aa:bb:cc:dd:ee" and ident.disk_serials["root"] == "ROOTSERIAL"
    )
    assert store.ensure(KEY, vm(["default", "prod"], ["root"], **pins)) == ident


def test_contradicting_pin_is_refused_unless_forced(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    stored = store.ensure(KEY, vm(["default"], ["root"]))
    before = snapshot(store)
    wrong = vm(["default"], ["root"], uuid="11111111-2222-4333-8444-555555555555",
               macs={"default": "02:aa:bb:cc:dd:ee"})  # fmt: skip
    with pytest.raises(VirtsyncError) as err:
        store.ensure(KEY, wrong)
    msg = str(err.value)
    assert "firmware.uuid" in msg and stored.uuid in msg and "--force" in msg
    assert "interfaces[default].macAddress" in msg
    assert snapshot(store) == before  # nothing written
    forced = store.ensure(KEY, wrong, force=True)
    assert forced.uuid == "11111111-2222-4333-8444-555555555555"
    assert forced.macs["default"] == "02:aa:bb:cc:dd:ee"
    assert forced.serial == stored.serial  # unpinned values untouched
    assert store.get(KEY) == forced


def test_pinned_mac_owned_by_another_vm_is_refused(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    other = ObjectKey("VirtualMachine", "default", "db")
    taken = store.ensure(other, vm(["default"], [])).macs["default"]
    with pytest.raises(VirtsyncError, match="already used by default/db"):
        store.ensure(KEY, vm(["default"], [], macs={"default": taken}))
    assert store.get(KEY) is None


def test_allocation_skips_taken_and_reserved_macs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = IdentityStore(tmp_path)
    other = ObjectKey("VirtualMachine", "default", "db")
    store.put(other, Identity("u", "s", macs={"x": "02:00:00:00:00:01"}))
    draws = iter(["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03",
                  "02:00:00:00:00:03", "02:00:00:00:00:04"])  # fmt: skip
    monkeypatch.setattr(identity_mod, "new_mac", lambda: next(draws))
    ident = store.ensure(KEY, vm(["a", "b"], [], macs={}), reserved_macs=["02:00:00:00:00:02"])
    # 01 is another VM's, 02 is pinned elsewhere in the tree, the second 03 is a's own.
    assert dict(ident.macs) == {"a": "02:00:00:00:00:03", "b": "02:00:00:00:00:04"}


def test_corrupt_record_is_an_error_never_a_new_identity(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    store.ensure(KEY, vm(["default"], ["root"]))
    path = store.record_path(KEY)
    path.write_text("{ not json")
    with pytest.raises(VirtsyncError, match="not valid JSON"):
        store.ensure(KEY, vm(["default"], ["root"]))
    assert path.read_text() == "{ not json"


def test_writes_leave_no_temp_files_and_forget_removes(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    store.ensure(KEY, vm(["default"], ["root"]))
    store.ensure(KEY, vm(["default", "x"], ["root"]))
    files = sorted(p.name for p in (store.root / "default").iterdir())
    assert files == ["web.json"]
    assert [k for k, _ in store.items()] == [KEY]
    assert store.forget(KEY) and store.get(KEY) is None and not store.forget(KEY)


@pytest.mark.parametrize("name", ["../etc", "a/b", "Web", ""])
def test_keys_that_are_not_object_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(VirtsyncError):
        IdentityStore(tmp_path).get(ObjectKey("VirtualMachine", "default", name))


def test_lock_held_elsewhere_times_out_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    monkeypatch.setattr(identity_mod, "LOCK_TIMEOUT_SECONDS", 0.2)
    store = IdentityStore(tmp_path)
    store.root.mkdir(parents=True)
    # Any flock(2) holder counts: another virtsync process, or a tool of the operator's.
    with (store.root / ".lock").open("w") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(VirtsyncError, match="locked"):
            store.ensure(KEY, vm(["default"], []))


def _allocate_many(args: tuple[str, int]) -> list[str]:
    storage, worker = args
    store = IdentityStore(storage)
    macs = []
    for i in range(15):
        key = ObjectKey("VirtualMachine", f"w{worker}", f"vm{i}")
        macs.extend(store.ensure(key, vm(["a", "b"], ["d"])).macs.values())
    return macs


def test_concurrent_processes_keep_the_store_consistent(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn" if os.name != "posix" else "fork")
    with ctx.Pool(4) as pool:
        results = pool.map(_allocate_many, [(str(tmp_path), w) for w in range(4)])
    macs = [m for r in results for m in r]
    assert len(macs) == 4 * 15 * 2 == len(set(macs))
    store_macs = [m for _, ident in IdentityStore(tmp_path).items() for m in ident.macs.values()]
    assert sorted(store_macs) == sorted(macs)


def test_allocation_does_not_reread_every_record(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = IdentityStore(tmp_path)
    for i in range(30):
        store.ensure(ObjectKey("VirtualMachine", "default", f"vm{i}"), vm(["a"], []))
    reads: list[Path] = []
    real = IdentityStore._read

    def counting(self: IdentityStore, path: Path) -> Identity | None:
        reads.append(path)
        return real(self, path)

    monkeypatch.setattr(IdentityStore, "_read", counting)
    store.ensure(ObjectKey("VirtualMachine", "default", "new"), vm(["a"], []))
    # At most the new VM's own record is looked at (it has none: a stat finds that);
    # no other record is read: the MAC index is current.
    assert [p.stem for p in reads] in ([], ["new"])


def test_macs_allocated_by_another_store_object_are_seen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = IdentityStore(tmp_path), IdentityStore(tmp_path)
    first.ensure(ObjectKey("VirtualMachine", "default", "one"), vm(["a"], []))
    taken = second.ensure(ObjectKey("VirtualMachine", "default", "two"), vm(["a"], [])).macs["a"]
    # `first` drew before `second` wrote; it must notice the store changed underneath.
    # (ensure drafts the identity once without the index, then for real: two draws.)
    draws = iter([taken, taken, "02:00:00:00:00:99"])
    monkeypatch.setattr(identity_mod, "new_mac", lambda: next(draws))
    three = first.ensure(ObjectKey("VirtualMachine", "default", "three"), vm(["a"], []))
    assert three.macs["a"] == "02:00:00:00:00:99"


def test_move_carries_a_renamed_vms_identity_and_its_pins(tmp_path: Path) -> None:
    """Rule 17: after `move`, the new name owns the record, so its pinned MACs are no
    longer "already used" by the old name; moving twice is harmless."""
    store = IdentityStore(tmp_path)
    new = ObjectKey("VirtualMachine", "default", "web-renamed")
    ident = store.ensure(KEY, vm(["default"], ["root"]))
    pinned = vm(["default"], ["root"], macs=dict(ident.macs), uuid=ident.uuid)
    with pytest.raises(VirtsyncError, match="already used by default/web"):
        store.ensure(new, pinned)
    assert store.move(KEY, new) == ident
    assert store.get(KEY) is None and store.get(new) == ident
    assert store.ensure(new, pinned) == ident
    assert store.move(KEY, new) == ident  # already moved (a rerun after a crash)
    other = ObjectKey("VirtualMachine", "default", "other")
    store.ensure(other, vm(["default"], []))
    with pytest.raises(VirtsyncError, match="already holds a different one"):
        store.move(other, new)
    assert store.get(other) is not None

"""A resync reuses what did not change since the last one (issue 13: watch at 10,000 VMs):
each domain's parsed definition while its XML text is the same, its observed body and
hash, each desired object's digested body and placement demand while its manifest is the
same. Each test warms those up with resyncs first, then changes one input behind the
watcher's back, and checks the next resync sees it exactly as a first one would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
import yaml
from lxml import etree
from watch_helpers import Rig, make_rig, vm_body

from reconciler.watch.watcher import Watcher

CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    r = make_rig(tmp_path, vms=3)
    yield r
    r.cleanup()


def _warm(rig: Rig) -> Watcher:
    w = rig.make_watcher()
    assert w.startup().result == "ok"
    for _ in range(2):
        assert w.resync().changes == 0
    return w


def _redefine(rig: Rig, name: str, *edits: tuple[str, str]) -> None:
    """Edit the domain's persistent definition out of band (as `virsh edit` would)."""
    xml = rig.domain(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    for old, new in edits:
        assert old in xml, old
        xml = xml.replace(old, new)
    rig.holder.defineXML(xml)


def _applied(report: object) -> list[tuple[str, str]]:
    return sorted((o.key.name, o.word) for o in report.outcomes)  # type: ignore[attr-defined]


def test_a_warm_resync_sees_memory_edited_out_of_band(rig: Rig) -> None:
    w = _warm(rig)
    _redefine(rig, "vm1", ("<memory unit='KiB'>65536</memory>",
                           "<memory unit='KiB'>131072</memory>"),
              ("<currentMemory unit='KiB'>65536</currentMemory>",
               "<currentMemory unit='KiB'>131072</currentMemory>"))
    report = w.resync()
    assert report.drift == 1
    assert _applied(report) == [("vm1", "configured")]
    assert rig.domain("vm1").info()[1] == 65536  # git's size again
    assert w.resync().changes == 0


def test_a_warm_resync_sees_a_cpu_topology_edited_out_of_band(rig: Rig) -> None:
    w = _warm(rig)
    _redefine(rig, "vm2", ("<vcpu placement='static'>1</vcpu>",
                           "<vcpu placement='static'>2</vcpu>"),
              ("cores='1'", "cores='2'"))
    report = w.resync()
    assert report.drift == 1
    assert _applied(report) == [("vm2", "configured")]
    maximum = CONFIG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM
    assert rig.domain("vm2").vcpusFlags(maximum) == 1
    assert w.resync().changes == 0


def test_a_warm_resync_sees_a_domain_undefined_out_of_band(rig: Rig) -> None:
    w = _warm(rig)
    rig.domain("vm0").undefine()
    report = w.resync()
    assert report.drift == 1
    assert _applied(report) == [("vm0", "created")]
    assert w.resync().changes == 0


def test_a_warm_resync_sees_a_file_saved_while_no_event_came(rig: Rig) -> None:
    """No file events here (startup without the observer): only the resync's re-read can
    see the edit, and the digested-body memo must not answer with the old body."""
    w = _warm(rig)
    rig.write_vm("vm1", cores=2)
    report = w.resync()
    assert report.drift == 0  # the tree changed: not drift
    assert _applied(report) == [("vm1", "configured")]
    maximum = CONFIG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM
    assert rig.domain("vm1").vcpusFlags(maximum) == 2
    assert w.resync().changes == 0


def test_a_warm_resync_sees_a_changed_secret(rig: Rig) -> None:
    """A cloud-init secret changes only in its digest on the planner's side."""
    rig.write_vm("vm0", user_data="#cloud-config\npassword: one\n")
    w = _warm(rig)
    rig.write_vm("vm0", user_data="#cloud-config\npassword: two\n")
    report = w.resync()
    assert _applied(report) == [("vm0", "configured")]
    assert "two" not in str(report)
    assert w.resync().changes == 0


def test_a_warm_resync_sees_a_disk_file_removed_out_of_band(rig: Rig) -> None:
    """The disk facts read from an unchanged definition are reused; whether the file is
    there is asked again every time (a missing disk is never up to date)."""
    rig.write_vm("vm2", user_data="#cloud-config\nhostname: two\n")
    w = _warm(rig)
    xml = rig.domain("vm2").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    (iso,) = [p for p in etree.fromstring(xml.encode()).xpath("//disk/source/@file")]
    Path(iso).unlink()
    report = w.resync()
    assert _applied(report) == [("vm2", "configured")]
    assert Path(iso).exists()
    assert w.resync().changes == 0


def test_a_warm_resync_reads_the_disks_of_a_redefined_domain_again(rig: Rig) -> None:
    """A VM whose disk moved to another file (here: its cloud-init disk renamed) is
    observed with the new file, not the one its earlier definition named."""
    rig.write_vm("vm1", user_data="#cloud-config\nhostname: one\n")
    w = _warm(rig)
    body = vm_body("vm1", rig.ns, user_data="#cloud-config\nhostname: one\n")
    tmpl = body["spec"]["template"]["spec"]
    tmpl["domain"]["devices"]["disks"][0]["name"] = "seed"
    tmpl["volumes"][0]["name"] = "seed"
    rig.write("vm1.yaml", yaml.safe_dump(body))
    assert _applied(w.resync()) == [("vm1", "configured")]
    listed = [d for o in w.backend.observe().objects  # type: ignore[union-attr]
              if o.key.name == "vm1" for d in o.disks]
    assert [d.volume for d in listed if d.volume] == ["seed"]
    assert all(d.exists for d in listed)
    assert w.resync().changes == 0


def _cluster(rig: Rig, memory_mib: int) -> str:
    return yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "local"},
        "spec": {"nodes": [{"name": "n1", "uri": "test:///default",
                            "storageDir": str(rig.base / "storage"),
                            "imageDir": str(rig.base / "images"), "memoryMiB": memory_mib}]},
    })


def test_a_changed_cluster_object_reloads_the_backend_on_a_saved_file(rig: Rig) -> None:
    w = _warm(rig)
    first = w.backend
    path = rig.write("cluster.yaml", _cluster(rig, 32768))
    assert w.on_change({str(path)}).result == "ok"
    assert w.backend is not first and rig.events("backend.reload")
    assert w.resync().changes == 0
    assert len(rig.events("backend.reload")) == 1  # an unchanged Cluster keeps it


def test_a_cluster_object_moved_to_another_file_is_seen_by_a_resync(rig: Rig) -> None:
    """Seen by the resync's re-read (no event), in a file of another name and shape."""
    w = _warm(rig)
    first = w.backend
    (rig.tree / "cluster.yaml").unlink()
    rig.write("nodes.yaml", "# the nodes\n" + _cluster(rig, 16384))
    assert w.resync().result == "ok"
    assert w.backend is not first and len(rig.events("backend.reload")) == 1

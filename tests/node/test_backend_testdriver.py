"""The libvirt backend end to end on libvirt's test driver (test:///default): create,
observe, drift, update with and without restart, stop/start, delete, owner marker,
placement and pending statuses, observation errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from backend_helpers import TEST_URI, backend, manifest, node, vm_body
from lxml import etree

from node.cluster.host import spec_hash
from node.domain.naming import domain_name
from reconciler.backends.base import Backend, BackendError
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import ObjectKey
from reconciler.core.sensitive import sensitive_digest
from reconciler.core.vmspec import VmSpec

KEY = ObjectKey("VirtualMachine", "default", "web")


@pytest.fixture
def conn() -> Iterator[libvirt.virConnect]:
    """Keeps test:///default alive for the test; its state dies when all connections close."""
    c = libvirt.open(TEST_URI)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def be(tmp_path: Path, conn: libvirt.virConnect) -> Iterator[LibvirtBackend]:
    b = backend(tmp_path)
    try:
        yield b
    finally:
        b.close()


def obj(b: LibvirtBackend, key: ObjectKey = KEY):  # type: ignore[no-untyped-def]
    found = [o for o in b.observe().objects if o.key == key]
    assert len(found) == 1, f"{key} observed {len(found)} times"
    return found[0]


def test_is_a_backend(be: LibvirtBackend) -> None:
    assert isinstance(be, Backend)


def test_create_runs_always_vm_and_observe_reports_it(be: LibvirtBackend, conn) -> None:
    be.create(manifest(vm_body()), revision="rev1", refs={})
    o = obj(be)
    assert o.node == "n1"
    assert o.revision == "rev1"
    assert o.status.printable_status == "Running"
    assert o.status.ready is True
    assert o.status.node == "n1"
    assert o.body["spec"]["template"]["spec"]["domain"]["cpu"] == {"cores": 1}
    dom = conn.lookupByName(domain_name("default", "web"))
    assert dom.isActive()
    assert o.identity.uuid == dom.UUIDString()
    assert len(o.identity.serial) == 20
    assert set(o.identity.macs) == {"default"}


def test_halted_vm_is_defined_but_not_started(be: LibvirtBackend, conn) -> None:
    be.create(manifest(vm_body(run_strategy="Halted")), revision="r", refs={})
    assert obj(be).status.printable_status == "Stopped"
    assert not conn.lookupByName("default_web").isActive()


def test_user_data_is_never_stored_in_clear_text(be: LibvirtBackend, conn) -> None:
    secret = "#cloud-config\npassword: hunter2-very-secret\n"
    be.create(manifest(vm_body(user_data=secret)), revision="r", refs={})
    dom = conn.lookupByName("default_web")
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        assert "hunter2" not in dom.XMLDesc(flags)
    vols = obj(be).body["spec"]["template"]["spec"]["volumes"]
    ci = next(v for v in vols if v["name"] == "cloudinit")
    assert ci["cloudInitNoCloud"]["userData"] == sensitive_digest(secret)


def test_create_is_idempotent_and_keeps_identity(be: LibvirtBackend) -> None:
    m = manifest(vm_body())
    be.create(m, revision="r", refs={})
    first = obj(be).identity
    be.create(m, revision="r", refs={})
    assert obj(be).identity == first
    assert len(be.observe().objects) == 1


def test_drift_made_outside_virtsync_shows_in_observed_body(be: LibvirtBackend, conn) -> None:
    be.create(manifest(vm_body(cores=2, run_strategy="Halted")), revision="r", refs={})
    dom = conn.lookupByName("default_web")
    root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    root.find("vcpu").text = "3"
    root.find("cpu/topology").set("cores", "3")
    root.find("memory").text = "262144"
    root.find("currentMemory").text = "262144"
    root.find("devices/interface/mac").set("address", "02:00:00:00:00:99")
    conn.defineXML(etree.tostring(root).decode())
    domain = obj(be).body["spec"]["template"]["spec"]["domain"]
    assert domain["cpu"]["cores"] == 3
    assert domain["memory"]["guest"] == "262144Ki"
    assert domain["devices"]["interfaces"][0]["macAddress"] == "02:00:00:00:00:99"


def test_update_without_restart_marks_restart_required(be: LibvirtBackend) -> None:
    be.create(manifest(vm_body(cores=1)), revision="r1", refs={})
    be.update(manifest(vm_body(cores=2)), revision="r2", refs={}, restart=False)
    o = obj(be)
    assert o.status.printable_status == "Running"
    conds = {c.type: c for c in o.status.conditions}
    assert conds["RestartRequired"].status is True
    assert o.revision == "r2"
    # The applied body is the new one: the planner sees no further change.
    assert o.body["spec"]["template"]["spec"]["domain"]["cpu"] == {"cores": 2}


def test_update_with_restart_keeps_identity_and_applies_spec(be: LibvirtBackend, conn) -> None:
    be.create(manifest(vm_body(cores=1)), revision="r1", refs={})
    before = obj(be)
    be.update(manifest(vm_body(cores=2)), revision="r2", refs={}, restart=True)
    after = obj(be)
    assert after.identity == before.identity
    assert after.status.printable_status == "Running"
    assert "RestartRequired" not in {c.type for c in after.status.conditions}
    dom = conn.lookupByName("default_web")
    assert dom.info()[3] == 2  # vCPUs of the new incarnation
    assert after.spec_hash == spec_hash(VmSpec("default", "web", vm_body(cores=2)))


def test_label_only_update_needs_no_restart(be: LibvirtBackend) -> None:
    be.create(manifest(vm_body()), revision="r1", refs={})
    body = vm_body()
    body["metadata"]["labels"] = {"tier": "web"}
    body["spec"]["runStrategy"] = "RerunOnFailure"
    be.update(manifest(body), revision="r2", refs={}, restart=False)
    o = obj(be)
    assert "RestartRequired" not in {c.type for c in o.status.conditions}
    assert o.body["metadata"]["labels"] == {"tier": "web"}


def test_stop_is_graceful_and_start_brings_it_back(be: LibvirtBackend, conn) -> None:
    be.create(manifest(vm_body()), revision="r", refs={})
    be.stop(KEY)
    dom = conn.lookupByName("default_web")
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
    o = obj(be)
    assert o.status.printable_status == "Stopped"
    assert {c.type: c for c in o.status.conditions}["Ready"].message == "stopped on request"
    be.start(KEY)
    assert obj(be).status.printable_status == "Running"


def test_paused_guest_is_not_stopped_without_force(be: LibvirtBackend, conn) -> None:
    be.create(manifest(vm_body()), revision="r", refs={})
    dom = conn.lookupByName("default_web")
    dom.suspend()
    o = obj(be)
    assert o.status.printable_status == "Paused"
    assert {c.type: c.reason for c in o.status.conditions}["Paused"] == "PausedByUser"
    with pytest.raises(BackendError, match=r"paused .*--force \(may corrupt data\)"):
        be.stop(KEY)
    assert dom.isActive()
    be.stop(KEY, force=True)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert dom.state()[1] == libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED


def test_restart_starts_a_new_incarnation(be: LibvirtBackend, conn) -> None:
    be.create(manifest(vm_body()), revision="r", refs={})
    dom = conn.lookupByName("default_web")
    old_id = dom.ID()
    be.restart(KEY)
    again = conn.lookupByName("default_web")
    assert again.isActive()
    assert again.ID() != old_id


def test_delete_keeps_disks_unless_asked(be: LibvirtBackend, tmp_path: Path, conn) -> None:
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}
    body = vm_body(extra_volumes=[claim])
    body["spec"]["dataVolumeTemplates"] = [{
        "metadata": {"name": "web-data"},
        "spec": {"storage": {"resources": {"requests": {"storage": "1Mi"}}}},
    }]
    be.create(manifest(body), revision="r", refs={})
    claim_file = tmp_path / "n1/storage/default/claims/web-data.qcow2"
    assert claim_file.is_file()
    be.delete(KEY, delete_disks=False)
    assert be.observe().objects == ()
    assert claim_file.is_file()
    names = [d.name() for d in conn.listAllDomains()]
    assert "default_web" not in names
    # Re-creating finds the kept disk and the same identity.
    be.create(manifest(body), revision="r", refs={})
    uuid = obj(be).identity.uuid
    assert ("data", "web-data", True) in [(d.volume, d.claim, d.exists) for d in obj(be).disks]
    be.delete(KEY, delete_disks=True, files=[str(claim_file)])  # exactly the planned files
    assert not claim_file.exists()
    be.create(manifest(body), revision="r", refs={})
    assert obj(be).identity.uuid != uuid  # identity forgotten only with the disks


def test_unmarked_domain_is_a_conflict_and_never_touched(be: LibvirtBackend, conn) -> None:
    xml = ("<domain type='test'><name>default_web</name><memory>65536</memory>"
           "<os><type>hvm</type></os></domain>")
    foreign = conn.defineXML(xml)
    foreign.create()
    obs = be.observe()
    assert KEY in obs.conflicts
    assert all(o.key != KEY for o in obs.objects)
    for call in (
        lambda: be.create(manifest(vm_body()), revision="r", refs={}),
        lambda: be.stop(KEY),
        lambda: be.delete(KEY, delete_disks=True),
        lambda: be.update(manifest(vm_body()), revision="r", refs={}, restart=True),
    ):
        with pytest.raises(BackendError, match="owner marker"):
            call()
    assert foreign.isActive()
    assert "virtsync" not in foreign.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def test_unschedulable_vm_is_reported_and_retried(tmp_path: Path, conn) -> None:
    b = backend(tmp_path, node(tmp_path, labels={"zone": "a"}))
    try:
        body = vm_body()
        body["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "b"}
        with pytest.raises(BackendError, match="ErrorUnschedulable: 0/1 nodes are available: "
                                               "1 node\\(s\\) didn't match node selector"):
            b.create(manifest(body), revision="r", refs={})
        o = obj(b)
        assert o.status.printable_status == "ErrorUnschedulable"
        assert o.node == ""
        assert "spec" not in o.body  # so the next plan tries again
        # Fixed in git: update retries placement and the pending record goes away.
        b.update(manifest(vm_body()), revision="r2", refs={}, restart=False)
        assert obj(b).status.printable_status == "Running"
    finally:
        b.close()


def test_memory_decides_placement(tmp_path: Path, conn) -> None:
    # Two separate test-driver hosts: test:///FILE gives each connection its own state.
    (tmp_path / "host.xml").write_text("<node/>")
    uri = f"test://{tmp_path}/host.xml"
    small = node(tmp_path, "small", mib=256, uri=uri)
    big = node(tmp_path, "big", mib=4096, uri=uri)
    b = backend(tmp_path, small, big)
    try:
        b.create(manifest(vm_body("a", memory="1Gi")), revision="r", refs={})
        assert obj(b, ObjectKey("VirtualMachine", "default", "a")).node == "big"
        with pytest.raises(BackendError, match="insufficient memory"):
            b.create(manifest(vm_body("b", memory="4Gi")), revision="r", refs={})
        # A VM that stays off only needs a matching node.
        b.create(manifest(vm_body("c", memory="4Gi", run_strategy="Halted")),
                 revision="r", refs={})
        assert obj(b, ObjectKey("VirtualMachine", "default", "c")).status.printable_status \
            == "Stopped"
    finally:
        b.close()


def test_missing_claim_is_error_pvc_not_found(be: LibvirtBackend) -> None:
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": "nowhere"}}
    with pytest.raises(BackendError, match="ErrorPvcNotFound"):
        be.create(manifest(vm_body(extra_volumes=[claim])), revision="r", refs={})
    assert obj(be).status.printable_status == "ErrorPvcNotFound"


def test_instancetype_and_preference_are_applied(be: LibvirtBackend, conn) -> None:
    body = vm_body()
    del body["spec"]["template"]["spec"]["domain"]["cpu"]
    del body["spec"]["template"]["spec"]["domain"]["memory"]
    body["spec"]["instancetype"] = {"name": "u1.small"}
    body["spec"]["preference"] = {"name": "cores", "kind": "VirtualMachinePreference"}
    it = manifest({"metadata": {"name": "u1.small"},
                   "spec": {"cpu": {"guest": 2}, "memory": {"guest": "256Mi"}}},
                  "VirtualMachineClusterInstancetype", "instancetype.kubevirt.io/v1beta1")
    pref = manifest({"metadata": {"name": "cores", "namespace": "default"},
                     "spec": {"cpu": {"preferredCPUTopology": "cores"}}},
                    "VirtualMachinePreference", "instancetype.kubevirt.io/v1beta1")
    be.create(manifest(body), revision="r", refs={it.key: it, pref.key: pref})
    root = etree.fromstring(conn.lookupByName("default_web").XMLDesc(0))
    assert root.find("cpu/topology").get("cores") == "2"
    assert root.find("memory").text == str(256 * 1024)
    # The observed body is what git says (no drift): instancetype, no cpu block.
    domain = obj(be).body["spec"]["template"]["spec"]["domain"]
    assert "cpu" not in domain and "memory" not in domain


def test_failed_connection_is_an_error_naming_node_and_uri(tmp_path: Path) -> None:
    bad = node(tmp_path, "far", uri="test+tcp://127.0.0.1:1/default")
    b = backend(tmp_path, bad)
    with pytest.raises(BackendError, match=r"node far \(test\+tcp://127\.0\.0\.1:1/default\)"):
        b.observe()


def test_broken_owner_marker_fails_observe(be: LibvirtBackend, conn) -> None:
    be.create(manifest(vm_body(run_strategy="Halted")), revision="r", refs={})
    dom = conn.lookupByName("default_web")
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    conn.defineXML(xml.replace("<virtsync:generation>1</virtsync:generation>",
                               "<virtsync:generation>x</virtsync:generation>"))
    with pytest.raises(BackendError, match="generation"):
        be.observe()


def test_a_record_after_a_lookup_reads_a_definition_changed_in_between(
        be: LibvirtBackend, conn) -> None:
    """record() reuses lookup()'s parse only for the very same text (issue 13): a domain
    redefined between the two is read as it is now."""
    be.create(manifest(vm_body(cores=2, run_strategy="Halted")), revision="r", refs={})
    host = be.hosts["n1"]
    dom = host.lookup(KEY)
    assert dom is not None
    assert host.record(dom).facts.cores == 2  # the lookup's parse, same text
    dom = host.lookup(KEY)
    root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    root.find("cpu/topology").set("cores", "3")
    root.find("vcpu").text = "3"
    conn.defineXML(etree.tostring(root).decode())
    assert host.record(dom).facts.cores == 3
    assert obj(be).body["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] == 3

"""Trust boundaries on one node, through the CLI on libvirt's test driver (issue 8, 14):
owner markers that name someone else, and one corrupt identity record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import libvirt
import pytest

from node.metadata import NS, PREFIX, owner_element_xml, parse_owner_metadata
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.model import ObjectKey

from . import test_apply_testdriver as base
from .test_apply_testdriver import Tree, domains, run, vm

# The same fixtures as the apply tests (a test-driver connection, a repo with a Cluster).
conn = base.conn
tree = base.tree

INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
BOTH = libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_AFFECT_LIVE


def _xml(dom: Any) -> tuple[str, str]:
    return dom.XMLDesc(0), dom.XMLDesc(INACTIVE)


def _remark(dom: Any, **changes: str) -> None:
    """Rewrite the domain's virtsync marker (live and persistent), as a foreign tool or a
    copied definition would leave it."""
    meta = parse_owner_metadata(dom.XMLDesc(INACTIVE))
    assert meta is not None
    flags = BOTH if dom.isActive() else libvirt.VIR_DOMAIN_AFFECT_CONFIG
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    owner_element_xml(replace(meta, **changes)), PREFIX, NS, flags)


# Two shapes of "not this VM's marker": another owner, and virtsync's marker for another VM.
FOREIGN = {"other-owner": {"owner": "someone-else"}, "other-vm": {"name": "db"}}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_foreign_marker_is_a_conflict_and_left_byte_identical(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str], case: str) -> None:
    tree.put(vm("web"))
    tree.put(vm("db"))
    assert run("apply", str(tree.root)) == 0
    web = conn.lookupByName("e2e_web")
    _remark(web, **FOREIGN[case])
    before = _xml(web)
    capsys.readouterr()

    # Rule 3: plan and status report web as a conflict and plan nothing.
    assert run("plan", str(tree.root)) == 2
    err = capsys.readouterr().err
    assert "e2e/web" in err and "owner marker" in err
    assert run("status", str(tree.root)) == 2
    assert "e2e/web" in capsys.readouterr().err
    assert run("apply", str(tree.root), "--allow-restart", "--allow-data-loss") == 2
    assert _xml(web) == before

    # Out of git with --prune: no longer virtsync's, so it is not pruned either.
    tree.remove("web")
    assert run("apply", str(tree.root), "--prune", "--allow-data-loss") == 0
    assert "e2e/web" not in capsys.readouterr().out
    assert _xml(conn.lookupByName("e2e_web")) == before
    assert domains(conn) == {"e2e_web": True, "e2e_db": True}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_lookup_refuses_foreign_marker(conn: Any, tree: Tree, tmp_path: Path,
                                       case: str) -> None:
    """The watch cycle observes by name (observe_keys) and power verbs act by name: both
    go through host.lookup, which must not take a domain marked for someone else."""
    tree.put(vm("web"))
    tree.put(vm("db"))
    assert run("apply", str(tree.root)) == 0
    web = conn.lookupByName("e2e_web")
    _remark(web, **FOREIGN[case])
    before = _xml(web)
    from node.cluster import cluster_from_manifests
    from reconciler.reconcile import load_desired

    be = LibvirtBackend(cluster_from_manifests(load_desired([str(tree.root)]).manifests),
                        state=tmp_path / "state")
    key = ObjectKey("VirtualMachine", "e2e", "web")
    try:
        obs = be.observe_keys([key])
        assert obs.conflicts == (key,) and obs.objects == ()
        assert key in be.observe().conflicts
        with pytest.raises(Exception, match="owner marker"):
            be.stop(key, grace_period=0, force=True)
    finally:
        be.close()
    assert _xml(web) == before and web.isActive()


def _record(tree: Tree, name: str) -> Path:
    return tree.storage / ".virtsync-identity" / "e2e" / f"{name}.json"


# Two shapes of damage: not JSON at all, and JSON of the wrong shape.
CORRUPT = {"truncated": b'{"version": 1, "uuid": "', "wrong-shape": b'{"version": 1}\n'}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_identity_record_fails_only_its_own_vm(
        conn: Any, tree: Tree, capsys: pytest.CaptureFixture[str], case: str) -> None:
    tree.put(vm("web"))
    assert run("apply", str(tree.root)) == 0
    record = _record(tree, "web")
    assert record.is_file()
    uuid = conn.lookupByName("e2e_web").UUIDString()
    record.write_bytes(CORRUPT[case])
    # web changes (a label: no restart) and two new VMs arrive.
    body = vm("web")
    body["metadata"]["labels"] = {"tier": "front"}
    tree.put(body)
    tree.put(vm("db"))
    tree.put(vm("cache", run="Halted"))
    capsys.readouterr()
    # Exit 1 for a partly failed apply (docs/apply.md), the others applied.
    assert run("apply", str(tree.root)) == 1
    out = capsys.readouterr().out
    assert "VirtualMachine/e2e/db created" in out and "VirtualMachine/e2e/cache created" in out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("VirtualMachine/e2e/web ")]
    assert " failed " in line and str(record) in line and "identity record" in line
    assert domains(conn) == {"e2e_web": True, "e2e_db": True, "e2e_cache": False}
    # Never a new identity over the broken record; the record is left for the operator.
    assert conn.lookupByName("e2e_web").UUIDString() == uuid
    assert record.read_bytes() == CORRUPT[case]

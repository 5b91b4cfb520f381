"""`virtsync pin`: identity from the node store into git, round-trip and idempotent."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from node.identity.node_store import IdentityStore
from reconciler.cli import main
from reconciler.core.model import ObjectKey
from reconciler.core.vmspec import VmSpec
from reconciler.tree.loader import load_paths

WEB = """\
# Web tier. Owned by team-web.
---
apiVersion: v1
kind: ConfigMap   # not a VM: left alone
metadata: {name: settings}
---
# the VM itself
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: web
  namespace: shop
  annotations:
    note: 'single quoted'
    virtsync.io/wave: "1"
spec:
  runStrategy: Halted   # keep off for now
  template:
    spec:
      domain:
        cpu: {cores: 2}
        memory:
          guest: 512Mi
        devices:
          disks:
            - name: root
              disk:
                bus: virtio
          interfaces:
            - name: default   # main NIC
              masquerade: {}
            - name: prod
              bridge: {}
      networks:
        - name: default
          pod: {}
        - name: prod
          multus:
            networkName: prod
      volumes:
        - name: root
          containerDisk:
            image: img
"""

DB = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: db
  namespace: shop
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory:
          guest: 1Gi
        firmware:
          serial: "DB-SERIAL-1"
        devices:
          interfaces:
          - name: default
            masquerade: {}
      networks:
      - name: default
        pod: {}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "vms").mkdir(parents=True)
    (root / "vms" / "web.yaml").write_text(WEB)
    (root / "vms" / "db.yaml").write_text(DB)
    (root / "cluster.yaml").write_text(
        "apiVersion: virtsync.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: local\nspec:\n"
        f"  nodes:\n  - name: n1\n    uri: test:///default\n    storageDir: {tmp_path}/n1\n"
    )
    return root


def vm_from(path: Path, name: str) -> VmSpec:
    manifests = [m for m in load_paths([str(path)]).manifests if m.name == name]
    return VmSpec.from_manifest(manifests[0])


def allocate(store_dir: Path, repo: Path, name: str) -> None:
    vm = vm_from(repo / "vms", name)
    IdentityStore(store_dir).ensure(ObjectKey("VirtualMachine", "shop", name), vm)


def test_pin_writes_identity_keeps_everything_else_and_is_idempotent(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allocate(tmp_path / "n1", repo, "web")
    ident = IdentityStore(tmp_path / "n1").get(ObjectKey("VirtualMachine", "shop", "web"))
    assert ident is not None
    web = repo / "vms" / "web.yaml"

    assert main(["pin", str(repo)]) == 0
    after = web.read_text()
    # Only insertions: comments, order, quoting, flow style and indentation all kept.
    diff = [d for d in difflib.ndiff(WEB.splitlines(), after.splitlines()) if d[:1] in "+-"]
    assert all(d.startswith("+ ") for d in diff), diff
    assert sorted(d[2:].strip() for d in diff) == sorted(
        [
            "firmware:",
            f'uuid: "{ident.uuid}"',
            f'serial: "{ident.serial}"',
            f'macAddress: "{ident.macs["default"]}"',
            f'macAddress: "{ident.macs["prod"]}"',
        ]
    )
    out = capsys.readouterr()
    assert "firmware.uuid" in out.out and "db: skipped: no stored identity" in out.err

    # What git now holds is exactly the stored identity.
    pinned = vm_from(repo / "vms", "web")
    assert pinned.firmware.uuid == ident.uuid and pinned.firmware.serial == ident.serial
    assert {i.name: i.mac for i in pinned.interfaces} == dict(ident.macs)

    # Second run: not one byte changes, the file is not even rewritten.
    stat = web.stat()
    assert main(["pin", str(repo)]) == 0
    assert web.read_text() == after
    assert web.stat().st_mtime_ns == stat.st_mtime_ns and web.stat().st_ino == stat.st_ino
    assert (repo / "vms" / "db.yaml").read_text() == DB


def test_pinned_identity_survives_losing_every_host(repo: Path, tmp_path: Path) -> None:
    allocate(tmp_path / "n1", repo, "web")
    old = IdentityStore(tmp_path / "n1").get(ObjectKey("VirtualMachine", "shop", "web"))
    assert main(["pin", str(repo)]) == 0
    shutil.rmtree(tmp_path / "n1")  # the host and its store are gone
    fresh = IdentityStore(tmp_path / "new-host").ensure(
        ObjectKey("VirtualMachine", "shop", "web"), vm_from(repo / "vms", "web")
    )
    assert old is not None
    assert (fresh.uuid, fresh.serial, dict(fresh.macs)) == (old.uuid, old.serial, dict(old.macs))


def test_existing_different_pin_is_a_conflict_unless_forced(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allocate(tmp_path / "n1", repo, "db")  # stores serial DB-SERIAL-1 from the pin
    db = repo / "vms" / "db.yaml"
    edited = DB.replace('serial: "DB-SERIAL-1"', 'serial: "SOMETHING-ELSE"')
    db.write_text(edited)
    assert main(["pin", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "db.yaml:14: shop/db: firmware.serial is pinned to SOMETHING-ELSE" in err
    assert "DB-SERIAL-1" in err and "nothing written" in err
    assert db.read_text() == edited
    assert main(["pin", "--force", str(repo)]) == 0
    assert 'serial: "DB-SERIAL-1"' in db.read_text()
    assert main(["pin", str(repo)]) == 0  # converged


def test_default_store_is_the_state_dir(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "cluster.yaml").unlink()
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    allocate(tmp_path / "state" / "storage", repo, "db")
    assert main(["pin", str(repo / "vms")]) == 0
    assert "macAddress" in (repo / "vms" / "db.yaml").read_text()
    # db's indentation style (dash at the parent's column) is kept too.
    assert "          - name: default\n            masquerade: {}\n            macAddress:" in (
        (repo / "vms" / "db.yaml").read_text()
    )


def test_broken_yaml_anywhere_writes_nothing(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allocate(tmp_path / "n1", repo, "web")
    (repo / "vms" / "broken.yaml").write_text("a: 1\na: 2\n")
    assert main(["pin", str(repo)]) == 2
    assert "nothing written" in capsys.readouterr().err
    assert (repo / "vms" / "web.yaml").read_text() == WEB

"""Rule 14 in every validation path: a full run, a warm cached run and watch's incremental
tree report the same hostDisk findings through edits of the Cluster and of the VMs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from watch_helpers import vm_body

from reconciler.check.validate import validate_paths
from reconciler.tree.desired_state import WorkdirTree

NS = "hd"


def _vm(name: str, path: str | None) -> str:
    body: dict[str, Any] = vm_body(name, NS)
    if path is not None:
        tmpl = body["spec"]["template"]["spec"]
        tmpl["domain"]["devices"]["disks"] = [{"name": "host", "disk": {}}]
        tmpl["volumes"] = [{"name": "host", "hostDisk": {"path": path, "type": "Disk"}}]
    return yaml.safe_dump(body)


def _cluster(host_disk_dir: str | None) -> str:
    node: dict[str, Any] = {"name": "n1", "uri": "test:///default", "storageDir": "/srv/vs"}
    if host_disk_dir is not None:
        node["hostDiskDir"] = host_disk_dir
    return yaml.safe_dump({"apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster",
                           "metadata": {"name": "c"}, "spec": {"nodes": [node]}})


EDITS: list[tuple[str, str]] = [
    ("cluster.yaml", _cluster("/srv/hostdisks")),  # valid: a.yaml's path is inside
    ("cluster.yaml", _cluster(None)),               # a.yaml: no root
    ("cluster.yaml", _cluster("/srv/vs/hd")),       # overlaps storageDir; a.yaml outside
    ("cluster.yaml", _cluster("/srv/hostdisks")),
    ("b.yaml", _vm("b", "../vs/.virtsync-identity/x.json")),  # b.yaml: outside
    ("b.yaml", _vm("b", "b/disk.img")),
    ("cluster.yaml", ""),                           # no Cluster: nothing known
    ("b.yaml", _vm("b", "/etc/shadow")),
    ("cluster.yaml", _cluster("/srv/hostdisks")),  # b.yaml outside again
]


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))


def test_every_validation_path_agrees_on_host_disks(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a.yaml").write_text(_vm("a", "/srv/hostdisks/a.img"))
    (root / "b.yaml").write_text(_vm("b", None))
    tree = WorkdirTree(str(root))
    tree.refresh_all()
    seen: list[set[str]] = []
    for file, text in EDITS:
        path = root / file
        if text:
            path.write_text(text)
        else:
            path.unlink()
        assert tree.refresh_paths([str(path)]) is not None
        full = validate_paths([str(root)], use_cache=False)
        warm = validate_paths([str(root)])  # cached per file: facts come from the cache
        again = validate_paths([str(root)])  # the whole tree answered from the cache
        assert tree.snapshot().findings == full.findings == warm.findings == again.findings
        seen.append({f"{Path(f.file).name}:{f.rule}" for f in full.findings})
    assert seen == [
        set(), {"a.yaml:semantic.hostdisk-no-root"},
        {"cluster.yaml:semantic.hostdisk-dir-overlap", "a.yaml:semantic.hostdisk-outside"},
        set(),
        {"b.yaml:semantic.hostdisk-outside"}, set(), set(),
        set(), {"b.yaml:semantic.hostdisk-outside"},
    ]

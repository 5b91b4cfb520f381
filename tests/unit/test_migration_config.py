"""The migration policy and the nodes' migration facts in the Cluster config, and a VM's
policy annotations (issue 10): typed when valid, refused naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from node.cluster.config import node_facts, parse_cluster
from reconciler.cli import main
from reconciler.core.migration import MigrationPolicy, policy_for
from reconciler.core.model import VirtsyncError

ENV = {"VIRTSYNC_STATE_DIR": "/var/lib/virtsync"}


def cluster(**spec: object) -> dict[str, object]:
    return {"spec": {"nodes": [
        {"name": "a", "uri": "test:///default", "storageDir": "/srv/s", "sharedStorage": True,
         "cpuModel": "Skylake"},
        {"name": "b", "uri": "test:///default"}], **spec}}


def test_cluster_parses_shared_storage_cpu_model_and_policy() -> None:
    config = parse_cluster(cluster(migration={
        "bandwidthPerMigration": "64Mi", "completionTimeoutPerGiB": 300,
        "allowAutoConverge": True, "allowBlockMigration": True}), "c.yaml", ENV)
    a, b = (node_facts(n, 0) for n in config.nodes)
    assert (a.shared_storage, a.cpu_model) == ("/srv/s", "Skylake")
    assert (b.shared_storage, b.cpu_model) == (None, None)  # node-local by default
    assert config.migration == MigrationPolicy("64Mi", 300, True, False, True)
    assert parse_cluster(cluster(), "c.yaml", ENV).migration == MigrationPolicy()


@pytest.mark.parametrize(("migration", "where"), [
    ({"completionTimeoutPerGiB": 0}, "spec.migration.completionTimeoutPerGiB"),
    ({"allowPostCopy": "yes"}, "spec.migration.allowPostCopy"),
    ({"bandwidthPerMigration": "fast"}, "spec.migration.bandwidthPerMigration"),
    ({"bandwidthPerMigration": 0}, "spec.migration.bandwidthPerMigration: expected a positive"),
    ({"postCopy": True}, "spec.migration.postCopy: unknown field"),
])
def test_bad_policy_names_the_field(migration: dict[str, object], where: str) -> None:
    with pytest.raises(VirtsyncError, match=f"c.yaml: {where}"):
        parse_cluster(cluster(migration=migration), "c.yaml", ENV)


def test_vm_annotations_override_the_cluster_policy() -> None:
    base = MigrationPolicy(completion_timeout_per_gib=300)
    body = {"metadata": {"annotations": {"migration.virtsync.io/allowPostCopy": "true",
                                         "other.io/x": "y"}}}
    assert policy_for(body, base) == MigrationPolicy(completion_timeout_per_gib=300,
                                                     allow_post_copy=True)


def test_validate_locates_a_bad_policy_annotation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
          "metadata": {"name": "web", "namespace": "shop", "annotations": {
              "migration.virtsync.io/allowBlockMigration": "maybe"}},
          "spec": {"runStrategy": "Halted", "template": {"spec": {
              "domain": {"memory": {"guest": "64Mi"}, "devices": {}}}}}}
    (tmp_path / "vm.yaml").write_text(yaml.safe_dump(vm, sort_keys=False))
    assert main(["validate", "--no-cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "vm.yaml:7:" in out and "expected true or false" in out
    assert 'metadata.annotations["migration.virtsync.io/allowBlockMigration"]' in out

    # Second case: an unknown field, in a VM that also has a valid one.
    vm["metadata"]["annotations"] = {"migration.virtsync.io/allowPostCopy": "true",
                                     "migration.virtsync.io/postCopy": "true"}
    (tmp_path / "vm.yaml").write_text(yaml.safe_dump(vm, sort_keys=False))
    assert main(["validate", "--no-cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "vm.yaml:8:" in out and "unknown migration policy field 'postCopy'" in out
    assert "allowPostCopy\"]" not in out

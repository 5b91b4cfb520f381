"""The kubevirt backend's pure parts: field ownership, marks, run strategies, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.backends.kubevirt.fieldset import conflict_text, manager_fields, owned_subset
from reconciler.backends.kubevirt.ownership import (
    APPLIED_RUN_STRATEGY,
    INSTALLATION,
    MANAGED_BY,
    is_ours,
    marked_body,
    selector,
    without_marks,
)
from reconciler.backends.kubevirt.power import as_applied, held, operator_stopped
from reconciler.backends.kubevirt.resources import resource_for
from reconciler.backends.kubevirt.status import vm_status
from reconciler.core.model import Manifest, PrintableStatus, SourceRef

LIVE = {
    "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
    "metadata": {
        "name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
        "labels": {MANAGED_BY: "virtsync", "app": "web"},
        "managedFields": [
            {"manager": "virtsync", "operation": "Apply", "apiVersion": "kubevirt.io/v1",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, f"f:{MANAGED_BY}": {}}},
                          "f:spec": {"f:runStrategy": {}, "f:template": {"f:spec": {
                              "f:domain": {"f:devices": {"f:interfaces": {
                                  'k:{"name":"default"}': {".": {}, "f:name": {},
                                                           "f:masquerade": {}}}}}}}}}},
            {"manager": "virt-controller", "operation": "Update", "subresource": "status",
             "fieldsV1": {"f:status": {"f:printableStatus": {}}}},
        ],
    },
    "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {
        "firmware": {"uuid": "5d307ca9-b3ef-428c-8861-06e72d69f223", "serial": "abc"},
        "devices": {"interfaces": [{"name": "default", "masquerade": {},
                                    "macAddress": "02:00:00:00:00:01"}]}}}}},
    "status": {"printableStatus": "Running", "ready": True, "created": True,
               "conditions": [{"type": "Ready", "status": "True"},
                              {"type": "RestartRequired", "status": "True",
                               "reason": "x", "message": "a restart is required"}]},
}


def test_owned_subset_keeps_only_virtsyncs_fields() -> None:
    fields = manager_fields(LIVE, "virtsync")
    assert fields is not None
    owned = owned_subset(LIVE, fields)
    # server-filled firmware identity, the MAC from KubeMacPool and status are not ours
    assert owned == {
        "metadata": {"labels": {"app": "web", MANAGED_BY: "virtsync"}},
        "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {
            "interfaces": [{"name": "default", "masquerade": {}}]}}}}},
    }


def test_owned_subset_by_set_value_and_index() -> None:
    fields = {"f:a": {'v:"x"': {}, 'v:"z"': {}}, "f:b": {"i:1": {}}}
    assert owned_subset({"a": ["x", "y", "z"], "b": [1, 2, 3]}, fields) == \
        {"a": ["x", "z"], "b": [2]}


def test_other_managers_and_status_updates_are_not_ours() -> None:
    assert manager_fields(LIVE, "kubectl") is None


def test_conflict_names_manager_and_field() -> None:
    status = {"kind": "Status", "code": 409, "message": "Apply failed with 1 conflict",
              "details": {"causes": [{"type": "FieldManagerConflict",
                                      "message": 'conflict with "kubectl-edit" using kubevirt.io/v1',
                                      "field": ".spec.runStrategy"}]}}
    assert conflict_text(status) == \
        'conflict with "kubectl-edit" using kubevirt.io/v1: .spec.runStrategy'
    assert conflict_text({"message": "stale"}) == "stale"


def _vm(body: dict[str, object], namespace: str = "default") -> Manifest:
    meta = body.setdefault("metadata", {})
    assert isinstance(meta, dict)
    return Manifest("kubevirt.io/v1", str(body.get("kind", "VirtualMachine")), namespace,
                    str(meta["name"]), body, SourceRef("vm.yaml", 1))


def test_marked_body_adds_marks_and_namespace_without_touching_git() -> None:
    m = _vm({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
             "metadata": {"name": "db", "labels": {"tier": "data"}},
             "spec": {"runStrategy": "Manual"}}, namespace="prod")
    body = marked_body(m, installation="inst1", revision="abc123", run_strategy="Manual")
    meta = body["metadata"]
    assert isinstance(meta, dict)
    assert meta["namespace"] == "prod"
    assert meta["labels"] == {"tier": "data", MANAGED_BY: "virtsync", INSTALLATION: "inst1"}
    assert meta["annotations"] == {"virtsync.io/revision": "abc123",
                                   APPLIED_RUN_STRATEGY: "Manual"}
    assert "namespace" not in m.body["metadata"]  # type: ignore[operator]
    # what observe reports is git's body again
    assert without_marks(body)["metadata"] == {"name": "db", "namespace": "prod",
                                               "labels": {"tier": "data"}}


def test_rule18_selector_and_ownership() -> None:
    assert selector("inst1") == f"{MANAGED_BY}=virtsync,{INSTALLATION}=inst1"
    assert selector("inst1", every_installation=True) == f"{MANAGED_BY}=virtsync"
    other = {"metadata": {"labels": {MANAGED_BY: "virtsync", INSTALLATION: "inst2"}}}
    assert not is_ours(other, "inst1")
    assert is_ours(other, "inst1", every_installation=True)
    assert not is_ours({"metadata": {"labels": {"app": "x"}}}, "inst1")


def test_operator_stop_is_halted_where_virtsync_applied_a_running_strategy() -> None:
    def live(strategy: str, applied: str) -> dict[str, object]:
        return {"metadata": {"annotations": {APPLIED_RUN_STRATEGY: applied}},
                "spec": {"runStrategy": strategy}}

    assert operator_stopped(live("Halted", "Always"))
    assert operator_stopped(live("Halted", "RerunOnFailure"))
    assert not operator_stopped(live("Halted", "Halted"))  # git said Halted
    assert not operator_stopped(live("Manual", "Manual"))  # Manual: the spec stays Manual
    assert not operator_stopped(live("Always", "Always"))
    # the deprecated `running: false` after `running: true` was applied
    assert operator_stopped({"metadata": {"annotations": {APPLIED_RUN_STRATEGY: "Always"}},
                             "spec": {"running": False}})


def test_held_keeps_the_vm_off_in_the_field_git_uses() -> None:
    assert held({"spec": {"runStrategy": "Always"}})["spec"] == {"runStrategy": "Halted"}
    assert held({"spec": {"running": True}})["spec"] == {"running": False}
    assert as_applied({"spec": {"running": False}}, "Always")["spec"] == \
        {"runStrategy": "Always"}


def test_status_copies_kubevirts_printable_status_and_conditions() -> None:
    vmi = {"status": {"nodeName": "node-b"}}
    s = vm_status(LIVE, vmi)
    assert s.printable_status is PrintableStatus.RUNNING and s.ready and s.node == "node-b"
    restart = next(c for c in s.conditions if c.type == "RestartRequired")
    assert restart.status and restart.message == "a restart is required"
    assert vm_status({"status": {"printableStatus": "WaitingForVolumeBinding"}},
                     None).printable_status is PrintableStatus.WAITING_FOR_VOLUME_BINDING
    assert vm_status({"status": {"printableStatus": "SomethingNew"}},
                     None).printable_status is PrintableStatus.UNKNOWN
    assert vm_status({}, None).printable_status is PrintableStatus.STOPPED


def test_resource_paths() -> None:
    vm = resource_for("VirtualMachine")
    assert vm.path("default", "web", "start") == \
        "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/web/start"
    it = resource_for("VirtualMachineClusterInstancetype", "instancetype.kubevirt.io/v1alpha2")
    assert it.path("ignored", "u1.small") == \
        "/apis/instancetype.kubevirt.io/v1alpha2/virtualmachineclusterinstancetypes/u1.small"
    assert json.dumps(resource_for("DataVolume").api_version) == '"cdi.kubevirt.io/v1beta1"'


def test_watch_stream_events_split_across_chunks_and_410() -> None:
    from reconciler.backends.kubevirt.client import Expired, _events

    added = json.dumps({"type": "ADDED", "object": {"status": {"phase": "Pending"}}})
    modified = json.dumps({"type": "MODIFIED", "object": {"status": {"phase": "Running"}}})
    stream = (added + "\n" + modified).encode()
    chunks = [stream[:7], stream[7:50], stream[50:] + b"\n"]  # lines cut anywhere
    assert [(t, o["status"]) for t, o in _events(iter(chunks), "w")] == \
        [("ADDED", {"phase": "Pending"}), ("MODIFIED", {"phase": "Running"})]
    gone = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410,
                                                   "message": "too old resource version"}})
    with pytest.raises(Expired, match="too old"):
        list(_events(iter([gone.encode() + b"\n"]), "w"))


def test_connection_errors_name_what_was_asked_for(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.backends.base import BackendError
    from reconciler.backends.kubevirt.client import Target, connect

    mp = monkeypatch
    mp.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(BackendError, match="cannot load the in-cluster config"):
        connect(Target(in_cluster=True))
    config = tmp_path / "kubeconfig"
    with open(config, "w") as fh:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "a",
                   "clusters": [{"name": "a", "cluster": {"server": "http://127.0.0.1:9"}}],
                   "users": [{"name": "a", "user": {"token": "t"}}],
                   "contexts": [{"name": "a", "context": {"cluster": "a", "user": "a"}}]}, fh)
    mp.setenv("KUBECONFIG", str(config))
    with pytest.raises(BackendError, match="kubeconfig context 'lab'"):
        connect(Target(context="lab"))
    assert connect(Target(context="a")).configuration.host == "http://127.0.0.1:9"

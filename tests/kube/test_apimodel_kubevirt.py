"""KubeVirt behaviour of the Kubernetes API model (a MODEL, see README.md) through the
real `kubernetes` client: admission defaults, OpenAPI validation, start/stop/restart,
the controller simulation (status, RestartRequired, LiveMigratable) and migrations."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml
from kubernetes import dynamic
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError
from refdata import REFERENCE

from .api import Options
from .apimodel import KubeModel
from .resources import by_kind
from .test_apimodel import KV, apply, partial, status_of, vm, vms

SUB = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines"


def stored(model: KubeModel, name: str = "vm1") -> dict[str, Any]:
    found = model.get(KV, "VirtualMachine", "default", name)
    assert found is not None
    return found


def vmi(model: KubeModel, name: str = "vm1") -> dict[str, Any] | None:
    return model.get(KV, "VirtualMachineInstance", "default", name)


def put(dyn: dynamic.DynamicClient, verb: str, name: str = "vm1",
        body: dict[str, Any] | None = None) -> None:
    # virt-api answers 202 with no body: nothing to deserialize
    dyn.request("PUT", f"{SUB}/{name}/{verb}", body=body or {}, serialize=False)


def cond(obj: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in obj.get("status", {}).get("conditions", [])
                 if c["type"] == kind), None)


def test_defaults_fill_identity_and_survive_an_apply_that_omits_them(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    body = vm()
    body["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"].append(
        {"name": "second", "bridge": {}, "macAddress": "02:aa:00:00:00:01"})
    first = apply(dyn, body).to_dict()["spec"]["template"]["spec"]["domain"]
    assert first["firmware"]["uuid"] and first["firmware"]["serial"]
    assert first["machine"]["type"] == "q35"
    macs = [i["macAddress"] for i in first["devices"]["interfaces"]]
    assert macs[0].startswith("02:00:00:") and macs[1] == "02:aa:00:00:00:01"
    body["spec"]["runStrategy"] = "Halted"
    second = apply(dyn, body).to_dict()["spec"]["template"]["spec"]["domain"]
    assert second["firmware"] == first["firmware"]
    assert [i["macAddress"] for i in second["devices"]["interfaces"]] == macs
    other = apply(dyn, vm("vm2")).to_dict()["spec"]["template"]["spec"]["domain"]
    assert other["firmware"]["uuid"] != first["firmware"]["uuid"]
    assert other["devices"]["interfaces"][0]["macAddress"] not in macs


def test_an_invalid_virtual_machine_is_422_with_the_field_path(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    body = vm()
    body["spec"]["template"]["spec"]["domain"]["cpu"] = {"cores": "two"}
    with pytest.raises(ApiException) as err:
        apply(dyn, body, dry_run="All")  # dry run is validated too
    status = status_of(err.value)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.template.spec.domain.cpu.cores"
    assert 'VirtualMachine.kubevirt.io "vm1" is invalid' in status["message"]
    no_template = {"apiVersion": KV, "kind": "VirtualMachine",
                   "metadata": {"name": "vm2"}, "spec": {"runStrategy": "Always"}}
    with pytest.raises(ApiException) as err:
        apply(dyn, no_template)
    assert status_of(err.value)["details"]["causes"][0]["field"] == "spec.template"
    assert kube_model.objects(KV, "VirtualMachine") == []


def test_an_invalid_data_volume_is_422(dyn: dynamic.DynamicClient) -> None:
    dvs = dyn.resources.get(api_version="cdi.kubevirt.io/v1beta1", kind="DataVolume")
    body = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": "d"}, "spec": {"source": {"http": {"url": 7}}}}
    with pytest.raises(ApiException) as err:
        dvs.server_side_apply(body=body, namespace="default", field_manager="virtsync")
    assert status_of(err.value)["details"]["causes"][0]["field"] == "spec.source.http.url"


def test_unknown_fields_are_pruned_with_a_warning_or_refused_when_strict(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    body = vm()
    body["spec"]["template"]["spec"]["domain"]["cpuu"] = {"cores": 2}
    apply(dyn, body)
    assert "cpuu" not in stored(kube_model)["spec"]["template"]["spec"]["domain"]
    warning = kube_model.requests[-1]  # the dynamic client cannot send fieldValidation
    request = urllib.request.Request(
        f"{kube_model.url}{warning.path}?fieldManager=virtsync&fieldValidation=Strict",
        data=json.dumps(body).encode(), method="PATCH",
        headers={"Content-Type": "application/apply-patch+yaml"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request)
    assert err.value.code == 400
    assert 'unknown field \\"spec.template.spec.domain.cpuu\\"' in err.value.read().decode()
    with urllib.request.urlopen(urllib.request.Request(
            f"{kube_model.url}{warning.path}?fieldManager=virtsync", method="PATCH",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"})) as answer:
        assert answer.headers.get_all("Warning") == [
            '299 - "unknown field \\"spec.template.spec.domain.cpuu\\""']


def test_controller_runs_and_stops_by_run_strategy(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm())
    status = stored(kube_model)["status"]
    assert (status["printableStatus"], status["ready"], status["observedGeneration"]) == (
        "Running", True, 1)
    assert cond(stored(kube_model), "Ready") == "True"
    assert vmi(kube_model) is not None
    apply(dyn, vm(run="Halted"))
    status = stored(kube_model)["status"]
    assert (status["printableStatus"], status["ready"], status["observedGeneration"]) == (
        "Stopped", False, 2)
    assert vmi(kube_model) is None


def test_manual_controller_steps_show_starting_first(kube_model: KubeModel) -> None:
    kube_model.controller.auto = False
    kube_model.put_object(vm(), manager="virtsync")
    kube_model.controller.step()
    assert stored(kube_model)["status"]["printableStatus"] == "Starting"
    kube_model.controller.settle()
    assert stored(kube_model)["status"]["printableStatus"] == "Running"


@pytest.mark.parametrize(("run", "verb", "after", "running"), [
    ("Always", "stop", "Halted", False),
    ("RerunOnFailure", "stop", "Halted", False),
    ("Halted", "start", "Always", True),
    ("Manual", "stop", "Manual", False),
    ("Always", "restart", "Always", True),
])
def test_power_subresources_follow_kubevirts_run_strategy_table(
        dyn: dynamic.DynamicClient, kube_model: KubeModel, run: str, verb: str, after: str,
        running: bool) -> None:
    body = vm(run="Always" if run == "Manual" else run)
    apply(dyn, body)
    if run == "Manual":  # a Manual VM that runs: started by a start request
        apply(dyn, vm(run="Manual"))
    before = vmi(kube_model)
    put(dyn, verb)
    assert stored(kube_model)["spec"]["runStrategy"] == after
    now = vmi(kube_model)
    assert (now is not None) is running
    if verb == "restart":
        assert now is not None and before is not None
        assert now["metadata"]["uid"] != before["metadata"]["uid"]  # a new VMI


def test_manual_start_creates_the_vmi_without_touching_the_run_strategy(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm(run="Manual"))
    assert vmi(kube_model) is None
    generation = stored(kube_model)["metadata"]["generation"]
    put(dyn, "start")
    assert vmi(kube_model) is not None
    assert stored(kube_model)["spec"]["runStrategy"] == "Manual"
    assert stored(kube_model)["metadata"]["generation"] == generation
    with pytest.raises(ConflictError):
        put(dyn, "start")  # already running


def test_stop_carries_the_grace_period_and_nonsense_verbs_are_409(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm(run="Manual"))
    put(dyn, "start")
    kube_model.controller.auto = False
    put(dyn, "stop", body={"gracePeriod": 30})
    found = vmi(kube_model)
    assert found is not None and found["spec"]["terminationGracePeriodSeconds"] == 30
    kube_model.controller.settle()
    assert vmi(kube_model) is None
    with pytest.raises(ConflictError):
        put(dyn, "stop")
    apply(dyn, vm(run="Halted"))
    with pytest.raises(ConflictError):
        put(dyn, "restart")
    request = kube_model.requests[-1]
    assert (request.method, request.path) == ("PUT", f"{SUB}/vm1/restart")


def test_dry_run_start_changes_nothing(dyn: dynamic.DynamicClient,
                                       kube_model: KubeModel) -> None:
    apply(dyn, vm(run="Halted"))
    before = stored(kube_model)
    put(dyn, "start", body={"dryRun": ["All"]})
    assert stored(kube_model) == before


def test_restart_required_for_a_non_live_field_only(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm())
    live = vm()
    live["spec"]["template"]["spec"]["domain"]["memory"]["guest"] = "256Mi"
    live["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    apply(dyn, live)
    assert cond(stored(kube_model), "RestartRequired") is None
    running = vmi(kube_model)
    assert running is not None and running["spec"]["domain"]["memory"]["guest"] == "256Mi"
    cold = json.loads(json.dumps(live))
    cold["spec"]["template"]["spec"]["domain"]["devices"]["autoattachSerialConsole"] = False
    apply(dyn, cold)
    assert cond(stored(kube_model), "RestartRequired") == "True"
    assert stored(kube_model)["status"]["observedGeneration"] == 3
    put(dyn, "restart")
    assert cond(stored(kube_model), "RestartRequired") is None


def _disk_vm(claim: str, binding: str = "masquerade") -> dict[str, Any]:
    body = vm()
    spec = body["spec"]["template"]["spec"]
    spec["domain"]["devices"]["interfaces"] = [{"name": "default", binding: {}}]
    spec["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
    spec["volumes"] = [{"name": "root", "dataVolume": {"name": claim}}]
    return body


def _dv(dyn: dynamic.DynamicClient, name: str, mode: str) -> None:
    dyn.resources.get(api_version="cdi.kubevirt.io/v1beta1", kind="DataVolume"
                      ).server_side_apply(body={
                          "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                          "metadata": {"name": name},
                          "spec": {"source": {"blank": {}}, "storage": {
                              "accessModes": [mode],
                              "resources": {"requests": {"storage": "1Gi"}}}}},
                          namespace="default", field_manager="virtsync")


@pytest.mark.parametrize(("mode", "binding", "migratable", "reason"), [
    ("ReadWriteMany", "masquerade", "True", None),
    ("ReadWriteOnce", "masquerade", "False", "DisksNotLiveMigratable"),
    ("ReadWriteMany", "bridge", "False", "InterfaceNotLiveMigratable"),
])
def test_live_migratable_condition(dyn: dynamic.DynamicClient, kube_model: KubeModel,
                                   mode: str, binding: str, migratable: str,
                                   reason: str | None) -> None:
    _dv(dyn, "root-dv", mode)
    apply(dyn, _disk_vm("root-dv", binding))
    conditions = {c["type"]: c for c in stored(kube_model)["status"]["conditions"]}
    assert conditions["LiveMigratable"]["status"] == migratable
    assert conditions["LiveMigratable"].get("reason") == reason


def _migrate(dyn: dynamic.DynamicClient, name: str = "mig1") -> Any:
    migrations = dyn.resources.get(api_version=KV, kind="VirtualMachineInstanceMigration")
    return migrations.create(body={"apiVersion": KV, "kind": "VirtualMachineInstanceMigration",
                                   "metadata": {"name": name}, "spec": {"vmiName": "vm1"}},
                             namespace="default")


def test_a_migration_walks_its_phases_one_per_request_and_moves_the_vmi(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    _dv(dyn, "root-dv", "ReadWriteMany")
    apply(dyn, _disk_vm("root-dv"))
    migrations = dyn.resources.get(api_version=KV, kind="VirtualMachineInstanceMigration")
    _migrate(dyn)
    phases: list[str] = []
    while not phases or phases[-1] not in ("Succeeded", "Failed"):
        phases.append(migrations.get(name="mig1", namespace="default").status.phase)
        if phases[-1] == "Running":
            assert stored(kube_model)["status"]["printableStatus"] == "Migrating"
    assert phases == ["Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady",
                      "Running", "Succeeded"]
    moved = vmi(kube_model)
    assert moved is not None and moved["status"]["nodeName"] == "node-b"
    assert moved["status"]["migrationState"]["completed"] is True
    _migrate(dyn, "mig2")
    kube_model.controller.settle()
    moved = vmi(kube_model)
    assert moved is not None and moved["status"]["nodeName"] == "node-a"


def test_a_migration_can_be_made_to_fail(dyn: dynamic.DynamicClient,
                                         kube_model: KubeModel) -> None:
    _dv(dyn, "root-dv", "ReadWriteMany")
    apply(dyn, _disk_vm("root-dv"))
    kube_model.controller.fail_at = "TargetReady"
    _migrate(dyn)
    kube_model.controller.settle()
    mig = kube_model.get(KV, "VirtualMachineInstanceMigration", "default", "mig1")
    assert mig is not None and mig["status"]["phase"] == "Failed"
    found = vmi(kube_model)
    assert found is not None and found["status"]["nodeName"] == "node-a"
    assert found["status"]["migrationState"]["failed"] is True


def test_a_non_migratable_vmi_cannot_be_migrated(dyn: dynamic.DynamicClient) -> None:
    _dv(dyn, "root-dv", "ReadWriteOnce")
    apply(dyn, _disk_vm("root-dv"))
    with pytest.raises(ApiException) as err:
        _migrate(dyn)
    assert err.value.status == 422
    assert "DisksNotLiveMigratable" in status_of(err.value)["message"]


def test_deleting_a_vm_collects_its_vmi(dyn: dynamic.DynamicClient,
                                        kube_model: KubeModel) -> None:
    apply(dyn, vm())
    vms(dyn).delete(name="vm1", namespace="default", propagation_policy="Foreground")
    assert vmi(kube_model) is None


def test_a_watch_from_a_compacted_resource_version_gets_410(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    apply(dyn, vm(run="Halted"))
    old = stored(kube_model)["metadata"]["resourceVersion"]
    apply(dyn, vm(run="Manual"))
    kube_model.compact()
    with pytest.raises(ApiException) as err:  # the client retries once, then raises
        list(dyn.watch(vms(dyn), namespace="default", resource_version=old, timeout=1))
    assert err.value.status == 410
    assert kube_model.requests[-1].query["resourceVersion"] == old


def test_put_object_partial_is_a_second_manager(kube_model: KubeModel,
                                                dyn: dynamic.DynamicClient) -> None:
    apply(dyn, vm())
    kube_model.put_object(partial("Halted"), manager="ops")
    managers = {e["manager"] for e in stored(kube_model)["metadata"]["managedFields"]}
    assert managers == {"virtsync", "ops"}


def _vm_with_dv_template(name: str = "vm1") -> dict[str, Any]:
    body = _disk_vm(f"{name}-root")
    body["metadata"]["name"] = name
    body["spec"]["dataVolumeTemplates"] = [{
        "metadata": {"name": f"{name}-root"},
        "spec": {"source": {"blank": {}}, "storage": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}}]
    return body


def test_data_volume_templates_become_owned_data_volumes_and_gate_the_start(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    kube_model.controller.hold_datavolumes = True
    apply(dyn, _vm_with_dv_template())
    dv = kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "vm1-root")
    assert dv is not None and dv["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachine"
    assert dv["status"]["phase"] == "ImportInProgress"
    assert stored(kube_model)["status"]["printableStatus"] == "Provisioning"
    assert vmi(kube_model) is None
    kube_model.controller.hold_datavolumes = False
    kube_model.controller.settle()
    assert stored(kube_model)["status"]["printableStatus"] == "Running"


@pytest.mark.parametrize(("policy", "kept"), [("Background", False), ("Orphan", True)])
def test_deleting_a_vm_collects_its_data_volumes_unless_orphaned(
        dyn: dynamic.DynamicClient, kube_model: KubeModel, policy: str, kept: bool) -> None:
    apply(dyn, _vm_with_dv_template())
    vms(dyn).delete(name="vm1", namespace="default", propagation_policy=policy)
    dv = kube_model.get("cdi.kubevirt.io/v1beta1", "DataVolume", "default", "vm1-root")
    assert (dv is not None) is kept
    assert vmi(kube_model) is None or kept
    if dv is not None:
        assert "ownerReferences" not in dv["metadata"]


def test_status_is_not_writable_through_the_api(dyn: dynamic.DynamicClient) -> None:
    apply(dyn, vm())
    path = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1/status"
    assert dyn.request("GET", path).status.printableStatus == "Running"
    with pytest.raises(ApiException) as err:
        dyn.request("PATCH", path, body={"status": {}},
                    content_type="application/merge-patch+json")
    assert err.value.status == 405


def _reference_docs(folder: str) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((REFERENCE / folder).rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return docs


def test_upstream_examples_and_common_instancetypes_are_accepted(
        kube_model: KubeModel) -> None:
    """No false 422: KubeVirt's and CDI's own examples and the common instancetypes pass
    the model's admission (dry run; instancetypes stored first, as waves would)."""
    itypes = [d for folder in ("common-instancetypes", "kubevirt/examples")
              for d in _reference_docs(folder)
              if str(d.get("apiVersion", "")).startswith("instancetype.kubevirt.io/")]
    assert len(itypes) > 50
    for doc in itypes:
        kube_model.put_object(doc, manager="virtsync")
    served = {(KV, "VirtualMachine"), (KV, "VirtualMachineInstance"),
              ("cdi.kubevirt.io/v1beta1", "DataVolume")}
    examples = [d for folder in ("kubevirt/examples", "containerized-data-importer/examples")
                for d in _reference_docs(folder) if (d.get("apiVersion"), d.get("kind")) in served]
    assert len(examples) == 12 + 22 + 16  # VMs, VMIs, DataVolumes at the pinned commits
    for doc in examples:
        doc.setdefault("metadata", {})["namespace"] = "default"
        rtype = by_kind(doc["apiVersion"], doc["kind"])
        kube_model.api.apply(rtype, "default", doc["metadata"]["name"],
                             json.dumps(doc).encode(),
                             Options(field_manager="virtsync", dry_run=True))


def test_a_vm_naming_a_missing_instancetype_is_refused_until_it_exists(
        dyn: dynamic.DynamicClient, kube_model: KubeModel) -> None:
    body = vm()
    body["spec"]["instancetype"] = {"name": "u1.small"}
    body["spec"]["preference"] = {"name": "fedora", "kind": "virtualmachinepreference"}
    del body["spec"]["template"]["spec"]["domain"]["memory"]
    with pytest.raises(ApiException) as err:
        apply(dyn, body)
    fields = [c["field"] for c in status_of(err.value)["details"]["causes"]]
    assert fields == ["spec.instancetype.name", "spec.preference.name"]
    assert 'virtualmachineclusterinstancetypes.instancetype.kubevirt.io "u1.small" not found' \
        in status_of(err.value)["message"]
    kube_model.put_object({"apiVersion": "instancetype.kubevirt.io/v1beta1",
                           "kind": "VirtualMachineClusterInstancetype",
                           "metadata": {"name": "u1.small"},
                           "spec": {"cpu": {"guest": 1}, "memory": {"guest": "2Gi"}}})
    kube_model.put_object({"apiVersion": "instancetype.kubevirt.io/v1beta1",
                           "kind": "VirtualMachinePreference",
                           "metadata": {"name": "fedora", "namespace": "default"},
                           "spec": {}})
    apply(dyn, body)
    refs = stored(kube_model)["status"]
    assert refs["instancetypeRef"]["kind"] == "VirtualMachineClusterInstancetype"
    assert refs["preferenceRef"]["name"] == "fedora"


def test_an_invalid_instancetype_is_422(dyn: dynamic.DynamicClient) -> None:
    itypes = dyn.resources.get(api_version="instancetype.kubevirt.io/v1beta1",
                               kind="VirtualMachineClusterInstancetype")
    with pytest.raises(ApiException) as err:
        itypes.server_side_apply(body={
            "apiVersion": "instancetype.kubevirt.io/v1beta1",
            "kind": "VirtualMachineClusterInstancetype", "metadata": {"name": "bad"},
            "spec": {"cpu": {"guest": "many"}, "memory": {"guest": "1Gi"}}},
            field_manager="virtsync")
    assert status_of(err.value)["details"]["causes"][0]["field"] == "spec.cpu.guest"

"""The same requests against the Kubernetes API model and against kmock's emulator: what
both do alike (so wire-contract tests may use either), and where kmock falls short (so
those behaviours are tested against the model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import dynamic
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from .apimodel import KubeModel
from .client import dynamic_client
from .kmockserver import KmockServer
from .test_apimodel import KV, vm

SERVERS = ["model", "kmock"]


def client_for(request: pytest.FixtureRequest, which: str) -> dynamic.DynamicClient:
    name = "kubeconfig" if which == "model" else "kmock_kubeconfig"
    path: Path = request.getfixturevalue(name)
    return dynamic_client(path)


def wire(request: pytest.FixtureRequest, which: str) -> list[tuple[str, str, dict[str, str],
                                                                   str]]:
    """(method, path, query, content type) of the non-discovery requests."""
    if which == "model":
        model: KubeModel = request.getfixturevalue("kube_model")
        out = [(r.method, r.path, r.query, r.content_type) for r in model.requests]
    else:
        server: KmockServer = request.getfixturevalue("kmock_server")
        out = [(r.method.value, r.url.path, dict(r.params),
                r.headers.get("Content-Type", "")) for r in server.requests()]
    return [r for r in out if "/namespaces/" in r[1]]


@pytest.mark.parametrize("which", SERVERS)
def test_both_discover_the_kubevirt_kinds(request: pytest.FixtureRequest, which: str) -> None:
    dyn = client_for(request, which)
    for api_version, kind in [(KV, "VirtualMachine"), (KV, "VirtualMachineInstanceMigration"),
                              ("cdi.kubevirt.io/v1beta1", "DataVolume"), ("v1", "ConfigMap")]:
        assert dyn.resources.get(api_version=api_version, kind=kind).namespaced


@pytest.mark.parametrize("which", SERVERS)
def test_both_refuse_a_duplicate_create_with_409(request: pytest.FixtureRequest,
                                                 which: str) -> None:
    vms = client_for(request, which).resources.get(api_version=KV, kind="VirtualMachine")
    vms.create(body=vm(), namespace="default")
    with pytest.raises(ConflictError):
        vms.create(body=vm(), namespace="default")


@pytest.mark.parametrize("which", SERVERS)
def test_both_receive_the_same_server_side_apply_request(request: pytest.FixtureRequest,
                                                         which: str) -> None:
    vms = client_for(request, which).resources.get(api_version=KV, kind="VirtualMachine")
    vms.create(body=vm(), namespace="default")
    vms.server_side_apply(body=vm(run="Halted"), namespace="default", field_manager="virtsync",
                          force_conflicts=True, dry_run="All")
    assert wire(request, which)[-1] == (
        "PATCH", "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1",
        {"fieldManager": "virtsync", "force": "true", "dryRun": "All"},
        "application/apply-patch+yaml")


def _after_dry_run(request: pytest.FixtureRequest, which: str) -> Any:
    vms = client_for(request, which).resources.get(api_version=KV, kind="VirtualMachine")
    vms.create(body=vm(), namespace="default")
    # forced: the create made the client's default manager ("OpenAPI-Generator") own them
    vms.server_side_apply(body=vm(run="Halted"), namespace="default", field_manager="virtsync",
                          dry_run="All", force_conflicts=True)
    return vms.get(name="vm1", namespace="default").spec.runStrategy


def test_a_dry_run_persists_in_kmock_but_not_in_the_model(
        request: pytest.FixtureRequest) -> None:
    assert _after_dry_run(request, "model") == "Always"
    assert _after_dry_run(request, "kmock") == "Halted"  # kmock 0.8 ignores dryRun


def test_apply_of_an_absent_object_creates_in_the_model_only(
        request: pytest.FixtureRequest) -> None:
    for which in SERVERS:
        vms = client_for(request, which).resources.get(api_version=KV, kind="VirtualMachine")
        if which == "model":
            created = vms.server_side_apply(body=vm(), namespace="default",
                                            field_manager="virtsync")
            assert created.metadata.uid
        else:
            with pytest.raises(NotFoundError):  # kmock patches only existing objects
                vms.server_side_apply(body=vm(), namespace="default", field_manager="virtsync")


def test_label_selectors_filter_in_the_model_only(request: pytest.FixtureRequest) -> None:
    counts = {}
    for which in SERVERS:
        vms = client_for(request, which).resources.get(api_version=KV, kind="VirtualMachine")
        vms.create(body=vm(app="web"), namespace="default")
        counts[which] = len(vms.get(namespace="default", label_selector="app=db").items)
    assert counts == {"model": 0, "kmock": 1}  # kmock 0.8 ignores labelSelector


def test_kmock_has_no_resource_version_nor_stale_put_conflict(
        request: pytest.FixtureRequest) -> None:
    vms = client_for(request, "kmock").resources.get(api_version=KV, kind="VirtualMachine")
    created = vms.create(body=vm(), namespace="default")
    assert created.metadata.resourceVersion is None and created.metadata.uid is None
    with pytest.raises(ApiException):  # no PUT at all
        vms.replace(body={**vm(), "metadata": {**vm()["metadata"], "resourceVersion": "1"}},
                    namespace="default")

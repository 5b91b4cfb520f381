"""The opt-in lane: the CLI scenarios against a REAL Kubernetes cluster with KubeVirt and
CDI (kind or k3d with KubeVirt), when KUBECONFIG is set and its API server answers;
skipped otherwise (no API server can run on the CI machines). Objects go to a namespace
of their own, `virtsync-e2e-<VIRTSYNC_REAL_SUFFIX>`, deleted at the end.

    KUBECONFIG=~/.kube/config pytest tests/kubevirt/test_kubevirt_real.py

VMs boot nothing (a blank 1Gi DataVolume: the default StorageClass must provision it);
KubeVirt still runs them, which is all the scenarios need.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_tree import kube_cluster, vm, write

from reconciler.backends.base import BackendError
from reconciler.backends.kubevirt.client import KubeClient, Target, connect
from reconciler.backends.kubevirt.resources import DATA_VOLUME, VM, Resource

REAL_KUBECONFIG = os.environ.get("KUBECONFIG", "")  # read before any test changes it
SKIP = "opt-in lane: no reachable Kubernetes cluster (set KUBECONFIG)"
NAMESPACE = Resource("Namespace", "", "v1", "namespaces", namespaced=False)
TIMEOUT = 600.0  # seconds: image pulls and provisioning on a slow machine
Run = Callable[..., tuple[int, str, str]]


def _client() -> KubeClient | None:
    if not REAL_KUBECONFIG:
        return None
    os.environ.setdefault("KUBECONFIG", REAL_KUBECONFIG)
    try:
        client = KubeClient(connect(Target()))
        client.request("GET", "/version")
    except BackendError:
        return None
    return client


@pytest.fixture
def real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KubeClient, str]]:
    client = _client()
    if client is None:
        pytest.skip(SKIP)
    monkeypatch.setenv("KUBECONFIG", REAL_KUBECONFIG)
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    namespace = f"virtsync-e2e-{os.environ.get('VIRTSYNC_REAL_SUFFIX', 'x')}"
    client.create(NAMESPACE, "", {"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": namespace}})
    try:
        yield client, namespace
    finally:
        client.delete(NAMESPACE, "", namespace)
        client.close()


def _wait(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(2)


def _status(client: KubeClient, ns: str, name: str) -> str:
    obj: dict[str, Any] = client.get(VM, ns, name) or {}
    return str(obj.get("status", {}).get("printableStatus", ""))


@pytest.mark.timeout(3 * TIMEOUT)
def test_real_cluster_scenarios(real: tuple[KubeClient, str], tmp_path: Path,
                                run_cli: Run) -> None:
    client, ns = real
    tree = tmp_path / "tree"
    write(tree, {"cluster.yaml": kube_cluster("", ns),
                 "vms/web.yaml": vm("web", namespace=ns),
                 "vms/db.yaml": vm("db", run="Manual", namespace=ns)})
    apply = ("apply", str(tree), "--auto-approve")
    assert run_cli(*apply)[0] == 0
    _wait("web Running", lambda: _status(client, ns, "web") == "Running")
    code, out, err = run_cli("plan", str(tree))
    assert code == 0, out + err  # server-filled identity, MACs, defaults: no drift
    write(tree, {"vms/web.yaml": vm("web", memory="2Gi", namespace=ns)})
    assert run_cli(*apply)[0] == 0
    assert run_cli("plan", str(tree))[0] == 0
    # operator stop: kept by plan and apply until `virtsync start`
    assert run_cli("stop", f"{ns}/web", "--path", str(tree))[0] == 0
    _wait("web Stopped", lambda: _status(client, ns, "web") == "Stopped")
    assert run_cli("plan", str(tree))[0] == 0
    assert run_cli("start", f"{ns}/web", "--path", str(tree))[0] == 0
    _wait("web Running again", lambda: _status(client, ns, "web") == "Running")
    # prune keeping disks: the DataVolume KubeVirt created stays, orphaned
    write(tree, {"vms/web.yaml": None})
    assert run_cli(*apply, "--prune")[0] == 0
    _wait("web deleted", lambda: client.get(VM, ns, "web") is None)
    dv = client.get(DATA_VOLUME, ns, "web-root")
    assert dv is not None and not dv.get("metadata", {}).get("ownerReferences")

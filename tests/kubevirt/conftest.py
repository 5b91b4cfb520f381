"""Fixtures of the kubevirt backend's tests: kmock's emulator (tests/kube), the
Kubernetes API model (tests/kube, a MODEL: tests/kube/README.md), and a tree whose
Cluster object points at the model through KUBECONFIG."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kube.conftest import kmock_server, kube_model, kubeconfig
from kube.kmockserver import KmockServer
from kubernetes import client as k8s

__all__ = ["kmock_api", "kmock_server", "kube_env", "kube_model", "kubeconfig"]


@pytest.fixture
def kmock_api(kmock_server: KmockServer) -> Iterator[tuple[KmockServer, k8s.ApiClient]]:
    """kmock's emulator (tests/kube/kmockserver.py) and a client pointed at it."""
    configuration = k8s.Configuration()
    configuration.host = kmock_server.url.rstrip("/")
    api = k8s.ApiClient(configuration)
    try:
        yield kmock_server, api
    finally:
        api.close()


@pytest.fixture
def kube_env(kubeconfig: Path, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """KUBECONFIG at the model, a fresh state directory; yields the tree's folder."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    tree = tmp_path / "tree"
    tree.mkdir()
    yield tree


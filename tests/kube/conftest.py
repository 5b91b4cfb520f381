"""Fixtures of the Kubernetes API model (a MODEL, see README.md).

Tests outside tests/kube can import them into their conftest:
`from kube.conftest import kube_model, kubeconfig, kmock_server  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import dynamic

from .apimodel import KubeModel
from .client import dynamic_client
from .kmockserver import KmockServer


@pytest.fixture
def kube_model() -> Iterator[KubeModel]:
    model = KubeModel()
    model.start()
    try:
        yield model
    finally:
        model.stop()
        assert not model.frontend.internal_errors, model.frontend.internal_errors[0]


@pytest.fixture
def kubeconfig(kube_model: KubeModel, tmp_path: Path) -> Path:
    return kube_model.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def dyn(kubeconfig: Path) -> dynamic.DynamicClient:
    """A DynamicClient (real `kubernetes` package, over HTTP) talking to `kube_model`."""
    return dynamic_client(kubeconfig)


@pytest.fixture
def kmock_server() -> Iterator[KmockServer]:
    """kmock's Kubernetes emulator with the KubeVirt resources declared, on 127.0.0.1 (a
    thread runs its event loop, so the synchronous kubernetes client can use it)."""
    server = KmockServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kmock_kubeconfig(kmock_server: KmockServer, tmp_path: Path) -> Path:
    return kmock_server.write_kubeconfig(tmp_path / "kmock-kubeconfig")

"""Fixtures of the Kubernetes API model (a MODEL, see README.md).

Tests outside tests/kube can import them into their conftest:
`from kube.conftest import kube_model, kubeconfig  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import dynamic

from .apimodel import KubeModel
from .client import dynamic_client


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

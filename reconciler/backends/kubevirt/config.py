"""The tree's Cluster object, as the kubevirt backend reads it (`spec.kubevirt`). Pure.

    spec:
      backend: kubevirt
      kubevirt:
        context: kind-lab        # a kubeconfig context (default: the current one)
        inCluster: false         # true: the pod's service account (virtsync in a pod)
        namespace: vms           # for objects that name none (default: default)
        vmRolloutStrategy: LiveUpdate
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.core.model import DEFAULT_NAMESPACE, JSON, Manifest

CLUSTER_KIND = "Cluster"


@dataclass(frozen=True)
class KubevirtConfig:
    context: str = ""
    in_cluster: bool = False
    namespace: str = DEFAULT_NAMESPACE


def config_of(manifests: Sequence[Manifest]) -> KubevirtConfig:
    """The (schema-checked) `spec.kubevirt` of the tree's Cluster object, else defaults."""
    cluster = next((m for m in manifests if m.kind == CLUSTER_KIND), None)
    spec = cluster.body.get("spec") if cluster is not None else None
    kv = spec.get("kubevirt") if isinstance(spec, Mapping) else None
    if not isinstance(kv, Mapping):
        return KubevirtConfig()
    return KubevirtConfig(context=_str(kv, "context"), in_cluster=kv.get("inCluster") is True,
                          namespace=_str(kv, "namespace") or DEFAULT_NAMESPACE)


def _str(m: Mapping[str, JSON], key: str) -> str:
    value = m.get(key)
    return value if isinstance(value, str) else ""

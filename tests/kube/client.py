"""The real `kubernetes` client pointed at a kubeconfig (for tests of and with the model)."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config, dynamic


def dynamic_client(kubeconfig: Path, *, context: str | None = None) -> dynamic.DynamicClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), context=context,
                            client_configuration=configuration)
    # The discovery cache defaults to /tmp/osrcp-<hash of the URL>.json, shared by every
    # server that ever had this port: keep it beside the kubeconfig instead.
    return dynamic.DynamicClient(client.ApiClient(configuration),
                                 cache_file=str(kubeconfig.with_suffix(".discovery.json")))

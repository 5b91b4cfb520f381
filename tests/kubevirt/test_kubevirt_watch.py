"""`virtsync watch` on the kubevirt backend, as a process against the API model: the
tree applied at start, an edit applied, a removed VM pruned keeping its DataVolumes, the
inventory kept in the cluster's ConfigMap; SIGTERM exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kube.apimodel import KubeModel
from kube_tree import APP, DATA, KUBE_CLUSTER, SIZES, vm, write

KV = "kubevirt.io/v1"


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_watch_applies_edits_and_prunes(kube_env: Path, kube_model: KubeModel,
                                        tmp_path: Path) -> None:
    tree = kube_env
    write(tree, {"cluster.yaml": KUBE_CLUSTER, "vms/web.yaml": vm("web"),
                 "vms/db.yaml": vm("db", run="Halted")})
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "watch", str(tree), "--prune", "--max-prune", "1",
         "--no-agent", "--interval", "2", "--debounce", "0.2"],
        env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)

    def vm_field(name: str, get: Callable[[dict[str, object]], object]) -> object:
        obj = kube_model.get(KV, "VirtualMachine", "default", name)
        return get(obj) if obj is not None else None

    try:
        assert wait_for(lambda: kube_model.get(KV, "VirtualMachine", "default", "db")
                        is not None, 60)
        write(tree, {"vms/web.yaml": vm("web", memory="2Gi")})
        assert wait_for(lambda: vm_field("web", lambda o: o["spec"]["template"]["spec"][  # type: ignore[index]
            "domain"]["memory"]["guest"]) == "2Gi", 60)
        # objects added while watch runs: the VM goes out as git holds it, without
        # virtsync's instancetype revision pin
        write(tree, {"sizes.yaml": SIZES, "data.yaml": DATA, "vms/app.yaml": APP})
        assert wait_for(lambda: kube_model.get(KV, "VirtualMachine", "default", "app")
                        is not None, 60)
        app = kube_model.get(KV, "VirtualMachine", "default", "app")
        assert app is not None and "revisionName" not in app["spec"]["instancetype"]
        write(tree, {"vms/db.yaml": None})
        assert wait_for(lambda: kube_model.get(KV, "VirtualMachine", "default", "db") is None,
                        60)

        def inventory() -> set[str]:
            (cm,) = kube_model.objects("v1", "ConfigMap", "default")
            return {o["name"] for o in json.loads(cm["data"]["inventory.json"])["objects"]}

        assert wait_for(lambda: inventory() == {"kube", "web", "small", "virtio", "data",
                                                "app"}, 30), inventory()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        _, err = proc.communicate()
    assert code == 0, err[-2000:]

"""kmock's Kubernetes emulator on a thread of its own, for the synchronous `kubernetes`
client: the wire-contract tests record what the backend sends. kmock is an emulator of
the HTTP surface only (no server-side apply, dry run or label selection: see
docs/kubevirt.md), so these tests assert requests, not behaviour."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

RESOURCES = {
    "kubevirt.io/v1/virtualmachines": ("VirtualMachine", True),
    "kubevirt.io/v1/virtualmachineinstances": ("VirtualMachineInstance", True),
    "kubevirt.io/v1/virtualmachineinstancemigrations": ("VirtualMachineInstanceMigration", True),
    "cdi.kubevirt.io/v1beta1/datavolumes": ("DataVolume", True),
    "instancetype.kubevirt.io/v1beta1/virtualmachineinstancetypes":
        ("VirtualMachineInstancetype", True),
    "instancetype.kubevirt.io/v1beta1/virtualmachinepreferences":
        ("VirtualMachinePreference", True),
    "instancetype.kubevirt.io/v1beta1/virtualmachineclusterinstancetypes":
        ("VirtualMachineClusterInstancetype", False),
    "instancetype.kubevirt.io/v1beta1/virtualmachineclusterpreferences":
        ("VirtualMachineClusterPreference", False),
    "v1/configmaps": ("ConfigMap", True),
}


class ThreadedKmock:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)
        self.handler: Any = None
        self.server: Any = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._up())
        self._ready.set()
        self.loop.run_forever()

    async def _up(self) -> None:
        self.handler = kmock.KubernetesEmulator()
        await self.handler.__aenter__()
        for path, (kind, namespaced) in RESOURCES.items():
            self.handler.resources[path].kind = kind
            self.handler.resources[path].namespaced = namespaced
        self.server = kmock.Server(self.handler)
        await self.server.__aenter__()

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("kmock did not start")
        return str(self.server.url).rstrip("/")

    def stop(self) -> None:
        async def down() -> None:
            await self.server.__aexit__(None, None, None)
            await self.handler.__aexit__(None, None, None)
        asyncio.run_coroutine_threadsafe(down(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(20)

    @property
    def requests(self) -> list[Any]:
        return list(self.handler)


@pytest.fixture
def kmock_server() -> Iterator[tuple[ThreadedKmock, k8s.ApiClient]]:
    server = ThreadedKmock()
    url = server.start()
    configuration = k8s.Configuration()
    configuration.host = url
    api = k8s.ApiClient(configuration)
    try:
        yield server, api
    finally:
        api.close()
        server.stop()

"""kmock's Kubernetes emulator (PyPI `kmock`) served from a background event loop, so the
synchronous `kubernetes` client can talk to it, with this package's resource table
declared for discovery. For pure wire-contract tests (URLs, content types, query
parameters); kmock keeps objects as plain merged JSON (README.md lists what it lacks)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml

from .resources import RESOURCES, SUBRESOURCES, VM_SUBRESOURCES

T = TypeVar("T")


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator, with `kind`/`apiVersion` on lists: kmock 0.8 omits them and the
    kubernetes DynamicClient cannot read a list without `kind`."""

    async def _serve_list(self, request: kmock.Request) -> Any:
        payload = await super()._serve_list(request)
        resource = request.resource
        if isinstance(payload, dict) and resource is not None:
            kind = self.resources[resource].kind or ""
            group_version = f"{resource.group}/{resource.version}".lstrip("/")
            payload = {"apiVersion": group_version, "kind": f"{kind}List", **payload}
        return payload


class KmockServer:
    """Start/stop kmock's KubernetesEmulator + Server on 127.0.0.1 in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kmock",
                                       daemon=True)
        self.emulator: kmock.KubernetesEmulator | None = None
        self.server: kmock.Server | None = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> None:
        self.thread.start()

        async def enter() -> None:
            emulator = Emulator()
            await emulator.__aenter__()
            declare(emulator)
            server = kmock.Server(emulator)
            await server.__aenter__()
            self.emulator, self.server = emulator, server
        self._run(enter())

    def stop(self) -> None:
        async def leave() -> None:
            if self.server is not None:
                await self.server.__aexit__(None, None, None)
            if self.emulator is not None:
                await self.emulator.__aexit__(None, None, None)
        try:
            self._run(leave())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.url).rstrip("/")

    @property
    def kmock(self) -> kmock.KubernetesEmulator:
        assert self.emulator is not None
        return self.emulator

    def requests(self) -> list[Any]:
        """kmock.Request objects, oldest first."""
        return list(self.kmock)

    def write_kubeconfig(self, path: Path, *, context: str = "kmock",
                         namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "kmock-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                        "namespace": namespace}}]}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


def declare(emulator: kmock.KubernetesEmulator) -> None:
    """Declare the model's resource table in kmock (discovery), and answer the KubeVirt
    power subresources with 202 as virt-api does."""
    verbs = {"create", "delete", "get", "list", "patch", "update", "watch"}
    for r in RESOURCES:
        emulator.resources[f"{r.api_version}/{r.plural}"] = kmock.ResourceInfo(
            kind=r.kind, singular=r.kind.lower(), namespaced=r.namespaced, verbs=verbs,
            subresources={"status"} if r.status_subresource else set())
    emulator.resources[f"{SUBRESOURCES}/v1/virtualmachines"] = kmock.ResourceInfo(
        kind="VirtualMachine", namespaced=True, verbs={"update"},
        subresources=set(VM_SUBRESOURCES))
    verbs_re = "|".join(VM_SUBRESOURCES)
    power = re.compile(rf"/apis/{re.escape(SUBRESOURCES)}/v1/namespaces/[^/]+/"
                       rf"virtualmachines/[^/]+/({verbs_re})")
    emulator["put", power] << 202

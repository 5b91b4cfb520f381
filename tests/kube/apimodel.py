"""A stateful MODEL of the Kubernetes API server (with KubeVirt, CDI and instancetype
resources) served over real HTTP on 127.0.0.1, for testing the kubevirt backend with the
real `kubernetes` client. No kube-apiserver can run on these machines; README.md says what
the model does and does not do.

    model = KubeModel(); model.start()
    cfg = model.write_kubeconfig(tmp_path / "kubeconfig")
    ...  # kubernetes.config.load_kube_config(str(cfg)) and talk to it
    model.get("kubevirt.io/v1", "VirtualMachine", "default", "vm1")
    model.stop()
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

import yaml

from . import openapi
from .api import APPLY_YAML, Admission, Api, Options
from .controller import Controller
from .kubevirt import Defaulter, Subresources, migration_admission, reference_admission
from .resources import by_kind
from .server import Frontend, ModelHTTPServer, Recorded
from .store import Store

JSON = dict[str, Any]

__all__ = ["KubeModel", "Recorded"]


class KubeModel:
    """The model: store + verbs + KubeVirt admission + controller, behind HTTP."""

    def __init__(self, *, namespaces: tuple[str, ...] = ("default",)) -> None:
        self.store = Store()
        self.admission = Admission(
            mutators=[Defaulter()],
            validators=[openapi.validate, migration_admission(self.store),
                        reference_admission(self.store)],
            pruners=[openapi.prune_unknown])
        self.api = Api(self.store, self.admission)
        self.controller = Controller(self.api)
        self.frontend = Frontend(self.api, Subresources(self.api), self.controller.after_request)
        self._server: ModelHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        for name in namespaces:
            self.put_object({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": name}}, manager="model")

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.frontend.stopping.clear()
        self._server = ModelHTTPServer(("127.0.0.1", self._port), self.frontend)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="kube-model-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.controller.stop_ticking()
        self._close()

    def _close(self) -> None:
        self.frontend.stopping.set()
        with self.store.lock:
            self.store.changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.drop_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def set_reachable(self, reachable: bool, *, refuse: bool = True) -> None:
        """False: connections are refused (the listener closes; `refuse=False` answers
        503 instead). True: serve again on the same port."""
        self.frontend.reachable_503 = not reachable and not refuse
        if not reachable and refuse and self._server is not None:
            self._close()
        elif reachable and self._server is None:
            self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def write_kubeconfig(self, path: Path, *, context: str = "model",
                         namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "model-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                        "namespace": namespace}}]}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ---- state -------------------------------------------------------------------------
    def objects(self, api_version: str, kind: str,
                namespace: str | None = None) -> list[JSON]:
        with self.store.lock:
            return self.store.all_of(by_kind(api_version, kind), namespace)

    def get(self, api_version: str, kind: str, namespace: str | None,
            name: str) -> JSON | None:
        with self.store.lock:
            return self.store.read(by_kind(api_version, kind), namespace, name)

    def put_object(self, obj: JSON, *, manager: str = "kubectl", force: bool = True) -> JSON:
        """Create or update obj by server-side apply as `manager` (forced by default), with
        the same admission, ownership, resourceVersion and events as a request."""
        rtype = by_kind(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace", "default") if rtype.namespaced else None
        opts = Options(field_manager=manager, force=force)
        with self.store.lock:
            return self.api.apply(rtype, namespace, meta["name"],
                                  json.dumps(obj).encode(), opts)

    def delete_object(self, api_version: str, kind: str, namespace: str | None,
                      name: str) -> None:
        self.api.delete(by_kind(api_version, kind), namespace, name, Options())

    # ---- requests ----------------------------------------------------------------------
    @property
    def requests(self) -> list[Recorded]:
        return self.frontend.requests

    def clear_requests(self) -> None:
        self.frontend.requests.clear()

    def compact(self) -> None:
        """Forget the event history: a watch from an older resourceVersion gets 410."""
        with self.store.lock:
            self.store.events.clear()
            self.frontend.compacted_rv = self.store.rv

    def snapshot(self) -> JSON:
        """Every stored object (for debugging a failed test)."""
        with self.store.lock:
            return {"/".join(k): copy.deepcopy(v) for k, v in self.store.objects.items()}


APPLY_CONTENT_TYPE = APPLY_YAML

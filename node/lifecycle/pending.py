"""VMs that could not get a domain yet (ErrorUnschedulable, ErrorPvcNotFound), so that
`observe()` can report them with their status instead of pretending they do not exist.

One small JSON file per VM under `<state dir>/libvirt-pending/<namespace>/<name>.json`,
written atomically. The body is stored digested (no secret in clear text). A later
successful create removes the record; so does delete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from node.storage.paths import safe_component
from reconciler.core.model import JSON, ObjectKey, PrintableStatus, VirtsyncError
from reconciler.core.sensitive import digest_sensitive


@dataclass(frozen=True)
class Pending:
    key: ObjectKey
    api_version: str
    printable_status: PrintableStatus
    message: str
    revision: str


class PendingStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "libvirt-pending"

    def _path(self, key: ObjectKey) -> Path:
        ns = safe_component(key.namespace, "namespace")
        return self.root / ns / f"{safe_component(key.name, 'name')}.json"

    def put(self, key: ObjectKey, api_version: str, printable: PrintableStatus, message: str,
            revision: str, body: Mapping[str, JSON]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "apiVersion": api_version, "status": printable, "message": message,
            "revision": revision, "body": digest_sensitive(dict(body)),
        }
        fd, tmp = tempfile.mkstemp(prefix=".pending.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def remove(self, key: ObjectKey) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def items(self) -> Iterator[Pending]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                yield Pending(
                    key=ObjectKey("VirtualMachine", path.parent.name, path.stem),
                    api_version=str(data["apiVersion"]),
                    printable_status=PrintableStatus(str(data["status"])),
                    message=str(data["message"]),
                    revision=str(data["revision"]),
                )
            except (OSError, ValueError, KeyError) as exc:
                raise VirtsyncError(f"{path}: unreadable pending record: {exc}") from exc

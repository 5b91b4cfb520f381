"""Where virtsync keeps its state: caches, identity, inventory, journal, locks — and the
installation id that marks the domains this state directory manages (rule 18)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from reconciler.core.errors import VirtsyncError

INSTALLATION_FILE = "installation-id"
INSTALLATION_ENV = "VIRTSYNC_INSTALLATION_ID"
_ID = re.compile(r"^[0-9a-f]{32}$")


def state_dir() -> Path:
    """`VIRTSYNC_STATE_DIR`, else /var/lib/virtsync for root, else ~/.local/state/virtsync."""
    configured = os.environ.get("VIRTSYNC_STATE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/virtsync")
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "virtsync"


def installation_id(state: Path) -> str:
    """This state directory's installation id: generated once, then only ever read.
    `VIRTSYNC_INSTALLATION_ID` names it instead (a runner whose state is thrown away).

    Two processes starting at once agree on one id: each writes a candidate durably, and
    only a hard link (which never replaces) publishes it. A damaged id is an error, not a
    new id: a new one would orphan every VM this installation manages."""
    configured = os.environ.get(INSTALLATION_ENV)
    if configured is not None:
        if not _ID.match(configured):
            raise VirtsyncError(f"{INSTALLATION_ENV} is not an installation id (32 hex digits)")
        return configured
    path = state / INSTALLATION_FILE
    if not path.exists():
        import uuid  # only when the id is made: uuid imports platform (start-up, issue 13)

        from reconciler.core.fsutil import write_atomic  # tempfile: only here, likewise

        candidate = path.with_name(f".{INSTALLATION_FILE}.{os.getpid()}.{uuid.uuid4().hex}")
        write_atomic(candidate, (uuid.uuid4().hex + "\n").encode(), durable_dir=True)
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass  # another process published first: use its id
        finally:
            candidate.unlink(missing_ok=True)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise VirtsyncError(f"{path}: cannot read the installation id ({exc})") from None
    if not _ID.match(text):
        raise VirtsyncError(f"{path}: not an installation id (32 hex digits); restore it "
                            "from a backup (a new id would leave every VM unmanaged)")
    return text

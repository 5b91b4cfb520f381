"""libvirt domain names for VMs: `<namespace>_<name>`.

Kubernetes namespaces are DNS-1123 labels ([a-z0-9-]) and VM names DNS-1123
subdomains ([a-z0-9.-]); neither may contain '_', so splitting at the first '_'
recovers the pair and two different VMs can never share a domain name. The name also
stays readable in `virsh list`. Domains whose name does not parse are not virtsync's
(the owner marker in <metadata> is what actually decides ownership).
"""

from __future__ import annotations

import re

from reconciler.core.model import VirtsyncError

SEPARATOR = "_"
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def domain_name(namespace: str, name: str) -> str:
    if not _NAMESPACE.match(namespace) or len(namespace) > 63:
        raise VirtsyncError(f"namespace {namespace!r} is not a DNS-1123 label")
    if not _NAME.match(name) or len(name) > 253:
        raise VirtsyncError(f"name {name!r} is not a DNS-1123 subdomain")
    return f"{namespace}{SEPARATOR}{name}"


def parse_domain_name(domain: str) -> tuple[str, str] | None:
    """(namespace, name) for a name `domain_name` could have produced, else None."""
    namespace, sep, name = domain.partition(SEPARATOR)
    if not sep or not _NAMESPACE.match(namespace) or not _NAME.match(name):
        return None
    return namespace, name

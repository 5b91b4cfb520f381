"""Kubernetes' rules for label keys and values, annotation keys, and the name lengths
virtsync can turn into libvirt domain names and file names. Pure.

Label and annotation keys are qualified names: an optional DNS-1123 subdomain prefix
(at most 253 characters) and '/', then a name of at most 63 characters of [A-Za-z0-9._-]
that starts and ends alphanumeric. Label values: at most 63 of the same, or empty
(apimachinery's IsQualifiedName / IsValidLabelValue).

Name lengths (every name becomes part of a domain name or a file name, and a file name
holds at most NAME_MAX = 255 bytes):

- a VirtualMachine's name: 63. KubeVirt's VMI name becomes a label value and host name,
  so a longer one never starts there (kubevirt/kubevirt#1222); here it is
  `<namespace>_<name>` in libvirt and `<name>.json`, `<domain>.log` on the node.
- a volume name: 63 (KubeVirt turns it into a pod volume name, a DNS-1123 label);
  here `containerdisk-<volume>.qcow2` and friends.
- a claim (DataVolume, PVC) name: 253 in Kubernetes, but here `<claim>.qcow2`, created
  under a temporary `.<claim>.qcow2.XXXXXXXX`, so NAME_MAX minus those 15 characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.core.model import Issue, JSONPath

NAME_MAX = 255
MAX_VM_NAME = 63
MAX_VOLUME_NAME = 63
MAX_CLAIM_NAME = NAME_MAX - len(".") - len(".qcow2") - len(".XXXXXXXX")

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_CHARS = "at most 63 of letters, digits, '-', '_' and '.', starting and ending with " \
              "a letter or digit"


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a valid label/annotation key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
            return (f'prefix "{prefix}" is not a DNS subdomain (lower-case letters, digits, '
                    "'-' and '.', at most 253)")
    if not name:
        return "name part is empty"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return f"name part must be {_NAME_CHARS}"
    return None


def label_value_problem(value: str) -> str | None:
    if value == "" or (len(value) <= 63 and _LABEL_NAME.match(value)):
        return None
    return f"must be empty or {_NAME_CHARS}"


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def metadata_issues(meta: Any, base: JSONPath) -> Iterator[Issue]:
    """Label keys and values and annotation keys of one metadata mapping at `base`.
    Anything not a mapping of strings is the schema's to report."""
    if not isinstance(meta, Mapping):
        return
    for field in ("labels", "annotations"):
        entries = meta.get(field)
        if not isinstance(entries, Mapping):
            continue
        for key, value in entries.items():
            path = (*base, field, key)
            why = qualified_name_problem(key) if isinstance(key, str) else None
            if why is not None:
                yield Issue(path, f'{field[:-1]} key "{_short(key)}": {why}',
                            "semantic.label-key" if field == "labels" else
                            "semantic.annotation-key")
            elif field == "labels" and isinstance(value, str):
                why = label_value_problem(value)
                if why is not None:
                    yield Issue(path, f'label {key} value "{_short(value)}" {why}',
                                "semantic.label-value")


def too_long(path: JSONPath, what: str, value: Any, limit: int, why: str) -> Iterator[Issue]:
    if isinstance(value, str) and len(value) > limit:
        yield Issue(path, f"{what} is {len(value)} characters; at most {limit} ({why})",
                    "semantic.name-too-long")

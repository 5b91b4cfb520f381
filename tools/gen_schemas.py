#!/usr/bin/env python3
"""Derive virtsync's JSON Schemas (Draft 2020-12) from KubeVirt's and CDI's OpenAPI 2.0 specs.

    python tools/gen_schemas.py            # (re)write schemas/*.schema.json
    python tools/gen_schemas.py --check    # exit 1 when a committed schema is stale

One self-contained file per kind: the root definition plus every definition reachable from
it, under `$defs`. OpenAPI leaves a lot loose, so the conversion tightens it:

* objects with a fixed shape get `additionalProperties: false` (unknown fields are errors,
  like `kubectl --validate=strict`); maps (labels, nodeSelector, requests, ...) stay open,
  and so do FieldsV1 and `status` (filled by live systems, ignored by virtsync);
* Quantity accepts a number or a string matching Kubernetes' quantity grammar,
  IntOrString an integer or a string (that is what the apimachinery decoders accept);
* int32 fields get their range, `nullable` becomes a `null` type, formats are dropped
  (annotation-only in 2020-12, and the two validators we use treat them differently);
* apiVersion/kind become constants, metadata.name is required and DNS-1123 checked,
  runStrategy is an enum, MAC addresses and firmware UUIDs get patterns.

Descriptions and defaults are dropped: they make the files ten times larger and virtsync's
messages do not use them. `schemas/cluster.schema.json` is hand-written, not generated here.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The shared/ folder beside the checkout (CI's layout), else the workplace's copy.
DEFAULT_REFERENCE = next(
    (p for p in (ROOT.parent / "shared" / "reference", Path("/work/shared/reference"))
     if (p / "kubevirt").is_dir()),
    ROOT.parent / "shared" / "reference")
SCHEMA_DIR = ROOT / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

# Kubernetes' own quantity grammar (apimachinery's CRD validation uses the same regex).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAC_PATTERN = r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"
UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
RUN_STRATEGIES = ["Always", "RerunOnFailure", "Manual", "Halted", "Once", "WaitAsReceiver"]

# Objects that really are free-form in Kubernetes (no declared fields, any content).
FREE_FORM_SUFFIXES = (".FieldsV1", ".RawExtension", ".DataVolumeTemplateDummyStatus")

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

ROOT_META = "virtsync.RootObjectMeta"


@dataclass(frozen=True)
class Target:
    """One generated schema file: which swagger, which definition(s), which apiVersions."""

    filename: str
    swagger: str  # path relative to the reference directory
    group: str
    kind: str
    versions: tuple[str, ...]  # candidate versions, first existing one supplies the shape
    cluster_scoped: bool = False


TARGETS: tuple[Target, ...] = (
    # v1alpha3 is still served by KubeVirt with the same schema as v1.
    Target("virtualmachine.schema.json", "kubevirt/swagger.json", "kubevirt.io",
           "VirtualMachine", ("v1", "v1alpha3")),
    Target("virtualmachineinstancetype.schema.json", "kubevirt/swagger.json",
           "instancetype.kubevirt.io", "VirtualMachineInstancetype", ("v1beta1", "v1")),
    Target("virtualmachineclusterinstancetype.schema.json", "kubevirt/swagger.json",
           "instancetype.kubevirt.io", "VirtualMachineClusterInstancetype", ("v1beta1", "v1"),
           cluster_scoped=True),
    Target("virtualmachinepreference.schema.json", "kubevirt/swagger.json",
           "instancetype.kubevirt.io", "VirtualMachinePreference", ("v1beta1", "v1")),
    Target("virtualmachineclusterpreference.schema.json", "kubevirt/swagger.json",
           "instancetype.kubevirt.io", "VirtualMachineClusterPreference", ("v1beta1", "v1"),
           cluster_scoped=True),
    Target("datavolume.schema.json", "containerized-data-importer/swagger.json",
           "cdi.kubevirt.io", "DataVolume", ("v1beta1",)),
)

# Extra constraints per (definition name, property): merged into the property schema.
PROPERTY_TIGHTENING: dict[tuple[str, str], dict[str, Any]] = {
    ("v1.Interface", "macAddress"): {"pattern": MAC_PATTERN},
    ("v1.Firmware", "uuid"): {"pattern": UUID_PATTERN},
    ("v1.VirtualMachineSpec", "runStrategy"): {"enum": RUN_STRATEGIES},
}


def _ref_name(ref: str) -> str:
    prefix = "#/definitions/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}")
    return ref[len(prefix):]


def _refs(node: Any) -> Iterable[str]:
    """Every definition name referenced anywhere below `node` (property names are data)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield _ref_name(ref)
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for prop in value.values():
                    yield from _refs(prop)
            elif key not in ("$ref", "enum", "required", "example", "default"):
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def reachable(definitions: dict[str, Any], root: str) -> list[str]:
    seen: set[str] = set()
    stack = [root]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(_refs(definitions[name]))
    return sorted(seen)


def _is_quantity(name: str) -> bool:
    return name.endswith("resource.Quantity")


def _is_free_form(name: str) -> bool:
    return name.endswith(FREE_FORM_SUFFIXES)


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type", [])
    return list(t) if isinstance(t, list) else [t]


def _not_null(schema: dict[str, Any], object_defs: frozenset[str]) -> dict[str, Any]:
    """Forbid null where the referenced object definition would allow it."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[1] in object_defs:
        return {**schema, "type": "object"}
    return schema


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional object/array property may be null: Kubernetes reads it as unset."""
    types = _types(schema)
    if "$ref" not in schema and ("object" in types or "array" in types) and "null" not in types:
        return {**schema, "type": [*types, "null"]}
    return schema


def convert(node: Any, owner: str, object_defs: frozenset[str]) -> Any:
    """One OpenAPI 2.0 schema node → Draft 2020-12, tightened (see module docstring)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    required = set(node.get("required", []))
    for key, value in node.items():
        if key == "$ref":
            out["$ref"] = "#/$defs/" + _ref_name(value)
        elif key == "properties":
            props: dict[str, Any] = {}
            for prop, sub in value.items():
                converted = _tighten(owner, prop, convert(sub, owner, object_defs))
                props[prop] = (_not_null(converted, object_defs) if prop in required
                               else _optional(converted))
            out["properties"] = props
        elif key == "additionalProperties":
            out[key] = (_not_null(convert(value, owner, object_defs), object_defs)
                        if isinstance(value, dict) else value)
        elif key == "items":
            out[key] = _not_null(convert(value, owner, object_defs), object_defs)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [convert(v, owner, object_defs) for v in value]
        elif key in ("type", "required", "enum", "minimum", "maximum", "pattern",
                     "minItems", "maxItems", "minLength", "maxLength"):
            out[key] = copy.deepcopy(value)
        # description, default, format, nullable, x-kubernetes-*: handled below or dropped
    if node.get("format") == "int-or-string":
        out["type"] = ["integer", "string"]
    if node.get("format") == "int32" and out.get("type") == "integer":
        out["minimum"], out["maximum"] = INT32_MIN, INT32_MAX
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"] if "null" not in types else types
    if out.get("type") == "object" and "additionalProperties" not in out:
        # Fixed-shape object (possibly an empty marker struct like `masquerade: {}`).
        out["additionalProperties"] = False
    if "$ref" in out and len(out) > 1:
        # Siblings of $ref only carried docs/defaults; keep the reference alone.
        out = {"$ref": out["$ref"]}
    return out


def _tighten(owner: str, prop: str, schema: dict[str, Any]) -> dict[str, Any]:
    for (suffix, name), extra in PROPERTY_TIGHTENING.items():
        if name == prop and owner == suffix:
            return {**schema, **extra}
    return schema


def convert_definition(
    name: str, node: dict[str, Any], object_defs: frozenset[str]
) -> dict[str, Any]:
    if _is_quantity(name):
        return {"type": ["string", "number"], "pattern": QUANTITY_PATTERN}
    if _is_free_form(name):
        return {"type": ["object", "null"]}
    out = convert(node, name, object_defs)
    if name in object_defs:
        # Nullable here; required properties, list items and the root add "type": "object".
        out["type"] = ["object", "null"]
    return out


def root_metadata(object_meta: dict[str, Any], cluster_scoped: bool) -> dict[str, Any]:
    """The top-level ObjectMeta: like the template's, but name is required and checked."""
    meta = copy.deepcopy(object_meta)
    props = meta["properties"]
    props["name"] = {"type": "string", "minLength": 1, "maxLength": 253,
                     "pattern": DNS1123_SUBDOMAIN}
    if not cluster_scoped:
        props["namespace"] = {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL}
    meta["required"] = ["name"]
    meta["type"] = "object"
    return meta


def build(target: Target, reference: Path) -> dict[str, Any]:
    spec = json.loads((reference / target.swagger).read_text(encoding="utf-8"))
    definitions: dict[str, Any] = spec["definitions"]
    versions = [v for v in target.versions if f"{v}.{target.kind}" in definitions]
    if not versions:
        raise SystemExit(f"{target.swagger}: no definition for {target.kind} in {target.versions}")
    if target.group == "kubevirt.io":
        versions = list(target.versions)  # served versions share v1's shape
    root_name = f"{versions[0]}.{target.kind}"
    names = reachable(definitions, root_name)
    object_defs = frozenset(n for n in names if definitions[n].get("type") == "object")
    defs = {name: convert_definition(name, definitions[name], object_defs) for name in names}

    root = copy.deepcopy(defs.pop(root_name))
    root["type"] = "object"
    meta_ref = root["properties"]["metadata"]["$ref"].rsplit("/", 1)[1]
    defs[ROOT_META] = root_metadata(defs[meta_ref], target.cluster_scoped)
    api_versions = [f"{target.group}/{v}" for v in versions]
    root["properties"]["apiVersion"] = (
        {"const": api_versions[0]} if len(api_versions) == 1 else {"enum": api_versions}
    )
    root["properties"]["kind"] = {"const": target.kind}
    root["properties"]["metadata"] = {"$ref": f"#/$defs/{ROOT_META}"}
    if "status" in root["properties"]:
        root["properties"]["status"] = {}  # filled by live systems; accepted and ignored
    root["required"] = sorted({"apiVersion", "kind", "metadata", *root.get("required", [])})
    # Drop definitions only the replaced root properties used (e.g. the status types).
    used = set(_refs_2020({**root, "$defs": {ROOT_META: defs[ROOT_META]}}))
    closure = _closure_2020(defs, used)
    return {
        "$schema": DRAFT,
        "$id": f"https://virtsync.io/schemas/{target.filename}",
        "title": f"{target.group} {target.kind}",
        "description": f"Generated by tools/gen_schemas.py from {target.swagger}; do not edit.",
        **root,
        "$defs": {name: defs[name] for name in sorted(closure)},
    }


def _refs_2020(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[1]
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for prop in value.values():
                    yield from _refs_2020(prop)
            elif key not in ("$ref", "enum", "required", "const"):
                yield from _refs_2020(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs_2020(item)


def _closure_2020(defs: dict[str, Any], start: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(_refs_2020(defs[name]))
    return seen


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a committed schema differs")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE,
                        help="directory holding kubevirt/ and containerized-data-importer/")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)

    stale: list[str] = []
    for target in TARGETS:
        text = render(build(target, args.reference))
        path: Path = args.out / target.filename
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)
    if stale:
        print("stale schemas (run tools/gen_schemas.py):\n  " + "\n  ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""OpenAPI validation of the Kubernetes API model: every KubeVirt, CDI and instancetype
object the model admits is checked against the upstream swagger definitions in the shared
reference data (KubeVirt's and CDI's `api/openapi-spec/swagger.json`), as the real API
server checks a CRD's structural schema. Unknown fields are pruned (with a warning) or,
under `fieldValidation=Strict`, rejected, and null values dropped — as the API server
does.

A MODEL: it checks types, required fields and enums the swagger declares; CEL rules and
KubeVirt's validating webhooks are not modelled.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import jsonschema
from refdata import REFERENCE

from .resources import ResourceType

JSON = dict[str, Any]

# kind → (swagger file folder, definition name)
DEFINITIONS = {
    "VirtualMachine": ("kubevirt", "v1.VirtualMachine"),
    "VirtualMachineInstance": ("kubevirt", "v1.VirtualMachineInstance"),
    "VirtualMachineInstanceMigration": ("kubevirt", "v1.VirtualMachineInstanceMigration"),
    "VirtualMachineInstancetype": ("kubevirt", "v1beta1.VirtualMachineInstancetype"),
    "VirtualMachinePreference": ("kubevirt", "v1beta1.VirtualMachinePreference"),
    "VirtualMachineClusterInstancetype": ("kubevirt",
                                          "v1beta1.VirtualMachineClusterInstancetype"),
    "VirtualMachineClusterPreference": ("kubevirt", "v1beta1.VirtualMachineClusterPreference"),
    "DataVolume": ("containerized-data-importer", "v1beta1.DataVolume"),
}
# Kubernetes' int-or-string types; the swagger spells them as plain strings.
_INT_OR_STRING = {"type": ["string", "integer"]}
_QUANTITY = {"type": ["string", "integer", "number"]}


@functools.cache
def _definitions(folder: str) -> JSON:
    defs: JSON = json.loads((REFERENCE / folder / "swagger.json").read_text())["definitions"]
    for name in defs:
        if name.endswith("intstr.IntOrString"):
            defs[name] = _INT_OR_STRING
        elif name.endswith("resource.Quantity"):
            defs[name] = _QUANTITY
    return defs


def _schema(kind: str) -> tuple[JSON, JSON] | None:
    if kind not in DEFINITIONS:
        return None
    folder, name = DEFINITIONS[kind]
    defs = _definitions(folder)
    return defs[name], defs


@functools.cache
def _validator(kind: str) -> jsonschema.Draft4Validator:
    folder, name = DEFINITIONS[kind]
    schema = {"$ref": f"#/definitions/{name}", "definitions": _definitions(folder)}
    return jsonschema.Draft4Validator(schema)


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def validate(rtype: ResourceType, obj: JSON) -> list[tuple[str, str]]:
    """(field path, message) for each schema violation, worded like the API server."""
    if rtype.kind not in DEFINITIONS:
        return []
    body = copy.deepcopy(obj)
    body.get("metadata", {}).pop("managedFields", None)
    causes = []
    for error in sorted(_validator(rtype.kind).iter_errors(body), key=lambda e: list(e.path)):
        where = _path(error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1]
            causes.append((f"{where}.{missing}" if where else missing, "Required value"))
        elif error.validator == "type":
            causes.append((where, f"Invalid value: {json.dumps(error.instance)}: "
                                  f"{where} in body must be of type {error.validator_value}"))
        elif error.validator == "enum":
            allowed = ", ".join(json.dumps(v) for v in error.validator_value)
            causes.append((where, f"Unsupported value: {json.dumps(error.instance)}: "
                                  f"supported values: {allowed}"))
        else:
            causes.append((where, f"Invalid value: {error.message}"))
    return causes


def _resolve(schema: JSON, defs: JSON) -> JSON:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _prune(value: Any, schema: JSON, defs: JSON, path: str, found: list[str]) -> None:
    schema = _resolve(schema, defs)
    if isinstance(value, dict):
        # null in a non-nullable field is dropped, as the API server does for CRDs
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
    if isinstance(value, dict) and "properties" in schema:
        for key in list(value):
            if key not in schema["properties"]:
                if "additionalProperties" in schema:
                    continue
                found.append(f"{path}.{key}" if path else key)
                del value[key]
            else:
                _prune(value[key], schema["properties"][key], defs,
                       f"{path}.{key}" if path else key, found)
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, sub in value.items():
            _prune(sub, schema["additionalProperties"], defs, f"{path}.{key}", found)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _prune(item, schema["items"], defs, f"{path}[{index}]", found)


def prune_unknown(rtype: ResourceType, obj: JSON) -> list[str]:
    """Remove fields the schema does not know from obj; return their paths."""
    loaded = _schema(rtype.kind)
    if loaded is None:
        return []
    schema, defs = loaded
    found: list[str] = []
    _prune(obj, schema, defs, "", found)
    return found

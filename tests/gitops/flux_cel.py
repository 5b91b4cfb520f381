"""Evaluate a Flux Kustomization's `healthCheckExprs` the way kustomize-controller does
(fluxcd/pkg `runtime/cel`, StatusEvaluator), with cel-expr-python (the CEL C++
implementation) standing in for cel-go:

1. `status.observedGeneration` present and different from `metadata.generation`:
   InProgress, before any expression runs;
2. then `inProgress`, `failed`, `current`, in that order; the first true one wins;
3. none true: InProgress.

The object's top-level fields are the CEL variables (`metadata`, `spec`, `status`), parsed
without type checking, with optional types and the strings extension, as Flux sets cel-go
up. An expression that errors (e.g. `status` missing from the object) makes the whole
evaluation an error; kstatus reports such an object as Unknown, which Flux, like
InProgress, does not count as ready. Flux also enables cel-go's sets and encoders
extensions, which cel-expr-python lacks; the expressions here use neither.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_optional, ext_strings

_ENV = cel.NewEnv(extensions=[ext_optional.ExtOptional(), ext_strings.ExtStrings()])


class FluxStatus(enum.Enum):
    """kstatus results a health check can end in."""

    CURRENT = "Current"
    FAILED = "Failed"
    IN_PROGRESS = "InProgress"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class HealthCheckExprs:
    api_version: str
    kind: str
    current: str
    in_progress: str = ""
    failed: str = ""


@dataclass(frozen=True)
class FluxResult:
    status: FluxStatus
    error: str = ""


class CelError(Exception):
    pass


def exprs_from_kustomization(doc: Mapping[str, Any]) -> list[HealthCheckExprs]:
    assert doc["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1", doc["apiVersion"]
    assert doc["kind"] == "Kustomization"
    return [HealthCheckExprs(api_version=e["apiVersion"], kind=e.get("kind", ""),
                             current=e["current"], in_progress=e.get("inProgress", ""),
                             failed=e.get("failed", ""))
            for e in doc["spec"]["healthCheckExprs"]]


def select(checks: Sequence[HealthCheckExprs], obj: Mapping[str, Any]) -> HealthCheckExprs:
    """The entry for this object: the same API group, and the kind if one is named."""
    group = str(obj["apiVersion"]).rpartition("/")[0]
    found = [c for c in checks if c.api_version.rpartition("/")[0] == group
             and c.kind in ("", obj["kind"])]
    assert len(found) == 1, f"{len(found)} healthCheckExprs for {obj['apiVersion']} {obj['kind']}"
    return found[0]


def evaluate_bool(expression: str, obj: Mapping[str, Any]) -> bool:
    try:
        compiled = _ENV.compile(expression, disable_check=True)
    except Exception as exc:  # the binding raises plain exceptions on parse errors
        raise CelError(f"failed to parse {expression!r}: {exc}") from None
    value = compiled.eval(data=dict(obj))
    if value.type() == cel.Type.ERROR:
        raise CelError(f"failed to evaluate {expression!r}: {value.value()}")
    if value.type() != cel.Type.BOOL:
        raise CelError(f"not a boolean: {expression!r} gave {value.type().name()}")
    return bool(value.value())


def _generation_lags(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status")
    observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
    generation = obj.get("metadata", {}).get("generation")
    return observed is not None and generation is not None and observed != generation


def evaluate(check: HealthCheckExprs, obj: Mapping[str, Any]) -> FluxResult:
    if _generation_lags(obj):
        return FluxResult(FluxStatus.IN_PROGRESS)
    try:
        for expression, status in ((check.in_progress, FluxStatus.IN_PROGRESS),
                                   (check.failed, FluxStatus.FAILED),
                                   (check.current, FluxStatus.CURRENT)):
            if expression and evaluate_bool(expression, obj):
                return FluxResult(status)
    except CelError as exc:
        return FluxResult(FluxStatus.UNKNOWN, str(exc))
    return FluxResult(FluxStatus.IN_PROGRESS)

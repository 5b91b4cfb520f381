"""API errors of the Kubernetes API model, rendered as `Status` objects like the real
API server's (reason, code, details.causes)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


class ApiError(Exception):
    """A failed request: HTTP code, Status reason, message and optional details."""

    def __init__(self, code: int, reason: str, message: str, *,
                 details: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> JSON:
        body: JSON = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Failure", "message": self.message, "reason": self.reason,
                      "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def _qualified(kind_plural: str, group: str) -> str:
    return f"{kind_plural}.{group}" if group else kind_plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(plural, group)} "{name}" not found',
                    details={"name": name, "group": group, "kind": plural})


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists",
                    f'{_qualified(plural, group)} "{name}" already exists',
                    details={"name": name, "group": group, "kind": plural})


def stale(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": '
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                    details={"name": name, "group": group, "kind": plural})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; causes are (field, message) pairs, message as the API server words it."""
    text = "; ".join(f"{field}: {msg}" for field, msg in causes)
    return ApiError(422, "Invalid", f'{_qualified(kind, group)} "{name}" is invalid: [{text}]'
                    if len(causes) > 1 else
                    f'{_qualified(kind, group)} "{name}" is invalid: {text}',
                    details={"name": name, "group": group, "kind": kind,
                             "causes": [{"reason": "FieldValueInvalid", "message": msg,
                                         "field": field} for field, msg in causes]})

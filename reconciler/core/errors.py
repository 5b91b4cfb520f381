"""Exit codes and the user-facing error: what every command needs, and nothing else.

Kept apart from `reconciler.core.model` (which re-exports both) so that a run answered
early, such as `validate` of an unchanged tree, imports no dataclasses (issue 13).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, as docs/ and `virtsync --help` list them (kubectl's convention):
    0 done, 1 not clean, 2 error; 130 interrupted. `plan --detailed-exitcode` uses
    Terraform's instead: 0 no changes, 2 changes (CHANGES), 1 error (ERROR); those two
    names are aliases of the same numbers."""

    OK = 0  # valid, no changes, applied; watch and agent: stopped by a signal
    FINDINGS = 1  # validate: invalid; plan: changes; apply: refused or failed; pin: differs
    FAILED = 2  # usage, input or internal error: nothing done (watch: cannot start)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    ERROR = 1  # plan --detailed-exitcode: an error
    CHANGES = 2  # plan --detailed-exitcode: the plan is not empty


class VirtsyncError(Exception):
    """An expected, user-facing failure (bad input, unreachable host, refused action).

    The CLI prints `details` (e.g. the located findings of an invalid tree), then the
    message, without a traceback, and exits non-zero. Neither carries secret values.
    """

    details: str = ""

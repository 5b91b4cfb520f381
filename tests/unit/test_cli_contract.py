"""Every command answers with an `ExitCode` (issue 9, item 6), and `apply` and `watch`
turn the change-permission flags into `ApplyOptions` the same way."""

from __future__ import annotations

import importlib
import typing
from pathlib import Path

import pytest

from reconciler.cli import SUBCOMMANDS, build_parser, main
from reconciler.cli.common import apply_options
from reconciler.core.model import ExitCode
from reconciler.execute.apply import ApplyOptions


@pytest.mark.parametrize("module", sorted(set(SUBCOMMANDS.values())))
def test_every_command_declares_an_exit_code(module: str) -> None:
    run = importlib.import_module(module, "reconciler.cli").run
    assert typing.get_type_hints(run)["return"] is ExitCode


def test_main_returns_the_enum_for_every_outcome(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTSYNC_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "bad.yaml").write_text("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n")
    invalid = main(["validate", str(tmp_path)])
    missing = main(["validate", str(tmp_path / "nothing-here")])
    assert (invalid, missing) == (ExitCode.FINDINGS, ExitCode.FAILED)
    assert isinstance(invalid, ExitCode) and isinstance(missing, ExitCode)


FLAGS = ["--prune", "--max-prune", "0", "--allow-restart", "--force-stop",
         "--grace-period", "7"]


@pytest.mark.parametrize("command", ["apply", "watch"])
def test_apply_and_watch_read_the_same_permissions(command: str) -> None:
    args = build_parser(command).parse_args([command, "vms", *FLAGS])
    # An explicit --max-prune 0 means "prune nothing", never "the default cap".
    assert apply_options(args) == ApplyOptions(allow_restart=True, force_stop=True,
                                               prune=True, max_prune=0, grace_period=7)
    other = build_parser(command).parse_args([command, "vms", "--allow-data-loss"])
    assert apply_options(other) == ApplyOptions(allow_data_loss=True)

"""`virtsync validate`: placeholder until the loader lands (issue 2)."""

from __future__ import annotations

import argparse

NAME = "validate"
HELP = "Check VM specs: YAML safety, JSON Schema and semantic rules, with file:line errors."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", default=["."], metavar="PATH")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError

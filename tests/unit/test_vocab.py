"""The vocabularies are enums whose values are the words users and tools see (issue 9, item
6): the JSON plan schema, apply's summary and the exit codes speak exactly these words."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.core.model import Action, ApplyWord, DiffOp, ExitCode, PrintableStatus
from reconciler.planning.classify import Disruption

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())
CHANGE = SCHEMA["$defs"]["change"]["properties"]


def test_plan_schema_enums_are_the_model_vocabularies() -> None:
    # The JSON plan writes a replace as delete + create (format 2), never the word.
    assert CHANGE["actions"]["items"]["enum"] == [a.value for a in Action
                                                  if a is not Action.REPLACE]
    assert CHANGE["fields"]["items"]["properties"]["op"]["enum"] == [o.value for o in DiffOp]
    assert SCHEMA["$defs"]["disruption"]["enum"] == [d.label for d in Disruption]


def test_enum_members_print_and_serialize_as_their_words() -> None:
    doc = {"actions": [Action.UPDATE, Action.RESTART], "op": DiffOp.ORDER,
           "status": PrintableStatus.CRASH_LOOP_BACK_OFF}
    assert json.dumps(doc) == ('{"actions": ["update", "restart"], "op": "order", '
                               '"status": "CrashLoopBackOff"}')
    assert f"{ApplyWord.NOT_RUN} {ApplyWord.CONFIGURED}" == "not-run configured"
    # kubectl's convention (docs/, README), 130 for Ctrl-C; Terraform's two are aliases
    assert [int(c) for c in ExitCode] == [0, 1, 2, 130]
    assert (ExitCode.ERROR, ExitCode.CHANGES) == (1, 2)  # plan --detailed-exitcode

"""Safety rule 10: a canary placed in userData, networkData, a password field and a
secret reference appears in no plan output and no error message."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from plan_helpers import plan_of
from plan_repo import Repo

from reconciler.planning.plan_model import Plan
from reconciler.render.json import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.text import render_text

CANARY = "CANARY-7f3a"

SECRET_VM = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
  namespace: prod
  annotations:
    example.com/admin-password: "{pw}"
spec:
  runStrategy: Always
  template:
    spec:
      accessCredentials:
      - sshPublicKey:
          source:
            secret:
              secretName: {ref}
          propagationMethod:
            noCloud: {{}}
      domain:
        memory:
          guest: 1Gi
        devices:
          disks:
          - name: cloudinit
            disk: {{bus: virtio}}
          - name: creds
            disk: {{bus: virtio}}
      volumes:
      - name: cloudinit
        cloudInitNoCloud:
          userData: |
            #cloud-config
            password: {user}
          networkData: |
            version: 2  # {net}
      - name: creds
        cloudInitConfigDrive:
          secretRef:
            name: {ref}
"""


def secret_vm(name: str = "vault", *, pw: str = "old", user: str = "old", net: str = "old",
              ref: str = "old-secret") -> str:
    return SECRET_VM.format(name=name, pw=pw, user=user, net=net, ref=ref)


CANARIED = secret_vm(pw=CANARY, user=CANARY, net=CANARY, ref=CANARY)


def outputs(plan: Plan) -> dict[str, str]:
    return {"text": render_text(plan), "color": render_text(plan, color=True),
            "markdown": render_markdown(plan), "json": render_json(plan)}


@pytest.mark.parametrize(("case", "head", "base"), [
    ("changed-to", CANARIED, secret_vm()),
    ("changed-from", secret_vm(), CANARIED),
    ("created", CANARIED, ""),
    ("deleted", secret_vm("other"), CANARIED),
    ("renamed", CANARIED.replace("name: vault", "name: vault2"), CANARIED),
])
def test_canary_in_no_renderer(case: str, head: str, base: str) -> None:
    plan = plan_of(head, base)
    assert not plan.empty
    for fmt, text in outputs(plan).items():
        assert CANARY not in text, f"{case}: canary leaked in {fmt}"
    if case == "changed-to":
        text = render_text(plan)
        assert "userData: (sensitive value changed)" in text
        assert "networkData: (sensitive value changed)" in text


def test_canary_in_no_cli_output_or_error(repo: Repo,
                                          run_cli: Callable[..., tuple[int, str, str]]
                                          ) -> None:
    repo.write({"vms/vault.yaml": secret_vm()})
    base = repo.commit("base")
    repo.write({"vms/vault.yaml": CANARIED})
    for fmt in ("text", "markdown", "json"):
        code, out, err = run_cli("plan", "vms", "--base", base, "-o", fmt, "--color",
                                 "always")
        assert code == 1, err
        assert CANARY not in out + err
    broken = {
        "yaml-syntax": CANARIED.replace("    example.com/admin-password:",
                                        "    example.com/admin-password: [\n    x:"),
        "wrong-type": CANARIED.replace(f"secretName: {CANARY}",
                                       f"secretName: {{{CANARY}: 1}}"),
        "duplicate-key": CANARIED.replace(
            f'    example.com/admin-password: "{CANARY}"',
            f'    example.com/admin-password: "{CANARY}"\n'
            f'    example.com/admin-password: "{CANARY}"'),
        "userdata-wrong-type": CANARIED.replace("userData: |", "userData:").replace(
            f"#cloud-config\n            password: {CANARY}", f"- {CANARY}"),
    }
    for name, text in broken.items():
        repo.write({"vms/vault.yaml": text})
        code, out, err = run_cli("plan", "vms", "--base", base)
        assert code == 2, f"{name}: {out}{err}"
        assert CANARY not in out + err, f"{name}: canary leaked: {err}"

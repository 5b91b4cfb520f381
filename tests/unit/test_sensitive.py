"""Safety rule 10 at the unit level (issue 14): one test per masked key and per
alternative of the password-like pattern, with case variants, and the keys that must
stay visible (masking everything would hide every change)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.sensitive import (
    MASK,
    digest_sensitive,
    is_sensitive_key,
    is_sensitive_path,
    redact,
    sensitive_digest,
    show_value,
)

# Always secret, wherever they appear; matched exactly (KubeVirt's spelling).
MASKED_KEYS = ["userData", "userDataBase64", "networkData", "networkDataBase64"]

# One row per alternative of the pattern, each in several spellings.
PATTERN_ALTERNATIVES = {
    "password": ["password", "Password", "PASSWORD", "adminPassword", "db_password_file"],
    "passwd": ["passwd", "PASSWD", "rootPasswd"],
    "passphrase": ["passphrase", "PASSPHRASE", "keyPassphrase"],
    "secret": ["secret", "secretRef", "userDataSecretRef", "SECRET_NAME", "clientSecret"],
    "token": ["token", "Token", "TOKEN", "apiToken", "bootstrap-token"],
    "credential": ["credential", "credentials", "accessCredentials", "AWS_CREDENTIAL"],
    "private_?key": ["private_key", "privateKey", "PRIVATE_KEY", "tlsPrivateKey",
                     "privatekey"],
    "accesskey": ["accesskey", "accessKey", "ACCESSKEY", "awsAccessKeyId"],
    "ssh_?key": ["ssh_key", "sshKey", "SSH_KEY", "authorizedSshKeys", "sshkey"],
}

# Ordinary fields a plan must keep showing.
VISIBLE_KEYS = ["name", "namespace", "cores", "guest", "image", "macAddress", "serial",
                "uuid", "bus", "disks", "volumes", "cloudInitNoCloud", "sshPublicKey",
                "data", "network", "user", "privateip", "ssh", "key", "keyboard"]


@pytest.mark.parametrize("key", MASKED_KEYS)
def test_masked_key(key: str) -> None:
    assert is_sensitive_key(key)
    doc = {"cloudInitNoCloud": {key: "CANARY", "other": "shown"}}
    assert redact(doc) == {"cloudInitNoCloud": {key: MASK, "other": "shown"}}
    assert show_value("CANARY", ("volumes", 0, "cloudInitNoCloud", key)) == MASK


@pytest.mark.parametrize(("alternative", "key"), [
    (alt, key) for alt, keys in PATTERN_ALTERNATIVES.items() for key in keys])
def test_pattern_alternative(alternative: str, key: str) -> None:
    assert is_sensitive_key(key), f"{key!r} ({alternative}) must be masked"
    # The whole subtree under such a key is secret, not only a string value.
    assert redact({key: {"name": "CANARY", "items": ["CANARY"]}}) == {key: MASK}
    assert is_sensitive_path(("metadata", "annotations", f"example.com/{key}"))


@pytest.mark.parametrize("key", VISIBLE_KEYS)
def test_ordinary_key_stays_visible(key: str) -> None:
    assert not is_sensitive_key(key)
    assert redact({key: "shown"}) == {key: "shown"}
    assert show_value("shown", ("spec", key)) == '"shown"'


def test_sensitive_ancestor_masks_every_descendant() -> None:
    path = ("spec", "template", "spec", "accessCredentials", 0, "sshPublicKey", "source")
    assert is_sensitive_path(path)
    assert show_value({"secret": {"secretName": "x"}}, path) == MASK
    doc = {"spec": {"accessCredentials": [{"sshPublicKey": {"source": "CANARY"}}],
                    "cores": 2}}
    assert redact(doc) == {"spec": {"accessCredentials": MASK, "cores": 2}}
    assert redact(["CANARY"], ("userData",)) == MASK


def test_show_value_shortens_only_safe_values() -> None:
    assert show_value(2, ("cores",)) == "2"
    long = "x" * 200
    assert show_value(long, ("image",)) == '"' + "x" * 76 + "..."
    assert len(show_value(long, ("image",))) == 80


def test_digest_keeps_secrets_comparable_without_holding_them() -> None:
    a = {"volumes": [{"cloudInitNoCloud": {"userData": "CANARY-1", "x": 1}}]}
    b = {"volumes": [{"cloudInitNoCloud": {"userData": "CANARY-2", "x": 1}}]}
    da, db = digest_sensitive(a), digest_sensitive(b)
    assert "CANARY" not in repr(da) + repr(db)
    assert da != db and da == digest_sensitive(a)
    assert da["volumes"][0]["cloudInitNoCloud"]["x"] == 1
    assert sensitive_digest("CANARY-1").startswith("sha256:")
    assert sensitive_digest({"a": 1, "b": 2}) == sensitive_digest({"b": 2, "a": 1})


def test_show_value_limit_is_80_characters() -> None:
    exact = "y" * 78  # 80 with its quotes: shown whole
    assert show_value(exact, ("image",)) == f'"{exact}"'
    over = "y" * 79
    assert show_value(over, ("image",)) == '"' + "y" * 76 + "..."


def test_digest_is_stable_across_versions() -> None:
    # Backends store specs with these digests: a different spelling after an upgrade would
    # make every stored secret look changed.
    assert sensitive_digest("x") == \
        "sha256:ba2df4903a2c14e86dc3bcca58911b44ac1d2514b7227bf6eb08cfb978f55a1b"
    assert sensitive_digest({"a": [1, "b"]}) == \
        "sha256:ee70aef572200b15408cec63724334e0ccd6c2b5d1cd7225a7f6a3f2a9aa80a9"


def _by_path(value: Any, path: tuple[Any, ...], leaf: Any) -> Any:
    """The rule as documented, one is_sensitive_path per node (the slow form issue 13
    replaced): every node whose path has a sensitive key becomes leaf(node)."""
    if is_sensitive_path(path):
        return leaf(value)
    if isinstance(value, dict):
        return {k: _by_path(v, (*path, k), leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_by_path(v, (*path, i), leaf) for i, v in enumerate(value)]
    return value


FAST_PATH_TREES: list[Any] = [
    {"spec": {"template": {"spec": {"volumes": [
        {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config", "networkData": "x"}},
        {"name": "s", "secret": {"secretName": "a"}},
        {"cloudInitNoCloud": {"userDataSecretRef": {"name": "k"}}}]}}}},
    [{"a": [{"b": {"apiToken": 1}}, {"c": [{"Password": [1, 2]}, {"d": "keep"}]}]}, "x", 3],
    {1: {"token": "t"}, 2: {"ssh_key": None, "keys": ["ssh-key", "password"], "o": {3: "keep"}}},
    {"a": {"b": {"c": {"d": {"e": {"f": {"accessKey": {"g": 1}, "h": "keep"}}}}}}},
    "plain",
]


@pytest.mark.parametrize("tree", FAST_PATH_TREES)
@pytest.mark.parametrize("path", [(), ("spec",), ("metadata", 0), ("data", "secretRef")])
def test_digest_and_redact_match_the_per_path_rule(tree: Any, path: tuple[Any, ...]) -> None:
    assert digest_sensitive(tree, path) == _by_path(tree, path, sensitive_digest)
    assert redact(tree, path) == _by_path(tree, path, lambda _: MASK)

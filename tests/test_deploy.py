"""``quantcraft deploy init``: fresh random secrets, 0600, never a secret replaced."""

from __future__ import annotations

import re
import stat
import subprocess
import sys

from quantcraft_dagster.deploy import SECRETS, init_env
from tests.deploy.test_compose_stack import read_env as values
from tests.deploy.test_privileges import COMPOSE_FILES


def test_a_new_env_file_holds_every_secret_fresh_and_is_owner_only(tmp_path):
    env = tmp_path / ".env"
    assert init_env(env) == list(SECRETS)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    first = values(env)
    assert set(first) == set(SECRETS)
    assert len(set(first.values())) == len(SECRETS)  # no value shared between two secrets
    assert all(len(v) >= 20 and v.isalnum() for v in first.values())  # nothing to quote in a URL
    other = tmp_path / "other.env"
    init_env(other)
    assert not set(values(other).values()) & set(first.values())  # fresh per deployment


def test_existing_secrets_are_kept_and_only_the_missing_ones_added(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# an older deployment's file\nDAGSTER_PG_PASSWORD=in-use\nQUANTCRAFT_PROFILE=standard")
    env.chmod(0o644)
    added = init_env(env)
    assert "DAGSTER_PG_PASSWORD" not in added and set(added) == set(SECRETS) - {"DAGSTER_PG_PASSWORD"}
    kept = values(env)
    assert kept["DAGSTER_PG_PASSWORD"] == "in-use" and kept["QUANTCRAFT_PROFILE"] == "standard"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert init_env(env) == [] and values(env) == kept


def test_every_secret_the_compose_files_send_to_init_is_made(tmp_path):
    """A name a compose file refuses to start without (``${VAR:?run quantcraft deploy init first}``)
    that init does not write would leave organisers with a stack that cannot start, or tempt a
    hand-typed password."""
    required = set()
    for path in COMPOSE_FILES:
        required |= set(re.findall(r"\$\{(\w+):\?run quantcraft deploy init first\}", path.read_text()))
    assert "DAGSTER_PG_PASSWORD" in required
    assert required <= set(SECRETS), required - set(SECRETS)


def test_the_command_line(tmp_path):
    env = tmp_path / ".env"
    cli = [sys.executable, "-m", "quantcraft_dagster.cli", "deploy", "init", "--env-file", str(env)]
    out = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert f"{len(SECRETS)} secret(s) generated" in out
    out = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert f"0 secret(s) generated, {len(SECRETS)} kept" in out
    assert not any(v in out for v in values(env).values())  # a secret is never printed

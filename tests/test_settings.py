"""The one settings object: typed values from the environment, one documented table, secrets that
never print and never reach a Dagster resource's shown config."""

from pathlib import Path

import dagster as dg
import pytest

from quantcraft_dagster import settings
from quantcraft_dagster.settings import Settings
from resources import BucketResource

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_lists_every_setting_as_the_module_documents_it():
    assert settings.markdown_table() in (ROOT / "docs" / "pipeline.md").read_text()


def test_values_are_typed_and_empty_means_unset(tmp_path):
    s = Settings.from_env(
        {
            "QUANTCRAFT_HOME": str(tmp_path),
            "QUANTCRAFT_UPLOADS_PER_WINDOW": "5",
            "QUANTCRAFT_UPLOAD_WINDOW_S": "",  # compose passes unset variables as empty strings
            "QUANTCRAFT_FAIR_QUEUE": "off",
            "QUANTCRAFT_JUDGE_CPUS": "2-3,6",
            "QUANTCRAFT_MAX_SEND_LAG_P99_US": "75",  # parsing only: no judging here
        }
    )
    assert s.home == tmp_path and s.bucket_root == tmp_path / "bucket"  # derived from the home
    assert s.upload_limits().per_window == 5 and s.upload_limits().window_s == 600.0
    assert s.fair_queue is False and s.judge_cpus == [2, 3, 6] and s.max_send_lag_p99_us == 75.0
    assert Settings.from_env({}).fair_queue is True and Settings.from_env({}).judge_cpus is None


def test_current_follows_the_environment_without_a_restart(monkeypatch):
    monkeypatch.setenv("QUANTCRAFT_MAX_PENDING_UPLOADS", "7")
    assert settings.current().max_pending_uploads == 7
    monkeypatch.setenv("QUANTCRAFT_MAX_PENDING_UPLOADS", "0")
    assert settings.current().upload_limits().max_pending == 0


def test_secrets_never_print():
    s = Settings.from_env({"AWS_SECRET_ACCESS_KEY": "s3-secret", "QUANTCRAFT_OFFICIAL_SECRET": "seeds"})
    assert s.s3_secret_key == "s3-secret"
    assert "s3-secret" not in repr(s) and "seeds" not in repr(s) and "profile='standard'" in repr(s)


def test_the_official_secret_is_made_once_when_unset(tmp_path):
    s = Settings.from_env({"QUANTCRAFT_HOME": str(tmp_path)})
    made = s.organisers_secret()
    assert len(made) == 64 and s.organisers_secret() == made
    assert (tmp_path / "official-secret").stat().st_mode & 0o777 == 0o600
    assert Settings.from_env({"QUANTCRAFT_OFFICIAL_SECRET": "given"}).organisers_secret() == "given"


def test_the_s3_resource_holds_variable_names_and_dagster_resolves_them(monkeypatch, s3_server):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3-secret-value")
    s = Settings.from_env({"QUANTCRAFT_BUCKET_BACKEND": "s3", "QUANTCRAFT_S3_ENDPOINT": s3_server})
    resource = BucketResource.from_settings(s)
    shown = resource.get_resource_definition().config_schema.default_value
    assert shown["secret_key"] == {"env": "AWS_SECRET_ACCESS_KEY"}
    assert "s3-secret-value" not in repr(shown)

    @dg.asset
    def written(bucket: BucketResource) -> None:
        assert bucket.secret_key == "s3-secret-value"  # resolved for the run, not before
        bucket.client().put_bytes("probe", b"ok")

    assert dg.materialize([written], resources={"bucket": resource}).success


def test_an_unknown_bucket_backend_is_refused():
    with pytest.raises(ValueError, match="unknown bucket backend"):
        BucketResource(backend="ftp").client()

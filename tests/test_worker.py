"""``quantcraft worker``: its help for organisers, its settings, and the Celery app it serves.
The worker at work (real Redis, Postgres, two hosts, a kill) is tests/scale/."""

from __future__ import annotations

import pytest

from quantcraft_dagster.cli import main
from quantcraft_dagster.worker import make_judging_app


def test_help_says_how_to_add_a_judge_host(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["worker", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for needed in ("To add a judge host", "deploy/dagster-celery.yaml", "QUANTCRAFT_CELERY_BROKER",
                   "DAGSTER_PG_PASSWORD", "max_concurrent_runs", "QUANTCRAFT_SLOTS_DIR"):  # fmt: skip
        assert needed in text


def test_a_worker_without_a_dagster_home_refuses_to_start(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(SystemExit, match="DAGSTER_HOME is not set"):
        main(["worker"])


def test_the_app_serves_dagster_celerys_tasks_on_the_judging_queue_without_prefetch(monkeypatch):
    monkeypatch.setenv("QUANTCRAFT_CELERY_BROKER", "redis://:pw@control:6379/0")
    monkeypatch.setenv("QUANTCRAFT_JUDGING_QUEUE", "judging-eu")
    app = make_judging_app()
    assert app.conf.broker_url == "redis://:pw@control:6379/0"
    assert app.conf.task_default_queue == "judging-eu"
    assert app.conf.worker_disable_prefetch and app.conf.worker_prefetch_multiplier == 1
    assert not app.conf.task_acks_late  # a dead worker's run is retried by Dagster, not redelivered


def test_the_worker_runs_the_task_the_launcher_sends():
    from dagster_celery.config import TASK_EXECUTE_JOB_NAME

    from quantcraft_dagster import worker

    assert TASK_EXECUTE_JOB_NAME in worker.app.tasks

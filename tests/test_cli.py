"""The command line as contestants use it: traces, expected reports, local judging."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from quantcraft_dagster.core.book import replay
from quantcraft_dagster.core.protocol import encode_order, encode_report
from quantcraft_dagster.core.trace import generate, get_spec, official

CLI = [sys.executable, "-m", "quantcraft_dagster.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    """The command as a contestant runs it: the judge's bounds as shipped."""
    return subprocess.run([*CLI, *args], capture_output=True, check=True)


def test_trace_is_the_wire_frames_and_stable(tmp_path):
    out = tmp_path / "a.jsonl"
    run("trace", "--profile", "quick", "--phase", "A", "--out", str(out))
    again = run("trace", "--profile", "quick", "--phase", "A").stdout
    assert out.read_bytes() == again
    orders = list(generate(get_spec("quick", "A")))
    assert again == b"".join(encode_order(o) + b"\n" for o in orders)


def test_organisers_reproduce_a_judgings_official_trace_from_its_id(tmp_path):
    env = {**os.environ, "QUANTCRAFT_OFFICIAL_SECRET": "organisers-only", "QUANTCRAFT_HOME": str(tmp_path)}

    def official_trace(*scope: str) -> bytes:
        return subprocess.run(
            [*CLI, "trace", "--profile", "quick", "--phase", "A", *scope],
            capture_output=True,
            check=True,
            env=env,
        ).stdout

    judging = official_trace("--submission", "alice-20250101T000000-ab12")
    spec = official(get_spec("quick", "A"), "organisers-only", "alice-20250101T000000-ab12")
    assert judging == b"".join(encode_order(o) + b"\n" for o in generate(spec))
    assert judging != official_trace("--submission", "alice-20250101T000500-cd34")
    assert judging != official_trace("--finals") != official_trace()


def test_expected_matches_the_reference_engine(tmp_path):
    trace_file = tmp_path / "b.jsonl"
    run("trace", "--profile", "quick", "--phase", "B", "--out", str(trace_file))
    lines = run("expected", str(trace_file)).stdout.splitlines()
    orders = list(generate(get_spec("quick", "B")))
    assert lines == [encode_report(r) for r in replay(orders)]
    first = orjson.loads(lines[0])
    assert set(first) == {"order_id", "status", "fills"}


def test_judge_json_verdict(engines):
    proc = run("judge", str(engines / "engine"), "--profile", "quick", "--json", "--repeat", "2")
    verdict = orjson.loads(proc.stdout)
    assert verdict["status"] == "finished"
    assert set(verdict["scores"]) == {"latency", "throughput", "correctness", "final"}
    assert verdict["scores"]["correctness"] == 100.0
    assert set(verdict["phases"]) == {"A", "B", "C"}
    figures = {"orders", "exact", "errors", "p50_us", "p90_us", "p99_us", "p999_us", "orders_per_s"}
    figures |= {"service_p99_us", "send_lag_p99_us", "cpu_us_per_order", "client_limited", "trials"}
    for name, phase in verdict["phases"].items():
        assert figures <= set(phase)
        assert len(phase["trials"]) == (1 if name == "A" else 3) and phase["invalid_trials"]["count"] >= 0
        assert figures - {"trials"} <= set(phase["trials"][0])
    assert verdict["phases"]["C"]["cpu_us_per_order"] > 0
    assert verdict["traces"] == "public" and set(verdict["trace_versions"]) == {"A", "B", "C"}
    for key, (lo, hi) in verdict["scores_range"].items():
        assert lo <= verdict["scores"][key] <= hi
    assert verdict["book_match"] is True and verdict["divergences"] == []
    assert verdict["repeat"]["runs"] == 2
    assert verdict["repeat"]["spread"]["scores"]["final"]["spread"] >= 0
    assert b"phase A" in proc.stderr  # progress while it runs


def test_judge_human_output_shows_ranges_and_trials(engines):
    """With the picows reference client, which the trivial engine outpaces: its phase B rate is a
    lower bound, shown with "≥" (the native client keeps up with it)."""
    args = ("judge", str(engines / "trivial"), "--profile", "quick", "--quiet", "--loadgen", "picows")
    out = run(*args).stdout.decode()
    assert "traces: public (quick profile)" in out and " ± " in out
    assert "phase B:" in out and "≥ " in out
    assert "3 trial(s)" in out


def test_judge_rejects_a_text_file(tmp_path):
    bad = Path(tmp_path, "engine.txt")
    bad.write_text("not an engine")
    verdict = orjson.loads(run("judge", str(bad), "--json").stdout)
    assert verdict["status"] == "rejected" and "ELF" in verdict["reason"]


def test_a_judge_failure_is_said_as_such_not_a_verdict_or_a_traceback(engines):
    """A send-lag bound of 1 ns that no trial meets: the judge gives up after its re-runs."""
    proc = subprocess.run(
        [*CLI, "judge", str(engines / "engine"), "--profile", "quick", "--json"],
        capture_output=True,
        env={**os.environ, "QUANTCRAFT_MAX_SEND_LAG_P99_US": "0.001"},
    )
    assert proc.returncode == 3 and proc.stdout == b""
    err = proc.stderr.decode()
    assert "judge failure, not a verdict on the engine: no valid trial of phase C" in err
    assert "send-lag p99" in err and "Traceback" not in err
    assert "QUANTCRAFT_" not in err  # never told to widen the bounds


def test_judging_a_missing_file_is_a_sentence(tmp_path):
    for path, said in ((tmp_path / "nope", "is not there"), (tmp_path, "is a directory")):
        proc = subprocess.run([*CLI, "judge", str(path)], capture_output=True, text=True)
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr


def test_up_names_the_command_that_builds_the_judge(tmp_path):
    env = {**os.environ, "QUANTCRAFT_CALIBRATION_ENGINES": str(tmp_path), "QUANTCRAFT_HOME": str(tmp_path)}
    proc = subprocess.run([*CLI, "up"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not built" in proc.stderr and "bash scripts/setup.sh" in proc.stderr

"""Official traces: an engine that replays the public answers scores nothing on them."""

from __future__ import annotations

import json
from dataclasses import replace

from quantcraft_dagster.core import trace
from quantcraft_dagster.core.bundle import answer_lines, assemble, trace_lines
from quantcraft_dagster.core.protocol import encode_report
from quantcraft_dagster.judge.judging import JudgeConfig, judge_binary, public_bundles

from .helpers import NOISY_HOST

QUICK = JudgeConfig(profile="quick", trials=1, validity=NOISY_HOST)


def official_bundles(profile: str, secret: str):
    bundles = {}
    for phase in trace.PHASES:
        spec = trace.official(trace.get_spec(profile, phase), secret)
        orders = trace_lines(spec)
        bundles[phase] = assemble(spec, orders, answer_lines(orders), "official")
    return bundles


def answers_header(path, bundles) -> None:
    """The public reports of every phase as a sorted C table, as a cheater would embed them."""
    rows = sorted((r.order_id, encode_report(r).decode()) for b in bundles.values() for r in b.expected)
    body = ",\n".join(f"{{{json.dumps(i)}, {json.dumps(r)}}}" for i, r in rows)
    table = f"static const char *const ANSWERS[][2] = {{\n{body}\n}};\n"
    path.write_text(table + f"static const size_t N_ANSWERS = {len(rows)};\n")


def test_official_seeds_keep_the_shape_and_change_every_order():
    public = trace.get_spec("standard", "B")
    official = trace.official(public, "s3cret")
    assert replace(official, seed=public.seed) == public and official.seed != public.seed
    assert trace.official(public, "s3cret") == official != trace.official(public, "other")


def test_an_answer_table_scores_100_on_public_traces_and_nothing_on_official_ones(tmp_path, build_variant):
    header = tmp_path / "answers.h"
    answers_header(header, public_bundles("quick"))
    cheat = build_variant("answer_table", ANSWERS_H=str(header))
    public = judge_binary(cheat, QUICK).verdict
    assert public.traces == "public" and public.scores.correctness == 100.0, public.reason
    official = judge_binary(cheat, QUICK, bundles=official_bundles("quick", "organisers-only")).verdict
    assert official.traces == "official"
    assert official.scores.correctness < 20.0, official.reason
    assert official.trace_versions != public.trace_versions

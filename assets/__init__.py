"""Dagster assets: traces and expected reports, per-submission judging, standings."""

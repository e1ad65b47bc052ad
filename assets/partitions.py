"""The dynamic partitions. ``submissions``: one per upload, added by the submission sensor; both
the judging's assets and the per-judging official traces are partitioned by it. ``judge_slots``:
one per judging slot of every judge host."""

import dagster as dg

submissions = dg.DynamicPartitionsDefinition(name="submissions")

# Keys are ``judge.slots.slot_key``s, added by a host when it prepares to judge (``quantcraft up``,
# compose's ``prepare``, ``quantcraft worker``): each slot's calibration is a partition of its own.
JUDGE_SLOTS = "judge_slots"
judge_slots = dg.DynamicPartitionsDefinition(name=JUDGE_SLOTS)

"""The ``submissions`` partitions: one per upload, added by the submission sensor. Its own module
because both the judging's assets and the per-judging official traces are partitioned by it."""

import dagster as dg

submissions = dg.DynamicPartitionsDefinition(name="submissions")

"""Pure core: protocol messages, traces, the reference book, checking, metrics and scoring.

Nothing here does I/O or knows about Dagster, so the CLI, the Dagster assets and the tests all
share exactly these rules.
"""

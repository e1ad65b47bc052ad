"""QuantCraft: judging platform for trading-engine hackathons.

Layers: ``core`` (pure rules), ``judge`` and ``storage`` (I/O adapters), and the Dagster wiring in
the top-level ``assets``/``resources``/``sensors`` packages.
"""

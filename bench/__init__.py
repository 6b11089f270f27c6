"""The weanalysis benchmark: synthetic data, ingest rates, portrait latency, a DuckDB baseline.

Run ``python -m bench --help``; the generator alone is ``python -m bench.generate --help``.
"""

"""The portrait as an Apache Spark job (SPEC.md section 8): same records, same answers.

- :mod:`.prepare` runs inside the executors: the project's own readers, validator and enrichment
  pipeline over whole input files (``mapInArrow``), so every record gets the verdict and values
  ``weanalysis ingest`` would give it;
- :mod:`.plan` is the Spark plan: dedup, one row per (user, day), then per end day one pass that
  gives every window ending that day, counted with GROUPING SETS; only the final lists reach the
  driver;
- :mod:`.catalogue` turns those counts into :class:`weanalysis.portrait.query.UserSet` lists;
- :mod:`.entry` is the script handed to ``spark-submit`` on a real cluster.

PySpark is an optional dependency (``pip install 'weanalysis[spark]'``): nothing here imports it
at module level except :mod:`.plan` and :mod:`.entry`.
"""

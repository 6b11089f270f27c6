"""Makes ``format3-store.tar.gz``: a data folder written by storage format 3 (commit 3eca929),
for the test that ``weanalysis rebuild`` migrates it, with the inputs it was ingested from.

    git archive 3eca929 src | tar -x -C OLD
    python tests/data/make_format3_store.py OLD/src OUT
    tar --sort=name --owner=0 --group=0 -czf tests/data/format3-store.tar.gz -C OUT data inputs
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])

import numpy as np  # noqa: E402

from weanalysis.ingest import Ingestor  # noqa: E402
from weanalysis.store import Store  # noqa: E402
from weanalysis.store.snapshot import FORMAT  # noqa: E402

assert FORMAT == 3, FORMAT
root = Path(sys.argv[2])
shutil.rmtree(root, ignore_errors=True)
(root / "inputs").mkdir(parents=True)
rng = np.random.default_rng(11)
rows = []
for d in range(6):
    for u in rng.choice(40, size=15, replace=False):
        r = {
            "appid": "wx1",
            "openid": f"user{u}",
            "time": f"2017-06-{1 + d:02d}T{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:00+08:00",
            "province": ["广东", "北京", "浙江", "四川"][rng.integers(0, 4)],
            "platform": ["ios", "android"][rng.integers(0, 2)],
            "brand": "iPhone",
            "model": ["iPhone 12 Pro<iPhone13,3>", "iPhone X"][rng.integers(0, 2)],
            "gender": int(rng.integers(0, 3)),
            "age": int(rng.integers(15, 60)),
        }
        if rng.random() < 0.5:
            r["event_id"] = f"ev-{d}-{u}-{rng.integers(1 << 30)}"
        rows.append(r)
profiles = [
    {
        "appid": "wx1",
        "openid": f"user{u}",
        "time": f"2017-06-0{1 + u % 6}T10:00:00+08:00",
        "gender": "女",
        "age": 30 + u,
    }
    for u in range(0, 40, 4)
]
for kind, recs in (("visit", rows), ("profile", profiles)):
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    (root / "inputs" / f"{kind}s.jsonl").write_text(text, encoding="utf-8")
store = Store(root / "data")
store.catalog.add_app("wx1", "secret-123")
for kind in ("visit", "profile"):
    ing = Ingestor(store, kind)
    ing.ingest_sources([(str(root / "inputs" / f"{kind}s.jsonl"), "jsonl")], chunk_rows=20)
    ing.close()
store.close()
(root / "data" / "writer.lock").unlink(missing_ok=True)

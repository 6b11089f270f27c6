"""Measures the writer's openid -> uid index against a Python dict (not part of the tests).

    .venv/bin/python scripts/measure_users.py --users 6550000 --lookups 1000000

Writes USERS random 28-character openids as user segments (SEGMENTS Arrow files, as the
writer writes them) in a temporary folder; then, each in a fresh process, builds the index
the writer builds when it opens the app and looks up LOOKUPS distinct openids (NEW_SHARE of
them unknown) the way ``Writer._lookup_uids`` does: with
:class:`weanalysis.store.users.UserIndex`, and with the dict of every openid the writer kept
before it. Prints seconds and the RSS (resident memory) the index added, its peak while it
was built, and bytes per user.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
WIDTH = 28

CHILD = """
import ctypes, sys, time
from pathlib import Path
import numpy as np, pyarrow as pa
from weanalysis.store import files
from weanalysis.store.users import UserIndex

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

method, folder = sys.argv[1], Path(sys.argv[2])
paths = sorted(folder.glob("openids-*.arrow"))
queries = files.read_arrow(folder / "queries.arrow").column("openid").combine_chunks()
before = rss("VmRSS:")
t = time.perf_counter()
if method == "index":
    index = UserIndex.of_segments(paths)
    size = len(index)
else:
    out = []
    for p in paths:
        out.extend(files.read_arrow(p).column("openid").to_pylist())
    uid_of = {o: i for i, o in enumerate(out) if o is not None}
    size = len(out)
    del out
built = time.perf_counter() - t
after, peak = rss("VmRSS:"), rss("VmHWM:")
# what the allocators keep of freed temporaries, given back
pa.default_memory_pool().release_unused()
ctypes.CDLL("libc.so.6").malloc_trim(0)
trimmed = rss("VmRSS:")
times = []
for _ in range(3):
    t = time.perf_counter()
    enc = queries.dictionary_encode()
    base = size
    if method == "index":
        codes = index.lookup(enc.dictionary)
        new = codes < 0
        codes[new] = base + np.arange(int(new.sum()))
        fresh = enc.dictionary.filter(pa.array(new))
    else:
        distinct = enc.dictionary.to_pylist()
        codes = np.empty(len(distinct), dtype=np.int64)
        fresh = []
        get = uid_of.get
        for i, o in enumerate(distinct):
            u = get(o)
            if u is None:
                u = base + len(fresh)
                fresh.append(o)
            codes[i] = u
    uid = codes[enc.indices.to_numpy(zero_copy_only=False)]
    times.append(time.perf_counter() - t)
print(f"{method}: build {built:.2f} s, lookup of {len(queries):,} distinct "
      f"{' / '.join(f'{x:.2f}' for x in times)} s ({len(fresh):,} new); "
      f"RSS +{(after - before) / 2**20:.0f} MiB ({(after - before) / size:.1f} B/user), "
      f"+{(trimmed - before) / 2**20:.0f} MiB ({(trimmed - before) / size:.1f} B/user) "
      f"once the allocators' free memory is released, "
      f"peak while building +{(peak - before) / 2**20:.0f} MiB"
      + (f"; arrays {index.nbytes() / size:.1f} B/user" if method == "index" else ""))
"""


def openids(rng: np.random.Generator, n: int) -> pa.Array:
    alphabet = np.frombuffer(ALPHABET, dtype=np.uint8)
    data = alphabet[rng.integers(0, len(alphabet), size=(n, WIDTH))].tobytes()
    offsets = np.arange(0, WIDTH * (n + 1), WIDTH, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--users", type=int, default=6_550_000)
    p.add_argument("--lookups", type=int, default=1_000_000, help="distinct openids looked up")
    p.add_argument("--new-share", type=float, default=0.1, help="share of them not stored")
    p.add_argument("--segments", type=int, default=25)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    from weanalysis.store import files

    rng = np.random.default_rng(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        users = openids(rng, a.users)
        bounds = np.linspace(0, a.users, a.segments + 1).astype(int)
        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            table = pa.table({"openid": users.slice(lo, hi - lo)})
            files.write_arrow(folder / f"openids-{i:04d}.arrow", table)
        new = int(a.lookups * a.new_share)
        known = users.take(rng.choice(a.users, a.lookups - new, replace=False))
        queries = pa.concat_arrays([known, openids(rng, new)])
        queries = queries.take(rng.permutation(len(queries)))
        files.write_arrow(folder / "queries.arrow", pa.table({"openid": queries}))
        del users, known, queries
        for method in ("dict", "index"):
            subprocess.run([sys.executable, "-c", CHILD, method, str(folder)], check=True)


if __name__ == "__main__":
    main()

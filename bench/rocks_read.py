"""RocksDB store reads: posts decoded per second from a partition database written with the
store's options, against the same database with index and filter blocks inside the block cache
(the earlier setting), in one process and one run.

    python -m bench.rocks_read [--posts 100000] [--entries 10] [--reads 20000]

A decode is what RocksStore does for a post it does not hold: one scan from the post's header key
"<site>/<post_id>" over its entries "<site>/<post_id>/<cid>", each value parsed. The database is
written, flushed and compacted first (the state of a worker's database after a while), with the
store's block cache and write buffer manager; the posts read are drawn at random, as a backlog of
many small posts touches them."""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import orjson
import rocksdict

from streams import rocks_store


def entry_value(cid: int) -> bytes:
    """An entry record about the size of the store's (~200 bytes)."""
    return orjson.dumps(
        {
            "k": "comment",
            "p": None,
            "a": f"author-{cid % 977}",
            "t": 1_700_000_000 + cid,
            "st": "approved",
            "d": 0,
            "u": f"https://example.org/?p={cid}",
            "x": "x" * 80,
        }
    )


def build(path: Path, posts: int, entries: int, index_in_cache: bool) -> rocksdict.Rdict:
    db = rocksdict.Rdict(str(path), rocks_store._options(index_in_cache=index_in_cache))
    cid = 0
    for post in range(posts):
        batch = rocksdict.WriteBatch(raw_mode=True)
        key = f"site/{post}"
        batch.put(key.encode(), orjson.dumps({"v": 1, "wm": 0, "clk": 0, "pt": None}))
        for _ in range(entries):
            cid += 1
            batch.put(f"{key}/{cid}".encode(), entry_value(cid))
        db.write(batch)
    db.flush()
    db.compact_range(None, None)
    return db


def decode_rate(db: rocksdict.Rdict, sample: list[str]) -> tuple[float, int]:
    read = rocksdict.ReadOptions()
    values = 0
    began = time.perf_counter()
    for post_key in sample:
        read.set_iterate_upper_bound(f"{post_key}0".encode())
        for _, value in db.items(from_key=post_key.encode(), read_opt=read):
            orjson.loads(value)
            values += 1
    return len(sample) / (time.perf_counter() - began), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=10, help="entries per post")
    parser.add_argument("--reads", type=int, default=20_000, help="random posts decoded")
    args = parser.parse_args()
    rng = random.Random(1)
    sample = [f"site/{rng.randrange(args.posts)}" for _ in range(args.reads)]
    rates = {}
    with tempfile.TemporaryDirectory(prefix="blogpulse-rocks-read-") as tmp:
        for label, index_in_cache in (("index in cache", True), ("store's options", False)):
            db = build(
                Path(tmp) / label.replace(" ", "-"), args.posts, args.entries, index_in_cache
            )
            decode_rate(db, sample[: args.reads // 10])  # warm the cache as a running worker has
            rate, values = decode_rate(db, sample)
            assert values == args.reads * (args.entries + 1), values
            rates[label] = rate
            db.close()
            print(f"{label:16} {rate:>10,.0f} posts decoded/s")
    ratio = rates["store's options"] / rates["index in cache"]
    print(f"{args.posts:,} posts x {args.entries} entries: store / index in cache {ratio:.1f}x")


if __name__ == "__main__":
    main()

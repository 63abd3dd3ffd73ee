"""Build a synthvid dataset folder.

    python -m synthvid.build --out DIR --train N --val N --test N --test-unseen N --seed S [--workers K]
        [--withhold-held-out-colors]

Writes DIR/videos/{split}/{id}.mp4, DIR/{train,val,test}.jsonl and DIR/meta.json (see `synthvid.dataset`).
"""

import argparse
import json
import time

from .dataset import HELD_OUT_PAIRS, build_dataset


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m synthvid.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--train", type=int, default=0, help="training videos")
    parser.add_argument("--val", type=int, default=0, help="validation videos")
    parser.add_argument("--test", type=int, default=0, help="test videos with seen colour-shape pairs only")
    parser.add_argument("--test-unseen", type=int, default=0,
                        help=f"extra test videos each showing a held-out pair {HELD_OUT_PAIRS}")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (>= 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--withhold-held-out-colors", action="store_true",
                        help="training colour questions never offer a shape's held-out colour as a wrong option, so "
                             "no training text pairs them (validation and test unchanged)")
    args = parser.parse_args(argv)
    for name in ("train", "val", "test", "test_unseen"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


def main(argv=None) -> dict:
    """Build the dataset described by the command line; returns the meta dict."""
    args = parse_args(argv)
    started = time.perf_counter()
    counts = {"train": args.train, "val": args.val, "test": args.test, "test_unseen": args.test_unseen}
    meta = build_dataset(args.out, counts, args.seed, workers=args.workers,
                         withhold_held_out_colors=args.withhold_held_out_colors)
    elapsed = time.perf_counter() - started
    print(json.dumps({"out": str(args.out), "videos": sum(counts.values()), "seconds": round(elapsed, 2),
                      "questions": meta["questions_per_split"]}))
    return meta


if __name__ == "__main__":
    main()

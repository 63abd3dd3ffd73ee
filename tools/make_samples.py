"""Pick the sample videos shipped in examples/ from a synthvid test split, by content only (never by results).

    python -m tools.make_samples --data data/synthvid

Selection rule, fixed before any model was evaluated: among the test videos with seen compositions, in id
order, the first empty scene, the first static scene with at least two objects, and the first busy scene with
at least 10 ground-truth events. Copies their mp4s to examples/videos/ and writes examples/samples.json with
their multiple-choice questions and ground truth.
"""

import argparse
import json
import os
import shutil
from pathlib import Path

from synthvid import format_answer
from tools.remote_code import REPO_ROOT
from train.data import multiple_choice_prompt, read_split

BUSY_MIN_EVENTS = 10
STATIC_MIN_OBJECTS = 2
RULES = {  # (number of objects in the scene, ground-truth events per clip) -> selected?
    "empty": lambda objects, counts: objects == 0,
    "static": lambda objects, counts: objects >= STATIC_MIN_OBJECTS and sum(counts) == 0,
    "busy": lambda objects, counts: sum(counts) >= BUSY_MIN_EVENTS,
}


def select(records: list[dict]) -> dict[str, dict]:
    """First seen-composition record (by id) satisfying each rule. Raises `ValueError` if one has none."""
    chosen = {}
    for name, rule in RULES.items():
        match = next((r for r in sorted(records, key=lambda r: r["id"])
                      if not r.get("unseen") and rule(len(r["spec"]["objects"]), r["clip_event_counts"])), None)
        if match is None:
            raise ValueError(f"No test video satisfies the {name!r} sample rule.")
        chosen[name] = match
    return chosen


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "examples")
    args = parser.parse_args(argv)
    samples = []
    (args.output / "videos").mkdir(parents=True, exist_ok=True)
    for name, record in select(read_split(args.data, "test")).items():
        video = Path("videos") / f"{name}.mp4"
        shutil.copyfile(args.data / record["video"], args.output / video)
        samples.append({
            "name": name, "video": str(video), "source_id": record["id"],
            "clip_captions": record["clip_captions"], "clip_event_counts": record["clip_event_counts"],
            "questions": [{"task": q["task"], "prompt": multiple_choice_prompt(q), "answer": format_answer(q)}
                          for q in record["questions"]],
        })
    tmp = args.output / "samples.json.tmp"
    tmp.write_text(json.dumps(samples, indent=2) + "\n")
    os.replace(tmp, args.output / "samples.json")
    print(f"wrote {len(samples)} samples to {args.output}")


if __name__ == "__main__":
    main()

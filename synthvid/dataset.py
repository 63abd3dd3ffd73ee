"""Dataset splits of synthvid videos: specs, mp4s, captions and questions, written atomically and deterministically.

Splits: train, val and test hold "seen" scenes, which never show a held-out colour-shape pair (`HELD_OUT_PAIRS`,
not even after a colour change, and their names are not used as existence distractors either); the test split
also holds the "unseen" scenes (`"unseen": true`), each showing at least one held-out pair. Every video has its
own generator seeded with `(seed, group code, index)` (`GROUP_CODES`), so the splits never share a seed and any
record can be rebuilt alone.

Layout of the output folder `DIR`:

    DIR/videos/{split}/{id}.mp4
    DIR/{split}.jsonl   one record per video: id, split, video (relative to DIR), unseen, spec, clip_captions,
                        video_caption, clip_event_counts, questions
    DIR/meta.json       counts, seed, held-out pairs, per-task question histogram, ...
"""

import json
import multiprocessing
import re
from collections import Counter
from pathlib import Path

import numpy as np

from .captions import caption_event_count, clip_captions, video_caption
from .files import write_text_atomic
from .questions import TASKS, generate_questions
from .render import write_mp4
from .sampler import DENSITIES, DENSITY_WEIGHTS, all_pairs, sample_scene, scene_pairs
from .spec import SHAPES, validate_spec
from .truth import FRAMES_PER_CLIP, clip_event_counts, compute_truth


HELD_OUT_PAIRS = (("red", "triangle"), ("blue", "circle"), ("yellow", "square"))
SEEN_PAIRS = tuple(p for p in all_pairs() if p not in HELD_OUT_PAIRS)
# Generation groups: the test split is made of the "test" (seen) and "test_unseen" groups.
GROUPS = ("train", "val", "test", "test_unseen")
GROUP_CODES = {"train": 0, "val": 1, "test": 2, "test_unseen": 3}
SPLIT_OF_GROUP = {"train": "train", "val": "val", "test": "test", "test_unseen": "test"}
SPLITS = ("train", "val", "test")
NON_EMPTY_DENSITIES = tuple(d for d in DENSITIES if d != "empty")
FORMAT_VERSION = 1
IMAP_CHUNKSIZE = 8


def video_id(group: str, index: int) -> str:
    return f"{group}_{index:06d}"


def scene_generators(seed: int, group: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent (scene, questions) generators of one video, from `(seed, group code, index)`."""
    sequence = np.random.SeedSequence([seed, GROUP_CODES[group], index])
    scene_seq, question_seq = sequence.spawn(2)
    return np.random.default_rng(scene_seq), np.random.default_rng(question_seq)


def make_spec(group: str, seed: int, index: int) -> dict:
    """The scene spec of video `index` of a generation group (see `GROUPS`).

    Raises:
        ValueError: for an unknown group.
    """
    if group not in GROUP_CODES:
        raise ValueError(f"group: must be one of {'/'.join(GROUPS)}, got {group!r}")
    rng, _ = scene_generators(seed, group, index)
    if group != "test_unseen":
        return sample_scene(rng, allowed_pairs=SEEN_PAIRS)
    weights = np.array([DENSITY_WEIGHTS[DENSITIES.index(d)] for d in NON_EMPTY_DENSITIES])
    density = NON_EMPTY_DENSITIES[int(rng.choice(len(weights), p=weights / weights.sum()))]
    required = HELD_OUT_PAIRS[int(rng.integers(len(HELD_OUT_PAIRS)))]
    return sample_scene(rng, density=density, required_pair=required)


def make_record(group: str, seed: int, index: int, out_dir=None, withhold_held_out_colors: bool = False) -> dict:
    """The JSONL record of one video; writes its mp4 under `out_dir` when given. With `withhold_held_out_colors`, a
    training video's colour question never offers a shape's held-out colour (`HELD_OUT_PAIRS`) as a wrong option, so
    no training text pairs a held-out colour with its shape at all (the other groups are unchanged, so that
    validation and test results stay comparable across builds).

    Raises:
        RuntimeError: if a caption's event sentences disagree with the ground-truth event counts (a bug).
    """
    spec = make_spec(group, seed, index)
    scene = validate_spec(spec)
    truth = compute_truth(scene, FRAMES_PER_CLIP)
    captions = clip_captions(truth)
    counts = clip_event_counts(truth)
    stated = [caption_event_count(caption) for caption in captions]
    if stated != counts:
        raise RuntimeError(f"{video_id(group, index)}: captions state {stated} events, ground truth {counts}")
    unseen = group == "test_unseen"
    excluded = () if unseen else tuple(f"{c} {s}" for c, s in HELD_OUT_PAIRS)
    withheld = excluded if withhold_held_out_colors and group == "train" else ()
    _, question_rng = scene_generators(seed, group, index)
    split = SPLIT_OF_GROUP[group]
    identifier = video_id(group, index)
    relative = f"videos/{split}/{identifier}.mp4"
    if out_dir is not None:
        write_mp4(scene, Path(out_dir) / relative)
    return {
        "id": identifier,
        "split": split,
        "video": relative,
        "unseen": unseen,
        "spec": spec,
        "clip_captions": captions,
        "video_caption": video_caption(captions),
        "clip_event_counts": counts,
        "questions": generate_questions(truth, question_rng, excluded_names=excluded,
                                        withheld_color_names=withheld),
    }


def _make_record_job(job: tuple) -> dict:
    return make_record(*job)


def _records(jobs: list[tuple], workers: int) -> list[dict]:
    if workers <= 1 or len(jobs) <= 1:
        return [_make_record_job(job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(pool.imap(_make_record_job, jobs, chunksize=IMAP_CHUNKSIZE))


def text_only_records(seed: int, start: int, count: int, workers: int = 1,
                      withhold_held_out_colors: bool = False) -> list[dict]:
    """Records of the training scenes `start .. start + count - 1` of dataset `seed` without their videos: captions
    and questions only (`video` is None), ~4 ms per scene instead of rendering and encoding an mp4. They never show a
    held-out pair; with `start` >= the built training count they are new scenes (text for the LLM's text stage).
    `withhold_held_out_colors` as in `make_record` (the build's, `meta.json`).

    Raises:
        ValueError: for a negative `seed`, `start` or `count`, or `workers < 1`.
    """
    for name, value in (("seed", seed), ("start", start), ("count", count)):
        if value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    jobs = [("train", seed, index, None, withhold_held_out_colors) for index in range(start, start + count)]
    return [{**record, "video": None} for record in _records(jobs, workers)]


def build_dataset(out_dir, counts: dict[str, int], seed: int, workers: int = 1,
                  withhold_held_out_colors: bool = False) -> dict:
    """Generate every split into `out_dir` and return the meta dict (also written to `out_dir/meta.json`).

    Args:
        out_dir: output folder (created).
        counts: videos per generation group, keys among `GROUPS` (missing = 0).
        seed: the dataset seed.
        workers: processes rendering and encoding videos (1 = in this process).
        withhold_held_out_colors: training colour questions never offer a held-out colour (`make_record`).

    Raises:
        ValueError: for an unknown group, a negative count or `workers < 1`.
    """
    out_dir = Path(out_dir)
    for group, count in counts.items():
        if group not in GROUP_CODES:
            raise ValueError(f"counts: unknown group {group!r} (known: {', '.join(GROUPS)})")
        if count < 0:
            raise ValueError(f"counts.{group}: must be >= 0, got {count}")
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    jobs = [(group, seed, index, str(out_dir), withhold_held_out_colors)
            for group in GROUPS for index in range(counts.get(group, 0))]
    records = _records(jobs, workers)
    by_split = {split: [r for r in records if r["split"] == split] for split in SPLITS}
    for split, split_records in by_split.items():
        lines = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in split_records)
        write_text_atomic(out_dir / f"{split}.jsonl", lines)
    meta = build_meta(records, counts, seed) | {"withhold_held_out_colors": withhold_held_out_colors}
    write_text_atomic(out_dir / "meta.json", json.dumps(meta, indent=2) + "\n")
    return meta


def build_meta(records: list[dict], counts: dict[str, int], seed: int) -> dict:
    """Summary of a build: counts, seed, held-out pairs, question and event histograms."""
    task_histogram = {split: dict.fromkeys(TASKS, 0) for split in SPLITS}
    event_histogram = Counter()
    for record in records:
        for question in record["questions"]:
            task_histogram[record["split"]][question["task"]] += 1
        event_histogram.update(record["clip_event_counts"])
    return {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "counts": {group: counts.get(group, 0) for group in GROUPS},
        "records_per_split": {split: sum(r["split"] == split for r in records) for split in SPLITS},
        "held_out_pairs": [list(pair) for pair in HELD_OUT_PAIRS],
        "frames_per_clip": FRAMES_PER_CLIP,
        "task_histogram": task_histogram,
        "questions_per_split": {split: sum(h.values()) for split, h in task_histogram.items()},
        "clip_event_count_histogram": {str(k): event_histogram[k] for k in sorted(event_histogram)},
    }


HELD_OUT_NAME_PATTERN = re.compile(r"\b(?:" + "|".join(f"{c} {s}" for c, s in HELD_OUT_PAIRS) + r")\b")
SHAPE_PATTERN = re.compile(r"\b(" + "|".join(SHAPES) + r")\b")


def answer_names_held_out_pair(question: dict) -> bool:
    """Whether a question's right answer names a held-out colour-shape pair: a colour question's answer with the
    shape it asks about (`what color is the square ...?` -> `yellow`), any other answer by the pair's name
    (`yellow square`, `the yellow square moves`). Only unseen test videos have such answers; they are the questions an
    LLM answers right only by reading a composition it never saw (`eval.evaluate` reports them apart)."""
    answer = question["options"][question["answer"]]
    if question["task"] == "color":
        shape = SHAPE_PATTERN.search(question["question"])
        return shape is not None and (answer, shape.group(1)) in HELD_OUT_PAIRS
    return HELD_OUT_NAME_PATTERN.search(answer) is not None


def has_held_out_pair(spec: dict) -> bool:
    """Whether a scene shows at least one held-out pair."""
    return bool(scene_pairs(spec) & set(HELD_OUT_PAIRS))

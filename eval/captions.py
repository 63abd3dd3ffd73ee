"""The expert alone (no LLM): how well a checkpoint captions the clips of a synthvid split.

    python -m eval.captions --model . --data data/synthvid --split val --max-videos 64

A fast diagnostic of training stage 2: share of clip captions identical to the ground truth, sentence-level
precision and recall, overall and per sentence kind (the object list counts as one sentence; `sentence_scores`),
and the Spearman correlation between a clip's ground-truth event count and its caption length in tokens (the
soft-token budget), and per event kind whether the expert saw it at all (`event_kind_scores`). Prints and
returns JSON.
"""

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import torch
from scipy.stats import spearmanr
from transformers import AutoModel, AutoProcessor

from synthvid.captions import sentence_kind, split_sentences
from train.data import read_split

CAPTION_BATCH_VIDEOS = 16


def spearman(x: list, y: list) -> tuple[float, float]:
    """Spearman's `(rho, p_value)` of two equally long sequences; both NaN when either side is constant (rho is
    undefined there, and scipy would warn)."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan"), float("nan")
    result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def caption_quality(model, processor, data_dir, split: str, max_videos: int | None = None) -> dict:
    records = read_split(data_dir, split)[:max_videos]
    tokenizer = model.get_expert_tokenizer(processor.tokenizer)  # captions are expert token ids
    predicted_ids = []
    for start in range(0, len(records), CAPTION_BATCH_VIDEOS):
        batch = records[start : start + CAPTION_BATCH_VIDEOS]
        videos = [processor.load_video(str(data_dir / r["video"])) for r in batch]
        pixels = torch.cat([v[0] for v in videos]).to(model.dtype)
        predicted_ids += model.caption_clips(pixels, [v[1] for v in videos], [3] * len(batch))
    predicted = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in predicted_ids]
    truth = [c for r in records for c in r["clip_captions"]]
    events = [e for r in records for e in r["clip_event_counts"]]
    scores = sentence_scores(predicted, truth)
    rho, _ = spearman(events, [len(ids) for ids in predicted_ids])
    return {
        "videos": len(records),
        "clips": len(truth),
        "exact_clip_captions": sum(g == t for g, t in zip(predicted, truth)) / len(truth),
        "sentence_precision": scores["all"]["precision"] or 0.0,  # 0 when the expert wrote no sentence
        "sentence_recall": scores["all"]["recall"] or 0.0,
        "sentence_scores": scores,
        "event_kind_scores": event_kind_scores(predicted, truth),
        "spearman_events_vs_tokens": rho,
    }


def _precision_recall(counts: dict) -> dict:
    """`{kind: {"hits", "generated", "truth"}}` counts -> per kind `precision`, `recall` (None without sentences to
    count) and the sentence counts, kinds sorted."""
    return {kind: {"precision": c["hits"] / c["generated"] if c["generated"] else None,
                   "recall": c["hits"] / c["truth"] if c["truth"] else None,
                   "generated_sentences": c["generated"], "truth_sentences": c["truth"]}
            for kind, c in sorted(counts.items())}


def sentence_scores(predicted: list[str], truth: list[str]) -> dict:
    """Sentence-level scores of clip captions against the ground truth (pairs in order), overall ("all") and per
    sentence kind (`synthvid.captions.sentence_kind`: "objects", "empty", "move", "grow", ...): `precision`, the
    share of generated sentences the true caption of the clip contains word for word; `recall`, the share of
    true sentences the generated caption contains (None without sentences to count); and the sentence counts.
    Shows which facts the expert reads off the pixels, where the exact-caption rate only says that some sentence
    is wrong."""
    counts = defaultdict(lambda: {"hits": 0, "generated": 0, "truth": 0})
    counts["all"]  # always reported, even without sentences
    for guess, answer in zip(predicted, truth):
        guess_set, answer_set = set(split_sentences(guess)), set(split_sentences(answer))
        for sentence in guess_set:
            for kind in ("all", sentence_kind(sentence)):
                counts[kind]["generated"] += 1
                counts[kind]["hits"] += sentence in answer_set
        for sentence in answer_set:
            for kind in ("all", sentence_kind(sentence)):
                counts[kind]["truth"] += 1
    return _precision_recall(counts)


def event_kind_scores(predicted: list[str], truth: list[str]) -> dict:
    """Per sentence kind, whether the expert saw that *kind* of event in the clip, whoever did it: a clip's
    generated and true captions are compared as multisets of sentence kinds (`synthvid.captions.sentence_kind`), so
    "the blue square grows." counts as a right "grow" where the truth says "the red circle grows.". `precision` is
    the share of generated sentences of a kind matched by one of that kind in the true caption, `recall` the share
    of true ones matched (None without sentences to count). Separates seeing an event from naming its object,
    which `sentence_scores` (word-for-word sentences) lumps together."""
    counts = defaultdict(lambda: {"hits": 0, "generated": 0, "truth": 0})
    for guess, answer in zip(predicted, truth):
        guess_kinds = Counter(sentence_kind(s) for s in split_sentences(guess))
        answer_kinds = Counter(sentence_kind(s) for s in split_sentences(answer))
        for kind in guess_kinds | answer_kinds:
            counts[kind]["hits"] += min(guess_kinds[kind], answer_kinds[kind])
            counts[kind]["generated"] += guess_kinds[kind]
            counts[kind]["truth"] += answer_kinds[kind]
    return _precision_recall(counts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-videos", type=int, default=None)
    args = parser.parse_args(argv)
    model = AutoModel.from_pretrained(args.model, dtype=torch.float32, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    print(json.dumps(caption_quality(model, processor, args.data, args.split, args.max_videos), indent=2))


if __name__ == "__main__":
    main()

"""The expert alone (no LLM): how well a checkpoint captions the clips of a synthvid split.

    python -m eval.captions --model . --data data/synthvid --split val --max-videos 64

A fast diagnostic of training stage 2: share of clip captions identical to the ground truth, sentence-level
precision and recall (the object list counts as one sentence), and the Spearman correlation between a clip's
ground-truth event count and its caption length in tokens (the soft-token budget). Prints and returns JSON.
"""

import argparse
import json
from pathlib import Path

import torch
from scipy.stats import spearmanr
from transformers import AutoModel, AutoProcessor

from synthvid.captions import split_sentences
from train.data import read_split

CAPTION_BATCH_VIDEOS = 16


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
    hits = stated = expected = 0
    for guess, answer in zip(predicted, truth):
        guess_set, answer_set = set(split_sentences(guess)), set(split_sentences(answer))
        hits, stated, expected = hits + len(guess_set & answer_set), stated + len(guess_set), expected + len(answer_set)
    rho = spearmanr(events, [len(ids) for ids in predicted_ids]).statistic
    return {
        "videos": len(records),
        "clips": len(truth),
        "exact_clip_captions": sum(g == t for g, t in zip(predicted, truth)) / len(truth),
        "sentence_precision": hits / max(stated, 1),
        "sentence_recall": hits / max(expected, 1),
        "spearman_events_vs_tokens": float(rho),
    }


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

"""The expert's teacher-forced cross-entropy on chosen caption words: what it has learned of them, per split.

For each clip caption (ground truth, `train.data.clip_caption_ids`) that holds one of the words, the expert's caption
loss is taken with `caption_weights` that keep only those words' tokens (`expert_caption_loss`; the EOS keeps a
negligible weight), so the result is their mean cross-entropy in nats given the clip and the caption before them. A
diagnostic (train/RUNS.md, run v33): for the direction after "moves", ln 4 = 1.386 is a uniform guess among the four.

    python -m eval.word_loss --model runs/v33/stage2 --data data/synthvid --split val --words left,right,up,down
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoProcessor, AutoTokenizer

from synthvid.files import write_text_atomic
from train.data import clip_caption_ids, read_split
from train.run import caption_token_weights, comma_separated
from train.stages import set_threads

WORD_WEIGHT = 1e6  # against the EOS's fixed weight 1: the loss is the words' own cross-entropy to 6 digits


def word_loss(model, tokenizer, processor, data: Path, records: list[dict], words: tuple[str, ...],
              single: bool = False) -> dict:
    """Mean cross-entropy (nats) of the expert on the tokens of `words` in `records`' clip captions.

    `single`: only clips whose caption holds exactly one of those tokens (e.g. a single move sentence).

    Raises:
        ValueError: for a word that is not one token (`train.run.caption_token_weights`), or no clip with one.
    """
    tokens = set(caption_token_weights(tokenizer, dict.fromkeys(words, 1.0)))
    total, count = 0.0, 0
    for record in records:
        captions = clip_caption_ids(tokenizer, record)
        kept = [sum(t in tokens for t in ids) == 1 if single else any(t in tokens for t in ids) for ids in captions]
        if not any(kept):
            continue
        weights = [[WORD_WEIGHT if keep and t in tokens else 0.0 for t in ids] for ids, keep in zip(captions, kept)]
        pixels, patches = processor.load_video(str(data / record["video"]))
        with torch.no_grad():
            loss = model.expert_caption_loss(pixels.to(model.dtype), captions, [patches], 3, caption_weights=weights)
        scored = sum(t in tokens for ids, keep in zip(captions, kept) if keep for t in ids)
        total, count = total + loss.item() * scored, count + scored
    if not count:
        raise ValueError(f"No clip caption of these videos holds {words}{' exactly once' if single else ''}.")
    return {"cross_entropy": total / count, "tokens": count, "uniform": math.log(len(tokens))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--words", type=comma_separated, required=True, metavar="WORD[,WORD...]")
    parser.add_argument("--max-videos", type=int, default=150)
    parser.add_argument("--single", action="store_true", help="only clips whose caption holds one of the words once")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the result")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    started = time.perf_counter()
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    records = read_split(args.data, args.split)[: args.max_videos]
    result = word_loss(model, tokenizer, processor, args.data, records, args.words, args.single)
    result.update({"model": str(args.model), "split": args.split, "words": list(args.words), "videos": len(records),
                   "single": args.single, "wall_seconds": time.perf_counter() - started})
    print(json.dumps(result, indent=2))
    if args.output:
        write_text_atomic(args.output, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Caption-reading accuracy: does the LLM answer the questions when the ground-truth clip captions are given as text?

    python -m eval.text_qa --model runs/v5/stage_text --data data/synthvid --split val

Each multiple-choice question of the split is asked alone, as at evaluation, with the video's ground-truth caption
ids in place of its `<video>` placeholder (`train.data.splice_captions`, the format of the text stage's caption QA).
The LLM alone answers greedily and is scored like `eval.evaluate` scores the whole model (`generated_letter`: the
MVBench letter rule; `generated_named`: the answer's text names the right option). No media and no expert are
involved, so it runs on any stage's checkpoint and separates the LLM's reading from the expert and the soft tokens.
Writes `OUTPUT/text_qa_<split>.json` when `--output` is given.
"""

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from eval.evaluate import report_result
from train.data import clip_caption_ids, multiple_choice_prompt, read_split, splice_captions
from train.text_qa_probe import generation_accuracy


def caption_prompts(records, tokenizer, system_message: str, video_token_id: int,
                    limit: int | None = None) -> list[tuple[list[int], dict, str]]:
    """`(prompt ids, question, task)` of the first `limit` multiple-choice questions of `records` (all if None),
    each a one-turn chat whose `<video>` is replaced by the clip captions' ids (`splice_captions`)."""
    prompts = []
    for record in records:
        captions = clip_caption_ids(tokenizer, record)
        for question in record["questions"]:
            messages = [{"role": "system", "content": system_message},
                        {"role": "user", "content": f"<video>\n{multiple_choice_prompt(question)}"}]
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            prompts.append((splice_captions(ids, ids, video_token_id, captions)[0], question, question["task"]))
    return prompts[:limit]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a LangDC checkpoint folder (any stage)")
    parser.add_argument("--data", type=Path, required=True, help="synthvid folder (python -m synthvid.build)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=None, help="questions (in split order); all by default")
    parser.add_argument("--output", type=Path, default=None, help="folder for text_qa_<split>.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    model = AutoModel.from_pretrained(args.model, dtype=torch.float32, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    prompts = caption_prompts(read_split(args.data, args.split), tokenizer, model.config.system_message,
                              model.config.video_token_id, args.limit)
    if not prompts:
        raise ValueError(f"{args.data} {args.split}: no questions to ask.")
    result = generation_accuracy(model.language_model, tokenizer, prompts)
    result.update(questions=len(prompts), model=str(args.model), split=args.split,
                  wall_seconds=time.perf_counter() - started)
    return report_result(result, args.output, f"text_qa_{args.split}.json")


if __name__ == "__main__":
    main()

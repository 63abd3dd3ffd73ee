"""Option-lookup accuracy: does the LLM give an option's letter when the option's text is named?

    python -m eval.lookup --model runs/v4/stage_text --data data/synthvid --split val

This isolates the second step of a multiple-choice answer, binding the chosen text to its letter (multiple-choice
symbol binding, Robinson et al., ICLR 2023): each prompt is a multiple-choice question of the split with its
options in a random order and `Which option says "X"?` (`train.data.lookup_turn`, the text stage's chats), and
the score is how often the most likely of the four letters, after the answer's text `X (`, is X's letter. No
media is involved, so it runs on any stage's checkpoint. Writes `OUTPUT/lookup_<split>.json` when `--output` is
given.
"""

import argparse
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import AutoModel, AutoTokenizer

from eval.evaluate import report_result
from synthvid.questions import LETTERS
from train.data import chat_conversation, lookup_turn, read_split


class LookupPrompt(NamedTuple):
    """One lookup: `ids` is the whole chat (prompt and answer `X (L)<|im_end|>`), `letter_position` indexes the
    letter token L in `ids`, `letter` is L's index; `task` is the question's task and `prefix` says whether X is a
    word-for-word prefix of another option (`grows` beside `grows then shrinks`), the ambiguous case for a reader
    that stops at the first match."""

    ids: list[int]
    letter_position: int
    letter: int
    task: str
    prefix: bool


def is_prefix_option(option: str, options: list[str]) -> bool:
    """Whether `option` begins another of `options` word for word (`grows` in `grows then shrinks`)."""
    return any(other != option and other.startswith(option + " ") for other in options)


def lookup_prompts(records, tokenizer, system_message: str, limit: int, seed: int = 0) -> list[LookupPrompt]:
    """Up to `limit` `LookupPrompt`s drawn from the records' questions, in split order.

    Raises:
        ValueError: if the tokenizer does not keep an option letter as one token after `(`.
    """
    rng = random.Random(seed)
    letter_ids = [tokenizer.convert_tokens_to_ids(letter) for letter in LETTERS]
    prompts = []
    for question in [q for record in records for q in record["questions"]][:limit]:
        user, answer = lookup_turn(question, rng)
        ids, _ = chat_conversation(tokenizer, system_message, [(user, answer)])
        letter = LETTERS.index(answer[-2])  # the answer ends with "(L)"
        position = len(ids) - 3  # the chat ends with the answer's " (", L, ")", <|im_end|>
        if ids[position] != letter_ids[letter]:
            raise ValueError(f"The tokenizer does not keep the option letter {LETTERS[letter]!r} as one token in "
                             f"{answer!r}.")
        option = answer.rsplit(" (", 1)[0]  # X of `X (L)`
        prompts.append(LookupPrompt(ids, position, letter, question["task"],
                                    is_prefix_option(option, question["options"])))
    return prompts


@torch.no_grad()
def letter_logits(model, tokenizer, prompts, batch_size: int = 64) -> torch.Tensor:
    """`[N, 4]` logits of the four option letters where each prompt of `lookup_prompts` predicts its letter.

    `model` maps `input_ids [B, L]` and `attention_mask [B, L]` to `logits [B, L, V]` (a LangDC model or its
    `language_model`). Batches are left-padded, as LangDC's forward re-pads its spliced batch, and positions are
    counted from the end, so the result does not depend on `batch_size`.
    """
    letter_ids = torch.tensor([tokenizer.convert_tokens_to_ids(letter) for letter in LETTERS])
    rows = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [p.ids for p in chunk]}, padding_side="left", return_tensors="pt")
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        for row, prompt in enumerate(chunk):
            position = logits.shape[1] - (len(prompt.ids) - prompt.letter_position) - 1
            rows.append(logits[row, position, letter_ids].float())
    return torch.stack(rows)


def lookup_accuracy(model, tokenizer, records, system_message: str, limit: int = 256, seed: int = 0,
                    batch_size: int = 64) -> dict:
    """`{"accuracy", "lookups", "per_task", "prefix_options", "other_options"}`: the share of lookups whose most
    likely letter (of the four) is the right one (`letter_logits` on `lookup_prompts`), overall, per task, and for
    options that begin another option word for word against the rest (each `{"accuracy", "lookups"}`).

    Raises:
        ValueError: if there are no questions, or as `lookup_prompts`.
    """
    prompts = lookup_prompts(records, tokenizer, system_message, limit, seed)
    if not prompts:
        raise ValueError("No multiple-choice questions to draw lookups from.")
    predicted = letter_logits(model, tokenizer, prompts, batch_size).argmax(-1).tolist()
    hits = [guess == prompt.letter for guess, prompt in zip(predicted, prompts)]
    per_task = defaultdict(list)
    for hit, prompt in zip(hits, prompts):
        per_task[prompt.task].append(hit)

    def score(selected: list[bool]) -> dict | None:
        return {"accuracy": sum(selected) / len(selected), "lookups": len(selected)} if selected else None

    return {**score(hits), "per_task": {task: score(per_task[task]) for task in sorted(per_task)},
            "prefix_options": score([hit for hit, prompt in zip(hits, prompts) if prompt.prefix]),
            "other_options": score([hit for hit, prompt in zip(hits, prompts) if not prompt.prefix])}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a LangDC checkpoint folder (any stage)")
    parser.add_argument("--data", type=Path, required=True, help="synthvid folder (python -m synthvid.build)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=256, help="lookups (one per question, in split order)")
    parser.add_argument("--seed", type=int, default=0, help="option order and the option asked for")
    parser.add_argument("--output", type=Path, default=None, help="folder for lookup_<split>.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    model = AutoModel.from_pretrained(args.model, dtype=torch.float32, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    result = lookup_accuracy(model, tokenizer, read_split(args.data, args.split), model.config.system_message,
                             args.limit, args.seed)
    result.update(model=str(args.model), split=args.split, seed=args.seed, wall_seconds=time.perf_counter() - started)
    return report_result(result, args.output, f"lookup_{args.split}.json")


if __name__ == "__main__":
    main()

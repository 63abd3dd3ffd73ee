"""Probe: can the LLM of a model spec learn the synthvid questions when the ground-truth clip captions are given
as plain text?

This separates the two halves of LangDC's task. If the LLM cannot answer from perfect captions written out as
text, no expert can help it, and stage 3 fails for the LLM's sake (train/RUNS.md). The LLM is built from the
spec's `text_config` with random weights and trained on one multi-turn conversation per training video (the
stage-3 conversations of `train/data.py`, with the captions as text in place of the video):

    user: "Clip captions: {caption 1} | ... | {caption 4}\\n{question 1}\\nAnswer with the option's letter."
    assistant: "red circle (C)"   ... then the video's other questions

The turns are drawn anew for every example (`train.data.sample_qa_turns`: question order, option order, open or
multiple choice), as in stage 3. Every `--eval-every` steps it scores the validation multiple-choice questions,
each asked alone, by the log-likelihood of each option's full answer (`format_answer`: "{option} ({letter})")
and by its greedy answer as `eval.evaluate` scores the full model (letter and named option), and writes
`OUTPUT/text_qa_probe.json` (atomically).

    python -m train.text_qa_probe --data data/synthvid --tokenizer . \\
        --spec tools/configs/synthvid.json --steps 500 --output runs/text_qa_probe
"""

import argparse
import json
import random
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

from eval.evaluate import named_option, parse_letter
from synthvid.files import write_text_atomic
from synthvid.questions import LETTERS, option_answer
from tools.remote_code import import_remote
from train.data import chat_conversation, multiple_choice_prompt, pad_chat_batch, read_split, sample_qa_turns

CAPTIONS_PREFIX = "Clip captions: "
DEFAULT_SYSTEM_MESSAGE = import_remote("configuration_langdc").DEFAULT_SYSTEM_MESSAGE


def captions_text(record: dict) -> str:
    """The video's ground-truth clip captions as one line of text."""
    return CAPTIONS_PREFIX + " | ".join(record["clip_captions"])


def training_conversation(record: dict, tokenizer, rng: random.Random, open_fraction: float) -> tuple[list[int], list[int]]:
    """`(ids, labels)` of one conversation over all questions of a video, captions as text in the first turn."""
    turns = sample_qa_turns(record["questions"], rng, open_fraction, first_prefix=f"{captions_text(record)}\n")
    return chat_conversation(tokenizer, DEFAULT_SYSTEM_MESSAGE, turns)


def validation_prompts(records, tokenizer) -> list[tuple[list[int], dict, str]]:
    """`(prompt ids, question, task)` of every validation question asked alone, as at evaluation."""
    prompts = []
    for record in records:
        for question in record["questions"]:
            user = f"{captions_text(record)}\n{multiple_choice_prompt(question)}"
            messages = [{"role": "system", "content": DEFAULT_SYSTEM_MESSAGE}, {"role": "user", "content": user}]
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            prompts.append((tokenizer(text, add_special_tokens=False)["input_ids"], question, question["task"]))
    return prompts


@torch.no_grad()
def answer_accuracy(model, tokenizer, prompts) -> dict:
    """Multiple-choice accuracy, overall and per task: the option whose full answer (`format_answer`) has the
    highest log-likelihood after the prompt; and `letter_given_text`: with the right answer's text written, how
    often the most likely of the four letters is its letter (the lookup step, which the full-answer score hides
    behind the text's likelihood)."""
    model.eval()
    letter_ids = [tokenizer.convert_tokens_to_ids(letter) for letter in LETTERS]
    correct, letter_hits = {}, []
    for prompt, question, task in prompts:
        answer = question["answer"]
        answers = [tokenizer(option_answer(question, i), add_special_tokens=False)["input_ids"]
                   for i in range(len(question["options"]))]
        rows = [prompt + ids for ids in answers]
        batch = pad_chat_batch([(row, row) for row in rows], tokenizer.pad_token_id)
        log_probs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.log_softmax(-1)
        scores = []
        for i, ids in enumerate(answers):
            positions = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(ids))
            scores.append(log_probs[i, positions, torch.tensor(ids)].sum().item())
        correct.setdefault(task, []).append(int(max(range(len(scores)), key=scores.__getitem__) == answer))
        letter_position = len(prompt) + len(answers[answer]) - 2  # "... (" + letter + ")"
        if answers[answer][-2] != letter_ids[answer]:
            raise ValueError(f"The tokenizer does not keep the option letter as one token in {question['options']}.")
        letter_scores = log_probs[answer, letter_position - 1, letter_ids]
        letter_hits.append(int(letter_scores.argmax().item() == answer))
    model.train()
    total = [c for values in correct.values() for c in values]
    return {"accuracy": sum(total) / len(total), "questions": len(total),
            "letter_given_text": sum(letter_hits) / len(letter_hits),
            "per_task": {task: sum(v) / len(v) for task, v in sorted(correct.items())}}


@torch.no_grad()
def generation_accuracy(model, tokenizer, prompts, batch_size: int = 32, max_new_tokens: int = 12) -> dict:
    """Greedy answers scored as `eval.evaluate` scores the full model: `generated_letter` (the MVBench letter
    rule) and `generated_named` (the answer's text is the right option's), overall."""
    model.eval()
    letter_hits, named_hits = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [ids for ids, _, _ in chunk]}, padding_side="left", return_tensors="pt")
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        width = batch["input_ids"].shape[1]
        for (_, question, _), ids in zip(chunk, output[:, width:]):
            response = tokenizer.decode(ids, skip_special_tokens=True).strip()
            letter_hits.append(parse_letter(response) == question["answer"])
            named_hits.append(named_option(response, question["options"]) == question["answer"])
    model.train()
    return {"generated_letter": sum(letter_hits) / len(letter_hits),
            "generated_named": sum(named_hits) / len(named_hits)}


def initial_llm(spec: Path | None, init: Path | None, tokenizer):
    """The LLM to probe (float32): random from `spec`'s `text_config`, or the `language_model` of checkpoint `init`."""
    if init is not None:
        modeling = import_remote("modeling_langdc")
        return modeling.LangDCForConditionalGeneration.from_pretrained(init, dtype=torch.float32).language_model
    text_config = dict(json.loads(spec.read_text())["text_config"])
    config = AutoConfig.for_model(text_config.pop("model_type"), vocab_size=len(tokenizer),
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                  **text_config)
    return AutoModelForCausalLM.from_config(config)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="synthvid folder (python -m synthvid.build)")
    parser.add_argument("--tokenizer", type=Path, required=True, help="a trained checkpoint (its BPE tokenizer)")
    parser.add_argument("--spec", type=Path, default=None, help="model spec .json; its text_config is the LLM")
    parser.add_argument("--init", type=Path, default=None,
                        help="a LangDC checkpoint whose LLM to continue from (e.g. after the text stage), not --spec")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=25)
    parser.add_argument("--open-fraction", type=float, default=0.2)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--val-videos", type=int, default=64, help="validation videos scored at each evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, trust_remote_code=True)
    if (args.spec is None) == (args.init is None):
        raise ValueError("Give exactly one of --spec (a random LLM) and --init (a checkpoint's LLM).")
    model = initial_llm(args.spec, args.init, tokenizer).train()
    train = read_split(args.data, "train")
    val = validation_prompts(read_split(args.data, "val")[: args.val_videos], tokenizer)
    if not val or len(train) < args.batch_size:
        raise ValueError(f"{args.data}: need validation questions and at least --batch-size {args.batch_size} "
                         f"training videos, got {len(val)} questions and {len(train)} videos.")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, args.warmup, args.steps)
    rng = random.Random(args.seed)
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "parameters": model.num_parameters(),
              "train_videos": len(train), "threads": torch.get_num_threads(), "log": []}
    started, tokens = time.perf_counter(), 0
    for step in range(1, args.steps + 1):
        conversations = [training_conversation(r, tokenizer, rng, args.open_fraction)
                         for r in rng.sample(train, args.batch_size)]
        batch = pad_chat_batch(conversations, tokenizer.pad_token_id)
        tokens += int(batch["attention_mask"].sum())
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % args.eval_every == 0 or step == args.steps:
            entry = {"step": step, "loss": loss.item(), "train_tokens": tokens,
                     "wall_seconds": time.perf_counter() - started, **answer_accuracy(model, tokenizer, val),
                     **generation_accuracy(model, tokenizer, val)}
            report["log"].append(entry)
            print(json.dumps({k: entry[k] for k in ("step", "loss", "accuracy", "letter_given_text",
                                                "generated_letter", "generated_named", "wall_seconds")}),
                  flush=True)
            write_text_atomic(args.output / "text_qa_probe.json", json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()

"""Letter binding inside the answer: given the option text its own greedy answer named, does the LLM put that
option's letter first?

    python -m eval.letter_binding --model . --data data/synthvid --split test \
        --details runs/v48/eval/test_details.json --tasks state_change --output DIR

`eval.evaluate`'s greedy answers are `text (L)`: `named_option` reads the option the text names and `parse_letter`
the letter, and the two disagree in about 8% of the answers (its `named_option.letter_agrees`). For each question
whose greedy answer (in `--details`, `eval.evaluate`'s details of the same model and split) names an option, this
scores the four answers `text (A)` ... `text (D)` with that text after the question's prompt (`model.score_answers`:
the same prompt, the expert's own greedy captions, the end of turn), so they differ only in the letter. Binding
accuracy is how often the named option's letter is the most likely of the four; `letter_probability` the mean
probability of that letter (softmax of the four log-likelihoods), also over the answers whose greedy letter
disagreed with their text. Unlike `eval.lookup` (a separate `Which option says "X"?` turn, no media), this is the
answer's own letter, after the video. `--spaced-answers` writes the answers as a model trained with
`train.run --spaced-answers` does. Writes `OUTPUT/letter_binding_<split>.json` when `--output` is given.
"""

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from transformers import AutoModel, AutoProcessor, AutoTokenizer

from eval.evaluate import write_json
from synthvid.questions import LETTERS, format_answer
from train.data import multiple_choice_prompt, read_split, video_prefix


def bound_answers(question: dict, named: int, spaced: bool = False) -> list[str]:
    """The four answers `text (A)` ... `text (D)` with option `named`'s text (`format_answer`'s form, a leading
    space with `spaced`)."""
    text = question["options"][named]
    return [format_answer({**question, "answer": letter, "answer_text": text}, spaced) for letter in range(len(LETTERS))]


@torch.no_grad()
def letter_binding(model, tokenizer, processor, data_dir: Path, split: str, details: dict, tasks: tuple[str, ...] = (),
                   limit: int | None = None, spaced: bool = False) -> dict:
    """`{"accuracy", "questions", "letter_probability", "per_task", "greedy_disagreed", "rows"}` over the questions
    of `details` (`eval.evaluate`'s, in split order) whose greedy answer names an option, of `tasks` (all if empty),
    at most `limit` of them; `greedy_disagreed` the same scores over those whose greedy letter was not the named
    option's. Each row: `video`, `task`, `named`, `greedy_letter`, `letter_log_likelihoods` (4).

    Raises:
        ValueError: if `details` does not list the split's questions in order, or no question qualifies.
    """
    records = read_split(data_dir, split)
    pairs = [(record, question) for record in records for question in record["questions"]]
    rows_in = details["questions"]
    if len(rows_in) > len(pairs) or any(row["video"] != record["id"] or row["task"] != question["task"]
                                        for row, (record, question) in zip(rows_in, pairs)):
        raise ValueError(f"`details` does not list the questions of the {split!r} split in order.")
    chosen = [(record, question, row) for (record, question), row in zip(pairs, rows_in)
              if row["named"] is not None and (not tasks or question["task"] in tasks)][:limit]
    if not chosen:
        raise ValueError(f"No question of tasks {tasks or 'any'} has a greedy answer that names an option.")
    rows, features_of = [], {}
    for record, question, row in chosen:
        if record["id"] not in features_of:
            features_of.clear()  # questions of one video are consecutive
            values, patches = processor.load_video(str(data_dir / record["video"]))
            features = model.get_image_features(values.to(model.dtype))
            captions = model.caption_clips(None, [patches], 3, image_features=features)
            features_of[record["id"]] = features, patches, captions
        features, patches, captions = features_of[record["id"]]
        prompt = video_prefix("video", len(patches)) + multiple_choice_prompt(question)
        scores = model.score_answers(tokenizer, None, prompt, bound_answers(question, row["named"], spaced),
                                     num_patches_list=patches, data_flag=3, caption_ids=captions,
                                     image_features=features)
        rows.append({"video": record["id"], "task": question["task"], "named": row["named"],
                     "greedy_letter": row["predicted"],
                     "letter_log_likelihoods": [score.log_likelihood for score in scores]})

    def score(selected: list[dict]) -> dict | None:
        if not selected:
            return None
        likelihoods = torch.tensor([row["letter_log_likelihoods"] for row in selected])
        named = torch.tensor([row["named"] for row in selected])
        probability = likelihoods.softmax(-1).gather(1, named[:, None]).mean().item()
        accuracy = (likelihoods.argmax(-1) == named).float().mean().item()
        return {"accuracy": accuracy, "questions": len(selected), "letter_probability": probability}

    per_task = defaultdict(list)
    for row in rows:
        per_task[row["task"]].append(row)
    return {**score(rows), "per_task": {task: score(per_task[task]) for task in sorted(per_task)},
            "greedy_disagreed": score([row for row in rows if row["greedy_letter"] != row["named"]]), "rows": rows}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a LangDC checkpoint folder")
    parser.add_argument("--data", type=Path, required=True, help="synthvid folder (python -m synthvid.build)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--details", type=Path, required=True,
                        help="eval.evaluate's {split}_details.json of the same model and split")
    parser.add_argument("--tasks", default="", help="comma-separated tasks (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many questions")
    parser.add_argument("--spaced-answers", action="store_true",
                        help="answers begin with a space (a model trained with train.run --spaced-answers)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True, dtype=getattr(torch, args.dtype)).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    tasks = tuple(task for task in args.tasks.split(",") if task)
    start = time.perf_counter()
    result = letter_binding(model, tokenizer, processor, args.data, args.split,
                            json.loads(args.details.read_text()), tasks, args.limit, args.spaced_answers)
    result.update(model=str(args.model), split=args.split, tasks=list(tasks), spaced_answers=args.spaced_answers,
                  wall_seconds=time.perf_counter() - start)
    print(f"letter of the named option ranked first: {result['accuracy']:.3f} of {result['questions']} answers "
          f"(mean probability {result['letter_probability']:.3f})")
    disagreed = result["greedy_disagreed"]
    if disagreed:
        print(f"  where the greedy letter disagreed: {disagreed['accuracy']:.3f} of {disagreed['questions']} "
              f"(mean probability {disagreed['letter_probability']:.3f})")
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        write_json(result, args.output / f"letter_binding_{args.split}.json")
    return result


if __name__ == "__main__":
    main()

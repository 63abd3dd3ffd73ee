"""Evaluate a LangDC checkpoint on a synthvid split through the public `batch_chat` API, from the mp4 files.

    python -m eval.evaluate --model . --data data/synthvid --split test --output eval/results

Reports (JSON + PNG plots): multiple-choice accuracy overall and per task type, seen and unseen compositions
separately, and per task on the unseen questions whose answer names a held-out pair; soft tokens per clip and per
video; the Spearman correlation between a clip's ground-truth event count and its token count; visual tokens into the
LLM against the uncompressed count; mean stage timings.
"""

import argparse
import json
import re
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoProcessor, AutoTokenizer

from eval.captions import event_kind_scores, sentence_scores, spearman
from synthvid.captions import caption_event_count
from synthvid.dataset import answer_names_held_out_pair
from synthvid.files import write_atomic, write_text_atomic
from synthvid.questions import LETTERS, option_answer
from train.data import (QUESTION_FORMATS, VIDEO_PROMPTS, clip_caption_ids, multiple_choice_prompt, read_split,
                        video_prefix)

ANSWER_PATTERN = re.compile(r"\(?([A-D])\)")


def parse_letter(response: str) -> int | None:
    """Index of the chosen option from a response such as "(B) left" or "B) left"; None if there is none."""
    match = ANSWER_PATTERN.search(response) or re.match(r"\s*([A-D])\b", response)
    return LETTERS.index(match.group(1)) if match else None


def named_option(response: str, options: list[str]) -> int | None:
    """Index of the option whose text the response names, ignoring any "(X)" letter ("red circle (B)" -> the
    option "red circle"); None if the remaining text is no option.

    A diagnostic beside the letter accuracy (the MVBench rule, which stays the reported accuracy): it separates
    reading the answer out of the video from copying the matching option's letter.
    """
    text = ANSWER_PATTERN.sub("", response).strip().rstrip(".")
    return options.index(text) if text in options else None


def option_log_likelihoods(model, tokenizer, features: torch.Tensor, num_patches: list[int], prompt: str,
                           question: dict, caption_ids: list[list[int]], spaced: bool = False) -> list[float]:
    """Log-likelihood (nats) of each option's full answer after the chat prompt, as training writes it
    (`format_answer`, "red circle (B)", then the end of turn), with the visual tokens of the greedy answer: the
    vision features `[F, P, D_v]` of the video's frames and its clips' `caption_ids` (`model.score_answers`).

    The option ranked first is the model's preference over whole answers, free of greedy decoding's token-by-token
    commitment (an answer that starts with a colour of the options and ends with a shape of the video names no
    option); the log-likelihood multiple-choice score of lmms-eval's `multiple_choice` tasks. A diagnostic: the
    reported accuracy stays the greedy answer's letter (MVBench). `spaced`: each answer begins with a space, as a
    model trained with `train.run --spaced-answers` writes them (`train.data.question_turn`).
    """
    answers = [option_answer(question, index, spaced) for index in range(len(question["options"]))]
    scores = model.score_answers(tokenizer, None, prompt, answers, num_patches_list=num_patches, data_flag=3,
                                 caption_ids=caption_ids, image_features=features)
    return [score.log_likelihood for score in scores]


def samples(records, max_videos: int | None):
    for record in records[:max_videos]:
        for question in record["questions"]:
            yield record, question


def evaluate(model, tokenizer, processor, data_dir: Path, split: str, batch_size: int, max_videos=None,
             max_new_tokens: int = 12, ground_truth_captions: bool = False, prompt: str = "video",
             question_format: str = "langdc", option_likelihood: bool = False, num_beams: int = 1,
             spaced_answers: bool = False) -> dict:
    """Run every multiple-choice question of `split` and collect per-question and per-video results.

    `ground_truth_captions`: the LLM reads the ground-truth clip captions instead of the expert's (the
    oracle-expert ablation: what the LLM side achieves with perfect captions). `prompt`: the video as one
    `<video>` ("video") or one `Frame{i}: <image>` line per frame ("frames", the PVC form; `train.data.video_prefix`).
    `question_format`: ours ("langdc") or lmms-eval's MVBench prompt ("lmms-mvbench";
    `train.data.multiple_choice_prompt`). `option_likelihood`: also rank the four full answers by their
    log-likelihood (`option_log_likelihoods`), per question `likelihood_choice`. `num_beams`: beam search instead
    of greedy decoding (1, MVBench's and lmms-eval's setting). `spaced_answers`: the option likelihoods score
    answers that begin with a space (a model trained with `train.run --spaced-answers`).
    """
    records = read_split(data_dir, split)
    pixel_cache = {}
    questions, videos = [], {}
    pending = list(samples(records, max_videos))
    generation = dict(max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams)
    caption_tokenizer = model.get_expert_tokenizer(tokenizer)
    for start in tqdm(range(0, len(pending), batch_size), desc=f"evaluating {split}"):
        batch = pending[start : start + batch_size]
        pixels, patches, features_of = [], [], {}
        for record, _ in batch:
            if record["id"] not in pixel_cache:
                pixel_cache.clear()  # questions of one video are consecutive
                values, num_patches = processor.load_video(str(data_dir / record["video"]))
                features = model.get_image_features(values.to(model.dtype)) if option_likelihood else None
                pixel_cache[record["id"]] = values, num_patches, features
            values, num_patches, features_of[record["id"]] = pixel_cache[record["id"]]
            pixels.append(values)
            patches.append(num_patches)
        prompts = [video_prefix(prompt, len(frames)) + multiple_choice_prompt(q, question_format)
                   for frames, (_, q) in zip(patches, batch)]
        captions = None
        if ground_truth_captions:
            captions = [ids for record, _ in batch for ids in clip_caption_ids(caption_tokenizer, record)]
        responses, infos = model.batch_chat(
            tokenizer, torch.cat(pixels).to(model.dtype), prompts, generation, num_patches_list=patches,
            data_flag=3, return_info=True, caption_ids=captions,
        )
        for (record, question), prompt_text, num_patches, response, info in zip(batch, prompts, patches, responses,
                                                                              infos):
            predicted, named = parse_letter(response), named_option(response, question["options"])
            row = {
                "video": record["id"], "task": question["task"], "unseen": bool(record.get("unseen")),
                "held_out_answer": answer_names_held_out_pair(question), "answer": question["answer"],
                "predicted": predicted, "correct": predicted == question["answer"],
                "named": named, "named_correct": named == question["answer"], "response": response,
            }
            if option_likelihood:
                scores = option_log_likelihoods(model, tokenizer, features_of[record["id"]], num_patches, prompt_text,
                                                question, info.caption_ids, spaced_answers)
                choice = max(range(len(scores)), key=scores.__getitem__)
                row.update(likelihood_choice=choice, likelihood_correct=choice == question["answer"])
            questions.append(row)
            videos[record["id"]] = {
                "tokens_per_clip": info.tokens_per_clip, "events_per_clip": record["clip_event_counts"],
                "visual_tokens": info.visual_tokens, "full_visual_tokens": info.full_visual_tokens,
                "captions": info.captions, "truth": record["clip_captions"], "unseen": bool(record.get("unseen")),
                "timings": info.timings,
            }
    return {"questions": questions, "videos": videos}


def accuracy(rows, key: str = "correct") -> dict:
    rows = list(rows)
    return {"accuracy": sum(r[key] for r in rows) / len(rows) if rows else None, "questions": len(rows)}


def lmms_eval_mvbench_score(questions: list[dict], as_plugin: bool = False) -> dict | None:
    """`accuracy` of the responses as lmms-eval's MVBench task scores them (`mcq_acc`: the answer's letter is its
    first standalone letter A-E, so `a red circle appears (C)` reads as (A)), or None when lmms-eval is not
    installed. Our own score (`parse_letter`) reads the parenthesised letter. `as_plugin`: each response as our
    lmms-eval plug-in hands it to the scorer, `text (L)` written `(L) text` (`lmms_eval_langdc.model.letter_first`,
    its default), so the scorer reads the letter the model chose."""
    try:
        from lmms_eval.tasks.mvbench.utils import mcq_acc
        form = str
        if as_plugin:
            from lmms_eval_langdc.model import letter_first as form
    except ImportError:
        return None
    return accuracy({"correct": bool(mcq_acc(LETTERS[q["answer"]], form(q["response"])))} for q in questions)


def summarize(results: dict) -> dict:
    questions, videos = results["questions"], list(results["videos"].values())
    per_task = defaultdict(list)
    for row in questions:
        per_task[row["task"]].append(row)
    tokens = [t for v in videos for t in v["tokens_per_clip"]]
    events = [e for v in videos for e in v["events_per_clip"]]
    rho, p_value = spearman(events, tokens)
    visual = sum(v["visual_tokens"] for v in videos) / len(videos)
    full = sum(v["full_visual_tokens"] for v in videos) / len(videos)
    captions = [c for v in videos for c in v["captions"]]
    truths = [t for v in videos for t in v["truth"]]
    exact_captions = sum(c == t for c, t in zip(captions, truths))
    timings = defaultdict(float)
    for v in videos:
        for name, seconds in v["timings"].items():
            timings[name] += seconds / len(videos)
    return {
        "overall": accuracy(questions),
        "seen": accuracy(r for r in questions if not r["unseen"]),
        "unseen": accuracy(r for r in questions if r["unseen"]),
        "per_task": {task: accuracy(rows) for task, rows in sorted(per_task.items())},
        "per_task_unseen": {task: accuracy(r for r in rows if r["unseen"]) for task, rows in sorted(per_task.items())},
        # unseen questions whose right answer names a held-out pair (`answer_names_held_out_pair`), per task
        "held_out_answers": {task: accuracy(r for r in rows if r["held_out_answer"])
                             for task, rows in sorted(per_task.items()) if any(r["held_out_answer"] for r in rows)},
        "unparsed_responses": sum(r["predicted"] is None for r in questions),
        "lmms_eval_mvbench_scorer": lmms_eval_mvbench_score(questions),
        "lmms_eval_mvbench_scorer_plugin": lmms_eval_mvbench_score(questions, as_plugin=True),
        "named_option": {  # the option whose text the answer names (`named_option`), a diagnostic
            "overall": accuracy(questions, "named_correct"),
            "unseen": accuracy((r for r in questions if r["unseen"]), "named_correct"),
            "per_task": {task: accuracy(rows, "named_correct") for task, rows in sorted(per_task.items())},
            "letter_agrees": accuracy(  # among answers naming an option: the letter is that option's
                ({"agrees": r["predicted"] == r["named"]} for r in questions if r["named"] is not None), "agrees"),
        },
        "option_likelihood": None if "likelihood_correct" not in questions[0] else {  # `option_log_likelihoods`
            "overall": accuracy(questions, "likelihood_correct"),
            "unseen": accuracy((r for r in questions if r["unseen"]), "likelihood_correct"),
            "per_task": {task: accuracy(rows, "likelihood_correct") for task, rows in sorted(per_task.items())},
        },
        "videos": len(videos),
        "mean_soft_tokens_per_clip": sum(tokens) / len(tokens),
        "mean_soft_tokens_per_video": sum(tokens) / len(videos),
        "spearman_events_vs_tokens": {"rho": rho, "p_value": p_value, "clips": len(tokens)},
        # the same against the number of event sentences the expert wrote: the token rho also counts the object list
        "spearman_events_vs_caption_events": spearman(events, [caption_event_count(c) for c in captions])[0],
        "exact_clip_captions": exact_captions / len(tokens),
        "caption_sentences": sentence_scores(captions, truths),
        "caption_event_kinds": event_kind_scores(captions, truths),
        "mean_visual_tokens": visual,
        "mean_full_visual_tokens": full,
        "visual_token_ratio": visual / full,
        "mean_timings_s_per_batch_call": dict(timings),
    }


def plot(results: dict, summary: dict, output: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    videos = list(results["videos"].values())
    events = [e for v in videos for e in v["events_per_clip"]]
    tokens = [t for v in videos for t in v["tokens_per_clip"]]
    figure, axis = plt.subplots(figsize=(5, 4))
    generator = torch.Generator().manual_seed(0)
    jitter = (torch.rand(len(events), generator=generator) - 0.5) * 0.3
    axis.scatter([e + j for e, j in zip(events, jitter.tolist())], tokens, s=6, alpha=0.4)
    by_events = defaultdict(list)
    for e, t in zip(events, tokens):
        by_events[e].append(t)
    xs = sorted(by_events)
    axis.plot(xs, [sum(by_events[x]) / len(by_events[x]) for x in xs], "o-", color="black", label="mean")
    rho = summary["spearman_events_vs_tokens"]["rho"]
    axis.set(xlabel="ground-truth events in the clip", ylabel="soft caption tokens", title=f"Spearman rho = {rho:.2f}")
    axis.legend()
    figure.tight_layout()
    paths = [output / "tokens_vs_events.png"]
    _save_figure(figure, paths[0])

    tasks = list(summary["per_task"])
    figure, axis = plt.subplots(figsize=(7, 4))
    seen = [summary["per_task"][t]["accuracy"] or 0 for t in tasks]
    unseen = [summary["per_task_unseen"][t]["accuracy"] or 0 for t in tasks]
    positions = range(len(tasks))
    axis.bar([p - 0.2 for p in positions], seen, width=0.4, label="all test questions")
    axis.bar([p + 0.2 for p in positions], unseen, width=0.4, label="unseen compositions")
    axis.axhline(0.25, color="gray", linestyle="--", label="chance")
    axis.set_xticks(list(positions), tasks, rotation=30, ha="right")
    axis.set(ylabel="accuracy", ylim=(0, 1), title=f"overall {summary['overall']['accuracy']:.1%}")
    axis.legend(loc="lower right")
    figure.tight_layout()
    paths.append(output / "accuracy_per_task.png")
    _save_figure(figure, paths[1])
    return paths


def _save_figure(figure, path: Path) -> None:
    write_atomic(path, lambda tmp: figure.savefig(tmp, dpi=120))


def write_json(data, path: Path) -> None:
    """`data` as indented JSON (numpy scalars as floats), written atomically (`synthvid.files.write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=float) + "\n")


def report_result(result: dict, output: Path | None, name: str) -> dict:
    """Print a diagnostic's `result` as one JSON line and, when `output` is given, write it to `output/name`
    (`write_json`); returns `result`."""
    print(json.dumps(result))
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        write_json(result, output / name)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=".")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-videos", type=int, default=None)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--ground-truth-captions", action="store_true",
                        help="oracle expert: the LLM reads the ground-truth clip captions")
    parser.add_argument("--prompt", default="video", choices=VIDEO_PROMPTS,
                        help="the video as one <video>, or one `Frame{i}: <image>` line per frame (PVC)")
    parser.add_argument("--question-format", default="langdc", choices=QUESTION_FORMATS,
                        help="multiple-choice prompt: ours, or lmms-eval's MVBench prompt "
                             "(train.data.multiple_choice_prompt)")
    parser.add_argument("--num-beams", type=int, default=1,
                        help="beam search for the answers (default 1: greedy, as MVBench and lmms-eval decode)")
    parser.add_argument("--option-likelihood", action="store_true",
                        help="also rank the four full answers by log-likelihood (a diagnostic beside the greedy "
                             "answer's letter; eval.evaluate.option_log_likelihoods)")
    parser.add_argument("--spaced-answers", action="store_true",
                        help="with --option-likelihood: answers begin with a space (a model trained with "
                             "train.run --spaced-answers)")
    args = parser.parse_args(argv)
    if args.spaced_answers and not args.option_likelihood:
        parser.error("--spaced-answers only changes the option likelihoods: give --option-likelihood with it")
    started = time.perf_counter()
    model = AutoModel.from_pretrained(args.model, dtype=getattr(torch, args.dtype), trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    results = evaluate(model, tokenizer, processor, args.data, args.split, args.batch_size, args.max_videos,
                       ground_truth_captions=args.ground_truth_captions, prompt=args.prompt,
                       question_format=args.question_format, option_likelihood=args.option_likelihood,
                       num_beams=args.num_beams, spaced_answers=args.spaced_answers)
    summary = summarize(results)
    summary.update(model=str(args.model), split=args.split, dtype=args.dtype, threads=torch.get_num_threads(),
                   ground_truth_captions=args.ground_truth_captions, prompt=args.prompt,
                   question_format=args.question_format, num_beams=args.num_beams, spaced_answers=args.spaced_answers,
                   wall_seconds=time.perf_counter() - started)
    args.output.mkdir(parents=True, exist_ok=True)
    write_json(summary, args.output / f"{args.split}_summary.json")
    write_json(results, args.output / f"{args.split}_details.json")
    plots = plot(results, summary, args.output)
    print(json.dumps({k: summary[k] for k in ("overall", "seen", "unseen", "spearman_events_vs_tokens",
                                              "mean_soft_tokens_per_clip", "visual_token_ratio",
                                              "exact_clip_captions")}, indent=2, default=float))
    print("per task:", {t: round(v["accuracy"], 3) for t, v in summary["per_task"].items()})
    named = summary["named_option"]
    print(f"named option: {named['overall']['accuracy']:.3f} (unseen {named['unseen']['accuracy'] or 0:.3f}); "
          f"letter agrees with the named option: {named['letter_agrees']['accuracy'] or 0:.3f}")
    if summary["option_likelihood"] is not None:
        likelihood = summary["option_likelihood"]
        print(f"option ranked first by log-likelihood: {likelihood['overall']['accuracy']:.3f} "
              f"(unseen {likelihood['unseen']['accuracy'] or 0:.3f})")
    if summary["lmms_eval_mvbench_scorer"] is not None:
        print(f"accuracy as lmms-eval's MVBench scorer reads the letters: "
              f"{summary['lmms_eval_mvbench_scorer']['accuracy']:.3f} as written, "
              f"{summary['lmms_eval_mvbench_scorer_plugin']['accuracy']:.3f} as the plug-in hands them over")
    print("wrote", ", ".join(str(p) for p in [args.output / f"{args.split}_summary.json", *plots]))


if __name__ == "__main__":
    main()

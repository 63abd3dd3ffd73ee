"""Paired comparison of two evaluations of the same split: accuracy difference, question by question.

    python -m eval.compare runs/v42c/eval/val_details.json runs/v42/eval/val_details.json [--output FILE.json]

Both files are `eval.evaluate`'s `{split}_details.json` of one split; each question is scored by both models, so
the difference of the accuracies is the mean of the per-question differences (+1 newly right, -1 newly wrong, 0
otherwise) and its standard error is theirs (the paired test that RUNS.md reports, far tighter than two
independent accuracies' errors). Reported overall, for the seen and unseen compositions and per task.
"""

import argparse
import json
import math
import statistics
from pathlib import Path

from synthvid.files import write_text_atomic

KEY_FIELDS = ("video", "task", "answer")  # what must agree for two evaluations to have scored the same question


def paired_difference(correct_a: list[bool], correct_b: list[bool]) -> dict:
    """Accuracies of A and B on the same questions and their paired difference `B - A`.

    Returns:
        `{"questions", "accuracy_a", "accuracy_b", "difference", "standard_error", "newly_right", "newly_wrong"}`;
        accuracies and the difference as fractions, the standard error of the mean difference (sample standard
        deviation / sqrt(n)); `standard_error` is None for fewer than two questions.

    Raises:
        ValueError: if the lists are empty or of different lengths.
    """
    if not correct_a or len(correct_a) != len(correct_b):
        raise ValueError(f"need the same non-zero number of questions, got {len(correct_a)} and {len(correct_b)}")
    n = len(correct_a)
    diffs = [int(b) - int(a) for a, b in zip(correct_a, correct_b)]
    mean = sum(diffs) / n
    error = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else None
    return {"questions": n, "accuracy_a": sum(correct_a) / n, "accuracy_b": sum(correct_b) / n, "difference": mean,
            "standard_error": error, "newly_right": diffs.count(1), "newly_wrong": diffs.count(-1)}


def compare_details(details_a: dict, details_b: dict) -> dict:
    """`paired_difference` of two `eval.evaluate` details (`{"questions": [...]}`), overall, `seen` / `unseen` and
    `per_task` (groups without questions left out).

    Raises:
        ValueError: if the two evaluations did not score the same questions in the same order (their `video`,
            `task` and `answer` fields), e.g. two different splits.
    """
    questions_a, questions_b = details_a["questions"], details_b["questions"]
    if len(questions_a) != len(questions_b):
        raise ValueError(f"the evaluations scored {len(questions_a)} and {len(questions_b)} questions: not one split")
    for index, (a, b) in enumerate(zip(questions_a, questions_b)):
        if any(a[field] != b[field] for field in KEY_FIELDS):
            raise ValueError(f"question {index} differs ({', '.join(f'{f}: {a[f]!r} / {b[f]!r}' for f in KEY_FIELDS)}):"
                             " the evaluations are not of the same split")

    def group(keep) -> dict | None:
        pairs = [(a["correct"], b["correct"]) for a, b in zip(questions_a, questions_b) if keep(a)]
        return paired_difference(*map(list, zip(*pairs))) if pairs else None

    result = {"overall": group(lambda q: True)}
    for name, unseen in (("seen", False), ("unseen", True)):
        if (summary := group(lambda q, unseen=unseen: q["unseen"] == unseen)) is not None:
            result[name] = summary
    tasks = sorted({q["task"] for q in questions_a})
    result["per_task"] = {task: group(lambda q, task=task: q["task"] == task) for task in tasks}
    return result


def format_comparison(result: dict, name_a: str = "A", name_b: str = "B") -> str:
    """A Markdown table of `compare_details`' result: one row per group, percentages."""
    rows = [f"| questions | {name_a} | {name_b} | difference (standard error) | newly right / wrong |",
            "|---|---|---|---|---|"]
    groups = [(name, result[name]) for name in ("overall", "seen", "unseen") if name in result]
    for name, summary in groups + sorted(result["per_task"].items()):
        error = "n/a" if summary["standard_error"] is None else f"{100 * summary['standard_error']:.1f}"
        rows.append(f"| {name} ({summary['questions']}) | {100 * summary['accuracy_a']:.1f}% | "
                    f"{100 * summary['accuracy_b']:.1f}% | {100 * summary['difference']:+.1f} ({error}) | "
                    f"{summary['newly_right']} / {summary['newly_wrong']} |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("details_a", type=Path, help="eval.evaluate's {split}_details.json of model A")
    parser.add_argument("details_b", type=Path, help="the same split's details of model B")
    parser.add_argument("--output", type=Path, default=None, help="also write the comparison as JSON here")
    args = parser.parse_args(argv)
    for path in (args.details_a, args.details_b):
        if not path.is_file():
            raise ValueError(f"{path} does not exist: run `python -m eval.evaluate ... --output DIR` first.")
    result = compare_details(*(json.loads(path.read_text()) for path in (args.details_a, args.details_b)))
    print(format_comparison(result, *("/".join(path.parts[-3:-1]) for path in (args.details_a, args.details_b))))
    if args.output is not None:
        write_text_atomic(args.output, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Markdown tables for README from the training logs and an evaluation summary.

    python -m eval.report --runs runs/v6 [--summary eval/results-synthvid-v6/test_summary.json]
"""

import argparse
import json
from pathlib import Path


def training_table(runs: Path) -> str:
    """One row per stage folder of `runs` (`stage*/train_log.json`, in the order they finished), then the total."""
    rows = ["| stage | device | videos | examples | steps | steps/s | wall time | first -> last logged loss |",
            "|---|---|---|---|---|---|---|---|"]
    total = 0.0
    for path in sorted(runs.glob("stage*/train_log.json"), key=lambda p: p.stat().st_mtime):
        log = json.loads(path.read_text())
        losses = [entry["loss"] for entry in log["log_history"] if "loss" in entry]
        steps = max(entry.get("step", 0) for entry in log["log_history"])
        speed = next((e["train_steps_per_second"] for e in log["log_history"] if "train_steps_per_second" in e), 0)
        total += log["wall_seconds"]
        videos = f"{log['videos']} + {log['text_scenes']} text-only" if log.get("text_scenes") else log["videos"]
        loss = f"{float(losses[0]):.3f} -> {float(losses[-1]):.3f}" if losses else "not logged"
        rows.append(f"| {path.parent.name} | {log.get('device', '?')} | {videos} | {log['examples']} | {steps} | "
                    f"{speed:.2f} | {log['wall_seconds'] / 60:.1f} min | {loss} |")
    rows.append(f"| all | | | | | | {total / 60:.1f} min | |")
    return "\n".join(rows)


def eval_table(summary: dict) -> str:
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}%"

    rows = ["| metric | value | target |", "|---|---|---|",
            f"| accuracy, all test questions ({summary['overall']['questions']}) | {pct(summary['overall']['accuracy'])} | >= 90% |",
            f"| accuracy, seen compositions ({summary['seen']['questions']}) | {pct(summary['seen']['accuracy'])} | |",
            f"| accuracy, unseen compositions ({summary['unseen']['questions']}) | {pct(summary['unseen']['accuracy'])} | >= 80% |",
            f"| Spearman rho(events, soft tokens) over {summary['spearman_events_vs_tokens']['clips']} clips | "
            f"{summary['spearman_events_vs_tokens']['rho']:.3f} | >= 0.7 |",
            f"| mean soft tokens per clip / per video | {summary['mean_soft_tokens_per_clip']:.1f} / "
            f"{summary['mean_soft_tokens_per_video']:.1f} | |",
            f"| mean visual tokens into the LLM vs. uncompressed | {summary['mean_visual_tokens']:.1f} / "
            f"{summary['mean_full_visual_tokens']:.0f} = {pct(summary['visual_token_ratio'])} | <= 40% |",
            f"| clip captions identical to the ground truth | {pct(summary['exact_clip_captions'])} | |",
            "", "| task | accuracy (all) | accuracy (unseen) |", "|---|---|---|"]
    for task, result in summary["per_task"].items():
        rows.append(f"| {task} | {pct(result['accuracy'])} | {pct(summary['per_task_unseen'][task]['accuracy'])} |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="a run folder holding stage*/train_log.json")
    parser.add_argument("--summary", type=Path, default=None, help="an eval.evaluate *_summary.json to tabulate")
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        raise ValueError(f"--runs {args.runs} is not a folder.")
    print(training_table(args.runs))
    if args.summary is not None:
        print()
        print(eval_table(json.loads(args.summary.read_text())))


if __name__ == "__main__":
    main()

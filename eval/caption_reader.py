"""A symbolic reader of synthvid clip captions: the option a perfect reading of the captions picks for each
multiple-choice question (a diagnostic, no model).

    python -m eval.caption_reader --data data/synthvid --split test [--details runs/v48/eval/test_details.json] \
        [--output DIR]

On the ground-truth captions it measures how far the captions determine the answers, the ceiling of any LLM that
reads them (the oracle of `eval.evaluate --ground-truth-captions`); with `--details` (an `eval.evaluate` details
file) it reads the expert's own captions, what the expert's errors cost before any LLM reading. A question whose
answer the captions leave open (none or several options fit) counts as wrong and as `undetermined`. Writes
`OUTPUT/caption_reader_<split>[_expert].json` when `--output` is given.

The reading follows the caption rules of `synthvid.captions` (object list at the clip's first frame, one sentence
per event, objects named by their colour at the clip's first frame) and the question rules of
`synthvid.questions` (objects named at their first visible frame, time phrases per clip).
"""

import argparse
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from eval.evaluate import accuracy, report_result
from synthvid import HELD_OUT_PAIRS
from synthvid.captions import listed_names, parse_event, split_sentences
from synthvid.questions import ACTION_VERBS, SIZE_ANSWERS, STAYS_STILL, TIME_PHRASES
from synthvid.spec import APPEAR, CHANGE_COLOR, GROW, MOVE, SHRINK
from synthvid.truth import STOP
from train.data import read_split


@dataclass(frozen=True)
class Event:
    """One event sentence of a clip caption: its `kind` (a key of `EVENT_TEMPLATES`), the object's `name` (colour
    shape), the direction or new colour `arg` (else None), the clip index and the sentence without its period."""

    kind: str
    name: str
    arg: str | None
    clip: int
    text: str


class CaptionReading:
    """The parsed clip captions of one video: per clip, the object names listed and the event sentences in order.

    Sentences no caption template makes are ignored (an expert may write them); an object is followed through its
    colour changes (`aliases`)."""

    def __init__(self, captions: list[str]):
        self.num_clips = len(captions)
        self.listed: list[list[str]] = []
        self.events: list[Event] = []
        for clip, caption in enumerate(captions):
            sentences = split_sentences(caption)
            self.listed.append([name for sentence in sentences for name in listed_names(sentence)])
            self.events += [Event(*event, clip, sentence[:-1]) for sentence in sentences
                            if (event := parse_event(sentence)) is not None]

    def aliases(self, name: str) -> set[str]:
        """`name` and every name the object takes later by its colour changes (`the red circle turns blue` ->
        `blue circle`), in time order."""
        names = {name}
        for event in self.events:
            if event.kind == CHANGE_COLOR and event.name in names:
                names.add(f"{event.arg} {event.name.split()[1]}")
        return names

    def events_of(self, name: str, kinds=None) -> list[Event]:
        names = self.aliases(name)
        return [e for e in self.events if e.name in names and (kinds is None or e.kind in kinds)]

    def mentioned_names(self) -> set[str]:
        """Every colour+shape name the captions write: in the object lists and as an event's subject."""
        return {name for clip in self.listed for name in clip} | {e.name for e in self.events}

    def present_names(self) -> set[str]:
        """Every colour+shape name an object carries while visible: the object lists, appearances, colour changes."""
        names = {name for clip in self.listed for name in clip} | {e.name for e in self.events if e.kind == APPEAR}
        return names | {f"{e.arg} {e.name.split()[1]}" for e in self.events if e.kind == CHANGE_COLOR}


def _subject(question: str, pattern: str) -> str:
    match = re.fullmatch(pattern, question)
    if match is None:
        raise ValueError(f"question {question!r} does not match the synthvid template {pattern!r}")
    return match.group(1)


def _size_answer(reading: CaptionReading, name: str) -> str | None:
    """grows / shrinks / grows then shrinks / shrinks then grows from the object's size sentences in clip order
    (an ongoing change is written in every clip it spans, so consecutive repeats merge)."""
    kinds = [e.kind for e in reading.events_of(name, (GROW, SHRINK))]
    merged = tuple(k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k)
    return SIZE_ANSWERS.get(merged)


def read_answer(reading: CaptionReading, question: dict) -> list[int]:
    """The options (indices) that the captions support for one synthvid question; exactly one when the captions
    determine the answer. Raises `ValueError` for a task or question text that synthvid does not make."""
    task, text, options = question["task"], question["question"], question["options"]
    if task == "existence":
        present = reading.present_names()
        return [i for i, option in enumerate(options) if option in present]
    if task == "counting":
        count = len(reading.listed[0]) + sum(e.kind == APPEAR for e in reading.events) if reading.listed else 0
        answer = str(count)
    elif task == "color":
        shape = _subject(text, r"what color is the (\w+) at the start\?")
        colors = {name.split()[0] for name in reading.listed[0] if name.split()[1] == shape} if reading.listed else set()
        answer = colors.pop() if len(colors) == 1 else None
    elif task == "action":
        name = _subject(text, r"what does the (\w+ \w+) do\?")
        kinds = {e.kind for e in reading.events_of(name, ACTION_VERBS)}
        answer = STAYS_STILL if not kinds else ACTION_VERBS[kinds.pop()] if len(kinds) == 1 else None
    elif task == "direction":
        name = _subject(text, r"which way does the (\w+ \w+) move\?")
        directions = {e.arg for e in reading.events_of(name, (MOVE,))}
        answer = directions.pop() if len(directions) == 1 else None
    elif task == "order":
        first = {e.text: e.clip for e in reversed(reading.events)}
        clips = [first.get(option, reading.num_clips) for option in options]
        return [i for i, clip in enumerate(clips) if clip == min(clips) and clip < reading.num_clips]
    elif task == "state_change" and text.startswith("what color"):
        name = _subject(text, r"what color does the (\w+ \w+) turn\?")
        turns = reading.events_of(name, (CHANGE_COLOR,))
        answer = turns[0].arg if turns else None
    elif task == "state_change":
        answer = _size_answer(reading, _subject(text, r"does the (\w+ \w+) grow or shrink\?"))
    elif task == "temporal_localization":
        if text.endswith("appear?"):
            name = _subject(text, r"when does the (\w+ \w+) appear\?")
            found = [e for e in reading.events if e.kind == APPEAR and e.name == name]
        else:
            found = reading.events_of(_subject(text, r"when does the (\w+ \w+) start moving\?"), (MOVE,))
        answer = TIME_PHRASES[found[0].clip] if found and reading.num_clips == len(TIME_PHRASES) else None
    else:
        raise ValueError(f"task {task!r} is not a synthvid task")
    return [i for i, option in enumerate(options) if option == answer]


def held_out_pair_mentions(records: list[dict], captions: dict[str, list[str]]) -> dict:
    """`{"in_truth", "written", "invented"}`: over the clips of `records` and the synthvid held-out pairs, how many
    (clip, pair) ground-truth captions name, how many of those `captions` name too, and how many `captions` name
    where the ground truth does not. A captioner that never learned a held-out pair writes a seen one instead."""
    counts = {"in_truth": 0, "written": 0, "invented": 0}
    for record in records:
        for truth, written in zip(record["clip_captions"], captions[record["id"]]):
            named, said = CaptionReading([truth]).mentioned_names(), CaptionReading([written]).mentioned_names()
            for pair in map(" ".join, HELD_OUT_PAIRS):
                counts["in_truth"] += pair in named
                counts["written"] += pair in named and pair in said
                counts["invented"] += pair in said and pair not in named
    return counts


def read_split_answers(records: list[dict], captions: dict[str, list[str]] | None = None) -> dict:
    """`{"overall", "unseen", "per_task", "undetermined", "undetermined_per_task"}` of the symbolic reader over the
    questions of `records` (`train.data.read_split`), reading each video's ground-truth clip captions, or
    `captions[video id]` when given (an expert's; then also `"held_out_pairs"`, `held_out_pair_mentions`). Raises
    `ValueError` for a video missing from `captions`."""
    rows = []
    for record in records:
        if captions is not None and record["id"] not in captions:
            raise ValueError(f"captions: no captions for video {record['id']!r}")
        reading = CaptionReading(record["clip_captions"] if captions is None else captions[record["id"]])
        for question in record["questions"]:
            supported = read_answer(reading, question)
            rows.append({"task": question["task"], "unseen": record.get("unseen", False),
                         "correct": supported == [question["answer"]], "undetermined": len(supported) != 1})
    per_task = defaultdict(list)
    for row in rows:
        per_task[row["task"]].append(row)
    result = {"overall": accuracy(rows), "unseen": accuracy(r for r in rows if r["unseen"]),
              "per_task": {task: accuracy(group) for task, group in sorted(per_task.items())},
              "undetermined": accuracy(rows, "undetermined"),
              "undetermined_per_task": {task: accuracy(group, "undetermined")
                                        for task, group in sorted(per_task.items())}}
    if captions is not None:
        result["held_out_pairs"] = held_out_pair_mentions(records, captions)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--details", type=Path, default=None,
                        help="an eval.evaluate details JSON: read its videos' generated captions instead of the "
                             "ground truth")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    captions = None
    if args.details is not None:
        with open(args.details) as handle:
            captions = {video: row["captions"] for video, row in json.load(handle)["videos"].items()}
    result = read_split_answers(read_split(args.data, args.split), captions)
    result.update(split=args.split, captions="ground truth" if captions is None else str(args.details))
    report_result(result, args.output, f"caption_reader_{args.split}{'' if captions is None else '_expert'}.json")


if __name__ == "__main__":
    main()

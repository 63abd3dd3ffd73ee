"""Tests of synthvid: spec validation, deterministic rendering and mp4 output, ground truth, density-aware captions,
well-defined questions, the sampler's visual-clarity rules and the dataset splits (held-out pairs, determinism).

Fast (a few seconds), offline and deterministic. Run: `HF_HUB_OFFLINE=1 python -m pytest -q tests/test_synthvid.py`.
"""

import copy
import json
import os
import sys
from collections import Counter

import numpy as np
import pytest


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from synthvid import (  # noqa: E402
    HELD_OUT_PAIRS,
    TASKS,
    caption_event_count,
    clip_captions,
    clip_event_counts,
    compute_truth,
    format_answer,
    format_question,
    generate_questions,
    has_held_out_pair,
    make_spec,
    open_question,
    permute_options,
    read_mp4,
    render_frames,
    sample_scene,
    scene_pairs,
    validate_spec,
    video_caption,
    write_mp4,
)
from synthvid.build import main as build_main  # noqa: E402
from synthvid.dataset import make_record  # noqa: E402
from synthvid.questions import SIZE_ANSWERS, STAYS_STILL, TIME_PHRASES  # noqa: E402
from synthvid.sampler import (  # noqa: E402
    INITIAL_SIZES,
    MAX_EVENTS_PER_OBJECT,
    MIN_SIZE_CHANGE,
    MIN_SPAN_FRAMES,
    SPEEDS,
)
from synthvid.spec import COLORS  # noqa: E402

NUM_SAMPLED_SCENES = 200
HELD_OUT_NAMES = [f"{c} {s}" for c, s in HELD_OUT_PAIRS]


def scene_spec(objects, **overrides) -> dict:
    spec = {"width": 64, "height": 64, "fps": 8, "num_frames": 16, "background": "gray", "objects": objects}
    spec.update(overrides)
    return spec


def obj(shape, color, position, size=6, events=()):
    return {"shape": shape, "color": color, "size": size, "position": list(position), "events": list(events)}


EMPTY = scene_spec([])
STATIC = scene_spec([obj("circle", "red", (12, 12)), obj("square", "blue", (40, 12)),
                     obj("triangle", "green", (30, 45))])
BUSY = scene_spec([
    obj("circle", "red", (40, 20), events=[
        {"type": "move", "start": 4, "end": 10, "direction": "left", "speed": 2.0}]),
    obj("square", "blue", (16, 48), events=[
        {"type": "change_color", "frame": 5, "color": "green"},
        {"type": "grow", "start": 8, "end": 12, "rate": 1.0}]),
    obj("triangle", "yellow", (48, 48), events=[{"type": "appear", "frame": 6}]),
])
BUSY_2 = scene_spec([
    obj("triangle", "green", (20, 20), size=8, events=[
        {"type": "shrink", "start": 0, "end": 4, "rate": 1.0}, {"type": "disappear", "frame": 13}]),
    obj("square", "purple", (44, 44), events=[
        {"type": "move", "start": 12, "end": 16, "direction": "right", "speed": 2.0}]),
], background="white")


def sampled_specs(count=NUM_SAMPLED_SCENES, seed=1234):
    rng = np.random.default_rng(seed)
    return [sample_scene(rng) for _ in range(count)]


# --- spec validation ---------------------------------------------------------------------------------------------


def _with(mutate):
    spec = copy.deepcopy(BUSY)
    mutate(spec)
    return spec


INVALID_CASES = {
    "bad shape": (lambda s: s["objects"][0].update(shape="hexagon"), "objects[0].shape: must be one of"),
    "bad direction": (lambda s: s["objects"][0]["events"][0].update(direction="north"),
                      "objects[0].events[0].direction: must be one of left/right/up/down, got 'north'"),
    "start >= end": (lambda s: s["objects"][0]["events"][0].update(start=10, end=10), "objects[0].events[0].end"),
    "duplicate colour+shape": (lambda s: s["objects"][2].update(shape="circle", color="red"), "objects[2]: colour+shape"),
    "duplicate after colour change": (lambda s: s["objects"].append(obj("square", "green", (50, 10))),
                                      "objects[3]: colour+shape 'green square' at frame 5"),
    "frame out of range": (lambda s: s["objects"][1]["events"][0].update(frame=16), "objects[1].events[0].frame"),
    "span out of range": (lambda s: s["objects"][1]["events"][1].update(end=17), "objects[1].events[1].end"),
    "missing object key": (lambda s: s["objects"][1].pop("size"), "objects[1].size: missing required key"),
    "missing top-level key": (lambda s: s.pop("fps"), "fps: missing required key"),
    "missing event key": (lambda s: s["objects"][0]["events"][0].pop("speed"),
                          "objects[0].events[0].speed: missing required key"),
    "unknown key": (lambda s: s["objects"][0].update(colour="red"), "objects[0].colour: unknown key"),
    "wrong type": (lambda s: s.update(width="64"), "width: must be an integer"),
    "odd width": (lambda s: s.update(width=63), "width: must be even"),
    "bad colour": (lambda s: s["objects"][0].update(color="white"), "objects[0].color"),
    "bad background": (lambda s: s.update(background="pink"), "background"),
    "non-positive size": (lambda s: s["objects"][0].update(size=0), "objects[0].size: must be > 0"),
    "bad event type": (lambda s: s["objects"][0]["events"][0].update(type="jump"), "objects[0].events[0].type"),
    "event while invisible": (lambda s: s["objects"][2]["events"].append(
        {"type": "grow", "start": 2, "end": 8, "rate": 1.0}), "objects[2].events[1]: span [2, 8)"),
    "shrink to nothing": (lambda s: s["objects"][0]["events"].append(
        {"type": "shrink", "start": 10, "end": 16, "rate": 1.0}), "objects[0].events[1].rate"),
    "overlapping moves": (lambda s: s["objects"][0]["events"].append(
        {"type": "move", "start": 8, "end": 12, "direction": "up", "speed": 2.0}), "objects[0].events[1]: overlaps"),
    "position not a pair": (lambda s: s["objects"][0].update(position=[1, 2, 3]), "objects[0].position"),
}


@pytest.mark.parametrize("case", sorted(INVALID_CASES))
def test_invalid_spec_names_the_field(case):
    mutate, expected = INVALID_CASES[case]
    with pytest.raises(ValueError) as error:
        validate_spec(_with(mutate))
    assert expected in str(error.value)
    assert str(error.value).startswith(expected.split(":")[0])


def test_spec_round_trip():
    for spec in (EMPTY, STATIC, BUSY, BUSY_2):
        scene = validate_spec(spec)
        assert validate_spec(scene.to_spec()) == scene
        json.dumps(scene.to_spec())


# --- rendering ---------------------------------------------------------------------------------------------------


def test_render_is_deterministic_and_draws_objects():
    scene = validate_spec(BUSY)
    first, second = render_frames(scene), render_frames(validate_spec(copy.deepcopy(BUSY)))
    assert first.dtype == np.uint8 and first.shape == (16, 64, 64, 3)
    assert first.tobytes() == second.tobytes()
    assert tuple(first[0, 20, 40]) == COLORS["red"]  # the red circle's centre at frame 0
    assert tuple(first[15, 20, 28]) == COLORS["red"]  # after moving 6 frames x 2 px left
    assert tuple(first[0, 48, 16]) == COLORS["blue"] and tuple(first[5, 48, 16]) == COLORS["green"]
    assert tuple(first[5, 48, 48]) == (128, 128, 128) and tuple(first[6, 48, 48]) == COLORS["yellow"]  # appears
    assert (render_frames(validate_spec(EMPTY)) == 128).all()


def test_write_mp4_decodes_and_is_atomic(tmp_path):
    scene = validate_spec(BUSY)
    path = write_mp4(scene, tmp_path / "sub" / "busy.mp4")
    assert os.listdir(tmp_path / "sub") == ["busy.mp4"]  # no temporary file left behind
    frames = read_mp4(path)
    assert frames.shape == (16, 64, 64, 3)
    assert np.abs(frames.astype(int) - render_frames(scene)).mean() < 4  # lossy but faithful
    again = write_mp4(scene, tmp_path / "again.mp4")
    assert again.read_bytes() == path.read_bytes()


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path):
    from synthvid.files import write_atomic, write_text_atomic

    path = write_text_atomic(tmp_path / "sub" / "results.json", "old\n")
    assert path.read_text() == "old\n"

    def failing(tmp):
        assert tmp.suffix == ".json" and tmp.parent == path.parent  # a sibling with the same suffix
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, failing)
    assert path.read_text() == "old\n" and os.listdir(path.parent) == ["results.json"]


# --- ground truth and captions -----------------------------------------------------------------------------------


def test_ground_truth_states_and_events():
    truth = compute_truth(validate_spec(BUSY))
    circle = [frame[0] for frame in truth.states]
    assert [s.position[0] for s in circle[3:12]] == [40, 40, 38, 36, 34, 32, 30, 28, 28]
    square = [frame[1] for frame in truth.states]
    assert [s.color for s in square[4:7]] == ["blue", "green", "green"]
    assert [s.size for s in square[7:14]] == [6, 6, 7, 8, 9, 10, 10]
    assert [frame[2].visible for frame in truth.states[4:8]] == [False, False, True, True]
    kinds = [(e.object_index, e.kind, e.start) for e in truth.events]
    assert kinds == [(0, "appear", 0), (0, "move", 4), (0, "stop", 10), (1, "appear", 0),
                     (1, "change_color", 5), (1, "grow", 8), (2, "appear", 6)]
    assert clip_event_counts(truth) == [0, 3, 3, 0]


STATIC_LIST = "a red circle, a green triangle and a blue square."  # left to right
EXPECTED_CAPTIONS = {
    "empty": (EMPTY, ["an empty scene."] * 4, [0, 0, 0, 0]),
    "static": (STATIC, [STATIC_LIST] * 4, [0, 0, 0, 0]),
    "busy": (BUSY, ["a blue square and a red circle.",
                    "a blue square and a red circle. the blue square turns green. the red circle moves left. "
                    "a yellow triangle appears.",
                    "a green square, a red circle and a yellow triangle. the green square grows. "
                    "the red circle moves left. the red circle stops.",
                    "a green square, a red circle and a yellow triangle."], [0, 3, 3, 0]),
    "busy_2": (BUSY_2, ["a green triangle and a purple square. the green triangle shrinks.",
                        "a green triangle and a purple square.", "a green triangle and a purple square.",
                        "a green triangle and a purple square. the green triangle disappears. "
                        "the purple square moves right."],
               [1, 0, 0, 2]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CAPTIONS))
def test_captions_of_hand_written_specs(name):
    spec, expected, counts = EXPECTED_CAPTIONS[name]
    truth = compute_truth(validate_spec(spec))
    captions = clip_captions(truth)
    assert captions == expected
    assert clip_event_counts(truth) == counts
    assert [caption_event_count(c) for c in captions] == counts


def test_video_caption_keeps_the_scene_once_and_every_event():
    assert video_caption(clip_captions(compute_truth(validate_spec(BUSY)))) == (
        "a blue square and a red circle. the blue square turns green. the red circle moves left. a yellow triangle "
        "appears. the green square grows. the red circle moves left. the red circle stops."
    )
    assert video_caption(clip_captions(compute_truth(validate_spec(EMPTY)))) == "an empty scene."


def test_caption_length_grows_with_events():
    empty_clip = clip_captions(compute_truth(validate_spec(EMPTY)))[0]
    static_clip = clip_captions(compute_truth(validate_spec(STATIC)))[1]
    busy_clip = clip_captions(compute_truth(validate_spec(BUSY)))[1]  # 3 events
    assert max(len(empty_clip.split()), len(static_clip.split())) < len(busy_clip.split())


def test_captions_are_templated_and_counts_match_on_sampled_scenes():
    for spec in sampled_specs():
        truth = compute_truth(validate_spec(spec))
        captions = clip_captions(truth)
        assert len(captions) == 4
        for clip, caption in enumerate(captions):
            assert caption == caption.lower() and caption.endswith(".")
            assert caption_event_count(caption) == clip_event_counts(truth)[clip]


def test_every_caption_sentence_has_a_kind():
    from synthvid.captions import EVENT_TEMPLATES, sentence_kind, split_sentences

    kinds = set()
    for spec in sampled_specs() + [BUSY, EMPTY, STATIC]:
        for caption in clip_captions(compute_truth(validate_spec(spec))):
            kinds.update(sentence_kind(sentence) for sentence in split_sentences(caption))
    assert "other" not in kinds and "objects" in kinds and "empty" in kinds
    assert kinds - {"objects", "empty"} <= set(EVENT_TEMPLATES)
    assert sentence_kind("the red circle turns blue.") == "change_color"
    assert sentence_kind("a red circle and a blue square.") == "objects"
    assert sentence_kind("a red circle appears.") == "appear"
    assert sentence_kind("the red circle dances.") == "other"


# --- questions ---------------------------------------------------------------------------------------------------


def _object_by_name(truth, name):
    """Indices of the objects that carry `name` at some visible frame."""
    return [i for i in range(len(truth.scene.objects)) if name in truth.names_of(i)]


def _kinds(spec_object):
    return [e.type for e in spec_object.events]


def _option_is_true(truth, question, option) -> bool:
    """Independent semantic check of one option against the ground truth."""
    task, text, objects = question["task"], question["question"], truth.scene.objects
    if task == "existence":
        return bool(_object_by_name(truth, option))
    if task == "counting":
        return int(option) == sum(any(f[i].visible for f in truth.states) for i in range(len(objects)))
    if task == "color":
        shape = text.split()[4]
        return any(s.visible and s.shape == shape and s.color == option for s in truth.states[0])
    name = " ".join(text.split("the ")[1].split()[:2]) if "the " in text else None
    if task in ("action", "direction", "state_change", "temporal_localization"):
        (index,) = _object_by_name(truth, name)
        events = sorted(objects[index].events, key=lambda e: e.start)
        kinds = set(_kinds(objects[index])) - {"appear"}
        if task == "action":
            verbs = {"move": "moves", "grow": "grows", "shrink": "shrinks", "change_color": "changes color",
                     "disappear": "disappears"}
            return option == STAYS_STILL if not kinds else option in {verbs[k] for k in kinds}
        if task == "direction":
            return option in {e.direction for e in events if e.type == "move"}
        if task == "state_change" and text.startswith("what color"):
            return option in {e.color for e in events if e.type == "change_color"}
        if task == "state_change":
            sequence = tuple(e.type for e in events if e.type in ("grow", "shrink"))
            return SIZE_ANSWERS.get(sequence) == option
        kind = "move" if "moving" in text else "appear"
        frames = [e.start for e in events if e.type == kind]
        return TIME_PHRASES.index(option) == frames[0] // 4
    if task == "order":
        clips = {}
        for candidate in question["options"]:
            clip = _sentence_clip(truth, candidate)
            if clip is not None:
                clips[candidate] = clip
        return option in clips and all(clips[option] < c for o, c in clips.items() if o != option)
    raise AssertionError(f"unknown task {task}")


def _sentence_clip(truth, sentence):
    """Clip where the event a sentence describes first starts, or None if it never happens."""
    words = sentence.split()
    name = f"{words[1]} {words[2]}"
    candidates = _object_by_name(truth, name)
    if not candidates:
        return None
    (index,) = candidates
    verb, rest = words[3], words[4:]
    kind = {"moves": "move", "stops": "stop", "appears": "appear", "disappears": "disappear",
            "turns": "change_color", "grows": "grow", "shrinks": "shrink"}[verb]
    starts = [e.start for e in truth.events if e.object_index == index and e.kind == kind and not e.intro
              and (kind != "move" or e.direction == rest[0]) and (kind != "change_color" or e.color == rest[0])]
    return min(starts) // 4 if starts else None


def test_every_question_has_one_correct_option_and_distinct_options():
    tasks = Counter()
    for seed, spec in enumerate(sampled_specs()):
        truth = compute_truth(validate_spec(spec))
        for question in generate_questions(truth, np.random.default_rng(seed)):
            tasks[question["task"]] += 1
            options = question["options"]
            assert len(options) == 4 and len(set(options)) == 4, question
            assert options[question["answer"]] == question["answer_text"]
            truths = [_option_is_true(truth, question, o) for o in options]
            assert truths.count(True) == 1 and truths[question["answer"]], (question, truths, spec)
    assert set(tasks) == set(TASKS) and len(tasks) >= 8, tasks


def test_questions_are_deterministic_and_answers_balanced():
    specs = sampled_specs(100)
    runs = [[generate_questions(compute_truth(validate_spec(s)), np.random.default_rng(i)) for i, s in
             enumerate(specs)] for _ in range(2)]
    assert runs[0] == runs[1]
    answers = Counter(q["answer"] for questions in runs[0] for q in questions)
    assert min(answers.values()) > 0.15 * sum(answers.values())


def test_question_formats():
    question = {"task": "direction", "question": "which way does the red circle move?",
                "options": ["up", "left", "down", "right"], "answer": 1, "answer_text": "left"}
    assert format_question(question) == "which way does the red circle move?\n(A) up\n(B) left\n(C) down\n(D) right"
    assert format_answer(question) == "left (B)"
    assert open_question(question) == ("which way does the red circle move?", "left")
    with pytest.raises(ValueError, match="options"):
        format_question({**question, "options": ["up"]})


def test_permute_options_keeps_the_answer_with_its_option():
    import random

    question = {"task": "direction", "question": "which way does the red circle move?",
                "options": ["up", "left", "down", "right"], "answer": 1, "answer_text": "left"}
    rng = random.Random(0)
    permuted = [permute_options(question, rng) for _ in range(40)]
    assert all(sorted(p["options"]) == sorted(question["options"]) for p in permuted)
    assert all(p["options"][p["answer"]] == "left" for p in permuted)
    assert {p["answer"] for p in permuted} == {0, 1, 2, 3}  # every letter is reached
    assert question["options"] == ["up", "left", "down", "right"]  # the input is not modified
    assert permuted == [permute_options(question, r) for r in [random.Random(0)] for _ in range(40)]
    with pytest.raises(ValueError, match="answer"):
        permute_options({**question, "answer": 4}, rng)


# --- sampler -----------------------------------------------------------------------------------------------------


def test_sampler_makes_visually_clear_scenes():
    densities = Counter()
    for spec in sampled_specs():
        scene = validate_spec(spec)
        assert len(scene.objects) <= 4
        densities["empty" if not scene.objects else "busy" if sum(len(o.events) for o in scene.objects) > 2
                  else "other"] += 1
        for index, scene_object in enumerate(scene.objects):
            assert INITIAL_SIZES[0] <= scene_object.size <= INITIAL_SIZES[1]
            assert len(scene_object.events) <= MAX_EVENTS_PER_OBJECT
            for event in scene_object.events:
                if event.type == "move":
                    assert SPEEDS[0] <= event.speed <= SPEEDS[-1] and event.end - event.start >= MIN_SPAN_FRAMES
                if event.type in ("grow", "shrink"):
                    assert event.rate * (event.end - event.start) >= MIN_SIZE_CHANGE
            truth = compute_truth(scene)
            for states in truth.states:
                state = states[index]
                if state.visible:
                    x, y = state.position
                    assert state.size <= x <= 63 - state.size and state.size <= y <= 63 - state.size
    assert densities["empty"] > 0 and densities["busy"] > 0 and densities["other"] > 0


def test_sampler_respects_allowed_pairs():
    allowed = [("red", "circle"), ("green", "square"), ("blue", "square"), ("purple", "triangle")]
    rng = np.random.default_rng(7)
    for _ in range(50):
        spec = sample_scene(rng, density="busy", allowed_pairs=allowed)
        assert scene_pairs(spec) <= set(allowed)
    with pytest.raises(ValueError, match="density"):
        sample_scene(rng, density="crowded")


# --- splits ------------------------------------------------------------------------------------------------------


def test_held_out_pairs_only_in_unseen_scenes():
    for group in ("train", "val", "test"):
        for index in range(100):
            assert not has_held_out_pair(make_spec(group, 0, index)), (group, index)
    for index in range(50):
        assert has_held_out_pair(make_spec("test_unseen", 0, index)), index


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    args = ["--train", "8", "--val", "2", "--test", "3", "--test-unseen", "3", "--seed", "5"]
    first, second = tmp_path_factory.mktemp("synthvid_a"), tmp_path_factory.mktemp("synthvid_b")
    build_main(["--out", str(first), *args])
    build_main(["--out", str(second), *args, "--workers", "2"])
    return first, second


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_withheld_held_out_colors_are_never_offered_in_training_colour_questions(tmp_path):
    from synthvid.dataset import build_dataset

    def offered(record):  # held-out colours offered for their shape by a colour question
        return [f"{option} {shape}" for question in record["questions"] if question["task"] == "color"
                for shape in [question["question"].split()[4]] for option in question["options"]
                if f"{option} {shape}" in HELD_OUT_NAMES]

    default = [make_record("train", 0, index) for index in range(40)]
    withheld = [make_record("train", 0, index, withhold_held_out_colors=True) for index in range(40)]
    assert sum(map(len, map(offered, default))) > 5  # the leak: a held-out colour as a shape's wrong answer
    assert not any(map(offered, withheld))
    for key in ("spec", "clip_captions", "video_caption"):  # the same scenes; only the questions' draws change
        assert [r[key] for r in withheld] == [r[key] for r in default]
    assert [[q["task"] for q in r["questions"]] for r in withheld] == [[q["task"] for q in r["questions"]]
                                                                       for r in default]
    for group in ("val", "test", "test_unseen"):  # evaluation data stays comparable across builds
        for index in range(5):
            assert make_record(group, 0, index, withhold_held_out_colors=True) == make_record(group, 0, index)
    meta = build_dataset(tmp_path, {"train": 1}, 0, withhold_held_out_colors=True)
    assert meta["withhold_held_out_colors"] is True


def test_answer_names_held_out_pair_reads_colour_questions_with_their_shape():
    from synthvid import answer_names_held_out_pair

    def question(task, text, answer, others=("green", "purple", "orange")):
        return {"task": task, "question": text, "options": [*others, answer], "answer": 3}

    assert answer_names_held_out_pair(question("color", "what color is the square at the start?", "yellow"))
    assert not answer_names_held_out_pair(question("color", "what color is the circle at the start?", "yellow"))
    assert answer_names_held_out_pair(question("existence", "which object appears in the video?", "yellow square"))
    assert answer_names_held_out_pair(question("action", "what does the blue circle do?", "the blue circle moves"))
    assert not answer_names_held_out_pair(question("existence", "which object appears?", "yellow squares"))
    assert not answer_names_held_out_pair(question("counting", "how many objects appear in the video?", "3"))
    records = [make_record("test_unseen", 0, index) for index in range(20)]
    flagged = [q for r in records for q in r["questions"] if answer_names_held_out_pair(q)]
    assert {q["task"] for q in flagged} >= {"color", "existence"}
    assert not any(answer_names_held_out_pair(q) for i in range(20) for q in make_record("test", 0, i)["questions"])


def test_text_only_records_continue_the_training_scenes_without_videos(built):
    from synthvid import text_only_records

    first = built[0]
    train = _read(first / "train.jsonl")
    again = text_only_records(5, 0, len(train))  # the built scenes, re-sampled as text
    assert [r["clip_captions"] for r in again] == [r["clip_captions"] for r in train]
    assert [r["questions"] for r in again] == [r["questions"] for r in train]
    assert all(r["video"] is None for r in again)
    more = text_only_records(5, len(train), 4, workers=2)
    assert [r["id"] for r in more] == [f"train_{i:06d}" for i in range(len(train), len(train) + 4)]
    assert not any(has_held_out_pair(r["spec"]) for r in more)
    assert not list((first / "videos" / "train").glob(f"{more[0]['id']}*"))  # nothing rendered
    with pytest.raises(ValueError, match="count"):
        text_only_records(5, 0, -1)


def test_build_is_deterministic(built):
    first, second = built
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "meta.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_build_layout_and_held_out_pairs(built):
    out = built[0]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["held_out_pairs"] == [list(p) for p in HELD_OUT_PAIRS]
    assert meta["counts"] == {"train": 8, "val": 2, "test": 3, "test_unseen": 3}
    assert set(meta["task_histogram"]["train"]) == set(TASKS)
    records = {split: _read(out / f"{split}.jsonl") for split in ("train", "val", "test")}
    assert [len(records[s]) for s in ("train", "val", "test")] == [8, 2, 6]
    ids = [r["id"] for rs in records.values() for r in rs]
    assert len(ids) == len(set(ids))
    for split, split_records in records.items():
        for record in split_records:
            assert set(record) == {"id", "split", "video", "unseen", "spec", "clip_captions", "video_caption",
                                   "clip_event_counts", "questions"}
            assert record["split"] == split and record["video"] == f"videos/{split}/{record['id']}.mp4"
            assert (out / record["video"]).is_file()
            assert len(record["clip_captions"]) == 4 and len(record["clip_event_counts"]) == 4
            assert has_held_out_pair(record["spec"]) == record["unseen"]
            if not record["unseen"]:  # held-out names never occur in seen text either
                text = json.dumps([record["clip_captions"], record["questions"]])
                assert not any(name in text for name in HELD_OUT_NAMES)
    assert sum(r["unseen"] for r in records["test"]) == 3
    assert not any(name.startswith(".") for name in os.listdir(out))
    frames = read_mp4(out / records["train"][0]["video"])
    assert frames.shape == (16, 64, 64, 3)


def test_attribute_maps_match_the_rendered_frames():
    from synthvid import COLORS, SHAPES, render_attribute_maps

    spec = {"width": 32, "height": 32, "fps": 8, "num_frames": 4, "background": "white", "objects": [
        {"shape": "square", "color": "blue", "size": 4, "position": [10, 10],
         "events": [{"type": "change_color", "frame": 2, "color": "red"}]},
        {"shape": "triangle", "color": "green", "size": 5, "position": [12, 12], "events": []},
    ]}
    scene = validate_spec(spec)
    frames = render_frames(scene)
    colors, shapes = render_attribute_maps(scene)
    assert colors.shape == shapes.shape == frames.shape[:3]
    # labelled pixels are exactly the non-background pixels, and each label's colour is the pixel's colour
    assert np.array_equal(colors > 0, (frames != 255).any(-1))
    palette = np.array([(255, 255, 255), *COLORS.values()], dtype=np.uint8)
    assert np.array_equal(palette[colors], frames)
    # the triangle is drawn on top of the square; the square turns red at frame 2
    assert shapes[0, 12, 12] == 1 + SHAPES.index("triangle")
    assert colors[3, 6, 6] == 1 + list(COLORS).index("red") and colors[0, 6, 6] == 1 + list(COLORS).index("blue")

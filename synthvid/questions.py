"""MVBench-style multiple-choice questions generated from the ground truth.

Each question is a dict `{"task", "question", "options" (4 strings), "answer" (index 0-3), "answer_text"}`, plus
for the tasks whose bare question has several valid short answers (existence, order) the well-defined open form
`"open_question"`/`"open_answer"`. Rendered prompt (`format_question`):

    {question}
    (A) {o0}
    (B) {o1}
    (C) {o2}
    (D) {o3}

and target (`format_answer`): `{answer_text} ({letter})`, the answer's text first, then its letter: a small LLM
trained from scratch learns to read the answer out of the captions this way, where it does not learn to emit the
letter first (train/RUNS.md, the text QA probe). A question is generated only when it is well defined: exactly one
correct option, the other three distinct, plausible and wrong; options are shuffled with the RNG.
Objects are named by colour+shape at their first visible frame, and only when no other object ever carries that
name. At most one question per task and scene.

Tasks (question -> options):

- existence: "which object appears in the video?" -> 4 colour+shape names, one present;
- counting: "how many objects appear in the video?" -> 4 numbers in [0, 5];
- color: "what color is the {shape} at the start?" -> 4 colours (the shape is unique in the scene);
- action: "what does the {object} do?" -> moves / grows / shrinks / changes color / disappears / stays still
  (objects with a single kind of action);
- direction: "which way does the {object} move?" -> left / right / up / down;
- order: "what happens first?" -> 4 event sentences (as in the captions, no period): one that starts in an
  earlier clip than the other options, which are later real events, topped up with events that never happen;
- state_change: "what color does the {object} turn?" -> 4 colours, or "does the {object} grow or shrink?" ->
  grows / shrinks / grows then shrinks / shrinks then grows;
- temporal_localization: "when does the {object} start moving?" / "when does the {object} appear?" ->
  at the beginning / in the first half / in the second half / at the end (clips 0, 1, 2, 3; 4-clip videos only).
"""

import numpy as np

from .captions import event_text
from .spec import APPEAR, CHANGE_COLOR, COLORS, DIRECTIONS, DISAPPEAR, GROW, MOVE, SHAPES, SHRINK
from .truth import GroundTruth, TruthEvent


NUM_OPTIONS = 4
LETTERS = "ABCD"
TASKS = ("existence", "counting", "color", "action", "direction", "order", "state_change", "temporal_localization")
MAX_COUNT_OPTION = 5  # counting options are drawn from 0..MAX_COUNT_OPTION
ACTION_VERBS = {MOVE: "moves", GROW: "grows", SHRINK: "shrinks", CHANGE_COLOR: "changes color",
                DISAPPEAR: "disappears"}
STAYS_STILL = "stays still"
SIZE_ANSWERS = {(GROW,): "grows", (SHRINK,): "shrinks", (GROW, SHRINK): "grows then shrinks",
                (SHRINK, GROW): "shrinks then grows"}
TIME_PHRASES = ("at the beginning", "in the first half", "in the second half", "at the end")  # clips 0..3
ALL_NAMES = tuple(f"{color} {shape}" for color in COLORS for shape in SHAPES)


# --- rendering --------------------------------------------------------------------------------------------------


def _check_question(question: dict) -> None:
    options = question.get("options")
    if not isinstance(options, list) or len(options) != NUM_OPTIONS:
        raise ValueError(f"options: expected a list of {NUM_OPTIONS} strings, got {options!r}")
    if not isinstance(question.get("answer"), int) or not 0 <= question["answer"] < NUM_OPTIONS:
        raise ValueError(f"answer: expected an index in [0, {NUM_OPTIONS}), got {question.get('answer')!r}")


def format_question(question: dict) -> str:
    """The multiple-choice prompt: the question, then one `(A) option` line per option.

    Raises:
        ValueError: if the question does not have 4 options and an answer index in [0, 4).
    """
    _check_question(question)
    lines = [question["question"]] + [f"({letter}) {o}" for letter, o in zip(LETTERS, question["options"])]
    return "\n".join(lines)


def format_answer(question: dict, spaced: bool = False) -> str:
    """The target answer string, e.g. `red circle (B)` (answer text first, then the option letter); with `spaced`,
    ` red circle (B)`, as a model trained with `train.run --spaced-answers` writes it (run v53)."""
    _check_question(question)
    return f"{' ' if spaced else ''}{question['answer_text']} ({LETTERS[question['answer']]})"


def option_answer(question: dict, index: int, spaced: bool = False) -> str:
    """The answer that names option `index`, right or not: its text and its letter (`format_answer`'s form).
    Raises `ValueError` like `format_question`, or `IndexError` for an `index` outside the options."""
    return format_answer({**question, "answer": index, "answer_text": question["options"][index]}, spaced)


def permute_options(question: dict, rng) -> dict:
    """A copy of `question` with its options in a new random order and `answer` following its option.

    Training re-draws the order for every example so that the letter can only be read from the options, never
    memorised per question. `rng` is a `random.Random`. Raises `ValueError` like `format_question`.
    """
    _check_question(question)
    order = list(range(NUM_OPTIONS))
    rng.shuffle(order)
    return {**question, "options": [question["options"][i] for i in order], "answer": order.index(question["answer"])}


def open_question(question: dict) -> tuple[str, str]:
    """The open-ended form `(question without options, short answer text)`."""
    return question.get("open_question", question["question"]), question.get("open_answer", question["answer_text"])


# --- helpers ----------------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _sample(rng: np.random.Generator, items: list, count: int) -> list:
    """`count` distinct items of `items` (in random order). Raises `ValueError` if there are too few."""
    if len(items) < count:
        raise ValueError(f"need {count} items to sample, got {len(items)}")
    return [items[int(i)] for i in rng.choice(len(items), size=count, replace=False)]


def _make(task: str, question: str, correct: str, distractors: list[str], rng: np.random.Generator) -> dict:
    """Assemble a question with the options shuffled.

    Raises:
        ValueError: unless there are exactly 3 distractors, all distinct and different from `correct`.
    """
    options = [correct, *distractors]
    if len(options) != NUM_OPTIONS or len(set(options)) != NUM_OPTIONS:
        raise ValueError(f"{task}: options must be {NUM_OPTIONS} distinct strings, got {options}")
    order = rng.permutation(NUM_OPTIONS)
    shuffled = [options[int(i)] for i in order]
    return {"task": task, "question": question, "options": shuffled, "answer": shuffled.index(correct),
            "answer_text": correct}


def _with_plausible_first(rng: np.random.Generator, plausible: list, others: list, count: int) -> list:
    """`count` items, from `plausible` when it has enough, topped up from `others`."""
    if len(plausible) >= count:
        return _sample(rng, plausible, count)
    return plausible + _sample(rng, others, count - len(plausible))


def object_references(truth: GroundTruth) -> dict[int, str]:
    """`{object index: name}` for the objects a question may name: the name at the first visible frame, when no
    other object carries it at any frame."""
    owners = {}
    for index in range(len(truth.scene.objects)):
        for name in truth.names_of(index, visible_only=False):
            owners.setdefault(name, set()).add(index)
    references = {}
    for index in range(len(truth.scene.objects)):
        first = truth.first_visible_frame(index)
        name = truth.name_at(index, first)
        if owners[name] == {index}:
            references[index] = name
    return references


def _spec_events(truth: GroundTruth, index: int, kind: str) -> list:
    return sorted((e for e in truth.scene.objects[index].events if e.type == kind), key=lambda e: e.start)


# --- tasks (each returns a question dict or None) ---------------------------------------------------------------


def existence_question(truth, rng, references, excluded_names=()):
    present = sorted({name for i in range(len(truth.scene.objects)) for name in truth.names_of(i)})
    absent = [name for name in ALL_NAMES if name not in present and name not in excluded_names]
    if not present or len(absent) < NUM_OPTIONS - 1:
        return None
    correct = _pick(rng, present)
    words = {word for name in present for word in name.split()}
    plausible = [name for name in absent if set(name.split()) & words]
    others = [name for name in absent if name not in plausible]
    question = _make("existence", "which object appears in the video?", correct,
                     _with_plausible_first(rng, plausible, others, NUM_OPTIONS - 1), rng)
    listed = ", ".join(question["options"][:-1]) + f" or {question['options'][-1]}"
    question.update(open_question=f"which of these objects appears in the video: {listed}?", open_answer=correct)
    return question


def counting_question(truth, rng, references):
    count = len(truth.scene.objects)  # every object is visible at some frame
    if count > MAX_COUNT_OPTION:
        return None
    pool = [str(n) for n in range(MAX_COUNT_OPTION + 1) if n != count]
    return _make("counting", "how many objects appear in the video?", str(count),
                 _sample(rng, pool, NUM_OPTIONS - 1), rng)


def color_question(truth, rng, references, withheld_names=()):
    """`withheld_names`: colour+shape names whose colour is never offered as a wrong option for that shape."""
    objects = truth.scene.objects
    candidates = []
    for shape in SHAPES:
        holders = [i for i, obj in enumerate(objects) if obj.shape == shape]
        if len(holders) == 1 and truth.states[0][holders[0]].visible:
            candidates.append((shape, truth.states[0][holders[0]].color))
    if not candidates:
        return None
    shape, color = _pick(rng, candidates)
    others = [c for c in COLORS if c != color and f"{c} {shape}" not in withheld_names]
    return _make("color", f"what color is the {shape} at the start?", color, _sample(rng, others, NUM_OPTIONS - 1), rng)


def _action_kinds(truth: GroundTruth, index: int) -> set[str]:
    return {e.type for e in truth.scene.objects[index].events if e.type in ACTION_VERBS}


def action_question(truth, rng, references):
    candidates = []
    for index, name in references.items():
        kinds = _action_kinds(truth, index)
        has_appear = any(e.type == APPEAR for e in truth.scene.objects[index].events)
        if len(kinds) == 1:
            candidates.append((name, ACTION_VERBS[kinds.pop()]))
        elif not kinds and not has_appear:
            candidates.append((name, STAYS_STILL))
    if not candidates:
        return None
    name, verb = _pick(rng, candidates)
    others = [v for v in [*ACTION_VERBS.values(), STAYS_STILL] if v != verb]
    return _make("action", f"what does the {name} do?", verb, _sample(rng, others, NUM_OPTIONS - 1), rng)


def direction_question(truth, rng, references):
    candidates = []
    for index, name in references.items():
        directions = {e.direction for e in _spec_events(truth, index, MOVE)}
        if len(directions) == 1:
            candidates.append((name, directions.pop()))
    if not candidates:
        return None
    name, direction = _pick(rng, candidates)
    return _make("direction", f"which way does the {name} move?", direction,
                 [d for d in DIRECTIONS if d != direction], rng)


def _timeline(truth: GroundTruth) -> dict[str, int]:
    """`{event sentence (no period): earliest start frame}` of the non-intro events, named as in the captions."""
    timeline = {}
    for event in truth.events:
        if event.intro:
            continue
        clip_start = truth.clip_range(event.start // truth.frames_per_clip)[0]
        text = event_text(event, truth.name_at(event.object_index, clip_start))
        timeline[text] = min(timeline.get(text, event.start), event.start)
    return timeline


def _never_happening(truth: GroundTruth, references: dict[int, str]) -> list[str]:
    """Event sentences about named objects that never happen to them (order-question fillers)."""
    sentences = []
    for index, name in references.items():
        done = {(e.kind, e.direction, e.color) for e in truth.events if e.object_index == index}
        current = truth.states[truth.first_visible_frame(index)][index].color
        fake = [TruthEvent(index, MOVE, 0, 1, direction=d) for d in DIRECTIONS]
        fake += [TruthEvent(index, kind, 0, 1) for kind in (GROW, SHRINK, DISAPPEAR)]
        fake += [TruthEvent(index, CHANGE_COLOR, 0, 1, color=c) for c in COLORS if c != current]
        for event in fake:
            if event.kind == CHANGE_COLOR and any(kind == CHANGE_COLOR for kind, _, _ in done):
                continue
            if (event.kind, event.direction, event.color) not in done:
                sentences.append(event_text(event, name))
    return sentences


def order_question(truth, rng, references):
    """The earliest option starts in an earlier clip than every other option (so it is answerable per clip)."""
    clips = {text: frame // truth.frames_per_clip for text, frame in _timeline(truth).items()}
    if len(set(clips.values())) < 2:
        return None
    first = min(clips.values())
    correct = _pick(rng, sorted(text for text, clip in clips.items() if clip == first))
    later = sorted(text for text, clip in clips.items() if clip > first)
    fillers = [text for text in _never_happening(truth, references) if text not in clips]
    needed = NUM_OPTIONS - 1
    chosen = _sample(rng, later, min(len(later), needed))
    if len(chosen) < needed:
        if len(fillers) < needed - len(chosen):
            return None
        chosen += _sample(rng, fillers, needed - len(chosen))
    question = _make("order", "what happens first?", correct, chosen, rng)
    listed = ", ".join(question["options"][:-1]) + f" or {question['options'][-1]}"
    question.update(open_question=f"which happens first: {listed}?", open_answer=correct)
    return question


def _size_sequence(truth: GroundTruth, index: int) -> tuple[str, ...]:
    """Grow/shrink kinds of an object in time order, consecutive repeats merged."""
    kinds = [e.type for e in sorted(truth.scene.objects[index].events, key=lambda e: e.start)
             if e.type in (GROW, SHRINK)]
    return tuple(k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k)


def state_change_question(truth, rng, references):
    candidates = []
    for index, name in references.items():
        changes = _spec_events(truth, index, CHANGE_COLOR)
        if len(changes) == 1:
            candidates.append(("color", index, name, changes[0].color))
        sequence = _size_sequence(truth, index)
        if sequence in SIZE_ANSWERS:
            candidates.append(("size", index, name, SIZE_ANSWERS[sequence]))
    if not candidates:
        return None
    variant, index, name, answer = _pick(rng, candidates)
    if variant == "color":
        others = [c for c in COLORS if c != answer]
        return _make("state_change", f"what color does the {name} turn?", answer,
                     _sample(rng, others, NUM_OPTIONS - 1), rng)
    others = [a for a in SIZE_ANSWERS.values() if a != answer]
    return _make("state_change", f"does the {name} grow or shrink?", answer, others, rng)


def temporal_localization_question(truth, rng, references):
    if truth.num_clips != len(TIME_PHRASES):
        return None
    candidates = []
    for index, name in references.items():
        moves = _spec_events(truth, index, MOVE)
        if len(moves) == 1:
            candidates.append((f"when does the {name} start moving?", moves[0].start))
        appears = _spec_events(truth, index, APPEAR)
        if appears:
            candidates.append((f"when does the {name} appear?", appears[0].start))
    if not candidates:
        return None
    text, frame = _pick(rng, candidates)
    correct = TIME_PHRASES[frame // truth.frames_per_clip]
    return _make("temporal_localization", text, correct, [p for p in TIME_PHRASES if p != correct], rng)


TASK_GENERATORS = {
    "existence": existence_question,
    "counting": counting_question,
    "color": color_question,
    "action": action_question,
    "direction": direction_question,
    "order": order_question,
    "state_change": state_change_question,
    "temporal_localization": temporal_localization_question,
}


def generate_questions(truth: GroundTruth, rng: np.random.Generator, excluded_names=(),
                       tasks=TASKS, withheld_color_names=()) -> list[dict]:
    """At most one question per task (in `tasks` order) for the scene, each only when well defined.

    Args:
        truth: the scene's ground truth.
        rng: the scene's generator (choices of subject, distractors and option order).
        excluded_names: colour+shape names never to use as existence distractors (the held-out pairs in the seen
            splits, so their names never occur in that text).
        tasks: which task types to try.
        withheld_color_names: colour+shape names whose colour a colour question never offers as a wrong option for
            that shape (the held-out pairs in training data built with `withhold_held_out_colors`: otherwise a
            held-out colour is a shape's wrong answer about once per two training videos, and never its right one).

    Raises:
        ValueError: for an unknown task name.
    """
    references = object_references(truth)
    questions = []
    for task in tasks:
        if task not in TASK_GENERATORS:
            raise ValueError(f"tasks: unknown task {task!r} (known: {', '.join(TASKS)})")
        if task == "existence":
            question = existence_question(truth, rng, references, excluded_names)
        elif task == "color":
            question = color_question(truth, rng, references, withheld_color_names)
        else:
            question = TASK_GENERATORS[task](truth, rng, references)
        if question is not None:
            questions.append(question)
    return questions

"""Density-aware, fully templated captions from the ground truth (lowercase words, a period after each sentence).

Each clip (of `FRAMES_PER_CLIP` frames) is captioned on its own, as LangDC's expert sees it (it does not know
where the clip sits in the video):

- one sentence listing the objects visible at the clip's first frame (`a red circle.`,
  `a red circle and a blue square.`, `a red circle, a blue square and a green triangle.`), or `an empty scene.`
  when nothing is visible and nothing happens;
- then one sentence per event of the clip (intro "appear" events of frame 0 excluded: the list names them).

Objects are listed, and their event sentences ordered, left to right (centre x, then y, at their first visible
frame of the clip), so that a caption is a function of the pixels: the order of objects in the spec is invisible.

So a static or empty clip gets one short sentence and every event adds one. Event sentences (per object: by start
frame, then kind): `the red circle moves left.`, `the red circle stops.`,
`a green triangle appears.`, `the blue square disappears.`, `the red circle turns blue.`, `the red circle grows.`,
`the red circle shrinks.`. An object is named by its colour+shape at the first frame of the clip, so after a
colour change the next clips use the new colour.

The number of event sentences of a clip equals its ground-truth event count (`clip_event_counts`). The
whole-video caption is the first clip's caption followed by the event sentences of the later clips.
"""

import re

from .spec import APPEAR, CHANGE_COLOR, DISAPPEAR, GROW, MOVE, SHRINK
from .truth import STOP, GroundTruth, TruthEvent, clip_event_counts


EMPTY_SCENE = "an empty scene."
# Sentence templates (without the final period); `{name}` is "colour shape".
EVENT_TEMPLATES = {
    MOVE: "the {name} moves {direction}",
    STOP: "the {name} stops",
    APPEAR: "a {name} appears",
    DISAPPEAR: "the {name} disappears",
    CHANGE_COLOR: "the {name} turns {color}",
    GROW: "the {name} grows",
    SHRINK: "the {name} shrinks",
}
_LISTED_OBJECT = re.compile(r"\ba (\w+) (\w+)\b")

__all__ = [
    "EMPTY_SCENE", "EVENT_TEMPLATES", "event_text", "list_objects", "clip_caption",
    "clip_captions", "video_caption", "split_sentences", "sentence_kind", "parse_event", "listed_names",
    "caption_event_count", "clip_event_counts",
]


def event_text(event: TruthEvent, name: str) -> str:
    """The sentence of one event about the object called `name`, without the final period."""
    return EVENT_TEMPLATES[event.kind].format(name=name, direction=event.direction, color=event.color)


def list_objects(names: list[str]) -> str:
    """`["red circle", "blue square", "green triangle"]` -> "a red circle, a blue square and a green triangle."

    Raises:
        ValueError: if `names` is empty.
    """
    if not names:
        raise ValueError("names: need at least one object to list")
    items = [f"a {name}" for name in names]
    text = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
    return f"{text}."


def _left_to_right(truth: GroundTruth, clip: int):
    """Sort key of an object inside a clip: its centre (x, y) at its first visible frame of the clip (at the clip's
    first frame if it is not visible in the clip). A caption can then be read off the pixels alone; the order of
    the objects in the spec is invisible."""
    first, last = truth.clip_range(clip)
    frames = range(first, min(last, len(truth.states)))

    def key(object_index: int) -> tuple[float, float]:
        frame = next((f for f in frames if truth.states[f][object_index].visible), first)
        return truth.states[frame][object_index].position

    return key


def clip_caption(truth: GroundTruth, clip: int) -> str:
    """The caption of one clip (rules in the module docstring).

    Raises:
        ValueError: if `clip` is not in `[0, truth.num_clips)`.
    """
    if not 0 <= clip < truth.num_clips:
        raise ValueError(f"clip: must be in [0, {truth.num_clips}), got {clip}")
    first_frame = truth.clip_range(clip)[0]
    position = _left_to_right(truth, clip)
    visible = sorted((i for i, state in enumerate(truth.states[first_frame]) if state.visible), key=position)
    sentences = [list_objects([truth.name_at(i, first_frame) for i in visible])] if visible else []
    events = sorted((e for e in truth.clip_events[clip] if not e.intro),
                    key=lambda e: (position(e.object_index), e.sort_key()[1:]))
    for event in events:
        sentences.append(event_text(event, truth.name_at(event.object_index, first_frame)) + ".")
    return " ".join(sentences) if sentences else EMPTY_SCENE


def clip_captions(truth: GroundTruth) -> list[str]:
    """The caption of every clip, in order."""
    return [clip_caption(truth, clip) for clip in range(truth.num_clips)]


def split_sentences(caption: str) -> list[str]:
    """`"a b. c d."` -> `["a b.", "c d."]`."""
    return [sentence.strip() + "." for sentence in caption.split(".") if sentence.strip()]


def _is_object_list(sentence: str) -> bool:
    return sentence.startswith("a ") and not sentence.endswith(" appears.")


def video_caption(captions: list[str]) -> str:
    """The whole-video caption: the first clip's caption, then the event sentences of the later clips."""
    later = [s for caption in captions[1:] for s in split_sentences(caption)
             if s != EMPTY_SCENE and not _is_object_list(s)]
    return " ".join(captions[:1] + later)


_SENTENCE_PATTERNS = {
    kind: re.compile(template.format(name=r"(?P<name>\w+ \w+)", direction=r"(?P<arg>\w+)", color=r"(?P<arg>\w+)")
                     + r"\.")
    for kind, template in EVENT_TEMPLATES.items()
}


def parse_event(sentence: str) -> tuple[str, str, str | None] | None:
    """`(kind, name, direction or new colour)` of an event sentence (`event_text`'s inverse: `"the red circle moves
    left."` -> `("move", "red circle", "left")`; the third item is None for the other kinds), or None for a sentence
    no event template makes."""
    for kind, pattern in _SENTENCE_PATTERNS.items():
        match = pattern.fullmatch(sentence)
        if match:
            return kind, match["name"], match.groupdict().get("arg")
    return None


def listed_names(sentence: str) -> list[str]:
    """The colour+shape names of an object-list sentence in order (`list_objects`'s inverse); `[]` for any other
    sentence."""
    return [" ".join(pair) for pair in _LISTED_OBJECT.findall(sentence)] if _is_object_list(sentence) else []


def sentence_kind(sentence: str) -> str:
    """What a caption sentence states: "objects" (the object list), "empty" (`EMPTY_SCENE`), the event kind
    (a key of `EVENT_TEMPLATES`: "move", "stop", ...), or "other" for a sentence no template makes."""
    if sentence == EMPTY_SCENE:
        return "empty"
    if _is_object_list(sentence):
        return "objects"
    event = parse_event(sentence)
    return event[0] if event else "other"


def caption_event_count(caption: str) -> int:
    """Number of events a clip caption states: one per sentence except the object list and `an empty scene.`.
    Inverse check of `clip_event_counts`."""
    return sum(1 for s in split_sentences(caption) if s != EMPTY_SCENE and not _is_object_list(s))

"""Random scene specs: empty, static, sparse and busy scenes whose every event is clearly visible at 64x64.

Sampling rules (all in named constants below):

- 64x64 px, 8 fps, 16 frames (4 clips of 4 frames), background black, gray or white;
- up to 4 objects, initial sizes 6-10 px (half-extent), sizes stay within 4-14 px; objects stay entirely inside
  the frame (1 px margin) and never touch each other (2 px gap between bounding boxes) at any frame where both are
  visible;
- up to 3 events per object, distinct kinds (grow and shrink may both occur, one after the other);
- moves: 1.5-3 px/frame for >= 4 frames; grow/shrink: 0.75 or 1 px/frame, 4-6 px in total;
- every event is visible inside each clip that counts it: spans start at frame % 4 in {0, 1} and end at frame
  % 4 in {2, 3, 0} (moves: end % 4 == 2 or the last frame, so a stop is followed by a still frame in its clip),
  so a span shows >= 2 frame steps inside every clip it overlaps; appear / disappear / change_color happen at a
  frame % 4 != 0 (between two frames of the same clip);
- every colour+shape name is used by one object only, over the whole video (colour changes included), and only
  names from `allowed_pairs` are ever used.
"""

import math

import numpy as np

from .spec import (
    APPEAR,
    BACKGROUNDS,
    CHANGE_COLOR,
    COLORS,
    DIRECTIONS,
    DISAPPEAR,
    GROW,
    MOVE,
    SHAPES,
    SHRINK,
    SceneObject,
    validate_spec,
)
from .truth import FRAMES_PER_CLIP, object_state


WIDTH = HEIGHT = 64
FPS = 8
NUM_FRAMES = 16
DENSITIES = ("empty", "static", "sparse", "busy")
DENSITY_WEIGHTS = (0.1, 0.2, 0.3, 0.4)
OBJECT_COUNTS = {"empty": (0, 0), "static": (1, 4), "sparse": (1, 3), "busy": (2, 4)}  # inclusive ranges
SPARSE_TOTAL_EVENTS = (1, 2)  # events in the whole scene, inclusive
BUSY_EVENTS_PER_OBJECT = (1, 3)  # inclusive
MAX_EVENTS_PER_OBJECT = 3
EVENT_KIND_WEIGHTS = {MOVE: 3.0, CHANGE_COLOR: 2.0, GROW: 1.5, SHRINK: 1.5, APPEAR: 1.0, DISAPPEAR: 1.0}

INITIAL_SIZES = (6, 10)  # px, inclusive
MIN_SIZE, MAX_SIZE = 4, 14  # px, over the whole video
SPEEDS = (1.5, 2.0, 2.5, 3.0)  # px / frame
RESIZE_RATES = (0.75, 1.0)  # px / frame
MIN_SPAN_FRAMES = 4
MIN_SIZE_CHANGE, MAX_SIZE_CHANGE = 4.0, 6.0  # px per grow / shrink
EDGE_MARGIN = 1  # px between an object and the frame border
OBJECT_GAP = 2  # px between the bounding boxes of two visible objects
ROUNDING_SLACK = 0.5  # px: drawn radii and centres are rounded
SPAN_START_PHASES = (0, 1)  # allowed start % FRAMES_PER_CLIP of spans
RESIZE_END_PHASES = (2, 3, 0)  # allowed end % FRAMES_PER_CLIP of grow / shrink
MOVE_END_PHASES = (2,)  # allowed end % FRAMES_PER_CLIP of moves ending before the last frame
GROW_FIRST_PROBABILITY = 0.5  # order of a grow and a shrink on the same object
MAX_OBJECT_TRIES = 40
TRIES_PER_EVENT_DROP = 10  # after this many failed tries, ask for one event less
MAX_POSITION_TRIES = 20


def _pick(rng: np.random.Generator, items):
    items = list(items)
    return items[int(rng.integers(len(items)))]


def _frames(low: int, high: int, phases=None, exclude_phase=None) -> list[int]:
    """Frames in [low, high] whose `frame % FRAMES_PER_CLIP` is in `phases` (or is not `exclude_phase`)."""
    frames = range(max(low, 0), high + 1)
    if phases is not None:
        return [f for f in frames if f % FRAMES_PER_CLIP in phases]
    return [f for f in frames if f % FRAMES_PER_CLIP != exclude_phase]


def _sample_kinds(rng: np.random.Generator, count: int) -> list[str]:
    kinds = list(EVENT_KIND_WEIGHTS)
    weights = np.array([EVENT_KIND_WEIGHTS[k] for k in kinds])
    picked = rng.choice(len(kinds), size=min(count, len(kinds)), replace=False, p=weights / weights.sum())
    return [kinds[int(i)] for i in picked]


def _sample_visibility(rng, kinds, num_frames) -> tuple[int, int, list[dict]] | None:
    """Visible interval `[first, last)` and the appear / disappear events. The span events need room after an
    appear (which is then in the first half)."""
    first, last, events = 0, num_frames, []
    others = [k for k in kinds if k not in (APPEAR, DISAPPEAR)]
    if APPEAR in kinds:  # in the first half when other events must follow, else before the last frame
        latest = num_frames // 2 - 1 if others else num_frames - 2
        first = _pick(rng, _frames(1, latest, exclude_phase=0))
        events.append({"type": APPEAR, "frame": first})
    if DISAPPEAR in kinds:
        earliest = first + (num_frames // 2 if others else MIN_SPAN_FRAMES)
        candidates = _frames(earliest, num_frames - 1, exclude_phase=0)
        if not candidates:
            return None
        last = _pick(rng, candidates)
        events.append({"type": DISAPPEAR, "frame": last})
    return first, last, events


def _sample_move(rng, first, last, num_frames) -> dict | None:
    """A move inside `[first, last)`: >= MIN_SPAN_FRAMES long, ending at phase 2 (then a still frame follows before
    any disappear) or at the last frame."""
    starts = _frames(first, last - MIN_SPAN_FRAMES, phases=SPAN_START_PHASES)
    if not starts:
        return None
    start = _pick(rng, starts)
    ends = [e for e in _frames(start + MIN_SPAN_FRAMES, last, phases=MOVE_END_PHASES) if e + 1 < last]
    if last == num_frames and num_frames - start >= MIN_SPAN_FRAMES:
        ends.append(num_frames)
    if not ends:
        return None
    return {"type": MOVE, "start": start, "end": _pick(rng, ends), "direction": _pick(rng, DIRECTIONS),
            "speed": _pick(rng, SPEEDS)}


def _sample_resize(rng, kind, low, high) -> dict | None:
    """A grow / shrink inside frames `[low, high)` changing the size by MIN..MAX_SIZE_CHANGE px."""
    rate = _pick(rng, RESIZE_RATES)
    min_frames = max(MIN_SPAN_FRAMES, math.ceil(MIN_SIZE_CHANGE / rate))
    max_frames = math.floor(MAX_SIZE_CHANGE / rate)
    options = [
        (start, end)
        for start in _frames(low, high - min_frames, phases=SPAN_START_PHASES)
        for end in _frames(start + min_frames, min(start + max_frames, high), phases=RESIZE_END_PHASES)
    ]
    if not options:
        return None
    start, end = _pick(rng, options)
    return {"type": kind, "start": start, "end": end, "rate": rate}


def _sample_resizes(rng, kinds, first, last) -> list[dict] | None:
    """The grow and / or shrink events (one after the other when both)."""
    resize_kinds = [k for k in kinds if k in (GROW, SHRINK)]
    if len(resize_kinds) == 1:
        event = _sample_resize(rng, resize_kinds[0], first, last)
        return None if event is None else [event]
    if not resize_kinds:
        return []
    order = resize_kinds if rng.random() < GROW_FIRST_PROBABILITY else resize_kinds[::-1]
    midpoint = (first + last) // 2
    first_event = _sample_resize(rng, order[0], first, midpoint)
    if first_event is None:
        return None
    second_event = _sample_resize(rng, order[1], first_event["end"], last)
    return None if second_event is None else [first_event, second_event]


def _sample_initial_size(rng, resizes) -> int | None:
    """An initial size in INITIAL_SIZES such that the size stays within [MIN_SIZE, MAX_SIZE]."""
    candidates = []
    for size in range(INITIAL_SIZES[0], INITIAL_SIZES[1] + 1):
        current, low, high = float(size), float(size), float(size)
        for event in sorted(resizes, key=lambda e: e["start"]):
            sign = 1 if event["type"] == GROW else -1
            current += sign * event["rate"] * (event["end"] - event["start"])
            low, high = min(low, current), max(high, current)
        if low >= MIN_SIZE and high <= MAX_SIZE:
            candidates.append(size)
    return _pick(rng, candidates) if candidates else None


def _sample_color_change(rng, first, last, color, shape, allowed, used) -> dict | None:
    colors = [c for c in COLORS if c != color and (c, shape) in allowed and (c, shape) not in used]
    frames = _frames(first + 1, last - 1, exclude_phase=0)
    if not colors or not frames:
        return None
    return {"type": CHANGE_COLOR, "frame": _pick(rng, frames), "color": _pick(rng, colors)}


def _sample_events(rng, kinds, color, shape, allowed, used, num_frames) -> list[dict] | None:
    """The events of one object for the given distinct `kinds`, or None when they do not fit."""
    visibility = _sample_visibility(rng, kinds, num_frames)
    if visibility is None:
        return None
    first, last, events = visibility
    if MOVE in kinds:
        move = _sample_move(rng, first, last, num_frames)
        if move is None:
            return None
        events.append(move)
    resizes = _sample_resizes(rng, kinds, first, last)
    if resizes is None:
        return None
    events += resizes
    if CHANGE_COLOR in kinds:
        change = _sample_color_change(rng, first, last, color, shape, allowed, used)
        if change is None:
            return None
        events.append(change)
    return events


def _trajectory(obj: SceneObject, num_frames: int) -> np.ndarray:
    """`[T, 4]` float array of (x offset, y offset, size, visible) per frame for `obj` placed at (0, 0)."""
    rows = []
    for frame in range(num_frames):
        state = object_state(obj, frame, num_frames)
        rows.append((state.position[0], state.position[1], state.size, float(state.visible)))
    return np.array(rows)


def _sample_position(rng, trajectory, placed, width, height) -> tuple[int, int] | None:
    """An integer start centre keeping the object inside the frame and clear of the `placed` trajectories
    (absolute `[T, 4]` arrays), or None."""
    visible = trajectory[:, 3] > 0
    dx, dy, size = trajectory[visible, 0], trajectory[visible, 1], trajectory[visible, 2] + ROUNDING_SLACK
    x_low = math.ceil(np.max(EDGE_MARGIN + size - dx))
    x_high = math.floor(np.min(width - 1 - EDGE_MARGIN - size - dx))
    y_low = math.ceil(np.max(EDGE_MARGIN + size - dy))
    y_high = math.floor(np.min(height - 1 - EDGE_MARGIN - size - dy))
    if x_low > x_high or y_low > y_high:
        return None
    for _ in range(MAX_POSITION_TRIES):
        x, y = int(rng.integers(x_low, x_high + 1)), int(rng.integers(y_low, y_high + 1))
        absolute = trajectory + np.array([x, y, 0.0, 0.0])
        if all(not _collide(absolute, other) for other in placed):
            return x, y
    return None


def _collide(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two absolute trajectories come closer than OBJECT_GAP at a frame where both are visible."""
    both = (a[:, 3] > 0) & (b[:, 3] > 0)
    reach = a[both, 2] + b[both, 2] + 2 * ROUNDING_SLACK + OBJECT_GAP
    apart = (np.abs(a[both, 0] - b[both, 0]) >= reach) | (np.abs(a[both, 1] - b[both, 1]) >= reach)
    return not bool(np.all(apart))


def _sample_object(rng, name, num_events, allowed, used, placed, width, height, num_frames):
    """One object (spec dict and absolute trajectory) with up to `num_events` events, or None if it does not fit."""
    color, shape = name
    for attempt in range(MAX_OBJECT_TRIES):
        wanted = max(num_events - attempt // TRIES_PER_EVENT_DROP, 0)
        kinds = _sample_kinds(rng, wanted)
        events = _sample_events(rng, kinds, color, shape, allowed, used, num_frames)
        if events is None:
            continue
        size = _sample_initial_size(rng, [e for e in events if e["type"] in (GROW, SHRINK)])
        if size is None:
            continue
        events.sort(key=lambda e: (e.get("start", e.get("frame")), e["type"]))
        spec = {"shape": shape, "color": color, "size": size, "position": [0, 0], "events": events}
        obj = validate_spec({"width": width, "height": height, "fps": FPS, "num_frames": num_frames,
                             "background": "gray", "objects": [spec]}).objects[0]
        trajectory = _trajectory(obj, num_frames)
        position = _sample_position(rng, trajectory, placed, width, height)
        if position is None:
            continue
        spec["position"] = list(position)
        return spec, trajectory + np.array([position[0], position[1], 0.0, 0.0])
    return None


def _events_per_object(rng, density, count) -> list[int]:
    if density in ("empty", "static"):
        return [0] * count
    if density == "sparse":
        per_object = [0] * count
        for _ in range(int(rng.integers(SPARSE_TOTAL_EVENTS[0], SPARSE_TOTAL_EVENTS[1] + 1))):
            candidates = [i for i in range(count) if per_object[i] < MAX_EVENTS_PER_OBJECT]
            per_object[_pick(rng, candidates)] += 1
        return per_object
    return [int(rng.integers(BUSY_EVENTS_PER_OBJECT[0], BUSY_EVENTS_PER_OBJECT[1] + 1)) for _ in range(count)]


def _names_of(spec: dict) -> set[tuple[str, str]]:
    colors = {spec["color"]} | {e["color"] for e in spec["events"] if e["type"] == CHANGE_COLOR}
    return {(color, spec["shape"]) for color in colors}


def all_pairs() -> list[tuple[str, str]]:
    """Every (colour, shape) pair, colours first."""
    return [(color, shape) for color in COLORS for shape in SHAPES]


def scene_pairs(spec: dict) -> set[tuple[str, str]]:
    """The (colour, shape) pairs an object of the spec shows at some frame (initial and changed colours; every
    object is visible at some frame and colour changes happen while it is visible)."""
    return set().union(*(_names_of(o) for o in spec["objects"])) if spec["objects"] else set()


def sample_scene(rng: np.random.Generator, density: str | None = None, allowed_pairs=None,
                 required_pair=None) -> dict:
    """Sample a scene spec (a JSON-able dict that passes `validate_spec`).

    Args:
        rng: the random generator (all randomness comes from it).
        density: "empty" (no object), "static" (1-4 objects, no event), "sparse" (1-3 objects, 1-2 events) or
            "busy" (2-4 objects, 1-3 events each); None draws one with `DENSITY_WEIGHTS`. Objects that cannot be
            placed without touching are dropped, so a busy scene may end up with fewer objects or events.
        allowed_pairs: the (colour, shape) pairs objects may show (colour changes included); None = all.
        required_pair: a (colour, shape) pair the first object must have (it is added to the allowed pairs).

    Raises:
        ValueError: for an unknown density, an unknown pair, or a required pair with density "empty".
    """
    if density is None:
        density = DENSITIES[int(rng.choice(len(DENSITIES), p=DENSITY_WEIGHTS))]
    if density not in DENSITIES:
        raise ValueError(f"density: must be one of {'/'.join(DENSITIES)}, got {density!r}")
    allowed = set(all_pairs()) if allowed_pairs is None else {tuple(p) for p in allowed_pairs}
    unknown = allowed - set(all_pairs())
    if unknown:
        raise ValueError(f"allowed_pairs: unknown (colour, shape) pairs {sorted(unknown)}")
    if required_pair is not None:
        required_pair = tuple(required_pair)
        if required_pair not in set(all_pairs()):
            raise ValueError(f"required_pair: unknown (colour, shape) pair {required_pair}")
        if density == "empty":
            raise ValueError("density: an 'empty' scene cannot contain the required pair")
        allowed.add(required_pair)
    low, high = OBJECT_COUNTS[density]
    count = min(int(rng.integers(low, high + 1)), len(allowed))
    events_per_object = _events_per_object(rng, density, count)
    objects, used, placed = [], set(), []
    for index in range(count):
        free = sorted(p for p in allowed if p not in used)
        if not free:
            break
        name = required_pair if index == 0 and required_pair is not None else _pick(rng, free)
        result = _sample_object(rng, name, events_per_object[index], allowed, used, placed, WIDTH, HEIGHT,
                                NUM_FRAMES)
        if result is None:
            continue
        spec, trajectory = result
        objects.append(spec)
        used |= _names_of(spec)
        placed.append(trajectory)
    spec = {"width": WIDTH, "height": HEIGHT, "fps": FPS, "num_frames": NUM_FRAMES,
            "background": _pick(rng, BACKGROUNDS), "objects": objects}
    validate_spec(spec)
    return spec

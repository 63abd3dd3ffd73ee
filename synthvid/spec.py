"""The declarative scene spec: plain JSON-able dicts, validated and parsed into frozen dataclasses.

A spec describes a short video of flat shapes on a plain background:

    {"width": 64, "height": 64, "fps": 8, "num_frames": 16, "background": "gray",
     "objects": [
       {"shape": "circle", "color": "red", "size": 8, "position": [20, 30],
        "events": [
          {"type": "move", "start": 4, "end": 10, "direction": "left", "speed": 2.0},
          {"type": "change_color", "frame": 12, "color": "blue"},
          {"type": "grow", "start": 0, "end": 4, "rate": 1.0},
          {"type": "appear", "frame": 2}, {"type": "disappear", "frame": 13}]}]}

Units: positions are pixel coordinates of the object's centre (x to the right, y down); `size` is the half-extent
(radius) in pixels; `speed` is pixels per frame and `rate` pixels of size per frame. Frame spans `[start, end)` are
half-open: an event with span `[start, end)` acts between frames `start` and `end`, so frame `end` is the first frame
after it (see `truth.py` for the exact trajectory formulas). `validate_spec` raises `ValueError` naming the offending
field path, e.g. `objects[1].events[0].direction: must be one of left/right/up/down, got 'north'`.
"""

import math
from dataclasses import dataclass, field


# --- vocabulary -------------------------------------------------------------------------------------------------

SHAPES = ("circle", "square", "triangle")
# Object colours: five clearly distinct hues (none is white, black or gray, so none matches a background).
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 90, 230),
    "yellow": (240, 210, 30),
    "purple": (150, 60, 200),
}
BACKGROUNDS = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (255, 255, 255)}
# Unit displacement (dx, dy) of each direction in image coordinates (y grows downwards).
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

MOVE, CHANGE_COLOR, GROW, SHRINK, APPEAR, DISAPPEAR = "move", "change_color", "grow", "shrink", "appear", "disappear"
EVENT_TYPES = (MOVE, CHANGE_COLOR, GROW, SHRINK, APPEAR, DISAPPEAR)
SPAN_EVENT_TYPES = (MOVE, GROW, SHRINK)  # act over frames [start, end)
POINT_EVENT_TYPES = (CHANGE_COLOR, APPEAR, DISAPPEAR)  # act at one frame
RESIZE_EVENT_TYPES = (GROW, SHRINK)

# --- limits -----------------------------------------------------------------------------------------------------

MIN_DIMENSION, MAX_DIMENSION = 16, 4096  # pixels; width and height must also be even (yuv420p chroma)
MAX_FPS = 240
MAX_NUM_FRAMES = 10_000
TOP_LEVEL_KEYS = ("width", "height", "fps", "num_frames", "background", "objects")
OBJECT_KEYS = ("shape", "color", "size", "position", "events")
EVENT_KEYS = {
    MOVE: ("type", "start", "end", "direction", "speed"),
    GROW: ("type", "start", "end", "rate"),
    SHRINK: ("type", "start", "end", "rate"),
    CHANGE_COLOR: ("type", "frame", "color"),
    APPEAR: ("type", "frame"),
    DISAPPEAR: ("type", "frame"),
}


# --- parsed scene -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One event of an object.

    Span events (`move`, `grow`, `shrink`) use `start`/`end` (frames, `start < end`); point events
    (`change_color`, `appear`, `disappear`) use `frame`, and `start == frame`, `end == frame + 1`.
    `direction`/`speed` are set for moves, `rate` for grow/shrink, `color` (the new colour) for colour changes.
    """

    type: str
    start: int
    end: int
    direction: str | None = None
    speed: float | None = None
    rate: float | None = None
    color: str | None = None

    @property
    def frame(self) -> int:
        """The frame of a point event (same as `start`)."""
        return self.start

    def to_spec(self) -> dict:
        """The JSON-able dict of this event (inverse of parsing)."""
        if self.type == MOVE:
            return {"type": MOVE, "start": self.start, "end": self.end, "direction": self.direction,
                    "speed": self.speed}
        if self.type in RESIZE_EVENT_TYPES:
            return {"type": self.type, "start": self.start, "end": self.end, "rate": self.rate}
        if self.type == CHANGE_COLOR:
            return {"type": CHANGE_COLOR, "frame": self.start, "color": self.color}
        return {"type": self.type, "frame": self.start}


@dataclass(frozen=True)
class SceneObject:
    """A shape with its initial state (`size` = half-extent in px, `position` = centre (x, y) in px) and events."""

    shape: str
    color: str
    size: float
    position: tuple[float, float]
    events: tuple[Event, ...] = ()

    @property
    def appear_frame(self) -> int:
        """First visible frame (0 without an `appear` event)."""
        return next((e.start for e in self.events if e.type == APPEAR), 0)

    def disappear_frame(self, num_frames: int) -> int:
        """First invisible frame after the visible interval (`num_frames` without a `disappear` event)."""
        return next((e.start for e in self.events if e.type == DISAPPEAR), num_frames)

    def to_spec(self) -> dict:
        return {"shape": self.shape, "color": self.color, "size": self.size, "position": list(self.position),
                "events": [event.to_spec() for event in self.events]}


@dataclass(frozen=True)
class Scene:
    """A validated scene: frame geometry, timing, background and objects (later objects are drawn on top)."""

    width: int
    height: int
    fps: int
    num_frames: int
    background: str
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    def to_spec(self) -> dict:
        """The JSON-able spec dict of this scene; `validate_spec(scene.to_spec()) == scene`."""
        return {"width": self.width, "height": self.height, "fps": self.fps, "num_frames": self.num_frames,
                "background": self.background, "objects": [obj.to_spec() for obj in self.objects]}


# --- field checks -----------------------------------------------------------------------------------------------


def _fail(path: str, message: str):
    raise ValueError(f"{path}: {message}")


def _check_keys(value, path: str, required: tuple[str, ...]) -> None:
    """Raise unless `value` is a dict with exactly the `required` keys."""
    if not isinstance(value, dict):
        _fail(path, f"must be an object (dict), got {type(value).__name__}")
    for key in required:
        if key not in value:
            _fail(f"{path}.{key}" if path else key, "missing required key")
    for key in value:
        if key not in required:
            _fail(f"{path}.{key}" if path else str(key), f"unknown key (allowed: {', '.join(required)})")


def _int(value, path: str, low: int, high: int) -> int:
    """`value` as an int in [low, high]; bools and floats are rejected."""
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        _fail(path, f"must be in [{low}, {high}], got {value}")
    return value


def _positive_number(value, path: str) -> float:
    """`value` as a finite number > 0 (int or float, not bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(path, f"must be a finite number, got {value!r}")
    if value <= 0:
        _fail(path, f"must be > 0, got {value}")
    return value


def _choice(value, path: str, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        _fail(path, f"must be one of {'/'.join(allowed)}, got {value!r}")
    return value


def _position(value, path: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        _fail(path, f"must be a list [x, y] of 2 numbers, got {value!r}")
    for axis, coordinate in enumerate(value):
        if isinstance(coordinate, bool) or not isinstance(coordinate, (int, float)) or not math.isfinite(coordinate):
            _fail(f"{path}[{axis}]", f"must be a finite number, got {coordinate!r}")
    return (value[0], value[1])


# --- parsing ----------------------------------------------------------------------------------------------------


def _parse_event(value, path: str, num_frames: int) -> Event:
    """One event dict -> `Event`. Point events must happen at a frame in [1, num_frames - 1] (at frame 0 they would
    be indistinguishable from the initial state); spans need 0 <= start < end <= num_frames."""
    if not isinstance(value, dict):
        _fail(path, f"must be an object (dict), got {type(value).__name__}")
    if "type" not in value:
        _fail(f"{path}.type", "missing required key")
    kind = _choice(value["type"], f"{path}.type", EVENT_TYPES)
    _check_keys(value, path, EVENT_KEYS[kind])
    if kind in POINT_EVENT_TYPES:
        frame = _int(value["frame"], f"{path}.frame", 1, num_frames - 1)
        color = _choice(value["color"], f"{path}.color", tuple(COLORS)) if kind == CHANGE_COLOR else None
        return Event(kind, frame, frame + 1, color=color)
    start = _int(value["start"], f"{path}.start", 0, num_frames - 1)
    end = _int(value["end"], f"{path}.end", 1, num_frames)
    if start >= end:
        _fail(f"{path}.end", f"must be > start ({start}), got {end}")
    if kind == MOVE:
        direction = _choice(value["direction"], f"{path}.direction", tuple(DIRECTIONS))
        return Event(kind, start, end, direction=direction, speed=_positive_number(value["speed"], f"{path}.speed"))
    return Event(kind, start, end, rate=_positive_number(value["rate"], f"{path}.rate"))


def _check_event_consistency(obj: SceneObject, path: str, num_frames: int) -> None:
    """Per-object rules: at most one appear/disappear (appear first), no overlapping moves, no overlapping size
    changes, one colour change per frame that really changes the colour, every event inside the visible interval
    [appear, disappear), and a size that stays positive."""
    for kind in (APPEAR, DISAPPEAR):
        indices = [i for i, e in enumerate(obj.events) if e.type == kind]
        if len(indices) > 1:
            _fail(f"{path}.events[{indices[1]}]", f"at most one '{kind}' event per object")
    first, last = obj.appear_frame, obj.disappear_frame(num_frames)
    if first >= last:
        index = next(i for i, e in enumerate(obj.events) if e.type == DISAPPEAR)
        _fail(f"{path}.events[{index}].frame", f"must be > the appear frame ({first}), got {last}")
    for i, event in enumerate(obj.events):
        if event.type in SPAN_EVENT_TYPES and not (first <= event.start and event.end <= last):
            _fail(f"{path}.events[{i}]", f"span [{event.start}, {event.end}) must lie within the visible frames "
                                         f"[{first}, {last})")
        if event.type == CHANGE_COLOR and not first < event.start < last:
            _fail(f"{path}.events[{i}].frame", f"a colour change must happen while the object is visible, after "
                                               f"it appears: in ({first}, {last}), got {event.start}")
    families = ((MOVE,), RESIZE_EVENT_TYPES, (CHANGE_COLOR,))
    for family in families:
        spans = sorted((e.start, e.end, i) for i, e in enumerate(obj.events) if e.type in family)
        for (_, end_a, _), (start_b, _, index_b) in zip(spans, spans[1:]):
            if start_b < end_a:
                _fail(f"{path}.events[{index_b}]", f"overlaps another {'/'.join(family)} event of the same object")
    color = obj.color
    for i, event in sorted(enumerate(obj.events), key=lambda item: item[1].start):
        if event.type == CHANGE_COLOR:
            if event.color == color:
                _fail(f"{path}.events[{i}].color", f"must differ from the current colour {color!r}")
            color = event.color
    size = obj.size
    for i, event in sorted(enumerate(obj.events), key=lambda item: item[1].start):
        if event.type in RESIZE_EVENT_TYPES:
            sign = 1 if event.type == GROW else -1
            size += sign * event.rate * (event.end - event.start)
            if size <= 0:
                _fail(f"{path}.events[{i}].rate", f"shrinks the object to a non-positive size ({size:g})")


def _parse_object(value, path: str, num_frames: int) -> SceneObject:
    _check_keys(value, path, OBJECT_KEYS)
    events_value = value["events"]
    if not isinstance(events_value, list):
        _fail(f"{path}.events", f"must be a list, got {type(events_value).__name__}")
    obj = SceneObject(
        shape=_choice(value["shape"], f"{path}.shape", SHAPES),
        color=_choice(value["color"], f"{path}.color", tuple(COLORS)),
        size=_positive_number(value["size"], f"{path}.size"),
        position=_position(value["position"], f"{path}.position"),
        events=tuple(_parse_event(e, f"{path}.events[{i}]", num_frames) for i, e in enumerate(events_value)),
    )
    _check_event_consistency(obj, path, num_frames)
    return obj


def color_at(obj: SceneObject, frame: int) -> str:
    """The colour of `obj` at `frame` (a colour change at frame f applies from frame f on)."""
    color = obj.color
    for event in sorted(obj.events, key=lambda e: e.start):
        if event.type == CHANGE_COLOR and event.start <= frame:
            color = event.color
    return color


def _check_unique_names(objects: tuple[SceneObject, ...], num_frames: int) -> None:
    """Raise if two objects share colour+shape at any frame (visible or not), so names are unambiguous."""
    for frame in range(num_frames):
        owners = {}
        for index, obj in enumerate(objects):
            name = (color_at(obj, frame), obj.shape)
            if name in owners:
                _fail(f"objects[{index}]", f"colour+shape '{name[0]} {name[1]}' at frame {frame} is also used by "
                                           f"objects[{owners[name]}]")
            owners[name] = index


def validate_spec(spec) -> Scene:
    """Validate a spec dict and parse it into a frozen `Scene`.

    Args:
        spec: the JSON-able scene dict (see the module docstring).

    Returns:
        The parsed `Scene`.

    Raises:
        ValueError: on any missing/unknown key, wrong type, value out of range (frames outside the video,
            `start >= end`, non-positive size/speed/rate, odd or tiny width/height), inconsistent events (two
            appear events, overlapping moves, a colour change to the same colour, an event outside the visible
            interval, a shrink to size <= 0) or two objects sharing colour+shape at some frame. The message starts
            with the offending field path, e.g. `objects[1].events[0].direction: ...`.
    """
    _check_keys(spec, "", TOP_LEVEL_KEYS)
    width = _int(spec["width"], "width", MIN_DIMENSION, MAX_DIMENSION)
    height = _int(spec["height"], "height", MIN_DIMENSION, MAX_DIMENSION)
    for name, value in (("width", width), ("height", height)):
        if value % 2:
            _fail(name, f"must be even (yuv420p video), got {value}")
    fps = _int(spec["fps"], "fps", 1, MAX_FPS)
    num_frames = _int(spec["num_frames"], "num_frames", 1, MAX_NUM_FRAMES)
    background = _choice(spec["background"], "background", tuple(BACKGROUNDS))
    objects_value = spec["objects"]
    if not isinstance(objects_value, list):
        _fail("objects", f"must be a list, got {type(objects_value).__name__}")
    objects = tuple(_parse_object(o, f"objects[{i}]", num_frames) for i, o in enumerate(objects_value))
    _check_unique_names(objects, num_frames)
    return Scene(width, height, fps, num_frames, background, objects)

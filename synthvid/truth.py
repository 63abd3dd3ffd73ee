"""Ground truth from a validated `Scene`: per-frame object states, the timeline of events and the events per clip.

Trajectories (frame `f`, an event with span `[start, end)`, `clamp(f) = min(max(f - start, 0), end - start)`):

- position(f) = position + speed * unit(direction) * clamp(f), summed over the object's moves;
- size(f)     = size + rate * clamp(f) for grows, minus for shrinks;
- colour(f)   = the colour of the last `change_color` with frame <= f;
- visible(f)  = appear <= f < disappear.

So an object moves between frames `start` and `end`, and frame `end` is its first frame at rest.

Events counted per clip (clip `c` holds frames `[c * frames_per_clip, (c + 1) * frames_per_clip)`):

- the objects visible at frame 0 are marked as intro "appear" events of clip 0 (`intro=True`) for the
  questions; they are not counted by `clip_event_counts` (the captions list them as the scene);
- appear / disappear / change_color count in the clip of their frame;
- move / grow / shrink count once in every clip their span `[start, end)` overlaps;
- a "stop" (the end of a move, when the object is still visible at rest for at least one more frame, i.e.
  `end + 1 < min(disappear, num_frames)`, and no other move starts at `end`) counts in the clip of frame `end`.
"""

from dataclasses import dataclass

from .spec import (
    APPEAR,
    CHANGE_COLOR,
    DIRECTIONS,
    DISAPPEAR,
    GROW,
    MOVE,
    SHRINK,
    Scene,
    SceneObject,
    color_at,
)


FRAMES_PER_CLIP = 4
STOP = "stop"
# Canonical order of event kinds that start at the same frame on the same object.
KIND_ORDER = (APPEAR, MOVE, STOP, GROW, SHRINK, CHANGE_COLOR, DISAPPEAR)


@dataclass(frozen=True)
class ObjectState:
    """State of one object at one frame: `position` = centre (x, y) in px, `size` = half-extent in px."""

    visible: bool
    shape: str
    color: str
    size: float
    position: tuple[float, float]

    @property
    def name(self) -> str:
        """Colour + shape, e.g. "red circle"."""
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class TruthEvent:
    """One event of the timeline, over frames `[start, end)` (point events and stops span one frame).

    `kind` is one of `KIND_ORDER`; `direction` is set for moves, `color` (the new colour) for colour changes;
    `intro` marks the "appear" events of the objects visible at frame 0.
    """

    object_index: int
    kind: str
    start: int
    end: int
    direction: str | None = None
    color: str | None = None
    intro: bool = False

    def sort_key(self) -> tuple[int, int, int, int]:
        """Canonical order: object index, then start frame, then kind, then end frame."""
        return (self.object_index, self.start, KIND_ORDER.index(self.kind), self.end)


@dataclass(frozen=True)
class GroundTruth:
    """Everything derived from a scene.

    Attributes:
        scene: the validated scene.
        states: `[T][N]` object states (T frames, N objects).
        events: all events in canonical order (intro appear events included).
        clip_events: per clip, the events counted in it, in canonical order.
        frames_per_clip: frames per clip (the last clip may be shorter when T is not a multiple).
    """

    scene: Scene
    states: tuple[tuple[ObjectState, ...], ...]
    events: tuple[TruthEvent, ...]
    clip_events: tuple[tuple[TruthEvent, ...], ...]
    frames_per_clip: int

    @property
    def num_clips(self) -> int:
        return len(self.clip_events)

    def clip_range(self, clip: int) -> tuple[int, int]:
        """Frames `[first, last)` of `clip`."""
        first = clip * self.frames_per_clip
        return first, min(first + self.frames_per_clip, self.scene.num_frames)

    def name_at(self, object_index: int, frame: int) -> str:
        """The colour+shape name of an object at `frame` (whether visible or not)."""
        return self.states[frame][object_index].name

    def names_of(self, object_index: int, visible_only: bool = True) -> list[str]:
        """Distinct names an object takes over the video (at visible frames by default), in order of first use."""
        names = []
        for frame_states in self.states:
            state = frame_states[object_index]
            if (state.visible or not visible_only) and state.name not in names:
                names.append(state.name)
        return names

    def first_visible_frame(self, object_index: int) -> int | None:
        return next((f for f, s in enumerate(self.states) if s[object_index].visible), None)


def _clamped_steps(frame: int, start: int, end: int) -> int:
    """How many frames of the span `[start, end)` have elapsed by `frame`."""
    return min(max(frame - start, 0), end - start)


def object_state(obj: SceneObject, frame: int, num_frames: int) -> ObjectState:
    """The state of `obj` at `frame` (formulas in the module docstring)."""
    x, y = obj.position
    size = obj.size
    for event in obj.events:
        steps = _clamped_steps(frame, event.start, event.end)
        if event.type == MOVE:
            dx, dy = DIRECTIONS[event.direction]
            x, y = x + dx * event.speed * steps, y + dy * event.speed * steps
        elif event.type == GROW:
            size += event.rate * steps
        elif event.type == SHRINK:
            size -= event.rate * steps
    visible = obj.appear_frame <= frame < obj.disappear_frame(num_frames)
    return ObjectState(visible, obj.shape, color_at(obj, frame), size, (x, y))


def object_states(scene: Scene) -> tuple[tuple[ObjectState, ...], ...]:
    """`[T][N]` states of every object at every frame."""
    return tuple(
        tuple(object_state(obj, frame, scene.num_frames) for obj in scene.objects) for frame in range(scene.num_frames)
    )


def _object_events(index: int, obj: SceneObject, num_frames: int) -> list[TruthEvent]:
    """The timeline events of one object (intro appear, spec events and stops)."""
    events = []
    if obj.appear_frame == 0:
        events.append(TruthEvent(index, APPEAR, 0, 1, intro=True))
    last_visible = obj.disappear_frame(num_frames)
    move_starts = {e.start for e in obj.events if e.type == MOVE}
    for event in obj.events:
        events.append(TruthEvent(index, event.type, event.start, event.end, direction=event.direction,
                                 color=event.color))
        if event.type == MOVE and event.end + 1 < last_visible and event.end not in move_starts:
            events.append(TruthEvent(index, STOP, event.end, event.end + 1))
    return events


def clip_of_frame(frame: int, frames_per_clip: int = FRAMES_PER_CLIP) -> int:
    """The clip index that holds `frame`."""
    return frame // frames_per_clip


def compute_truth(scene: Scene, frames_per_clip: int = FRAMES_PER_CLIP) -> GroundTruth:
    """States, events and per-clip events of a validated scene.

    Raises:
        ValueError: if `frames_per_clip < 1`.
    """
    if frames_per_clip < 1:
        raise ValueError(f"frames_per_clip: must be >= 1, got {frames_per_clip}")
    events = sorted(
        (e for index, obj in enumerate(scene.objects) for e in _object_events(index, obj, scene.num_frames)),
        key=TruthEvent.sort_key,
    )
    num_clips = -(-scene.num_frames // frames_per_clip)
    clip_events = []
    for clip in range(num_clips):
        first, last = clip * frames_per_clip, (clip + 1) * frames_per_clip
        clip_events.append(tuple(e for e in events if e.start < last and e.end > first))
    return GroundTruth(scene, object_states(scene), tuple(events), tuple(clip_events), frames_per_clip)


def clip_event_counts(truth: GroundTruth) -> list[int]:
    """Ground-truth event count per clip: the changes that happen in it (the objects already visible at frame 0
    are the scene, not events)."""
    return [sum(not e.intro for e in events) for events in truth.clip_events]

"""Deterministic rendering of a `Scene` to frames and to an H.264 mp4.

Shapes are drawn with integer pixel masks (no anti-aliasing), so a spec always gives byte-identical frames. A
shape of half-extent `r` centred at pixel `(cx, cy)` (both rounded half up to integers, `r >= 1`) covers:

- circle:   pixels with `dx^2 + dy^2 <= r^2 + r` (the usual discrete disc, diameter `2r + 1`);
- square:   `|dx| <= r` and `|dy| <= r`;
- triangle: pointing up, apex `(cx, cy - r)`, base from `(cx - r, cy + r)` to `(cx + r, cy + r)`.

Objects are drawn in spec order, later ones on top; invisible objects are skipped.
"""

import math
from pathlib import Path

import numpy as np

from .files import write_atomic
from .spec import BACKGROUNDS, COLORS, SHAPES, Scene
from .truth import ObjectState, object_states


CHANNELS = 3
MIN_DRAWN_RADIUS = 1  # pixels
VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"
# Constant quality, high enough that colours and 1-px edges survive at 64x64; one thread keeps the bitstream
# deterministic and leaves the cores to the dataset builder's worker processes.
CODEC_OPTIONS = {"crf": "12", "preset": "medium", "threads": "1"}


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def shape_mask(shape: str, radius: int, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Boolean mask of `shape` of integer half-extent `radius` on pixel offsets `dx`, `dy` from its centre.

    Raises:
        ValueError: for an unknown shape.
    """
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius + radius
    if shape == "square":
        return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
    if shape == "triangle":
        # Row dy (from -r at the apex to +r at the base) has half-width (dy + r) / 2.
        return (dy <= radius) & (2 * np.abs(dx) <= dy + radius)
    raise ValueError(f"shape: unknown shape {shape!r}")


def object_region(state: ObjectState, height: int, width: int):
    """Pixels covered by one object state, clipped to a `height` x `width` frame.

    Returns:
        `(rows, cols, mask)`: the slices of the object's bounding box inside the frame and a boolean mask over
        that box, or None when the object lies entirely outside the frame.
    """
    cx, cy = (_round_half_up(c) for c in state.position)
    radius = max(_round_half_up(state.size), MIN_DRAWN_RADIUS)
    x0, x1 = max(cx - radius, 0), min(cx + radius + 1, width)
    y0, y1 = max(cy - radius, 0), min(cy + radius + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    dy, dx = np.mgrid[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
    return slice(y0, y1), slice(x0, x1), shape_mask(state.shape, radius, dx, dy)


def draw_object(frame: np.ndarray, state: ObjectState, value=None) -> None:
    """Draw one visible object state in place on `frame` (`[H, W, C]` or `[H, W]`), clipped to the frame.

    `value` is what the covered pixels get: the object's RGB colour by default.
    """
    region = object_region(state, *frame.shape[:2])
    if region is None:
        return
    rows, cols, mask = region
    frame[rows, cols][mask] = COLORS[state.color] if value is None else value


def render_frames(scene: Scene) -> np.ndarray:
    """Render every frame of `scene`.

    Returns:
        `uint8` array `[T, H, W, 3]` (RGB), T = `scene.num_frames`.
    """
    frames = np.empty((scene.num_frames, scene.height, scene.width, CHANNELS), dtype=np.uint8)
    frames[:] = BACKGROUNDS[scene.background]
    for frame, states in zip(frames, object_states(scene)):
        for state in states:
            if state.visible:
                draw_object(frame, state)
    return frames


def render_attribute_maps(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel colour and shape labels of every frame, drawn exactly like `render_frames` (later objects on top).

    Dense ground truth for pretraining a vision tower (train/vision.py): what each pixel shows.

    Returns:
        `(colors, shapes)`, both `uint8 [T, H, W]`: 0 = background, else 1 + the index of the pixel's colour in
        `COLORS` / of its shape in `SHAPES`.
    """
    colors = np.zeros((scene.num_frames, scene.height, scene.width), dtype=np.uint8)
    shapes = np.zeros_like(colors)
    color_ids = {name: i + 1 for i, name in enumerate(COLORS)}
    shape_ids = {name: i + 1 for i, name in enumerate(SHAPES)}
    for color_frame, shape_frame, states in zip(colors, shapes, object_states(scene)):
        for state in states:
            if state.visible:
                draw_object(color_frame, state, color_ids[state.color])
                draw_object(shape_frame, state, shape_ids[state.shape])
    return colors, shapes


def _encode(frames: np.ndarray, fps: int, path: str) -> None:
    import av

    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream(VIDEO_CODEC, rate=fps, options=CODEC_OPTIONS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = PIXEL_FORMAT
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_mp4(scene: Scene, path, frames: np.ndarray | None = None) -> Path:
    """Render `scene` and write it as an H.264 (libx264, yuv420p) mp4 at the scene's fps, atomically.

    The video is written to a temporary file next to `path` and moved into place (`files.write_atomic`), so
    `path` is never half-written. Parent folders are created.

    Args:
        scene: the validated scene.
        path: destination `.mp4` path.
        frames: optional pre-rendered `render_frames(scene)` output, `uint8 [T, H, W, 3]`.

    Returns:
        `path` as a `Path`.

    Raises:
        ValueError: if `frames` does not match the scene's `[T, H, W, 3]` shape.
    """
    path = Path(path)
    if frames is None:
        frames = render_frames(scene)
    expected = (scene.num_frames, scene.height, scene.width, CHANNELS)
    if frames.shape != expected or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8 {expected}, got {frames.dtype} {tuple(frames.shape)}")
    return write_atomic(path, lambda tmp: _encode(frames, scene.fps, str(tmp)))


def read_mp4(path) -> np.ndarray:
    """Decode every frame of a video with PyAV: `uint8 [T, H, W, 3]` RGB."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])

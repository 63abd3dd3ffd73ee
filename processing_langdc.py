# Copyright 2025 The LangDC authors. Licensed under the Apache License, Version 2.0.
"""Image and video preprocessing for LangDC (Language-aware Dynamic token Compressor).

This file is a flat `trust_remote_code` module. It holds:

* the PVC / InternVL helpers (`build_transform`, `find_closest_aspect_ratio`, `dynamic_preprocess`, `load_image`,
  `get_index`, `load_video`), with the semantics of PVC `utils/preprocess.py` (OpenGVLab/PVC) re-written with
  PIL and numpy only (no torchvision, no OpenCV);
* `LangDCImageProcessor`, a `BaseImageProcessor` that knows the tile size and the number of frames of a model,
  and, for the two-encoder (official release) layout, the video encoder's frame size: then every tile/frame is
  also returned at that size as `video_pixel_values` (ImageNet normalisation, as InternVideo2 expects);
* `LangDCProcessor`, a `ProcessorMixin` that pairs it with a tokenizer.

Video decoding uses `decord` first and PyAV (`av`) as a fallback. Both are optional and only imported inside
`try:` blocks, so the image path works without them.
"""

import numbers
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.processing_utils import ProcessorMixin
from transformers.utils import logging
from transformers.video_utils import VideoMetadata


logger = logging.get_logger(__name__)

# --------------------------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_IMAGE_SIZE = 448
"""Tile side S in pixels (InternViT / PVC)."""
DEFAULT_MIN_TILES = 1
DEFAULT_MAX_TILES = 6
"""PVC evaluates most image benchmarks with `--max-num 6`."""
DEFAULT_VIDEO_MAX_TILES = 1
"""Video frames are not tiled: one S x S tile per frame (PVC `load_video(max_num=1)`)."""
DEFAULT_NUM_FRAMES = 16
"""Frames sampled per video (LangDC: 16 frames = 4 clips of 4 frames)."""

PIXEL_MAX_VALUE = 255.0
"""uint8 pixels are divided by this (torchvision `ToTensor`)."""
RESAMPLE = Image.Resampling.BICUBIC
"""Resampling filter of the resize to S x S and of the tiling resize (PVC uses bicubic)."""
TIE_AREA_FRACTION = 0.5
"""On an aspect-ratio tie the larger grid wins if the image area exceeds this fraction of the grid area."""
RGB_CHANNELS = 3

DECORD_NUM_THREADS = 1
"""decord decoding threads (the PVC setting)."""

VIDEO_BACKENDS = ("decord", "pyav")

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"

DATA_FLAG_TEXT = 0
DATA_FLAG_IMAGE = 1
DATA_FLAG_MULTI_IMAGE = 2
DATA_FLAG_VIDEO = 3


def frame_prompt(num_frames: int) -> str:
    """The PVC/InternVL video prefix of a question: one `Frame{i}: <image>` line per sampled frame (i from 1), for
    `data_flag=3` with `num_patches_list = [1] * num_frames`. The model puts clip k's block at the placeholder of
    its first frame, so each block follows the number of that frame (a time stamp the LLM can read); the one
    `<video>` placeholder is the other accepted form.

    Raises:
        ValueError: if `num_frames` is not a positive integer.
    """
    if not isinstance(num_frames, numbers.Integral) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive integer, got {num_frames!r}.")
    return "".join(f"Frame{i + 1}: {IMAGE_TOKEN}\n" for i in range(int(num_frames)))


# File signatures of still-image formats: such a file renamed `.mp4` is opened by FFmpeg as a 1-frame "video".
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_RIFF_SIGNATURE = b"RIFF"
_WEBP_FOURCC = b"WEBP"
_RIFF_FOURCC_SLICE = slice(8, 12)
_SIGNATURE_BYTES = 16
# decord prefixes its errors with "[hh:mm:ss] /source/file.cc:123: ".
_NATIVE_LOG_PREFIX = re.compile(r"^\[[0-9:]+\]\s+\S+:\d+:\s*")
# PyAV demuxers that read single still images.
_PYAV_IMAGE_FORMATS = ("image2", "image2pipe")
_PYAV_IMAGE_FORMAT_SUFFIX = "_pipe"


# --------------------------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------------------------


class _ImageTransform:
    """Callable PIL image -> normalised float32 tensor `[3, S, S]` (see `build_transform`)."""

    def __init__(self, input_size: int, mean, std):
        self.input_size = int(input_size)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, RGB_CHANNELS)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, RGB_CHANNELS)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if image.size != (self.input_size, self.input_size):
            image = image.resize((self.input_size, self.input_size), resample=RESAMPLE)
        array = np.asarray(image, dtype=np.float32) / np.float32(PIXEL_MAX_VALUE)
        array = (array - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def __repr__(self):
        return (
            f"{type(self).__name__}(input_size={self.input_size}, mean={tuple(self.mean.ravel().tolist())}, "
            f"std={tuple(self.std.ravel().tolist())})"
        )


def build_transform(input_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Build the per-tile transform of PVC `build_transform` without torchvision.

    The returned callable maps a PIL image to a float32 tensor of shape `[3, input_size, input_size]`:
    convert to RGB, bicubic resize to `(input_size, input_size)`, scale to [0, 1] (divide by 255), then
    `(x - mean) / std` per channel.

    Args:
        input_size (`int`): tile side S in pixels.
        mean, std (`tuple[float, float, float]`): per-channel normalisation (default ImageNet).

    Raises:
        ValueError: if `input_size` is not positive.
    """
    if int(input_size) <= 0:
        raise ValueError(f"input_size must be a positive number of pixels, got {input_size}.")
    return _ImageTransform(input_size, mean, std)


def _candidate_grids(min_num: int, max_num: int) -> list[tuple[int, int]]:
    """All tiling grids (columns, rows) with `min_num <= columns * rows <= max_num`, sorted by tile count."""
    grids = {
        (columns, rows)
        for tiles in range(min_num, max_num + 1)
        for columns in range(1, tiles + 1)
        for rows in range(1, tiles + 1)
        if min_num <= columns * rows <= max_num
    }
    return sorted(grids, key=lambda grid: (grid[0] * grid[1], grid[0]))


def find_closest_aspect_ratio(aspect_ratio: float, target_ratios, width: int, height: int, image_size: int):
    """Pick the tiling grid whose aspect ratio is closest to the image's (PVC semantics).

    Args:
        aspect_ratio (`float`): image width / height.
        target_ratios (`list[tuple[int, int]]`): candidate grids `(columns, rows)`, sorted by `columns * rows`.
        width, height (`int`): image size in pixels.
        image_size (`int`): tile side S in pixels.

    Returns:
        `tuple[int, int]`: the chosen `(columns, rows)`. On a tie in aspect-ratio distance, a later (larger) grid
        replaces the current one only if the image area exceeds `0.5 * S^2 * columns * rows`, i.e. the image has
        enough pixels to fill the larger grid.
    """
    best_difference = float("inf")
    best_grid = (1, 1)
    area = width * height
    for columns, rows in target_ratios:
        difference = abs(aspect_ratio - columns / rows)
        if difference < best_difference:
            best_difference = difference
            best_grid = (columns, rows)
        elif difference == best_difference and area > TIE_AREA_FRACTION * image_size * image_size * columns * rows:
            best_grid = (columns, rows)
    return best_grid


def _check_tile_counts(min_num: int, max_num: int) -> None:
    if max_num < 1:
        raise ValueError(f"max_num must be a positive number of tiles, got {max_num}.")
    if min_num < 1:
        raise ValueError(f"min_num must be a positive number of tiles, got {min_num}.")
    if min_num > max_num:
        raise ValueError(f"min_num ({min_num}) must not be larger than max_num ({max_num}).")


def dynamic_preprocess(
    image: Image.Image,
    min_num: int = DEFAULT_MIN_TILES,
    max_num: int = DEFAULT_MAX_TILES,
    image_size: int = DEFAULT_IMAGE_SIZE,
    use_thumbnail: bool = False,
) -> list[Image.Image]:
    """Cut an image into S x S tiles on the grid that best matches its aspect ratio (PVC `dynamic_preprocess`).

    The image is resized (bicubic) to `(S * columns, S * rows)` and cut into `columns * rows` tiles in row-major
    order. If there is more than one tile and `use_thumbnail` is set, a whole-image S x S thumbnail is appended.

    Args:
        image (`PIL.Image.Image`): the image.
        min_num, max_num (`int`): bounds on the number of tiles of the grid (thumbnail not counted).
        image_size (`int`): tile side S in pixels.
        use_thumbnail (`bool`): append the thumbnail when the grid has more than one tile.

    Returns:
        `list[PIL.Image.Image]`: `columns * rows` tiles (+1 thumbnail), each S x S.

    Raises:
        ValueError: if `max_num < 1`, `min_num < 1` or `min_num > max_num`.
    """
    _check_tile_counts(min_num, max_num)
    width, height = image.size
    grids = _candidate_grids(min_num, max_num)
    columns, rows = find_closest_aspect_ratio(width / height, grids, width, height, image_size)

    resized = image.resize((image_size * columns, image_size * rows), resample=RESAMPLE)
    tiles = []
    for index in range(columns * rows):
        left = (index % columns) * image_size
        top = (index // columns) * image_size
        tiles.append(resized.crop((left, top, left + image_size, top + image_size)))
    if use_thumbnail and len(tiles) > 1:
        tiles.append(image.resize((image_size, image_size), resample=RESAMPLE))
    return tiles


def _describe(obj: Any) -> str:
    """Short description of an input for error messages."""
    if isinstance(obj, (str, os.PathLike)):
        return repr(os.fspath(obj))
    if isinstance(obj, np.ndarray):
        return f"numpy array of shape {obj.shape} and dtype {obj.dtype}"
    return type(obj).__name__


def _to_pil_image(image) -> Image.Image:
    """Open a path, PIL image, uint8 HxWx3 numpy array or tensor as an RGB PIL image.

    Raises:
        ValueError: missing file, unreadable / non-image file, wrong array shape or dtype, unsupported type.
    """
    image = _open_image(image)
    if 0 in image.size:
        raise ValueError(f"The image is empty ({image.size[0]}x{image.size[1]} pixels).")
    return image


def _open_image(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise ValueError(f"Image file {path!r} does not exist (or is not a file).")
        try:
            with Image.open(path) as opened:
                return opened.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise ValueError(f"Image file {path!r} cannot be read as an image: {error}") from error
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != RGB_CHANNELS:
            raise ValueError(f"Expected an image array of shape (H, W, 3), got {_describe(image)}.")
        if image.dtype != np.uint8:
            raise ValueError(f"Expected a uint8 image array, got {_describe(image)}.")
        return Image.fromarray(np.ascontiguousarray(image))
    raise ValueError(
        f"Unsupported image input {_describe(image)}: expected a path, a PIL image or a uint8 (H, W, 3) array."
    )


def _tiles_to_tensor(tiles: list[Image.Image], transform) -> torch.Tensor:
    return torch.stack([transform(tile) for tile in tiles])


def _video_encoder_tiles(image: Image.Image, tiles: list[Image.Image], video_transform) -> torch.Tensor:
    """The same tiles for the video encoder: `[n_tiles, 3, S_v, S_v]`. A single tile is the whole image, so it is
    resized from the original (one resampling, as the official `cv2.resize` to 224); several tiles are resized."""
    return _tiles_to_tensor([image] if len(tiles) == 1 else tiles, video_transform)


def load_image(
    image,
    input_size: int = DEFAULT_IMAGE_SIZE,
    max_num: int = DEFAULT_MAX_TILES,
    min_num: int = DEFAULT_MIN_TILES,
    use_thumbnail: bool = True,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    video_input_size: int | None = None,
    video_mean=IMAGENET_MEAN,
    video_std=IMAGENET_STD,
):
    """Load, tile and normalise one image (PVC `load_image`).

    Args:
        image (`str | os.PathLike | PIL.Image.Image | np.ndarray`): a file path, a PIL image, or a uint8 array
            of shape (H, W, 3).
        input_size (`int`): tile side S in pixels.
        max_num, min_num (`int`): bounds on the number of grid tiles (see `dynamic_preprocess`).
        use_thumbnail (`bool`): append a whole-image thumbnail when there is more than one tile.
        mean, std: normalisation.
        video_input_size (`int`, *optional*): two-encoder models: also return the tiles at the video encoder's
            side S_v, normalised with `video_mean` / `video_std`.

    Returns:
        `torch.FloatTensor` of shape `[n_tiles, 3, S, S]` (thumbnail last); with `video_input_size`, the pair
        `(pixel_values, video_pixel_values [n_tiles, 3, S_v, S_v])`.

    Raises:
        ValueError: missing file, unreadable or non-image file, wrong array shape, `max_num < 1` or
        `min_num > max_num`.
    """
    _check_tile_counts(min_num, max_num)
    pil_image = _to_pil_image(image)
    tiles = dynamic_preprocess(
        pil_image, min_num=min_num, max_num=max_num, image_size=input_size, use_thumbnail=use_thumbnail
    )
    pixel_values = _tiles_to_tensor(tiles, build_transform(input_size, mean=mean, std=std))
    if video_input_size is None:
        return pixel_values
    video_transform = build_transform(video_input_size, mean=video_mean, std=video_std)
    return pixel_values, _video_encoder_tiles(pil_image, tiles, video_transform)


# --------------------------------------------------------------------------------------------------------------------
# Videos: frame sampling
# --------------------------------------------------------------------------------------------------------------------


def _check_bound(bound) -> None:
    """Raise a ValueError unless `bound` is None or `(start_s, end_s)` with `start_s <= end_s`."""
    if bound is None:
        return
    if len(bound) != 2:
        raise ValueError(f"bound must be (start_seconds, end_seconds), got {bound!r}.")
    if float(bound[1]) < float(bound[0]):
        raise ValueError(f"bound end ({bound[1]} s) must not be before its start ({bound[0]} s).")


def get_index(bound, fps: float, max_frame: int, first_idx: int = 0, num_segments: int = DEFAULT_NUM_FRAMES):
    """Frame indices at the centres of `num_segments` equal segments of the frames `start..end` (PVC `get_index`).

    `start = max(first_idx, round(bound[0] * fps))` and `end = min(round(bound[1] * fps), max_frame)`. The
    `end - start + 1` frames are cut into `num_segments` segments of size `s` and segment `k` gives frame
    `start + floor(s * (k + 0.5))`. Two fixes over the reference code: PVC divides `end - start` (so the last
    frame is never sampled and a video of exactly `num_segments` frames repeats one frame and drops the last);
    the official LangDC code also drops `start`, so a `bound` starting after 0 sampled from the wrong place. The
    result is clamped to `[first_idx, max_frame]`; when the range has fewer frames than segments, frames repeat.

    Args:
        bound (`tuple[float, float] | None`): `(start_s, end_s)` in seconds, or `None` for the whole video.
        fps (`float`): frames per second.
        max_frame (`int`): index of the last frame (frame count - 1).
        first_idx (`int`): first usable frame index.
        num_segments (`int`): number of frames to sample.

    Returns:
        `np.ndarray` of int64, shape `[num_segments]`, non-decreasing.

    Raises:
        ValueError: `num_segments < 1`, `max_frame < first_idx`, a `bound` with `end < start`, or a `bound` with
        a non-positive `fps`.
    """
    if num_segments < 1:
        raise ValueError(f"num_segments must be at least 1, got {num_segments}.")
    if max_frame < first_idx:
        raise ValueError(f"max_frame ({max_frame}) must not be smaller than first_idx ({first_idx}).")
    _check_bound(bound)
    if bound is None:
        # PVC uses bound (-1e5 s, 1e5 s), i.e. the whole video; written directly so that fps does not matter.
        start_idx, end_idx = first_idx, max_frame
    else:
        start_s, end_s = float(bound[0]), float(bound[1])
        if not fps or fps <= 0:
            raise ValueError(f"A time bound needs a positive fps, got {fps}.")
        start_idx = min(max(first_idx, round(start_s * fps)), max_frame)
        end_idx = max(min(round(end_s * fps), max_frame), start_idx)
    segment_size = float(end_idx - start_idx + 1) / num_segments
    indices = start_idx + np.floor(segment_size * (np.arange(num_segments) + 0.5)).astype(np.int64)
    return np.clip(indices, first_idx, max_frame)


# --------------------------------------------------------------------------------------------------------------------
# Videos: decoding backends
# --------------------------------------------------------------------------------------------------------------------


class _DecodeError(Exception):
    """A backend could not decode a file; the message says why (turned into a ValueError by `load_video`)."""


@dataclass
class _DecodedFrames:
    frames: np.ndarray  # uint8 [num_segments, H, W, 3], one row per requested index (repeats included)
    indices: np.ndarray  # int64 [num_segments]
    total_num_frames: int
    fps: float | None
    backend: str


def _import_decord():
    try:
        import decord
    except ImportError:
        return None
    return decord


def _import_av():
    try:
        import av
    except ImportError:
        return None
    return av


def _available_backends() -> dict[str, Any]:
    return {"decord": _import_decord(), "pyav": _import_av()}


def _resolve_backends(backend: str | None) -> list[tuple[str, Any]]:
    """Backends to try, in order, as `(name, module)`.

    Raises:
        ValueError: unknown backend name, the forced backend is not installed, or no backend is installed.
    """
    if backend is not None and backend not in VIDEO_BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; expected one of {VIDEO_BACKENDS} or None (auto).")
    modules = _available_backends()
    if backend is not None:
        if modules[backend] is None:
            package = "decord" if backend == "decord" else "av"
            raise ValueError(f"Video backend {backend!r} is not installed (pip install {package}).")
        return [(backend, modules[backend])]
    available = [(name, modules[name]) for name in VIDEO_BACKENDS if modules[name] is not None]
    if not available:
        raise ValueError("No video backend is installed: install `decord` or `av` (PyAV) to load videos.")
    return available


def _check_video_file(path: str) -> None:
    """Reject missing, empty and still-image files before any decoder sees them.

    Raises:
        ValueError: naming the path and the reason.
    """
    if not os.path.exists(path):
        raise ValueError(f"Video file {path!r} does not exist.")
    if not os.path.isfile(path):
        raise ValueError(f"Video path {path!r} is not a file.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"Video file {path!r} is empty (0 bytes).")
    with open(path, "rb") as handle:
        head = handle.read(_SIGNATURE_BYTES)
    for signature, name in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            raise ValueError(f"Video file {path!r} is a {name} image, not a video.")
    if head.startswith(_RIFF_SIGNATURE) and head[_RIFF_FOURCC_SLICE] == _WEBP_FOURCC:
        raise ValueError(f"Video file {path!r} is a WEBP image, not a video.")


def _decode_with_decord(decord, path: str, bound, num_segments: int) -> _DecodedFrames:
    """Sample frames with decord (`VideoReader(ctx=cpu(0), num_threads=1)`, as PVC)."""
    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=DECORD_NUM_THREADS)
        total = len(reader)
        fps = float(reader.get_avg_fps())
    except Exception as error:  # decord raises RuntimeError / DECORDError with C++ traces
        raise _DecodeError(f"cannot open the file ({_first_line(error)})") from error
    if total <= 0:
        raise _DecodeError("0 decodable frames")
    # Indices are clamped to the reported frame count: decord can hang when asked past it.
    indices = get_index(bound, fps, total - 1, first_idx=0, num_segments=num_segments)
    unique = np.unique(indices)
    try:
        batch = reader.get_batch(unique.tolist()).asnumpy()
    except Exception as error:
        raise _DecodeError(f"cannot decode frames {unique.tolist()} ({_first_line(error)})") from error
    frames = batch[np.searchsorted(unique, indices)]
    return _DecodedFrames(frames=frames, indices=indices, total_num_frames=total, fps=fps, backend="decord")


def _first_line(error: BaseException) -> str:
    """`"ErrorType: first line"`, without decord's `[hh:mm:ss] /path/file.cc:123: ` source prefix."""
    lines = str(error).strip().splitlines()
    text = _NATIVE_LOG_PREFIX.sub("", lines[0]) if lines else ""
    return f"{type(error).__name__}: {text}"


def _pyav_probe(av, path: str) -> tuple[int, float | None]:
    """Frame count and fps of the first video stream, from the container (or by counting packets)."""
    try:
        container = av.open(path)
    except Exception as error:
        raise _DecodeError(f"cannot open the file ({_first_line(error)})") from error
    try:
        format_name = container.format.name
        if format_name in _PYAV_IMAGE_FORMATS or format_name.endswith(_PYAV_IMAGE_FORMAT_SUFFIX):
            raise _DecodeError(f"it is a still image (container format {format_name!r}), not a video")
        if not container.streams.video:
            raise _DecodeError("it has no video stream (0 decodable frames)")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        total = int(stream.frames or 0)
        if total <= 0:  # some containers (webm, mkv) do not store a frame count: count the packets
            total = sum(1 for packet in container.demux(stream) if packet.size)
    except _DecodeError:
        raise
    except Exception as error:
        raise _DecodeError(f"cannot read the container ({_first_line(error)})") from error
    finally:
        container.close()
    return total, fps


def _pyav_collect(av, path: str, wanted: set[int]) -> tuple[dict[int, np.ndarray], int]:
    """Decode in presentation order, keep the wanted frame indices, stop after the last one.

    Returns the kept frames and how many frames were decoded. Packets that fail to decode are skipped.
    """
    kept: dict[int, np.ndarray] = {}
    last_wanted = max(wanted)
    decoded = 0
    try:
        container = av.open(path)
    except Exception as error:
        raise _DecodeError(f"cannot open the file ({_first_line(error)})") from error
    try:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                if decoded in wanted:
                    kept[decoded] = frame.to_ndarray(format="rgb24")
                decoded += 1
            if decoded > last_wanted:
                break
    except Exception as error:
        raise _DecodeError(f"decoding failed after {decoded} frames ({_first_line(error)})") from error
    finally:
        container.close()
    return kept, decoded


def _decode_with_pyav(av, path: str, bound, num_segments: int) -> _DecodedFrames:
    """Sample frames with PyAV: decode in order and keep the wanted frames (no seeking)."""
    total, fps = _pyav_probe(av, path)
    if total <= 0:
        raise _DecodeError("0 decodable frames")
    if bound is not None and not fps:
        raise _DecodeError("the frame rate is unknown, so a time bound cannot be applied")
    indices = get_index(bound, fps or 0.0, total - 1, first_idx=0, num_segments=num_segments)
    kept, decoded = _pyav_collect(av, path, set(indices.tolist()))
    if decoded == 0:
        raise _DecodeError("0 decodable frames")
    if len(kept) < len(set(indices.tolist())):
        # The container over-reported its frame count: resample within the frames that really exist.
        logger.warning(
            f"Video {path!r} reports {total} frames but only {decoded} could be decoded; resampling within them."
        )
        total = decoded
        indices = get_index(bound, fps or 0.0, total - 1, first_idx=0, num_segments=num_segments)
        kept, decoded = _pyav_collect(av, path, set(indices.tolist()))
        if len(kept) < len(set(indices.tolist())):
            raise _DecodeError(f"frames {sorted(set(indices.tolist()) - set(kept))} could not be decoded")
    frames = np.stack([kept[int(index)] for index in indices])
    return _DecodedFrames(frames=frames, indices=indices, total_num_frames=total, fps=fps, backend="pyav")


_DECODERS = {"decord": _decode_with_decord, "pyav": _decode_with_pyav}


def _decode_video(path: str, bound, num_segments: int, backend: str | None) -> _DecodedFrames:
    """Try each backend in turn; raise one ValueError naming the path and every backend's reason."""
    reasons = []
    for name, module in _resolve_backends(backend):
        try:
            return _DECODERS[name](module, path, bound, num_segments)
        except _DecodeError as error:
            reasons.append(f"{name}: {error}")
            logger.info(f"Backend {name} could not decode {path!r}: {error}")
    raise ValueError(f"Video file {path!r} could not be decoded as a video ({'; '.join(reasons)}).")


# --------------------------------------------------------------------------------------------------------------------
# Videos: public loader
# --------------------------------------------------------------------------------------------------------------------


def _frame_to_pil(frame) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame.convert("RGB")
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != RGB_CHANNELS or frame.dtype != np.uint8:
        raise ValueError(f"Expected video frames as uint8 (H, W, 3) arrays or PIL images, got {_describe(frame)}.")
    return Image.fromarray(np.ascontiguousarray(frame))


def frames_to_pixel_values(
    frames,
    input_size: int = DEFAULT_IMAGE_SIZE,
    max_num: int = DEFAULT_VIDEO_MAX_TILES,
    use_thumbnail: bool = True,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    video_input_size: int | None = None,
    video_mean=IMAGENET_MEAN,
    video_std=IMAGENET_STD,
) -> tuple:
    """Tile and normalise already-decoded video frames.

    Args:
        frames: uint8 array or tensor `[T, H, W, 3]`, or a list of PIL images / uint8 `(H, W, 3)` arrays.
        input_size, max_num, use_thumbnail, mean, std, video_input_size, video_mean, video_std: as in
            `load_video`.

    Returns:
        `(pixel_values [ΣT, 3, S, S] float32, num_patches_list list[int])`, tiles per frame; with
        `video_input_size`, also `video_pixel_values [ΣT, 3, S_v, S_v]` as a third element.

    Raises:
        ValueError: no frames, or a frame that is not a uint8 `(H, W, 3)` array or PIL image.
    """
    if isinstance(frames, (np.ndarray, torch.Tensor)) and frames.ndim != 4:
        raise ValueError(f"Expected decoded video frames of shape (T, H, W, 3), got shape {tuple(frames.shape)}.")
    if len(frames) == 0:
        raise ValueError("A decoded video must have at least one frame.")
    transform = build_transform(input_size, mean=mean, std=std)
    video_transform = None
    if video_input_size is not None:
        video_transform = build_transform(video_input_size, mean=video_mean, std=video_std)
    tensors, video_tensors, num_patches_list = [], [], []
    for frame in frames:
        image = _frame_to_pil(frame)
        tiles = dynamic_preprocess(image, max_num=max_num, image_size=input_size, use_thumbnail=use_thumbnail)
        tensors.append(_tiles_to_tensor(tiles, transform))
        if video_transform is not None:
            video_tensors.append(_video_encoder_tiles(image, tiles, video_transform))
        num_patches_list.append(len(tiles))
    if video_transform is None:
        return torch.cat(tensors), num_patches_list
    return torch.cat(tensors), num_patches_list, torch.cat(video_tensors)


def load_video(
    video_path,
    bound=None,
    input_size: int = DEFAULT_IMAGE_SIZE,
    max_num: int = DEFAULT_VIDEO_MAX_TILES,
    num_segments: int = DEFAULT_NUM_FRAMES,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    use_thumbnail: bool = True,
    return_metadata: bool = False,
    backend: str | None = None,
    video_input_size: int | None = None,
    video_mean=IMAGENET_MEAN,
    video_std=IMAGENET_STD,
):
    """Sample `num_segments` frames of a video at segment centres, tile and normalise them (PVC `load_video`).

    Decoding uses decord (`VideoReader(ctx=cpu(0), num_threads=1)`) and falls back to PyAV (decode in order,
    keep the wanted frames) when decord is missing or fails. Indices are clamped to the frame count. A video
    with fewer frames than `num_segments` repeats frames (a warning says how many).

    Args:
        video_path (`str | os.PathLike`): the video file.
        bound (`tuple[float, float] | None`): `(start_s, end_s)` in seconds to sample within.
        input_size (`int`): tile side S in pixels.
        max_num (`int`): tiles per frame (1 = no tiling, PVC default).
        num_segments (`int`): frames to sample.
        mean, std: normalisation.
        use_thumbnail (`bool`): thumbnail per frame when a frame has more than one tile.
        return_metadata (`bool`): also return a `transformers.video_utils.VideoMetadata`.
        backend (`str | None`): `None` (auto: decord, then PyAV), `"decord"` or `"pyav"`.
        video_input_size (`int`, *optional*): two-encoder models: also return the frames at the video encoder's
            side S_v (normalised with `video_mean` / `video_std`).

    Returns:
        `(pixel_values, num_patches_list)` or `(pixel_values, num_patches_list, metadata)`: `pixel_values` is a
        float32 tensor `[ΣT, 3, S, S]` and `num_patches_list` the number of tiles per frame (`[1] * T` by default).
        With `video_input_size`, `video_pixel_values [ΣT, 3, S_v, S_v]` follows `num_patches_list`.

    Raises:
        ValueError: naming the path and the reason, for a missing, empty, corrupt or non-video file (text, a
        still image renamed), a video with 0 decodable frames, `num_segments < 1`, or an unknown / uninstalled
        `backend`.
    """
    if num_segments < 1:
        raise ValueError(f"num_segments must be at least 1, got {num_segments} (video {_describe(video_path)}).")
    _check_tile_counts(DEFAULT_MIN_TILES, max_num)
    _check_bound(bound)
    path = os.fspath(video_path)
    _check_video_file(path)
    decoded = _decode_video(path, bound, num_segments, backend)

    repeated = num_segments - len(np.unique(decoded.indices))
    if repeated > 0:
        logger.warning(
            f"Video {path!r}: the sampled range has fewer distinct frames than num_segments={num_segments}; "
            f"{repeated} frame(s) are repeated."
        )
    outputs = frames_to_pixel_values(
        decoded.frames, input_size=input_size, max_num=max_num, use_thumbnail=use_thumbnail, mean=mean, std=std,
        video_input_size=video_input_size, video_mean=video_mean, video_std=video_std,
    )
    if not return_metadata:
        return outputs
    height, width = decoded.frames.shape[1:3]
    metadata = VideoMetadata(
        total_num_frames=int(decoded.total_num_frames),
        fps=decoded.fps,
        width=int(width),
        height=int(height),
        duration=decoded.total_num_frames / decoded.fps if decoded.fps else None,
        video_backend=decoded.backend,
        frames_indices=[int(index) for index in decoded.indices],
    )
    return (*outputs, metadata)


# --------------------------------------------------------------------------------------------------------------------
# Image processor
# --------------------------------------------------------------------------------------------------------------------


class LangDCImageProcessor(BaseImageProcessor):
    r"""Image / video processor of LangDC: PVC dynamic tiling for images, one tile per sampled frame for videos.

    Args:
        image_size (`int`, defaults to 448): tile side S (the vision encoder's input size).
        min_dynamic_patch (`int`, defaults to 1): minimum grid tiles per image.
        max_dynamic_patch (`int`, defaults to 6): maximum grid tiles per image (thumbnail not counted).
        use_thumbnail (`bool`, defaults to `True`): append a whole-image thumbnail when an image has > 1 tile.
        image_mean, image_std (`list[float]`, default ImageNet): normalisation.
        num_frames (`int`, defaults to 16): frames sampled per video by `load_video`.
        video_image_size (`int`, *optional*): two-encoder models (official release layout): the video encoder's
            frame side; every tile/frame is then also produced at this size as `video_pixel_values`.
        video_image_mean, video_image_std (`list[float]`, default ImageNet): normalisation of those frames.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        image_size: int = DEFAULT_IMAGE_SIZE,
        min_dynamic_patch: int = DEFAULT_MIN_TILES,
        max_dynamic_patch: int = DEFAULT_MAX_TILES,
        use_thumbnail: bool = True,
        image_mean=None,
        image_std=None,
        num_frames: int = DEFAULT_NUM_FRAMES,
        video_image_size: int | None = None,
        video_image_mean=None,
        video_image_std=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_tile_counts(min_dynamic_patch, max_dynamic_patch)
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}.")
        if video_image_size is not None and int(video_image_size) <= 0:
            raise ValueError(f"video_image_size must be a positive number of pixels, got {video_image_size}.")
        self.image_size = int(image_size)
        self.min_dynamic_patch = int(min_dynamic_patch)
        self.max_dynamic_patch = int(max_dynamic_patch)
        self.use_thumbnail = bool(use_thumbnail)
        self.image_mean = list(image_mean if image_mean is not None else IMAGENET_MEAN)
        self.image_std = list(image_std if image_std is not None else IMAGENET_STD)
        self.num_frames = int(num_frames)
        self.video_image_size = int(video_image_size) if video_image_size is not None else None
        self.video_image_mean = list(video_image_mean if video_image_mean is not None else IMAGENET_MEAN)
        self.video_image_std = list(video_image_std if video_image_std is not None else IMAGENET_STD)

    @property
    def _video_encoder_kwargs(self) -> dict:
        return dict(video_input_size=self.video_image_size, video_mean=self.video_image_mean, video_std=self.video_image_std)

    def load_image(self, image, max_num: int | None = None):
        """Tile one image with this processor's settings: float32 tensor `[n_tiles, 3, S, S]` (see `load_image`);
        with a `video_image_size`, the pair `(pixel_values, video_pixel_values)`. Raises `ValueError` as
        `load_image` (missing, unreadable or empty image, bad array, bad tile counts)."""
        return load_image(
            image,
            input_size=self.image_size,
            max_num=self.max_dynamic_patch if max_num is None else max_num,
            min_num=self.min_dynamic_patch,
            use_thumbnail=self.use_thumbnail,
            mean=self.image_mean,
            std=self.image_std,
            **self._video_encoder_kwargs,
        )

    def load_images(self, images: list, max_num: int | None = None) -> tuple[list, list | None]:
        """Tile several images: per image `[n_i, 3, S, S]`, and per image `[n_i, 3, S_v, S_v]` (or None without a
        `video_image_size`)."""
        loaded = [self.load_image(image, max_num=max_num) for image in images]
        if self.video_image_size is None:
            return loaded, None
        return [item[0] for item in loaded], [item[1] for item in loaded]

    def load_video(
        self,
        video_path,
        num_segments: int | None = None,
        bound=None,
        return_metadata: bool = False,
        max_num: int = DEFAULT_VIDEO_MAX_TILES,
        backend: str | None = None,
    ):
        """Sample `num_segments` (default `num_frames`) frames of a video with this processor's tile size.

        Returns `(pixel_values [ΣT, 3, S, S], num_patches_list)`, then `video_pixel_values` when the processor has a
        `video_image_size`, then the `VideoMetadata` if asked; see the module `load_video`, whose `ValueError`s
        (missing, corrupt or non-video file, bad `num_segments` or `bound`, unknown backend) it raises.
        """
        return load_video(
            video_path,
            bound=bound,
            input_size=self.image_size,
            max_num=max_num,
            num_segments=self.num_frames if num_segments is None else num_segments,
            mean=self.image_mean,
            std=self.image_std,
            use_thumbnail=self.use_thumbnail,
            return_metadata=return_metadata,
            backend=backend,
            **self._video_encoder_kwargs,
        )

    def video_frames_to_pixel_values(self, frames, max_num: int = DEFAULT_VIDEO_MAX_TILES):
        """Tile decoded frames (`[T, H, W, 3]` uint8 or a list of frames): `(pixel_values, num_patches_list)`, plus
        `video_pixel_values` when the processor has a `video_image_size`."""
        return frames_to_pixel_values(
            frames,
            input_size=self.image_size,
            max_num=max_num,
            use_thumbnail=self.use_thumbnail,
            mean=self.image_mean,
            std=self.image_std,
            **self._video_encoder_kwargs,
        )

    def preprocess(self, images, max_num: int | None = None, return_tensors=None, **kwargs) -> BatchFeature:
        """Tile one image or a list of images.

        Args:
            images: an image (path, PIL image, uint8 `(H, W, 3)` array) or a list of them.
            max_num (`int`, *optional*): maximum grid tiles per image (default `max_dynamic_patch`).
            return_tensors (`str`, *optional*): `"np"` for a numpy `pixel_values`; anything else keeps torch.

        Returns:
            `BatchFeature` with `pixel_values` float32 `[Σn, 3, S, S]` and `num_patches_list` (`list[int]`, tiles
            per image); with a `video_image_size` also `video_pixel_values` `[Σn, 3, S_v, S_v]`.

        Raises:
            ValueError: see `load_image`; also an empty list of images.
        """
        if kwargs:
            logger.warning_once(f"LangDCImageProcessor.preprocess ignores unexpected arguments {sorted(kwargs)}.")
        if not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 0:
            raise ValueError("preprocess needs at least one image.")
        tensors, video_tensors = self.load_images(images, max_num=max_num)
        data = {"pixel_values": torch.cat(tensors), "num_patches_list": [len(tensor) for tensor in tensors]}
        if video_tensors is not None:
            data["video_pixel_values"] = torch.cat(video_tensors)
        if return_tensors == "np":
            data = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in data.items()}
        return BatchFeature(data=data)


# --------------------------------------------------------------------------------------------------------------------
# Processor
# --------------------------------------------------------------------------------------------------------------------


def _is_frame(obj) -> bool:
    """A single decoded frame: a PIL image or an `(H, W, 3)` array / tensor."""
    return isinstance(obj, Image.Image) or (isinstance(obj, (np.ndarray, torch.Tensor)) and obj.ndim == 3)


class LangDCProcessor(ProcessorMixin):
    r"""Pairs a `LangDCImageProcessor` with a tokenizer.

    `__call__` tiles images, samples and tiles videos, and tokenises the text with left padding. It does **not**
    expand `<image>` / `<video>`: the model replaces each placeholder itself once its language expert has decided
    how many tokens each clip gets.

    Args:
        image_processor (`LangDCImageProcessor`, *optional*): defaults to `LangDCImageProcessor()`.
        tokenizer (`PreTrainedTokenizerBase`): tokenizer with `<image>` and `<video>` tokens.
        chat_template (`str`, *optional*): Jinja chat template.
    """

    image_token = IMAGE_TOKEN
    video_token = VIDEO_TOKEN

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        if image_processor is None:
            image_processor = LangDCImageProcessor()
        if tokenizer is None:
            raise ValueError("LangDCProcessor needs a tokenizer.")
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    # ---- media helpers ---------------------------------------------------------------------------------------------

    def load_image(self, image, max_num: int | None = None):
        """Tile one image with the model's tile size: `[n_tiles, 3, S, S]`; for a two-encoder model the pair
        `(pixel_values, video_pixel_values [n_tiles, 3, S_v, S_v])`. Raises `ValueError` as `load_image`."""
        return self.image_processor.load_image(image, max_num=max_num)

    frame_prompt = staticmethod(frame_prompt)

    def load_video(
        self, video_path, num_segments: int | None = None, bound=None, return_metadata: bool = False, **kwargs
    ):
        """Sample the model's frame count from a video: `(pixel_values [T, 3, S, S], num_patches_list)`, then
        `video_pixel_values [T, 3, S_v, S_v]` for a two-encoder model, then the metadata if asked. Raises
        `ValueError` as the module `load_video`."""
        return self.image_processor.load_video(
            video_path, num_segments=num_segments, bound=bound, return_metadata=return_metadata, **kwargs
        )

    def _video_pixel_values(self, video, num_segments, bound, backend) -> tuple:
        """`(pixel_values, num_patches_list, video_pixel_values or None)` of one video path or decoded frames."""
        if isinstance(video, (str, os.PathLike)):
            outputs = self.load_video(video, num_segments=num_segments, bound=bound, backend=backend)
        else:
            outputs = self.image_processor.video_frames_to_pixel_values(video)
        return outputs if len(outputs) == 3 else (*outputs, None)

    # ---- batching --------------------------------------------------------------------------------------------------

    @staticmethod
    def _split_images(images, texts: list[str] | None, has_video: list[bool], image_token: str) -> list[list]:
        """Per-sample lists of images.

        One sample: an image or a list of images. A batch: a list with one entry per sample (None, an image or a
        list of images), or a flat list of images handed out in order by the `<image>` count of each text
        (video samples take none).

        Raises:
            ValueError: a flat list whose length does not match the placeholders of the texts.
        """
        num_samples = len(has_video)
        if images is None:
            return [[] for _ in range(num_samples)]
        if not isinstance(images, (list, tuple)):
            images = [images]
        if num_samples == 1:
            if len(images) == 1 and isinstance(images[0], (list, tuple)):
                images = images[0]
            return [[image for image in images if image is not None]]
        nested = any(image is None or isinstance(image, (list, tuple)) for image in images)
        if nested:
            if len(images) != num_samples:
                raise ValueError(f"`images` has {len(images)} entries for a batch of {num_samples} samples.")
            return [
                [] if image is None else list(image) if isinstance(image, (list, tuple)) else [image]
                for image in images
            ]
        # A flat list: hand the images out in order, as many per sample as its text has placeholders.
        if texts is None:
            raise ValueError("A flat list of images needs `text` to tell which sample each image belongs to.")
        counts = [0 if video else text.count(image_token) for text, video in zip(texts, has_video, strict=True)]
        if sum(counts) != len(images):
            raise ValueError(
                f"The image samples' texts contain {sum(counts)} {image_token} placeholders but {len(images)} "
                "images were given."
            )
        result, position = [], 0
        for count in counts:
            result.append(list(images[position : position + count]))
            position += count
        return result

    @staticmethod
    def _split_videos(videos, num_samples: int) -> list:
        """Per-sample video (or None)."""
        if videos is None:
            return [None] * num_samples
        if num_samples == 1:
            if isinstance(videos, (list, tuple)) and len(videos) == 1 and not _is_frame(videos[0]):
                return [videos[0]]  # [video] for a single sample
            return [videos]
        if not isinstance(videos, (list, tuple)) or len(videos) != num_samples:
            raise ValueError(
                f"For a batch of {num_samples} texts, `videos` must be a list of {num_samples} entries "
                "(a video or None per sample)."
            )
        return list(videos)

    def _check_placeholders(self, text: str, index: int, images: list, num_frames: int | None) -> None:
        num_image_tokens = text.count(self.image_token)
        num_video_tokens = text.count(self.video_token)
        if num_frames is None:
            if num_video_tokens:
                raise ValueError(f"Sample {index}: the text has {num_video_tokens} {self.video_token} but no video.")
            if num_image_tokens != len(images):
                raise ValueError(
                    f"Sample {index}: the text has {num_image_tokens} {self.image_token} placeholders but "
                    f"{len(images)} images were given."
                )
            return
        one_video_token = num_video_tokens == 1 and num_image_tokens == 0
        one_image_token_per_frame = num_video_tokens == 0 and num_image_tokens == num_frames
        if not (one_video_token or one_image_token_per_frame):
            raise ValueError(
                f"Sample {index}: a video sample needs exactly one {self.video_token} or one {self.image_token} per "
                f"frame ({num_frames} frames); the text has {num_video_tokens} {self.video_token} and "
                f"{num_image_tokens} {self.image_token}."
            )

    def __call__(self, images=None, text=None, videos=None, **kwargs) -> BatchFeature:
        """Prepare a batch of samples for the model.

        Args:
            images: one sample: an image or a list of images; a batch: a list with one list (or None) per sample,
                or a flat list handed out by the `<image>` count of each text.
            text (`str | list[str]`): one text per sample, with `<image>` / `<video>` placeholders (not expanded).
            videos: one sample: a path or decoded frames (`[T, H, W, 3]` uint8, or a list of frames); a batch: a
                list with one video (or None) per sample.
            max_num (`int`, *optional*): maximum tiles per image (default the image processor's).
            num_segments (`int`, *optional*): frames sampled per video path (default `num_frames`).
            bound (`tuple[float, float]`, *optional*): time window in seconds for video paths.
            video_backend (`str`, *optional*): `"decord"` / `"pyav"` (default auto).
            return_tensors (`str`, defaults to `"pt"`), and other tokenizer arguments (`padding`, `truncation`,
                `max_length`, ...).

        Returns:
            `BatchFeature` with `input_ids` and `attention_mask` (left padded), `pixel_values` (`[ΣN, 3, S, S]`, all
            tiles / frames of all samples in order; absent for a text-only batch), `video_pixel_values` (the same
            tiles / frames at the video encoder's size, two-encoder models only), `num_patches_list` (per sample:
            tiles per image, or tiles per frame for a video) and `data_flag` (per sample: 0 text only, 1 one image,
            2 several images, 3 video).

        Raises:
            ValueError: a placeholder count that does not match the media, a sample with both images and a video,
                or the media errors of `load_image` / `load_video`.
        """
        max_num = kwargs.pop("max_num", None)
        num_segments = kwargs.pop("num_segments", None)
        bound = kwargs.pop("bound", None)
        video_backend = kwargs.pop("video_backend", None)
        return_tensors = kwargs.pop("return_tensors", "pt")

        if text is None:
            texts = None
        elif isinstance(text, str):
            texts = [text]
        elif isinstance(text, (list, tuple)) and all(isinstance(item, str) for item in text):
            texts = list(text)
        else:
            raise ValueError("`text` must be a string or a list of strings (one per sample).")
        num_samples = len(texts) if texts is not None else 1
        if num_samples == 0:
            raise ValueError("`text` must not be an empty list.")

        sample_videos = self._split_videos(videos, num_samples)
        has_video = [video is not None for video in sample_videos]
        sample_images = self._split_images(images, texts, has_video, self.image_token)

        pixel_values, video_pixel_values, num_patches_list, data_flag = [], [], [], []
        for index in range(num_samples):
            sample_image_list, video = sample_images[index], sample_videos[index]
            if sample_image_list and video is not None:
                raise ValueError(f"Sample {index} has both images and a video; give one kind of media per sample.")
            if video is not None:
                values, patches, video_values = self._video_pixel_values(video, num_segments, bound, video_backend)
                if texts is not None:
                    self._check_placeholders(texts[index], index, [], len(patches))
                flag = DATA_FLAG_VIDEO
            else:
                if texts is not None:
                    self._check_placeholders(texts[index], index, sample_image_list, None)
                tiles, video_tiles = self.image_processor.load_images(sample_image_list, max_num=max_num)
                values = torch.cat(tiles) if tiles else None
                video_values = torch.cat(video_tiles) if video_tiles else None
                patches = [len(tile) for tile in tiles]
                flag = {0: DATA_FLAG_TEXT, 1: DATA_FLAG_IMAGE}.get(len(tiles), DATA_FLAG_MULTI_IMAGE)
            if values is not None:
                pixel_values.append(values)
            if video_values is not None:
                video_pixel_values.append(video_values)
            num_patches_list.append(patches)
            data_flag.append(flag)

        data = {}
        if texts is not None:
            kwargs.setdefault("padding", True)
            kwargs.setdefault("return_token_type_ids", False)
            text_inputs = self.tokenizer(texts, padding_side="left", return_tensors=return_tensors, **kwargs)
            data.update(text_inputs)
        for key, values in (("pixel_values", pixel_values), ("video_pixel_values", video_pixel_values)):
            if values:
                stacked = torch.cat(values)
                data[key] = stacked.numpy() if return_tensors == "np" else stacked
        data["num_patches_list"] = num_patches_list
        data["data_flag"] = data_flag
        return BatchFeature(data=data)

    # ---- passthroughs ----------------------------------------------------------------------------------------------

    def batch_decode(self, *args, **kwargs):
        """Forwarded to the tokenizer's `batch_decode`."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        """Forwarded to the tokenizer's `decode`."""
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        names = ["input_ids", "attention_mask"] + list(self.image_processor.model_input_names)
        if self.image_processor.video_image_size is not None:
            names.append("video_pixel_values")
        return names + ["num_patches_list", "data_flag"]


LangDCImageProcessor.register_for_auto_class("AutoImageProcessor")
LangDCProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LangDCImageProcessor",
    "LangDCProcessor",
    "build_transform",
    "dynamic_preprocess",
    "find_closest_aspect_ratio",
    "frame_prompt",
    "frames_to_pixel_values",
    "get_index",
    "load_image",
    "load_video",
]

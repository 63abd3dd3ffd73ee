"""Stage 0: pretrain the vision tower on what every patch shows (dense colour and shape labels).

The official LangDC starts from a pretrained CLIP/SigLIP tower (arXiv 2509.00969); none can be downloaded
here, and a tower learned from scratch through the expert's caption loss alone learns colours but not shapes or
motion (run v0, train/RUNS.md). So the tower is first pretrained on the synthetic world's dense ground truth:
for each patch, the fraction of its pixels showing each colour and each shape (background included), predicted by
two linear heads on the features the expert and the pool branch consume (`get_image_features`). Colour and shape
are separate targets, so colour-shape pairs never seen in training are still two familiar attributes. The heads
are dropped afterwards; only the tower's weights go on to stage 1.

Optionally (`--moment-weight`, run v30) a third head regresses each patch's first moments per colour
(`patch_moments`): where inside the expert's pooled cell the colour lies. Fractions alone say little of a move of
1.5-3 px per frame once `expert_pool_grid` averages 2x2 patches into one 16 px cell; moments about the cell's
centre survive that average exactly, so the expert can see the position shift from frame to frame
(`eval.motion_probe` decodes a clip's move direction from those cells in 54% of the clips, 75% after the moment
head; train/RUNS.md, run v30).

Optionally (`--recolor-fraction`, run v58) a share of the frames has its objects painted in novel colours
(`ObjectRecolor`): colours far from every named one, so that a shape is seen in many colours without any frame
showing a held-out colour-shape pair. Trained on the named colours alone, the tower reads a shape through its colour
(no red object is ever a triangle) and no probe finds the shape of a held-out pair in its features
(`eval.shape_probe`: 1.7%); a pretrained CLIP/SigLIP tower has seen shapes in every colour. Recoloured frames train
the shape head only.
"""

from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from synthvid import BACKGROUNDS, COLORS, SHAPES, render_attribute_maps, validate_spec
from train.data import parallel_map, torch_save_atomic

NUM_COLOR_CLASSES = len(COLORS) + 1  # + background
NUM_SHAPE_CLASSES = len(SHAPES) + 1
# A novel colour lies at least this far (Euclidean distance in 0-255 RGB) from every named colour and background:
# the named colours are 118-307 apart, so a recoloured object is never taken for a named one (or the background).
NOVEL_COLOR_MIN_DISTANCE = 80.0


def patch_fractions(labels: np.ndarray, num_classes: int, patch_size: int) -> torch.Tensor:
    """Per-patch class fractions of a label map.

    Args:
        labels: `uint8 [T, H, W]` class ids in `[0, num_classes)`.
        num_classes: number of classes.
        patch_size: side of a square patch in pixels; H and W must be multiples of it.

    Returns:
        `float16 [T, (H / p) * (W / p), num_classes]`, rows in the vision tower's raster patch order, each summing
        to 1.

    Raises:
        ValueError: if the frame size is not a multiple of `patch_size`.
    """
    frames, height, width = labels.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"Frame size {height}x{width} is not a multiple of the patch size {patch_size}.")
    one_hot = F.one_hot(torch.from_numpy(labels).long(), num_classes).float()  # [T, H, W, C]
    grid = one_hot.permute(0, 3, 1, 2)
    fractions = F.avg_pool2d(grid, patch_size)  # [T, C, H/p, W/p]
    return fractions.flatten(2).transpose(1, 2).to(torch.float16)


def patch_moments(labels: np.ndarray, num_classes: int, patch_size: int, cell_size: int) -> torch.Tensor:
    """Per-patch first moments of each non-background class about the centre of the pooled cell holding the patch.

    For patch `p` and class `c >= 1`: the mean over the patch's pixels of `[label == c] * (x - x0, y - y0) /
    (cell_size / 2)`, with `(x0, y0)` the centre of the `cell_size` square (one `expert_pool_grid` cell) that
    contains `p`, pixel centres at half-integers. Each value is in [-1, 1]; averaging the patches of a cell (what
    `pool_patch_tokens` does to features linear in these targets) gives the cell's own moment over its patch
    count, so a colour's position inside the cell survives the pooling.

    Args:
        labels: `uint8 [T, H, W]` class ids in `[0, num_classes)`, 0 the background.
        num_classes: number of classes, background included.
        patch_size: side of a patch in pixels.
        cell_size: side of a pooled cell in pixels, a multiple of `patch_size`.

    Returns:
        `float16 [T, (H / p) * (W / p), 2 * (num_classes - 1)]`: per class, its x then y moment; rows in the
        tower's raster patch order.

    Raises:
        ValueError: if `cell_size` is not a multiple of `patch_size` or the frame size not a multiple of `cell_size`.
    """
    frames, height, width = labels.shape
    if cell_size % patch_size or height % cell_size or width % cell_size:
        raise ValueError(f"The cell size {cell_size} must be a multiple of the patch size {patch_size} and divide "
                         f"the frame size {height}x{width}.")
    mass = F.one_hot(torch.from_numpy(labels).long(), num_classes)[..., 1:].float().permute(0, 3, 1, 2)
    half = cell_size / 2
    x = ((torch.arange(width) % cell_size) + 0.5 - half) / half  # [W], offset from the cell's centre
    y = ((torch.arange(height) % cell_size) + 0.5 - half) / half
    moments = torch.stack([mass * x, mass * y[:, None]], dim=2)  # [T, C-1, 2, H, W]
    pooled = F.avg_pool2d(moments.flatten(1, 2), patch_size)  # [T, 2(C-1), H/p, W/p]
    return pooled.flatten(2).transpose(1, 2).to(torch.float16)


def _checked_label_maps(record: dict, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    scene = validate_spec(record["spec"])
    if (scene.height, scene.width) != (image_size, image_size):
        raise ValueError(f"{record['id']}: frames are {scene.height}x{scene.width}, the vision tower takes "
                         f"{image_size}x{image_size}; dense labels need videos at the tower's resolution.")
    return render_attribute_maps(scene)


def _attribute_fractions(record: dict, patch_size: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    color_map, shape_map = _checked_label_maps(record, image_size)
    colors = patch_fractions(color_map, NUM_COLOR_CLASSES, patch_size)
    return colors, patch_fractions(shape_map, NUM_SHAPE_CLASSES, patch_size)


def _color_moments(record: dict, patch_size: int, image_size: int, cell_size: int) -> torch.Tensor:
    color_map, _ = _checked_label_maps(record, image_size)
    return patch_moments(color_map, NUM_COLOR_CLASSES, patch_size, cell_size)


def _cached_render(cache: Path, render, records: list[dict], workers: int, desc: str):
    """`render` over `records` (stacked per output), loaded from `cache` when there, else computed and saved."""
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    outputs = parallel_map(render, records, workers, desc=desc)
    result = tuple(map(torch.stack, zip(*outputs))) if isinstance(outputs[0], tuple) else torch.stack(outputs)
    torch_save_atomic(result, cache)
    return result


def load_attribute_cache(data_dir: Path, split: str, records: list[dict], patch_size: int, image_size: int,
                         workers: int = 0):
    """`(colors, shapes)` per-patch fractions of every frame of a split: `[N, T, P, C]` float16, rendered by
    `workers` processes (`train.data.parallel_map`) and cached on disk (per number of videos).

    Raises:
        ValueError: if the videos are not `image_size` pixels square (the labels would not match the patches).
    """
    cache = Path(data_dir) / "cache" / f"{split}-{len(records)}-attributes-{patch_size}px.pt"
    render = partial(_attribute_fractions, patch_size=patch_size, image_size=image_size)
    return _cached_render(cache, render, records, workers, f"rendering {split} attribute maps")


def load_moment_cache(data_dir: Path, split: str, records: list[dict], patch_size: int, image_size: int,
                      cell_size: int, workers: int = 0) -> torch.Tensor:
    """Per-patch colour moments (`patch_moments`) of every frame of a split: `[N, T, P, 2 * len(COLORS)]`
    float16, rendered like `load_attribute_cache` and cached on disk.

    Raises:
        ValueError: as `load_attribute_cache` and `patch_moments` raise.
    """
    cache = Path(data_dir) / "cache" / f"{split}-{len(records)}-moments-{patch_size}px-cell{cell_size}px.pt"
    render = partial(_color_moments, patch_size=patch_size, image_size=image_size, cell_size=cell_size)
    return _cached_render(cache, render, records, workers, f"rendering {split} colour moments")


def load_color_map_cache(data_dir: Path, split: str, records: list[dict], image_size: int,
                         workers: int = 0) -> torch.Tensor:
    """Per-pixel colour labels of every frame of a split (`render_attribute_maps`' first map: 0 the background, else
    1 + the index in `COLORS`): `uint8 [N, T, H, W]`, rendered like `load_attribute_cache` and cached on disk.

    Raises:
        ValueError: as `load_attribute_cache` raises.
    """
    cache = Path(data_dir) / "cache" / f"{split}-{len(records)}-color-maps-{image_size}px.pt"
    render = partial(_color_map, image_size=image_size)
    return _cached_render(cache, render, records, workers, f"rendering {split} colour maps")


def _color_map(record: dict, image_size: int) -> torch.Tensor:
    return torch.from_numpy(_checked_label_maps(record, image_size)[0])


def novel_colors(count: int, generator: torch.Generator,
                 min_distance: float = NOVEL_COLOR_MIN_DISTANCE) -> torch.Tensor:
    """`float32 [count, 3]` RGB colours in [0, 255], uniform over the colours at least `min_distance` from every
    named colour and background (rejection sampling).

    Raises:
        ValueError: if `min_distance` leaves too little of the RGB cube to sample from (under 1% accepted).
    """
    reserved = torch.tensor([*COLORS.values(), *BACKGROUNDS.values()], dtype=torch.float32)
    kept, accepted, drawn = [], 0, 0
    while accepted < count:
        candidates = torch.rand(64, 3, generator=generator) * 255
        kept.append(candidates[torch.cdist(candidates, reserved).min(-1).values >= min_distance])
        accepted, drawn = accepted + len(kept[-1]), drawn + len(candidates)
        if drawn >= 6400 and accepted < drawn / 100:
            raise ValueError(f"`min_distance` {min_distance} leaves under 1% of the RGB cube to sample from.")
    return torch.cat(kept)[:count]


class ObjectRecolor:
    """Paint the objects of a share of the items (frames, or whole videos) in novel colours (`novel_colors`), one per
    named colour and item.

    Every pixel whose colour label is named colour `c` is shifted by `novel_c - COLORS[c]`, so the codec's texture
    stays and only the colour changes; the background is untouched. The draw depends only on `seed` and the item's
    index, so a resumed run or another worker recolours the same items alike; the frames of one video item share its
    colours, so its objects keep theirs through the clip.

    Args:
        color_maps: `uint8 [items, ..., H, W]` per-pixel colour labels (`load_color_map_cache`, flattened to frames
            for stage 0), one per item of the pixel cache.
        fraction: share of the items recoloured, in [0, 1].
        mean, std: the pixel cache's per-channel normalisation (`image_mean`, `image_std` of the image processor).
        seed: seed of the draws.

    Call: `(item index, pixel_values [..., 3, H, W])` -> `(pixel_values float32 [..., 3, H, W], recoloured: bool)`.

    Raises:
        ValueError: for a `fraction` outside [0, 1].
    """

    def __init__(self, color_maps: torch.Tensor, fraction: float, mean, std, seed: int = 0):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"`fraction` must be in [0, 1], got {fraction}.")
        self.color_maps = color_maps
        self.fraction = fraction
        self.scale = 255.0 * torch.tensor(std, dtype=torch.float32)  # a shift of 1 in normalised units, in RGB
        self.palette = torch.tensor(list(COLORS.values()), dtype=torch.float32)
        self.seed = seed

    def __len__(self):
        return len(self.color_maps)

    def __call__(self, index: int, pixel_values: torch.Tensor) -> tuple[torch.Tensor, bool]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        pixel_values = pixel_values.float()
        if torch.rand((), generator=generator).item() >= self.fraction:
            return pixel_values, False
        shifts = (novel_colors(len(self.palette), generator) - self.palette) / self.scale  # [C, 3] normalised
        shifts = torch.cat([torch.zeros(1, 3), shifts])  # label 0, the background, keeps its colour
        return pixel_values + shifts[self.color_maps[index].long()].movedim(-1, -3), True


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                       frame_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over rows of `-sum(targets * log_softmax(logits))`; `[F, ..., C]` each. With `frame_weights` (`[F]`),
    the mean over each frame's rows weighted by them (0 where every weight is 0)."""
    losses = -(targets.float() * logits.float().log_softmax(-1)).sum(-1)
    return _frame_weighted_mean(losses, frame_weights)


def _frame_weighted_mean(losses: torch.Tensor, frame_weights: torch.Tensor | None) -> torch.Tensor:
    if frame_weights is None:
        return losses.mean()
    weights = frame_weights.float()
    per_frame = losses.flatten(1).mean(-1)
    return (per_frame * weights).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).eps)


class PatchAttributePretrainer(nn.Module):
    """The LangDC model's vision tower plus linear heads predicting per-patch colour and shape fractions and,
    with `moment_weight` > 0, colour moments (`patch_moments`).

    Args:
        model: a `LangDCForConditionalGeneration`; its `vision_model` is trained in place.
        moment_weight: weight of the moment head's mean squared error in the loss (0: no moment head).

    Forward: `pixel_values [F, 3, H, W]`, `color_targets [F, P, NUM_COLOR_CLASSES]`, `shape_targets
    [F, P, NUM_SHAPE_CLASSES]`, `moment_targets [F, P, 2 * len(COLORS)]` (only with a moment head), `color_weight
    [F]` and `shape_weight [F]` (optional: each frame's weight in the colour and moment terms, 0 for a recoloured
    frame, and in the shape term) ->
    `{"loss": colour + shape soft cross-entropy + moment_weight * moment MSE}`.

    Raises:
        ValueError: for a negative `moment_weight`, or `moment_targets` given or missing against it.
    """

    def __init__(self, model, moment_weight: float = 0.0):
        super().__init__()
        if moment_weight < 0:
            raise ValueError(f"`moment_weight` must be >= 0, got {moment_weight}.")
        # only the tower is a submodule (the Trainer saves this module's weights); features come from the model's
        # own `get_image_features`, so the heads see exactly what the expert and the pool branch consume
        self.vision_model = model.vision_model
        self.image_features = model.get_image_features
        hidden = model.config.vision_config.hidden_size
        self.color_head = nn.Linear(hidden, NUM_COLOR_CLASSES)
        self.shape_head = nn.Linear(hidden, NUM_SHAPE_CLASSES)
        self.moment_weight = moment_weight
        self.moment_head = nn.Linear(hidden, 2 * len(COLORS)) if moment_weight else None

    def forward(self, pixel_values, color_targets, shape_targets, moment_targets=None, color_weight=None,
                shape_weight=None):
        if (moment_targets is None) != (self.moment_head is None):
            raise ValueError("`moment_targets` must be given exactly when the pretrainer has a moment head "
                             f"(moment_weight {self.moment_weight}).")
        features = self.image_features(pixel_values)
        loss = soft_cross_entropy(self.color_head(features), color_targets, color_weight)
        loss = loss + soft_cross_entropy(self.shape_head(features), shape_targets, shape_weight)
        if self.moment_head is not None:
            errors = (self.moment_head(features).float() - moment_targets.float()).square()
            loss = loss + self.moment_weight * _frame_weighted_mean(errors, color_weight)
        return {"loss": loss}


class FrameDataset(Dataset):
    """One item per (video, frame) of the pixel cache, with its per-patch targets (`[N, T, ...]` each; `moments`
    optional). With `recolor` (an `ObjectRecolor` over the same frames) the item's pixels go through it and the item
    carries `color_weight`, 0.0 for a recoloured frame, whose colour targets no longer hold, else 1.0, and
    `shape_weight`, 1.0 for a recoloured frame, else `named_shape_weight` (0: the tower learns shapes from novel
    colours only, so no named colour can stand for a shape).

    Raises:
        ValueError: if the tensors or `recolor` disagree on `[videos, frames]`, or for a `named_shape_weight`
            outside [0, 1].
    """

    def __init__(self, pixels: torch.Tensor, colors: torch.Tensor, shapes: torch.Tensor,
                 moments: torch.Tensor | None = None, recolor: ObjectRecolor | None = None,
                 named_shape_weight: float = 1.0):
        tensors = {"pixel_values": pixels, "color_targets": colors, "shape_targets": shapes}
        if moments is not None:
            tensors["moment_targets"] = moments
        leading = {name: tuple(t.shape[:2]) for name, t in tensors.items()}
        if len(set(leading.values())) > 1:
            raise ValueError(f"The pixels and targets must agree on [videos, frames], got {leading}.")
        self.tensors = {name: t.flatten(0, 1) for name, t in tensors.items()}
        if recolor is not None and len(recolor) != len(self):
            raise ValueError(f"`recolor` covers {len(recolor)} frames, the pixel cache {len(self)}.")
        if not 0.0 <= named_shape_weight <= 1.0:
            raise ValueError(f"`named_shape_weight` must be in [0, 1], got {named_shape_weight}.")
        self.recolor = recolor
        self.named_shape_weight = named_shape_weight

    def __len__(self):
        return self.tensors["pixel_values"].shape[0]

    def __getitem__(self, i):
        item = {name: tensor[i] for name, tensor in self.tensors.items()}
        if self.recolor is not None:
            item["pixel_values"], recoloured = self.recolor(i, item["pixel_values"])
            item["color_weight"] = torch.tensor(0.0 if recoloured else 1.0)
            item["shape_weight"] = torch.tensor(1.0 if recoloured else self.named_shape_weight)
        return item


def collate_frames(items: list[dict]) -> dict:
    """Stack frames and targets; pixels go to float32."""
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    batch["pixel_values"] = batch["pixel_values"].float()
    return batch

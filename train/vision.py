"""Stage 0: pretrain the vision tower on what every patch shows (dense colour and shape labels).

The official LangDC starts from a pretrained CLIP/SigLIP tower (arXiv 2509.00969); none can be downloaded
here, and a tower learned from scratch through the expert's caption loss alone learns colours but not shapes or
motion (run v0, train/RUNS.md). So the tower is first pretrained on the synthetic world's dense ground truth:
for each patch, the fraction of its pixels showing each colour and each shape (background included), predicted by
two linear heads on the features the expert and the pool branch consume (`get_image_features`). Colour and shape
are separate targets, so colour-shape pairs never seen in training are still two familiar attributes. The heads
are dropped afterwards; only the tower's weights go on to stage 1.
"""

from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from synthvid import COLORS, SHAPES, render_attribute_maps, validate_spec
from train.data import parallel_map, torch_save_atomic

NUM_COLOR_CLASSES = len(COLORS) + 1  # + background
NUM_SHAPE_CLASSES = len(SHAPES) + 1


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


def _attribute_fractions(record: dict, patch_size: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    scene = validate_spec(record["spec"])
    if (scene.height, scene.width) != (image_size, image_size):
        raise ValueError(f"{record['id']}: frames are {scene.height}x{scene.width}, the vision tower takes "
                         f"{image_size}x{image_size}; dense labels need videos at the tower's resolution.")
    color_map, shape_map = render_attribute_maps(scene)
    colors = patch_fractions(color_map, NUM_COLOR_CLASSES, patch_size)
    return colors, patch_fractions(shape_map, NUM_SHAPE_CLASSES, patch_size)


def load_attribute_cache(data_dir: Path, split: str, records: list[dict], patch_size: int, image_size: int,
                         workers: int = 0):
    """`(colors, shapes)` per-patch fractions of every frame of a split: `[N, T, P, C]` float16, rendered by
    `workers` processes (`train.data.parallel_map`) and cached on disk.

    Raises:
        ValueError: if the videos are not `image_size` pixels square (the labels would not match the patches).
    """
    cache = Path(data_dir) / "cache" / f"{split}-attributes-{patch_size}px.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    render = partial(_attribute_fractions, patch_size=patch_size, image_size=image_size)
    colors, shapes = zip(*parallel_map(render, records, workers, desc=f"rendering {split} attribute maps"))
    result = (torch.stack(colors), torch.stack(shapes))
    torch_save_atomic(result, cache)
    return result


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of `-sum(targets * log_softmax(logits))`; `[..., C]` each."""
    return -(targets.float() * logits.float().log_softmax(-1)).sum(-1).mean()


class PatchAttributePretrainer(nn.Module):
    """The LangDC model's vision tower plus two linear heads predicting per-patch colour and shape fractions.

    Args:
        model: a `LangDCForConditionalGeneration`; its `vision_model` is trained in place.

    Forward: `pixel_values [F, 3, H, W]`, `color_targets [F, P, NUM_COLOR_CLASSES]`, `shape_targets
    [F, P, NUM_SHAPE_CLASSES]` -> `{"loss": colour + shape soft cross-entropy}`.
    """

    def __init__(self, model):
        super().__init__()
        # only the tower is a submodule (the Trainer saves this module's weights); features come from the model's
        # own `get_image_features`, so the heads see exactly what the expert and the pool branch consume
        self.vision_model = model.vision_model
        self.image_features = model.get_image_features
        hidden = model.config.vision_config.hidden_size
        self.color_head = nn.Linear(hidden, NUM_COLOR_CLASSES)
        self.shape_head = nn.Linear(hidden, NUM_SHAPE_CLASSES)

    def forward(self, pixel_values, color_targets, shape_targets):
        features = self.image_features(pixel_values)
        loss = soft_cross_entropy(self.color_head(features), color_targets)
        loss = loss + soft_cross_entropy(self.shape_head(features), shape_targets)
        return {"loss": loss}


class FrameDataset(Dataset):
    """One item per (video, frame) of the pixel cache, with its per-patch targets."""

    def __init__(self, pixels: torch.Tensor, colors: torch.Tensor, shapes: torch.Tensor):
        if not pixels.shape[:2] == colors.shape[:2] == shapes.shape[:2]:
            raise ValueError(f"pixels {tuple(pixels.shape[:2])}, colors {tuple(colors.shape[:2])} and shapes "
                             f"{tuple(shapes.shape[:2])} must agree on [videos, frames].")
        self.pixels, self.colors, self.shapes = pixels.flatten(0, 1), colors.flatten(0, 1), shapes.flatten(0, 1)

    def __len__(self):
        return self.pixels.shape[0]

    def __getitem__(self, i):
        return {"pixel_values": self.pixels[i], "color_targets": self.colors[i], "shape_targets": self.shapes[i]}


def collate_frames(items: list[dict]) -> dict:
    """Stack frames and targets; pixels go to float32."""
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    batch["pixel_values"] = batch["pixel_values"].float()
    return batch

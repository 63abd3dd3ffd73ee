"""Whether the expert's inputs keep an object's shape apart from its colour: a probe on held-out colour-shape pairs.

The expert writes "a red circle" where the clip shows a held-out red triangle (train/RUNS.md "Run v57"). This probe
asks whether the shape is still decodable from what the expert reads: for every object that sits alone in a cell
of the `expert_pool_grid` grid at a clip's first frame (`synthvid.truth.object_states`), a small MLP (motion_probe's
`CellProbe` recipe, `train_probe`) predicts its shape (chance 33%) from that cell's pooled vision features, or with
`--expert-tokens` from the expert's prompt token of the cell. It is trained on training videos, where every pair is
a seen one, and scored on the test split, separately on the objects of seen pairs and of held-out pairs. A
diagnostic for the vision side, not part of the model.

Trained on every colour, the probe learns the training split's shortcut (no red object is a triangle), as the
expert does; `--train-colors green,purple` (the colours seen with every shape) trains it where colour says nothing
about shape and scores it on the other colours' objects, so that seen and held-out pairs differ only in whether
the tower keeps the shape apart from the colour.

    python -m eval.shape_probe --model . --data data/synthvid --output eval/results-synthvid-v48/shape_probe.json
"""

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from eval.motion_probe import load_probed_model, parse_probe_arguments, train_probe
from synthvid import HELD_OUT_PAIRS, SHAPES, validate_spec
from synthvid.files import write_text_atomic
from synthvid.truth import object_states
from tools.remote_code import import_remote
from train.data import encode_videos, load_pixel_cache, read_split
from train.run import comma_separated


def cell_labels(records: list[dict], grid: int, image_size: int, frames_per_clip: int
                ) -> list[tuple[int, int, int, int, bool, str]]:
    """`(video, first frame of the clip, cell, shape index, held-out pair, colour)` for every object visible at a
    clip's first frame whose centre is the only object centre in its cell of the `grid` x `grid` pooled grid."""
    cell_size = image_size / grid
    labels = []
    for video, record in enumerate(records):
        scene = validate_spec(record["spec"])
        states = object_states(scene)
        for frame in range(0, len(states), frames_per_clip):
            cells = {}
            for state in states[frame]:
                if state.visible:
                    x, y = state.position
                    cell = min(int(y // cell_size), grid - 1) * grid + min(int(x // cell_size), grid - 1)
                    cells.setdefault(cell, []).append(state)
            for cell, held in cells.items():
                if len(held) == 1:
                    state = held[0]
                    labels.append((video, frame, cell, SHAPES.index(state.shape),
                                   (state.color, state.shape) in HELD_OUT_PAIRS, state.color))
    return labels


def cell_features(model, pixels: torch.Tensor, labels, grid: int, expert_tokens: bool) -> torch.Tensor:
    """`[n, D]` float32: each labelled cell's pooled tower features at the clip's first frame, or with
    `expert_tokens` its expert prompt token (`expert_projector` of the pooled features; for a tubelet model, of the
    cell's `frames_per_clip` frames concatenated, as `_expert_prompts` builds it)."""
    modeling = import_remote("modeling_langdc")
    features = encode_videos(model, pixels)  # [N, T, P, D]
    pooled = modeling.pool_patch_tokens(features.flatten(0, 1).float(), grid).unflatten(0, features.shape[:2])
    if not expert_tokens:
        return torch.stack([pooled[video, frame, cell] for video, frame, cell, *_ in labels])
    frames = model.config.frames_per_clip if model.config.expert_token_layout == "tubelets" else 1
    with torch.no_grad():
        return model.expert_projector(torch.stack([pooled[video, frame : frame + frames, cell].flatten()
                                                   for video, frame, cell, *_ in labels]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="synthvid folder: probe trained on its training "
                                                                  "split, scored on its test split")
    parser.add_argument("--train-videos", type=int, default=2000, help="probe training: the first N training videos")
    parser.add_argument("--expert-tokens", action="store_true",
                        help="probe the expert's prompt tokens (after expert_projector) instead of the tower's features")
    parser.add_argument("--train-colors", type=comma_separated, default=(), metavar="COLOR[,COLOR...]",
                        help="train the probe on these colours' objects only and score it on the other colours' "
                             "(default: every colour for both)")
    args = parse_probe_arguments(parser, argv)
    started = time.perf_counter()
    model, processor = load_probed_model(args.model)
    config = model.config
    grid, size = config.expert_pool_grid, config.vision_config.image_size
    data = {}
    for split, limit in (("train", args.train_videos), ("test", None)):
        records = read_split(args.data, split)[:limit]
        labels = cell_labels(records, grid, size, config.frames_per_clip)
        if args.train_colors:  # probe colours for training, the others for the test
            labels = [label for label in labels if (label[5] in args.train_colors) == (split == "train")]
        if not labels:
            parser.error(f"no object of the {split} split sits alone in a cell (with --train-colors: of its colours)")
        if split == "train" and any(label[4] for label in labels):
            parser.error("the training split shows a held-out pair: the probe would not test generalisation")
        pixels = load_pixel_cache(args.data, split, processor, config.num_frames)[: len(records)]
        data[split] = (cell_features(model, pixels, labels, grid, args.expert_tokens),
                       torch.tensor([label[3] for label in labels]), torch.tensor([label[4] for label in labels]))
    torch.manual_seed(args.seed)
    dim = data["train"][0].shape[-1]
    probe = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 256), nn.GELU(), nn.Linear(256, len(SHAPES)))
    result = train_probe(probe, *data["train"][:2], *data["test"][:2], args.steps, args.seed)
    test_x, test_y, held = data["test"]
    with torch.no_grad():
        right = probe(test_x).argmax(-1) == test_y
    for name, subset in (("seen_pairs", ~held), ("held_out_pairs", held)):
        result[name] = {"accuracy": right[subset].float().mean().item() if subset.any() else None,
                        "objects": int(subset.sum())}
    result.update({"model": str(args.model), "grid": grid, "expert_tokens": args.expert_tokens,
                   "train_colors": list(args.train_colors),
                   "train_objects": len(data["train"][1]), "wall_seconds": time.perf_counter() - started})
    print(json.dumps(result, indent=2))
    if args.output:
        write_text_atomic(args.output, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

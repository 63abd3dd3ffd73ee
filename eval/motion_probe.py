"""How much of a move's direction the vision features keep: a probe on the expert's pooled cells.

The expert sees each frame as `expert_pool_grid`² average-pooled patch features (`pool_patch_tokens`) and must
write "the red circle moves left" from how they change across a clip's frames. This probe asks whether that
change is decodable at all: for every clip in which exactly one visible object moves (the ground-truth states,
`synthvid.truth.object_states`), a small classifier reads the clip's pooled features of the checkpoint's vision
tower and predicts the direction (chance 25%). It is trained on one set of training videos and scored on later
ones. A diagnostic for the vision side (train/RUNS.md, runs v24 and v30), not part of the model.

`--reader` asks instead whether a transformer of the expert's size learns it from the same tokens (run v35):
`frames` reads them as the paper's expert does, one token per cell and frame, `tubelets` one token per cell with
its frames concatenated (`expert_token_layout="tubelets"`); then a learned query token, whose last hidden state is
classified.

    python -m eval.motion_probe --model . --data data/synthvid12k --output eval/results-synthvid-v30/probe.json
"""

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoProcessor, Qwen2Config, Qwen2Model

from synthvid import validate_spec
from synthvid.files import write_text_atomic
from synthvid.truth import object_states
from tools.remote_code import import_remote
from train.data import encode_videos, load_pixel_cache, read_split
from train.stages import set_threads

DIRECTIONS = ("left", "right", "up", "down")
READER_BATCH = 128  # clips per step of a TokenReader (full-batch steps over ~3000 clips are too slow on a CPU)


def clip_direction(states, frames: range) -> str | None:
    """The direction of the one visible object that moves over `frames`, or `None` when no object or several
    move, or the mover is hidden in one of them. `states`: `[T][N]` `ObjectState`s; image y grows downwards."""
    movers = []
    for index in range(len(states[0])):
        track = [states[frame][index] for frame in frames]
        dx = track[-1].position[0] - track[0].position[0]
        dy = track[-1].position[1] - track[0].position[1]
        if dx or dy:
            movers.append((all(state.visible for state in track), dx, dy))
    if len(movers) != 1 or not movers[0][0]:
        return None
    _, dx, dy = movers[0]
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def clip_labels(records: list[dict], frames_per_clip: int, num_frames: int) -> list[tuple[int, int, int]]:
    """`(video, clip, direction index)` for every clip of `records` with exactly one visible mover.

    Raises:
        ValueError: if a video has not `num_frames` frames (the model's frames would not be the scene's).
    """
    labels = []
    for video, record in enumerate(records):
        scene = validate_spec(record["spec"])
        if scene.num_frames != num_frames:
            raise ValueError(f"{record.get('id', video)}: {scene.num_frames} frames, the model samples {num_frames}; "
                             f"the probe needs videos of exactly the model's frames.")
        states = object_states(scene)
        for clip in range(scene.num_frames // frames_per_clip):
            frames = range(clip * frames_per_clip, (clip + 1) * frames_per_clip)
            direction = clip_direction(states, frames)
            if direction is not None:
                labels.append((video, clip, DIRECTIONS.index(direction)))
    return labels


class CellProbe(nn.Module):
    """One MLP shared over the pooled cells, reading a cell's features in all frames of a clip; the cells' hidden
    vectors are mean- and max-pooled and classified. `[B, frames, cells, D] -> [B, len(DIRECTIONS)]`."""

    def __init__(self, frames: int, dim: int, hidden: int = 128):
        super().__init__()
        self.cell = nn.Sequential(nn.LayerNorm(frames * dim), nn.Linear(frames * dim, hidden), nn.GELU(),
                                  nn.Linear(hidden, hidden), nn.GELU())
        self.head = nn.Linear(2 * hidden, len(DIRECTIONS))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, frames, cells, dim = clips.shape
        hidden = self.cell(clips.permute(0, 2, 1, 3).reshape(batch, cells, frames * dim))
        return self.head(torch.cat([hidden.mean(1), hidden.amax(1)], dim=-1))


class TokenReader(nn.Module):
    """A small Qwen2 decoder reading a clip's tokens, then a learned query token whose last hidden state is classified:
    `[B, frames, cells, D] -> [B, len(DIRECTIONS)]`. `tubelets`: one input token per cell, its frames concatenated
    (`[cells, frames * D]`); otherwise one per cell and frame, frame after frame (`[frames * cells, D]`, the order of
    the paper's expert). An MLP maps the tokens to the decoder's width; `expert_config` sets its size."""

    def __init__(self, frames: int, dim: int, tubelets: bool, expert_config):
        super().__init__()
        self.tubelets = tubelets
        width = expert_config.hidden_size
        config = Qwen2Config(hidden_size=width, intermediate_size=expert_config.intermediate_size,
                             num_hidden_layers=expert_config.num_hidden_layers,
                             num_attention_heads=expert_config.num_attention_heads,
                             num_key_value_heads=expert_config.num_key_value_heads, vocab_size=1)
        self.decoder = Qwen2Model(config)
        in_dim = frames * dim if tubelets else dim
        self.embed = nn.Sequential(nn.Linear(in_dim, width), nn.GELU(), nn.Linear(width, width))
        self.query = nn.Parameter(torch.randn(width) * config.initializer_range)
        self.head = nn.Linear(width, len(DIRECTIONS))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch = clips.shape[0]
        tokens = clips.permute(0, 2, 1, 3).flatten(2) if self.tubelets else clips.flatten(1, 2)
        sequence = torch.cat([self.embed(tokens), self.query.expand(batch, 1, -1)], dim=1)
        return self.head(self.decoder(inputs_embeds=sequence).last_hidden_state[:, -1])


def pooled_clips(model, pixels: torch.Tensor, labels: list[tuple[int, int, int]], grid: int,
                 frames_per_clip: int, expert_tokens: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`([n, frames, grid², D] float32 features, [n] direction indices)` of the labelled clips: the tower's pooled
    features (`frames = frames_per_clip`), or with `expert_tokens` the expert's prompt tokens of those clips as
    `_expert_prompts` builds them: per frame (`expert_projector`, then pooled), or for a tubelet model one token per
    cell (`frames = 1`: pooled, each cell's frames concatenated, then `expert_projector`)."""
    modeling = import_remote("modeling_langdc")
    features = encode_videos(model, pixels)  # [N, T, P, D]
    tubelets = expert_tokens and model.config.expert_token_layout == "tubelets"
    flat = features.flatten(0, 1).float()
    if expert_tokens and not tubelets:
        with torch.no_grad():
            flat = model.expert_projector(flat)
    pooled = modeling.pool_patch_tokens(flat, grid).unflatten(0, features.shape[:2])
    clips = torch.stack([pooled[video, clip * frames_per_clip : (clip + 1) * frames_per_clip]
                         for video, clip, _ in labels])
    if tubelets:
        with torch.no_grad():  # [n, frames, cells, D] -> [n, 1, cells, frames * D] -> the projector
            clips = model.expert_projector(clips.permute(0, 2, 1, 3).flatten(2)).unsqueeze(1)
    return clips, torch.tensor([direction for _, _, direction in labels])


def train_probe(probe: nn.Module, train_x, train_y, test_x, test_y, steps: int, seed: int,
                batch_size: int | None = None) -> dict:
    """AdamW on `train_*` (full batch, or `batch_size` clips drawn per step), scored on `test_*` (accuracy over the
    held-out clips)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(steps):
        batch = slice(None) if batch_size is None else torch.randint(len(train_y), (batch_size,), generator=generator)
        loss = nn.functional.cross_entropy(probe(train_x[batch]), train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probe.eval()
    with torch.no_grad():
        train_accuracy = (probe(train_x).argmax(-1) == train_y).float().mean().item()
        test_accuracy = (probe(test_x).argmax(-1) == test_y).float().mean().item()
    return {"train_accuracy": train_accuracy, "test_accuracy": test_accuracy, "final_loss": loss.item()}


def parse_probe_arguments(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Add the arguments every probe takes (`--steps` of `train_probe`, `--seed`, `--threads`, `--output` JSON) to
    `parser`, parse `argv` and set torch's CPU threads."""
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the result")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    return args


def load_probed_model(path: Path) -> tuple:
    """`(model, processor)` of the checkpoint at `path`: the model in float32 and eval mode."""
    model = AutoModel.from_pretrained(path, trust_remote_code=True, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(path, trust_remote_code=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="synthvid folder whose training split is read")
    parser.add_argument("--train-videos", type=int, default=2000, help="probe training: the first N videos")
    parser.add_argument("--test-videos", type=int, default=1000, help="probe test: the last N videos")
    parser.add_argument("--grid", type=int, default=None, help="pooled grid side (default: expert_pool_grid)")
    parser.add_argument("--expert-tokens", action="store_true",
                        help="probe the expert's prompt tokens (after expert_projector) instead of the tower's features")
    parser.add_argument("--reader", choices=["cells", "frames", "tubelets"], default="cells",
                        help="cells: the MLP probe (full batch); frames / tubelets: a transformer of the expert's size "
                             "reading one token per cell and frame / per cell (TokenReader, batches of 128)")
    args = parse_probe_arguments(parser, argv)
    started = time.perf_counter()
    records = read_split(args.data, "train")
    if args.train_videos + args.test_videos > len(records):
        parser.error(f"--train-videos + --test-videos ({args.train_videos + args.test_videos}) exceed the "
                     f"{len(records)} training videos of {args.data}")
    model, processor = load_probed_model(args.model)
    config = model.config
    grid = args.grid or config.expert_pool_grid
    pixels = load_pixel_cache(args.data, "train", processor, config.num_frames)
    splits = {"train": range(args.train_videos), "test": range(len(records) - args.test_videos, len(records))}
    data = {}
    for name, videos in splits.items():
        labels = clip_labels([records[i] for i in videos], config.frames_per_clip, config.num_frames)
        if not labels:
            parser.error(f"no clip of the probe's {name} videos has exactly one visible mover; use more videos")
        data[name] = pooled_clips(model, pixels[videos.start : videos.stop], labels, grid, config.frames_per_clip,
                                  args.expert_tokens)
    del pixels
    torch.manual_seed(args.seed)
    frames, dim = data["train"][0].shape[1], data["train"][0].shape[-1]
    if args.reader == "cells":
        probe, batch_size = CellProbe(frames, dim), None
    else:
        probe, batch_size = TokenReader(frames, dim, args.reader == "tubelets", config.expert_config), READER_BATCH
    result = train_probe(probe, *data["train"], *data["test"], args.steps, args.seed, batch_size)
    result.update({"model": str(args.model), "grid": grid, "expert_tokens": args.expert_tokens, "reader": args.reader,
                   "train_clips": len(data["train"][1]),
                   "test_clips": len(data["test"][1]),
                   "majority": torch.bincount(data["test"][1]).max().item() / len(data["test"][1]),
                   "wall_seconds": time.perf_counter() - started})
    print(json.dumps(result, indent=2))
    if args.output:
        write_text_atomic(args.output, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

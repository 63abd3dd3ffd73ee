"""Re-align a checkpoint's pool projector to a swapped vision tower by feature distillation (run v63).

A model whose vision tower was replaced (`tools.export_checkpoint --vision-from`, or `--llm-from` to put a trained
LLM side over another run's tower and expert) gives its LLM pool tokens it was never trained on: the pool projector
maps the old tower's features. This trains the model's pool projector alone, frame by frame, to give the pool tokens
of a reference checkpoint (the old tower under the pool projector the LLM was trained with):

    minimise  mean || pool(P(V(x))) - pool(P_ref(V_ref(x))) ||^2  over training frames x

(`pool` = `pool_patch_tokens` to `pool_grid`, as `_pooled_clip_blocks` does), so the LLM reads the pool tokens it
knows and needs no stage 3 for them. It is feature-level knowledge distillation (FitNets, Romero et al., ICLR 2015:
regress a teacher's intermediate features): no labels, no LLM forward; both towers are frozen, their features
computed once. Reported as the relative error `mse / var(target)` on held-out frames, before and after.

    python -m train.align_pool_projector --model runs/v63/init --reference . --data data/synthvid \
        --output runs/v63/aligned
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from synthvid.files import write_text_atomic
from tools.build_checkpoint import load_processor, save_checkpoint
from tools.remote_code import import_remote
from train.data import encode_videos, load_pixel_cache
from train.stages import set_threads


def check_alignable(model, reference) -> None:
    """Raise `ValueError` unless both models have a pool branch of the same grid and projector output width, their
    towers read frames of one size (both are fed the same pixels), and `model` has no second (video) pool
    projector, which this tool does not align."""
    for name, checked in (("model", model), ("reference", reference)):
        if checked.pool_projector is None:
            raise ValueError(f"`{name}` has no pool branch (`use_pool_branch=False`): no pool projector to align.")
    if model.video_pool_projector is not None:
        raise ValueError("`model` has a video pool projector (two encoders); only `pool_projector` is aligned here.")
    sizes = model.config.vision_config.image_size, reference.config.vision_config.image_size
    if sizes[0] != sizes[1]:
        raise ValueError(f"the towers read frames of other sizes: model {sizes[0]} px, reference {sizes[1]} px.")
    if model.config.pool_grid != reference.config.pool_grid:
        raise ValueError(f"`pool_grid` differs: model {model.config.pool_grid}, reference {reference.config.pool_grid}.")
    if model.config.text_config.hidden_size != reference.config.text_config.hidden_size:
        raise ValueError("the pool tokens' width (the LLM's `hidden_size`) differs: model "
                         f"{model.config.text_config.hidden_size}, reference {reference.config.text_config.hidden_size}.")


FRAMES_PER_CHUNK = 4096  # frames projected at once outside training (bounds the [F, P, D_llm] activations)


def pooled_tokens(projector, features: torch.Tensor, grid: int) -> torch.Tensor:
    """`[F, grid^2, D_llm]` float32 pool tokens of `[F, P, D_v]` features: each patch projected, then pooled to
    `grid x grid` (`pool_patch_tokens`, the order of `_pooled_clip_blocks`)."""
    return import_remote("modeling_langdc").pool_patch_tokens(projector(features.float()), grid).float()


@torch.no_grad()
def pooled_tokens_chunked(projector, features: torch.Tensor, grid: int) -> torch.Tensor:
    """`pooled_tokens` of all frames, `FRAMES_PER_CHUNK` at a time, without gradients (targets and scoring)."""
    return torch.cat([pooled_tokens(projector, chunk, grid) for chunk in features.split(FRAMES_PER_CHUNK)])


@torch.no_grad()
def pool_targets(reference, pixels: torch.Tensor) -> torch.Tensor:
    """`[N_frames, pool_grid^2, D_llm]` float32 pool tokens of the reference checkpoint for the `[N, T, 3, S, S]`
    pixels (its tower, then its pool projector, then pooling)."""
    features = encode_videos(reference, pixels).flatten(0, 1)
    return pooled_tokens_chunked(reference.pool_projector, features, reference.config.pool_grid)


@torch.no_grad()
def relative_error(projector, features: torch.Tensor, targets: torch.Tensor, grid: int) -> float:
    """`mean squared error / variance of the targets` of `projector`'s pooled tokens over frames (0: exact; 1: no
    better than the targets' mean)."""
    predicted = pooled_tokens_chunked(projector, features, grid)
    return float(((predicted - targets) ** 2).mean() / targets.var())


def align_pool_projector(model, reference, pixels: torch.Tensor, steps: int, batch_frames: int = 256,
                         lr: float = 1e-3, warmup: int = 50, held_out: float = 0.1, seed: int = 0) -> dict:
    """Train `model.pool_projector` in place (float32) so that its pooled tokens over `model`'s tower match
    `reference`'s over its own (module docstring), on the frames of `pixels` (`[N_videos, T, 3, S, S]`); the last
    `held_out` share of the videos is kept out of training and scores the result. AdamW, cosine schedule with
    `warmup` steps. Returns the log: relative errors before and after (`relative_error`), the losses every 10% of the
    steps, the frames.

    Raises:
        ValueError: for models that do not fit (`check_alignable`), `steps` or `batch_frames` below 1, `held_out`
            outside (0, 1), or fewer than two videos.
    """
    check_alignable(model, reference)
    if steps < 1 or batch_frames < 1:
        raise ValueError(f"`steps` and `batch_frames` must be at least 1, got {steps} and {batch_frames}.")
    if not 0 < held_out < 1:
        raise ValueError(f"`held_out` must be in (0, 1), got {held_out}.")
    if len(pixels) < 2:
        raise ValueError(f"need at least two videos (one held out), got {len(pixels)}.")
    grid = model.config.pool_grid
    split = min(len(pixels) - 1, max(1, round(len(pixels) * (1 - held_out))))
    targets = pool_targets(reference, pixels)
    features = encode_videos(model, pixels).flatten(0, 1)  # [N_frames, P, D_v] float16
    frames_per_video = pixels.shape[1]
    train_frames, test_frames = slice(0, split * frames_per_video), slice(split * frames_per_video, None)
    projector = model.pool_projector.float().train()
    model.requires_grad_(False)
    projector.requires_grad_(True)
    before = relative_error(projector, features[test_frames], targets[test_frames], grid)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, warmup, steps)
    generator = torch.Generator().manual_seed(seed)
    losses, every = [], max(1, steps // 10)
    for step in tqdm(range(1, steps + 1), desc="aligning the pool projector"):
        batch = torch.randint(0, split * frames_per_video, (batch_frames,), generator=generator)
        loss = torch.nn.functional.mse_loss(pooled_tokens(projector, features[batch], grid), targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % every == 0 or step == steps:
            losses.append({"step": step, "mse": loss.item()})
    projector.eval().requires_grad_(False)
    after = relative_error(projector, features[test_frames], targets[test_frames], grid)
    train_after = relative_error(projector, features[train_frames], targets[train_frames], grid)
    return {"relative_error_before": before, "relative_error_after": after, "relative_error_train": train_after,
            "train_frames": split * frames_per_video, "held_out_frames": (len(pixels) - split) * frames_per_video,
            "losses": losses}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint whose pool projector is aligned")
    parser.add_argument("--reference", type=Path, required=True,
                        help="checkpoint whose tower and pool projector give the target pool tokens")
    parser.add_argument("--data", type=Path, required=True, help="synthvid dataset (its training videos)")
    parser.add_argument("--output", type=Path, required=True, help="where the aligned checkpoint is written")
    parser.add_argument("--videos", type=int, default=3000, help="the first N training videos (the last 10%% held out)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-frames", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=["bfloat16", "float32"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    torch.manual_seed(args.seed)
    modeling = import_remote("modeling_langdc")
    model = modeling.LangDCForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    reference = modeling.LangDCForConditionalGeneration.from_pretrained(args.reference, dtype=torch.float32).eval()
    processor = load_processor(args.model)
    pixels = load_pixel_cache(args.data, "train", processor, model.config.num_frames)[: args.videos]
    start = time.perf_counter()
    log = align_pool_projector(model, reference, pixels, args.steps, args.batch_frames, args.lr, args.warmup,
                               seed=args.seed)
    log = {"args": {key: str(value) for key, value in vars(args).items()}, **log,
           "wall_seconds": time.perf_counter() - start}
    save_checkpoint(model.to(getattr(torch, args.dtype)), processor.tokenizer, processor, args.output)
    write_text_atomic(args.output / "align_log.json", json.dumps(log, indent=2) + "\n")
    print(f"pool projector aligned: held-out relative error {log['relative_error_before']:.4f} -> "
          f"{log['relative_error_after']:.4f} (train {log['relative_error_train']:.4f}), "
          f"{math.ceil(log['wall_seconds'])} s -> {args.output}")


if __name__ == "__main__":
    main()

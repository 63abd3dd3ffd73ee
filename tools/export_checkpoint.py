"""Export a trained checkpoint folder (e.g. the last training stage) to a Hub-ready folder in bf16.

    python -m tools.export_checkpoint runs/stage3 .          # replace the repo-root checkpoint
    python -m tools.export_checkpoint . runs/baseline_init --no-expert --pool-grid 4 --dtype float32

With `--no-expert` the export is the no-expert baseline started from the source's weights: the same vision tower,
pool projector and LLM, the expert and its projectors dropped, `pool_grid` pool tokens per frame side (README
"Token compressors": the baseline that the training-free compressors run on, trained further with `train.run`).
"""

import argparse
import copy
from pathlib import Path

import torch

from tools.build_checkpoint import load_processor, save_checkpoint
from tools.remote_code import import_remote


EXPERT_MODULES = ("expert", "expert_projector", "caption_projector", "video_expert_projector")


def without_expert(model, pool_grid: int):
    """The no-expert baseline (`use_expert=False`) made from a LangDC `model`: every module but the expert branch
    (`EXPERT_MODULES`) keeps its weights; the LLM then receives `pool_grid**2` pool-branch tokens per frame.

    The pool projector maps single vision features, so it applies at any pool grid (its inputs are averages over
    fewer patches: training adapts it). Raises `ValueError` when `model` has no pool branch (the baseline's only
    visual input) or `pool_grid` is not a positive integer; a weight the baseline lacks raises `RuntimeError`.
    """
    if not model.config.use_pool_branch:
        raise ValueError("`model` has no pool branch (`use_pool_branch=False`): the baseline would see nothing.")
    config = copy.deepcopy(model.config)
    config.use_expert, config.pool_grid = False, pool_grid
    config._validate_fields()  # a bad pool_grid raises ValueError here, before any weight is built
    baseline = type(model)(config).to(model.dtype)
    missing, unexpected = baseline.load_state_dict(model.state_dict(), strict=False)
    unexpected = [name for name in unexpected if name.split(".")[0] not in EXPERT_MODULES]
    if missing or unexpected:
        raise RuntimeError(f"weights that do not carry over: missing {missing}, unexpected {unexpected}")
    return baseline.eval()


def export(source: Path, target: Path, dtype: torch.dtype = torch.bfloat16, no_expert_pool_grid: int | None = None
           ) -> list[str]:
    """Load `source` with the repo's remote code, cast to `dtype`, and write it into `target` file by file (with the
    repo's remote-code files, whatever `source` holds). With `no_expert_pool_grid`, write the no-expert baseline
    made from it instead (`without_expert`)."""
    modeling = import_remote("modeling_langdc")
    model = modeling.LangDCForConditionalGeneration.from_pretrained(source, dtype=dtype).eval()
    if no_expert_pool_grid is not None:
        model = without_expert(model, no_expert_pool_grid)
    processor = load_processor(source)
    return save_checkpoint(model, processor.tokenizer, processor, target)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--no-expert", action="store_true", help="export the no-expert baseline made from SOURCE")
    parser.add_argument("--pool-grid", type=int, default=None,
                        help="with --no-expert: pool tokens per frame side (default: SOURCE's pool_grid)")
    args = parser.parse_args(argv)
    if args.pool_grid is not None and not args.no_expert:
        parser.error("--pool-grid belongs to --no-expert")
    pool_grid = None
    if args.no_expert:
        pool_grid = args.pool_grid
        if pool_grid is None:
            pool_grid = import_remote("configuration_langdc").LangDCConfig.from_pretrained(args.source).pool_grid
    names = export(args.source, args.target, getattr(torch, args.dtype), pool_grid)
    kind = f", no-expert baseline, pool grid {pool_grid}" if args.no_expert else ""
    print(f"exported {args.source} -> {args.target} ({args.dtype}{kind}): {', '.join(names)}")


if __name__ == "__main__":
    main()

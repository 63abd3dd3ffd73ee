"""Export a trained checkpoint folder (e.g. the last training stage) to a Hub-ready folder in bf16.

    python -m tools.export_checkpoint runs/stage3 .          # replace the repo-root checkpoint
    python -m tools.export_checkpoint . runs/baseline_init --no-expert --pool-grid 4 --dtype float32

With `--no-expert` the export is the no-expert baseline started from the source's weights: the same vision tower,
pool projector and LLM, the expert and its projectors dropped (README "Token compressors": the baseline that the
training-free compressors run on, trained further with `train.run`); `--pool-grid` sets the pool tokens per frame
side, with or without the expert; `--clip-time-frequencies F` adds a zero-initialised `clip_time_embedding`
(`LangDCConfig.clip_time_frequencies`) and `--expert-layers N` / `--llm-layers N` identity-initialised expert / LLM layers
on top (`deepen`), so the export answers as the source does until they are trained; `--expert-token-layout tubelets`
gives the expert one token per pooled cell and clip (`LangDCConfig.expert_token_layout`; its captions change until
stage 2 retrains it).
"""

import argparse
import copy
from pathlib import Path

import torch

from tools.build_checkpoint import load_processor, save_checkpoint
from tools.remote_code import import_remote


EXPERT_MODULES = ("expert", "expert_projector", "caption_projector", "video_expert_projector")
TIME_MODULE = "clip_time_embedding"  # LangDCModel's attribute; train.stages and train.run name it through this


def rebuilt(model, config):
    """A new, randomly initialised model of `model`'s class and dtype for `config`, with `model`'s generation config
    (a model built from a config gets transformers' default one, not the shipped greedy settings)."""
    new = type(model)(config).to(model.dtype)
    new.generation_config = copy.deepcopy(model.generation_config)
    return new


def retile_expert_projector(weights: dict, key: str, old_layout: str, new_layout: str, frames: int) -> None:
    """Carry the expert projector's input layer `weights[key]` (`[D_e, D_v]` per frame, or `[D_e, frames * D_v]` per
    tubelet) over to `new_layout`, in place: to tubelets each frame's block is the old map over `frames`, so a still
    clip's tubelet enters that layer as its frame did; back to frames the blocks are summed. Pooling then comes
    before the projector instead of after it (`LangDCConfig.expert_token_layout`), so stage 2 must retrain the
    expert either way."""
    if old_layout == new_layout:
        return
    weight = weights[key]
    weights[key] = weight.repeat(1, frames) / frames if new_layout == "tubelets" else weight.unflatten(
        1, (frames, -1)).sum(1)


def with_visual_tokens(model, pool_grid: int | None = None, use_expert: bool = True,
                       clip_time_frequencies: int | None = None, expert_token_layout: str | None = None):
    """`model` with another visual-token layout and the same trained weights: `pool_grid**2` pool-branch tokens per
    frame (`None`: unchanged), with `use_expert=False` the no-expert baseline (the expert branch, `EXPERT_MODULES`,
    dropped; every other module keeps its weights), with `clip_time_frequencies` a new `clip_time_embedding`
    (zero-initialised; 0 drops it; `None`: unchanged), and with `expert_token_layout` the expert's input tokens per
    frame or per tubelet (the projector's input layer carried over by `retile_expert_projector`; `None`: unchanged).

    The pool projector maps single vision features, so it applies at any pool grid (its inputs are averages over
    fewer patches: training adapts it). Raises `ValueError` when `model` has no pool branch (the only visual input
    left, or the one `pool_grid` sets), when it has no expert to keep, or when `pool_grid`,
    `clip_time_frequencies` or `expert_token_layout` is invalid; a weight that does not carry over raises
    `RuntimeError`.
    """
    if not model.config.use_pool_branch:
        raise ValueError("`model` has no pool branch (`use_pool_branch=False`): no pool grid to set or keep.")
    if use_expert and not model.config.use_expert:
        raise ValueError("`model` has no expert (`use_expert=False`) to keep.")
    changes = {"use_expert": use_expert} | ({} if pool_grid is None else {"pool_grid": pool_grid})
    if clip_time_frequencies is not None:
        changes["clip_time_frequencies"] = clip_time_frequencies
    if expert_token_layout is not None:
        changes["expert_token_layout"] = expert_token_layout
    # a config built anew validates its fields: a bad value raises ValueError here, before any weight is built
    config = type(model.config).from_dict({**model.config.to_dict(), **changes})
    reconfigured = rebuilt(model, config)
    weights = model.state_dict()
    if config.clip_time_frequencies != model.config.clip_time_frequencies:  # the time embedding starts anew, at zero
        weights = {name: value for name, value in weights.items() if name.split(".")[0] != TIME_MODULE}
    if use_expert:
        key = "expert_projector.0.weight" if "expert_projector.0.weight" in weights else "expert_projector.weight"
        retile_expert_projector(weights, key, model.config.expert_token_layout, config.expert_token_layout,
                                config.frames_per_clip)
    missing, unexpected = reconfigured.load_state_dict(weights, strict=False)
    unexpected = [name for name in unexpected if name.split(".")[0] not in EXPERT_MODULES]
    missing = [name for name in missing if name.split(".")[0] != TIME_MODULE]
    if missing or unexpected:
        raise RuntimeError(f"weights that do not carry over: missing {missing}, unexpected {unexpected}")
    return reconfigured.eval()


DECODERS = {"expert": "expert_config", "language_model": "text_config"}  # deepenable decoder -> its config key


def deepen(model, part: str, num_layers: int):
    """`model` with `num_layers` decoder layers in `part` (`"expert"` or `"language_model"`): its own, then new ones on
    top whose attention output and MLP down projections are zero, so that each new block passes its input through its
    residual and the model captions and answers exactly as before until training moves them (depth up-scaling with
    identity-initialised blocks; stage 2 trains the expert's, stage 3 the LLM's).

    Raises:
        ValueError: if `part` is not a decoder of `DECODERS`, `model` has no such module (no expert with
            `use_expert=False`), or `num_layers` is not more than the decoder's layers.
    """
    if part not in DECODERS:
        raise ValueError(f"`part` must be one of {sorted(DECODERS)}, got {part!r}.")
    decoder = getattr(model, part)
    if decoder is None:
        raise ValueError(f"`model` has no {part} (`use_expert=False`) to deepen.")
    decoder_config = getattr(model.config, DECODERS[part]).to_dict()
    old = decoder_config["num_hidden_layers"]
    if num_layers <= old:
        raise ValueError(f"`num_layers` must exceed the {part}'s {old} layers, got {num_layers}.")
    layer_types = decoder_config.get("layer_types") or ["full_attention"] * old
    decoder_config.update(num_hidden_layers=num_layers,
                          layer_types=layer_types + [layer_types[-1]] * (num_layers - old))
    config = type(model.config).from_dict({**model.config.to_dict(), DECODERS[part]: decoder_config})
    deeper = rebuilt(model, config)
    missing, unexpected = deeper.load_state_dict(model.state_dict(), strict=False)
    new_layers = tuple(f"{part}.model.layers.{i}." for i in range(old, num_layers))
    if unexpected or any(not name.startswith(new_layers) for name in missing):
        raise RuntimeError(f"weights that do not carry over: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for layer in getattr(deeper, part).model.layers[old:]:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return deeper.eval()


def export(source: Path, target: Path, dtype: torch.dtype = torch.bfloat16, pool_grid: int | None = None,
           use_expert: bool = True, clip_time_frequencies: int | None = None,
           expert_token_layout: str | None = None, expert_layers: int | None = None,
           llm_layers: int | None = None) -> list[str]:
    """Load `source` with the repo's remote code, cast to `dtype`, and write it into `target` file by file (with the
    repo's remote-code files, whatever `source` holds). `pool_grid` / `use_expert=False` / `clip_time_frequencies` /
    `expert_token_layout` change its visual tokens first (`with_visual_tokens`); `expert_layers` / `llm_layers`
    deepen its expert / LLM (`deepen`)."""
    modeling = import_remote("modeling_langdc")
    model = modeling.LangDCForConditionalGeneration.from_pretrained(source, dtype=dtype).eval()
    changes = (pool_grid, clip_time_frequencies, expert_token_layout)
    if not use_expert or any(change is not None for change in changes):
        model = with_visual_tokens(model, pool_grid, use_expert, clip_time_frequencies, expert_token_layout)
    for part, num_layers in (("expert", expert_layers), ("language_model", llm_layers)):
        if num_layers is not None:
            model = deepen(model, part, num_layers)
    processor = load_processor(source)
    return save_checkpoint(model, processor.tokenizer, processor, target)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--no-expert", action="store_true", help="export the no-expert baseline made from SOURCE")
    parser.add_argument("--pool-grid", type=int, default=None,
                        help="pool tokens per frame side (default: SOURCE's pool_grid)")
    parser.add_argument("--clip-time-frequencies", type=int, default=None,
                        help="add a zero-initialised clip time embedding with this many frequencies (0: drop it; "
                             "default: SOURCE's)")
    parser.add_argument("--expert-token-layout", choices=["frames", "tubelets"], default=None,
                        help="the expert's input tokens per frame or per tubelet (default: SOURCE's; a change needs "
                             "stage 2 again)")
    parser.add_argument("--expert-layers", type=int, default=None,
                        help="deepen the expert to this many layers, the new ones identity-initialised (deepen)")
    parser.add_argument("--llm-layers", type=int, default=None,
                        help="deepen the LLM to this many layers, the new ones identity-initialised (deepen)")
    args = parser.parse_args(argv)
    names = export(args.source, args.target, getattr(torch, args.dtype), args.pool_grid, not args.no_expert,
                   args.clip_time_frequencies, args.expert_token_layout, args.expert_layers, args.llm_layers)
    kind = "".join([", no-expert baseline" if args.no_expert else "",
                    f", pool grid {args.pool_grid}" if args.pool_grid is not None else "",
                    f", clip time frequencies {args.clip_time_frequencies}"
                    if args.clip_time_frequencies is not None else "",
                    f", expert token layout {args.expert_token_layout}" if args.expert_token_layout else "",
                    f", expert layers {args.expert_layers}" if args.expert_layers else "",
                    f", LLM layers {args.llm_layers}" if args.llm_layers else ""])
    print(f"exported {args.source} -> {args.target} ({args.dtype}{kind}): {', '.join(names)}")


if __name__ == "__main__":
    main()

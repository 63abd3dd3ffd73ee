"""Export a trained checkpoint folder (e.g. the last training stage) to a Hub-ready folder in bf16.

    python -m tools.export_checkpoint runs/stage3 .          # replace the repo-root checkpoint
    python -m tools.export_checkpoint . runs/baseline_init --no-expert --pool-grid 4 --dtype float32

With `--no-expert` the export is the no-expert baseline started from the source's weights: the same vision tower,
pool projector and LLM, the expert and its projectors dropped (README "Token compressors": the baseline that the
training-free compressors run on, trained further with `train.run`); `--pool-grid` sets the pool tokens per frame
side, with or without the expert; `--clip-time-frequencies F` adds a zero-initialised `clip_time_embedding`
(`LangDCConfig.clip_time_frequencies`) and `--expert-layers N` / `--llm-layers N` identity-initialised expert / LLM
layers on top (`deepen`) and `--llm-width-factor K` a K times wider LLM side (`widen`), so the export answers as the
source does until they are trained;
`--expert-token-layout tubelets` gives the expert one token per pooled cell and clip
(`LangDCConfig.expert_token_layout`; its captions change until stage 2 retrains it); `--expert-from CKPT` puts
CKPT's expert and expert projector beside SOURCE's LLM side (same vision tower; `with_expert_of`, run v37);
`--llm-config SPEC` gives SOURCE's vision tower and expert a new, randomly initialised LLM side of SPEC's
`text_config` (`with_new_llm`, run v44: a wider LLM trained from scratch on a trained expert); `--vision-from CKPT`
puts CKPT's vision tower under SOURCE's expert and LLM side (`with_vision_tower_of`, run v58; the projectors that
read it need retraining); `--llm-from CKPT` puts CKPT's LLM side over SOURCE's tower and expert
(`with_llm_side_of`, run v63; `train.align_pool_projector` then re-aligns its pool projector to the tower).
"""

import argparse
import copy
import json
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


EXPERT_SIDE = ("expert", "expert_projector")  # what stage 2 trains besides the vision tower (train.stages)
# config fields of the LLM side: a donor's expert may come from a model that differs in these only
LLM_SIDE_CONFIG = ("text_config", "clip_time_frequencies", "pool_grid", "video_pool_grid", "pool_projector_type",
                   "video_pool_projector_type", "caption_projector_type", "block_layout", "system_message", "dtype",
                   "transformers_version")


def config_differences(ours: dict, theirs: dict, ignored=()) -> list[str]:
    """The sorted keys on which two config dicts differ, apart from `ignored` and bookkeeping keys (`_name_or_path`)."""
    return sorted(key for key in ours.keys() | theirs.keys()
                  if key not in ignored and not key.startswith("_") and ours.get(key) != theirs.get(key))


def with_vision_tower_of(model, donor):
    """`model` with `donor`'s vision tower (`vision_model`) in place of its own: a tower pretrained anew in stage 0
    (e.g. with `--recolor-fraction`, run v58) under a trained expert and LLM. The projectors that read the tower
    (`expert_projector`, `pool_projector`) were trained on the old tower's features: stages 2 and 3 (or 1) must
    retrain them before the model answers as before.

    Raises:
        ValueError: if the two vision configs differ (named).
    """
    differ = config_differences(model.config.vision_config.to_dict(), donor.config.vision_config.to_dict(),
                                ("dtype", "transformers_version"))
    if differ:
        raise ValueError(f"the donor's vision tower does not fit `model`: their vision configs differ in {differ}.")
    merged = copy.deepcopy(model)
    merged.vision_model.load_state_dict(donor.vision_model.state_dict())
    return merged.eval()


def with_expert_of(model, donor):
    """`model` with `donor`'s expert and expert projector (`EXPERT_SIDE`, what stage 2 trains) in place of its
    own: one run's expert beside another run's LLM side, caption projector and vision tower (run v37). The donor's
    expert was trained on its own tower's features, so the towers must be the same weights.

    Raises:
        ValueError: if either model has no expert, their configs differ outside `LLM_SIDE_CONFIG` (named), or their
            vision towers' weights differ.
    """
    if model.expert is None or donor.expert is None:
        raise ValueError("`model` and the donor both need an expert (`use_expert=True`).")
    differ = config_differences(model.config.to_dict(), donor.config.to_dict(), LLM_SIDE_CONFIG)
    if differ:
        raise ValueError(f"the donor's expert does not fit `model`: their configs differ in {differ}.")
    towers = [name for name in ("vision_model", "video_model") if getattr(model, name, None) is not None]
    for name in towers:
        mine, donors = getattr(model, name).state_dict(), getattr(donor, name).state_dict()
        if any(not torch.equal(value, donors[key].to(value.dtype)) for key, value in mine.items()):
            raise ValueError(f"the donor's `{name}` weights differ from `model`'s: its expert was trained on other "
                             "vision features.")
    return with_modules_of(model, donor, EXPERT_SIDE)


def with_modules_of(model, donor, modules: tuple[str, ...]):
    """A copy of `model` with `donor`'s weights in its top-level `modules` (the caller checked that they fit).

    Raises:
        RuntimeError: if a weight of those modules does not carry over."""
    merged = copy.deepcopy(model)
    weights = {key: value for key, value in donor.state_dict().items() if key.split(".")[0] in modules}
    missing, unexpected = merged.load_state_dict(weights, strict=False)
    if unexpected or any(key.split(".")[0] in modules for key in missing):
        raise RuntimeError(f"weights of {modules} that do not carry over: missing {missing}, unexpected {unexpected}")
    return merged.eval()


# what a new LLM replaces: the LLM and every module whose output is the LLM's width (what stage 3 trains)
LLM_SIDE = ("language_model", "caption_projector", "pool_projector", "video_pool_projector", TIME_MODULE)


def with_llm_side_of(model, donor):
    """`model` with `donor`'s LLM side (`LLM_SIDE`: the LLM, the caption and pool projectors, the clip time
    embedding) in place of its own: a trained LLM over another run's vision tower and expert (run v63), the converse
    of `with_expert_of`. The donor's caption projector reads the expert's vectors at `soft_token_layer`; at layer 0
    these are the expert's input embeddings of the caption tokens, which must then be the same weights in both, so
    that the soft tokens are those the donor's LLM was trained on. The donor's pool projector was trained on the
    donor's tower: under another tower, `train.align_pool_projector` re-aligns it.

    Raises:
        ValueError: if either model has no expert, their configs differ in an LLM-side field (`LLM_SIDE_CONFIG`) or
            `soft_token_layer` (named), or at soft-token layer 0 their expert input embeddings differ.
    """
    if model.expert is None or donor.expert is None:
        raise ValueError("`model` and the donor both need an expert (`use_expert=True`).")
    mine, theirs = model.config.to_dict(), donor.config.to_dict()
    fields = (set(LLM_SIDE_CONFIG) - {"dtype", "transformers_version"}) | {"soft_token_layer", "use_pool_branch"}
    differ = config_differences({key: mine.get(key) for key in fields}, {key: theirs.get(key) for key in fields})
    if differ:
        raise ValueError(f"the donor's LLM side does not fit `model`: their configs differ in {differ}.")
    if model.config.soft_token_layer == 0:
        ours, donors = model.expert.get_input_embeddings().weight, donor.expert.get_input_embeddings().weight
        if not torch.equal(ours, donors.to(ours.dtype)):
            raise ValueError("the donor's expert input embeddings (the layer-0 soft tokens its caption projector "
                             "reads) differ from `model`'s.")
    return with_modules_of(model, donor, LLM_SIDE)


def with_new_llm(model, text_config: dict, seed: int = 0):
    """`model` with a new, randomly initialised LLM side (`LLM_SIDE`): a `language_model` whose config is `model`'s
    `text_config` updated with `text_config` (e.g. a wider, deeper decoder; the vocabulary, so the tokenizer, stays),
    and new caption / pool projectors, whose outputs are the LLM's width. The vision tower(s), expert and expert
    projector keep their trained weights, so the soft tokens are the trained expert's captions from the start; the
    text stage, stage 1 and stage 3 then train the new LLM side (run v44, `train/recipe_gpu_llm.sh`). `seed` seeds
    the new weights.

    Raises:
        ValueError: if `text_config` is not a dict, changes `vocab_size` or `model_type`, or builds an invalid
            config (transformers' own check); `RuntimeError` if a kept weight does not carry over.
    """
    if not isinstance(text_config, dict):
        raise ValueError(f"`text_config` must be a dict of text-config fields, got {type(text_config).__name__}.")
    old = model.config.text_config.to_dict()
    for field in ("vocab_size", "model_type"):
        if field in text_config and text_config[field] != old[field]:
            raise ValueError(f"`text_config` may not change `{field}` ({old[field]!r} -> {text_config[field]!r}): "
                             "the tokenizer and the decoder class stay.")
    merged = {**old, **text_config}
    if "layer_types" not in text_config:  # one attention type per layer, as many as the new depth
        merged["layer_types"] = ["full_attention"] * merged["num_hidden_layers"]
    config = type(model.config).from_dict({**model.config.to_dict(), "text_config": merged})
    torch.manual_seed(seed)
    fresh = rebuilt(model, config)
    kept = {key: value for key, value in model.state_dict().items() if key.split(".")[0] not in LLM_SIDE}
    missing, unexpected = fresh.load_state_dict(kept, strict=False)
    if unexpected or any(key.split(".")[0] not in LLM_SIDE for key in missing):
        raise RuntimeError(f"weights that do not carry over: missing {missing}, unexpected {unexpected}")
    return fresh.eval()


WIDENED = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")  # head_dim stays


def residual_writes(model) -> set[str]:
    """State-dict names of the LLM side's weights that write into the LLM's residual stream (and the tied output
    layer that reads it): the token embeddings, each layer's attention output and MLP down projections, and the last
    layer of each projector (and the clip time embedding) whose output enters the LLM."""
    state = model.state_dict().keys()
    names = {name for name in state if name.startswith("language_model.")
             and name.endswith(("embed_tokens.weight", "lm_head.weight", "o_proj.weight", "down_proj.weight"))}
    for part in LLM_SIDE[1:]:
        module = getattr(model, part, None)
        if module is None:
            continue
        last = [name for name, layer in module.named_modules() if isinstance(layer, torch.nn.Linear)] or [""]
        prefix = ".".join(filter(None, (part, last[-1])))
        names |= {name for name in (f"{prefix}.weight", f"{prefix}.bias") if name in state}
    return names


def widen(model, factor: int, seed: int = 0):
    """`model` with an LLM side `factor` times as wide (`WIDENED`: hidden size, MLP width, query and key/value heads;
    the head dimension, depth and vocabulary stay) that answers exactly as `model` does until stage 3 trains it.

    Function-preserving widening (Net2WiderNet, Chen et al., ICLR 2016), with zero-initialised writes instead of
    Net2Net's split copies: every old weight keeps its place in the leading block; the new entries of the weights
    that read (query/key/value, MLP gate/up, the projectors' first layers) are random (`seed`), those of the weights
    that write into the residual stream (`residual_writes`) zero, so the new residual dimensions stay zero and the
    new heads and MLP units add nothing at first, but all receive gradients. The RMS norms' old weights are scaled by
    `1 / sqrt(factor)` and their epsilon by `1 / factor`: the mean square now runs over `factor` times as many
    dimensions, the new ones zero.
    Grouped-query attention keeps each old query head on its old key/value head (`repeat_kv` groups stay
    `num_attention_heads / num_key_value_heads` wide).

    Raises:
        ValueError: if `factor` is not an integer of at least 2, or the LLM is not a decoder with those config
            fields and a head dimension of `hidden_size / num_attention_heads`.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"`factor` must be an integer of at least 2, got {factor!r}.")
    old = model.config.text_config.to_dict()
    missing = [field for field in WIDENED if not isinstance(old.get(field), int)]
    if missing or (old.get("head_dim") or old["hidden_size"] // old["num_attention_heads"]) * old[
            "num_attention_heads"] != old["hidden_size"]:
        raise ValueError(f"Cannot widen an LLM without integer {missing} or whose heads do not tile `hidden_size`.")
    text_config = {**old, **{field: old[field] * factor for field in WIDENED},
                   "rms_norm_eps": old["rms_norm_eps"] / factor}  # the mean square is 1 / factor of the old one
    config = type(model.config).from_dict({**model.config.to_dict(), "text_config": text_config})
    torch.manual_seed(seed)
    wider = rebuilt(model, config)
    writes, old_state = residual_writes(wider), model.state_dict()
    with torch.no_grad():
        for name, param in wider.state_dict().items():  # state-dict tensors share the parameters' storage
            source = old_state[name].to(param.dtype)
            if source.shape == param.shape:
                param.copy_(source)
                continue
            if name in writes:
                param.zero_()
            param[tuple(slice(0, size) for size in source.shape)] = source
            if name.endswith("norm.weight"):
                param[: source.shape[0]] /= factor**0.5
    return wider.eval()


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
           llm_layers: int | None = None, expert_from: Path | None = None,
           llm_config: Path | None = None, llm_width_factor: int | None = None,
           vision_from: Path | None = None, llm_from: Path | None = None) -> list[str]:
    """Load `source` with the repo's remote code, cast to `dtype`, and write it into `target` file by file (with the
    repo's remote-code files, whatever `source` holds). `pool_grid` / `use_expert=False` / `clip_time_frequencies` /
    `expert_token_layout` change its visual tokens first (`with_visual_tokens`); `expert_layers` / `llm_layers`
    deepen its expert / LLM (`deepen`), then `llm_width_factor` widens its LLM side (`widen`); before all of them,
    `expert_from` replaces its expert with that checkpoint's (`with_expert_of`), `llm_config` (a JSON config
    spec) its LLM side with a new one of the spec's `text_config` (`with_new_llm`), `vision_from` its vision
    tower with that checkpoint's (`with_vision_tower_of`), and `llm_from` its LLM side with that checkpoint's
    (`with_llm_side_of`).

    Raises:
        ValueError: if `llm_config` has no `text_config` dict, or from the steps above.
    """
    modeling = import_remote("modeling_langdc")
    model = modeling.LangDCForConditionalGeneration.from_pretrained(source, dtype=dtype).eval()
    if expert_from is not None:
        donor = modeling.LangDCForConditionalGeneration.from_pretrained(expert_from, dtype=dtype).eval()
        model = with_expert_of(model, donor)
    if llm_config is not None:
        spec = json.loads(Path(llm_config).read_text())
        if not isinstance(spec, dict) or not isinstance(spec.get("text_config"), dict):
            raise ValueError(f"`llm_config` {llm_config} has no `text_config` object.")
        model = with_new_llm(model, spec["text_config"])
    if vision_from is not None:
        donor = modeling.LangDCForConditionalGeneration.from_pretrained(vision_from, dtype=dtype).eval()
        model = with_vision_tower_of(model, donor)
    if llm_from is not None:
        donor = modeling.LangDCForConditionalGeneration.from_pretrained(llm_from, dtype=dtype).eval()
        model = with_llm_side_of(model, donor)
    changes = (pool_grid, clip_time_frequencies, expert_token_layout)
    if not use_expert or any(change is not None for change in changes):
        model = with_visual_tokens(model, pool_grid, use_expert, clip_time_frequencies, expert_token_layout)
    for part, num_layers in (("expert", expert_layers), ("language_model", llm_layers)):
        if num_layers is not None:
            model = deepen(model, part, num_layers)
    if llm_width_factor is not None:
        model = widen(model, llm_width_factor)
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
    parser.add_argument("--llm-width-factor", type=int, default=None,
                        help="widen the LLM side this many times, answering as before until trained (widen)")
    parser.add_argument("--expert-from", type=Path, default=None,
                        help="take the expert and expert projector of this checkpoint (same vision tower; "
                             "with_expert_of)")
    parser.add_argument("--llm-config", type=Path, default=None,
                        help="a config spec (.json) whose text_config replaces SOURCE's LLM side with a new, "
                             "randomly initialised one (with_new_llm)")
    parser.add_argument("--vision-from", type=Path, default=None,
                        help="take the vision tower of this checkpoint (same vision config; with_vision_tower_of): "
                             "the projectors reading it need retraining")
    parser.add_argument("--llm-from", type=Path, default=None,
                        help="take the LLM side (LLM, caption and pool projectors) of this checkpoint (same LLM-side "
                             "config and expert embeddings; with_llm_side_of): its pool projector may need "
                             "train.align_pool_projector")
    args = parser.parse_args(argv)
    names = export(args.source, args.target, getattr(torch, args.dtype), args.pool_grid, not args.no_expert,
                   args.clip_time_frequencies, args.expert_token_layout, args.expert_layers, args.llm_layers,
                   args.expert_from, args.llm_config, args.llm_width_factor, args.vision_from, args.llm_from)
    kind = "".join([", no-expert baseline" if args.no_expert else "",
                    f", pool grid {args.pool_grid}" if args.pool_grid is not None else "",
                    f", clip time frequencies {args.clip_time_frequencies}"
                    if args.clip_time_frequencies is not None else "",
                    f", expert token layout {args.expert_token_layout}" if args.expert_token_layout else "",
                    f", expert layers {args.expert_layers}" if args.expert_layers else "",
                    f", LLM layers {args.llm_layers}" if args.llm_layers else "",
                    f", LLM {args.llm_width_factor}x as wide" if args.llm_width_factor else "",
                    f", expert from {args.expert_from}" if args.expert_from else "",
                    f", new LLM side of {args.llm_config}" if args.llm_config else "",
                    f", vision tower from {args.vision_from}" if args.vision_from else "",
                    f", LLM side from {args.llm_from}" if args.llm_from else ""])
    print(f"exported {args.source} -> {args.target} ({args.dtype}{kind}): {', '.join(names)}")


if __name__ == "__main__":
    main()

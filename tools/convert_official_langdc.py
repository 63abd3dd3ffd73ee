"""Convert the official LangDC release into this repository's self-contained checkpoint (bf16, remote code).

    python -m tools.convert_official_langdc \\
        --base-llm Qwen2.5-3B-Instruct --adapter dual_branch_3b --expert cap_llava_vcap_stage2_0210 \\
        --internvideo2 InternVideo2-stage2_1b-224p-f4.pt --clip clip-vit-large-patch14-336 --output langdc-official

Inputs, as the official loader reads them (NIneeeeeem/LangDC `langdc/model/builder.py`):

- `--base-llm`: the main LLM (Qwen2.5-3B-Instruct) as a Hugging Face folder (config, weights, tokenizer).
- `--adapter`: the PEFT folder of the main LLM: `adapter_config.json` (`r`, `lora_alpha`, `use_rslora`),
  `adapter_model.safetensors` or `adapter_model.bin` (`base_model.model.<module>.lora_{A,B}.weight`),
  `non_lora_trainables.bin` (projectors, `base_model.model.model.<name>.*`) and optionally the official
  `config.json` (`mm_vision_select_layer`, `is_pool_branch`, `is_cap_branch`, `hidden_state_layer`).
- `--expert`: the language expert (Qwen2.5-0.5B) as a Hugging Face folder with its `mm_projector.bin`
  (`model.cap_mm_projector.*`, `model.cap_image_mm_projector.*`).
- `--internvideo2`: the InternVideo2-Stage2 `.pt` (`vision_encoder.*`; other towers are skipped).
- `--clip`: the CLIP ViT-L/14-336 folder (`vision_model.*`; the text tower is skipped).

What it does: merges LoRA into the LLM (`W += scale * B @ A`, `scale = lora_alpha / r`, or `/ sqrt(r)` with
rsLoRA); keeps all 151,936 embedding rows (the official loader shrinks them to the tokenizer; rows past it are
never real tokens); takes projectors with the official precedence (`non_lora_trainables.bin` over the expert's
`mm_projector.bin`) and detects each projector's type from its keys and shapes; keeps InternVideo2's blocks up to
the one LangDC reads (the penultimate); writes config.json (auto_map), the remote code, bf16 safetensors via
`save_pretrained`, the tokenizer (with `<image>` / `<video>` added and the official MPT-style chat template),
the processor and a greedy generation config. Pickles are read with `torch.load(weights_only=True)`. A key that
is neither used nor known to be unused, and a key the model needs but no input has, raise `ValueError` naming them.
Layout constants (pool grids, prompts, sequence layout) come from `tools/configs/official.json`.
"""

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, GenerationConfig

from tools.build_checkpoint import save_checkpoint
from tools.remote_code import REPO_ROOT, import_remote

OFFICIAL_SPEC = REPO_ROOT / "tools" / "configs" / "official.json"
IMAGE_TOKEN, VIDEO_TOKEN = "<image>", "<video>"

# official module name -> (our module, config field holding its type)
PROJECTORS = {
    "cap_image_mm_projector": ("expert_projector", "expert_projector_type"),
    "cap_mm_projector": ("video_expert_projector", "video_expert_projector_type"),
    "image_mm_projector": ("pool_projector", "pool_projector_type"),
    "mm_projector": ("video_pool_projector", "video_pool_projector_type"),
    "llm_projector": ("caption_projector", "caption_projector_type"),
}
# keys of the released files that LangDC inference never reads (the official `builder.py` loads, then ignores them)
CLIP_UNUSED = re.compile(r"^(text_model\.|visual_projection\.|text_projection\.|logit_scale$|.*position_ids$)")
INTERNVIDEO2_UNUSED = re.compile(r"^vision_encoder\.(clip_projector\.|clip_decoder\.|final_clip_decoder\.|clip_pos_embed$|clip_img_pos_embed$)")
INTERNVIDEO2_OTHER_TOWERS = re.compile(r"^(text_encoder\.|vision_proj\.|text_proj\.|itm_head\.|temp$)")
INTERNVIDEO2_PREFIX = "vision_encoder."
LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
PEFT_PREFIXES = ("base_model.model.", "model.")
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


# ----------------------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------------------
def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of one `.safetensors` file or one pickle (`.bin` / `.pt`, read with `weights_only=True`).

    Raises:
        ValueError: if the file does not exist or does not hold a `str -> Tensor` mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Weights file {str(path)!r} does not exist.")
    try:
        state = load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or corrupted file: say which one
        raise ValueError(f"Cannot read weights file {str(path)!r}: {error}") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict of tensors.")
    return state


def load_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hugging Face model folder (single file or sharded with an index).

    Raises:
        ValueError: if the folder holds none of `model.safetensors`, `pytorch_model.bin` or their index files.
    """
    folder = Path(folder)
    for index_name in HF_INDEX_FILES:
        if (folder / index_name).is_file():
            shards = sorted(set(json.loads((folder / index_name).read_text())["weight_map"].values()))
            state = {}
            for shard in shards:
                state.update(load_weights_file(folder / shard))
            return state
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return load_weights_file(folder / name)
    raise ValueError(f"No weights in {str(folder)!r}: expected one of {HF_WEIGHT_FILES + HF_INDEX_FILES}.")


def load_internvideo2_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The InternVideo2 `.pt` state dict, unwrapped from a `{"model": ...}` / `{"module": ...}` training checkpoint.

    Raises:
        ValueError: if the file is missing, unreadable or holds no state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"InternVideo2 checkpoint {str(path)!r} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"Cannot read InternVideo2 checkpoint {str(path)!r}: {error}") from error
    for wrapper in ("model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} does not hold an InternVideo2 state dict of tensors.")
    return state


def _strip_prefixes(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _check_keys(source: str, unknown, missing=()) -> None:
    """Raise `ValueError` naming unknown and missing keys of one input."""
    problems = []
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    if missing:
        problems.append(f"missing keys {sorted(missing)}")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems) + ".")


# ----------------------------------------------------------------------------------------------------------------
# LoRA
# ----------------------------------------------------------------------------------------------------------------
def lora_scale(adapter_config: dict) -> float:
    """`lora_alpha / r` (or `lora_alpha / sqrt(r)` with rsLoRA), as PEFT's `LoraLayer.update_layer`.

    Raises:
        ValueError: for adapters this merge does not implement (DoRA, per-module rank or alpha patterns).
    """
    for field in ("r", "lora_alpha"):
        if field not in adapter_config:
            raise ValueError(f"adapter_config.json has no `{field}`.")
    if adapter_config.get("use_dora"):
        raise ValueError("adapter_config.json: DoRA adapters (`use_dora`) are not supported by this converter.")
    for field in ("rank_pattern", "alpha_pattern"):
        if adapter_config.get(field):
            raise ValueError(f"adapter_config.json: per-module `{field}` is not supported by this converter.")
    rank = adapter_config["r"]
    denominator = math.sqrt(rank) if adapter_config.get("use_rslora") else rank
    return adapter_config["lora_alpha"] / denominator


def merge_lora(base: dict[str, torch.Tensor], adapter: dict[str, torch.Tensor], adapter_config: dict) -> None:
    """Merge a PEFT LoRA adapter into `base` in place: `W += scale * (B @ A)` for every `lora_A` / `lora_B` pair.

    `base` holds the LLM's keys (`model.layers.0.self_attn.q_proj.weight`); adapter keys are
    `base_model.model.<module>.lora_{A,B}.weight` with `A: [r, in]`, `B: [out, r]`. The product is computed in
    float32 and cast back to the weight's dtype.

    Raises:
        ValueError: naming adapter keys that are not LoRA pairs, unpaired `lora_A`/`lora_B`, target weights that
            the base model lacks, or a rank that differs from `r`.
    """
    scale = lora_scale(adapter_config)
    pairs, unknown = {}, []
    for key, tensor in adapter.items():
        match = LORA_KEY.match(key)
        if match is None:
            unknown.append(key)
            continue
        pairs.setdefault(match["module"], {})[match["part"]] = tensor
    unpaired = [f"{module}.lora_{'B' if 'A' in parts else 'A'}.weight" for module, parts in pairs.items() if len(parts) != 2]
    missing_targets = [f"{module}.weight" for module in pairs if f"{module}.weight" not in base]
    _check_keys("LoRA adapter", unknown, unpaired + missing_targets)
    for module, parts in sorted(pairs.items()):
        lora_a, lora_b = parts["A"].float(), parts["B"].float()
        if lora_a.shape[0] != adapter_config["r"] or lora_b.shape[1] != adapter_config["r"]:
            raise ValueError(
                f"LoRA adapter: {module} has rank {lora_a.shape[0]}, adapter_config.json says r={adapter_config['r']}."
            )
        delta = lora_b @ lora_a
        if adapter_config.get("fan_in_fan_out"):
            delta = delta.T
        weight = base[f"{module}.weight"]
        if delta.shape != weight.shape:
            raise ValueError(f"LoRA adapter: {module} gives a {tuple(delta.shape)} update for a {tuple(weight.shape)} weight.")
        base[f"{module}.weight"] = (weight.float() + scale * delta).to(weight.dtype)


def load_adapter(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """`(adapter_config, adapter tensors)` of a PEFT folder (`adapter_model.safetensors` or `.bin`)."""
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise ValueError(f"{str(folder)!r} has no adapter_config.json.")
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (folder / name).is_file():
            return json.loads(config_path.read_text()), load_weights_file(folder / name)
    raise ValueError(f"{str(folder)!r} has no adapter_model.safetensors or adapter_model.bin.")


# ----------------------------------------------------------------------------------------------------------------
# projectors
# ----------------------------------------------------------------------------------------------------------------
def collect_projectors(sources: list[tuple[str, dict[str, torch.Tensor]]]) -> dict[str, dict[str, torch.Tensor]]:
    """Projector tensors by official module name, later sources overriding earlier ones (official loading order:
    the expert's `mm_projector.bin`, then `non_lora_trainables.bin`). Keys are stripped of `base_model.model.` and
    `model.` prefixes.

    Raises:
        ValueError: naming keys that belong to no known projector.
    """
    projectors = {}
    for source, state in sources:
        found, unknown = {}, []
        for key, tensor in state.items():
            name, _, parameter = _strip_prefixes(key, PEFT_PREFIXES).partition(".")
            if name in PROJECTORS and parameter:
                found.setdefault(name, {})[parameter] = tensor
            else:
                unknown.append(key)
        _check_keys(source, unknown)
        projectors.update(found)
    return projectors


def projector_type(name: str, tensors: dict[str, torch.Tensor], in_dim: int, out_dim: int) -> str:
    """`linear` (`weight`, `bias`) or `mlp2x_gelu` (`0.*`, `2.*`), checked against the expected dims.

    Raises:
        ValueError: for another key set or shapes other than `[out, in]` (and `[out, out]` for the second layer).
    """
    keys = set(tensors)
    if keys == {"weight", "bias"}:
        kind, shapes = "linear", {"weight": (out_dim, in_dim), "bias": (out_dim,)}
    elif keys == {"0.weight", "0.bias", "2.weight", "2.bias"}:
        kind = "mlp2x_gelu"
        shapes = {"0.weight": (out_dim, in_dim), "0.bias": (out_dim,), "2.weight": (out_dim, out_dim), "2.bias": (out_dim,)}
    else:
        raise ValueError(f"Projector {name}: keys {sorted(keys)} match neither linear nor mlp2x_gelu.")
    for key, shape in shapes.items():
        if tuple(tensors[key].shape) != shape:
            raise ValueError(f"Projector {name}.{key} has shape {tuple(tensors[key].shape)}, expected {shape}.")
    return kind


# ----------------------------------------------------------------------------------------------------------------
# encoders
# ----------------------------------------------------------------------------------------------------------------
def internvideo2_config(state: dict[str, torch.Tensor], num_attention_heads: int, output_block_from_end: int) -> dict:
    """InternVideo2 config fields from the checkpoint's shapes (heads cannot be read from shapes: given).

    `num_hidden_layers` = the blocks LangDC runs: the released `depth` minus `output_block_from_end - 1`
    (2: the penultimate block's output, reference `x_vis_return_idx=-2`).
    """
    prefix = INTERNVIDEO2_PREFIX
    required = [f"{prefix}patch_embed.proj.weight", f"{prefix}pos_embed", f"{prefix}blocks.0.mlp.fc1.weight"]
    _check_keys("InternVideo2 checkpoint", (), [k for k in required if k not in state])
    hidden, _, tubelet, patch, _ = state[f"{prefix}patch_embed.proj.weight"].shape
    depth = 1 + max(int(m[1]) for k in state if (m := re.match(rf"^{re.escape(prefix)}blocks\.(\d+)\.", k)))
    image_key = f"{prefix}img_pos_embed"
    if image_key not in state:
        raise ValueError(f"InternVideo2 checkpoint: missing keys ['{image_key}'] (needed for the frame size).")
    patches_per_frame = state[image_key].shape[1] - 1
    side = math.isqrt(patches_per_frame)
    time_steps = (state[f"{prefix}pos_embed"].shape[1] - 1) // patches_per_frame
    return dict(
        hidden_size=hidden,
        intermediate_size=state[f"{prefix}blocks.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=depth - (output_block_from_end - 1),
        num_attention_heads=num_attention_heads,
        image_size=side * patch,
        patch_size=patch,
        num_frames=time_steps * tubelet,
        tubelet_size=tubelet,
        qkv_bias=f"{prefix}blocks.0.attn.qkv.bias" in state,
        qk_normalization=f"{prefix}blocks.0.attn.q_norm.weight" in state,
        layer_scale_init_value=1e-5 if f"{prefix}blocks.0.ls1.gamma" in state else 0.0,
        sep_image_video_pos_embed=True,
    )


def internvideo2_weights(state: dict[str, torch.Tensor], expected: set[str], num_layers: int) -> dict[str, torch.Tensor]:
    """`video_model.*` tensors: `vision_encoder.*` minus the unused heads and the blocks after `num_layers`."""
    weights, unknown = {}, []
    for key, tensor in state.items():
        if INTERNVIDEO2_OTHER_TOWERS.match(key) or INTERNVIDEO2_UNUSED.match(key):
            continue
        block = re.match(rf"^{re.escape(INTERNVIDEO2_PREFIX)}blocks\.(\d+)\.", key)
        if block is not None and int(block[1]) >= num_layers:
            continue  # blocks after the one LangDC reads
        name = "video_model." + key[len(INTERNVIDEO2_PREFIX) :] if key.startswith(INTERNVIDEO2_PREFIX) else key
        if name in expected:
            weights[name] = tensor
        else:
            unknown.append(key)
    _check_keys("InternVideo2 checkpoint", unknown)
    return weights


def clip_weights(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """`vision_model.*` tensors of a CLIP folder (CLIPModel or CLIPVisionModel keys); the text tower is skipped."""
    weights, unknown = {}, []
    for key, tensor in state.items():
        name = key if key.startswith("vision_model.") else "vision_model." + key
        if name in expected:
            weights[name] = tensor
        elif not CLIP_UNUSED.match(key):
            unknown.append(key)
    _check_keys("CLIP weights", unknown)
    return weights


def clip_vision_config(folder: Path):
    """The CLIP vision config of a CLIP or CLIP-vision folder."""
    config = AutoConfig.from_pretrained(folder)
    return config.vision_config if hasattr(config, "vision_config") else config


# ----------------------------------------------------------------------------------------------------------------
# assembling
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class OfficialRelease:
    """Paths of the official release's pieces (see the module docstring)."""

    base_llm: Path
    adapter: Path
    expert: Path
    internvideo2: Path
    clip: Path


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + key: tensor for key, tensor in state.items()}


def _eos_ids(folder: Path, tokenizer) -> tuple[list[int], int | None]:
    """EOS id list and pad id of a model folder: generation_config.json first, then its tokenizer."""
    path = Path(folder) / "generation_config.json"
    generation = json.loads(path.read_text()) if path.is_file() else {}
    eos = generation.get("eos_token_id", tokenizer.eos_token_id)
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if not eos:
        raise ValueError(f"{str(folder)!r}: no EOS id in generation_config.json or the tokenizer.")
    pad = generation.get("pad_token_id", tokenizer.pad_token_id)
    return eos, pad


def _official_fields(adapter_folder: Path, spec: dict) -> dict:
    """Config fields: the layout spec, with `vision_feature_layer` from the official `config.json` in the adapter
    folder (`mm_vision_select_layer`) when there is one.

    Raises:
        ValueError: if that config selects another branch than the released dual one (`is_pool_branch` and
            `is_cap_branch` both true).
    """
    fields = dict(spec["config"])
    path = Path(adapter_folder) / "config.json"
    official = json.loads(path.read_text()) if path.is_file() else {}
    if "mm_vision_select_layer" in official:
        fields["vision_feature_layer"] = official["mm_vision_select_layer"]
    for branch in ("is_pool_branch", "is_cap_branch"):
        if official.get(branch) is False:
            raise ValueError(f"The official config.json has {branch}=false: only the released dual branch is converted.")
    return fields


def build_state_and_config(release: OfficialRelease, official_soft_token_compat: bool = False, spec: dict | None = None):
    """Read the release, merge LoRA, map every key; returns `(config, state_dict, tokenizer, expert_tokenizer)`.

    Raises:
        ValueError: naming unknown or missing keys, and for inconsistent shapes or vocabularies.
    """
    spec = spec or json.loads(OFFICIAL_SPEC.read_text())
    configuration = import_remote("configuration_langdc")
    modeling = import_remote("modeling_langdc")

    tokenizer = AutoTokenizer.from_pretrained(release.base_llm)
    tokenizer.add_tokens([IMAGE_TOKEN, VIDEO_TOKEN], special_tokens=True)
    tokenizer.chat_template = spec["chat_template"]
    expert_tokenizer = AutoTokenizer.from_pretrained(release.expert)
    if not expert_tokenizer.get_vocab().items() <= tokenizer.get_vocab().items():
        raise ValueError("The expert's tokenizer is not a subset of the LLM's: captions could not be decoded.")
    text_config = AutoConfig.from_pretrained(release.base_llm)
    expert_config = AutoConfig.from_pretrained(release.expert)
    if len(tokenizer) > text_config.vocab_size:
        raise ValueError(f"The LLM tokenizer has {len(tokenizer)} tokens for {text_config.vocab_size} embedding rows.")

    video_state = load_internvideo2_checkpoint(release.internvideo2)
    video_fields = internvideo2_config(video_state, **spec["video_encoder"])
    expert_eos, expert_pad = _eos_ids(release.expert, expert_tokenizer)
    fields = _official_fields(release.adapter, spec)

    projectors = collect_projectors([
        ("expert mm_projector.bin", load_weights_file(Path(release.expert) / "mm_projector.bin")),
        ("non_lora_trainables.bin", load_weights_file(Path(release.adapter) / "non_lora_trainables.bin")),
    ])
    vision_config = clip_vision_config(release.clip)
    dims = {
        "cap_image_mm_projector": (vision_config.hidden_size, expert_config.hidden_size),
        "cap_mm_projector": (video_fields["hidden_size"], expert_config.hidden_size),
        "image_mm_projector": (vision_config.hidden_size, text_config.hidden_size),
        "mm_projector": (video_fields["hidden_size"], text_config.hidden_size),
        "llm_projector": (expert_config.hidden_size, text_config.hidden_size),
    }
    _check_keys(
        "projectors (non_lora_trainables.bin + expert mm_projector.bin)", (),
        [f"{name}.*" for name in PROJECTORS if name not in projectors],
    )
    for name in PROJECTORS:
        fields[PROJECTORS[name][1]] = projector_type(name, projectors[name], *dims[name])

    fields["official_soft_token_compat"] = official_soft_token_compat
    config = configuration.LangDCConfig(
        **fields,
        vision_config=vision_config.to_dict(),
        video_config=video_fields,
        expert_config=expert_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        expert_eos_token_ids=expert_eos,
        expert_pad_token_id=expert_pad,
    )
    config.set_expert_prompt(expert_tokenizer)

    with torch.device("meta"):
        expected = set(modeling.LangDCForConditionalGeneration(config).state_dict())
    llm = load_hf_weights(release.base_llm)
    adapter_config, adapter = load_adapter(release.adapter)
    merge_lora(llm, adapter, adapter_config)
    state = {}
    state.update(_prefixed("language_model.", _tie_lm_head(llm, text_config)))
    state.update(_prefixed("expert.", _tie_lm_head(load_hf_weights(release.expert), expert_config)))
    state.update(clip_weights(load_hf_weights(release.clip), expected))
    state.update(internvideo2_weights(video_state, expected, video_fields["num_hidden_layers"]))
    for name, (module, _) in PROJECTORS.items():
        state.update(_prefixed(module + ".", projectors[name]))
    _check_keys("converted state dict", set(state) - expected, expected - set(state))
    return config, state, tokenizer, expert_tokenizer


def _tie_lm_head(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A tied causal LM's folder may omit `lm_head.weight`: it is the input embedding."""
    if config.tie_word_embeddings and "lm_head.weight" not in state and "model.embed_tokens.weight" in state:
        state = dict(state, **{"lm_head.weight": state["model.embed_tokens.weight"]})
    return state


def convert(
    release: OfficialRelease,
    output: Path,
    official_soft_token_compat: bool = False,
    dtype: torch.dtype = torch.bfloat16,
    spec: dict | None = None,
) -> list[str]:
    """Convert the official release into `output` (see the module docstring). Returns the written file names.

    `spec` replaces `tools/configs/official.json` (layout constants; tests use smaller grids).

    Raises:
        ValueError: naming unknown or missing keys, unsupported adapters, and inconsistent shapes.
    """
    spec = spec or json.loads(OFFICIAL_SPEC.read_text())
    modeling = import_remote("modeling_langdc")
    processing = import_remote("processing_langdc")
    config, state, tokenizer, _ = build_state_and_config(release, official_soft_token_compat, spec)
    model, info = modeling.LangDCForConditionalGeneration.from_pretrained(
        None, config=config, state_dict=state, dtype=dtype, output_loading_info=True
    )
    _check_keys("loading the converted weights", info["unexpected_keys"], info["missing_keys"])
    eos, pad = _eos_ids(release.base_llm, tokenizer)
    model.generation_config = GenerationConfig(
        do_sample=False, max_new_tokens=spec["default_max_new_tokens"], eos_token_id=eos, pad_token_id=pad
    )
    image_processor = processing.LangDCImageProcessor(
        image_size=config.vision_config.image_size,
        num_frames=config.num_frames,
        video_image_size=config.video_config.image_size,
        **spec["processor"],
    )
    processor = processing.LangDCProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=spec["chat_template"])
    return save_checkpoint(model.eval(), tokenizer, processor, Path(output))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-llm", type=Path, required=True, help="Qwen2.5-3B-Instruct folder")
    parser.add_argument("--adapter", type=Path, required=True, help="PEFT folder with non_lora_trainables.bin")
    parser.add_argument("--expert", type=Path, required=True, help="expert folder with mm_projector.bin")
    parser.add_argument("--internvideo2", type=Path, required=True, help="InternVideo2-stage2_1b-224p-f4.pt")
    parser.add_argument("--clip", type=Path, required=True, help="clip-vit-large-patch14-336 folder")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--official-soft-token-compat", action="store_true",
                        help="reproduce the released code's off-by-one soft tokens (NIneeeeeem/LangDC `arch.py`; "
                             "LangDCConfig.official_soft_token_compat)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = parser.parse_args(argv)
    release = OfficialRelease(args.base_llm, args.adapter, args.expert, args.internvideo2, args.clip)
    names = convert(release, args.output, args.official_soft_token_compat, getattr(torch, args.dtype))
    print(f"wrote {args.output}: {', '.join(names)}")


if __name__ == "__main__":
    main()

"""Assemble a Hub-ready LangDC folder from pretrained components on the local disk.

    python -m tools.build_langdc --vision SIGLIP_OR_CLIP_DIR --expert DIR_OR_GGUF --llm DIR_OR_GGUF --output OUT \
        [--fields FIELDS.json] [--max-shard-size 2GB] [--dtype bfloat16] [--overwrite]

The vision tower (a SigLIP or CLIP folder, full model or vision model only), the language expert and the LLM
(Qwen2 or Llama causal LMs, HF folders or GGUF files, which are dequantised) are loaded and their weights go into
the LangDC model unchanged (cast to `--dtype`); the projectors between them are new and initialised by the model's
`_init_weights`, so the result must be trained (stages 1-3, README "Training") before its video answers mean
anything. The LLM tokenizer gets `<image>` and `<video>` if it lacks them (the LLM's embeddings grow by the added
rows; every existing row is kept). When the expert's vocabulary differs from the LLM's, its tokenizer is saved in
`expert_tokenizer/` and the model builds the expert prompt ids and decodes captions with it.

The output holds config.json (with auto_map), the remote-code files, safetensors shards of at most
`--max-shard-size` (transformers `save_pretrained`), tokenizer(s), processor files, generation_config.json (the
LLM's EOS ids) and a generated model card README.md. Everything is written into a temporary sibling folder that is
renamed to `--output` at the end, so an interrupted run leaves no half-written checkpoint.
"""

import argparse
import copy
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionModel,
    PreTrainedModel,
    SiglipVisionModel,
)

from tools.build_checkpoint import build_processor, greedy_generation_config, write_checkpoint_files
from tools.remote_code import import_remote
from tools.tokenizer import IM_END, IM_START, IMAGE_TOKEN, VIDEO_TOKEN

VISION_MODEL_CLASSES = {
    "siglip": SiglipVisionModel,
    "siglip_vision_model": SiglipVisionModel,
    "clip": CLIPVisionModel,
    "clip_vision_model": CLIPVisionModel,
}
CAUSAL_LM_TYPES = ("qwen2", "llama")
NEW_MODULES = ("expert_projector", "caption_projector", "pool_projector")
EXPERT_TOKENIZER_SUBFOLDER = "expert_tokenizer"
# Fields that come from the components, never from a `--fields` spec.
DERIVED_FIELDS = (
    "vision_config", "expert_config", "text_config", "expert_prompt_prefix_ids", "expert_prompt_suffix_ids",
    "expert_eos_token_ids", "expert_pad_token_id", "image_token_id", "video_token_id", "expert_tokenizer_subfolder",
)
# Config keys that describe where a component was loaded from (absolute paths, GGUF quantisation), not the model.
SOURCE_KEYS = ("_name_or_path", "_model_name_or_path", "quantization_config", "_commit_hash", "transformers_version")


@dataclass
class Component:
    """A loaded pretrained component: its role (the CLI option), the source path and what was loaded from it."""

    role: str
    source: Path
    model: PreTrainedModel
    tokenizer: object | None = None
    image_mean: list[float] | None = None
    image_std: list[float] | None = None


# ------------------------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------------------------
def _resolve_source(path, role: str) -> tuple[Path, str | None]:
    """`(folder, gguf_file_name or None)` of a component path. Raises `ValueError` naming `role`."""
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{role} {path}: no config.json in this folder (expected a transformers model folder).")
        return path, None
    if path.exists():
        raise ValueError(f"{role} {path}: expected a transformers model folder or a .gguf file.")
    raise ValueError(f"{role} {path}: no such file or folder.")


def _raise_on_incomplete_load(role: str, source: Path, info: dict) -> None:
    """Missing or shape-mismatched weights mean the component was not copied: refuse (transformers only warns)."""
    missing, mismatched = info.get("missing_keys") or [], info.get("mismatched_keys") or []
    if missing or mismatched:
        shapes = [f"{key}: checkpoint {tuple(a)} vs model {tuple(b)}" for key, a, b in mismatched][:3]
        raise ValueError(
            f"{role} {source}: the weights do not match its config.json (hidden size or layer count mismatch?): "
            f"{len(missing)} missing, {len(mismatched)} mismatched tensors, e.g. {sorted(missing)[:3] + shapes}."
        )


def _drop_gguf_quantizer(model: PreTrainedModel) -> None:
    """A GGUF model is dequantised on load but still flagged as quantised, which blocks `save_pretrained`."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False


def load_causal_lm(path, role: str, dtype: torch.dtype = torch.float32) -> Component:
    """Load a Qwen2/Llama causal LM and its tokenizer from an HF folder or a GGUF file (dequantised to `dtype`).

    Args:
        path: model folder (config.json, safetensors, tokenizer) or `.gguf` file.
        role: the CLI option the path came from (`--expert`, `--llm`), used in error messages.
        dtype: weight dtype after loading.

    Raises:
        ValueError: naming `role` and the path, for a missing path, an unsupported `model_type`, weights that do not
            match the config, a missing tokenizer or a tokenizer larger than the model's vocabulary.
    """
    folder, gguf_file = _resolve_source(path, role)
    source = Path(path)
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{role} {source}: cannot read its config: {error}") from error
    if config.model_type not in CAUSAL_LM_TYPES:
        raise ValueError(f"{role} {source}: unsupported model_type {config.model_type!r}; expected {CAUSAL_LM_TYPES}.")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=gguf_file, dtype=dtype, output_loading_info=True
        )
    except (OSError, RuntimeError, ValueError) as error:
        raise ValueError(f"{role} {source}: cannot load the weights: {error}") from error
    _raise_on_incomplete_load(role, source, info)
    _drop_gguf_quantizer(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{role} {source}: cannot load its tokenizer: {error}") from error
    if len(tokenizer) > model.config.vocab_size and role != "--llm":
        raise ValueError(
            f"{role} {source}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary only "
            f"{model.config.vocab_size}."
        )
    return Component(role, source, model.eval(), tokenizer)


def load_vision_tower(path, role: str = "--vision", dtype: torch.dtype = torch.float32) -> Component:
    """Load the vision tower of a SigLIP or CLIP folder (full model or vision model only) and its normalisation.

    The image mean/std come from the folder's `preprocessor_config.json` when it has one (else the model type's
    default is used by the processor).

    Raises:
        ValueError: naming `role` and the path, for a missing path, a GGUF file, an unsupported `model_type` or
            weights that do not match the config.
    """
    folder, gguf_file = _resolve_source(path, role)
    if gguf_file is not None:
        raise ValueError(f"{role} {path}: a vision tower must be a transformers folder, not a GGUF file.")
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type not in VISION_MODEL_CLASSES:
        raise ValueError(
            f"{role} {folder}: unsupported model_type {model_type!r}; expected one of {sorted(VISION_MODEL_CLASSES)}."
        )
    try:
        model, info = VISION_MODEL_CLASSES[model_type].from_pretrained(folder, dtype=dtype, output_loading_info=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise ValueError(f"{role} {folder}: cannot load the weights: {error}") from error
    _raise_on_incomplete_load(role, folder, info)
    preprocessor = folder / "preprocessor_config.json"
    settings = json.loads(preprocessor.read_text()) if preprocessor.is_file() else {}
    return Component(role, folder, model.eval(), None, settings.get("image_mean"), settings.get("image_std"))


def _load_language_models(expert_path, llm_path, dtype: torch.dtype) -> tuple[Component, Component]:
    """Expert and LLM; the same source is loaded once (a GGUF dequantises slowly) and copied."""
    expert = load_causal_lm(expert_path, "--expert", dtype)
    if Path(expert_path).resolve() == Path(llm_path).resolve():
        llm = Component("--llm", Path(llm_path), copy.deepcopy(expert.model), copy.deepcopy(expert.tokenizer))
    else:
        llm = load_causal_lm(llm_path, "--llm", dtype)
    return expert, llm


# ------------------------------------------------------------------------------------------------------------------
# Tokenizers and config
# ------------------------------------------------------------------------------------------------------------------
def add_media_tokens(llm: Component, seed: int = 0) -> None:
    """Give the LLM tokenizer `<image>` and `<video>` (special tokens) and grow the LLM's embeddings if needed.

    Added rows are initialised by transformers' `resize_token_embeddings` (mean of the existing rows plus seeded
    noise); existing rows are unchanged. The placeholders are replaced by visual tokens before the LLM sees them.
    """
    missing = [t for t in (IMAGE_TOKEN, VIDEO_TOKEN) if t not in llm.tokenizer.get_vocab()]
    if missing:
        llm.tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if len(llm.tokenizer) > llm.model.config.vocab_size:
        torch.manual_seed(seed)
        llm.model.resize_token_embeddings(len(llm.tokenizer))


def _eos_ids(component: Component) -> list[int]:
    """EOS ids of a causal LM: its generation config's list plus its tokenizer's EOS."""
    configured = component.model.generation_config.eos_token_id
    eos = [configured] if isinstance(configured, int) else list(configured or [])
    if component.tokenizer.eos_token_id is not None and component.tokenizer.eos_token_id not in eos:
        eos.append(component.tokenizer.eos_token_id)
    if not eos:
        raise ValueError(
            f"{component.role} {component.source}: neither its generation config nor its tokenizer has an EOS token."
        )
    return eos


def _text_vocab(tokenizer) -> dict[str, int]:
    """The vocabulary without the media placeholders (which `add_media_tokens` may have added to the LLM's)."""
    return {token: i for token, i in tokenizer.get_vocab().items() if token not in (IMAGE_TOKEN, VIDEO_TOKEN)}


def _sub_config(component: Component, dtype: torch.dtype) -> dict:
    """The component's config as a dict, without where it was loaded from, in the output dtype."""
    config = component.model.config.to_dict()
    for key in SOURCE_KEYS:
        config.pop(key, None)
    config["dtype"] = str(dtype).removeprefix("torch.")
    return config


def build_langdc_config(
    vision: Component,
    expert: Component,
    llm: Component,
    fields: dict | None = None,
    expert_prompt: str | None = None,
    dtype: torch.dtype = torch.bfloat16,
):
    """`LangDCConfig` from the loaded components plus LangDC `fields` (e.g. `frames_per_clip`, `pool_grid`).

    The expert prompt ids are built with the expert's tokenizer. `expert_tokenizer_subfolder` is set when the
    expert's vocabulary differs from the LLM's (compared before the media tokens are added to the LLM tokenizer).

    Raises:
        ValueError: for a field that comes from the components, an expert tokenizer without ChatML tokens and no
            `expert_prompt`, or an invalid field value (from `LangDCConfig`).
    """
    fields = dict(fields or {})
    derived = sorted(set(fields) & set(DERIVED_FIELDS))
    if derived:
        raise ValueError(f"--fields: {derived} come from the components and cannot be set.")
    vocab = expert.tokenizer.get_vocab()
    if expert_prompt is None and not (IM_START in vocab and IM_END in vocab):
        raise ValueError(
            f"--expert {expert.source}: the default expert prompt is ChatML but the tokenizer has no {IM_START} / "
            f"{IM_END}; pass --expert-prompt with the expert's own chat format and one <image>."
        )
    shares_vocab = _text_vocab(expert.tokenizer) == _text_vocab(llm.tokenizer)
    LangDCConfig = import_remote("configuration_langdc").LangDCConfig
    eos = _eos_ids(expert)
    config = LangDCConfig(
        vision_config=_sub_config(vision, dtype),
        expert_config=_sub_config(expert, dtype),
        text_config=_sub_config(llm, dtype),
        **fields,
        image_token_id=llm.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_id=llm.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        expert_eos_token_ids=eos,
        expert_pad_token_id=expert.tokenizer.pad_token_id if expert.tokenizer.pad_token_id is not None else eos[0],
        expert_tokenizer_subfolder=None if shares_vocab else EXPERT_TOKENIZER_SUBFOLDER,
    )
    config.set_expert_prompt(expert.tokenizer, expert_prompt)
    config.dtype = dtype
    return config


# ------------------------------------------------------------------------------------------------------------------
# Assembly
# ------------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def assemble_model(config, vision: Component, expert: Component, llm: Component, dtype: torch.dtype, seed: int = 0):
    """The LangDC model with the loaded towers as its sub-models and freshly initialised projectors, in `dtype`.

    The model is constructed on the meta device (nothing is allocated for the towers), the loaded towers are put
    in place as they are, and only the new projectors are materialised and initialised by the model's
    `_init_weights` (seeded).
    """
    modeling = import_remote("modeling_langdc")
    with torch.device("meta"):
        model = modeling.LangDCForConditionalGeneration(config)
    model.vision_model = vision.model
    model.expert = expert.model
    model.language_model = llm.model
    torch.manual_seed(seed)
    for name in NEW_MODULES:
        module = getattr(model, name)
        if module is not None:
            module.to_empty(device="cpu")
            module.apply(model._init_weights)
    model.generation_config = greedy_generation_config(_eos_ids(llm), llm.tokenizer.pad_token_id)
    return model.to(dtype).eval()


# ------------------------------------------------------------------------------------------------------------------
# Model card
# ------------------------------------------------------------------------------------------------------------------
def _describe_component(name: str, component: Component, config) -> str:
    params = sum(p.numel() for p in component.model.parameters())
    layers = config.num_hidden_layers
    vocab = getattr(config, "vocab_size", None)
    vocab_text = f"{vocab:,}" if vocab and config.model_type not in VISION_MODEL_CLASSES else "-"
    return (
        f"| {name} | `{component.source.name}` | {config.model_type} | {params / 1e6:.1f}M | {config.hidden_size} "
        f"| {layers} | {vocab_text} | pretrained, copied |"
    )


def model_card(config, vision: Component, expert: Component, llm: Component, license_id: str) -> str:
    """A Hub model card (README.md) that says what was assembled and that the projectors are untrained."""
    projectors = [
        f"`{name}` ({getattr(config, name.replace('projector', 'projector_type'))})"
        for name in NEW_MODULES
        if name != "pool_projector" or config.use_pool_branch
    ]
    expert_tokenizer = (
        f"The expert keeps its own tokenizer in `{config.expert_tokenizer_subfolder}/` (its vocabulary differs from "
        "the LLM's); the model loads it to build the expert prompt and decode captions."
        if config.expert_tokenizer_subfolder
        else "The expert and the LLM share one vocabulary; the tokenizer at the root serves both."
    )
    lines = [
        "---",
        f"license: {license_id}",
        "library_name: transformers",
        "pipeline_tag: video-text-to-text",
        "tags:",
        "  - langdc",
        "  - video-llm",
        "  - token-compression",
        "  - custom_code",
        "---",
        "",
        "# LangDC assembled from pretrained components (projectors untrained)",
        "",
        "LangDC (*Seeing More, Saying More: Lightweight Language Experts are Dynamic Video Token Compressors*, "
        "arXiv 2509.00969): a small language expert captions each video clip and the vectors of its caption "
        "tokens become that clip's tokens in the LLM. This folder was written by `tools/build_langdc.py` of the "
        "LangDC reference implementation.",
        "",
        "| part | source | model type | parameters | hidden size | layers | vocabulary | weights |",
        "|---|---|---|---|---|---|---|---|",
        _describe_component("vision tower", vision, config.vision_config),
        _describe_component("language expert", expert, config.expert_config),
        _describe_component("LLM", llm, config.text_config),
        "",
        f"**New, randomly initialised (`_init_weights`):** {', '.join(projectors)}. Until they are trained "
        "(README of the reference implementation, stages 1-3) the model's answers about images and videos are "
        "meaningless; text-only chat is the LLM's own.",
        "",
        expert_tokenizer,
        "",
        f"Settings: {config.frames_per_clip} frames per clip, {config.num_frames} frames per video, expert pool grid "
        f"{config.expert_pool_grid}, pool branch {'on' if config.use_pool_branch else 'off'} (grid "
        f"{config.pool_grid}), at most {config.max_caption_tokens} soft tokens per clip, soft-token layer "
        f"{config.soft_token_layer}, block layout `{config.block_layout}`, weights in `{config.dtype}`.",
        "",
        "## Usage",
        "",
        "```python",
        "import torch",
        "from transformers import AutoModel, AutoProcessor, AutoTokenizer",
        "",
        'path = "."  # this folder',
        "model = AutoModel.from_pretrained(path, dtype=torch.bfloat16, trust_remote_code=True).eval()",
        "tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)",
        "processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)",
        'pixel_values, num_patches_list = processor.load_video("clip.mp4")',
        'question = "".join(f"Frame{i + 1}: <image>\\n" for i in range(len(num_patches_list))) + "What happens?"',
        "response, info = model.chat(tokenizer, pixel_values.to(torch.bfloat16), question,",
        "                            dict(max_new_tokens=64, do_sample=False), num_patches_list=num_patches_list,",
        "                            data_flag=3, return_info=True)",
        "print(response, info.tokens_per_clip, info.captions)",
        "```",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------------------
def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output}: exists and is not a folder.")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ValueError(f"--output {output}: folder exists and is not empty; pass --overwrite to replace it.")


def _move_into_place(tmp: Path, output: Path) -> None:
    """Rename the finished temporary folder to `output`; an existing `output` is moved aside first, then removed."""
    if output.exists():
        old = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.old-"))
        os.replace(output, old / output.name)
        os.replace(tmp, output)
        shutil.rmtree(old)
    else:
        os.replace(tmp, output)


def build_langdc(
    vision,
    expert,
    llm,
    output,
    fields: dict | None = None,
    expert_prompt: str | None = None,
    dtype: torch.dtype = torch.bfloat16,
    max_shard_size: str | int = "5GB",
    overwrite: bool = False,
    license_id: str = "other",
    seed: int = 0,
) -> Path:
    """Build a Hub-ready LangDC folder from pretrained components (see the module docstring).

    Args:
        vision: SigLIP/CLIP folder (`siglip`, `siglip_vision_model`, `clip`, `clip_vision_model`).
        expert, llm: Qwen2/Llama causal LM folders or `.gguf` files (may be the same path).
        output: folder to write; must be absent or empty unless `overwrite`.
        fields: LangDC config fields (`frames_per_clip`, `num_frames`, `expert_pool_grid`, `pool_grid`,
            `use_pool_branch`, `max_caption_tokens`, `soft_token_layer`, projector types, ...).
        expert_prompt: expert prompt text with one `<image>`; default: LangDC's ChatML prompt.
        dtype: dtype of the saved weights.
        max_shard_size: largest safetensors shard (`"2GB"`, or bytes), passed to `save_pretrained`.
        license_id: license written into the model card's metadata.
        seed: seed of the projector initialisation (and of added embedding rows).

    Returns:
        The output folder.

    Raises:
        ValueError: naming the input (`--vision`, `--expert`, `--llm`, `--fields`, `--output`) for a missing path,
            an unsupported model type, weights that do not match their config, an output folder in the way, or
            LangDC fields that do not fit the components (e.g. a pool grid larger than the vision patch grid).
    """
    output = Path(output)
    _check_output(output, overwrite)
    vision_tower = load_vision_tower(vision, dtype=dtype)
    expert_lm, llm_lm = _load_language_models(expert, llm, dtype)
    if not llm_lm.tokenizer.chat_template:
        raise ValueError(f"--llm {llm_lm.source}: its tokenizer has no chat template (use an instruct/chat model).")
    add_media_tokens(llm_lm, seed)
    try:
        config = build_langdc_config(vision_tower, expert_lm, llm_lm, fields, expert_prompt, dtype)
    except ValueError as error:
        if str(error).startswith("--"):
            raise
        raise ValueError(f"--fields: {error}") from error
    model = assemble_model(config, vision_tower, expert_lm, llm_lm, dtype, seed)
    processor = build_processor(
        config, llm_lm.tokenizer, vision_tower.image_mean, vision_tower.image_std, llm_lm.tokenizer.chat_template
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.build-"))
    try:
        write_checkpoint_files(model, llm_lm.tokenizer, processor, tmp, max_shard_size=max_shard_size)
        if config.expert_tokenizer_subfolder:
            expert_lm.tokenizer.save_pretrained(tmp / config.expert_tokenizer_subfolder)
        (tmp / "README.md").write_text(model_card(config, vision_tower, expert_lm, llm_lm, license_id))
        _move_into_place(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vision", required=True, help="SigLIP or CLIP model folder")
    parser.add_argument("--expert", required=True, help="Qwen2/Llama causal LM folder or .gguf file")
    parser.add_argument("--llm", required=True, help="Qwen2/Llama causal LM folder or .gguf file (chat model)")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--fields", type=Path, help="JSON file of LangDC config fields (no sub-configs)")
    parser.add_argument("--expert-prompt", help="expert prompt with one <image> (default: LangDC's ChatML prompt)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard, e.g. 2GB or 500MB")
    parser.add_argument("--license", default="other", help="license id for the model card metadata")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    args = parser.parse_args(argv)
    if args.fields is not None and not args.fields.is_file():
        raise ValueError(f"--fields {args.fields}: no such file.")
    fields = json.loads(args.fields.read_text()) if args.fields is not None else None
    output = build_langdc(
        args.vision, args.expert, args.llm, args.output, fields=fields, expert_prompt=args.expert_prompt,
        dtype=getattr(torch, args.dtype), max_shard_size=args.max_shard_size, overwrite=args.overwrite,
        license_id=args.license, seed=args.seed,
    )
    print(f"wrote {output}: {', '.join(sorted(os.listdir(output)))}")


if __name__ == "__main__":
    main()

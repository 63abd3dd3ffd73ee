"""Build a random-weight LangDC checkpoint folder from a JSON config spec.

    python -m tools.build_checkpoint --config tools/configs/tiny.json --output .

writes config.json (with auto_map), generation_config.json, model.safetensors (bf16), the tokenizer files,
the processor files and chat_template.jinja, plus the remote-code .py files. Files are written into a temporary
folder first and then moved into place one by one (each move is atomic), so an interrupted run leaves no
half-written file. The weights are random: this is the skeleton that training (issue 3) replaces.
"""

import argparse
import filecmp
import json
import os
import tempfile
from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig

from tools.remote_code import REPO_ROOT, import_remote
from tools.tokenizer import CHAT_TEMPLATE, IM_END, IMAGE_TOKEN, PAD_TOKEN, VIDEO_TOKEN, build_byte_tokenizer

SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_MAX_NEW_TOKENS = 128
MAX_DYNAMIC_PATCH = 6


def build_config(spec: dict, tokenizer):
    """`LangDCConfig` from a spec dict, with the tokenizer's vocabulary size and special token ids filled in."""
    LangDCConfig = import_remote("configuration_langdc").LangDCConfig
    spec = json.loads(json.dumps(spec))  # deep copy
    for key in ("expert_config", "text_config"):
        spec[key]["vocab_size"] = len(tokenizer)
    eos_ids = [tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(PAD_TOKEN)]
    config = LangDCConfig(
        **spec,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        expert_eos_token_ids=eos_ids,
        expert_pad_token_id=tokenizer.pad_token_id,
    )
    config.set_expert_prompt(tokenizer)
    return config


def build_model(config, seed: int = 0, dtype: torch.dtype = torch.bfloat16):
    """Random-weight model (seeded) in `dtype`, with greedy generation defaults and the EOS id list."""
    modeling = import_remote("modeling_langdc")
    torch.manual_seed(seed)
    model = modeling.LangDCForConditionalGeneration(config).to(dtype).eval()
    model.generation_config = greedy_generation_config(config.expert_eos_token_ids, config.expert_pad_token_id)
    return model


def greedy_generation_config(eos_token_ids: list[int], pad_token_id: int | None) -> GenerationConfig:
    """The shipped generation_config.json: greedy decoding, the LLM's EOS id list and its padding id."""
    return GenerationConfig(
        do_sample=False,
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
        eos_token_id=list(eos_token_ids),
        pad_token_id=pad_token_id,
    )


def build_processor(config, tokenizer, image_mean=None, image_std=None, chat_template: str = CHAT_TEMPLATE):
    """`LangDCProcessor` with the vision tower's tile size, the config's frame count and `tokenizer`.

    `image_mean` / `image_std` default to the SigLIP or CLIP normalisation (by the vision tower's model type);
    `chat_template` defaults to the ChatML template of `tools.tokenizer`.
    """
    processing = import_remote("processing_langdc")
    is_clip = config.vision_config.model_type.startswith("clip")
    image_processor = processing.LangDCImageProcessor(
        image_size=config.vision_config.image_size,
        max_dynamic_patch=MAX_DYNAMIC_PATCH,
        num_frames=config.num_frames,
        image_mean=list(image_mean if image_mean is not None else CLIP_MEAN if is_clip else SIGLIP_MEAN),
        image_std=list(image_std if image_std is not None else CLIP_STD if is_clip else SIGLIP_STD),
        video_image_size=config.video_config.image_size if config.video_config is not None else None,
    )
    return processing.LangDCProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)


def write_checkpoint_files(model, tokenizer, processor, folder: Path, max_shard_size: str | int = "50GB") -> None:
    """Save model (safetensors, shards of at most `max_shard_size`), remote code, config with the full auto_map,
    generation config, tokenizer and processor into `folder` (a fresh, empty folder: callers move it into place)."""
    modeling = import_remote("modeling_langdc")
    configuration = import_remote("configuration_langdc")
    configuration.LangDCConfig.register_for_auto_class()
    modeling.LangDCForConditionalGeneration.register_for_auto_class("AutoModel")
    model.save_pretrained(folder, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    _complete_auto_map(folder / "config.json")


def load_processor(folder: Path):
    """The `LangDCProcessor` of a checkpoint folder, built with this repo's processing code rather than the copy in
    `folder` (as `AutoProcessor` with `trust_remote_code` would): `processor.save_pretrained` writes the source file
    of the processor's class, so a checkpoint written from it carries the current processing code beside the current
    modeling code, not the one of the checkpoint it started from."""
    processing = import_remote("processing_langdc")
    # trust_remote_code: AutoTokenizer reads the LangDC config (auto_map) to find the model type; without it
    # transformers stops to ask on a terminal (and prints the question in logs)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    image_processor = processing.LangDCImageProcessor.from_pretrained(folder)
    return processing.LangDCProcessor(image_processor, tokenizer, chat_template=tokenizer.chat_template)


def save_checkpoint(model, tokenizer, processor, output: Path) -> list[str]:
    """Save everything into a temporary folder, then move each file into `output`. Returns the file names."""
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output, prefix=".build-") as tmp:
        write_checkpoint_files(model, tokenizer, processor, Path(tmp))
        names = sorted(os.listdir(tmp))
        for name in names:
            source, target = Path(tmp) / name, output / name
            if name.endswith(".py") and target.exists() and filecmp.cmp(source, target, shallow=False):
                continue  # the remote-code sources themselves (output is the repo root)
            os.replace(source, target)
    return names


def _complete_auto_map(config_path: Path) -> None:
    """save_pretrained registers one model auto class; add the others users load LangDC with."""
    config = json.loads(config_path.read_text())
    model_class = "modeling_langdc.LangDCForConditionalGeneration"
    config["auto_map"] = {
        "AutoConfig": "configuration_langdc.LangDCConfig",
        "AutoModel": model_class,
        "AutoModelForCausalLM": model_class,
        "AutoModelForImageTextToText": model_class,
        "AutoProcessor": "processing_langdc.LangDCProcessor",
    }
    tmp = config_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, config_path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "tools" / "configs" / "tiny.json")
    parser.add_argument("--output", type=Path, default=REPO_ROOT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tokenizer = build_byte_tokenizer()
    config = build_config(json.loads(args.config.read_text()), tokenizer)
    model = build_model(config, args.seed)
    names = save_checkpoint(model, tokenizer, build_processor(config, tokenizer), args.output)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.output}: {params / 1e6:.2f}M parameters (random, bf16); files: {', '.join(names)}")


if __name__ == "__main__":
    main()

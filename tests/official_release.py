"""Test helper: a synthetic official LangDC release at tiny sizes, in the official file layout and key names.

`write_official_release(root)` writes what the official loader reads (NIneeeeeem/LangDC `langdc/model/builder.py`):
a base LLM folder, a PEFT adapter folder (adapter_config.json, adapter_model.safetensors, non_lora_trainables.bin,
config.json), an expert folder with its mm_projector.bin, an InternVideo2 `.pt` (wrapped in `{"module": ...}` with
the other towers' keys) and a CLIP folder (CLIPModel, text tower included). All tensors are random; `tiny_spec()` is
`tools/configs/official.json` with grids that fit the tiny encoders.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from tools.convert_official_langdc import OFFICIAL_SPEC, OfficialRelease
from tools.tokenizer import IM_END, PAD_TOKEN, build_byte_tokenizer

LLM = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
EXPERT = dict(hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
CLIP_VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=28,
                   patch_size=7)
CLIP_TEXT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64,
                 bos_token_id=0, eos_token_id=1, pad_token_id=1)
IV2 = dict(hidden=24, heads=2, mlp=40, depth=3, patch=14, image=42, frames=4)  # 3 x 3 patches per frame
LORA = dict(r=4, lora_alpha=8, targets=("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"))
EXTRA_VOCAB_ROWS = 8  # embedding rows past the tokenizer, as Qwen2.5's 151936 rows past its 151665 tokens
INIT_RANGE = 0.2  # larger than the usual 0.02 so that a wrong weight changes the outputs visibly


def tiny_spec() -> dict:
    """`tools/configs/official.json` with grids, caption budget and heads sized for the tiny release."""
    spec = json.loads(OFFICIAL_SPEC.read_text())
    spec["config"].update(expert_pool_grid=3, pool_grid=2, video_expert_pool_grid=2, video_pool_grid=1,
                          max_caption_tokens=6)
    spec["video_encoder"]["num_attention_heads"] = IV2["heads"]
    return spec


@dataclass
class SyntheticRelease:
    """The written paths and the raw tensors a reference computation needs."""

    paths: OfficialRelease
    lora: dict  # module name -> (A [r, in], B [out, r])
    projectors: dict  # official projector name -> {parameter: tensor}, after official precedence
    internvideo2: dict  # `vision_encoder.*` tensors
    tokenizer: object


def _randn(generator, *shape, scale=INIT_RANGE):
    return torch.randn(*shape, generator=generator) * scale


def _mlp(generator, in_dim, out_dim):
    return {"0.weight": _randn(generator, out_dim, in_dim), "0.bias": _randn(generator, out_dim),
            "2.weight": _randn(generator, out_dim, out_dim), "2.bias": _randn(generator, out_dim)}


def _linear(generator, in_dim, out_dim):
    return {"weight": _randn(generator, out_dim, in_dim), "bias": _randn(generator, out_dim)}


def _save_causal_lm(folder: Path, fields: dict, vocab_size: int, tokenizer, generation: GenerationConfig, seed: int):
    torch.manual_seed(seed)
    config = Qwen2Config(**fields, vocab_size=vocab_size, max_position_embeddings=2048, tie_word_embeddings=True,
                         initializer_range=INIT_RANGE)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    generation.save_pretrained(folder)
    return config


def _internvideo2_state(generator) -> dict:
    d, depth, patches = IV2["hidden"], IV2["depth"], (IV2["image"] // IV2["patch"]) ** 2
    state = {
        "patch_embed.proj.weight": _randn(generator, d, 3, 1, IV2["patch"], IV2["patch"]),
        "patch_embed.proj.bias": _randn(generator, d),
        "cls_token": _randn(generator, 1, 1, d),
        "pos_embed": _randn(generator, 1, 1 + IV2["frames"] * patches, d),
        "img_pos_embed": _randn(generator, 1, 1 + patches, d),
        "clip_pos_embed": _randn(generator, 1, 1 + IV2["frames"] * patches, d),
        "clip_img_pos_embed": _randn(generator, 1, 1 + patches, d),
        "clip_projector.norm1_q.weight": _randn(generator, d),
        "clip_projector.cross_attn.q.weight": _randn(generator, d, d),
        "clip_decoder.0.head.weight": _randn(generator, 8, d),
        "final_clip_decoder.head.weight": _randn(generator, 8, d),
    }
    for i in range(depth):
        block = {
            "norm1.weight": 1 + _randn(generator, d), "norm2.weight": 1 + _randn(generator, d),
            "attn.qkv.weight": _randn(generator, 3 * d, d),
            "attn.proj.weight": _randn(generator, d, d), "attn.proj.bias": _randn(generator, d),
            "attn.q_norm.weight": 1 + _randn(generator, d), "attn.k_norm.weight": 1 + _randn(generator, d),
            "ls1.gamma": 1 + _randn(generator, d), "ls2.gamma": 1 + _randn(generator, d),
            "mlp.fc1.weight": _randn(generator, IV2["mlp"], d), "mlp.fc1.bias": _randn(generator, IV2["mlp"]),
            "mlp.fc2.weight": _randn(generator, d, IV2["mlp"]), "mlp.fc2.bias": _randn(generator, d),
        }
        state.update({f"blocks.{i}.{k}": v for k, v in block.items()})
    return {f"vision_encoder.{k}": v for k, v in state.items()}


def write_official_release(root: Path, seed: int = 0) -> SyntheticRelease:
    """Write a tiny official release under `root`; returns its paths and the raw tensors."""
    root = Path(root)
    generator = torch.Generator().manual_seed(seed)
    tokenizer = build_byte_tokenizer()
    eos = [tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(PAD_TOKEN)]
    pad = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    paths = OfficialRelease(root / "qwen2_5_3b_instruct", root / "dual_branch_3b", root / "cap_expert",
                            root / "InternVideo2-stage2_1b-224p-f4.pt", root / "clip-vit-large-patch14-336")

    llm = _save_causal_lm(paths.base_llm, LLM, len(tokenizer) + EXTRA_VOCAB_ROWS, tokenizer,
                          GenerationConfig(eos_token_id=eos, pad_token_id=pad), seed)
    # the expert's own generation config samples: the converted model must decode greedily anyway
    _save_causal_lm(paths.expert, EXPERT, len(tokenizer), tokenizer,
                             GenerationConfig(do_sample=True, temperature=0.7, top_k=20, eos_token_id=eos,
                                              pad_token_id=pad), seed + 1)
    torch.manual_seed(seed + 2)
    clip_config = CLIPConfig(vision_config=CLIP_VISION, text_config=CLIP_TEXT, initializer_range=INIT_RANGE)
    CLIPModel(clip_config).save_pretrained(paths.clip)

    iv2 = _internvideo2_state(generator)
    other_towers = {"text_encoder.embeddings.weight": _randn(generator, 8, 4), "vision_proj.weight":
                    _randn(generator, 4, IV2["hidden"]), "temp": torch.tensor(0.07)}
    torch.save({"module": {**iv2, **other_towers}}, paths.internvideo2)

    expert_projectors = {"cap_image_mm_projector": _linear(generator, CLIP_VISION["hidden_size"], EXPERT["hidden_size"]),
                         "cap_mm_projector": _mlp(generator, IV2["hidden"], EXPERT["hidden_size"])}
    trainables = {"mm_projector": _mlp(generator, IV2["hidden"], LLM["hidden_size"]),
                  "image_mm_projector": _mlp(generator, CLIP_VISION["hidden_size"], LLM["hidden_size"]),
                  "llm_projector": _linear(generator, EXPERT["hidden_size"], LLM["hidden_size"]),
                  # also in non_lora_trainables.bin: loaded last, it overrides the expert's copy
                  "cap_image_mm_projector": _linear(generator, CLIP_VISION["hidden_size"], EXPERT["hidden_size"])}
    torch.save({f"model.{name}.{k}": v for name, tensors in expert_projectors.items() for k, v in tensors.items()},
               paths.expert / "mm_projector.bin")
    paths.adapter.mkdir(parents=True)
    torch.save({f"base_model.model.model.{name}.{k}": v for name, tensors in trainables.items()
                for k, v in tensors.items()}, paths.adapter / "non_lora_trainables.bin")

    lora = {}
    dims = {"self_attn.q_proj": (LLM["hidden_size"], LLM["hidden_size"]),
            "self_attn.v_proj": (LLM["hidden_size"],
                                 LLM["num_key_value_heads"] * LLM["hidden_size"] // LLM["num_attention_heads"]),
            "mlp.down_proj": (LLM["intermediate_size"], LLM["hidden_size"])}
    for layer in range(llm.num_hidden_layers):
        for target in LORA["targets"]:
            in_dim, out_dim = dims[target]
            lora[f"model.layers.{layer}.{target}"] = (_randn(generator, LORA["r"], in_dim),
                                                     _randn(generator, out_dim, LORA["r"]))
    save_file({f"base_model.model.{module}.lora_{part}.weight": tensor for module, (a, b) in lora.items()
               for part, tensor in (("A", a), ("B", b))}, str(paths.adapter / "adapter_model.safetensors"))
    adapter_config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": LORA["r"], "lora_alpha": LORA["lora_alpha"],
                      "lora_dropout": 0.05, "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
                      "target_modules": [t.split(".")[-1] for t in LORA["targets"]], "rank_pattern": {},
                      "alpha_pattern": {}, "base_model_name_or_path": "qwen2_5/3b_instruction"}
    (paths.adapter / "adapter_config.json").write_text(json.dumps(adapter_config))
    (paths.adapter / "config.json").write_text(json.dumps(
        {"model_type": "VideoQwenVQA", "mm_vision_select_layer": -2, "is_pool_branch": True, "is_cap_branch": True,
         "hidden_state_layer": -9}))
    return SyntheticRelease(paths, lora, {**expert_projectors, **trainables}, iv2, tokenizer)

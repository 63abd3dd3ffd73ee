"""Model behaviour on tiny random configs: token accounting, batching, caching, attention backends, errors."""

import contextlib
import importlib
import math
from unittest import mock

import pytest
import torch

from tests.conftest import FORCED_TOKEN, forced_captions, video_pixels

GEN = dict(max_new_tokens=5, do_sample=False)


def forced_caption_lengths(model, lengths):
    """Row r of the expert's batched decoding emits `lengths[r]` tokens and then EOS (see `forced_captions`)."""
    eos = model.config.expert_eos_token_ids[0]
    return forced_captions(model, [(length, eos) for length in lengths])


@contextlib.contextmanager
def count_calls(obj, name):
    original = getattr(obj, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    with mock.patch.object(obj, name, side_effect=wrapper):
        yield calls


def video_question(num_frames):
    return "".join(f"Frame{i + 1}: <image>\n" for i in range(num_frames)) + "What happens?"


# ---------------------------------------------------------------------------------------------------------------
# variable soft-token budget
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("soft_token_layer", [0, 1, 2])
def test_soft_tokens_follow_generated_caption_length(make_model, tokenizer, soft_token_layer):
    model = make_model(soft_token_layer=soft_token_layer)
    lengths = [3, 7, 0, 5]
    with forced_caption_lengths(model, lengths):
        _, info = model.chat(
            tokenizer, video_pixels(16), video_question(16), GEN,
            num_patches_list=[1] * 16, data_flag=3, return_info=True,
        )
    assert info.tokens_per_clip == lengths
    assert [len(ids) for ids in info.caption_ids] == lengths
    assert info.captions == ["b" * n for n in lengths]
    pool = 16 * model.config.pool_grid**2
    assert info.pool_tokens == pool
    assert info.visual_tokens == pool + sum(lengths)
    assert info.full_visual_tokens == 16 * model.config.patches_per_tile


def test_unforced_captions_stop_at_max_caption_tokens(model, tokenizer):
    _, info = model.chat(tokenizer, video_pixels(8), "<video>\nDescribe.", GEN, num_patches_list=[1] * 8,
                         data_flag=3, return_info=True)
    for n, ids in zip(info.tokens_per_clip, info.caption_ids):
        assert n == len(ids) <= model.config.max_caption_tokens
        assert not set(ids) & set(model.config.expert_eos_token_ids)


def test_official_soft_token_compat_reproduces_off_by_one(make_model, tokenizer):
    model = make_model(official_soft_token_compat=True)
    with forced_caption_lengths(model, [3, 7, 1, 5]):
        _, info = model.chat(tokenizer, video_pixels(16), video_question(16), GEN, num_patches_list=[1] * 16,
                             data_flag=3, return_info=True)
    # [last prompt token] + caption; the longest generated sequence (7 + EOS) loses its last vector
    assert info.tokens_per_clip == [4, 7, 2, 6]


@pytest.mark.parametrize("soft_token_layer", [0, 2])
def test_teacher_forced_forward_matches_generated_captions(make_model, tokenizer, soft_token_layer):
    """Inference (generated captions) and training (teacher-forced caption_ids) build the same soft tokens."""
    model = make_model(soft_token_layer=soft_token_layer)
    prompt = tokenizer(["<video>\nWhat happens?"], return_tensors="pt")
    pixels = video_pixels(8)
    with forced_caption_lengths(model, [2, 6]), torch.no_grad():
        generated = model(**prompt, pixel_values=pixels, num_patches_list=[[1] * 8], data_flag=3)
    caption_ids = [[FORCED_TOKEN] * 2, [FORCED_TOKEN] * 6]
    with torch.no_grad():
        forced = model(**prompt, pixel_values=pixels, num_patches_list=[[1] * 8], data_flag=3, caption_ids=caption_ids)
    assert generated.tokens_per_clip == forced.tokens_per_clip == [[2, 6]]
    torch.testing.assert_close(generated.logits, forced.logits)


def test_given_caption_ids_replace_the_experts_captions(model, tokenizer):
    """`chat(..., caption_ids=...)` (the oracle-expert ablation) skips the expert and uses the given captions."""
    captions = [[FORCED_TOKEN] * 2, [FORCED_TOKEN] * 6]
    with count_calls(model.expert, "generate") as calls:
        _, info = model.chat(tokenizer, video_pixels(8), video_question(8), GEN, num_patches_list=[1] * 8,
                             data_flag=3, return_info=True, caption_ids=captions)
    assert not calls
    assert info.caption_ids == captions and info.tokens_per_clip == [2, 6]
    with pytest.raises(ValueError, match=r"one list of expert token ids per clip \(2 clips\), got 1"):
        model.chat(tokenizer, video_pixels(8), video_question(8), GEN, num_patches_list=[1] * 8, data_flag=3,
                   caption_ids=captions[:1])


# ---------------------------------------------------------------------------------------------------------------
# batching, one expert call, cache
# ---------------------------------------------------------------------------------------------------------------
def mixed_batch():
    """(pixel_values, questions, num_patches_list, data_flags) for an image, two images and a video."""
    pixels = torch.cat([video_pixels(3, seed=1), video_pixels(3, seed=2), video_pixels(6, seed=3)])
    questions = ["<image>\nWhat is it?", "Image-1: <image>\nImage-2: <image>\nSame?", video_question(6)]
    return pixels, questions, [[3], [1, 2], [1] * 6], [1, 2, 3]


def test_exactly_one_expert_generate_per_call(model, tokenizer):
    with count_calls(model.expert, "generate") as calls:
        model.chat(tokenizer, video_pixels(16), video_question(16), GEN, num_patches_list=[1] * 16, data_flag=3)
    assert len(calls) == 1
    pixels, questions, patches, flags = mixed_batch()
    with count_calls(model.expert, "generate") as calls, count_calls(model.vision_model, "forward") as vision:
        model.batch_chat(tokenizer, pixels, questions, GEN, num_patches_list=patches, data_flag=flags)
    assert len(calls) == 1 and len(vision) == 1


def test_batch_chat_equals_individual_chats(model, tokenizer):
    pixels, questions, patches, flags = mixed_batch()
    batch_responses, batch_infos = model.batch_chat(
        tokenizer, pixels, questions, GEN, num_patches_list=patches, data_flag=flags, return_info=True
    )
    offset = 0
    for i, question in enumerate(questions):
        tiles = sum(patches[i])
        response, info = model.chat(tokenizer, pixels[offset : offset + tiles], question, GEN,
                                    num_patches_list=patches[i], data_flag=flags[i], return_info=True)
        offset += tiles
        assert response == batch_responses[i]
        assert info.tokens_per_clip == batch_infos[i].tokens_per_clip
        assert info.caption_ids == batch_infos[i].caption_ids
        assert info.visual_tokens == batch_infos[i].visual_tokens


def test_use_cache_false_equals_use_cache_true(model, tokenizer):
    args = (tokenizer, video_pixels(8), video_question(8))
    kwargs = dict(num_patches_list=[1] * 8, data_flag=3, return_info=True)
    cached, cached_info = model.chat(*args, dict(GEN, use_cache=True), **kwargs)
    uncached, uncached_info = model.chat(*args, dict(GEN, use_cache=False), **kwargs)
    assert cached == uncached
    assert cached_info.caption_ids == uncached_info.caption_ids


# ---------------------------------------------------------------------------------------------------------------
# data_flag, placeholders and block layouts
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question, patches, flag, clips",
    [
        ("<image>\nWhat is it?", [3], 1, 1),
        ("What is it?", [2], 1, 1),  # placeholder added by chat
        ("Image-1: <image>\nImage-2: <image>\nDiffer?", [2, 1], 2, 2),
        (video_question(10), [1] * 10, 3, 3),
        ("<video>\nWhat happens?", [1] * 10, 3, 3),
        ("What happens?", [1] * 7, 3, 2),  # <video> added by chat
    ],
)
def test_token_accounting_per_data_flag(model, tokenizer, question, patches, flag, clips):
    tiles = sum(patches)
    _, info = model.chat(tokenizer, video_pixels(tiles), question, GEN, num_patches_list=patches, data_flag=flag,
                         return_info=True)
    config = model.config
    assert info.num_clips == len(info.tokens_per_clip) == clips
    assert info.num_frames == tiles
    assert info.pool_tokens == tiles * config.pool_grid**2
    assert info.visual_tokens == info.pool_tokens + sum(info.tokens_per_clip)
    assert info.full_visual_tokens == tiles * config.patches_per_tile
    assert info.llm_prefill_flops > info.llm_prefill_flops_fastv > 0
    assert info.expert_flops > 0
    assert set(info.timings) == {"vision", "expert", "compressor", "llm_prefill", "llm_decode", "total"}


@pytest.mark.parametrize("layout", ["per_clip", "pool_then_captions"])
@pytest.mark.parametrize("use_pool_branch", [True, False])
@pytest.mark.parametrize("per_frame_placeholders", [True, False])
def test_block_layout_places_blocks(make_model, tokenizer, layout, use_pool_branch, per_frame_placeholders):
    model = make_model(block_layout=layout, use_pool_branch=use_pool_branch)
    assert (model.pool_projector is not None) == use_pool_branch
    frames = 6  # clips of 4 and 2 frames
    question = video_question(frames) if per_frame_placeholders else "<video>\nWhat happens?"
    ids = tokenizer([question], return_tensors="pt")
    with forced_caption_lengths(model, [2, 3]), torch.no_grad():
        embeds, mask, _, media, rows, visual, _ = model._prepare_multimodal(
            ids["input_ids"], ids["attention_mask"], video_pixels(frames), [[1] * frames], 3
        )
    pool = media.pool_tokens or [torch.zeros(0, embeds.shape[-1])] * 2
    cap = media.caption_tokens
    if layout == "pool_then_captions":
        at_first = [pool[0], pool[1], cap[0], cap[1]]  # the whole video block at the first placeholder
    elif per_frame_placeholders:
        at_first = [pool[0], cap[0]]  # clip 1 goes at frame 5's placeholder
    else:
        at_first = [pool[0], cap[0], pool[1], cap[1]]
    block = torch.cat(at_first)
    first = rows[0].index(model.config.image_token_id if per_frame_placeholders else model.config.video_token_id)
    start = embeds.shape[1] - int(mask.sum()) + first  # left padding, then the text before the placeholder
    torch.testing.assert_close(embeds[0, start : start + block.shape[0]], block)
    assert visual == [(frames * 4 if use_pool_branch else 0) + 5]
    text_tokens = len(rows[0]) - (frames if per_frame_placeholders else 1)
    assert int(mask.sum()) == text_tokens + visual[0]


def test_clip_time_embedding_adds_each_video_clips_relative_time(make_model, tokenizer):
    model = make_model(clip_time_frequencies=2)
    time = model.clip_time_embedding
    assert not time.weight.any() and not time.bias.any()  # starts at zero: the model answers as without it
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        time.weight.copy_(torch.randn(time.weight.shape, generator=generator))
        time.bias.copy_(torch.randn(time.bias.shape, generator=generator))
    # a 6-frame video (clips of 4 and 2 frames, centres at frames 2 and 5 of 6) and an 8-frame one, then an image
    plan = model._plan_media([[model.config.video_token_id]] * 2 + [[model.config.image_token_id]],
                             [[1] * 6, [1] * 8, [1]], [3, 3, 1], 15)
    assert plan.video_clip_times() == pytest.approx({0: 2 / 6, 1: 5 / 6, 2: 0.25, 3: 0.75})

    def media(question, frames, flag, caption_lengths):
        ids = tokenizer([question], return_tensors="pt")
        with forced_caption_lengths(model, caption_lengths), torch.no_grad():
            return model._prepare_multimodal(ids["input_ids"], ids["attention_mask"], video_pixels(frames),
                                             [[1] * frames] if flag == 3 else [frames], flag)[3]

    timed = media("<video>\nWhat happens?", 6, 3, [2, 3])
    with mock.patch.object(model, "clip_time_embedding", None):
        plain = media("<video>\nWhat happens?", 6, 3, [2, 3])
    offsets = time(torch.tensor([2 / 6, 5 / 6])).detach()
    for clip in range(2):
        for timed_block, plain_block in ((timed.pool_tokens[clip], plain.pool_tokens[clip]),
                                         (timed.caption_tokens[clip], plain.caption_tokens[clip])):
            torch.testing.assert_close(timed_block, plain_block + offsets[clip])
    image = media("<image>\nWhat is it?", 2, 1, [2])
    with mock.patch.object(model, "clip_time_embedding", None):
        plain_image = media("<image>\nWhat is it?", 2, 1, [2])
    torch.testing.assert_close(image.pool_tokens[0], plain_image.pool_tokens[0])  # images have no time
    torch.testing.assert_close(image.caption_tokens[0], plain_image.caption_tokens[0])


@pytest.mark.parametrize("value", [-1, True, 1.5])
def test_clip_time_frequencies_must_be_a_natural_number(make_model, value):
    with pytest.raises(ValueError, match="`clip_time_frequencies` must be an integer >= 0"):
        make_model(clip_time_frequencies=value)


@pytest.mark.parametrize("field, value, message", [
    ("frames_per_clip", 2.5, "`frames_per_clip` must be an integer >= 1, got 2.5"),
    ("num_frames", "16", "`num_frames` must be an integer >= 1, got '16'"),
    ("pool_grid", True, "`pool_grid` must be an integer >= 1, got True"),
    ("soft_token_layer", -1, "`soft_token_layer` must be an integer >= 0"),
    ("vision_feature_layer", 50, r"must be in \[-3, 2\], got 50"),
    ("vision_feature_layer", -4, r"must be in \[-3, 2\], got -4"),
])
def test_config_fields_are_validated_by_name(make_model, field, value, message):
    with pytest.raises(ValueError, match=message):
        make_model(**{field: value})


def test_text_only_chat_and_history(model, tokenizer):
    response, history, info = model.chat(tokenizer, None, "Hello?", GEN, return_history=True, return_info=True)
    assert isinstance(response, str) and info.visual_tokens == 0 and info.tokens_per_clip == []
    pixels = video_pixels(2)
    _, history = model.chat(tokenizer, pixels, "<image>\nWhat is it?", GEN, num_patches_list=[2], return_history=True)
    # the follow-up turn reuses the first turn's placeholder and the same pixel_values
    _, history, info = model.chat(tokenizer, pixels, "And then?", GEN, history=history, num_patches_list=[2],
                                  return_history=True, return_info=True)
    assert len(history) == 2 and info.num_clips == 1


@pytest.mark.parametrize("data_flag, placeholder", [(1, "<image>\n"), (3, "<video>\n")])
def test_history_keeps_the_placeholder_added_on_the_first_turn(model, tokenizer, data_flag, placeholder):
    pixels = video_pixels(4)
    patches = [4] if data_flag == 1 else [1] * 4
    _, history = model.chat(tokenizer, pixels, "What is it?", GEN, num_patches_list=patches, data_flag=data_flag,
                            return_history=True)
    assert history[0][0] == placeholder + "What is it?"
    _, history, info = model.chat(tokenizer, pixels, "And then?", GEN, history=history, num_patches_list=patches,
                                  data_flag=data_flag, return_history=True, return_info=True)
    assert [q for q, _ in history] == [placeholder + "What is it?", "And then?"]
    assert info.num_frames == 4


def test_video_without_num_patches_list_is_one_tile_per_frame(model, tokenizer):
    _, info = model.chat(tokenizer, video_pixels(8), "Describe.", GEN, data_flag=3, return_info=True)
    _, explicit = model.chat(tokenizer, video_pixels(8), "Describe.", GEN, num_patches_list=[1] * 8, data_flag=3,
                             return_info=True)
    assert info.num_clips == explicit.num_clips == 2 and info.caption_ids == explicit.caption_ids


def test_chat_takes_the_processors_outputs(model, tokenizer):
    from tools.build_checkpoint import build_processor

    processor = build_processor(model.config, tokenizer)
    frames = torch.randint(0, 256, (8, 48, 64, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    inputs = processor(text=processor.frame_prompt(8) + "Describe.", videos=frames.numpy())
    response, info = model.chat(tokenizer, inputs["pixel_values"], processor.frame_prompt(8) + "Describe.", GEN,
                                num_patches_list=inputs["num_patches_list"], data_flag=inputs["data_flag"],
                                return_info=True)
    assert isinstance(response, str) and info.num_frames == 8 and info.num_clips == 2


def test_chat_keeps_the_callers_eos_and_passes_other_settings_to_generate(model, tokenizer):
    eos = tokenizer.convert_tokens_to_ids("a")
    with mock.patch.object(model.language_model, "generate", wraps=model.language_model.generate) as generate:
        model.chat(tokenizer, None, "Hi", dict(max_new_tokens=3, eos_token_id=eos))
    config = generate.call_args.kwargs["generation_config"]
    assert config.eos_token_id[0] == eos and set(model.generation_config.eos_token_id) <= set(config.eos_token_id)
    with pytest.raises(ValueError, match="max_new_token"):  # a typo is named, not ignored
        model.chat(tokenizer, None, "Hi", dict(max_new_token=3))


# ---------------------------------------------------------------------------------------------------------------
# training path
# ---------------------------------------------------------------------------------------------------------------
def test_forward_with_labels_trains_llm_side(make_model, tokenizer):
    model = make_model().train()
    text = tokenizer(["<video>\nWhat happens? A ball rolls."], return_tensors="pt")
    labels = text["input_ids"].clone()
    labels[:, :10] = -100
    out = model(**text, pixel_values=video_pixels(8), num_patches_list=[[1] * 8], data_flag=3,
                caption_ids=[[70, 71, 72], [73]], labels=labels)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for module in (model.caption_projector, model.pool_projector, model.language_model):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert out.tokens_per_clip == [[3, 1]]
    # layer-0 soft tokens are caption embeddings: with teacher forcing the expert's prompt is never built
    assert model.expert_projector[0].weight.grad is None


def test_expert_caption_loss_trains_expert(make_model):
    model = make_model().train()
    loss = model.expert_caption_loss(video_pixels(8), [[70, 71, 72], [73]], [[1] * 8], data_flag=3)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.expert.get_input_embeddings().weight.grad is not None
    assert model.expert_projector[0].weight.grad.abs().sum() > 0


def test_caption_weights_weigh_each_caption_token(make_model):
    """With weights w the caption loss is sum(w * l) / sum(w) over the tokens (EOS weighs 1): checked through three
    weightings of one token k, whose own loss l_k follows from the unweighted and the k-dropped losses."""
    model = make_model()
    pixels, captions = video_pixels(8), [[70, 71, 72], [73]]

    def loss(weights=None):
        return model.expert_caption_loss(pixels, captions, [[1] * 8], 3, caption_weights=weights).item()

    tokens = sum(map(len, captions)) + len(captions)  # with the EOS of each clip
    plain = loss()
    assert loss([[1.0, 1.0, 1.0], [1.0]]) == pytest.approx(plain, rel=1e-6)
    dropped = loss([[1.0, 0.0, 1.0], [1.0]])
    token_loss = tokens * plain - (tokens - 1) * dropped
    assert loss([[1.0, 3.0, 1.0], [1.0]]) == pytest.approx((tokens * plain + 2 * token_loss) / (tokens + 2), rel=1e-5)
    for bad, match in (([[1.0, 1.0], [1.0]], "one weight per token"), ([[1.0, -1.0, 1.0], [1.0]], "non-negative")):
        with pytest.raises(ValueError, match=match):
            loss(bad)
    with pytest.raises(ValueError, match="without `input_ids`"):
        model(input_ids=torch.tensor([[65, 66]]), caption_weights=[[1.0]])


def test_caption_input_ids_feed_the_expert_and_the_targets_stay_the_captions(make_model):
    """Input noising (`train.run --caption-input-noise`): the teacher-forced inputs may differ from the targets."""
    model = make_model()
    pixels, captions, noised = video_pixels(8), [[70, 71, 72], [73]], [[70, 75, 72], [73]]

    def loss(targets, fed=None):
        return model.expert_caption_loss(pixels, targets, [[1] * 8], 3, caption_input_ids=fed).item()

    assert loss(captions, captions) == loss(captions)
    assert loss(captions, noised) != loss(noised)  # same inputs, the targets are `caption_ids`
    assert loss(captions, noised) != loss(captions)
    with pytest.raises(ValueError, match="one input id per token"):
        loss(captions, [[70, 71], [73]])
    with pytest.raises(ValueError, match="without `input_ids`"):
        model(input_ids=torch.tensor([[65, 66]]), caption_input_ids=[[1]])


def test_clip_tubelets_stack_each_cells_frames_in_time_order(make_model):
    clip_tubelets = importlib.import_module(type(make_model()).__module__).clip_tubelets
    pooled = torch.arange(9 * 2 * 3, dtype=torch.float32).view(9, 2, 3)  # 9 tiles/frames, 2 cells, D = 3
    # a video clip of 4 frames, one of 3 frames (the last repeats), and an image of 2 tiles (a still clip)
    tubelets = clip_tubelets(pooled, [(0, 4), (4, 7), (7, 9)], [4, 3, 1], 4)
    assert [tuple(t.shape) for t in tubelets] == [(2, 12), (2, 12), (4, 12)]
    assert torch.equal(tubelets[0][1], pooled[0:4, 1].flatten())  # cell 1 in frames 0, 1, 2, 3
    assert torch.equal(tubelets[1][0], pooled[[4, 5, 6, 6], 0].flatten())
    assert torch.equal(tubelets[2][3], pooled[8, 1].repeat(4))  # tile 2, cell 1, the same in every frame
    with pytest.raises(ValueError, match="cannot form tubelets"):
        clip_tubelets(pooled, [(0, 9)], [9], 4)


def test_tubelet_expert_reads_one_token_per_cell_and_clip(make_model, tokenizer):
    from tools.export_checkpoint import with_visual_tokens

    base = make_model()
    model = with_visual_tokens(base, expert_token_layout="tubelets")
    grid, frames = model.config.expert_pool_grid, model.config.frames_per_clip
    assert model.expert_projector[0].in_features == frames * base.expert_projector[0].in_features
    assert model.generation_config.to_dict() == base.generation_config.to_dict()  # the shipped greedy settings
    pixels = video_pixels(8)

    def prompt_lengths(m, patches, flag, pixels=pixels):
        plan = m._plan_media_without_prompt([patches], [flag], pixels.shape[0])
        _, mask = m._expert_prompts(m.get_image_features(pixels), plan)
        return mask.sum(-1).tolist()

    prompt = len(base.config.expert_prompt_prefix_ids) + len(base.config.expert_prompt_suffix_ids)
    assert prompt_lengths(base, [1] * 8, 3) == [prompt + frames * grid**2] * 2
    assert prompt_lengths(model, [1] * 8, 3) == [prompt + grid**2] * 2
    assert prompt_lengths(model, [3], 1, pixels[:3]) == [prompt + 3 * grid**2]  # an image: one token per tile cell
    # a still image and the video clip of that frame repeated are the same tubelets, so the same captions
    still = pixels[:1]
    assert model.caption_clips(still, [[1]], 1) == model.caption_clips(still.repeat(4, 1, 1, 1), [[1] * 4], 3)
    # the order of the frames is each token's input: once trained (here: random) the projector tells reversed clips
    torch.nn.init.normal_(model.expert_projector[0].weight.data)
    features = model.get_image_features(pixels)
    plan = model._plan_media_without_prompt([[1] * 8], [3], 8)
    reversed_features = features.view(2, 4, *features.shape[1:]).flip(1).flatten(0, 1)
    prompts = model._expert_prompts(features, plan)[0]
    assert not torch.allclose(prompts, model._expert_prompts(reversed_features, plan)[0])
    model.train()
    model.expert_caption_loss(pixels, [[70, 71], [72]], [[1] * 8], 3).backward()
    assert model.expert_projector[0].weight.grad.abs().sum() > 0  # stage 2 trains the tubelet projector
    with pytest.raises(ValueError, match="same tiles in every frame"):
        model.caption_clips(video_pixels(6), [[2, 1, 1, 1, 1]], 3)
    with pytest.raises(ValueError, match="expert_token_layout"):
        make_model(expert_token_layout="cubes")


def test_retile_expert_projector_keeps_a_still_clips_projection():
    from tools.export_checkpoint import retile_expert_projector

    weight = torch.randn(5, 3)
    weights = {"w": weight.clone()}
    retile_expert_projector(weights, "w", "frames", "tubelets", 4)
    frame = torch.randn(3)
    assert torch.allclose(weights["w"] @ frame.repeat(4), weight @ frame, atol=1e-6)
    retile_expert_projector(weights, "w", "tubelets", "frames", 4)
    assert torch.allclose(weights["w"], weight, atol=1e-6)


def test_deepen_expert_adds_identity_layers_on_top(make_model):
    from tools.export_checkpoint import deepen, with_visual_tokens

    base = make_model()
    layers = base.config.expert_config.num_hidden_layers
    deeper = deepen(base, "expert", layers + 2)
    assert len(deeper.expert.model.layers) == deeper.config.expert_config.num_hidden_layers == layers + 2
    assert len(deeper.config.expert_config.layer_types) == layers + 2
    assert deeper.config.text_config.num_hidden_layers == base.config.text_config.num_hidden_layers
    assert deeper.generation_config.to_dict() == base.generation_config.to_dict()
    pixels, captions = video_pixels(8), [[70, 71, 72], [73]]
    assert deeper.caption_clips(pixels, [[1] * 8], 3) == base.caption_clips(pixels, [[1] * 8], 3)
    torch.testing.assert_close(deeper.expert_caption_loss(pixels, captions, [[1] * 8], 3),
                               base.expert_caption_loss(pixels, captions, [[1] * 8], 3))
    deeper.train()
    deeper.expert_caption_loss(pixels, captions, [[1] * 8], 3).backward()
    assert deeper.expert.model.layers[-1].self_attn.o_proj.weight.grad.abs().sum() > 0  # stage 2 can train them
    with pytest.raises(ValueError, match="must exceed"):
        deepen(base, "expert", layers)
    with pytest.raises(ValueError, match="no expert"):
        deepen(with_visual_tokens(base, use_expert=False), "expert", layers + 1)
    with pytest.raises(ValueError, match="`part` must be one of"):
        deepen(base, "vision_model", 8)


def test_with_new_llm_keeps_the_expert_and_starts_a_wider_llm_side(make_model, checkpoint_dir, tmp_path):
    import json

    from tools.export_checkpoint import LLM_SIDE, export, with_new_llm

    base = make_model()
    text = base.config.text_config
    wide = with_new_llm(base, {"hidden_size": 2 * text.hidden_size, "num_hidden_layers": text.num_hidden_layers + 1})
    assert wide.config.text_config.hidden_size == 2 * text.hidden_size
    assert len(wide.language_model.model.layers) == len(wide.config.text_config.layer_types) == 3
    assert wide.config.text_config.vocab_size == text.vocab_size
    kept = base.state_dict()
    for name, value in wide.state_dict().items():
        if name.split(".")[0] in LLM_SIDE:
            assert name not in kept or value.shape != kept[name].shape or not torch.equal(value, kept[name]), name
        else:  # the vision tower, expert and expert projector, exactly
            torch.testing.assert_close(value, kept[name], rtol=0, atol=0)
    projected = wide.caption_projector(torch.zeros(1, base.config.expert_config.hidden_size))
    assert projected.shape == (1, 2 * text.hidden_size)
    pixels = video_pixels(8)
    assert wide.caption_clips(pixels, [[1] * 8], 3) == base.caption_clips(pixels, [[1] * 8], 3)  # the same captions
    assert wide.generation_config.to_dict() == base.generation_config.to_dict()
    with pytest.raises(ValueError, match="`vocab_size`"):
        with_new_llm(base, {"vocab_size": text.vocab_size + 1})
    with pytest.raises(ValueError, match="must be a dict"):
        with_new_llm(base, ["hidden_size"])
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"text_config": {"num_hidden_layers": 3}}))
    export(checkpoint_dir, tmp_path / "out", dtype=torch.float32, llm_config=spec)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["text_config"]["num_hidden_layers"] == 3
    spec.write_text(json.dumps({"vision_config": {}}))
    with pytest.raises(ValueError, match="no `text_config`"):
        export(checkpoint_dir, tmp_path / "bad", dtype=torch.float32, llm_config=spec)


def test_with_expert_of_takes_the_donors_expert_beside_the_llm_side(make_model):
    from tools.export_checkpoint import EXPERT_SIDE, deepen, with_expert_of

    base, donor = make_model(seed=0), make_model(seed=1)
    donor.vision_model.load_state_dict(base.vision_model.state_dict())  # same tower, other expert and LLM
    merged = with_expert_of(base, donor)
    for name, value in merged.state_dict().items():
        source = donor if name.split(".")[0] in EXPERT_SIDE else base
        torch.testing.assert_close(value, source.state_dict()[name], rtol=0, atol=0)
    pixels = video_pixels(8)
    captions = [[70, 71, 72], [73]]
    loss = merged.expert_caption_loss(pixels, captions, [[1] * 8], 3)
    torch.testing.assert_close(loss, donor.expert_caption_loss(pixels, captions, [[1] * 8], 3))
    assert not torch.allclose(loss, base.expert_caption_loss(pixels, captions, [[1] * 8], 3))
    assert merged.generation_config.to_dict() == base.generation_config.to_dict()
    assert base.expert.model.embed_tokens.weight.data_ptr() != merged.expert.model.embed_tokens.weight.data_ptr()
    with_expert_of(deepen(base, "language_model", 3), donor)  # another LLM depth is the LLM side's business
    with pytest.raises(ValueError, match="`vision_model` weights differ"):
        with_expert_of(base, make_model(seed=1))
    with pytest.raises(ValueError, match=r"configs differ in \['expert_config'"):
        with_expert_of(base, deepen(donor, "expert", 4))


def test_with_vision_tower_of_takes_only_the_donors_tower(make_model, checkpoint_dir, tmp_path):
    from tools.export_checkpoint import export, with_vision_tower_of

    base, donor = make_model(seed=0), make_model(seed=1)
    merged = with_vision_tower_of(base, donor)
    for name, value in merged.state_dict().items():
        source = donor if name.startswith("vision_model.") else base
        torch.testing.assert_close(value, source.state_dict()[name], rtol=0, atol=0)
    pixels = video_pixels(2)
    torch.testing.assert_close(merged.get_image_features(pixels), donor.get_image_features(pixels))
    assert next(merged.vision_model.parameters()).data_ptr() != next(donor.vision_model.parameters()).data_ptr()
    with pytest.raises(ValueError, match=r"vision configs differ in \['num_hidden_layers'\]"):
        with_vision_tower_of(base, make_model(vision_config={"num_hidden_layers": 3}))
    export(checkpoint_dir, tmp_path / "out", dtype=torch.float32, vision_from=checkpoint_dir)  # the same tower


def test_with_llm_side_of_takes_the_donors_llm_side_over_the_tower_and_expert(make_model, checkpoint_dir, tmp_path):
    from tools.export_checkpoint import LLM_SIDE, deepen, export, with_llm_side_of

    base, donor = make_model(seed=0), make_model(seed=1)
    donor.expert.get_input_embeddings().load_state_dict(base.expert.get_input_embeddings().state_dict())
    merged = with_llm_side_of(base, donor)
    for name, value in merged.state_dict().items():
        source = donor if name.split(".")[0] in LLM_SIDE else base
        torch.testing.assert_close(value, source.state_dict()[name], rtol=0, atol=0)
    input_ids = torch.tensor([[5, 70, 71, 72, 73]])
    torch.testing.assert_close(merged(input_ids=input_ids).logits, donor(input_ids=input_ids).logits)
    pixels = video_pixels(2)
    torch.testing.assert_close(merged.get_image_features(pixels), base.get_image_features(pixels))
    assert next(merged.language_model.parameters()).data_ptr() != next(donor.language_model.parameters()).data_ptr()
    with pytest.raises(ValueError, match="expert input embeddings"):  # its caption projector would read others
        with_llm_side_of(base, make_model(seed=1))
    with pytest.raises(ValueError, match=r"configs differ in \['text_config'\]"):
        with_llm_side_of(base, deepen(donor, "language_model", 3))
    with pytest.raises(ValueError, match="both need an expert"):
        with_llm_side_of(base, make_model(use_expert=False))
    export(checkpoint_dir, tmp_path / "out", dtype=torch.float32, llm_from=checkpoint_dir)  # the same LLM side


def test_deepen_llm_adds_identity_layers_on_top(make_model):
    from tools.export_checkpoint import deepen

    base = make_model()
    layers = base.config.text_config.num_hidden_layers
    deeper = deepen(base, "language_model", layers + 1)
    assert len(deeper.language_model.model.layers) == deeper.config.text_config.num_hidden_layers == layers + 1
    assert deeper.config.expert_config.num_hidden_layers == base.config.expert_config.num_hidden_layers
    input_ids = torch.tensor([[5, 70, 71, 72, 73]])
    torch.testing.assert_close(deeper(input_ids=input_ids).logits, base(input_ids=input_ids).logits)
    deeper.train()
    deeper(input_ids=input_ids, labels=input_ids).loss.backward()
    assert deeper.language_model.model.layers[-1].mlp.down_proj.weight.grad.abs().sum() > 0  # stage 3 can train them
    with pytest.raises(ValueError, match="must exceed"):
        deepen(base, "language_model", layers)


def test_widen_llm_answers_as_before_and_trains_the_new_units(make_model, tokenizer, checkpoint_dir, tmp_path):
    import json

    from tools.export_checkpoint import export, residual_writes, widen

    base = make_model(clip_time_frequencies=2)
    torch.nn.init.normal_(base.clip_time_embedding.weight.data)  # trained: a write that must stay in its block
    text = base.config.text_config
    wide = widen(base, 2)
    wide_text = wide.config.text_config
    assert (wide_text.hidden_size, wide_text.intermediate_size) == (2 * text.hidden_size, 2 * text.intermediate_size)
    assert (wide_text.num_attention_heads, wide_text.num_key_value_heads) == (
        2 * text.num_attention_heads, 2 * text.num_key_value_heads)
    attention = (model.language_model.model.layers[0].self_attn for model in (wide, base))
    assert next(attention).head_dim == next(attention).head_dim
    for name, value in base.state_dict().items():
        if name.split(".")[0] in ("vision_model", "expert", "expert_projector"):
            torch.testing.assert_close(wide.state_dict()[name], value, rtol=0, atol=0)
    writes = residual_writes(wide)
    assert {"caption_projector.weight", "pool_projector.2.weight", "clip_time_embedding.bias"} <= writes
    assert not any(name.endswith(("q_proj.weight", "gate_proj.weight", "pool_projector.0.weight")) for name in writes)
    # the same logits from text, and from soft and pool tokens with their clip times
    input_ids = torch.tensor([[5, 70, 71, 72, 73]])
    torch.testing.assert_close(wide(input_ids=input_ids).logits, base(input_ids=input_ids).logits)
    text_inputs = tokenizer(["<video>\nWhat happens? A ball rolls."], return_tensors="pt")
    inputs = dict(**text_inputs, pixel_values=video_pixels(8), num_patches_list=[[1] * 8], data_flag=3,
                  caption_ids=[[70, 71, 72], [73]])
    torch.testing.assert_close(wide(**inputs).logits, base(**inputs).logits)
    wide.train()
    wide(input_ids=input_ids, labels=input_ids).loss.backward()
    layer = wide.language_model.model.layers[0]
    half = text.hidden_size
    assert layer.self_attn.o_proj.weight.grad[half:].abs().sum() > 0  # the new residual dimensions train
    assert layer.mlp.down_proj.weight.grad[:, text.intermediate_size:].abs().sum() > 0  # and the new MLP units
    with pytest.raises(ValueError, match="`factor` must be an integer"):
        widen(base, 1)
    with pytest.raises(ValueError, match="`factor` must be an integer"):
        widen(base, 1.5)
    export(checkpoint_dir, tmp_path / "out", dtype=torch.float32, llm_width_factor=2)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())["text_config"]
    assert saved["hidden_size"] == 2 * json.loads((checkpoint_dir / "config.json").read_text())["text_config"][
        "hidden_size"]


def test_precomputed_image_features_stand_in_for_the_vision_tower(make_model, tokenizer):
    """Training with a frozen tower feeds its cached features: the LLM loss, the expert's caption loss and the
    expert's captions are those of the pixels."""
    model = make_model()
    pixels = video_pixels(8)
    features = model.get_image_features(pixels).detach()
    text = tokenizer(["<video>\nWhat happens? A ball rolls."], return_tensors="pt")
    common = dict(**text, num_patches_list=[[1] * 8], data_flag=3, caption_ids=[[70, 71, 72], [73]],
                  labels=text["input_ids"])
    from_pixels = model(**common, pixel_values=pixels)
    with count_calls(model.vision_model, "forward") as calls:
        from_features = model(**common, image_features=features)
        caption_loss = model.expert_caption_loss(None, [[70, 71], [72]], [[1] * 8], 3, image_features=features)
        captions = model.caption_clips(None, [[1] * 8], 3, image_features=features)
    assert not calls  # the tower never ran
    torch.testing.assert_close(from_features.loss, from_pixels.loss)
    torch.testing.assert_close(caption_loss, model.expert_caption_loss(pixels, [[70, 71], [72]], [[1] * 8], 3))
    assert captions == model.caption_clips(pixels, [[1] * 8], 3)
    with pytest.raises(ValueError, match="not both"):
        model(**common, pixel_values=pixels, image_features=features)
    with pytest.raises(ValueError, match="image_features` must be"):
        model(**common, image_features=features[:, :3])
    with pytest.raises(ValueError, match="are required"):
        model.caption_clips(None, [[1] * 8], 3)


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------
def test_placeholder_count_mismatch(model, tokenizer):
    with pytest.raises(ValueError, match=r"2 <image> placeholders but num_patches_list has 3 images"):
        model.chat(tokenizer, video_pixels(3), "<image>\n<image>\nSame?", GEN, num_patches_list=[1, 1, 1],
                   data_flag=2)
    with pytest.raises(ValueError, match=r"one <image> per frame"):
        model.chat(tokenizer, video_pixels(4), "<image>\nWhat?", GEN, num_patches_list=[1] * 4, data_flag=3)
    with pytest.raises(ValueError, match=r"data_flag=1 is a single image"):
        model.chat(tokenizer, video_pixels(2), "<image>\n<image>\nSame?", GEN, num_patches_list=[1, 1], data_flag=1)


def test_num_patches_sum_mismatch(model, tokenizer):
    with pytest.raises(ValueError, match=r"sum\(num_patches_list\) = 2 but pixel_values holds 3"):
        model.chat(tokenizer, video_pixels(3), "<image>\nWhat?", GEN, num_patches_list=[2])


@pytest.mark.parametrize("flag", [5, -1, [1, 7]])
def test_unknown_data_flag(model, tokenizer, flag):
    with pytest.raises(ValueError, match=r"data_flag"):
        model.chat(tokenizer, video_pixels(1), "<image>\nWhat?", GEN, num_patches_list=[1], data_flag=flag)


def test_prompt_longer_than_context_fails_before_the_llm(make_model, tokenizer):
    model = make_model(text_config={"max_position_embeddings": 120})
    # text alone is too long: rejected before the expert runs
    with count_calls(model.expert, "generate") as expert_calls, pytest.raises(ValueError, match="LLM context of 120"):
        model.chat(tokenizer, video_pixels(4), "<video>\n" + "x" * 200, GEN, num_patches_list=[1] * 4, data_flag=3)
    assert not expert_calls
    # text + pool tokens fit, the captions do not: rejected after the expert, before the LLM
    with count_calls(model.language_model, "generate") as llm_calls, forced_caption_lengths(model, [24, 24]):
        with pytest.raises(ValueError, match="text \\+ visual tokens"):
            model.chat(tokenizer, video_pixels(8), "<video>\nWhat?", GEN, num_patches_list=[1] * 8, data_flag=3)
    assert not llm_calls


@pytest.mark.parametrize("pixels, message", [
    (video_pixels(1)[0], r"\[frames >= 1, 3, 64, 64\].*got \[3, 64, 64\]"),
    (torch.zeros(1, 3, 32, 32), r"got \[1, 3, 32, 32\]"),
    (torch.zeros(1, 1, 64, 64), r"got \[1, 1, 64, 64\]"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "normalised floats"),
    ([video_pixels(1)], "must be a torch.Tensor"),
])
def test_bad_pixel_values_are_named(model, tokenizer, pixels, message):
    with pytest.raises(ValueError, match=message):
        model.chat(tokenizer, pixels, "<image>\nWhat?", GEN, num_patches_list=[1])
    if isinstance(pixels, torch.Tensor):
        with pytest.raises(ValueError, match=message):
            model.caption_clips(pixels, [[1]], 1)


@pytest.mark.parametrize("call, message", [
    (lambda m, t: m.batch_chat(t, video_pixels(2), ["<image>\nA?", "<image>\nB?"], GEN, num_patches_list=[1]),
     r"`num_patches_list` has 1 entries for 2 questions"),
    (lambda m, t: m.batch_chat(t, video_pixels(2), ["<image>\nA?", "<image>\nB?"], GEN, num_patches_list=[1, None]),
     r"num_patches_list\[1\]"),
    (lambda m, t: m.batch_chat(t, None, [], GEN), "non-empty list of strings"),
    (lambda m, t: m.batch_chat(t, None, ["A?"], GEN, history=[("q", "a")]), "History 0 must be a list of"),
    (lambda m, t: m.batch_chat(t, None, ["A?", "B?"], dict(num_return_sequences=2, num_beams=2)),
     "num_return_sequences=2"),
    (lambda m, t: m.chat(t, None, "A?", dict(return_dict_in_generate=True)), "return_dict_in_generate"),
    (lambda m, t: m.chat(t, video_pixels(8), video_question(8), GEN, num_patches_list=[1] * 8, data_flag=3,
                         caption_ids=[[1], [10**6]]), r"`caption_ids\[1\]` holds ids outside"),
    (lambda m, t: m.chat(t, video_pixels(8), video_question(8), GEN, num_patches_list=[1] * 8, data_flag=3,
                         caption_ids=[5, 6]), r"`caption_ids\[0\]` must be a list of expert token ids, got int"),
    (lambda m, t: m.batch_chat(t, video_pixels(2), ["<image>\nA?", "<image>\nB?"], GEN, num_patches_list=2),
     "`num_patches_list` needs one entry per question, got int"),
])
def test_bad_chat_inputs_are_named(model, tokenizer, call, message):
    with pytest.raises(ValueError, match=message):
        call(model, tokenizer)


def test_tokenizer_without_matching_placeholders(model, tokenizer):
    with mock.patch.object(model.config, "video_token_id", 999):
        with pytest.raises(ValueError, match="maps <video>"):
            model.chat(tokenizer, None, "Hi", GEN)


def test_flops_formula_by_hand(model):
    from tools.remote_code import import_remote

    flops = import_remote("flops_langdc")
    cfg = model.config.text_config
    n, d, m, L, V = 10, cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    g, dh = cfg.num_key_value_heads, d // cfg.num_attention_heads
    expected = L * (4 * n * d * d + 4 * n * d * g * dh + 6 * n * d * m + 4 * n * n * d) + 2 * d * V
    assert flops.decoder_prefill_flops(cfg, n) == expected
    assert flops.decoder_prefill_flops_fastv(cfg, n) == L * (4 * n * d * d + 2 * n * n * d + 2 * n * d * m)
    # decoding one token with an empty cache is the same work as prefilling one token
    assert flops.decoder_decode_flops(cfg, 0, 1) == flops.decoder_prefill_flops(cfg, 1)
    with pytest.raises(ValueError):
        flops.decoder_prefill_flops(cfg, -1)
    assert math.isclose(flops.decoder_decode_flops(cfg, 5, 0), 0)


# ---------------------------------------------------------------------------------------------------------------
# score_answers: multiple choice by log-likelihood
# ---------------------------------------------------------------------------------------------------------------
def teacher_forced_scores(model, tokenizer, pixels, question, answer_ids, caption_ids):
    """(sum of log-probs, all argmax) of each answer after the chat prompt, from one full `forward` per answer."""
    messages = [{"role": "system", "content": model.config.system_message}, {"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    scores = []
    for ids in answer_ids:
        logits = model(input_ids=torch.tensor([prompt_ids + ids]), pixel_values=pixels,
                       num_patches_list=[[1] * len(pixels)], data_flag=3, caption_ids=caption_ids).logits[0]
        predicted = logits[-len(ids) - 1 : -1].float().log_softmax(-1)
        targets = torch.tensor(ids)
        scores.append((predicted.gather(-1, targets[:, None]).sum().item(),
                       bool((predicted.argmax(-1) == targets).all())))
    return scores


def test_score_answers_equal_teacher_forced_log_likelihoods(model, tokenizer):
    pixels, question = video_pixels(8), video_question(8)
    _, info = model.chat(tokenizer, pixels, question, GEN, num_patches_list=[1] * 8, data_flag=3, return_info=True)
    answers = ["b", "grows (C)", "grows then shrinks (B)"]
    for end_of_turn in (True, False):
        scores = model.score_answers(tokenizer, pixels, question, answers, num_patches_list=[1] * 8, data_flag=3,
                                     end_of_turn=end_of_turn)
        suffix = tokenizer.eos_token if end_of_turn else ""
        answer_ids = [tokenizer(a + suffix, add_special_tokens=False)["input_ids"] for a in answers]
        expected = teacher_forced_scores(model, tokenizer, pixels, question, answer_ids, info.caption_ids)
        assert [s.num_tokens for s in scores] == [len(ids) for ids in answer_ids]
        for score, (log_likelihood, greedy) in zip(scores, expected):
            assert score.log_likelihood == pytest.approx(log_likelihood, abs=1e-4)
            assert score.is_greedy == greedy
    # precomputed vision features and given captions score the same
    features = model.get_image_features(pixels)
    again = model.score_answers(tokenizer, None, question, answers, num_patches_list=[1] * 8, data_flag=3,
                                image_features=features, caption_ids=info.caption_ids, end_of_turn=False)
    assert [s.log_likelihood for s in again] == pytest.approx([s.log_likelihood for s in scores], abs=1e-4)


def test_score_answers_is_greedy_for_the_greedy_answer(model, tokenizer):
    byte_b = tokenizer.convert_tokens_to_ids("b")

    def prefer_b(module, inputs, logits):  # the LLM's argmax is "b" at every position
        logits = logits.clone()
        logits[..., byte_b] += 1e4
        return logits

    handle = model.language_model.get_output_embeddings().register_forward_hook(prefer_b)
    try:
        scores = model.score_answers(tokenizer, video_pixels(4), "<video>\nWhat?", ["bbb", "bab", "bbb"],
                                     num_patches_list=[1] * 4, data_flag=3, end_of_turn=False)
        with_end = model.score_answers(tokenizer, video_pixels(4), "<video>\nWhat?", ["bbb"],
                                       num_patches_list=[1] * 4, data_flag=3)
    finally:
        handle.remove()
    assert [s.is_greedy for s in scores] == [True, False, True]
    assert scores[0].log_likelihood == pytest.approx(0.0, abs=1e-3) and scores[1].log_likelihood < -100
    assert not with_end[0].is_greedy  # the end of turn is not "b"


def test_score_answers_with_a_pre_llm_compressor_scores_the_compressed_prompt(model, tokenizer):
    pixels, question = video_pixels(8), video_question(8)
    messages = [{"role": "system", "content": model.config.system_message}, {"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    input_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    kwargs = dict(num_patches_list=[1] * 8, data_flag=3)
    uncompressed = model.score_answers(tokenizer, pixels, question, ["b"], end_of_turn=False, **kwargs)
    identity = model.score_answers(tokenizer, pixels, question, ["b"], end_of_turn=False, compressor="pool",
                                   budget=1.0, **kwargs)
    assert identity[0].log_likelihood == pytest.approx(uncompressed[0].log_likelihood, abs=1e-5)
    for name, options in (("pool", None), ("divprune", None), ("dycoke", {"kv_prune": 0})):
        scores = model.score_answers(tokenizer, pixels, question, ["b"], end_of_turn=False, compressor=name,
                                     budget=0.25, compressor_options=options, **kwargs)
        # the first generated token's log-probability under the same compressor, from `generate`
        out = model.generate(pixels, input_ids, torch.ones_like(input_ids), compressor=name, budget=0.25,
                             compressor_options=options, max_new_tokens=1, output_scores=True,
                             return_dict_in_generate=True, **kwargs)
        expected = out.scores[0][0].float().log_softmax(-1)[tokenizer.convert_tokens_to_ids("b")].item()
        assert scores[0].log_likelihood == pytest.approx(expected, abs=1e-4)
        assert scores[0].log_likelihood != pytest.approx(uncompressed[0].log_likelihood, abs=1e-5)
    with pytest.raises(ValueError, match="pre-LLM compressors only"):
        model.score_answers(tokenizer, pixels, question, ["b"], compressor="fastv", budget=0.5,
                            compressor_options={"layer": 1}, **kwargs)
    # refused before the media are encoded: no vision-tower pass is wasted on a call that cannot succeed
    handle = model.vision_model.register_forward_pre_hook(lambda *_: pytest.fail("the media were encoded"))
    try:
        with pytest.raises(ValueError, match="pre-LLM compressors only"):
            model.score_answers(tokenizer, pixels, question, ["b"], compressor="dycoke", budget=0.5, **kwargs)
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="without a `compressor`"):
        model.score_answers(tokenizer, pixels, question, ["b"], budget=0.5, **kwargs)


@pytest.mark.parametrize("answers, match", [([], "non-empty list"), (["a", ""], r"answers\[1\]"),
                                            (["a", 3], r"answers\[1\]"), ("abc", "non-empty list")])
def test_score_answers_rejects_bad_answers(model, tokenizer, answers, match):
    with pytest.raises(ValueError, match=match):
        model.score_answers(tokenizer, video_pixels(4), "<video>\nWhat?", answers, num_patches_list=[1] * 4,
                            data_flag=3)

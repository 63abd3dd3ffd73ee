"""Training-free compressors (compression_langdc.py) on tiny random configs: exactness at budget 1.0, realised token
counts against each method's documented rounding, FastV's q.k hook against eager attention, errors; the no-expert
baseline; the expert's static KV cache."""

import contextlib
import math

import pytest
import torch

from tests.conftest import video_pixels
from tools.remote_code import import_remote

compression = import_remote("compression_langdc")
flops = import_remote("flops_langdc")

FRAMES = 8
POOL_GRID = 4  # 16 pool tokens per frame, 128 per video
INNER = {"fastv": {"layer": 1}, "dycoke": {"kv_layer": 1}, "holitom": {"inner_layer": 1, "inner_ratio": 0.5}}
METHODS = sorted(compression.COMPRESSORS)


@pytest.fixture(scope="module")
def baseline(make_model):
    return make_model(use_expert=False, pool_grid=POOL_GRID)


def prompt(tokenizer, model, frames=FRAMES):
    question = "".join(f"Frame{i + 1}: <image>\n" for i in range(frames)) + "What happens?"
    text = model._build_prompt(tokenizer, question, None)
    return tokenizer([text], return_tensors="pt", add_special_tokens=False)


def run(model, tokenizer, frames=FRAMES, max_new_tokens=3, **compression_args):
    encoded = prompt(tokenizer, model, frames)
    out, infos = model.generate(
        pixel_values=video_pixels(frames), input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
        num_patches_list=[[1] * frames], data_flag=3, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
        output_logits=True, return_dict_in_generate=True, return_info=True, **compression_args,
    )
    return torch.stack(out.logits), infos[0]


def random_tokens(frames=FRAMES, side=POOL_GRID, dim=32, static=False, seed=0):
    generator = torch.Generator().manual_seed(seed)
    feats = torch.randn(frames, side * side, dim, generator=generator)
    if static:
        feats = feats[:1].expand(frames, -1, -1) + 0.01 * torch.randn(frames, side * side, dim, generator=generator)
    saliency = torch.rand(frames, side * side, generator=generator)
    keys = torch.randn(frames, side * side, 8, generator=generator)
    return compression.VisualTokens(feats, (side, side), saliency, keys)


# ---------------------------------------------------------------------------------------------------------------
# budget 1.0 is the uncompressed model
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uncompressed(baseline, tokenizer):
    """Logits (3 greedy steps) and info of the baseline without a compressor."""
    return run(baseline, tokenizer)


@pytest.mark.parametrize("method", METHODS)
def test_budget_one_reproduces_uncompressed_logits(baseline, tokenizer, uncompressed, method):
    reference, plain = uncompressed
    logits, info = run(baseline, tokenizer, compressor=method, budget=1.0, compressor_options=INNER.get(method))
    assert torch.equal(logits, reference)
    assert info.visual_tokens == plain.visual_tokens == FRAMES * POOL_GRID**2
    assert info.compressor == method and info.budget == 1.0


def test_budget_one_on_the_dual_models_pool_tokens(make_model, tokenizer):
    dual = make_model(pool_grid=POOL_GRID)
    reference, _ = run(dual, tokenizer, frames=4)
    for method in ("divprune", "fastv"):
        logits, info = run(dual, tokenizer, frames=4, compressor=method, budget=1.0,
                           compressor_options=INNER.get(method))
        assert torch.equal(logits, reference), method
    assert info.tokens_per_clip and info.compressor_stats["visual_tokens"] == 4 * POOL_GRID**2  # captions excluded


@pytest.mark.parametrize("method", ["divprune", "fastv", "holitom"])
def test_lower_budget_changes_the_answer_distribution(baseline, tokenizer, method):
    reference, _ = run(baseline, tokenizer, max_new_tokens=1)
    logits, _ = run(baseline, tokenizer, max_new_tokens=1, compressor=method, budget=0.25,
                    compressor_options=INNER.get(method))
    assert not torch.allclose(logits, reference)


# ---------------------------------------------------------------------------------------------------------------
# realised token counts
# ---------------------------------------------------------------------------------------------------------------
def expected_tokens(method, budget, frames, per_frame):
    """Each method's documented budget rounding (see its docstring)."""
    side = math.isqrt(per_frame)
    if method == "pool":
        return frames * max(1, round(side * math.sqrt(budget))) ** 2
    if method == "divprune":
        return max(1, round(budget * frames * per_frame))
    if method in ("visionzip", "fastervlm"):
        return frames * max(1, round(budget * per_frame))
    if method == "dycoke":
        anchors = -(-frames // 4)
        return anchors * per_frame + (frames - anchors) * compression.dycoke_keep_per_frame(budget, frames, per_frame)
    if method == "holitom":  # random features: no static positions, so every frame keeps ceil(N * budget)
        return frames * math.ceil(per_frame * budget)
    return frames * per_frame  # fastv: every token enters the LLM


@pytest.mark.parametrize("budget", [0.1, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("method", METHODS)
def test_realised_tokens_follow_documented_rounding(method, budget):
    tokens = random_tokens()
    m = FRAMES * POOL_GRID**2
    compressor = compression.get_compressor(method, budget)
    if method == "dycoke" and budget < 0.25:
        with pytest.raises(ValueError, match="budget"):
            compressor(tokens)
        return
    out = compressor(tokens)
    assert out.feats.shape[0] == out.src_idx.shape[0] == out.n_merged.shape[0]
    assert out.feats.shape[0] == expected_tokens(method, budget, FRAMES, POOL_GRID**2)
    assert torch.equal(out.src_idx, torch.unique(out.src_idx))  # sorted and unique
    if method not in ("holitom", "fastv"):
        assert abs(out.feats.shape[0] - budget * m) <= FRAMES * POOL_GRID**2 * 0.15  # close to the budget
    folded = int(out.n_merged.sum())
    if method in ("divprune", "fastervlm", "dycoke"):
        assert folded == out.feats.shape[0]  # pure selection
    elif method == "visionzip":
        k = max(1, round(budget * POOL_GRID**2))
        contextual = k - max(1, round(k * compression.VISIONZIP_DOMINANT_FRACTION))
        # with contextual tokens, every token is dominant or merged into one of them; without, pure selection
        assert folded == (m if contextual else out.feats.shape[0])
    elif method == "pool":
        assert folded >= m  # adaptive pooling windows cover every token (they overlap when the side does not divide)


@pytest.mark.parametrize("budget", [0.1, 0.25, 0.5])
def test_holitom_merges_static_positions_and_stays_within_its_bound(budget):
    tokens = random_tokens(static=True)
    compressor = compression.get_compressor("holitom", budget)
    out = compressor(tokens)
    m, frames = FRAMES * POOL_GRID**2, FRAMES
    segments, merged = compressor.stats["segments"], compressor.stats["merged_static"]
    assert segments < frames and merged > 0  # the near-static video was merged over time
    assert min(budget * m, m - merged) - segments / 2 <= out.feats.shape[0] <= budget * m + frames + segments / 2


def test_model_reports_the_compressors_token_count(baseline, tokenizer, uncompressed):
    _, info = run(baseline, tokenizer, compressor="divprune", budget=0.25)
    assert info.pool_tokens == info.visual_tokens == round(0.25 * FRAMES * POOL_GRID**2)
    assert info.uncompressed_pool_tokens == FRAMES * POOL_GRID**2
    _, plain = uncompressed
    assert info.llm_prefill_flops < plain.llm_prefill_flops


def test_batch_of_two_equals_two_single_runs(baseline, tokenizer):
    questions = ["<video>\nWhat happens?", "<video>\nWhich colour?"]
    pixels = [video_pixels(FRAMES, seed=1), video_pixels(4, seed=2)]
    args = dict(compressor="visionzip", budget=0.25)
    gen = dict(max_new_tokens=4, do_sample=False)
    batch, infos = baseline.batch_chat(tokenizer, torch.cat(pixels), questions, gen,
                                       num_patches_list=[[1] * FRAMES, [1] * 4], data_flag=3, return_info=True, **args)
    for question, pixel, response, info in zip(questions, pixels, batch, infos):
        single, single_info = baseline.chat(tokenizer, pixel, question, gen, num_patches_list=[1] * len(pixel),
                                            data_flag=3, return_info=True, **args)
        assert single == response and single_info.visual_tokens == info.visual_tokens


# ---------------------------------------------------------------------------------------------------------------
# inner-LLM methods
# ---------------------------------------------------------------------------------------------------------------
def test_fastv_qk_hook_keeps_the_same_tokens_as_eager_attention(make_model, tokenizer):
    model = make_model(use_expert=False, pool_grid=POOL_GRID, seed=3)
    budget, layer = 0.25, 1
    _, info = run(model, tokenizer, compressor="fastv", budget=budget, compressor_options={"layer": layer})
    encoded = prompt(tokenizer, model)
    embeds, mask, _, _, _, _, pool_mask = model._prepare_multimodal(
        encoded["input_ids"], encoded["attention_mask"], video_pixels(FRAMES), [[1] * FRAMES], 3)
    model.language_model.set_attn_implementation("eager")
    try:
        attentions = model.language_model(inputs_embeds=embeds, attention_mask=mask, output_attentions=True).attentions
    finally:
        model.language_model.set_attn_implementation("sdpa")
    row = attentions[layer - 1][0, :, -1].mean(0)
    visual = pool_mask[0].nonzero().squeeze(1)
    kept = round(budget * visual.numel())
    expected = set(visual[torch.topk(row[visual], kept).indices].tolist())
    kept_visual = set(info.compressor_stats["kept_positions"]) & set(visual.tolist())
    assert kept_visual == expected
    n = embeds.shape[1]
    layers = model.config.text_config.num_hidden_layers
    assert info.llm_layer_tokens == [n] * layer + [n - visual.numel() + kept] * (layers - layer)
    assert info.llm_prefill_flops == flops.decoder_prefill_flops(model.config.text_config, info.llm_layer_tokens)


def test_dycoke_kv_pruning_acts_at_decode_only(baseline, tokenizer):
    ttm_only, _ = run(baseline, tokenizer, max_new_tokens=4, compressor="dycoke", budget=0.5,
                      compressor_options={"kv_prune": 0})
    pruned, info = run(baseline, tokenizer, max_new_tokens=4, compressor="dycoke", budget=0.5,
                       compressor_options={"kv_layer": 1, "kv_prune": 0.7})
    assert torch.equal(pruned[0], ttm_only[0])  # the first token comes from an unpruned prefill
    assert not torch.allclose(pruned[1:], ttm_only[1:])
    assert info.compressor_stats["kv_reselections"] >= 1


@pytest.mark.parametrize("method", ["fastv", "dycoke", "holitom"])
def test_inner_methods_agree_between_sdpa_and_eager_attention(make_model, tokenizer, method):
    """The sliced (FastV/HoliTom) and KV-pruned (DyCoke) masks are right for both kernels, at prefill and decode."""
    model = make_model(use_expert=False, pool_grid=POOL_GRID, seed=5)
    args = dict(compressor=method, budget=0.5, compressor_options=INNER[method], max_new_tokens=4)
    sdpa, info = run(model, tokenizer, **args)
    model.set_attn_implementation("eager")
    try:
        eager, _ = run(model, tokenizer, **args)
    finally:
        model.set_attn_implementation("sdpa")
    torch.testing.assert_close(eager, sdpa, rtol=1e-4, atol=1e-4)
    if method != "dycoke":
        layers = model.config.text_config.num_hidden_layers
        assert info.llm_layer_tokens[-1] < info.llm_layer_tokens[0] and len(info.llm_layer_tokens) == layers


def test_per_layer_prefill_flops_match_the_uniform_formula(baseline):
    config = baseline.config.text_config
    layers = config.num_hidden_layers
    assert flops.decoder_prefill_flops(config, [50] * layers) == flops.decoder_prefill_flops(config, 50)
    assert flops.decoder_prefill_flops_fastv(config, [50] * layers) == flops.decoder_prefill_flops_fastv(config, 50)
    with pytest.raises(ValueError, match="per-layer"):
        flops.decoder_prefill_flops(config, [50] * (layers + 1))


# ---------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [0, -0.1, 1.5, "0.5", True, float("nan")])
def test_bad_budget_raises(budget):
    with pytest.raises(ValueError, match="budget"):
        compression.get_compressor("divprune", budget)


def test_bad_names_and_options_raise(baseline, tokenizer):
    with pytest.raises(ValueError, match="'tome'"):
        compression.get_compressor("tome", 0.5)
    with pytest.raises(ValueError, match="'window'"):
        compression.get_compressor("fastv", 0.5, window=3)
    with pytest.raises(ValueError, match="without a `compressor`"):
        run(baseline, tokenizer, budget=0.5)
    with pytest.raises(ValueError, match="'pool'.*needs a `budget`"):
        run(baseline, tokenizer, compressor="pool")
    with pytest.raises(ValueError, match="layer must be in"):
        run(baseline, tokenizer, compressor="fastv", budget=0.5, compressor_options={"layer": 9})


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("budget", [1.0, 0.5])
def test_acts_inside_llm_says_whether_hooks_are_installed(baseline, method, budget):
    # the tiny LLM has two layers: inner methods get layer 1; DyCoke without KV pruning and HoliTom without its inner
    # merge are pre-LLM
    options = {"dycoke": [INNER["dycoke"], {**INNER["dycoke"], "kv_prune": 0}], "fastv": [INNER["fastv"]],
               "holitom": [INNER["holitom"], {}]}.get(method, [{}])
    for option in options:
        compressor = compression.get_compressor(method, budget, **option)
        hooks = compressor.llm_hooks(baseline.language_model, torch.zeros(1, 4, dtype=torch.bool))
        assert compressor.acts_inside_llm == (not isinstance(hooks, contextlib.nullcontext)), (method, option)


def test_inner_methods_reject_a_batch(baseline, tokenizer):
    pixels = torch.cat([video_pixels(4, seed=1), video_pixels(4, seed=2)])
    with pytest.raises(ValueError, match="batch size 1"):
        baseline.batch_chat(tokenizer, pixels, ["<video>\nA?", "<video>\nB?"], dict(max_new_tokens=2),
                            num_patches_list=[[1] * 4, [1] * 4], data_flag=3, compressor="fastv", budget=0.5,
                            compressor_options={"layer": 1})


# ---------------------------------------------------------------------------------------------------------------
# the no-expert baseline and the expert's static cache
# ---------------------------------------------------------------------------------------------------------------
def test_baseline_has_no_expert_and_gives_all_pool_tokens(baseline, tokenizer):
    assert baseline.expert is None and baseline.caption_projector is None and baseline.expert_projector is None
    _, info = run(baseline, tokenizer)
    assert info.tokens_per_clip == [0, 0] and info.expert_flops == 0
    assert info.visual_tokens == info.pool_tokens == FRAMES * POOL_GRID**2
    assert baseline.caption_clips(video_pixels(FRAMES), [[1] * FRAMES], 3) == [[], []]
    with pytest.raises(ValueError, match="no language expert"):
        baseline.expert_caption_loss(video_pixels(FRAMES), [[1], [2]], [[1] * FRAMES], 3)


def test_baseline_config_needs_the_pool_branch(tokenizer):
    from tests.conftest import tiny_spec
    from tools.build_checkpoint import build_config

    with pytest.raises(ValueError, match="use_pool_branch"):
        build_config(tiny_spec(use_expert=False, use_pool_branch=False), tokenizer)
    with pytest.raises(ValueError, match="expert_cache_implementation"):
        build_config(tiny_spec(expert_cache_implementation="paged"), tokenizer)


def test_static_expert_cache_gives_identical_captions(model):
    pixels = torch.cat([video_pixels(4, seed=4), video_pixels(2, seed=5)])  # two clips of different lengths
    args = (pixels, [[1] * 4, [1] * 2], 3)
    caches = []
    handle = model.expert.model.register_forward_pre_hook(
        lambda module, a, kwargs: caches.append(type(kwargs.get("past_key_values")).__name__), with_kwargs=True)
    try:
        dynamic = model.caption_clips(*args)
        used_dynamic, caches[:] = set(caches), []
        model.config.expert_cache_implementation = "static"
        static = model.caption_clips(*args)
    finally:
        model.config.expert_cache_implementation = "dynamic"
        handle.remove()
    assert used_dynamic == {"DynamicCache"} and set(caches) == {"StaticCache"}
    assert static == dynamic and any(dynamic)

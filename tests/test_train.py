"""Training on CPU: each stage runs a few steps on a micro synthvid set, its loss goes down, and the written
checkpoint reloads through `AutoModel.from_pretrained(..., trust_remote_code=True)`."""

import argparse
import json
import random
import re

import pytest
import torch
from transformers import AutoModel, AutoProcessor, AutoTokenizer

from tests.conftest import build_micro_synthvid
from tools.remote_code import REPO_ROOT

pytest.importorskip("synthvid")


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory):
    return build_micro_synthvid(tmp_path_factory.mktemp("synthvid"), train=6)


def first_and_last_loss(output):
    history = json.loads((output / "train_log.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return losses[0], losses[-1]


def train_stage_two(stages, micro_data, output, *options) -> tuple[float, float]:
    """Six stage-2 steps from the stage-1 fixture on cached features with `options` added; the first and last
    logged loss."""
    from train.run import main as run

    run(["--data", str(micro_data), "--batch-size", "2", "--logging-steps", "1", "--save-steps", "1000", "--lr", "3e-3",
         "--warmup", "0", "--threads", "2", "--stage", "2", "--init", str(stages[1]), "--output", str(output),
         "--max-steps", "6", "--freeze-vision-tower", "--cache-vision-features", *options])
    return first_and_last_loss(output)


def assert_refused(stages, micro_data, output, *options) -> None:
    """`train.run` with `options` (a stage and what it does not take) exits before training."""
    from train.run import main as run

    with pytest.raises(SystemExit):
        run(["--data", str(micro_data), "--init", str(stages[2]), "--output", str(output), "--max-steps", "1",
             *options])


@pytest.fixture(scope="module")
def stages(micro_data, tmp_path_factory):
    from train.run import main as run

    root = tmp_path_factory.mktemp("runs")
    common = ["--data", str(micro_data), "--batch-size", "2", "--logging-steps", "1", "--save-steps", "1000",
              "--lr", "3e-3", "--warmup", "0", "--threads", "2"]
    init = REPO_ROOT / "tools" / "configs" / "micro.json"
    outputs = {}
    for stage, steps in ((0, 12), ("text", 12), (1, 12), (2, 12), (3, 12)):
        outputs[stage] = root / f"stage{stage}"
        extra = {"text": ["--caption-qa-fraction", "0.5", "--lookup-fraction", "0.5", "--text-scenes", "4"],
                 2: ["--freeze-vision-tower", "--cache-vision-features"],
                 3: ["--align-caption-projector", "--frame-prompt-fraction", "0.5", "--describe-fraction", "0.5",
                     "--mvbench-prompt-fraction", "0.5", "--rename-fraction", "0.5",
                     "--letter-binding-fraction", "0.5"],
                 }.get(stage, [])
        run([*common, "--stage", str(stage), "--init", str(init), "--output", str(outputs[stage]),
             "--max-steps", str(steps), "--vocab-size", "320", *extra])
        init = outputs[stage]
    return outputs


@pytest.mark.parametrize("stage", [0, "text", 1, 2, 3])
def test_stage_loss_goes_down_and_checkpoint_reloads(stages, stage):
    first, last = first_and_last_loss(stages[stage])
    assert last < first, (stage, first, last)
    model = AutoModel.from_pretrained(stages[stage], trust_remote_code=True)
    assert type(model).__name__ == "LangDCForConditionalGeneration"


def _load(path):
    from tools.remote_code import import_remote

    return import_remote("modeling_langdc").LangDCForConditionalGeneration.from_pretrained(path)


def test_bf16_autocast_trains_on_cpu(stages, micro_data, tmp_path):
    import math

    from train.run import main as run

    run(["--data", str(micro_data), "--stage", "1", "--init", str(stages["text"]), "--output", str(tmp_path),
         "--max-steps", "4", "--batch-size", "2", "--logging-steps", "1", "--save-steps", "1000", "--threads", "2",
         "--bf16"])
    history = json.loads((tmp_path / "train_log.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(loss) and loss > 0 for loss in losses)  # 0.0 marks NaN steps


def test_max_minutes_stops_a_run_after_its_first_step_and_saves(stages, micro_data, tmp_path):
    from train.run import main as run
    from train.stages import WallClockLimit

    output = tmp_path / "stopped"
    run(["--data", str(micro_data), "--stage", "text", "--init", str(stages["text"]), "--output", str(output),
         "--max-steps", "6", "--max-minutes", "0", "--batch-size", "2", "--logging-steps", "1", "--threads", "2"])
    log = json.loads((output / "train_log.json").read_text())
    assert log["stopped_at_step"] == 1
    assert [entry["step"] for entry in log["log_history"] if "loss" in entry] == [1]
    AutoModel.from_pretrained(output, trust_remote_code=True)  # saved as after a whole run
    assert json.loads((stages["text"] / "train_log.json").read_text())["stopped_at_step"] is None
    with pytest.raises(ValueError, match="`minutes` must be >= 0"):
        WallClockLimit(-1)
    with pytest.raises(SystemExit):
        run(["--data", str(micro_data), "--stage", "text", "--init", str(stages["text"]), "--output",
             str(tmp_path / "never"), "--max-minutes", "-1"])


def test_stage_zero_trains_only_the_vision_tower(stages):
    from transformers import AutoTokenizer

    from tools.build_checkpoint import build_config, build_model

    trained = _load(stages[0])
    # the model stage 0 started from: same spec, tokenizer and seed
    spec = json.loads((REPO_ROOT / "tools" / "configs" / "micro.json").read_text())
    initial = build_model(build_config(spec, AutoTokenizer.from_pretrained(stages[0])), seed=0, dtype=torch.float32)
    changed = {name.split(".")[0] for name, p in trained.named_parameters()
               if not torch.equal(p, initial.get_parameter(name))}
    assert changed == {"vision_model"}


def test_text_stage_trains_only_the_llm(stages):
    before, after = _load(stages[0]), _load(stages["text"])
    changed = {name.split(".")[0] for name, p in after.named_parameters()
               if not torch.equal(p, before.get_parameter(name))}
    assert changed == {"language_model"}


def test_lookup_turn_names_a_listed_option_and_its_letter(micro_data):
    import random

    from train.data import lookup_turn, read_split

    question = read_split(micro_data, "train")[0]["questions"][0]
    rng = random.Random(0)
    for _ in range(8):
        user, answer = lookup_turn(question, rng)
        asked = re.search(r'Which option says "(.+)"\?$', user).group(1)
        text, letter = re.fullmatch(r"(.+) \(([A-D])\)", answer).groups()
        assert text == asked and f"({letter}) {asked}" in user.splitlines()  # the letter of that option's line


def test_stage_two_trains_only_the_expert_side(stages):
    before, after = _load(stages[1]), _load(stages[2])
    assert torch.equal(before.language_model.lm_head.weight, after.language_model.lm_head.weight)
    for name, weight in before.vision_model.named_parameters():  # --freeze-vision-tower: as stage 0 left it
        assert torch.equal(weight, after.vision_model.get_parameter(name)), name
    assert not torch.equal(before.expert.model.embed_tokens.weight, after.expert.model.embed_tokens.weight)


def test_stage_two_tunes_the_vision_tower_by_default(stages):
    from train.stages import freeze_for_stage

    model = _load(stages[1])
    with_tower = freeze_for_stage(model, 2)
    assert all(p.requires_grad for p in model.vision_model.parameters())
    without = freeze_for_stage(model, 2, freeze_vision_tower=True)
    assert with_tower - without == model.vision_model.num_parameters()
    with pytest.raises(ValueError, match="stage 0"):
        freeze_for_stage(model, 0, freeze_vision_tower=True)


def test_align_caption_projector_maps_expert_onto_llm_embeddings(stages):
    from train.stages import align_caption_projector

    model = _load(stages[2])
    tokens = list(range(5, 40))
    residual = align_caption_projector(model, tokens + tokens[:3])  # repeated ids count once
    with torch.no_grad():
        projected = model.caption_projector(model.expert.get_input_embeddings().weight[tokens])
    # 35 tokens in a 32-d expert space plus a bias: an exact fit exists only up to 33 points, so check that the
    # projector now holds the fit whose residual was reported, and that the residual is below the target's norm
    target = model.get_input_embeddings().weight[tokens]
    assert residual == pytest.approx(((projected - target).norm() / target.norm()).item(), rel=1e-4)
    assert residual < 1.0
    exact = align_caption_projector(model, tokens[:20])  # fewer points than dimensions: exact
    assert exact < 1e-4
    model.config.caption_projector_type = "mlp2x_gelu"
    with pytest.raises(ValueError, match="linear"):
        align_caption_projector(model, tokens)
    model.config.caption_projector_type = "linear"
    with pytest.raises(ValueError, match="empty"):
        align_caption_projector(model, [])


def test_export_to_bf16_reloads(stages, tmp_path):
    from tools.export_checkpoint import export

    import shutil

    source, target = tmp_path / "source", tmp_path / "export"
    shutil.copytree(stages[3], source, ignore=shutil.ignore_patterns("trainer"))
    with open(source / "processing_langdc.py", "a") as handle:
        handle.write("# an older copy of the processing code\n")
    names = export(source, target)
    assert "model.safetensors" in names and "modeling_langdc.py" in names
    model = AutoModel.from_pretrained(target, trust_remote_code=True)
    assert model.dtype == torch.bfloat16
    for name in ("processing_langdc.py", "modeling_langdc.py"):  # the repo's remote code, not the source's copy
        assert (target / name).read_bytes() == (REPO_ROOT / name).read_bytes(), name
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (target / name).read_bytes() == (stages[3] / name).read_bytes(), name


def test_no_expert_export_keeps_the_shared_weights_and_trains(stages, micro_data, tmp_path):
    from tools.export_checkpoint import EXPERT_MODULES, export, with_visual_tokens
    from train.run import main as run

    baseline_path, trained_path = tmp_path / "baseline", tmp_path / "trained"
    export(stages[3], baseline_path, torch.float32, pool_grid=2, use_expert=False)
    source, baseline = _load(stages[3]), _load(baseline_path)
    assert baseline.config.use_expert is False and baseline.config.pool_grid == 2 and baseline.expert is None
    source_state, baseline_state = source.state_dict(), baseline.state_dict()
    assert {name.split(".")[0] for name in set(source_state) - set(baseline_state)} <= set(EXPERT_MODULES)
    for name, tensor in baseline_state.items():
        assert torch.equal(tensor, source_state[name]), name
    with pytest.raises(ValueError, match="pool_grid"):
        with_visual_tokens(source, 0)
    with pytest.raises(ValueError, match="no expert"):
        with_visual_tokens(baseline, 2)
    finer = with_visual_tokens(source, 2)  # the dual model, four times the pool tokens, every weight kept
    assert finer.config.use_expert and finer.config.pool_grid == 2
    assert all(torch.equal(t, source_state[name]) for name, t in finer.state_dict().items())
    assert set(finer.state_dict()) == set(source_state)
    run(["--data", str(micro_data), "--stage", "3", "--init", str(baseline_path), "--output", str(trained_path),
         "--max-steps", "8", "--batch-size", "2", "--lr", "3e-3", "--warmup", "0", "--logging-steps", "1",
         "--save-steps", "1000", "--ground-truth-fraction", "1.0", "--cache-vision-features", "--threads", "2"])
    first, last = first_and_last_loss(trained_path)
    assert last < first, (first, last)


def test_clip_time_embedding_is_added_at_zero_and_trained_in_stage_three(stages, tmp_path):
    from tools.export_checkpoint import TIME_MODULE, export, with_visual_tokens
    from train.stages import freeze_for_stage

    export(stages[3], tmp_path / "timed", torch.float32, clip_time_frequencies=2)
    source, timed = _load(stages[3]), _load(tmp_path / "timed")
    assert timed.config.clip_time_frequencies == 2 and not timed.clip_time_embedding.weight.any()
    source_state = source.state_dict()
    assert {name for name in timed.state_dict() if name not in source_state} == {
        f"{TIME_MODULE}.weight", f"{TIME_MODULE}.bias"}
    assert all(torch.equal(t, source_state[name]) for name, t in timed.state_dict().items() if name in source_state)
    freeze_for_stage(timed, 3)
    assert all(p.requires_grad for p in timed.clip_time_embedding.parameters())
    with torch.no_grad():
        timed.clip_time_embedding.bias.fill_(1.0)
    assert with_visual_tokens(timed, clip_time_frequencies=2).clip_time_embedding.bias.eq(1.0).all()  # kept
    assert not with_visual_tokens(timed, clip_time_frequencies=3).clip_time_embedding.bias.any()  # starts anew
    assert with_visual_tokens(timed, clip_time_frequencies=0).clip_time_embedding is None
    with pytest.raises(ValueError, match="clip_time_frequencies"):
        with_visual_tokens(timed, clip_time_frequencies=-1)


def test_module_learning_rates_give_a_module_its_own_parameter_group(make_model, tmp_path):
    from transformers import TrainingArguments

    from train.stages import LangDCTrainer, freeze_for_stage

    model = make_model(clip_time_frequencies=2)
    freeze_for_stage(model, 3)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, weight_decay=0.1, report_to="none")
    trainer = LangDCTrainer(model=model, args=args, stage=3, module_learning_rates={"clip_time_embedding": 1e-2})
    groups = trainer.create_optimizer().param_groups
    time_parameters = {id(p) for p in model.clip_time_embedding.parameters()}
    for group in groups:
        in_time = {id(p) in time_parameters for p in group["params"]}
        assert len(in_time) == 1 and group["lr"] == (1e-2 if in_time.pop() else 1e-4)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for group in groups for p in group["params"]) == trained
    assert {group["weight_decay"] for group in groups} == {0.0, 0.1}  # biases and norms undecayed, as the Trainer's
    trainer = LangDCTrainer(model=model, args=args, stage=3, module_learning_rates={"expert": 1e-2})  # frozen
    with pytest.raises(ValueError, match=r"module_learning_rates names \['expert'\]"):
        trainer.create_optimizer()


def test_caption_quality_diagnostic_runs_on_a_stage_checkpoint(stages, micro_data):
    from transformers import AutoProcessor

    from eval.captions import caption_quality

    model = AutoModel.from_pretrained(stages[2], trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(stages[2], trust_remote_code=True)
    report = caption_quality(model, processor, micro_data, "val")
    assert report["clips"] == 4 * report["videos"]
    for key in ("exact_clip_captions", "sentence_precision", "sentence_recall"):
        assert 0.0 <= report[key] <= 1.0


def test_patch_fractions_are_per_patch_label_histograms():
    import numpy as np

    from train.vision import patch_fractions

    labels = np.zeros((1, 4, 4), dtype=np.uint8)
    labels[0, :2, :2] = 1  # top-left patch fully class 1
    labels[0, 2, 3] = 2  # one pixel of class 2 in the bottom-right patch
    fractions = patch_fractions(labels, num_classes=3, patch_size=2).float()
    assert fractions.shape == (1, 4, 3)
    torch.testing.assert_close(fractions.sum(-1), torch.ones(1, 4))
    torch.testing.assert_close(fractions[0, 0], torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(fractions[0, 3], torch.tensor([0.75, 0.0, 0.25]))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        patch_fractions(np.zeros((1, 5, 4), dtype=np.uint8), 3, 2)


def test_patch_moments_place_a_colour_inside_its_pooled_cell():
    import numpy as np

    from train.vision import patch_moments

    labels = np.zeros((1, 8, 8), dtype=np.uint8)  # patches of 2 px, pooled cells of 4 px
    labels[0, 0, 3] = 1  # one class-1 pixel at x 3.5, y 0.5: cell centre (2, 2), half side 2
    moments = patch_moments(labels, num_classes=3, patch_size=2, cell_size=4).float()
    assert moments.shape == (1, 16, 4)  # 4x4 patches; x and y of classes 1 and 2
    torch.testing.assert_close(moments[0, 1], torch.tensor([0.75 / 4, -0.75 / 4, 0.0, 0.0]))
    assert moments[0, torch.arange(16) != 1].abs().max() == 0
    # average pooling of the patches (what expert_pool_grid does) gives the cell's own moment
    block = np.zeros((1, 8, 8), dtype=np.uint8)
    block[0, 1:3, 0:3] = 2  # a 3x2 class-2 block across the top-left cell's four patches
    per_patch = patch_moments(block, 3, 2, 4).float().reshape(4, 4, 4)
    cell = patch_moments(block, 3, 4, 4).float().reshape(2, 2, 4)
    torch.testing.assert_close(per_patch[:2, :2].mean((0, 1)), cell[0, 0])
    for cell_size, shape in ((3, (8, 8)), (4, (6, 8))):
        with pytest.raises(ValueError, match="cell size"):
            patch_moments(np.zeros((1, *shape), dtype=np.uint8), 3, 2, cell_size)


def test_stage_zero_learns_colour_moments_when_asked(stages, micro_data, tmp_path):
    from train.run import main as run

    common = ["--data", str(micro_data), "--batch-size", "8", "--logging-steps", "1", "--save-steps", "1000",
              "--lr", "3e-3", "--warmup", "0", "--threads", "2"]
    run([*common, "--stage", "0", "--init", str(stages[0]), "--output", str(tmp_path / "moments"),
         "--max-steps", "8", "--moment-weight", "10"])
    first, last = first_and_last_loss(tmp_path / "moments")
    assert last < first
    model = AutoModel.from_pretrained(tmp_path / "moments", trust_remote_code=True)
    assert not any("moment" in name for name, _ in model.named_parameters())  # the heads stay behind
    with pytest.raises(SystemExit):
        run([*common, "--stage", "1", "--init", str(stages[0]), "--output", str(tmp_path / "bad"),
             "--max-steps", "1", "--moment-weight", "1"])


def test_stage_two_weighs_caption_words_when_asked(stages, micro_data, tmp_path):
    from train.data import LangDCCollator
    from train.run import caption_token_weights, word_weights

    assert word_weights("left=5,up=2.5,") == {"left": 5.0, "up": 2.5}
    for bad in ("left", "left=x", "=2", "left=-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            word_weights(bad)
    tokenizer = AutoTokenizer.from_pretrained(stages[2])
    word = next(w for w in ("moves", "the", "a") if len(tokenizer(" " + w, add_special_tokens=False).input_ids) == 1)
    weights = caption_token_weights(tokenizer, {word: 4.0})
    (moves,) = weights
    with pytest.raises(ValueError, match="not one"):
        caption_token_weights(tokenizer, {"zzzqqq": 2.0})
    features = torch.zeros(1, 4, 2, 3)
    batch = LangDCCollator(None, 0, features, weights)(
        [{"video": 0, "input_ids": None, "labels": None, "caption_ids": [[moves, 5], [6]]}])
    assert batch["caption_weights"] == [[4.0, 1.0], [1.0]]

    first, last = train_stage_two(stages, micro_data, tmp_path / "weighted", "--caption-word-weights", f"{word}=4")
    assert last < first
    assert_refused(stages, micro_data, tmp_path / "bad", "--stage", "3", "--caption-word-weights", "left=2")


def test_stage_two_noises_the_experts_colour_inputs_and_keeps_its_targets(stages, micro_data, tmp_path):
    from synthvid.spec import COLORS
    from train.data import LangDCCollator, StageDataset, read_split
    from train.run import caption_word_ids

    tokenizer = AutoTokenizer.from_pretrained(stages[2])
    words = [w for w in COLORS if len(tokenizer(" " + w, add_special_tokens=False).input_ids) == 1]
    colours = caption_word_ids(tokenizer, words, "--caption-noise-words")
    with pytest.raises(ValueError, match="--caption-noise-words: 'zzzqqq'"):
        caption_word_ids(tokenizer, ["zzzqqq"], "--caption-noise-words")
    records = read_split(micro_data, "train")
    item = StageDataset(records, 2, tokenizer, "system", caption_input_noise=1.0, noise_token_ids=colours)[0]
    pairs = [(fed, target) for fed_clip, clip in zip(item["caption_input_ids"], item["caption_ids"])
             for fed, target in zip(fed_clip, clip)]
    assert [len(clip) for clip in item["caption_input_ids"]] == [len(clip) for clip in item["caption_ids"]]
    assert any(target in colours for _, target in pairs)
    assert all(fed in colours and fed != target if target in colours else fed == target for fed, target in pairs)
    assert StageDataset(records, 2, tokenizer, "system")[0]["caption_input_ids"] is None
    batch = LangDCCollator(None, 0, torch.zeros(len(records), 4, 2, 3))([item, item])
    assert batch["caption_input_ids"] == item["caption_input_ids"] * 2
    for stage, ids in ((3, colours), (2, colours[:1])):
        with pytest.raises(ValueError, match="caption_input_noise"):
            StageDataset(records, stage, tokenizer, "system", caption_input_noise=0.5, noise_token_ids=ids)

    first, last = train_stage_two(stages, micro_data, tmp_path / "noised", "--caption-input-noise", "0.3",
                                  "--caption-noise-words", ",".join(words))
    assert last < first
    assert_refused(stages, micro_data, tmp_path / "bad", "--stage", "3", "--caption-input-noise", "0.3")


def test_stage_two_reads_recoloured_videos_without_their_colour_words(stages, micro_data, tmp_path):
    from train.data import LangDCCollator, StageDataset, read_split
    from train.run import colour_token_ids

    tokenizer = AutoTokenizer.from_pretrained(stages[2])
    masked = colour_token_ids(tokenizer)
    records = read_split(micro_data, "train")
    dataset = StageDataset(records, 2, tokenizer, "system", recolor_fraction=0.5)
    items = [dataset[i % len(records)] for i in range(40)]
    assert {item["recolored"] for item in items} == {True, False}  # drawn at each read
    assert not any(item["recolored"] for item in StageDataset(records, 2, tokenizer, "system"))
    with pytest.raises(ValueError, match="recolor_fraction"):
        StageDataset(records, 3, tokenizer, "system", recolor_fraction=0.5)

    features, recolored = torch.zeros(len(records), 4, 2, 3), torch.ones(len(records), 4, 2, 3)
    plain = next(item for item in items if not item["recolored"])
    painted = next(item for item in items if item["recolored"])
    batch = LangDCCollator(None, 0, features, None, recolored, masked)([plain, painted])
    frames = features.shape[1]
    assert torch.equal(batch["image_features"][:frames], features[plain["video"]])
    assert torch.equal(batch["image_features"][frames:], recolored[painted["video"]])
    clips = len(plain["caption_ids"])
    assert batch["caption_weights"][:clips] == [[1.0] * len(clip) for clip in plain["caption_ids"]]
    assert batch["caption_weights"][clips:] == [[0.0 if t in masked else 1.0 for t in clip]
                                                for clip in painted["caption_ids"]]
    assert 0.0 in sum(batch["caption_weights"][clips:], [])  # a caption names a colour
    with pytest.raises(ValueError, match="recolored_features"):
        LangDCCollator(None, 0, features)([painted])

    first, last = train_stage_two(stages, micro_data, tmp_path / "recolored", "--recolor-fraction", "0.5")
    assert last < first
    for bad in (["--stage", "2", "--freeze-vision-tower"], ["--stage", "3", "--cache-vision-features"]):
        assert_refused(stages, micro_data, tmp_path / "bad", *bad, "--recolor-fraction", "0.5")


def test_word_loss_is_the_experts_cross_entropy_on_those_words(stages, micro_data, tmp_path):
    from eval.word_loss import main as word_loss_main, word_loss
    from train.data import clip_caption_ids, read_split

    model = AutoModel.from_pretrained(stages[2], trust_remote_code=True, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(stages[2])
    processor = AutoProcessor.from_pretrained(stages[2], trust_remote_code=True)
    record = read_split(micro_data, "train")[0]
    captions = clip_caption_ids(tokenizer, record)
    word = next(w for w in ("the", "a") if len(tokenizer(" " + w, add_special_tokens=False).input_ids) == 1)
    token = tokenizer(" " + word, add_special_tokens=False).input_ids[0]
    result = word_loss(model, tokenizer, processor, micro_data, [record], (word,))
    assert result["tokens"] == sum(ids.count(token) for ids in captions) and result["uniform"] == 0.0
    # the same from the expert's per-token log-probabilities: teacher-forced, only that word's positions
    pixels, patches = processor.load_video(str(micro_data / record["video"]))
    plan = model._plan_media_without_prompt([patches], [3], pixels.shape[0])
    with torch.no_grad():
        features, video_features = model._encode_frames(pixels, None, plan)
        prompts, mask = model._expert_prompts(features, plan, video_features)
        outputs, start = model._expert_teacher_forced(prompts, mask, captions, output_hidden_states=False)
    log_probs = outputs.logits.float().log_softmax(-1)
    expected = [-log_probs[i, start - 1 + j, token].item()
                for i, ids in enumerate(captions) for j, t in enumerate(ids) if t == token]
    assert result["cross_entropy"] == pytest.approx(sum(expected) / len(expected), rel=1e-4)
    with pytest.raises(ValueError, match="No clip caption"):
        word_loss(model, tokenizer, processor, micro_data, [], (word,))
    output = tmp_path / "loss.json"
    word_loss_main(["--model", str(stages[2]), "--data", str(micro_data), "--split", "train", "--words", word,
                    "--max-videos", "1", "--output", str(output)])
    assert json.loads(output.read_text())["cross_entropy"] == pytest.approx(result["cross_entropy"])


def test_pretrainer_checks_its_moment_targets(stages):
    from train.vision import FrameDataset, PatchAttributePretrainer

    model = _load(stages[0])
    with pytest.raises(ValueError, match="moment_weight"):
        PatchAttributePretrainer(model, moment_weight=-1.0)
    pretrainer = PatchAttributePretrainer(model, moment_weight=1.0)
    patches = model.config.patches_per_tile
    pixels = torch.zeros(2, 3, 64, 64)
    with pytest.raises(ValueError, match="moment_targets"):
        pretrainer(pixels, torch.zeros(2, patches, 6), torch.zeros(2, patches, 4))
    with pytest.raises(ValueError, match="agree on"):
        FrameDataset(torch.zeros(1, 2, 3, 64, 64), torch.zeros(1, 2, patches, 6), torch.zeros(1, 2, patches, 4),
                     torch.zeros(1, 3, patches, 10))


def test_novel_colors_stay_clear_of_every_named_colour_and_background():
    from synthvid import BACKGROUNDS, COLORS
    from train.vision import NOVEL_COLOR_MIN_DISTANCE, novel_colors

    colors = novel_colors(300, torch.Generator().manual_seed(0))
    reserved = torch.tensor([*COLORS.values(), *BACKGROUNDS.values()], dtype=torch.float32)
    assert colors.shape == (300, 3) and colors.min() >= 0 and colors.max() <= 255
    assert torch.cdist(colors, reserved).min() >= NOVEL_COLOR_MIN_DISTANCE
    assert torch.equal(colors, novel_colors(300, torch.Generator().manual_seed(0)))
    assert colors.std(0).min() > 30  # spread over the cube, not one corner
    with pytest.raises(ValueError, match="min_distance"):
        novel_colors(1, torch.Generator().manual_seed(0), min_distance=400.0)


def test_object_recolor_repaints_only_the_objects_of_the_chosen_frames():
    from synthvid import COLORS
    from train.vision import FrameDataset, ObjectRecolor

    mean, std = [0.5, 0.4, 0.3], [0.5, 0.25, 0.2]
    color_maps = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    color_maps[..., 2:5, 2:5] = 1 + list(COLORS).index("red")
    color_maps[..., 6:, 6:] = 1 + list(COLORS).index("blue")
    rgb = torch.full((2, 3, 8, 8, 3), 128.0)  # a gray background
    for name in ("red", "blue"):
        rgb[color_maps == 1 + list(COLORS).index(name)] = torch.tensor(COLORS[name], dtype=torch.float32)
    pixels = ((rgb / 255 - torch.tensor(mean)) / torch.tensor(std)).permute(0, 1, 4, 2, 3)  # [N, T, 3, H, W]
    frames, frame_maps = pixels.flatten(0, 1), color_maps.flatten(0, 1)

    recolor = ObjectRecolor(frame_maps, 1.0, mean, std, seed=1)
    out, recoloured = recolor(4, frames[4])
    assert recoloured and len(recolor) == 6
    back = (out.permute(1, 2, 0) * torch.tensor(std) + torch.tensor(mean)) * 255  # [H, W, 3] RGB
    background = frame_maps[4] == 0
    assert torch.allclose(back[background], torch.tensor(128.0), atol=1e-3)
    red = back[frame_maps[4] == 1 + list(COLORS).index("red")]
    assert torch.allclose(red, red[:1].expand_as(red), atol=1e-3)  # one novel colour per named colour
    assert (red[0] - torch.tensor(COLORS["red"], dtype=torch.float32)).norm() >= 80
    assert torch.equal(out, recolor(4, frames[4])[0])  # the draw depends on the seed and the frame only
    assert not torch.equal(out, ObjectRecolor(frame_maps, 1.0, mean, std, seed=2)(4, frames[4])[0])
    video, _ = ObjectRecolor(color_maps, 1.0, mean, std)(1, pixels[1])  # a video item: one draw for its frames
    video_red = video.movedim(-3, -1)[color_maps[1] == 1 + list(COLORS).index("red")]
    assert torch.allclose(video_red, video_red[:1].expand_as(video_red), atol=1e-5)
    kept, recoloured = ObjectRecolor(frame_maps, 0.0, mean, std)(4, frames[4])
    assert not recoloured and torch.equal(kept, frames[4])
    with pytest.raises(ValueError, match="fraction"):
        ObjectRecolor(frame_maps, 1.5, mean, std)

    colors, shapes = torch.rand(2, 3, 4, 6), torch.rand(2, 3, 4, 4)
    dataset = FrameDataset(pixels, colors, shapes, recolor=ObjectRecolor(frame_maps, 0.5, mean, std))
    weights = [float(dataset[i]["color_weight"]) for i in range(6)]
    assert set(weights) == {0.0, 1.0}  # drawn per frame
    assert all(torch.equal(dataset[i]["pixel_values"], frames[i]) == (weights[i] == 1.0) for i in range(6))
    assert all(float(dataset[i]["shape_weight"]) == 1.0 for i in range(6))
    novel_only = FrameDataset(pixels, colors, shapes, recolor=ObjectRecolor(frame_maps, 0.5, mean, std),
                              named_shape_weight=0.0)
    assert [float(novel_only[i]["shape_weight"]) for i in range(6)] == [1.0 - w for w in weights]
    with pytest.raises(ValueError, match="named_shape_weight"):
        FrameDataset(pixels, colors, shapes, recolor=recolor, named_shape_weight=2.0)
    with pytest.raises(ValueError, match="covers"):
        FrameDataset(pixels[:1], colors[:1], shapes[:1], recolor=recolor)


def test_recoloured_frames_train_the_shape_head_only(stages, micro_data, tmp_path):
    from train.run import main as run
    from train.vision import PatchAttributePretrainer

    model = _load(stages[0])
    pretrainer = PatchAttributePretrainer(model, moment_weight=1.0)
    patches = model.config.patches_per_tile
    torch.manual_seed(0)
    pixels, shapes = torch.randn(2, 3, 64, 64), torch.rand(2, patches, 4).softmax(-1)
    colors, moments = torch.rand(2, patches, 6).softmax(-1), torch.rand(2, patches, 10)
    weight = torch.tensor([1.0, 0.0])  # the second frame is a recoloured one
    other_colors, other_moments, other_shapes = colors.clone(), moments.clone(), shapes.clone()
    other_colors[1], other_moments[1], other_shapes[1] = colors[1].flip(-1), moments[1] + 1, shapes[1].flip(-1)
    with torch.no_grad():
        loss = pretrainer(pixels, colors, shapes, moments, color_weight=weight)["loss"]
        assert torch.isclose(loss, pretrainer(pixels, other_colors, shapes, other_moments, color_weight=weight)["loss"])
        assert not torch.isclose(loss, pretrainer(pixels, colors, other_shapes, moments, color_weight=weight)["loss"])
        assert not torch.isclose(loss, pretrainer(pixels, other_colors, shapes, other_moments)["loss"])
        shape_weight = torch.tensor([0.0, 1.0])  # the first frame's shape term does not count
        other_shapes[0], other_shapes[1] = shapes[0].flip(-1), shapes[1]
        assert torch.isclose(pretrainer(pixels, colors, shapes, moments, shape_weight=shape_weight)["loss"],
                             pretrainer(pixels, colors, other_shapes, moments, shape_weight=shape_weight)["loss"])

    output = tmp_path / "recolor"
    run(["--data", str(micro_data), "--stage", "0", "--init", str(stages[0]), "--output", str(output),
         "--max-steps", "3", "--batch-size", "4", "--logging-steps", "1", "--recolor-fraction", "0.5",
         "--named-shape-weight", "0.5", "--threads", "2"])
    assert len([e for e in json.loads((output / "train_log.json").read_text())["log_history"] if "loss" in e]) == 3
    assert any((micro_data / "cache").glob("train-*-color-maps-*px.pt"))
    for bad in (["--stage", "1", "--recolor-fraction", "0.5"], ["--stage", "0", "--recolor-fraction", "2"],
                ["--stage", "0", "--named-shape-weight", "0"]):
        assert_refused(stages, micro_data, tmp_path / "never", *bad)


def test_shape_probe_labels_lone_objects_and_scores_seen_and_held_out_pairs_apart(stages, micro_data, tmp_path):
    from eval.shape_probe import cell_labels, main as probe
    from synthvid import SHAPES
    from train.data import read_split

    spec = {"width": 64, "height": 64, "fps": 8, "num_frames": 8, "background": "black", "objects": [
        {"shape": "triangle", "color": "red", "size": 5, "position": [8, 8], "events": []},
        {"shape": "circle", "color": "green", "size": 5, "position": [40, 40], "events": []},
        {"shape": "square", "color": "blue", "size": 5, "position": [44, 44], "events": []}]}
    # 2 x 2 grid of 32 px cells: the triangle is alone in cell 0, the circle and the square share cell 3
    assert cell_labels([{"spec": spec}], grid=2, image_size=64, frames_per_clip=4) == [
        (0, frame, 0, SHAPES.index("triangle"), True, "red") for frame in (0, 4)]
    output = tmp_path / "shape_probe.json"
    for extra in ([], ["--expert-tokens", "--train-colors", "green,purple"]):
        colors = extra[-1].split(",") if extra else None
        probe(["--model", str(stages[3]), "--data", str(micro_data), "--train-videos", "4", "--steps", "3",
               "--threads", "2", "--output", str(output), *extra])
        result = json.loads(output.read_text())
        grid = result["grid"]
        tested = [label for label in cell_labels(read_split(micro_data, "test"), grid, 64, 4)
                  if colors is None or label[5] not in colors]
        assert result["seen_pairs"]["objects"] + result["held_out_pairs"]["objects"] == len(tested)
        assert result["expert_tokens"] is bool(extra)


def test_motion_probe_labels_clips_with_one_visible_mover(stages, micro_data, tmp_path):
    from eval.motion_probe import DIRECTIONS, clip_direction, clip_labels, main as probe, pooled_clips
    from tools.export_checkpoint import with_visual_tokens
    from train.data import read_split
    from synthvid import validate_spec
    from synthvid.truth import object_states

    spec = {"width": 64, "height": 64, "fps": 8, "num_frames": 8, "background": "black", "objects": [
        {"shape": "circle", "color": "red", "size": 6, "position": [32, 32],
         "events": [{"type": "move", "start": 0, "end": 4, "direction": "up", "speed": 2.0}]},
        {"shape": "square", "color": "blue", "size": 6, "position": [10, 10],
         "events": [{"type": "move", "start": 2, "end": 8, "direction": "right", "speed": 2.0}]}]}
    states = object_states(validate_spec(spec))
    assert clip_direction(states, range(0, 2)) == "up"  # only the circle moves in frames 0-1
    assert clip_direction(states, range(0, 4)) is None  # both move
    assert clip_direction(states, range(4, 8)) == "right"
    assert clip_labels([{"spec": spec}], frames_per_clip=4, num_frames=8) == [(0, 1, DIRECTIONS.index("right"))]
    with pytest.raises(ValueError, match="8 frames, the model samples 16"):
        clip_labels([{"spec": spec}], frames_per_clip=4, num_frames=16)
    output = tmp_path / "probe.json"
    probe(["--model", str(stages[3]), "--data", str(micro_data), "--train-videos", "4", "--test-videos", "2",
           "--steps", "3", "--threads", "2", "--output", str(output)])
    result = json.loads(output.read_text())
    assert result["grid"] == 2 and 0.0 <= result["test_accuracy"] <= 1.0
    assert result["train_clips"] == len(clip_labels(read_split(micro_data, "train")[:4], 4, 16))
    probe(["--model", str(stages[3]), "--data", str(micro_data), "--train-videos", "4", "--test-videos", "2",
           "--steps", "3", "--threads", "2", "--expert-tokens", "--output", str(output)])
    assert json.loads(output.read_text())["expert_tokens"] is True
    for reader in ("frames", "tubelets"):  # a transformer of the expert's size reading the same tokens
        probe(["--model", str(stages[3]), "--data", str(micro_data), "--train-videos", "4", "--test-videos", "2",
               "--steps", "2", "--threads", "2", "--reader", reader, "--output", str(output)])
        assert json.loads(output.read_text())["reader"] == reader
    model = AutoModel.from_pretrained(stages[3], trust_remote_code=True, dtype=torch.float32).eval()
    pixels = torch.zeros(1, model.config.num_frames, 3, 64, 64)
    expert_clips, _ = pooled_clips(model, pixels, [(0, 0, 0)], 2, 4, expert_tokens=True)
    assert expert_clips.shape[-1] == model.config.expert_config.hidden_size  # the expert's width, not the tower's
    tubelet_model = with_visual_tokens(model, expert_token_layout="tubelets")
    tubelet_clips, _ = pooled_clips(tubelet_model, pixels, [(0, 0, 0)], 2, 4, expert_tokens=True)
    assert tubelet_clips.shape == (1, 1, 4, model.config.expert_config.hidden_size)  # one token per cell
    with pytest.raises(SystemExit):
        probe(["--model", str(stages[3]), "--data", str(micro_data), "--train-videos", "6", "--test-videos", "1"])


def test_parse_letter_and_named_option():
    from eval.evaluate import named_option, parse_letter

    options = ["up", "left", "down", "right"]
    assert (parse_letter("left (B)"), parse_letter("(C) down"), parse_letter("B) left"), parse_letter("left")) == \
        (1, 2, 1, None)
    assert named_option("left (B)", options) == 1
    assert named_option("left (C)", options) == 1  # the text decides, whatever the letter says
    assert named_option("(D) right.", options) == 3
    assert named_option("sideways (B)", options) is None


def test_lmms_eval_scorer_reads_the_first_standalone_letter():
    from eval.evaluate import lmms_eval_mvbench_score

    pytest.importorskip("lmms_eval.tasks.mvbench.utils")
    rows = [{"answer": 2, "response": "grows (C)"}, {"answer": 2, "response": "a red circle appears (C)"},
            {"answer": 0, "response": "a red circle appears (C)"}, {"answer": 1, "response": "left"}]
    assert lmms_eval_mvbench_score(rows) == {"accuracy": 0.5, "questions": 4}  # the article "a" reads as (A)
    # as the plug-in hands them over (letter first), the letter the model chose counts
    assert lmms_eval_mvbench_score(rows, as_plugin=True) == {"accuracy": 0.5, "questions": 4}
    assert [lmms_eval_mvbench_score([row], as_plugin=True)["accuracy"] for row in rows] == [1.0, 1.0, 0.0, 0.0]


def test_evaluate_writes_summary_details_and_plots(stages, micro_data, tmp_path):
    from eval.evaluate import main as evaluate

    evaluate(["--model", str(stages[3]), "--data", str(micro_data), "--split", "test", "--output", str(tmp_path),
              "--dtype", "float32", "--batch-size", "4"])
    summary = json.loads((tmp_path / "test_summary.json").read_text())
    questions = json.loads((tmp_path / "test_details.json").read_text())["questions"]
    assert len(questions) == summary["overall"]["questions"] > 0
    assert summary["unseen"]["questions"] == sum(q["unseen"] for q in questions) > 0
    held_out = [q for q in questions if q["held_out_answer"]]
    assert all(q["unseen"] for q in held_out)
    assert sum(score["questions"] for score in summary["held_out_answers"].values()) == len(held_out)
    assert summary["overall"]["accuracy"] == sum(q["correct"] for q in questions) / len(questions)
    assert summary["lmms_eval_mvbench_scorer"]["questions"] == len(questions)
    assert summary["lmms_eval_mvbench_scorer_plugin"]["questions"] == len(questions)
    named = summary["named_option"]["overall"]["accuracy"]
    assert named == sum(q["named_correct"] for q in questions) / len(questions)
    assert summary["videos"] == 3 and 0 < summary["visual_token_ratio"] < 1
    for name in ("tokens_vs_events.png", "accuracy_per_task.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    scores = summary["caption_sentences"]
    assert scores["all"]["truth_sentences"] == sum(v["truth_sentences"] for k, v in scores.items() if k != "all")

    oracle = tmp_path / "oracle"  # the LLM reads the ground-truth captions: they come back as the clip captions
    evaluate(["--model", str(stages[3]), "--data", str(micro_data), "--split", "test", "--output", str(oracle),
              "--dtype", "float32", "--batch-size", "4", "--ground-truth-captions", "--prompt", "frames",
              "--question-format", "lmms-mvbench"])
    summary = json.loads((oracle / "test_summary.json").read_text())
    assert summary["ground_truth_captions"] is True and summary["exact_clip_captions"] == 1.0
    assert summary["prompt"] == "frames" and summary["overall"]["questions"] == len(questions)
    assert summary["question_format"] == "lmms-mvbench"
    assert summary["caption_sentences"]["all"]["recall"] == 1.0
    assert all(score["recall"] in (1.0, None) for score in summary["caption_event_kinds"].values())
    assert summary["spearman_events_vs_caption_events"] == pytest.approx(1.0)  # true captions state every event
    assert summary["option_likelihood"] is None


def test_option_log_likelihoods_are_each_full_answers_log_probability(stages, micro_data, tmp_path):
    from eval.evaluate import main as evaluate, option_log_likelihoods
    from synthvid.questions import format_answer
    from train.data import chat_example, read_split, video_prefix

    model = AutoModel.from_pretrained(stages[3], trust_remote_code=True, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(stages[3], trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(stages[3], trust_remote_code=True)
    record = read_split(micro_data, "test")[0]
    question = record["questions"][0]
    values, patches = processor.load_video(str(micro_data / record["video"]))
    prompt = video_prefix("video", len(patches)) + "Which?"
    captions = model.caption_clips(values, [patches], 3)
    for space in ("", " "):  # answers as trained: unspaced, or spaced (`train.run --spaced-answers`)
        scores = option_log_likelihoods(model, tokenizer, model.get_image_features(values), patches, prompt, question,
                                        captions, spaced=space == " ")
        for index, option in enumerate(question["options"]):  # one unpadded row at a time, through the loss
            answer = space + format_answer({**question, "answer": index, "answer_text": option})
            ids, labels = chat_example(tokenizer, model.config.system_message, prompt, answer)
            with torch.no_grad():
                loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]), pixel_values=values,
                             num_patches_list=[patches], data_flag=3, caption_ids=captions).loss
            answer_tokens = sum(label != -100 for label in labels)
            assert scores[index] == pytest.approx(-loss.item() * answer_tokens, rel=1e-4, abs=1e-3)
    with pytest.raises(SystemExit):  # the space changes only the likelihoods
        evaluate(["--model", str(stages[3]), "--data", str(micro_data), "--split", "test", "--output", str(tmp_path),
                  "--spaced-answers"])

    evaluate(["--model", str(stages[3]), "--data", str(micro_data), "--split", "test", "--output", str(tmp_path),
              "--dtype", "float32", "--batch-size", "4", "--option-likelihood", "--num-beams", "2"])
    summary = json.loads((tmp_path / "test_summary.json").read_text())
    assert summary["num_beams"] == 2
    questions = json.loads((tmp_path / "test_details.json").read_text())["questions"]
    likelihood = summary["option_likelihood"]["overall"]
    assert likelihood["accuracy"] == sum(q["likelihood_correct"] for q in questions) / len(questions)
    assert all(q["likelihood_choice"] in range(4) for q in questions)


def test_spearman_is_nan_for_a_constant_side():
    import math

    from eval.captions import spearman

    rho, p_value = spearman([0, 1, 2, 3], [4, 6, 9, 20])
    assert rho == pytest.approx(1.0) and p_value < 0.1
    assert all(math.isnan(v) for v in spearman([0, 1, 2], [5, 5, 5]) + spearman([1, 1, 1], [0, 1, 2]))


def test_event_kind_scores_ignore_which_object_did_it():
    from eval.captions import event_kind_scores

    scores = event_kind_scores(["a red circle. the blue square grows. the red circle moves up.", "an empty scene."],
                               ["a red circle. the red circle grows.", "an empty scene."])
    assert scores["grow"] == {"precision": 1.0, "recall": 1.0, "generated_sentences": 1, "truth_sentences": 1}
    assert scores["move"]["precision"] == 0.0 and scores["move"]["recall"] is None
    assert scores["objects"]["recall"] == scores["empty"]["recall"] == 1.0


def test_stage_three_redraws_option_order_per_read(micro_data):
    from transformers import AutoTokenizer

    from train.data import StageDataset, read_split

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    dataset = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0)
    reads = [tokenizer.decode(dataset[0]["input_ids"]) for _ in range(6)]
    assert len(set(reads)) > 1  # question and option order change between epochs
    item = dataset[0]
    answers = tokenizer.decode([label for label in item["labels"] if label != -100])
    assert re.search(r"\w \([A-D]\)", answers)  # answers: the option's text, then its letter
    again = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0)
    assert [tokenizer.decode(again[0]["input_ids"]) for _ in range(6)] == reads  # deterministic from the seed


def test_dataloader_workers_draw_examples_from_streams_of_their_own(micro_data):
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    from train.data import StageDataset, read_split

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)

    def reads(seed):
        dataset = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0)
        # two workers take turns on the same conversation: reads 2k and 2k + 1 come from different workers
        loader = DataLoader(dataset, batch_size=None, sampler=[0] * 8, num_workers=2,
                            generator=torch.Generator().manual_seed(seed))
        return [tokenizer.decode(item["input_ids"]) for item in loader]

    first = reads(0)
    assert any(first[k] != first[k + 1] for k in range(0, 8, 2))  # forked workers would repeat each other's draws
    assert reads(0) == first  # deterministic from the loader's seed
    assert reads(1) != first


def test_stage_three_lookup_fraction_appends_one_lookup_turn(micro_data):
    from transformers import AutoTokenizer

    from train.data import StageDataset, read_split

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    plain, with_lookup = (StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0, lookup_fraction=f)
                          for f in (0.0, 1.0))
    assert "Which option says" not in tokenizer.decode(plain[0]["input_ids"])
    text = tokenizer.decode(with_lookup[0]["input_ids"])
    assert text.count("Which option says") == 1
    assert text.index("Which option says") > text.rindex("Answer with the option's letter.")  # the last turn


def test_focus_tasks_keep_the_first_task_a_video_has(micro_data):
    from transformers import AutoTokenizer

    from train.data import StageDataset, focused_questions, read_split

    questions = [{"task": "counting"}, {"task": "direction"}, {"task": "color"}, {"task": "direction"}]
    assert focused_questions(questions, ("direction", "counting")) == [questions[1], questions[3]]
    assert focused_questions(questions[:1], ("direction", "counting")) == questions[:1]
    assert focused_questions(questions[2:3], ("direction", "counting")) == []
    assert focused_questions(questions) == questions
    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    focus = ("direction", "counting")
    dataset = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0, questions_per_example=1,
                           focus_tasks=focus)
    expected = [(index, question["task"]) for index, record in enumerate(records)
                for question in focused_questions(record["questions"], focus)]
    assert sorted((video, content[0]["task"]) for video, content in dataset.items) == sorted(expected)
    assert {task for _, task in expected} <= set(focus)
    only = StageDataset(records, 3, tokenizer, "system", seed=0, focus_tasks=("temporal_localization",))
    assert len(only) == sum(any(q["task"] == "temporal_localization" for q in r["questions"]) for r in records)
    lookups = StageDataset(records, "text", tokenizer, "system", seed=0, focus_tasks=focus)
    assert sorted((video, question["task"]) for video, question in lookups.items) == sorted(expected)
    for stage, tasks, match in ((3, ("direction", "dancing"), "unknown|takes tasks"), (1, ("direction",), "stage 3")):
        with pytest.raises(ValueError, match=match):
            StageDataset(records, stage, tokenizer, "system", focus_tasks=tasks)


def test_focus_tasks_option_reads_a_comma_separated_list():
    from train.run import comma_separated

    assert comma_separated("temporal_localization,order,counting") == ("temporal_localization", "order", "counting")
    assert comma_separated("direction,") == ("direction",) and comma_separated("") == ()


def test_task_repeats_ask_a_task_again_in_conversations_of_its_own(micro_data):
    from collections import Counter

    from transformers import AutoTokenizer

    from train.data import StageDataset, read_split, repeated_questions
    from train.run import task_repeats

    questions = [{"task": "counting", "id": 0}, {"task": "order", "id": 1}, {"task": "color", "id": 2},
                 {"task": "order", "id": 3}, {"task": "state_change", "id": 4}]
    assert repeated_questions(questions, {}) == [questions]
    assert repeated_questions(questions, {"order": 3, "state_change": 2}) == [
        questions, [questions[1], questions[3], questions[4]], [questions[1], questions[3]]]
    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    plain = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0, questions_per_example=2)
    repeats = {"order": 3, "counting": 2}
    repeated = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0, questions_per_example=2,
                            task_repeats=repeats)

    def asked(dataset):
        return Counter((video, question["task"], question["question"], tuple(question["options"]))
                       for video, chunk in dataset.items for question in chunk)

    once, again = asked(plain), asked(repeated)
    assert set(once) == set(again) and all(times == 1 for times in once.values())
    assert all(again[key] == repeats.get(key[1], 1) for key in once)
    for video, chunk in repeated.items:  # no conversation asks one question twice
        assert len({(q["question"], tuple(q["options"])) for q in chunk}) == len(chunk) <= 2
    assert task_repeats("order=3,state_change=2,") == {"order": 3, "state_change": 2}
    for bad in ("order", "order=2.5", "order=0", "=2"):
        with pytest.raises(argparse.ArgumentTypeError):
            task_repeats(bad)
    for stage, bad, match in ((3, {"dancing": 2}, "unknown|tasks of"), (3, {"order": 0}, ">= 1"),
                              (2, {"order": 2}, "stage 3")):
        with pytest.raises(ValueError, match=match):
            StageDataset(records, stage, tokenizer, "system", task_repeats=bad)


def test_rename_word_replaces_whole_words_in_nested_texts_and_nonce_words_tokenize_as_copies():
    from train.data import nested_strings, nonce_words, rename_word

    texts = {"clip_captions": ["a red circle. the red circle turns blue.", "a bored circle."], "answer": 2,
             "options": [{"red": "red square"}, None]}
    assert rename_word(texts, "red", "zaf") == {
        "clip_captions": ["a zaf circle. the zaf circle turns blue.", "a bored circle."], "answer": 2,
        "options": [{"red": "zaf square"}, None]}
    assert nested_strings(texts) == [*texts["clip_captions"], "red square"]
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    words = nonce_words(tokenizer)
    space = tokenizer(" ", add_special_tokens=False)["input_ids"]
    assert len(words) > 100
    for word in words:
        alone = tokenizer(word, add_special_tokens=False)["input_ids"]
        in_caption = tokenizer(f"a {word} circle.", add_special_tokens=False)["input_ids"]
        assert in_caption[1 : 2 + len(alone)] == space + alone


def test_renamed_conversations_call_one_named_word_by_a_nonce_word_everywhere(micro_data):
    from train.data import RENAMEABLE_WORDS, StageDataset, clip_caption_ids, read_split

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    dataset = StageDataset(records, 3, tokenizer, "system", ground_truth_fraction=1.0, seed=0, rename_fraction=1.0,
                           lookup_fraction=0.5, describe_fraction=0.5, clip_describe_fraction=0.5)
    nonce = set(dataset.nonce_words)
    renamed = 0
    for _ in range(5):
        for index in range(len(dataset)):
            video = dataset.items[index][0]
            item = dataset[index]
            truth = [tokenizer.decode(ids).split() for ids in clip_caption_ids(tokenizer, records[video])]
            read = [tokenizer.decode(ids).split() for ids in item["caption_ids"]]
            changed = {(a, b) for old, new in zip(truth, read) for a, b in zip(old, new, strict=True) if a != b}
            if not changed:  # nothing renameable in these captions
                assert not any(re.search(rf"\b{w}\b", " ".join(map(" ".join, truth))) for w in RENAMEABLE_WORDS)
                continue
            ((old, new),) = {(a.strip(".,"), b.strip(".,")) for a, b in changed}
            assert old in RENAMEABLE_WORDS and new in nonce
            conversation = tokenizer.decode(item["input_ids"])
            assert not re.search(rf"\b{old}\b", conversation) and not re.search(rf"\b{old}\b", str(read))
            assert set(re.findall(r"\b[a-z]+\b", conversation)) & nonce <= {new}
            renamed += new in conversation  # the asked-about word is preferred
    assert renamed > 0
    # only conversations on the ground truth are renamed; the option belongs to stage 3
    generated = [clip_caption_ids(tokenizer, record) for record in records]
    expert_only = StageDataset(records, 3, tokenizer, "system", generated, ground_truth_fraction=0.0, seed=0,
                               rename_fraction=1.0)
    assert all(expert_only[i]["caption_ids"] is generated[expert_only.items[i][0]] for i in range(len(expert_only)))
    with pytest.raises(ValueError, match="rename_fraction"):
        StageDataset(records, 1, tokenizer, "system", rename_fraction=0.5)
    with pytest.raises(ValueError, match="rename_fraction"):
        StageDataset(records, 3, tokenizer, "system", rename_fraction=1.5)


def test_letter_binding_turns_supervise_only_the_letter_of_the_option_their_text_names(micro_data):
    from train.data import (IGNORE_INDEX, StageDataset, chat_conversation, question_turn, read_split,
                            sample_qa_turns)

    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    records = read_split(micro_data, "train")
    question = next(q for r in records for q in r["questions"] if q["task"] == "state_change")
    wrong = (question["answer"] + 1) % 4
    user, answer, given = question_turn(question, False, named=wrong)
    assert given == question["options"][wrong] and answer == f"{given} ({'ABCD'[wrong]})"
    ids, labels = chat_conversation(tokenizer, "system", [(user, answer, given)])
    assert ids == chat_conversation(tokenizer, "system", [(user, answer)])[0]  # the same tokens, fewer supervised
    supervised = [token for token, label in zip(ids, labels) if label != IGNORE_INDEX]
    assert tokenizer.decode(supervised) == f" ({'ABCD'[wrong]}){tokenizer.eos_token}"
    with pytest.raises(ValueError, match="prefix of the answer"):
        chat_conversation(tokenizer, "system", [(user, answer, "shrinks then")])
    with pytest.raises(ValueError, match="`named`"):
        question_turn(question, True, named=wrong)
    with pytest.raises(ValueError, match="`named`"):
        question_turn(question, False, named=4)

    # every multiple-choice turn bound: each names a wrong option and supervises its letter alone
    questions = records[0]["questions"]
    turns = sample_qa_turns(questions, random.Random(0), 0.0, letter_binding_fraction=1.0)
    answer_texts = {q["question"]: q["answer_text"] for q in questions}
    assert all(len(turn) == 3 and turn[2] != answer_texts[turn[0].split("\n")[0]] for turn in turns)
    assert all(len(turn) == 2 for turn in sample_qa_turns(questions, random.Random(0), 0.2))
    dataset = StageDataset(records, 3, tokenizer, "system", ground_truth_fraction=1.0, open_fraction=0.0, seed=0,
                           letter_binding_fraction=1.0)
    for index in range(len(dataset)):
        item = dataset[index]
        supervised = tokenizer.decode([t for t, label in zip(item["input_ids"], item["labels"]) if label >= 0])
        answers = supervised.split(tokenizer.eos_token)[:-1]
        assert len(answers) == len(dataset.items[index][1])
        assert all(re.fullmatch(r" \([ABCD]\)", answer) for answer in answers), answers
    with pytest.raises(ValueError, match="letter_binding_fraction"):
        StageDataset(records, 1, tokenizer, "system", letter_binding_fraction=0.5)


def test_spaced_answers_begin_with_the_option_lines_token_of_their_first_word(micro_data):
    from train.data import StageDataset, question_turn, read_split

    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    records = read_split(micro_data, "train")
    question = next(q for r in records for q in r["questions"] if q["task"] == "state_change")
    text = question["answer_text"]
    user, answer = question_turn(question, False, spaced=True)
    assert answer == f" {text} ({'ABCD'[question['answer']]})"
    first = tokenizer(answer, add_special_tokens=False)["input_ids"][0]
    in_options = tokenizer(user, add_special_tokens=False)["input_ids"]
    assert first in in_options  # the option line's token of the word
    assert tokenizer(answer.lstrip(), add_special_tokens=False)["input_ids"][0] not in in_options
    wrong = (question["answer"] + 1) % 4
    _, bound, given = question_turn(question, False, named=wrong, spaced=True)
    assert bound.startswith(given) and given == " " + question["options"][wrong]
    assert not question_turn(question, True, spaced=True)[1].startswith(" ")  # open answers keep their form
    dataset = StageDataset(records, 3, tokenizer, "system", ground_truth_fraction=1.0, open_fraction=0.0, seed=0,
                           spaced_answers=True)
    item = dataset[0]
    supervised = tokenizer.decode([t for t, label in zip(item["input_ids"], item["labels"]) if label >= 0])
    assert all(answer.startswith(" ") for answer in supervised.split(tokenizer.eos_token)[:-1])
    with pytest.raises(ValueError, match="spaced_answers"):
        StageDataset(records, 1, tokenizer, "system", spaced_answers=True)


def test_longest_input_bounds_every_drawn_conversation_and_stops_a_run_that_cannot_fit(micro_data):
    from transformers import AutoTokenizer

    from train.data import StageDataset, clip_caption_ids, read_split
    from train.run import check_context

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    model = AutoModel.from_pretrained(REPO_ROOT, trust_remote_code=True)
    config = model.config
    placeholders = (config.image_token_id, config.video_token_id)
    pool_tokens = model.pool_tokens_per_tile() * config.num_frames
    generated = [[ids + ids[:5] for ids in clip_caption_ids(tokenizer, record)] for record in records]  # longer

    def drawn_length(item):
        ids = item["input_ids"]
        return len(ids) - sum(ids.count(i) for i in placeholders) + pool_tokens + sum(map(len, item["caption_ids"]))

    def dataset(**fractions):
        return StageDataset(records, 3, tokenizer, config.system_message, generated, seed=0, questions_per_example=2,
                            video_token_id=config.video_token_id, num_frames=config.num_frames, **fractions)

    mixed = dataset(ground_truth_fraction=0.5, open_fraction=0.5, lookup_fraction=0.5, frame_prompt_fraction=0.5,
                    describe_fraction=0.5, mvbench_prompt_fraction=0.5, clip_describe_fraction=0.5,
                    letter_binding_fraction=0.5, spaced_answers=True)
    bound, _ = mixed.longest_input(pool_tokens, placeholders)
    assert max(drawn_length(mixed[i]) for _ in range(20) for i in range(len(mixed))) <= bound
    renamed = dataset(ground_truth_fraction=1.0, open_fraction=0.5, lookup_fraction=0.5, describe_fraction=0.5,
                      clip_describe_fraction=0.5, rename_fraction=1.0)  # nonce words are longer than the names
    renamed_bound = renamed.longest_input(pool_tokens, placeholders)[0]
    assert max(drawn_length(renamed[i]) for _ in range(20) for i in range(len(renamed))) <= renamed_bound
    # every optional part always drawn, the generated captions only: each draw is the longest one
    forced = dataset(ground_truth_fraction=0.0, open_fraction=0.0, frame_prompt_fraction=1.0, describe_fraction=1.0,
                     mvbench_prompt_fraction=1.0)
    longest, item = forced.longest_input(pool_tokens, placeholders)
    assert longest == max(drawn_length(forced[i]) for i in range(len(forced))) == drawn_length(forced[item])
    assert longest <= bound
    open_only = dataset(ground_truth_fraction=1.0, open_fraction=1.0)  # `<video>`, open questions, ground truth
    assert open_only.longest_input(pool_tokens, placeholders)[0] == max(map(drawn_length, open_only))

    config.text_config.max_position_embeddings = longest
    check_context(forced, model)  # fits exactly
    config.text_config.max_position_embeddings = longest - 1
    with pytest.raises(ValueError, match=f"example {item} can reach {longest} LLM input tokens .*with the "
                                         "expert's captions"):
        check_context(forced, model)
    assert forced.caption_sources() == ["expert"] and mixed.caption_sources() == ["ground truth", "expert"]
    assert open_only.caption_sources() == ["ground truth"]
    with pytest.raises(ValueError, match="stage-3 conversations"):
        StageDataset(records, 1, tokenizer, "system").longest_input(pool_tokens, placeholders)


def test_stage_three_run_checks_the_context_before_its_media_setup(stages, micro_data, tmp_path, monkeypatch):
    import shutil

    import train.run as run_module

    init = tmp_path / "init"
    shutil.copytree(stages[2], init, ignore=shutil.ignore_patterns("trainer"))
    config = json.loads((init / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 64  # shorter than any conversation
    (init / "config.json").write_text(json.dumps(config))

    def setup(*args, **kwargs):
        raise RuntimeError("media setup reached")

    monkeypatch.setattr(run_module, "load_pixel_cache", setup)
    args = ["--data", str(micro_data), "--stage", "3", "--init", str(init), "--output", str(tmp_path / "out"),
            "--max-steps", "2", "--threads", "2"]
    with pytest.raises(ValueError, match="with the ground-truth captions.*more than the LLM context of 64"):
        run_module.main([*args, "--ground-truth-fraction", "0.5"])
    # no ground-truth caption is drawn: only the expert's captions, known after the setup, decide
    with pytest.raises(RuntimeError, match="media setup reached"):
        run_module.main([*args, "--ground-truth-fraction", "0.0"])


def test_stage_three_frame_prompt_and_description_turn(stages, micro_data):
    from transformers import AutoTokenizer

    from train.data import LangDCCollator, StageDataset, read_split, video_prefix

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(stages[3])  # the micro model's own vocabulary
    model = _load(stages[3])
    frames = model.config.num_frames
    dataset = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0, frame_prompt_fraction=1.0,
                           num_frames=frames, describe_fraction=1.0)
    item = dataset[0]
    text = tokenizer.decode(item["input_ids"])
    assert "<video>" not in text and text.count("<image>") == frames
    assert video_prefix("frames", frames) + "Describe the video." in text  # the first user turn
    answers = tokenizer.decode([label for label in item["labels"] if label != -100])
    assert answers.startswith(records[0]["video_caption"])  # described first, then the questions
    assert answers.count("<|im_end|>") == len(records[0]["questions"]) + 1
    plain = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0)
    assert tokenizer.decode(plain[0]["input_ids"]).count("<video>") == 1  # the default keeps one <video>

    pixels = torch.randn(len(records), frames, 3, 64, 64, dtype=torch.float16)
    batch = LangDCCollator(pixels, tokenizer.pad_token_id)([item, plain[1]])
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)  # both placeholder forms in one batch

    for kwargs, message in (({"frame_prompt_fraction": 0.5}, "needs `num_frames`"),
                            ({"describe_fraction": 1.5}, r"`describe_fraction` must be in \[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            StageDataset(records, 3, tokenizer, "system", **kwargs)
    with pytest.raises(ValueError, match="belong to stage 3"):
        StageDataset(records, 1, tokenizer, "system", describe_fraction=0.5)
    with pytest.raises(ValueError, match="`prompt` must be one of"):
        video_prefix("clips", frames)


def test_multiple_choice_prompt_is_ours_or_lmms_evals_mvbench_prompt():
    from synthvid import format_question
    from train.data import MC_SUFFIX, MVBENCH_POST_PROMPT, multiple_choice_prompt

    mvbench = pytest.importorskip("lmms_eval.tasks.mvbench.utils")
    question = {"task": "direction", "question": "which way does the red circle move?",
                "options": ["up", "left", "down", "right"], "answer": 1, "answer_text": "left"}
    assert multiple_choice_prompt(question) == f"{format_question(question)}\n{MC_SUFFIX}"
    doc = {"question": question["question"], "candidates": question["options"]}
    default_post_prompt = {"post_prompt": MVBENCH_POST_PROMPT}  # lmms-eval's MVBench default (test_lmms_eval_plugin)
    assert multiple_choice_prompt(question, "lmms-mvbench") == mvbench.mvbench_doc_to_text(doc, default_post_prompt)
    with pytest.raises(ValueError, match="`question_format` must be one of"):
        multiple_choice_prompt(question, "mvbench")
    with pytest.raises(ValueError):
        multiple_choice_prompt({**question, "options": ["up"]}, "lmms-mvbench")


def test_stage_three_clip_describe_turn_answers_with_the_named_clip_caption(micro_data):
    from transformers import AutoTokenizer

    from synthvid.questions import TIME_PHRASES
    from train.data import StageDataset, clip_describe_turns, read_split

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    turns = clip_describe_turns(records[0])
    assert [user for user, _ in turns] == [f"Describe what happens {phrase}." for phrase in TIME_PHRASES]
    assert [answer for _, answer in turns] == records[0]["clip_captions"]
    assert clip_describe_turns({**records[0], "clip_captions": records[0]["clip_captions"][:3]}) == []
    dataset = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0, clip_describe_fraction=1.0)
    named = set()
    for _ in range(12):
        item = dataset[0]
        text = tokenizer.decode(item["input_ids"])
        assert text.count("Describe what happens") == 1
        index = next(i for i, phrase in enumerate(TIME_PHRASES) if f"Describe what happens {phrase}." in text)
        answers = tokenizer.decode([label for label in item["labels"] if label != -100])
        assert answers.startswith(records[0]["clip_captions"][index])  # the first answer: the named clip
        named.add(index)
    assert len(named) > 1  # a random clip per read
    plain = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0)
    assert "Describe what happens" not in tokenizer.decode(plain[0]["input_ids"])
    with pytest.raises(ValueError, match="belong to stage 3"):
        StageDataset(records, 1, tokenizer, "system", clip_describe_fraction=0.5)


def test_stage_three_mvbench_prompt_fraction_rewrites_every_multiple_choice_turn(stages, micro_data):
    from transformers import AutoTokenizer

    from train.data import MVBENCH_POST_PROMPT, StageDataset, read_split

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(stages[3])
    dataset = StageDataset(records, 3, tokenizer, "system", open_fraction=0.0, seed=0, mvbench_prompt_fraction=1.0)
    item = dataset[0]
    text = tokenizer.decode(item["input_ids"])
    questions = len(records[0]["questions"])
    assert text.count("<video>\nQuestion:") == 1  # the placeholder opens the first question
    assert text.count("Question:") == text.count(MVBENCH_POST_PROMPT) == questions
    assert "Answer with the option's letter." not in text
    answers = tokenizer.decode([label for label in item["labels"] if label != -100])
    assert len(re.findall(r" \([A-D]\)<\|im_end\|>", answers)) == questions  # answers keep "text (letter)"
    with pytest.raises(ValueError, match="belong to stage 3"):
        StageDataset(records, 1, tokenizer, "system", mvbench_prompt_fraction=0.5)


def test_text_stage_caption_qa_reads_the_captions_as_text(micro_data):
    from transformers import AutoTokenizer

    from train.data import StageDataset, clip_caption_ids, read_split, splice_captions

    records = read_split(micro_data, "train")
    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT)
    video_id = tokenizer.convert_tokens_to_ids("<video>")
    dataset = StageDataset(records, "text", tokenizer, "system", open_fraction=0.0, seed=0, caption_qa_fraction=1.0,
                           video_token_id=video_id)
    item = dataset[0]
    assert item["video"] is None and item["caption_ids"] is None  # text only: no media for the collator
    captions = [t for clip in clip_caption_ids(tokenizer, records[0]) for t in clip]
    ids, labels = item["input_ids"], item["labels"]
    at = next(i for i in range(len(ids)) if ids[i : i + len(captions)] == captions)
    assert video_id not in ids and set(labels[at : at + len(captions)]) == {-100}  # read, not written
    answers = tokenizer.decode([label for label in labels if label != -100])
    assert answers.count("<|im_end|>") == len(records[0]["questions"])  # the video's whole conversation
    lookups = StageDataset(records, "text", tokenizer, "system", seed=0)  # the default: lookups only
    assert "Which option says" in tokenizer.decode(lookups[0]["input_ids"]) and len(lookups[0]["input_ids"]) < len(ids)
    with pytest.raises(ValueError, match="one <video>"):
        splice_captions([1, 2], [1, 2], video_id, [[3]])
    with pytest.raises(ValueError, match="video_token_id"):
        StageDataset(records, "text", tokenizer, "system", caption_qa_fraction=0.5)
    with pytest.raises(ValueError, match="open_fraction"):
        StageDataset(records, 3, tokenizer, "system", open_fraction=1.5)


def test_text_qa_probe_trains_and_reports(stages, micro_data, tmp_path):
    from train.text_qa_probe import main as probe

    report = probe(["--data", str(micro_data), "--tokenizer", str(stages[1]), "--spec",
                    str(REPO_ROOT / "tools" / "configs" / "micro.json"), "--steps", "4", "--eval-every", "2",
                    "--batch-size", "2", "--output", str(tmp_path), "--threads", "1"])
    written = json.loads((tmp_path / "text_qa_probe.json").read_text())
    assert [entry["step"] for entry in written["log"]] == [2, 4] == [entry["step"] for entry in report["log"]]
    last = written["log"][-1]
    assert last["questions"] > 0
    for key in ("accuracy", "letter_given_text", "generated_letter", "generated_named"):
        assert 0.0 <= last[key] <= 1.0, key
    from synthvid import TASKS

    assert set(last["per_task"]) <= set(TASKS)
    continued = probe(["--data", str(micro_data), "--tokenizer", str(stages["text"]), "--init", str(stages["text"]),
                       "--steps", "2", "--eval-every", "2", "--batch-size", "2", "--output", str(tmp_path / "init"),
                       "--threads", "1"])
    assert continued["parameters"] == _load(stages["text"]).language_model.num_parameters()
    with pytest.raises(ValueError, match="exactly one"):
        probe(["--data", str(micro_data), "--tokenizer", str(stages[1]), "--output", str(tmp_path)])


def test_cached_vision_features_batch_like_pixels(stages, micro_data):
    from train.data import LangDCCollator, encode_videos

    model = _load(stages[2])
    pixels = torch.randn(3, 8, 3, 64, 64, dtype=torch.float16)
    features = encode_videos(model, pixels, batch_videos=2)
    assert features.shape == (3, 8, model.config.patches_per_tile, model.config.vision_config.hidden_size)
    torch.testing.assert_close(features[2].float(), model.get_image_features(pixels[2].float()), atol=2e-3, rtol=2e-3)
    items = [{"video": v, "input_ids": None, "labels": None, "caption_ids": [[5]] * 2} for v in (2, 0)]
    batch = LangDCCollator(None, 0, features)(items)
    assert "pixel_values" not in batch and torch.equal(batch["image_features"], torch.cat([features[2], features[0]]).float())
    from train.run import generate_captions

    assert generate_captions(model, features, batch_videos=2, features=True) == generate_captions(
        model, pixels, batch_videos=2)  # stage 3 captions every video from either
    with pytest.raises(ValueError, match="frozen vision tower"):
        from train.run import main as run

        run(["--data", str(micro_data), "--stage", "2", "--init", str(stages[1]), "--output", "unused",
             "--cache-vision-features"])


def test_text_stage_log_counts_the_text_only_scenes(stages):
    log = json.loads((stages["text"] / "train_log.json").read_text())
    assert log["text_scenes"] == 4 and log["videos"] == 6


def test_lookup_accuracy_scores_a_stage_checkpoint(stages, micro_data, tmp_path):
    from eval.lookup import main as lookup

    result = lookup(["--model", str(stages["text"]), "--data", str(micro_data), "--split", "train", "--limit", "10",
                     "--output", str(tmp_path)])
    assert result["lookups"] == 10 and 0.0 <= result["accuracy"] <= 1.0
    assert json.loads((tmp_path / "lookup_train.json").read_text())["accuracy"] == result["accuracy"]
    assert sum(group["lookups"] for group in result["per_task"].values()) == 10
    split = [result[key]["lookups"] for key in ("prefix_options", "other_options") if result[key] is not None]
    assert sum(split) == 10


def test_prefix_options_are_whole_word_prefixes_of_another_option():
    from eval.lookup import is_prefix_option

    options = ["grows", "grows then shrinks", "shrinks", "red"]
    assert is_prefix_option("grows", options)
    assert not is_prefix_option("grows then shrinks", options)
    assert not is_prefix_option("shrinks", options)  # "grows then shrinks" ends with it, does not begin with it
    assert not is_prefix_option("red", ["red", "reddish"])  # a word-for-word prefix only


def test_clip_describe_probe_scores_every_clip_of_a_stage_checkpoint(stages, micro_data, tmp_path):
    from eval.clip_describe import closest_clip, main as clip_describe

    assert closest_clip("a red circle.", ["a blue square.", "a red circle.", "a red circle moves up."]) == 1
    result = clip_describe(["--model", str(stages[3]), "--data", str(micro_data), "--split", "train",
                            "--max-videos", "2", "--output", str(tmp_path)])
    assert result["answers"] == 4 * result["videos"] > 0
    assert 0.0 <= result["exact"] <= 1.0 and 0.0 <= result["named_clip_closest"] <= 1.0
    assert json.loads((tmp_path / "clip_describe_train.json").read_text())["answers"] == result["answers"]
    with pytest.raises(ValueError, match="No 4-clip video"):
        clip_describe(["--model", str(stages[3]), "--data", str(micro_data), "--split", "train", "--max-videos", "0"])


def test_lookup_letter_logits_do_not_depend_on_padding_or_wrapper(stages, micro_data):
    # LangDC's forward left-pads its spliced batch; lookups of different lengths must still be read at their letter
    from transformers import AutoTokenizer

    from eval.lookup import letter_logits, lookup_prompts
    from train.data import read_split

    model = _load(stages["text"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(stages["text"])
    prompts = lookup_prompts(read_split(micro_data, "train"), tokenizer, model.config.system_message, limit=12)
    assert len({len(p.ids) for p in prompts}) > 1  # the batch needs padding
    alone = letter_logits(model, tokenizer, prompts, batch_size=1)
    torch.testing.assert_close(letter_logits(model, tokenizer, prompts, batch_size=12), alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(letter_logits(model.language_model, tokenizer, prompts, batch_size=12), alone,
                               atol=1e-4, rtol=1e-4)


def test_report_lists_stage_folders_in_the_order_they_finished(stages, tmp_path):
    import os
    import shutil

    from eval.report import training_table

    for order, stage in enumerate(("text", 0)):  # written out of recipe order on purpose
        folder = tmp_path / f"stage_{stage}"
        folder.mkdir()
        shutil.copy(stages[stage] / "train_log.json", folder / "train_log.json")
        os.utime(folder / "train_log.json", (1000 + order, 1000 + order))
    table = training_table(tmp_path).splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| stage_text", "| stage_0", "| all"]
    assert "6 + 4 text-only" in table[2]  # the text stage's extra scenes
    total = sum(json.loads((stages[s] / "train_log.json").read_text())["wall_seconds"] for s in ("text", 0)) / 60
    assert f"{total:.1f} min" in table[-1]


def test_text_qa_scores_a_stage_checkpoint_on_spliced_captions(stages, micro_data, tmp_path):
    from eval.text_qa import main as text_qa

    result = text_qa(["--model", str(stages["text"]), "--data", str(micro_data), "--split", "train", "--limit", "6",
                      "--output", str(tmp_path)])
    assert result["questions"] == 6 and 0.0 <= result["generated_letter"] <= 1.0
    assert json.loads((tmp_path / "text_qa_train.json").read_text())["generated_named"] == result["generated_named"]


def test_worker_processes_decode_and_render_the_same_caches_as_one_process(stages, micro_data):
    from functools import partial

    from transformers import AutoConfig, AutoProcessor

    from train.data import _decode_video, load_pixel_cache, parallel_map, read_split
    from train.vision import _attribute_fractions, load_attribute_cache

    config = AutoConfig.from_pretrained(stages[3], trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(stages[3], trust_remote_code=True)
    records = read_split(micro_data, "train")
    # the stages fixture ran with the default --workers 2: two DataLoader worker processes filled these caches
    pixels = load_pixel_cache(micro_data, "train", processor, config.num_frames)
    decode = partial(_decode_video, processor=processor, num_frames=config.num_frames)
    assert torch.equal(pixels, torch.stack(parallel_map(decode, [str(micro_data / r["video"]) for r in records])))
    vision = config.vision_config
    colors, shapes = load_attribute_cache(micro_data, "train", records, vision.patch_size, vision.image_size)
    render = partial(_attribute_fractions, patch_size=vision.patch_size, image_size=vision.image_size)
    serial = parallel_map(render, records)
    assert torch.equal(colors, torch.stack([c for c, _ in serial]))
    assert torch.equal(shapes, torch.stack([s for _, s in serial]))


def test_embedding_similarity_per_word_group(stages, tmp_path):
    from transformers import AutoTokenizer

    from eval.embeddings import WORD_GROUPS, group_similarity, main, mean_pairwise_cosine

    assert mean_pairwise_cosine(torch.ones(3, 4)) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.eye(4)) == pytest.approx(0.0)
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    model = _load(stages[3]).eval()
    tokenizer = AutoTokenizer.from_pretrained(stages[3])
    scores = group_similarity(model, tokenizer, WORD_GROUPS["directions"])
    assert set(scores) == {"expert", "soft_tokens", "llm"} and all(-1.0 <= v <= 1.0 for v in scores.values())
    with pytest.raises(ValueError, match="at least two words"):
        group_similarity(model, tokenizer, ("up",))
    model.config.soft_token_layer = 1
    with pytest.raises(ValueError, match="soft_token_layer=0"):
        group_similarity(model, tokenizer, WORD_GROUPS["colors"])
    result = main(["--model", str(stages[3]), "--output", str(tmp_path)])
    assert json.loads((tmp_path / "embeddings.json").read_text())["shapes"] == result["shapes"]


def test_untie_expert_embeddings_copies_them_and_survives_reload(stages, micro_data, tmp_path):
    from train.run import main as run
    from train.stages import untie_expert_embeddings

    model = _load(stages[2])
    before = model.expert.get_input_embeddings().weight.detach().clone()
    untie_expert_embeddings(model)
    output = model.expert.get_output_embeddings().weight
    assert output is not model.expert.get_input_embeddings().weight and torch.equal(output, before)
    with torch.no_grad():
        output.mul_(2.0)
    model.save_pretrained(tmp_path / "untied")
    again = _load(tmp_path / "untied")
    assert not again.config.expert_config.tie_word_embeddings
    assert torch.equal(again.expert.get_input_embeddings().weight, before)
    assert torch.equal(again.expert.get_output_embeddings().weight, 2.0 * before)
    with pytest.raises(ValueError, match="tied input and output"):
        untie_expert_embeddings(again)
    with pytest.raises(ValueError, match="belongs to stage 2"):
        run(["--data", str(micro_data), "--stage", "3", "--init", str(stages[2]), "--output", str(tmp_path / "s3"),
             "--max-steps", "1", "--untie-expert-embeddings"])


def test_spread_expert_embeddings_scales_apart_collapsed_words(stages):
    from train.stages import mean_pairwise_cosine, spread_expert_embeddings, untie_expert_embeddings

    model = _load(stages[2])
    with pytest.raises(ValueError, match="untied"):
        spread_expert_embeddings(model, {"g": [5, 6]}, 0.4)
    untie_expert_embeddings(model)
    weight, output = model.expert.get_input_embeddings().weight, model.expert.get_output_embeddings().weight
    logits_before = output.detach().clone()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a collapsed group (cosine near 1) and a spread one (orthogonal rows)
        weight[[5, 6, 7]] = torch.randn(weight.shape[1], generator=generator) + 0.05 * torch.randn(
            3, weight.shape[1], generator=generator)
        weight[[8, 9]] = 3.0 * torch.eye(2, weight.shape[1])
    collapsed_mean, spread_rows = weight[[5, 6, 7]].mean(0).detach().clone(), weight[[8, 9]].detach().clone()
    report = spread_expert_embeddings(model, {"collapsed": [5, 6, 7], "spread": [8, 9]}, 0.3)
    assert report["collapsed"]["cosine_before"] > 0.99 and report["collapsed"]["scale"] > 1.0
    assert mean_pairwise_cosine(weight[[5, 6, 7]]) == pytest.approx(0.3, abs=1e-4)
    assert report["collapsed"]["cosine_after"] == pytest.approx(0.3, abs=1e-4)
    torch.testing.assert_close(weight[[5, 6, 7]].mean(0), collapsed_mean)  # the common part is kept
    assert report["spread"] == {"cosine_before": 0.0, "cosine_after": 0.0, "scale": 1.0}
    assert torch.equal(weight[[8, 9]], spread_rows) and torch.equal(output, logits_before)
    for groups, target, match in (({"g": [5, 5]}, 0.3, "distinct"), ({"g": [5]}, 0.3, "at least two"),
                                  ({"g": [5, 10 ** 6]}, 0.3, "below"), ({"g": [5, 6]}, 1.0, r"\(-1, 1\)")):
        with pytest.raises(ValueError, match=match):
            spread_expert_embeddings(model, groups, target)
    with torch.no_grad():
        weight[[10, 11]] = 1.0  # equal rows: no difference to scale
    with pytest.raises(ValueError, match="cannot reach"):
        spread_expert_embeddings(model, {"equal": [10, 11]}, 0.3)


def test_stage3_spreads_the_expert_embeddings_before_captioning(stages, micro_data, tmp_path, monkeypatch):
    import shutil

    from eval.embeddings import group_similarity
    from train.run import main as run
    from train.run import word_token_ids
    from train.stages import untie_expert_embeddings

    tokenizer = AutoTokenizer.from_pretrained(stages[2])
    # the micro tokenizer (320 tokens) splits the directions; its single-token words stand in for them
    groups = {"colors": ("blue", "green", "yellow", "purple"), "shapes": ("square", "triangle")}
    assert word_token_ids(tokenizer, groups) == {
        name: [tokenizer.convert_tokens_to_ids(f"\u0120{word}") for word in words] for name, words in groups.items()}
    with pytest.raises(ValueError, match="'up' of group 'directions' is 3 tokens"):
        word_token_ids(tokenizer, {"directions": ("up", "left")})
    monkeypatch.setattr("train.run.COLLAPSED_WORD_GROUPS", groups)
    model = _load(stages[2])
    untie_expert_embeddings(model)
    shutil.copytree(stages[2], tmp_path / "untied", ignore=shutil.ignore_patterns("trainer"))
    model.save_pretrained(tmp_path / "untied")  # the untied weights and config over stage 2's
    common = ["--data", str(micro_data), "--init", str(tmp_path / "untied"), "--max-steps", "1", "--batch-size",
              "2", "--threads", "2", "--spread-expert-embeddings", "-0.2"]
    with pytest.raises(ValueError, match="belongs to stage 3"):
        run([*common, "--stage", "2", "--output", str(tmp_path / "s2")])
    run([*common, "--stage", "3", "--output", str(tmp_path / "s3"), "--cache-vision-features"])
    before, spread = _load(tmp_path / "untied").eval(), _load(tmp_path / "s3").eval()
    for words in groups.values():  # the expert is frozen in stage 3: the checkpoint keeps the spread rows
        assert group_similarity(before, tokenizer, words)["expert"] > -0.2 + 1e-3
        assert group_similarity(spread, tokenizer, words)["expert"] == pytest.approx(-0.2, abs=1e-4)


def test_freeze_expert_embeddings_keeps_the_soft_tokens_and_trains_the_rest(stages, micro_data, tmp_path):
    from train.run import main as run
    from train.stages import freeze_for_stage

    before = _load(stages[2])
    output = tmp_path / "stage2_frozen_embeddings"
    run(["--data", str(micro_data), "--stage", "2", "--init", str(stages[2]), "--output", str(output),
         "--max-steps", "3", "--batch-size", "2", "--lr", "3e-3", "--warmup", "0", "--threads", "2",
         "--freeze-vision-tower", "--cache-vision-features", "--untie-expert-embeddings",
         "--freeze-expert-embeddings"])
    after = _load(output)
    assert torch.equal(after.expert.get_input_embeddings().weight, before.expert.get_input_embeddings().weight)
    assert not torch.equal(after.expert.get_output_embeddings().weight, before.expert.get_output_embeddings().weight)
    assert not torch.equal(after.expert_projector[0].weight, before.expert_projector[0].weight)
    with pytest.raises(ValueError, match="expert tied"):
        freeze_for_stage(before, 2, freeze_expert_embeddings=True)  # the output layer would freeze too
    with pytest.raises(ValueError, match="got stage 3"):
        freeze_for_stage(after, 3, freeze_expert_embeddings=True)


def test_compare_gives_the_paired_difference_and_its_standard_error(tmp_path, capsys):
    from scipy.stats import sem

    from eval.compare import compare_details, main as compare

    def details(correct):
        return {"questions": [{"video": f"test_{i // 2}", "task": ("color", "order")[i % 2], "answer": i % 4,
                               "unseen": i >= 6, "correct": c} for i, c in enumerate(correct)]}

    a, b = [1, 0, 1, 1, 0, 0, 1, 0], [1, 1, 0, 1, 1, 0, 1, 1]
    result = compare_details(details(a), details(b))
    diffs = [y - x for x, y in zip(a, b)]
    assert result["overall"]["accuracy_a"] == 0.5 and result["overall"]["accuracy_b"] == 0.75
    assert result["overall"]["difference"] == pytest.approx(0.25)
    assert result["overall"]["standard_error"] == pytest.approx(sem(diffs))
    assert (result["overall"]["newly_right"], result["overall"]["newly_wrong"]) == (3, 1)
    assert result["unseen"]["questions"] == 2 and result["seen"]["questions"] == 6
    assert result["per_task"]["order"]["difference"] == pytest.approx(sum(diffs[1::2]) / 4)
    paths = []
    for name, correct in (("a", a), ("b", b)):
        paths.append(tmp_path / name / "eval" / "test_details.json")
        paths[-1].parent.mkdir(parents=True)
        paths[-1].write_text(json.dumps(details(correct)))
    compare([*map(str, paths), "--output", str(tmp_path / "comparison.json")])
    assert "| overall (8) | 50.0% | 75.0% | +25.0 (" in capsys.readouterr().out
    assert json.loads((tmp_path / "comparison.json").read_text()) == result
    other = details(b)
    other["questions"][3]["video"] = "val_9"
    with pytest.raises(ValueError, match="question 3 differs .*not of the same split"):
        compare_details(details(a), other)
    with pytest.raises(ValueError, match="scored 8 and 7 questions"):
        compare_details(details(a), {"questions": other["questions"][:7]})


def test_letter_binding_scores_the_four_letters_after_the_named_options_text(stages, micro_data, tmp_path):
    from eval.letter_binding import bound_answers, main as letter_binding
    from train.data import multiple_choice_prompt, read_split, video_prefix

    records = read_split(micro_data, "test")
    pairs = [(record, question) for record in records for question in record["questions"]]
    # greedy answers that name an option: the right one, or (every third) the next one with the right letter
    rows = [{"video": record["id"], "task": question["task"], "named": (question["answer"] + (i % 3 == 0)) % 4,
             "predicted": question["answer"]} for i, (record, question) in enumerate(pairs)]
    details = tmp_path / "test_details.json"
    details.write_text(json.dumps({"questions": rows}))
    result = letter_binding(["--model", str(stages[3]), "--data", str(micro_data), "--details", str(details),
                             "--dtype", "float32", "--output", str(tmp_path)])
    assert json.loads((tmp_path / "letter_binding_test.json").read_text())["questions"] == len(rows)
    assert result["greedy_disagreed"]["questions"] == sum(row["named"] != row["predicted"] for row in rows)
    likelihoods = torch.tensor([row["letter_log_likelihoods"] for row in result["rows"]])
    named = torch.tensor([row["named"] for row in rows])
    assert result["accuracy"] == pytest.approx((likelihoods.argmax(-1) == named).float().mean().item())
    assert 0 < result["letter_probability"] < 1

    # the first row is `model.score_answers` of the four letters after the named text, on the expert's captions
    model = AutoModel.from_pretrained(stages[3], trust_remote_code=True, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(stages[3])
    processor = AutoProcessor.from_pretrained(stages[3], trust_remote_code=True)
    record, question = pairs[0]
    values, patches = processor.load_video(str(micro_data / record["video"]))
    answers = bound_answers(question, rows[0]["named"])
    assert answers == [f"{question['options'][rows[0]['named']]} ({letter})" for letter in "ABCD"]
    assert bound_answers(question, 0, spaced=True)[0].startswith(" ")
    with torch.no_grad():
        scores = model.score_answers(tokenizer, values, video_prefix("video", len(patches))
                                     + multiple_choice_prompt(question), answers, num_patches_list=patches,
                                     data_flag=3)
    assert result["rows"][0]["letter_log_likelihoods"] == pytest.approx([s.log_likelihood for s in scores], abs=1e-4)

    details.write_text(json.dumps({"questions": rows[1:]}))  # out of order: refused
    with pytest.raises(ValueError, match="in order"):
        letter_binding(["--model", str(stages[3]), "--data", str(micro_data), "--details", str(details)])
    details.write_text(json.dumps({"questions": [{**row, "named": None} for row in rows]}))
    with pytest.raises(ValueError, match="names an option"):
        letter_binding(["--model", str(stages[3]), "--data", str(micro_data), "--details", str(details)])


def test_caption_reader_answers_every_question_from_the_ground_truth_captions(micro_data, tmp_path):
    """The synthvid captions determine every answer (the ceiling of an LLM reading them); a caption that writes a
    held-out pair as a seen one (the expert's error) loses the questions about that object."""
    from eval.caption_reader import (CaptionReading, held_out_pair_mentions, main as reader, read_answer,
                                     read_split_answers)
    from synthvid import TASKS
    from synthvid.dataset import text_only_records
    from train.data import read_split

    records = text_only_records(seed=3, start=0, count=150)
    result = read_split_answers(records)
    assert result["overall"] == {"accuracy": 1.0, "questions": sum(len(r["questions"]) for r in records)}
    assert set(result["per_task"]) == set(TASKS) and result["undetermined"]["accuracy"] == 0.0

    captions = ["a red triangle. the red triangle grows.", "a red triangle. the red triangle turns blue.",
                "a blue triangle. the blue triangle moves left.", "a blue triangle. the blue triangle stops."]
    question = {"task": "state_change", "question": "does the red triangle grow or shrink?",
                "options": ["shrinks", "grows", "grows then shrinks", "shrinks then grows"], "answer": 1}
    assert read_answer(CaptionReading(captions), question) == [1]
    moving = {"task": "temporal_localization", "question": "when does the red triangle start moving?",
              "options": ["at the end", "in the second half", "at the beginning", "in the first half"], "answer": 1}
    assert read_answer(CaptionReading(captions), moving) == [1]  # followed through its colour change
    seen_instead = [caption.replace("triangle", "circle") for caption in captions]
    assert read_answer(CaptionReading(seen_instead), moving) == []

    details = {"videos": {r["id"]: {"captions": r["clip_captions"]} for r in read_split(micro_data, "test")}}
    (tmp_path / "details.json").write_text(json.dumps(details))
    reader(["--data", str(micro_data), "--split", "test", "--details", str(tmp_path / "details.json"),
            "--output", str(tmp_path)])
    result = json.loads((tmp_path / "caption_reader_test_expert.json").read_text())
    assert result["overall"]["accuracy"] == 1.0 and result["held_out_pairs"]["invented"] == 0
    assert result["held_out_pairs"]["written"] == result["held_out_pairs"]["in_truth"]
    record = {"id": "v", "clip_captions": captions}
    # the circles of `seen_instead` are blue in clips 2 and 3: a held-out pair where the truth has a seen one
    assert held_out_pair_mentions([record], {"v": seen_instead}) == {"in_truth": 2, "written": 0, "invented": 2}
    swapped = [captions[1], captions[0], captions[3], captions[2]]
    assert held_out_pair_mentions([record], {"v": swapped}) == {"in_truth": 2, "written": 2, "invented": 0}
    with pytest.raises(ValueError, match="no captions for video"):
        read_split_answers(read_split(micro_data, "test"), {})


def test_align_pool_projector_distils_the_references_pool_tokens_onto_a_new_tower(make_model):
    from tests.conftest import video_pixels
    from tools.export_checkpoint import with_vision_tower_of
    from train.align_pool_projector import align_pool_projector

    reference = make_model(seed=0)
    model = with_vision_tower_of(reference, make_model(seed=1))
    pixels = torch.stack([video_pixels(4, seed=seed) for seed in range(10)])  # [videos, frames, 3, S, S]
    before = {name: value.clone() for name, value in model.state_dict().items()}
    log = align_pool_projector(model, reference, pixels, steps=150, batch_frames=16, lr=3e-3, warmup=0)
    assert log["train_frames"] == 36 and log["held_out_frames"] == 4
    assert log["relative_error_after"] < 0.5 * log["relative_error_before"]
    assert log["losses"][-1]["step"] == 150 and log["losses"][-1]["mse"] < log["losses"][0]["mse"]
    changed = {name.split(".")[0] for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed == {"pool_projector"}
    assert not any(parameter.requires_grad for parameter in model.parameters())
    for kwargs, message in (({"steps": 0}, "at least 1"), ({"held_out": 1.0}, r"\(0, 1\)")):
        with pytest.raises(ValueError, match=message):
            align_pool_projector(model, reference, pixels, **{"steps": 1, **kwargs})
    with pytest.raises(ValueError, match="at least two videos"):
        align_pool_projector(model, reference, pixels[:1], steps=1)
    with pytest.raises(ValueError, match="`pool_grid` differs"):
        align_pool_projector(make_model(pool_grid=1), reference, pixels, steps=1)
    with pytest.raises(ValueError, match="no pool branch"):
        align_pool_projector(make_model(use_pool_branch=False), reference, pixels, steps=1)
    with pytest.raises(ValueError, match="frames of other sizes"):
        align_pool_projector(make_model(vision_config={"image_size": 32}), reference, pixels, steps=1)


def test_align_pool_projector_cli_writes_a_checkpoint_and_its_log(stages, micro_data, tmp_path):
    from train.align_pool_projector import main as align

    output = tmp_path / "aligned"
    align(["--model", str(stages[3]), "--reference", str(stages[1]), "--data", str(micro_data), "--output",
           str(output), "--videos", "6", "--steps", "5", "--batch-frames", "8", "--threads", "2"])
    log = json.loads((output / "align_log.json").read_text())
    assert log["args"]["steps"] == "5" and log["train_frames"] + log["held_out_frames"] == 6 * 16
    model = AutoModel.from_pretrained(output, trust_remote_code=True)
    assert model.pool_projector is not None and model.dtype == torch.float32

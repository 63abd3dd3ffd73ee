"""Run one LangDC training stage.

    python -m train.run --data data/synthvid --stage 0 --init tools/configs/synthvid.json --output runs/stage0
    python -m train.run --data data/synthvid --stage text --init runs/stage0 --output runs/stage_text
    python -m train.run --data data/synthvid --stage 1 --init runs/stage_text --output runs/stage1
    python -m train.run --data data/synthvid --stage 2 --init runs/stage1 --output runs/stage2
    python -m train.run --data data/synthvid --stage 3 --init runs/stage2 --output runs/stage3

`--init` is a config spec (a BPE tokenizer is trained on the split's text, the model starts random) or a checkpoint
folder of the previous stage. Stage 0 pretrains the vision tower on dense patch labels (train/vision.py), the text
stage the LLM on option lookups (train/data.py). The same command runs on CPU, one GPU, or several GPUs / nodes under
`accelerate launch -m train.run ...` (DeepSpeed or FSDP through the accelerate config). `--resume` continues from
the last `Trainer` checkpoint in `OUTPUT/trainer`. The output folder is a complete checkpoint (remote code,
tokenizer, processor) that loads with `AutoModel.from_pretrained(..., trust_remote_code=True)`.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import TrainingArguments

from synthvid import text_only_records
from synthvid.files import write_text_atomic
from synthvid.spec import COLORS
from tools.build_checkpoint import build_config, build_model, build_processor, load_processor, save_checkpoint
from tools.export_checkpoint import TIME_MODULE
from tools.remote_code import import_remote
from tools.tokenizer import train_bpe_tokenizer
from train.data import (DESCRIBE_PROMPT, LOOKUP_PROMPT, MC_SUFFIX, OPEN_SUFFIX, STAGES, TEXT_STAGE, LangDCCollator,
                        StageDataset, clip_caption_ids, encode_videos, load_pixel_cache, read_split)
from train.stages import (COLLAPSED_WORD_GROUPS, LangDCTrainer, WallClockLimit, align_caption_projector,
                          count_trainable, freeze_for_stage, set_threads, spread_expert_embeddings,
                          untie_expert_embeddings)
from train.vision import (FrameDataset, ObjectRecolor, PatchAttributePretrainer, collate_frames, load_attribute_cache,
                          load_color_map_cache, load_moment_cache)

CAPTION_BATCH_VIDEOS = 32


def corpus(records, config_spec: dict) -> list[str]:
    """Every text the model will read or write: captions, questions, answers and the fixed prompts."""
    from synthvid import format_answer, format_question, open_question

    texts = [DESCRIBE_PROMPT, MC_SUFFIX, OPEN_SUFFIX, LOOKUP_PROMPT.format(""), config_spec.get("expert_prompt", ""),
             import_remote("configuration_langdc").DEFAULT_SYSTEM_MESSAGE]
    for record in records:
        texts += record["clip_captions"] + [record["video_caption"]]
        for question in record["questions"]:
            texts += [format_question(question), format_answer(question), *open_question(question)]
    return texts


def initial_model(init: Path, records, vocab_size: int, seed: int):
    """(model fp32, tokenizer, processor) from a config spec (new tokenizer, random weights) or a checkpoint."""
    if init.suffix == ".json":
        spec = json.loads(init.read_text())
        tokenizer = train_bpe_tokenizer(corpus(records, spec), vocab_size)
        config = build_config(spec, tokenizer)
        model = build_model(config, seed=seed, dtype=torch.float32)
        return model, tokenizer, build_processor(config, tokenizer)
    modeling = import_remote("modeling_langdc")
    model = modeling.LangDCForConditionalGeneration.from_pretrained(init, dtype=torch.float32)
    processor = load_processor(init)  # the repo's processing code, as for the model
    return model, processor.tokenizer, processor


def check_context(dataset: StageDataset, model) -> None:
    """Stop a stage-3 run before its first step when one of its conversations can exceed the LLM context (the model
    would raise `ValueError` at whichever step drew it): `StageDataset.longest_input` with the model's pool tokens
    and the captions the dataset can draw (the ground truth only, until `set_generated_captions`).

    Raises:
        ValueError: naming the longest input, its item and the options that shorten it.
    """
    config = model.config
    context = getattr(config.text_config, "max_position_embeddings", None)
    if context is None:
        return
    length, item = dataset.longest_input(model.pool_tokens_per_tile() * config.num_frames,
                                         (config.image_token_id, config.video_token_id), captions=config.use_expert)
    captions = " or ".join({"ground truth": "the ground-truth", "expert": "the expert's"}[name]
                           for name in dataset.caption_sources())
    if length > context:
        raise ValueError(
            f"Stage-3 example {item} can reach {length} LLM input tokens (every optional turn drawn, with {captions} "
            f"captions), more than the LLM context of {context}: lower --questions-per-example, or the optional "
            f"turns (--describe-fraction, --clip-describe-fraction, --frame-prompt-fraction, --lookup-fraction, "
            f"--mvbench-prompt-fraction), or --rename-fraction."
        )
    print(f"longest stage-3 input with {captions} captions: {length} of the LLM's {context} tokens (example {item})")


@torch.no_grad()
def generate_captions(model, media: torch.Tensor, batch_videos: int = CAPTION_BATCH_VIDEOS,
                      features: bool = False) -> list[list[list[int]]]:
    """The expert's own captions of every clip of every video (what stage 3 soft tokens see at inference), from the
    pixel cache `[N, T, 3, S, S]` or, with `features`, the vision features `[N, T, P, D_v]` (`encode_videos`)."""
    model.eval()
    frames = media.shape[1]
    clips_per_video = -(-frames // model.config.frames_per_clip)
    captions = []
    for start in range(0, len(media), batch_videos):
        chunk = media[start : start + batch_videos]
        flat = chunk.flatten(0, 1).to(model.device, torch.float32)
        layout = ([[1] * frames] * len(chunk), [3] * len(chunk))
        ids = (model.caption_clips(None, *layout, image_features=flat) if features
               else model.caption_clips(flat, *layout))
        captions += [ids[i : i + clips_per_video] for i in range(0, len(ids), clips_per_video)]
    return captions


def word_token_ids(tokenizer, word_groups: dict[str, tuple[str, ...]]) -> dict[str, list[int]]:
    """Group name -> the token id of each word as it follows a space in a caption.

    Raises:
        ValueError: if a word is not a single token of `tokenizer`.
    """
    groups = {}
    for name, words in word_groups.items():
        groups[name] = []
        for word in words:
            ids = tokenizer(f" {word}", add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise ValueError(f"Word {word!r} of group {name!r} is {len(ids)} tokens of the tokenizer, not one.")
            groups[name] += ids
    return groups


def comma_separated(text: str) -> tuple[str, ...]:
    """An argparse type: `"a,b"` -> `("a", "b")`, empty items dropped (`--focus-tasks`)."""
    return tuple(item for item in text.split(",") if item)


def keyed_numbers(text: str, number=float, minimum: float = 0, form: str = "KEY=VALUE") -> dict:
    """An argparse helper: `"a=5,b=2"` -> `{"a": number("5"), "b": number("2")}`, each value at least `minimum`;
    `argparse.ArgumentTypeError` naming the item and the expected `form` otherwise."""
    values = {}
    for item in filter(None, text.split(",")):
        key, _, value = (part.strip() for part in item.partition("="))
        try:
            parsed = number(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {form} items, got {item!r}") from None
        if not key or parsed < minimum:
            raise argparse.ArgumentTypeError(f"expected {form} with a value >= {minimum}, got {item!r}")
        values[key] = parsed
    return values


def word_weights(text: str) -> dict[str, float]:
    """An argparse type: `"left=5,right=5"` -> `{"left": 5.0, "right": 5.0}` (`--caption-word-weights`)."""
    return keyed_numbers(text, float, 0, "WORD=WEIGHT")


def task_repeats(text: str) -> dict[str, int]:
    """An argparse type: `"order=2,state_change=3"` -> `{"order": 2, "state_change": 3}` (`--task-repeats`)."""
    return keyed_numbers(text, int, 1, "TASK=REPEATS")


def object_recolor(args, records: list[dict], processor, image_size: int) -> ObjectRecolor:
    """`--recolor-fraction`'s painter (`train.vision.ObjectRecolor`): in stage 0 one draw per frame, for that share of
    the frames; in stage 2 one per video, for every video (the dataset picks which reads use them)."""
    image_processor = processor.image_processor
    mean, std = image_processor.image_mean, image_processor.image_std
    color_maps = load_color_map_cache(args.data, "train", records, image_size, args.workers)  # [N, T, H, W]
    if args.stage == 0:
        return ObjectRecolor(color_maps.flatten(0, 1), args.recolor_fraction, mean, std, args.seed)
    return ObjectRecolor(color_maps, 1.0, mean, std, args.seed)


def colour_token_ids(tokenizer) -> frozenset[int]:
    """Every expert token of the synthvid colour words as captions write them (after a space): the words a
    recoloured video cannot tell (stage 2's `--recolor-fraction`). A small vocabulary may split a colour word; its
    pieces are then all masked."""
    return frozenset(t for word in COLORS for t in tokenizer(" " + word, add_special_tokens=False)["input_ids"])


def caption_word_ids(tokenizer, words, option: str) -> list[int]:
    """The expert token id of each of `words` as captions write it (after a space), for the command-line `option`.

    Raises:
        ValueError: for a word that is not one token of the vocabulary (it could not be weighted or swapped alone).
    """
    ids = []
    for word in words:
        word_ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if len(word_ids) != 1:
            raise ValueError(f"{option}: {word!r} is {len(word_ids)} tokens, not one, in this vocabulary.")
        ids += word_ids
    return ids


def caption_token_weights(tokenizer, weights: dict[str, float]) -> dict[int, float]:
    """Expert token id -> caption-loss weight of each word of `weights` (`caption_word_ids`; raises likewise)."""
    return dict(zip(caption_word_ids(tokenizer, weights, "--caption-word-weights"), weights.values()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="synthvid folder (python -m synthvid.build)")
    parser.add_argument("--stage", type=lambda s: int(s) if s.isdigit() else s, choices=STAGES, required=True,
                        help="0 (vision tower), text (LLM option lookups), 1, 2 or 3")
    parser.add_argument("--init", type=Path, required=True, help="config spec .json (stage 1) or checkpoint folder")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip-time-lr", type=float, default=None,
                        help="stage 3: peak learning rate of the clip time embedding (default: --lr), e.g. for one "
                             "just added at zero (tools.export_checkpoint --clip-time-frequencies)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=0.05, help="warmup steps, or a fraction (< 1) of all steps")
    parser.add_argument("--vocab-size", type=int, default=512, help="stage 1 from a spec: BPE vocabulary size")
    parser.add_argument("--ground-truth-fraction", type=float, default=0.3,
                        help="stage 3: share of examples whose soft tokens come from ground-truth captions")
    parser.add_argument("--open-fraction", type=float, default=0.2, help="stage 3: share of open-ended questions")
    parser.add_argument("--freeze-vision-tower", action="store_true",
                        help="stages 1-3: keep the vision tower as stage 0 left it (stage 2 tunes it otherwise)")
    parser.add_argument("--cache-vision-features", action="store_true",
                        help="stages 1 and 3, and 2 with --freeze-vision-tower (the tower is frozen): encode every "
                             "video once and train on its features (train.data.encode_videos), not its pixels")
    parser.add_argument("--align-caption-projector", action="store_true",
                        help="stage 3: start the caption projector as the least-squares map from the expert's to the "
                             "LLM's embeddings of the caption tokens (train.stages.align_caption_projector)")
    parser.add_argument("--untie-expert-embeddings", action="store_true",
                        help="stage 2: the expert's output layer stops sharing its input embeddings "
                             "(train.stages.untie_expert_embeddings)")
    parser.add_argument("--freeze-expert-embeddings", action="store_true",
                        help="stage 2, with untied expert embeddings: keep the expert's input embeddings (the soft "
                             "tokens at soft_token_layer=0) so that a stage-3 LLM trained on them still reads the "
                             "retrained expert's captions (train.stages.freeze_for_stage)")
    parser.add_argument("--spread-expert-embeddings", type=float, default=None, metavar="COSINE",
                        help="stage 3, untied expert embeddings: scale apart the expert's input embeddings of the "
                             "directions and of grows/shrinks until each group's mean pairwise cosine is COSINE "
                             "(train.stages.spread_expert_embeddings), before the expert captions the videos")
    parser.add_argument("--lookup-fraction", type=float, default=0.0,
                        help="stage 3 (and the text stage's caption QA): share of conversations ending with one "
                             "option lookup turn")
    parser.add_argument("--caption-qa-fraction", type=float, default=0.0,
                        help="text stage: share of examples that are a video's QA conversation with its ground-truth "
                             "captions as text instead of an option lookup")
    parser.add_argument("--text-scenes", type=int, default=0,
                        help="text stage: this many more training scenes, sampled as text only (captions and "
                             "questions, no video; synthvid.text_only_records) after the split's own")
    parser.add_argument("--frame-prompt-fraction", type=float, default=0.0,
                        help="stage 3: share of conversations whose video is one `Frame{i}: <image>` line per frame "
                             "(the PVC prompt) instead of one `<video>`")
    parser.add_argument("--describe-fraction", type=float, default=0.0,
                        help="stage 3: share of conversations opening with stage 1's \"Describe the video.\" turn")
    parser.add_argument("--mvbench-prompt-fraction", type=float, default=0.0,
                        help="stage 3: share of conversations whose multiple-choice questions are written as "
                             "lmms-eval's MVBench prompt (train.data.multiple_choice_prompt) instead of ours")
    parser.add_argument("--clip-describe-fraction", type=float, default=0.0,
                        help="stage 3: share of conversations opening with one clip's description asked by its time "
                             "phrase (\"Describe what happens at the end.\"; train.data.clip_describe_turns)")
    parser.add_argument("--focus-tasks", type=comma_separated, default=(), metavar="TASK[,TASK...]",
                        help="stage 3 and the text stage (its lookups): each video keeps only its questions of the "
                             "first of these tasks it has, and a video with none is skipped "
                             "(train.data.focused_questions), e.g. direction,counting")
    parser.add_argument("--task-repeats", type=task_repeats, default=None, metavar="TASK=N[,TASK=N...]",
                        help="stage 3: ask each video's questions of these tasks N times per epoch instead of once, "
                             "the extra asks in conversations of their own (train.data.repeated_questions), so a "
                             "mixed stage 3 spends more of its steps on the tasks it reads worst")
    parser.add_argument("--rename-fraction", type=float, default=0.0,
                        help="stage 3: share of the conversations on ground-truth captions in which one colour or "
                             "shape word is written as a nonce word throughout (train.data.rename_word), so answers "
                             "are copied from the captions")
    parser.add_argument("--letter-binding-fraction", type=float, default=0.0,
                        help="stage 3: share of multiple-choice turns answered by a wrong option's text, given and "
                             "not supervised, then its letter, supervised (train.data.question_turn's `named`), so "
                             "the letter follows the text the answer names")
    parser.add_argument("--spaced-answers", action="store_true",
                        help="stage 3: multiple-choice answers start with a space, so their first word is the same "
                             "BPE token as in the option lines (train.data.question_turn's `spaced`)")
    parser.add_argument("--questions-per-example", type=int, default=0,
                        help="stage 3: questions of a video per multi-turn conversation (0 = all)")
    parser.add_argument("--train-videos", type=int, default=None, help="use only the first N training videos")
    parser.add_argument("--moment-weight", type=float, default=0.0,
                        help="stage 0: weight of the per-patch colour-moment regression (train.vision.patch_moments) "
                             "about the centres of the expert's pooled cells; 0 = colour and shape fractions only")
    parser.add_argument("--recolor-fraction", type=float, default=0.0, metavar="P",
                        help="stage 0: share of the frames whose objects are painted in novel colours, far from every "
                             "named one (train.vision.ObjectRecolor), for the shape head only; stage 2 (with "
                             "--cache-vision-features): share of the examples whose video is read so painted, with no "
                             "loss on the colour words. Shapes are then seen in many colours, never in a held-out pair")
    parser.add_argument("--named-shape-weight", type=float, default=1.0, metavar="W",
                        help="stage 0 with --recolor-fraction: weight of the shape term on frames in their named "
                             "colours (0: shapes are learnt from novel colours only)")
    parser.add_argument("--caption-word-weights", type=word_weights, default=None, metavar="WORD=W[,WORD=W...]",
                        help="stage 2: weigh these words' tokens in the expert's caption loss (others weigh 1), e.g. "
                             "left=5,right=5,up=5,down=5")
    parser.add_argument("--caption-input-noise", type=float, default=0.0, metavar="P",
                        help="stage 2: replace each --caption-noise-words token of the expert's teacher-forced "
                             "caption inputs, with probability P, by another of them (targets unchanged), so that the "
                             "shape after a colour is read from the clip (train.data.StageDataset)")
    parser.add_argument("--caption-noise-words", type=comma_separated, default=tuple(COLORS), metavar="WORD[,WORD...]",
                        help="the interchangeable words of --caption-input-noise (default: the synthvid colours)")
    parser.add_argument("--logging-steps", type=int, default=25)
    parser.add_argument("--save-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes decoding videos, rendering attribute maps and sampling --text-scenes")
    parser.add_argument("--dataloader-workers", type=int, default=0,
                        help="processes preparing batches (examples are drawn per worker from its own seed)")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (autocast; weights stay float32)")
    parser.add_argument("--tf32", action="store_true", help="TF32 matrix products (Ampere or newer GPUs)")
    parser.add_argument("--caption-batch-videos", type=int, default=CAPTION_BATCH_VIDEOS,
                        help="stage 3: videos per batch when the expert captions the training set")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUTPUT/trainer")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop the steps after this many minutes and save as usual (train.stages.WallClockLimit: a "
                             "guard for a fixed time slot; the schedule still spans --max-steps)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.max_minutes is not None and args.max_minutes < 0:
        parser.error(f"--max-minutes must be >= 0, got {args.max_minutes}")
    if args.moment_weight and args.stage != 0:
        parser.error(f"--moment-weight belongs to stage 0, got --stage {args.stage}")
    if args.recolor_fraction and args.stage not in (0, 2):
        parser.error(f"--recolor-fraction belongs to stages 0 and 2, got --stage {args.stage}")
    if args.recolor_fraction and args.stage == 2 and not args.cache_vision_features:
        parser.error("--recolor-fraction in stage 2 needs --cache-vision-features (the recoloured videos are encoded "
                     "once)")
    if not 0.0 <= args.recolor_fraction <= 1.0:
        parser.error(f"--recolor-fraction must be in [0, 1], got {args.recolor_fraction}")
    if args.named_shape_weight != 1.0 and not (args.recolor_fraction and args.stage == 0):
        parser.error("--named-shape-weight needs --recolor-fraction in stage 0")
    if args.caption_word_weights and args.stage != 2:
        parser.error(f"--caption-word-weights belongs to stage 2, got --stage {args.stage}")
    if args.caption_input_noise and args.stage != 2:
        parser.error(f"--caption-input-noise belongs to stage 2, got --stage {args.stage}")
    set_threads(args.threads)
    started = time.perf_counter()

    training_args = TrainingArguments(
        output_dir=str(args.output / "trainer"),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=args.warmup,
        weight_decay=0.0,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        logging_steps=args.logging_steps,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=1,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=args.dataloader_workers,
        dataloader_persistent_workers=args.dataloader_workers > 0,
        bf16=args.bf16,
        use_cpu=args.bf16 and not torch.cuda.is_available(),  # the Trainer refuses bf16 autocast on a CPU otherwise
        tf32=args.tf32 or None,
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=args.seed,
    )
    records = read_split(args.data, "train")[: args.train_videos]
    model, tokenizer, processor = initial_model(args.init, records, args.vocab_size, args.seed)
    # on the training device before the feature cache and the expert's captions are computed (a GPU when there)
    model.to(training_args.device)
    if args.text_scenes:
        if args.stage != TEXT_STAGE:
            raise ValueError(f"--text-scenes belongs to the text stage, got --stage {args.stage}.")
        meta = json.loads((args.data / "meta.json").read_text())
        records = records + text_only_records(meta["seed"], meta["counts"]["train"], args.text_scenes,
                                              workers=args.workers,
                                              withhold_held_out_colors=meta.get("withhold_held_out_colors", False))
    dataset = None
    if args.stage != 0:
        dataset = StageDataset(records, args.stage, tokenizer, model.config.system_message, None,
                               args.ground_truth_fraction, args.open_fraction, args.seed, args.questions_per_example,
                               args.lookup_fraction, args.caption_qa_fraction, model.config.video_token_id,
                               args.frame_prompt_fraction, model.config.num_frames, args.describe_fraction,
                               args.mvbench_prompt_fraction, args.clip_describe_fraction,
                               args.focus_tasks, args.rename_fraction, args.letter_binding_fraction,
                               args.spaced_answers, args.caption_input_noise,
                               caption_word_ids(tokenizer, args.caption_noise_words, "--caption-noise-words")
                               if args.caption_input_noise else (), args.recolor_fraction if args.stage == 2 else 0.0,
                               task_repeats=args.task_repeats)
    if args.stage == 3 and (args.ground_truth_fraction > 0 or not model.config.use_expert):
        # conversations draw the ground-truth captions: one too long with them stops the run before the media setup
        check_context(dataset, model)
    pixels = features = recolored_features = None  # the text stage reads no media
    if args.stage != TEXT_STAGE:
        pixels = load_pixel_cache(args.data, "train", processor, model.config.num_frames,
                                  args.workers)[: len(records)]
    if args.cache_vision_features:
        if args.stage not in (1, 3) and not (args.stage == 2 and args.freeze_vision_tower):
            raise ValueError(f"--cache-vision-features needs a frozen vision tower: stage 1 or 3, or 2 with "
                             f"--freeze-vision-tower; got --stage {args.stage}.")
        if args.stage == 2 and args.recolor_fraction:
            recolor = object_recolor(args, records, processor, model.config.vision_config.image_size)
            recolored_features = encode_videos(model, pixels, recolor=recolor)
        features, pixels = encode_videos(model, pixels), None
    if args.spread_expert_embeddings is not None:
        if args.stage != 3:
            raise ValueError(f"--spread-expert-embeddings belongs to stage 3, got --stage {args.stage}.")
        for name, spread in spread_expert_embeddings(model, word_token_ids(tokenizer, COLLAPSED_WORD_GROUPS),
                                                     args.spread_expert_embeddings).items():
            print(f"expert embeddings of the {name}: mean cosine {spread['cosine_before']:.3f} -> "
                  f"{spread['cosine_after']:.3f} (differences x{spread['scale']:.2f})")
    if args.stage == 3 and args.ground_truth_fraction < 1.0 and model.config.use_expert:
        cached = features is not None
        dataset.set_generated_captions(
            generate_captions(model, features if cached else pixels, args.caption_batch_videos, cached))
        check_context(dataset, model)  # the expert's captions can be longer than the ground truth
    if args.align_caption_projector:
        if args.stage != 3:
            raise ValueError(f"--align-caption-projector belongs to stage 3, got --stage {args.stage}.")
        caption_tokens = [t for record in records for ids in clip_caption_ids(tokenizer, record) for t in ids]
        residual = align_caption_projector(model, caption_tokens)
        print(f"caption projector aligned on {len(set(caption_tokens))} caption tokens "
              f"(relative residual {residual:.2e})")
    if args.untie_expert_embeddings:
        if args.stage != 2:
            raise ValueError(f"--untie-expert-embeddings belongs to stage 2, got --stage {args.stage}.")
        untie_expert_embeddings(model)
    trainable = freeze_for_stage(model, args.stage, args.freeze_vision_tower, args.freeze_expert_embeddings)
    if args.stage == 0:
        vision = model.config.vision_config
        colors, shapes = load_attribute_cache(args.data, "train", records, vision.patch_size, vision.image_size,
                                              args.workers)
        moments = None
        if args.moment_weight:
            cell_size = vision.image_size // model.config.expert_pool_grid
            moments = load_moment_cache(args.data, "train", records, vision.patch_size, vision.image_size, cell_size,
                                        args.workers)
        recolor = object_recolor(args, records, processor, vision.image_size) if args.recolor_fraction else None
        dataset = FrameDataset(pixels, colors, shapes, moments, recolor, args.named_shape_weight)
        collator = collate_frames
        trained = PatchAttributePretrainer(model, args.moment_weight)
        trainable += sum(p.numel() for name, p in trained.named_parameters() if not name.startswith("vision_model."))
    else:
        weights = caption_token_weights(tokenizer, args.caption_word_weights) if args.caption_word_weights else None
        masked = frozenset() if recolored_features is None else colour_token_ids(tokenizer)
        collator = LangDCCollator(pixels, tokenizer.pad_token_id, features, weights, recolored_features, masked)
        trained = model
    trained.train()
    print(f"stage {args.stage}: {len(dataset)} examples from {len(records)} videos; trainable {trainable / 1e6:.2f}M "
          f"{count_trainable(model)}")

    trainer = LangDCTrainer(
        model=trained,
        args=training_args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=processor,
        stage=args.stage,
        module_learning_rates=None if args.clip_time_lr is None else {TIME_MODULE: args.clip_time_lr},
        callbacks=None if args.max_minutes is None else [WallClockLimit(args.max_minutes)],
    )
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    model.eval()
    save_checkpoint(model, tokenizer, processor, args.output)
    log = {
        "stage": args.stage,
        "examples": len(dataset),
        "videos": len(records) - args.text_scenes,
        "text_scenes": args.text_scenes,
        "trainable_parameters": trainable,
        "wall_seconds": time.perf_counter() - started,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "stopped_at_step": next((c.stopped_at_step for c in trainer.callback_handler.callbacks
                                 if isinstance(c, WallClockLimit)), None),
        "args": {k: str(v) for k, v in vars(args).items()},
        "log_history": trainer.state.log_history,
    }
    write_text_atomic(args.output / "train_log.json", json.dumps(log, indent=2) + "\n")
    print(f"stage {args.stage} done in {log['wall_seconds']:.0f} s -> {args.output}")


if __name__ == "__main__":
    main()

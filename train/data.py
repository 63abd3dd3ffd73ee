"""Datasets and collator for the three training stages on a synthvid folder (`python -m synthvid.build`).

Videos are decoded once with the model's own processor (`processor.load_video`, the inference path) and cached
as float16 `pixel_values`; every stage then reads the cache.

- text stage (between stages 0 and 1; LLM only, no media): option lookups, one multiple-choice question per chat
  with the user asking which option says a given text and the answer naming it with its letter (`lookup_turn`),
  so the LLM can learn to bind an option's text to its letter before it has to choose the content (README
  "Results"); and, for a share of the examples, the stage-3 conversation of a video with its ground-truth clip
  captions as text in place of the `<video>` placeholder (`splice_captions`), so the LLM learns to read captions
  and answer before it meets soft tokens (the role of the paper's pretrained LLM);
- stage 1 (alignment): "<video> Describe the video." -> the whole-video caption, pool tokens only (no soft
  caption tokens), so the vision tower and the pool projector learn to carry the video into the LLM;
- stage 2 (expert): clip captions, the expert's caption cross-entropy with EOS (density-aware supervision);
- stage 3 (QA): multiple-choice and open questions, all questions of a video in one multi-turn conversation
  (LLaVA-style: the video is encoded once for all its questions, so a step costs ~5x fewer tokens per question),
  re-drawn for every example: question order, option order (so the letter cannot be memorised per question) and
  open-ended or multiple choice; soft tokens from `caption_ids`, either the expert's own generated captions (what
  inference sees) or the ground truth. Optionally the video is given as one `Frame{i}: <image>` line per frame
  (the PVC prompt of README's usage, `examples/chat_video.py` and the lmms-eval plug-in) instead of `<video>`, and
  a conversation opens with stage 1's description turn, so neither form nor "Describe" is new at inference.
  Optionally (`rename_fraction`) a conversation on the ground-truth captions calls one of its colours or shapes by
  a nonce word throughout (entity anonymization), so its answers can only be copied from the captions.
  Optionally (`letter_binding_fraction`) a multiple-choice answer is a distractor's text, given and not supervised,
  followed by that distractor's letter, supervised (letter binding), so the letter follows the text the answer names.
"""

import itertools
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from tqdm.auto import tqdm

from synthvid import COLORS, SHAPES, TASKS, format_answer, format_question, open_question, permute_options
from synthvid.files import write_atomic
from synthvid.questions import TIME_PHRASES, option_answer
from tools.remote_code import import_remote

IGNORE_INDEX = -100
DESCRIBE_PROMPT = "Describe the video."
CLIP_DESCRIBE_PROMPT = "Describe what happens {}."  # with a time phrase of synthvid.questions.TIME_PHRASES
MC_SUFFIX = "Answer with the option's letter."
OPEN_SUFFIX = "Answer briefly."
LOOKUP_PROMPT = 'Which option says "{}"?'
TEXT_STAGE = "text"
VIDEO_PROMPTS = ("video", "frames")  # one `<video>` placeholder, or one `Frame{i}: <image>` line per frame
# how a multiple-choice question is written: ours (`synthvid.format_question` + MC_SUFFIX), or lmms-eval's MVBench
# prompt (lmms_eval.tasks.mvbench.utils.mvbench_doc_to_text with its default post_prompt)
QUESTION_FORMATS = ("langdc", "lmms-mvbench")
MVBENCH_POST_PROMPT = "Only give the best option.\n"
STAGES = (0, TEXT_STAGE, 1, 2, 3)  # in recipe order
# entity anonymization (`rename_fraction`): the words a conversation may rename, and the nonce words' letters (rare in
# the world's words, so no nonce word is one of them)
RENAMEABLE_WORDS = (*COLORS, *SHAPES)
RENAMEABLE_PATTERN = re.compile(rf"\b({'|'.join(RENAMEABLE_WORDS)})\b")
NONCE_CONSONANTS = "fjkqvxz"
NONCE_VOWELS = "aeiou"


def read_split(data_dir: Path, split: str) -> list[dict]:
    """Records of `DIR/{split}.jsonl`. Raises `ValueError` if the file is missing."""
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} does not exist: build the data with `python -m synthvid.build --out {data_dir}`.")
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


class _MappedItems(Dataset):
    """`fn(items[i])` as a map-style dataset, so `DataLoader` workers can compute it in parallel."""

    def __init__(self, fn, items):
        self.fn, self.items = fn, items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.fn(self.items[i])


def _unbatched(item):
    return item


def parallel_map(fn, items: list, workers: int = 0, desc: str | None = None) -> list:
    """`[fn(item) for item in items]`, in order, computed by `workers` `DataLoader` processes (0 = in this process);
    `fn` must be picklable (a module-level function or a `functools.partial` of one) where processes spawn."""
    loader = DataLoader(_MappedItems(fn, items), batch_size=None, num_workers=workers, collate_fn=_unbatched)
    return list(tqdm(loader, total=len(items), desc=desc))


def _decode_video(path: str, processor, num_frames: int) -> torch.Tensor:
    pixel_values, _ = processor.load_video(path, num_segments=num_frames)
    return pixel_values.to(torch.float16)


def load_pixel_cache(data_dir: Path, split: str, processor, num_frames: int, workers: int = 0) -> torch.Tensor:
    """`[N_videos, num_frames, 3, S, S]` float16 pixel values of a split, decoded once (by `workers` processes,
    `parallel_map`) and cached on disk."""
    size = processor.image_processor.image_size
    cache = Path(data_dir) / "cache" / f"{split}-{num_frames}f-{size}px.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    paths = [str(Path(data_dir) / record["video"]) for record in read_split(data_dir, split)]
    decode = partial(_decode_video, processor=processor, num_frames=num_frames)
    pixels = torch.stack(parallel_map(decode, paths, workers, desc=f"decoding {split} videos"))
    torch_save_atomic(pixels, cache)
    return pixels


@torch.no_grad()
def encode_videos(model, pixels: torch.Tensor, batch_videos: int = 32, recolor=None) -> torch.Tensor:
    """`[N_videos, T, P, D_v]` float16 vision-tower features (`get_image_features`) of the `[N_videos, T, 3, S, S]`
    pixel cache: a stage that keeps the tower frozen encodes each video once instead of at every step, and feeds
    them as `image_features` (README "Training": `--cache-vision-features`). With `recolor` (a video-level
    `train.vision.ObjectRecolor`), video `i` is encoded as `recolor(i, pixels[i])` paints it. The tower is put in
    eval mode."""
    model.vision_model.eval()
    chunks = []
    desc = "encoding " + ("recoloured " if recolor is not None else "") + "videos with the frozen vision tower"
    for start in tqdm(range(0, len(pixels), batch_videos), desc=desc):
        chunk = pixels[start : start + batch_videos]
        if recolor is not None:
            chunk = torch.stack([recolor(start + i, video)[0] for i, video in enumerate(chunk)])
        features = model.get_image_features(chunk.flatten(0, 1).float().to(model.device))
        chunks.append(features.to("cpu", torch.float16).unflatten(0, chunk.shape[:2]))
    return torch.cat(chunks)


def torch_save_atomic(obj, path: Path) -> None:
    """`torch.save` through a temporary file (`synthvid.files.write_atomic`), so a cache is never half-written."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def clip_caption_ids(tokenizer, record: dict) -> list[list[int]]:
    """Token ids of each ground-truth clip caption of a synthvid record (no special tokens, no EOS): what the
    expert is trained to write in stage 2 and what `caption_ids` takes."""
    return [tokenizer(caption, add_special_tokens=False)["input_ids"] for caption in record["clip_captions"]]


def nonce_words(tokenizer) -> list[str]:
    """The nonce words a renamed conversation may use (`rename_word`): the consonant-vowel-consonant strings of
    `NONCE_CONSONANTS` and `NONCE_VOWELS` that `tokenizer` writes after a space as the space's own token followed by
    their tokens at the start of a text, so a name is the same token sequence in a caption (`a zaf circle.`), an
    option line and an answer's first words (`zaf circle (B)`), and copying it is copying tokens.

    Raises:
        ValueError: if the tokenizer splits none of them so.
    """
    space = tokenizer(" ", add_special_tokens=False)["input_ids"]
    words = []
    for letters in itertools.product(NONCE_CONSONANTS, NONCE_VOWELS, NONCE_CONSONANTS):
        word = "".join(letters)
        alone = tokenizer(word, add_special_tokens=False)["input_ids"]
        if tokenizer(f" {word}", add_special_tokens=False)["input_ids"] == space + alone:
            words.append(word)
    if not words:
        raise ValueError("the tokenizer writes no nonce word after a space as the space's token plus the word's.")
    return words


def rename_word(value, old: str, new: str):
    """`value` (a string, or lists and dicts of strings, nested) with every whole word `old` written `new`; other
    values (numbers, None) unchanged. Entity anonymization as in Hermann et al., "Teaching Machines to Read and
    Comprehend" (NeurIPS 2015): a name the LLM has never seen cannot be answered from the colour-shape pairs it
    learned, only copied from the captions."""
    pattern = re.compile(rf"\b{re.escape(old)}\b")
    if isinstance(value, str):
        return pattern.sub(new, value)
    if isinstance(value, list):
        return [rename_word(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: rename_word(item, old, new) for key, item in value.items()}
    return value


def nested_strings(value) -> list[str]:
    """The strings in `value` (a string, or lists and dicts of them, nested), in order; dict keys excluded."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [text for item in items for text in nested_strings(item)]


def pad_chat_batch(rows: list[tuple[list[int], list[int]]], pad_token_id: int) -> dict:
    """Right-padded `input_ids`, `attention_mask` and `labels` (`[B, L]` long) of `(ids, labels)` rows."""
    length = max(len(ids) for ids, _ in rows)
    batch = {
        "input_ids": torch.full((len(rows), length), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(rows), length), dtype=torch.long),
        "labels": torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long),
    }
    for row, (ids, labels) in enumerate(rows):
        batch["input_ids"][row, : len(ids)] = torch.tensor(ids)
        batch["attention_mask"][row, : len(ids)] = 1
        batch["labels"][row, : len(ids)] = torch.tensor(labels)
    return batch


def chat_conversation(tokenizer, system_message: str, turns: list[tuple[str, ...]]) -> tuple[list[int], list[int]]:
    """Token ids of a multi-turn chat and labels that supervise only the answers and their `<|im_end|>`.

    Args:
        turns: `(user, answer)` pairs in order, or `(user, answer, given)` triples whose answer begins with the text
            `given`, which is teacher-forced but not supervised (a letter-binding turn, `question_turn`); the media
            placeholder belongs in the first user text.

    Raises:
        ValueError: if the chat template does not render each turn as a token prefix of the next (labels could
            not be aligned), or a turn's `given` does not tokenize as a prefix of its answer.
    """
    messages = [{"role": "system", "content": system_message}]
    ids, labels = [], []
    for user, answer, *given in turns:
        messages.append({"role": "user", "content": user})
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if prompt_ids[: len(ids)] != ids:
            raise ValueError("The chat template does not render earlier turns as a prefix of later ones.")
        answer_ids = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        given_ids = tokenizer(given[0], add_special_tokens=False)["input_ids"] if given and given[0] else []
        if answer_ids[: len(given_ids)] != given_ids:
            raise ValueError(f"The given text {given[0]!r} does not tokenize as a prefix of the answer {answer!r}.")
        new_ids = prompt_ids[len(ids) :]
        ids += new_ids + answer_ids
        labels += [IGNORE_INDEX] * (len(new_ids) + len(given_ids)) + answer_ids[len(given_ids) :]
        messages.append({"role": "assistant", "content": answer})
    return ids, labels


def chat_example(tokenizer, system_message: str, user: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of a one-turn chat and labels that supervise only the answer and its `<|im_end|>`."""
    return chat_conversation(tokenizer, system_message, [(user, answer)])


def multiple_choice_prompt(question: dict, question_format: str = "langdc") -> str:
    """The user text of a multiple-choice synthvid question (no media placeholder), in one of `QUESTION_FORMATS`:

    - `"langdc"`: `{question}\n(A) ...\n(D) ...\nAnswer with the option's letter.` (`synthvid.format_question`);
    - `"lmms-mvbench"`: `Question:{question}\nOption:\n(A) ...\n(D) ...\nOnly give the best option.\n`, the prompt
      of lmms-eval's MVBench task (`mvbench_doc_to_text`, default `post_prompt`), so that a model trained on both
      answers harness prompts as it answers ours.

    Raises:
        ValueError: for a `question_format` not in `QUESTION_FORMATS`, or a malformed question
            (`format_question`).
    """
    if question_format not in QUESTION_FORMATS:
        raise ValueError(f"`question_format` must be one of {QUESTION_FORMATS}, got {question_format!r}.")
    if question_format == "langdc":
        return f"{format_question(question)}\n{MC_SUFFIX}"
    question_line, options = format_question(question).split("\n", 1)
    return f"Question:{question_line}\nOption:\n{options}\n{MVBENCH_POST_PROMPT}"


def question_turn(question: dict, open_ended: bool, question_format: str = "langdc", named: int | None = None,
                  spaced: bool = False) -> tuple[str, ...]:
    """`(user text, answer)` of one synthvid question, multiple choice (`multiple_choice_prompt` in
    `question_format`) or open-ended (no media placeholder). The answer is `format_answer`'s in either format;
    with `spaced`, a multiple-choice answer starts with a space, so that its first word is the BPE token of the
    same word in the option lines (` grows`, after `(B)`), not the text-initial one (`grows`). An experiment (run v53:
    on a model trained unspaced it unbinds the letters; train/RUNS.md "Runs v52 to v54").

    With `named` (multiple choice only), a letter-binding turn `(user text, answer, given)`: the answer names option
    `named` (`text (letter)`, right or not) and its text `given` is teacher-forced, not supervised
    (`chat_conversation`), so only the letter is learned, and it can only come from the text before it.

    Raises:
        ValueError: for `named` with `open_ended` or outside [0, 4), or a malformed question (`format_question`).
    """
    if named is not None and (open_ended or named not in range(len(question["options"]))):
        raise ValueError(f"`named` must index a multiple-choice option, got {named} (open_ended={open_ended}).")
    if open_ended:
        text, answer = open_question(question)
        return f"{text}\n{OPEN_SUFFIX}", answer
    prompt = multiple_choice_prompt(question, question_format)
    if named is not None:
        answer = option_answer(question, named, spaced)
        return prompt, answer, answer[: answer.rindex(" (")]  # the given text: the answer without its letter
    return prompt, format_answer(question, spaced)


def chat_template_tokens(tokenizer, system_message: str) -> tuple[int, int]:
    """`(fixed, per_turn)`: the tokens `chat_conversation` adds around the turns' texts (the system prompt and its
    markers; per turn the user and assistant markers and the answer's end token), measured on two probe chats."""
    user, answer = (len(ids) for ids in tokenizer(["x", "y"], add_special_tokens=False)["input_ids"])

    def added(turns: int) -> int:
        ids, _ = chat_conversation(tokenizer, system_message, [("x", "y")] * turns)
        return len(ids) - turns * (user + answer)

    one, two = added(1), added(2)
    return 2 * one - two, two - one


def lookup_turn(question: dict, rng: random.Random) -> tuple[str, str]:
    """`(user, answer)` of an option lookup: the question with its options in a new random order, then
    `Which option says "X"?` for a random option X (`option_lookup`). Raises `ValueError` like `format_question`."""
    question = permute_options(question, rng)
    return option_lookup(question, rng.randrange(len(question["options"])))


def option_lookup(question: dict, index: int) -> tuple[str, str]:
    """`(user, answer)`: `question` with its options in their order, then `Which option says "X"?` for option
    `index`; the answer is `X (letter)`, the form of a multiple-choice answer (`format_answer`)."""
    option = question["options"][index]
    user = f"{format_question(question)}\n{LOOKUP_PROMPT.format(option)}"
    return user, option_answer(question, index)


def clip_describe_turns(record: dict) -> list[tuple[str, str]]:
    """`(user, answer)` per clip of a 4-clip video: `Describe what happens {time phrase}.` (the temporal-localisation
    task's phrases: clip 0 `at the beginning` ... clip 3 `at the end`) answered with that clip's ground-truth caption,
    a turn that asks the LLM to find one clip's block among the video's; none for another clip count."""
    captions = record["clip_captions"]
    if len(captions) != len(TIME_PHRASES):
        return []
    return [(CLIP_DESCRIBE_PROMPT.format(phrase), caption) for phrase, caption in zip(TIME_PHRASES, captions)]


def video_prefix(prompt: str, num_frames: int) -> str:
    """The media part of a video question: `"<video>\n"` (`prompt="video"`) or one `Frame{i}: <image>` line per
    frame (`"frames"`, `processing_langdc.frame_prompt`, the PVC/InternVL form).

    Raises:
        ValueError: for a `prompt` not in `VIDEO_PROMPTS`, or a `num_frames` below 1 with `"frames"`.
    """
    if prompt not in VIDEO_PROMPTS:
        raise ValueError(f"`prompt` must be one of {VIDEO_PROMPTS}, got {prompt!r}.")
    return "<video>\n" if prompt == "video" else import_remote("processing_langdc").frame_prompt(num_frames)


def splice_captions(ids: list[int], labels: list[int], video_token_id: int,
                    caption_ids: list[list[int]]) -> tuple[list[int], list[int]]:
    """Replace the one `<video>` placeholder of a tokenised chat by its clips' caption token ids, concatenated in
    clip order and unsupervised: the text stand-in for the soft caption tokens, which are the projected expert
    embeddings of the same ids (`soft_token_layer` 0; with `train.stages.align_caption_projector` stage 3 starts
    with them equal to these embeddings).

    Raises:
        ValueError: if `ids` does not hold exactly one `video_token_id`.
    """
    if ids.count(video_token_id) != 1:
        raise ValueError(f"Expected one <video> placeholder (id {video_token_id}), got {ids.count(video_token_id)}.")
    at = ids.index(video_token_id)
    text = [token for clip in caption_ids for token in clip]
    return ids[:at] + text + ids[at + 1 :], labels[:at] + [IGNORE_INDEX] * len(text) + labels[at + 1 :]


def sample_qa_turns(questions: list[dict], rng: random.Random, open_fraction: float,
                    first_prefix: str = "", question_format: str = "langdc", letter_binding_fraction: float = 0.0,
                    spaced_answers: bool = False) -> list[tuple[str, ...]]:
    """`(user, answer)` turns of `questions` in a random order; each is asked open-ended with probability
    `open_fraction`, else as multiple choice (in `question_format`) with its options in a new random order
    (`permute_options`), and then, with probability `letter_binding_fraction`, as a letter-binding turn naming a
    random wrong option (`question_turn`'s `named`); with `spaced_answers`, multiple-choice answers start with a space
    (`question_turn`'s `spaced`). `first_prefix` (the media placeholder, or captions as text) opens the first user
    turn."""
    questions = list(questions)
    rng.shuffle(questions)
    turns = []
    for question in questions:
        question = permute_options(question, rng)
        open_ended, named = rng.random() < open_fraction, None
        # drawn only when set, so runs without it keep their stream
        if letter_binding_fraction and not open_ended and rng.random() < letter_binding_fraction:
            named = rng.choice([i for i in range(len(question["options"])) if i != question["answer"]])
        turns.append(question_turn(question, open_ended, question_format, named, spaced_answers))
    turns[0] = (first_prefix + turns[0][0], *turns[0][1:])
    return turns


def focused_questions(questions: list[dict], focus_tasks: tuple[str, ...] = ()) -> list[dict]:
    """The `questions` of the first task of `focus_tasks` that has any (none if no task has one); all of them
    when `focus_tasks` is empty."""
    for task in focus_tasks:
        kept = [question for question in questions if question["task"] == task]
        if kept:
            return kept
    return [] if focus_tasks else list(questions)


def repeated_questions(questions: list[dict], task_repeats: dict[str, int]) -> list[list[dict]]:
    """The rounds in which a video's `questions` are asked in one epoch: the first round all of them, round `r`
    (from 1) those whose task is asked more than `r` times by `task_repeats` (`{task: times}`; other tasks once).
    Each round keeps `questions`' order, so a repeated question is never asked twice in one conversation."""
    rounds = max(task_repeats.values(), default=1)
    return [list(questions)] + [[question for question in questions if task_repeats.get(question["task"], 1) > r]
                                for r in range(1, rounds)]


class StageDataset(Dataset):
    """Examples of one training stage. Each item: `video` (index into the pixel cache, `None` in the text stage)
    plus stage fields.

    Args:
        records: the split's JSONL records.
        stage: one of `STAGES` except 0 (`"text"`, 1, 2 or 3).
        tokenizer: the checkpoint tokenizer (shared by the expert and the LLM).
        system_message: the LLM system prompt (`config.system_message`).
        generated_captions: stage 3 only: per video, the expert's own clip captions (token ids); when given, a
            fraction `1 - ground_truth_fraction` of the examples uses them instead of the ground truth.
        open_fraction: stage 3: share of questions asked open-ended (short answer) instead of multiple choice.
        questions_per_example: stage 3: questions of a video per conversation (0 = all of them in one).
        lookup_fraction: stage 3: share of conversations that end with one option lookup (`lookup_turn`), which
            keeps the letter binding of the text stage in use while the LLM learns to read soft tokens.
        caption_qa_fraction: text stage: share of examples that are, instead of a lookup, the stage-3
            conversation of the question's video (all its questions, the last one a lookup with probability
            `lookup_fraction`) with its ground-truth captions as text (`splice_captions`).
        video_token_id: the `<video>` placeholder id; needed when `caption_qa_fraction` > 0.
        seed: sampling seed. Text and stage-3 examples are drawn anew each time they are read (option order; stage
            3 also question order, open or multiple choice, the caption source), so epochs differ.
        frame_prompt_fraction: stage 3: share of conversations whose video is one `Frame{i}: <image>` line per
            frame (`video_prefix("frames", num_frames)`) instead of one `<video>`.
        num_frames: frames per video (`config.num_frames`); needed when `frame_prompt_fraction` > 0.
        describe_fraction: stage 3: share of conversations that open with stage 1's turn, `DESCRIBE_PROMPT`
            answered with the whole-video caption, before the questions.
        mvbench_prompt_fraction: stage 3: share of conversations whose multiple-choice questions are written as
            lmms-eval's MVBench prompt (`multiple_choice_prompt(..., "lmms-mvbench")`) instead of ours.
        clip_describe_fraction: stage 3: share of conversations that open (after the description turn, if any)
            with one clip's description asked by its time phrase (`clip_describe_turns`, a random clip).
        focus_tasks: stage 3 and the text stage: task names (`synthvid.TASKS`) in priority order; each video keeps
            only its questions of the first of them it has, and a video with none gives no example (empty: all
            questions). A task that a mixed stage 3 asks too rarely to be learned gets whole runs of its own this
            way (runs v23, v24); in the text stage, the lookups are of those questions' options only (run v29).
        rename_fraction: stage 3: share of the conversations on ground-truth captions in which one colour or shape
            word of the video's captions (`RENAMEABLE_WORDS`) is written as a nonce word (`nonce_words`) in its
            captions, questions, options and answers (`rename_word`), drawn per conversation (run v42): held-out
            colour-shape pairs are read worst, and a renamed object's answer can only be copied from the captions.
        letter_binding_fraction: stage 3: share of multiple-choice turns answered by a wrong option's text, given
            and not supervised, then that option's letter, supervised (`question_turn`'s `named`): the LLM's letter
            otherwise disagrees with the option its own answer names in 8% of the answers, and for state change
            (`grows` / `shrinks`) more often than the named option is wrong (run v52).
        spaced_answers: stage 3: multiple-choice answers start with a space (`question_turn`'s `spaced`), so their
            first word is the option lines' token of it (run v53); the text stage's lookups keep their form.
        caption_input_noise: stage 2: probability with which each token of `noise_token_ids` in the expert's
            teacher-forced caption inputs is replaced by another of them, drawn uniformly, while its targets stay
            the ground truth (items get `caption_input_ids`; the model's `expert_caption_loss`): with the colour
            words, the shape after a colour must be read from the clip, not from the colour word (run v57).
        noise_token_ids: the interchangeable token ids of `caption_input_noise` (the colour words); at least two.
        recolor_fraction: stage 2: share of the items marked `recolored`, drawn each time an item is read: the
            collator gives them the video's features with its objects in novel colours and no loss on the colour
            words (`LangDCCollator.recolored_features`), so the shape words are learnt where colour cannot predict
            them (run v60).

    Raises:
        ValueError: for stage 0 or an unknown stage, a fraction outside [0, 1], `caption_qa_fraction` > 0
            without `video_token_id` or outside the text stage, `frame_prompt_fraction`, `describe_fraction`,
            `mvbench_prompt_fraction`, `clip_describe_fraction`, `rename_fraction` or `letter_binding_fraction` > 0,
            or `spaced_answers`, outside stage 3 (or the
            first without `num_frames`), `caption_input_noise` > 0 outside stage 2 or with fewer than two
            `noise_token_ids`, `recolor_fraction` > 0 outside stage 2, `focus_tasks` outside stage 3 and the text
            stage or naming an unknown task, `task_repeats` outside stage 3, naming an unknown task or asking a
            task fewer than once, or `generated_captions` as `set_generated_captions` raises.
    """

    def __init__(self, records, stage, tokenizer, system_message: str, generated_captions=None,
                 ground_truth_fraction: float = 0.0, open_fraction: float = 0.2, seed: int = 0,
                 questions_per_example: int = 0, lookup_fraction: float = 0.0, caption_qa_fraction: float = 0.0,
                 video_token_id: int | None = None, frame_prompt_fraction: float = 0.0,
                 num_frames: int | None = None, describe_fraction: float = 0.0,
                 mvbench_prompt_fraction: float = 0.0, clip_describe_fraction: float = 0.0,
                 focus_tasks: tuple[str, ...] = (), rename_fraction: float = 0.0,
                 letter_binding_fraction: float = 0.0, spaced_answers: bool = False,
                 caption_input_noise: float = 0.0, noise_token_ids: tuple[int, ...] = (),
                 recolor_fraction: float = 0.0, task_repeats: dict[str, int] | None = None):
        if stage not in STAGES[1:]:
            raise ValueError(f"`stage` must be one of {STAGES[1:]}, got {stage!r}.")
        for name, value in (("ground_truth_fraction", ground_truth_fraction), ("open_fraction", open_fraction),
                            ("lookup_fraction", lookup_fraction), ("caption_qa_fraction", caption_qa_fraction),
                            ("frame_prompt_fraction", frame_prompt_fraction), ("describe_fraction", describe_fraction),
                            ("mvbench_prompt_fraction", mvbench_prompt_fraction),
                            ("clip_describe_fraction", clip_describe_fraction), ("rename_fraction", rename_fraction),
                            ("letter_binding_fraction", letter_binding_fraction),
                            ("caption_input_noise", caption_input_noise), ("recolor_fraction", recolor_fraction)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
        if caption_qa_fraction > 0 and (stage != TEXT_STAGE or video_token_id is None):
            raise ValueError("`caption_qa_fraction` > 0 belongs to the text stage and needs `video_token_id`.")
        stage_three = (frame_prompt_fraction, describe_fraction, mvbench_prompt_fraction, clip_describe_fraction,
                       rename_fraction, letter_binding_fraction)
        if (any(fraction > 0 for fraction in stage_three) or spaced_answers) and stage != 3:
            raise ValueError("`frame_prompt_fraction`, `describe_fraction`, `mvbench_prompt_fraction`, "
                             "`clip_describe_fraction`, `rename_fraction`, `letter_binding_fraction` and "
                             "`spaced_answers` belong to stage 3.")
        if recolor_fraction > 0 and stage != 2:
            raise ValueError(f"`recolor_fraction` > 0 belongs to stage 2, got stage {stage!r}.")
        if caption_input_noise > 0 and (stage != 2 or len(set(noise_token_ids)) < 2):
            raise ValueError(f"`caption_input_noise` > 0 belongs to stage 2 and needs at least two distinct "
                             f"`noise_token_ids`, got stage {stage!r} and {tuple(noise_token_ids)}.")
        if focus_tasks and (stage not in (3, TEXT_STAGE) or not set(focus_tasks) <= set(TASKS)):
            raise ValueError(f"`focus_tasks` belongs to stage 3 and the text stage and takes tasks of {TASKS}, got "
                             f"{focus_tasks} for stage {stage!r}.")
        task_repeats = dict(task_repeats or {})
        if task_repeats and (stage != 3 or not set(task_repeats) <= set(TASKS)
                             or any(not isinstance(times, int) or times < 1 for times in task_repeats.values())):
            raise ValueError(f"`task_repeats` belongs to stage 3 and maps tasks of {TASKS} to a number of asks >= 1, "
                             f"got {task_repeats} for stage {stage!r}.")
        if frame_prompt_fraction > 0 and not num_frames:
            raise ValueError("`frame_prompt_fraction` > 0 needs `num_frames`.")
        self.stage = stage
        self.tokenizer = tokenizer
        self.system_message = system_message
        # a text stage of lookups only reads no captions
        reads_captions = stage != TEXT_STAGE or caption_qa_fraction > 0
        self.clip_caption_ids = [clip_caption_ids(tokenizer, r) for r in records] if reads_captions else []
        self.ground_truth_fraction = ground_truth_fraction
        self.open_fraction = open_fraction
        self.lookup_fraction = lookup_fraction
        self.caption_qa_fraction = caption_qa_fraction
        self.video_token_id = video_token_id
        self.frame_prompt_fraction = frame_prompt_fraction
        self.num_frames = num_frames
        self.describe_fraction = describe_fraction
        self.mvbench_prompt_fraction = mvbench_prompt_fraction
        self.clip_describe_fraction = clip_describe_fraction
        self.rename_fraction = rename_fraction
        self.letter_binding_fraction = letter_binding_fraction
        self.spaced_answers = spaced_answers
        self.caption_input_noise = caption_input_noise
        self.recolor_fraction = recolor_fraction
        self.noise_token_ids = tuple(sorted(set(noise_token_ids)))
        self.nonce_words = nonce_words(tokenizer) if rename_fraction > 0 else []
        # the most tokens a nonce word takes (after its space token), for the context bound
        self._nonce_tokens = max((len(tokenizer(word, add_special_tokens=False)["input_ids"])
                                  for word in self.nonce_words), default=0)
        self.records = records
        self.generated = None
        if generated_captions is not None:
            self.set_generated_captions(generated_captions)
        self.rng = random.Random(seed)  # text and stage-3 examples are drawn when they are read
        self._worker_seed = None  # the DataLoader worker seed `rng` was last re-seeded with
        self._text_lengths = None  # `_longest_texts`, once counted
        self.items = []
        for index, record in enumerate(records):
            if stage == TEXT_STAGE:
                self.items += [(index, question) for question in focused_questions(record["questions"], focus_tasks)]
            elif stage == 1:
                self.items.append((index, chat_example(tokenizer, system_message, f"<video>\n{DESCRIBE_PROMPT}",
                                                       record["video_caption"])))
            elif stage == 2:
                self.items.append((index, None))
            else:
                questions = focused_questions(record["questions"], focus_tasks)
                if not questions:
                    continue
                self.rng.shuffle(questions)
                size = questions_per_example or len(questions)
                for asked in repeated_questions(questions, task_repeats):
                    self.items += [(index, asked[start : start + size]) for start in range(0, len(asked), size)]

    def set_generated_captions(self, generated_captions: list[list[list[int]]]) -> None:
        """Stage 3: per video, the expert's own clip captions (token ids), which a fraction
        `1 - ground_truth_fraction` of the examples reads from now on instead of the ground truth.

        Raises:
            ValueError: outside stage 3, or when there is not one list of clip captions per video.
        """
        if self.stage != 3:
            raise ValueError(f"Generated captions belong to stage 3, this dataset is stage {self.stage!r}.")
        if len(generated_captions) != len(self.records):
            raise ValueError(f"`generated_captions` has {len(generated_captions)} videos, the dataset "
                             f"{len(self.records)}.")
        self.generated = generated_captions

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self._reseed_in_worker()
        video, content = self.items[i]
        input_ids = labels = captions = fed = None
        recolored = False
        if self.stage == TEXT_STAGE:
            # draw only when mixing, so a lookup-only text stage keeps run v4's example stream
            if self.caption_qa_fraction and self.rng.random() < self.caption_qa_fraction:
                input_ids, labels = splice_captions(*self._qa_conversation(self.records[video]["questions"]),
                                                    self.video_token_id, self.clip_caption_ids[video])
            else:
                input_ids, labels = chat_conversation(self.tokenizer, self.system_message,
                                                      [lookup_turn(content, self.rng)])
            video = None  # no media
        elif self.stage == 1:
            (input_ids, labels), captions = content, [[] for _ in self.clip_caption_ids[video]]  # pool tokens only
        elif self.stage == 2:
            captions = self.clip_caption_ids[video]
            fed = self._noised_inputs(captions) if self.caption_input_noise else None
            recolored = bool(self.recolor_fraction) and self.rng.random() < self.recolor_fraction
        else:
            record, questions, captions = self.records[video], content, None
            if self.rename_fraction:  # the caption source first: only conversations on the ground truth are renamed
                captions = self._drawn_captions(video)
                if captions is self.clip_caption_ids[video] and self.rng.random() < self.rename_fraction:
                    record, questions = self._renamed(record, questions)
                    captions = clip_caption_ids(self.tokenizer, record)
            input_ids, labels = self._video_conversation(record, questions)
            if captions is None:
                captions = self._drawn_captions(video)
        return {"video": video, "input_ids": input_ids, "labels": labels, "caption_ids": captions,
                "caption_input_ids": fed, "recolored": recolored}

    def _noised_inputs(self, captions: list[list[int]]) -> list[list[int]]:
        """The expert's teacher-forced inputs for `captions` (stage 2): each token of `noise_token_ids` replaced,
        with probability `caption_input_noise`, by another of them drawn uniformly."""
        swappable = self.noise_token_ids
        return [[self.rng.choice([other for other in swappable if other != token])
                 if token in swappable and self.rng.random() < self.caption_input_noise else token
                 for token in clip] for clip in captions]

    def longest_input(self, pool_tokens: int, placeholder_ids: tuple[int, ...], captions: bool = True
                      ) -> tuple[int, int]:
        """`(tokens, item)`: the most LLM input tokens a stage-3 item can draw, and that item, so that a run stops
        before its first step rather than at the step that draws it (the model raises `ValueError` for an input
        longer than the LLM context).

        Each item is counted with every optional part its fractions allow (the `Frame{i}` lines, the description
        turn, the longest clip description, a lookup of its longest option) and each question in its longest
        allowed form (open, ours or lmms-eval's multiple-choice prompt); its media placeholders (`placeholder_ids`)
        count as `pool_tokens` (pool-branch tokens per video) plus, with `captions` (a model with an expert), the
        longer of its video's ground-truth and generated captions, as the model splices them; with `rename_fraction`,
        a conversation on the ground truth is also counted renamed (`_longest_renamed`). The chat template's special
        tokens delimit every text, so a conversation's length is its texts' token counts plus the template's
        (`chat_template_tokens`), and the longest form of each turn gives the longest conversation. The text part is
        counted once per dataset (`_longest_texts`): a second call, after `set_generated_captions`, only adds the
        captions again.

        Raises:
            ValueError: outside stage 3.
        """
        if self.stage != 3:
            raise ValueError(f"`longest_input` is for stage-3 conversations, this dataset is stage {self.stage!r}.")
        prefix = video_prefix("frames" if self.frame_prompt_fraction > 0 else "video", self.num_frames)
        prefix_ids = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        fixed = chat_template_tokens(self.tokenizer, self.system_message)[0]
        fixed += len(prefix_ids) - sum(prefix_ids.count(i) for i in placeholder_ids) + pool_tokens
        sources = [{"ground truth": self.clip_caption_ids, "expert": self.generated}[name]
                   for name in self.caption_sources()]
        renamed = self.rename_fraction > 0 and "ground truth" in self.caption_sources()
        longest, texts = (0, -1), self._longest_texts()
        for item, ((video, _), (plain, renamed_text, caption_growth)) in enumerate(zip(self.items, texts)):
            length = plain + (max(sum(map(len, source[video])) for source in sources) if captions else 0)
            if renamed:  # renamed conversations read the ground-truth captions, renamed too
                truth = sum(map(len, self.clip_caption_ids[video])) + caption_growth if captions else 0
                length = max(length, renamed_text + truth)
            longest = max(longest, (fixed + length, item))
        return longest

    def caption_sources(self) -> list[str]:
        """The clip captions stage-3 items can draw: `"ground truth"` and/or `"expert"` (the generated captions,
        once `set_generated_captions` gave them, for a `ground_truth_fraction` below 1)."""
        drawn = (("ground truth", self.generated is None or self.ground_truth_fraction > 0),
                 ("expert", self.generated is not None and self.ground_truth_fraction < 1))
        return [name for name, used in drawn if used]

    def _longest_texts(self) -> list[tuple[int, int, int]]:
        """Per stage-3 item, the tokens of its longest conversation without media: every optional turn its fractions
        allow, each turn in its longest form, plus the chat template's tokens per turn (computed once); as
        `(plain, renamed, caption_growth)`: as drawn, and with `rename_fraction` renamed (`_longest_renamed`; else
        `plain, 0`)."""
        if self._text_lengths is not None:
            return self._text_lengths
        per_turn = chat_template_tokens(self.tokenizer, self.system_message)[1]
        formats = [fmt for fmt, used in (("langdc", self.mvbench_prompt_fraction < 1),
                                         ("lmms-mvbench", self.mvbench_prompt_fraction > 0)) if used]
        open_forms = [open_ended for open_ended, used in ((True, self.open_fraction > 0),
                                                          (False, self.open_fraction < 1)) if used]
        self._text_lengths = []
        for video, questions in self.items:
            # alternatives per turn: each question's forms (multiple choice also naming each option, when letters
            # are bound), then the lookups of every option, then the descriptions
            named = range(len(questions[0]["options"])) if self.letter_binding_fraction > 0 else ()
            spaced = self.spaced_answers
            alternatives = [[question_turn(q, open_ended, fmt, None, spaced) for open_ended in open_forms
                             for fmt in formats]
                            + [question_turn(q, False, fmt, i, spaced)[:2] for fmt in formats for i in named]
                            for q in questions]
            if self.lookup_fraction > 0:
                alternatives.append([option_lookup(q, i) for q in questions for i in range(len(q["options"]))])
            if self.describe_fraction > 0:
                alternatives.append([(DESCRIBE_PROMPT, self.records[video]["video_caption"])])
            if self.clip_describe_fraction > 0 and (clips := clip_describe_turns(self.records[video])):
                alternatives.append(clips)
            texts = [text for turns in alternatives for turn in turns for text in turn]
            counts = iter(map(len, self.tokenizer(texts, add_special_tokens=False)["input_ids"]))
            tokens = [[next(counts) + next(counts) for _ in turns] for turns in alternatives]
            template = per_turn * len(alternatives)
            renamed, caption_growth = (self._longest_renamed(alternatives, tokens, self.records[video]["clip_captions"])
                                       if self.rename_fraction else (0, 0))
            self._text_lengths.append((template + sum(map(max, tokens)), template + renamed, caption_growth))
        return self._text_lengths

    def _longest_renamed(self, alternatives: list[list[tuple[str, str]]], tokens: list[list[int]],
                         captions: list[str]) -> tuple[int, int]:
        """`(turn tokens, caption growth)` of the longest renamed conversation: one alternative per turn (`tokens`
        each) and the renameable word that makes turns and ground-truth `captions` longest renamed, each of its
        occurrences becoming a space token plus the longest nonce word's tokens in place of at least one token."""
        extra = self._nonce_tokens
        counts = [[Counter(RENAMEABLE_PATTERN.findall(" ".join(turn))) for turn in turns] for turns in alternatives]
        in_captions = Counter(RENAMEABLE_PATTERN.findall(" ".join(captions)))

        def renamed(word: str) -> tuple[int, int]:
            return (sum(max(length + extra * count[word] for length, count in zip(turn_tokens, turn_counts))
                        for turn_tokens, turn_counts in zip(tokens, counts)), extra * in_captions[word])

        return max(map(renamed, RENAMEABLE_WORDS), key=sum)

    def _reseed_in_worker(self) -> None:
        """In a `DataLoader` worker process, draw from a stream of its own (seeded with the worker's seed, which
        differs per worker and per epoch): forked workers would otherwise all repeat the parent's draws."""
        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self.rng, self._worker_seed = random.Random(info.seed), info.seed

    def _drawn_captions(self, video: int) -> list[list[int]]:
        """Stage 3: the clip captions a conversation of `video` reads, drawn: the ground truth (the list
        `clip_caption_ids[video]` itself) with probability `ground_truth_fraction`, else the expert's own."""
        use_truth = self.generated is None or self.rng.random() < self.ground_truth_fraction
        return self.clip_caption_ids[video] if use_truth else self.generated[video]

    def _renamed(self, record: dict, questions: list[dict]) -> tuple[dict, list[dict]]:
        """`record` (its captions and questions) and `questions` with one colour or shape word of the record's
        captions written as a nonce word (`rename_word`), both drawn: a word that `questions` name too when there
        is one, so the renamed name is asked about; unchanged when the captions name none."""
        def names(texts) -> list[str]:
            found = {word for text in texts for word in RENAMEABLE_PATTERN.findall(text)}
            return [word for word in RENAMEABLE_WORDS if word in found]  # in a fixed order: the draw depends on it

        named = names(record["clip_captions"])
        if not named:
            return record, questions
        asked = [word for word in names(nested_strings(questions)) if word in named]
        old, new = self.rng.choice(asked or named), self.rng.choice(self.nonce_words)
        texts = {key: record[key] for key in ("clip_captions", "video_caption", "questions")}
        return {**record, **rename_word(texts, old, new)}, rename_word(questions, old, new)

    def _video_conversation(self, record: dict, questions: list[dict]) -> tuple[list[int], list[int]]:
        """A stage-3 conversation of the video of `record` (`_qa_conversation`), its placeholder `Frame{i}: <image>`
        lines with probability `frame_prompt_fraction`, its first turn the description with probability
        `describe_fraction`, then one clip's description with probability `clip_describe_fraction`, and its questions
        in lmms-eval's MVBench format with probability `mvbench_prompt_fraction` (each drawn only when its fraction
        is set, so runs without them keep their stream)."""
        frames = self.frame_prompt_fraction and self.rng.random() < self.frame_prompt_fraction
        prefix = video_prefix("frames" if frames else "video", self.num_frames)
        describe = self.describe_fraction and self.rng.random() < self.describe_fraction
        first = [(DESCRIBE_PROMPT, record["video_caption"])] if describe else []
        if self.clip_describe_fraction and self.rng.random() < self.clip_describe_fraction:
            clips = clip_describe_turns(record)
            first += [self.rng.choice(clips)] if clips else []
        mvbench = self.mvbench_prompt_fraction and self.rng.random() < self.mvbench_prompt_fraction
        return self._qa_conversation(questions, prefix, first, "lmms-mvbench" if mvbench else "langdc")

    def _qa_conversation(self, questions: list[dict], prefix: str = "<video>\n", first: list[tuple[str, str]] = (),
                         question_format: str = "langdc") -> tuple[list[int], list[int]]:
        """A conversation: the `first` turns (if any), then `questions` (multiple choice in `question_format`),
        ending with an option lookup with probability `lookup_fraction`; `prefix` (the media placeholder) opens the
        first user turn."""
        turns = list(first) + sample_qa_turns(questions, self.rng, self.open_fraction, question_format=question_format,
                                              letter_binding_fraction=self.letter_binding_fraction,
                                              spaced_answers=self.spaced_answers)
        turns[0] = (prefix + turns[0][0], *turns[0][1:])
        if self.rng.random() < self.lookup_fraction:
            turns.append(lookup_turn(self.rng.choice(questions), self.rng))
        return chat_conversation(self.tokenizer, self.system_message, turns)


@dataclass
class LangDCCollator:
    """Batches stage items: right-padded `input_ids`/`labels`, the videos' frames concatenated as `pixel_values` (or
    their cached vision features as `image_features`), one `num_patches_list` entry (one tile per frame) and
    `data_flag=3` per sample, `caption_ids` flattened per clip (stage 2 with `caption_token_weights`: their
    `caption_weights` too; with the dataset's `caption_input_noise`: the noised `caption_input_ids`); text-stage
    items (no video) give the padded text only."""

    pixels: torch.Tensor | None  # [N_videos, T, 3, S, S] float16; None for the text stage or with `features`
    pad_token_id: int
    features: torch.Tensor | None = None  # [N_videos, T, P, D_v] float16 (`encode_videos`): used instead of pixels
    # stage 2: caption-loss weight per expert token id (others weigh 1), sent as `caption_weights`
    # (`--caption-word-weights`)
    caption_token_weights: dict[int, float] | None = None
    # stage 2 with `recolor_fraction`: the features of every video with its objects in novel colours, used for the
    # items marked `recolored`, whose tokens of `recolored_masked_ids` (the colour words) then weigh 0
    recolored_features: torch.Tensor | None = None
    recolored_masked_ids: frozenset[int] = frozenset()

    def __call__(self, items: list[dict]) -> dict:
        if items[0]["video"] is None:  # text stage: no media
            return pad_chat_batch([(item["input_ids"], item["labels"]) for item in items], self.pad_token_id)
        media, key = (self.pixels, "pixel_values") if self.features is None else (self.features, "image_features")
        recolored = [bool(item.get("recolored")) for item in items]
        if any(recolored) and (self.recolored_features is None or self.features is None):
            raise ValueError("Items marked `recolored` need the collator's `recolored_features` and `features`.")
        frames = media.shape[1]
        batch = {
            key: torch.cat([(self.recolored_features if marked else media)[item["video"]]
                            for item, marked in zip(items, recolored)]).float(),
            "num_patches_list": [[1] * frames for _ in items],
            "data_flag": [3] * len(items),
            "caption_ids": [clip for item in items for clip in item["caption_ids"]],
        }
        if items[0]["input_ids"] is not None:
            batch.update(pad_chat_batch([(item["input_ids"], item["labels"]) for item in items], self.pad_token_id))
        else:
            if self.caption_token_weights or any(recolored):
                weights = self.caption_token_weights or {}
                batch["caption_weights"] = [
                    [0.0 if marked and token in self.recolored_masked_ids else weights.get(token, 1.0)
                     for token in clip]
                    for item, marked in zip(items, recolored) for clip in item["caption_ids"]]
            if items[0].get("caption_input_ids") is not None:
                batch["caption_input_ids"] = [clip for item in items for clip in item["caption_input_ids"]]
        return batch

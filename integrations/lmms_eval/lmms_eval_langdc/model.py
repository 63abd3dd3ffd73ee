"""lmms-eval model `langdc` (simple mode): LangDC answers lmms-eval requests through its own `batch_chat`.

Videos arrive as file paths (MVBench, Video-MME, ...): the checkpoint's processor samples `max_frames_num` frames
(`processor.load_video`, segment centres, the model's tile size) and the question gets one `Frame{i}: <image>`
line per frame (InternVL/PVC convention, `data_flag=3`). Images arrive as PIL images: one `<image>` per image with
dynamic tiling (`data_flag` 1 or 2). Text-only requests have no placeholder. Requests are answered in batches of
`batch_size` with one `batch_chat` call each (one vision call, one expert `generate`, one LLM `generate`).
Each result reports the LLM's prompt length after compression as its input token count; an answer in the
checkpoint's trained form `text (L)` is handed to the task's scorer as `(L) text` (`letter_first`). `loglikelihood`
requests (lmms-eval's `multiple_choice` and `loglikelihood` tasks) are scored with the checkpoint's `score_answers`. With
`compressor=...,budget=...` every request runs under that training-free token compressor of the checkpoint
(`compression_langdc.py`), so LangDC and the compressors of the field are measured by the same harness.
"""

import re

import torch
from accelerate import PartialState
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms
from lmms_eval.utils import handle_arg_string
from PIL import Image
from tqdm import tqdm
from transformers import AutoModel, AutoProcessor, AutoTokenizer

# the `data_flag` values of the checkpoint's `batch_chat` (PVC's convention; processing_langdc.DATA_FLAG_*), restated:
# the plug-in imports no remote code of its own, only what `from_pretrained` loads
DATA_FLAG_TEXT, DATA_FLAG_IMAGE, DATA_FLAG_MULTI_IMAGE, DATA_FLAG_VIDEO = 0, 1, 2, 3
GENERATION_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "num_beams", "repetition_penalty")
PLACEHOLDERS = ("<image>", "<video>")
COMPRESSOR_OPTION_PREFIX = "compressor_"  # model args `compressor_<option>=value` -> compressor_options


def generation_settings(gen_kwargs: dict) -> tuple[dict, list[str]]:
    """Split lmms-eval `gen_kwargs` into LLM generation settings and the `until` stop strings.

    `temperature: 0` means greedy decoding (`do_sample=False`, no temperature); keys that are not generation
    settings (lmms-eval adds some) are dropped.
    """
    until = gen_kwargs.get("until") or []
    until = [until] if isinstance(until, str) else list(until)
    settings = {key: gen_kwargs[key] for key in GENERATION_KEYS if key in gen_kwargs}
    if settings.get("temperature") == 0:
        settings.pop("temperature")
        settings["do_sample"] = False
    if not settings.get("do_sample"):
        settings.pop("top_p", None)
        settings.pop("top_k", None)
    return settings, until


def compression_settings(compressor: str | None, budget, options: dict) -> dict:
    """The `compressor` / `budget` / `compressor_options` keyword arguments of the checkpoint's `batch_chat` and
    `score_answers` from the plug-in's model args (`options`: the `compressor_<option>` ones); empty without
    a compressor.

    Raises:
        ValueError: for a `budget` that is not a number in (0, 1], or a `budget` or option without `compressor`.
    """
    # lmms-eval's `--model_args` parser has typed the values already; a direct call may pass strings
    options = {key[len(COMPRESSOR_OPTION_PREFIX):]: handle_arg_string(value) if isinstance(value, str) else value
               for key, value in options.items()}
    if compressor is None:
        if budget is not None or options:
            raise ValueError("model_args `budget` / `compressor_<option>` need a `compressor`.")
        return {}
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        raise ValueError(f"model_arg `budget` must be a number in (0, 1] with `compressor`, got {budget!r}.") from None
    if not 0 < budget <= 1:
        raise ValueError(f"model_arg `budget` must be in (0, 1], got {budget}.")
    return {"compressor": compressor, "budget": budget, "compressor_options": options or None}


# an answer in the form LangDC checkpoints are trained to give: the option's text, then its letter in parentheses
TEXT_THEN_LETTER = re.compile(r"(?s)(?P<text>.*?)\s*\((?P<letter>[A-Z])\)")


def letter_first(text: str) -> str:
    """A `text (L)` answer written `(L) text`; any other response unchanged.

    Multiple-choice scorers of lmms-eval read an answer's letter as its first standalone letter (MVBench's
    `mcq_acc`, case-insensitively), so `a red circle appears (C)` would count as (A); written option first, as
    MVBench's own answers are (`(C) a red circle appears`), it counts as the letter the model chose. The choice is
    not changed, only where the letter stands."""
    match = TEXT_THEN_LETTER.fullmatch(text.strip())
    if match is None:
        return text
    return f"({match['letter']}) {match['text'].strip()}".strip()


def cut_at_stop_strings(text: str, until: list[str]) -> str:
    """`text` up to the first occurrence of any stop string (lmms-eval's `until`)."""
    for stop in until:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


class LangDC(lmms):
    """lmms-eval wrapper of a LangDC checkpoint.

    Model args (`--model_args k=v,...`):
        pretrained: checkpoint folder or Hub id (loaded with `trust_remote_code=True`).
        max_frames_num: frames sampled per video (default: the checkpoint's `num_frames`).
        dtype: `bfloat16` (default), `float16` or `float32`.
        attn_implementation: `sdpa`, `eager` or `flash_attention_2` (default: the model's choice).
        compressor, budget: a training-free compressor of the pool-branch tokens (`dycoke`, `holitom`, `fastv`,
            `divprune`, `visionzip`, `fastervlm`, `pool`) and the fraction of those tokens it keeps, in (0, 1].
            Inner-LLM pruning (`fastv`, DyCoke's KV pruning, HoliTom's inner merge) needs `batch_size=1` and is
            refused for `loglikelihood` requests.
        compressor_<option>: a method option, e.g. `compressor_layer=2` (FastV's K), `compressor_kv_prune=0`.
        letter_first: write `text (L)` answers as `(L) text` for the task's scorer (default True; `letter_first`).
        batch_size, device: from lmms-eval's `--batch_size` / `--device` (default: accelerate's device).

    Raises:
        ValueError: for an unknown model arg, a bad `batch_size`, `max_frames_num`, `dtype` or `budget`, a
            `budget` or `compressor_<option>` without `compressor`, or a request with more than one video (and, from
            the checkpoint, an unknown compressor or option).
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        max_frames_num: int | None = None,
        dtype: str = "bfloat16",
        attn_implementation: str | None = None,
        batch_size: int | str = 1,
        device: str | None = None,
        max_batch_size: int | None = None,
        compressor: str | None = None,
        budget: float | str | None = None,
        letter_first: bool | str = True,
        **kwargs,
    ) -> None:
        super().__init__()
        unknown = [key for key in kwargs if not key.startswith(COMPRESSOR_OPTION_PREFIX)]
        if unknown:
            raise ValueError(f"Unknown model_args for langdc: {sorted(unknown)}.")
        self.compression = compression_settings(compressor, budget, kwargs)
        letter_first = handle_arg_string(letter_first) if isinstance(letter_first, str) else letter_first
        if not isinstance(letter_first, bool):
            raise ValueError(f"letter_first must be True or False, got {letter_first!r}.")
        self.letter_first = letter_first
        if dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be bfloat16, float16 or float32, got {dtype!r}.")
        try:
            self.batch_size_per_gpu = int(batch_size)
        except (TypeError, ValueError):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.") from None
        if self.batch_size_per_gpu < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        state = PartialState()
        self._rank, self._world_size = state.process_index, state.num_processes
        self._device = torch.device(device) if device else state.device
        load_kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.model = AutoModel.from_pretrained(
            pretrained, dtype=getattr(torch, dtype), trust_remote_code=True, **load_kwargs
        ).to(self._device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(pretrained, trust_remote_code=True)
        self.processor = AutoProcessor.from_pretrained(pretrained, trust_remote_code=True)
        self.max_frames_num = int(max_frames_num) if max_frames_num is not None else self.model.config.num_frames
        if self.max_frames_num < 1:
            raise ValueError(f"max_frames_num must be >= 1, got {max_frames_num!r}.")

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> torch.device:
        return self._device

    def prepare(self, contexts: str, doc_to_visual, doc_id, task: str, split: str):
        """Pixel values, the question with its placeholders, tiles per image/frame and the data flag of one request."""
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual is not None else []
        visuals = [v for v in (visuals or []) if v is not None]
        has_placeholder = any(p in contexts for p in PLACEHOLDERS)
        videos = [v for v in visuals if isinstance(v, str)]
        if videos:
            if len(visuals) != 1:
                raise ValueError(f"{task} doc {doc_id}: LangDC takes one video per question, got {len(visuals)} visuals.")
            pixel_values, num_patches_list = self.processor.load_video(videos[0], num_segments=self.max_frames_num)
            # InternVL's frame lines (`processor.frame_prompt` in current checkpoints), written here so that the
            # plug-in also runs checkpoints whose remote code predates that method
            prefix = "".join(f"Frame{i + 1}: <image>\n" for i in range(len(num_patches_list)))
            return pixel_values, ("" if has_placeholder else prefix) + contexts, num_patches_list, DATA_FLAG_VIDEO
        images = [v.convert("RGB") for v in visuals if isinstance(v, Image.Image)]
        if images:
            tiles = [self.processor.load_image(image) for image in images]
            if len(images) == 1:
                prefix, flag = "<image>\n", DATA_FLAG_IMAGE
            else:
                prefix, flag = "".join(f"Image-{i + 1}: <image>\n" for i in range(len(images))), DATA_FLAG_MULTI_IMAGE
            question = ("" if has_placeholder else prefix) + contexts
            return torch.cat(tiles), question, [len(t) for t in tiles], flag
        return None, contexts, [], DATA_FLAG_TEXT

    def answer(self, requests: list[Instance]) -> list[GenerationResult]:
        """Answer requests that share their `gen_kwargs` in one `batch_chat` call."""
        settings, until = generation_settings(requests[0].args[1])
        prepared = [self.prepare(contexts, doc_to_visual, doc_id, task, split)
                    for contexts, _, doc_to_visual, doc_id, task, split in (r.args for r in requests)]
        pixels = [p for p, _, _, _ in prepared if p is not None]
        pixel_values = torch.cat(pixels).to(self._device, self.model.dtype) if pixels else None
        responses, infos = self.model.batch_chat(
            self.tokenizer, pixel_values, [q for _, q, _, _ in prepared], settings,
            num_patches_list=[n for _, _, n, _ in prepared] if pixels else None,
            data_flag=[f for _, _, _, f in prepared] if pixels else None, return_info=True, **self.compression,
        )
        results = []
        for response, info in zip(responses, infos):
            text = cut_at_stop_strings(response, until)
            text = letter_first(text) if self.letter_first else text
            output_tokens = len(self.tokenizer(text, add_special_tokens=False).input_ids)
            counts = TokenCounts(input_tokens=info.text_tokens + info.visual_tokens, output_tokens=output_tokens)
            results.append(GenerationResult(text=text, token_counts=counts))
        return results

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        results = []
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="LangDC responding")
        start = 0
        while start < len(requests):
            end = start + 1
            while (end < len(requests) and end - start < self.batch_size
                   and requests[end].args[1] == requests[start].args[1]):
                end += 1
            results.extend(self.answer(requests[start:end]))
            progress.update(end - start)
            start = end
        progress.close()
        return results

    def continuation(self, request: Instance) -> tuple[str, str, object, object, str | None, str | None]:
        """`(context, continuation, doc_to_visual, doc_id, task, split)` of a `loglikelihood` request.

        `multiple_choice` tasks send each option as a string after the task's `target_delimiter` (a space by
        default), `loglikelihood` tasks their `doc_to_target` function; the unconditional requests of
        `acc_mutual_info` are `(context, continuation)` pairs without media. The delimiter's leading whitespace is
        dropped: the continuation opens the assistant's turn of the chat template, as the model writes answers.

        Raises:
            ValueError: for a continuation that is not a string or is empty.
        """
        if len(request.args) == 2:
            (context, target), (doc_to_visual, doc_id, task, split) = request.args, (None, None, None, None)
        else:
            context, target, doc_to_visual, doc_id, task, split = request.args
        if callable(target):
            target = target(self.task_dict[task][split][doc_id])
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"{task} doc {doc_id}: the continuation to score must be a non-empty string, got "
                             f"{target!r:.80}.")
        return context, target.lstrip(), doc_to_visual, doc_id, task, split

    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        """Score each request's continuation after its context with the checkpoint's `score_answers` (no
        end-of-turn token: lmms-eval scores the continuation alone). Requests on the same document and context (the
        options of one multiple-choice question) share one media encoding and one prefill.

        Each result is `(negative log-likelihood in nats, is_greedy)`: lmms-eval's `multiple_choice` scoring picks
        the option with the *smallest* first value (`np.argmin`, because its models return a loss; lmms-eval issue
        #370), so the summed negative log-likelihood makes it pick the most likely option. The pair is wrapped in a
        `GenerationResult`, which the evaluator passes through as it is (0.7.3's `unwrap_generation_output` turns a
        plain tuple into its string).
        """
        groups: dict[tuple, list[int]] = {}
        parsed = [self.continuation(request) for request in requests]
        for index, (context, _, _, doc_id, task, split) in enumerate(parsed):
            groups.setdefault((task, split, doc_id, context), []).append(index)
        results: list[GenerationResult | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="LangDC scoring")
        for (task, split, doc_id, context), indices in groups.items():
            doc_to_visual = parsed[indices[0]][2] if doc_id is not None else None
            pixel_values, question, num_patches_list, flag = self.prepare(context, doc_to_visual, doc_id, task, split)
            if pixel_values is not None:
                pixel_values = pixel_values.to(self._device, self.model.dtype)
            scores = self.model.score_answers(
                self.tokenizer, pixel_values, question, [parsed[i][1] for i in indices],
                num_patches_list=num_patches_list or None, data_flag=flag if pixel_values is not None else None,
                end_of_turn=False, **self.compression,
            )
            for index, score in zip(indices, scores):
                results[index] = GenerationResult(text=(-score.log_likelihood, score.is_greedy))
            progress.update(len(indices))
        progress.close()
        return results

    def generate_until_multi_round(self, requests: list[Instance]):
        raise NotImplementedError("LangDC's lmms-eval wrapper does not implement multi-round generation.")

"""LangDC: a video LLM whose lightweight language expert compresses each clip into soft caption tokens.

Method: "Seeing More, Saying More: Lightweight Language Experts are Dynamic Video Token Compressors"
(arXiv 2509.00969), official code `NIneeeeeem/LangDC`. The expert *describes* each clip;
the vectors of exactly the generated caption tokens (EOS excluded) become that clip's tokens in the LLM, so a
busy clip gets many tokens and a static clip few. The chat API follows PVC/InternVL (`chat`, `batch_chat`,
`data_flag`, `num_patches_list`).

Data flow, for a batch of samples:
  1. all tiles/frames of all samples -> vision tower, one call -> patch features `[F, P, D_v]`;
  2. expert branch: `expert_projector` -> avg-pool to `expert_pool_grid` -> one clip = its tiles/frames (with
     `expert_token_layout="tubelets"`: avg-pool -> each cell's frames concatenated -> `expert_projector`);
     all clips of all samples are captioned in ONE batched expert `generate` (greedy, explicit EOS ids);
  3. soft tokens: vectors of the generated caption tokens at `soft_token_layer` -> `caption_projector`;
  4. pool branch (dual model): `pool_projector` -> avg-pool to `pool_grid` -> fixed tokens per tile/frame;
  5. the blocks are spliced at the media placeholders, the batch is left-padded, the LLM generates.

Two-encoder layout (official release, `config.video_config` set): the vision tower is the CLIP context encoder
and `video_model` (InternVideo2, `video_encoder_langdc.py`) encodes each clip's frames as one chunk from
`video_pixel_values`. The video features get their own projectors and grids; a clip's expert input is
`[context tokens | video tokens]` and the pool branch adds `[context pool | video pool]` blocks.
"""

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.generation import LogitsProcessor, LogitsProcessorList
from transformers.modeling_outputs import ModelOutput
from transformers.utils import logging

from .compression_langdc import VisualTokens, get_compressor, received_attention
from .configuration_langdc import LangDCConfig
from .flops_langdc import decoder_decode_flops, decoder_prefill_flops, decoder_prefill_flops_fastv
from .processing_langdc import DATA_FLAG_IMAGE, DATA_FLAG_MULTI_IMAGE, DATA_FLAG_TEXT, DATA_FLAG_VIDEO
from .video_encoder_langdc import InternVideo2Model

logger = logging.get_logger(__name__)

IGNORE_INDEX = -100
DATA_FLAGS = (DATA_FLAG_TEXT, DATA_FLAG_IMAGE, DATA_FLAG_MULTI_IMAGE, DATA_FLAG_VIDEO)
POOL, VIDEO_POOL, CAPTION = "pool", "video_pool", "caption"


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class LangDCInfo:
    """What one sample of a `chat` / `batch_chat` / `generate` call cost and what the expert said.

    Attributes:
        tokens_per_clip: soft caption tokens given to the LLM for each clip, in clip order.
        captions: the expert's decoded caption of each clip (filled when a tokenizer is known).
        caption_ids: the expert's generated token ids of each clip (EOS excluded).
        visual_tokens: all visual tokens spliced into the LLM prompt (pool + caption tokens).
        pool_tokens: of which fixed pool-branch tokens (0 for the cap-only model).
        full_visual_tokens: tokens an uncompressed model with the same encoders would receive: every patch
            token of every tile/frame (`tiles x config.full_tokens_per_tile`, both encoders when there are two).
        text_tokens: non-visual prompt tokens.
        num_frames / num_clips: tiles or frames encoded, clips captioned.
        repeated_frames: frames that repeat an earlier frame index because the video was shorter than the
            requested frame count (from the `video_metadata` given to `chat`; 0 when unknown).
        llm_prefill_flops: exact LLM prefill FLOPs of the prompt (`flops_langdc.decoder_prefill_flops`).
        llm_prefill_flops_fastv: the same in the FastV/DyCoke convention `L(4nd^2 + 2n^2d + 2ndm)`.
        expert_flops: expert prefill + caption decode FLOPs of this sample's clips (exact formula).
        timings: seconds of the whole batched call (shared by its samples): `vision`, `expert`, `compressor`
            (training-free compressor before the LLM, incl. its vision-attention hook), `llm_prefill` (LLM time to
            first token), `llm_decode`, `total`.
        compressor / budget: the training-free compressor of the call (`compression_langdc.py`) and its budget
            (None without one).
        uncompressed_pool_tokens: pool-branch tokens before that compressor (equal to `pool_tokens` without one).
        llm_layer_tokens: prompt tokens each LLM layer processed at prefill (differs between layers for inner
            methods such as FastV); the prefill FLOPs are summed over these lengths.
        compressor_stats: what the compressor reports (e.g. FastV's kept positions, HoliTom's segments).
    """

    tokens_per_clip: list[int] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    caption_ids: list[list[int]] = field(default_factory=list)
    visual_tokens: int = 0
    pool_tokens: int = 0
    full_visual_tokens: int = 0
    text_tokens: int = 0
    num_frames: int = 0
    num_clips: int = 0
    repeated_frames: int = 0
    llm_prefill_flops: int = 0
    llm_prefill_flops_fastv: int = 0
    expert_flops: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    compressor: str | None = None
    budget: float | None = None
    uncompressed_pool_tokens: int = 0
    llm_layer_tokens: list[int] = field(default_factory=list)
    compressor_stats: dict = field(default_factory=dict)

    @property
    def compression_ratio(self) -> float:
        """`visual_tokens / full_visual_tokens` (0 when there is no media)."""
        return self.visual_tokens / self.full_visual_tokens if self.full_visual_tokens else 0.0


class AnswerScore(NamedTuple):
    """How likely the LLM finds one candidate answer ([`LangDCForConditionalGeneration.score_answers`]).

    Attributes:
        log_likelihood: sum over the answer's tokens of their log-probability, in nats (lmms-eval's `loglikelihood`).
        num_tokens: the answer's tokens (with the end-of-turn token when it was scored).
        is_greedy: every answer token is the LLM's most likely token after the ones before it (greedy decoding
            would write the answer).
    """

    log_likelihood: float
    num_tokens: int
    is_greedy: bool


@dataclass
class LangDCCausalLMOutputWithPast(ModelOutput):
    """Output of [`LangDCForConditionalGeneration.forward`].

    Attributes:
        loss: next-token cross-entropy of the LLM on `labels` (visual positions ignored), shape `()`.
        logits: `[B, L, V]` LLM logits over the spliced sequence (L = text + visual tokens).
        past_key_values: the LLM KV cache.
        hidden_states / attentions: as returned by the LLM.
        attention_mask: `[B, L]` mask of the spliced, left-padded sequence.
        tokens_per_clip: soft caption tokens per clip, per sample.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    past_key_values: object | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_mask: torch.LongTensor | None = None
    tokens_per_clip: list | None = None


@dataclass
class _MediaPlan:
    """Where every clip's tiles are in `pixel_values` and which blocks each placeholder receives."""

    clip_tiles: list[tuple[int, int]]  # [start, end) tile range of each clip, all samples, clip order
    clip_sample: list[int]  # sample index of each clip
    placeholder_blocks: list[list[list[tuple[str, int]]]]  # per sample, per placeholder: [(block kind, clip)]
    tiles_per_sample: list[int]
    clip_is_video: list[bool]  # frames of a video (one chunk) or tiles of an image
    clip_frames: list[int]  # frames of each clip (1 for an image: its tiles are one frame)

    def video_clip_times(self) -> dict[int, float]:
        """Relative centre time in (0, 1) of every video clip (clip index -> time): the middle of its frames over
        its video's frame span. Image clips are left out."""
        sample_starts = {}
        for clip, ((start, _), sample) in enumerate(zip(self.clip_tiles, self.clip_sample)):
            sample_starts.setdefault(sample, start)
        return {
            clip: ((start + end) / 2 - sample_starts[sample]) / self.tiles_per_sample[sample]
            for clip, ((start, end), sample, is_video) in enumerate(
                zip(self.clip_tiles, self.clip_sample, self.clip_is_video))
            if is_video
        }


@dataclass
class _Media:
    """Encoded media of a batch: per-clip soft tokens (LLM dim), per-clip pool tokens and the expert's ids."""

    plan: _MediaPlan
    caption_tokens: list[torch.Tensor]  # [k_clip, D_llm] per clip
    pool_tokens: list[torch.Tensor] | None  # [tiles * pool_grid^2, D_llm] per clip
    video_pool_tokens: list[torch.Tensor] | None  # [frames * video_pool_grid^2, D_llm] per clip (two encoders)
    caption_ids: list[list[int]]
    expert_prompt_lengths: list[int]
    timings: dict[str, float]
    uncompressed_pool_tokens: list[int] = field(default_factory=list)  # per clip, before a compressor

    def block(self, kind: str, clip: int) -> torch.Tensor:
        """The `[n, D_llm]` tokens of one block (`POOL`, `VIDEO_POOL` or `CAPTION`) of one clip."""
        return {POOL: self.pool_tokens, VIDEO_POOL: self.video_pool_tokens, CAPTION: self.caption_tokens}[kind][clip]

    def pool_token_count(self, clips: list[int]) -> int:
        """Fixed pool-branch tokens (context + video) of the given clips."""
        branches = [tokens for tokens in (self.pool_tokens, self.video_pool_tokens) if tokens is not None]
        return sum(tokens[c].shape[0] for tokens in branches for c in clips)


class _PrefillTimer(LogitsProcessor):
    """Records when the LLM's first logits exist: the end of prefill (time to first token)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.first_logits_at = None

    def __call__(self, input_ids, scores):
        if self.first_logits_at is None:
            _synchronize(self.device)
            self.first_logits_at = time.perf_counter()
        return scores


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------
def build_projector(projector_type: str, in_dim: int, out_dim: int) -> nn.Module:
    """`linear`: `Linear(in, out)`; `mlp2x_gelu`: `Linear(in, out) -> GELU -> Linear(out, out)`.

    The module layout (bare `weight`/`bias`, or `0.*`/`2.*`) matches the official LangDC/LLaVA projector keys
    (official `langdc/model/multimodal_projector/builder.py`). Raises `ValueError` for an unknown type.
    """
    if projector_type == "linear":
        return nn.Linear(in_dim, out_dim)
    if projector_type == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise ValueError(f"Unknown projector type {projector_type!r}; expected 'linear' or 'mlp2x_gelu'.")


def pool_patch_tokens(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """Adaptive average pooling of each tile's square patch grid: `[n, P, D] -> [n, grid*grid, D]`.

    Same operation as the official `apply_adaptive_avg_pooling` (`langdc/model/arch.py`), applied after projection.

    Raises:
        ValueError: if `P` is not a perfect square.
    """
    n, num_patches, dim = tokens.shape
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"Cannot pool {num_patches} patch tokens: not a square grid.")
    grid_tokens = tokens.transpose(1, 2).reshape(n, dim, side, side)
    pooled = F.adaptive_avg_pool2d(grid_tokens, grid)
    return pooled.flatten(2).transpose(1, 2)


class ClipTimeEmbedding(nn.Module):
    """A learned vector per relative time, added to every token of a video clip's block (`clip_time_frequencies`).

    `t` in (0, 1) is the clip's centre time relative to its video; it is expanded to the Fourier features
    `[sin(pi 2^j t), cos(pi 2^j t)]` for j < F and mapped linearly to the LLM width: `[N] -> [N, D_llm]`. The map
    starts at zero (`LangDCPreTrainedModel._init_weights`), so adding it to a trained checkpoint changes nothing until
    it is trained. Why: with variable-length caption blocks the LLM can find "the clip at the end" only by counting
    blocks (train/RUNS.md, runs v17-v19); the relative time is the coordinate the temporal questions use. An
    extension in the spirit of the time encodings of other video LLMs; the paper and the official code have none.
    """

    def __init__(self, num_frequencies: int, hidden_size: int):
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(num_frequencies), persistent=False)
        self.weight = nn.Parameter(torch.zeros(hidden_size, 2 * num_frequencies))
        self.bias = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, times: torch.Tensor) -> torch.Tensor:
        """`times` `[N]` relative clip times in (0, 1) -> `[N, D_llm]` vectors, in the weight's dtype."""
        angles = times.to(self.weight.dtype)[:, None] * self.frequencies.to(self.weight.dtype)
        return F.linear(torch.cat([angles.sin(), angles.cos()], dim=-1), self.weight, self.bias)


def _pooled_clip_blocks(projector: nn.Module, features: torch.Tensor, grid: int, plan) -> list[torch.Tensor]:
    """Pool-branch tokens per clip: project `[F, P, D]` features, pool each tile/frame to `grid x grid`, and gather
    each clip's tiles/frames in order: `[tiles * grid^2, D_out]` per clip (official `video_project_pool`)."""
    projected = projector(features.to(next(projector.parameters()).dtype))
    pooled = pool_patch_tokens(projected, grid)
    return [pooled[start:end].reshape(-1, pooled.shape[-1]) for start, end in plan.clip_tiles]


def _left_pad(rows: list[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad `[L_i, ...]` tensors to `[N, max L, ...]`; returns the stacked tensor and the `[N, max L]` mask."""
    max_len = max(row.shape[0] for row in rows)
    padded = rows[0].new_full((len(rows), max_len, *rows[0].shape[1:]), pad_value)
    mask = torch.zeros(len(rows), max_len, dtype=torch.long, device=rows[0].device)
    for i, row in enumerate(rows):
        if row.shape[0]:
            padded[i, max_len - row.shape[0] :] = row
            mask[i, max_len - row.shape[0] :] = 1
    return padded, mask


def _positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding (what `generate` computes for left-padded batches)."""
    position_ids = attention_mask.long().cumsum(-1) - 1
    return position_ids.masked_fill(attention_mask == 0, 0)


def _as_int_list(value, name: str) -> list[int]:
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.flatten().tolist()]
    if isinstance(value, int):
        return [value]
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be an int, a list of ints or a LongTensor, got {type(value).__name__}.")


def check_pixel_values(pixel_values, name: str, vision_config) -> None:
    """Check that `pixel_values` are what the processor returns for this tower: a floating tensor `[F, C, S, S]`
    with `C = vision_config.num_channels` and `S = vision_config.image_size`, `F >= 1`.

    Raises:
        ValueError: naming `name`, for another type, rank, channel count, size or an integer dtype (unnormalised
            pixels).
    """
    hint = "use processor.load_image / load_video, or processor(images=..., videos=...)"
    if not isinstance(pixel_values, torch.Tensor):
        raise ValueError(
            f"`{name}` must be a torch.Tensor [frames, 3, H, W] ({hint}), got {type(pixel_values).__name__}."
        )
    channels, size = getattr(vision_config, "num_channels", 3), vision_config.image_size
    expected = (channels, size, size)
    if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected or pixel_values.shape[0] == 0:
        raise ValueError(f"`{name}` must be [frames >= 1, {channels}, {size}, {size}] for this vision tower ({hint}), "
                         f"got {list(pixel_values.shape)}.")
    if not pixel_values.is_floating_point():
        raise ValueError(f"`{name}` must hold normalised floats ({hint}), got dtype {pixel_values.dtype}.")


def _one_sample_patches(num_patches_list) -> list[int]:
    """`chat`'s `num_patches_list`: a list of ints, or the processor's one-sample `[[...]]`."""
    if isinstance(num_patches_list, (list, tuple)) and len(num_patches_list) == 1 and \
            isinstance(num_patches_list[0], (list, tuple, torch.Tensor)):
        num_patches_list = num_patches_list[0]
    return _as_int_list(num_patches_list, "num_patches_list")


def _resolve_compressor(compressor: str | None, budget: float | None, compressor_options: dict | None):
    """The `compression_langdc.TokenCompressor` named by a call's `compressor` / `budget` / `compressor_options`
    (None without a compressor).

    Raises:
        ValueError: `budget` or `compressor_options` without a `compressor`, a `compressor` without `budget`, and as
            `get_compressor` (unknown name or option, budget outside (0, 1]).
    """
    if compressor is None:
        if budget is not None or compressor_options:
            raise ValueError("`budget` / `compressor_options` were given without a `compressor`.")
        return None
    if budget is None:
        raise ValueError(f"`compressor={compressor!r}` needs a `budget` (fraction of visual tokens kept).")
    return get_compressor(compressor, budget, **(compressor_options or {}))


def _check_chat_inputs(questions, num_patches_list, histories, video_metadata) -> None:
    """`chat`/`batch_chat` inputs: one string per question and one patch list, history and metadata entry per
    question; a history is a list of `(question, answer)` string pairs. Raises `ValueError` naming the input."""
    if not questions or not all(isinstance(q, str) for q in questions):
        raise ValueError(f"`questions` must be a non-empty list of strings, got {questions!r:.80}.")
    batch = len(questions)
    for name, values in (("num_patches_list", num_patches_list), ("history", histories),
                         ("video_metadata", video_metadata)):
        if values is not None and len(values) != batch:
            raise ValueError(f"`{name}` has {len(values)} entries for {batch} questions: give one per question.")
    for i, history in enumerate(histories):
        pairs = history or []
        if not isinstance(pairs, (list, tuple)) or not all(
            isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in pairs
        ):
            raise ValueError(f"History {i} must be a list of (question, answer) string pairs (batch_chat takes one "
                             f"history per question), got {history!r:.80}.")


def normalize_data_flags(data_flag, batch_size: int) -> list[int]:
    """Per-sample data flags from an int, a list or a LongTensor (PVC passes `torch.LongTensor((3,))`).

    `None` means 1 (single image) for every sample. Raises `ValueError` for an unknown flag or a length mismatch.
    """
    flags = [DATA_FLAG_IMAGE] * batch_size if data_flag is None else _as_int_list(data_flag, "data_flag")
    if len(flags) == 1 and batch_size > 1:
        flags = flags * batch_size
    if len(flags) != batch_size:
        raise ValueError(f"`data_flag` has {len(flags)} entries for {batch_size} samples.")
    for flag in flags:
        if flag not in DATA_FLAGS:
            raise ValueError(
                f"Unknown `data_flag` {flag}: use 1 (single image), 2 (several images), 3 (video) or 0 (text only)."
            )
    return flags


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------
def clip_tubelets(pooled: torch.Tensor, clip_tiles: list[tuple[int, int]], clip_frames: list[int],
                  frames_per_clip: int) -> list[torch.Tensor]:
    """Tubelet tokens of every clip (`expert_token_layout="tubelets"`): `[F, C, D]` pooled cells of all tiles/frames
    -> `[tiles_per_frame * C, frames_per_clip * D]` per clip, each row one cell of one tile with its features in the
    clip's frames concatenated in time order. A clip of fewer frames repeats its last frame (as the video encoder's
    chunks are padded), so an image (one frame of tiles) is a still clip.

    Raises:
        ValueError: if a clip's tiles are not `clip_frames` frames of equally many tiles, or it has more frames than
            `frames_per_clip`.
    """
    tubelets = []
    for (start, end), frames in zip(clip_tiles, clip_frames):
        if (end - start) % frames or frames > frames_per_clip:
            raise ValueError(f"A clip of {end - start} tiles in {frames} frames cannot form tubelets of "
                             f"{frames_per_clip} frames: each frame needs the same tiles, at most {frames_per_clip} "
                             "frames per clip.")
        cells = pooled[start:end].unflatten(0, (frames, -1))  # [frames, tiles, C, D]
        cells = torch.cat([cells, cells[-1:].expand(frames_per_clip - frames, *cells.shape[1:])])
        tubelets.append(cells.permute(1, 2, 0, 3).flatten(2).flatten(0, 1))
    return tubelets


class LangDCPreTrainedModel(PreTrainedModel):
    """Base class: the config class, the attention backends every tower supports, the modules `device_map` must not
    split, and the weight initialisation of LangDC's own modules (projectors, clip time embedding)."""

    config_class = LangDCConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = [
        "SiglipEncoderLayer",
        "CLIPEncoderLayer",
        "Qwen2DecoderLayer",
        "LlamaDecoderLayer",
        "InternVideo2Block",
    ]
    _skip_keys_device_placement = "past_key_values"
    # Every tower is a transformers built-in class or InternVideo2Model (transformers' attention interface), all of
    # which support these backends; one switch (`attn_implementation`) drives all of them through the sub-configs.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _tied_weights_keys = None

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ClipTimeEmbedding):  # starts at zero: a trained checkpoint is unchanged by adding it
            init.zeros_(module.weight)
            init.zeros_(module.bias)


class LangDCForConditionalGeneration(LangDCPreTrainedModel, GenerationMixin):
    """LangDC: vision tower + language-expert compressor + LLM, with PVC/InternVL-style `chat`.

    Modules: `vision_model` (SigLIP/CLIP vision), `expert_projector`, `expert` (causal LM), `caption_projector`,
    `pool_projector` (dual model only), `language_model` (causal LM), `clip_time_embedding` (with
    `clip_time_frequencies` > 0); with `video_config` also `video_model`
    (InternVideo2), `video_expert_projector` and `video_pool_projector` (dual only). See `LangDCConfig`.
    """

    def __init__(self, config: LangDCConfig):
        super().__init__(config)
        vision_dim = config.vision_config.hidden_size
        expert_dim = config.expert_config.hidden_size
        text_dim = config.text_config.hidden_size
        self.vision_model = AutoModel.from_config(config.vision_config)
        self.expert_projector = self.expert = self.caption_projector = None
        if config.use_expert:
            # tubelets concatenate a cell's features in all frames of a clip (`clip_tubelets`)
            frames = config.frames_per_clip if config.expert_token_layout == "tubelets" else 1
            self.expert_projector = build_projector(config.expert_projector_type, frames * vision_dim, expert_dim)
            self.expert = AutoModelForCausalLM.from_config(config.expert_config)
            self.caption_projector = build_projector(config.caption_projector_type, expert_dim, text_dim)
        self.pool_projector = (
            build_projector(config.pool_projector_type, vision_dim, text_dim) if config.use_pool_branch else None
        )
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.clip_time_embedding = (
            ClipTimeEmbedding(config.clip_time_frequencies, text_dim) if config.clip_time_frequencies else None
        )
        self.video_model = self.video_expert_projector = self.video_pool_projector = None
        if config.video_config is not None:
            video_dim = config.video_config.hidden_size
            self.video_model = InternVideo2Model(config.video_config)
            if config.use_expert:
                self.video_expert_projector = build_projector(
                    config.video_expert_projector_type, video_dim, expert_dim
                )
            if config.use_pool_branch:
                self.video_pool_projector = build_projector(config.video_pool_projector_type, video_dim, text_dim)
        self.post_init()

    # -- accessors (delegate to the LLM) --------------------------------------------------------------------------
    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value):
        self.language_model.set_output_embeddings(value)

    def get_decoder(self):
        return self.language_model.get_decoder()

    @property
    def _llm_device(self) -> torch.device:
        return self.language_model.get_input_embeddings().weight.device

    # -- 1. media plan -------------------------------------------------------------------------------------------
    def _plan_media(
        self, rows: list[list[int]], num_patches_list: list[list[int]], data_flags: list[int], num_tiles: int
    ) -> _MediaPlan:
        """Validate placeholders against `num_patches_list` and decide which blocks go at each placeholder.

        `rows` are the unpadded LLM token ids per sample. Images (data_flag 1/2): each `<image>` is one image, one
        clip whose frames are its tiles. Video (3): `num_patches_list` holds tiles per frame; frames form clips of
        `frames_per_clip`; with one `<image>` per frame, clip k's block goes at its first frame's placeholder;
        with a single `<video>`, all blocks go there. Raises `ValueError` on every count mismatch.
        """
        config = self.config
        clip_tiles, clip_sample, placeholder_blocks, tiles_per_sample, clip_is_video = [], [], [], [], []
        clip_frames = []
        tile_offset = 0
        for sample, (ids, patches, flag) in enumerate(zip(rows, num_patches_list, data_flags)):
            # list.count, not a loop reading the config per token: config attribute access is slow in transformers 5
            num_images, num_videos = ids.count(config.image_token_id), ids.count(config.video_token_id)
            if any(p < 1 for p in patches):
                raise ValueError(f"Sample {sample}: `num_patches_list` entries must be >= 1, got {patches}.")
            if flag == DATA_FLAG_TEXT or not patches:
                if num_images or num_videos or patches:
                    raise ValueError(
                        f"Sample {sample}: text-only sample has {num_images} <image>, {num_videos} <video> "
                        f"placeholders and num_patches_list={patches}."
                    )
                placeholder_blocks.append([])
                tiles_per_sample.append(0)
                continue
            starts = [tile_offset + sum(patches[:i]) for i in range(len(patches))]
            ends = [s + p for s, p in zip(starts, patches)]
            if flag in (DATA_FLAG_IMAGE, DATA_FLAG_MULTI_IMAGE):
                if num_videos:
                    raise ValueError(f"Sample {sample}: <video> placeholder with data_flag={flag} (images).")
                if flag == DATA_FLAG_IMAGE and len(patches) != 1:
                    raise ValueError(
                        f"Sample {sample}: data_flag=1 is a single image but num_patches_list has {len(patches)} "
                        "entries; use data_flag=2 for several images."
                    )
                if num_images != len(patches):
                    raise ValueError(
                        f"Sample {sample}: the prompt has {num_images} <image> placeholders but num_patches_list "
                        f"has {len(patches)} images."
                    )
                clips = [(s, e) for s, e in zip(starts, ends)]
                clip_frames.extend([1] * len(clips))
                first_clip = len(clip_tiles)
                blocks = [self._clip_blocks([first_clip + i]) for i in range(len(clips))]
            else:
                if config.video_config is not None and any(p != 1 for p in patches):
                    raise ValueError(
                        f"Sample {sample}: the video encoder takes one tile per frame, got num_patches_list={patches}."
                    )
                frames = len(patches)
                fpc = config.frames_per_clip
                clips = [(starts[i], ends[min(i + fpc, frames) - 1]) for i in range(0, frames, fpc)]
                clip_frames.extend(min(fpc, frames - i) for i in range(0, frames, fpc))
                if config.expert_token_layout == "tubelets" and any(
                        len(set(patches[i : i + fpc])) > 1 for i in range(0, frames, fpc)):
                    raise ValueError(
                        f"Sample {sample}: tubelet expert tokens (`expert_token_layout`) need the same tiles in "
                        f"every frame of a clip, got num_patches_list={patches}."
                    )
                first_clip = len(clip_tiles)
                clip_ids = list(range(first_clip, first_clip + len(clips)))
                if num_videos == 1 and num_images == 0:
                    blocks = [self._clip_blocks(clip_ids)]
                elif num_videos == 0 and num_images == frames:
                    if config.block_layout == "pool_then_captions":
                        blocks = [self._clip_blocks(clip_ids)] + [[] for _ in range(frames - 1)]
                    else:
                        blocks = [self._clip_blocks([first_clip + i // fpc]) if i % fpc == 0 else [] for i in range(frames)]
                else:
                    raise ValueError(
                        f"Sample {sample}: a video needs one <video> or one <image> per frame; the prompt has "
                        f"{num_videos} <video> and {num_images} <image> placeholders for {frames} frames."
                    )
            clip_tiles.extend(clips)
            clip_sample.extend([sample] * len(clips))
            clip_is_video.extend([flag == DATA_FLAG_VIDEO] * len(clips))
            placeholder_blocks.append(blocks)
            tiles_per_sample.append(sum(patches))
            tile_offset = ends[-1]
        if tile_offset != num_tiles:
            raise ValueError(
                f"sum(num_patches_list) = {tile_offset} but pixel_values holds {num_tiles} tiles/frames."
            )
        return _MediaPlan(clip_tiles, clip_sample, placeholder_blocks, tiles_per_sample, clip_is_video, clip_frames)

    def _clip_blocks(self, clip_ids: list[int]) -> list[tuple[str, int]]:
        """Block order for the clips of one placeholder, following `block_layout` and `use_pool_branch`.

        `per_clip`: `[pool_k | video_pool_k | caption_k]` per clip. `pool_then_captions`: `[pool of all clips |
        video pool of all clips | captions of all clips]`, the official sequence
        (`arch.py` `prepare_inputs_labels_for_vqa_dualbranch`).
        """
        kinds = [POOL] if self.config.use_pool_branch else []
        if self.config.use_pool_branch and self.config.video_config is not None:
            kinds.append(VIDEO_POOL)
        if self.config.use_expert:
            kinds.append(CAPTION)
        if self.config.block_layout == "pool_then_captions":
            return [(kind, c) for kind in kinds for c in clip_ids]
        return [(kind, c) for c in clip_ids for kind in kinds]

    # -- 2. vision tower -----------------------------------------------------------------------------------------
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch features of every tile/frame at `vision_feature_layer`: `[F, 3, S, S] -> [F, P, D_v]`, with
        `S = vision_config.image_size` and `P = patches_per_tile`.

        Tokens beyond the patch grid (CLIP's CLS) are dropped.
        """
        vision_dtype = self.vision_model.get_input_embeddings().weight.dtype
        outputs = self.vision_model(pixel_values=pixel_values.to(vision_dtype), output_hidden_states=True)
        features = outputs.hidden_states[self.config.vision_feature_layer]
        return features[:, -self.config.patches_per_tile :]

    def get_video_features(self, video_pixel_values: torch.Tensor, plan: _MediaPlan) -> torch.Tensor:
        """Video-encoder patch features of every frame/tile: `[F, 3, H_v, W_v] -> [F, P_v, D_video]` (cls dropped).

        The frames of a video clip form one InternVideo2 chunk (official `encode_videos_frames` in `arch.py`); a clip
        shorter than the chunk is padded by repeating its last frame and only its own frames are kept. Image tiles
        are encoded one by one as single images (T = 1, `img_pos_embed`, as the official `encode_videos_frames`
        single-frame path). All chunks go through the encoder in one call, all image tiles in another.
        """
        chunk_frames = self.config.video_config.num_frames
        chunks, chunk_clips, image_tiles = [], [], []
        for clip, (start, end) in enumerate(plan.clip_tiles):
            if plan.clip_is_video[clip]:
                frames = video_pixel_values[start:end]
                padding = frames[-1:].expand(chunk_frames - frames.shape[0], *frames.shape[1:])
                chunks.append(torch.cat([frames, padding]))
                chunk_clips.append(clip)
            else:
                image_tiles.extend(range(start, end))
        features = None
        if chunks:
            encoded = self._video_encoder_patches(torch.stack(chunks))
            encoded = encoded.view(len(chunks), chunk_frames, -1, encoded.shape[-1])
            features = encoded.new_empty(video_pixel_values.shape[0], *encoded.shape[2:])
            for row, clip in enumerate(chunk_clips):
                start, end = plan.clip_tiles[clip]
                features[start:end] = encoded[row, : end - start]
        if image_tiles:
            encoded = self._video_encoder_patches(video_pixel_values[image_tiles].unsqueeze(1))
            if features is None:
                features = encoded.new_empty(video_pixel_values.shape[0], *encoded.shape[1:])
            features[image_tiles] = encoded
        return features

    def _video_encoder_patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`[B, T, 3, H, W] -> [B, T * P_v, D_video]`: the video encoder's output without its cls token."""
        return self.video_model(pixel_values=pixel_values).last_hidden_state[:, 1:]

    def _encode_frames(
        self,
        pixel_values: torch.Tensor | None,
        video_pixel_values: torch.Tensor | None,
        plan: _MediaPlan,
        image_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features of both encoders: `([F, P, D_v], [F, P_v, D_video] or None)`; given `image_features` (the
        vision tower's output, precomputed) stand in for the tower.

        Raises:
            ValueError: if the model has a video encoder and `video_pixel_values` is missing or does not hold one
                frame per tile of `pixel_values`, or if it has none and `video_pixel_values` is given; if
                `image_features` are given to a two-encoder model or are not `[F, patches_per_tile, D_v]`.
        """
        if image_features is not None:
            if self.video_model is not None:
                raise ValueError("`image_features` replace the vision tower of single-encoder models only; this model "
                                 "has a video encoder (`video_config`): pass `pixel_values`.")
            expected = (self.config.patches_per_tile, self.config.vision_config.hidden_size)
            if image_features.dim() != 3 or tuple(image_features.shape[1:]) != expected:
                raise ValueError(f"`image_features` must be [frames, {expected[0]}, {expected[1]}] "
                                 f"(`get_image_features` output), got {tuple(image_features.shape)}.")
            dtype = self.vision_model.get_input_embeddings().weight.dtype
            return image_features.to(device=self.device, dtype=dtype), None
        if self.video_model is None:
            if video_pixel_values is not None:
                raise ValueError("`video_pixel_values` was given but this model has no video encoder (`video_config`).")
            return self.get_image_features(pixel_values), None
        if video_pixel_values is None:
            raise ValueError(
                "This two-encoder model needs `video_pixel_values` (frames at the video encoder's size) beside "
                "`pixel_values`; the processor returns both."
            )
        check_pixel_values(video_pixel_values, "video_pixel_values", self.config.video_config)
        if video_pixel_values.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"`video_pixel_values` has {video_pixel_values.shape[0]} frames/tiles but `pixel_values` has "
                f"{pixel_values.shape[0]}: they must be the same frames at the two encoder sizes."
            )
        video_pixel_values = video_pixel_values.to(self.video_model.device)
        return self.get_image_features(pixel_values), self.get_video_features(video_pixel_values, plan)

    # -- 3. expert -----------------------------------------------------------------------------------------------
    def _expert_prompts(
        self, features: torch.Tensor, plan: _MediaPlan, video_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded expert prompts `[N_clips, L, D_e]` (prefix | clip tokens | suffix) and their mask.

        A clip's tokens are its tiles'/frames' pooled vision tokens (or, with `expert_token_layout="tubelets"`, its
        tubelet tokens, `clip_tubelets`), followed by their pooled video tokens when the model has a video encoder
        (official `project(..., "video")`: context first).
        """
        config = self.config
        if config.expert_prompt_prefix_ids is None or config.expert_prompt_suffix_ids is None:
            raise ValueError("The expert prompt ids are not set: call `config.set_expert_prompt(expert_tokenizer)`.")
        embed = self.expert.get_input_embeddings()
        features = features.to(embed.weight.dtype)
        if config.expert_token_layout == "tubelets":
            pooled = pool_patch_tokens(features, config.expert_pool_grid)
            tubelets = clip_tubelets(pooled, plan.clip_tiles, plan.clip_frames, config.frames_per_clip)
            projected = self.expert_projector(torch.cat(tubelets))
            clips = [[tokens] for tokens in projected.split([len(t) for t in tubelets])]
        else:
            tokens = pool_patch_tokens(self.expert_projector(features), config.expert_pool_grid)
            clips = [[tokens[start:end].flatten(0, 1)] for start, end in plan.clip_tiles]
        if video_features is not None:
            projected = self.video_expert_projector(video_features.to(embed.weight.dtype))
            tokens = pool_patch_tokens(projected, config.video_expert_pool_grid)
            for clip, (start, end) in zip(clips, plan.clip_tiles):
                clip.append(tokens[start:end].flatten(0, 1))
        prefix = embed(torch.tensor(config.expert_prompt_prefix_ids, device=embed.weight.device))
        suffix = embed(torch.tensor(config.expert_prompt_suffix_ids, device=embed.weight.device))
        rows = [torch.cat([prefix, *(tokens.to(embed.weight.device) for tokens in clip), suffix]) for clip in clips]
        max_positions = getattr(config.expert_config, "max_position_embeddings", None)
        longest = max(row.shape[0] for row in rows) + config.max_caption_tokens
        if max_positions is not None and longest > max_positions:
            raise ValueError(
                f"Expert prompt of {longest - config.max_caption_tokens} tokens + {config.max_caption_tokens} caption "
                f"tokens exceeds the expert context of {max_positions}: use fewer tiles or frames per clip."
            )
        return _left_pad(rows)

    def _expert_generation_config(self, use_cache: bool) -> GenerationConfig:
        """Greedy decoding with explicit EOS ids: never inherit the expert checkpoint's sampling defaults
        (the official code sets none, so its expert's `generation_config.json` decides)."""
        config = self.config
        eos = config.expert_eos_token_ids
        if not eos:
            raise ValueError("`config.expert_eos_token_ids` is not set: the expert would never stop.")
        pad = config.expert_pad_token_id if config.expert_pad_token_id is not None else eos[0]
        return GenerationConfig(
            max_new_tokens=config.max_caption_tokens,
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,
            eos_token_id=list(eos),
            pad_token_id=pad,
            use_cache=use_cache,
            cache_implementation=config.expert_cache_implementation if use_cache else None,
            disable_compile=not config.expert_compile,
        )

    def _generate_captions(
        self, prompts: torch.Tensor, prompt_mask: torch.Tensor, use_cache: bool
    ) -> tuple[list[list[int]], list[int | None]]:
        """One batched expert `generate` over all clips. Returns caption ids (EOS excluded) and the EOS id that
        ended each row (None: it hit `max_caption_tokens`)."""
        sequences = self.expert.generate(
            inputs_embeds=prompts,
            attention_mask=prompt_mask,
            generation_config=self._expert_generation_config(use_cache),
        )
        eos = set(self.config.expert_eos_token_ids)
        captions, stop_ids = [], []
        for row in sequences.tolist():
            end = next((i for i, token in enumerate(row) if token in eos), None)
            captions.append(row if end is None else row[:end])
            stop_ids.append(None if end is None else row[end])
        return captions, stop_ids

    def _official_compat_ids(
        self, captions: list[list[int]], stop_ids: list[int | None], clip_sample: list[int]
    ) -> list[list[int]]:
        """Ids whose embeddings the official inference code keeps (`prepare_inputs_labels_for_vqa_dualbranch`).

        The official code batches the clips of one video, stacks the layer-0 vector of the token fed at every
        decoding step (the last prompt token, then each generated token but the last of the batch), and cuts each
        row before the first pad id of its generated sequence, or drops the last vector when the row has no pad.
        So a clip that stopped early keeps `[last prompt token, caption]`, the longest clip of a video loses its
        last vector, and a clip that stopped on the pad id itself also loses its last caption token.
        """
        config = self.config
        last_prompt_id = (config.expert_prompt_suffix_ids or config.expert_prompt_prefix_ids)[-1]
        pad = config.expert_pad_token_id if config.expert_pad_token_id is not None else config.expert_eos_token_ids[0]
        rows = [caption + ([stop] if stop is not None else []) for caption, stop in zip(captions, stop_ids)]
        steps = {}  # decoding steps of each sample's batch = its longest generated row
        for sample, row in zip(clip_sample, rows):
            steps[sample] = max(steps.get(sample, 0), len(row))
        compat = []
        for row, sample in zip(rows, clip_sample):
            padded = row + [pad] * (steps[sample] - len(row))
            fed = [last_prompt_id] + padded[:-1]
            compat.append(fed[: padded.index(pad)] if pad in padded else fed[:-1])
        return compat

    def _soft_tokens(
        self, prompts: torch.Tensor, prompt_mask: torch.Tensor, caption_ids: list[list[int]]
    ) -> list[torch.Tensor]:
        """Vectors of the caption tokens at `soft_token_layer`: `[k_clip, D_e]` per clip.

        Layer 0 is the expert's input embedding of each caption token (no forward pass). Layer k > 0 runs the expert
        once, teacher-forced on `[prompt | caption]`, and takes the hidden state after layer k at the caption
        positions: the same computation serves training (ground-truth captions) and inference (generated ones).
        """
        embed = self.expert.get_input_embeddings()
        device = embed.weight.device
        layer = self.config.soft_token_layer
        if layer == 0:
            flat = torch.tensor([t for ids in caption_ids for t in ids], dtype=torch.long, device=device)
            return list(embed(flat).split([len(ids) for ids in caption_ids]))
        outputs, caption_start = self._expert_teacher_forced(prompts, prompt_mask, caption_ids, output_hidden_states=True)
        hidden = outputs.hidden_states[layer]
        return [hidden[i, caption_start : caption_start + len(ids)] for i, ids in enumerate(caption_ids)]

    def _expert_teacher_forced(
        self, prompts: torch.Tensor, prompt_mask: torch.Tensor, caption_ids: list[list[int]], output_hidden_states: bool
    ):
        """Expert forward on `[left-padded prompt | right-padded caption]`; captions start at `prompts.shape[1]`."""
        embed = self.expert.get_input_embeddings()
        num_clips, prompt_len = prompt_mask.shape
        max_caption = max((len(ids) for ids in caption_ids), default=0)
        ids = torch.zeros(num_clips, max_caption, dtype=torch.long, device=prompts.device)
        caption_mask = torch.zeros(num_clips, max_caption, dtype=torch.long, device=prompts.device)
        for i, row in enumerate(caption_ids):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            caption_mask[i, : len(row)] = 1
        inputs_embeds = torch.cat([prompts, embed(ids)], dim=1)
        attention_mask = torch.cat([prompt_mask, caption_mask], dim=1)
        outputs = self.expert(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=_positions_from_mask(attention_mask),
            output_hidden_states=output_hidden_states,
            use_cache=False,
        )
        return outputs, prompt_len

    def expert_caption_loss(
        self,
        pixel_values: torch.Tensor | None,
        caption_ids: list[list[int]],
        num_patches_list: list[list[int]],
        data_flag=None,
        video_pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        caption_weights: list[list[float]] | None = None,
        caption_input_ids: list[list[int]] | None = None,
    ) -> torch.Tensor:
        """Caption cross-entropy of the expert on ground-truth clip captions (training stage II,
        official `language_model/qwen_cap.py` `VideoQwenCapForCausalLM`).

        Args:
            pixel_values: `[F, 3, H, W]` tiles/frames of all samples.
            caption_ids: one list of expert token ids per clip (clip order of `_plan_media`), EOS excluded; the
                first EOS id is appended as the final target so the expert learns when to stop.
            num_patches_list: per sample, tiles per image or per frame.
            data_flag: per-sample flags (1/2 images, 3 video).
            video_pixel_values: `[F, 3, H_v, W_v]` the same frames for the video encoder (two-encoder models only).
            image_features: `[F, P, D_v]` the vision tower's features of those frames, precomputed
                (`get_image_features`; training with a frozen tower), instead of `pixel_values`.
            caption_weights: optional weight of each caption token, one list per clip as long as its `caption_ids`
                (the appended EOS weighs 1): the loss becomes the weighted mean, so that rare but decisive words
                (a move's direction) count more than the words every caption repeats. Not in the paper, which
                weighs every token alike (the default).
            caption_input_ids: optional teacher-forced inputs, one list per clip as long as its `caption_ids`, when
                they differ from the targets (input noising, `train.run --caption-input-noise`: a colour word
                replaced by another, so that the next word, the shape, must be read from the clip rather than
                from the colour word; a small expert trained on seen colour-shape pairs otherwise never writes a
                held-out one, train/RUNS.md "Run v57"). Not in the paper (the default: the targets themselves).

        Returns:
            Mean token-level cross-entropy (weighted by `caption_weights` when given), shape `()`.

        Raises:
            ValueError: if the number of captions differs from the number of clips, `caption_weights` or
                `caption_input_ids` does not match `caption_ids`, a weight is negative, or the model has no expert.
        """
        if self.expert is None:
            raise ValueError("This model has no language expert (`use_expert=False`): there is no caption loss.")
        if caption_input_ids is not None and (len(caption_input_ids) != len(caption_ids) or any(
                len(fed) != len(ids) for fed, ids in zip(caption_input_ids, caption_ids))):
            raise ValueError("`caption_input_ids` must hold one input id per token of `caption_ids`, clip by clip.")
        flags = normalize_data_flags(data_flag, len(num_patches_list))
        frames = self._frames(pixel_values, image_features, required=True)
        plan = self._plan_media_without_prompt(num_patches_list, flags, frames.shape[0])
        caption_ids = self._check_caption_ids(caption_ids, len(plan.clip_tiles))
        features, video_features = self._encode_frames(pixel_values, video_pixel_values, plan, image_features)
        prompts, prompt_mask = self._expert_prompts(features, plan, video_features)
        fed = caption_ids if caption_input_ids is None else caption_input_ids
        outputs, start = self._expert_teacher_forced(prompts, prompt_mask, fed, output_hidden_states=False)
        eos = self.config.expert_eos_token_ids[0]
        targets = torch.full(outputs.logits.shape[:2], IGNORE_INDEX, dtype=torch.long, device=outputs.logits.device)
        for i, ids in enumerate(caption_ids):
            # logits at position start-1+j predict caption token j; the one after the caption predicts EOS
            targets[i, start - 1 : start + len(ids)] = torch.tensor(ids + [eos], dtype=torch.long)
        logits = outputs.logits.flatten(0, 1).float()
        if caption_weights is None:
            return F.cross_entropy(logits, targets.flatten(), ignore_index=IGNORE_INDEX)
        weights = torch.zeros(targets.shape, device=logits.device)
        for i, (ids, clip_weights) in enumerate(zip(caption_ids, self._check_caption_weights(caption_weights,
                                                                                              caption_ids))):
            weights[i, start - 1 : start + len(ids)] = torch.tensor(list(clip_weights) + [1.0])
        token_losses = F.cross_entropy(logits, targets.flatten(), ignore_index=IGNORE_INDEX, reduction="none")
        return (token_losses * weights.flatten()).sum() / weights.sum()

    @staticmethod
    def _check_caption_weights(caption_weights, caption_ids: list[list[int]]) -> list[list[float]]:
        """`expert_caption_loss`'s `caption_weights`: one non-negative weight per caption token. Raises `ValueError`."""
        if len(caption_weights) != len(caption_ids) or any(
            len(w) != len(ids) for w, ids in zip(caption_weights, caption_ids)
        ):
            raise ValueError("`caption_weights` must hold one weight per token of `caption_ids`, clip by clip.")
        if any(weight < 0 for clip in caption_weights for weight in clip):
            raise ValueError("`caption_weights` must be non-negative.")
        return caption_weights

    @torch.no_grad()
    def caption_clips(
        self,
        pixel_values: torch.Tensor,
        num_patches_list: list[list[int]],
        data_flag=None,
        video_pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
    ) -> list[list[int]]:
        """Caption every clip with the expert alone (one batched `generate`), without the LLM.

        Args:
            pixel_values: `[F, 3, H, W]` tiles/frames of all samples.
            num_patches_list: per sample, tiles per image (data_flag 1/2) or per frame (data_flag 3).
            data_flag: per-sample flags.
            video_pixel_values: `[F, 3, H_v, W_v]` the same frames for the video encoder (two-encoder models only).
            image_features: `[F, P, D_v]` precomputed vision-tower features instead of `pixel_values`.

        Returns:
            One list of expert token ids per clip (EOS excluded), clips of all samples in order; empty lists for a
            model without an expert (`use_expert=False`: every clip gives zero caption tokens).
        """
        flags = normalize_data_flags(data_flag, len(num_patches_list))
        frames = self._frames(pixel_values, image_features, required=True)
        plan = self._plan_media_without_prompt(num_patches_list, flags, frames.shape[0])
        if self.expert is None:
            return [[] for _ in plan.clip_tiles]
        if pixel_values is not None:
            pixel_values = pixel_values.to(self.device)
        features, video_features = self._encode_frames(pixel_values, video_pixel_values, plan, image_features)
        prompts, prompt_mask = self._expert_prompts(features, plan, video_features)
        captions, _ = self._generate_captions(prompts, prompt_mask, use_cache=True)
        return captions

    def _frames(self, pixel_values: torch.Tensor | None, image_features: torch.Tensor | None,
                required: bool = False) -> torch.Tensor | None:
        """The tensor that holds one row per tile/frame: `pixel_values` (checked, `check_pixel_values`), or
        `image_features` in their place. Raises `ValueError` if both are given, or neither when `required`."""
        if pixel_values is not None and image_features is not None:
            raise ValueError("Give `pixel_values` or precomputed `image_features`, not both.")
        if required and pixel_values is None and image_features is None:
            raise ValueError("`pixel_values` (or precomputed `image_features`) are required.")
        if pixel_values is not None:
            check_pixel_values(pixel_values, "pixel_values", self.config.vision_config)
        return pixel_values if pixel_values is not None else image_features

    def _plan_media_without_prompt(self, num_patches_list, flags, num_tiles) -> _MediaPlan:
        """Plan for media that is not tied to a prompt (expert training): one placeholder per image or frame."""
        rows = []
        for patches, flag in zip(num_patches_list, flags):
            rows.append([self.config.image_token_id] * (len(patches) if flag != DATA_FLAG_TEXT else 0))
        return self._plan_media(rows, num_patches_list, flags, num_tiles)

    # -- 4. encode media: vision -> expert -> soft tokens (+ pool branch) ------------------------------------------
    def _encode_media(
        self,
        pixel_values: torch.Tensor | None,
        plan: _MediaPlan,
        caption_ids: list[list[int]] | None = None,
        use_cache: bool = True,
        video_pixel_values: torch.Tensor | None = None,
        compressor=None,
        image_features: torch.Tensor | None = None,
    ) -> _Media:
        """Run the vision tower (and video encoder) once on all tiles (or take precomputed `image_features`),
        caption all clips in one expert `generate` (or use the given `caption_ids`, teacher forcing), and project
        soft and pool tokens into the LLM space.

        Without an expert (`use_expert=False`) every clip gets zero caption tokens and `caption_ids` is ignored. A
        pre-LLM `compressor` (`compression_langdc.TokenCompressor`) reduces each sample's pool-branch tokens.
        """
        device = self.device
        timings = {}
        start = time.perf_counter()
        saliency, saliency_seconds = None, 0.0
        if compressor is not None and compressor.requires and not compressor.is_identity:
            features, video_features, saliency, saliency_seconds = self._encode_frames_with_saliency(
                pixel_values, video_pixel_values, plan
            )
        else:
            features, video_features = self._encode_frames(pixel_values, video_pixel_values, plan, image_features)
        _synchronize(device)
        timings["vision"] = time.perf_counter() - start - saliency_seconds

        start = time.perf_counter()
        if self.expert is None:
            caption_ids, prompt_mask = [[] for _ in plan.clip_tiles], None
            empty = features.new_zeros(0, self.config.text_config.hidden_size)
            caption_tokens = [empty for _ in plan.clip_tiles]
        else:
            caption_ids, caption_tokens, prompt_mask = self._caption_tokens(
                features, video_features, plan, caption_ids, use_cache
            )
        _synchronize(device)
        timings["expert"] = time.perf_counter() - start

        start = time.perf_counter()
        pool_tokens = video_pool_tokens = None
        uncompressed = [0] * len(plan.clip_tiles)
        if self.config.use_pool_branch:
            pool_tokens = _pooled_clip_blocks(self.pool_projector, features, self.config.pool_grid, plan)
            if video_features is not None:
                video_pool_tokens = _pooled_clip_blocks(
                    self.video_pool_projector, video_features, self.config.video_pool_grid, plan
                )
            uncompressed = [sum(b[c].shape[0] for b in (pool_tokens, video_pool_tokens) if b is not None)
                            for c in range(len(plan.clip_tiles))]
            if compressor is not None:
                pool_tokens = self._compress_pool(compressor, pool_tokens, self.config.pool_grid, plan, saliency)
                if video_pool_tokens is not None:
                    video_pool_tokens = self._compress_pool(
                        compressor, video_pool_tokens, self.config.video_pool_grid, plan, None
                    )
        _synchronize(device)
        timings["compressor"] = time.perf_counter() - start + saliency_seconds
        if self.clip_time_embedding is not None:
            caption_tokens, pool_tokens, video_pool_tokens = self._add_clip_times(
                plan, caption_tokens, pool_tokens, video_pool_tokens)
        prompt_lengths = prompt_mask.sum(-1).tolist() if prompt_mask is not None else [0] * len(plan.clip_tiles)
        return _Media(plan, caption_tokens, pool_tokens, video_pool_tokens, caption_ids, prompt_lengths, timings,
                      uncompressed)

    def _add_clip_times(self, plan: _MediaPlan, *branches: list[torch.Tensor] | None) -> list:
        """Add each video clip's `clip_time_embedding` vector to all its tokens in every branch (`[n, D_llm]` per
        clip; None branches stay None). After the compressors, so their token similarities are the model's own."""
        times = plan.video_clip_times()
        if not times:
            return list(branches)
        clips = list(times)
        vectors = self.clip_time_embedding(
            torch.tensor([times[c] for c in clips], device=self.clip_time_embedding.weight.device))
        offsets = dict(zip(clips, vectors))
        return [None if blocks is None else [
            block + offsets[c].to(block) if c in offsets else block for c, block in enumerate(blocks)]
            for blocks in branches]

    def _check_caption_ids(self, caption_ids, num_clips: int) -> list[list[int]]:
        """Given captions as lists of ints: one per clip, every id in the expert's vocabulary. Raises `ValueError`."""
        if isinstance(caption_ids, (str, torch.Tensor)) or len(caption_ids) != num_clips:
            count = len(caption_ids) if isinstance(caption_ids, (list, tuple)) else type(caption_ids).__name__
            raise ValueError(
                f"`caption_ids` needs one list of expert token ids per clip ({num_clips} clips), got {count}."
            )
        vocab = self.expert.get_input_embeddings().num_embeddings
        checked = []
        for clip, ids in enumerate(caption_ids):
            if not isinstance(ids, (list, tuple, torch.Tensor)):  # a flat id list would pass as one-token captions
                raise ValueError(f"`caption_ids[{clip}]` must be a list of expert token ids, got {type(ids).__name__}.")
            ids = _as_int_list(ids, f"caption_ids[{clip}]")
            bad = [t for t in ids if not 0 <= t < vocab]
            if bad:
                raise ValueError(
                    f"`caption_ids[{clip}]` holds ids outside the expert's vocabulary [0, {vocab}): {bad[:5]}."
                )
            checked.append(ids)
        return checked

    def _caption_tokens(self, features, video_features, plan, caption_ids, use_cache):
        """Expert branch: generated (or given) caption ids per clip, their projected soft tokens `[k_clip, D_llm]`
        per clip, and the expert prompt mask (None when no expert prompt was built)."""
        prompts = prompt_mask = None
        if caption_ids is None or self.config.soft_token_layer > 0:
            prompts, prompt_mask = self._expert_prompts(features, plan, video_features)
        if caption_ids is None:
            with torch.no_grad():
                caption_ids, stop_ids = self._generate_captions(prompts, prompt_mask, use_cache)
            soft_ids = caption_ids
            if self.config.official_soft_token_compat:
                soft_ids = self._official_compat_ids(caption_ids, stop_ids, plan.clip_sample)
        else:
            soft_ids = caption_ids = self._check_caption_ids(caption_ids, len(plan.clip_tiles))
        soft = self._soft_tokens(prompts, prompt_mask, soft_ids)
        # one projection over all clips, then split back per clip
        projected = self.caption_projector(torch.cat(soft).to(self._caption_dtype()))
        return caption_ids, list(projected.split([s.shape[0] for s in soft])), prompt_mask

    def _encode_frames_with_saliency(self, pixel_values, video_pixel_values, plan):
        """`_encode_frames` plus, from a q.k hook on the vision layer that produces the features, the attention each
        patch receives and the head-averaged keys (`compression_langdc.received_attention`): `[F, P]`, `[F, P, d_h]`,
        and the seconds that hook took (counted as compressor time, not vision time).

        Raises:
            ValueError: if `vision_feature_layer` selects the embeddings (no attention layer).
        """
        layers = self.vision_model.encoder.layers
        index = self.config.vision_feature_layer % (len(layers) + 1) - 1
        if index < 0:
            raise ValueError("`vision_feature_layer` selects the patch embeddings: no attention to rank tokens by.")
        captured = {}

        def hook(module, args, kwargs):
            hook_start = time.perf_counter()
            hidden = args[0] if args else kwargs["hidden_states"]
            captured["saliency"], captured["keys"] = received_attention(module, hidden)
            _synchronize(hidden.device)
            captured["seconds"] = time.perf_counter() - hook_start

        handle = layers[index].self_attn.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            features, video_features = self._encode_frames(pixel_values, video_pixel_values, plan)
        finally:
            handle.remove()
        patches = self.config.patches_per_tile
        saliency = (captured["saliency"][:, -patches:], captured["keys"][:, -patches:])
        return features, video_features, saliency, captured["seconds"]

    def _compress_pool(self, compressor, blocks, grid: int, plan: _MediaPlan, saliency) -> list[torch.Tensor]:
        """Apply a pre-LLM compressor to each sample's pool tokens `[T, grid^2, D]` (T = its tiles/frames) and give
        every kept token back to the clip of its source frame. `saliency` is `([F, P], [F, P, d_h])` at patch
        resolution or None; it is pooled to the same grid as the tokens."""
        pooled_saliency = pooled_keys = None
        if saliency is not None:
            side = math.isqrt(saliency[0].shape[1])
            scores = saliency[0].view(-1, 1, side, side)
            pooled_saliency = F.adaptive_avg_pool2d(scores, grid).flatten(1)
            pooled_keys = pool_patch_tokens(saliency[1], grid)
        per_frame = grid * grid
        out = list(blocks)
        for sample in sorted(set(plan.clip_sample)):
            clips = [c for c, s in enumerate(plan.clip_sample) if s == sample]
            tokens = torch.cat([blocks[c] for c in clips]).view(-1, per_frame, blocks[clips[0]].shape[-1])
            first, last = plan.clip_tiles[clips[0]][0], plan.clip_tiles[clips[-1]][1]
            visual = VisualTokens(
                tokens, (grid, grid),
                pooled_saliency[first:last] if pooled_saliency is not None else None,
                pooled_keys[first:last] if pooled_keys is not None else None,
            )
            compressed = compressor(visual)
            frame_clip = torch.tensor(
                [c for c in clips for _ in range(plan.clip_tiles[c][1] - plan.clip_tiles[c][0])],
                device=compressed.src_idx.device,
            )
            owner = frame_clip[compressed.frame_of(per_frame)]
            for c in clips:
                out[c] = compressed.feats[owner == c]
        return out

    def _caption_dtype(self):
        return next(self.caption_projector.parameters()).dtype

    # -- 5. splice into the LLM prompt ---------------------------------------------------------------------------
    def _splice(
        self, rows: list[list[int]], media: _Media | None, labels: list[list[int]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[int], torch.Tensor]:
        """Replace each placeholder by its blocks and left-pad the batch.

        Returns `inputs_embeds [B, L, D]`, `attention_mask [B, L]`, `labels [B, L]` (visual positions and padding
        are `IGNORE_INDEX`; None if no labels), the visual-token count per sample and `pool_mask [B, L]` (True at
        pool-branch tokens: what inner-LLM compressors may prune).
        """
        embed = self.get_input_embeddings()
        device = embed.weight.device
        placeholders = {self.config.image_token_id, self.config.video_token_id}
        sequences, label_rows, visual_counts, pool_rows = [], [], [], []
        for sample, ids in enumerate(rows):
            pieces, piece_labels, visual, text_start, placeholder_index = [], [], 0, 0, 0
            pool_flags = []
            sample_labels = labels[sample] if labels is not None else None
            for position, token in enumerate(ids + [None]):
                if token is not None and token not in placeholders:
                    continue
                if position > text_start:
                    pieces.append(embed(torch.tensor(ids[text_start:position], device=device)))
                    pool_flags.extend([False] * (position - text_start))
                    if sample_labels is not None:
                        piece_labels.extend(sample_labels[text_start:position])
                text_start = position + 1
                if token is None:
                    break
                for kind, clip in media.plan.placeholder_blocks[sample][placeholder_index]:
                    block = media.block(kind, clip)
                    pieces.append(block.to(device=device, dtype=embed.weight.dtype))
                    visual += block.shape[0]
                    piece_labels.extend([IGNORE_INDEX] * block.shape[0])
                    pool_flags.extend([kind != CAPTION] * block.shape[0])
                placeholder_index += 1
            sequences.append(torch.cat(pieces) if pieces else embed.weight.new_zeros(0, embed.weight.shape[1]))
            label_rows.append(piece_labels)
            visual_counts.append(visual)
            pool_rows.append(torch.tensor(pool_flags, dtype=torch.bool, device=device))
        inputs_embeds, attention_mask = _left_pad(sequences)
        pool_mask = _left_pad(pool_rows, False)[0]
        padded_labels = None
        if labels is not None:
            padded_labels = torch.full(attention_mask.shape, IGNORE_INDEX, dtype=torch.long, device=device)
            for i, row in enumerate(label_rows):
                if row:
                    padded_labels[i, -len(row) :] = torch.tensor(row, dtype=torch.long, device=device)
        return inputs_embeds, attention_mask, padded_labels, visual_counts, pool_mask

    def _check_context(self, lengths: list[int], what: str) -> None:
        max_positions = getattr(self.config.text_config, "max_position_embeddings", None)
        for sample, length in enumerate(lengths):
            if max_positions is not None and length > max_positions:
                raise ValueError(
                    f"Sample {sample}: the prompt has {length} tokens ({what}), more than the LLM context of "
                    f"{max_positions} tokens. Use fewer frames or tiles, or a shorter question/history."
                )

    def _prepare_multimodal(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        pixel_values: torch.Tensor | None,
        num_patches_list,
        data_flag,
        caption_ids=None,
        labels: torch.Tensor | None = None,
        use_cache: bool = True,
        video_pixel_values: torch.Tensor | None = None,
        compressor=None,
        image_features: torch.Tensor | None = None,
    ):
        """Shared by `forward` and `generate`: validate, encode media, splice. Returns
        `(inputs_embeds, attention_mask, labels, media, rows, visual_counts, pool_mask)`."""
        if input_ids is None:
            raise ValueError("`input_ids` are required (the prompt with its <image>/<video> placeholders).")
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            shape = list(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"`input_ids` must be a LongTensor [batch, length], got {shape}.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        for name, tensor in (("attention_mask", attention_mask), ("labels", labels)):
            if tensor is not None and tuple(tensor.shape) != tuple(input_ids.shape):
                raise ValueError(f"`{name}` has shape {list(tensor.shape)}; it must match `input_ids` "
                                 f"{list(input_ids.shape)}.")
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask)]
        label_rows = None
        if labels is not None:
            label_rows = [lab[mask.bool()].tolist() for lab, mask in zip(labels, attention_mask)]
        batch = len(rows)
        frames = self._frames(pixel_values, image_features)
        num_patches = self._normalize_num_patches(num_patches_list, frames, batch)
        if frames is None:
            flags = [DATA_FLAG_TEXT] * batch
        else:
            flags = normalize_data_flags(data_flag, batch)
            flags = [DATA_FLAG_TEXT if not patches else flag for flag, patches in zip(flags, num_patches)]
        num_tiles = 0 if frames is None else frames.shape[0]
        plan = self._plan_media(rows, num_patches, flags, num_tiles)
        media = None
        if plan.clip_tiles:
            pool_per_tile = self.pool_tokens_per_tile()
            self._check_context(
                [len(r) - self._count_placeholders(r) + t * pool_per_tile for r, t in zip(rows, plan.tiles_per_sample)],
                "text + pool tokens, before captioning",
            )
            if pixel_values is not None:
                pixel_values = pixel_values.to(self.device)
            media = self._encode_media(
                pixel_values, plan, caption_ids, use_cache, video_pixel_values, compressor, image_features
            )
        inputs_embeds, mask, spliced_labels, visual_counts, pool_mask = self._splice(rows, media, label_rows)
        self._check_context(mask.sum(-1).tolist(), "text + visual tokens")
        return inputs_embeds, mask, spliced_labels, media, rows, visual_counts, pool_mask

    def pool_tokens_per_tile(self) -> int:
        """Fixed pool-branch tokens per tile/frame (context grid + video grid when there are two encoders; 0 without
        the pool branch): `pool_grid**2 (+ video_pool_grid**2)`."""
        config = self.config
        if not config.use_pool_branch:
            return 0
        video = config.video_pool_grid**2 if config.video_config is not None else 0
        return config.pool_grid**2 + video

    def _count_placeholders(self, ids: list[int]) -> int:
        return ids.count(self.config.image_token_id) + ids.count(self.config.video_token_id)

    @staticmethod
    def _normalize_num_patches(num_patches_list, pixel_values, batch: int) -> list[list[int]]:
        """Per-sample lists of tiles per image/frame. A flat list is accepted for one sample; `None` means one
        image holding all of `pixel_values` (InternVL convention)."""
        if pixel_values is None:
            if num_patches_list and any(num_patches_list):
                raise ValueError("`num_patches_list` was given without `pixel_values`.")
            return [[] for _ in range(batch)]
        if num_patches_list is None:
            if batch != 1:
                raise ValueError("`num_patches_list` is required for a batch of several samples.")
            return [[pixel_values.shape[0]]]
        if isinstance(num_patches_list, torch.Tensor):
            num_patches_list = num_patches_list.tolist()
        if batch == 1 and all(isinstance(n, int) for n in num_patches_list):
            return [list(num_patches_list)]
        if len(num_patches_list) != batch:
            raise ValueError(f"`num_patches_list` has {len(num_patches_list)} entries for {batch} samples.")
        return [_as_int_list(n, "num_patches_list") for n in num_patches_list]

    # -- forward / generate --------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        num_patches_list=None,
        data_flag=None,
        caption_ids: list[list[int]] | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        video_pixel_values: torch.FloatTensor | None = None,
        image_features: torch.FloatTensor | None = None,
        caption_weights: list[list[float]] | None = None,
        caption_input_ids: list[list[int]] | None = None,
        **kwargs,
    ) -> LangDCCausalLMOutputWithPast:
        """Teacher-forced forward pass of the whole model.

        Args:
            input_ids: `[B, L]` prompt ids with one `<image>` per image/frame or one `<video>` per video.
            attention_mask: `[B, L]`, 1 for real tokens (left or right padding).
            pixel_values: `[F, 3, H, W]` all tiles/frames of all samples, in prompt order.
            num_patches_list: per sample, tiles per image (data_flag 1/2) or per frame (data_flag 3).
            data_flag: per-sample flags (int, list or LongTensor); default 1.
            caption_ids: ground-truth expert captions, one id list per clip (EOS excluded), as in the official
                training path (`prepare_inputs_labels_for_vqa_dualbranch`): their vectors become the soft tokens.
                `None`: the expert generates them (no gradient through generation). Ignored by a model without an
                expert.
            labels: `[B, L]` targets aligned with `input_ids` (`-100` = ignored); visual positions are ignored.
            video_pixel_values: `[F, 3, H_v, W_v]` the same frames/tiles at the video encoder's size (two-encoder
                models only; the processor returns them).
            image_features: `[F, P, D_v]` the vision tower's features of the tiles/frames (`get_image_features`),
                precomputed, in place of `pixel_values` (single-encoder models): training with a frozen tower
                encodes each video once (`train/run.py --cache-vision-features`) instead of at every step.

            caption_weights: per caption token weights of the expert's caption loss (see below and
                [`expert_caption_loss`]); only without `input_ids`.
            caption_input_ids: the expert's teacher-forced caption inputs when they differ from `caption_ids`
                (input noising, [`expert_caption_loss`]); only without `input_ids`.

            Without `input_ids` (but with `pixel_values` and `caption_ids`), the LLM is not run and `loss` is the
            expert's caption cross-entropy ([`expert_caption_loss`], training stage II); routing it through
            `forward` keeps DDP/FSDP wrappers in the loop.

        Returns:
            [`LangDCCausalLMOutputWithPast`]; `logits` and `attention_mask` are over the spliced sequence.

        Raises:
            ValueError: on placeholder / `num_patches_list` / `pixel_values` mismatches or an over-long prompt.
        """
        has_media = pixel_values is not None or image_features is not None
        if input_ids is None and inputs_embeds is None and has_media and caption_ids is not None:
            loss = self.expert_caption_loss(pixel_values, caption_ids, num_patches_list, data_flag, video_pixel_values,
                                            image_features, caption_weights, caption_input_ids)
            return LangDCCausalLMOutputWithPast(loss=loss)
        if caption_weights is not None or caption_input_ids is not None:
            raise ValueError("`caption_weights` and `caption_input_ids` belong to the expert's caption loss, computed "
                             "without `input_ids`.")
        media = None
        if inputs_embeds is None and (has_media or past_key_values is None):
            inputs_embeds, attention_mask, labels, media, _, _, _ = self._prepare_multimodal(
                input_ids, attention_mask, pixel_values, num_patches_list, data_flag, caption_ids, labels,
                video_pixel_values=video_pixel_values, image_features=image_features,
            )
            position_ids = _positions_from_mask(attention_mask)
            input_ids = None
        outputs = self.language_model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        return LangDCCausalLMOutputWithPast(
            loss=outputs.loss,
            logits=outputs.logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            attention_mask=attention_mask,
            tokens_per_clip=self._tokens_per_sample(media) if media is not None else None,
        )

    @staticmethod
    def _tokens_per_sample(media: _Media) -> list[list[int]]:
        per_sample = {}
        for clip, sample in enumerate(media.plan.clip_sample):
            per_sample.setdefault(sample, []).append(media.caption_tokens[clip].shape[0])
        return [per_sample.get(i, []) for i in range(len(media.plan.placeholder_blocks))]

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.FloatTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        num_patches_list=None,
        data_flag=None,
        generation_config: GenerationConfig | dict | None = None,
        return_info: bool = False,
        video_pixel_values: torch.FloatTensor | None = None,
        compressor: str | None = None,
        budget: float | None = None,
        compressor_options: dict | None = None,
        caption_ids: list[list[int]] | None = None,
        **generate_kwargs,
    ):
        """Caption the clips, splice and generate with the LLM (InternVL-style entry point).

        Args:
            pixel_values: `[F, 3, H, W]` tiles/frames of all samples (None for text only).
            input_ids / attention_mask: `[B, L]` prompts with placeholders (any padding side).
            num_patches_list / data_flag: see [`forward`].
            generation_config: LLM decoding settings (a `GenerationConfig` or a dict); unset values come from the
                model's `generation_config` (greedy, EOS ids from generation_config.json).
            return_info: also return a list of [`LangDCInfo`], one per sample (captions are not decoded here).
            video_pixel_values: `[F, 3, H_v, W_v]` frames for the video encoder (two-encoder models only).
            compressor / budget / compressor_options: a training-free compressor of the pool-branch tokens
                (`compression_langdc.COMPRESSORS`: "pool", "divprune", "visionzip", "fastervlm", "dycoke",
                "holitom", "fastv"), the fraction of those tokens it keeps (in (0, 1]; 1.0 reproduces the
                uncompressed model) and method options (e.g. `{"layer": 2}` for FastV). Inner-LLM methods (FastV,
                DyCoke KV pruning, HoliTom inner merge) need a batch of one sample.
            caption_ids: given captions instead of the expert's own, one list of expert token ids per clip of the
                batch (EOS excluded), as in [`forward`]: the oracle-expert ablation (ground-truth captions).
            generate_kwargs: further `GenerationConfig` fields or `language_model.generate` arguments;
                `use_cache` (from here or `generation_config`) applies to the expert and the LLM alike.

        Returns:
            `LongTensor [B, new_tokens]` of generated ids (new tokens only), and the infos if `return_info`.

        Raises:
            ValueError: on bad inputs (see [`forward`]), an unknown compressor, a budget outside (0, 1], or an
                inner-LLM compressor with a batch of several samples.
        """
        total_start = time.perf_counter()
        llm_config = self._llm_generation_config(generation_config, generate_kwargs)
        method = _resolve_compressor(compressor, budget, compressor_options)
        inputs_embeds, mask, _, media, rows, visual_counts, pool_mask = self._prepare_multimodal(
            input_ids, attention_mask, pixel_values, num_patches_list, data_flag, caption_ids=caption_ids,
            use_cache=llm_config.use_cache, video_pixel_values=video_pixel_values, compressor=method,
        )
        hooks = method.llm_hooks(self.language_model, pool_mask) if method is not None else contextlib.nullcontext()
        timer = _PrefillTimer(inputs_embeds.device)
        processors = LogitsProcessorList(generate_kwargs.pop("logits_processor", None) or [])
        processors.append(timer)
        llm_start = time.perf_counter()
        with hooks:
            output_ids = self.language_model.generate(
                inputs_embeds=inputs_embeds,
                attention_mask=mask,
                generation_config=llm_config,
                logits_processor=processors,
                **generate_kwargs,
            )
        _synchronize(inputs_embeds.device)
        end = time.perf_counter()
        if not return_info:
            return output_ids
        timings = dict(media.timings) if media is not None else {"vision": 0.0, "expert": 0.0, "compressor": 0.0}
        prefill_end = timer.first_logits_at or end
        timings.update(llm_prefill=prefill_end - llm_start, llm_decode=end - prefill_end, total=end - total_start)
        infos = self._build_infos(media, rows, mask.sum(-1).tolist(), visual_counts, timings)
        if method is not None:
            for info in infos:
                self._add_compressor_info(info, method)
        return output_ids, infos

    def _add_compressor_info(self, info: LangDCInfo, method) -> None:
        """Record the compressor, and for inner-LLM pruning the per-layer prompt lengths and their prefill FLOPs."""
        info.compressor, info.budget, info.compressor_stats = method.name, method.budget, dict(method.stats)
        kept = method.stats.get("kept_positions")
        if kept is None:
            return
        layers = self.config.text_config.num_hidden_layers
        n = info.llm_layer_tokens[0]
        info.llm_layer_tokens = [n] * method.stats["layer"] + [len(kept)] * (layers - method.stats["layer"])
        info.llm_prefill_flops = decoder_prefill_flops(self.config.text_config, info.llm_layer_tokens)
        info.llm_prefill_flops_fastv = decoder_prefill_flops_fastv(self.config.text_config, info.llm_layer_tokens)

    def _llm_generation_config(self, generation_config, generate_kwargs: dict) -> GenerationConfig:
        """The model's generation_config (greedy, EOS list) updated with the caller's settings, never mutated."""
        config = GenerationConfig.from_dict(self.generation_config.to_dict())
        if isinstance(generation_config, GenerationConfig):
            generation_config = generation_config.to_diff_dict()
        unknown = config.update(**{**(generation_config or {}), **generate_kwargs})
        # what GenerationConfig does not know (a `streamer`, a typo) goes to `language_model.generate`, which uses it
        # or rejects it by name
        generate_kwargs.clear()
        generate_kwargs.update(unknown)
        return config

    def _build_infos(self, media, rows, prompt_lengths, visual_counts, timings) -> list[LangDCInfo]:
        config = self.config
        infos = []
        for sample, (ids, prompt_length, visual) in enumerate(zip(rows, prompt_lengths, visual_counts)):
            info = LangDCInfo(visual_tokens=visual, text_tokens=prompt_length - visual, timings=timings)
            info.llm_layer_tokens = [prompt_length] * config.text_config.num_hidden_layers
            info.llm_prefill_flops = decoder_prefill_flops(config.text_config, prompt_length)
            info.llm_prefill_flops_fastv = decoder_prefill_flops_fastv(config.text_config, prompt_length)
            if media is not None:
                clips = [c for c, s in enumerate(media.plan.clip_sample) if s == sample]
                info.tokens_per_clip = [media.caption_tokens[c].shape[0] for c in clips]
                info.caption_ids = [media.caption_ids[c] for c in clips]
                info.pool_tokens = media.pool_token_count(clips)
                info.uncompressed_pool_tokens = sum(media.uncompressed_pool_tokens[c] for c in clips)
                info.num_frames = media.plan.tiles_per_sample[sample]
                info.num_clips = len(clips)
                info.full_visual_tokens = info.num_frames * config.full_tokens_per_tile
                info.expert_flops = sum(
                    decoder_prefill_flops(config.expert_config, media.expert_prompt_lengths[c])
                    + decoder_decode_flops(
                        config.expert_config, media.expert_prompt_lengths[c], len(media.caption_ids[c])
                    )
                    for c in clips
                )
            infos.append(info)
        return infos

    # -- chat API (PVC / InternVL) -------------------------------------------------------------------------------
    def chat(
        self,
        tokenizer,
        pixel_values: torch.Tensor | None,
        question: str,
        generation_config: dict | GenerationConfig | None = None,
        history: list[tuple[str, str]] | None = None,
        return_history: bool = False,
        num_patches_list: list[int] | None = None,
        data_flag=None,
        return_info: bool = False,
        video_metadata=None,
        verbose: bool = False,
        video_pixel_values: torch.Tensor | None = None,
        compressor: str | None = None,
        budget: float | None = None,
        compressor_options: dict | None = None,
        caption_ids: list[list[int]] | None = None,
        **kwargs,
    ):
        """Answer one question about an image, several images or a video (PVC/InternVL `chat`).

        Args:
            tokenizer: the LLM tokenizer (with `<image>`, `<video>` and a chat template).
            pixel_values: `[F, 3, H, W]` tiles (images) or frames (video), or None for text only.
            question: the user turn. Placeholders: one `<image>` per image; for video one `<image>` per frame
                (`Frame{i}: <image>\\n`) or one `<video>`. Without any, one is prepended (first turn only).
            generation_config: LLM settings such as `dict(max_new_tokens=64, do_sample=False)`.
            history: previous `(question, answer)` turns; their placeholders count against `num_patches_list`.
            num_patches_list: tiles per image (data_flag 1/2) or per frame (data_flag 3), a list of ints (the
                processor's one-sample `[[...]]` is accepted too); default one image of all `pixel_values` tiles,
                or one tile per frame for a video (data_flag 3).
            data_flag: 1 single image (default), 2 several images, 3 video.
            return_info: also return a [`LangDCInfo`] with per-clip tokens and captions, FLOPs and timings.
            video_metadata: the `VideoMetadata` returned by `load_video(..., return_metadata=True)`, to report
                repeated frames of a short video.
            video_pixel_values: two-encoder models only: the same frames/tiles at the video encoder's size, as
                returned by the processor's `load_video` / `load_image` beside `pixel_values`.
            compressor / budget / compressor_options: a training-free token compressor, see [`generate`].
            caption_ids: captions to use instead of the expert's (one expert id list per clip), see [`generate`].

        Returns:
            `response`, plus `history` if `return_history`, plus `info` if `return_info`, in that order.

        Raises:
            ValueError: on bad counts, an unknown `data_flag`, `pixel_values` that are not the processor's
                `[F, 3, S, S]` floats, a malformed `history`, `num_return_sequences > 1` or
                `return_dict_in_generate` (chat returns text), or a prompt longer than the LLM context.
        """
        kwargs.pop("split_sizes", None)  # accepted for PVC eval scripts; num_patches_list carries the same
        responses, histories, infos = self._chat_batch(
            tokenizer,
            pixel_values,
            [question],
            generation_config,
            None if num_patches_list is None else [_one_sample_patches(num_patches_list)],
            data_flag if data_flag is None or isinstance(data_flag, (list, tuple, torch.Tensor)) else [data_flag],
            [history],
            [video_metadata],
            verbose,
            video_pixel_values,
            dict(compressor=compressor, budget=budget, compressor_options=compressor_options, caption_ids=caption_ids),
        )
        outputs = (responses[0],)
        if return_history:
            outputs += (histories[0],)
        if return_info:
            outputs += (infos[0],)
        return outputs[0] if len(outputs) == 1 else outputs

    def batch_chat(
        self,
        tokenizer,
        pixel_values: torch.Tensor | None,
        questions: list[str],
        generation_config: dict | GenerationConfig | None = None,
        num_patches_list: list | None = None,
        data_flag=None,
        history: list | None = None,
        return_history: bool = False,
        return_info: bool = False,
        video_metadata: list | None = None,
        verbose: bool = False,
        video_pixel_values: torch.Tensor | None = None,
        compressor: str | None = None,
        budget: float | None = None,
        compressor_options: dict | None = None,
        caption_ids: list[list[int]] | None = None,
        **kwargs,
    ):
        """Answer several questions in one batched pass: one vision call, one expert `generate`, one LLM `generate`.

        Args:
            tokenizer: the LLM tokenizer, as in [`chat`].
            pixel_values: `[ΣF, 3, S, S]` the tiles/frames of all samples concatenated in order (None: text only).
            questions: one question per sample, placeholders as in [`chat`].
            generation_config: LLM settings, shared by all samples.
            num_patches_list: one entry per sample: a list of tiles per image/frame (a plain int means one image of
                that many tiles, as in InternVL; `image_counts` is its deprecated alias).
            data_flag: one flag for all samples or one per sample.
            history: None, or one history (list of `(question, answer)` pairs, or None) per sample.
            video_metadata: None, or one `VideoMetadata` (or None) per sample.
            video_pixel_values: two-encoder models: the same tiles/frames at the video encoder's size.
            compressor / budget / compressor_options / caption_ids: as in [`generate`]; `caption_ids` has one id
                list per clip of the whole batch.

        Returns:
            The list of responses, plus the histories if `return_history`, plus the list of [`LangDCInfo`] if
            `return_info`, in that order.

        Raises:
            ValueError: as [`chat`], and when `num_patches_list`, `history` or `video_metadata` does not have one
                entry per question, or `questions` is empty.
        """
        if num_patches_list is None and "image_counts" in kwargs:
            num_patches_list = kwargs.pop("image_counts")  # deprecated InternVL alias
        if num_patches_list is not None:
            if not isinstance(num_patches_list, (list, tuple, torch.Tensor)):
                raise ValueError(f"`num_patches_list` needs one entry per question, got "
                                 f"{type(num_patches_list).__name__}.")
            num_patches_list = [
                [n] if isinstance(n, int) else _as_int_list(n, f"num_patches_list[{i}]")
                for i, n in enumerate(num_patches_list)
            ]
        histories = history if history is not None else [None] * len(questions)
        responses, new_histories, infos = self._chat_batch(
            tokenizer,
            pixel_values,
            list(questions),
            generation_config,
            num_patches_list,
            data_flag,
            histories,
            video_metadata or [None] * len(questions),
            verbose,
            video_pixel_values,
            dict(compressor=compressor, budget=budget, compressor_options=compressor_options, caption_ids=caption_ids),
        )
        outputs = (responses,)
        if return_history:
            outputs += (new_histories,)
        if return_info:
            outputs += (infos,)
        return outputs[0] if len(outputs) == 1 else outputs

    @torch.no_grad()
    def score_answers(
        self,
        tokenizer,
        pixel_values: torch.Tensor | None,
        question: str,
        answers: list[str],
        num_patches_list: list[int] | None = None,
        data_flag=None,
        history: list[tuple[str, str]] | None = None,
        video_pixel_values: torch.Tensor | None = None,
        caption_ids: list[list[int]] | None = None,
        image_features: torch.Tensor | None = None,
        end_of_turn: bool = True,
        compressor: str | None = None,
        budget: float | None = None,
        compressor_options: dict | None = None,
    ) -> list[AnswerScore]:
        """Log-likelihood of candidate answers to one question: multiple choice by likelihood instead of generation
        (lmms-eval's `loglikelihood` requests and `multiple_choice` tasks; the `(log-likelihood, is_greedy)` pair of
        lm-eval-harness).

        The prompt is built as in [`chat`]; the media are encoded and captioned once and the LLM prefills the
        prompt once, then every answer is scored in one batched pass over the shared KV cache. An answer's text is
        tokenized on its own after the assistant turn's opening, as training writes answers (`train.data`'s
        `chat_conversation`), followed by the tokenizer's EOS (`<|im_end|>` in ChatML) when `end_of_turn`, so that
        "grows" is not credited with the first token of "grows then shrinks".

        Args:
            tokenizer / pixel_values / question / num_patches_list / data_flag / history / video_pixel_values /
                caption_ids: as in [`chat`].
            answers: the candidate answers (non-empty strings), e.g. the four options of a question as the model
                writes answers (`"grows (C)"`).
            image_features: `[F, P, D_v]` vision-tower features of the tiles/frames (`get_image_features`), precomputed,
                in place of `pixel_values` (scoring several questions about one video).
            end_of_turn: also score the end-of-turn token after each answer (False for a raw continuation, as
                lmms-eval's `loglikelihood` asks).
            compressor / budget / compressor_options: a pre-LLM training-free compressor of the pool-branch tokens,
                as in [`generate`], so that a compressed model's options are ranked on the prompt it answers from.
                Inner-LLM pruning (FastV, DyCoke's KV pruning, HoliTom's inner merge) acts on the steps of
                `generate` and is refused here.

        Returns:
            One [`AnswerScore`] per answer, in order; rank them by `log_likelihood` for the preferred answer.

        Raises:
            ValueError: on an empty `answers` list, an answer that is not a string or has no tokens, `end_of_turn`
                with a tokenizer without EOS token, an inner-LLM compressor (e.g. DyCoke with `kv_prune` > 0:
                pass `compressor_options={"kv_prune": 0}` for its pre-LLM merging alone), and as [`chat`] on bad
                media inputs or compressor arguments.
        """
        if not isinstance(answers, (list, tuple)) or not answers:
            raise ValueError(f"`answers` must be a non-empty list of strings, got {answers!r:.80}.")
        for i, answer in enumerate(answers):
            if not isinstance(answer, str) or not answer:
                raise ValueError(f"`answers[{i}]` must be a non-empty string, got {answer!r:.80}.")
        if end_of_turn and tokenizer.eos_token is None:
            raise ValueError("`end_of_turn=True` needs a tokenizer with an EOS token (the end of an assistant turn).")
        _check_chat_inputs([question], None if num_patches_list is None else [num_patches_list], [history], None)
        frames = self._frames(pixel_values, image_features)
        patches = None if num_patches_list is None else [_one_sample_patches(num_patches_list)]
        _, encoded, flags, patches = self._chat_prompts(tokenizer, frames, [question], patches, data_flag, [history])
        suffix = tokenizer.eos_token if end_of_turn else ""
        answer_ids = tokenizer([answer + suffix for answer in answers], add_special_tokens=False)["input_ids"]
        method = _resolve_compressor(compressor, budget, compressor_options)
        # the answers are scored in one pass over the prompt's KV cache, which inner-LLM hooks would prune or reshape
        if method is not None and method.acts_inside_llm:
            raise ValueError(f"`compressor={compressor!r}` prunes inside the LLM while it generates; `score_answers` "
                             "takes pre-LLM compressors only (DyCoke: `compressor_options={'kv_prune': 0}`).")
        inputs_embeds, mask, *_ = self._prepare_multimodal(
            encoded["input_ids"].to(self._llm_device), encoded["attention_mask"].to(self._llm_device), pixel_values,
            patches, flags, caption_ids=caption_ids, video_pixel_values=video_pixel_values,
            image_features=image_features, compressor=method,
        )
        prompt = self.language_model(inputs_embeds=inputs_embeds, attention_mask=mask,
                                     position_ids=_positions_from_mask(mask), use_cache=True, logits_to_keep=1)
        # targets [N, A] right-padded; log-probs of token j come from the prompt's last logits (j = 0) or from the
        # answer's position j - 1, so the answers' last tokens are never fed
        count, longest = len(answers), max(map(len, answer_ids))
        targets = torch.full((count, longest), -1, dtype=torch.long, device=self._llm_device)
        for row, ids in enumerate(answer_ids):
            targets[row, : len(ids)] = torch.tensor(ids)
        valid = targets >= 0
        log_probs = prompt.logits[:, -1:].float().log_softmax(-1).expand(count, -1, -1)
        if longest > 1:
            cache = prompt.past_key_values
            cache.batch_repeat_interleave(count)
            fed = targets[:, :-1].clamp(min=0)
            answer_mask = torch.cat([mask.expand(count, -1), valid[:, :-1].long()], dim=1)
            positions = mask.shape[1] + torch.arange(longest - 1, device=self._llm_device).expand(count, -1)
            logits = self.language_model(inputs_embeds=self.language_model.get_input_embeddings()(fed),
                                         attention_mask=answer_mask, position_ids=positions,
                                         past_key_values=cache, use_cache=True).logits
            log_probs = torch.cat([log_probs, logits.float().log_softmax(-1)], dim=1)
        token_scores = log_probs.gather(-1, targets.clamp(min=0)[..., None])[..., 0].masked_fill(~valid, 0.0)
        greedy = (log_probs.argmax(-1) == targets) | ~valid
        return [
            AnswerScore(token_scores[row].sum().item(), len(ids), bool(greedy[row].all()))
            for row, ids in enumerate(answer_ids)
        ]

    def _chat_prompts(self, tokenizer, frames, questions, num_patches_list, data_flag, histories, verbose=False):
        """Shared by `_chat_batch` and `score_answers`: the chat prompts of `questions` (InternVL placeholders added
        on a first turn), tokenized and left-padded. `frames` is the tensor with one row per tile/frame (pixel
        values or vision features; None for text only). Returns `(questions, encoded, flags, num_patches_list)`."""
        batch = len(questions)
        flags = normalize_data_flags(data_flag, batch) if frames is not None else [DATA_FLAG_TEXT] * batch
        if frames is not None and num_patches_list is None:
            if batch != 1:
                raise ValueError("`num_patches_list` is required for batch_chat with several samples.")
            # InternVL: all tiles are one image; a video's frames are one tile each
            num_patches_list = [[1] * frames.shape[0] if flags[0] == DATA_FLAG_VIDEO else [frames.shape[0]]]
        questions = [
            self._add_default_placeholders(question, history, num_patches_list[i] if num_patches_list else [], flags[i])
            for i, (question, history) in enumerate(zip(questions, histories))
        ]
        prompts = [self._build_prompt(tokenizer, question, history) for question, history in zip(questions, histories)]
        if verbose:
            for prompt in prompts:
                logger.info("LangDC prompt:\n%s", prompt)
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        self._check_placeholder_ids(tokenizer)
        return questions, encoded, flags, num_patches_list

    def _chat_batch(
        self, tokenizer, pixel_values, questions, generation_config, num_patches_list, data_flag, histories,
        video_metadata, verbose, video_pixel_values=None, media_options=None,
    ):
        _check_chat_inputs(questions, num_patches_list, histories, video_metadata)
        if pixel_values is not None:
            check_pixel_values(pixel_values, "pixel_values", self.config.vision_config)
        questions, encoded, flags, num_patches_list = self._chat_prompts(
            tokenizer, pixel_values, questions, num_patches_list, data_flag, histories, verbose
        )
        gen_config = dict(generation_config.to_diff_dict() if isinstance(generation_config, GenerationConfig)
                          else (generation_config or {}))
        for key, default in (("num_return_sequences", 1), ("return_dict_in_generate", False)):
            if gen_config.get(key, default) != default:
                raise ValueError(f"`generation_config` sets {key}={gen_config[key]!r}: chat/batch_chat return one text "
                                 "per question; call `model.generate` for several sequences or generate outputs.")
        eos_ids = self._chat_eos_ids(tokenizer, gen_config.get("eos_token_id"))
        gen_config["eos_token_id"] = eos_ids
        gen_config.setdefault("pad_token_id", tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0])
        output_ids, infos = self.generate(
            pixel_values=pixel_values,
            input_ids=encoded["input_ids"].to(self._llm_device),
            attention_mask=encoded["attention_mask"].to(self._llm_device),
            num_patches_list=num_patches_list,
            data_flag=flags,
            generation_config=gen_config,
            return_info=True,
            video_pixel_values=video_pixel_values,
            **(media_options or {}),
        )
        responses = [r.strip() for r in tokenizer.batch_decode(output_ids, skip_special_tokens=True)]
        caption_tokenizer = self.get_expert_tokenizer(tokenizer)
        for info, metadata in zip(infos, video_metadata):
            info.captions = [caption_tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in info.caption_ids]
            indices = getattr(metadata, "frames_indices", None)
            if indices is not None:
                info.repeated_frames = len(indices) - len(set(int(i) for i in indices))
        # the question as prompted, with the placeholders added on the first turn (InternVL), so that the next turn
        # fills them again
        new_histories = [list(h or []) + [(q, r)] for h, q, r in zip(histories, questions, responses)]
        return responses, new_histories, infos

    def get_expert_tokenizer(self, tokenizer=None):
        """The tokenizer of the expert's vocabulary (to decode captions, or to call `config.set_expert_prompt`).

        `model.expert_tokenizer` when set; else the checkpoint's `expert_tokenizer_subfolder` (loaded once from
        `name_or_path`, local folder or Hub id); else `tokenizer`, the LLM's, which shares the expert's vocabulary.

        Raises:
            ValueError: if the expert has its own vocabulary but the model was not loaded from a folder.
        """
        subfolder = self.config.expert_tokenizer_subfolder
        if getattr(self, "expert_tokenizer", None) is None and subfolder:
            if not self.name_or_path:
                raise ValueError(
                    f"The expert tokenizer lives in the checkpoint's {subfolder!r} subfolder but this model was not "
                    "loaded from a checkpoint: set `model.expert_tokenizer`."
                )
            self.expert_tokenizer = AutoTokenizer.from_pretrained(self.name_or_path, subfolder=subfolder)
        return getattr(self, "expert_tokenizer", None) or tokenizer

    @staticmethod
    def _add_default_placeholders(question: str, history, patches: list[int], flag: int) -> str:
        """InternVL convention: on the first turn a question without placeholders gets them prepended."""
        if history or not patches or "<image>" in question or "<video>" in question:
            return question
        if flag == DATA_FLAG_VIDEO:
            return "<video>\n" + question
        if flag == DATA_FLAG_MULTI_IMAGE:
            return "".join(f"Image-{i + 1}: <image>\n" for i in range(len(patches))) + question
        return "<image>\n" + question

    def _build_prompt(self, tokenizer, question: str, history) -> str:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("The tokenizer has no chat template; load the tokenizer shipped with the checkpoint.")
        messages = [{"role": "system", "content": self.config.system_message}]
        for old_question, old_answer in history or []:
            messages += [{"role": "user", "content": old_question}, {"role": "assistant", "content": old_answer}]
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _check_placeholder_ids(self, tokenizer) -> None:
        for token, expected in (("<image>", self.config.image_token_id), ("<video>", self.config.video_token_id)):
            if tokenizer.convert_tokens_to_ids(token) != expected:
                raise ValueError(
                    f"The tokenizer maps {token} to {tokenizer.convert_tokens_to_ids(token)}, the model expects "
                    f"{expected}: use the tokenizer shipped with the checkpoint."
                )

    def _chat_eos_ids(self, tokenizer, requested=None) -> list[int]:
        """EOS ids for the LLM: the caller's (`requested`), then the model's list, then the tokenizer's EOS
        (`<|im_end|>` for ChatML)."""
        eos = []
        for configured in (requested, self.generation_config.eos_token_id):
            if configured is not None:
                eos += [t for t in _as_int_list(configured, "eos_token_id") if t not in eos]
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
            eos.append(tokenizer.eos_token_id)
        if not eos:
            raise ValueError("No EOS token id: set `eos_token_id` in generation_config.json or on the tokenizer.")
        return eos


__all__ = ["LangDCPreTrainedModel", "LangDCForConditionalGeneration", "LangDCInfo"]

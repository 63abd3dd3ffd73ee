"""LangDC configuration.

LangDC (Language-aware Dynamic token Compressor; "Seeing More, Saying More: Lightweight Language Experts are
Dynamic Video Token Compressors", arXiv 2509.00969) bundles three towers:

- a vision tower (`vision_config`, SigLIP or CLIP vision, built into transformers),
- a lightweight language expert (`expert_config`, a Qwen2/Llama causal LM) that captions each clip; the
  vectors of its generated caption become that clip's *soft caption tokens*, so the number of tokens per clip
  follows the clip's content,
- the LLM (`text_config`, a Qwen2/Llama causal LM) that answers the question.

Defaults follow the official release's shapes where they exist (Qwen2.5-0.5B expert, Qwen2.5-3B LLM, 4-frame
clips, 16 frames, layer-0 soft tokens, `max_new_tokens=128` for the cap-only branch); the vision tower defaults
to SigLIP-so400m. The official release is a two-encoder layout: CLIP ViT-L/14-336 context frames (`vision_config`)
plus InternVideo2 4-frame chunks (`video_config`, `video_encoder_langdc.py`); `tools/configs/official.json` holds its
fields and `tools/convert_official_langdc.py` builds it from the released weights.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .video_encoder_langdc import InternVideo2Config

PROJECTOR_TYPES = ("linear", "mlp2x_gelu")
BLOCK_LAYOUTS = ("per_clip", "pool_then_captions")
EXPERT_TOKEN_LAYOUTS = ("frames", "tubelets")
EXPERT_CACHE_IMPLEMENTATIONS = ("dynamic", "static")
DEFAULT_SYSTEM_MESSAGE = "You are a helpful AI assistant."
# The expert sees one clip at the `<image>` placeholder (official expert prompt, `NIneeeeeem/LangDC`
# `eval/videomme/inference/infer.py`).
DEFAULT_EXPERT_PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\n<image>\n"
    "Please provide a brief description of the video clip, focusing on the main subjects, their actions and "
    "the background.<|im_end|>\n<|im_start|>assistant\n"
)
EXPERT_PROMPT_PLACEHOLDER = "<image>"


class LangDCConfig(PreTrainedConfig):
    r"""Configuration of [`LangDCForConditionalGeneration`].

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            Vision tower config (`siglip_vision_model` or `clip_vision_model`). Its `image_size` is the tile size.
        expert_config (`dict` or `PreTrainedConfig`, *optional*):
            Language expert config (`qwen2` or `llama` causal LM).
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            LLM config (`qwen2` or `llama` causal LM).
        video_config (`dict` or `InternVideo2Config`, *optional*):
            Second encoder of the official two-encoder layout: InternVideo2 on chunks of `frames_per_clip` frames
            (its `image_size` is the video frame size). `None` (default): one vision tower only.
        vision_feature_layer (`int`, defaults to -2):
            Hidden-state index of the vision tower whose patch tokens are used (CLS, if any, is dropped).
        frames_per_clip (`int`, defaults to 4):
            Consecutive video frames grouped into one clip; the expert writes one caption per clip.
        num_frames (`int`, defaults to 16):
            Frames sampled per video by default (segment centres).
        expert_projector_type (`str`, defaults to `"mlp2x_gelu"`):
            Vision dim -> expert dim projector (`linear` or `mlp2x_gelu`), applied before pooling (after it, to
            `frames_per_clip * D_v` tubelets, with `expert_token_layout="tubelets"`).
        expert_pool_grid (`int`, defaults to 4):
            Each tile/frame is average-pooled to `expert_pool_grid**2` tokens before entering the expert.
        caption_projector_type (`str`, defaults to `"linear"`):
            Expert dim -> LLM dim projector of the soft caption tokens.
        use_expert (`bool`, defaults to `True`):
            `False` builds the no-expert baseline (VideoGPT+-style): no expert, expert projector or caption projector;
            the LLM receives only the pool-branch tokens (`pool_grid**2` per tile/frame, up to the full patch grid),
            which the training-free compressors of `compression_langdc.py` can reduce at call time.
        use_pool_branch (`bool`, defaults to `True`):
            Dual-branch model: also give the LLM `pool_grid**2` fixed pooled tokens per tile/frame. `False` is
            the cap-only model.
        pool_projector_type (`str`, defaults to `"mlp2x_gelu"`):
            Vision dim -> LLM dim projector of the pool branch, applied before pooling.
        pool_grid (`int`, defaults to 2):
            Pool-branch grid side per tile/frame.
        video_expert_projector_type / video_pool_projector_type (`str`, default `"mlp2x_gelu"`):
            Video encoder dim -> expert dim / LLM dim projectors (two-encoder layout only; official
            `cap_mm_projector` / `mm_projector`).
        video_expert_pool_grid / video_pool_grid (`int`, defaults to 8 / 4):
            Grid side each video-encoder frame is pooled to for the expert / the pool branch (two-encoder layout).
            A clip's expert input is `[context tokens of its frames | video tokens of its frames]`; its pool
            tokens are `[context pool | video pool]` (official `arch.py` `project` / `video_project_pool`).
        max_caption_tokens (`int`, defaults to 128):
            Upper bound of soft caption tokens per clip (the expert's `max_new_tokens`).
        expert_cache_implementation (`str`, defaults to `"dynamic"`):
            KV cache of the expert's batched caption `generate`: `"dynamic"` or `"static"` (a preallocated
            `StaticCache`, the prerequisite for compiled decoding).
        expert_compile (`bool`, defaults to `False`):
            With the static cache: let `generate` compile the expert's decoding step with `torch.compile` (used on
            CUDA only, as transformers does). Captions are the same with or without it.
        soft_token_layer (`int`, defaults to 0):
            0: soft tokens are the expert's input embeddings of the generated caption tokens (official dual
            model). k > 0: the hidden state after expert decoder layer k at those tokens.
        expert_prompt (`str`):
            Text of the expert prompt, with one `<image>` where the clip's tokens go.
        expert_prompt_prefix_ids / expert_prompt_suffix_ids (`list[int]`, *optional*):
            Expert token ids of the prompt before / after the clip tokens. Set by [`set_expert_prompt`].
        expert_eos_token_ids (`list[int]`, *optional*):
            Token ids that end a caption (excluded from the soft tokens).
        expert_pad_token_id (`int`, *optional*):
            Padding id for the expert's batched generation; defaults to the first EOS id.
        expert_tokenizer_subfolder (`str`, *optional*):
            Subfolder of the checkpoint with the expert's own tokenizer, when its vocabulary differs from the LLM's
            (the prompt ids above were built with it, and captions are decoded with it). `None`: shared vocabulary.
        block_layout (`str`, defaults to `"per_clip"`):
            `per_clip`: each clip's block is `[pool_k | caption_k]` at its first frame's placeholder.
            `pool_then_captions`: a video's block is `[all pool | all captions]` (official checkpoint layout).
        clip_time_frequencies (`int`, defaults to 0):
            0 (the paper's model): the LLM learns a clip's time only from the token positions and the prompt text.
            F > 0: every token of a video clip's block (pool and soft caption tokens) gets a learned vector added,
            a linear map of the clip's relative centre time t in (0, 1) expanded to `sin(pi 2^j t), cos(pi 2^j t)`
            for j < F (`ClipTimeEmbedding` in the modeling file; an extension, not in the paper or the official
            code). Image tiles get none.
        expert_token_layout (`str`, defaults to `"frames"`):
            How a clip's pooled cells enter the expert. `"frames"` (the paper's model): `expert_projector` maps every
            patch of every tile/frame, each tile/frame is pooled to `expert_pool_grid**2` tokens, and a clip is its
            frames' tokens one after the other, so a move is a comparison between tokens `expert_pool_grid**2`
            positions apart. `"tubelets"`: each frame is pooled first, and each cell's features in the clip's
            `frames_per_clip` frames are concatenated in time order into one tubelet token that `expert_projector`
            (input `frames_per_clip * D_v`) maps, so a move within a cell is one token's input: `expert_pool_grid**2`
            tokens per clip and tile. A clip with fewer frames repeats its last one, and an image is a still clip
            (each tile's cells repeated). Needs the same tiles per frame within a clip. An extension, in the spirit
            of the tubelet embeddings of video transformers (ViViT, InternVideo2); the paper and the official code
            have none (train/RUNS.md, run v35).
        official_soft_token_compat (`bool`, defaults to `False`):
            Reproduce the official inference off-by-one (`NIneeeeeem/LangDC` `arch.py`
            `prepare_inputs_labels_for_vqa_dualbranch`): the vector of the last prompt token comes first and the
            longest caption of each sample loses its last vector. Only for `soft_token_layer=0`.
        image_token_id / video_token_id (`int`, *optional*):
            LLM token ids of the `<image>` and `<video>` placeholders.
        system_message (`str`):
            System prompt used by `chat()`.

    Raises:
        ValueError: naming the field, for an unknown projector type, block layout or expert cache implementation;
            a count or grid that is not an integer >= 1 (`clip_time_frequencies`, `soft_token_layer`: >= 0); a
            `vision_feature_layer` outside the vision tower's hidden states or a `soft_token_layer` beyond the
            expert's layers; a pool grid wider than the patch grid; no visual tokens at all (`use_expert=False`
            without the pool branch); a video encoder whose chunk is not `frames_per_clip` frames.
    """

    model_type = "langdc"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="siglip_vision_model",
            init_kwargs={
                "hidden_size": 1152,
                "intermediate_size": 4304,
                "num_hidden_layers": 27,
                "num_attention_heads": 16,
                "patch_size": 14,
                "image_size": 384,
            },
        ),
        "expert_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="qwen2",
            init_kwargs={
                "hidden_size": 896,
                "intermediate_size": 4864,
                "num_hidden_layers": 24,
                "num_attention_heads": 14,
                "num_key_value_heads": 2,
                "vocab_size": 151936,
                "tie_word_embeddings": True,
            },
        ),
        "text_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="qwen2",
            init_kwargs={
                "hidden_size": 2048,
                "intermediate_size": 11008,
                "num_hidden_layers": 36,
                "num_attention_heads": 16,
                "num_key_value_heads": 2,
                "vocab_size": 151936,
                "tie_word_embeddings": True,
            },
        ),
        "video_config": SubConfigSpec(config_class=InternVideo2Config, optional=True),
    }

    vision_config: dict | PreTrainedConfig | None = None
    expert_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    video_config: dict | PreTrainedConfig | None = None
    vision_feature_layer: int = -2
    frames_per_clip: int = 4
    num_frames: int = 16
    expert_projector_type: str = "mlp2x_gelu"
    expert_pool_grid: int = 4
    caption_projector_type: str = "linear"
    use_expert: bool = True
    use_pool_branch: bool = True
    pool_projector_type: str = "mlp2x_gelu"
    pool_grid: int = 2
    video_expert_projector_type: str = "mlp2x_gelu"
    video_expert_pool_grid: int = 8
    video_pool_projector_type: str = "mlp2x_gelu"
    video_pool_grid: int = 4
    max_caption_tokens: int = 128
    expert_cache_implementation: str = "dynamic"
    expert_compile: bool = False
    soft_token_layer: int = 0
    expert_prompt: str = DEFAULT_EXPERT_PROMPT
    expert_prompt_prefix_ids: list[int] | None = None
    expert_prompt_suffix_ids: list[int] | None = None
    expert_eos_token_ids: list[int] | None = None
    expert_pad_token_id: int | None = None
    expert_tokenizer_subfolder: str | None = None
    block_layout: str = "per_clip"
    official_soft_token_compat: bool = False
    clip_time_frequencies: int = 0
    expert_token_layout: str = "frames"
    image_token_id: int | None = None
    video_token_id: int | None = None
    system_message: str = DEFAULT_SYSTEM_MESSAGE
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._validate_fields()

    def _validate_fields(self):
        projector_fields = ("expert_projector_type", "caption_projector_type", "pool_projector_type")
        for name in projector_fields + ("video_expert_projector_type", "video_pool_projector_type"):
            if getattr(self, name) not in PROJECTOR_TYPES:
                raise ValueError(f"`{name}` must be one of {PROJECTOR_TYPES}, got {getattr(self, name)!r}.")
        if self.expert_token_layout not in EXPERT_TOKEN_LAYOUTS:
            raise ValueError(
                f"`expert_token_layout` must be one of {EXPERT_TOKEN_LAYOUTS}, got {self.expert_token_layout!r}."
            )
        if self.block_layout not in BLOCK_LAYOUTS:
            raise ValueError(f"`block_layout` must be one of {BLOCK_LAYOUTS}, got {self.block_layout!r}.")
        if not self.use_expert and not self.use_pool_branch:
            raise ValueError("`use_expert=False` needs `use_pool_branch=True`: the LLM would receive no visual tokens.")
        if self.expert_cache_implementation not in EXPERT_CACHE_IMPLEMENTATIONS:
            raise ValueError(
                f"`expert_cache_implementation` must be one of {EXPERT_CACHE_IMPLEMENTATIONS}, "
                f"got {self.expert_cache_implementation!r}."
            )
        minimums = {name: 1 for name in ("frames_per_clip", "num_frames", "expert_pool_grid", "pool_grid",
                                           "video_expert_pool_grid", "video_pool_grid", "max_caption_tokens")}
        minimums.update(clip_time_frequencies=0, soft_token_layer=0, vision_feature_layer=None)
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
                bound = "an integer" if minimum is None else f"an integer >= {minimum}"
                raise ValueError(f"`{name}` must be {bound}, got {value!r}.")
        num_vision_layers = self.vision_config.num_hidden_layers
        if not -(num_vision_layers + 1) <= self.vision_feature_layer <= num_vision_layers:
            raise ValueError(
                f"`vision_feature_layer` indexes the vision tower's {num_vision_layers + 1} hidden states (embeddings "
                f"and {num_vision_layers} layers): it must be in [{-(num_vision_layers + 1)}, {num_vision_layers}], "
                f"got {self.vision_feature_layer}."
            )
        num_expert_layers = self.expert_config.num_hidden_layers
        if not 0 <= self.soft_token_layer <= num_expert_layers:
            raise ValueError(
                f"`soft_token_layer` must be in [0, {num_expert_layers}] (expert layers), got {self.soft_token_layer}."
            )
        if self.official_soft_token_compat and self.soft_token_layer != 0:
            raise ValueError("`official_soft_token_compat` reproduces the layer-0 (embedding) path only.")
        patches_per_side = self.vision_config.image_size // self.vision_config.patch_size
        for name in ("expert_pool_grid", "pool_grid"):
            if getattr(self, name) > patches_per_side:
                raise ValueError(
                    f"`{name}`={getattr(self, name)} exceeds the vision tower's {patches_per_side} patches per side."
                )
        if self.video_config is not None:
            self._validate_video_fields()

    def _validate_video_fields(self):
        video = self.video_config
        if video.num_frames != self.frames_per_clip:
            raise ValueError(
                f"The video encoder encodes chunks of {video.num_frames} frames but `frames_per_clip` is "
                f"{self.frames_per_clip}: one chunk is one clip, they must be equal."
            )
        video_side = video.image_size // video.patch_size
        for name in ("video_expert_pool_grid", "video_pool_grid"):
            if not 1 <= getattr(self, name) <= video_side:
                raise ValueError(
                    f"`{name}`={getattr(self, name)} must be in [1, {video_side}] (video encoder patches per side)."
                )

    def set_expert_prompt(self, tokenizer, prompt: str | None = None) -> None:
        """Tokenise the expert prompt with the expert's tokenizer and store the ids around the clip placeholder.

        Args:
            tokenizer: the expert's tokenizer.
            prompt (`str`, *optional*): new prompt text with exactly one `<image>`; default: `self.expert_prompt`.

        Raises:
            ValueError: if the prompt does not contain exactly one `<image>`.
        """
        prompt = self.expert_prompt if prompt is None else prompt
        if prompt.count(EXPERT_PROMPT_PLACEHOLDER) != 1:
            raise ValueError(
                f"`expert_prompt` must contain exactly one {EXPERT_PROMPT_PLACEHOLDER!r}, "
                f"found {prompt.count(EXPERT_PROMPT_PLACEHOLDER)}."
            )
        prefix, suffix = prompt.split(EXPERT_PROMPT_PLACEHOLDER)
        self.expert_prompt = prompt
        self.expert_prompt_prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        self.expert_prompt_suffix_ids = tokenizer(suffix, add_special_tokens=False)["input_ids"]

    @property
    def patches_per_tile(self) -> int:
        """Patch tokens per tile/frame from the vision tower."""
        return (self.vision_config.image_size // self.vision_config.patch_size) ** 2

    @property
    def full_tokens_per_tile(self) -> int:
        """Encoder tokens per tile/frame an uncompressed model would receive (both encoders when there are two)."""
        video_patches = self.video_config.patches_per_frame if self.video_config is not None else 0
        return self.patches_per_tile + video_patches


__all__ = ["LangDCConfig"]

"""InternVideo2 video encoder for LangDC's two-encoder (official release) layout.

The official LangDC encodes every 4-frame clip with InternVideo2-Stage2_1B-224p-f4 and takes the output of the
penultimate block, without a final norm (`x_vis_return_idx=-2` in `langdc/model/internvideo/utils.py`; reference
code `langdc/model/internvideo/internvideo2.py` of `NIneeeeeem/LangDC`, after OpenGVLab InternVideo2). This file
re-implements the parts that inference uses, in transformers style:

- `patch_embed.proj`: a 3D convolution over `[tubelet_size, patch, patch]` (tubelet 1: every frame of the chunk is
  patchified on its own, the chunk is one sequence `[cls | T x H' x W' patches]`, frame-major);
- `cls_token`, learned `pos_embed` for a `num_frames` chunk and `img_pos_embed` for a single image (T = 1);
- `blocks`: pre-norm ViT blocks with RMSNorm, bias-free qkv with RMSNorm on queries and keys (over all heads),
  LayerScale (computed in float32) and a GELU MLP.

Only the blocks that LangDC uses are built (`num_hidden_layers` = 39 of the 40 released blocks), so the encoder's
output is the feature LangDC reads. Parameter names follow the official checkpoint (`vision_encoder.` prefix
removed), so converted weights load without renaming. Attention goes through transformers' attention interface
(`eager`, `sdpa`, `flash_attention_2` when flash-attn is installed); nothing here imports flash-attn.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


class InternVideo2Config(PreTrainedConfig):
    r"""Configuration of [`InternVideo2Model`] (defaults: InternVideo2-1B, 224 px, 4-frame chunks, 39 blocks).

    Args:
        hidden_size (`int`, defaults to 1408): embedding width.
        intermediate_size (`int`, defaults to 6144): MLP width (`int(1408 * 48 / 11)`).
        num_hidden_layers (`int`, defaults to 39): blocks built and run (the released model has 40; LangDC reads the
            output of the penultimate one).
        num_attention_heads (`int`, defaults to 16): attention heads.
        image_size (`int`, defaults to 224): input frame side in pixels.
        patch_size (`int`, defaults to 14): spatial patch side.
        num_frames (`int`, defaults to 4): frames per chunk (the temporal length of `pos_embed`).
        tubelet_size (`int`, defaults to 1): temporal patch size.
        num_channels (`int`, defaults to 3): input channels.
        qkv_bias (`bool`, defaults to `False`): bias of the fused qkv projection.
        qk_normalization (`bool`, defaults to `True`): RMSNorm on queries and keys.
        layer_scale_init_value (`float`, defaults to 1e-5): LayerScale init; 0 disables LayerScale.
        rms_norm_eps (`float`, defaults to 1e-6): RMSNorm epsilon.
        hidden_act (`str`, defaults to `"gelu"`): MLP activation (transformers `ACT2FN` name; exact GELU).
        sep_image_video_pos_embed (`bool`, defaults to `True`): a separate `img_pos_embed` for single images;
            otherwise images use the temporal mean of `pos_embed`.
        attention_dropout (`float`, defaults to 0.0), initializer_range (`float`, defaults to 0.02).
    """

    model_type = "internvideo2_langdc"
    base_config_key = "video_config"

    hidden_size: int = 1408
    intermediate_size: int = 6144
    num_hidden_layers: int = 39
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    num_frames: int = 4
    tubelet_size: int = 1
    num_channels: int = 3
    qkv_bias: bool = False
    qk_normalization: bool = True
    layer_scale_init_value: float = 1e-5
    rms_norm_eps: float = 1e-6
    hidden_act: str = "gelu"
    sep_image_video_pos_embed: bool = True
    attention_dropout: float = 0.0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` {self.hidden_size} is not divisible by `num_attention_heads` {self.num_attention_heads}."
            )
        if self.image_size % self.patch_size:
            raise ValueError(f"`image_size` {self.image_size} is not a multiple of `patch_size` {self.patch_size}.")
        if self.num_frames % self.tubelet_size:
            raise ValueError(f"`num_frames` {self.num_frames} is not a multiple of `tubelet_size` {self.tubelet_size}.")

    @property
    def patches_per_frame(self) -> int:
        """Spatial patch tokens per frame (256 for 224 px / 14 px)."""
        return (self.image_size // self.patch_size) ** 2


class InternVideo2RMSNorm(nn.Module):
    """RMSNorm computed in float32, scaled by `weight` after casting back (official InternVideo2 `RMSNorm`)."""

    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.float()
        hidden_states = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class InternVideo2LayerScale(nn.Module):
    """`x * gamma`, computed in float32 and cast back (official `LayerScale(force_fp32=True)`)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(hidden_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return (hidden_states.float() * self.gamma.float()).to(hidden_states.dtype)


class InternVideo2PatchEmbed(nn.Module):
    """3D patch embedding: `[B, C, T, H, W] -> [B, T' * H' * W', D]` (frame-major token order)."""

    def __init__(self, config: InternVideo2Config):
        super().__init__()
        kernel = (config.tubelet_size, config.patch_size, config.patch_size)
        self.proj = nn.Conv3d(config.num_channels, config.hidden_size, kernel_size=kernel, stride=kernel)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values).flatten(2).transpose(1, 2)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    """Softmax attention on `[B, H, N, d]` tensors; returns `([B, N, H, d], weights)`."""
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    return torch.matmul(attn_weights, value).transpose(1, 2).contiguous(), attn_weights


class InternVideo2Attention(nn.Module):
    """Bidirectional multi-head self-attention with a fused qkv projection and RMSNorm on queries and keys."""

    def __init__(self, config: InternVideo2Config):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scale = self.head_dim**-0.5
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        if config.qk_normalization:
            self.q_norm = InternVideo2RMSNorm(config.hidden_size, config.rms_norm_eps)
            self.k_norm = InternVideo2RMSNorm(config.hidden_size, config.rms_norm_eps)
        else:
            self.q_norm = self.k_norm = nn.Identity()

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        query, key, value = self.qkv(hidden_states).chunk(3, dim=-1)
        heads = (batch, length, self.num_heads, self.head_dim)
        query = self.q_norm(query).view(heads).transpose(1, 2)
        key = self.k_norm(key).view(heads).transpose(1, 2)
        value = value.view(heads).transpose(1, 2)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            is_causal=self.is_causal,
            scaling=self.scale,
            dropout=self.config.attention_dropout if self.training else 0.0,
        )
        return self.proj(attn_output.reshape(batch, length, -1)), attn_weights


class InternVideo2MLP(nn.Module):
    def __init__(self, config: InternVideo2Config):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class InternVideo2Block(nn.Module):
    """`x + ls1(attn(norm1(x)))`, then `x + ls2(mlp(norm2(x)))` (LayerScale is identity when disabled)."""

    def __init__(self, config: InternVideo2Config):
        super().__init__()
        use_layer_scale = config.layer_scale_init_value > 0
        self.norm1 = InternVideo2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attn = InternVideo2Attention(config)
        self.ls1 = InternVideo2LayerScale(config.hidden_size) if use_layer_scale else nn.Identity()
        self.norm2 = InternVideo2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = InternVideo2MLP(config)
        self.ls2 = InternVideo2LayerScale(config.hidden_size) if use_layer_scale else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> torch.Tensor:
        attn_output, _ = self.attn(self.norm1(hidden_states), **kwargs)
        hidden_states = hidden_states + self.ls1(attn_output)
        return hidden_states + self.ls2(self.mlp(self.norm2(hidden_states)))


class InternVideo2PreTrainedModel(PreTrainedModel):
    config_class = InternVideo2Config
    base_model_prefix = "video_model"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternVideo2Block"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, InternVideo2Model):
            init.trunc_normal_(module.cls_token, std=std)
            init.trunc_normal_(module.pos_embed, std=std)
            if module.img_pos_embed is not None:
                init.trunc_normal_(module.img_pos_embed, std=std)
        elif isinstance(module, InternVideo2LayerScale):
            init.constant_(module.gamma, self.config.layer_scale_init_value)
        elif isinstance(module, InternVideo2RMSNorm):
            init.ones_(module.weight)


class InternVideo2Model(InternVideo2PreTrainedModel):
    """InternVideo2 encoder up to its last built block (no final norm, no attention-pooling head).

    Input `pixel_values` `[B, T, 3, H, W]` with `T = num_frames` (a chunk) or `T = 1` (an image, `img_pos_embed`).
    Output `last_hidden_state` `[B, 1 + T * P, D]`: the cls token, then `P = patches_per_frame` tokens per frame,
    frame-major. Source: reference `internvideo2.py` `PretrainInternVideo2.forward(x_vis_return_idx=-2,
    x_vis_only=True)`.
    """

    def __init__(self, config: InternVideo2Config):
        super().__init__(config)
        tokens_per_chunk = config.num_frames // config.tubelet_size * config.patches_per_frame
        self.patch_embed = InternVideo2PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + tokens_per_chunk, config.hidden_size))
        self.img_pos_embed = (
            nn.Parameter(torch.zeros(1, 1 + config.patches_per_frame, config.hidden_size))
            if config.sep_image_video_pos_embed
            else None
        )
        self.blocks = nn.ModuleList([InternVideo2Block(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.patch_embed.proj

    def _position_embedding(self, num_frames: int) -> torch.Tensor:
        config = self.config
        if num_frames == config.num_frames:
            return self.pos_embed
        if num_frames != 1:
            raise ValueError(
                f"InternVideo2 encodes chunks of {config.num_frames} frames or single images, got {num_frames} frames."
            )
        if self.img_pos_embed is not None:
            return self.img_pos_embed
        # one image without its own table: the temporal mean of the video table (reference code)
        patches = self.pos_embed[:, 1:].view(1, config.num_frames // config.tubelet_size, -1, config.hidden_size)
        return torch.cat([self.pos_embed[:, :1], patches.mean(1)], dim=1)

    def forward(
        self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None, **kwargs
    ) -> BaseModelOutput:
        """Encode chunks or images.

        Args:
            pixel_values: `[B, T, 3, H, W]`, `T` = `num_frames` or 1, `H = W = image_size`.
            output_hidden_states: also return the embeddings and the output of every block.

        Returns:
            `BaseModelOutput` with `last_hidden_state` `[B, 1 + T * P, D]`.

        Raises:
            ValueError: for a frame count other than `num_frames` or 1, or a wrong frame size.
        """
        if pixel_values.ndim != 5:
            raise ValueError(f"`pixel_values` must be [B, T, C, H, W], got shape {tuple(pixel_values.shape)}.")
        size = self.config.image_size
        if pixel_values.shape[-2:] != (size, size):
            raise ValueError(f"InternVideo2 expects {size}x{size} frames, got {tuple(pixel_values.shape[-2:])}.")
        position_embedding = self._position_embedding(pixel_values.shape[1])
        embeddings = self.patch_embed(pixel_values.to(self.patch_embed.proj.weight.dtype).transpose(1, 2))
        cls_token = self.cls_token.expand(embeddings.shape[0], -1, -1)
        hidden_states = torch.cat([cls_token, embeddings], dim=1) + position_embedding
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                hidden_states = self._gradient_checkpointing_func(block.__call__, hidden_states)
            else:
                hidden_states = block(hidden_states, **kwargs)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states)


__all__ = ["InternVideo2Config", "InternVideo2Model", "InternVideo2PreTrainedModel"]

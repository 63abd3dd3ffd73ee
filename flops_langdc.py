"""Analytic FLOP counts for decoder-only LMs (exact GQA/SwiGLU closed form; FastV convention, arXiv 2403.06764).

All counts are multiply-adds x 2 (FLOPs, not MACs) for one sequence, batch 1. They take a transformers
`Qwen2Config`/`LlamaConfig`-like object with `hidden_size`, `intermediate_size`, `num_hidden_layers`,
`num_attention_heads`, `num_key_value_heads` (optional, defaults to the head count), `head_dim` (optional) and
`vocab_size`.
"""


def _dims(config):
    d = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    return d, config.intermediate_size, config.num_hidden_layers, kv_heads, head_dim, config.vocab_size


def _layer_lengths(config, num_tokens) -> list[int]:
    """Tokens each layer processes: an int means every layer sees the same prompt; a list gives one length per
    layer (inner-LLM pruning such as FastV). Raises `ValueError` for a negative count or a wrong list length."""
    layers = config.num_hidden_layers
    lengths = [num_tokens] * layers if isinstance(num_tokens, int) else list(num_tokens)
    if len(lengths) != layers:
        raise ValueError(f"`num_tokens` has {len(lengths)} per-layer lengths for {layers} layers.")
    if any(n < 0 for n in lengths):
        raise ValueError(f"`num_tokens` must be >= 0, got {num_tokens}.")
    return lengths


def decoder_prefill_flops(config, num_tokens, logits_tokens: int = 1) -> int:
    """Exact prefill FLOPs of a Qwen2/Llama-style decoder on `num_tokens` tokens (an int, or one length per layer).

    Per layer: q and o projections `4 n d^2`, k and v projections `4 n d g d_h` (g KV heads of width d_h),
    gated MLP `6 n d m`, attention scores and weighted sum `4 n^2 d` (full square, as computed by dense kernels);
    plus the LM head on `logits_tokens` positions, `2 d V` each (prefill only needs the last one).

    Raises:
        ValueError: if a token count is negative or the per-layer list does not match the layer count.
    """
    d, m, _, kv_heads, head_dim, vocab = _dims(config)
    lengths = _layer_lengths(config, num_tokens)
    total = sum(4 * n * d * d + 4 * n * d * kv_heads * head_dim + 6 * n * d * m + 4 * n * n * d for n in lengths)
    return total + 2 * d * vocab * min(logits_tokens, lengths[-1])


def decoder_prefill_flops_fastv(config, num_tokens) -> int:
    """Prefill FLOPs in the field's convention (FastV, HoliTom, DyCoke): `L (4 n d^2 + 2 n^2 d + 2 n d m)`, summed
    over layers when `num_tokens` gives one length per layer (FastV's own accounting of pruned layers).

    It ignores grouped KV heads, counts one MLP matrix pair and half the attention; use it only to compare with
    numbers published under that convention.
    """
    d, m, _, _, _, _ = _dims(config)
    return sum(4 * n * d * d + 2 * n * n * d + 2 * n * d * m for n in _layer_lengths(config, num_tokens))


def decoder_decode_flops(config, context_tokens: int, new_tokens: int) -> int:
    """FLOPs of `new_tokens` KV-cached decode steps after a prefix of `context_tokens` tokens.

    Step t (0-based) processes one token against `context_tokens + t + 1` cached keys: the projections and MLP
    of one token, `4 d (context + t + 1)` for attention, and the LM head `2 d V`.
    """
    if context_tokens < 0 or new_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got context={context_tokens}, new={new_tokens}.")
    d, m, layers, kv_heads, head_dim, vocab = _dims(config)
    per_token_dense = 4 * d * d + 4 * d * kv_heads * head_dim + 6 * d * m
    # sum over steps of the attended length: new * context + new * (new + 1) / 2
    attended = new_tokens * context_tokens + new_tokens * (new_tokens + 1) // 2
    return layers * (new_tokens * per_token_dense + 4 * d * attended) + new_tokens * 2 * d * vocab

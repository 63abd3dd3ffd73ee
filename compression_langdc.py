"""Training-free visual-token compressors for LangDC and its no-expert baseline (the comparison zoo).

One interface for every method, chosen at call time: `model.chat(..., compressor="divprune", budget=0.25)`.

- Pre-LLM methods act on one sample's pool-branch tokens `[T, N, D]` (T tiles/frames, N = `pool_grid**2` tokens per
  frame, already projected into the LLM space) and return the kept or merged tokens with their source indices
  (`TokenCompressor.compress`). The budget is the fraction of those `T * N` tokens that reaches the LLM.
- Inner-LLM methods prune inside the LLM through forward pre-hooks on its decoder layers
  (`TokenCompressor.llm_hooks`). Their attention rows come from `last_query_attention`, which recomputes
  `softmax(q k^T / sqrt(d_h))` for the needed query rows from the layer's own q/k projections and rotary embedding, so
  every layer keeps its SDPA/flash kernel (no eager layer, no `output_attentions`).

Methods (`COMPRESSORS`; sources in each class): `pool` (fixed average pooling), `divprune`, `visionzip`, `fastervlm`,
`dycoke` (temporal token merging + decode-time KV pruning), `holitom` (outer temporal stage, optional inner merge),
`fastv` (inner pruning at layer K). Rules shared by all methods:

- `budget=1.0` keeps every token: pre-LLM methods return their input unchanged, inner methods keep every visual token,
  so the logits equal the uncompressed model's exactly.
- Deterministic: no random tie-breaking (`torch.topk`/`argsort` on fixed inputs, index order on ties).
- Kept tokens are returned in source order (sorted `src_idx`); positions are compact (re-indexed) for pre-LLM
  methods, original for inner methods (FastV/HoliTom-M, as the references do).
- Inner methods support batch size 1 (as every reference repository); a larger batch raises `ValueError`.
"""

import contextlib
import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DYCOKE_GROUP = 4  # DyCoke TTM works on groups of 4 frames (KD-TAO/DyCoke llava_arch.py: dycole_ttm)
VISIONZIP_DOMINANT_FRACTION = 54 / 64  # VisionZip README budget 54 dominant + 10 contextual
HOLITOM_BETA = 0.6
HOLITOM_KNN = 7
HOLITOM_TAU = 0.8
HOLITOM_TAU_LOW_BUDGET = 0.65  # scripts/eval_ov-7b_holitom.sh: tau 0.65 at RETAIN_RATIO 0.10
HOLITOM_LOW_BUDGET = 0.1
DYCOKE_KV_LAYER = 3
DYCOKE_KV_PRUNE = 0.7
DYCOKE_KV_SIMILARITY = 0.9
FASTV_LAYER = 2


@dataclass
class VisualTokens:
    """One stream of visual tokens of one sample.

    Attributes:
        feats: `[T, N, D]` tokens per tile/frame (projected into the LLM space).
        grid: `(H, W)` spatial grid of each frame, `N == H * W`.
        saliency: `[T, N]` attention each token receives in the vision encoder (VisionZip/HoliTom), or None.
        keys: `[T, N, d_k]` vision-encoder key states averaged over heads (VisionZip's merge metric), or None.
    """

    feats: torch.Tensor
    grid: tuple[int, int]
    saliency: torch.Tensor | None = None
    keys: torch.Tensor | None = None


@dataclass
class Compressed:
    """Output of a pre-LLM compressor.

    Attributes:
        feats: `[K, D]` kept or merged tokens, in source order.
        src_idx: `[K]` flat index into `T * N` of each token's representative source token (sorted, unique).
        n_merged: `[K]` source tokens folded into each output token (1 for pure selection).
    """

    feats: torch.Tensor
    src_idx: torch.Tensor
    n_merged: torch.Tensor

    def frame_of(self, tokens_per_frame: int) -> torch.Tensor:
        """`[K]` frame index of each output token."""
        return self.src_idx // tokens_per_frame


def _identity(tokens: VisualTokens) -> Compressed:
    t, n, d = tokens.feats.shape
    idx = torch.arange(t * n, device=tokens.feats.device)
    return Compressed(tokens.feats.reshape(t * n, d), idx, torch.ones_like(idx))


def _select(flat: torch.Tensor, idx: torch.Tensor) -> Compressed:
    """Pure selection of `flat[idx]` in source order."""
    idx = torch.sort(idx).values
    return Compressed(flat[idx], idx, torch.ones_like(idx))


def _sorted(feats: torch.Tensor, src_idx: torch.Tensor, n_merged: torch.Tensor) -> Compressed:
    order = torch.argsort(src_idx)
    return Compressed(feats[order], src_idx[order], n_merged[order])


def _ratio_tokens(ratio: float, total: int) -> int:
    """`round(ratio * total)`, at least 1 when `total > 0`."""
    return min(total, max(1, round(ratio * total))) if total else 0


class TokenCompressor:
    """Base class: a training-free compressor with a budget (fraction of visual tokens kept, in (0, 1]).

    Subclasses override `compress` (pre-LLM) and/or `llm_hooks` (inner-LLM). `requires` names the optional inputs of
    `VisualTokens` the method needs (`"saliency"`, `"keys"`); the model computes them only when asked.

    Raises:
        ValueError: if `budget` is not a number in (0, 1] or an option is unknown.
    """

    name = "none"
    requires: frozenset = frozenset()
    options: tuple = ()

    def __init__(self, budget: float, **options):
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 1:
            raise ValueError(f"`budget` must be a fraction of visual tokens in (0, 1], got {budget!r}.")
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"Unknown option(s) {unknown} for compressor {self.name!r}; known: {list(self.options)}.")
        self.budget = float(budget)
        self.stats: dict = {}
        for key, value in options.items():
            setattr(self, key, value)

    @property
    def is_identity(self) -> bool:
        return self.budget >= 1.0

    @property
    def acts_inside_llm(self) -> bool:
        """Whether `llm_hooks` installs hooks (inner-LLM pruning or merging); False for pre-LLM methods."""
        return False

    def compress(self, tokens: VisualTokens) -> Compressed:
        """Pre-LLM compression of one sample's tokens; the base class keeps every token."""
        return _identity(tokens)

    def __call__(self, tokens: VisualTokens) -> Compressed:
        """Compress one sample's tokens (identity at budget 1.0).

        Raises:
            ValueError: if an input named in `requires` is missing.
        """
        if self.is_identity:
            return _identity(tokens)
        missing = [name for name in sorted(self.requires) if getattr(tokens, name) is None]
        if missing:
            raise ValueError(f"Compressor {self.name!r} needs {missing} of the visual tokens; none were given.")
        return self.compress(tokens)

    def llm_hooks(self, language_model, visual_mask: torch.Tensor):
        """Context manager installing the inner-LLM hooks for one `generate` call; the base class installs none.

        Args:
            language_model: the causal LM (`.model.layers` are its decoder layers).
            visual_mask: `[B, n]` bool, True at the compressible visual positions of the prompt.
        """
        return contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------------------------
# pre-LLM methods
# ----------------------------------------------------------------------------------------------------------------
class AvgPoolCompressor(TokenCompressor):
    """Fixed average pooling of each frame's grid (the fixed-ratio baseline; LLaVA-Video/VideoGPT+ style pooling).

    Budget rounding: each grid side is scaled by `sqrt(budget)` and rounded to the nearest integer (at least 1), so
    the realised count is `T * round(H sqrt(b)) * round(W sqrt(b))`. `src_idx` is each window's top-left token.
    """

    name = "pool"

    def pooled_grid(self, grid: tuple[int, int]) -> tuple[int, int]:
        scale = math.sqrt(self.budget)
        return max(1, round(grid[0] * scale)), max(1, round(grid[1] * scale))

    def compress(self, tokens):
        t, n, d = tokens.feats.shape
        (h, w), (gh, gw) = tokens.grid, self.pooled_grid(tokens.grid)
        frames = tokens.feats.transpose(1, 2).reshape(t, d, h, w)
        pooled = F.adaptive_avg_pool2d(frames, (gh, gw)).flatten(2).transpose(1, 2).reshape(-1, d)
        rows = torch.tensor([i * h // gh for i in range(gh)])
        cols = torch.tensor([j * w // gw for j in range(gw)])
        row_ends = torch.tensor([-(-(i + 1) * h // gh) for i in range(gh)])
        col_ends = torch.tensor([-(-(j + 1) * w // gw) for j in range(gw)])
        cell = (rows[:, None] * w + cols[None, :]).flatten()
        size = ((row_ends - rows)[:, None] * (col_ends - cols)[None, :]).flatten()
        src = (torch.arange(t)[:, None] * n + cell[None, :]).flatten().to(pooled.device)
        return Compressed(pooled, src, size.repeat(t).to(pooled.device))


def divprune_select(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy max-min diversity selection (DivPrune, Alvar et al., CVPR'25, arXiv 2503.02175; vbdi/divprune
    `LLaVA/llava/model/llava_arch.py: DivPrune`), with a running min-distance vector (O(k M)).

    Args:
        feats: `[M, D]` tokens; k: how many to select (1 <= k <= M).

    Returns:
        `[k]` selected indices in selection order. Distance is `1 - cos`; the first pick is the token whose nearest
        neighbour is farthest away, each next pick maximises the distance to the selected set (first index on ties).
    """
    x = F.normalize(feats.float(), dim=-1)
    dist = 1 - x @ x.T
    m = dist.shape[0]
    if m == 1:
        return torch.zeros(1, dtype=torch.long, device=feats.device)
    first = int(torch.argmax(torch.topk(dist, 2, dim=0, largest=False).values[1]))
    selected = [first]
    min_dist = dist[first].clone()
    min_dist[first] = -1
    for _ in range(k - 1):
        nxt = int(torch.argmax(min_dist))
        selected.append(nxt)
        min_dist = torch.minimum(min_dist, dist[nxt])
        min_dist[selected] = -1
    return torch.tensor(selected, dtype=torch.long, device=feats.device)


class DivPruneCompressor(TokenCompressor):
    """DivPrune over all `T * N` tokens of the sample (see `divprune_select`).

    Budget rounding: `k = round(budget * T * N)`, at least 1.
    """

    name = "divprune"

    def compress(self, tokens):
        flat = tokens.feats.reshape(-1, tokens.feats.shape[-1])
        return _select(flat, divprune_select(flat, _ratio_tokens(self.budget, flat.shape[0])))


class VisionZipCompressor(TokenCompressor):
    """VisionZip dominant + contextual tokens per frame (Yang et al., CVPR'25, arXiv 2412.04467;
    dvlab-research/VisionZip `visionzip/clip_encoder.py`, no-[CLS] SigLIP port in cokeshao/HoliTom `visionzip/`).

    Dominant tokens: top `saliency` (attention each token receives in the vision encoder, pooled to the grid).
    Contextual tokens: targets spread uniformly over the rest (`rest[::step][:c]`); every other remaining token is
    assigned to the target with the largest normalised `keys` dot product (features when the model gives no keys)
    and the target becomes `target + mean(assigned)`, as in the reference. Output in source order (the reference puts
    contextual tokens after the dominant ones). Option `dominant_fraction` (default 54/64).

    Budget rounding: per frame `k = round(budget * N)` (at least 1), of which `round(k * dominant_fraction)` (at
    least 1) dominant; realised `T * k`.
    """

    name = "visionzip"
    requires = frozenset({"saliency"})
    options = ("dominant_fraction",)
    dominant_fraction = VISIONZIP_DOMINANT_FRACTION

    def compress(self, tokens):
        t, n, d = tokens.feats.shape
        k = _ratio_tokens(self.budget, n)
        dominant = min(k, max(1, round(k * self.dominant_fraction)))
        metric = F.normalize((tokens.keys if tokens.keys is not None else tokens.feats).float(), dim=-1)
        feats, src, merged = [], [], []
        for frame in range(t):
            top = torch.topk(tokens.saliency[frame].float(), dominant).indices
            feats.append(tokens.feats[frame, top])
            src.append(top + frame * n)
            merged.append(torch.ones_like(top))
            contextual = k - dominant
            if contextual == 0:
                continue
            rest_mask = torch.ones(n, dtype=torch.bool, device=top.device)
            rest_mask[top] = False
            rest = rest_mask.nonzero().squeeze(1)
            step = max(1, rest.numel() // contextual)
            targets = rest[::step][:contextual]
            others = rest[~torch.isin(rest, targets)]
            assign = torch.argmax(metric[frame, others] @ metric[frame, targets].T, dim=-1)
            sums = torch.zeros(targets.numel(), d, dtype=tokens.feats.dtype, device=top.device)
            sums.index_add_(0, assign, tokens.feats[frame, others])
            counts = torch.bincount(assign, minlength=targets.numel())
            mean = sums / counts.clamp(min=1)[:, None].to(sums.dtype)
            feats.append(tokens.feats[frame, targets] + mean)
            src.append(targets + frame * n)
            merged.append(counts + 1)
        return _sorted(torch.cat(feats), torch.cat(src), torch.cat(merged))


class FasterVLMCompressor(VisionZipCompressor):
    """FasterVLM [CLS]/received-attention pruning (Zhang et al., arXiv 2412.01818; Theia-4869/FasterVLM
    `llava/model/llava_arch.py: encode_images`): VisionZip with no contextual tokens, per frame top-`k` saliency.

    Budget rounding: per frame `k = round(budget * N)` (at least 1); realised `T * k`.
    """

    name = "fastervlm"
    options = ()
    dominant_fraction = 1.0


def dycoke_keep_per_frame(budget: float, num_frames: int, tokens_per_frame: int) -> int:
    """Tokens DyCoke TTM keeps in each non-anchor frame so that the sample keeps `budget * T * N` tokens.

    Every first frame of a 4-frame group (`ceil(T/4)` anchors) is kept whole; the other frames keep
    `round((budget*T*N - anchors*N) / (T - anchors))` tokens. Raises `ValueError` when the budget is below
    the anchors' share `ceil(T/4)/T`, which DyCoke cannot reach.
    """
    anchors = -(-num_frames // DYCOKE_GROUP)
    others = num_frames - anchors
    if others == 0:
        return tokens_per_frame
    target = budget * num_frames * tokens_per_frame - anchors * tokens_per_frame
    if target < 0:
        raise ValueError(
            f"DyCoke keeps every {DYCOKE_GROUP}th frame whole: `budget`={budget} is below its minimum "
            f"{anchors / num_frames:.4f} for {num_frames} frames."
        )
    return min(tokens_per_frame, round(target / others))


def _kv_pruned_mask(module, mask, allowed: torch.Tensor):
    """Combine a decode-step attention mask (None, bool or additive float, `[B, 1, q, kv]`) with `allowed [kv]`."""
    if mask is None:
        if module.config._attn_implementation == "sdpa":
            return allowed.view(1, 1, 1, -1)
        mask = torch.zeros(1, 1, 1, allowed.numel(), device=allowed.device, dtype=module.q_proj.weight.dtype)
    if mask.dtype == torch.bool:
        return mask & allowed.view(1, 1, 1, -1)
    return mask.masked_fill(~allowed.view(1, 1, 1, -1), torch.finfo(mask.dtype).min)


class DyCokeCompressor(TokenCompressor):
    """DyCoke (Tao et al., CVPR'25, arXiv 2411.15024; KD-TAO/DyCoke `llava/model/llava_arch.py: dycole_ttm` and
    `language_model/modeling_qwen2.py: PrunableDynamicCache`).

    Temporal token merging (pre-LLM): in each group of 4 frames, frame 0 is kept; frame 1 is compared with frame 0,
    frame 2 with frame 0, frame 3 with frame 2 (cosine per position) and keeps its least similar tokens (the
    reference "merging" is pruning). Deviations from the reference: the last group is also compressed (the reference
    skips frame 2 of the last group when `T % 4 == 0`), a trailing odd frame is kept (the reference drops it), and
    kept tokens are in source order (the reference keeps similarity order).

    Decode-time KV pruning (inner): at every decode step the new token's attention row at layer `kv_layer - 1`
    (mean over heads, from `last_query_attention` on the cached keys) ranks the visual tokens; layers `>= kv_layer`
    attend only to the top `round(M'(1 - kv_prune))` of them. The selection is recomputed when the row's cosine to
    the previous row is below 0.9, else the previous selection is reused (the reference
    `PrunableDynamicCache.dycoke_pruning` instead runs that step unpruned). The full cache is kept and pruning is
    an attention mask, equivalent to the reference's gather-on-read. Options `kv_layer` (3), `kv_prune` (0.7; 0
    disables it).

    Budget rounding: see `dycoke_keep_per_frame`; realised `ceil(T/4) * N + (T - ceil(T/4)) * keep`, within
    `(T - ceil(T/4)) / 2` tokens of `budget * T * N`.
    """

    name = "dycoke"
    options = ("kv_layer", "kv_prune")
    kv_layer = DYCOKE_KV_LAYER
    kv_prune = DYCOKE_KV_PRUNE

    def compress(self, tokens):
        t, n, d = tokens.feats.shape
        keep = dycoke_keep_per_frame(self.budget, t, n)
        x = F.normalize(tokens.feats.float(), dim=-1)
        idx = []
        for frame in range(t):
            position = frame % DYCOKE_GROUP
            if position == 0:
                idx.append(torch.arange(n, device=x.device) + frame * n)
                continue
            reference = frame - 2 if position == 2 else frame - 1
            similarity = (x[frame] * x[reference]).sum(-1)
            idx.append(torch.argsort(similarity, stable=True)[:keep] + frame * n)
        return _select(tokens.feats.reshape(t * n, d), torch.cat(idx))

    @property
    def acts_inside_llm(self) -> bool:
        return not self.is_identity and self.kv_prune != 0

    def llm_hooks(self, language_model, visual_mask):
        if not self.acts_inside_llm:
            return contextlib.nullcontext()
        return _DecodeKVPruner(self, language_model, visual_mask)


def dpc_knn_scores(x: torch.Tensor, k: int) -> torch.Tensor:
    """DPC-kNN density-peak scores `rho * delta` of `[n, D]` tokens (HoliTom/PruneVid `cluster_dpc_knn`).

    `dist = cdist / sqrt(D)`, `rho = exp(-mean of the k nearest squared distances)`, `delta` = distance to the
    nearest denser token (the maximum distance for the densest). No random noise: ties resolve by index.
    """
    n, d = x.shape
    dist = torch.cdist(x.float(), x.float()) / math.sqrt(d)
    knn = torch.topk(dist, min(k, n), dim=-1, largest=False).values
    rho = torch.exp(-(knn**2).mean(-1))
    denser = rho[None, :] > rho[:, None]
    delta = torch.where(denser, dist, torch.full_like(dist, float("inf"))).min(-1).values
    delta = torch.where(torch.isinf(delta), dist.max(), delta)
    return rho * delta


def holitom_segments(similarity: torch.Tensor, tau: float) -> list[tuple[int, int, torch.Tensor]]:
    """HoliTom's temporal segmentation (cokeshao/HoliTom `holitom/llava_arch.py: select_static_windows`).

    Args:
        similarity: `[T-1, N]` cosine of each position between consecutive frames.
        tau: a position is static over a window when all its consecutive similarities exceed `tau`.

    Returns:
        `(start, end, static_mask [N])` per segment (inclusive ends), from the dynamic programme maximising the
        tokens removable by merging, `gain(s, e) = (e - s) * #static positions`.
    """
    frames = similarity.shape[0] + 1
    above = similarity > tau
    best = [0.0] * (frames + 1)  # best[i]: frames 0..i-1
    choice = [1] * (frames + 1)
    for end in range(1, frames + 1):
        best[end], choice[end] = best[end - 1], 1
        static = torch.ones(similarity.shape[1], dtype=torch.bool, device=similarity.device)
        for width in range(2, end + 1):
            static = static & above[end - width]
            gain = (width - 1) * int(static.sum())
            if best[end - width] + gain > best[end]:
                best[end], choice[end] = best[end - width] + gain, width
    segments, end = [], frames
    while end > 0:
        start = end - choice[end]
        mask = above[start : end - 1].all(0) if end - start > 1 else torch.zeros_like(above[0])
        segments.append((start, end - 1, mask))
        end = start
    return segments[::-1]


class HoliTomCompressor(TokenCompressor):
    """HoliTom holistic token merging (Shao et al., NeurIPS'25, arXiv 2505.21334; cokeshao/HoliTom
    `holitom/llava_arch.py: holitom, get_static_dynamic_features, merge_tokens_by_density`).

    Outer stage: `holitom_segments` splits the frames into windows; in a window, positions static over all of it
    become one token (time mean); the remaining budget is rescaled, `r' = min(budget * M / (M - merged), 1)`. Per
    window, dynamic tokens keep the top `ceil(n_d r')` per frame by vision-encoder saliency; static tokens are
    clustered by DPC-kNN (k=7) into `round(n_s r')` centres and each centre becomes
    `0.6 centre + 0.4 mean(its members)`. Option `tau` (default 0.8, 0.65 at budgets <= 0.1 as the reference
    scripts). Optional inner merge (HoliTom vs "w/o M"): options `inner_layer` K and `inner_ratio` (fraction of the
    visual tokens kept at layer K, ranked by the last token's attention); each dropped token is averaged into its
    most similar kept token (one vectorised mean instead of the reference's sequential pairwise averaging).

    Budget rounding: `ceil` per frame and `round` per window, so the realised count is within
    `[min(budget M, M - merged) - S/2, budget M + T + S/2]` for T frames and S windows.
    """

    name = "holitom"
    requires = frozenset({"saliency"})
    options = ("tau", "inner_layer", "inner_ratio")
    tau = None
    inner_layer = None
    inner_ratio = None

    def compress(self, tokens):
        t, n, d = tokens.feats.shape
        tau = self.tau if self.tau is not None else (
            HOLITOM_TAU_LOW_BUDGET if self.budget <= HOLITOM_LOW_BUDGET else HOLITOM_TAU)
        x = F.normalize(tokens.feats.float(), dim=-1)
        similarity = (x[1:] * x[:-1]).sum(-1) if t > 1 else x.new_zeros(0, n)
        segments = holitom_segments(similarity, tau)
        merged_away = sum((end - start) * int(mask.sum()) for start, end, mask in segments)
        ratio = min(self.budget * t * n / (t * n - merged_away), 1.0)
        self.stats = {"segments": len(segments), "merged_static": merged_away}
        feats, src, counts = [], [], []
        for start, end, static in segments:
            width = end - start + 1
            dynamic = (~static).nonzero().squeeze(1)
            if dynamic.numel():
                keep = min(dynamic.numel(), math.ceil(dynamic.numel() * ratio))
                for frame in range(start, end + 1):
                    top = dynamic[torch.topk(tokens.saliency[frame, dynamic].float(), keep).indices]
                    feats.append(tokens.feats[frame, top])
                    src.append(top + frame * n)
                    counts.append(torch.ones_like(top))
            positions = static.nonzero().squeeze(1)
            if positions.numel():
                static_feats = tokens.feats[start : end + 1, positions].mean(0)
                centres = max(1, round(positions.numel() * ratio))
                merged, members, order = self._cluster(static_feats, centres)
                feats.append(merged)
                src.append(positions[order] + start * n)
                counts.append(members * width)
        return _sorted(torch.cat(feats), torch.cat(src), torch.cat(counts))

    @staticmethod
    def _cluster(x: torch.Tensor, centres: int):
        """DPC-kNN centres of `[n, D]` tokens: `(merged centre tokens [c, D], member counts [c], centre indices [c])`."""
        order = torch.argsort(dpc_knn_scores(x, HOLITOM_KNN), descending=True, stable=True)[:centres]
        assign = torch.argmin(torch.cdist(x.float(), x[order].float()), dim=-1)
        assign[order] = torch.arange(order.numel(), device=x.device)
        sums = torch.zeros(order.numel(), x.shape[-1], dtype=x.dtype, device=x.device).index_add_(0, assign, x)
        members = torch.bincount(assign, minlength=order.numel())
        merged = HOLITOM_BETA * x[order] + (1 - HOLITOM_BETA) * sums / members[:, None].to(x.dtype)
        return merged, members, order

    @property
    def acts_inside_llm(self) -> bool:
        return not self.is_identity and self.inner_layer is not None and self.inner_ratio is not None

    def llm_hooks(self, language_model, visual_mask):
        if not self.acts_inside_llm:
            return contextlib.nullcontext()
        return _PrefillReducer(language_model, visual_mask, self.inner_layer, self.inner_ratio, merge=True, owner=self)


class FastVCompressor(TokenCompressor):
    """FastV inner-LLM pruning (Chen et al., ECCV'24, arXiv 2403.06764; pkunlp-icler/FastV
    `modeling_llama.py: LlamaModel.forward`, FASTV_INPLACE).

    At prefill, the last prompt token's attention row at layer `layer - 1` (mean over heads, recomputed by
    `last_query_attention`, SDPA stays on) ranks the visual tokens; from layer `layer` on only the top ones stay
    (hidden states, rotary positions and mask are sliced; original positions are kept; the KV caches of layers
    `>= layer` hold the shorter sequence and decoding attends to that static set). Option `layer` (default 2, the
    paper's K). Every visual token still enters the LLM; `stats["kept_positions"]` lists what layer K keeps.

    Budget rounding: `round(budget * M)` visual tokens kept from layer K (at least 1).
    """

    name = "fastv"
    options = ("layer",)
    layer = FASTV_LAYER
    acts_inside_llm = True

    def llm_hooks(self, language_model, visual_mask):
        return _PrefillReducer(language_model, visual_mask, self.layer, self.budget, merge=False, owner=self)


COMPRESSORS = {
    cls.name: cls
    for cls in (AvgPoolCompressor, DivPruneCompressor, VisionZipCompressor, FasterVLMCompressor, DyCokeCompressor,
                HoliTomCompressor, FastVCompressor)
}


def get_compressor(name: str, budget: float, **options) -> TokenCompressor:
    """Instantiate a compressor by name (`COMPRESSORS`).

    Raises:
        ValueError: for an unknown name, a budget outside (0, 1] or an unknown option.
    """
    if name not in COMPRESSORS:
        raise ValueError(f"Unknown compressor {name!r}; choose one of {sorted(COMPRESSORS)}.")
    return COMPRESSORS[name](budget, **options)


# ----------------------------------------------------------------------------------------------------------------
# attention rows without eager attention (q.k hooks)
# ----------------------------------------------------------------------------------------------------------------
def last_query_attention(attention, hidden_states, position_embeddings, keys=None, key_mask=None) -> torch.Tensor:
    """Attention probabilities of the LAST query row of one decoder self-attention layer, recomputed from its q/k.

    Args:
        attention: a Qwen2/Llama attention module (`q_proj`, `k_proj`, `head_dim`, `scaling`, `num_key_value_groups`).
        hidden_states: `[B, q, D]` the layer's normalised input (what `self_attn` receives).
        position_embeddings: `(cos, sin)`, each `[B, q, d_h]`, for those positions.
        keys: `[B, g, c, d_h]` post-rotary cached keys to prepend (decode steps), or None (prefill).
        key_mask: `[B, c + q]` 1 for real keys, 0 for padding, or None.

    Returns:
        `[B, H, c + q]` float32 probabilities, `softmax(q_last k^T * scaling)` (RoPE applied, GQA keys repeated):
        what `output_attentions` of eager attention returns for that row.
    """
    modeling = sys.modules[type(attention).__module__]
    b, q_len, _ = hidden_states.shape
    query = attention.q_proj(hidden_states[:, -1:]).view(b, 1, -1, attention.head_dim).transpose(1, 2)
    key = attention.k_proj(hidden_states).view(b, q_len, -1, attention.head_dim).transpose(1, 2)
    cos, sin = position_embeddings
    query, _ = modeling.apply_rotary_pos_emb(query, query, cos[:, -1:], sin[:, -1:])
    _, key = modeling.apply_rotary_pos_emb(key, key, cos, sin)
    if keys is not None:
        key = torch.cat([keys, key], dim=2)
    key = modeling.repeat_kv(key, attention.num_key_value_groups)
    scores = (query.float() @ key.float().transpose(-1, -2)).squeeze(2) * attention.scaling
    if key_mask is not None:
        scores = scores.masked_fill(key_mask[:, None, :] == 0, float("-inf"))
    return scores.softmax(-1)


def received_attention(attention, hidden_states: torch.Tensor, chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean attention each token receives in one vision-encoder layer, and the head-averaged keys (VisionZip metric).

    Args:
        attention: a SigLIP/CLIP attention module (`q_proj`, `k_proj`, `num_heads`, `head_dim`, `scale`).
        hidden_states: `[F, P, C]` the layer's normalised input.
        chunk: frames per computation (bounds the `[chunk, heads, P, P]` score tensor).

    Returns:
        `([F, P] saliency = mean over heads and queries, [F, P, d_h] keys averaged over heads)`.
    """
    frames, patches, _ = hidden_states.shape
    saliency, keys = [], []
    for start in range(0, frames, chunk):
        h = hidden_states[start : start + chunk]
        q = attention.q_proj(h).view(h.shape[0], patches, attention.num_heads, attention.head_dim).transpose(1, 2)
        k = attention.k_proj(h).view(h.shape[0], patches, attention.num_heads, attention.head_dim).transpose(1, 2)
        probs = ((q.float() @ k.float().transpose(-1, -2)) * attention.scale).softmax(-1)
        saliency.append(probs.mean((1, 2)))
        keys.append(k.mean(1))
    return torch.cat(saliency), torch.cat(keys)


# ----------------------------------------------------------------------------------------------------------------
# inner-LLM hooks
# ----------------------------------------------------------------------------------------------------------------
def _decoder_layers(language_model):
    return language_model.model.layers


def _hidden_and_kwargs(args, kwargs):
    return (args[0] if args else kwargs["hidden_states"]), kwargs


def _with_hidden(args, kwargs, hidden):
    if args:
        return (hidden, *args[1:]), kwargs
    kwargs["hidden_states"] = hidden
    return args, kwargs


class _HookSet:
    """Registers forward pre-hooks (with kwargs) and removes them on exit; checks batch size 1."""

    def __init__(self, language_model, visual_mask: torch.Tensor, layer: int, what: str):
        if visual_mask.shape[0] != 1:
            raise ValueError(f"{what} supports batch size 1 (as its reference code); got a batch of "
                             f"{visual_mask.shape[0]}. Call it per sample.")
        layers = _decoder_layers(language_model)
        if not 1 <= layer < len(layers):
            raise ValueError(f"{what}: layer must be in [1, {len(layers) - 1}] for this LLM, got {layer}.")
        self.layers, self.layer = layers, layer
        self.visual = visual_mask[0].nonzero().squeeze(1)
        self.handles = []

    def __enter__(self):
        self.handles.append(
            self.layers[self.layer - 1].self_attn.register_forward_pre_hook(self.score, with_kwargs=True))
        for layer in self.layers[self.layer :]:
            self.handles.append(layer.register_forward_pre_hook(self.reduce, with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return False


class _PrefillReducer(_HookSet):
    """FastV pruning / HoliTom inner merge at prefill: from decoder layer `layer` on, keep the top `ratio` of the
    visual tokens by the last token's attention at layer `layer - 1`; with `merge`, every dropped visual token is
    averaged into its most similar kept one (cosine of the hidden states entering layer `layer`)."""

    def __init__(self, language_model, visual_mask, layer, ratio, merge, owner):
        super().__init__(language_model, visual_mask, layer, owner.name)
        if not 0 < ratio <= 1:
            raise ValueError(f"{owner.name}: kept ratio must be in (0, 1], got {ratio}.")
        self.length, self.merge, self.owner = visual_mask.shape[1], merge, owner
        self.kept_visual = _ratio_tokens(ratio, self.visual.numel())
        self.keep = None

    def score(self, module, args, kwargs):
        hidden, _ = _hidden_and_kwargs(args, kwargs)
        if hidden.shape[1] != self.length:
            return None  # decode step: the kept set is static
        rows = last_query_attention(module, hidden, kwargs["position_embeddings"]).mean(1)[0]
        top = self.visual[torch.topk(rows[self.visual], self.kept_visual).indices]
        others = torch.ones(self.length, dtype=torch.bool, device=hidden.device)
        others[self.visual] = False
        others[top] = True
        self.keep = others.nonzero().squeeze(1)
        self.dropped = self.visual[~torch.isin(self.visual, top)]
        self.owner.stats.update(layer=self.layer, kept_positions=self.keep.tolist(),
                                visual_tokens=self.visual.numel(), kept_visual_tokens=self.kept_visual)
        return None

    def reduce(self, module, args, kwargs):
        hidden, kwargs = _hidden_and_kwargs(args, kwargs)
        cos, sin = kwargs["position_embeddings"]
        mask = kwargs.get("attention_mask")
        if cos.shape[1] not in (1, self.length):
            raise ValueError(f"{self.owner.name} prunes at prefill and decodes from the KV cache: use_cache=True.")
        if cos.shape[1] == self.length:  # prefill
            if hidden.shape[1] == self.length:  # first reduced layer
                if self.merge and self.dropped.numel():
                    hidden = self._merge(hidden)
                hidden = hidden[:, self.keep]
            kwargs["position_embeddings"] = (cos[:, self.keep], sin[:, self.keep])
            if kwargs.get("position_ids") is not None:
                kwargs["position_ids"] = kwargs["position_ids"][:, self.keep]
            if mask is not None:
                kwargs["attention_mask"] = mask[:, :, self.keep][..., self.keep]
        elif mask is not None:  # decode step: the cache of this layer holds the kept positions + new tokens
            new = torch.arange(self.length, mask.shape[-1], device=mask.device)
            kwargs["attention_mask"] = mask[..., torch.cat([self.keep, new])]
        return _with_hidden(args, kwargs, hidden)

    def _merge(self, hidden):
        kept = self.visual[torch.isin(self.visual, self.keep)]
        x = F.normalize(hidden[0].float(), dim=-1)
        target = kept[torch.argmax(x[self.dropped] @ x[kept].T, dim=-1)]
        sums = hidden[0].clone().index_add_(0, target, hidden[0, self.dropped])
        counts = torch.ones(self.length, device=hidden.device).index_add_(
            0, target, torch.ones(self.dropped.numel(), device=hidden.device))
        return (sums / counts[:, None].to(sums.dtype))[None]


class _DecodeKVPruner(_HookSet):
    """DyCoke decode-time KV pruning (see `DyCokeCompressor`): attention masks on layers `>= kv_layer`."""

    def __init__(self, owner, language_model, visual_mask):
        super().__init__(language_model, visual_mask, owner.kv_layer, "dycoke KV pruning")
        if not 0 <= owner.kv_prune < 1:
            raise ValueError(f"dycoke: `kv_prune` must be in [0, 1), got {owner.kv_prune}.")
        self.owner, self.length = owner, visual_mask.shape[1]
        self.kept_visual = _ratio_tokens(1 - owner.kv_prune, self.visual.numel())
        self.previous = self.allowed = None
        owner.stats.update(kv_layer=self.layer, kv_kept_visual_tokens=self.kept_visual, kv_reselections=0)

    def score(self, module, args, kwargs):
        hidden, _ = _hidden_and_kwargs(args, kwargs)
        cache = kwargs.get("past_key_values")
        if cache is None:
            raise ValueError("dycoke KV pruning prunes the KV cache at decode steps: use_cache=True.")
        if hidden.shape[1] != 1 or cache.get_seq_length(module.layer_idx) == 0:
            self.allowed = None  # prefill runs unpruned
            return None
        cached_keys = cache.layers[module.layer_idx].keys
        rows = last_query_attention(module, hidden, kwargs["position_embeddings"], keys=cached_keys).mean(1)[0]
        visual_rows = rows[self.visual]
        if self.previous is None or F.cosine_similarity(visual_rows, self.previous, dim=0) < DYCOKE_KV_SIMILARITY:
            top = self.visual[torch.topk(visual_rows, self.kept_visual).indices]
            allowed = torch.ones(rows.numel(), dtype=torch.bool, device=rows.device)
            allowed[self.visual] = False
            allowed[top] = True
            self.selection = allowed[: self.length]
            self.owner.stats["kv_reselections"] += 1
        self.previous = visual_rows
        extra = torch.ones(rows.numel() - self.length, dtype=torch.bool, device=rows.device)
        self.allowed = torch.cat([self.selection, extra])
        return None

    def reduce(self, module, args, kwargs):
        if self.allowed is not None:
            kwargs["attention_mask"] = _kv_pruned_mask(module.self_attn, kwargs.get("attention_mask"), self.allowed)
        return args, kwargs


__all__ = ["COMPRESSORS", "Compressed", "TokenCompressor", "VisualTokens", "get_compressor", "last_query_attention",
           "received_attention"]

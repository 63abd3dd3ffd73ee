"""What each stage trains (the paper's method figure, arXiv 2509.00969, adapted: no pretrained towers or LLMs exist
here, so stage 0 pretrains the vision tower, the LLM is trained from scratch in stages 1 and 3 (after the text
stage, which aims to teach it the option-letter binding and the reading of captions a pretrained LLM brings), and
the tower is tuned again in stage 2 unless `freeze_vision_tower` keeps it frozen, as the official encoders are; a
stage with a frozen tower may train on its cached features, `train/run.py --cache-vision-features`).

| stage | data | trained | frozen |
|---|---|---|---|
| 0 vision | frames, per-patch colour / shape fractions (train/vision.py) | vision tower (+ 2 linear heads) | the rest |
| text | option lookups (train/data.py `lookup_turn`) and QA conversations over ground-truth captions as text (`splice_captions`), no media | LLM | the rest |
| 1 alignment | whole-video captions, pool tokens only | pool projector, LLM | vision tower, expert side |
| 2 expert | clip captions (caption CE + EOS, optionally word-weighted) | vision tower, expert projector, expert | LLM side |
| 3 QA | questions, soft tokens from captions | LLM, caption projector, pool projector (+ clip time embedding) | vision tower, expert side |
"""

import time

import torch
from transformers import Trainer, TrainerCallback

from synthvid import DIRECTIONS
from tools.export_checkpoint import EXPERT_SIDE, TIME_MODULE

TRAINED_MODULES = {
    0: ("vision_model",),
    "text": ("language_model",),
    1: ("pool_projector", "language_model"),
    2: ("vision_model", *EXPERT_SIDE),
    3: ("language_model", "caption_projector", "pool_projector", TIME_MODULE),
}


def freeze_for_stage(model, stage: int | str, freeze_vision_tower: bool = False,
                     freeze_expert_embeddings: bool = False) -> int:
    """Set `requires_grad` for `stage` (`TRAINED_MODULES`, without the vision tower if `freeze_vision_tower`);
    returns the number of trainable parameters.

    `freeze_expert_embeddings` (stage 2) keeps the expert's input embeddings as they are. With `soft_token_layer=0`
    they are the soft tokens, so an expert retrained this way gives a caption the very vectors that an LLM already
    trained in stage 3 learnt to read: a better captioner can replace the old one under the same LLM. Its output
    layer must be its own (`untie_expert_embeddings`), else it would be frozen too.

    Raises:
        ValueError: for an unknown stage, `freeze_vision_tower` in stage 0 (which trains only the tower), or
            `freeze_expert_embeddings` outside stage 2 or with tied expert embeddings.
    """
    if stage not in TRAINED_MODULES:
        raise ValueError(f"Unknown stage {stage}; expected one of {sorted(TRAINED_MODULES)}.")
    if freeze_vision_tower and stage == 0:
        raise ValueError("`freeze_vision_tower` would leave stage 0 nothing to train.")
    if freeze_expert_embeddings:
        expert = "absent" if model.expert is None else (
            "tied" if model.config.expert_config.tie_word_embeddings else "untied")
        if stage != 2 or expert != "untied":
            raise ValueError("`freeze_expert_embeddings` needs stage 2 and an expert whose output layer is not tied "
                             f"to its input embeddings (untie_expert_embeddings); got stage {stage}, expert {expert}.")
    model.requires_grad_(False)
    for name in TRAINED_MODULES[stage]:
        if freeze_vision_tower and name == "vision_model":
            continue
        module = getattr(model, name)
        if module is not None:
            module.requires_grad_(True)
    if freeze_expert_embeddings:
        model.expert.get_input_embeddings().requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LangDCTrainer(Trainer):
    """`Trainer` whose loss follows the stage: the patch-attribute loss of `PatchAttributePretrainer` in stage 0,
    the expert's caption loss in stage 2 (forward without a prompt), the LLM loss otherwise. Every loss goes
    through `model(...)`, so DDP/FSDP wrappers work unchanged."""

    def __init__(self, *args, stage: int | str, module_learning_rates: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stage = stage
        self.module_learning_rates = dict(module_learning_rates or {})

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with one parameter group per learning rate: a top-level module named in
        `module_learning_rates` trains at its own peak rate (e.g. a module added at zero to a trained model, as
        LLaVA trains its projector at `mm_projector_lr`), the rest at `args.learning_rate`; the schedule scales
        every group alike. Raises `ValueError` for a name that is not a trainable top-level module."""
        if not self.module_learning_rates or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
        unknown = sorted(set(self.module_learning_rates) - trainable)
        if unknown:
            raise ValueError(f"module_learning_rates names {unknown}, not among the trainable modules "
                             f"{sorted(trainable)}.")
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        decayed = set(self.get_decay_parameter_names(model))  # as the Trainer's own groups: no decay on norms, biases
        groups = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                lr = self.module_learning_rates.get(name.split(".")[0], self.args.learning_rate)
                decay = self.args.weight_decay if name in decayed else 0.0
                groups.setdefault((lr, decay), []).append(parameter)
        self.optimizer = optimizer_cls(
            [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()],
            **optimizer_kwargs)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.stage == 2:
            # no prompt: forward returns the expert's caption loss (see LangDCForConditionalGeneration.forward)
            inputs = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "labels")}
        outputs = model(**inputs)
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]


class WallClockLimit(TrainerCallback):
    """Stops training after `minutes` of steps (from the first step's start), so that a run fits a fixed time slot (a
    10-minute GPU command) whatever its speed; the Trainer then ends as after its last step, and the run saves its
    checkpoint as usual. The learning-rate schedule still spans `--max-steps`, so a stopped run ends above its final
    rate: size the steps to the slot, and keep this as the guard. `stopped_at_step` is the step it stopped after
    (`None` if the run ended by itself).

    Raises:
        ValueError: if `minutes` is negative.
    """

    def __init__(self, minutes: float):
        if minutes < 0:
            raise ValueError(f"`minutes` must be >= 0, got {minutes}.")
        self.seconds = 60.0 * minutes
        self.started = None
        self.stopped_at_step = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.started is None:
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.started >= self.seconds and state.global_step < state.max_steps:
            control.should_training_stop = True
            self.stopped_at_step = state.global_step


def count_trainable(model) -> dict[str, int]:
    """Trainable parameters per top-level module (for the log)."""
    counts = {}
    for name, module in model.named_children():
        counts[name] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return counts


def set_threads(num_threads: int | None) -> None:
    if num_threads:
        torch.set_num_threads(num_threads)


@torch.no_grad()
def align_caption_projector(model, token_ids: list[int]) -> float:
    """Initialise a linear `caption_projector` so that it maps the expert's input embedding of each token in
    `token_ids` onto the LLM's input embedding of the same token (least squares, with bias); returns the relative
    residual `||X W - Y|| / ||Y||` over those tokens.

    With `soft_token_layer=0` the soft tokens are the expert's embeddings of its caption tokens (official dual
    model, NIneeeeeem/LangDC `arch.py`); the expert and the LLM share the vocabulary (Qwen2-0.5B / Qwen2-7B in the
    paper, one BPE here), so this map makes the soft tokens of a caption start as that caption's text embeddings:
    stage 3 begins with the LLM reading the captions as text instead of first learning an unrelated projection.
    The projector is still trained in stage 3.

    Raises:
        ValueError: if the projector is not `linear`, `soft_token_layer` is not 0, or `token_ids` is empty.
    """
    config = model.config
    if config.caption_projector_type != "linear" or config.soft_token_layer != 0:
        raise ValueError("align_caption_projector needs caption_projector_type='linear' and soft_token_layer=0, got "
                         f"{config.caption_projector_type!r} and {config.soft_token_layer}.")
    if not token_ids:
        raise ValueError("`token_ids` is empty: no caption tokens to align.")
    index = torch.tensor(sorted(set(token_ids)))
    source = model.expert.get_input_embeddings().weight[index].float()
    target = model.get_input_embeddings().weight[index].float()
    inputs = torch.cat([source, source.new_ones(len(index), 1)], dim=1)  # last column: the bias
    solution = torch.linalg.lstsq(inputs, target).solution  # [D_e + 1, D_llm]
    projector = model.caption_projector
    projector.weight.copy_(solution[:-1].T.to(projector.weight.dtype))
    projector.bias.copy_(solution[-1].to(projector.bias.dtype))
    return ((inputs @ solution - target).norm() / target.norm()).item()


@torch.no_grad()
def untie_expert_embeddings(model) -> None:
    """Give the expert an output layer of its own, starting as a copy of its (tied) input embeddings.

    With `soft_token_layer=0` the soft tokens are the expert's input embeddings of its caption tokens. Tied to the
    output layer, those embeddings are trained as classifier weights too, and words the expert cannot tell apart in
    the frames (here the four directions) get nearly equal vectors (`python -m eval.embeddings`: cosine 0.97), so
    the LLM cannot read them apart even from correct captions. Untied, the input embeddings only learn what helps
    the expert read its own caption. The paper's experts are pretrained LLMs whose word embeddings are distinct
    from the start.

    Raises:
        ValueError: if the model has no expert or its embeddings are already untied.
    """
    if model.expert is None or not model.config.expert_config.tie_word_embeddings:
        raise ValueError("untie_expert_embeddings needs an expert with tied input and output embeddings.")
    output = model.expert.get_output_embeddings()
    output.weight = torch.nn.Parameter(model.expert.get_input_embeddings().weight.detach().clone())
    model.config.expert_config.tie_word_embeddings = False  # the expert's own config object: saved with the model


# synthvid words whose expert embeddings collapsed while the expert could not see them (`spread_expert_embeddings`)
COLLAPSED_WORD_GROUPS = {"directions": tuple(DIRECTIONS), "size_changes": ("grows", "shrinks")}


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """Mean cosine similarity over the distinct pairs of the rows of `vectors [N, D]` (N >= 2)."""
    similarity = torch.nn.functional.cosine_similarity(vectors[:, None], vectors[None], dim=-1)
    n = len(vectors)
    return ((similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1))).item()


@torch.no_grad()
def spread_expert_embeddings(model, token_groups: dict[str, list[int]], target_cosine: float,
                             max_scale: float = 1e3) -> dict[str, dict[str, float]]:
    """Push apart the expert's input embeddings of words that the LLM must read apart, group by group.

    With `soft_token_layer=0` a soft token is the caption projector applied to the expert's input embedding of a
    caption token. Words the expert could not tell apart in the frames early in its training (here the four
    directions, `grows` and `shrinks`) ended with nearly equal embeddings (`python -m eval.embeddings`: mean
    pairwise cosine 0.97 and 0.94, colours 0.41), so "moves up" and "moves down" reach the LLM as nearly the same
    vectors whatever the caption says. For each group of rows `E [n, D_e]` with mean `m`, this writes
    `m + s (E - m)`: the words' common part is kept, their differences are scaled by the smallest `s >= 1` (found
    by bisection) that brings the group's mean pairwise cosine down to `target_cosine`. The paper's expert is a
    pretrained LLM whose word embeddings are distinct from the start; this restores that property for the words
    that lost it. The expert's output layer must be untied (`untie_expert_embeddings`): its logits do not change,
    only what it and the LLM read.

    Args:
        token_groups: group name -> ids of the group's tokens (at least two, distinct).
        target_cosine: the mean pairwise cosine to reach, in (-1, 1); groups already at or below it are kept.

    Returns:
        group name -> `{"cosine_before", "cosine_after", "scale"}`.

    Raises:
        ValueError: if the model has no expert or its embeddings are tied, `target_cosine` is outside (-1, 1), a
            group has fewer than two distinct ids or an id outside the expert's vocabulary, or a group cannot
            reach the target within `max_scale`.
    """
    if model.expert is None or model.config.expert_config.tie_word_embeddings:
        raise ValueError("spread_expert_embeddings needs an expert with untied embeddings "
                         "(train.stages.untie_expert_embeddings); changing tied ones would change its logits.")
    if not -1.0 < target_cosine < 1.0:
        raise ValueError(f"`target_cosine` must be in (-1, 1), got {target_cosine}.")
    weight = model.expert.get_input_embeddings().weight
    report = {}
    for name, ids in token_groups.items():
        if len(set(ids)) != len(ids) or len(ids) < 2 or not all(0 <= i < len(weight) for i in ids):
            raise ValueError(f"Group {name!r} needs at least two distinct token ids below {len(weight)}, got {ids}.")
        rows = weight[ids].float()
        mean, deviation = rows.mean(0), rows - rows.mean(0)

        def cosine(scale: float) -> float:
            return mean_pairwise_cosine(mean + scale * deviation)

        before, scale = cosine(1.0), 1.0
        if before > target_cosine:
            farthest = cosine(max_scale)
            if farthest > target_cosine:
                raise ValueError(f"Group {name!r} cannot reach a mean cosine of {target_cosine} (at scale "
                                 f"{max_scale}: {farthest:.3f}).")
            low, scale = 1.0, max_scale
            for _ in range(60):  # the cosine falls as the differences grow
                middle = (low + scale) / 2
                low, scale = (middle, scale) if cosine(middle) > target_cosine else (low, middle)
            weight[ids] = (mean + scale * deviation).to(weight.dtype)
        report[name] = {"cosine_before": before, "cosine_after": mean_pairwise_cosine(weight[ids].float()),
                        "scale": scale}
    return report

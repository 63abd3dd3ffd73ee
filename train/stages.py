"""What each stage trains (research/langdc.md §3, adapted: no pretrained towers exist here, so stage 0 pretrains
the vision tower, the LLM is trained from scratch in stages 1 and 3, and the tower is tuned again in stage 2).

| stage | data | trained | frozen |
|---|---|---|---|
| 0 vision | frames, per-patch colour / shape fractions (train/vision.py) | vision tower (+ 2 linear heads) | the rest |
| 1 alignment | whole-video captions, pool tokens only | pool projector, LLM | vision tower, expert side |
| 2 expert | clip captions (caption CE + EOS) | vision tower, expert projector, expert | LLM side |
| 3 QA | questions, soft tokens from captions | LLM, caption projector, pool projector | vision tower, expert side |
"""

import torch
from transformers import Trainer

TRAINED_MODULES = {
    0: ("vision_model",),
    1: ("pool_projector", "language_model"),
    2: ("vision_model", "expert_projector", "expert"),
    3: ("language_model", "caption_projector", "pool_projector"),
}


def freeze_for_stage(model, stage: int) -> int:
    """Set `requires_grad` for `stage`; returns the number of trainable parameters.

    Raises:
        ValueError: for an unknown stage.
    """
    if stage not in TRAINED_MODULES:
        raise ValueError(f"Unknown stage {stage}; expected one of {sorted(TRAINED_MODULES)}.")
    model.requires_grad_(False)
    for name in TRAINED_MODULES[stage]:
        module = getattr(model, name)
        if module is not None:
            module.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LangDCTrainer(Trainer):
    """`Trainer` whose loss follows the stage: the patch-attribute loss of `PatchAttributePretrainer` in stage 0,
    the expert's caption loss in stage 2 (forward without a prompt), the LLM loss otherwise. Every loss goes
    through `model(...)`, so DDP/FSDP wrappers work unchanged."""

    def __init__(self, *args, stage: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.stage = stage

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.stage == 2:
            # no prompt: forward returns the expert's caption loss (see LangDCForConditionalGeneration.forward)
            inputs = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "labels")}
        outputs = model(**inputs)
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]


def count_trainable(model) -> dict[str, int]:
    """Trainable parameters per top-level module (for the log)."""
    counts = {}
    for name, module in model.named_children():
        counts[name] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return counts


def set_threads(num_threads: int | None) -> None:
    if num_threads:
        torch.set_num_threads(num_threads)

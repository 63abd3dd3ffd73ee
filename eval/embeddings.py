"""Can the soft tokens tell caption words apart? Pairwise similarity of word embeddings per word group.

    python -m eval.embeddings --model . [--output eval/results-synthvid-v7]

With `soft_token_layer=0` a clip's soft caption tokens are the caption projector applied to the expert's input
embeddings of its caption tokens (official dual model: `hidden_states[0]`, NIneeeeeem/LangDC `arch.py`). Words whose
expert embeddings are nearly the same vector reach the LLM as nearly the same soft token, whatever the caption says,
so the LLM cannot read them apart even from ground-truth captions. For each group of synthvid words (directions,
grows/shrinks, colours, shapes), this reports the mean cosine similarity over the group's pairs of: the expert's
input embeddings, their projections (the soft tokens), and the LLM's own input embeddings (what the words give as
text). A word of several tokens is the mean of its tokens' vectors. Writes `OUTPUT/embeddings.json` when `--output`
is given.
"""

import argparse
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from eval.evaluate import report_result
from synthvid import COLORS, SHAPES
from train.stages import COLLAPSED_WORD_GROUPS, mean_pairwise_cosine

WORD_GROUPS = {**COLLAPSED_WORD_GROUPS, "colors": tuple(COLORS), "shapes": SHAPES}


@torch.no_grad()
def group_similarity(model, tokenizer, words: tuple[str, ...]) -> dict[str, float]:
    """`{"expert", "soft_tokens", "llm"}` mean pairwise cosines of `words` (as they follow a space in a caption).

    Raises:
        ValueError: if `model.config.soft_token_layer` is not 0 (the soft tokens are then contextual hidden states,
            not embeddings of single words), or there are fewer than two words.
    """
    if model.config.soft_token_layer != 0:
        raise ValueError(f"Soft tokens are embeddings of caption words only with soft_token_layer=0, got "
                         f"{model.config.soft_token_layer}.")
    if len(words) < 2:
        raise ValueError(f"`words` needs at least two words to compare, got {words}.")
    token_ids = [tokenizer(f" {word}", add_special_tokens=False)["input_ids"] for word in words]

    def embed(table: torch.Tensor) -> torch.Tensor:
        return torch.stack([table[ids].float().mean(0) for ids in token_ids])

    expert = embed(model.expert.get_input_embeddings().weight)
    projector = model.caption_projector
    soft_tokens = projector(expert.to(next(projector.parameters()).dtype)).float()
    return {"expert": mean_pairwise_cosine(expert), "soft_tokens": mean_pairwise_cosine(soft_tokens),
            "llm": mean_pairwise_cosine(embed(model.get_input_embeddings().weight))}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("."), help="a LangDC checkpoint folder")
    parser.add_argument("--output", type=Path, default=None, help="folder for embeddings.json")
    args = parser.parse_args(argv)
    model = AutoModel.from_pretrained(args.model, dtype=torch.float32, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    result = {name: group_similarity(model, tokenizer, words) for name, words in WORD_GROUPS.items()}
    result["model"] = str(args.model)
    return report_result(result, args.output, "embeddings.json")


if __name__ == "__main__":
    main()

"""Export a trained checkpoint folder (e.g. the last training stage) to a Hub-ready folder in bf16.

    python -m tools.export_checkpoint runs/stage3 .          # replace the repo-root checkpoint
"""

import argparse
from pathlib import Path

import torch

from tools.build_checkpoint import load_processor, save_checkpoint
from tools.remote_code import import_remote


def export(source: Path, target: Path, dtype: torch.dtype = torch.bfloat16) -> list[str]:
    """Load `source` with the repo's remote code, cast to `dtype`, and write it into `target` file by file (with the
    repo's remote-code files, whatever `source` holds)."""
    modeling = import_remote("modeling_langdc")
    model = modeling.LangDCForConditionalGeneration.from_pretrained(source, dtype=dtype).eval()
    processor = load_processor(source)
    return save_checkpoint(model, processor.tokenizer, processor, target)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = parser.parse_args(argv)
    names = export(args.source, args.target, getattr(torch, args.dtype))
    print(f"exported {args.source} -> {args.target} ({args.dtype}): {', '.join(names)}")


if __name__ == "__main__":
    main()

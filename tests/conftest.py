"""Shared fixtures: a tiny random LangDC (fp32 for exact comparisons), its tokenizer and a saved checkpoint."""

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from tools.build_checkpoint import build_config, build_model, build_processor, save_checkpoint  # noqa: E402
from tools.remote_code import REPO_ROOT  # noqa: E402
from tools.tokenizer import build_byte_tokenizer  # noqa: E402

TINY_SPEC = json.loads((REPO_ROOT / "tools" / "configs" / "tiny.json").read_text())


def tiny_spec(**overrides) -> dict:
    """The tiny config spec with top-level fields overridden; sub-config fields via e.g. `text_config={...}`."""
    spec = json.loads(json.dumps(TINY_SPEC))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key].update(value)
        else:
            spec[key] = value
    return spec


@pytest.fixture(scope="session")
def tokenizer():
    return build_byte_tokenizer()


@pytest.fixture(scope="session")
def make_model(tokenizer):
    """Factory: `make_model(**spec_overrides)` -> fp32 eval model with seeded random weights."""

    def factory(seed: int = 0, **overrides):
        config = build_config(tiny_spec(**overrides), tokenizer)
        return build_model(config, seed=seed, dtype=torch.float32)

    return factory


@pytest.fixture(scope="session")
def model(make_model):
    return make_model()


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory, model, tokenizer):
    """The tiny fp32 model saved as a Hub-style folder (config with auto_map, remote code, tokenizer, processor)."""
    path = tmp_path_factory.mktemp("checkpoint")
    save_checkpoint(model, tokenizer, build_processor(model.config, tokenizer), path)
    return path


def video_pixels(num_frames: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Deterministic random frames `[T, 3, size, size]`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_frames, 3, size, size, generator=generator)

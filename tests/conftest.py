"""Shared fixtures: a tiny random LangDC (fp32 for exact comparisons), its tokenizer and a saved checkpoint."""

import contextlib
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


FORCED_TOKEN = 65  # byte "b" in the byte-level tokenizer: the token forced captions are made of


@contextlib.contextmanager
def forced_captions(model, forced):
    """Row r of the expert's batched decoding emits `forced[r][0]` times `FORCED_TOKEN`, then the stop id
    `forced[r][1]`.

    Only decode-shaped logits (`[N, 1, V]`, one per generation step) are touched; teacher-forced passes are not.
    """
    step = {"t": 0}

    def hook(module, inputs, logits):
        if logits.shape[1] != 1:
            return logits
        logits = torch.full_like(logits, -1e4)
        for row, (length, stop) in enumerate(forced):
            logits[row, -1, FORCED_TOKEN if step["t"] < length else stop] = 1e4
        step["t"] += 1
        return logits

    handle = model.expert.get_output_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def build_micro_synthvid(out, train: int, seed: int = 3):
    """A micro synthvid set in `out` (`train` training videos, 1 val, 2 test, 1 unseen test); returns `out`."""
    from synthvid.build import main as build

    build(["--out", str(out), "--train", str(train), "--val", "1", "--test", "2", "--test-unseen", "1",
           "--seed", str(seed)])
    return out

"""The saved folder behaves as a Hub model: Auto classes, save/load, optional packages absent, attention backends."""

import json
import os
import subprocess
import sys

from unittest import mock

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor, AutoTokenizer

from tests.conftest import video_pixels
from tools.remote_code import REPO_ROOT

REMOTE_FILES = ("configuration_langdc.py", "modeling_langdc.py", "processing_langdc.py", "flops_langdc.py",
                "video_encoder_langdc.py")


def video_forward(model, tokenizer):
    inputs = tokenizer(["<video>\nWhat happens?"], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs, pixel_values=video_pixels(8), num_patches_list=[[1] * 8], data_flag=3).logits


def test_folder_layout(checkpoint_dir):
    names = set(os.listdir(checkpoint_dir))
    for name in REMOTE_FILES + ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                                "tokenizer_config.json", "chat_template.jinja",
                                "processor_config.json"):
        assert name in names, name
    config = json.loads((checkpoint_dir / "config.json").read_text())
    assert config["model_type"] == "langdc"
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoProcessor"}
    assert "attn_implementation" not in json.dumps(config)
    generation = json.loads((checkpoint_dir / "generation_config.json").read_text())
    assert generation["do_sample"] is False and len(generation["eos_token_id"]) == 2


def test_auto_classes_and_identical_logits(checkpoint_dir, model, tokenizer):
    config = AutoConfig.from_pretrained(checkpoint_dir, trust_remote_code=True)
    assert type(config).__name__ == "LangDCConfig"
    loaded = AutoModel.from_pretrained(checkpoint_dir, trust_remote_code=True).eval()
    assert type(loaded).__name__ == "LangDCForConditionalGeneration"
    assert type(AutoModelForCausalLM.from_pretrained(checkpoint_dir, trust_remote_code=True)) is type(loaded)
    processor = AutoProcessor.from_pretrained(checkpoint_dir, trust_remote_code=True)
    assert type(processor).__name__ == "LangDCProcessor"
    assert processor.image_processor.image_size == model.config.vision_config.image_size
    loaded_tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, trust_remote_code=True)
    assert torch.equal(video_forward(model, tokenizer), video_forward(loaded, loaded_tokenizer))


@pytest.mark.parametrize("dtype_kwarg", ["dtype", "torch_dtype"])
def test_dtype_kwargs(checkpoint_dir, dtype_kwarg):
    loaded = AutoModel.from_pretrained(checkpoint_dir, trust_remote_code=True, **{dtype_kwarg: torch.bfloat16})
    assert loaded.dtype == torch.bfloat16
    assert loaded.language_model.dtype == loaded.expert.dtype == torch.bfloat16


def test_device_map_auto_gives_the_same_logits(checkpoint_dir, model, tokenizer):
    loaded = AutoModel.from_pretrained(checkpoint_dir, trust_remote_code=True, device_map="auto").eval()
    assert {parameter.device.type for parameter in loaded.parameters()} == {"cpu"}
    assert torch.equal(video_forward(model, tokenizer), video_forward(loaded, tokenizer))


def test_flash_attention_is_declared_only_where_every_tower_supports_it(checkpoint_dir, model):
    """LangDC declares sdpa / flash-attn support; every tower it builds must declare it too (DESIGN §5)."""
    towers = [model.vision_model, model.expert, model.language_model]
    for flag in ("_supports_sdpa", "_supports_flash_attn"):
        assert getattr(type(model), flag) and all(getattr(type(tower), flag) for tower in towers), flag
    # without flash-attn installed, asking for it fails loudly instead of silently using another backend
    with mock.patch.dict(sys.modules, {"flash_attn": None}), pytest.raises(ImportError, match="FlashAttention2"):
        AutoModel.from_pretrained(checkpoint_dir, trust_remote_code=True, attn_implementation="flash_attention_2")


def test_eager_and_sdpa_give_the_same_logits(checkpoint_dir, tokenizer):
    logits = {}
    for implementation in ("eager", "sdpa"):
        loaded = AutoModel.from_pretrained(checkpoint_dir, trust_remote_code=True, attn_implementation=implementation)
        for tower in (loaded.vision_model, loaded.expert, loaded.language_model):
            assert tower.config._attn_implementation == implementation
        logits[implementation] = video_forward(loaded.eval(), tokenizer)
    torch.testing.assert_close(logits["eager"], logits["sdpa"], atol=1e-5, rtol=1e-4)


def test_loads_and_chats_without_decord_and_flash_attn(checkpoint_dir, tmp_path):
    """A user without decord or flash-attn can load the remote code and chat (PyAV decodes the video)."""
    script = f"""
import sys
sys.modules["decord"] = None  # import decord -> ImportError
sys.modules["flash_attn"] = None
import torch
from transformers import AutoModel, AutoProcessor, AutoTokenizer
path = {str(checkpoint_dir)!r}
model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
pixels, patches, meta = processor.load_video({str(_write_clip(tmp_path))!r}, num_segments=8, return_metadata=True)
response, info = model.chat(tokenizer, pixels, "<video>\\nWhat?", dict(max_new_tokens=3), num_patches_list=patches,
                            data_flag=3, return_info=True)
print("backend", meta.video_backend, "clips", info.num_clips)
"""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend pyav clips 2" in result.stdout


def _write_clip(folder, frames: int = 12):
    import av
    import numpy as np

    path = folder / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), 10 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path

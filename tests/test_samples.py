"""The shipped (trained) root checkpoint on the sample videos of examples/: correct answers to every sample
question, and fewer soft tokens for the empty scene than for the busy one."""

import json

import pytest
import torch
from transformers import AutoModel, AutoProcessor, AutoTokenizer

from tools.remote_code import REPO_ROOT

SAMPLES = REPO_ROOT / "examples" / "samples.json"


@pytest.fixture(scope="module")
def shipped():
    path = str(REPO_ROOT)
    model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
    if model.config.vision_config.hidden_size < 128:
        pytest.skip("the root checkpoint is the random skeleton, not the trained model")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    return model, tokenizer, AutoProcessor.from_pretrained(path, trust_remote_code=True)


def answer(shipped, sample):
    model, tokenizer, processor = shipped
    pixels, patches = processor.load_video(str(SAMPLES.parent / sample["video"]))
    questions = [f"<video>\n{q['prompt']}" for q in sample["questions"]]
    return model.batch_chat(tokenizer, pixels.repeat(len(questions), 1, 1, 1).to(model.dtype), questions,
                            dict(max_new_tokens=12), num_patches_list=[patches] * len(questions), data_flag=3,
                            return_info=True)


@pytest.mark.parametrize("name", ["empty", "static", "busy"])
def test_sample_questions_answered_correctly(shipped, name):
    sample = next(s for s in json.loads(SAMPLES.read_text()) if s["name"] == name)
    responses, _ = answer(shipped, sample)
    for question, response in zip(sample["questions"], responses):
        assert response.startswith(question["answer"].split(")")[0] + ")"), (question, response)


def test_empty_scene_gets_fewer_tokens_than_busy(shipped):
    samples = {s["name"]: s for s in json.loads(SAMPLES.read_text())}
    with torch.no_grad():
        empty = sum(answer(shipped, samples["empty"])[1][0].tokens_per_clip)
        busy = sum(answer(shipped, samples["busy"])[1][0].tokens_per_clip)
    assert empty < busy

"""The lmms-eval plug-in (`integrations/lmms_eval`): registration, request handling, and a local task end to end.

lmms-eval 0.7.3 is installed with `--no-deps` plus the few packages it needs (README "Evaluate with lmms-eval").
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import lmms_eval
import numpy as np
import pytest
import torch
import yaml
from lmms_eval.api.instance import Instance
from lmms_eval.models import get_model
from lmms_eval.tasks.mvbench.utils import mcq_acc, mvbench_doc_to_text
from lmms_eval_langdc import TASKS_DIR
from lmms_eval_langdc.model import LangDC, compression_settings, cut_at_stop_strings, generation_settings, letter_first
from PIL import Image
from transformers import AutoModel, AutoProcessor, AutoTokenizer

from tools.remote_code import REPO_ROOT
from train.data import MVBENCH_POST_PROMPT

VIDEO = REPO_ROOT / "examples" / "videos" / "busy.mp4"
GEN_KWARGS = {"max_new_tokens": 6, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False,
              "until": ["\n\n"]}
FRAMES = 8


def _image(seed: int, size: tuple[int, int]) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _request(index: int, contexts: str, gen_kwargs: dict) -> Instance:
    arguments = (contexts, dict(gen_kwargs), lambda doc: doc["visuals"], index, "toy", "test")
    return Instance("generate_until", arguments, index, metadata={"task": "toy", "doc_id": index, "repeats": 1})


@pytest.fixture(scope="module")
def reference(checkpoint_dir):
    model = AutoModel.from_pretrained(checkpoint_dir, trust_remote_code=True, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, trust_remote_code=True)
    return model, tokenizer, AutoProcessor.from_pretrained(checkpoint_dir, trust_remote_code=True)


def _direct_answer(reference, question: str, pixel_values, num_patches_list, data_flag, gen=GEN_KWARGS):
    model, tokenizer, _ = reference
    settings = {k: v for k, v in gen.items() if k in ("max_new_tokens",)}
    response, info = model.chat(tokenizer, pixel_values, question, dict(settings, do_sample=False),
                                num_patches_list=num_patches_list, data_flag=data_flag, return_info=True)
    return response.split("\n\n")[0].strip(), info


def _post_prompt(task_yaml: Path) -> str | None:
    """A task YAML's default `post_prompt`, its `!function` tags read as None."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    task = yaml.load(task_yaml.read_text(), Loader) or {}
    return ((task.get("lmms_eval_specific_kwargs") or {}).get("default") or {}).get("post_prompt")


def test_mvbench_post_prompt_is_lmms_evals():
    """Our MVBench prompt's last line (`train.data.MVBENCH_POST_PROMPT`, what stage 3 trains on) and the local task's
    are those of the installed lmms-eval's MVBench tasks, which cannot be imported as a constant."""
    mvbench_tasks = (Path(lmms_eval.__file__).parent / "tasks" / "mvbench").glob("mvbench_*.yaml")
    theirs = {_post_prompt(path) for path in mvbench_tasks} - {None}
    assert theirs == {MVBENCH_POST_PROMPT}
    assert _post_prompt(TASKS_DIR / "langdc_samples" / "langdc_samples.yaml") == MVBENCH_POST_PROMPT


def test_entry_point_registers_langdc():
    assert get_model("langdc") is LangDC


def test_generation_settings_and_stop_strings():
    settings, until = generation_settings(GEN_KWARGS)
    assert settings == {"max_new_tokens": 6, "num_beams": 1, "do_sample": False}
    assert until == ["\n\n"]
    sampled, _ = generation_settings({"temperature": 0.7, "do_sample": True, "top_p": 0.9, "image_aspect_ratio": 1})
    assert sampled == {"temperature": 0.7, "do_sample": True, "top_p": 0.9}
    assert cut_at_stop_strings(" (B) red\n\nmore", ["\n\n"]) == "(B) red"


def test_requests_answered_like_direct_chat(checkpoint_dir, reference):
    """Video (path), one image, two images and text-only requests, batched, answer as single `chat` calls do."""
    wrapper = LangDC(pretrained=str(checkpoint_dir), dtype="float32", batch_size=3, max_frames_num=FRAMES)
    images = [_image(1, (64, 64)), _image(2, (64, 128))]
    docs = [{"visuals": [str(VIDEO)]}, {"visuals": [images[0]]}, {"visuals": []}, {"visuals": images}]
    wrapper.task_dict = {"toy": {"test": docs}}
    contexts = ["What happens?", "What is shown?", "Say hello.", "What differs?"]
    long_answers = dict(GEN_KWARGS, max_new_tokens=3)  # a second group: batches never mix generation settings
    requests = [_request(i, c, long_answers if i == 3 else GEN_KWARGS) for i, c in enumerate(contexts)]
    results = wrapper.generate_until(requests)

    _, _, processor = reference
    pixels, patches = processor.load_video(str(VIDEO), num_segments=FRAMES)
    frames = "".join(f"Frame{i + 1}: <image>\n" for i in range(FRAMES))
    tiles = [processor.load_image(image) for image in images]
    expected = [
        _direct_answer(reference, frames + contexts[0], pixels, patches, 3),
        _direct_answer(reference, "<image>\n" + contexts[1], tiles[0], [len(tiles[0])], 1),
        _direct_answer(reference, contexts[2], None, None, None),
        _direct_answer(reference, "Image-1: <image>\nImage-2: <image>\n" + contexts[3], torch.cat(tiles),
                       [len(t) for t in tiles], 2, long_answers),
    ]
    assert [r.text for r in results] == [letter_first(text) for text, _ in expected]
    for result, (_, info) in zip(results, expected):
        assert result.token_counts.input_tokens == info.text_tokens + info.visual_tokens
    assert expected[0][1].num_clips == FRAMES // reference[0].config.frames_per_clip


def test_letter_first_puts_the_chosen_letter_where_mvbench_scores_it():
    """lmms-eval's MVBench scorer reads `a red circle appears (C)` as (A); written option first it reads (C)."""
    answer = "a red circle appears (C)"
    assert not mcq_acc("C", answer)
    assert letter_first(answer) == "(C) a red circle appears"
    assert mcq_acc("C", letter_first(answer))
    assert letter_first(" grows (B) ") == "(B) grows" and letter_first("(D)") == "(D)"
    for unchanged in ("an empty scene.", "(B) red", "red (B) circle", "4 (d)"):
        assert letter_first(unchanged) == unchanged


def test_unknown_model_args_and_several_videos_rejected(checkpoint_dir):
    with pytest.raises(ValueError, match="Unknown model_args.*num_frame"):
        LangDC(pretrained=str(checkpoint_dir), num_frame=8)
    with pytest.raises(ValueError, match="batch_size"):
        LangDC(pretrained=str(checkpoint_dir), batch_size="auto")
    with pytest.raises(ValueError, match="letter_first must be True or False"):
        LangDC(pretrained=str(checkpoint_dir), letter_first="sometimes")
    wrapper = LangDC(pretrained=str(checkpoint_dir), dtype="float32")
    wrapper.task_dict = {"toy": {"test": [{"visuals": [str(VIDEO), str(VIDEO)]}]}}
    with pytest.raises(ValueError, match="one video per question, got 2"):
        wrapper.generate_until([_request(0, "What happens?", GEN_KWARGS)])


def test_compression_settings_from_model_args():
    assert compression_settings(None, None, {}) == {}
    assert compression_settings("fastv", "0.25", {"compressor_layer": "2"}) == {
        "compressor": "fastv", "budget": 0.25, "compressor_options": {"layer": 2}}
    assert compression_settings("dycoke", 0.5, {"compressor_kv_prune": "0.7"})["compressor_options"] == {
        "kv_prune": 0.7}
    for compressor, budget, options, match in ((None, 0.5, {}, "need a `compressor`"),
                                               (None, None, {"compressor_layer": 2}, "need a `compressor`"),
                                               ("pool", None, {}, "must be a number"),
                                               ("pool", "half", {}, "must be a number"),
                                               ("pool", 1.5, {}, r"in \(0, 1\]")):
        with pytest.raises(ValueError, match=match):
            compression_settings(compressor, budget, options)


def test_requests_under_a_compressor_answer_and_score_like_the_checkpoint(checkpoint_dir, reference):
    """`compressor=...,budget=...` reaches `batch_chat` and `score_answers`: the same answers, input token counts and
    scores as direct calls under that compressor; inner-LLM pruning is refused for likelihoods by name."""
    model, tokenizer, processor = reference
    wrapper = LangDC(pretrained=str(checkpoint_dir), dtype="float32", max_frames_num=FRAMES, compressor="pool",
                     budget="0.25")
    wrapper.task_dict = {"toy": {"test": [{"visuals": [str(VIDEO)]}]}}
    [result] = wrapper.generate_until([_request(0, "What happens?", GEN_KWARGS)])
    pixels, patches = processor.load_video(str(VIDEO), num_segments=FRAMES)
    question = "".join(f"Frame{i + 1}: <image>\n" for i in range(FRAMES)) + "What happens?"
    response, info = model.chat(tokenizer, pixels, question, dict(max_new_tokens=6, do_sample=False),
                                num_patches_list=patches, data_flag=3, return_info=True, compressor="pool",
                                budget=0.25)
    assert result.text == response.split("\n\n")[0].strip()
    assert result.token_counts.input_tokens == info.text_tokens + info.visual_tokens
    assert info.pool_tokens < info.uncompressed_pool_tokens
    arguments = ("What happens?", " red (A)", lambda doc: doc["visuals"], 0, "toy", "test")
    [scored] = wrapper.loglikelihood([_loglikelihood_request(0, arguments)])
    [expected] = model.score_answers(tokenizer, pixels, question, ["red (A)"], num_patches_list=patches,
                                     data_flag=3, end_of_turn=False, compressor="pool", budget=0.25)
    assert scored.text[0] == pytest.approx(-expected.log_likelihood, abs=1e-4)
    inner = LangDC(pretrained=str(checkpoint_dir), dtype="float32", max_frames_num=FRAMES, compressor="fastv",
                   budget=0.5, compressor_layer=1)
    inner.task_dict = wrapper.task_dict
    with pytest.raises(ValueError, match="pre-LLM compressors only"):
        inner.loglikelihood([_loglikelihood_request(0, arguments)])


def _loglikelihood_request(index: int, arguments: tuple) -> Instance:
    return Instance("loglikelihood", arguments, index, metadata={"task": "toy", "doc_id": index, "repeats": 1})


def test_loglikelihood_requests_scored_like_score_answers(checkpoint_dir, reference):
    """`multiple_choice` options (strings after the target delimiter), a `doc_to_target` function and an
    unconditional `acc_mutual_info` pair score as `score_answers` does; the options of one question share one
    vision pass."""
    wrapper = LangDC(pretrained=str(checkpoint_dir), dtype="float32", max_frames_num=FRAMES)
    image = _image(1, (64, 64))
    wrapper.task_dict = {"toy": {"test": [{"visuals": [str(VIDEO)]}, {"visuals": [image], "target": "a red circle"}]}}
    visuals = lambda doc: doc["visuals"]  # noqa: E731
    options = [" red (A)", " blue (B)", " grows then shrinks (C)"]
    requests = [_loglikelihood_request(i, ("What colour?", option, visuals, 0, "toy", "test"))
                for i, option in enumerate(options)]
    requests.insert(1, _loglikelihood_request(3, ("What is shown?", lambda doc: doc["target"], visuals, 1, "toy",
                                                  "test")))
    requests.append(_loglikelihood_request(4, ("", "red (A)")))
    vision_calls = []
    handle = wrapper.model.vision_model.register_forward_hook(lambda *args: vision_calls.append(1))
    try:
        results = wrapper.loglikelihood(requests)
    finally:
        handle.remove()
    assert len(vision_calls) == 2  # the three options of the video share one encoding

    model, tokenizer, processor = reference
    pixels, patches = processor.load_video(str(VIDEO), num_segments=FRAMES)
    frames = "".join(f"Frame{i + 1}: <image>\n" for i in range(FRAMES))
    tiles = processor.load_image(image)
    video = model.score_answers(tokenizer, pixels, frames + "What colour?", [o.strip() for o in options],
                                num_patches_list=patches, data_flag=3, end_of_turn=False)
    expected = [video[0], *model.score_answers(tokenizer, tiles, "<image>\nWhat is shown?", ["a red circle"],
                                               num_patches_list=[len(tiles)], data_flag=1, end_of_turn=False),
                *video[1:], *model.score_answers(tokenizer, None, "", ["red (A)"], end_of_turn=False)]
    # (negative log-likelihood, is_greedy): lmms-eval's multiple-choice scoring takes the smallest first value
    assert [r.text[0] for r in results] == pytest.approx([-e.log_likelihood for e in expected], abs=1e-4)
    assert [r.text[1] for r in results] == [e.is_greedy for e in expected]

    with pytest.raises(ValueError, match="non-empty string"):
        wrapper.loglikelihood([_loglikelihood_request(0, ("What?", "  ", visuals, 0, "toy", "test"))])


def _run_cli(checkpoint_dir, task: str, tmp_path) -> subprocess.CompletedProcess:
    """`lmms-eval --model langdc --tasks TASK` on the local tasks, offline, logs with samples in `tmp_path/logs`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    command = [
        str(Path(sys.executable).parent / "lmms-eval"), "--model", "langdc",
        "--model_args", f"pretrained={checkpoint_dir},max_frames_num={FRAMES},dtype=float32",
        "--tasks", task, "--include_path", str(TASKS_DIR), "--batch_size", "1",
        "--output_path", str(tmp_path / "logs"), "--log_samples",
    ]
    run = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def test_lmms_eval_cli_runs_local_video_task(checkpoint_dir, reference, tmp_path):
    """`lmms-eval --model langdc` on the local MVBench-format task over the sample videos, offline."""
    run = _run_cli(checkpoint_dir, "langdc_samples", tmp_path)
    assert "mvbench_accuracy" in run.stdout
    (results_file,) = list((tmp_path / "logs").rglob("*_results.json"))
    accuracy = json.loads(results_file.read_text())["results"]["langdc_samples"]["mvbench_accuracy,none"]
    assert 0 <= accuracy <= 100
    (samples_file,) = list((tmp_path / "logs").rglob("*_samples_langdc_samples.jsonl"))
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    questions = json.loads((REPO_ROOT / "examples" / "samples.json").read_text())
    assert len(samples) == sum(len(video["questions"]) for video in questions)
    _, _, processor = reference
    first = json.loads((REPO_ROOT / "examples" / "samples.json").read_text())[0]
    pixels, patches = processor.load_video(str(REPO_ROOT / "examples" / first["video"]), num_segments=FRAMES)
    sample = next(s for s in samples if s["doc_id"] == 0)
    frames = "".join(f"Frame{i + 1}: <image>\n" for i in range(FRAMES))
    doc = {"question": first["questions"][0]["prompt"].splitlines()[0],
           "candidates": [line[4:] for line in first["questions"][0]["prompt"].splitlines()[1:-1]]}
    question = frames + mvbench_doc_to_text(doc, {"post_prompt": MVBENCH_POST_PROMPT})
    assert sample["input"] == question[len(frames):]
    expected, _ = _direct_answer(reference, question, pixels, patches, 3, {"max_new_tokens": 16})
    assert sample["filtered_resps"] == expected


def test_lmms_eval_cli_runs_local_likelihood_task(checkpoint_dir, reference, tmp_path):
    """`--tasks langdc_samples_likelihood` (`multiple_choice`) goes through `loglikelihood`; its per-option scores are
    `score_answers`' on the sample's own prompt."""
    _run_cli(checkpoint_dir, "langdc_samples_likelihood", tmp_path)
    (samples_file,) = list((tmp_path / "logs").rglob("*_samples_langdc_samples_likelihood.jsonl"))
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    videos = json.loads((REPO_ROOT / "examples" / "samples.json").read_text())
    assert len(samples) == sum(len(video["questions"]) for video in videos)
    model, tokenizer, processor = reference
    question = videos[0]["questions"][0]
    pixels, patches = processor.load_video(str(REPO_ROOT / "examples" / videos[0]["video"]), num_segments=FRAMES)
    frames = "".join(f"Frame{i + 1}: <image>\n" for i in range(FRAMES))
    options = [line[4:] + f" ({line[1]})" for line in question["prompt"].splitlines()[1:-1]]
    expected = model.score_answers(tokenizer, pixels, frames + question["prompt"], options, num_patches_list=patches,
                                   data_flag=3, end_of_turn=False)
    sample = next(s for s in samples if s["doc_id"] == 0)
    assert [float(nll) for nll, _ in sample["filtered_resps"]] == pytest.approx(
        [-e.log_likelihood for e in expected], abs=1e-3)
    best = max(range(len(expected)), key=lambda i: expected[i].log_likelihood)
    assert sample["acc"] == float(best == options.index(question["answer"]))

"""The compressor benchmark harness end to end on a tiny random checkpoint and a micro synthvid set (2 test videos,
the first one measured)."""

import json

import pytest
import torch

from tests.conftest import build_micro_synthvid

pytest.importorskip("synthvid")


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory):
    return build_micro_synthvid(tmp_path_factory.mktemp("synthvid"), train=1)


@pytest.fixture(scope="module")
def baseline_dir(make_model, tokenizer, tmp_path_factory):
    """A tiny no-expert baseline checkpoint (16 pool tokens per frame), the compressors' main target."""
    from tools.build_checkpoint import build_processor, save_checkpoint

    model = make_model(use_expert=False, pool_grid=4)
    path = tmp_path_factory.mktemp("baseline")
    save_checkpoint(model, tokenizer, build_processor(model.config, tokenizer), path)
    return path


@pytest.fixture(scope="module")
def langdc_dir(make_model, tokenizer, tmp_path_factory):
    """A tiny dual LangDC checkpoint (expert + pool branch), compared uncompressed."""
    from tools.build_checkpoint import build_processor, save_checkpoint

    model = make_model()
    path = tmp_path_factory.mktemp("langdc")
    save_checkpoint(model, tokenizer, build_processor(model.config, tokenizer), path)
    return path


def test_harness_writes_json_markdown_and_plot(baseline_dir, langdc_dir, micro_data, tmp_path):
    from benchmarks.compressors import main

    output = tmp_path / "bench"
    paths = main(["--model", str(baseline_dir), "--compare", str(langdc_dir), "--data", str(micro_data),
                  "--limit", "1", "--methods", "none",
                  "divprune", "fastv", "dycoke", "--budgets", "0.1", "1.0", "--decode-tokens", "3", "--warmup", "0",
                  "--max-new-tokens", "2", "--output", str(output), "--compressor-options", '{"fastv": {"layer": 1}}'])
    assert sorted(p.name for p in paths) == ["accuracy_vs_tokens.png", "results.json", "results.md"]
    assert (output / "accuracy_vs_tokens.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((output / "results.json").read_text())
    langdc = [r for r in report["results"] if r["model"] == str(langdc_dir)]
    assert [(r["method"], r["budget"]) for r in langdc] == [("none", 1.0)]  # compared models run uncompressed only
    assert langdc[0]["expert_tflops"] > 0 and langdc[0]["questions"] > 0
    rows = {(r["method"], r["budget"]): r for r in report["results"] if r["model"] == str(baseline_dir)}
    assert set(rows) == {("none", 1.0), ("divprune", 0.1), ("divprune", 1.0), ("fastv", 0.1), ("fastv", 1.0),
                         ("dycoke", 0.1), ("dycoke", 1.0)}
    full, pruned = rows[("none", 1.0)], rows[("divprune", 0.1)]
    assert full["questions"] == pruned["questions"] > 0
    assert pruned["visual_tokens"] < full["visual_tokens"]
    assert rows[("divprune", 1.0)]["visual_tokens"] == full["visual_tokens"]
    assert rows[("divprune", 1.0)]["accuracy"] == full["accuracy"]
    assert pruned["llm_prefill_tflops"] < full["llm_prefill_tflops"]
    fastv = rows[("fastv", 0.1)]
    assert fastv["visual_tokens"] == full["visual_tokens"]  # FastV prunes inside the LLM
    assert fastv["llm_layer_tokens_mean"] < full["llm_layer_tokens_mean"]
    assert fastv["llm_prefill_tflops_fastv"] < full["llm_prefill_tflops_fastv"]
    assert "below its minimum" in rows[("dycoke", 0.1)]["unsupported"]
    for row in (full, pruned, fastv):
        assert row["ttft_ms"] >= row["llm_prefill_ms"] > 0 and row["decode_tokens_per_s"] > 0
        assert row["peak_memory_kind"] == "cpu_peak_rss_of_process"
    table = (output / "results.md").read_text()
    assert f"| {baseline_dir} | divprune | 0.10 |" in table and f"| {langdc_dir} | none |" in table
    assert "unsupported" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
@pytest.mark.parametrize("mode", ["--real-shapes", "--expert-decode-latency"])
def test_gpu_modes_refuse_on_cpu(mode, tmp_path):
    from benchmarks.compressors import main

    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        main([mode, "--output", str(tmp_path)])


def test_select_videos_by_composition(micro_data):
    from benchmarks.compressors import select_videos
    from train.data import read_split

    records = read_split(micro_data, "test")  # 2 seen, then 1 unseen
    assert [r["unseen"] for r in records] == [False, False, True]
    assert select_videos(records) == records and select_videos(records, "all", 2) == records[:2]
    assert select_videos(records, "seen") == records[:2]
    assert select_videos(records, "unseen") == records[2:]
    with pytest.raises(ValueError, match="`compositions` must be one of"):
        select_videos(records, "novel")
    with pytest.raises(ValueError, match="No unseen video"):
        select_videos(records[:2], "unseen")

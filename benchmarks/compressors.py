"""Compare training-free token compressors (compression_langdc.py) honestly: accuracy against visual tokens, FLOPs,
time to first token and decode speed, on the synthvid test split.

    python -m benchmarks.compressors --model checkpoints/synthvid-baseline --compare . \
        --data data/synthvid --output runs/bench [--limit 50] [--compositions unseen]
    python -m benchmarks.compressors --real-shapes --frames 16 32 64 --output runs/bench_real      # CUDA only
    python -m benchmarks.compressors --expert-decode-latency --output runs/bench_expert               # CUDA only

For every method and budget (default 10/25/50/100 %) on `--model` (the plug-ins' host, normally the no-expert
baseline), and uncompressed on each `--compare` checkpoint (e.g. LangDC itself), it reports: multiple-choice accuracy; realised visual tokens
into the LLM (and the pool tokens before compression); exact and FastV-convention LLM prefill FLOPs
(flops_langdc.py, summed over per-layer lengths for inner methods); expert FLOPs (prefill + caption decode); time
to first token split into vision / compressor (expert captioning + training-free compressor) / LLM prefill; decode
tokens/s at a fixed output length; peak memory (CUDA `max_memory_allocated`; on CPU the process's peak resident set
size from `resource.getrusage`, which only grows during a run, so it bounds rather than measures each row). Batch
size 1 (the inner-LLM methods' limit), greedy. Writes `results.json`, `results.md` and `accuracy_vs_tokens.png`
into `--output`, each atomically.

`--real-shapes` builds random-weight models of real shapes (SigLIP-so400m vision, Qwen2.5-0.5B expert,
Qwen2.5-3B or Qwen2-7B LLM) for the speed columns only (no accuracy), on random frames; it refuses to run without
CUDA. `--expert-decode-latency` measures the expert's per-step caption decoding latency at 0.5B scale with the
dynamic cache, the static cache and the static cache + `torch.compile` (CUDA only).
"""

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from synthvid.files import write_atomic, write_text_atomic
from tools.remote_code import import_remote

BUDGETS = (0.1, 0.25, 0.5, 1.0)
NO_COMPRESSOR = "none"
COMPOSITIONS = ("all", "seen", "unseen")
REAL_VISION = dict(model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                   num_attention_heads=16, patch_size=14, image_size=384, vision_use_head=False)
REAL_EXPERT = dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                   num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                   max_position_embeddings=32768)
REAL_LLMS = {
    "qwen2.5-3b": dict(model_type="qwen2", hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                       num_attention_heads=16, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                       max_position_embeddings=32768),
    "qwen2-7b": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False,
                     max_position_embeddings=32768),
}
REAL_POOL_GRID = 14  # 196 tokens per frame (LLaVA-OneVision's pooled 14x14 video grid, the setting of DyCoke's tables)


# ----------------------------------------------------------------------------------------------------------------
# measurement helpers
# ----------------------------------------------------------------------------------------------------------------
def peak_memory_bytes(device: torch.device) -> tuple[int, str]:
    """Peak memory and what it measures: CUDA `max_memory_allocated`, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "cuda_max_memory_allocated"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "cpu_peak_rss_of_process"


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def stage_times(info) -> dict:
    """TTFT split (seconds): vision, compressor (expert captioning + training-free compressor), LLM prefill."""
    t = info.timings
    split = {"vision": t["vision"], "compressor": t["expert"] + t["compressor"], "llm_prefill": t["llm_prefill"]}
    split["ttft"] = sum(split.values())
    return split


def median(values):
    return statistics.median(values) if values else None


METHOD_OPTIONS = {}  # per-method `compressor_options` (`--compressor-options`); method defaults otherwise


def compression_args(method: str, budget: float) -> dict:
    if method == NO_COMPRESSOR:
        return {}
    return dict(compressor=method, budget=budget, compressor_options=METHOD_OPTIONS.get(method))


def measure_question(model, tokenizer, pixels, patches, prompt, method, budget, max_new_tokens) -> tuple[str, object]:
    return model.chat(tokenizer, pixels, prompt, dict(max_new_tokens=max_new_tokens, do_sample=False),
                      num_patches_list=patches, data_flag=3, return_info=True, **compression_args(method, budget))


def decode_speed(model, tokenizer, pixels, patches, method, budget, decode_tokens: int) -> float:
    """Decode tokens/s at exactly `decode_tokens` new tokens: `(N - 1) / LLM decode time`."""
    config = dict(max_new_tokens=decode_tokens, min_new_tokens=decode_tokens, do_sample=False)
    _, info = model.chat(tokenizer, pixels, "<video>\nDescribe the video.", config, num_patches_list=patches,
                         data_flag=3, return_info=True, **compression_args(method, budget))
    return (decode_tokens - 1) / info.timings["llm_decode"] if info.timings["llm_decode"] > 0 else float("nan")


def summarize_rows(rows: list[dict], decode_rates: list[float], device) -> dict:
    """One table row from per-question measurements."""
    correct = [r["correct"] for r in rows if r["correct"] is not None]
    mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    memory, memory_kind = peak_memory_bytes(device)
    return {
        "questions": len(rows),
        "accuracy": sum(correct) / len(correct) if correct else None,
        "visual_tokens": mean("visual_tokens"),
        "uncompressed_pool_tokens": mean("uncompressed_pool_tokens"),
        "llm_layer_tokens_mean": mean("llm_layer_tokens_mean"),
        "llm_prefill_tflops": mean("llm_prefill_flops") / 1e12,
        "llm_prefill_tflops_fastv": mean("llm_prefill_flops_fastv") / 1e12,
        "expert_tflops": mean("expert_flops") / 1e12,
        **{f"{name}_ms": 1e3 * median([r[name] for r in rows]) for name in ("vision", "compressor", "llm_prefill",
                                                                             "ttft")},
        "decode_tokens_per_s": median(decode_rates),
        "peak_memory_mib": memory / 2**20,
        "peak_memory_kind": memory_kind,
    }


def question_row(info, correct) -> dict:
    return {
        "correct": correct, "visual_tokens": info.visual_tokens,
        "uncompressed_pool_tokens": info.uncompressed_pool_tokens,
        "llm_layer_tokens_mean": sum(info.llm_layer_tokens) / len(info.llm_layer_tokens),
        "llm_prefill_flops": info.llm_prefill_flops, "llm_prefill_flops_fastv": info.llm_prefill_flops_fastv,
        "expert_flops": info.expert_flops, **stage_times(info),
    }


# ----------------------------------------------------------------------------------------------------------------
# synthvid accuracy run
# ----------------------------------------------------------------------------------------------------------------
def select_videos(records: list[dict], compositions: str = "all", limit: int | None = None) -> list[dict]:
    """The first `limit` records of a split whose objects are of `compositions` (one of `COMPOSITIONS`): `"seen"`
    only colour-shape pairs of the training split, `"unseen"` a held-out pair (the record's `unseen` flag).

    Raises:
        ValueError: for an unknown `compositions`, or when no record is left.
    """
    if compositions not in COMPOSITIONS:
        raise ValueError(f"`compositions` must be one of {COMPOSITIONS}, got {compositions!r}.")
    if compositions != "all":
        records = [record for record in records if record["unseen"] == (compositions == "unseen")]
    records = records[:limit]
    if not records:
        raise ValueError(f"No {compositions} video in this split (limit {limit}).")
    return records


def run_synthvid(model, tokenizer, processor, data_dir: Path, split: str, methods, budgets, limit, max_new_tokens,
                 decode_tokens, warmup, compositions: str = "all") -> list[dict]:
    """Every (method, budget) on the first `limit` videos of `split` of `compositions` (`select_videos`); returns
    one result row per pair."""

    from eval.evaluate import parse_letter
    from train.data import multiple_choice_prompt, read_split

    records = select_videos(read_split(data_dir, split), compositions, limit)
    videos = [processor.load_video(str(data_dir / record["video"])) for record in records]
    videos = [(pixels.to(model.device, model.dtype), patches) for pixels, patches in videos]
    device = model.device
    results = []
    for method in methods:
        for budget in ([1.0] if method == NO_COMPRESSOR else budgets):
            row = {"method": method, "budget": budget}
            try:
                for _ in range(warmup):
                    measure_question(model, tokenizer, *videos[0], "<video>\nWarm up.", method, budget, 2)
                reset_peak_memory(device)
                rows, rates = [], []
                for record, (pixels, patches) in zip(records, videos):
                    for question in record["questions"]:
                        prompt = f"<video>\n{multiple_choice_prompt(question)}"
                        response, info = measure_question(model, tokenizer, pixels, patches, prompt, method, budget,
                                                          max_new_tokens)
                        rows.append(question_row(info, parse_letter(response) == question["answer"]))
                    rates.append(decode_speed(model, tokenizer, pixels, patches, method, budget, decode_tokens))
                row.update(summarize_rows(rows, rates, device))
            except ValueError as error:  # a budget the method cannot reach (documented), recorded as such
                row["unsupported"] = str(error)
            results.append(row)
            print(json.dumps(row), flush=True)
    return results


# ----------------------------------------------------------------------------------------------------------------
# real-shape speed run (CUDA only)
# ----------------------------------------------------------------------------------------------------------------
def require_cuda(what: str) -> torch.device:
    """The CUDA device, or `SystemExit` with a clear message: these timings mean nothing on a CPU."""
    if not torch.cuda.is_available():
        raise SystemExit(f"{what} needs a CUDA GPU (real-shape timings on a CPU are meaningless); none is available.")
    return torch.device("cuda")


def real_shape_model(llm: str, use_expert: bool, tokenizer, device, dtype=torch.bfloat16):
    """Random-weight LangDC of real shapes: the dual model (`use_expert=True`, pool grid 2) or the no-expert
    baseline (pool grid 14, 196 tokens per frame)."""
    from tools.build_checkpoint import build_config

    spec = dict(vision_config=REAL_VISION, expert_config=REAL_EXPERT, text_config=REAL_LLMS[llm],
                use_expert=use_expert, pool_grid=2 if use_expert else REAL_POOL_GRID)
    config = build_config(spec, tokenizer)
    for sub in (config.expert_config, config.text_config):  # real vocabularies (the byte tokenizer's ids fit in)
        sub.vocab_size = REAL_LLMS[llm]["vocab_size"] if sub is config.text_config else REAL_EXPERT["vocab_size"]
    modeling = import_remote("modeling_langdc")
    with torch.device(device):
        model = modeling.LangDCForConditionalGeneration(config).to(dtype).eval()
    model.generation_config.eos_token_id = list(config.expert_eos_token_ids)
    return model


def run_real_shapes(llms, frames_list, methods, budgets, decode_tokens, warmup, repeats) -> list[dict]:
    """Speed columns of every (LLM, frames, method, budget) on random frames with random-weight real-shape models."""
    from tools.tokenizer import build_byte_tokenizer

    device = require_cuda("--real-shapes")
    tokenizer = build_byte_tokenizer()
    results = []
    for llm in llms:
        for use_expert in (False, True):
            model = real_shape_model(llm, use_expert, tokenizer, device)
            size = model.config.vision_config.image_size
            for frames in frames_list:
                pixels = torch.randn(frames, 3, size, size, generator=torch.Generator().manual_seed(0))
                pixels, patches = pixels.to(device, torch.bfloat16), [1] * frames
                for method in ([NO_COMPRESSOR] if use_expert else methods):
                    for budget in ([1.0] if method == NO_COMPRESSOR else budgets):
                        row = {"llm": llm, "model": "langdc_dual" if use_expert else "baseline", "frames": frames,
                               "method": method, "budget": budget}
                        try:
                            for _ in range(warmup):
                                measure_question(model, tokenizer, pixels, patches, "<video>\nA?", method, budget, 1)
                            reset_peak_memory(device)
                            rows = [question_row(measure_question(model, tokenizer, pixels, patches, "<video>\nA?",
                                                                  method, budget, 1)[1], None)
                                    for _ in range(repeats)]
                            rates = [decode_speed(model, tokenizer, pixels, patches, method, budget, decode_tokens)]
                            row.update(summarize_rows(rows, rates, device))
                        except ValueError as error:
                            row["unsupported"] = str(error)
                        results.append(row)
                        print(json.dumps(row), flush=True)
            del model
            torch.cuda.empty_cache()
    return results


def run_expert_decode_latency(frames: int, steps: int, warmup: int) -> list[dict]:
    """Per-step latency of the expert's batched caption decoding (0.5B, bf16) for each cache setting (CUDA only)."""
    from tools.tokenizer import build_byte_tokenizer

    device = require_cuda("--expert-decode-latency")
    tokenizer = build_byte_tokenizer()
    model = real_shape_model("qwen2.5-3b", True, tokenizer, device)
    model.config.max_caption_tokens = steps
    size = model.config.vision_config.image_size
    pixels = torch.randn(frames, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device, torch.bfloat16)
    results = []
    for cache, compile_ in (("dynamic", False), ("static", False), ("static", True)):
        model.config.expert_cache_implementation, model.config.expert_compile = cache, compile_
        for _ in range(warmup):
            model.caption_clips(pixels, [[1] * frames], 3)
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        captions = model.caption_clips(pixels, [[1] * frames], 3)
        torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        generated = max(len(c) for c in captions)
        row = {"cache": cache, "compile": compile_, "clips": len(captions), "decode_steps": generated,
               "ms_per_step_incl_vision_and_prefill": 1e3 * elapsed / max(generated, 1)}
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


# ----------------------------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------------------------
def load_checkpoint(path: Path):
    """`(model, processor)` of a checkpoint folder through the Hub API, on CUDA when there is one."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, AutoProcessor.from_pretrained(path, trust_remote_code=True)


COLUMNS = (
    ("method", "{}"), ("budget", "{:.2f}"), ("accuracy", "{:.3f}"), ("visual_tokens", "{:.1f}"),
    ("llm_prefill_tflops", "{:.4g}"), ("llm_prefill_tflops_fastv", "{:.4g}"), ("expert_tflops", "{:.4g}"),
    ("vision_ms", "{:.1f}"), ("compressor_ms", "{:.1f}"), ("llm_prefill_ms", "{:.1f}"), ("ttft_ms", "{:.1f}"),
    ("decode_tokens_per_s", "{:.1f}"), ("peak_memory_mib", "{:.0f}"),
)


def markdown_table(rows: list[dict], header: str) -> str:
    lead = [c for c in ("llm", "model", "frames") if any(c in r for r in rows)]
    columns = [(c, "{}") for c in lead] + list(COLUMNS)
    lines = [header, "", "| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for name, fmt in columns:
            value = row.get(name)
            cells.append("n/a" if value is None else fmt.format(value))
        if "unsupported" in row:
            cells[len(lead) + 2] = f"unsupported: {row['unsupported']}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_accuracy(rows: list[dict], path: Path) -> None:
    """Accuracy against realised visual tokens, one line per method (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for model, method in dict.fromkeys((r.get("model"), r["method"]) for r in rows):
        points = sorted((r["visual_tokens"], r["accuracy"]) for r in rows
                        if (r.get("model"), r["method"]) == (model, method) and r.get("accuracy") is not None)
        if points:
            axis.plot(*zip(*points), marker="o", label=f"{model}: {method}" if model else method)
    axis.set_xlabel("visual tokens into the LLM (mean per question)")
    axis.set_ylabel("multiple-choice accuracy")
    axis.legend(fontsize=7)
    figure.tight_layout()
    write_atomic(path, figure.savefig)
    plt.close(figure)


def write_outputs(output: Path, results: list[dict], meta: dict, plot: bool) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output / "results.json", json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    header = f"Command: `{meta['command']}`; device: {meta['device']}; peak memory: {meta['peak_memory_kind']}."
    write_text_atomic(output / "results.md", markdown_table(results, header))
    paths = [output / "results.json", output / "results.md"]
    if plot:
        plot_accuracy(results, output / "accuracy_vs_tokens.png")
        paths.append(output / "accuracy_vs_tokens.png")
    return paths


def main(argv=None) -> list[Path]:
    compressors = sorted(import_remote("compression_langdc").COMPRESSORS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="checkpoint folder the methods run on (synthvid mode)")
    parser.add_argument("--compare", type=Path, nargs="*", default=[],
                        help="synthvid mode: more checkpoints, evaluated uncompressed only (e.g. LangDC)")
    parser.add_argument("--data", type=Path, default=Path("data/synthvid"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N videos only")
    parser.add_argument("--compositions", default="all", choices=COMPOSITIONS,
                        help="videos of seen colour-shape pairs only, of held-out (unseen) ones only, or all")
    parser.add_argument("--methods", nargs="+", default=[NO_COMPRESSOR, *compressors],
                        choices=[NO_COMPRESSOR, *compressors])
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    parser.add_argument("--max-new-tokens", type=int, default=12, help="answer length for accuracy")
    parser.add_argument("--decode-tokens", type=int, default=32, help="fixed output length for decode tokens/s")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="--real-shapes: timed runs per row (median)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--real-shapes", action="store_true")
    parser.add_argument("--llms", nargs="+", default=list(REAL_LLMS), choices=list(REAL_LLMS))
    parser.add_argument("--frames", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--expert-decode-latency", action="store_true")
    parser.add_argument("--compressor-options", type=json.loads, default={},
                        help='per-method options as JSON, e.g. \'{"fastv": {"layer": 1}}\'')
    args = parser.parse_args(argv)
    unknown = sorted(set(args.compressor_options) - set(compressors))
    if unknown:
        parser.error(f"--compressor-options names unknown compressors {unknown}")
    METHOD_OPTIONS.clear()
    METHOD_OPTIONS.update(args.compressor_options)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m benchmarks.compressors " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.expert_decode_latency:
        results = run_expert_decode_latency(args.frames[0], args.decode_tokens, args.warmup)
        device = torch.device("cuda")
    elif args.real_shapes:
        results = run_real_shapes(args.llms, args.frames, args.methods, args.budgets, args.decode_tokens,
                                  args.warmup, args.repeats)
        device = torch.device("cuda")
    else:
        if args.model is None:
            parser.error("--model is required (or use --real-shapes / --expert-decode-latency)")
        results = []
        for path, methods in [(args.model, args.methods), *((p, [NO_COMPRESSOR]) for p in args.compare)]:
            model, processor = load_checkpoint(path)
            device = model.device
            rows = run_synthvid(model, processor.tokenizer, processor, args.data, args.split, methods, args.budgets,
                                args.limit, args.max_new_tokens, args.decode_tokens, args.warmup, args.compositions)
            label = str(path) if path.name else "root"  # "." would label the plot and tables with a dot
            results += [{"model": label, **row} for row in rows]
            del model
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    meta = {"command": command, "device": name, "torch": torch.__version__,
            "peak_memory_kind": peak_memory_bytes(device)[1], "budgets": args.budgets}
    paths = write_outputs(args.output, results, meta, plot=not (args.real_shapes or args.expert_decode_latency))
    print("wrote " + ", ".join(str(p) for p in paths))
    return paths


if __name__ == "__main__":
    main()

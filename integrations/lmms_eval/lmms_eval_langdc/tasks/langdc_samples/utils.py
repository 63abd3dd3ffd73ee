"""MVBench-format docs from the repo's sample videos (`examples/samples.json`), scored by lmms-eval's MVBench code.

Each sample question `"<question>\\n(A) ...\\n(B) ...\\nAnswer with ..."` with answer `"text (B)"`
(`synthvid.format_answer`) becomes an MVBench doc `{video, question, candidates, answer, prompt}` (answer = the
candidate's text, as in MVBench). The likelihood task (`langdc_samples_likelihood`) asks the sample's own prompt and
ranks its options, each written as the model writes an answer, by log-likelihood. Paths are relative to the
directory lmms-eval runs in (the repository root).
"""

import re
from pathlib import Path

# Re-exported for the task YAML (`!function utils.mvbench_*`): MVBench's own prompt and scoring.
from lmms_eval.tasks.mvbench.utils import (  # noqa: F401
    mvbench_aggregate_results,
    mvbench_doc_to_text,
    mvbench_process_results,
)

SAMPLES_DIR = Path("examples")
OPTION = re.compile(r"^\(([A-Z])\) (.*)$")
ANSWER = re.compile(r"^(.*) \(([A-Z])\)$")
DOC_KEYS = ("video", "task", "question", "candidates", "answer", "prompt")


def _mvbench_doc(video: str, task: str, prompt: str, answer: str) -> dict:
    lines = prompt.splitlines()
    options = [OPTION.match(line) for line in lines]
    candidates = [m.group(2) for m in options if m]
    answer_match = ANSWER.match(answer)
    if not candidates or answer_match is None or answer_match.group(1) not in candidates:
        raise ValueError(f"{video}: cannot read the options of {prompt!r} / answer {answer!r}.")
    return {"video": video, "task": task, "question": lines[0], "candidates": candidates,
            "answer": answer_match.group(1), "prompt": prompt}


def samples_to_mvbench_docs(dataset):
    """One MVBench doc per sample question (a `datasets.Dataset` map that expands rows)."""

    def expand(batch):
        docs = [_mvbench_doc(video, q["task"], q["prompt"], q["answer"])
                for video, questions in zip(batch["video"], batch["questions"]) for q in questions]
        return {key: [doc[key] for doc in docs] for key in DOC_KEYS}

    return dataset.map(expand, batched=True, remove_columns=dataset.column_names)


def doc_to_prompt(doc) -> str:
    """The sample's own prompt (`question`, `(A) ...` lines, `Answer with the option's letter.`), as in training."""
    return doc["prompt"]


def doc_to_answers(doc) -> list[str]:
    """Every option written as the model writes an answer, `text (letter)` (`synthvid.format_answer`)."""
    return [f"{candidate} ({chr(ord('A') + i)})" for i, candidate in enumerate(doc["candidates"])]


def doc_to_answer_index(doc) -> int:
    return doc["candidates"].index(doc["answer"])


def doc_to_visual(doc):
    path = SAMPLES_DIR / doc["video"]
    if not path.is_file():
        raise ValueError(f"Sample video {path} not found: run lmms-eval from the repository root.")
    return [str(path)]

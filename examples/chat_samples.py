"""Answer the questions of the sample videos in examples/samples.json and show what the expert said per clip.

    python examples/chat_samples.py                    # the repo-root checkpoint
    python examples/chat_samples.py --model PATH

The samples (an empty, a static and a busy scene of the synthetic video world) were picked from the test split
by content alone (`python -m tools.make_samples`). For each video: the expert's caption and soft-token count per
clip, then each question with the model's answer and the ground truth.
"""

import json
import re
from pathlib import Path

from common import base_parser, load

SAMPLES = Path(__file__).resolve().parent / "samples.json"
LETTER = re.compile(r"\(([A-D])\)")  # answers read "text (B)"; the letter decides


def option_letter(answer: str) -> str | None:
    """The first "(X)" option letter in an answer, or None."""
    match = LETTER.search(answer)
    return match.group(1) if match else None


def main(argv=None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    args = parser.parse_args(argv)
    model, tokenizer, processor = load(args.model, args.dtype)
    samples = json.loads(args.samples.read_text())
    correct = total = 0
    for sample in samples:
        pixel_values, num_patches_list = processor.load_video(str(args.samples.parent / sample["video"]))
        questions = [f"<video>\n{q['prompt']}" for q in sample["questions"]]
        responses, infos = model.batch_chat(
            tokenizer, pixel_values.repeat(len(questions), 1, 1, 1).to(model.dtype), questions,
            dict(max_new_tokens=args.max_new_tokens, do_sample=False),
            num_patches_list=[num_patches_list] * len(questions), data_flag=3, return_info=True,
        )
        info = infos[0]
        print(f"== {sample['name']} scene ({sample['video']}): {info.visual_tokens} visual tokens "
              f"({info.pool_tokens} pool + {sum(info.tokens_per_clip)} caption) vs. {info.full_visual_tokens} uncompressed")
        for clip, (tokens, caption) in enumerate(zip(info.tokens_per_clip, info.captions)):
            print(f"  clip {clip}: {tokens:3d} soft tokens | expert: {caption!r}")
        for question, response in zip(sample["questions"], responses):
            ok = option_letter(response) == option_letter(question["answer"])
            correct, total = correct + ok, total + 1
            print(f"  [{question['task']}] {question['prompt'].splitlines()[0]}")
            print(f"    A: {response}   (truth: {question['answer']}) {'correct' if ok else 'WRONG'}")
    print(f"sample questions answered correctly: {correct}/{total}")


if __name__ == "__main__":
    main()

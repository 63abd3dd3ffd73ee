"""Clip localisation: can the LLM find one clip's block among a video's when the clip is named by its time?

    python -m eval.clip_describe --model runs/v17/export --data data/synthvid --split val --max-videos 50

Temporal localisation and order questions need the clip in which a caption sentence stands. This probe asks the
forward half of that, for every clip of every 4-clip video whose clip captions all differ: `Describe what happens
{time phrase}.` (`train.data.clip_describe_turns`, stage 3's `--clip-describe-fraction` turn) with the ground-truth
captions as soft tokens, so the expert's errors do not count. It reports how often the answer is the named clip's
caption exactly, and how often the named clip is the one whose caption's words the answer overlaps most (Jaccard
over words; chance 25%). Writes `OUTPUT/clip_describe_<split>.json` when `--output` is given.
"""

import argparse
from pathlib import Path

import torch
from transformers import AutoModel, AutoProcessor, AutoTokenizer

from eval.evaluate import report_result
from train.data import VIDEO_PROMPTS, clip_caption_ids, clip_describe_turns, read_split, video_prefix


def closest_clip(answer: str, clip_captions: list[str]) -> int:
    """Index of the clip caption that shares the largest fraction of words with `answer` (Jaccard; first on ties)."""
    words = set(answer.split())
    overlaps = [len(words & set(caption.split())) / len(words | set(caption.split())) for caption in clip_captions]
    return max(range(len(clip_captions)), key=overlaps.__getitem__)


@torch.no_grad()
def clip_describe_scores(model, tokenizer, processor, data_dir: Path, split: str, max_videos: int | None = None,
                         prompt: str = "video", max_new_tokens: int = 64) -> dict:
    """`{"videos", "answers", "exact", "named_clip_closest"}` over the split's first `max_videos` 4-clip videos whose
    clip captions all differ (one batched `batch_chat` of four turns per video, ground-truth captions).

    Raises:
        ValueError: when the split has no such video.
    """
    records = [record for record in read_split(data_dir, split)
               if clip_describe_turns(record) and len(set(record["clip_captions"])) == len(record["clip_captions"])]
    records = records[:max_videos]
    if not records:
        raise ValueError(f"No 4-clip video with distinct clip captions in {data_dir}/{split}.")
    caption_tokenizer = model.get_expert_tokenizer(tokenizer)
    exact = named = answers = 0
    for record in records:
        pixels, patches = processor.load_video(str(data_dir / record["video"]))
        turns = clip_describe_turns(record)
        responses = model.batch_chat(
            tokenizer, torch.cat([pixels] * len(turns)).to(model.dtype),
            [video_prefix(prompt, len(patches)) + user for user, _ in turns],
            dict(max_new_tokens=max_new_tokens, do_sample=False), num_patches_list=[patches] * len(turns),
            data_flag=3, caption_ids=clip_caption_ids(caption_tokenizer, record) * len(turns),
        )
        for clip, (response, (_, truth)) in enumerate(zip(responses, turns)):
            answers += 1
            exact += response.strip() == truth
            named += closest_clip(response, record["clip_captions"]) == clip
    return {"videos": len(records), "answers": answers, "exact": exact / answers, "named_clip_closest": named / answers}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("."), help="a LangDC checkpoint folder")
    parser.add_argument("--data", type=Path, default=Path("data/synthvid"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-videos", type=int, default=None)
    parser.add_argument("--prompt", default="video", choices=VIDEO_PROMPTS)
    parser.add_argument("--output", type=Path, default=None, help="folder for clip_describe_<split>.json")
    args = parser.parse_args(argv)
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    result = clip_describe_scores(model, tokenizer, processor, args.data, args.split, args.max_videos, args.prompt)
    result.update(model=str(args.model), split=args.split, prompt=args.prompt)
    return report_result(result, args.output, f"clip_describe_{args.split}.json")


if __name__ == "__main__":
    main()

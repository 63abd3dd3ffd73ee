"""Image question answering with LangDC (dynamic tiling: each image is one clip whose frames are its tiles).

    python examples/chat_image.py                       # "chelsea" from scikit-image, the repo-root checkpoint
    python examples/chat_image.py --image a.jpg --image b.jpg --question "What differs?"
"""

import torch

from common import base_parser, default_image, load, print_report

DEFAULT_QUESTION = "What is in the image?"


def main(argv=None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--image", action="append", default=None, help="image file; repeat for several images")
    parser.add_argument("--max-tiles", type=int, default=None, help="max tiles per image (default: the processor's)")
    args = parser.parse_args(argv)
    model, tokenizer, processor = load(args.model, args.dtype)
    images = args.image or [str(default_image())]
    tiles = [processor.load_image(image, max_num=args.max_tiles) for image in images]
    pixel_values = torch.cat(tiles).to(model.dtype)
    num_patches_list = [t.shape[0] for t in tiles]
    if len(images) == 1:
        question, data_flag = "<image>\n" + (args.question or DEFAULT_QUESTION), 1
    else:
        prefix = "".join(f"Image-{i + 1}: <image>\n" for i in range(len(images)))
        question, data_flag = prefix + (args.question or DEFAULT_QUESTION), 2
    response, info = model.chat(
        tokenizer, pixel_values, question, dict(max_new_tokens=args.max_new_tokens, do_sample=False),
        num_patches_list=num_patches_list, data_flag=data_flag, return_info=True,
    )
    print(f"images: {', '.join(images)} -> tiles per image {num_patches_list}")
    print_report(args.question or DEFAULT_QUESTION, response, info)


if __name__ == "__main__":
    main()

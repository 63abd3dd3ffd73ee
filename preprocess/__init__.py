"""PVC-style preprocessing helpers for people who clone the LangDC repo.

This is a thin re-export: the one implementation lives in the flat remote-code file `processing_langdc.py` at the
repository root (so that `trust_remote_code` loading, which downloads only flat files, gets the same code).
"""

import importlib.util
import os
import sys


if importlib.util.find_spec("processing_langdc") is None:
    # Imported from outside the repository root: make the root importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from processing_langdc import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transform,
    dynamic_preprocess,
    find_closest_aspect_ratio,
    get_index,
    load_image,
    load_video,
)


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "build_transform",
    "dynamic_preprocess",
    "find_closest_aspect_ratio",
    "get_index",
    "load_image",
    "load_video",
]

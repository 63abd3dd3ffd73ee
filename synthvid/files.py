"""Atomic file writes, the one implementation that the data builder, training caches, evaluation and benchmarks use."""

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path, write: Callable[[Path], None]) -> Path:
    """Write `path` by calling `write(tmp)` on a temporary path beside it, then moving it into place with
    `os.replace`: `path` is never half-written, and a write that raises leaves neither `path` nor a temporary file.

    The temporary name keeps `path`'s suffix (`.name.<pid>.tmp.png`), so writers that choose their format by suffix
    (matplotlib's `savefig`) write the right one. Parent folders are created. Returns `path` as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path, text: str) -> Path:
    """`text` written to `path` atomically (`write_atomic`)."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))

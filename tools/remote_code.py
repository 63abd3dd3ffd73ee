"""Import the repo-root remote-code files (`modeling_langdc.py`, ...) as one package.

The remote-code files use relative imports (`from .configuration_langdc import ...`), as transformers requires
for Hub models, so they cannot be imported as top-level modules. Tools and tests import them through this
alias package, which maps `langdc_remote.<name>` to `<repo root>/<name>.py`.
"""

import importlib
import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "langdc_remote"


def _ensure_package() -> None:
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.spec_from_loader(PACKAGE, loader=None, is_package=True)
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(REPO_ROOT)]
    sys.modules[PACKAGE] = package


def import_remote(name: str):
    """Return the remote-code module `name` (e.g. "modeling_langdc")."""
    _ensure_package()
    return importlib.import_module(f"{PACKAGE}.{name}")

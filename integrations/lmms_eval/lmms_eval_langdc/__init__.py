"""lmms-eval plug-in for LangDC, registered through the `lmms_eval.models` entry point (see pyproject.toml).

    lmms-eval --model langdc --model_args pretrained=PATH_OR_HUB_ID,max_frames_num=16 --tasks mvbench ...

The model class is `lmms_eval_langdc.model.LangDC`; it loads the checkpoint with `AutoModel.from_pretrained(...,
trust_remote_code=True)`, so the remote code never depends on this package.
"""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


def manifests():
    """Entry-point payload: the `langdc` model manifest (lmms-eval `ModelRegistryV2.load_entrypoint_manifests`)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id="langdc", simple_class_path="lmms_eval_langdc.model.LangDC")]

"""Ad hoc (not a repo tool): v31's LLM side (runs/v35/stage2b) with v36's longer-trained tubelet expert."""
import shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
src, expert_src, out = Path("runs/v35/stage2b"), Path("runs/v36/stage2"), Path("runs/v37/init")
shutil.copytree(src, out, ignore=shutil.ignore_patterns("trainer", "model.safetensors"), dirs_exist_ok=True)
weights = load_file(src / "model.safetensors")
expert = load_file(expert_src / "model.safetensors")
taken = [k for k in weights if k.split(".")[0] in ("expert", "expert_projector")]
for k in taken:
    weights[k] = expert[k]
save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
print(len(taken), "expert tensors from", expert_src)

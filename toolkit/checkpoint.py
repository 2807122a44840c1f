"""Self-describing safetensors checkpoints and resume files. No pickle anywhere.

A checkpoint holds the weights of G, E and D (keys ``generator.*``, ``encoder.*``,
``discriminator.*``) and, under the metadata key ``toolkit``, a JSON document with the
resolved recipe, the latent spec, the image shape, the step, the plugins that built it and
the versions. A resume file adds the optimiser states, the RNG states and the sampler state.
Both are written atomically: a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from . import __version__
from .errors import CheckpointError
from .files import atomic_write

FORMAT = 1
META_KEY = "toolkit"


def versions() -> dict:
    return {"toolkit": __version__, "torch": torch.__version__, "python": platform.python_version()}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)}))


def read_meta(path: str | Path) -> dict:
    """The JSON metadata of a toolkit safetensors file, with clear errors for bad files."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, expected a .safetensors file (a run keeps them in checkpoints/)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        head = path.read_bytes()[:2]
        hint = " (it looks like a pickle: only safetensors checkpoints are loaded)" if head[:1] == b"\x80" or head == b"PK" else ""
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint{hint or _truncated(path)}: {exc}") from None
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without toolkit metadata (not written by toolkit)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt toolkit metadata: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, this toolkit reads {FORMAT}")
    return meta


def _truncated(path: Path) -> str:
    """`` (truncated: N of M bytes)`` when the file is shorter than its safetensors header says."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size)) if size < 100_000_000 else {}
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        have, want = path.stat().st_size, 8 + size + end
    except Exception:  # not even a readable header: nothing more to say
        return ""
    return f" (truncated: {have:,} of {want:,} bytes)" if have < want else ""


def read_tensors(path: str | Path, device="cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read tensors (truncated or corrupt?): {exc}") from None


def checkpoint_meta(recipe, spec, image_shape, step: int, plugins: dict) -> dict:
    return {
        "format": FORMAT,
        "kind": "checkpoint",
        "recipe": recipe.model_dump(mode="json"),
        "latent": spec.to_dict(),
        "image_shape": list(image_shape),
        "step": step,
        "plugins": plugins,
        "provides": provided_by(recipe),
        "versions": versions(),
    }


def provided_by(recipe) -> dict:
    """Which plugin registered each dataset, network and loss term the recipe uses:
    ``{"dataset": {"mnist": "data"}, "network": {...}, "loss": {...}}``."""
    from .errors import ToolkitError
    from .plugins import registry

    used = {"dataset": [recipe.data.dataset], "network": [recipe.model.network], "loss": list(recipe.losses)}
    out: dict = {}
    for kind, names in used.items():
        for name in names:
            try:
                out.setdefault(kind, {})[name] = registry(kind).get(name).plugin
            except ToolkitError:
                continue
    return out


def missing_plugin(meta: dict, kind: str, name: str) -> str:
    """Why ``kind`` ``name`` of a checkpoint or resume file cannot be built here, naming the plugin
    and distribution it came from (for files that record it), else every plugin the file was made with."""
    plugin = meta.get("provides", {}).get(kind, {}).get(name)
    plugins = meta.get("plugins", {})
    if plugin is not None:
        dist = plugins.get(plugin, "")
        install = f"; install {dist.split()[0]}" if dist and not dist.startswith("(") else ""
        return (f"{kind} '{name}' came from plugin '{plugin}'" + (f" ({dist})" if dist else "")
                + f", which is not installed here or was skipped (see toolkit plugins){install}")
    needed = ", ".join(f"{k} ({v})" for k, v in plugins.items()) or "none recorded"
    return f"{kind} '{name}' is not registered here; the file was made with plugins: {needed}"


def save_checkpoint(path: Path, networks, meta: dict) -> None:
    write_safetensors(path, networks.state_dict(), meta)


# -- optimiser state as flat tensors + JSON --------------------------------------------
def flatten_optimizer(prefix: str, optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(prefix: str, tensors: dict, info: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    for name, value in info["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": info["param_groups"]}

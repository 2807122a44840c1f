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
from .errors import CheckpointError, exception_line, files_like
from .files import atomic_write

FORMAT = 1
META_KEY = "toolkit"


def versions() -> dict:
    return {"toolkit": __version__, "torch": torch.__version__, "python": platform.python_version()}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)}))


def _in_run_folder(folder: Path) -> str:
    """Which files of a run folder to give instead of the folder: its newest step checkpoint and,
    when there is one, the best."""
    steps = sorted((folder / "checkpoints").glob("step-*.safetensors"))
    if not steps:
        return " (a run keeps them in checkpoints/)"
    best = folder / "best.safetensors"
    also = f", or {best} (the lowest generator error)" if best.is_file() else ""
    return f"; this run's newest: {steps[-1]}{also}"


def read_meta(path: str | Path) -> dict:
    """The JSON metadata of a toolkit safetensors file, with clear errors for bad files."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, expected a .safetensors file{_in_run_folder(path)}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}{files_like(path, ('.safetensors',), 'checkpoints')}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(unreadable(path, exc)) from None
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without toolkit metadata (not written by toolkit)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt toolkit metadata: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, this toolkit reads {FORMAT}")
    return meta


# The largest header the safetensors library reads (its MAX_HEADER_SIZE): a longer one means
# the first 8 bytes are not a header length, so the file is not safetensors at all.
MAX_HEADER = 100_000_000
EXPECTED = "expected a .safetensors checkpoint written by toolkit train, or a classifier written by toolkit classifier train"
MAGIC = {b"\x89PNG\r\n\x1a\n": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
         b"BM": "a BMP image", b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image"}


def unreadable(path: str | Path, exc: Exception) -> str:
    """Why safetensors cannot open ``path``, as one line: not a safetensors file at all (empty,
    an image, text, a pickle: what it is and what is valid), truncated (``N of M bytes``: a copy
    or download cut short) or otherwise damaged. Reads only the file's first bytes; never unpickles."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head, start = f.read(8), f.read(512)
            length = int.from_bytes(head, "little") if len(head) == 8 else 0
            if 0 < length <= MAX_HEADER and start[:1] == b"{":  # how a safetensors file starts: its damage is the message
                header = (start + f.read(max(0, length - len(start))))[:length]
                return f"{path}: not a readable safetensors checkpoint{_damage(size, length, header) or f': {exc}'}"
    except OSError as error:
        return f"{path}: cannot read the file: {error.strerror or error}"
    what, note = _what(head + start, size)
    return f"{path}: {what}, not a readable safetensors checkpoint{note} ({EXPECTED})"


def _damage(size: int, length: int, header: bytes) -> str:
    """`` (truncated: N of M bytes)...`` or `` (corrupt header: ...)`` for a file that starts as safetensors does."""
    cut = ": the copy or download was cut short"
    if len(header) < length:
        return f" (truncated: {size:,} of at least {8 + length:,} bytes){cut}"
    try:
        tensors = json.loads(header)
        end = max((v["data_offsets"][1] for k, v in tensors.items() if k != "__metadata__"), default=0)
    except AttributeError:
        return " (corrupt header: not a JSON object)"
    except Exception as error:  # not JSON, or JSON that is not a safetensors header
        return f" (corrupt header: {exception_line(error)})"
    return f" (truncated: {size:,} of {8 + length + end:,} bytes){cut}" if size < 8 + length + end else ""


def _what(start: bytes, size: int) -> tuple[str, str]:
    """``(what the file is, a note)`` for a file that is not safetensors, from its first bytes."""
    if size == 0:
        return "an empty file (0 bytes)", ""
    for magic, name in MAGIC.items():
        if start.startswith(magic):
            return name, ""
    if start[:4] == b"RIFF" and start[8:12] == b"WEBP":
        return "a WebP image", ""
    if start[:1] == b"\x80" or start[:2] == b"PK":
        return "it looks like a pickle (torch.save)", ": only safetensors checkpoints are loaded, never pickles"
    if start.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer", ": fetch the file itself with git lfs pull"
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError as error:  # a character cut by the end of what was read is still text
        text = start[: error.start].decode("utf-8") if error.start >= len(start) - 3 else ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        return "a text file", ""
    return "a file of another format", ""


def read_tensors(path: str | Path, device="cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:
        raise CheckpointError(unreadable(path, exc)) from None


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

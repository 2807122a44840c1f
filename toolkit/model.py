"""A trained model, loaded from nothing but its checkpoint: encode, edit, decode.

    from toolkit.model import load_model
    model = load_model("runs/quickstart-.../checkpoints/step-003000.safetensors")
    images = model.generate(16, {"item": "trouser"})
    edited = model.translate(images, {"item": "bag"})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError

from .checkpoint import missing_plugin, read_meta, read_tensors
from .errors import CheckpointError, ToolkitError
from .images import smooth
from .latent import LatentSpec
from .networks import Networks, build_networks
from .recipe import Recipe, format_validation_error
from .rundir import RunDir


@dataclass
class Model:
    spec: LatentSpec
    networks: Networks
    recipe: Recipe
    image_shape: tuple[int, int, int]
    step: int
    path: Path | None = None
    meta: dict | None = None  # the checkpoint's metadata (plugins it was made with)

    def load_data(self, split: str):
        """The ``split`` of the dataset the model was trained on; a missing dataset plugin is named."""
        from .data import load_dataset
        from .plugins import registry

        name = self.recipe.data.dataset
        if name not in registry("dataset"):
            where = f"{self.path}: " if self.path else ""
            raise CheckpointError(where + missing_plugin(self.meta or {}, "dataset", name))
        return load_dataset(self.recipe, split)

    @property
    def device(self) -> torch.device:
        return next(self.networks.parameters()).device

    def _values(self, values) -> dict:
        """``['item=bag']`` or ``{'item': 'bag' | 8, 'c1': 0.5}`` -> checked values.

        In a dict an ``int`` is a class position and text is read as on the command line
        (a class name; see :meth:`toolkit.latent.Variable.class_index`).
        """
        if not values:
            return {}
        return self.spec.parse_assignments(values)

    @torch.no_grad()
    def sample_z(self, n: int, values=None, seed: int | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.spec.sample(n, generator=g)
        return self.spec.assign(z, self._values(values)).to(self.device)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.networks.generator(z.to(self.device)).cpu()

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] -> codes (soft categorical parts)."""
        if tuple(images.shape[1:]) != self.image_shape:
            raise ToolkitError(f"the model takes images of shape {self.image_shape}, got {tuple(images.shape[1:])}")
        return self.spec.code(self.networks.encoder(images.to(self.device))).cpu()

    def generate(self, n: int, values=None, seed: int | None = None) -> torch.Tensor:
        return self.decode(self.sample_z(n, values, seed))

    def translate(self, images: torch.Tensor, values, strength: float = 1.0, keep_details: bool = False) -> torch.Tensor:
        """Encode, set ``values``, decode.

        ``strength``: how far past one-hot the set classes go (:meth:`LatentSpec.assign`).
        ``keep_details``: return the input plus the model's edit, ``x + smooth(G(z') - G(z))``,
        instead of ``G(z')``, so what the model does not reconstruct (identity, background,
        sharpness) stays; the edit is smoothed (:func:`toolkit.images.smooth`) to drop the
        generator's pixel noise. Suited to attribute edits, not to changing what the whole
        image shows.
        """
        return self.translations(images, [values], strength, keep_details)[0]

    def translations(self, images: torch.Tensor, settings: list, strength: float = 1.0,
                     keep_details: bool = False) -> list[torch.Tensor]:
        """:meth:`translate` for several settings of the same images (encoded once)."""
        z = self.encode(images)
        base = self.decode(z) if keep_details else None
        out = []
        for values in settings:
            edited = self.decode(self.spec.assign(z, self._values(values), strength))
            out.append(edited if base is None else (images.cpu() + smooth(edited - base)).clamp(0.0, 1.0))
        return out

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
        """Linear interpolation of the codes of ``a`` and ``b`` (each ``(N, C, H, W)``)."""
        za, zb = self.encode(a), self.encode(b)
        alphas = torch.linspace(0, 1, steps)
        z = torch.stack([(1 - t) * za + t * zb for t in alphas], dim=1)  # (N, steps, dim)
        return self.decode(z.flatten(0, 1))

    @torch.no_grad()
    def classify(self, images: torch.Tensor, name: str) -> torch.Tensor:
        """The encoder's class index for categorical variable ``name``."""
        raw = self.networks.encoder(images.to(self.device))
        return raw[:, self.spec.slices[name]].argmax(1).cpu()


def load_model(path: str | Path, device: str = "cpu") -> Model:
    """Build the networks named in the checkpoint's metadata and load its weights."""
    path = Path(path)
    try:
        meta = read_meta(path)
    except CheckpointError as exc:
        raise _offer_older(path, exc) from None
    if meta.get("kind", "checkpoint") != "checkpoint":
        raise CheckpointError(f"{path}: a toolkit {meta['kind']} file, not a model checkpoint "
                              "(a run keeps those in its checkpoints/ folder)")
    try:
        recipe = Recipe.model_validate(meta["recipe"])
        spec = LatentSpec.from_dict(meta["latent"])
        image_shape = tuple(meta["image_shape"])
    except KeyError as exc:
        raise CheckpointError(f"{path}: incomplete toolkit metadata: no {exc}") from None
    except ValidationError as exc:
        raise CheckpointError(f"{path}: its recipe does not validate here (written by another toolkit version?): "
                              f"{format_validation_error(exc, 'recipe', Recipe)}") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: incomplete toolkit metadata: {exc}") from None
    from .plugins import registry

    if recipe.model.network not in registry("network"):
        raise CheckpointError(f"{path}: {missing_plugin(meta, 'network', recipe.model.network)}")
    try:
        networks = build_networks(recipe.model.network, spec, image_shape, recipe.model.options)
    except ToolkitError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    try:
        tensors = read_tensors(path)
    except CheckpointError as exc:
        raise _offer_older(path, exc) from None
    expected = networks.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = (missing and f"missing {missing[:3]}") or (unexpected and f"unexpected {unexpected[:3]}") or f"shape of {wrong[:3]}"
        raise CheckpointError(f"{path}: weights do not match network '{recipe.model.network}': {detail}")
    networks.load_state_dict(tensors)
    networks.to(device).eval()
    return Model(spec, networks, recipe, image_shape, int(meta.get("step", 0)), path, meta)


def _offer_older(path: Path, error: CheckpointError) -> CheckpointError:
    """``error``, plus the newest older checkpoint of the same run that reads (a run's newest
    checkpoint is the one a crash or a full disk damages); nothing for a path that does not exist
    (:func:`toolkit.checkpoint.read_meta` names the checkpoints its folder holds)."""
    if not path.exists():
        return error
    run = RunDir(path.parent.parent)
    if path.parent.name != run.checkpoints.name or not path.name.startswith("step-"):
        return error
    for older in reversed([p for p in run.checkpoint_files() if p.name < path.name]):
        try:
            if read_meta(older).get("kind", "checkpoint") == "checkpoint":
                return CheckpointError(f"{error}; an older checkpoint of this run reads: -c {older}")
        except CheckpointError:
            continue
    return error


def read_images(model, paths: list[Path]):
    """Image files as a batch ``(N, C, H, W)`` in [0, 1] shaped for ``model`` (converted, EXIF-upright,
    framed like its training data); raises :class:`toolkit.errors.ImageError` for a bad file."""
    import torch

    from .images import load_image

    channels, height, width = model.image_shape
    crop = input_crop(model.recipe)
    return torch.stack([load_image(p, channels, (height, width), crop) for p in paths])


def input_crop(recipe):
    """The training data's own framing of input images, when its dataset plugin declares one
    (``register(..., input_crop="module:function")``, called as ``function(options, width, height)``);
    an unexpected exception inside it is one line naming the entry and its plugin."""
    from .errors import PluginError
    from .plugins import registry

    if recipe.data.dataset not in registry("dataset"):
        return None
    entry = registry("dataset").get(recipe.data.dataset)
    crop = entry.resolve_extra("input_crop")
    if crop is None:
        return None
    options = entry.parse_options(recipe.data.options, "data.options")

    def framed(width: int, height: int):
        try:
            box = tuple(crop(options, width, height))
            if len(box) != 4:
                raise ValueError(f"returned {len(box)} numbers, expected (left, top, right, bottom)")
            return box
        except ToolkitError:
            raise
        except Exception as exc:  # inside the plugin: one line naming it (traceback with --debug)
            raise PluginError(f"{entry.origin()} input_crop failed: {type(exc).__name__}: {exc}") from exc

    return framed

"""Recipes the networks or the data cannot run, refused before a run starts.

``toolkit recipe validate``, ``toolkit train --dry-run`` and ``toolkit train`` apply the same
checks, in one place, before any run folder is made or batch memory taken:

- :func:`data_problems` (needs the training split and the latent spec): a batch larger than
  the training set; fewer labels than the classes of a supervised variable (a class would never
  be labeled); more labels than labeled images; a supervised attribute without any label or with
  fewer than 2 classes;
- :func:`network_problems` (needs the built networks): BatchNorm layers with a batch of 1
  (normalising one sample gives zeros, and PyTorch refuses it in training); and
  :func:`check_networks` runs one forward pass of two images to check the shapes G, E and D
  return (a plugin that gets them wrong is named);
- the recipe's own rules live in its pydantic models (:mod:`toolkit.recipe`).

Each problem is one sentence naming the recipe key and what would work; a :class:`RecipeError`
joins them on one line.
"""

from __future__ import annotations

from .errors import RecipeError


def data_problems(recipe, data, spec) -> list[str]:
    """What the training split ``data`` cannot give this recipe (empty when it runs)."""
    problems = []
    n, batch = len(data), recipe.optim.batch_size
    if batch > n:
        problems.append(f"optim.batch_size: {batch:,} is larger than the training set ({n:,} images of dataset "
                        f"'{recipe.data.dataset}'); use at most {n}")
    labels = recipe.data.labels
    for v in spec.supervised:
        where = f"latent.variables.{v.name}"
        lab = data.labels.get(v.label)
        if lab is None:
            continue  # build_spec names a missing attribute
        known = int((lab >= 0).sum())
        if len(v.classes) < 2:
            problems.append(f"{where}: attribute '{v.label}' has {len(v.classes)} class ({', '.join(v.classes)}); "
                            f"a categorical variable needs at least 2")
            continue
        if known == 0 and labels != 0:
            problems.append(f"{where}: attribute '{v.label}' has no labeled image in the training set")
            continue
        if labels == "all" or labels == 0:
            continue
        if labels < len(v.classes):
            problems.append(f"data.labels: {labels} labeled images cannot cover the {len(v.classes)} classes of "
                            f"'{v.name}' (attribute '{v.label}'): every class needs at least one; use at least "
                            f"{len(v.classes)}, 'all', or 0 for none")
    first = spec.supervised[0] if spec.supervised else None
    if first is not None and isinstance(labels, int) and labels > 0 and first.label in data.labels:
        known = int((data.labels[first.label] >= 0).sum())
        if 0 < known < labels:
            problems.append(f"data.labels: {labels:,} labeled images asked for, but only {known:,} of the {n:,} "
                            f"training images have a label for '{first.label}'; use at most {known} or 'all'")
    return problems


def network_problems(recipe, networks, world_size: int = 1) -> list[str]:
    """What the built networks cannot do with this recipe's batch (empty when they can)."""
    import torch

    norms = [name for name, m in networks.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms and recipe.optim.batch_size < 2:
        return [f"optim.batch_size: {recipe.optim.batch_size} with network '{recipe.model.network}', which has "
                f"BatchNorm layers ({norms[0]}, ...): BatchNorm needs at least 2 images per batch; use 2 or more"]
    return []


def _probe(networks, spec, image_shape) -> list[str]:
    """One forward pass of two images in eval mode (no gradients, no random numbers drawn, no
    statistics updated): the shapes the trainer relies on, G(z) ``(B, C, H, W)``, E(x)
    ``(B, spec.dim)``, D(x, z) ``(B, 1)``."""
    import torch

    modes = {m: m.training for m in networks.modules()}
    device = next(iter(networks.parameters()), torch.zeros(())).device
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            networks.eval()
            z = torch.zeros(2, spec.dim, device=device)
            x = networks.generator(z)
            if tuple(x.shape) != (2, *image_shape):
                return [f"G(z) has shape {tuple(x.shape)}, expected {(2, *image_shape)} (images of the data set)"]
            raw = networks.encoder(torch.zeros(2, *image_shape, device=device))
            if tuple(raw.shape) != (2, spec.dim):
                return [f"E(x) has shape {tuple(raw.shape)}, expected {(2, spec.dim)} (the latent spec's {spec.dim} numbers)"]
            logits = networks.discriminator(x, z)
            if tuple(logits.shape) != (2, 1):
                return [f"D(x, z) has shape {tuple(logits.shape)}, expected (2, 1)"]
    finally:
        for m, training in modes.items():
            m.training = training
    return []


def refuse(problems: list[str], source: str = "") -> None:
    """Raise one :class:`RecipeError` line for ``problems`` (nothing when there are none)."""
    if problems:
        prefix = f"{source}: " if source else ""
        raise RecipeError(prefix + "; ".join(problems))


def check_data(recipe, data, spec, source: str = "") -> None:
    refuse(data_problems(recipe, data, spec), source)


def check_networks(recipe, networks, world_size: int = 1, source: str = "", spec=None, image_shape=None) -> None:
    """Refuse what the networks cannot run; a shape they get wrong names the network and its plugin."""
    from .errors import PluginError, ToolkitError, exception_line
    from .plugins import registry

    def origin() -> str:
        try:
            return registry("network").get(recipe.model.network).origin()
        except ToolkitError:
            return f"network '{recipe.model.network}'"

    problems = network_problems(recipe, networks, world_size)
    refuse(problems, source)
    if spec is None:
        return
    try:
        wrong = _probe(networks, spec, tuple(image_shape))
    except ToolkitError:
        raise
    except Exception as exc:
        raise PluginError(f"{origin()} failed a forward pass of 2 images: {exception_line(exc)}") from exc
    if wrong:
        raise PluginError(f"{origin()}: {wrong[0]}")


def check_runnable(recipe, source: str = "") -> dict:
    """Everything ``toolkit train`` checks before it starts, without training: load the training
    split, build the latent spec, choose the labeled subset, build the networks (on the CPU).

    Returns a summary for ``toolkit recipe validate``, with what
    :func:`toolkit.train.check_loss_terms` needs (``networks``, ``data``, ``labels``).
    """
    from .data import load_dataset, select_labels
    from .errors import ToolkitError
    from .latent import build_spec
    from .networks import build_networks

    try:
        data = load_dataset(recipe, "train")
        spec = build_spec(recipe, data)
        check_data(recipe, data, spec)
        supervised = {v.label: v.size for v in spec.supervised}
        seed = recipe.data.label_seed if recipe.data.label_seed is not None else recipe.seed
        chosen = select_labels(data, supervised, recipe.data.labels, seed)
        networks = build_networks(recipe.model.network, spec, data.shape, recipe.model.options)
        check_networks(recipe, networks, spec=spec, image_shape=data.shape)
    except RecipeError as exc:
        if source and not str(exc).startswith(source):
            raise RecipeError(f"{source}: {exc}") from None
        raise
    except ToolkitError as exc:
        raise type(exc)(f"{source}: {exc}" if source else str(exc)) from exc
    return {"images": len(data), "shape": data.shape, "spec": spec, "networks": networks, "data": data,
            "labels": {v.name: chosen[v.label] for v in spec.supervised}}

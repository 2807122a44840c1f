"""Reference classifiers: train one on a data set's attribute, save it, judge images with it.

A classifier file is a safetensors file of the network's weights; its metadata records the
data set and attribute, the class names, the network, the test accuracy and ``data_hash``
(sha256 of the test images and labels that measured it), so an evaluation can say exactly
which classifier and which data judged it (:func:`classifier_hash` names the file itself).
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import augment
from . import checkpoint as ckpt
from .data import ImageSet, balancing_weights, derive_attributes
from .distributed import pick_device
from .errors import CheckpointError, ToolkitError
from .plugins import registry
from .registry import options_dict

KIND = "classifier"
SHIFT = 2  # augmentation: random translation of up to this many pixels


def data_hash(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 hex of uint8 images ``(N, C, H, W)`` followed by their int64 labels (little endian)."""
    h = hashlib.sha256()
    h.update(images.detach().to("cpu", torch.uint8).contiguous().numpy().tobytes())
    h.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().astype("<i8").tobytes())
    return h.hexdigest()


def classifier_hash(path: str | Path) -> str:
    """sha256 hex of the classifier file (to pin it in an evaluation protocol)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_network() -> str:
    """The classifier network to use when none is named: the one that is registered."""
    names = registry(KIND).names()
    if len(names) == 1:
        return names[0]
    if not names:
        raise ToolkitError("no classifier network is registered: install a plugin that registers one (see toolkit plugins)")
    raise ToolkitError(f"several classifier networks are registered ({', '.join(names)}): name one (--network)")


def build_classifier(network: str, image_shape, num_classes: int, options=None) -> torch.nn.Module:
    """Build a registered classifier network for images ``(C, H, W)`` and ``num_classes``."""
    entry = registry(KIND).get(network)
    return entry.build(tuple(image_shape), num_classes, options=options, where="network_options")  # checked there


def _labeled(data: ImageSet, attribute: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    labels = data.attribute(attribute)
    rows = (labels >= 0).nonzero().flatten()
    if not len(rows):
        raise ToolkitError(f"the {split} split has no labeled images for attribute '{attribute}'")
    return data.images[rows], labels[rows]


def shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own random (dy, dx) in [-max_shift, max_shift], zero-filled."""
    if max_shift <= 0:
        return images
    b, c, h, w = images.shape
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b, 1), generator=generator).to(images.device)
    rows = (torch.arange(h, device=images.device) + dy)[:, None, :, None]
    cols = (torch.arange(w, device=images.device) + dx)[:, None, None, :]
    padded = F.pad(images, (max_shift,) * 4)
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def training_view(images: torch.Tensor, max_shift: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """What the classifier trains on: ``images`` ``(B, C, H, W)`` in [0, 1], each shifted by up to
    ``max_shift`` px (:func:`shift`) and, with ``flip``, mirrored left-right with probability 0.5
    (:func:`toolkit.augment.flip`)."""
    x = shift(images, max_shift, generator)
    return augment.flip(x, 0.5, generator) if flip else x


def negatives(images: torch.Tensor, labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` images in [0, 1] that show no class, made from a batch of real ``images``.

    A third each (the judge's "none of them" class): real images under a heavy Gaussian blur
    (sigma 2 to 3.5 px: a blob with the object's outline), noise (uniform, half of it blurred
    at sigma 1), and the mean of two images of different classes (a ghost of both). The blur is
    torchvision's ``gaussian_blur``. Images ``(B, C, H, W)`` in [0, 1]; ``labels`` their classes.
    """
    from torchvision.transforms.v2 import functional as TF

    if count <= 0:
        return images[:0]
    b, _, h, w = images.shape
    dev = images.device
    parts = [count - 2 * (count // 3), count // 3, count // 3]
    pick = torch.randint(0, b, (parts[0],), generator=generator).to(dev)
    sigma = 2.0 + 1.5 * float(torch.rand((), generator=generator))
    kernel = min(2 * int(3 * sigma) + 1, (min(h, w) - 1) | 1)
    blurred = TF.gaussian_blur(images[pick], [kernel, kernel], [sigma, sigma])
    noise = torch.rand(parts[1], *images.shape[1:], generator=generator).to(dev)
    half = len(noise) // 2
    if half:
        noise[:half] = TF.gaussian_blur(noise[:half], [min(5, (min(h, w) - 1) | 1)] * 2, [1.0, 1.0])
    first = torch.randint(0, b, (parts[2],), generator=generator).to(dev)
    second = torch.randint(0, b, (parts[2],), generator=generator).to(dev)
    other = labels[first] != labels[second]  # same-class pairs are not ghosts: use a blob instead
    blends = torch.where(other[:, None, None, None], (images[first] + images[second]) / 2,
                         TF.gaussian_blur(images[first], [kernel, kernel], [sigma, sigma]))
    return torch.cat([blurred, noise, blends])


def soften(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A light Gaussian blur (sigma 0.5 to 1 px, one draw per call) of a random half of the
    images: a slightly soft drawing of an item is still that item for the judge."""
    from torchvision.transforms.v2 import functional as TF

    sigma = 0.5 + 0.5 * float(torch.rand((), generator=generator))
    chosen = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
    soft = TF.gaussian_blur(images, [5, 5], [sigma, sigma]) if min(images.shape[-2:]) >= 5 else images
    return torch.where(chosen[:, None, None, None], soft, images)


def balanced_order(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` row indices (int64) drawn with replacement so that each class present in
    ``labels`` (int64 ``(N,)``, values >= 0) is drawn equally often on average: the
    class-balanced sampler (each row weighted by 1 / its class's count).

    A judge trained on plain batches of an imbalanced attribute learns to answer the common
    class: on the CelebA subset about 4% of faces are pale, and a pale judge that always says
    "no" scores 96% while never recognising a pale face.
    """
    return torch.multinomial(balancing_weights([labels.cpu()]), count, replacement=True, generator=generator)


def class_accuracy(predicted: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict[str, float | None]:
    """Recall per class: the share of the class's images predicted as that class (``None``
    for a class without images). Their mean over the classes present is the balanced accuracy."""
    result: dict[str, float | None] = {}
    for k, name in enumerate(classes):
        rows = labels == k
        result[name] = float((predicted[rows] == k).float().mean()) if rows.any() else None
    return result


def balanced_accuracy(per_class: dict[str, float | None]) -> float:
    """Mean of the per-class recalls of :func:`class_accuracy` over the classes with images."""
    present = [v for v in per_class.values() if v is not None]
    return sum(present) / len(present) if present else float("nan")


@torch.no_grad()
def predict(module: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Class indices (int64, on the images' device) for images in [0, 1] (or uint8 0-255).

    A classifier trained with ``reject`` has one output more than classes: where it wins,
    the prediction is -1 ("no class"), which never matches a requested class.
    """
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        out = []
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            out.append(module(x).argmax(1))
        rejected = getattr(module, "reject_index", None)
        if rejected is not None:
            out = [torch.where(p == rejected, -1, p) for p in out]
        result = torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=device)
    finally:
        module.train(was_training)
    return result.to(images.device)


def train_classifier(
    dataset: str,
    dataset_options: dict | None,
    attribute: str,
    network: str | None = None,
    network_options: dict | None = None,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device="cpu",
    progress=None,
    limit: int | None = None,
    max_shift: int = SHIFT,
    attributes: dict | None = None,
    reject: bool = True,
    balance: bool = True,
    flip: bool = False,
) -> tuple[torch.nn.Module, dict]:
    """Train ``network`` to predict ``attribute`` of ``dataset``; returns ``(module in eval mode, meta)``.

    Uses only labeled rows; Adam with cosine decay; random shifts of up to ``max_shift`` px;
    the test accuracy is measured once, at the end. ``limit`` caps the training images (a
    random subset drawn from ``seed``). ``progress(step, total, info)`` is called as it trains.

    With ``reject`` (the default) the classifier has one more output, "no class", trained on
    :func:`negatives` (a quarter of each batch more): blobs, noise and ghosts of two classes,
    so that a judge of generated images does not call a blurred blob a class; half of the real
    images are lightly blurred (:func:`soften`), so a soft but clear drawing keeps its class.

    With ``balance`` (the default) each epoch draws its images with :func:`balanced_order`, so
    every class is seen equally often however rare it is; without it, each epoch is a
    permutation of the training images. ``meta`` records the test accuracy, the accuracy per
    class (``class_accuracy``) and their mean (``balanced_accuracy``): a judge is only as good
    as its worst class.

    With ``flip`` each training image is also mirrored left-right with probability 0.5
    (:func:`training_view`): for data whose classes a mirror image keeps (faces, clothes; not
    digits), it doubles the poses the judge sees.
    """
    if epochs < 1 or batch_size < 2 or (limit is not None and limit < 2):
        raise ToolkitError(f"epochs must be >= 1, batch_size and limit >= 2 (got {epochs}, {batch_size}, {limit})")
    device = pick_device(device) if isinstance(device, str) else torch.device(device)
    network = network or default_network()
    parsed_net = registry(KIND).get(network).parse_options(network_options, where="network_options")
    entry = registry("dataset").get(dataset)
    options = entry.parse_options(dataset_options, where="dataset_options")
    train = derive_attributes(entry.build(options=options, split="train"), attributes or {})
    train.attribute(attribute)  # a wrong attribute fails before the test split is read
    test = derive_attributes(entry.build(options=options, split="test"), attributes or {})
    classes = list(train.classes[attribute])
    images, labels = _labeled(train, attribute, "train")
    if len(images) < 2:
        raise ToolkitError(f"attribute '{attribute}' has {len(images)} labeled training image(s); at least 2 are needed")
    test_images, test_labels = _labeled(test, attribute, "test")
    if test.shape != train.shape:
        raise ToolkitError(f"test images are {test.shape}, training images {train.shape}")

    g = torch.Generator().manual_seed(seed)
    if limit is not None and limit < len(images):
        rows = torch.randperm(len(images), generator=g)[:limit]
        images, labels = images[rows], labels[rows]
    torch.manual_seed(seed)
    module = build_classifier(network, train.shape, len(classes) + int(reject), parsed_net).to(device)
    if reject:
        module.reject_index = len(classes)

    images, labels = images.to(device), labels.to(device)
    n = len(images)
    per_epoch = max(1, n // batch_size)  # fewer images than a batch: one batch of all
    total = epochs * per_epoch
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    started, step, loss_sum = time.time(), 0, torch.zeros((), device=device)
    module.train()
    for epoch in range(1, epochs + 1):
        order = (balanced_order(labels, n, g) if balance else torch.randperm(n, generator=g)).to(device)
        for i in range(per_epoch):  # full batches only (BatchNorm needs >= 2 images)
            index = order[i * batch_size : (i + 1) * batch_size]
            x, y = training_view(images[index].float() / 255, max_shift, flip, g), labels[index]
            if reject:
                x = soften(x, g)
                fakes = negatives(x, y, len(index) // 4, g)
                x = torch.cat([x, fakes])
                y = torch.cat([y, torch.full((len(fakes),), len(classes), device=device, dtype=y.dtype)])
            loss = F.cross_entropy(module(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            loss_sum += loss.detach()
            if progress is not None and (step % 50 == 0 or i == per_epoch - 1):
                progress(step, total, {"epoch": epoch, "loss": float(loss_sum) / (i + 1)})
        loss_sum.zero_()
    module.eval()
    predicted = predict(module, test_images.to(device)).cpu()
    accuracy = (predicted == test_labels).sum().item() / len(test_labels)
    per_class = class_accuracy(predicted, test_labels, classes)
    meta = {
        "format": ckpt.FORMAT,
        "kind": KIND,
        "dataset": dataset,
        "dataset_options": options_dict(options),
        "attributes": {k: options_dict(v) for k, v in (attributes or {}).items()},
        "attribute": attribute,
        "classes": classes,
        "reject": reject,
        "image_shape": list(train.shape),
        "network": network,
        "network_options": options_dict(parsed_net),
        "test_accuracy": accuracy,
        "balanced_accuracy": balanced_accuracy(per_class),
        "class_accuracy": per_class,
        "balance": balance,
        "flip": flip,
        "test_images": len(test_labels),
        "data_hash": data_hash(test_images, test_labels),
        "epochs": epochs,
        "seed": seed,
        "training": {"train_images": n, "batch_size": batch_size, "lr": lr, "max_shift": max_shift,
                     "seconds": round(time.time() - started, 1), "device": str(device)},
        "versions": ckpt.versions(),
    }
    return module, meta


def save_classifier(path: str | Path, module: torch.nn.Module, meta: dict) -> Path:
    """Write the weights and ``meta`` as one safetensors file, atomically."""
    path = Path(path)
    ckpt.write_safetensors(path, module.state_dict(), meta)
    return path


def read_classifier_meta(path: str | Path) -> dict:
    """The metadata of a classifier file; other toolkit files are refused."""
    meta = ckpt.read_meta(path)
    if meta.get("kind") != KIND:
        raise CheckpointError(
            f"{path}: a toolkit {meta.get('kind', 'unknown')} file, not a classifier "
            "(make one with: toolkit classifier train DATASET --attribute ATTR)"
        )
    return meta


def load_classifier(path: str | Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """``(module in eval mode, meta)`` from a file written by :func:`save_classifier`."""
    meta = read_classifier_meta(path)
    try:
        reject = bool(meta.get("reject", False))
        module = build_classifier(meta["network"], meta["image_shape"], len(meta["classes"]) + reject, meta["network_options"])
    except KeyError as exc:
        raise CheckpointError(f"{path}: classifier metadata lacks {exc}") from None
    if reject:
        module.reject_index = len(meta["classes"])
    try:
        module.load_state_dict(ckpt.read_tensors(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit classifier '{meta['network']}': {first}") from None
    return module.to(device).eval(), meta

"""The latent spec: the contract between data, networks, losses and the command line.

Z = (u, c). ``u`` is unstructured noise; ``c`` is a list of named variables, each
categorical (one-hot over named classes) or continuous (one number). The vector layout is
``[u | c_1 | c_2 | ...]`` in the declared order.

Priors: ``uniform`` is U(-1, 1), ``normal`` is N(0, 1). Categorical variables are uniform
one-hots. The encoder predicts logits for each categorical variable (softmax gives the soft
code) and a mean for each continuous one; its likelihood is a Gaussian with a fixed standard
deviation of 1, as in the authors' code, so the information term on a continuous variable is
``0.5 * (c - mean)^2`` plus a constant.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import torch

from .errors import LatentError, ToolkitError, did_you_mean

PRIORS = ("uniform", "normal")
# how far beyond the prior's bulk a continuous value may be set (extrapolation is allowed)
VALUE_LIMITS = {"uniform": 2.0, "normal": 4.0}
# the bulk of the prior, what sweeps show: all of U(-1, 1); N(0, 1) within 2 standard deviations
SWEEP_LIMITS = {"uniform": 1.0, "normal": 2.0}


@dataclass
class Variable:
    """One named part of c."""

    name: str
    kind: str  # "categorical" | "continuous"
    classes: list[str] = field(default_factory=list)  # categorical only
    prior: str = "uniform"  # continuous only
    label: str | None = None  # the data attribute that supervises it, if any
    weights: list[float] | None = None  # categorical: the prior's class probabilities (None: uniform)

    @property
    def size(self) -> int:
        return len(self.classes) if self.kind == "categorical" else 1

    def sweep(self, steps: int) -> list[float]:
        """A continuous variable's sweep: ``steps`` evenly spaced values across the bulk of its
        prior (-1 .. 1 for uniform, -2 .. 2 for normal; ``SWEEP_LIMITS``), as every command shows it."""
        limit = SWEEP_LIMITS[self.prior]
        return [round(float(v), 4) for v in torch.linspace(-limit, limit, steps)]

    def class_index(self, value) -> int:
        """The index of a class given by name, or by position where that cannot be mistaken.

        A Python ``int`` is a position (the API: ``{"item": 8}``). Text is matched, in order,
        to a class name as written, to a name in another case (when only one fits), and to a
        numeric class name by value (``1`` = ``1.0`` = ``01``). Text that names no class is read
        as a position only when no class name is a number: with numeric classes (``1, 2, ..., 10``)
        ``--set label=0`` could mean a name or a position, so it is refused, never guessed.
        """
        if isinstance(value, bool):
            raise LatentError(f"'{self.name}' is categorical: expected a class name or position, got {value!r}")
        if isinstance(value, int):
            return self._position(value)
        text = str(value).strip()
        if text in self.classes:
            return self.classes.index(text)
        folded = [k for k, c in enumerate(self.classes) if c.lower() == text.lower()]
        if len(folded) == 1:
            return folded[0]
        number = _number(text)
        numeric = {k: _number(c) for k, c in enumerate(self.classes)}
        if number is not None:
            same = [k for k, x in numeric.items() if x is not None and x == number]
            if len(same) == 1:
                return same[0]
        names = ", ".join(self.classes)
        if any(x is not None and x != k for k, x in numeric.items()):  # a name could be read as a position
            raise LatentError(
                f"'{text}' is not a class of '{self.name}' (classes: {names}); its class names are numbers, "
                f"so a value is read as a name, never as a position"
            )
        try:
            index = int(text)
        except ValueError:
            index = None
        if index is not None:
            return self._position(index)
        raise LatentError(f"'{text}' is not a class of '{self.name}': {did_you_mean(text, self.classes)}")

    def _position(self, index: int) -> int:
        if 0 <= index < len(self.classes):
            return index
        raise LatentError(
            f"'{self.name}' has {len(self.classes)} classes: index {index} is out of range "
            f"(0..{len(self.classes) - 1}; names: {', '.join(self.classes)})"
        )

    def parse_value(self, value) -> float | int:
        """A value for this variable: a class (categorical) or a number (continuous).

        Text comes from the command line; from Python an ``int`` is a class position and a
        ``float`` a continuous value.
        """
        if self.kind == "categorical":
            return self.class_index(value)
        if isinstance(value, bool):
            raise LatentError(f"'{self.name}' is continuous: expected a number, got {value!r}")
        try:
            number = float(value if isinstance(value, (int, float)) else str(value).strip())
        except ValueError:
            raise LatentError(f"'{self.name}' is continuous: expected a number, got '{value}'") from None
        limit = VALUE_LIMITS[self.prior]
        if not math.isfinite(number) or abs(number) > limit:
            raise LatentError(
                f"'{self.name}={value}' is out of range: the prior is {self.prior}, "
                f"values from {-limit:g} to {limit:g} are allowed"
            )
        return number


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number(text: str) -> float | None:
    """``text`` as a finite number when it is written as one (no ``nan``, ``inf`` or ``1_0``)."""
    return float(text) if _NUMBER.match(text.strip()) else None


@dataclass
class LatentSpec:
    """Sizes, priors and names of Z, with sampling, packing and setting by name."""

    u_size: int
    variables: list[Variable]
    u_prior: str = "uniform"

    def __post_init__(self):
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names) or "u" in names:
            raise LatentError(f"latent variable names must be unique and not 'u': {names}")
        self.slices: dict[str, slice] = {"u": slice(0, self.u_size)}
        start = self.u_size
        for v in self.variables:
            self.slices[v.name] = slice(start, start + v.size)
            start += v.size
        self.dim = start

    # -- views ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Variable:
        for v in self.variables:
            if v.name == name:
                return v
        raise LatentError(f"unknown latent variable '{name}': {did_you_mean(name, self.names)}")

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def categorical(self) -> list[Variable]:
        return [v for v in self.variables if v.kind == "categorical"]

    @property
    def continuous(self) -> list[Variable]:
        return [v for v in self.variables if v.kind == "continuous"]

    @property
    def supervised(self) -> list[Variable]:
        return [v for v in self.variables if v.label is not None]

    def class_variable(self) -> Variable | None:
        """The variable that names classes in grids: the first supervised categorical one."""
        for v in self.categorical:
            if v.label is not None:
                return v
        return self.categorical[0] if self.categorical else None

    # -- sampling and packing ------------------------------------------------------------
    def _prior(self, prior: str, shape, generator, device) -> torch.Tensor:
        if prior == "uniform":
            return torch.rand(shape, generator=generator, device=device) * 2 - 1
        return torch.randn(shape, generator=generator, device=device)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Draw ``n`` codes from the prior, shape ``(n, dim)``."""
        parts = [self._prior(self.u_prior, (n, self.u_size), generator, device)]
        for v in self.variables:
            if v.kind == "categorical":
                if v.weights is None:
                    index = torch.randint(v.size, (n,), generator=generator, device=device)
                else:
                    probs = torch.tensor(v.weights, device=device)
                    index = torch.multinomial(probs, n, replacement=True, generator=generator)
                parts.append(torch.nn.functional.one_hot(index, v.size).float())
            else:
                parts.append(self._prior(v.prior, (n, 1), generator, device))
        return torch.cat(parts, dim=1)

    def code(self, raw: torch.Tensor) -> torch.Tensor:
        """Encoder output -> code: softmax over each categorical variable's logits."""
        parts = []
        start = 0
        for name, s in self.slices.items():
            if name != "u" and self[name].kind == "categorical":
                if start < s.start:
                    parts.append(raw[:, start : s.start])
                parts.append(torch.softmax(raw[:, s], dim=1))
                start = s.stop
        if not parts:
            return raw
        if start < self.dim:
            parts.append(raw[:, start:])
        return torch.cat(parts, dim=1)

    def harden(self, z: torch.Tensor) -> torch.Tensor:
        """Code ``(B, dim)`` -> the same code with each categorical part a one-hot of its argmax,
        with the straight-through gradient (Bengio et al. 2013): the forward value is one-hot, the
        backward pass is the soft probabilities' identity. u and continuous parts are unchanged.
        Used for D's view of E(x) (``train.d_code: hard``), so that a real code is one-hot like a
        prior one and D cannot tell real from generated pairs by how confident E is."""
        parts = []
        for name, s in self.slices.items():
            part = z[:, s]
            if name != "u" and self[name].kind == "categorical":
                hard = torch.nn.functional.one_hot(part.argmax(1), part.shape[1]).to(part.dtype)
                part = hard + (part - part.detach())  # exactly one-hot forward
            parts.append(part)
        return torch.cat(parts, dim=1)

    def with_labels(self, z: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        """Code ``(B, dim)`` with each supervised categorical variable of the labeled rows set to
        the one-hot of its label. ``labels``: per variable name, class indices ``(B,)``, -1 = no
        label (that row keeps its code). Variables missing from ``labels`` are unchanged."""
        z = z.clone()
        for v in self.categorical:
            if v.name not in labels:
                continue
            s, index = self.slices[v.name], labels[v.name]
            known = index >= 0
            one_hot = self.labels_to_onehot(v.name, index.clamp(min=0)).to(z.dtype)
            z[:, s] = torch.where(known[:, None], one_hot, z[:, s])
        return z

    def unpack(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split Z into ``{'u': ..., name: ...}``."""
        return {name: z[:, s] for name, s in self.slices.items()}

    def pack(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """Join ``{'u': ..., name: ...}`` (every part) back into Z."""
        missing = [n for n in self.slices if n not in parts]
        if missing:
            raise LatentError(f"cannot pack Z: missing {', '.join(missing)}")
        return torch.cat([parts[n].reshape(len(parts[n]), -1) for n in self.slices], dim=1)

    # -- setting by name -----------------------------------------------------------------
    def parse_assignments(self, assignments: list[str] | str | dict) -> dict[str, float | int]:
        """``['digit=7', 'c1=0.5']`` (or one ``'digit=7'``) -> ``{'digit': 7, 'c1': 0.5}``, with clear errors.

        A dict's values may be text (read as on the command line), an ``int`` (a class position)
        or a ``float`` (a continuous value); see :meth:`Variable.parse_value`.

        Raises:
            LatentError: an item that is not ``VARIABLE=VALUE``, a variable given twice (which one
                was meant cannot be known), an unknown variable or a value it cannot take.
        """
        if isinstance(assignments, dict):
            pairs = list(assignments.items())
        else:
            pairs = []
            for item in [assignments] if isinstance(assignments, str) else assignments:
                name, sep, value = str(item).partition("=")
                if not sep or not name.strip() or not value.strip():
                    raise LatentError(f"--set expects VARIABLE=VALUE, got '{item}' (variables: {', '.join(self.names)})")
                pairs.append((name.strip(), value.strip()))
            names = [name for name, _ in pairs]
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                given = ", ".join(f"{n}={v}" for n, v in pairs if n in twice)
                raise LatentError(f"{', '.join(twice)} set more than once ({given}): give each variable once")
        return {name: self[name].parse_value(value) for name, value in pairs}

    def assign(self, z: torch.Tensor, values: dict[str, float | int], strength: float = 1.0) -> torch.Tensor:
        """A copy of Z with the given variables set (class index or number).

        A class is set one-hot; with ``strength`` s the code is ``1/K + s * (one_hot - 1/K)``
        (s > 1 goes past one-hot, away from the other classes: a stronger edit).
        """
        z = z.clone()
        for name, value in values.items():
            v, s = self[name], self.slices[name]
            if v.kind == "categorical":
                z[:, s] = (1.0 - strength) / v.size
                z[:, s.start + int(value)] += strength
            else:
                z[:, s] = float(value)
        return z

    def with_variables_of(self, z: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """Z's u with every variable taken from ``other``: the code of Z translated to other's codes."""
        return torch.cat([z[:, : self.u_size], other[:, self.u_size :]], dim=1)

    def class_grid(self, style: torch.Tensor, rows_without_class: int = 1) -> torch.Tensor:
        """One row per class of :meth:`class_variable`, the codes of ``style`` ``(columns, dim)``
        repeated in every row (a shared style per column); ``rows_without_class`` plain copies
        when the spec has no categorical variable. Shape ``(rows * columns, dim)``, row-major."""
        var = self.class_variable()
        rows = var.size if var else rows_without_class
        z = style.repeat(rows, 1)
        if var:
            z[:, self.slices[var.name]] = torch.eye(var.size).repeat_interleave(len(style), dim=0)
        return z

    def labels_to_onehot(self, name: str, index: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(index, self[name].size).float()

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"u_size": self.u_size, "u_prior": self.u_prior, "variables": [asdict(v) for v in self.variables]}

    @classmethod
    def from_dict(cls, data: dict) -> "LatentSpec":
        return cls(data["u_size"], [Variable(**v) for v in data["variables"]], data.get("u_prior", "uniform"))

    def describe(self) -> str:
        """One line per variable, for help texts and errors."""
        lines = [f"u: {self.u_size} dims, {self.u_prior} prior"]
        for v in self.variables:
            if v.kind == "categorical":
                sup = f", supervised by '{v.label}'" if v.label else ", free"
                prior = "" if v.weights is None else ", prior " + " ".join(f"{p:.3f}" for p in v.weights)
                lines.append(f"{v.name}: categorical ({', '.join(v.classes)}){sup}{prior}")
            else:
                lines.append(f"{v.name}: continuous, {v.prior} prior")
        return "\n".join(lines)


def build_spec(recipe, data) -> LatentSpec:
    """The latent spec of a recipe (:class:`toolkit.recipe.Recipe`), taking class names from the
    attributes of ``data`` (:class:`toolkit.data.ImageSet`) that supervise."""
    variables = []
    for name, v in recipe.latent.variables.items():
        where = f"latent.variables.{name}"
        if v.kind == "continuous":
            variables.append(Variable(name, "continuous", prior=v.prior))
            continue
        classes = v.classes
        if v.label is not None:
            try:
                data.attribute(v.label)
            except ToolkitError as exc:
                raise ToolkitError(f"{where}.label: {exc}") from None
            data_classes = data.classes[v.label]
            if classes is None:
                classes = data_classes
            elif isinstance(classes, int) and classes != len(data_classes):
                raise ToolkitError(f"{where}.classes: {classes}, but attribute '{v.label}' has {len(data_classes)} classes")
            elif isinstance(classes, list) and len(classes) != len(data_classes):
                raise ToolkitError(f"{where}.classes: {len(classes)} names, but attribute '{v.label}' has {len(data_classes)} classes")
        if isinstance(classes, int):
            classes = [str(i) for i in range(classes)]
        weights = class_weights(v.prior, list(classes), data.labels[v.label] if v.label else None, where)
        variables.append(Variable(name, "categorical", classes=list(classes), label=v.label, weights=weights))
    return LatentSpec(recipe.latent.u.size, variables, recipe.latent.u.prior)


def class_weights(prior, classes: list[str], labels: torch.Tensor | None, where: str) -> list[float] | None:
    """A categorical variable's prior as class probabilities (``None`` for uniform, the paper's).

    ``prior`` is "uniform", "empirical" (the share of each class among ``labels`` >= 0: all of
    the training split's labels of the attribute, before the recipe picks its labeled subset) or
    one positive weight per class (normalised to sum to 1). Not in the paper: with its uniform
    prior D sees, for example, 50% pale codes on generated pairs but about 4% on real CelebA
    pairs, and pushes E to call faces pale. Raises ToolkitError for a class without labeled
    images (an empirical prior would never draw it) or a wrong number of weights.
    """
    if prior == "uniform":
        return None
    if prior == "empirical":
        counts = torch.bincount(labels[labels >= 0], minlength=len(classes)).double()
        empty = [c for c, n in zip(classes, counts.tolist()) if n == 0]
        if empty:
            raise ToolkitError(f"{where}.prior: empirical, but class {', '.join(empty)} has no labeled images "
                               "(its share would be 0: give one weight per class instead)")
        weights = counts
    else:
        if len(prior) != len(classes):
            raise ToolkitError(f"{where}.prior: {len(prior)} class weights for {len(classes)} classes ({', '.join(classes)})")
        weights = torch.tensor(prior, dtype=torch.float64)
    return (weights / weights.sum()).tolist()

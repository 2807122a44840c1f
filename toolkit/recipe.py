"""Recipes: everything a run needs, as pydantic models loaded from YAML.

Unknown keys are errors; an error names the file, the key path and what is allowed.
``--set key.path=value`` overrides any field (the value is read as YAML: ``3``, ``1e-4``,
``[1, 2]``, ``true``).

This module is the schema only: it knows no plugin. :func:`toolkit.plugins.resolve` checks a
recipe's plugin names, fills in their options and makes relative paths absolute: a path in a
recipe file is relative to the file's folder, one given with ``--set`` to the working directory.
"""

from __future__ import annotations

import copy
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, field_validator, model_validator

from .errors import RecipeError, did_you_mean, files_like

Augmentation = Literal["translation", "cutout", "brightness", "contrast", "saturation", "flip", "blur", "noise", "affine"]
"""One per-image random transform of toolkit.augment, by the name recipes write."""


def expand_path(text: str | Path) -> Path:
    """A path a user wrote: ``$VARIABLES`` and ``~`` expanded."""
    return Path(os.path.expandvars(str(text))).expanduser()


PATH = {"format": "path"}  # json_schema_extra of a str field that holds a file or folder path


def is_path_field(field) -> bool:
    """Whether a pydantic field holds a path: typed ``Path`` (or ``Path | None``), or a ``str``
    declared with ``json_schema_extra=PATH``."""
    if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("format") == "path":
        return True
    return field.annotation is Path or Path in typing.get_args(field.annotation)


@dataclass(frozen=True)
class Origin:
    """Where a recipe's relative paths start: the recipe file's folder, or the working
    directory for a recipe without a file and for values given with ``--set``."""

    folder: Path | None = None
    overridden: tuple[str, ...] = ()  # key paths set on the command line

    @classmethod
    def of(cls, path: str | Path, overrides=()) -> "Origin":
        keys = tuple(item.partition("=")[0].strip() for item in overrides)
        return cls(Path(os.path.abspath(path)).parent, keys)

    def absolute(self, value: str, key: str) -> str:
        """``value`` of the path field at ``key``, absolute when it was relative (``~`` and
        ``$VARIABLES`` stay as written: they do not depend on the working directory)."""
        if not value or os.path.isabs(value) or value.startswith("~") or "$" in value:
            return value
        from_cli = any(key == k or key.startswith(k + ".") for k in self.overridden)
        base = Path.cwd() if from_cli or self.folder is None else self.folder
        return os.path.normpath(base / value)


def absolute_paths(model: BaseModel, where: str, origin: Origin) -> dict:
    """``model`` as a JSON-ready dict, each of its path fields (nested models too) made absolute."""
    data = model.model_dump(mode="json")
    for name, field in type(model).model_fields.items():
        key, value = f"{where}.{name}" if where else name, getattr(model, name)
        if is_path_field(field) and isinstance(data.get(name), str):
            data[name] = origin.absolute(data[name], key)
        elif isinstance(value, BaseModel):
            data[name] = absolute_paths(value, key, origin)
    return data


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeConfig(Strict):
    """An attribute derived from 0/1 label columns of the dataset.

    Several columns (one-hot): one class per column; a row gets the class of its one positive
    column, and no label when none, several or a missing value. One column: two classes.
    """

    columns: str | list[str] = Field(description="the dataset's 0/1 attributes to derive it from")
    classes: list[str] | None = Field(
        None, description="class names: one per column (default: the column names), or 2 for one column (default: no, yes)"
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _quoted(cls, value):
        if isinstance(value, list) and any(isinstance(v, bool) for v in value):
            raise ValueError('class names must be strings: YAML reads no/yes/on/off unquoted as booleans (write "no")')
        return value

    @model_validator(mode="after")
    def _check(self):
        columns = [self.columns] if isinstance(self.columns, str) else self.columns
        if not columns:
            raise ValueError("'columns' needs at least one column")
        if len(set(columns)) != len(columns):
            raise ValueError(f"'columns' lists a column twice: {', '.join(columns)}")
        want = 2 if len(columns) == 1 else len(columns)
        if self.classes is not None:
            if len(self.classes) != want:
                raise ValueError(f"{len(self.classes)} class names for {len(columns)} column(s): expected {want}")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"class names must be distinct: {', '.join(self.classes)}")
        return self

    def column_list(self) -> list[str]:
        return [self.columns] if isinstance(self.columns, str) else list(self.columns)

    def class_names(self) -> list[str]:
        if self.classes is not None:
            return list(self.classes)
        columns = self.column_list()
        return ["no", "yes"] if len(columns) == 1 else columns


class DataConfig(Strict):
    """Which dataset, and which of its labels the run may use."""

    dataset: str = Field(description="a registered dataset name (see `toolkit plugins`)")
    options: dict[str, Any] = Field(default_factory=dict, description="the dataset's own options")
    attributes: dict[str, AttributeConfig] = Field(
        default_factory=dict, description="new attributes derived from the dataset's 0/1 label columns"
    )
    labels: int | Literal["all"] = Field(
        100, description="labeled training images, chosen balanced per class from label_seed; 'all' uses every label"
    )
    label_seed: int | None = Field(None, description="seed of the labeled subset (default: the run's seed)")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value):
        if isinstance(value, int) and value < 0:
            raise ValueError("must be 0 or more (0: no labels), or 'all'")
        return value
    labeled_ramp: int = Field(
        1000, ge=0, description="steps over which the labeled-sampling probability falls from 1 to the true ratio"
    )
    labeled_floor: float = Field(
        0.0, ge=0.0, le=1.0,
        description="the least labeled-sampling probability after the ramp (0: the true ratio, as in the paper)",
    )


class UConfig(Strict):
    size: PositiveInt = 16
    prior: Literal["uniform", "normal"] = "uniform"


class VariableConfig(Strict):
    """A named latent variable; ``label`` ties it to a dataset attribute."""

    kind: Literal["categorical", "continuous"]
    classes: PositiveInt | list[str] | None = Field(
        None, description="categorical: number of classes or their names (default: the label's classes)"
    )
    label: str | None = Field(None, description="the dataset attribute that supervises this variable")
    prior: Literal["uniform", "normal", "empirical"] | list[PositiveFloat] = Field(
        "uniform", description="continuous: uniform or normal; categorical: uniform (the paper), empirical (the "
        "class shares of the label in the training split) or one weight per class")

    @field_validator("prior", mode="before")
    @classmethod
    def _prior_shape(cls, value):
        """One clear message for a wrong prior, instead of one per branch of its union type."""
        if isinstance(value, str) and value in ("uniform", "normal", "empirical"):
            return value
        if isinstance(value, list) and value and all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in value):
            return value
        raise ValueError("uniform, normal, empirical or a list of positive class weights")

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "continuous" and self.prior not in ("uniform", "normal"):
            raise ValueError(f"a continuous variable's prior is uniform or normal, not {self.prior!r}")
        if self.kind == "categorical" and self.prior == "normal":
            raise ValueError("a categorical variable's prior is uniform, empirical or a list of class weights, not 'normal'")
        if self.prior == "empirical" and self.label is None:
            raise ValueError("prior 'empirical' takes the class shares of the label: give the variable a 'label'")
        if isinstance(self.prior, list) and isinstance(self.classes, (int, list)):
            count = self.classes if isinstance(self.classes, int) else len(self.classes)
            if len(self.prior) != count:
                raise ValueError(f"prior: {len(self.prior)} class weights for {count} classes")
        if self.kind == "categorical" and self.classes is None and self.label is None:
            raise ValueError("a categorical variable needs 'classes' or a 'label' to take them from")
        if self.kind == "continuous" and (self.classes is not None or self.label is not None):
            raise ValueError("a continuous variable takes neither 'classes' nor 'label'")
        if isinstance(self.classes, list) and len(self.classes) < 2 or isinstance(self.classes, int) and self.classes < 2:
            raise ValueError("a categorical variable needs at least 2 classes")
        if isinstance(self.classes, list) and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"class names must be distinct: {', '.join(self.classes)}")
        return self


class LatentConfig(Strict):
    u: UConfig = Field(default_factory=UConfig)
    variables: dict[str, VariableConfig]


class ModelConfig(Strict):
    network: str = Field(description="a registered network family")
    options: dict[str, Any] = Field(default_factory=dict)


class LossConfig(Strict):
    weight: float = Field(1.0, ge=0, description="lambda of this term (0 switches it off: neither its passes nor its "
                          "loss run)")
    ramp: int = Field(0, ge=0, description="steps over which the weight rises linearly from 0 (0: none)")
    options: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(Strict):
    batch_size: PositiveInt = 64
    lr_d: float = Field(1e-4, gt=0)
    lr_ge: float = Field(5e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    lr_milestones: list[int] = Field(default_factory=list, description="steps at which the LR factor changes")
    lr_factors: list[float] = Field(default_factory=list, description="LR factor from each milestone on")

    @model_validator(mode="after")
    def _check(self):
        if len(self.lr_milestones) != len(self.lr_factors):
            raise ValueError("lr_milestones and lr_factors must have the same length")
        if self.lr_milestones != sorted(self.lr_milestones):
            raise ValueError("lr_milestones must increase")
        if any(f <= 0 for f in self.lr_factors):
            raise ValueError("lr_factors must be above 0 (a factor of 0 stops training: lower train.steps instead)")
        return self

    def lr_factor(self, step: int) -> float:
        factor = 1.0
        for milestone, f in zip(self.lr_milestones, self.lr_factors):
            if step >= milestone:
                factor = f
        return factor


class SpeedConfig(Strict):
    """How fast the step runs; none of these changes the method (see benchmarks/RESULTS.md)."""

    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: forward passes under bfloat16 autocast (losses and weights stay fp32)"
    )
    channels_last: bool = Field(False, description="keep images and convolution weights in channels-last layout")
    compile: bool = Field(False, description="torch.compile G, E and D for the training step (first steps are slow)")
    optimizer: Literal["auto", "fused", "foreach", "loop"] = Field(
        "auto", description="Adam implementation: auto = fused where the device supports it, else foreach"
    )


class TrainConfig(Strict):
    steps: PositiveInt = 40000
    log_every: PositiveInt = 100
    sample_every: PositiveInt = 1000
    checkpoint_every: PositiveInt = 5000
    keep_checkpoints: int = Field(3, ge=1, description="step checkpoints kept: the newest N (older ones are deleted)")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    bn_recalibration: int = Field(
        32, ge=0, description="batches that re-estimate BatchNorm statistics for samples, evaluation and "
        "checkpoints (0: use the running averages as trained, as the authors' code does)"
    )
    ema: float = Field(
        0.0, ge=0, lt=1, description="decay of a moving average of G's and E's weights that samples, evaluation "
        "and checkpoints use (0: off, the paper; e.g. 0.999 averages over about the last 1,000 steps)"
    )
    d_augment: list[Augmentation] = Field(
        default_factory=list, description="DiffAugment (Zhao et al. 2020; not in the paper): differentiable random "
        "transforms, per image, of every image D sees, real and generated, in this order (e.g. [translation, "
        "cutout]; flip only where the classes allow mirroring); [] = off"
    )
    d_batch: Literal["separate", "joint"] = Field(
        "separate", description="how D reads a step's real and generated pairs: separate = two batches (the "
        "authors' code; D's BatchNorm normalises each on its own, so a batch of near-identical generated "
        "images is scaled to look as varied as the real one), joint = one batch of both (BatchNorm's statistics "
        "shared; not in the paper)"
    )
    d_code: Literal["soft", "hard", "labels"] = Field(
        "soft", description="the categorical code D sees beside a real image: soft = E's softmax (the paper; a "
        "prior code is one-hot, so D can tell pairs apart by E's confidence), hard = a one-hot of E's argmax "
        "with the straight-through gradient to E, labels = hard, and labeled rows carry their label's one-hot "
        "(not in the paper)"
    )
    speed: SpeedConfig = Field(default_factory=SpeedConfig)


class EvalConfig(Strict):
    """How the model is judged (``toolkit evaluate`` and evaluation during training)."""

    classifier: str | None = Field(
        None, json_schema_extra=PATH,
        description="classifier .safetensors that judges generated images (~ expanded; relative: to the recipe's folder)")
    samples_per_class: PositiveInt = Field(500, description="generated images per class (the paper: 500)")
    seed: int = 0
    every: int = Field(0, ge=0, description="evaluate every K training steps (0: only at checkpoints' end)")

    def classifier_path(self):
        return expand_path(self.classifier) if self.classifier else None


class Recipe(Strict):
    """A whole run."""

    name: str = Field(description="used for the run folder")
    seed: int = 0
    data: DataConfig
    latent: LatentConfig
    model: ModelConfig
    losses: dict[str, LossConfig]
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("losses")
    @classmethod
    def _some_loss(cls, value):
        if not value:
            raise ValueError("a recipe needs at least one loss term (see `toolkit plugins`)")
        return value


# -- errors --------------------------------------------------------------------------------
def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The field names valid at ``loc`` (for 'unknown key' errors)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:  # a dict[str, Model] level: skip the key
            args = getattr(current, "__args__", ())
            current = args[-1] if args else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def format_validation_error(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``key.path: what is wrong (got X)``."""
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        path = ".".join(((prefix,) if prefix else ()) + loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc) if model else None
            hint = f"; {did_you_mean(loc[-1], allowed, 'allowed')}" if allowed else ""
            lines.append(f"{path}: unknown key{hint}")
        elif err["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        elif err["type"] in ("model_type", "model_attributes_type"):  # pydantic names its class: say what to write
            keys = _allowed_keys(model, (*loc, "")) if model else None  # the keys of the mapping at loc
            with_keys = f" with keys {', '.join(keys)}" if keys else ""
            lines.append(f"{path}: expected a mapping{with_keys} (got {err.get('input')!r})")
        else:
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg}{got_text}")
    return "; ".join(lines)


# -- loading -------------------------------------------------------------------------------
def read_yaml(path: Path) -> dict:
    """Safe-load a YAML mapping; errors name the file and line."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise RecipeError(f"recipe not found: {path}{files_like(path, ('.yaml', '.yml'), 'recipes')}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}:{where}: YAML tags that build objects are not allowed in recipes ({exc.problem})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        raise RecipeError(f"{path}: the file is empty; a recipe must be a YAML mapping")
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping, got {type(data).__name__}")
    return data


def apply_overrides(data: dict, overrides: list[str], source: str = "--set") -> dict:
    """Apply ``a.b.c=value`` overrides to a nested dict (values parsed as YAML)."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"{source} expects KEY.PATH=VALUE, got '{item}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
            try:
                value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
            except ValueError:
                pass
        parts = key.strip().split(".")
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"{source} {key}: '{'.'.join(parts[: depth + 1])}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return data


def parse_recipe(data: dict, source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(f"{source}: {format_validation_error(exc, model=Recipe)}") from None


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read, override and validate a recipe (plugin options are checked by :func:`resolve`)."""
    data = apply_overrides(read_yaml(Path(path)), list(overrides))
    return parse_recipe(data, source=str(path))


def to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)

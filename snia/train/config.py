"""Training settings: one typed, nested dataclass per concern, read from a config's ``train:``.

``TrainConfig`` holds the run (task, epochs, batch, optimiser, seed, validation share) and, nested,
the augmentation (``snia.augment.AugmentConfig``), the image geometry (``raster``: RasterSpec keys),
the network (``model``: ``arch`` and that architecture's settings, ``snia.models.registry``) and
distillation (``distill``). The defaults
are the model the workflow ships, so ``snia train`` with no config trains that model. Every check
fails when the settings are read (ConfigError naming the key), not when a job has started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from snia.augment import AugmentConfig
from snia.errors import ConfigError
from snia.models import CNNConfig, arch_of_config, make_config
from snia.models.registry import config_class
from snia.raster import DEFAULT_KIND, GEOMETRY_FIELDS, KINDS, MODEL_GEOMETRY, RasterSpec, model_geometry
from snia.taxonomy import CLASSES
from snia.typecheck import checked

TASKS = ("binary", "multiclass")
# choices of how to run, not of what is learnt: a resume does not compare them
RUNTIME_FIELDS = ("backend",)
# the network the workflow ships: small enough to classify thousands of light curves per second
# on 2 CPU cores (in_channels and n_classes follow from the images and the task)
SHIPPED_MODEL = CNNConfig(channels=(8, 16, 32), groups=4, hidden=64, dropout=0.2)
# from the images, the task and the bands (and a recurrent arch names its cell), not settings
DERIVED_MODEL_FIELDS = ("in_channels", "n_classes", "n_bands", "cell")


@dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): checkpoints, e.g. an ensemble, whose mean P(Ia)
    on each augmented training image is a soft target. The loss is (1 - weight) x the loss on the
    true label + weight x the loss on the teachers' P(Ia): one model learns to score like the
    ensemble and runs at the speed of one model. Binary task only."""

    teachers: list = field(default_factory=list)
    weight: float = 0.5


@dataclass
class TrainConfig:
    kind: str = DEFAULT_KIND  # image kind (snia.raster.KINDS)
    # binary: one Ia-vs-rest logit; multiclass: softmax over `types` (all labelled classes when
    # empty), P(Ia) = the Ia column
    task: str = "binary"
    # true types to train and validate on (names of snia.taxonomy.CLASSES); empty: every
    # labelled object
    types: list = field(default_factory=list)
    epochs: int = 20
    patience: int = 5  # early stopping: epochs without a better validation AUC
    batch_size: int = 64  # global batch, split evenly over ranks
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.1
    backend: str = "auto"  # rasterization backend (run time: not compared on resume)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    raster: dict = field(default_factory=lambda: dict(MODEL_GEOMETRY))  # RasterSpec geometry
    # the network: settings of one arch (snia.models.registry); in a mapping, {arch: ..., ...}
    model: object = field(default_factory=lambda: replace(SHIPPED_MODEL))
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, not {self.task!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, not {self.kind!r}")
        wrong = [t for t in self.types if t not in CLASSES or t == "unknown"]
        if wrong:
            raise ConfigError(f"unknown type(s) {wrong} in 'types'; known: {list(CLASSES[:-1])}")
        for name in ("epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        unknown = set(self.raster) - set(GEOMETRY_FIELDS)
        if unknown:
            raise ConfigError(f"unknown image setting(s) {sorted(unknown)} under 'raster'; "
                              f"known: {list(GEOMETRY_FIELDS)}")
        try:
            RasterSpec(kind=self.kind, **self.raster)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"raster: {exc}") from None
        if not 0 <= self.model.dropout < 1:
            raise ConfigError(f"model dropout must be in [0, 1), not {self.model.dropout}")
        self.types = list(self.types)
        self.distill.teachers = [str(t) for t in self.distill.teachers]
        if self.distill.teachers and self.task != "binary":
            raise ConfigError("teachers (distillation) need task 'binary': the soft target is P(Ia)")
        if not 0 <= self.distill.weight <= 1:
            raise ConfigError(f"distill weight must be in [0, 1], not {self.distill.weight}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Settings from a (YAML) mapping; nested sections may be mappings or dataclasses."""
        values = dict(values)
        _refuse_unknown(values, cls, "training setting(s)")
        values = checked(values, cls)  # each value of its field's type, or one line naming it
        for key, section in (("augment", AugmentConfig), ("distill", DistillConfig)):
            if isinstance(values.get(key), dict):
                _refuse_unknown(values[key], section, f"setting(s) under '{key}'")
                values[key] = section(**checked(values[key], section, f"{key}."))
        if isinstance(values.get("model"), dict):
            values["model"] = model_settings(values["model"])
        if "raster" in values:  # geometry keys not given keep the shipped model's
            values["raster"] = model_geometry(checked(values["raster"], RasterSpec, "raster."))
        return cls(**values)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["model"] = {"arch": self.arch, **values["model"]}
        return values

    @property
    def arch(self) -> str:
        return arch_of_config(self.model)

    def resume_key(self) -> dict:
        """What a checkpoint must share with these settings to be resumed: all but run-time
        choices (the rasterization backend may change between a job and its restart)."""
        return _without_runtime(self.to_dict())


def model_settings(values: dict):
    """The ``model:`` section as the settings dataclass of its ``arch`` (default: the shipped
    CNN, whose unset keys keep the shipped values; other archs start from their own defaults)."""
    values = dict(values)
    arch = values.pop("arch", "cnn")
    # what follows from the data and the arch (in_channels, n_classes, n_bands, cell) is no setting
    known = [f.name for f in fields(config_class(arch)) if f.name not in DERIVED_MODEL_FIELDS]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting(s) under 'model' {unknown} for arch {arch!r}; "
                          f"known: {['arch', *known]}")
    base = asdict(SHIPPED_MODEL) if arch == "cnn" else {}
    return make_config(arch, {**base, **checked(values, config_class(arch), "model.")})


def _without_runtime(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in RUNTIME_FIELDS}


def same_training(saved: dict, cfg: TrainConfig) -> bool:
    """Whether a checkpoint's saved settings are these settings (run-time choices aside)."""
    return isinstance(saved, dict) and _without_runtime(saved) == cfg.resume_key()


def _refuse_unknown(values: dict, cls, what: str, excluded=()) -> None:
    known = [f.name for f in fields(cls) if f.name not in excluded]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; known: {known}")


def settings_from_file(path: Path | None) -> dict:
    """The ``train:`` section of a YAML config (empty without a file)."""
    if path is None:
        return {}
    import yaml

    try:
        section = (yaml.safe_load(Path(path).read_text()) or {}).get("train") or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: 'train:' must be a mapping of settings")
    return dict(section)

"""Training settings: one typed, nested dataclass per concern, read from a config's ``train:``.

``TrainConfig`` holds the run (task, epochs, batch, optimiser, seed, validation share) and, nested,
the augmentation (``snia.augment.AugmentConfig``), the image geometry (``raster``: RasterSpec keys),
the network (``model``: ``arch`` and that architecture's settings, ``snia.models.registry``) and
distillation (``distill``). The defaults are the model the workflow ships, and each has one
source: the image geometry RasterSpec's, the network CNNConfig's (the default arch,
``DEFAULT_ARCH``), so ``snia train`` with no config trains that model on the images ``snia
rasterize`` draws with none. Every check fails when the settings are read (ConfigError naming the
key), not when a job has started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from snia.augment import AugmentConfig
from snia.config_file import read_document, read_section
from snia.errors import ConfigError
from snia.metrics import hashed_share
from snia.models import SEQUENCE_ARCHS, CNNConfig, arch_of_config, make_config
from snia.models.registry import DEFAULT_ARCH, DERIVED_FIELDS, config_class
from snia.raster import DEFAULT_KIND, GEOMETRY_FIELDS, KINDS, RasterSpec
from snia.taxonomy import CLASSES
from snia.typecheck import checked

TASKS = ("binary", "multiclass")
# choices of how to run, not of what is learnt: a resume does not compare them
RUNTIME_FIELDS = ("backend",)


def split_objects(object_id, val_fraction: float, seed: int):
    """Boolean mask of the validation objects of a run of ``seed``: a hash of (id, seed),
    independent of order and ranks."""
    return hashed_share(object_id, val_fraction, seed)


@dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): checkpoints, e.g. an ensemble, whose mean P(Ia)
    on each augmented training image is a soft target. The loss is (1 - weight) x the loss on the
    true label + weight x the loss on the teachers' P(Ia): one model learns to score like the
    ensemble and runs at the speed of one model. Binary task only.

    ``survey_share`` > 0 self-trains: each step adds this share of the batch size of the survey's
    own light curves (``survey``, read unlabelled) with the teachers' P(Ia) as their soft targets
    (``snia.train.survey``). 0: labelled light curves only. ``survey_augment``: the student sees
    each survey light curve augmented (the augment settings without redshift moves) while its
    target stays the teachers' P(Ia) on it as observed (Noisy Student, Xie et al. 2020).

    ``survey_predictions``: a predictions.csv of another classifier on every survey light curve
    (e.g. ``snia baseline``'s forest fitted on light curves re-observed through the survey's
    schedules), of which only object_id and p_ia are read; the survey's soft targets become
    (1 - ``survey_blend``) x the teachers' P(Ia) + ``survey_blend`` x its P(Ia). "": the teachers'
    alone. ``survey_blend_from``: that classifier's out-of-fold P(Ia) on training objects
    re-observed through the survey (``snia baseline``'s reobserved_predictions.csv); with it,
    ``survey_blend`` is not given but chosen without the survey's labels (``snia.train.blend``)."""

    teachers: list = field(default_factory=list)
    weight: float = 0.5
    survey_share: float = 0.0
    survey_augment: bool = False
    survey_predictions: str = ""
    survey_blend: float = 0.0
    survey_blend_from: str = ""


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
    # an epoch is at least this many samples: a small training set is passed over several times
    # per epoch, each pass augmented afresh. 6400, about PLAsTiCC's training split: its 7,063
    # objects take one pass, SPCC's 93 spectroscopic ones 69 (without it they made one step an
    # epoch and hardly trained: docs/results.md row 32). 0: one pass
    min_epoch_samples: int = 6400
    batch_size: int = 64  # global batch, split evenly over ranks
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.1
    backend: str = "auto"  # rasterization backend (run time: not compared on resume)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # image geometry: RasterSpec keys (GEOMETRY_FIELDS) that differ from its defaults
    raster: dict = field(default_factory=dict)
    # the network: settings of one arch (snia.models.registry); in a mapping, {arch: ..., ...}
    model: object = field(default_factory=CNNConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    # a store of the survey the model is for: its observing schedules, flux errors and photo-z
    # (never its fluxes or labels) feed the re-observation augmentation
    # (augment.reobserve_probability); "": none
    survey: str = ""

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
        if self.min_epoch_samples < 0:
            raise ConfigError(f"min_epoch_samples must be at least 0, not {self.min_epoch_samples}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        unknown = set(self.raster) - set(GEOMETRY_FIELDS)
        if unknown:
            raise ConfigError(f"unknown image setting(s) {sorted(unknown)} under 'raster'; "
                              f"known: {list(GEOMETRY_FIELDS)}")
        RasterSpec.from_dict({"kind": self.kind, **self.raster})
        if not 0 <= self.model.dropout < 1:
            raise ConfigError(f"model dropout must be in [0, 1), not {self.model.dropout}")
        self.types = list(self.types)
        self.distill.teachers = [str(t) for t in self.distill.teachers]
        if self.distill.teachers and self.task != "binary":
            raise ConfigError("teachers (distillation) need task 'binary': the soft target is P(Ia)")
        if self.augment.enabled and self.augment.reobserve_probability > 0 and not self.survey:
            raise ConfigError("augment.reobserve_probability > 0 needs 'survey': the store whose "
                              "schedules and noise the training objects are re-observed with")
        self.survey = str(self.survey)
        if not 0 <= self.distill.weight <= 1:
            raise ConfigError(f"distill weight must be in [0, 1], not {self.distill.weight}")
        self._check_self_training()

    def _check_self_training(self) -> None:
        share = self.distill.survey_share
        if share == 0:
            return
        if not 0 < share <= 4:
            raise ConfigError(f"distill survey_share must be in [0, 4], not {share}")
        if not self.survey or not self.distill.teachers:
            raise ConfigError("distill.survey_share > 0 (self-training) needs 'survey', the store "
                              "whose light curves are learnt unlabelled, and distill.teachers, "
                              "whose P(Ia) on them are the targets")
        if self.arch in SEQUENCE_ARCHS:
            raise ConfigError(f"self-training (distill.survey_share) takes image models, not "
                              f"the recurrent {self.arch!r}")
        blend = self.distill.survey_blend
        if not 0 <= blend <= 1:
            raise ConfigError(f"distill survey_blend must be in [0, 1], not {blend}")
        if (blend > 0 or self.distill.survey_blend_from) and not self.distill.survey_predictions:
            raise ConfigError("distill.survey_blend > 0 or survey_blend_from needs distill."
                              "survey_predictions, the predictions.csv whose P(Ia) joins the "
                              "teachers' on the survey")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Settings from a (YAML) mapping; nested sections may be mappings or dataclasses."""
        values = dict(values)
        _refuse_unknown(values, cls, "training setting(s)")
        if values.get("raster") is None:
            values.pop("raster", None)
        values = checked(values, cls)  # each value of its field's type, or one line naming it
        for key, section in (("augment", AugmentConfig), ("distill", DistillConfig)):
            if isinstance(values.get(key), dict):
                _refuse_unknown(values[key], section, f"setting(s) under '{key}'")
                values[key] = section(**checked(values[key], section, f"{key}."))
        if isinstance(values.get("model"), dict):
            values["model"] = model_settings(values["model"])
        if "raster" in values:
            values["raster"] = checked(values["raster"], RasterSpec, "raster.")
        return cls(**values)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["model"] = {"arch": self.arch, **values["model"]}
        return values

    @property
    def arch(self) -> str:
        return arch_of_config(self.model)

    @property
    def geometry(self) -> dict:
        """The image geometry these settings train on, every key (RasterSpec's defaults filled in)."""
        return image_geometry(RasterSpec.from_dict({"kind": self.kind, **self.raster}))

    def resume_key(self) -> dict:
        """What a checkpoint must share with these settings to be resumed: all but run-time
        choices (the rasterization backend may change between a job and its restart) and the
        image geometry, which is compared whole (``same_training``)."""
        return _comparable(self.to_dict())


def image_geometry(spec) -> dict:
    """The geometry keys (GEOMETRY_FIELDS) of a RasterSpec or of its dict (a checkpoint's)."""
    values = spec if isinstance(spec, dict) else spec.to_dict()
    return {k: values.get(k) for k in GEOMETRY_FIELDS}


def model_settings(values: dict):
    """The ``model:`` section as the settings dataclass of its ``arch`` (default ``DEFAULT_ARCH``,
    the shipped CNN); keys left out keep the arch's defaults."""
    values = dict(values)
    arch = values.pop("arch", DEFAULT_ARCH)
    derived = sorted(set(values) & set(DERIVED_FIELDS))
    if derived:
        raise ConfigError(f"setting(s) under 'model' {derived} follow from the images, the task "
                          f"and the data, not from settings; remove them")
    known = [f.name for f in fields(config_class(arch)) if f.name not in DERIVED_FIELDS]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting(s) under 'model' {unknown} for arch {arch!r}; "
                          f"known: {['arch', *known]}")
    return make_config(arch, checked(values, config_class(arch), "model."))


def _comparable(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in RUNTIME_FIELDS and k != "raster"}


def same_training(saved: dict, cfg: TrainConfig, spec: dict | None = None) -> bool:
    """Whether a checkpoint's saved settings are these settings (run-time choices aside). The
    image geometry is compared whole: the checkpoint's ``spec`` (what it was trained on, however
    its settings spelled it) against what these settings draw."""
    if not isinstance(saved, dict):
        return False
    if spec is None:
        spec = RasterSpec.from_dict({"kind": saved.get("kind", DEFAULT_KIND),
                                     **(saved.get("raster") or {})}).to_dict()
    return _comparable(saved) == cfg.resume_key() and image_geometry(spec) == cfg.geometry


def _refuse_unknown(values: dict, cls, what: str, excluded=()) -> None:
    known = [f.name for f in fields(cls) if f.name not in excluded]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; known: {known}")


def settings_from_file(path: Path | None) -> dict:
    """The ``train:`` section of a YAML config (empty without a file)."""
    if path is None:
        return {}
    section = read_section(path, "train")
    if section is None:  # settings at the top level would otherwise be silently ignored
        stray = sorted(set(read_document(path)) & {f.name for f in fields(TrainConfig)})
        if stray:
            raise ConfigError(f"{path}: training settings {stray} at the top level: put them "
                              "under a 'train:' section")
    return dict(section or {})

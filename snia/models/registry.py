"""The model architectures under one setting: a name (``arch``) and that architecture's settings.

A checkpoint stores ``model_spec(model)``, ``{"arch": ..., **config}``, and ``build_model`` makes
the same network from it again. The settings that follow from the data and the task (input
channels, classes, per-object scalars) are arguments of ``build_model`` and override the stored
ones, so one set of model settings serves every image kind and task. Unknown architectures and
unknown or bad settings are ConfigErrors naming the architecture and what is allowed, raised when
the settings are read rather than mid-run. ``parameter_count`` and ``flops_per_sample`` size the
architectures against each other.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from functools import partial

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from snia.errors import ConfigError
from snia.models.alexnet import AlexNetConfig, AlexNetStyle
from snia.models.cnn import CNNConfig, LightCurveCNN
from snia.models.googlenet import GoogLeNetConfig, GoogLeNetStyle
from snia.models.head import N_SCALARS
from snia.models.recurrent import RecurrentClassifier, RecurrentConfig, n_features
from snia.models.resnet import ResNetConfig, ResNetStyle

IMAGE_ARCHS = ("cnn", "alexnet", "googlenet", "resnet")  # forward(images, scalars, keys)
SEQUENCE_ARCHS = ("gru", "lstm")  # forward(sequences, lengths, scalars, keys)
ARCHS = IMAGE_ARCHS + SEQUENCE_ARCHS
# the shipped model's arch: what a config without ``model.arch`` trains, and what a checkpoint
# saved before there were several archs is
DEFAULT_ARCH = "cnn"
# what follows from the images (in_channels), the task (n_classes), the per-object inputs
# (n_scalars, snia.models.inputs), the store's bands (n_bands) and the arch (a recurrent model's
# cell): set by build_model, refused as settings
DERIVED_FIELDS = ("in_channels", "n_classes", "n_scalars", "n_bands", "cell")

_CONFIGS = {"cnn": CNNConfig, "alexnet": AlexNetConfig, "googlenet": GoogLeNetConfig,
            "resnet": ResNetConfig, "gru": RecurrentConfig, "lstm": RecurrentConfig}
_MODELS = {"cnn": LightCurveCNN, "alexnet": AlexNetStyle, "googlenet": GoogLeNetStyle,
           "resnet": ResNetStyle, "gru": RecurrentClassifier, "lstm": RecurrentClassifier}
_GATES = {"GRU": 3, "LSTM": 4, "RNN": 1}  # weight matrices per recurrent layer and direction


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ConfigError(f"unknown model arch {arch!r}; known: {list(ARCHS)}")


def config_class(arch: str) -> type:
    """The settings dataclass of an architecture."""
    _check_arch(arch)
    return _CONFIGS[arch]


def make_config(arch: str, values: dict, **derived):
    """The settings of ``arch`` from a mapping (a checkpoint's spec, or the ``model:`` section of a
    config): missing keys take the dataclass defaults, ``derived`` (e.g. in_channels) override.

    An ``arch`` key in ``values`` must name ``arch``; for "gru" and "lstm" the cell is the arch.
    """
    cls = config_class(arch)
    values = dict(values)
    stored = values.pop("arch", arch)
    if stored != arch:
        raise ConfigError(f"model settings are for arch {stored!r}, not {arch!r}")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown} for model arch {arch!r}; known: {known}")
    if arch in SEQUENCE_ARCHS and values.setdefault("cell", arch) != arch:
        raise ConfigError(f"model arch {arch!r} has cell {arch!r}, not {values['cell']!r} "
                          f"(choose the arch instead: one of {list(SEQUENCE_ARCHS)})")
    values.update({k: v for k, v in derived.items() if k in known})
    try:
        config = cls(**{**asdict(cls()), **values})  # __post_init__ checks
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model arch {arch!r}: {exc}") from None
    if not 0 <= config.dropout < 1:
        raise ConfigError(f"model arch {arch!r}: dropout must be in [0, 1), not {config.dropout}")
    return config


def build_model(arch: str, config_dict: dict, in_channels: int, n_classes: int,
                n_scalars: int = N_SCALARS) -> nn.Module:
    """A new network of ``arch`` with these settings (``in_channels`` is unused by the recurrent
    models, whose input width follows from their ``n_bands``)."""
    config = make_config(arch, config_dict, in_channels=in_channels, n_classes=n_classes,
                         n_scalars=n_scalars)
    try:
        return _MODELS[arch](config)
    except (TypeError, ValueError) as exc:  # e.g. a width that is not a whole number
        raise ConfigError(f"model arch {arch!r} with settings {asdict(config)}: {exc}") from None


def arch_of_config(config) -> str:
    """The arch whose settings ``config`` is (a recurrent config names its cell)."""
    if isinstance(config, RecurrentConfig):
        return config.cell
    for arch in IMAGE_ARCHS:
        if type(config) is _CONFIGS[arch]:
            return arch
    raise ConfigError(f"{type(config).__name__} is not the settings of a model arch {list(ARCHS)}")


def rebuild(spec: dict) -> nn.Module:
    """The network a checkpoint's ``model_spec`` describes (one without ``arch``, from before
    there were several, is the CNN), with the input and output sizes it was trained with."""
    arch = spec.get("arch", DEFAULT_ARCH)
    if arch in SEQUENCE_ARCHS:  # saved before there was a window: they read whole light curves
        spec = {"window": None, **spec}
    config = make_config(arch, spec)
    return build_model(arch, asdict(config), in_channels=getattr(config, "in_channels", 1),
                       n_classes=config.n_classes, n_scalars=config.n_scalars)


def arch_of(model: nn.Module) -> str:
    """The arch name of a network made by ``build_model``."""
    if isinstance(model, RecurrentClassifier):
        return model.config.cell
    for arch in IMAGE_ARCHS:
        if type(model) is _MODELS[arch]:
            return arch
    raise ConfigError(f"{type(model).__name__} is not one of the model archs {list(ARCHS)}")


def model_spec(model: nn.Module) -> dict:
    """What a checkpoint stores to rebuild ``model``: ``{"arch": ..., **config}``."""
    return {"arch": arch_of(model), **asdict(model.config)}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def example_inputs(model: nn.Module, image_size: tuple[int, int] = (16, 60), length: int = 100,
                   batch: int = 2) -> tuple:
    """Zero inputs of the right shapes for ``model``: images of ``image_size`` (rows, columns)
    for the image models, ``length`` observations per object for the recurrent ones."""
    config = model.config
    scalars = torch.zeros(batch, config.n_scalars)
    if isinstance(model, RecurrentClassifier):
        sequences = torch.zeros(batch, length, n_features(config.n_bands))
        return sequences, torch.full((batch,), length, dtype=torch.int64), scalars
    return torch.zeros(batch, config.in_channels, *image_size), scalars


def _recurrent_flops(rnn: nn.RNNBase, steps: int) -> int:
    """2 x multiply-adds of a recurrent module's matrix products over ``steps`` time steps
    (summed over objects), as FlopCounterMode counts them where it sees them."""
    directions = 2 if rnn.bidirectional else 1
    total = 0
    for layer in range(rnn.num_layers):
        width = rnn.input_size if layer == 0 else directions * rnn.hidden_size
        total += 2 * _GATES[rnn.mode] * rnn.hidden_size * (width + rnn.hidden_size)
    return total * directions * steps


def _record_steps(seen: dict, name: str, module: nn.Module, args: tuple) -> None:
    x = args[0]
    packed = isinstance(x, nn.utils.rnn.PackedSequence)
    steps = x.data.shape[0] if packed else x.shape[0] * x.shape[1]  # packed: no padding steps
    seen[name] = _recurrent_flops(module, steps)


def flops_per_sample(model: nn.Module, example_inputs: tuple) -> float:
    """Floating-point operations of one forward pass per sample (the first input's batch size),
    counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products, 2 per
    multiply-add; normalisation, activations and pooling are not counted.

    Recurrent layers are counted from their shapes instead (the same 2 per multiply-add): on CPU
    FlopCounterMode sees a GRU's matrix products but not an LSTM's, and on GPU neither.
    """
    prefix = type(model).__name__
    recurrent: dict[str, int] = {}
    hooks = [m.register_forward_pre_hook(partial(_record_steps, recurrent, f"{prefix}.{name}"))
             for name, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    training = model.training
    model.eval()  # no dropout; the count is of inference
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*example_inputs)
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    counts = counter.get_flop_counts()
    total = counter.get_total_flops()
    for name, flops in recurrent.items():
        total += flops - sum(counts.get(name, {}).values())
    return total / example_inputs[0].shape[0]

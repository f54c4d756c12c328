"""Models over light curves: CNNs over their images (the shipped small CNN, AlexNet-, GoogLeNet-
and ResNet-style) and recurrent networks over their observations (GRU, LSTM), under one setting,
``model: {arch: ...}`` (``registry``)."""

from snia.models.cnn import CNNConfig, LightCurveCNN
from snia.models.dropout import KeyedDropout, sample_keys
from snia.models.recurrent import peak_fluxes, sequence_features
from snia.models.registry import (
    ARCHS,
    IMAGE_ARCHS,
    SEQUENCE_ARCHS,
    arch_of_config,
    build_model,
    make_config,
    model_spec,
    rebuild,
)

__all__ = ["ARCHS", "CNNConfig", "IMAGE_ARCHS", "KeyedDropout", "LightCurveCNN", "SEQUENCE_ARCHS",
           "arch_of_config", "build_model", "make_config", "model_spec", "peak_fluxes", "rebuild",
           "sample_keys", "sequence_features"]

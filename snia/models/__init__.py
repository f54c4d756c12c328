"""Models over light-curve images."""

from snia.models.cnn import CNNConfig, LightCurveCNN
from snia.models.dropout import KeyedDropout, sample_keys

__all__ = ["CNNConfig", "KeyedDropout", "LightCurveCNN", "sample_keys"]

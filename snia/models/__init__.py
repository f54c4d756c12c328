"""Models over light-curve images."""

from snia.models.cnn import CNNConfig, LightCurveCNN

__all__ = ["CNNConfig", "LightCurveCNN"]

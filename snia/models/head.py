"""The settings every architecture's head shares, once: what the head reads besides the network's
features (the per-object scalars), what it puts out (one logit, or one per class) and the dropout
before it; and, for the image models, the channels of their images.

``n_scalars``, ``n_classes`` and ``in_channels`` follow from the data, the task and the images
(``snia.models.registry.DERIVED_FIELDS``): ``build_model`` sets them, a config may not.
"""

from __future__ import annotations

from dataclasses import dataclass

# per-object scalar inputs (snia.models.inputs): host photo-z, its error, log10 of the flux scale
N_SCALARS = 3


@dataclass
class HeadConfig:
    n_scalars: int = N_SCALARS  # host photo-z, its error, log10 flux scale
    n_classes: int = 1  # 1: Ia-vs-rest logit; >1: multi-class logits over the taxonomy
    dropout: float = 0.2  # on the embedding the head reads (per sample: KeyedDropout)


@dataclass
class ImageConfig(HeadConfig):
    in_channels: int = 2  # heatmap: flux, uncertainty; bands: + mask

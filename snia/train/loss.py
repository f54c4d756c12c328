"""The training loss: class-weighted binary (or multi-class) cross-entropy on the labels, mixed
with the teachers' P(Ia) when distilling, and the survey's light curves' weighted loss on the
teachers' P(Ia) when self-training (snia.train.survey)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_loss(logits, y, class_weight, classes, distill_weight: float, local_batch: int):
    """Class-weighted loss of a rank's share of a batch; ``y`` is the label, or (label, teachers'
    P(Ia)) to distil: (1 - distill_weight) x the loss on the label + distill_weight x the loss on
    the teachers' P(Ia); or (label, teachers' P(Ia), survey weight) when self-training: rows with
    a survey weight (not NaN) are survey light curves, whose loss is that weight x the loss on the
    teachers' P(Ia) alone. ``local_batch``: the labelled rows (the survey's add to them)."""
    soft = survey = None
    if isinstance(y, tuple):
        y, soft, *extra = y
        survey = extra[0] if extra else None
    if classes:
        w = torch.as_tensor(class_weight, dtype=logits.dtype).to(logits.device, non_blocking=True)[y]
        losses = F.cross_entropy(logits, y, reduction="none")
    else:
        w = y * class_weight[0] + (1 - y) * class_weight[1]
        losses = F.binary_cross_entropy_with_logits(logits.squeeze(1), y, reduction="none")
        if soft is not None:
            on_soft = F.binary_cross_entropy_with_logits(logits.squeeze(1), soft, reduction="none")
            losses = (1 - distill_weight) * losses + distill_weight * on_soft
            if survey is not None:
                theirs = ~torch.isnan(survey)
                losses = torch.where(theirs, on_soft, losses)
                w = torch.where(theirs, survey, w)
    # Sum over the local batch divided by the *local batch size*: DDP averages gradients over
    # ranks, which then equals the weighted mean over the global batch exactly.
    return (w * losses).sum() / local_batch

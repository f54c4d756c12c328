"""Inference: trained models (one, or an ensemble) -> P(Ia) for every light curve of a store.

Four modules: ``members`` (checkpoints ready to run, ensembles, calibration), ``streaming`` (the
store read in blocks, read ahead, batches on worker threads), ``compiled`` (an image model's
forward pass compiled for a CPU, for large stores) and ``predict`` (``predict_store``).

A ``Member`` is one checkpoint ready to run: its network, the image spec it was trained on and its
input scaling. Members of an ensemble each see their own images (members that share an image spec
share one rasterization) and their probabilities are averaged. Training uses the same code for the
teachers of a distilled model, evaluation and ``snia classify`` (``snia.classify``) for their
predictions. A model runs only on data of the bands it was trained on (``check_bands``;
``--allow-other-bands`` to override), and a checkpoint that cannot be read is a CheckpointError
naming the file (``snia.checkpoints``). Inference reads stores, never raw files: the model inputs
are ``snia.models.inputs``, shared with training.
"""

from snia.inference.members import (
                                    Member,
                                    as_list,
                                    calibrated_mean,
                                    calibration_of,
                                    check_bands,
                                    default_device,
                                    ensemble_p_ia,
                                    image_layout,
                                    load_members,
                                    mean_probabilities,
                                    p_ia_of,
                                    run_members,
)
from snia.inference.predict import Predictions, predict_store
from snia.inference.streaming import (
                                    CPU_BATCH,
                                    GPU_BATCH,
                                    MODEL_COLUMNS,
                                    READ_BLOCK,
                                    default_batch_size,
                                    default_workers,
                                    keep_freed_memory,
                                    one_torch_thread,
                                    ordered_map,
                                    prefetched,
                                    store_batches,
)

__all__ = ["CPU_BATCH", "GPU_BATCH", "MODEL_COLUMNS", "READ_BLOCK", "Member", "Predictions",
           "as_list", "calibrated_mean", "calibration_of", "check_bands", "default_batch_size",
           "default_device", "default_workers", "ensemble_p_ia", "image_layout", "keep_freed_memory",
           "load_members", "mean_probabilities", "one_torch_thread", "ordered_map", "p_ia_of",
           "predict_store", "prefetched", "run_members", "store_batches"]

"""Architectures under one model setting: every arch builds from its settings for any image size,
learns a separable toy problem, rebuilds from a checkpoint's spec, keys its dropout per sample;
the recurrent model's features and padding are checked against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch",
                            reason="PyTorch not installed (make test installs torch==2.13.0)")

from snia.errors import ConfigError  # noqa: E402
from snia.lightcurve import Batch, empty_meta, offsets_from_lengths  # noqa: E402
from snia.models.alexnet import layer_keys  # noqa: E402
from snia.models.dropout import KeyedDropout, sample_keys  # noqa: E402
from snia.models.recurrent import sequence_features  # noqa: E402
from snia.models.registry import (  # noqa: E402
    ARCHS,
    IMAGE_ARCHS,
    SEQUENCE_ARCHS,
    build_model,
    config_class,
    example_inputs,
    flops_per_sample,
    model_spec,
    parameter_count,
)

GEOMETRIES = [(2, 16, 60), (3, 6, 60), (2, 4, 8), (2, 1, 1)]
N_BANDS = 6
# small settings of every arch, for the tests that train or compare many outputs
SMALL = {
    "cnn": {"channels": [8, 16], "groups": 4, "hidden": 16, "dropout": 0.2},
    "alexnet": {"channels": [16, 24, 24], "kernel": [3, 5], "pool": [1, 2], "fc": [32, 32],
                "groups": 4, "dropout": 0.2},
    "googlenet": {"stem": 8, "channels": [16, 32], "blocks": 1, "groups": 4, "hidden": 16,
                  "dropout": 0.2},
    "resnet": {"stem": 8, "channels": [8, 16], "blocks": [1, 1], "groups": 4, "hidden": 16,
               "dropout": 0.2},
    "gru": {"hidden": 16, "layers": 1, "dropout": 0.2},
    "lstm": {"hidden": 16, "layers": 2, "bidirectional": True, "dropout": 0.2},
}


def make_batch(times, bands, fluxes, errs) -> Batch:
    """A Batch from per-object lists of observations."""
    lengths = [len(t) for t in times]
    flat = lambda parts, dtype: np.concatenate([np.asarray(p, dtype) for p in parts] or [[]])  # noqa: E731
    return Batch(object_id=np.arange(len(times), dtype=np.int64),
                 offsets=offsets_from_lengths(lengths),
                 obs={"time": flat(times, np.float64), "band": flat(bands, np.int8),
                      "flux": flat(fluxes, np.float32), "flux_err": flat(errs, np.float32),
                      "flag": np.zeros(sum(lengths), np.int32)},
                 meta=empty_meta(len(times)))


def random_batch(n: int, seed: int, signed_by=None) -> Batch:
    """Random light curves of 2-9 observations; with ``signed_by`` (0/1 per object), class 1's
    fluxes are positive and class 0's negative."""
    rng = np.random.default_rng(seed)
    times, bands, fluxes, errs = [], [], [], []
    for i in range(n):
        k = int(rng.integers(2, 10))
        times.append(59000 + np.cumsum(rng.uniform(0.01, 30, k)))
        bands.append(rng.integers(0, N_BANDS, k))
        flux = rng.uniform(5, 50, k) if signed_by is None else rng.uniform(5, 50, k) * (
            1 if signed_by[i] else -1)
        fluxes.append(flux)
        errs.append(rng.uniform(0.5, 5, k))
    return make_batch(times, bands, fluxes, errs)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these tensors are tiny, and two threads waiting on each other (worse
    on a busy machine) made a step ten times slower than one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def inputs(arch: str, model, n: int, seed: int = 0, shape=(2, 6, 12)) -> tuple:
    """Random inputs of ``model`` for n samples (without keys)."""
    g = torch.Generator().manual_seed(seed)
    scalars = torch.randn(n, model.config.n_scalars, generator=g)
    if arch in SEQUENCE_ARCHS:
        sequences, lengths = sequence_features(random_batch(n, seed), N_BANDS)
        return sequences, lengths, scalars
    return torch.randn(n, *shape, generator=g), scalars


def small(arch: str, in_channels: int = 2, n_classes: int = 1, **changes):
    torch.manual_seed(0)
    return build_model(arch, {**SMALL[arch], **changes}, in_channels, n_classes)


# --- shapes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", IMAGE_ARCHS)
def test_image_models_take_any_image_size(arch):
    for channels, rows, columns in GEOMETRIES:
        for n_classes in (1, 5):
            model = build_model(arch, {}, channels, n_classes).eval()
            images, scalars = torch.randn(2, channels, rows, columns), torch.randn(2, 3)
            with torch.no_grad():
                assert model(images, scalars).shape == (2, n_classes)
                embedding = model.embed(images, scalars)
            assert embedding.ndim == 2 and embedding.shape[0] == 2


@pytest.mark.parametrize("arch", SEQUENCE_ARCHS)
def test_recurrent_models_output_one_row_per_object(arch):
    for n_classes in (1, 5):
        for bidirectional in (False, True):
            model = build_model(arch, {"hidden": 8, "bidirectional": bidirectional}, 2,
                                n_classes).eval()
            with torch.no_grad():
                out = model(*inputs(arch, model, 4))
                embedding = model.embed(*inputs(arch, model, 4))
            assert out.shape == (4, n_classes)
            assert embedding.shape == (4, 8)  # the head's width: hidden


# --- learning -------------------------------------------------------------------------------

def separable(arch: str, model, n: int = 32):
    """A toy problem a working model separates easily: class 1 brighter (images) or of positive
    flux (sequences); the per-object scalars are noise."""
    y = torch.arange(n) % 2
    g = torch.Generator().manual_seed(1)
    scalars = torch.randn(n, 3, generator=g)
    if arch in SEQUENCE_ARCHS:
        sequences, lengths = sequence_features(random_batch(n, 1, signed_by=y.numpy()), N_BANDS)
        return (sequences, lengths, scalars), y.float()
    images = torch.randn(n, 2, 6, 12, generator=g)
    images[:, 0] += (2 * y.float() - 1)[:, None, None]
    return (images, scalars), y.float()


@pytest.mark.parametrize("arch", ARCHS)
def test_a_few_steps_learn_a_separable_problem(arch):
    model = small(arch)
    x, y = separable(arch, model)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return float(loss_fn(model(*x)[:, 0], y))

    before = eval_loss()
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for step in range(25):
        model.train()
        optimiser.zero_grad()
        loss = loss_fn(model(*x, keys=sample_keys(0, step, np.arange(len(y))))[:, 0], y)
        loss.backward()
        optimiser.step()
    after = eval_loss()
    assert after < 0.7 * before, (before, after)


# --- checkpoints ----------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_spec_and_state_dict_rebuild_the_same_model(arch):
    model = small(arch, in_channels=3, n_classes=4)
    with torch.no_grad():  # move every weight off its initial value (ResNet's zeroed norms too)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    spec = json.loads(json.dumps(model_spec(model)))  # as a checkpoint stores it: lists, not tuples
    assert spec["arch"] == arch
    torch.manual_seed(1)  # other initial weights: the loaded state must replace all of them
    rebuilt = build_model(spec["arch"], spec, in_channels=3, n_classes=4)
    rebuilt.load_state_dict(model.state_dict())
    assert model_spec(rebuilt) == model_spec(model)
    x = inputs(arch, model, 5, shape=(3, 6, 12))
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(model(*x), rebuilt(*x))


def test_derived_settings_follow_the_data_not_the_stored_values():
    spec = model_spec(build_model("resnet", SMALL["resnet"], in_channels=3, n_classes=4))
    model = build_model("resnet", spec, in_channels=2, n_classes=1, n_scalars=0)
    assert (model.config.in_channels, model.config.n_classes, model.config.n_scalars) == (2, 1, 0)
    assert model.config.channels == (8, 16) and model.config.blocks == (1, 1)


def test_unknown_arch_and_settings_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"unknown model arch 'vgg'.*'alexnet'.*'lstm'"):
        build_model("vgg", {}, 2, 1)
    with pytest.raises(ConfigError, match=r"unknown model arch 'vgg'"):
        config_class("vgg")
    with pytest.raises(ConfigError, match=r"\['depth'\] for model arch 'resnet'.*'blocks'"):
        build_model("resnet", {"depth": 3}, 2, 1)
    with pytest.raises(ConfigError, match=r"\['channels'\] for model arch 'gru'"):
        build_model("gru", {"channels": [8]}, 2, 1)
    with pytest.raises(ConfigError, match=r"for arch 'cnn', not 'resnet'"):
        build_model("resnet", {"arch": "cnn"}, 2, 1)
    with pytest.raises(ConfigError, match=r"arch 'gru' has cell 'gru', not 'lstm'"):
        build_model("gru", {"cell": "lstm"}, 2, 1)
    with pytest.raises(ConfigError, match=r"'alexnet'.*dropout"):
        build_model("alexnet", {"dropout": 1.0}, 2, 1)
    with pytest.raises(ConfigError, match=r"resnet blocks"):
        build_model("resnet", {"channels": [8, 16], "blocks": [1]}, 2, 1)
    with pytest.raises(ConfigError, match=r"googlenet channels"):
        build_model("googlenet", {"channels": [4]}, 2, 1)
    with pytest.raises(ConfigError, match=r"alexnet kernel"):
        build_model("alexnet", {"kernel": [4, 4]}, 2, 1)


# --- keyed dropout --------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_dropout_masks_follow_the_keys(arch):
    model = small(arch, dropout=0.5).train()
    x = inputs(arch, model, 6)
    keys = sample_keys(3, 0, np.arange(6))
    with torch.no_grad():
        out = model(*x, keys=keys)
        assert torch.equal(out, model(*x, keys=keys))
        assert not torch.allclose(out, model(*x, keys=sample_keys(3, 1, np.arange(6))))
        # a sample's output does not depend on the rest of its batch (how ranks split it)
        part = tuple(t[:2] for t in x)
        assert torch.allclose(model(*part, keys=keys[:2]), out[:2], atol=1e-6)
    with pytest.raises(ValueError, match="keys"):
        model(*x)


def test_alexnets_dropout_layers_draw_independent_masks():
    keys = sample_keys(0, 0, np.arange(64))
    assert torch.equal(layer_keys(keys, 0), keys)
    assert torch.equal(layer_keys(keys, 1), layer_keys(keys, 1))
    drop = KeyedDropout(0.5).train()
    first, second = (drop(torch.ones(64, 32), layer_keys(keys, i)) == 0 for i in (0, 1))
    # independent masks of p = 0.5 agree on about half the units, not all of them
    assert 0.4 < float((first == second).float().mean()) < 0.6


# --- sizes ----------------------------------------------------------------------------------

def test_parameter_counts_by_hand_and_the_alexnet_is_the_big_one():
    # GRU of 1 band (4 features) and 2 units: 3 gates x (2x4 + 2x2 weights + 2 + 2 biases) = 48;
    # embedding Linear(2 + 3 scalars, 2) = 12; head Linear(2, 1) = 3
    one_band = {"n_bands": 1, "hidden": 2, "layers": 1}
    assert parameter_count(build_model("gru", one_band, 2, 1)) == 63
    # LSTM: 4 gates x 16 = 64, + 12 + 3
    assert parameter_count(build_model("lstm", one_band, 2, 1)) == 79
    # both directions: 2 x 48; embedding Linear(4 + 3, 2) = 16; head 3
    assert parameter_count(build_model("gru", {**one_band, "bidirectional": True}, 2, 1)) == 115
    # ResNet: stem conv 1->2 3x3 no bias 18 + GroupNorm 4; block: two 2->2 3x3 convs 36 + 36 and
    # two GroupNorms 4 + 4, identity shortcut; embedding Linear(2, 1) 3; head Linear(1, 1) 2
    tiny = {"stem": 2, "channels": [2], "blocks": [1], "groups": 1, "hidden": 1}
    assert parameter_count(build_model("resnet", tiny, 1, 1, n_scalars=0)) == 107
    # the default CNN is the shipped one (channels 8-16-32, groups 4, hidden 64): a block a->b
    # is two 3x3 convolutions with bias (9ab + b, 9b^2 + b) and two GroupNorms (2b each):
    # 768 + 3552 + 14016; embedding Linear(32 + 3, 64) 2304; head Linear(64, 1) 65 = 20,705,
    # the size docs/results.md (row 22) measures
    assert parameter_count(build_model("cnn", {}, 2, 1)) == 20_705
    counts = {arch: parameter_count(build_model(arch, {}, 2, 1)) for arch in ARCHS}
    assert all(counts["alexnet"] > counts[a] for a in ARCHS if a != "alexnet"), counts
    assert 1_000_000 < counts["alexnet"] < 10_000_000, counts


def test_flops_per_sample_by_hand():
    # AlexNet of one 3x3 conv 2->4 on 4x8: 4 x 2 x 9 multiply-adds x 32 pixels = 2304 (x2 = 4608);
    # fc Linear(4 x 1 x 1 + 3, 8): 56 (x2 = 112); head Linear(8, 1): 8 (x2 = 16)
    alexnet = build_model("alexnet", {"channels": [4], "kernel": [3, 3], "pool": [1, 1],
                                      "fc": [8]}, 2, 1)
    images = torch.zeros(2, 2, 4, 8)
    assert flops_per_sample(alexnet, (images, torch.zeros(2, 3))) == 4608 + 112 + 16
    assert alexnet.training  # the count leaves the mode as it was
    # GRU of 4 features, 2 units: per step 3 gates x 2 x (4 + 2) = 36 multiply-adds (x2 = 72);
    # objects of 3 and 1 steps: (216 + 72) / 2 = 144 per sample; Linear(5, 2) 20, Linear(2, 1) 4
    # (the padding of the second object is not computed). LSTM: 4 gates, 96 per step.
    sequences, lengths = torch.zeros(2, 3, 4), torch.tensor([3, 1])
    for arch, expected in (("gru", 144 + 24), ("lstm", 192 + 24)):
        model = build_model(arch, {"n_bands": 1, "hidden": 2, "layers": 1}, 2, 1)
        assert flops_per_sample(model, (sequences, lengths, torch.zeros(2, 3))) == expected


def test_every_arch_has_flops_at_the_model_geometry():
    for arch in ARCHS:
        model = build_model(arch, {}, 2, 1)
        assert flops_per_sample(model, example_inputs(model, (16, 60), batch=2)) > 0


# --- recurrent features and padding ---------------------------------------------------------

def hand_batch() -> Batch:
    return make_batch(
        times=[[100.0, 100.5, 103.5], [], [50.0, 51.0], [10.0]],
        bands=[[0, 2, 0], [], [1, 1], [2]],
        fluxes=[[10.0, 20.0, 5.0], [], [-4.0, -8.0], [0.0]],
        errs=[[1.0, 2.0, 0.5], [], [2.0, 4.0], [1.0]])


# features per row: log1p(days since previous), one-hot of 3 bands, flux / peak, flux_err / peak
HAND = [
    # peak 20 (the brightest flux)
    [[0.0, 1, 0, 0, 0.5, 0.05], [math.log(1.5), 0, 0, 1, 1.0, 0.1],
     [math.log(4.0), 1, 0, 0, 0.25, 0.025]],
    [],  # no observations
    # no positive flux: peak = the largest |flux|, 8
    [[0.0, 0, 1, 0, -0.5, 0.25], [math.log(2.0), 0, 1, 0, -1.0, 0.5]],
    # all flux zero: peak 1
    [[0.0, 0, 0, 1, 0.0, 1.0]],
]


def expected_features(width: int) -> np.ndarray:
    out = np.zeros((len(HAND), width, 6))
    for i, rows in enumerate(HAND):
        rows = rows[:width]
        if rows:
            out[i, :len(rows)] = rows
    return out


def test_sequence_features_by_hand():
    features, lengths = sequence_features(hand_batch(), 3)
    assert features.dtype == torch.float32 and lengths.dtype == torch.int64
    assert lengths.tolist() == [3, 0, 2, 1]
    np.testing.assert_allclose(features.numpy(), expected_features(3), rtol=1e-6, atol=1e-7)
    # longer: padded with zeros; shorter: the first observations, scaled by the whole object's peak
    for width, kept in ((5, [3, 0, 2, 1]), (2, [2, 0, 2, 1])):
        features, lengths = sequence_features(hand_batch(), 3, max_length=width)
        assert lengths.tolist() == kept
        np.testing.assert_allclose(features.numpy(), expected_features(width), rtol=1e-6,
                                   atol=1e-7)


def test_a_window_keeps_the_observations_near_the_peak_scaled_by_the_whole_curve():
    # object 0: peak (largest flux^2/err) at t=100; the bright point at t=300 is outside
    # (window 10 before, 20 after); object 1 has all its observations inside
    batch = make_batch(times=[[80.0, 95.0, 100.0, 115.0, 300.0], [5.0, 6.0]],
                       bands=[[0, 1, 2, 0, 1], [2, 2]],
                       fluxes=[[1.0, 4.0, 10.0, 5.0, 40.0], [3.0, 6.0]],
                       errs=[[1.0, 1.0, 0.1, 1.0, 100.0], [1.0, 1.0]])
    features, lengths = sequence_features(batch, 3, window=(10.0, 20.0))
    assert lengths.tolist() == [3, 2] and features.shape == (2, 3, 6)
    expected_0 = [[0.0, 0, 1, 0, 0.1, 0.025], [math.log(6.0), 0, 0, 1, 0.25, 0.0025],
                  [math.log(16.0), 1, 0, 0, 0.125, 0.025]]  # peak flux 40 from t=300
    np.testing.assert_allclose(features[0].numpy(), expected_0, rtol=1e-6)
    whole, _ = sequence_features(batch, 3)
    np.testing.assert_allclose(features[1, :2].numpy(), whole[1, :2].numpy())
    with pytest.raises(ConfigError, match="window"):
        config_class("gru")(window=(10.0,))


def test_sequence_features_refuse_bands_beyond_the_model_and_unordered_times():
    with pytest.raises(ConfigError, match=r"band index 2 .* n_bands=2"):
        sequence_features(hand_batch(), 2)
    with pytest.raises(ValueError, match="time-ordered"):
        sequence_features(make_batch([[2.0, 1.0]], [[0, 0]], [[1.0, 1.0]], [[1.0, 1.0]]), 1)


@pytest.mark.parametrize("arch", SEQUENCE_ARCHS)
def test_padding_never_changes_an_objects_output(arch):
    model = small(arch).eval()
    batch = random_batch(5, 4)
    scalars = torch.randn(5, 3)
    with torch.no_grad():
        sequences, lengths = sequence_features(batch, N_BANDS)
        out = model(sequences, lengths, scalars)
        longer, same = sequence_features(batch, N_BANDS, max_length=sequences.shape[1] + 7)
        assert torch.equal(same, lengths)
        longer[torch.arange(longer.shape[1])[None, :] >= lengths[:, None]] = 1e3  # junk padding
        assert torch.equal(model(longer, lengths, scalars), out)
        # one object alone, unpadded, as in a batch of its own
        k = int(lengths[1])
        alone = model(sequences[1:2, :k], lengths[1:2], scalars[1:2])
        assert torch.allclose(alone, out[1:2], atol=1e-6)


def test_recurrent_models_read_the_images_window_and_older_specs_whole_curves():
    from snia.models.registry import rebuild

    model = build_model("gru", SMALL["gru"], in_channels=1, n_classes=1)
    assert model.config.window == (50.0, 130.0)
    spec = model_spec(model)
    assert rebuild(spec).config.window == (50.0, 130.0)
    del spec["window"]  # a checkpoint saved before the setting existed
    assert rebuild(spec).config.window is None

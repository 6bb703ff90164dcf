"""The PyDataset over the HDF5 dataset: pickling, per-epoch order, normalisation values, workers, augmentation."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from core.errors import UserError
from data_prep import schema
from pipeline.feeding import (
    AugmentationConfig,
    SeismicDataset,
    augment,
    mirror,
    mirror_shot_order,
    scale_velocity,
    shot_mask,
)
from tests.pipeline.datasets import GRID_SHAPE, SEISMIC_SHAPE, write_dataset


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("feeding") / "small.h5", num_samples=30, files=2)


def test_batches_hold_normalised_values(dataset_path: Path):
    data = SeismicDataset(dataset_path, "train", batch_size=4)
    stats = schema.read_normalization(dataset_path)
    with h5py.File(dataset_path, "r") as h5:
        train = schema.read_splits(h5)["train"]
        raw = h5["seismic"][train[:4]]
        velocity = h5["velocity"][train[:4]]
        edges = h5["edges"][train[:4]]
    x, y = data[0]
    assert x.shape == (4, *SEISMIC_SHAPE) and x.dtype == np.float32
    # OpenFWI: sign(x)·log1p(|x|), then the training split's [min, max] -> [-1, 1].
    transformed = np.sign(raw) * np.log1p(np.abs(raw))
    low, high = stats.seismic["min"], stats.seismic["max"]
    np.testing.assert_allclose(x, 2 * (transformed - low) / (high - low) - 1, rtol=1e-5, atol=1e-5)
    # Velocity: 1500-4500 m/s -> [-1, 1].
    np.testing.assert_allclose(y["velocity"], (velocity - 1500.0) / 1500.0 - 1.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y["edges"], edges.astype(np.float32))
    assert set(np.unique(y["edges"])) <= {0.0, 1.0} and y["edges"].sum() > 0
    # Over the whole training split the normalised seismic spans exactly [-1, 1].
    everything = np.concatenate([data[i][0] for i in range(len(data))])
    assert everything.min() == pytest.approx(-1.0, abs=1e-5) and everything.max() == pytest.approx(
        1.0, abs=1e-5
    )


def test_pickle_reopens_the_file_per_process(dataset_path: Path):
    data = SeismicDataset(dataset_path, "val", batch_size=2, outputs=("velocity",))
    first = data[0]
    assert data._file is not None  # opened lazily by the read above
    clone = pickle.loads(pickle.dumps(data))
    assert clone._file is None, "the h5py handle must not travel with the pickle"
    again = clone[0]
    np.testing.assert_array_equal(first[0], again[0])
    assert set(again[1]) == {"velocity"}
    data._file_pid = -1  # as if the handle had been inherited through fork()
    np.testing.assert_array_equal(data[0][0], first[0])
    assert data._file_pid > 0


def test_same_seed_same_order_and_new_order_each_epoch(dataset_path: Path):
    one = SeismicDataset(dataset_path, "train", batch_size=4, shuffle=True, seed=3)
    two = SeismicDataset(dataset_path, "train", batch_size=4, shuffle=True, seed=3)
    other = SeismicDataset(dataset_path, "train", batch_size=4, shuffle=True, seed=4)
    with h5py.File(dataset_path, "r") as h5:
        train = schema.read_splits(h5)["train"]
    epoch0 = one.epoch_order()
    np.testing.assert_array_equal(epoch0, two.epoch_order())
    assert sorted(epoch0) == sorted(train), "an epoch serves every training sample once"
    assert not np.array_equal(epoch0, other.epoch_order())
    one.on_epoch_end()  # Keras' hook does not move the order (see the module docstring)
    np.testing.assert_array_equal(one.epoch_order(), epoch0)
    one.set_epoch(1)
    epoch1 = one.epoch_order()
    assert not np.array_equal(epoch0, epoch1) and sorted(epoch1) == sorted(train)
    two.set_epoch(1)  # what a resumed run does
    np.testing.assert_array_equal(two.epoch_order(), epoch1)
    np.testing.assert_array_equal(one[2][0], two[2][0])
    unshuffled = SeismicDataset(dataset_path, "train", batch_size=4)
    np.testing.assert_array_equal(unshuffled.epoch_order(), train)


def test_drop_remainder_and_max_samples(dataset_path: Path):
    data = SeismicDataset(
        dataset_path, "train", batch_size=5, shuffle=True, drop_remainder=True, max_samples=12
    )
    assert len(data) == 2 and data.num_samples == 10
    assert all(data[i][0].shape[0] == 5 for i in range(len(data)))
    with pytest.raises(IndexError):
        data[2]
    with pytest.raises(UserError, match="fewer than one batch"):
        SeismicDataset(dataset_path, "val", batch_size=8, drop_remainder=True)


def test_worker_processes_deliver_the_same_batches(dataset_path: Path):
    sequential = SeismicDataset(dataset_path, "train", batch_size=4, outputs=("velocity",))
    parallel = SeismicDataset(
        dataset_path, "train", batch_size=4, outputs=("velocity",), workers=2, use_multiprocessing=True
    )
    seismic = keras.Input(SEISMIC_SHAPE)
    model = keras.Model(seismic, keras.ops.mean(seismic, axis=(1, 2, 3)))
    expected = np.concatenate([sequential[i][0].mean(axis=(1, 2, 3)) for i in range(len(sequential))])
    for _ in range(2):  # a second pass starts a new worker pool
        np.testing.assert_allclose(model.predict(parallel, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_fit_with_threads_and_epoch_reshuffle(dataset_path: Path):
    data = SeismicDataset(
        dataset_path, "train", batch_size=4, shuffle=True, seed=1, outputs=("velocity",), workers=2
    )
    seismic = keras.Input(SEISMIC_SHAPE)
    flat = keras.layers.Flatten()(
        keras.layers.AveragePooling2D((8, 1))(keras.layers.Permute((2, 3, 1))(seismic))
    )
    velocity = keras.layers.Reshape(GRID_SHAPE)(keras.layers.Dense(GRID_SHAPE[0] * GRID_SHAPE[1])(flat))
    model = keras.Model(seismic, {"velocity": velocity})
    model.compile("adam", loss={"velocity": "mae"})
    losses = []
    for epoch in range(3):  # pipeline.train's pattern: set the epoch, fit one epoch
        data.set_epoch(epoch)
        losses += model.fit(data, initial_epoch=epoch, epochs=epoch + 1, verbose=0).history["loss"]
    assert len(losses) == 3 and np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert data.epoch == 2


def test_curriculum_shot_mask_and_family_filter(dataset_path: Path):
    assert shot_mask(5, 3).tolist() == [True, False, True, False, True]
    assert shot_mask(5, None) is None and shot_mask(5, 5) is None
    data = SeismicDataset(dataset_path, "train", batch_size=3, active_shots=1)
    seismic, _, _ = data.read(data.indices[:3])
    assert np.all(seismic[:, 1] == 0) and np.any(seismic[:, 0] != 0)
    with pytest.raises(UserError, match="No train sample of family salt"):
        SeismicDataset(dataset_path, "train", families=["salt"])


def test_a_curriculum_stage_changes_families_and_shots_but_not_the_number_of_batches(tmp_path: Path):
    """``set_stage`` between epochs (what the training's ``EpochData`` callback does): only the stage's
    families are served, again in a new order each pass so that an epoch keeps its number of batches, the
    shot mask applies to cached batches too, and leaving the stage restores the plain epoch order."""
    path = write_dataset(tmp_path / "two.h5", num_samples=40, families=("flatvel-a", "curvevel-a"))
    data = SeismicDataset(path, "train", batch_size=4, shuffle=True, drop_remainder=True, cache=True)
    batches, plain = len(data), data.epoch_order()
    flat = set(data.indices[data.families == "flatvel-a"])
    data.set_stage(["flatvel-a"], active_shots=1)
    data.set_epoch(0)
    order = data.epoch_order()
    assert len(data) == batches and len(order) == len(plain), "an epoch keeps its number of batches"
    assert set(order) == flat, "every sample of the stage's family, and only those"
    raw, _, _ = data.read(order[:4])
    assert np.all(raw[:, 1:] == 0) and np.any(raw[:, 0] != 0), "one shot kept"
    seismic, _ = data[0]  # normalised: a zeroed shot is one constant value
    assert np.ptp(seismic[:, 1:]) == 0 and np.ptp(seismic[:, 0]) > 0, "the cache holds the masked shots"
    data.set_epoch(1)
    assert not np.array_equal(data.epoch_order(), order), "a new order every epoch"
    data.set_stage(None, None)
    data.set_epoch(0)
    np.testing.assert_array_equal(data.epoch_order(), plain)
    seismic, _ = data[0]
    assert np.ptp(seismic[:, 1]) > 0, "every shot again"
    with pytest.raises(UserError, match="No train sample of family salt"):
        data.set_stage(["salt"])


def test_augmentations_do_what_they_say():
    rng = np.random.default_rng(0)
    seismic = rng.normal(0, 2, (3, *SEISMIC_SHAPE)).astype(np.float32)

    flipped = augment(seismic, AugmentationConfig(polarity_probability=1.0), np.random.default_rng(1))
    np.testing.assert_array_equal(flipped, -seismic)
    scaled = augment(
        seismic,
        AugmentationConfig(amplitude_probability=1.0, amplitude_scale_range=(3.0, 3.0)),
        np.random.default_rng(1),
    )
    np.testing.assert_allclose(scaled, 3 * seismic, rtol=1e-6)
    dropped = augment(
        seismic,
        AugmentationConfig(drop_trace_probability=1.0, drop_trace_fraction=0.25),
        np.random.default_rng(1),
    )
    dead = np.all(dropped == 0, axis=2)  # (batch, shots, receivers)
    assert dead.sum(axis=(1, 2)).tolist() == [8, 8, 8], "a quarter of the 32 traces of each sample"
    np.testing.assert_array_equal(
        dropped[~np.all(dropped == 0, axis=2)[:, :, None, :].repeat(64, 2)],
        seismic[~np.all(dropped == 0, axis=2)[:, :, None, :].repeat(64, 2)],
    )
    noisy = augment(
        seismic, AugmentationConfig(noise_probability=1.0, noise_level=0.1), np.random.default_rng(1)
    )
    ratio = np.std(noisy - seismic) / np.sqrt(np.mean(seismic**2))
    assert ratio == pytest.approx(0.1, rel=0.05)
    again = augment(
        seismic, AugmentationConfig(noise_probability=1.0, noise_level=0.1), np.random.default_rng(1)
    )
    np.testing.assert_array_equal(noisy, again)
    assert not AugmentationConfig().enabled
    with pytest.raises(ValueError, match="amplitude_scale_range"):
        AugmentationConfig(amplitude_scale_range=(2.0, 1.0))


def test_a_mirrored_sample_is_the_simulation_of_the_mirrored_model():
    """On a symmetric layout (sources at x cells 2, 14, 26 of 0..28) the mirrored traces of ``v`` are the
    engine's traces of ``v`` reversed along x, to rounding; a model that is not mirrored is far from them."""
    import warnings

    from data_prep.forward import simulate
    from data_prep.geometry import AcquisitionGeometry

    geometry = AcquisitionGeometry(
        grid_shape=(24, 29), num_samples=400, peak_frequency_hz=15.0, source_cells=((1, 2), (1, 14), (1, 26)),
        receiver_cells=tuple((1, x) for x in range(29)),
    )  # fmt: skip
    velocity = np.full((24, 29), 2000.0, np.float32)
    velocity[10:, :12] = 2600.0  # a step: nothing here is symmetric
    velocity[16:] = 3200.0

    def simulated(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the coarse test grid's dispersion warning
            return keras.ops.convert_to_numpy(simulate(model, geometry))

    order = mirror_shot_order(schema.DatasetGeometry.from_acquisition(geometry))
    np.testing.assert_array_equal(order, [2, 1, 0])
    traces = simulated(velocity)  # (1, shots, time, receivers)
    mirrored, targets = mirror(traces, {"velocity": velocity[None]}, order, 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(targets["velocity"][0], velocity[:, ::-1])
    expected = simulated(velocity[:, ::-1].copy())[0]
    error = np.linalg.norm(mirrored[0] - expected) / np.linalg.norm(expected)
    assert error < 1e-4
    assert np.linalg.norm(traces[0] - expected) / np.linalg.norm(expected) > 1000 * error


def test_mirroring_openfwi_s_layout_moves_the_middle_shot_by_one_cell_and_an_asymmetric_one_is_refused():
    from data_prep.geometry import AcquisitionGeometry

    def order(geometry, **kwargs):
        return mirror_shot_order(schema.DatasetGeometry.from_acquisition(geometry), **kwargs)

    np.testing.assert_array_equal(order(AcquisitionGeometry.openfwi()), [4, 3, 2, 1, 0])
    with pytest.raises(UserError, match=r"x 340 m mirrors to 350 m, 10 m from.*mirror_max_shift_cells=0"):
        order(AcquisitionGeometry.openfwi(), max_shift_cells=0)
    lopsided = AcquisitionGeometry(
        grid_shape=(20, 30), source_cells=((1, 0), (1, 8)), receiver_cells=tuple((1, x) for x in range(30))
    )
    with pytest.raises(UserError, match=r"source at x 0 m mirrors to 290 m.*mirror_probability=0"):
        order(lopsided)
    one_sided = AcquisitionGeometry(
        grid_shape=(20, 30), source_cells=((1, 0), (1, 29)), receiver_cells=tuple((1, x) for x in range(20))
    )
    with pytest.raises(UserError, match="receivers placed symmetrically"):
        order(one_sided)
    with pytest.raises(ValueError, match="mirror_probability"):
        AugmentationConfig(mirror_probability=1.5)
    with pytest.raises(ValueError, match="mirror_max_shift_cells"):
        AugmentationConfig(mirror_max_shift_cells=-1)


def test_mirrored_batches_reverse_traces_and_targets_together(dataset_path: Path):
    """Through the PyDataset: a mirrored sample is the plain one with shots and receivers reversed and its
    velocity and edges reversed along x; about half are mirrored at probability 0.5; same seed, same batch."""
    config = AugmentationConfig(mirror_probability=0.5)
    one = SeismicDataset(dataset_path, "train", batch_size=8, seed=4, augmentation=config)
    again = SeismicDataset(dataset_path, "train", batch_size=8, seed=4, augmentation=config)
    plain = SeismicDataset(dataset_path, "train", batch_size=8, seed=4)
    (x, y), (x_again, _), (x_plain, y_plain) = one[0], again[0], plain[0]
    np.testing.assert_array_equal(x, x_again)
    flipped = 0
    for sample in range(x.shape[0]):
        if np.array_equal(x[sample], x_plain[sample]):
            np.testing.assert_array_equal(y["velocity"][sample], y_plain["velocity"][sample])
            continue
        flipped += 1
        np.testing.assert_allclose(x[sample], x_plain[sample][::-1, :, ::-1], rtol=1e-6)
        for name in ("velocity", "edges"):
            np.testing.assert_array_equal(y[name][sample], y_plain[name][sample][:, ::-1])
    assert 1 <= flipped <= 7


def _scaled_by(factor: float) -> AugmentationConfig:
    return AugmentationConfig(velocity_scale_probability=1.0, velocity_scale_range=(factor, factor))


def test_a_scaled_velocity_model_s_traces_are_the_simulation_of_that_model():
    """``scale_velocity`` turns the traces of ``v`` into those of ``s·v`` (fired with the wavelet ``s`` times
    higher in frequency): compared with the engine's own simulation of the scaled model, for ``s`` above and
    below 1; the traces of another factor are far from it (what the test would see if the time axis were
    stretched the wrong way or by the wrong amount)."""
    import warnings

    from data_prep.forward import simulate
    from data_prep.geometry import AcquisitionGeometry
    from data_prep.wavelets import ricker

    steps = 600
    geometry = AcquisitionGeometry(
        grid_shape=(36, 44), num_samples=steps, peak_frequency_hz=12.0, source_cells=((1, 10),),
        receiver_cells=tuple((1, x) for x in range(44)),
    )  # fmt: skip
    velocity = np.full((36, 44), 2000.0, np.float32)
    velocity[16:] = 2800.0
    velocity[27:, 20:] = 3300.0  # a step, so that reflections and diffractions come back within the record

    def simulated(model, peak_hz, delay_s):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the coarse test grid's dispersion warning
            wavelet = ricker(peak_hz, steps, geometry.sample_interval_s, delay_s)
            return keras.ops.convert_to_numpy(simulate(model, geometry, wavelet=wavelet))

    traces = simulated(velocity, 12.0, 0.1)
    for factor in (1.12, 0.9):
        scaled, scaled_velocity = scale_velocity(
            traces, velocity[None], _scaled_by(factor), np.random.default_rng(0), (1000.0, 5000.0)
        )
        np.testing.assert_allclose(scaled_velocity[0], factor * velocity, rtol=1e-6)
        expected = simulated(scaled_velocity[0], 12.0 * factor, 0.1 / factor)
        recorded = int(steps / max(factor, 1.0)) - 45  # before the taper where a compressed record runs out
        gain = np.vdot(scaled[..., :recorded, :], expected[..., :recorded, :]) / np.vdot(
            scaled[..., :recorded, :], scaled[..., :recorded, :]
        )
        assert gain == pytest.approx(1.0, abs=0.01), "the amplitudes too: no gain to correct"
        error = np.linalg.norm(scaled[..., :recorded, :] - expected[..., :recorded, :])
        assert error / np.linalg.norm(expected[..., :recorded, :]) < 0.01, factor
        wrong, _ = scale_velocity(
            traces,
            velocity[None],
            _scaled_by(1 + (factor - 1) / 2),
            np.random.default_rng(0),
            (1000.0, 5000.0),
        )
        assert np.linalg.norm(wrong[..., :recorded, :] - expected[..., :recorded, :]) > 20 * error
        if factor > 1:  # no data after s·t passes the end of the record: zero, not the last sample repeated
            assert np.all(scaled[..., int(steps / factor) :, :] == 0)


def test_velocity_scaling_keeps_each_model_within_the_range_the_network_can_output():
    rng = np.random.default_rng(3)
    seismic = rng.normal(0, 1, (40, 2, 50, 6)).astype(np.float32)
    velocity = np.repeat(np.linspace(2000.0, 4000.0, 40, dtype=np.float32)[:, None, None], 8, axis=1)
    velocity = np.repeat(velocity, 6, axis=2)  # sample k is a constant model of 2000 + 51.3 k m/s
    config = AugmentationConfig(velocity_scale_probability=1.0, velocity_scale_range=(0.8, 1.2))
    scaled_seismic, scaled = scale_velocity(
        seismic, velocity, config, np.random.default_rng(0), (1500.0, 4500.0)
    )
    factors = scaled[:, 0, 0] / velocity[:, 0, 0]
    assert np.all((factors >= 0.8) & (factors <= 1.2)) and np.ptp(factors) > 0.2, "drawn over the range"
    assert np.all((scaled >= 1500.0 - 1e-3) & (scaled <= 4500.0 + 1e-3)), "never outside the bounds"
    # A model that already spans the bounds has nowhere to go: left as it is, traces too.
    full = np.full((1, 8, 6), 1500.0, np.float32)
    full[0, 4:] = 4500.0
    same_seismic, same = scale_velocity(seismic[:1], full, config, np.random.default_rng(0), (1500.0, 4500.0))
    np.testing.assert_array_equal(same, full)
    np.testing.assert_array_equal(same_seismic, seismic[:1])
    # Probability 0: nothing changes; the inputs are never modified in place.
    before = seismic.copy()
    kept, _ = scale_velocity(
        seismic, velocity, AugmentationConfig(), np.random.default_rng(0), (1500.0, 4500.0)
    )
    np.testing.assert_array_equal(kept, before)
    np.testing.assert_array_equal(seismic, before)
    assert scaled_seismic.shape == seismic.shape
    with pytest.raises(ValueError, match="velocity_scale_range"):
        AugmentationConfig(velocity_scale_range=(1.2, 0.9))
    with pytest.raises(ValueError, match="velocity_scale_range"):
        AugmentationConfig(velocity_scale_range=(0.1, 1.0))
    assert AugmentationConfig(velocity_scale_probability=0.5).enabled


def test_velocity_scaled_batches_scale_the_targets_with_the_traces(dataset_path: Path):
    """Through the PyDataset: each sample's velocity target (normalised) is its model times the factor its
    traces were compressed by; edges (interfaces do not move) stay; the same seed gives the same batch."""
    config = AugmentationConfig(velocity_scale_probability=1.0, velocity_scale_range=(0.9, 1.1))
    one = SeismicDataset(dataset_path, "train", batch_size=4, seed=2, augmentation=config)
    two = SeismicDataset(dataset_path, "train", batch_size=4, seed=2, augmentation=config)
    plain = SeismicDataset(dataset_path, "train", batch_size=4, seed=2)
    stats = schema.read_normalization(dataset_path)
    (x, y), (x_plain, y_plain) = one[1], plain[1]
    to_mps = 1500.0 * (np.asarray(y["velocity"], np.float64) + 1) + 1500.0
    plain_mps = 1500.0 * (np.asarray(y_plain["velocity"], np.float64) + 1) + 1500.0
    factors = to_mps.mean(axis=(1, 2)) / plain_mps.mean(axis=(1, 2))
    np.testing.assert_allclose(to_mps, factors[:, None, None] * plain_mps, rtol=1e-4)
    assert np.all((factors >= 0.9 - 1e-6) & (factors <= 1.1 + 1e-6)) and np.ptp(factors) > 0.01
    np.testing.assert_array_equal(y["edges"], y_plain["edges"])
    assert stats.method == "minmax" and not np.allclose(x, x_plain)
    np.testing.assert_array_equal(x, two[1][0])
    np.testing.assert_array_equal(y["velocity"], two[1][1]["velocity"])


def test_augmented_batches_are_reproducible(dataset_path: Path):
    config = AugmentationConfig(noise_probability=1.0, noise_level=0.5)
    one = SeismicDataset(dataset_path, "train", batch_size=4, seed=2, augmentation=config)
    two = SeismicDataset(dataset_path, "train", batch_size=4, seed=2, augmentation=config)
    plain = SeismicDataset(dataset_path, "train", batch_size=4, seed=2)
    np.testing.assert_array_equal(one[1][0], two[1][0])
    assert not np.allclose(one[1][0], plain[1][0])
    np.testing.assert_array_equal(one[1][1]["velocity"], plain[1][1]["velocity"])


@pytest.mark.parametrize(
    "augmentation", [None, AugmentationConfig(noise_probability=1.0, polarity_probability=0.5)]
)
def test_cached_split_serves_the_same_batches_as_the_file(dataset_path: Path, augmentation):
    kwargs = {"batch_size": 4, "shuffle": True, "seed": 5, "augmentation": augmentation, "active_shots": 2}
    streamed = SeismicDataset(dataset_path, "train", **kwargs)
    cached = SeismicDataset(dataset_path, "train", cache=True, **kwargs)
    for epoch in (0, 1):
        streamed.set_epoch(epoch)
        cached.set_epoch(epoch)
        for index in range(len(streamed)):
            (x, y), (cx, cy) = streamed[index], cached[index]
            np.testing.assert_allclose(cx, x, rtol=1e-6, atol=1e-6)
            assert set(cy) == set(y)
            for name in y:
                np.testing.assert_array_equal(cy[name], y[name])
    assert cached._cached is not None and cached._cached[0].shape[0] == len(cached.indices)
    # The cache stays behind when the dataset is pickled to a worker process, which reads its own.
    clone = pickle.loads(pickle.dumps(cached))
    assert clone._cached is None
    np.testing.assert_allclose(clone[0][0], cached[0][0], rtol=0, atol=0)


def test_cache_auto_follows_the_available_memory(dataset_path: Path, monkeypatch):
    import psutil

    assert SeismicDataset(dataset_path, "train", cache="auto").cache
    assert not SeismicDataset(dataset_path, "train", cache="auto", use_multiprocessing=True, workers=2).cache

    class Tight:
        available = 1000  # bytes: less than one sample

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tight())
    assert not SeismicDataset(dataset_path, "train", cache="auto").cache
    with pytest.raises(ValueError, match="cache must be"):
        SeismicDataset(dataset_path, "train", cache="yes")

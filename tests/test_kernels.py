"""The CUDA C kernels (kernels/raster.cu), their loader (snia.raster.cuda_sources) and the ``cupy``
backend (snia.raster.cupy).

Four layers, each skipped on its own when its tool is missing:
  * the loader (installed and from a plain checkout) and the host-side input checks: always (they
    run before CuPy is imported);
  * compilation: nvcc -arch=sm_90 -ptx (no GPU needed) and NVRTC itself (as CuPy uses it);
  * the kernels' logic on the CPU: raster.cu built as plain C++, one thread per block
    (``tests/cuda_on_cpu.py``), against the NumPy reference, grid-stride wrap and tiles included;
  * the kernels on a GPU through CuPy, against the NumPy reference (``rasterize(..., "numpy")``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cuda_on_cpu  # tests/, beside this file
import numpy as np
import pytest
from conftest import make_batch

from snia.lightcurve import Batch
from snia.raster import RasterSpec, rasterize
from snia.raster.cuda_sources import cuda_source
from snia.raster.cupy import KERNELS, MAX_SHARED_BYTES, MAX_TILE, heatmap_windows, obs_bytes, rasterize_cupy, tile_size

REPO = Path(__file__).resolve().parents[1]
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH (no CUDA toolkit here)")


def _cupy_or_reason():
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - not installed, or installed without its CUDA libraries
        return None, f"no CUDA GPU (cupy.is_available() is False): cupy cannot be imported ({exc})"
    try:
        if cupy.is_available():
            return cupy, ""
    except Exception:  # noqa: BLE001 - no driver
        pass
    return None, "no CUDA GPU (cupy.is_available() is False)"


cp, NO_GPU = _cupy_or_reason()
needs_gpu = pytest.mark.skipif(cp is None, reason=NO_GPU)


def kernel_names(source: str) -> list[str]:
    return re.findall(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(\w+)',
                      source)


# ----------------------------------------------------------------------------- the loader


def test_cuda_source_has_line_directive_and_every_kernel():
    source = cuda_source("raster.cu")
    assert source.startswith('#line 1 "raster.cu"\n')
    for name in KERNELS:
        assert name in source
    assert sorted(kernel_names(source)) == sorted(KERNELS)
    # after the directive: the file itself, so line k of the text is line k of raster.cu
    assert source.split("\n", 1)[1] == (REPO / "kernels" / "raster.cu").read_text()


def test_import_is_light():
    code = ("import sys, snia.raster, snia.raster.cupy, snia.raster.cuda_sources, snia.kernels\n"
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cuda_source_is_found_from_a_plain_checkout(tmp_path):
    # No installed package: only the checkout on PYTHONPATH. The venv's editable install adds a
    # finder that would supply snia.kernels, so it is taken out before snia is imported.
    code = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
import importlib.util
from snia.raster.cuda_sources import cuda_source, source_dir
assert importlib.util.find_spec("snia.kernels") is None, "snia.kernels still importable"
assert str(source_dir()) == sys.argv[1] + "/kernels", source_dir()
source = cuda_source()
assert source.startswith('#line 1 "raster.cu"\\n'), source[:80]
assert 'void heatmap_image(' in source and 'void bands_image(' in source
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code, str(REPO)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- compilation


def run_nvcc(source: str, folder, name: str) -> subprocess.CompletedProcess:
    path = folder / name
    path.write_text(source)
    cmd = [NVCC, "-arch=sm_90", "-ptx", "-std=c++17", str(path), "-o", str(folder / "raster.ptx")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ptx(tmp_path_factory) -> str:
    """The loader's source compiled by nvcc to PTX for sm_90 (once for all kernels)."""
    folder = tmp_path_factory.mktemp("nvcc")
    proc = run_nvcc(cuda_source("raster.cu"), folder, "loaded.cu")
    assert proc.returncode == 0, f"nvcc failed:\n{proc.stdout}\n{proc.stderr}"
    assert "warning" not in proc.stderr.lower(), proc.stderr
    return (folder / "raster.ptx").read_text()


@needs_nvcc
@pytest.mark.parametrize("kernel", KERNELS)
def test_nvcc_compiles_kernel(ptx, kernel):
    assert re.search(rf"\.visible \.entry {kernel}\(", ptx), f"no entry point {kernel} in the PTX"


def broken_copy() -> tuple[str, int]:
    """The loader's source with a syntax error inserted as line ``k`` of raster.cu."""
    lines = cuda_source("raster.cu").split("\n")  # lines[0]: #line 1; lines[k]: line k of the file
    k = next(i for i, line in enumerate(lines) if re.match(r'extern "C" __global__ void bands_image',
                                                            line))
    lines.insert(k, "int this_is_a_syntax_error = ;")
    return "\n".join(lines), k


@needs_nvcc
def test_nvcc_errors_name_raster_cu_and_its_line(tmp_path):
    source, line = broken_copy()
    proc = run_nvcc(source, tmp_path, "broken_copy.cu")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, "the broken copy compiled"
    assert f"raster.cu({line})" in output, output
    assert "broken_copy.cu(" not in output, output


def nvrtc_compile(source: str, options=(b"-std=c++17", b"-arch=compute_90")):
    """Compile with NVRTC (what cupy.RawModule uses): (ok, log, ptx)."""
    from cuda.bindings import nvrtc

    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"loaded.cu", 0, [], [])
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, err
    try:
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(options), list(options))
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        ptx = b""
        if err == nvrtc.nvrtcResult.NVRTC_SUCCESS:
            _, size = nvrtc.nvrtcGetPTXSize(prog)
            ptx = b" " * size
            nvrtc.nvrtcGetPTX(prog, ptx)
        return err == nvrtc.nvrtcResult.NVRTC_SUCCESS, log.decode(errors="replace"), ptx.decode()
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def test_nvrtc_compiles_the_loader_source():
    pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings (NVRTC) not installed")
    try:
        ok, log, ptx = nvrtc_compile(cuda_source("raster.cu"))
    except RuntimeError as exc:  # libnvrtc not found
        pytest.skip(f"NVRTC unavailable: {exc}")
    assert ok, log
    for kernel in KERNELS:
        assert re.search(rf"\.entry {kernel}\(", ptx), kernel
    source, line = broken_copy()
    ok, log, _ = nvrtc_compile(source)
    assert not ok and f"raster.cu({line})" in log, log


# ----------------------------------------------------------------------------- host-side checks


def concat(*batches: Batch) -> Batch:
    offsets = [np.zeros(1, np.int64)]
    for b in batches:
        offsets.append(b.offsets[1:] + offsets[-1][-1])
    return Batch(np.arange(sum(len(b) for b in batches)), np.concatenate(offsets),
                 {k: np.concatenate([b.obs[k] for b in batches]) for k in batches[0].obs},
                 {k: np.concatenate([b.meta[k] for b in batches]) for k in batches[0].meta})


BAD_INPUTS = {
    "offsets length": (lambda b: setattr(b, "offsets", b.offsets[:-1]), "n_objects \\+ 1"),
    "offsets start": (lambda b: b.offsets.__setitem__(0, 1), "start at 0"),
    "offsets order": (lambda b: b.offsets.__setitem__(1, 9), "non-decreasing"),
    "obs length": (lambda b: b.obs.__setitem__("flux", b.obs["flux"][:-1]), "flux"),
    "obs not 1-D": (lambda b: b.obs.__setitem__("time", b.obs["time"][:, None]), "one-dimensional"),
    "band range": (lambda b: b.obs["band"].__setitem__(0, -1), "band index -1"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_are_refused_on_the_host(case):
    batch = make_batch([5, 3], 0)
    change, message = BAD_INPUTS[case]
    change(batch)
    with pytest.raises(ValueError, match=message):
        rasterize_cupy(batch, RasterSpec(kind="bands"))


def test_bad_launch_settings_are_refused_on_the_host():
    batch, spec = make_batch([5, 3], 0), RasterSpec(kind="heatmap")
    with pytest.raises(ValueError, match="threads per block"):
        rasterize_cupy(batch, spec, threads=0)
    with pytest.raises(ValueError, match="threads per block"):
        rasterize_cupy(batch, spec, threads=2048)
    with pytest.raises(ValueError, match="shared memory"):
        rasterize_cupy(batch, spec, tile=100_000)
    with pytest.raises(ValueError, match="tile"):
        rasterize_cupy(batch, spec, tile=0)
    with pytest.raises(ValueError, match="out must be float32 of shape"):
        rasterize_cupy(batch, spec, out=np.zeros((2, 3, 32, 180), np.float32))
    with pytest.raises(ValueError, match="out must be float32 of shape"):
        rasterize_cupy(batch, spec, out=np.zeros((2, *spec.shape), np.float64))


def test_tile_size_fits_shared_memory():
    fine = {"n_time": 180, "n_wave": 32}  # 1-day x 250 A pixels
    bands, heatmap = RasterSpec(kind="bands", **fine), RasterSpec(kind="heatmap", **fine)
    assert tile_size(bands, 0) == (1, 17)
    tile, shared = tile_size(bands, 10**6)
    assert tile == MAX_TILE and shared <= MAX_SHARED_BYTES
    # heatmap: 1-day columns, 250 A rows, 3 sigma of 3 days and 600 A: 18 columns and 14.4 rows
    # within the support, + 4 of slack; per observation 3 float64, 22 + 18 + 2 float32 and 2 int16
    assert heatmap_windows(heatmap) == (22, 18)
    assert obs_bytes(heatmap) == 3 * 8 + (22 + 18 + 2) * 4 + 2 * 2 == 196
    assert tile_size(heatmap, 37) == (37, 37 * 196)
    tile, shared = tile_size(heatmap, 10**6)
    assert tile == MAX_SHARED_BYTES // 196 and shared <= MAX_SHARED_BYTES
    # with the opt-in of a Hopper GPU (227 KiB), PLAsTiCC's longest light curves fit one tile
    assert tile_size(heatmap, 352, limit=227 * 1024) == (352, 352 * 196)
    # a support wider than the image: windows no longer than the image plus the slack
    assert heatmap_windows(RasterSpec(kind="heatmap", sigma_time=60.0, sigma_wave=3000.0, n_time=10,
                                      n_wave=4)) == (14, 8)


def test_heatmap_cut_beyond_float32_range_is_refused():
    with pytest.raises(ValueError, match="13"):
        rasterize_cupy(make_batch([3], 0), RasterSpec(kind="heatmap", support=14.0))


def test_grid_limit_is_checked_on_the_host():
    with pytest.raises(ValueError, match="max_blocks"):
        rasterize_cupy(make_batch([3], 0), RasterSpec(), max_blocks=0)


# ----------------------------------------------------------------------------- on the GPU


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def check(batch, spec, seed, **options):
    """The cupy backend against the NumPy reference, into a NaN-poisoned output buffer."""
    ref = rasterize(batch, spec, "numpy")
    poisoned = cp.full((len(batch), *spec.shape), cp.nan, dtype=cp.float32)
    if options:
        got = rasterize_cupy(batch, spec, out=poisoned, **options)
    else:
        got = rasterize(batch, spec, "cupy", out=poisoned)
    assert got.images is poisoned, "the caller's device buffer was not written in place"
    assert isinstance(got.scale, cp.ndarray) and isinstance(got.t_ref, cp.ndarray)
    images = cp.asnumpy(got.images)
    assert np.isfinite(images).all(), f"seed {seed}: some output element was never written"
    assert rel_l2(images, ref.images) < 1e-5, f"seed {seed}: {rel_l2(images, ref.images)}"
    # which pixels are empty is a bin-edge / kernel-cut decision: it must agree exactly
    channel = 2 if spec.kind == "bands" else 1
    np.testing.assert_array_equal(images[:, channel] != 0, ref.images[:, channel] != 0,
                                  err_msg=f"seed {seed}: empty pixels differ")
    np.testing.assert_allclose(cp.asnumpy(got.t_ref), ref.t_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cp.asnumpy(got.scale), ref.scale, rtol=1e-6)
    return ref


def fresh_seed() -> int:
    return int(np.random.default_rng().integers(1 << 31))


KINDS = ["bands", "heatmap"]


@needs_gpu
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("threads,tile", [(256, None), (32, 7), (100, 1), (1024, None)])
def test_cupy_matches_reference_on_random_light_curves(kind, threads, tile):
    seed = fresh_seed()
    batch = make_batch(np.random.default_rng(seed).integers(0, 120, 50), seed)
    ref = check(batch, RasterSpec(kind=kind), seed, threads=threads, tile=tile)
    assert np.count_nonzero(ref.images[:, 0]) > 0  # not a comparison of empty images


@needs_gpu
@pytest.mark.parametrize("kind", KINDS)
def test_cupy_rest_frame_and_first_detection(kind):
    seed = fresh_seed()
    batch = make_batch(np.random.default_rng(seed).integers(1, 60, 30), seed)
    check(batch, RasterSpec(kind=kind, rest_frame=True, reference="first_detection"), seed)


@needs_gpu
@pytest.mark.parametrize("kind", KINDS)
def test_cupy_light_curve_longer_than_the_largest_tile(kind):
    seed = fresh_seed()
    batch = make_batch([MAX_TILE * 2 + 17, 3], seed, span=200.0)
    check(batch, RasterSpec(kind=kind), seed)


def duplicate_times(seed):
    batch = make_batch([6], seed)
    batch.obs["time"][:] = 60005.0  # six observations at one time
    return batch


def extreme_fluxes(seed):
    huge, tiny = make_batch([8], seed), make_batch([8], seed + 1)
    huge.obs["flux"][:3], huge.obs["flux_err"][:] = 3e30, 1e29  # 1/err^2 underflows float32
    tiny.obs["flux"][:] *= np.float32(1e-31)  # errors scaled with the fluxes: 1e-31 .. 5e-31
    tiny.obs["flux_err"][:] *= np.float32(1e-31)
    return concat(huge, tiny)


def bin_edges(seed):
    """Observations exactly on column edges and on the kernel-support edges of pixel centres."""
    t_ref = 60100.0
    rel = np.concatenate([np.arange(-50, 131, 1.0), np.arange(-49.5, 130, 1.0) + 9.0,
                          np.arange(-49.5, 130, 1.0) - 9.0])
    time = np.sort(t_ref + rel)
    n = len(time)
    flux = np.full(n, 10, np.float32)
    flux[np.searchsorted(time, t_ref)] = 1000  # the reference observation
    obs = {"time": time, "band": (np.arange(n) % 6).astype(np.int8), "flux": flux,
           "flux_err": np.ones(n, np.float32), "flag": np.zeros(n, np.int32)}
    return Batch(np.array([0]), np.array([0, n]), obs,
                 {"specz": np.zeros(1, np.float32), "hostgal_photoz": np.zeros(1, np.float32)})


EDGE_CASES = {
    "empty_object": lambda seed: make_batch([0, 5, 0], seed),
    "all_objects_empty": lambda seed: make_batch([0, 0, 0], seed),
    "single_observation": lambda seed: make_batch([1], seed),
    "outside_the_window": lambda seed: make_batch([6, 40], seed, span=600.0),
    "duplicate_times": duplicate_times,
    "extreme_fluxes": extreme_fluxes,
    "bands_missing": lambda seed: make_batch([20, 15], seed, bands=(1, 3)),
    "one_band_only": lambda seed: make_batch([20, 15], seed, bands=(3,)),
    "bin_edges": bin_edges,
    "one_object": lambda seed: make_batch([37], seed),
}


@needs_gpu
@pytest.mark.parametrize("kind", KINDS)
def test_cupy_grid_stride_wrap_on_a_small_grid(kind):
    """Three blocks for 50 objects: each block wraps around the grid many times."""
    seed = fresh_seed()
    batch = make_batch(np.random.default_rng(seed).integers(0, 90, 50), seed)
    check(batch, RasterSpec(kind=kind), seed, max_blocks=3, threads=64)


# ------------------------------------------------- the kernels' logic on the CPU (C++ build)

needs_compiler = pytest.mark.skipif(cuda_on_cpu.compiler() is None, reason="no C++ compiler")


@pytest.fixture(scope="module")
def cpu_build(tmp_path_factory):
    return cuda_on_cpu.build(tmp_path_factory.mktemp("raster_cpu"))


def check_cpu_build(lib, batch, spec, seed, grid, tile=None):
    """raster.cu's kernels (C++ build, one thread per block) against the NumPy reference."""
    ref = rasterize(batch, spec, "numpy")
    got = cuda_on_cpu.rasterize_on_cpu(lib, batch, spec, grid, tile)
    assert np.isfinite(got.images).all(), f"seed {seed}: some output element was never written"
    assert rel_l2(got.images, ref.images) < 1e-5, f"seed {seed}: {rel_l2(got.images, ref.images)}"
    channel = 2 if spec.kind == "bands" else 1
    np.testing.assert_array_equal(got.images[:, channel] != 0, ref.images[:, channel] != 0,
                                  err_msg=f"seed {seed}: empty pixels differ")
    np.testing.assert_allclose(got.t_ref, ref.t_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.scale, ref.scale, rtol=1e-6)
    return ref


CPU_SPECS = {
    "default": {},
    "model geometry": {"n_time": 60, "n_wave": 16},
    "rest frame, first detection": {"rest_frame": True, "reference": "first_detection"},
    # kernels wider than the image: the factor windows are capped at the image's size + 4
    "kernel wider than the image": {"sigma_time": 60.0, "sigma_wave": 3000.0, "n_time": 10,
                                    "n_wave": 4},
}


@needs_compiler
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("settings", list(CPU_SPECS))
@pytest.mark.parametrize("grid,tile", [(64, None), (3, None), (2, 5)],
                         ids=["grid >= objects", "grid-stride wrap", "wrap and tiles of 5"])
def test_cuda_kernels_built_for_the_cpu_match_reference(cpu_build, kind, settings, grid, tile):
    seed = fresh_seed()
    batch = make_batch(np.random.default_rng(seed).integers(0, 120, 40), seed)
    batch.meta["hostgal_photoz"][:] = np.random.default_rng(seed).uniform(0, 1, 40)
    ref = check_cpu_build(cpu_build, batch, RasterSpec(kind=kind, **CPU_SPECS[settings]), seed,
                          grid, tile)
    assert np.count_nonzero(ref.images[:, 0]) > 0  # not a comparison of empty images


@needs_compiler
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_cuda_kernels_built_for_the_cpu_on_edge_cases(cpu_build, case, kind):
    seed = fresh_seed()
    spec = RasterSpec(kind=kind, bands=(0, 2, 4, 5))
    check_cpu_build(cpu_build, EDGE_CASES[case](seed), spec, seed, grid=2)


@needs_compiler
def test_cuda_kernels_built_for_the_cpu_on_a_light_curve_longer_than_a_tile(cpu_build):
    seed = fresh_seed()
    spec = RasterSpec(kind="heatmap")
    batch = make_batch([tile_size(spec, 10**6)[0] * 2 + 17, 3], seed, span=200.0)
    check_cpu_build(cpu_build, batch, spec, seed, grid=1)


@needs_compiler
def test_the_cpu_build_catches_a_wrong_window(cpu_build, monkeypatch):
    """The harness can fail: windows one column too short lose weight the reference has."""
    spec, seed = RasterSpec(kind="heatmap"), 5
    batch = make_batch(np.random.default_rng(seed).integers(20, 120, 20), seed)
    columns, rows = heatmap_windows(spec)
    monkeypatch.setattr(cuda_on_cpu, "heatmap_windows", lambda s: (columns - 3, rows))
    with pytest.raises(AssertionError):
        check_cpu_build(cpu_build, batch, spec, seed, grid=4)


@needs_gpu
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_cupy_edge_cases(case, kind):
    seed = fresh_seed()
    spec = RasterSpec(kind=kind, bands=(0, 2, 4, 5))  # bands_missing: 1 and 3 are not drawn
    check(EDGE_CASES[case](seed), spec, seed)


@needs_gpu
@pytest.mark.parametrize("kind", KINDS)
def test_cupy_ten_thousand_objects(kind):
    seed = fresh_seed()
    lengths = np.random.default_rng(seed).integers(0, 8, 10_000)
    spec = RasterSpec(kind=kind, t_before=5, t_after=10, n_time=15, n_wave=4)
    check(make_batch(lengths, seed, span=20), spec, seed)


@needs_gpu
@pytest.mark.parametrize("kind", KINDS)
def test_cupy_batch_arrays_on_the_device(kind):
    seed = fresh_seed()
    batch = make_batch([12, 0, 30], seed)
    ref = rasterize(batch, RasterSpec(kind=kind), "numpy")
    on_device = Batch(cp.asarray(batch.object_id), cp.asarray(batch.offsets),
                      {k: cp.asarray(v) for k, v in batch.obs.items()}, batch.meta)
    got = rasterize_cupy(on_device, RasterSpec(kind=kind))
    assert rel_l2(cp.asnumpy(got.images), ref.images) < 1e-5


@needs_gpu
def test_cupy_no_objects_and_host_out_buffer():
    spec = RasterSpec(kind="heatmap")
    got = rasterize_cupy(make_batch([], 0), spec)
    assert isinstance(got.images, cp.ndarray) and got.images.shape == (0, *spec.shape)
    assert got.scale.shape == (0,) and got.t_ref.shape == (0,)
    batch = make_batch([4, 9], 1)
    host = np.full((2, *spec.shape), np.nan, np.float32)
    got = rasterize_cupy(batch, spec, out=host)  # copied to the device; the device copy returned
    assert isinstance(got.images, cp.ndarray) and np.isfinite(cp.asnumpy(got.images)).all()


@needs_gpu
def test_cupy_images_go_to_torch_without_a_copy():
    torch = pytest.importorskip("torch")
    got = rasterize_cupy(make_batch([10, 20], 2), RasterSpec(kind="bands"))
    tensor = torch.from_dlpack(got.images)
    assert tensor.data_ptr() == got.images.data.ptr and tuple(tensor.shape) == got.images.shape

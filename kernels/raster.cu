// Rasterization kernels of the `cupy` backend: ragged light curves -> images [N, C, H, W] (float32).
//
// Loaded at run time by snia.raster.cuda_sources.load_module() (CuPy RawModule, compiled by NVRTC); the
// loader prefixes `#line 1 "raster.cu"` so compiler messages name this file and its lines.
// Plain CUDA C++: no host code, no #include (NVRTC provides exp, sqrt, fabs, floor and the
// __dadd_rn/__dmul_rn intrinsics as builtins).
//
// The math is that of snia.raster.shared.shared_math (the `cpu` and `numba-cuda` backends), line by line:
// object_reference / object_scale -> prepare_objects; time_bin + bands_pixel + finish_bands ->
// bands_image; heatmap_pixel + finish_heatmap -> heatmap_image. Change one, change the other.
//
// Design notes
// ------------
// * prepare_objects: one thread per object (grid-stride). A light curve is tens to a few hundred
//   observations; a serial scan per object is cheap next to the image kernels.
// * bands_image / heatmap_image: one BLOCK per object (grid-stride over objects with blockIdx).
//   The object's observations (time, flux, err and band or wavelength) are staged in dynamic
//   shared memory, `tile` observations at a time; a light curve longer than one tile is handled by
//   looping over tiles. When the whole light curve fits in one tile (the usual case: the host sizes
//   the tile to the longest light curve of the batch, up to 48 KiB of shared memory) it is staged
//   once per object, otherwise once per tile and per pass over the pixels.
// * One thread per output pixel (row, column) of that object, looping over the object's pixels
//   with a blockDim stride; consecutive threads own consecutive columns, so the stores of a warp
//   are coalesced. Each thread finds the observations that can touch its pixel by binary search
//   in the (time-ordered) staged tile, then applies the exact cuts of the shared math.
// * The sums of a pixel (ivar, ivar*flux; or sum_w, sum_w*f, sum_w^2*var) live in registers of the
//   thread that owns the pixel: no atomics on global memory, no zero-fill pass; every channel of
//   every pixel is written exactly once (0 for empty pixels), so the output needs no memset.
// * Accumulation in double: fluxes and errors are float32 in the store, but the weights 1/err^2
//   span many decades (err = 1e-31 .. 1e29 gives 1/err^2 from 1e-58 to 1e62, which overflows or
//   underflows float32) and sums of many terms of very different weights lose digits in float32.
//   Every product or quotient of fluxes and errors is therefore formed in double, as in the NumPy
//   reference; only the final value is rounded to float32.
// * Bin-edge decisions (the column of an observation, the |dt| and |dl| kernel cuts) must round
//   exactly as the float64 host code does: the pixel-centre and window arithmetic uses explicit
//   round-to-nearest intrinsics (__dmul_rn, __dadd_rn) so the compiler cannot contract a*b + c
//   into a fused multiply-add, whose single rounding could move an observation across an edge.
// * Nothing is validated here: dtypes, shapes, offsets and the shared-memory size are checked on
//   the host (snia.raster.cupy.rasterize_cupy) before every launch. Preconditions: offsets are
//   non-decreasing with offsets[0] = 0, observations are time-ordered within each object.
//
// Shared-memory layout (bytes per staged observation: bands 17, heatmap 20), tile = `tile`:
//   double time[tile] | float flux[tile] | float err[tile] | signed char band[tile]   (bands)
//   double time[tile] | float flux[tile] | float err[tile] | float wave[tile]         (heatmap)

extern __shared__ double raster_smem[];

// first index in [lo, hi) with time[index] >= value (time ascending), as _shared_math.lower_bound
__device__ __forceinline__ int lower_bound(const double* time, int lo, int hi, double value)
{
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (time[mid] < value) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// a + b * c, each operation rounded on its own (never an FMA), like the float64 host code
__device__ __forceinline__ double add_mul(double a, double b, double c)
{
    return __dadd_rn(a, __dmul_rn(b, c));
}

// _shared_math.time_bin: the column of an observation, the float64 arithmetic of the reference
__device__ __forceinline__ double time_bin(double time, double t_ref, double zfac,
                                           double t_before, double dt)
{
    return floor(__dadd_rn((time - t_ref) / zfac, t_before) / dt);
}

extern "C" __global__ void prepare_objects(const long long* offsets, const double* time,
                                           const float* flux, const float* err, int n_objects,
                                           int mode, double snr, double* t_ref, float* scale)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n_objects;
         i += (long long)gridDim.x * blockDim.x) {
        const long long start = offsets[i];
        const long long stop = offsets[i + 1];
        if (stop <= start) {
            t_ref[i] = 0.0;
            scale[i] = 1.0f;
            continue;
        }

        // object_reference: the first detection (mode 1), else the largest f^2/sigma, else the
        // largest flux; ties keep the first observation
        long long ref = -1;
        if (mode == 1) {
            for (long long k = start; k < stop; ++k) {
                if ((double)flux[k] / (double)err[k] >= snr) {
                    ref = k;
                    break;
                }
            }
        }
        if (ref < 0) {
            double best = 0.0;
            long long best_k = -1;
            float top = flux[start];
            long long top_k = start;
            for (long long k = start; k < stop; ++k) {
                const float f = flux[k];
                if (f > 0.0f) {
                    const double score = (double)f * (double)f / (double)err[k];
                    if (score > best) {
                        best = score;
                        best_k = k;
                    }
                }
                if (f > top) {
                    top = f;
                    top_k = k;
                }
            }
            ref = best_k >= 0 ? best_k : top_k;
        }
        t_ref[i] = time[ref];

        // object_scale: the peak flux, else the largest |flux|, else 1
        float peak = flux[start];
        float absolute = fabsf(flux[start]);
        for (long long k = start; k < stop; ++k) {
            const float f = flux[k];
            if (f > peak) peak = f;
            if (fabsf(f) > absolute) absolute = fabsf(f);
        }
        if (peak <= 0.0f) peak = absolute;
        scale[i] = peak > 0.0f ? peak : 1.0f;
    }
}

// Copy observations [first, first + count) of the flat arrays into the shared tile (whole block).
__device__ __forceinline__ void stage_tile(long long first, int count, const double* time,
                                           const float* flux, const float* err,
                                           const signed char* band, const float* wave,
                                           double* s_time, float* s_flux, float* s_err,
                                           signed char* s_band, float* s_wave)
{
    for (int k = threadIdx.x; k < count; k += blockDim.x) {
        s_time[k] = time[first + k];
        s_flux[k] = flux[first + k];
        s_err[k] = err[first + k];
        if (band) s_band[k] = band[first + k];
        if (wave) s_wave[k] = wave[first + k];
    }
}

extern "C" __global__ void bands_image(const long long* offsets, const double* time,
                                       const signed char* band, const float* flux, const float* err,
                                       const double* t_ref, const float* scale, const double* zfac,
                                       const signed char* rows, int n_objects, int n_rows,
                                       int n_time, double t_before, double dt, int tile,
                                       float* out)
{
    double* s_time = raster_smem;
    float* s_flux = (float*)(s_time + tile);
    float* s_err = s_flux + tile;
    signed char* s_band = (signed char*)(s_err + tile);

    const int n_pixels = n_rows * n_time;
    for (long long i = blockIdx.x; i < n_objects; i += gridDim.x) {
        const long long lo = offsets[i];
        const long long length = offsets[i + 1] - lo;
        const int n_obs = length > 0 ? (int)length : 0;
        const bool one_tile = n_obs <= tile;
        const double tr = t_ref[i], zf = zfac[i], sc = (double)scale[i];
        float* image = out + (unsigned long long)i * 3ull * (unsigned long long)n_pixels;

        if (one_tile) {
            stage_tile(lo, n_obs, time, flux, err, band, 0, s_time, s_flux, s_err, s_band, 0);
            __syncthreads();
        }
        // every thread runs the same number of passes and tiles: __syncthreads stays uniform
        for (int base = 0; base < n_pixels; base += blockDim.x) {
            const int p = base + threadIdx.x;
            const bool active = p < n_pixels;
            const int r = active ? p / n_time : 0;
            const int j = active ? p - r * n_time : 0;
            const signed char row_band = rows[r];
            // bands_pixel: binary-search a window one column wider on each side (absolute times),
            // then keep exactly the observations of this band whose time_bin is this column
            const double t_lo = add_mul(tr, add_mul(-t_before, (double)(j - 1), dt), zf);
            const double t_hi = add_mul(tr, add_mul(-t_before, (double)(j + 2), dt), zf);
            double ivar = 0.0, wflux = 0.0;
            for (int first = 0; first < n_obs; first += tile) {
                const int count = min(tile, n_obs - first);
                if (!one_tile) {
                    __syncthreads();  // everyone is done with the previous tile
                    stage_tile(lo + first, count, time, flux, err, band, 0, s_time, s_flux,
                               s_err, s_band, 0);
                    __syncthreads();
                }
                if (active) {
                    const int a = lower_bound(s_time, 0, count, t_lo);
                    const int b = lower_bound(s_time, a, count, t_hi);
                    for (int k = a; k < b; ++k) {
                        if (s_band[k] == row_band &&
                            time_bin(s_time[k], tr, zf, t_before, dt) == (double)j) {
                            const double e = (double)s_err[k];
                            const double w = 1.0 / (e * e);
                            ivar += w;
                            wflux += w * (double)s_flux[k];
                        }
                    }
                }
            }
            if (active) {
                // finish_bands: (mean, uncertainty, mask), exactly 0 where nothing was observed
                float mean = 0.0f, sigma = 0.0f, mask = 0.0f;
                if (ivar > 0.0) {
                    mean = (float)(wflux / ivar / sc);
                    sigma = (float)(1.0 / sqrt(ivar) / sc);
                    mask = 1.0f;
                }
                image[p] = mean;
                image[n_pixels + p] = sigma;
                image[2 * n_pixels + p] = mask;
            }
        }
        __syncthreads();  // the next object overwrites the shared tile
    }
}

extern "C" __global__ void heatmap_image(const long long* offsets, const double* time,
                                         const float* wave, const float* flux, const float* err,
                                         const double* t_ref, const float* scale,
                                         const double* zfac, int n_objects, int n_wave, int n_time,
                                         double t_before, double dt, double wave_min, double dwave,
                                         double sigma_t, double sigma_l, double support, int tile,
                                         float* out)
{
    double* s_time = raster_smem;
    float* s_flux = (float*)(s_time + tile);
    float* s_err = s_flux + tile;
    float* s_wave = s_err + tile;

    const int n_pixels = n_wave * n_time;
    // heatmap_pixel preselects by time with a window 1% wider than the kernel support
    const double reach = 1.01 * support * sigma_t;
    for (long long i = blockIdx.x; i < n_objects; i += gridDim.x) {
        const long long lo = offsets[i];
        const long long length = offsets[i + 1] - lo;
        const int n_obs = length > 0 ? (int)length : 0;
        const bool one_tile = n_obs <= tile;
        const double tr = t_ref[i], zf = zfac[i], sc = (double)scale[i];
        float* image = out + (unsigned long long)i * 2ull * (unsigned long long)n_pixels;

        if (one_tile) {
            stage_tile(lo, n_obs, time, flux, err, 0, wave, s_time, s_flux, s_err, 0, s_wave);
            __syncthreads();
        }
        for (int base = 0; base < n_pixels; base += blockDim.x) {
            const int p = base + threadIdx.x;
            const bool active = p < n_pixels;
            const int k_row = active ? p / n_time : 0;
            const int j = active ? p - k_row * n_time : 0;
            const double w_center = add_mul(wave_min, (double)k_row + 0.5, dwave);
            const double t_center = add_mul(-t_before, (double)j + 0.5, dt);
            const double t_lo = add_mul(tr, t_center - reach, zf);
            const double t_hi = add_mul(tr, t_center + reach, zf);
            double sum_w = 0.0, sum_wf = 0.0, sum_w2v = 0.0;
            for (int first = 0; first < n_obs; first += tile) {
                const int count = min(tile, n_obs - first);
                if (!one_tile) {
                    __syncthreads();
                    stage_tile(lo + first, count, time, flux, err, 0, wave, s_time, s_flux,
                               s_err, 0, s_wave);
                    __syncthreads();
                }
                if (active) {
                    const int a = lower_bound(s_time, 0, count, t_lo);
                    const int b = lower_bound(s_time, a, count, t_hi);
                    for (int k = a; k < b; ++k) {
                        const double dl = (w_center - (double)s_wave[k] / zf) / sigma_l;
                        if (fabs(dl) > support) continue;
                        const double dtn = (t_center - (s_time[k] - tr) / zf) / sigma_t;
                        if (fabs(dtn) > support) continue;
                        const double e = (double)s_err[k];
                        const double var = e * e;
                        const double w =
                            exp(-0.5 * __dadd_rn(__dmul_rn(dtn, dtn), __dmul_rn(dl, dl))) / var;
                        sum_w += w;
                        sum_wf += w * (double)s_flux[k];
                        sum_w2v += w * w * var;
                    }
                }
            }
            if (active) {
                // finish_heatmap: weighted mean and its propagated uncertainty, 0 when empty
                float mean = 0.0f, sigma = 0.0f;
                if (sum_w > 0.0) {
                    mean = (float)(sum_wf / sum_w / sc);
                    sigma = (float)(sqrt(sum_w2v) / sum_w / sc);
                }
                image[p] = mean;
                image[n_pixels + p] = sigma;
            }
        }
        __syncthreads();
    }
}

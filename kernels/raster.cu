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
// Shared-memory layout of bands_image (17 bytes per staged observation), tile = `tile`:
//   double time[tile] | float flux[tile] | float err[tile] | signed char band[tile]
// (heatmap_image's is described with it below).

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
                                           const signed char* band, double* s_time, float* s_flux,
                                           float* s_err, signed char* s_band)
{
    for (int k = threadIdx.x; k < count; k += blockDim.x) {
        s_time[k] = time[first + k];
        s_flux[k] = flux[first + k];
        s_err[k] = err[first + k];
        s_band[k] = band[first + k];
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
            stage_tile(lo, n_obs, time, flux, err, band, s_time, s_flux, s_err, s_band);
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
                    stage_tile(lo + first, count, time, flux, err, band, s_time, s_flux, s_err,
                               s_band);
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

// ---------------------------------------------------------------------------- heatmap
// The heatmap weight of observation k at pixel (row, column) is separable, as in the NumPy
// reference: kl(k, row) * kt(k, column) / err_k^2, each factor cut at `support` sigmas. So the
// work is done per observation and per factor, not per (pixel, observation) pair. Per object, in
// three steps separated by barriers:
//   1. one thread per staged observation: its rest-frame time and wavelength, 1/err^2, and where
//      its windows of `n_cols` columns (`c0`) and `n_rows` rows (`r0`) start;
//   2. one thread per (observation, window entry): the factor kt or kl of that column or row, 0
//      outside the cut;
//   3. one thread per pixel: the sums over the observations of its time window of table products.
//      No division and no exp per (pixel, observation) pair.
// The windows hold every column and row the cut can pass, with a column (row) to spare on each
// side (the host sizes them: heatmap_windows in cupy.py). The cut is decided on the reference's
// own float64 quotient (see kernel_factor); the factors are kept in float32 (computed by expf),
// which moves the images by float32 rounding only (~1e-7 of their values): the images are float32.
// Lanes: consecutive threads take consecutive ROWS of a column, so the lanes of a warp (two
// columns of 16 rows) walk the same observations instead of 32 different time windows.
//
// Shared memory per staged observation (36 + 4 (n_cols + n_rows) bytes, heatmap_obs_bytes in
// cupy.py):
//   double rel[tile] | double wl[tile] | double ivar[tile] | float kt[tile * n_cols] |
//   float kl[tile * n_rows] | float flux[tile] | float err[tile] | short c0[tile] | short r0[tile]

// The first column (row) of an observation's window: one before the first whose centre can be
// within `reach` of `value`, clamped to [-1, size + 1]. Clamping keeps every column of the image
// that the cut can pass inside the window: a window that would start further left is at least as
// long as the image plus one (the host caps windows at size + 4), and one starting past the image
// has no column in it.
__device__ __forceinline__ int window_start(double value, double reach, double origin,
                                            double step, int size)
{
    const double first = floor((value - reach - origin) / step - 0.5) - 1.0;
    return (int)fmin(fmax(first, -1.0), (double)(size + 1));
}

// exp(-d^2 / 2) for d = diff / sigma, 0 beyond `support`: the cut exactly as the reference decides
// it (its float64 quotient); the product with 1/sigma differs from that quotient by an ulp or two,
// so it decides everywhere but within a hair of the cut, where the quotient itself is formed.
__device__ __forceinline__ float kernel_factor(double diff, double sigma, double inv_sigma,
                                               double support)
{
    double d = diff * inv_sigma;
    if (fabs(fabs(d) - support) <= 1e-9 * support) d = diff / sigma;
    if (fabs(d) > support) return 0.0f;
    return expf((float)(-0.5 * d * d));
}

// Steps 1 and 2 for observations [first, first + count) of the flat arrays (whole block).
__device__ void stage_heatmap_tile(long long first, int count, const double* time,
                                   const float* wave, const float* flux, const float* err,
                                   double tr, double zf, int n_wave, int n_time, double t_before,
                                   double dt, double wave_min, double dwave, double sigma_t,
                                   double sigma_l, double support, int n_cols, int n_rows,
                                   double* s_rel, double* s_wl, double* s_ivar, float* s_kt,
                                   float* s_kl, float* s_flux, float* s_err, short* s_c0,
                                   short* s_r0)
{
    for (int k = threadIdx.x; k < count; k += blockDim.x) {
        const double rel = (time[first + k] - tr) / zf;   // the reference's (t - t_ref) / zfac
        const double wl = (double)wave[first + k] / zf;    // and wave / zfac
        const float e = err[first + k];
        s_rel[k] = rel;
        s_wl[k] = wl;
        s_ivar[k] = 1.0 / ((double)e * (double)e);
        s_flux[k] = flux[first + k];
        s_err[k] = e;
        s_c0[k] = (short)window_start(rel, support * sigma_t, -t_before, dt, n_time);
        s_r0[k] = (short)window_start(wl, support * sigma_l, wave_min, dwave, n_wave);
    }
    __syncthreads();
    // column centres -t_before + (j + 0.5) dt, row centres wave_min + (r + 0.5) dwave
    const int width = n_cols + n_rows;
    const double inv_t = 1.0 / sigma_t, inv_l = 1.0 / sigma_l;
    for (int item = threadIdx.x; item < count * width; item += blockDim.x) {
        const int k = item / width;
        const int c = item - k * width;
        if (c < n_cols) {
            const double centre = add_mul(-t_before, (double)(s_c0[k] + c) + 0.5, dt);
            s_kt[k * n_cols + c] = kernel_factor(centre - s_rel[k], sigma_t, inv_t, support);
        } else {
            const int r = c - n_cols;
            const double centre = add_mul(wave_min, (double)(s_r0[k] + r) + 0.5, dwave);
            s_kl[k * n_rows + r] = kernel_factor(centre - s_wl[k], sigma_l, inv_l, support);
        }
    }
}

// at most 1024 threads a block (the host allows 1..1024): registers stay within 64 a thread
extern "C" __global__ __launch_bounds__(1024) void heatmap_image(const long long* offsets, const double* time,
                                         const float* wave, const float* flux, const float* err,
                                         const double* t_ref, const float* scale,
                                         const double* zfac, int n_objects, int n_wave, int n_time,
                                         double t_before, double dt, double wave_min, double dwave,
                                         double sigma_t, double sigma_l, double support,
                                         int n_cols, int n_rows, int tile, float* out)
{
    double* s_rel = raster_smem;
    double* s_wl = s_rel + tile;
    double* s_ivar = s_wl + tile;
    float* s_kt = (float*)(s_ivar + tile);
    float* s_kl = s_kt + (long long)tile * n_cols;
    float* s_flux = s_kl + (long long)tile * n_rows;
    float* s_err = s_flux + tile;
    short* s_c0 = (short*)(s_err + tile);
    short* s_r0 = s_c0 + tile;

    const int n_pixels = n_wave * n_time;
    // the time window of a pixel: 1% wider than the kernel support (it only preselects; the
    // tables hold the exact cut)
    const double reach = 1.01 * support * sigma_t;
    for (long long i = blockIdx.x; i < n_objects; i += gridDim.x) {
        const long long lo = offsets[i];
        const long long length = offsets[i + 1] - lo;
        const int n_obs = length > 0 ? (int)length : 0;
        const bool one_tile = n_obs <= tile;
        const double tr = t_ref[i], zf = zfac[i], sc = (double)scale[i];
        float* image = out + (unsigned long long)i * 2ull * (unsigned long long)n_pixels;

        if (one_tile) {
            stage_heatmap_tile(lo, n_obs, time, wave, flux, err, tr, zf, n_wave, n_time, t_before,
                               dt, wave_min, dwave, sigma_t, sigma_l, support, n_cols, n_rows,
                               s_rel, s_wl, s_ivar, s_kt, s_kl, s_flux, s_err, s_c0, s_r0);
            __syncthreads();
        }
        // every thread runs the same number of passes and tiles: __syncthreads stays uniform
        for (int base = 0; base < n_pixels; base += blockDim.x) {
            const int p = base + threadIdx.x;
            const bool active = p < n_pixels;
            const int j = active ? p / n_wave : 0;        // column
            const int row = active ? p - j * n_wave : 0;  // rows fastest: a warp shares columns
            const double t_center = add_mul(-t_before, (double)j + 0.5, dt);
            double sum_w = 0.0, sum_wf = 0.0, sum_w2v = 0.0;
            for (int first = 0; first < n_obs; first += tile) {
                const int count = min(tile, n_obs - first);
                if (!one_tile) {
                    __syncthreads();  // everyone is done with the previous tile
                    stage_heatmap_tile(lo + first, count, time, wave, flux, err, tr, zf, n_wave,
                                       n_time, t_before, dt, wave_min, dwave, sigma_t, sigma_l,
                                       support, n_cols, n_rows, s_rel, s_wl, s_ivar, s_kt, s_kl,
                                       s_flux, s_err, s_c0, s_r0);
                    __syncthreads();
                }
                if (active) {
                    const int a = lower_bound(s_rel, 0, count, t_center - reach);
                    const int b = lower_bound(s_rel, a, count, t_center + reach);
                    for (int k = a; k < b; ++k) {
                        const int c = j - s_c0[k];
                        const int r = row - s_r0[k];
                        if (c < 0 || c >= n_cols || r < 0 || r >= n_rows) continue;
                        const double kk = (double)s_kl[k * n_rows + r] * (double)s_kt[k * n_cols + c];
                        if (kk == 0.0) continue;  // outside the cut (adds nothing)
                        const double e = (double)s_err[k];
                        const double w = kk * s_ivar[k];
                        sum_w += w;
                        sum_wf += w * (double)s_flux[k];
                        sum_w2v += w * w * (e * e);
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
                image[row * n_time + j] = mean;
                image[n_pixels + row * n_time + j] = sigma;
            }
        }
        __syncthreads();  // the next object overwrites the shared tables
    }
}

// The heatmap kernel as it was before the per-object precomputation (kernels/raster.cu before
// issue 11): one thread per pixel recomputing each candidate's offsets, divisions and exp. Kept
// only so that bench/raster_gpu.py can time the current kernel against it side by side in one run.
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

extern "C" __global__ void heatmap_image_before(const long long* offsets, const double* time,
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

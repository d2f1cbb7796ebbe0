// The element-wise tails of an encoder layer (the CUDA side of fused.rs), in f32 arithmetic
// whatever the storage dtype:
//
//   bias_gelu_T: out[r, j] = gelu_erf(y[r, j] + bias[j])                      (T -> T)
//   add_norm_T:  out[r, :] = layer_norm(y[r, :] + bias + residual[r, :])      (T, f32 -> f32)
//                with params = [bias; gamma; beta] as f32 [3, n], two-pass mean and variance;
//   split_heads_T: query/key/value [rows, 3H] plus bias -> [3, heads, rows, d], query scaled;
//   merge_heads_T: [heads, rows, d] -> [rows, H].
#include "common.cuh"

// Grid-stride over rows * n elements.
template <typename T>
__device__ void bias_gelu(const T *__restrict__ y, const T *__restrict__ bias, T *__restrict__ out,
                          uint64_t total, int n) {
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (uint64_t)gridDim.x * blockDim.x) {
        const float v = to_f32(y[i]) + to_f32(bias[i % n]);
        out[i] = from_f32<T>(0.5f * v * (1.0f + erff(v * 0.7071067811865476f)));
    }
}

// One block per row; shared memory: n + 32 floats.
template <typename T>
__device__ void add_norm(const T *__restrict__ y, const float *__restrict__ res,
                         const float *__restrict__ params, float *__restrict__ out, int n, float eps) {
    extern __shared__ float smem[];
    float *v = smem, *scratch = smem + n;
    const size_t base = (size_t)blockIdx.x * n;
    const float *bias = params, *gamma = params + n, *beta = params + 2 * n;
    float s = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float x = (to_f32(y[base + j]) + bias[j]) + res[base + j];
        v[j] = x;
        s += x;
    }
    const float mean = block_reduce<false>(s, scratch) / n;
    float q = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float d = v[j] - mean;
        q += d * d;
    }
    const float inv = 1.0f / sqrtf(block_reduce<false>(q, scratch) / n + eps);
    for (int j = threadIdx.x; j < n; j += blockDim.x) out[base + j] = (v[j] - mean) * inv * gamma[j] + beta[j];
}

#define KERNELS(SUFFIX, T)                                                                             \
    extern "C" __global__ void bias_gelu_##SUFFIX(const T *y, const T *bias, T *out, uint64_t total,  \
                                                  int n) {                                             \
        bias_gelu<T>(y, bias, out, total, n);                                                          \
    }                                                                                                  \
    extern "C" __global__ void add_norm_##SUFFIX(const T *y, const float *res, const float *params,   \
                                                 float *out, int n, float eps) {                       \
        add_norm<T>(y, res, params, out, n, eps);                                                      \
    }

KERNELS(f32, float)
KERNELS(f16, __half)
KERNELS(bf16, __nv_bfloat16)

// Query/key/value split into heads, with the projection's bias, the query scaled:
//   out[p, h, r, i] = (y[r, p*H + h*d + i] + bias[p*H + h*d + i]) * (p == 0 ? q_scale : 1)
// y [rows, 3H] -> out [3, heads, rows, d], H = heads * d. Grid-stride over the output; 32-bit
// indices (the caller checks that 3 * rows * H fits).
template <typename T>
__device__ void split_heads(const T *__restrict__ y, const T *__restrict__ bias, T *__restrict__ out,
                            uint32_t rows, uint32_t heads, uint32_t d, float q_scale) {
    const uint32_t hidden = heads * d, part_size = rows * hidden, total = 3 * part_size;
    for (uint32_t o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
        const uint32_t p = o / part_size, rem = o - p * part_size;
        const uint32_t hr = rem / d, i = rem - hr * d;  // hr = h * rows + r
        const uint32_t h = hr / rows, r = hr - h * rows;
        const uint32_t col = p * hidden + h * d + i;
        const float v = to_f32(y[(size_t)r * 3 * hidden + col]) + to_f32(bias[col]);
        out[o] = from_f32<T>(p == 0 ? v * q_scale : v);
    }
}

// Heads back into rows: x [heads, rows, d] -> out [rows, heads * d]. Grid-stride over the output;
// 32-bit indices.
template <typename T>
__device__ void merge_heads(const T *__restrict__ x, T *__restrict__ out, uint32_t rows, uint32_t heads,
                            uint32_t d) {
    const uint32_t hidden = heads * d, total = rows * hidden;
    for (uint32_t o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
        const uint32_t r = o / hidden, c = o - r * hidden;
        const uint32_t h = c / d, i = c - h * d;
        out[o] = x[((size_t)h * rows + r) * d + i];
    }
}

#define HEAD_KERNELS(SUFFIX, T)                                                                        \
    extern "C" __global__ void split_heads_##SUFFIX(const T *y, const T *bias, T *out, uint32_t rows, \
                                                    uint32_t heads, uint32_t d, float q_scale) {       \
        split_heads<T>(y, bias, out, rows, heads, d, q_scale);                                         \
    }                                                                                                  \
    extern "C" __global__ void merge_heads_##SUFFIX(const T *x, T *out, uint32_t rows, uint32_t heads, \
                                                    uint32_t d) {                                      \
        merge_heads<T>(x, out, rows, heads, d);                                                        \
    }

HEAD_KERNELS(f32, float)
HEAD_KERNELS(f16, __half)
HEAD_KERNELS(bf16, __nv_bfloat16)

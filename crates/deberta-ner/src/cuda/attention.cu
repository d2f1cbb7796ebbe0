// DeBERTa's disentangled-attention probabilities in one pass per query row (the CUDA twin of
// the fused CPU op in attention.rs):
//
//   p[b,h,q,k] = softmax_k( qk[b,h,q,k] + c2p[h,b*L+q,r(q-k)] + p2c[h,b*L+k,r(q-k)] )
//
// over the real keys k < lens[b]; padding keys get 0 and padding query rows are all 0.
// rows[q - k + L - 1] is the row of the projected relative table for distance q - k.
// One block per (b, h, q) row; scores are kept in shared memory in f32, whatever the dtype.
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

// Reduces v over the block (max or sum); every thread gets the result. `scratch` holds 32 floats.
template <bool MAX>
__device__ __forceinline__ float block_reduce(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warps = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        const float other = __shfl_xor_sync(0xffffffffu, v, o);
        v = MAX ? fmaxf(v, other) : v + other;
    }
    __syncthreads();  // scratch may still be read by the previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : (MAX ? -INFINITY : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
        const float other = __shfl_xor_sync(0xffffffffu, v, o);
        v = MAX ? fmaxf(v, other) : v + other;
    }
    return v;
}

template <typename T>
__device__ void disentangled_softmax(const T *__restrict__ qk, const T *__restrict__ c2p,
                                     const T *__restrict__ p2c, const uint32_t *__restrict__ rows,
                                     const uint32_t *__restrict__ lens, T *__restrict__ out, int batch,
                                     int heads, int len, int width, int use_c2p, int use_p2c) {
    extern __shared__ float smem[];
    float *scores = smem;        // len floats
    float *scratch = smem + len; // 32 floats
    const size_t row = blockIdx.x;  // (b * heads + h) * len + q
    const int q = (int)(row % len);
    const int bh = (int)(row / len);
    const int b = bh / heads, h = bh % heads;
    const int n = (int)lens[b];
    T *o = out + row * len;
    if (q >= n) {
        for (int k = threadIdx.x; k < len; k += blockDim.x) o[k] = from_f32<T>(0.0f);
        return;
    }
    const T *qk_row = qk + row * len;
    const size_t seq = (size_t)h * batch * len + (size_t)b * len;
    const T *c2p_row = c2p + (seq + q) * width;
    float mx = -INFINITY;
    for (int k = threadIdx.x; k < n; k += blockDim.x) {
        const uint32_t r = rows[q + len - 1 - k];
        float s = to_f32(qk_row[k]);
        if (use_c2p) s += to_f32(c2p_row[r]);
        if (use_p2c) s += to_f32(p2c[(seq + k) * width + r]);
        scores[k] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_reduce<true>(mx, scratch);
    float sum = 0.0f;
    for (int k = threadIdx.x; k < n; k += blockDim.x) {
        const float e = expf(scores[k] - mx);
        scores[k] = e;
        sum += e;
    }
    sum = block_reduce<false>(sum, scratch);
    const float inv = 1.0f / sum;
    for (int k = threadIdx.x; k < len; k += blockDim.x) o[k] = from_f32<T>(k < n ? scores[k] * inv : 0.0f);
}

#define DISENTANGLED_SOFTMAX(NAME, T)                                                                   \
    extern "C" __global__ void NAME(const T *qk, const T *c2p, const T *p2c, const uint32_t *rows,     \
                                    const uint32_t *lens, T *out, int batch, int heads, int len,       \
                                    int width, int use_c2p, int use_p2c) {                             \
        disentangled_softmax<T>(qk, c2p, p2c, rows, lens, out, batch, heads, len, width, use_c2p,      \
                                use_p2c);                                                              \
    }

DISENTANGLED_SOFTMAX(disentangled_softmax_f32, float)
DISENTANGLED_SOFTMAX(disentangled_softmax_f16, __half)
DISENTANGLED_SOFTMAX(disentangled_softmax_bf16, __nv_bfloat16)

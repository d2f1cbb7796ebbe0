// DeBERTa's disentangled-attention probabilities in one pass per query row (the CUDA twin of
// the fused CPU op in attention.rs):
//
//   p[h,b,q,k] = softmax_k( qk[h,b,q,k] + c2p[h,b*L+q,r(q-k)] + p2c[h,b*L+k,r(q-k)] )
//
// over the real keys k < lens[b]; padding keys get 0 and padding query rows are all 0.
// rows[q - k + L - 1] is the row of the projected relative table for distance q - k.
// Scores are kept in shared memory in f32, whatever the dtype. Two launch shapes:
//   *_warp:  one warp per query row, several rows per block, warp-shuffle reductions only
//            (for rows up to a few thousand keys: the usual case);
//   *_block: one block per query row, block-wide reductions (any length the shared memory holds).
#include "common.cuh"

// One query row, its keys split over `threads` threads numbered `tid`; REDUCE combines over them.
template <typename T, typename Reduce>
__device__ __forceinline__ void softmax_row(const T *__restrict__ qk, const T *__restrict__ c2p,
                                            const T *__restrict__ p2c, const uint32_t *__restrict__ rows,
                                            const uint32_t *__restrict__ lens, T *__restrict__ out,
                                            size_t row, float *scores, int tid, int threads, Reduce reduce,
                                            int batch, int heads, int len, int width, int use_c2p, int use_p2c) {
    const int q = (int)(row % len);
    const int hb = (int)(row / len);  // row = (h * batch + b) * len + q
    const int h = hb / batch, b = hb % batch;
    const int n = (int)lens[b];
    T *o = out + row * len;
    if (q >= n) {
        for (int k = tid; k < len; k += threads) o[k] = from_f32<T>(0.0f);
        return;
    }
    const T *qk_row = qk + row * len;
    const size_t seq = (size_t)h * batch * len + (size_t)b * len;
    const T *c2p_row = c2p + (seq + q) * width;
    const uint32_t *r_row = rows + q + len - 1;  // r_row[-k] is the row for distance q - k
    float mx = -INFINITY;
    for (int k = tid; k < n; k += threads) {
        const uint32_t r = r_row[-k];
        float s = to_f32(qk_row[k]);
        if (use_c2p) s += to_f32(c2p_row[r]);
        if (use_p2c) s += to_f32(p2c[(seq + k) * width + r]);
        scores[k] = s;
        mx = fmaxf(mx, s);
    }
    mx = reduce(mx, true);
    float sum = 0.0f;
    for (int k = tid; k < n; k += threads) {
        const float e = expf(scores[k] - mx);
        scores[k] = e;
        sum += e;
    }
    sum = reduce(sum, false);
    const float inv = 1.0f / sum;
    for (int k = tid; k < len; k += threads) o[k] = from_f32<T>(k < n ? scores[k] * inv : 0.0f);
}

#define ARGS                                                                                            \
    const T *qk, const T *c2p, const T *p2c, const uint32_t *rows, const uint32_t *lens, T *out,      \
        int batch, int heads, int len, int width, int use_c2p, int use_p2c
#define PASS qk, c2p, p2c, rows, lens, out

// Grid: ceil(rows / warps per block); shared memory: warps per block x len floats.
template <typename T>
__device__ void softmax_warp(ARGS) {
    extern __shared__ float smem[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + warp;
    if (row >= (size_t)batch * heads * len) return;
    auto reduce = [](float v, bool mx) { return mx ? warp_reduce<true>(v) : warp_reduce<false>(v); };
    softmax_row<T>(PASS, row, smem + (size_t)warp * len, lane, 32, reduce, batch, heads, len, width, use_c2p,
                   use_p2c);
}

// Grid: one block per row; shared memory: len + 32 floats.
template <typename T>
__device__ void softmax_block(ARGS) {
    extern __shared__ float smem[];
    float *scratch = smem + len;
    auto reduce = [scratch](float v, bool mx) {
        return mx ? block_reduce<true>(v, scratch) : block_reduce<false>(v, scratch);
    };
    softmax_row<T>(PASS, blockIdx.x, smem, threadIdx.x, blockDim.x, reduce, batch, heads, len, width, use_c2p,
                   use_p2c);
}

#define KERNELS(SUFFIX, TYPE)                                                                          \
    extern "C" __global__ void disentangled_softmax_warp_##SUFFIX(                                     \
        const TYPE *qk, const TYPE *c2p, const TYPE *p2c, const uint32_t *rows, const uint32_t *lens, \
        TYPE *out, int batch, int heads, int len, int width, int use_c2p, int use_p2c) {               \
        softmax_warp<TYPE>(PASS, batch, heads, len, width, use_c2p, use_p2c);                          \
    }                                                                                                  \
    extern "C" __global__ void disentangled_softmax_block_##SUFFIX(                                    \
        const TYPE *qk, const TYPE *c2p, const TYPE *p2c, const uint32_t *rows, const uint32_t *lens, \
        TYPE *out, int batch, int heads, int len, int width, int use_c2p, int use_p2c) {               \
        softmax_block<TYPE>(PASS, batch, heads, len, width, use_c2p, use_p2c);                         \
    }

KERNELS(f32, float)
KERNELS(f16, __half)
KERNELS(bf16, __nv_bfloat16)

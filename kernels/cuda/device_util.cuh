// Small device-side pieces the elementwise and row-wise kernels share: vector packs, alignment tests,
// grid sizing and a deterministic block reduction.
#pragma once

#include <cstdint>

namespace cohort::cuda {

constexpr int kWarp = 32;

// kVec consecutive floats, loaded and stored as one access (ld.global.v4 for kVec = 4).
template <int kVec>
struct alignas(sizeof(float) * kVec) Pack {
  float v[kVec];
};

inline bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Blocks of `threads` for `work` items, at most max_blocks (kernels grid-stride beyond it: enough to fill
// any current GPU).
inline unsigned blocks_for(int64_t work, int threads = 256, int64_t max_blocks = 8192) {
  int64_t blocks = (work + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  return unsigned(blocks < max_blocks ? blocks : max_blocks);
}

struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  // fmaxf skips NaNs, like the CPU's std::max(mx, z) starting from -inf.
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Reduction over the block, returned to every thread; the order is fixed by blockDim, so the result is
// the same from run to run. `shared` holds kWarp values; every thread must call this.
template <typename T, typename Op>
__device__ T block_reduce(T v, T identity, Op op, T* shared) {
  const int lane = int(threadIdx.x % kWarp), warp = int(threadIdx.x / kWarp);
  const int warps = int((blockDim.x + kWarp - 1) / kWarp);
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? shared[lane] : identity;
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  v = shared[0];
  __syncthreads();  // `shared` may be reused right after
  return v;
}

}  // namespace cohort::cuda

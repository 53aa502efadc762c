// The GPU GEMMs of the linear layers, over cuBLASLt: y (M, N) = x (M, K) · w (N, K)^T, all row-major,
// weights stored (out, in) as in HF checkpoints, FP32 accumulation. Three input precisions: BF16, FP8 E4M3
// with the DeepSeek-V3 block scales, and FP8 E4M3 with one scale per tensor. The CPU twins are
// kernels/cpu/bf16_linear.h and kernels/cpu/fp8_linear.h.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace cohort::cuda {

// Throws cohort::Error when `status` is not CUBLAS_STATUS_SUCCESS, naming the cuBLAS function, cuBLAS's
// status name and text, the call site and the host. Call it through COHORT_CUBLAS_CHECK.
void cublas_check(cublasStatus_t status, const char* call, const char* file, int line);

// Row-major semantics on top of column-major cuBLASLt. A row-major (R, C) matrix is the column-major (C, R)
// matrix with the same bytes, so y (M, N) row-major is D (N, M) column-major and
//   D (N, M) = op(A) · op(B)  with  A = w viewed as (K, N), op T;  B = x viewed as (K, M), op N.
// That is the "TN" layout FP8 requires: both operands K-contiguous.
//
// One Gemm per stream and per thread: calls share the workspace, the scale scratch and the cached plans,
// so two calls must not run concurrently. The Gemm belongs to the device that was current when it was made.
// All pointers are device pointers; every call is asynchronous on `stream`. Bad shapes, unsupported shapes
// and failed library calls throw cohort::Error.
class Gemm {
 public:
  // cuBLASLt's own advice for Hopper is 32 MiB of workspace (split-K and stream-K algorithms use it).
  static constexpr size_t kDefaultWorkspaceBytes = size_t(32) << 20;

  explicit Gemm(size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // BF16 inputs (bfloat16 bit patterns, as cohort::float_to_bf16 makes them); output bf16 bits or fp32.
  void bf16(const uint16_t* x,  // (M, K)
            const uint16_t* w,  // (N, K)
            uint16_t* y,        // (M, N) bf16, overwritten
            int64_t M, int64_t N, int64_t K, cudaStream_t stream);
  void bf16(const uint16_t* x, const uint16_t* w,
            float* y,  // (M, N) fp32, overwritten
            int64_t M, int64_t N, int64_t K, cudaStream_t stream);

  // E4M3 codes with DeepSeek-V3 fine-grained scales, in the layout cohort's quantizers write
  // (kernels/cpu/fp8.h, kernels/cuda/fp8_quantize.h): x ≈ x_codes * x_scales per 1x128 tile along K,
  // w ≈ w_codes * w_scales per 128x128 block. Shapes need not be multiples of 128 (the last tile or block
  // is short), but K must be a multiple of 16 (FP8 operands need 16-byte aligned rows).
  // The scales are rearranged into cuBLASLt's layout in scratch memory first (block_scales_*_to_cublaslt).
  void fp8_block_scaled(const uint8_t* x,       // (M, K) E4M3
                        const float* x_scales,  // (M, ceil(K / 128))
                        const uint8_t* w,       // (N, K) E4M3
                        const float* w_scales,  // (ceil(N / 128), ceil(K / 128))
                        uint16_t* y,            // (M, N) bf16, overwritten
                        int64_t M, int64_t N, int64_t K, cudaStream_t stream);
  void fp8_block_scaled(const uint8_t* x, const float* x_scales, const uint8_t* w, const float* w_scales,
                        float* y,  // (M, N) fp32, overwritten
                        int64_t M, int64_t N, int64_t K, cudaStream_t stream);

  // The fallback: E4M3 codes with one fp32 scale per tensor (x ≈ x_codes * *x_scale), both scales in device
  // memory. K must be a multiple of 16.
  void fp8_per_tensor(const uint8_t* x,      // (M, K) E4M3
                      const float* x_scale,  // (1)
                      const uint8_t* w,      // (N, K) E4M3
                      const float* w_scale,  // (1)
                      uint16_t* y,           // (M, N) bf16, overwritten
                      int64_t M, int64_t N, int64_t K, cudaStream_t stream);
  void fp8_per_tensor(const uint8_t* x, const float* x_scale, const uint8_t* w, const float* w_scale,
                      float* y,  // (M, N) fp32, overwritten
                      int64_t M, int64_t N, int64_t K, cudaStream_t stream);

  // Plans (descriptors, layouts and the chosen algorithm) made so far, one per distinct
  // (precision, output type, M, N, K, operand alignments).
  size_t cached_plans() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The scale layouts cuBLASLt's block-scaling modes read, which differ from cohort's quantizer layout
// (cuBLAS docs, "scaling factors layouts"; PyTorch's _scaled_mm checks the same strides):
//
// Activations, CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F on operand B: outer-dimension-major, i.e. all rows'
// scales of K tile 0, then of tile 1, ...  in: (rows, tiles) row-major  ->  out: (tiles, rows) row-major.
void block_scales_1x128_to_cublaslt(const float* scales,  // (rows, ceil(cols / 128))
                                    int64_t rows, int64_t cols,
                                    float* out,  // (ceil(cols / 128), rows)
                                    cudaStream_t stream);

// Weights, CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F on operand A: the quantizer's own order (row blocks
// outer, K blocks inner), but each row block padded to a multiple of 4 K blocks (16 bytes). Without the
// padding cuBLASLt silently reads wrong scales whenever ceil(K / 128) % 4 != 0 (PyTorch PR #166752).
// The padding is filled with 1.
int64_t block_scales_128x128_cublaslt_stride(int64_t cols);  // round_up(ceil(cols / 128), 4)
void block_scales_128x128_to_cublaslt(const float* scales,   // (ceil(rows / 128), ceil(cols / 128))
                                      int64_t rows, int64_t cols,
                                      float* out,  // (ceil(rows / 128), block_scales_128x128_cublaslt_stride(cols))
                                      cudaStream_t stream);

}  // namespace cohort::cuda

// COHORT_CUBLAS_CHECK(cublasLtMatmul(...)): the call is evaluated exactly once.
#define COHORT_CUBLAS_CHECK(call) ::cohort::cuda::cublas_check((call), #call, __FILE__, __LINE__)

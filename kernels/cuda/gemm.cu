// cuBLASLt behind cohort::cuda::Gemm: one matmul plan (descriptor, layouts, heuristic's algorithm) per shape,
// made on first use and cached, and the two small kernels that rearrange cohort's block scales into the
// layout cuBLASLt's VEC128 / BLK128x128 scaling modes read.
#include "kernels/cuda/gemm.h"

#include <unistd.h>

#include <array>
#include <map>
#include <sstream>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/error.h"

namespace cohort::cuda {

void cublas_check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  // The function's name is enough to find the call; its arguments are at file:line.
  std::string function(call);
  function = function.substr(0, function.find('('));
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = '\0';
  fail_at(file, line,
          std::string("cuBLASLt error ") + cublasLtGetStatusName(status) + " (" + cublasLtGetStatusString(status) +
              ") from " + function + " (host " + host + ")");
}

namespace {

constexpr int64_t kBlock = 128;  // must equal cohort::kFp8Tile (kernels/cpu/fp8.h)
constexpr int kThreads = 256;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

unsigned grid_for(int64_t n) {
  const int64_t blocks = ceil_div(n, kThreads);
  COHORT_REQUIRE(blocks <= 0x7FFFFFFF, "cuda::Gemm: scale tensor too large (" << n << " elements)");
  return unsigned(blocks);
}

// out[tile * rows + row] = in[row * tiles + tile]. Writes are coalesced; the strided reads stay in L2
// (tiles is small: K / 128). The tensor is M * K / 128 floats, tiny next to the GEMM.
__global__ void scales_1x128_to_outer_major(const float* __restrict__ in,  // (rows, tiles)
                                            int64_t rows, int64_t tiles,
                                            float* __restrict__ out) {  // (tiles, rows)
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * tiles) return;
  const int64_t tile = i / rows, row = i % rows;
  out[i] = in[row * tiles + tile];
}

// out[row_block * stride + col_block] = in[row_block * col_blocks + col_block], padding columns = 1.
__global__ void scales_128x128_pad_rows(const float* __restrict__ in,  // (row_blocks, col_blocks)
                                        int64_t row_blocks, int64_t col_blocks, int64_t stride,
                                        float* __restrict__ out) {  // (row_blocks, stride)
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= row_blocks * stride) return;
  const int64_t row_block = i / stride, col_block = i % stride;
  out[i] = col_block < col_blocks ? in[row_block * col_blocks + col_block] : 1.0f;
}

enum class Precision : int { bf16 = 0, fp8_block_scaled = 1, fp8_per_tensor = 2 };

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::bf16:
      return "BF16";
    case Precision::fp8_block_scaled:
      return "FP8 block-scaled";
    case Precision::fp8_per_tensor:
      return "FP8 per-tensor";
  }
  return "?";
}

// The largest power of two, at most 256, dividing the address: cuBLASLt's heuristic assumes 256-byte aligned
// buffers unless told otherwise, and an offset pointer (a slice of a batch) must not get an algorithm that
// needs more.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

template <class T>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const T& value) {
  COHORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)));
}

template <class T>
void set_preference(cublasLtMatmulPreference_t preference, cublasLtMatmulPreferenceAttributes_t attribute,
                    const T& value) {
  COHORT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(value)));
}

// Everything one shape needs, made once. The scale pointers live in `desc` and are re-set on every call.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr;  // w as (K, N) column-major, ld K
  cublasLtMatrixLayout_t b = nullptr;  // x as (K, M) column-major, ld K
  cublasLtMatrixLayout_t d = nullptr;  // y as (N, M) column-major, ld N; also C (beta = 0)
  cublasLtMatmulAlgo_t algo{};

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {  // destroy functions only fail on a null handle; nothing to report from a destructor
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

struct PreferenceGuard {
  cublasLtMatmulPreference_t preference = nullptr;
  ~PreferenceGuard() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
  }
};

// What a plan depends on: precision, output type, M, N, K, and the alignments of x, w and y.
using PlanKey = std::array<int64_t, 8>;

}  // namespace

struct Gemm::State {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  float* scale_scratch = nullptr;  // the block scales in cuBLASLt's layout: activations, then weights
  size_t scale_scratch_floats = 0;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;

  ~State() {
    plans.clear();
    if (scale_scratch) cudaFree(scale_scratch);
    if (workspace) cudaFree(workspace);
    if (handle) cublasLtDestroy(handle);
  }

  // Grows (never shrinks) the scratch. cudaFree waits for the device, so work still reading the old
  // buffer on any stream finishes first.
  float* scratch(size_t floats) {
    if (floats > scale_scratch_floats) {
      if (scale_scratch) COHORT_CUDA_CHECK(cudaFree(scale_scratch));
      scale_scratch = nullptr, scale_scratch_floats = 0;
      COHORT_CUDA_CHECK(cudaMalloc(&scale_scratch, floats * sizeof(float)));
      scale_scratch_floats = floats;
    }
    return scale_scratch;
  }

  Plan& plan(Precision precision, cudaDataType_t out_type, int64_t M, int64_t N, int64_t K, const void* x,
             const void* w, const void* y, const void* x_scale, const void* w_scale);

  void run(Precision precision, cudaDataType_t out_type, const void* x, const void* x_scale, const void* w,
           const void* w_scale, void* y, int64_t M, int64_t N, int64_t K, cudaStream_t stream);
};

namespace {

[[noreturn]] void fail_no_algorithm(Precision precision, cudaDataType_t out_type, int64_t M, int64_t N, int64_t K,
                                    cublasStatus_t status, const char* file, int line) {
  int device = -1;
  cudaDeviceProp properties{};
  std::ostringstream gpu;
  if (cudaGetDevice(&device) == cudaSuccess && cudaGetDeviceProperties(&properties, device) == cudaSuccess)
    gpu << properties.name << ", sm_" << properties.major << properties.minor;
  else
    gpu << "unknown GPU";
  std::ostringstream message;
  message << "cuBLASLt has no algorithm for " << precision_name(precision) << " " << M << " x " << N << " x " << K
          << " (M x N x K, " << (out_type == CUDA_R_16BF ? "bf16" : "fp32") << " output) on this GPU (" << gpu.str()
          << ", cuBLASLt " << cublasLtGetVersion() << "; heuristic status " << cublasLtGetStatusName(status) << ")";
  fail_at(file, line, message.str());
}

}  // namespace

Plan& Gemm::State::plan(Precision precision, cudaDataType_t out_type, int64_t M, int64_t N, int64_t K, const void* x,
                        const void* w, const void* y, const void* x_scale, const void* w_scale) {
  const uint32_t align_x = alignment_of(x), align_w = alignment_of(w), align_y = alignment_of(y);
  const PlanKey key{int64_t(precision), int64_t(out_type), M, N, K, align_x, align_w, align_y};
  auto found = plans.find(key);
  if (found != plans.end()) return *found->second;

  auto plan = std::make_unique<Plan>();
  const bool fp8 = precision != Precision::bf16;
  const cudaDataType_t in_type = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  if (precision == Precision::fp8_block_scaled) {
    // The VEC128 / BLK128x128 modes arrived in cuBLAS 12.9 (Hopper only); older libraries reject the
    // attribute with a bare INVALID_VALUE, so say what is missing.
    COHORT_REQUIRE(cublasLtGetVersion() >= 120900,
                   "cuda::Gemm: FP8 block scaling needs cuBLASLt 12.9 or newer, "
                   "this process loaded version "
                       << cublasLtGetVersion());
  }

  // Scale type fp32: alpha, beta and the FP8 scales are fp32; compute 32F keeps the accumulation in fp32.
  COHORT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;  // attribute type int32_t
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, trans_a);
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, trans_b);
  if (fp8) {
    // Fast accumulation would keep the whole K sum in the tensor cores' reduced-precision accumulator;
    // DeepSeek-V3's recipe promotes to fp32 (the default, 0). Block scaling does not allow it anyway.
    const int8_t fast_accumulation = 0;  // attribute type int8_t
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, fast_accumulation);
  }
  if (precision == Precision::fp8_block_scaled) {
    // A is the weight (128x128 blocks), B the activation (1x128 tiles along K). Attribute type int32_t.
    const int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    const int32_t b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, a_mode);
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, b_mode);
  }
  if (fp8) {
    // Set before the heuristic query too: it may look at them (alignment), as it does at the data pointers.
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, w_scale);
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, x_scale);
  }

  COHORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, in_type, uint64_t(K), uint64_t(N), K));
  COHORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, in_type, uint64_t(K), uint64_t(M), K));
  COHORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, out_type, uint64_t(N), uint64_t(M), N));

  PreferenceGuard guard;
  COHORT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&guard.preference));
  const uint64_t max_workspace = workspace_bytes;  // attribute type uint64_t
  set_preference(guard.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, max_workspace);
  set_preference(guard.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_w);  // uint32_t
  set_preference(guard.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_x);
  set_preference(guard.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_y);
  set_preference(guard.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_y);

  cublasLtMatmulHeuristicResult_t result{};
  int found_count = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, plan->desc, plan->a, plan->b, plan->d, plan->d,
                                                               guard.preference, 1, &result, &found_count);
  // NOT_SUPPORTED is how the heuristic says "nothing for this configuration"; other failures are errors.
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found_count == 0))
    fail_no_algorithm(precision, out_type, M, N, K, status, __FILE__, __LINE__);
  COHORT_CUBLAS_CHECK(status);
  if (result.state != CUBLAS_STATUS_SUCCESS)
    fail_no_algorithm(precision, out_type, M, N, K, result.state, __FILE__, __LINE__);
  plan->algo = result.algo;  // its result.workspaceSize is at most the preference's maximum, all we have
  return *plans.emplace(key, std::move(plan)).first->second;
}

void Gemm::State::run(Precision precision, cudaDataType_t out_type, const void* x, const void* x_scale, const void* w,
                      const void* w_scale, void* y, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  COHORT_REQUIRE(M >= 0 && N >= 0 && K >= 0,
                 "cuda::Gemm " << precision_name(precision) << ": bad shape M=" << M << " N=" << N << " K=" << K);
  const bool fp8 = precision != Precision::bf16;
  COHORT_REQUIRE(!fp8 || K % 16 == 0, "cuda::Gemm " << precision_name(precision) << ": K = " << K
                                                    << " must be a multiple of 16 (FP8 operands need 16-byte aligned "
                                                       "rows; pad K with zero columns)");
  if (M == 0 || N == 0) return;
  const size_t out_size = out_type == CUDA_R_16BF ? 2 : 4;
  if (K == 0) {  // an empty sum; cuBLASLt does not take K = 0. Zero bits are +0 in bf16 and fp32.
    COHORT_CUDA_CHECK(cudaMemsetAsync(y, 0, size_t(M) * size_t(N) * out_size, stream));
    return;
  }
  COHORT_REQUIRE(x && w && y && (!fp8 || (x_scale && w_scale)),
                 "cuda::Gemm " << precision_name(precision) << ": null pointer");

  if (precision == Precision::fp8_block_scaled) {
    // Scratch: activation scales (tiles, M), then, 256-byte aligned, weight scales (row blocks, stride).
    const int64_t tiles = ceil_div(K, kBlock);
    const size_t x_floats = size_t(tiles * M), x_padded = (x_floats + 63) / 64 * 64;
    const size_t w_floats = size_t(ceil_div(N, kBlock) * block_scales_128x128_cublaslt_stride(K));
    float* scratch_base = scratch(x_padded + w_floats);
    block_scales_1x128_to_cublaslt(static_cast<const float*>(x_scale), M, K, scratch_base, stream);
    block_scales_128x128_to_cublaslt(static_cast<const float*>(w_scale), N, K, scratch_base + x_padded, stream);
    x_scale = scratch_base;
    w_scale = scratch_base + x_padded;
  }

  Plan& p = plan(precision, out_type, M, N, K, x, w, y, x_scale, w_scale);
  if (fp8) {
    set_desc(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, w_scale);
    set_desc(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, x_scale);
  }
  const float alpha = 1.0f, beta = 0.0f;  // host pointer mode (the default)
  COHORT_CUBLAS_CHECK(cublasLtMatmul(handle, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.d, y, p.d, &p.algo, workspace,
                                     workspace_bytes, stream));
}

Gemm::Gemm(size_t workspace_bytes) : state_(std::make_unique<State>()) {
  COHORT_CUBLAS_CHECK(cublasLtCreate(&state_->handle));
  if (workspace_bytes > 0) COHORT_CUDA_CHECK(cudaMalloc(&state_->workspace, workspace_bytes));
  state_->workspace_bytes = workspace_bytes;
}

Gemm::~Gemm() = default;

size_t Gemm::cached_plans() const {
  return state_->plans.size();
}

void Gemm::bf16(const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t M, int64_t N, int64_t K,
                cudaStream_t stream) {
  state_->run(Precision::bf16, CUDA_R_16BF, x, nullptr, w, nullptr, y, M, N, K, stream);
}

void Gemm::bf16(const uint16_t* x, const uint16_t* w, float* y, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  state_->run(Precision::bf16, CUDA_R_32F, x, nullptr, w, nullptr, y, M, N, K, stream);
}

void Gemm::fp8_block_scaled(const uint8_t* x, const float* x_scales, const uint8_t* w, const float* w_scales,
                            uint16_t* y, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  state_->run(Precision::fp8_block_scaled, CUDA_R_16BF, x, x_scales, w, w_scales, y, M, N, K, stream);
}

void Gemm::fp8_block_scaled(const uint8_t* x, const float* x_scales, const uint8_t* w, const float* w_scales, float* y,
                            int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  state_->run(Precision::fp8_block_scaled, CUDA_R_32F, x, x_scales, w, w_scales, y, M, N, K, stream);
}

void Gemm::fp8_per_tensor(const uint8_t* x, const float* x_scale, const uint8_t* w, const float* w_scale, uint16_t* y,
                          int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  state_->run(Precision::fp8_per_tensor, CUDA_R_16BF, x, x_scale, w, w_scale, y, M, N, K, stream);
}

void Gemm::fp8_per_tensor(const uint8_t* x, const float* x_scale, const uint8_t* w, const float* w_scale, float* y,
                          int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  state_->run(Precision::fp8_per_tensor, CUDA_R_32F, x, x_scale, w, w_scale, y, M, N, K, stream);
}

void block_scales_1x128_to_cublaslt(const float* scales, int64_t rows, int64_t cols, float* out, cudaStream_t stream) {
  COHORT_REQUIRE(rows >= 0 && cols >= 0,
                 "cuda::block_scales_1x128_to_cublaslt: bad shape (" << rows << ", " << cols << ")");
  const int64_t tiles = ceil_div(cols, kBlock);
  if (rows * tiles == 0) return;
  scales_1x128_to_outer_major<<<grid_for(rows * tiles), kThreads, 0, stream>>>(scales, rows, tiles, out);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

int64_t block_scales_128x128_cublaslt_stride(int64_t cols) {
  return ceil_div(ceil_div(cols, kBlock), 4) * 4;
}

void block_scales_128x128_to_cublaslt(const float* scales, int64_t rows, int64_t cols, float* out,
                                      cudaStream_t stream) {
  COHORT_REQUIRE(rows >= 0 && cols >= 0,
                 "cuda::block_scales_128x128_to_cublaslt: bad shape (" << rows << ", " << cols << ")");
  const int64_t row_blocks = ceil_div(rows, kBlock), col_blocks = ceil_div(cols, kBlock);
  const int64_t stride = block_scales_128x128_cublaslt_stride(cols);
  if (row_blocks * stride == 0) return;
  scales_128x128_pad_rows<<<grid_for(row_blocks * stride), kThreads, 0, stream>>>(scales, row_blocks, col_blocks,
                                                                                  stride, out);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cohort::cuda

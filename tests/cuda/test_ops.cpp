// The CUDA twins of the CPU layers (RMSNorm, SwiGLU, RoPE, embedding, AdamW, logprob) against the
// CPU references on the same random inputs, forward and backward, on shapes that are not
// multiples of any block or pack size, with pre-filled gradient buffers for the += contracts.
//
// Tolerance: fp32 results are compared with the double CPU reference run on the same (float)
// inputs, |got - ref| <= atol + rtol * |ref|, rtol = 1e-5. Each comparison also holds the float
// CPU result to the same bound, as a witness that the bound is one a correct fp32 implementation
// meets. Where the GPU promises the CPU's exact summation order (embedding), results must be
// equal bit for bit.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/logprob.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/logprob.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"
#include "kernels/random.h"
#include "tests/common/check.h"
#include "tests/cuda/gpu.h"

namespace cohort {
namespace {

using testing::cast;
using testing::expect_close;

constexpr double kRtol = 1e-5;
constexpr double kAtol = 1e-5;  // for values of order 1

std::vector<float> random_floats(size_t n, uint64_t seed, double scale = 1.0) {
  return cast<float>(testing::random_vector(n, seed, scale));
}

std::vector<double> widen(const std::vector<float>& v) {
  return cast<double>(v);
}

// A device array of `n` elements starting `offset` elements into its allocation: offset 1 breaks
// 16-byte alignment, so the kernels take their one-float path instead of 16-byte packs.
template <typename T>
struct DeviceArray {
  test::DeviceBuffer<T> buffer;
  T* ptr;
  size_t n;
  DeviceArray(size_t count, int64_t offset) : buffer((int64_t)count + offset), ptr(buffer.ptr + offset), n(count) {}
  DeviceArray(const std::vector<T>& host, int64_t offset) : DeviceArray(host.size(), offset) { upload(host); }
  void upload(const std::vector<T>& host) {
    ASSERT_EQ(host.size(), n);
    COHORT_CUDA_CHECK(cudaMemcpy(ptr, host.data(), sizeof(T) * n, cudaMemcpyHostToDevice));
  }
  std::vector<T> to_host() const {
    std::vector<T> out(n);
    COHORT_CUDA_CHECK(cudaMemcpy(out.data(), ptr, sizeof(T) * n, cudaMemcpyDeviceToHost));
    return out;
  }
};

void synchronize() {
  COHORT_CUDA_CHECK(cudaDeviceSynchronize());
}

// The GPU result and, as the witness, the float CPU result, both against the double reference.
void expect_fp32(const std::vector<float>& gpu, const std::vector<float>& cpu_float, const std::vector<double>& ref,
                 double atol, double rtol, const std::string& what) {
  expect_close(cpu_float, ref, atol, rtol, what + " (float CPU vs double CPU)");
  expect_close(gpu, ref, atol, rtol, what + " (GPU vs double CPU)");
}

void expect_bit_equal(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(std::memcmp(&got[i], &want[i], sizeof(float)), 0)
        << what << ": element " << i << " is " << got[i] << ", want " << want[i];
}

std::string shape_name(const char* op, int64_t a, int64_t b, int64_t offset) {
  return std::string(op) + " (" + std::to_string(a) + ", " + std::to_string(b) + ")" + (offset ? " misaligned" : "");
}

// ---------------------------------------------------------------------------------------------

TEST(CudaRmsNorm, ForwardAndBackwardMatchCpu) {
  COHORT_SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t N, C, offset;
  };
  // 771: no 16-byte packs; 1024: packs, and 300 rows make 5 groups of the dweight reduction.
  for (const Shape& s : {Shape{67, 771, 0}, Shape{300, 1024, 0}, Shape{5, 1024, 1}, Shape{1, 3, 0}}) {
    const std::string what = shape_name("rmsnorm", s.N, s.C, s.offset);
    SCOPED_TRACE(what);
    const size_t NC = (size_t)(s.N * s.C);
    const float eps = 1e-6f;
    const std::vector<float> x = random_floats(NC, 1, 2.0), dout = random_floats(NC, 2);
    const std::vector<float> dx0 = random_floats(NC, 3), dweight0 = random_floats((size_t)s.C, 4);
    std::vector<float> weight = random_floats((size_t)s.C, 5, 0.1);
    for (float& w : weight) w += 1.0f;

    std::vector<float> out_f(NC), rstd_f((size_t)s.N), dx_f = dx0, dw_f = dweight0;
    cpu::rmsnorm_forward(out_f.data(), rstd_f.data(), x.data(), weight.data(), s.N, s.C, eps);
    cpu::rmsnorm_backward(dx_f.data(), dw_f.data(), dout.data(), x.data(), weight.data(), rstd_f.data(), s.N, s.C);
    const std::vector<double> xd = widen(x), wd = widen(weight), doutd = widen(dout);
    std::vector<double> out_d(NC), rstd_d((size_t)s.N), dx_d = widen(dx0), dw_d = widen(dweight0);
    cpu::rmsnorm_forward(out_d.data(), rstd_d.data(), xd.data(), wd.data(), s.N, s.C, (double)eps);
    cpu::rmsnorm_backward(dx_d.data(), dw_d.data(), doutd.data(), xd.data(), wd.data(), rstd_d.data(), s.N, s.C);

    DeviceArray<float> d_x(x, s.offset), d_w(weight, s.offset), d_out(NC, s.offset), d_rstd((size_t)s.N, 0);
    DeviceArray<float> d_dout(dout, s.offset), d_dx(dx0, s.offset), d_dw(dweight0, 0);
    cuda::rmsnorm_forward(d_out.ptr, d_rstd.ptr, d_x.ptr, d_w.ptr, s.N, s.C, eps, nullptr);
    cuda::rmsnorm_backward(d_dx.ptr, d_dw.ptr, d_dout.ptr, d_x.ptr, d_w.ptr, d_rstd.ptr, s.N, s.C, nullptr);
    synchronize();
    expect_fp32(d_out.to_host(), out_f, out_d, kAtol, kRtol, "out");
    expect_fp32(d_rstd.to_host(), rstd_f, rstd_d, kAtol, kRtol, "rstd");
    expect_fp32(d_dx.to_host(), dx_f, dx_d, kAtol, kRtol, "dx (pre-filled, +=)");
    // dweight sums N rows in fp32, as the CPU does, so its bound grows as sqrt(N): at N = 300 the
    // float CPU (one thread, all rows in one fp32 sum) was 1.1 x kAtol off, 0.06 of this bound.
    expect_fp32(d_dw.to_host(), dw_f, dw_d, kAtol * std::sqrt((double)s.N), kRtol, "dweight (pre-filled, +=)");

    // Deterministic: the same inputs give the same bits again.
    const std::vector<float> dx_first = d_dx.to_host(), dw_first = d_dw.to_host();
    d_dx.upload(dx0);
    d_dw.upload(dweight0);
    cuda::rmsnorm_backward(d_dx.ptr, d_dw.ptr, d_dout.ptr, d_x.ptr, d_w.ptr, d_rstd.ptr, s.N, s.C, nullptr);
    synchronize();
    expect_bit_equal(d_dx.to_host(), dx_first, "dx, second run");
    expect_bit_equal(d_dw.to_host(), dw_first, "dweight, second run");
  }
}

// ---------------------------------------------------------------------------------------------

TEST(CudaSwiGlu, ForwardAndBackwardMatchCpu) {
  COHORT_SKIP_WITHOUT_GPU();
  for (int64_t offset : {0, 1}) {
    const int64_t n = 1001;  // 250 packs of 4 and a tail of 1
    const std::string what = shape_name("swiglu", n, 1, offset);
    SCOPED_TRACE(what);
    std::vector<float> gate = random_floats((size_t)n, 11, 3.0);
    gate[0] = 0.0f, gate[1] = 60.0f, gate[2] = -60.0f, gate[3] = -100.0f, gate[(size_t)n - 1] = 20.0f;  // saturation
    const std::vector<float> up = random_floats((size_t)n, 12), dout = random_floats((size_t)n, 13);
    const std::vector<float> dgate0 = random_floats((size_t)n, 14), dup0 = random_floats((size_t)n, 15);

    std::vector<float> out_f((size_t)n), dgate_f = dgate0, dup_f = dup0;
    cpu::swiglu_forward(out_f.data(), gate.data(), up.data(), n);
    cpu::swiglu_backward(dgate_f.data(), dup_f.data(), dout.data(), gate.data(), up.data(), n);
    const std::vector<double> gd = widen(gate), ud = widen(up), doutd = widen(dout);
    std::vector<double> out_d((size_t)n), dgate_d = widen(dgate0), dup_d = widen(dup0);
    cpu::swiglu_forward(out_d.data(), gd.data(), ud.data(), n);
    cpu::swiglu_backward(dgate_d.data(), dup_d.data(), doutd.data(), gd.data(), ud.data(), n);

    DeviceArray<float> d_gate(gate, offset), d_up(up, offset), d_out((size_t)n, offset), d_dout(dout, offset);
    DeviceArray<float> d_dgate(dgate0, offset), d_dup(dup0, offset);
    cuda::swiglu_forward(d_out.ptr, d_gate.ptr, d_up.ptr, n, nullptr);
    cuda::swiglu_backward(d_dgate.ptr, d_dup.ptr, d_dout.ptr, d_gate.ptr, d_up.ptr, n, nullptr);
    synchronize();
    expect_fp32(d_out.to_host(), out_f, out_d, kAtol, kRtol, "out");
    expect_fp32(d_dgate.to_host(), dgate_f, dgate_d, kAtol, kRtol, "dgate (pre-filled, +=)");
    expect_fp32(d_dup.to_host(), dup_f, dup_d, kAtol, kRtol, "dup (pre-filled, +=)");
  }
}

// ---------------------------------------------------------------------------------------------

TEST(CudaRope, TablesForwardAndBackwardMatchCpu) {
  COHORT_SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t N, heads, head_dim, max_positions;
    double theta;
  };
  // head_dim 70: 35 pairs per head; 9: odd, the last channel is left alone.
  for (const Shape& s : {Shape{37, 3, 70, 97, 1e6}, Shape{19, 5, 64, 4099, 1e4}, Shape{8, 2, 9, 11, 1e4}}) {
    const std::string what = shape_name("rope", s.N * s.heads, s.head_dim, 0);
    SCOPED_TRACE(what);
    const int64_t half = s.head_dim / 2;
    const size_t table = (size_t)(s.max_positions * half), size = (size_t)(s.N * s.heads * s.head_dim);
    std::vector<int32_t> positions((size_t)s.N);
    Rng rng(21);
    for (auto& p : positions) p = (int32_t)rng.below((uint64_t)s.max_positions);
    positions[0] = 0, positions[(size_t)s.N - 1] = (int32_t)(s.max_positions - 1);
    const std::vector<float> x = random_floats(size, 22), dy = random_floats(size, 23);

    std::vector<float> cos_f(table), sin_f(table);
    std::vector<double> cos_d(table), sin_d(table);
    cpu::rope_tables(cos_f.data(), sin_f.data(), s.max_positions, s.head_dim, s.theta);
    cpu::rope_tables(cos_d.data(), sin_d.data(), s.max_positions, s.head_dim, s.theta);
    std::vector<float> y_f = x, dx_f = dy;
    cpu::rope_forward(y_f.data(), positions.data(), cos_f.data(), sin_f.data(), s.N, s.heads, s.head_dim);
    cpu::rope_backward(dx_f.data(), positions.data(), cos_f.data(), sin_f.data(), s.N, s.heads, s.head_dim);
    std::vector<double> y_d = widen(x), dx_d = widen(dy);
    cpu::rope_forward(y_d.data(), positions.data(), cos_d.data(), sin_d.data(), s.N, s.heads, s.head_dim);
    cpu::rope_backward(dx_d.data(), positions.data(), cos_d.data(), sin_d.data(), s.N, s.heads, s.head_dim);

    // Tables: rounded from double on both sides; CUDA's double pow/sincos (2 ulp of double) may
    // land an entry one fp32 ulp (2^-23 relative) away from the CPU's. The absolute term covers
    // entries next to a zero of sin or cos, where pow's last bits move the angle (up to ~4e3 rad
    // here) by ~1e-12 and so the value by as much.
    DeviceArray<float> d_cos(table, 0), d_sin(table, 0);
    cuda::rope_tables(d_cos.ptr, d_sin.ptr, s.max_positions, s.head_dim, s.theta, nullptr);
    synchronize();
    const double table_atol = 1e-10, table_rtol = 2.0 / (1 << 23);
    expect_fp32(d_cos.to_host(), cos_f, cos_d, table_atol, table_rtol, "cos table");
    expect_fp32(d_sin.to_host(), sin_f, sin_d, table_atol, table_rtol, "sin table");

    // Rotations use the CPU's float tables, so only the rotation itself is compared.
    d_cos.upload(cos_f);
    d_sin.upload(sin_f);
    DeviceArray<int32_t> d_pos(positions, 0);
    DeviceArray<float> d_y(x, 0), d_dx(dy, 0);
    cuda::rope_forward(d_y.ptr, d_pos.ptr, d_cos.ptr, d_sin.ptr, s.N, s.heads, s.head_dim, nullptr);
    cuda::rope_backward(d_dx.ptr, d_pos.ptr, d_cos.ptr, d_sin.ptr, s.N, s.heads, s.head_dim, nullptr);
    synchronize();
    expect_fp32(d_y.to_host(), y_f, y_d, kAtol, kRtol, "forward");
    expect_fp32(d_dx.to_host(), dx_f, dx_d, kAtol, kRtol, "backward");

    // Backward undoes forward (a rotation): x comes back.
    cuda::rope_backward(d_y.ptr, d_pos.ptr, d_cos.ptr, d_sin.ptr, s.N, s.heads, s.head_dim, nullptr);
    synchronize();
    expect_close(d_y.to_host(), x, kAtol, kRtol, "forward then backward");
  }
}

// ---------------------------------------------------------------------------------------------

TEST(CudaEmbedding, ForwardAndBackwardEqualCpuBitForBit) {
  COHORT_SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t N, V, C, offset;
  };
  // Few distinct tokens, so most rows of dwte take many positions; 20000 positions take CUB's
  // multi-block sort path; 771 and offset 1 take the one-float path.
  for (const Shape& s :
       {Shape{53, 17, 771, 0}, Shape{53, 17, 1000, 0}, Shape{41, 9, 1000, 1}, Shape{20000, 50, 36, 0}}) {
    const std::string what = shape_name("embedding", s.N, s.C, s.offset);
    SCOPED_TRACE(what);
    std::vector<int32_t> tokens((size_t)s.N);
    Rng rng(31);
    for (auto& t : tokens) t = (int32_t)rng.below((uint64_t)(s.V - 2));  // the last two rows get no gradient
    tokens[0] = 0, tokens[(size_t)s.N - 1] = 0;
    const std::vector<float> wte = random_floats((size_t)(s.V * s.C), 32);
    const std::vector<float> dout = random_floats((size_t)(s.N * s.C), 33);
    const std::vector<float> dwte0 = random_floats((size_t)(s.V * s.C), 34);

    std::vector<float> out_f((size_t)(s.N * s.C)), dwte_f = dwte0;
    cpu::embedding_forward(out_f.data(), tokens.data(), wte.data(), s.N, s.C);
    cpu::embedding_backward(dwte_f.data(), dout.data(), tokens.data(), s.N, s.C);

    DeviceArray<int32_t> d_tokens(tokens, 0);
    DeviceArray<float> d_wte(wte, s.offset), d_out((size_t)(s.N * s.C), s.offset), d_dout(dout, s.offset);
    DeviceArray<float> d_dwte(dwte0, s.offset);
    cuda::embedding_forward(d_out.ptr, d_tokens.ptr, d_wte.ptr, s.N, s.C, nullptr);
    cuda::embedding_backward(d_dwte.ptr, d_dout.ptr, d_tokens.ptr, s.N, s.C, nullptr);
    synchronize();
    expect_bit_equal(d_out.to_host(), out_f, "forward");
    // Each table row adds its positions in increasing order, from the pre-filled value: the
    // CPU's order, so the same bits.
    expect_bit_equal(d_dwte.to_host(), dwte_f, "dwte (pre-filled, +=)");
  }
}

// ---------------------------------------------------------------------------------------------

TEST(CudaAdamW, ThreeStepsMatchCpu) {
  COHORT_SKIP_WITHOUT_GPU();
  for (int64_t offset : {0, 1}) {
    const int64_t n = 1003;  // 250 packs of 4 and a tail of 3
    const std::string what = shape_name("adamw", n, 1, offset);
    SCOPED_TRACE(what);
    cpu::AdamWSettings settings;
    settings.lr = 1e-3, settings.beta1 = 0.9, settings.beta2 = 0.95, settings.eps = 1e-8, settings.weight_decay = 0.1;
    const std::vector<float> param0 = random_floats((size_t)n, 41);
    std::vector<float> param_f = param0, m_f((size_t)n, 0.0f), v_f((size_t)n, 0.0f);
    std::vector<double> param_d = widen(param0), m_d((size_t)n, 0.0), v_d((size_t)n, 0.0);
    DeviceArray<float> d_param(param0, offset), d_m(m_f, offset), d_v(v_f, offset), d_grad((size_t)n, offset);
    for (int64_t step = 1; step <= 3; ++step) {
      settings.step = step;
      const std::vector<float> grad = random_floats((size_t)n, 42 + (uint64_t)step, 0.5);
      const std::vector<double> grad_d = widen(grad);
      cpu::adamw_update(param_f.data(), grad.data(), m_f.data(), v_f.data(), n, settings);
      cpu::adamw_update(param_d.data(), grad_d.data(), m_d.data(), v_d.data(), n, settings);
      d_grad.upload(grad);
      cuda::adamw_update(d_param.ptr, d_grad.ptr, d_m.ptr, d_v.ptr, n, settings, nullptr);
    }
    synchronize();
    expect_fp32(d_param.to_host(), param_f, param_d, 1e-6, kRtol, "param");
    expect_fp32(d_m.to_host(), m_f, m_d, 1e-7, kRtol, "m");
    expect_fp32(d_v.to_host(), v_f, v_d, 1e-9, kRtol, "v");
  }
}

// ---------------------------------------------------------------------------------------------

// logits (N, V) = h (N, C) w_out (V, C)^T in double, rounded to fp32: what the GPU GEMM hands
// to cuda::logprob_forward.
std::vector<float> logits_of(const std::vector<float>& h, const std::vector<float>& w_out, int64_t N, int64_t C,
                             int64_t V) {
  std::vector<float> z((size_t)(N * V));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < V; ++j) {
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += (double)h[(size_t)(n * C + c)] * w_out[(size_t)(j * C + c)];
      z[(size_t)(n * V + j)] = (float)s;
    }
  return z;
}

TEST(CudaLogprob, ForwardAndBackwardMatchCpu) {
  COHORT_SKIP_WITHOUT_GPU();
  const int64_t N = 41, C = 24;
  const int64_t gpu_chunk = 16, cpu_chunk = 7;  // 41 positions: GPU chunks of 16, 16, 9
  for (int64_t V : {1003, 1000}) {              // one-float path, 16-byte packs
    const std::string what = shape_name("logprob", N, V, 0);
    SCOPED_TRACE(what);
    Rng rng(51);
    std::vector<int32_t> targets((size_t)N);
    for (auto& t : targets) t = rng.below(4) == 0 ? -1 : (int32_t)rng.below((uint64_t)V);
    targets[0] = -1, targets[1] = 0, targets[2] = (int32_t)(V - 1), targets[(size_t)N - 1] = -1;
    const std::vector<float> h = random_floats((size_t)(N * C), 52), w_out = random_floats((size_t)(V * C), 53, 0.5);
    const std::vector<double> hd = widen(h), wd = widen(w_out);
    const std::vector<float> logits = logits_of(h, w_out, N, C, V);

    // Forward. The CPU gathers valid rows into chunks of 7; the GPU takes chunks of 16 positions.
    std::vector<float> lp_f((size_t)N), ent_f((size_t)N), lse_f((size_t)N);
    cpu::logprob_forward(lp_f.data(), ent_f.data(), lse_f.data(), h.data(), w_out.data(), targets.data(), N, C, V,
                         cpu_chunk);
    std::vector<double> lp_d((size_t)N), ent_d((size_t)N), lse_d((size_t)N);
    cpu::logprob_forward(lp_d.data(), ent_d.data(), lse_d.data(), hd.data(), wd.data(), targets.data(), N, C, V,
                         cpu_chunk);
    DeviceArray<float> d_logits(logits, 0), d_lp((size_t)N, 0), d_ent((size_t)N, 0), d_lse((size_t)N, 0);
    DeviceArray<int32_t> d_targets(targets, 0);
    for (int64_t first = 0; first < N; first += gpu_chunk) {
      const int64_t rows = std::min(gpu_chunk, N - first);
      cuda::logprob_forward(d_lp.ptr + first, d_ent.ptr + first, d_lse.ptr + first, d_logits.ptr + first * V,
                            d_targets.ptr + first, rows, V, nullptr);
    }
    synchronize();
    const std::vector<float> lp_g = d_lp.to_host(), ent_g = d_ent.to_host(), lse_g = d_lse.to_host();
    expect_fp32(lp_g, lp_f, lp_d, kAtol, kRtol, "logprob");
    expect_fp32(ent_g, ent_f, ent_d, kAtol, kRtol, "entropy");
    expect_fp32(lse_g, lse_f, lse_d, kAtol, kRtol, "lse");
    for (int64_t n = 0; n < N; ++n)
      if (targets[(size_t)n] < 0) {
        EXPECT_EQ(lp_g[(size_t)n], 0.0f) << "padding " << n;
        EXPECT_EQ(ent_g[(size_t)n], 0.0f) << "padding " << n;
        EXPECT_EQ(lse_g[(size_t)n], 0.0f) << "padding " << n;
      }
    // Without entropy: the same logprob and lse, bit for bit.
    DeviceArray<float> d_lp2((size_t)N, 0), d_lse2((size_t)N, 0);
    cuda::logprob_forward(d_lp2.ptr, nullptr, d_lse2.ptr, d_logits.ptr, d_targets.ptr, N, V, nullptr);
    synchronize();
    expect_bit_equal(d_lp2.to_host(), lp_g, "logprob without entropy");
    expect_bit_equal(d_lse2.to_host(), lse_g, "lse without entropy");

    // Backward, for each choice of loss gradients: dlogits from the GPU, then the caller's GEMMs
    // (here in double on the host) accumulate into pre-filled dh and dw_out.
    const std::vector<float> dlogprob = random_floats((size_t)N, 54), dentropy = random_floats((size_t)N, 55, 0.5);
    const std::vector<double> dlogprob_d = widen(dlogprob), dentropy_d = widen(dentropy);
    const std::vector<float> dh0 = random_floats((size_t)(N * C), 56), dw0 = random_floats((size_t)(V * C), 57);
    DeviceArray<float> d_dlogprob(dlogprob, 0), d_dentropy(dentropy, 0);
    struct Case {
      bool logprob, entropy;
      const char* name;
    };
    for (const Case& k :
         {Case{true, true, "both"}, Case{true, false, "logprob only"}, Case{false, true, "entropy only"}}) {
      SCOPED_TRACE(k.name);
      const float* g_lp_f = k.logprob ? dlogprob.data() : nullptr;
      const float* g_ent_f = k.entropy ? dentropy.data() : nullptr;
      std::vector<float> dh_f = dh0, dw_f = dw0;
      cpu::logprob_backward(dh_f.data(), dw_f.data(), g_lp_f, g_ent_f, h.data(), w_out.data(), targets.data(),
                            lse_f.data(), ent_f.data(), N, C, V, cpu_chunk);
      std::vector<double> dh_d = widen(dh0), dw_d = widen(dw0);
      cpu::logprob_backward(dh_d.data(), dw_d.data(), k.logprob ? dlogprob_d.data() : nullptr,
                            k.entropy ? dentropy_d.data() : nullptr, hd.data(), wd.data(), targets.data(), lse_d.data(),
                            ent_d.data(), N, C, V, cpu_chunk);

      // NaN first, so a row the kernel fails to write shows.
      DeviceArray<float> d_dlogits(std::vector<float>((size_t)(N * V), std::nanf("")), 0);
      for (int64_t first = 0; first < N; first += gpu_chunk) {
        const int64_t rows = std::min(gpu_chunk, N - first);
        cuda::logprob_backward(d_dlogits.ptr + first * V, k.logprob ? d_dlogprob.ptr + first : nullptr,
                               k.entropy ? d_dentropy.ptr + first : nullptr, d_logits.ptr + first * V,
                               d_targets.ptr + first, d_lse.ptr + first, d_ent.ptr + first, rows, V, nullptr);
      }
      // In place: dlogits written over a copy of the logits.
      DeviceArray<float> d_inplace(logits, 0);
      cuda::logprob_backward(d_inplace.ptr, k.logprob ? d_dlogprob.ptr : nullptr, k.entropy ? d_dentropy.ptr : nullptr,
                             d_inplace.ptr, d_targets.ptr, d_lse.ptr, d_ent.ptr, N, V, nullptr);
      synchronize();
      const std::vector<float> dlogits = d_dlogits.to_host();
      expect_bit_equal(d_inplace.to_host(), dlogits, "dlogits in place");
      for (int64_t n = 0; n < N; ++n) {
        if (targets[(size_t)n] >= 0) continue;
        for (int64_t j = 0; j < V; ++j) ASSERT_EQ(dlogits[(size_t)(n * V + j)], 0.0f) << "padding row " << n;
      }

      std::vector<float> dh_g = dh0, dw_g = dw0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
          double s = dh_g[(size_t)(n * C + c)];
          for (int64_t j = 0; j < V; ++j) s += (double)dlogits[(size_t)(n * V + j)] * w_out[(size_t)(j * C + c)];
          dh_g[(size_t)(n * C + c)] = (float)s;
        }
      for (int64_t j = 0; j < V; ++j)
        for (int64_t c = 0; c < C; ++c) {
          double s = dw_g[(size_t)(j * C + c)];
          for (int64_t n = 0; n < N; ++n) s += (double)dlogits[(size_t)(n * V + j)] * h[(size_t)(n * C + c)];
          dw_g[(size_t)(j * C + c)] = (float)s;
        }
      expect_fp32(dh_g, dh_f, dh_d, kAtol, kRtol, "dh (pre-filled, +=)");
      expect_fp32(dw_g, dw_f, dw_d, kAtol, kRtol, "dw_out (pre-filled, +=)");
    }
  }
}

}  // namespace
}  // namespace cohort

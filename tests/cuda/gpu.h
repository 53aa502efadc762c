// What every CUDA test starts with: skip (not fail) where no GPU is visible, so the binary builds and runs
// in CI on machines without one and does the real checks on a lent GPU (tests/gpu/check).
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_check.h"

namespace cohort::test {

inline bool gpu_present() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// A device copy of a host vector, freed on scope exit.
template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  int64_t n = 0;
  explicit DeviceBuffer(int64_t count) : n(count) {
    COHORT_CUDA_CHECK(cudaMalloc(&ptr, sizeof(T) * (size_t)std::max<int64_t>(1, n)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer((int64_t)host.size()) {
    COHORT_CUDA_CHECK(cudaMemcpy(ptr, host.data(), sizeof(T) * host.size(), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::vector<T> to_host() const {
    std::vector<T> out((size_t)n);
    COHORT_CUDA_CHECK(cudaMemcpy(out.data(), ptr, sizeof(T) * (size_t)n, cudaMemcpyDeviceToHost));
    return out;
  }
};

}  // namespace cohort::test

// First line of every CUDA test.
#define COHORT_SKIP_WITHOUT_GPU() \
  if (!::cohort::test::gpu_present()) GTEST_SKIP() << "skipped: no GPU"

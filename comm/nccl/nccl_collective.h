// The Collective interface over NCCL, for GPU ranks: float buffers are device memory on this rank's GPU;
// the small host-side statistics (double sums and maxima) and the barrier travel over MPI. Compiled
// whenever CUDA is on (COHORT_HAVE_CUDA); exercised on a GPU by tests/gpu/check.
#pragma once

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <memory>

#include "comm/collective.h"

namespace cohort::comm {

// The NCCL unique id is made on rank 0 of `comm` and broadcast over MPI; the communicator is created
// non-blocking and every operation is polled (cudaStreamQuery + ncclCommGetAsyncError) under the same
// watchdog as MpiCollective: a timeout or an asynchronous NCCL error aborts the communicator and throws
// CommError naming the rank and the operation, so a failed peer never hangs this rank.
class NcclCollective : public Collective {
 public:
  NcclCollective(MPI_Comm comm, int device, double timeout_s = 600.0);
  ~NcclCollective() override;
  NcclCollective(const NcclCollective&) = delete;
  NcclCollective& operator=(const NcclCollective&) = delete;

  void all_reduce_sum(float* device_data, int64_t n) override;
  void reduce_scatter_sum(const float* device_in, float* device_out, int64_t n_per_rank) override;
  void all_gather(const float* device_in, float* device_out, int64_t n_per_rank) override;
  void broadcast(float* device_data, int64_t n, int root) override;
  void broadcast_bytes(void* device_data, int64_t bytes, int root) override;
  // Host memory, over MPI.
  void all_reduce_sum(double* host_data, int64_t n) override;
  void all_reduce_max(double* host_data, int64_t n) override;
  void barrier() override;
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }

  cudaStream_t stream() const { return stream_; }

 private:
  // Polls until the stream has finished the enqueued operation, or fails/times out (then aborts, throws).
  void wait(const char* op, int64_t n);
  void check(ncclResult_t r, const char* op);

  std::unique_ptr<MpiCollective> host_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
  double timeout_s_;
  bool aborted_ = false;
};

}  // namespace cohort::comm

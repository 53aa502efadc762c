#include "comm/nccl/nccl_collective.h"

#include <chrono>
#include <string>
#include <thread>

#include "comm/mpi_check.h"

namespace cohort::comm {

namespace {

std::string where(int rank, const char* op) {
  return "rank " + std::to_string(rank) + ": NCCL " + op;
}

void cuda_check(cudaError_t e, int rank, const char* what) {
  if (e != cudaSuccess) throw CommError(where(rank, what) + ": " + cudaGetErrorString(e));
}

}  // namespace

NcclCollective::NcclCollective(MPI_Comm comm, int device, double timeout_s)
    : host_(std::make_unique<MpiCollective>(comm, timeout_s)), device_(device), timeout_s_(timeout_s) {
  cuda_check(cudaSetDevice(device_), host_->rank(), "cudaSetDevice");
  cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), host_->rank(), "cudaStreamCreate");
  ncclUniqueId id{};
  if (host_->rank() == 0) check(ncclGetUniqueId(&id), "get_unique_id");
  host_->broadcast_bytes(&id, sizeof id, 0);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // creation and every call return at once; wait() polls them under the watchdog
  ncclResult_t r = ncclCommInitRankConfig(&comm_, host_->size(), id, host_->rank(), &config);
  if (r != ncclInProgress) check(r, "comm_init");
  wait("comm_init", 0);
}

NcclCollective::~NcclCollective() {
  if (comm_ && !aborted_) {
    // A destructor cannot throw: finalize (non-blocking, so polled for a bounded time), else abort.
    ncclResult_t state = ncclCommFinalize(comm_);
    const auto start = std::chrono::steady_clock::now();
    while (state == ncclInProgress &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < timeout_s_) {
      ncclCommGetAsyncError(comm_, &state);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (state == ncclSuccess)
      ncclCommDestroy(comm_);
    else
      ncclCommAbort(comm_);
  }
  if (stream_) cudaStreamDestroy(stream_);
}

void NcclCollective::check(ncclResult_t r, const char* op) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  std::string msg = where(host_->rank(), op) + " failed: " + ncclGetErrorString(r);
  if (comm_) {
    const char* last = ncclGetLastError(comm_);
    if (last && *last) msg += std::string(" (") + last + ")";
    ncclCommAbort(comm_);
    aborted_ = true;
  }
  throw CommError(msg);
}

void NcclCollective::wait(const char* op, int64_t n) {
  const auto start = std::chrono::steady_clock::now();
  for (long spins = 0;; ++spins) {
    ncclResult_t async = ncclSuccess;
    check(ncclCommGetAsyncError(comm_, &async), op);
    check(async, op);
    if (async == ncclSuccess) {
      cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) cuda_check(q, host_->rank(), op);
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > timeout_s_) {
      ncclCommAbort(comm_);
      aborted_ = true;
      throw CommError(where(host_->rank(), op) + " of " + std::to_string(n) + " elements timed out after " +
                      std::to_string((int)timeout_s_) + " s (a peer is missing or stuck)");
    }
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

void NcclCollective::all_reduce_sum(float* data, int64_t n) {
  check(ncclAllReduce(data, data, (size_t)n, ncclFloat32, ncclSum, comm_, stream_), "all_reduce");
  wait("all_reduce", n);
}

void NcclCollective::reduce_scatter_sum(const float* in, float* out, int64_t n_per_rank) {
  check(ncclReduceScatter(in, out, (size_t)n_per_rank, ncclFloat32, ncclSum, comm_, stream_), "reduce_scatter");
  wait("reduce_scatter", n_per_rank);
}

void NcclCollective::all_gather(const float* in, float* out, int64_t n_per_rank) {
  check(ncclAllGather(in, out, (size_t)n_per_rank, ncclFloat32, comm_, stream_), "all_gather");
  wait("all_gather", n_per_rank);
}

void NcclCollective::broadcast(float* data, int64_t n, int root) {
  check(ncclBroadcast(data, data, (size_t)n, ncclFloat32, root, comm_, stream_), "broadcast");
  wait("broadcast", n);
}

void NcclCollective::broadcast_bytes(void* data, int64_t bytes, int root) {
  check(ncclBroadcast(data, data, (size_t)bytes, ncclUint8, root, comm_, stream_), "broadcast");
  wait("broadcast", bytes);
}

void NcclCollective::all_reduce_sum(double* data, int64_t n) {
  host_->all_reduce_sum(data, n);
}
void NcclCollective::all_reduce_max(double* data, int64_t n) {
  host_->all_reduce_max(data, n);
}
void NcclCollective::barrier() {
  host_->barrier();
}

}  // namespace cohort::comm

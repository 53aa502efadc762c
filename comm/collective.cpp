#include "comm/collective.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <sstream>
#include <thread>

#include "comm/mpi_check.h"

namespace cohort::comm {

void LocalCollective::reduce_scatter_sum(const float* in, float* out, int64_t n_per_rank) {
  std::copy_n(in, n_per_rank, out);
}

void LocalCollective::all_gather(const float* in, float* out, int64_t n_per_rank) {
  if (in != out) std::copy_n(in, n_per_rank, out);
}

MpiCollective::MpiCollective(MPI_Comm comm, double timeout_s) : timeout_s_(timeout_s), max_chunk_(INT_MAX) {
  // Non-blocking dup under the watchdog: a peer that never constructs its MpiCollective is reported, not hung on.
  COHORT_MPI_CHECK(MPI_Comm_rank(comm, &rank_));
  MPI_Request req = MPI_REQUEST_NULL;
  COHORT_MPI_CHECK(MPI_Comm_idup(comm, &comm_, &req));
  wait(&req, "comm_dup", 0, MPI_Wtime());
  COHORT_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  COHORT_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  COHORT_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiCollective::~MpiCollective() {
  // A still-pending abandoned request is left to MPI; freeing the communicator is deferred until it ends.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCollective::set_max_chunk(int64_t max_chunk) {
  if (max_chunk < 1 || max_chunk > INT_MAX) {
    throw CommError("MpiCollective::set_max_chunk: " + std::to_string(max_chunk) + " is outside [1, INT_MAX]");
  }
  max_chunk_ = max_chunk;
}

void MpiCollective::wait(MPI_Request* req, const char* op, int64_t n, double start, const char* unit) {
  int done = 0;
  for (long spins = 0;; ++spins) {
    COHORT_MPI_CHECK(MPI_Test(req, &done, MPI_STATUS_IGNORE));
    if (done) return;
    const double elapsed = MPI_Wtime() - start;
    if (elapsed > timeout_s_) {
      abandoned_.push_back(*req);
      if (!staging_.empty()) abandoned_staging_.push_back(std::move(staging_));
      staging_.clear();
      *req = MPI_REQUEST_NULL;
      std::ostringstream msg;
      msg << "rank " << rank_ << ": " << op << " of " << n << " " << unit << " timed out after " << timeout_s_
          << " s (a peer is missing or stuck)";
      throw CommError(msg.str());
    }
    // Spin briefly for latency, then yield the core: ranks are often oversubscribed.
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

bool MpiCollective::drain_abandoned(double timeout_s) {
  const double start = MPI_Wtime();
  for (;;) {
    if (abandoned_.empty()) return true;
    int done = 0;
    COHORT_MPI_CHECK(MPI_Testall(static_cast<int>(abandoned_.size()), abandoned_.data(), &done, MPI_STATUSES_IGNORE));
    if (done) {
      abandoned_.clear();
      abandoned_staging_.clear();
      return true;
    }
    if (MPI_Wtime() - start > timeout_s) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

void MpiCollective::all_reduce(void* data, int64_t n, MPI_Datatype type, int64_t elem_bytes, MPI_Op op,
                               const char* name, const char* unit) {
  const double start = MPI_Wtime();
  int64_t off = 0;
  do {
    const int c = static_cast<int>(std::min(n - off, max_chunk_));
    MPI_Request req = MPI_REQUEST_NULL;
    COHORT_MPI_CHECK(
        MPI_Iallreduce(MPI_IN_PLACE, static_cast<char*>(data) + off * elem_bytes, c, type, op, comm_, &req));
    wait(&req, name, n, start, unit);
    off += c;
  } while (off < n);
}

void MpiCollective::bcast(void* data, int64_t n, MPI_Datatype type, int64_t elem_bytes, int root, const char* unit) {
  if (root < 0 || root >= size_) {
    throw CommError("rank " + std::to_string(rank_) + ": broadcast root " + std::to_string(root) +
                    " is outside a group of " + std::to_string(size_));
  }
  const double start = MPI_Wtime();
  int64_t off = 0;
  do {
    const int c = static_cast<int>(std::min(n - off, max_chunk_));
    MPI_Request req = MPI_REQUEST_NULL;
    COHORT_MPI_CHECK(MPI_Ibcast(static_cast<char*>(data) + off * elem_bytes, c, type, root, comm_, &req));
    wait(&req, "broadcast", n, start, unit);
    off += c;
  } while (off < n);
}

void MpiCollective::all_reduce_sum(float* data, int64_t n) {
  all_reduce(data, n, MPI_FLOAT, sizeof(float), MPI_SUM, "all_reduce", "floats");
}

void MpiCollective::all_reduce_sum(double* data, int64_t n) {
  all_reduce(data, n, MPI_DOUBLE, sizeof(double), MPI_SUM, "all_reduce", "doubles");
}

void MpiCollective::all_reduce_max(double* data, int64_t n) {
  all_reduce(data, n, MPI_DOUBLE, sizeof(double), MPI_MAX, "all_reduce_max", "doubles");
}

void MpiCollective::broadcast(float* data, int64_t n, int root) {
  bcast(data, n, MPI_FLOAT, sizeof(float), root, "floats");
}

void MpiCollective::broadcast_bytes(void* data, int64_t bytes, int root) {
  bcast(data, bytes, MPI_BYTE, 1, root, "bytes");
}

void MpiCollective::reduce_scatter_sum(const float* in, float* out, int64_t n_per_rank) {
  const double start = MPI_Wtime();
  if (n_per_rank <= max_chunk_) {
    MPI_Request req = MPI_REQUEST_NULL;
    COHORT_MPI_CHECK(MPI_Ireduce_scatter_block(in, out, static_cast<int>(n_per_rank), MPI_FLOAT, MPI_SUM, comm_, &req));
    wait(&req, "reduce_scatter", n_per_rank, start);
    return;
  }
  // Chunk [off, off + c) of every rank's block, packed contiguously so one reduce_scatter_block handles it.
  for (int64_t off = 0; off < n_per_rank;) {
    const int64_t c = std::min(n_per_rank - off, max_chunk_);
    staging_.resize(static_cast<size_t>(c * size_));
    for (int r = 0; r < size_; ++r) {
      std::memcpy(staging_.data() + r * c, in + r * n_per_rank + off, c * sizeof(float));
    }
    MPI_Request req = MPI_REQUEST_NULL;
    COHORT_MPI_CHECK(
        MPI_Ireduce_scatter_block(staging_.data(), out + off, static_cast<int>(c), MPI_FLOAT, MPI_SUM, comm_, &req));
    wait(&req, "reduce_scatter", n_per_rank, start);
    off += c;
  }
}

void MpiCollective::all_gather(const float* in, float* out, int64_t n_per_rank) {
  const double start = MPI_Wtime();
  if (n_per_rank <= max_chunk_) {
    MPI_Request req = MPI_REQUEST_NULL;
    const int c = static_cast<int>(n_per_rank);
    COHORT_MPI_CHECK(MPI_Iallgather(in, c, MPI_FLOAT, out, c, MPI_FLOAT, comm_, &req));
    wait(&req, "all_gather", n_per_rank, start);
    return;
  }
  for (int64_t off = 0; off < n_per_rank;) {
    const int64_t c = std::min(n_per_rank - off, max_chunk_);
    staging_.resize(static_cast<size_t>(c * size_));
    MPI_Request req = MPI_REQUEST_NULL;
    COHORT_MPI_CHECK(MPI_Iallgather(in + off, static_cast<int>(c), MPI_FLOAT, staging_.data(), static_cast<int>(c),
                                    MPI_FLOAT, comm_, &req));
    wait(&req, "all_gather", n_per_rank, start);
    for (int r = 0; r < size_; ++r) {
      std::memcpy(out + r * n_per_rank + off, staging_.data() + r * c, c * sizeof(float));
    }
    off += c;
  }
}

void MpiCollective::barrier() {
  const double start = MPI_Wtime();
  MPI_Request req = MPI_REQUEST_NULL;
  COHORT_MPI_CHECK(MPI_Ibarrier(comm_, &req));
  wait(&req, "barrier", 0, start);
}

}  // namespace cohort::comm

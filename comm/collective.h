// Collectives over float buffers behind one interface (MPI here; NCCL can implement the same one).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <vector>

namespace cohort::comm {

// Every rank of the group must make the same calls in the same order with the same counts.
class Collective {
 public:
  virtual ~Collective() = default;
  // data[i] = sum over ranks of data[i].
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  // in holds n_per_rank * size() floats; out[i] = sum over ranks of in[rank() * n_per_rank + i].
  virtual void reduce_scatter_sum(const float* in, float* out, int64_t n_per_rank) = 0;
  // out holds n_per_rank * size() floats; out[r * n_per_rank + i] = rank r's in[i].
  virtual void all_gather(const float* in, float* out, int64_t n_per_rank) = 0;
  virtual void broadcast(float* data, int64_t n, int root) = 0;
  // Small reductions of statistics (loss terms, token counts, timings), in double.
  virtual void all_reduce_sum(double* data, int64_t n) = 0;
  virtual void all_reduce_max(double* data, int64_t n) = 0;
  // Raw bytes from root (weights in a compact dtype).
  virtual void broadcast_bytes(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
};

// A group of one rank: a process that runs alone (every reduction is the identity, a gather a copy). The
// single-process run drives the same loop as a job under mpirun through it.
class LocalCollective : public Collective {
 public:
  void all_reduce_sum(float*, int64_t) override {}
  void reduce_scatter_sum(const float* in, float* out, int64_t n_per_rank) override;
  void all_gather(const float* in, float* out, int64_t n_per_rank) override;
  void broadcast(float*, int64_t, int) override {}
  void all_reduce_sum(double*, int64_t) override {}
  void all_reduce_max(double*, int64_t) override {}
  void broadcast_bytes(void*, int64_t, int) override {}
  void barrier() override {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
};

// Each operation is posted non-blocking and polled with MPI_Test under a watchdog: when it has not finished
// within timeout_s, it throws CommError naming the rank, the operation and the count. MPI cannot cancel a
// posted collective, so the timed-out request is kept as abandoned; drain_abandoned() completes it once the
// peers post their matching calls. The caller's buffers of a timed-out operation must outlive that.
class MpiCollective : public Collective {
 public:
  // Works on a duplicate of comm (so its traffic never matches anyone else's), with MPI_ERRORS_RETURN.
  explicit MpiCollective(MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = 600.0);
  ~MpiCollective() override;
  MpiCollective(const MpiCollective&) = delete;
  MpiCollective& operator=(const MpiCollective&) = delete;

  void all_reduce_sum(float* data, int64_t n) override;
  void reduce_scatter_sum(const float* in, float* out, int64_t n_per_rank) override;
  void all_gather(const float* in, float* out, int64_t n_per_rank) override;
  void broadcast(float* data, int64_t n, int root) override;
  void all_reduce_sum(double* data, int64_t n) override;
  void all_reduce_max(double* data, int64_t n) override;
  void broadcast_bytes(void* data, int64_t bytes, int root) override;
  void barrier() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  // The duplicated communicator the operations run on (for MPI-IO, which needs one).
  MPI_Comm communicator() const { return comm_; }
  double timeout_s() const { return timeout_s_; }
  void set_timeout_s(double timeout_s) { timeout_s_ = timeout_s; }
  // Largest element count per MPI call (default INT_MAX, MPI's int count); larger operations are split.
  // Lowered only by tests, to exercise the splitting with small buffers.
  int64_t max_chunk() const { return max_chunk_; }
  void set_max_chunk(int64_t max_chunk);

  int abandoned_requests() const { return static_cast<int>(abandoned_.size()); }
  // Polls the abandoned requests for up to timeout_s; true when all completed.
  bool drain_abandoned(double timeout_s);

 private:
  // Polls req until complete or the operation's deadline passes; throws CommError on timeout.
  void wait(MPI_Request* req, const char* op, int64_t n, double start, const char* unit = "floats");
  void all_reduce(void* data, int64_t n, MPI_Datatype type, int64_t elem_bytes, MPI_Op op, const char* name,
                  const char* unit);
  void bcast(void* data, int64_t n, MPI_Datatype type, int64_t elem_bytes, int root, const char* unit);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  double timeout_s_;
  int64_t max_chunk_;
  std::vector<float> staging_;
  std::vector<MPI_Request> abandoned_;
  // Staging buffers an abandoned request may still write into; kept alive until drained.
  std::vector<std::vector<float>> abandoned_staging_;
};

}  // namespace cohort::comm

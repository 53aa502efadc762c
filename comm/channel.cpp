#include "comm/channel.h"

#include <chrono>
#include <climits>
#include <thread>

#include "comm/mpi_check.h"

namespace cohort::comm {

namespace {

void backoff(long spins) {
  if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
}

std::string timed_out(int rank, const std::string& what, double timeout_s) {
  return "rank " + std::to_string(rank) + ": " + what + " timed out after " + std::to_string((int)timeout_s) +
         " s (a peer is missing or stuck)";
}

}  // namespace

MessageChannel::MessageChannel(MPI_Comm comm, double timeout_s, int64_t max_message_bytes)
    : timeout_s_(timeout_s), max_message_bytes_(max_message_bytes) {
  COHORT_MPI_CHECK(MPI_Comm_rank(comm, &rank_));
  MPI_Request req = MPI_REQUEST_NULL;
  COHORT_MPI_CHECK(MPI_Comm_idup(comm, &comm_, &req));
  const double start = MPI_Wtime();
  int done = 0;
  for (long spins = 0; !done; ++spins) {
    COHORT_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (!done && MPI_Wtime() - start > timeout_s_) throw CommError(timed_out(rank_, "comm_dup", timeout_s_));
    backoff(spins);
  }
  COHORT_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  COHORT_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MessageChannel::~MessageChannel() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  // Unfinished sends are cancelled: their receivers are gone or the run is failing.
  for (Pending& p : pending_) {
    if (p.request == MPI_REQUEST_NULL) continue;
    MPI_Cancel(&p.request);
    MPI_Request_free(&p.request);
  }
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MessageChannel::reap() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    int done = 0;
    COHORT_MPI_CHECK(MPI_Test(&it->request, &done, MPI_STATUS_IGNORE));
    it = done ? pending_.erase(it) : std::next(it);
  }
}

void MessageChannel::send(int dest, int tag, std::string bytes) {
  if (dest < 0 || dest >= size_) {
    throw CommError("rank " + std::to_string(rank_) + ": send to rank " + std::to_string(dest) +
                    " outside a world of " + std::to_string(size_));
  }
  if ((int64_t)bytes.size() > max_message_bytes_ || bytes.size() > (size_t)INT_MAX) {
    throw CommError("rank " + std::to_string(rank_) + ": message of " + std::to_string(bytes.size()) +
                    " bytes to rank " + std::to_string(dest) + " exceeds the limit of " +
                    std::to_string(max_message_bytes_) + " bytes");
  }
  reap();
  pending_.push_back(Pending{MPI_REQUEST_NULL, std::move(bytes), dest});
  Pending& p = pending_.back();
  COHORT_MPI_CHECK(MPI_Isend(p.bytes.data(), static_cast<int>(p.bytes.size()), MPI_BYTE, dest, tag, comm_, &p.request));
}

std::string MessageChannel::recv(int source, int tag) {
  const double start = MPI_Wtime();
  MPI_Message message;
  MPI_Status status;
  int found = 0;
  for (long spins = 0; !found; ++spins) {
    COHORT_MPI_CHECK(MPI_Improbe(source, tag, comm_, &found, &message, &status));
    if (found) break;
    reap();  // lets our own sends progress while we wait
    if (MPI_Wtime() - start > timeout_s_) {
      throw CommError(timed_out(
          rank_, "receive from rank " + std::to_string(source) + " (tag " + std::to_string(tag) + ")", timeout_s_));
    }
    backoff(spins);
  }
  int count = 0;
  COHORT_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
  if (count > max_message_bytes_) {
    throw CommError("rank " + std::to_string(rank_) + ": message of " + std::to_string(count) + " bytes from rank " +
                    std::to_string(source) + " exceeds the limit of " + std::to_string(max_message_bytes_) + " bytes");
  }
  std::string bytes(static_cast<size_t>(count), '\0');
  COHORT_MPI_CHECK(MPI_Mrecv(bytes.data(), count, MPI_BYTE, &message, MPI_STATUS_IGNORE));
  return bytes;
}

void MessageChannel::flush() {
  const double start = MPI_Wtime();
  for (long spins = 0;; ++spins) {
    reap();
    if (pending_.empty()) return;
    if (MPI_Wtime() - start > timeout_s_) {
      throw CommError(timed_out(rank_, "send to rank " + std::to_string(pending_.front().dest), timeout_s_));
    }
    backoff(spins);
  }
}

}  // namespace cohort::comm

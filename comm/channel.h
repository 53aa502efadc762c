// Point-to-point byte messages between ranks (serialized protobuf), under the same watchdog as the collectives.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <list>
#include <string>

namespace cohort::comm {

// Sends are non-blocking: send() returns once the message is posted, and the channel keeps the bytes until
// MPI has taken them, so a sender can go on working (the one-step-asynchronous schedule depends on this).
// recv() waits for a message from one source with one tag, polling under the watchdog.
class MessageChannel {
 public:
  // Works on a duplicate of comm with MPI_ERRORS_RETURN; collective over comm.
  explicit MessageChannel(MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = 600.0,
                          int64_t max_message_bytes = int64_t{1} << 30);
  ~MessageChannel();
  MessageChannel(const MessageChannel&) = delete;
  MessageChannel& operator=(const MessageChannel&) = delete;

  void send(int dest, int tag, std::string bytes);
  // Throws CommError on timeout, or when the incoming message is larger than max_message_bytes.
  std::string recv(int source, int tag);
  // Waits until every posted send has been taken by MPI (the receivers have posted their receives).
  void flush();

  int rank() const { return rank_; }
  int size() const { return size_; }
  int pending_sends() const { return static_cast<int>(pending_.size()); }

 private:
  struct Pending {
    MPI_Request request = MPI_REQUEST_NULL;
    std::string bytes;
    int dest = 0;
  };
  void reap();  // completes the sends MPI is done with

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  double timeout_s_;
  int64_t max_message_bytes_;
  std::list<Pending> pending_;
};

}  // namespace cohort::comm

// cohort's OpenMP waiting behaviour: threads that finish a parallel region sleep rather than
// spin, unless the user chose otherwise (OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment).
//
// Why passive (measured on 2 cores, docs/performance.md "Sharing the cores"): libgomp's default
// spins ~300k iterations at every barrier. Alone that saves a wake-up per region; beside one
// busy process it makes the spinning thread hold a core the straggling thread needs, and decode
// ran 6-8x slower, a learner step 2-3x. Passive waiting gives the core back at once; with the
// small loops single-threaded (kernels/threads.h, worth_parallel) the wake-ups it costs alone
// are few.
//
// libgomp reads its environment once, in its own initialiser, before main() runs, so the choice
// is made from .preinit_array, which the dynamic loader runs before any library's initialiser.
// This file is linked into each executable (an object library): .preinit_array exists only there.
#include <cstdlib>

namespace {

void choose_openmp_wait_policy(int, char**, char**) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;  // the user's choice stands
  setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/0);
}

}  // namespace

__attribute__((section(".preinit_array"),
               used)) static void (*const cohort_openmp_wait_policy)(int, char**, char**) = choose_openmp_wait_policy;

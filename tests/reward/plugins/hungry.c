/* Test plugin: "hungry", whose score allocates and touches up to 8 GiB in 64 MiB chunks until
 * malloc fails, then frees it all and returns an error (or is killed by the OOM killer first).
 * For the isolation pool's memory limit; never call it in the test process. */
#include <stdio.h>
#include <stdlib.h>

#include "reward/plugin.h"

#define CHUNK_BYTES ((size_t)64 << 20)
#define MAX_CHUNKS 128 /* 128 * 64 MiB = 8 GiB */

static int hungry_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                        size_t message_cap) {
  char* chunks[MAX_CHUNKS];
  int count = 0;
  while (count < MAX_CHUNKS) {
    char* chunk = malloc(CHUNK_BYTES);
    if (chunk == NULL) break;
    /* One write per page commits the memory; volatile keeps the compiler from eliding it. */
    for (size_t offset = 0; offset < CHUNK_BYTES; offset += 4096) ((volatile char*)chunk)[offset] = 1;
    chunks[count++] = chunk;
  }
  for (int i = 0; i < count; ++i) free(chunks[i]);
  snprintf(message_buf, message_cap, "allocated %d MiB, then %s", count * 64,
           count < MAX_CHUNKS ? "malloc failed" : "stopped at the 8 GiB cap");
  return COHORT_REWARD_ERROR;
}

uint32_t cohort_reward_plugin_abi_version(void) {
  return COHORT_REWARD_PLUGIN_ABI_VERSION;
}

int cohort_reward_plugin_register(const cohort_reward_registry* registry) {
  cohort_reward_function_def def = {"hungry", "allocates up to 8 GiB (a test function)", NULL, hungry_score, NULL};
  return registry->register_function(registry->host, &def);
}

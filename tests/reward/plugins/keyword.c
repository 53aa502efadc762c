/* Test plugin: the well-behaved case. Two functions, one with options and state, one without:
 *   keyword_contains {"keyword": "..."}: 1 when the completion contains the keyword, else 0.
 *   sample_fields (no options): echoes the sample's fields as one number, 1000 * prompt_len +
 *     completion_tokens + 0.5 * truncated, so a test sees each field arrive; no score when the
 *     metadata has a "skip" key; an error when a text lacks the promised NUL terminator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward/plugin.h"

typedef struct keyword_state {
  char* keyword;
  size_t keyword_len;
} keyword_state;

/* The options come from nlohmann::json's compact dump, so the test plugin may look for the exact
 * text "keyword":"; escapes in the value are refused rather than decoded. */
static void* keyword_create(const char* options_json, char* error_buf, size_t error_cap) {
  static const char key[] = "\"keyword\":\"";
  const char* start = strstr(options_json, key);
  if (start == NULL) {
    snprintf(error_buf, error_cap, "%s", "option 'keyword' (a string) is required");
    return NULL;
  }
  start += sizeof key - 1;
  const char* end = strchr(start, '"');
  if (end == NULL || end == start || memchr(start, '\\', (size_t)(end - start)) != NULL) {
    snprintf(error_buf, error_cap, "%s", "option 'keyword' must be a non-empty string without escapes");
    return NULL;
  }
  keyword_state* state = malloc(sizeof *state);
  if (state == NULL) return NULL;
  state->keyword_len = (size_t)(end - start);
  state->keyword = malloc(state->keyword_len + 1);
  if (state->keyword == NULL) {
    free(state);
    return NULL;
  }
  memcpy(state->keyword, start, state->keyword_len);
  state->keyword[state->keyword_len] = '\0';
  return state;
}

static int contains(const char* text, size_t text_len, const char* needle, size_t needle_len) {
  for (size_t i = 0; i + needle_len <= text_len; ++i) {
    if (memcmp(text + i, needle, needle_len) == 0) return 1;
  }
  return 0;
}

static int keyword_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                         size_t message_cap) {
  const keyword_state* keyword = state;
  *score = contains(sample->completion, sample->completion_len, keyword->keyword, keyword->keyword_len) ? 1.0 : 0.0;
  return COHORT_REWARD_SCORED;
}

static void keyword_destroy(void* state) {
  keyword_state* keyword = state;
  free(keyword->keyword);
  free(keyword);
}

static int sample_fields_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                               size_t message_cap) {
  if (state != NULL || sample->prompt[sample->prompt_len] != '\0' ||
      sample->completion[sample->completion_len] != '\0' || sample->metadata_json[sample->metadata_json_len] != '\0') {
    snprintf(message_buf, message_cap, "%s", "unexpected state or a text without its NUL terminator");
    return COHORT_REWARD_ERROR;
  }
  if (contains(sample->metadata_json, sample->metadata_json_len, "\"skip\"", 6)) return COHORT_REWARD_NO_SCORE;
  *score = 1000.0 * (double)sample->prompt_len + (double)sample->completion_tokens + (sample->truncated ? 0.5 : 0.0);
  return COHORT_REWARD_SCORED;
}

uint32_t cohort_reward_plugin_abi_version(void) {
  return COHORT_REWARD_PLUGIN_ABI_VERSION;
}

int cohort_reward_plugin_register(const cohort_reward_registry* registry) {
  cohort_reward_function_def keyword = {"keyword_contains", "1 when the completion contains the option 'keyword'",
                                        keyword_create, keyword_score, keyword_destroy};
  cohort_reward_function_def fields = {"sample_fields", "the sample's fields as one number (a test function)", NULL,
                                       sample_fields_score, NULL};
  if (registry->register_function(registry->host, &keyword) != 0) return 1;
  return registry->register_function(registry->host, &fields);
}

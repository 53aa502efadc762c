/* The C interface of cohort reward plugins: a shared library that exports two functions and hands
 * cohort any number of reward functions, each of which becomes a reward kind usable in a config.
 * C (C99) and C++ include it alike; it is the plugin author's reference, installed as
 * <cohort/reward/plugin.h>.
 *
 * How the host uses a plugin:
 *   1. dlopen(path, RTLD_NOW | RTLD_LOCAL). The library is never unloaded.
 *   2. cohort_reward_plugin_abi_version() must return a version the host knows; otherwise the host
 *      refuses the plugin (its error names both versions) and calls nothing else in it.
 *   3. cohort_reward_plugin_register(&registry): the plugin calls registry->register_function once
 *      per function. Either every function is registered or the plugin is refused as a whole.
 *   4. For each reward in the config whose kind is a plugin function: create(options) once, then
 *      score(state, sample) per completion, from several threads at once, and destroy(state) at the
 *      end.
 *
 * Rules for plugin code (breaking them is undefined behaviour in the host):
 *   - score may be called concurrently from several threads with the SAME state. Either keep the
 *     state read-only after create (the easy way) or protect whatever score mutates. Do not use
 *     non-re-entrant library functions (strtok, a shared static buffer, ...) from score.
 *   - Pointers the host passes (options, sample fields, buffers) are valid only during the call;
 *     copy what must outlive it.
 *   - Completions are untrusted model output: any bytes, any length. Use the lengths given.
 *   - No C++ exception, longjmp, exit() or abort() may leave a plugin function; report failures
 *     with the error status and a message.
 *   - When the trainer or the reward server use a plugin, its functions run in isolated worker
 *     processes, so a crash or a hang costs a score, not the run; a worker that exceeds its time
 *     limit is killed. score may therefore run in a worker forked from the process that called
 *     create, on that worker's copy of the state: threads the plugin started do not exist there,
 *     and whatever score changes in the state stays in that worker.
 */
#ifndef COHORT_REWARD_PLUGIN_H
#define COHORT_REWARD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. Raised whenever a struct or a function signature below changes;
 * a host refuses a plugin whose cohort_reward_plugin_abi_version() it does not know. */
#define COHORT_REWARD_PLUGIN_ABI_VERSION 1u

/* Marks the two entry points as exported even when the plugin builds with -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define COHORT_REWARD_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define COHORT_REWARD_PLUGIN_EXPORT
#endif

/* Status returned by a score function. Any other value is treated as COHORT_REWARD_ERROR. */
enum {
  COHORT_REWARD_SCORED = 0,   /* *score holds the score (a non-finite value counts as an error) */
  COHORT_REWARD_NO_SCORE = 1, /* no score for this sample: left out of the group mean, advantage 0 */
  COHORT_REWARD_ERROR = 2     /* failed: the message buffer says why; counted and logged, no score */
};

/* Longest function name, in bytes, without the terminating NUL. */
#define COHORT_REWARD_PLUGIN_MAX_NAME 64

/* One completion to score. Every text field is UTF-8 (the completion is untrusted and may hold
 * invalid UTF-8 or NUL bytes), `*_len` bytes long, and followed by a NUL byte the host guarantees
 * (text[len] == '\0'), so C string functions cannot run past the end. A NUL inside the text is
 * possible, though: `*_len` is the length, and functions that stop at the first NUL (strstr,
 * strlen) see only the part before it. */
typedef struct cohort_reward_sample {
  const char* prompt; /* the prompt as given to the model (after the chat template, if any) */
  size_t prompt_len;
  const char* completion; /* the decoded completion, special tokens removed */
  size_t completion_len;
  const char* metadata_json; /* the dataset row as compact JSON, e.g. {"answer":"42"}; "{}" when none */
  size_t metadata_json_len;
  int64_t completion_tokens; /* the completion's length in tokens (>= 0) */
  int truncated;             /* 1 when the length limit stopped the completion, not a stop token; else 0 */
} cohort_reward_sample;

/* One reward function. Passed to registry->register_function; the host copies the struct and the
 * strings during that call, so it may live on the stack. */
typedef struct cohort_reward_function_def {
  /* The reward kind, as written in configs ("kind": NAME). 1 to COHORT_REWARD_PLUGIN_MAX_NAME
   * characters from [A-Za-z0-9_]; must differ from every built-in kind and every function of other
   * loaded plugins. */
  const char* name;

  /* One line for listings and errors; may be NULL. */
  const char* description;

  /* Builds the function's state from its options. `options_json` is the NUL-terminated JSON object
   * of the config entry's options (every key but "name", "kind" and "weight"), "{}" when there are
   * none. Validate it here: an unknown key or a wrong type should fail now, not at the first score.
   * Returns the state (any non-NULL pointer; a stateless function may return a pointer to a static
   * object), or NULL on error after writing a NUL-terminated reason of at most error_cap bytes
   * (terminator included) into error_buf; the host reports it as a configuration error.
   * error_cap is at least 256.
   * May be NULL: the function takes no options (the host refuses any) and score receives NULL. */
  void* (*create)(const char* options_json, char* error_buf, size_t error_cap);

  /* Scores one sample. Required. Returns COHORT_REWARD_SCORED after storing the score in *score,
   * COHORT_REWARD_NO_SCORE, or COHORT_REWARD_ERROR after writing a NUL-terminated message of at
   * most message_cap bytes (terminator included) into message_buf. message_buf holds "" on entry
   * and message_cap is at least 256; the message is read only with COHORT_REWARD_ERROR. Keep
   * messages free of the completion's text: the host counts errors per distinct message.
   * THREAD SAFETY: called from several threads at once with the same state. */
  int (*score)(void* state, const cohort_reward_sample* sample, double* score, char* message_buf, size_t message_cap);

  /* Frees a state create returned, once no score call on it is running or will run. May be NULL
   * when there is nothing to free. Not called for a NULL state. */
  void (*destroy)(void* state);
} cohort_reward_function_def;

/* What the host hands to cohort_reward_plugin_register. */
typedef struct cohort_reward_registry {
  /* The host's COHORT_REWARD_PLUGIN_ABI_VERSION; equal to the plugin's (the host has checked). */
  uint32_t abi_version;

  /* Opaque; pass it back as register_function's first argument. */
  void* host;

  /* Registers one function. Returns 0 when accepted; non-zero when refused (a name that is invalid,
   * repeated, or taken by a built-in or another plugin; a NULL score). A refusal fails the whole
   * plugin whatever cohort_reward_plugin_register then returns; the host's error names the reason.
   * Valid only during cohort_reward_plugin_register. */
  int (*register_function)(void* host, const cohort_reward_function_def* def);
} cohort_reward_registry;

/* The entry points every plugin defines (the prototypes here make the compiler check them).
 *
 * Returns COHORT_REWARD_PLUGIN_ABI_VERSION as the plugin was compiled; define it exactly as
 *   uint32_t cohort_reward_plugin_abi_version(void) { return COHORT_REWARD_PLUGIN_ABI_VERSION; } */
COHORT_REWARD_PLUGIN_EXPORT uint32_t cohort_reward_plugin_abi_version(void);

/* Registers the plugin's functions through registry->register_function. Returns 0 on success,
 * non-zero to refuse loading (then nothing of the plugin is registered). Called once per process,
 * before any create. */
COHORT_REWARD_PLUGIN_EXPORT int cohort_reward_plugin_register(const cohort_reward_registry* registry);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* COHORT_REWARD_PLUGIN_H */

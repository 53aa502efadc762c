/* An example cohort reward plugin: "keywords_mentioned" scores whether a completion mentions every
 * keyword listed in a field of the dataset row, e.g. for the row
 *   {"prompt": "Where is the Louvre?", "keywords": ["Paris", "Seine"]}
 * "It is in Paris, on the Seine." scores 1 and "It is in Paris." scores 0 (0.5 with "fraction").
 *
 * Options (the config entry's keys besides name, kind and weight):
 *   field           the row's field holding the keywords, a list of strings  (default "keywords")
 *   case_sensitive  match case exactly; otherwise ASCII letters match either case  (default false)
 *   fraction        score the fraction of keywords found instead of all-or-nothing  (default false)
 * A row without the field, or with an empty list, gets no score; a field that is not a list of
 * strings is an error (counted by cohort, no score).
 *
 * It depends on nothing but the C library and cohort/reward/plugin.h, so it carries a small JSON
 * reader for the two JSON texts it sees (its options and the row). The reader decodes strings
 * fully (escapes, \u surrogate pairs), never reads past the lengths it is given, and refuses
 * structure it does not understand rather than guess. The state is read-only after create and score allocates only
 * locals, so score is safe to call from several threads at once, as plugin.h requires. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cohort/reward/plugin.h>

/* ---- A minimal JSON reader over a (pointer, end) range ---------------------------------------- */

typedef struct json_cursor {
  const char* at;
  const char* end;
} json_cursor;

enum { JSON_MAX_DEPTH = 64 };

static void json_skip_space(json_cursor* c) {
  while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) ++c->at;
}

/* Consumes `ch` (after whitespace) and returns 1, or returns 0 and consumes nothing. */
static int json_accept(json_cursor* c, char ch) {
  json_skip_space(c);
  if (c->at < c->end && *c->at == ch) {
    ++c->at;
    return 1;
  }
  return 0;
}

static int hex_digit(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Reads the 4 hex digits after "\u"; returns the code unit or -1. */
static long json_hex4(json_cursor* c) {
  if (c->end - c->at < 4) return -1;
  long value = 0;
  for (int i = 0; i < 4; ++i) {
    int digit = hex_digit(c->at[i]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  c->at += 4;
  return value;
}

static size_t utf8_encode(unsigned long code_point, char* out) {
  if (code_point < 0x80) {
    out[0] = (char)code_point;
    return 1;
  }
  if (code_point < 0x800) {
    out[0] = (char)(0xC0 | (code_point >> 6));
    out[1] = (char)(0x80 | (code_point & 0x3F));
    return 2;
  }
  if (code_point < 0x10000) {
    out[0] = (char)(0xE0 | (code_point >> 12));
    out[1] = (char)(0x80 | ((code_point >> 6) & 0x3F));
    out[2] = (char)(0x80 | (code_point & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (code_point >> 18));
  out[1] = (char)(0x80 | ((code_point >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((code_point >> 6) & 0x3F));
  out[3] = (char)(0x80 | (code_point & 0x3F));
  return 4;
}

/* Reads a string. With `out` non-NULL, stores a malloc'd, decoded, NUL-terminated copy in *out and
 * its length (which may count NUL bytes from \u0000) in *out_len; the caller frees it. Returns 0,
 * or -1 on malformed input or allocation failure (nothing to free then). */
static int json_string(json_cursor* c, char** out, size_t* out_len) {
  if (!json_accept(c, '"')) return -1;
  const char* start = c->at;
  while (c->at < c->end && *c->at != '"') {
    if ((unsigned char)*c->at < 0x20) return -1;
    if (*c->at == '\\' && c->end - c->at > 1) ++c->at; /* the escaped character cannot end the string */
    ++c->at;
  }
  if (c->at >= c->end) return -1;
  const char* stop = c->at++; /* the closing quote */
  if (out == NULL) return 0;

  /* Decoding never lengthens: "\uXXXX" (6 bytes) becomes at most 3, a surrogate pair (12) 4. */
  char* text = malloc((size_t)(stop - start) + 1);
  if (text == NULL) return -1;
  size_t length = 0;
  json_cursor in = {start, stop};
  while (in.at < in.end) {
    char ch = *in.at++;
    if (ch != '\\') {
      text[length++] = ch;
      continue;
    }
    if (in.at >= in.end) goto malformed;
    ch = *in.at++;
    switch (ch) {
      case '"':
        text[length++] = '"';
        break;
      case '\\':
        text[length++] = '\\';
        break;
      case '/':
        text[length++] = '/';
        break;
      case 'b':
        text[length++] = '\b';
        break;
      case 'f':
        text[length++] = '\f';
        break;
      case 'n':
        text[length++] = '\n';
        break;
      case 'r':
        text[length++] = '\r';
        break;
      case 't':
        text[length++] = '\t';
        break;
      case 'u': {
        long unit = json_hex4(&in);
        if (unit < 0) goto malformed;
        unsigned long code_point = (unsigned long)unit;
        if (unit >= 0xD800 && unit <= 0xDBFF && in.end - in.at >= 6 && in.at[0] == '\\' && in.at[1] == 'u') {
          json_cursor low_at = {in.at + 2, in.end};
          long low = json_hex4(&low_at);
          if (low >= 0xDC00 && low <= 0xDFFF) {
            code_point = 0x10000 + (((unsigned long)unit - 0xD800) << 10) + ((unsigned long)low - 0xDC00);
            in.at = low_at.at;
          }
        }
        if (code_point >= 0xD800 && code_point <= 0xDFFF) code_point = 0xFFFD; /* a lone surrogate */
        length += utf8_encode(code_point, text + length);
        break;
      }
      default:
        goto malformed;
    }
  }
  text[length] = '\0';
  *out = text;
  *out_len = length;
  return 0;
malformed:
  free(text);
  return -1;
}

/* Skips one value of any type. Returns 0, or -1 on malformed input or nesting deeper than
 * JSON_MAX_DEPTH (a row is data, not a stack-overflow attempt). */
static int json_skip_value(json_cursor* c, int depth) {
  if (depth > JSON_MAX_DEPTH) return -1;
  json_skip_space(c);
  if (c->at >= c->end) return -1;
  char ch = *c->at;
  if (ch == '"') return json_string(c, NULL, NULL);
  if (ch == '{' || ch == '[') {
    char close = ch == '{' ? '}' : ']';
    ++c->at;
    if (json_accept(c, close)) return 0;
    do {
      if (ch == '{' && (json_string(c, NULL, NULL) != 0 || !json_accept(c, ':'))) return -1;
      if (json_skip_value(c, depth + 1) != 0) return -1;
    } while (json_accept(c, ','));
    return json_accept(c, close) ? 0 : -1;
  }
  /* A number or true/false/null, skipped by the characters they are made of (not validated: only
   * strings and structure matter to this plugin). */
  const char* start = c->at;
  while (c->at < c->end && *c->at != '\0' && strchr("0123456789+-.eEtrufalsn", *c->at) != NULL) ++c->at;
  return c->at > start ? 0 : -1;
}

/* Walks the members of an object. Call json_object_begin once, then json_object_next until it
 * returns 0 (done) or -1 (malformed); on 1, *key is the member's malloc'd name (caller frees) and
 * the cursor stands before its value, which the caller reads or skips. */
static int json_object_begin(json_cursor* c) {
  return json_accept(c, '{') ? 0 : -1;
}

static int json_object_next(json_cursor* c, int first, char** key) {
  if (json_accept(c, '}')) return 0;
  if (!first && !json_accept(c, ',')) return -1;
  size_t key_len;
  if (json_string(c, key, &key_len) != 0) return -1;
  if (strlen(*key) != key_len || !json_accept(c, ':')) { /* a key with a NUL in it is no key of ours */
    free(*key);
    return -1;
  }
  return 1;
}

/* Reads true or false. Returns 0, or -1 for anything else. */
static int json_bool(json_cursor* c, int* value) {
  json_skip_space(c);
  if (c->end - c->at >= 4 && memcmp(c->at, "true", 4) == 0) {
    c->at += 4;
    *value = 1;
    return 0;
  }
  if (c->end - c->at >= 5 && memcmp(c->at, "false", 5) == 0) {
    c->at += 5;
    *value = 0;
    return 0;
  }
  return -1;
}

/* ---- The reward function ---------------------------------------------------------------------- */

typedef struct keywords_state {
  char* field; /* the row's field holding the keywords */
  int case_sensitive;
  int fraction;
} keywords_state;

static void keywords_destroy(void* state) {
  keywords_state* s = state;
  free(s->field);
  free(s);
}

/* Reads the options into `s`. Returns 0, or -1 after writing the reason into error_buf. */
static int read_options(keywords_state* s, const char* options_json, char* error_buf, size_t error_cap) {
  json_cursor c = {options_json, options_json + strlen(options_json)};
  if (json_object_begin(&c) != 0) {
    snprintf(error_buf, error_cap, "options are not a JSON object");
    return -1;
  }
  char* key = NULL;
  int status;
  for (int first = 1; (status = json_object_next(&c, first, &key)) == 1; first = 0) {
    int ok;
    if (strcmp(key, "field") == 0) {
      size_t length;
      free(s->field);
      s->field = NULL;
      ok = json_string(&c, &s->field, &length) == 0 && length > 0 && strlen(s->field) == length;
      if (!ok) snprintf(error_buf, error_cap, "option 'field' must be a non-empty string");
    } else if (strcmp(key, "case_sensitive") == 0 || strcmp(key, "fraction") == 0) {
      ok = json_bool(&c, strcmp(key, "fraction") == 0 ? &s->fraction : &s->case_sensitive) == 0;
      if (!ok) snprintf(error_buf, error_cap, "option '%s' must be true or false", key);
    } else {
      ok = 0;
      snprintf(error_buf, error_cap, "unknown option '%.64s' (known: field, case_sensitive, fraction)", key);
    }
    free(key);
    if (!ok) return -1;
  }
  if (status != 0) {
    snprintf(error_buf, error_cap, "options are not a JSON object");
    return -1;
  }
  if (s->field == NULL) {
    s->field = malloc(sizeof "keywords");
    if (s->field == NULL) {
      snprintf(error_buf, error_cap, "out of memory");
      return -1;
    }
    memcpy(s->field, "keywords", sizeof "keywords");
  }
  return 0;
}

static void* keywords_create(const char* options_json, char* error_buf, size_t error_cap) {
  keywords_state* s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(error_buf, error_cap, "out of memory");
    return NULL;
  }
  if (read_options(s, options_json, error_buf, error_cap) != 0) {
    keywords_destroy(s);
    return NULL;
  }
  return s;
}

static int fold(unsigned char ch, int case_sensitive) {
  return !case_sensitive && ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* Whether text[0, text_len) contains needle[0, needle_len); an empty needle is always found. */
static int mentions(const char* text, size_t text_len, const char* needle, size_t needle_len, int case_sensitive) {
  if (needle_len > text_len) return 0;
  for (size_t i = 0; i + needle_len <= text_len; ++i) {
    size_t j = 0;
    while (j < needle_len &&
           fold((unsigned char)text[i + j], case_sensitive) == fold((unsigned char)needle[j], case_sensitive)) {
      ++j;
    }
    if (j == needle_len) return 1;
  }
  return 0;
}

/* Positions the cursor before the value of the row's member `field`. Returns 1 when found, 0 when
 * the row has no such member, -1 when the row is malformed. */
static int find_member(json_cursor* c, const char* field) {
  if (json_object_begin(c) != 0) return -1;
  char* key = NULL;
  int status;
  for (int first = 1; (status = json_object_next(c, first, &key)) == 1; first = 0) {
    int is_field = strcmp(key, field) == 0;
    free(key);
    if (is_field) return 1;
    if (json_skip_value(c, 0) != 0) return -1;
  }
  return status;
}

/* Reads a list of strings and counts the keywords the completion mentions. Returns 0, or -1 when
 * the value is not a list of strings. */
static int count_mentions(json_cursor* c, const keywords_state* s, const cohort_reward_sample* sample, int* total,
                          int* found) {
  *total = 0;
  *found = 0;
  if (!json_accept(c, '[')) return -1;
  if (json_accept(c, ']')) return 0;
  do {
    char* keyword;
    size_t keyword_len;
    if (json_string(c, &keyword, &keyword_len) != 0) return -1;
    *total += 1;
    *found += mentions(sample->completion, sample->completion_len, keyword, keyword_len, s->case_sensitive);
    free(keyword);
  } while (json_accept(c, ','));
  return json_accept(c, ']') ? 0 : -1;
}

static int keywords_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                          size_t message_cap) {
  const keywords_state* s = state;
  json_cursor c = {sample->metadata_json, sample->metadata_json + sample->metadata_json_len};
  int member = find_member(&c, s->field);
  if (member == 0) return COHORT_REWARD_NO_SCORE; /* the row has no such field */
  if (member < 0) {
    snprintf(message_buf, message_cap, "the row is not a well-formed JSON object");
    return COHORT_REWARD_ERROR;
  }
  int total;
  int found;
  if (count_mentions(&c, s, sample, &total, &found) != 0) {
    snprintf(message_buf, message_cap, "the row's field '%.64s' is not a list of strings", s->field);
    return COHORT_REWARD_ERROR;
  }
  if (total == 0) return COHORT_REWARD_NO_SCORE; /* nothing to look for */
  *score = s->fraction ? (double)found / (double)total : (found == total ? 1.0 : 0.0);
  return COHORT_REWARD_SCORED;
}

/* ---- The plugin's entry points ---------------------------------------------------------------- */

uint32_t cohort_reward_plugin_abi_version(void) {
  return COHORT_REWARD_PLUGIN_ABI_VERSION;
}

int cohort_reward_plugin_register(const cohort_reward_registry* registry) {
  cohort_reward_function_def def = {
      "keywords_mentioned",
      "1 when the completion mentions every keyword in the row's list (options: field, case_sensitive, fraction)",
      keywords_create,
      keywords_score,
      keywords_destroy,
  };
  return registry->register_function(registry->host, &def);
}

/* Rule parsing and firing for the fault module (fault_rules.h). */
#include "tests/fault/fault_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char* name;
  CK_RV rv;
} kRvNames[] = {
    {"CKR_GENERAL_ERROR", CKR_GENERAL_ERROR},
    {"CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED},
    {"CKR_HOST_MEMORY", CKR_HOST_MEMORY},
    {"CKR_DEVICE_ERROR", CKR_DEVICE_ERROR},
    {"CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY},
    {"CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED},
    {"CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT},
    {"CKR_SESSION_CLOSED", CKR_SESSION_CLOSED},
    {"CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID},
    {"CKR_SESSION_COUNT", CKR_SESSION_COUNT},
    {"CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN},
    {"CKR_KEY_HANDLE_INVALID", CKR_KEY_HANDLE_INVALID},
    {"CKR_OBJECT_HANDLE_INVALID", CKR_OBJECT_HANDLE_INVALID},
    {"CKR_CRYPTOKI_NOT_INITIALIZED", CKR_CRYPTOKI_NOT_INITIALIZED},
};

static int parse_rv(const char* text, CK_RV* rv) {
  for (size_t i = 0; i < sizeof(kRvNames) / sizeof(kRvNames[0]); ++i) {
    if (strcmp(text, kRvNames[i].name) == 0) {
      *rv = kRvNames[i].rv;
      return 1;
    }
  }
  char* end = NULL;
  unsigned long value = strtoul(text, &end, 0);
  if (end == text || *end != '\0' || value == CKR_OK) return 0;
  *rv = (CK_RV)value;
  return 1;
}

uint64_t fault_next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int fault_rule_fires(struct rule* r) {
  if (r->remaining == 0) return 0;
  if (r->one_in > 1) return fault_next_random(&r->rng) % (uint64_t)r->one_in == 0;
  if (r->remaining > 0) --r->remaining;
  return 1;
}

int fault_parse_rule(char* line, struct rule* r) {
  char* words[8];
  int n = 0;
  char* save = NULL;
  for (char* w = strtok_r(line, " \t\r", &save); w != NULL && n < 8;
       w = strtok_r(NULL, " \t\r", &save)) {
    words[n++] = w;
  }
  if (n < 3 || words[0][0] == '#') return 0;
  memset(r, 0, sizeof(*r));
  r->rng = 1;
  const char* flag = "";
  for (int i = 3; i < n; ++i) {
    if (strncmp(words[i], "seed=", 5) == 0) {
      r->rng = strtoull(words[i] + 5, NULL, 0);
    } else {
      flag = words[i];
    }
  }
  if (strcmp(words[1], "DELAY") == 0) {
    r->delay_ms = strtol(flag, NULL, 10);
    if (r->delay_ms <= 0) {
      fprintf(stderr, "fault_module: DELAY needs milliseconds > 0\n");
      return 0;
    }
  } else if (strcmp(words[1], "CORRUPT") == 0) {
    r->corrupt = 1;
  } else if (!parse_rv(words[1], &r->rv)) {
    fprintf(stderr, "fault_module: bad CK_RV '%s' ignored\n", words[1]);
    return 0;
  }
  snprintf(r->fn, sizeof(r->fn), "%s", words[0]);
  const char* count = words[2];
  if (strncmp(count, "1in", 3) == 0) {
    r->one_in = strtol(count + 3, NULL, 10);
    if (r->one_in < 1) {
      fprintf(stderr, "fault_module: bad rate '%s' ignored\n", count);
      return 0;
    }
    r->remaining = -1;
  } else {
    r->remaining = strcmp(count, "always") == 0 ? -1
                   : strcmp(count, "off") == 0  ? 0
                                                : strtol(count, NULL, 10);
  }
  int plain = r->delay_ms == 0 && !r->corrupt;
  r->latch = plain && strcmp(flag, "latch") == 0;
  r->after = plain && strcmp(flag, "after") == 0;
  return 1;
}

/* tokensign_fault_pkcs11 — a PKCS#11 module that forwards every call to a real
 * module and fails chosen calls on demand. Test infrastructure only.
 * Environment: TOKENSIGN_FAULT_TARGET (the real module, default
 * /usr/lib/softhsm/libsofthsm2.so), TOKENSIGN_FAULT_CONTROL (the control file;
 * absent or empty = no faults; its language: fault_rules.h),
 * TOKENSIGN_FAULT_STATS (a counters file for other processes).
 * tokensign_fault_injected() returns how many calls were failed so far (tests
 * prove a fault was actually exercised). tokensign_fault_finalize_overlaps()
 * counts C_Finalize calls made while another call was still inside the module
 * (what PKCS#11 forbids and a real module may crash on);
 * tokensign_fault_inside() is how many calls are inside right now,
 * tokensign_fault_delayed() how many of them are sleeping in a DELAY.
 * Thread-safe: one mutex around the rule table; forwarded calls run unlocked.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hsm/pkcs11.h"
#include "tests/fault/fault_rules.h"

#define EXPORT __attribute__((visibility("default")))
#define MAX_RULES 16
/* Sessions and the token-removal epoch they were opened in. */
#define MAX_SESSIONS 4096
struct session_slot {
  CK_SESSION_HANDLE handle;
  unsigned long epoch;
  int used;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rule g_rules[MAX_RULES];
static int g_nrules;
static CK_RV g_latched;   /* CKR_OK = not down */
static char g_text[4096]; /* control file content last parsed */
static unsigned long g_injected;
static int g_inside;             /* non-lifecycle calls in progress */
static int g_delayed;            /* calls sleeping in a DELAY right now */
static unsigned long g_overlaps; /* C_Finalize while g_inside > 0 */
static CK_FUNCTION_LIST_PTR g_real;
static unsigned long g_corrupted;     /* signatures flipped */
static unsigned long g_delays;        /* DELAYs slept, in all */
static unsigned long g_stale;         /* calls refused for a pulled token */
static int g_removed;                 /* "TOKEN REMOVED" in the file */
static int g_need_login;              /* re-inserted, no C_Login since */
static unsigned long g_epoch;         /* removals so far */
static struct session_slot g_sessions[MAX_SESSIONS];

static void write_stats_locked(void) {
  const char* path = getenv("TOKENSIGN_FAULT_STATS");
  if (path == NULL || *path == '\0') return;
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE* file = fopen(tmp, "w");
  if (file == NULL) return;
  fprintf(file, "injected %lu\ncorrupted %lu\ndelayed %lu\nstale %lu\n",
          g_injected, g_corrupted, g_delays, g_stale);
  fclose(file);
  rename(tmp, path);
}

/* Re-parses the control file if its content changed. Called with g_mu held. */
static void reload_locked(void) {
  char text[sizeof(g_text)] = "";
  const char* path = getenv("TOKENSIGN_FAULT_CONTROL");
  FILE* file = path != NULL ? fopen(path, "r") : NULL;
  if (file != NULL) {
    text[fread(text, 1, sizeof(text) - 1, file)] = '\0';
    fclose(file);
  }
  if (strcmp(text, g_text) == 0) return;
  memcpy(g_text, text, sizeof(text));
  g_nrules = 0;
  g_latched = CKR_OK;
  int removed = 0;
  char* save = NULL;
  for (char* line = strtok_r(text, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    char token[16] = "", what[16] = "";
    if (sscanf(line, "%15s %15s", token, what) == 2 &&
        strcmp(token, "TOKEN") == 0 && strcmp(what, "REMOVED") == 0) {
      removed = 1;
      continue;
    }
    if (g_nrules < MAX_RULES && fault_parse_rule(line, &g_rules[g_nrules])) {
      ++g_nrules;
    }
  }
  if (removed && !g_removed) ++g_epoch; /* every open session dies */
  if (!removed && g_removed) g_need_login = 1;
  g_removed = removed;
}

/* The session table (g_mu held). */
static struct session_slot* session_find_locked(CK_SESSION_HANDLE h,
                                                int insert) {
  size_t start = (size_t)(h * 2654435761u) % MAX_SESSIONS;
  struct session_slot* free_slot = NULL;
  for (size_t i = 0; i < MAX_SESSIONS; ++i) {
    struct session_slot* s = &g_sessions[(start + i) % MAX_SESSIONS];
    if (s->used && s->handle == h) return s;
    if (!s->used) {
      if (free_slot == NULL) free_slot = s;
      if (s->handle == 0) break; /* never used: end of the probe chain */
    }
  }
  if (!insert || free_slot == NULL) return NULL;
  free_slot->used = 1;
  free_slot->handle = h;
  free_slot->epoch = g_epoch;
  return free_slot;
}

/* Functions whose first argument is not a session handle. */
static int is_sessionless(const char* fn) {
  static const char* const kNames[] = {
      "C_Initialize",       "C_Finalize",         "C_GetInfo",
      "C_GetSlotList",      "C_GetSlotInfo",      "C_GetTokenInfo",
      "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken",
      "C_OpenSession",      "C_CloseAllSessions", "C_WaitForSlotEvent"};
  for (size_t i = 0; i < sizeof(kNames) / sizeof(kNames[0]); ++i) {
    if (strcmp(fn, kNames[i]) == 0) return 1;
  }
  return 0;
}

/* The token's answer while pulled out or after re-insertion (g_mu held):
 * CKR_OK = forward. */
static CK_RV removal_rv_locked(const char* fn, CK_ULONG first) {
  if (strcmp(fn, "C_GetTokenInfo") == 0 || strcmp(fn, "C_OpenSession") == 0 ||
      strcmp(fn, "C_GetMechanismList") == 0 ||
      strcmp(fn, "C_GetMechanismInfo") == 0 ||
      strcmp(fn, "C_InitToken") == 0) {
    return g_removed ? CKR_TOKEN_NOT_PRESENT : CKR_OK;
  }
  if (is_sessionless(fn)) return CKR_OK;
  if (g_removed) return CKR_DEVICE_REMOVED;
  struct session_slot* s = session_find_locked(first, 0);
  if (s != NULL && s->epoch < g_epoch) return CKR_SESSION_HANDLE_INVALID;
  if (g_need_login && strcmp(fn, "C_SignInit") == 0) {
    return CKR_USER_NOT_LOGGED_IN;
  }
  return CKR_OK;
}

static int is_lifecycle(const char* fn) {
  return strcmp(fn, "C_Initialize") == 0 || strcmp(fn, "C_Finalize") == 0 ||
         strcmp(fn, "C_GetInfo") == 0;
}

/* Enters `fn` (`first` = its first argument, a session handle for session
 * calls): CKR_OK to forward it, or the CK_RV to fail it with; *after =
 * forward it anyway before failing. Counts the call as inside the module from
 * here until fault_exit, so any DELAY (slept here) is spent inside it. */
static CK_RV fault_enter(const char* fn, CK_ULONG first, int* after) {
  CK_RV rv = CKR_OK;
  long delay_ms = 0;
  int changed = 0;
  *after = 0;
  pthread_mutex_lock(&g_mu);
  reload_locked();
  if (strcmp(fn, "C_Finalize") == 0 && g_inside > 0) ++g_overlaps;
  if (!is_lifecycle(fn)) ++g_inside;
  if (g_latched != CKR_OK && !is_lifecycle(fn)) {
    rv = g_latched;
  } else if ((rv = removal_rv_locked(fn, first)) != CKR_OK) {
    ++g_stale;
    changed = 1;
  } else {
    for (int i = 0; i < g_nrules; ++i) {
      struct rule* r = &g_rules[i];
      int match = strcmp(r->fn, fn) == 0 ||
                  (strcmp(r->fn, "*") == 0 && !is_lifecycle(fn));
      if (!match || r->corrupt) continue;
      if (r->delay_ms > 0) {
        if (delay_ms > 0 || !fault_rule_fires(r)) continue;
        delay_ms = r->delay_ms;
      } else {
        if (rv != CKR_OK || !fault_rule_fires(r)) continue;
        rv = r->rv;
        *after = r->after;
        if (r->latch) g_latched = rv;
      }
    }
  }
  if (rv != CKR_OK) {
    ++g_injected;
    changed = 1;
  }
  if (delay_ms > 0) {
    ++g_delayed; /* still under g_mu */
    ++g_delays;
    changed = 1;
  }
  if (changed) write_stats_locked();
  pthread_mutex_unlock(&g_mu);
  if (delay_ms > 0) {
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    pthread_mutex_lock(&g_mu);
    --g_delayed;
    pthread_mutex_unlock(&g_mu);
  }
  return rv;
}

/* After a C_Sign that succeeded with output: flips one byte of it if a
 * CORRUPT rule fires. */
static void maybe_corrupt(CK_BYTE_PTR out, CK_ULONG len) {
  if (out == NULL || len == 0) return;
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < g_nrules; ++i) {
    struct rule* r = &g_rules[i];
    if (!r->corrupt || strcmp(r->fn, "C_Sign") != 0 || !fault_rule_fires(r)) {
      continue;
    }
    out[fault_next_random(&r->rng) % len] ^= 0x5A;
    ++g_corrupted;
    write_stats_locked();
    break;
  }
  pthread_mutex_unlock(&g_mu);
}

/* Keeps the session table in step with the real module (g_mu not held). */
static void track_session(const char* fn, CK_RV rv, CK_ULONG first,
                          CK_SESSION_HANDLE_PTR opened) {
  pthread_mutex_lock(&g_mu);
  if (strcmp(fn, "C_OpenSession") == 0 && rv == CKR_OK && opened != NULL) {
    struct session_slot* s = session_find_locked(*opened, 1);
    if (s != NULL) s->epoch = g_epoch;
  } else if (strcmp(fn, "C_CloseSession") == 0) {
    struct session_slot* s = session_find_locked(first, 0);
    if (s != NULL) s->used = 0;
  } else if (strcmp(fn, "C_CloseAllSessions") == 0 ||
             strcmp(fn, "C_Finalize") == 0 ||
             strcmp(fn, "C_Initialize") == 0) {
    memset(g_sessions, 0, sizeof(g_sessions));
  } else if (strcmp(fn, "C_Login") == 0 && rv == CKR_OK) {
    g_need_login = 0;
  }
  pthread_mutex_unlock(&g_mu);
}

static void fault_exit(const char* fn) {
  if (is_lifecycle(fn)) return;
  pthread_mutex_lock(&g_mu);
  --g_inside;
  pthread_mutex_unlock(&g_mu);
}

EXPORT unsigned long tokensign_fault_injected(void) {
  pthread_mutex_lock(&g_mu);
  unsigned long n = g_injected;
  pthread_mutex_unlock(&g_mu);
  return n;
}

EXPORT unsigned long tokensign_fault_finalize_overlaps(void) {
  pthread_mutex_lock(&g_mu);
  unsigned long n = g_overlaps;
  pthread_mutex_unlock(&g_mu);
  return n;
}

EXPORT int tokensign_fault_delayed(void) {
  pthread_mutex_lock(&g_mu);
  int n = g_delayed;
  pthread_mutex_unlock(&g_mu);
  return n;
}

EXPORT int tokensign_fault_inside(void) {
  pthread_mutex_lock(&g_mu);
  int n = g_inside;
  pthread_mutex_unlock(&g_mu);
  return n;
}

/* The forwarding entries: X(name, (typed params), (args)). */
/* clang-format off */
#define FAULT_FUNCTIONS(X)                                                    \
  X(C_Initialize, (CK_VOID_PTR a), (a))                                       \
  X(C_Finalize, (CK_VOID_PTR a), (a))                                         \
  X(C_GetInfo, (CK_INFO_PTR a), (a))                                          \
  /* C_GetSlotList: written out below. */ \
  /* C_GetSlotInfo: written out below. */ \
  X(C_GetTokenInfo, (CK_SLOT_ID a, CK_TOKEN_INFO_PTR b), (a, b))              \
  X(C_GetMechanismList, (CK_SLOT_ID a, CK_MECHANISM_TYPE_PTR b,               \
                         CK_ULONG_PTR c), (a, b, c))                          \
  X(C_GetMechanismInfo, (CK_SLOT_ID a, CK_MECHANISM_TYPE b,                   \
                         CK_MECHANISM_INFO_PTR c), (a, b, c))                 \
  X(C_InitToken, (CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c,                \
                  CK_UTF8CHAR_PTR d), (a, b, c, d))                           \
  X(C_InitPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c),          \
    (a, b, c))                                                                \
  X(C_SetPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c,            \
               CK_UTF8CHAR_PTR d, CK_ULONG e), (a, b, c, d, e))               \
  /* C_OpenSession: written out below. */ \
  /* C_CloseSession: written out below. */ \
  X(C_CloseAllSessions, (CK_SLOT_ID a), (a))                                  \
  X(C_GetSessionInfo, (CK_SESSION_HANDLE a, CK_SESSION_INFO_PTR b), (a, b))   \
  X(C_GetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b,                 \
                          CK_ULONG_PTR c), (a, b, c))                         \
  X(C_SetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,     \
                          CK_OBJECT_HANDLE d, CK_OBJECT_HANDLE e),            \
    (a, b, c, d, e))                                                          \
  /* C_Login: written out below. */ \
  X(C_Logout, (CK_SESSION_HANDLE a), (a))                                     \
  X(C_CreateObject, (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c,     \
                     CK_OBJECT_HANDLE_PTR d), (a, b, c, d))                   \
  X(C_CopyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b,                   \
                   CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_OBJECT_HANDLE_PTR e),   \
    (a, b, c, d, e))                                                          \
  X(C_DestroyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b), (a, b))       \
  X(C_GetObjectSize, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b,                \
                      CK_ULONG_PTR c), (a, b, c))                             \
  X(C_GetAttributeValue, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b,            \
                          CK_ATTRIBUTE_PTR c, CK_ULONG d), (a, b, c, d))      \
  X(C_SetAttributeValue, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b,            \
                          CK_ATTRIBUTE_PTR c, CK_ULONG d), (a, b, c, d))      \
  X(C_FindObjectsInit, (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b,              \
                        CK_ULONG c), (a, b, c))                               \
  X(C_FindObjects, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE_PTR b, CK_ULONG c,  \
                    CK_ULONG_PTR d), (a, b, c, d))                            \
  X(C_FindObjectsFinal, (CK_SESSION_HANDLE a), (a))                           \
  CRYPT_FUNCTIONS(X, Encrypt)                                                 \
  CRYPT_FUNCTIONS(X, Decrypt)                                                 \
  X(C_DigestInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b), (a, b))          \
  X(C_Digest, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, \
               CK_ULONG_PTR e), (a, b, c, d, e))                              \
  X(C_DigestUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c),         \
    (a, b, c))                                                                \
  X(C_DigestKey, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b), (a, b))           \
  X(C_DigestFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c),      \
    (a, b, c))                                                                \
  X(C_SignInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,                     \
                 CK_OBJECT_HANDLE c), (a, b, c))                              \
  /* C_Sign: written out below. */                                            \
  X(C_SignUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c),           \
    (a, b, c))                                                                \
  X(C_SignFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c),        \
    (a, b, c))                                                                \
  X(C_SignRecoverInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,              \
                        CK_OBJECT_HANDLE c), (a, b, c))                       \
  X(C_SignRecover, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,           \
                    CK_BYTE_PTR d, CK_ULONG_PTR e), (a, b, c, d, e))          \
  X(C_VerifyInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,                   \
                   CK_OBJECT_HANDLE c), (a, b, c))                            \
  X(C_Verify, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, \
               CK_ULONG e), (a, b, c, d, e))                                  \
  X(C_VerifyUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c),         \
    (a, b, c))                                                                \
  X(C_VerifyFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c),          \
    (a, b, c))                                                                \
  X(C_VerifyRecoverInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,            \
                          CK_OBJECT_HANDLE c), (a, b, c))                     \
  X(C_VerifyRecover, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,         \
                      CK_BYTE_PTR d, CK_ULONG_PTR e), (a, b, c, d, e))        \
  DUAL_FUNCTION(X, C_DigestEncryptUpdate)                                     \
  DUAL_FUNCTION(X, C_DecryptDigestUpdate)                                     \
  DUAL_FUNCTION(X, C_SignEncryptUpdate)                                       \
  DUAL_FUNCTION(X, C_DecryptVerifyUpdate)                                     \
  X(C_GenerateKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,                  \
                    CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_OBJECT_HANDLE_PTR e),  \
    (a, b, c, d, e))                                                          \
  X(C_GenerateKeyPair, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,              \
                        CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_ATTRIBUTE_PTR e,   \
                        CK_ULONG f, CK_OBJECT_HANDLE_PTR g,                   \
                        CK_OBJECT_HANDLE_PTR h), (a, b, c, d, e, f, g, h))    \
  X(C_WrapKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,  \
                CK_OBJECT_HANDLE d, CK_BYTE_PTR e, CK_ULONG_PTR f),           \
    (a, b, c, d, e, f))                                                       \
  X(C_UnwrapKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,                    \
                  CK_OBJECT_HANDLE c, CK_BYTE_PTR d, CK_ULONG e,              \
                  CK_ATTRIBUTE_PTR f, CK_ULONG g, CK_OBJECT_HANDLE_PTR h),    \
    (a, b, c, d, e, f, g, h))                                                 \
  X(C_DeriveKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,                    \
                  CK_OBJECT_HANDLE c, CK_ATTRIBUTE_PTR d, CK_ULONG e,         \
                  CK_OBJECT_HANDLE_PTR f), (a, b, c, d, e, f))                \
  X(C_SeedRandom, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c),           \
    (a, b, c))                                                                \
  X(C_GenerateRandom, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c),       \
    (a, b, c))                                                                \
  X(C_GetFunctionStatus, (CK_SESSION_HANDLE a), (a))                          \
  X(C_CancelFunction, (CK_SESSION_HANDLE a), (a))                             \
  X(C_WaitForSlotEvent, (CK_FLAGS a, CK_SLOT_ID_PTR b, CK_VOID_PTR c),        \
    (a, b, c))

/* C_EncryptInit/Encrypt/EncryptUpdate/EncryptFinal and the Decrypt four. */
#define CRYPT_FUNCTIONS(X, Op)                                               \
  X(C_##Op##Init, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b,                  \
                   CK_OBJECT_HANDLE c), (a, b, c))                           \
  X(C_##Op, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,  \
             CK_ULONG_PTR e), (a, b, c, d, e))                               \
  X(C_##Op##Update, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,         \
                     CK_BYTE_PTR d, CK_ULONG_PTR e), (a, b, c, d, e))        \
  X(C_##Op##Final, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c),     \
    (a, b, c))
/* The four dual-function updates share one signature. */
#define DUAL_FUNCTION(X, name)                                          \
  X(name, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, \
           CK_ULONG_PTR e), (a, b, c, d, e))

/* clang-format on */

#define FAULT_FIRST_(a, ...) a
#define FAULT_FIRST(args) FAULT_FIRST_ args
#define FAULT_FORWARD(name, params, args)                           \
  static CK_RV fault_##name params {                                \
    int after = 0;                                                  \
    CK_ULONG first = (CK_ULONG)(uintptr_t)(FAULT_FIRST(args));      \
    CK_RV rv = fault_enter(#name, first, &after);                   \
    if (rv == CKR_OK)                                               \
      rv = g_real->name args;                                       \
    else if (after)                                                 \
      (void)g_real->name args;                                      \
    track_session(#name, rv, first, NULL);                          \
    fault_exit(#name);                                              \
    return rv;                                                      \
  }
FAULT_FUNCTIONS(FAULT_FORWARD)

static CK_RV fault_C_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                          CK_ULONG data_len, CK_BYTE_PTR signature,
                          CK_ULONG_PTR signature_len) {
  int after = 0;
  CK_RV rv = fault_enter("C_Sign", session, &after);
  if (rv == CKR_OK) {
    rv = g_real->C_Sign(session, data, data_len, signature, signature_len);
    if (rv == CKR_OK && signature_len != NULL) {
      maybe_corrupt(signature, *signature_len);
    }
  } else {
    /* End the real operation, as a failing C_Sign must, then poison the
     * output. */
    CK_BYTE scratch[2048];
    CK_ULONG scratch_len = sizeof(scratch);
    (void)g_real->C_Sign(session, data, data_len, scratch, &scratch_len);
    if (signature != NULL && signature_len != NULL) {
      memset(signature, 0xA5, *signature_len);
    }
  }
  fault_exit("C_Sign");
  return rv;
}

/* While the token is pulled, no slot has a token. */
static CK_RV fault_C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list,
                                 CK_ULONG_PTR count) {
  int after = 0;
  CK_RV rv = fault_enter("C_GetSlotList", 0, &after);
  if (rv == CKR_OK) {
    pthread_mutex_lock(&g_mu);
    int removed = g_removed;
    pthread_mutex_unlock(&g_mu);
    if (removed && present && count != NULL) {
      *count = 0;
    } else {
      rv = g_real->C_GetSlotList(present, list, count);
    }
  }
  fault_exit("C_GetSlotList");
  return rv;
}

static CK_RV fault_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  int after = 0;
  CK_RV rv = fault_enter("C_GetSlotInfo", slot, &after);
  if (rv == CKR_OK) rv = g_real->C_GetSlotInfo(slot, info);
  if (rv == CKR_OK && info != NULL) {
    pthread_mutex_lock(&g_mu);
    if (g_removed) info->flags &= ~(CK_FLAGS)CKF_TOKEN_PRESENT;
    pthread_mutex_unlock(&g_mu);
  }
  fault_exit("C_GetSlotInfo");
  return rv;
}

static CK_RV fault_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags,
                                 CK_VOID_PTR app, CK_NOTIFY notify,
                                 CK_SESSION_HANDLE_PTR session) {
  int after = 0;
  CK_RV rv = fault_enter("C_OpenSession", slot, &after);
  if (rv == CKR_OK) {
    rv = g_real->C_OpenSession(slot, flags, app, notify, session);
  } else if (after) {
    (void)g_real->C_OpenSession(slot, flags, app, notify, session);
  }
  track_session("C_OpenSession", rv, 0, session);
  fault_exit("C_OpenSession");
  return rv;
}

/* A session of a pulled token is closed in the real module too (it would
 * otherwise leak there), but reported as the dead handle it is. */
static CK_RV fault_C_CloseSession(CK_SESSION_HANDLE session) {
  int after = 0;
  CK_RV rv = fault_enter("C_CloseSession", session, &after);
  if (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_DEVICE_REMOVED) {
    (void)g_real->C_CloseSession(session);
  } else if (rv == CKR_OK) {
    rv = g_real->C_CloseSession(session);
  } else if (after) {
    (void)g_real->C_CloseSession(session);
  }
  track_session("C_CloseSession", CKR_OK, session, NULL);
  fault_exit("C_CloseSession");
  return rv;
}

/* After a re-insertion the token has forgotten the login; SoftHSM (which
 * never saw the removal) may still hold it. */
static CK_RV fault_C_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user,
                           CK_UTF8CHAR_PTR pin, CK_ULONG pin_len) {
  int after = 0;
  CK_RV rv = fault_enter("C_Login", session, &after);
  if (rv == CKR_OK) {
    pthread_mutex_lock(&g_mu);
    int need_login = g_need_login;
    pthread_mutex_unlock(&g_mu);
    rv = g_real->C_Login(session, user, pin, pin_len);
    if (need_login && rv == CKR_USER_ALREADY_LOGGED_IN) rv = CKR_OK;
  } else if (after) {
    (void)g_real->C_Login(session, user, pin, pin_len);
  }
  track_session("C_Login", rv, session, NULL);
  fault_exit("C_Login");
  return rv;
}

static CK_RV fault_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

#define FAULT_ENTRY(name, params, args) .name = fault_##name,
static CK_FUNCTION_LIST g_list = {
    .version = {2, 40},
    FAULT_FUNCTIONS(FAULT_ENTRY) /* each entry ends with a comma */
        .C_Sign = fault_C_Sign,
    .C_GetSlotList = fault_C_GetSlotList,
    .C_GetSlotInfo = fault_C_GetSlotInfo,
    .C_OpenSession = fault_C_OpenSession,
    .C_CloseSession = fault_C_CloseSession,
    .C_Login = fault_C_Login,
    .C_GetFunctionList = fault_C_GetFunctionList,
};

static pthread_once_t g_load_once = PTHREAD_ONCE_INIT;

static void load_real(void) {
  const char* path = getenv("TOKENSIGN_FAULT_TARGET");
  if (path == NULL || *path == '\0') path = "/usr/lib/softhsm/libsofthsm2.so";
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    fprintf(stderr, "fault_module: dlopen(%s): %s\n", path, dlerror());
    return;
  }
  CK_C_GetFunctionList get =
      (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList");
  CK_FUNCTION_LIST_PTR real = NULL;
  if (get == NULL || get(&real) != CKR_OK || real == NULL) {
    fprintf(stderr, "fault_module: %s: no usable C_GetFunctionList\n", path);
    return;
  }
  g_real = real; /* the library stays loaded for the life of the process */
}

static CK_RV fault_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (list == NULL) return CKR_ARGUMENTS_BAD;
  pthread_once(&g_load_once, load_real);
  if (g_real == NULL) return CKR_GENERAL_ERROR;
  *list = &g_list;
  return CKR_OK;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  return fault_C_GetFunctionList(list);
}

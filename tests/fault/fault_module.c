/* tokensign_fault_pkcs11 — a PKCS#11 module that forwards every call to a real
 * module and fails chosen calls on demand. Test infrastructure only.
 *
 * Environment:
 *   TOKENSIGN_FAULT_TARGET   real module (default
 * /usr/lib/softhsm/libsofthsm2.so) TOKENSIGN_FAULT_CONTROL  control file;
 * absent or empty = no faults
 *
 * Control file, one rule per line ('#' starts a comment):
 *   <function|*> <CKR_NAME|0xHEX> <count|always|off> [latch|after]
 * e.g. "C_Sign CKR_DEVICE_ERROR 3" fails the next 3 C_Sign calls;
 * "* CKR_DEVICE_REMOVED always" fails everything except C_Initialize,
 * C_Finalize and C_GetInfo ("the HSM is down"); "latch" makes the first hit
 * switch the module into that down state until the file changes; "after"
 * forwards the call first and then reports the error (the token did the work,
 * the reply was lost: e.g. a key pair exists that the caller has no handles
 * for). The first
 * matching rule with hits left wins. A slow HSM:
 *   <function|*> DELAY <count|always|off> <milliseconds>
 * makes the next count matching calls wait that long inside the module before
 * they are forwarded (the first matching DELAY rule with hits left applies, on
 * top of any fault rule). The file is read on every call and
 * re-parsed (counts and latch reset) when its content changes; to re-arm the
 * same rules, change a comment line. Write it atomically (temp + rename).
 *
 * Faithful failure: a failed C_Sign still terminates the real signing
 * operation (as PKCS#11 requires of any C_Sign error) and the caller's output
 * buffer is filled with 0xA5 so that code using output after an error is
 * caught by signature verification.
 *
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hsm/pkcs11.h"

#define EXPORT __attribute__((visibility("default")))
#define MAX_RULES 16

struct rule {
  char fn[48];
  CK_RV rv;
  long remaining; /* -1 = always */
  int latch;
  int after;
  long delay_ms; /* > 0: a DELAY rule */
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
  char* save = NULL;
  for (char* line = strtok_r(text, "\n", &save);
       line != NULL && g_nrules < MAX_RULES;
       line = strtok_r(NULL, "\n", &save)) {
    char fn[48], rv_text[64], count[32], flag[16] = "";
    if (line[0] == '#') continue;
    if (sscanf(line, "%47s %63s %31s %15s", fn, rv_text, count, flag) < 3) {
      continue;
    }
    struct rule* r = &g_rules[g_nrules];
    r->delay_ms = 0;
    if (strcmp(rv_text, "DELAY") == 0) {
      r->rv = CKR_OK;
      r->delay_ms = strtol(flag, NULL, 10);
      if (r->delay_ms <= 0) {
        fprintf(stderr, "fault_module: DELAY needs milliseconds > 0\n");
        continue;
      }
    } else if (!parse_rv(rv_text, &r->rv)) {
      fprintf(stderr, "fault_module: bad CK_RV '%s' ignored\n", rv_text);
      continue;
    }
    snprintf(r->fn, sizeof(r->fn), "%s", fn);
    r->remaining = strcmp(count, "always") == 0 ? -1
                   : strcmp(count, "off") == 0  ? 0
                                                : strtol(count, NULL, 10);
    r->latch = r->delay_ms == 0 && strcmp(flag, "latch") == 0;
    r->after = r->delay_ms == 0 && strcmp(flag, "after") == 0;
    ++g_nrules;
  }
}

static int is_lifecycle(const char* fn) {
  return strcmp(fn, "C_Initialize") == 0 || strcmp(fn, "C_Finalize") == 0 ||
         strcmp(fn, "C_GetInfo") == 0;
}

/* Enters `fn`: CKR_OK to forward it, or the CK_RV to fail it with; *after =
 * forward it anyway before failing. Counts the call as inside the module from
 * here until fault_exit, so any DELAY (slept here) is spent inside it. */
static CK_RV fault_enter(const char* fn, int* after) {
  CK_RV rv = CKR_OK;
  long delay_ms = 0;
  *after = 0;
  pthread_mutex_lock(&g_mu);
  reload_locked();
  if (strcmp(fn, "C_Finalize") == 0 && g_inside > 0) ++g_overlaps;
  if (!is_lifecycle(fn)) ++g_inside;
  if (g_latched != CKR_OK && !is_lifecycle(fn)) {
    rv = g_latched;
  } else {
    for (int i = 0; i < g_nrules; ++i) {
      struct rule* r = &g_rules[i];
      int match = strcmp(r->fn, fn) == 0 ||
                  (strcmp(r->fn, "*") == 0 && !is_lifecycle(fn));
      if (!match || r->remaining == 0) continue;
      if (r->delay_ms > 0) {
        if (delay_ms > 0) continue;
        delay_ms = r->delay_ms;
      } else {
        if (rv != CKR_OK) continue;
        rv = r->rv;
        *after = r->after;
        if (r->latch) g_latched = rv;
      }
      if (r->remaining > 0) --r->remaining;
    }
  }
  if (rv != CKR_OK) ++g_injected;
  if (delay_ms > 0) {
    ++g_delayed; /* still under g_mu */
  }
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
  X(C_GetSlotList, (CK_BBOOL a, CK_SLOT_ID_PTR b, CK_ULONG_PTR c), (a, b, c)) \
  X(C_GetSlotInfo, (CK_SLOT_ID a, CK_SLOT_INFO_PTR b), (a, b))                \
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
  X(C_OpenSession, (CK_SLOT_ID a, CK_FLAGS b, CK_VOID_PTR c, CK_NOTIFY d,     \
                    CK_SESSION_HANDLE_PTR e), (a, b, c, d, e))                \
  X(C_CloseSession, (CK_SESSION_HANDLE a), (a))                               \
  X(C_CloseAllSessions, (CK_SLOT_ID a), (a))                                  \
  X(C_GetSessionInfo, (CK_SESSION_HANDLE a, CK_SESSION_INFO_PTR b), (a, b))   \
  X(C_GetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b,                 \
                          CK_ULONG_PTR c), (a, b, c))                         \
  X(C_SetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,     \
                          CK_OBJECT_HANDLE d, CK_OBJECT_HANDLE e),            \
    (a, b, c, d, e))                                                          \
  X(C_Login, (CK_SESSION_HANDLE a, CK_USER_TYPE b, CK_UTF8CHAR_PTR c,         \
              CK_ULONG d), (a, b, c, d))                                      \
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

#define FAULT_FORWARD(name, params, args)  \
  static CK_RV fault_##name params {       \
    int after = 0;                         \
    CK_RV rv = fault_enter(#name, &after); \
    if (rv == CKR_OK)                      \
      rv = g_real->name args;              \
    else if (after)                        \
      (void)g_real->name args;             \
    fault_exit(#name);                     \
    return rv;                             \
  }
FAULT_FUNCTIONS(FAULT_FORWARD)

static CK_RV fault_C_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                          CK_ULONG data_len, CK_BYTE_PTR signature,
                          CK_ULONG_PTR signature_len) {
  int after = 0;
  CK_RV rv = fault_enter("C_Sign", &after);
  if (rv == CKR_OK) {
    rv = g_real->C_Sign(session, data, data_len, signature, signature_len);
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

static CK_RV fault_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

#define FAULT_ENTRY(name, params, args) .name = fault_##name,
static CK_FUNCTION_LIST g_list = {
    .version = {2, 40},
    FAULT_FUNCTIONS(FAULT_ENTRY) /* each entry ends with a comma */
        .C_Sign = fault_C_Sign,
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

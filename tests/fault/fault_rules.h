/* The fault module's rules (tests/fault/fault_module.c): one line of its control
 * file parsed into a struct rule, and whether a rule fires on a call.
 * Test infrastructure only; the whole control-file language is described here.
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
 * Rates (seeded, deterministic): a count of "1inN" makes a rule fire on about
 * one in N of its matching calls, decided by the rule's own PRNG (splitmix64)
 * seeded with "seed=S" (default 1): the same rules and the same sequence of
 * matching calls fire on the same calls. E.g.
 *   C_Sign CKR_DEVICE_ERROR 1in100 seed=7          1% of C_Sign fail
 *   C_Sign CKR_SESSION_HANDLE_INVALID 1in10 seed=8 10% lose their session
 *   C_Sign DELAY 1in20 100 seed=9                  5% of C_Sign take +100 ms
 * Corruption: "C_Sign CORRUPT <count|always|1inN> [seed=S]" flips one byte
 * (position from the PRNG) of the output of a C_Sign that succeeded, so a
 * bad signature reaches the caller with CKR_OK (what verify-before-release
 * must catch).
 * Token removal: a line "TOKEN REMOVED" pulls the token out while it is in
 * the file: C_GetSlotList(tokenPresent) lists no slot, C_GetSlotInfo clears
 * CKF_TOKEN_PRESENT, C_GetTokenInfo / C_OpenSession / mechanism queries fail
 * with CKR_TOKEN_NOT_PRESENT and every session call with CKR_DEVICE_REMOVED.
 * Removing the line re-inserts it: sessions opened before the removal stay
 * dead (CKR_SESSION_HANDLE_INVALID, as a real token's sessions close when it
 * is pulled) and the login is gone (C_SignInit fails with
 * CKR_USER_NOT_LOGGED_IN until the next successful C_Login).
 * TOKENSIGN_FAULT_STATS, if set, names a file the module rewrites (temp +
 * rename) whenever a fault fires: "injected N", "corrupted N", "delayed N",
 * "stale N" lines, so a test can read the counts of another process.
 *
 * Faithful failure: a failed C_Sign still terminates the real signing
 * operation (as PKCS#11 requires of any C_Sign error) and the caller's output
 * buffer is filled with 0xA5 so that code using output after an error is
 * caught by signature verification.
 *
 * Thread-safety: these functions touch only the rule passed to them; the
 * module calls them under its mutex.
 */
#ifndef TOKENSIGN_TESTS_FAULT_FAULT_RULES_H_
#define TOKENSIGN_TESTS_FAULT_FAULT_RULES_H_

#include <stdint.h>

#include "hsm/pkcs11.h"

struct rule {
  char fn[48];
  CK_RV rv;
  long remaining; /* -1 = always */
  int latch;
  int after;
  long delay_ms; /* > 0: a DELAY rule */
  int corrupt;   /* a CORRUPT rule */
  long one_in;   /* > 1: fires on about 1 in one_in matching calls */
  uint64_t rng;  /* splitmix64 state, from seed= */
};

/* Parses one rule line (modified in place) into *r; 0 = not a rule (a
 * comment, the TOKEN line, or a bad one, reported on stderr). */
int fault_parse_rule(char* line, struct rule* r);

/* Takes one hit of `r` if it fires on this call: counts down, or draws from
 * the rule's seeded PRNG. Caller serializes calls on one rule. */
int fault_rule_fires(struct rule* r);

/* The next value of a splitmix64 state. */
uint64_t fault_next_random(uint64_t* state);

#endif  /* TOKENSIGN_TESTS_FAULT_FAULT_RULES_H_ */

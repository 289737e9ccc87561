/* A shared object for provider_cli_test. It is not a PKCS#11 module.
 * - Loaded at all (dlopen or LD_PRELOAD) while TOKENSIGN_SPY_LOADED names a file, it
 *   creates that file: proof that a program loaded it.
 * - Preloaded (LD_PRELOAD) while TOKENSIGN_SPY_ENV_LOG names a file, it appends one line
 *   per setenv / unsetenv / putenv call of the program ("setenv NAME") and then makes
 *   the call: proof of whether the program modified its environment.
 * Thread-safety: as the libc calls it wraps (the log is appended with one fputs). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void SpyLog(const char* call, const char* name) {
  const char* path = getenv("TOKENSIGN_SPY_ENV_LOG");
  if (path == NULL) return;
  FILE* out = fopen(path, "a");
  if (out == NULL) return;
  char line[256];
  snprintf(line, sizeof(line), "%s %.200s\n", call, name == NULL ? "(null)" : name);
  fputs(line, out);
  fclose(out);
}

__attribute__((constructor)) static void SpyLoaded(void) {
  const char* path = getenv("TOKENSIGN_SPY_LOADED");
  if (path == NULL) return;
  FILE* out = fopen(path, "w");
  if (out != NULL) {
    fputs("loaded\n", out);
    fclose(out);
  }
}

int setenv(const char* name, const char* value, int overwrite) {
  SpyLog("setenv", name);
  int (*real)(const char*, const char*, int) =
      (int (*)(const char*, const char*, int))dlsym(RTLD_NEXT, "setenv");
  return real == NULL ? -1 : real(name, value, overwrite);
}

int unsetenv(const char* name) {
  SpyLog("unsetenv", name);
  int (*real)(const char*) = (int (*)(const char*))dlsym(RTLD_NEXT, "unsetenv");
  return real == NULL ? -1 : real(name);
}

int putenv(char* string) {
  char name[201];
  const char* eq = strchr(string, '=');
  size_t n = eq == NULL ? strlen(string) : (size_t)(eq - string);
  if (n > 200) n = 200;
  memcpy(name, string, n);
  name[n] = '\0';
  SpyLog("putenv", name);
  int (*real)(char*) = (int (*)(char*))dlsym(RTLD_NEXT, "putenv");
  return real == NULL ? -1 : real(string);
}

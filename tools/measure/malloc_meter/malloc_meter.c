// LD_PRELOAD shim: counts the bytes a process holds from malloc (live, and
// the peak since the last report) and writes "live peak\n" to
// $MALLOC_METER_OUT on SIGUSR1 (the peak then restarts from live). The Unix
// port and the board proxies give mbedTLS libc's calloc (MicroPython's
// extmod/mbedtls config routes it to the GC heap only on bare-metal ports), so
// this is how tools/measure/bench_tls.py sees what a TLS session costs outside
// gc.mem_alloc(), as an ESP32 pays it from its IDF heap.
// Build: gcc [-m32] -shared -fPIC -O2 -o malloc_meter.so malloc_meter.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static volatile size_t live, peak;
static char bootstrap[4096];  // dlsym's own calloc, before real_calloc is known
static size_t bootstrap_used;

static void account(void *p, int sign) {
    if (!p || ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof(bootstrap))) return;
    size_t n = malloc_usable_size(p);
    if (sign > 0) { live += n; if (live > peak) peak = live; } else { live -= n; }
}

static void report(int sig) {
    (void)sig;
    const char *path = getenv("MALLOC_METER_OUT");
    if (!path) return;
    char line[64];
    int len = snprintf(line, sizeof(line), "%lu %lu\n", (unsigned long)live, (unsigned long)peak);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { write(fd, line, len); close(fd); }
    peak = live;
}

static void init(void) {
    if (real_malloc) return;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    signal(SIGUSR1, report);
}

void *malloc(size_t n) { init(); void *p = real_malloc(n); account(p, 1); return p; }
void *calloc(size_t a, size_t b) {
    if (!real_calloc) {
        if (real_malloc == NULL && bootstrap_used == 0) {
            // dlsym(calloc) itself calls calloc: serve it from the static block.
            size_t n = a * b;
            if (n <= sizeof(bootstrap)) { bootstrap_used = n; return bootstrap; }
        }
        init();
    }
    void *p = real_calloc(a, b); account(p, 1); return p;
}
void *realloc(void *q, size_t n) {
    init();
    if ((char *)q >= bootstrap && (char *)q < bootstrap + sizeof(bootstrap)) {
        void *p = real_malloc(n); memcpy(p, q, n < sizeof(bootstrap) ? n : sizeof(bootstrap));
        account(p, 1); return p;
    }
    account(q, -1); void *p = real_realloc(q, n); account(p ? p : q, 1); return p;
}
void free(void *p) {
    if ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof(bootstrap)) return;
    init(); account(p, -1); real_free(p);
}

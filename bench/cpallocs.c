/*
 * cpallocs.c - an LD_PRELOAD counter of heap allocations per thread and per
 * calling shared object, for bench/cpbench.py --count-allocs.
 *
 *     CPALLOCS_OUT=/tmp/a.txt LD_PRELOAD=build/bench/libcpallocs.so \
 *         build/custpulse run -c ...
 *     kill -USR2 <pid>     # appends a dump; one more is written at exit
 *
 * Counts malloc, calloc, realloc and the aligned allocators (posix_memalign,
 * aligned_alloc, memalign) of each thread, attributed to the object that
 * called them: dladdr() of the return address. A call made inside libc on
 * someone's behalf (strdup, fopen, asprintf) therefore counts as libc; the
 * caller further up is not known without unwinding, which would cost more
 * than the counting itself. free() is interposed only to ignore the few
 * blocks handed out while dlsym() resolves the real allocator.
 *
 * Dump format (text, one block per dump, appended):
 *     # cpallocs dump <seq> pid <pid> <why>
 *     <tid> <comm> <object> <malloc> <calloc> <realloc> <memalign> <bytes>
 * The loop thread of custpulse is the main thread: tid == pid.
 *
 * Not a product part: built only without sanitizers (they interpose the
 * allocator themselves). Everything here avoids the heap; the dump runs in
 * a signal handler and uses only open/read/write/close.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_OBJS 64      /* distinct calling objects; 0 is "unknown" */
#define NAME_LEN 48      /* object basename, truncated */
#define CACHE_SLOTS 4096 /* per-thread return address -> object cache */
#define BOOT_BYTES 65536 /* for dlsym's own calloc before we can call libc */

enum { K_MALLOC, K_CALLOC, K_REALLOC, K_MEMALIGN, K_BYTES, K__COUNT };

/* One thread's counters. mmap'ed, never freed: a dump after the thread
 * ended still shows what it allocated. */
typedef struct thr_s {
    struct thr_s *next;
    pid_t tid;
    _Atomic uint64_t n[MAX_OBJS][K__COUNT];
    struct {
        uintptr_t addr;
        uint32_t obj;
    } cache[CACHE_SLOTS];
} thr_t;

#define TLS _Thread_local __attribute__((tls_model("initial-exec")))
static TLS thr_t *self;
static TLS int busy; /* inside our own bookkeeping: do not count */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

static _Atomic(thr_t *) threads;
static char obj_name[MAX_OBJS][NAME_LEN] = {"?"};
static _Atomic uint32_t n_objs = 1;
static atomic_flag obj_lock = ATOMIC_FLAG_INIT;
static _Atomic uint32_t dump_seq;

static _Alignas(16) char boot[BOOT_BYTES];
static size_t boot_used;
static int resolving;

/* ---- resolving the real allocator ---------------------------------------- */

static void *boot_alloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (boot_used + size > sizeof(boot))
        return NULL;
    void *p = boot + boot_used;
    boot_used += size;
    return p; /* static storage: already zero */
}

static int is_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof(boot);
}

static void resolve(void)
{
    resolving = 1;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    resolving = 0;
}

/* ---- attribution ----------------------------------------------------------
 */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The id of a calling object's name, added on first sight. Under a spin
 * lock: new objects are rare (each thread caches its lookups). */
static uint32_t obj_id(const char *path)
{
    char exe[256];
    if (!path || !path[0]) { /* the main program */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        path = exe;
    }
    const char *name = base_name(path);
    while (atomic_flag_test_and_set_explicit(&obj_lock, memory_order_acquire))
        ;
    uint32_t n = atomic_load(&n_objs), id;
    for (id = 1; id < n; id++)
        if (strncmp(obj_name[id], name, NAME_LEN - 1) == 0)
            break;
    if (id == n && n < MAX_OBJS) {
        size_t len = strnlen(name, NAME_LEN - 1);
        memcpy(obj_name[n], name, len); /* the table is zeroed: terminated */
        atomic_store(&n_objs, n + 1);   /* publishes the name to dumps */
    } else if (id == n) {
        id = 0; /* table full: "?" */
    }
    atomic_flag_clear_explicit(&obj_lock, memory_order_release);
    return id;
}

static thr_t *thread_self(void)
{
    if (self)
        return self;
    thr_t *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return NULL;
    t->tid = (pid_t)syscall(SYS_gettid);
    t->next = atomic_load(&threads);
    while (!atomic_compare_exchange_weak(&threads, &t->next, t))
        ;
    return self = t;
}

static uint32_t caller_obj(thr_t *t, void *ret)
{
    uintptr_t a = (uintptr_t)ret;
    size_t slot = (a ^ (a >> 12)) % CACHE_SLOTS;
    if (t->cache[slot].addr == a)
        return t->cache[slot].obj;
    Dl_info info;
    uint32_t id = dladdr(ret, &info) ? obj_id(info.dli_fname) : 0;
    t->cache[slot].addr = a;
    t->cache[slot].obj = id;
    return id;
}

static void count(void *ret, int kind, size_t bytes)
{
    if (busy)
        return;
    busy = 1;
    thr_t *t = thread_self();
    if (t) {
        uint32_t id = caller_obj(t, ret);
        atomic_fetch_add_explicit(&t->n[id][kind], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&t->n[id][K_BYTES], bytes,
                                  memory_order_relaxed);
    }
    busy = 0;
}

/* ---- the interposed allocator ---------------------------------------------
 */

#define RET __builtin_extract_return_addr(__builtin_return_address(0))

void *malloc(size_t size)
{
    if (!real_malloc) {
        if (resolving)
            return boot_alloc(size);
        resolve();
    }
    count(RET, K_MALLOC, size);
    return real_malloc(size);
}

void *calloc(size_t nmemb, size_t size)
{
    if (!real_calloc) {
        if (resolving)
            return size && nmemb > SIZE_MAX / size ? NULL
                                                   : boot_alloc(nmemb * size);
        resolve();
    }
    count(RET, K_CALLOC, nmemb * size);
    return real_calloc(nmemb, size);
}

void *realloc(void *ptr, size_t size)
{
    if (!real_realloc)
        resolve();
    count(RET, K_REALLOC, size);
    if (is_boot(ptr)) { /* a dlsym block grows: move it to the real heap */
        void *p = real_malloc(size);
        size_t room = (size_t)(boot + BOOT_BYTES - (char *)ptr);
        if (p)
            memcpy(p, ptr, size < room ? size : room);
        return p;
    }
    return real_realloc(ptr, size);
}

void free(void *ptr)
{
    if (!ptr || is_boot(ptr))
        return;
    if (!real_free)
        resolve();
    real_free(ptr);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (!real_posix_memalign)
        resolve();
    count(RET, K_MEMALIGN, size);
    return real_posix_memalign(out, align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    if (!real_aligned_alloc)
        resolve();
    count(RET, K_MEMALIGN, size);
    return real_aligned_alloc(align, size);
}

void *memalign(size_t align, size_t size)
{
    if (!real_memalign)
        resolve();
    count(RET, K_MEMALIGN, size);
    return real_memalign(align, size);
}

/* ---- dumps (async-signal-safe) --------------------------------------------
 */

typedef struct {
    int fd;
    size_t len;
    char buf[8192];
} out_t;

static void out_flush(out_t *o)
{
    size_t done = 0;
    while (done < o->len) {
        ssize_t n = write(o->fd, o->buf + done, o->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    o->len = 0;
}

static void out_str(out_t *o, const char *s)
{
    for (; *s; s++) {
        if (o->len == sizeof(o->buf))
            out_flush(o);
        o->buf[o->len++] = *s;
    }
}

static void out_u64(out_t *o, uint64_t v)
{
    char tmp[24];
    int i = (int)sizeof(tmp) - 1;
    tmp[i] = '\0';
    do
        tmp[--i] = (char)('0' + v % 10);
    while ((v /= 10) && i > 0);
    out_str(o, tmp + i);
}

/* A live thread's name from /proc ("-" once it ended); spaces become '_'
 * so that the line splits on blanks. */
static void thread_comm(pid_t tid, char *comm, size_t size)
{
    char path[64] = "/proc/self/task/";
    out_t p = {.fd = -1};
    out_u64(&p, (uint64_t)tid);
    p.buf[p.len] = '\0';
    strcat(path, p.buf);
    strcat(path, "/comm");
    strcpy(comm, "-");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, comm, size - 1);
    close(fd);
    comm[n > 0 ? n : 1] = '\0';
    for (char *c = comm; *c; c++)
        if (*c == '\n')
            *c = '\0';
        else if (*c == ' ')
            *c = '_';
}

static void dump(const char *why)
{
    const char *path = getenv("CPALLOCS_OUT");
    if (!path || !path[0])
        return;
    static out_t o; /* static: 8 KiB is too much for a signal stack */
    o.fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (o.fd < 0)
        return;
    o.len = 0;
    out_str(&o, "# cpallocs dump ");
    out_u64(&o, atomic_fetch_add(&dump_seq, 1));
    out_str(&o, " pid ");
    out_u64(&o, (uint64_t)getpid());
    out_str(&o, " ");
    out_str(&o, why);
    out_str(&o, "\n");
    uint32_t n_obj = atomic_load(&n_objs);
    for (thr_t *t = atomic_load(&threads); t; t = t->next) {
        char comm[32];
        thread_comm(t->tid, comm, sizeof(comm));
        for (uint32_t id = 0; id < n_obj; id++) {
            uint64_t v[K__COUNT], any = 0;
            for (int k = 0; k < K__COUNT; k++)
                any |= v[k] =
                    atomic_load_explicit(&t->n[id][k], memory_order_relaxed);
            if (!any)
                continue;
            out_u64(&o, (uint64_t)t->tid);
            out_str(&o, " ");
            out_str(&o, comm);
            out_str(&o, " ");
            out_str(&o, obj_name[id]);
            for (int k = 0; k < K__COUNT; k++) {
                out_str(&o, " ");
                out_u64(&o, v[k]);
            }
            out_str(&o, "\n");
        }
    }
    out_flush(&o);
    close(o.fd);
}

static void on_usr2(int sig)
{
    int saved = errno;
    (void)sig;
    dump("signal");
    errno = saved;
}

__attribute__((constructor)) static void cpallocs_init(void)
{
    if (!real_malloc)
        resolve();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}

__attribute__((destructor)) static void cpallocs_fini(void)
{
    dump("exit");
}

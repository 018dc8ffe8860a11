/* balloon: hold incompressible anonymous memory so that what a device has left available is a target.
 *
 * edgeship's fit (android_harness/fit) starts it through adb's shell on a phone, where nothing else can take
 * memory away from an app, and keeps the shell open while one step of the sweep runs; closing the shell
 * (SIGHUP from adbd), SIGTERM or --max-seconds ends it, and the memory goes back with the process.
 *
 *   balloon --target-available BYTES [--tolerance BYTES] [--max-seconds S]
 *   balloon --hold BYTES [--max-seconds S]
 *
 * With a target it grows (or gives back) until /proc/meminfo's MemAvailable is within --tolerance of it,
 * reading MemAvailable again after each change once it is steady (a kernel updates it at once; a virtual
 * device's file is rewritten every half second, and a reading taken halfway through a change would make it
 * grow past the target and be killed for it). Then it prints one line on stdout,
 *
 *   ready pid=P held=B locked=B available=B swap_free=B swap_total=B vm_rss=B vm_swap=B rounds=N
 *
 * and holds until it is ended. Exit 2: bad arguments; 3: the target could not be reached (no MemAvailable,
 * no more memory could be mapped, or MemAvailable never came down to it); a balloon the kernel or lmkd kills dies of SIGKILL, which its shell
 * reports as exit status 137.
 *
 * Why the memory stays taken on a phone that compresses memory (zram):
 * - every page is filled with xorshift random bytes, which LZ4/LZO/zstd cannot shrink: zram stores such a
 *   page whole, so swapping a balloon page out to zram frees no RAM;
 * - each chunk is mlock'ed where the kernel allows it (RLIMIT_MEMLOCK, root), and locked pages are never
 *   swapped; `locked` in the ready line says how much was;
 * - every second one word of every page is read again, so the pages stay on the active LRU list and the
 *   kernel reclaims other memory first;
 * - the harness reads MemAvailable and SwapFree back (this line, and again after the run), so what a step
 *   measured is the memory that was available, not what was asked for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES ((size_t)64 << 20)
#define MAX_CHUNKS 8192
#define MAX_ROUNDS 40
#define SETTLE_MS 5000 /* how long to wait for MemAvailable to settle after a change */
#define STEADY_MS 600  /* longer than a virtual device's meminfo refresh (500 ms) */

typedef struct {
    unsigned char *ptr;
    size_t size;
} chunk_t;

static chunk_t chunks[MAX_CHUNKS];
static int chunk_count;
static size_t page_size;
static size_t locked_bytes;
static int lock_refused;
static uint64_t rng_state;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void die(int code, const char *what) {
    fprintf(stderr, "error %s\n", what);
    exit(code);
}

/* A "Name:  123 kB" field of a /proc file, in bytes; -1 when the file or the field is missing. */
static long long proc_field(const char *path, const char *name) {
    char buffer[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t length = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (length <= 0) return -1;
    buffer[length] = '\0';
    size_t name_length = strlen(name);
    for (char *line = buffer; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, name_length) == 0 && line[name_length] == ':') {
            return strtoll(line + name_length + 1, NULL, 10) * 1024;
        }
    }
    return -1;
}

static long long available(void) { return proc_field("/proc/meminfo", "MemAvailable"); }

static uint64_t next_random(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t held(void) {
    size_t total = 0;
    for (int i = 0; i < chunk_count; i++) total += chunks[i].size;
    return total;
}

/* Map, fill with random bytes (every page touched, nothing to compress) and try to lock `bytes` more. */
static int grow(size_t bytes) {
    while (bytes > 0) {
        if (chunk_count == MAX_CHUNKS) return -1;
        size_t size = bytes < CHUNK_BYTES ? bytes : CHUNK_BYTES;
        size = (size + page_size - 1) / page_size * page_size;
        unsigned char *ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ptr == MAP_FAILED) return -1;
        uint64_t *words = (uint64_t *)ptr;
        for (size_t i = 0; i < size / sizeof *words; i++) words[i] = next_random();
        if (!lock_refused) {
            if (mlock(ptr, size) == 0) locked_bytes += size;
            else lock_refused = 1; /* EPERM/ENOMEM: RLIMIT_MEMLOCK; no use asking for every chunk */
        }
        chunks[chunk_count].ptr = ptr;
        chunks[chunk_count].size = size;
        chunk_count++;
        bytes = bytes > size ? bytes - size : 0;
    }
    return 0;
}

/* Give back about `bytes` (whole pages), newest memory first. */
static void shrink(size_t bytes) {
    bytes = bytes / page_size * page_size;
    while (bytes > 0 && chunk_count > 0) {
        chunk_t *last = &chunks[chunk_count - 1];
        size_t take = bytes < last->size ? bytes : last->size;
        munmap(last->ptr + last->size - take, take);
        if (locked_bytes) locked_bytes = locked_bytes > take ? locked_bytes - take : 0;
        last->size -= take;
        if (last->size == 0) chunk_count--;
        bytes -= take;
    }
}

static void touch_all(void) {
    volatile unsigned char sink = 0;
    for (int i = 0; i < chunk_count; i++)
        for (size_t offset = 0; offset < chunks[i].size; offset += page_size) sink ^= chunks[i].ptr[offset];
    (void)sink;
}

static void sleep_ms(long ms) {
    struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR && !stopping) {
    }
}

/* MemAvailable once it is steady: two readings STEADY_MS apart within `tolerance` (at most SETTLE_MS). A
 * kernel's figure moves at once; a virtual device rewrites its /proc/meminfo every half second, and a reading
 * taken halfway through a change would make the balloon grow past its target. */
static long long steady_available(long long tolerance) {
    long long last = available();
    for (int waited = 0; waited < SETTLE_MS; waited += STEADY_MS) {
        sleep_ms(STEADY_MS);
        long long now = available();
        long long moved = now > last ? now - last : last - now;
        if (moved <= tolerance) return now;
        last = now;
    }
    return last;
}

static long long parse_bytes(const char *text, const char *option) {
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || !end || *end || value < 0) {
        fprintf(stderr, "error %s needs a byte count, not '%s'\n", option, text);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv) {
    long long target = -1, hold = -1, tolerance = 1 << 20;
    long long max_seconds = 3600;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) die(2, "every option takes a value: --target-available, --hold, --tolerance, --max-seconds");
        if (strcmp(argv[i], "--target-available") == 0) target = parse_bytes(argv[++i], argv[i - 1]);
        else if (strcmp(argv[i], "--hold") == 0) hold = parse_bytes(argv[++i], argv[i - 1]);
        else if (strcmp(argv[i], "--tolerance") == 0) tolerance = parse_bytes(argv[++i], argv[i - 1]);
        else if (strcmp(argv[i], "--max-seconds") == 0) max_seconds = parse_bytes(argv[++i], argv[i - 1]);
        else {
            fprintf(stderr, "error unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if ((target < 0) == (hold < 0)) die(2, "give one of --target-available BYTES or --hold BYTES");
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    rng_state = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ULL;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGHUP, &action, NULL);

    int rounds = 0;
    if (hold >= 0) {
        if (grow((size_t)hold) != 0) die(3, "cannot map the memory to hold");
    } else {
        if (available() < 0) die(3, "/proc/meminfo has no MemAvailable");
        long long now = steady_available(tolerance); /* a process that just ended may not show yet */
        for (; rounds < MAX_ROUNDS && !stopping; rounds++) {
            long long gap = now - target;
            long long size = gap < 0 ? -gap : gap;
            if (size <= tolerance) break;
            if (gap > 0) {
                if (grow((size_t)gap) != 0) {
                    fprintf(stderr, "error cannot map more memory (holding %zu bytes, %lld available)\n", held(), now);
                    return 3;
                }
            } else {
                if (held() == 0) break; /* less is available than the target already: nothing to give back */
                shrink((size_t)-gap);
            }
            now = steady_available(tolerance);
        }
        if (!stopping && now - target > tolerance) {
            fprintf(stderr, "error MemAvailable stayed at %lld after %d rounds holding %zu bytes\n", now, rounds, held());
            return 3;
        }
    }
    printf("ready pid=%d held=%zu locked=%zu available=%lld swap_free=%lld swap_total=%lld vm_rss=%lld "
           "vm_swap=%lld rounds=%d\n",
           (int)getpid(), held(), locked_bytes, available(), proc_field("/proc/meminfo", "SwapFree"),
           proc_field("/proc/meminfo", "SwapTotal"), proc_field("/proc/self/status", "VmRSS"),
           proc_field("/proc/self/status", "VmSwap"), rounds);
    fflush(stdout);

    time_t deadline = time(NULL) + (time_t)max_seconds;
    while (!stopping && time(NULL) < deadline) {
        sleep_ms(1000);
        touch_all();
    }
    return 0;
}

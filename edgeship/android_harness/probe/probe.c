/*
 * edgeship probe: run a command and sample its memory from outside, as Android's shell user or on Linux.
 *
 *   probe [--interval-ms 50] [--rollup-interval-ms N] [--smaps-interval-ms N] [--maps PATH]... [--timeout-s S]
 *         [--no-trace] --out DIR -- RUNNER ARGS...
 *
 * Why a native program: the runner must be the exact pid we sample (fork/exec, no shell in between), and the
 * sampler must not perturb what it measures (no fork per sample, fds opened once, no allocation per sample
 * after warm-up). Static musl, so the same file runs on any Android 10+ phone and any Linux box.
 *
 * Output in DIR (written as it goes, flushed per row, so a killed run leaves a partial timeline):
 *   stdout.txt, stderr.txt  the runner's own output
 *   timeline.csv            t_ms + /proc/PID/status and /proc/PID/smaps_rollup figures in bytes, then the
 *                           runner's minor/major page-fault counts (/proc/PID/stat); an empty cell is a field
 *                           this kernel does not report (never 0 for missing)
 *   maps.csv                t_ms,path,offset,size,rss,pss per mapping of a --maps file per smaps sample
 *   result.json             exit code/signal/timeout, wall time, wait4 rusage, peaks, missing fields, mappings,
 *                           whether the runner was traced, and the exit sample (below)
 *
 * /proc/PID/status and /proc/PID/stat are read every --interval-ms: they are cheap (counters; no page-table
 * walk, no mm lock) and their RSS columns catch short spikes. /proc/PID/smaps_rollup and /proc/PID/smaps make
 * the kernel walk every page table of the process under its mm lock (milliseconds for a big process, and the
 * runner's own mmap/munmap wait for it), so each has its own rate: fixed with --rollup-interval-ms /
 * --smaps-interval-ms, else adaptive so that reading each stays <= 1% of wall time (next read no sooner than
 * 100x the last read's cost), never more often than --interval-ms. Early in a run the gap is also never
 * longer than the runner's age at the read: reads at about 0, 50, 100, 200, 400, 800 ms… until the 1% gap is
 * the shorter. So a run of a few tenths of a second still gets several readings of what it mapped (a smoke
 * test's one question), and this head start costs a handful of reads of a young, small process, whatever
 * the run's length. Between rollup reads, the rollup columns of timeline.csv repeat the last reading;
 * result.json counts the reads of each (samples, rollup_samples, smaps_samples) and their costs.
 *
 * The exit sample: the probe traces its own child (PTRACE_SEIZE with PTRACE_O_TRACEEXIT; an unprivileged
 * parent may trace its own child on Linux and Android), so the kernel stops the runner's main thread as it
 * exits, before its address space is torn down. There the probe reads status, stat, smaps_rollup and smaps
 * once more, whatever the budgets, then lets the runner go: however short the run, the last state of every
 * mapping is measured. It goes to result.json ("exit_sample"), not to the periodic files. It is taken only
 * when the runner exits by itself (exit code); a runner killed by a signal has none, and result.json says
 * why. Where ptrace is refused (seccomp, Yama, SELinux; qemu-user does not implement it) or --no-trace is
 * given, the runner runs untraced, sampled as before, and result.json names the reason. Traced, the runner's
 * signals pass through the probe (delivered unchanged); only the main thread is traced.
 *
 * --proc-dir DIR reads DIR/status, DIR/stat, DIR/smaps_rollup and DIR/smaps instead of /proc/PID/… (for tests
 * of kernels that lack a field or a file; the runner still runs and is waited for).
 *
 * Exit code: the runner's exit code, 128+signal if it was killed, 127 if it could not be started, 2 on a usage
 * error of the probe itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROBE_VERSION "2"
#define MAX_MAPS 16
#define MAX_TRACKED_MAPPINGS 512
#define STOP_GRACE_S 3.0 /* after forwarding SIGTERM/SIGINT/SIGHUP, SIGKILL the group if it is still there */
#define COST_FACTOR 100.0 /* an adaptive read waits 100x its cost: <= 1% of wall time */

/* ---- the fields of a sample, in timeline.csv column order ---------------------------------------------- */

enum field_id {
    F_VM_RSS, F_VM_HWM, F_VM_SWAP, F_RSS_ANON, F_RSS_FILE, F_RSS_SHMEM,          /* /proc/PID/status */
    F_RSS, F_PSS, F_PSS_ANON, F_PSS_FILE, F_PRIVATE_DIRTY, F_SWAP_PSS,           /* /proc/PID/smaps_rollup */
    F_MINFLT, F_MAJFLT,                                                          /* /proc/PID/stat */
    F_COUNT
};

static const char *const field_csv_names[F_COUNT] = {
    "vm_rss", "vm_hwm", "vm_swap", "rss_anon", "rss_file", "rss_shmem",
    "rss", "pss", "pss_anon", "pss_file", "private_dirty", "swap_pss",
    "minflt", "majflt",
};

/* Key as the kernel spells it (without the colon), for the "Key: N kB" files. */
static const char *const field_kernel_keys[F_COUNT] = {
    "VmRSS", "VmHWM", "VmSwap", "RssAnon", "RssFile", "RssShmem",
    "Rss", "Pss", "Pss_Anon", "Pss_File", "Private_Dirty", "SwapPss",
    NULL, NULL,
};
#define FIRST_ROLLUP_FIELD F_RSS
#define LAST_ROLLUP_FIELD F_SWAP_PSS

typedef struct {
    long long value[F_COUNT]; /* bytes (faults: counts); -1 = not present in this sample */
} sample_t;

/* ---- options and state ------------------------------------------------------------------------------- */

typedef struct {
    const char *given;        /* as the user named it: written to maps.csv and result.json */
    char *real;               /* realpath, when it resolves */
    int have_stat;
    unsigned int dev_major, dev_minor;
    unsigned long long inode;
} map_target_t;

typedef struct {
    int target;               /* index into map targets */
    unsigned long long offset, size;
    long long rss_peak, pss_peak;
} tracked_mapping_t;

static long interval_ms = 50;
static long smaps_interval_ms = 0;  /* 0 = adaptive */
static long rollup_interval_ms = 0; /* 0 = adaptive */
static double timeout_s = 0;
static const char *out_dir = NULL;
static map_target_t targets[MAX_MAPS];
static int target_count = 0;
static char **runner_argv = NULL;
static const char *proc_dir = NULL; /* --proc-dir: read crafted status/smaps files instead of /proc/PID (tests) */
static int no_trace = 0;            /* --no-trace: do not ptrace the runner (no exit sample) */

static tracked_mapping_t mappings[MAX_TRACKED_MAPPINGS];
static int mapping_count = 0;

static volatile sig_atomic_t forwarded_signal = 0;

static void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("probe: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nusage: probe [--interval-ms 50] [--rollup-interval-ms N] [--smaps-interval-ms N] [--maps PATH]... "
          "[--timeout-s S] [--no-trace] --out DIR -- RUNNER ARGS...\n",
          stderr);
    va_end(ap);
    exit(2);
}

static void die_errno(const char *what, const char *path) {
    fprintf(stderr, "probe: %s %s: %s\n", what, path ? path : "", strerror(errno));
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_chld(int sig) { (void)sig; /* only here to interrupt ppoll */ }

static void on_terminate(int sig) { forwarded_signal = sig; }

/* ---- small file helpers ------------------------------------------------------------------------------ */

static void mkdir_p(const char *path) {
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) die_usage("--out path is empty or too long");
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0775) != 0 && errno != EEXIST) die_errno("cannot create", buf);
            *p = '/';
        }
    }
    if (mkdir(buf, 0775) != 0 && errno != EEXIST) die_errno("cannot create", buf);
}

static char *out_path(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", out_dir, name);
    return buf;
}

static FILE *open_out(const char *name) {
    FILE *f = fopen(out_path(name), "we");
    if (!f) die_errno("cannot write", out_path(name));
    return f;
}

/* Read a whole /proc file from offset 0 into buf (NUL-terminated); returns bytes read or -1. */
static ssize_t pread_all(int fd, char *buf, size_t cap) {
    size_t used = 0;
    while (used + 1 < cap) {
        ssize_t n = pread(fd, buf + used, cap - 1 - used, (off_t)used);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) break;
        used += (size_t)n;
    }
    buf[used] = '\0';
    return (ssize_t)used;
}

/* "Key:   123 kB" lines → bytes. Only the first occurrence of each key counts. */
static void parse_kb_fields(const char *text, sample_t *s, int first, int last) {
    const char *line = text;
    while (*line) {
        const char *colon = strchr(line, ':');
        const char *eol = strchr(line, '\n');
        if (!eol) eol = line + strlen(line);
        if (colon && colon < eol) {
            size_t key_len = (size_t)(colon - line);
            for (int f = first; f <= last; f++) {
                if (s->value[f] < 0 && strlen(field_kernel_keys[f]) == key_len &&
                    memcmp(line, field_kernel_keys[f], key_len) == 0) {
                    s->value[f] = strtoll(colon + 1, NULL, 10) * 1024;
                    break;
                }
            }
        }
        line = *eol ? eol + 1 : eol;
    }
}

static void csv_write_path(FILE *f, const char *path) {
    if (strpbrk(path, ",\"\n\r") == NULL) {
        fputs(path, f);
        return;
    }
    fputc('"', f);
    for (const char *p = path; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void json_write_nullable(FILE *f, long long v) {
    if (v < 0) fputs("null", f);
    else fprintf(f, "%lld", v);
}

/* ---- /proc readers ----------------------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int status_fd, stat_fd, rollup_fd, smaps_fd;
    char status_buf[16384];
    char stat_buf[2048];
    char rollup_buf[8192];
    char *smaps_chunk;
    size_t smaps_chunk_cap;
} proc_reader_t;

static int open_proc(pid_t pid, const char *name) {
    char path[4096];
    if (proc_dir) snprintf(path, sizeof path, "%s/%s", proc_dir, name);
    else snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* smaps/smaps_rollup bind the mm at open time, so they are (re)opened after exec, and again when they read
 * empty while the process lives (the runner exec'd once more). */
static void reopen_mm_files(proc_reader_t *r) {
    if (r->rollup_fd >= 0) close(r->rollup_fd);
    if (r->smaps_fd >= 0) close(r->smaps_fd);
    r->rollup_fd = open_proc(r->pid, "smaps_rollup");
    r->smaps_fd = target_count > 0 ? open_proc(r->pid, "smaps") : -1;
}

/* /proc/PID/status: cheap (counters, no page-table walk, no mm lock). Returns 0 when the process has no
 * memory left to sample (gone or a zombie). */
static int read_status(proc_reader_t *r, sample_t *s) {
    for (int f = 0; f < F_COUNT; f++) s->value[f] = -1;
    if (r->status_fd < 0 || pread_all(r->status_fd, r->status_buf, sizeof r->status_buf) <= 0) return 0;
    parse_kb_fields(r->status_buf, s, 0, FIRST_ROLLUP_FIELD - 1);
    return s->value[F_VM_RSS] >= 0; /* a zombie or kernel thread has no VmRSS: no mm */
}

/* /proc/PID/stat: minflt and majflt of the whole thread group (fields 10 and 12; the kernel sums the threads,
 * dead ones included). The name in parentheses may hold spaces and ')', so fields count from the last ')'. */
static void read_faults(proc_reader_t *r, sample_t *s) {
    if (r->stat_fd < 0 || pread_all(r->stat_fd, r->stat_buf, sizeof r->stat_buf) <= 0) return;
    const char *after_name = strrchr(r->stat_buf, ')');
    unsigned long long minflt = 0, majflt = 0;
    /* after ')': state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt */
    if (!after_name || sscanf(after_name + 1, " %*c %*d %*d %*d %*d %*d %*u %llu %*u %llu", &minflt, &majflt) != 2)
        return;
    s->value[F_MINFLT] = (long long)minflt;
    s->value[F_MAJFLT] = (long long)majflt;
}

/* /proc/PID/smaps_rollup: walks every page table under the mm lock, so it has its own budgeted rate. Fills the
 * rollup fields of s; returns 0 when nothing could be read. */
static int read_rollup(proc_reader_t *r, sample_t *s) {
    if (r->rollup_fd < 0) return 0;
    ssize_t n = pread_all(r->rollup_fd, r->rollup_buf, sizeof r->rollup_buf);
    if (n <= 0) {
        reopen_mm_files(r);
        n = r->rollup_fd >= 0 ? pread_all(r->rollup_fd, r->rollup_buf, sizeof r->rollup_buf) : -1;
    }
    if (n <= 0) return 0;
    parse_kb_fields(r->rollup_buf, s, FIRST_ROLLUP_FIELD, F_COUNT - 1);
    return 1;
}

/* When to read an expensive file next, counted from the tick it was read at (so a fixed rate stays on the
 * tick grid): a fixed interval when asked, else so that reading it takes at most 1% of wall time but no later
 * than the runner's age at this read (`age_s`: a read in every doubling of a young run's time); never more
 * often than the sampling interval. */
static double next_read_time(double tick, double cost_s, long fixed_ms, double interval_s, double age_s) {
    double gap = fixed_ms > 0 ? (double)fixed_ms / 1000.0 : cost_s * COST_FACTOR;
    if (fixed_ms <= 0 && gap > age_s) gap = age_s;
    if (gap < interval_s) gap = interval_s;
    return tick + gap - interval_s * 0.25; /* a little slack: ticks wake a few microseconds late */
}

static int match_target(const char *path, unsigned int major_, unsigned int minor_, unsigned long long inode) {
    for (int i = 0; i < target_count; i++) {
        if (strcmp(path, targets[i].given) == 0) return i;
        if (targets[i].real && strcmp(path, targets[i].real) == 0) return i;
        /* overlay or bind mounts can show another path for the same file: fall back to device+inode */
        if (targets[i].have_stat && inode != 0 && targets[i].inode == inode && targets[i].dev_major == major_ &&
            targets[i].dev_minor == minor_)
            return i;
    }
    return -1;
}

typedef struct {
    int target;
    unsigned long long offset, size;
    long long rss, pss;
} map_row_t;

static map_row_t pending_rows[MAX_TRACKED_MAPPINGS];
static int pending_count = 0;

/* Handle one smaps line: a mapping header starts with a lowercase hex address, field lines with a name. */
static void smaps_line(char *line, int *current) {
    char c = line[0];
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
        unsigned long long start = 0, end = 0, offset = 0, inode = 0;
        unsigned int major_ = 0, minor_ = 0;
        char perms[8];
        int consumed = 0;
        *current = -1;
        if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &offset, &major_, &minor_,
                   &inode, &consumed) < 7)
            return;
        char *path = line + consumed;
        while (*path == ' ') path++;
        if (*path == '\0' || target_count == 0) return;
        size_t len = strlen(path);
        static const char deleted[] = " (deleted)";
        if (len > sizeof deleted - 1 && strcmp(path + len - (sizeof deleted - 1), deleted) == 0)
            path[len - (sizeof deleted - 1)] = '\0';
        int t = match_target(path, major_, minor_, inode);
        if (t < 0 || pending_count >= MAX_TRACKED_MAPPINGS) return;
        map_row_t *row = &pending_rows[pending_count];
        row->target = t;
        row->offset = offset;
        row->size = end - start;
        row->rss = -1;
        row->pss = -1;
        *current = pending_count++;
        return;
    }
    if (*current < 0) return;
    if (strncmp(line, "Rss:", 4) == 0) pending_rows[*current].rss = strtoll(line + 4, NULL, 10) * 1024;
    else if (strncmp(line, "Pss:", 4) == 0) pending_rows[*current].pss = strtoll(line + 4, NULL, 10) * 1024;
}

/* Stream /proc/PID/smaps in chunks, keeping only the mappings of --maps files. Returns 0 if nothing was read. */
static int read_smaps_once(proc_reader_t *r) {
    pending_count = 0;
    if (r->smaps_fd < 0) return 0;
    if (!r->smaps_chunk) {
        r->smaps_chunk_cap = 1 << 16;
        r->smaps_chunk = malloc(r->smaps_chunk_cap + 1);
        if (!r->smaps_chunk) return 0;
    }
    size_t carry = 0;
    off_t pos = 0;
    int current = -1;
    int got_any = 0;
    for (;;) {
        if (carry >= r->smaps_chunk_cap) carry = 0; /* a line longer than 64 KiB: drop it */
        ssize_t n = pread(r->smaps_fd, r->smaps_chunk + carry, r->smaps_chunk_cap - carry, pos);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got_any = 1;
        pos += n;
        size_t used = carry + (size_t)n;
        char *start = r->smaps_chunk;
        char *end = r->smaps_chunk + used;
        char *nl;
        while (start < end && (nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
            *nl = '\0';
            smaps_line(start, &current);
            start = nl + 1;
        }
        carry = (size_t)(end - start);
        memmove(r->smaps_chunk, start, carry);
    }
    if (carry > 0) {
        r->smaps_chunk[carry] = '\0';
        smaps_line(r->smaps_chunk, &current);
    }
    return got_any;
}

/* smaps, reopened once when it reads empty (the runner exec'd since it was opened: the old mm is gone). */
static int read_smaps(proc_reader_t *r) {
    if (read_smaps_once(r)) return 1;
    reopen_mm_files(r);
    return read_smaps_once(r);
}

/* Fold the rows of the last smaps read into the per-mapping peaks of result.json. */
static void fold_mapping_peaks(void) {
    for (int i = 0; i < pending_count; i++) {
        map_row_t *row = &pending_rows[i];
        tracked_mapping_t *m = NULL;
        for (int j = 0; j < mapping_count; j++) {
            if (mappings[j].target == row->target && mappings[j].offset == row->offset &&
                mappings[j].size == row->size) {
                m = &mappings[j];
                break;
            }
        }
        if (!m && mapping_count < MAX_TRACKED_MAPPINGS) {
            m = &mappings[mapping_count++];
            m->target = row->target;
            m->offset = row->offset;
            m->size = row->size;
            m->rss_peak = -1;
            m->pss_peak = -1;
        }
        if (m) {
            if (row->rss > m->rss_peak) m->rss_peak = row->rss;
            if (row->pss > m->pss_peak) m->pss_peak = row->pss;
        }
    }
}

/* The rows of the last smaps read: to maps.csv (one line per mapping) and into the peaks. */
static void record_mappings(FILE *maps_csv, long long t_ms) {
    for (int i = 0; i < pending_count; i++) {
        map_row_t *row = &pending_rows[i];
        fprintf(maps_csv, "%lld,", t_ms);
        csv_write_path(maps_csv, targets[row->target].given);
        fprintf(maps_csv, ",%llu,%llu,", row->offset, row->size);
        if (row->rss >= 0) fprintf(maps_csv, "%lld", row->rss);
        fputc(',', maps_csv);
        if (row->pss >= 0) fprintf(maps_csv, "%lld", row->pss);
        fputc('\n', maps_csv);
    }
    fflush(maps_csv);
    fold_mapping_peaks();
}

/* ---- arguments --------------------------------------------------------------------------------------- */

static long parse_long(const char *flag, const char *text, long min) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || !end || *end || v < min) die_usage("%s needs an integer >= %ld, got '%s'", flag, min, text);
    return v;
}

static void add_target(const char *path) {
    if (target_count >= MAX_MAPS) die_usage("at most %d --maps files", MAX_MAPS);
    map_target_t *t = &targets[target_count++];
    t->given = path;
    t->real = realpath(path, NULL);
    struct stat st;
    if (stat(path, &st) == 0) {
        t->have_stat = 1;
        t->dev_major = major(st.st_dev);
        t->dev_minor = minor(st.st_dev);
        t->inode = (unsigned long long)st.st_ino;
    }
}

static void parse_args(int argc, char **argv) {
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--no-trace") == 0) {
            no_trace = 1;
            continue;
        }
        const char *value = NULL;
        const char *eq = strchr(a, '=');
        char flag[64];
        if (strncmp(a, "--", 2) != 0) die_usage("unexpected argument '%s' (put the runner after --)", a);
        if (eq) {
            size_t n = (size_t)(eq - a);
            if (n >= sizeof flag) die_usage("unknown option '%s'", a);
            memcpy(flag, a, n);
            flag[n] = '\0';
            value = eq + 1;
        } else {
            snprintf(flag, sizeof flag, "%s", a);
            if (i + 1 >= argc) die_usage("%s needs a value", a);
            value = argv[++i];
        }
        if (strcmp(flag, "--interval-ms") == 0) interval_ms = parse_long(flag, value, 1);
        else if (strcmp(flag, "--smaps-interval-ms") == 0) smaps_interval_ms = parse_long(flag, value, 0);
        else if (strcmp(flag, "--rollup-interval-ms") == 0) rollup_interval_ms = parse_long(flag, value, 0);
        else if (strcmp(flag, "--maps") == 0) add_target(value);
        else if (strcmp(flag, "--timeout-s") == 0) {
            char *end = NULL;
            timeout_s = strtod(value, &end);
            if (!end || *end || timeout_s < 0) die_usage("--timeout-s needs seconds >= 0, got '%s'", value);
        } else if (strcmp(flag, "--out") == 0) out_dir = value;
        else if (strcmp(flag, "--proc-dir") == 0) proc_dir = value;
        else die_usage("unknown option '%s'", flag);
    }
    if (!out_dir) die_usage("--out DIR is required");
    if (i >= argc) die_usage("no runner given after --");
    runner_argv = argv + i;
}

/* ---- result.json ------------------------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int exec_errno;
    int exited, code, signaled, signal_no, timed_out;
    double wall_s;
    struct rusage ru;
    long samples, smaps_samples;
    double smaps_cost_us_total, sample_cost_us_total, rollup_cost_us_total;
    long rollup_samples;
    sample_t peaks;
    int seen[F_COUNT];
    int forwarded;
    int traced;              /* PTRACE_SEIZE succeeded: an exit stop will come */
    char trace_error[200];   /* why the runner runs untraced ("" when traced) */
} run_result_t;

/* The sample taken at the runner's exit stop (see the top of the file). */
typedef struct {
    int taken;
    char reason[256]; /* why it was not taken */
    long long t_ms;
    double cost_us;
    sample_t values;
    int smaps_read; /* the --maps files' mappings were read (rows: those mapped at exit; none is 0 bytes) */
    map_row_t rows[MAX_TRACKED_MAPPINGS];
    int row_count;
} exit_sample_t;

static exit_sample_t exit_sample;

/* {"path": …, "offset": …, "size": …, "rss<suffix>": …, "pss<suffix>": …} of one mapping of a --maps file. */
static void json_write_mapping(FILE *f, int target, unsigned long long offset, unsigned long long size,
                               const char *suffix, long long rss, long long pss) {
    fputs("{\"path\": ", f);
    json_write_string(f, targets[target].given);
    fprintf(f, ", \"offset\": %llu, \"size\": %llu, \"rss%s\": ", offset, size, suffix);
    json_write_nullable(f, rss);
    fprintf(f, ", \"pss%s\": ", suffix);
    json_write_nullable(f, pss);
    fputc('}', f);
}

static void json_write_sample(FILE *f, const sample_t *s) {
    fputc('{', f);
    for (int i = 0; i < F_COUNT; i++) {
        fprintf(f, "%s\"%s\": ", i ? ", " : "", field_csv_names[i]);
        json_write_nullable(f, s->value[i]);
    }
    fputc('}', f);
}

static void write_exit_sample(FILE *f, const run_result_t *res) {
    fputs(",\n  \"trace\": {\"enabled\": ", f);
    fputs(res->traced ? "true" : "false", f);
    fputs(", \"error\": ", f);
    if (res->trace_error[0]) json_write_string(f, res->trace_error);
    else fputs("null", f);
    fputs("},\n  \"exit_sample\": {\"taken\": ", f);
    if (!exit_sample.taken) {
        fputs("false, \"reason\": ", f);
        json_write_string(f, exit_sample.reason[0] ? exit_sample.reason : "no exit stop was reported");
        fputc('}', f);
        return;
    }
    fprintf(f, "true, \"t_ms\": %lld, \"cost_us\": %.1f,\n    \"values\": ", exit_sample.t_ms,
            exit_sample.cost_us);
    json_write_sample(f, &exit_sample.values);
    fprintf(f, ",\n    \"smaps_read\": %s, \"mappings\": [", exit_sample.smaps_read ? "true" : "false");
    for (int i = 0; i < exit_sample.row_count; i++) {
        const map_row_t *row = &exit_sample.rows[i];
        fputs(i ? ",\n      " : "\n      ", f);
        json_write_mapping(f, row->target, row->offset, row->size, "", row->rss, row->pss);
    }
    fputs(exit_sample.row_count ? "\n    ]}" : "]}", f);
}

static void write_result(const run_result_t *res) {
    char tmp_name[] = "result.json.tmp";
    FILE *f = open_out(tmp_name);
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    fprintf(f, "{\n  \"probe_version\": \"%s\",\n  \"pid\": %d,\n  \"argv\": [", PROBE_VERSION, (int)res->pid);
    for (char **a = runner_argv; *a; a++) {
        if (a != runner_argv) fputs(", ", f);
        json_write_string(f, *a);
    }
    fputs("],\n  \"exit\": {\"code\": ", f);
    if (res->exited) fprintf(f, "%d", res->code);
    else fputs("null", f);
    fputs(", \"signal\": ", f);
    if (res->signaled) fprintf(f, "%d", res->signal_no);
    else fputs("null", f);
    fprintf(f, ", \"timed_out\": %s}", res->timed_out ? "true" : "false");
    if (res->exec_errno) {
        fputs(",\n  \"error\": ", f);
        char msg[512];
        snprintf(msg, sizeof msg, "cannot start %s: %s", runner_argv[0], strerror(res->exec_errno));
        json_write_string(f, msg);
    }
    if (res->forwarded) fprintf(f, ",\n  \"probe_signal\": %d", res->forwarded);
    fprintf(f, ",\n  \"wall_s\": %.6f,\n", res->wall_s);
    fprintf(f,
            "  \"rusage\": {\"maxrss\": %lld, \"minflt\": %ld, \"majflt\": %ld, \"utime_s\": %.6f, "
            "\"stime_s\": %.6f},\n",
            (long long)res->ru.ru_maxrss * 1024, (long)res->ru.ru_minflt, (long)res->ru.ru_majflt,
            (double)res->ru.ru_utime.tv_sec + (double)res->ru.ru_utime.tv_usec / 1e6,
            (double)res->ru.ru_stime.tv_sec + (double)res->ru.ru_stime.tv_usec / 1e6);
    fprintf(f, "  \"probe_rusage\": {\"utime_s\": %.6f, \"stime_s\": %.6f},\n",
            (double)self.ru_utime.tv_sec + (double)self.ru_utime.tv_usec / 1e6,
            (double)self.ru_stime.tv_sec + (double)self.ru_stime.tv_usec / 1e6);
    fprintf(f, "  \"samples\": %ld,\n  \"smaps_samples\": %ld,\n", res->samples, res->smaps_samples);
    fputs("  \"smaps_cost_us_mean\": ", f);
    if (res->smaps_samples > 0) fprintf(f, "%.1f", res->smaps_cost_us_total / (double)res->smaps_samples);
    else fputs("null", f);
    fputs(",\n  \"sample_cost_us_mean\": ", f);
    if (res->samples > 0) fprintf(f, "%.1f", res->sample_cost_us_total / (double)res->samples);
    else fputs("null", f);
    fprintf(f, ",\n  \"rollup_samples\": %ld,\n  \"rollup_cost_us_mean\": ", res->rollup_samples);
    if (res->rollup_samples > 0) fprintf(f, "%.1f", res->rollup_cost_us_total / (double)res->rollup_samples);
    else fputs("null", f);
    fprintf(f, ",\n  \"interval_ms\": %ld,\n  \"smaps_interval_ms\": ", interval_ms);
    if (smaps_interval_ms > 0) fprintf(f, "%ld", smaps_interval_ms);
    else fputs("\"adaptive\"", f);
    fputs(",\n  \"rollup_interval_ms\": ", f);
    if (rollup_interval_ms > 0) fprintf(f, "%ld", rollup_interval_ms);
    else fputs("\"adaptive\"", f);
    fputs(",\n  \"peaks\": {", f);
    for (int i = 0; i < F_COUNT; i++) {
        fprintf(f, "%s\"%s\": ", i ? ", " : "", field_csv_names[i]);
        json_write_nullable(f, res->seen[i] ? res->peaks.value[i] : -1);
    }
    fputs("},\n  \"missing\": [", f);
    int first = 1;
    for (int i = 0; i < F_COUNT; i++) {
        if (res->seen[i]) continue;
        fprintf(f, "%s\"%s\"", first ? "" : ", ", field_csv_names[i]);
        first = 0;
    }
    fputs("],\n  \"mappings\": [", f);
    for (int i = 0; i < mapping_count; i++) {
        const tracked_mapping_t *m = &mappings[i];
        fputs(i ? ",\n    " : "\n    ", f);
        json_write_mapping(f, m->target, m->offset, m->size, "_peak", m->rss_peak, m->pss_peak);
    }
    fputs(mapping_count ? "\n  ]" : "]", f);
    write_exit_sample(f, res);
    fputs("\n}\n", f);
    if (fclose(f) != 0) die_errno("cannot write", out_path(tmp_name));
    char final_path[4096];
    snprintf(final_path, sizeof final_path, "%s/result.json", out_dir);
    if (rename(out_path(tmp_name), final_path) != 0) die_errno("cannot rename to", final_path);
}

/* ---- main -------------------------------------------------------------------------------------------- */

static void write_timeline_row(FILE *timeline, long long t_ms, const sample_t *s) {
    fprintf(timeline, "%lld", t_ms);
    for (int i = 0; i < F_COUNT; i++) {
        fputc(',', timeline);
        if (s->value[i] >= 0) fprintf(timeline, "%lld", s->value[i]);
    }
    fputc('\n', timeline);
    fflush(timeline);
}

static void fold_peaks(run_result_t *res, const sample_t *s) {
    for (int i = 0; i < F_COUNT; i++) {
        if (s->value[i] < 0) continue;
        res->seen[i] = 1;
        if (s->value[i] > res->peaks.value[i]) res->peaks.value[i] = s->value[i];
    }
}

/* ---- tracing the runner for its exit sample ------------------------------------------------------------ */

/* Seize the (not yet exec'd) child: no stop now, one PTRACE_EVENT_EXIT stop as its main thread exits, and
 * the kernel kills it should the probe die first. Returns 1 when traced; else the reason is in res. */
static int start_tracing(pid_t pid, run_result_t *res) {
    if (no_trace) {
        snprintf(res->trace_error, sizeof res->trace_error, "disabled by --no-trace");
        return 0;
    }
    if (ptrace(PTRACE_SEIZE, pid, NULL, (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL)) != 0) {
        snprintf(res->trace_error, sizeof res->trace_error, "ptrace refused: %s", strerror(errno));
        return 0;
    }
    return 1;
}

/* At the exit stop: one last sample of everything while the address space still exists. */
static void take_exit_sample(proc_reader_t *r, run_result_t *res, double t0, unsigned long exit_status) {
    if (res->exec_errno || !WIFEXITED((int)exit_status)) return; /* the reason is written once reaped */
    sample_t s;
    double c0 = now_s();
    if (!read_status(r, &s)) {
        snprintf(exit_sample.reason, sizeof exit_sample.reason, "the runner had no memory left at its exit stop");
        return;
    }
    read_faults(r, &s);
    read_rollup(r, &s);
    int got_smaps = target_count > 0 && read_smaps(r);
    double c1 = now_s();
    exit_sample.taken = 1;
    exit_sample.t_ms = (long long)((c0 - t0) * 1000.0 + 0.5);
    exit_sample.cost_us = (c1 - c0) * 1e6;
    exit_sample.values = s;
    exit_sample.row_count = 0;
    exit_sample.smaps_read = got_smaps;
    if (got_smaps) {
        memcpy(exit_sample.rows, pending_rows, sizeof pending_rows[0] * (size_t)pending_count);
        exit_sample.row_count = pending_count;
        fold_mapping_peaks();
    }
    fold_peaks(res, &s);
}

/* A ptrace stop of the traced runner: take the exit sample, or pass its signal on unchanged. */
static void handle_stop(pid_t pid, int status, proc_reader_t *r, run_result_t *res, double t0) {
    int event = (status >> 16) & 0xff;
    int sig = WSTOPSIG(status);
    if (event == PTRACE_EVENT_EXIT) {
        unsigned long exit_status = 0;
        if (ptrace(PTRACE_GETEVENTMSG, pid, NULL, &exit_status) == 0) take_exit_sample(r, res, t0, exit_status);
        ptrace(PTRACE_CONT, pid, NULL, NULL);
    } else if (event == PTRACE_EVENT_STOP) {
        /* a group stop (SIGSTOP & co): stay stopped, as untraced, until a SIGCONT */
        if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) ptrace(PTRACE_LISTEN, pid, NULL, NULL);
        else ptrace(PTRACE_CONT, pid, NULL, NULL);
    } else {
        ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig); /* signal-delivery stop: deliver it */
    }
}

/* Why there is no exit sample, once the runner is reaped (unless the exit stop said already). */
static void explain_missing_exit_sample(const run_result_t *res) {
    if (exit_sample.taken || exit_sample.reason[0]) return;
    char *reason = exit_sample.reason;
    size_t cap = sizeof exit_sample.reason;
    if (res->exec_errno) snprintf(reason, cap, "the runner did not start");
    else if (res->timed_out) snprintf(reason, cap, "the runner was killed at the timeout, before it exited");
    else if (res->signaled)
        snprintf(reason, cap, "the runner was killed by signal %d before it exited", res->signal_no);
    else if (!res->traced) snprintf(reason, cap, "the runner was not traced (%s)", res->trace_error);
    else snprintf(reason, cap, "the kernel reported no exit stop of the runner's main thread");
}

/* Sleep until `wake` (monotonic seconds) or until a signal arrives: they are blocked everywhere but here,
 * so one that arrives between a check and the sleep is not lost. */
static void wait_until(double wake, const sigset_t *unblocked) {
    double left = wake - now_s();
    if (left < 0) left = 0;
    struct timespec ts;
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    ppoll(NULL, 0, &ts, unblocked);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    mkdir_p(out_dir);

    FILE *timeline = open_out("timeline.csv");
    fputs("t_ms", timeline);
    for (int i = 0; i < F_COUNT; i++) fprintf(timeline, ",%s", field_csv_names[i]);
    fputc('\n', timeline);
    fflush(timeline);
    FILE *maps_csv = open_out("maps.csv");
    fputs("t_ms,path,offset,size,rss,pss\n", maps_csv);
    fflush(maps_csv);
    int child_out = open(out_path("stdout.txt"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0664);
    if (child_out < 0) die_errno("cannot write", out_path("stdout.txt"));
    int child_err = open(out_path("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0664);
    if (child_err < 0) die_errno("cannot write", out_path("stderr.txt"));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL); /* no SA_RESTART: a child exit or stop wakes the sleep */
    sa.sa_handler = on_terminate;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* adb may close our stdout/stderr (a lost connection): a late error message must not kill the probe */
    signal(SIGPIPE, SIG_IGN);
    sigset_t wake_signals, unblocked;
    sigemptyset(&wake_signals);
    sigaddset(&wake_signals, SIGCHLD);
    sigaddset(&wake_signals, SIGTERM);
    sigaddset(&wake_signals, SIGINT);
    sigaddset(&wake_signals, SIGHUP);
    sigprocmask(SIG_BLOCK, &wake_signals, &unblocked);

    /* The exec-status pipe is close-on-exec: EOF means exec succeeded, 4 bytes mean it failed with errno.
     * The go pipe holds the child before exec until the probe has seized it, so even a run of a few
     * milliseconds is traced from its first instruction. */
    int exec_pipe[2], go_pipe[2];
    if (pipe2(exec_pipe, O_CLOEXEC) != 0 || pipe2(go_pipe, O_CLOEXEC) != 0) die_errno("cannot create pipe", NULL);

    run_result_t res;
    memset(&res, 0, sizeof res);
    for (int i = 0; i < F_COUNT; i++) res.peaks.value[i] = -1;

    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) die_errno("cannot fork", NULL);
    if (pid == 0) {
        setpgid(0, 0);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGCHLD, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        sigaction(SIGPIPE, &dfl, NULL); /* an ignored signal stays ignored across exec: give it back */
        sigprocmask(SIG_SETMASK, &unblocked, NULL); /* and so does the signal mask */
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0); /* the runner must not eat adb shell's stdin */
        dup2(child_out, 1);
        dup2(child_err, 2);
        close(go_pipe[1]);
        char go;
        ssize_t got;
        do got = read(go_pipe[0], &go, 1);
        while (got < 0 && errno == EINTR);
        if (got != 1) _exit(127); /* the probe died before letting us go */
        execvp(runner_argv[0], runner_argv);
        int e = errno;
        ssize_t ignored = write(exec_pipe[1], &e, sizeof e);
        (void)ignored;
        _exit(127);
    }
    setpgid(pid, pid); /* both sides set it, so there is no window where a group kill misses the child */
    res.pid = pid;
    close(exec_pipe[1]);
    close(go_pipe[0]);
    close(child_out);
    close(child_err);
    res.traced = start_tracing(pid, &res);
    {
        ssize_t n;
        do n = write(go_pipe[1], "g", 1);
        while (n < 0 && errno == EINTR);
        close(go_pipe[1]);
        int e = 0;
        do n = read(exec_pipe[0], &e, sizeof e);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof e) res.exec_errno = e;
        close(exec_pipe[0]);
    }

    proc_reader_t reader;
    memset(&reader, 0, sizeof reader);
    reader.pid = pid;
    reader.rollup_fd = reader.smaps_fd = -1;
    reader.status_fd = res.exec_errno ? -1 : open_proc(pid, "status");
    reader.stat_fd = res.exec_errno ? -1 : open_proc(pid, "stat");
    if (!res.exec_errno) reopen_mm_files(&reader);

    double interval = (double)interval_ms / 1000.0;
    double next_tick = now_s();
    double next_smaps = next_tick;
    double next_rollup = next_tick;
    sample_t last_rollup;
    for (int i = 0; i < F_COUNT; i++) last_rollup.value[i] = -1;
    double deadline = timeout_s > 0 ? t0 + timeout_s : 0;
    int status = 0;
    int reaped = 0;
    int forwarded_done = 0;
    double forwarded_at = 0;

    while (!reaped) {
        /* Every event the runner has for us first: ptrace stops (the exit sample among them), then its end. */
        for (;;) {
            int st = 0;
            struct rusage ru;
            pid_t w = wait4(pid, &st, WNOHANG, &ru);
            if (w != pid) break;
            if (WIFSTOPPED(st)) {
                handle_stop(pid, st, &reader, &res, t0);
                continue;
            }
            status = st;
            res.ru = ru;
            reaped = 1;
            break;
        }
        if (reaped) break;
        double t = now_s();
        if (forwarded_signal && !forwarded_done) {
            /* edgeship (or adb) is stopping us: stop the runner too, then record what happened */
            res.forwarded = forwarded_signal;
            kill(-pid, forwarded_signal);
            forwarded_done = 1;
            forwarded_at = t;
        }
        if (forwarded_done == 1 && t - forwarded_at >= STOP_GRACE_S) {
            kill(-pid, SIGKILL); /* the runner ignored the polite signal */
            forwarded_done = 2;
        }
        if (deadline > 0 && t >= deadline && !res.timed_out) {
            res.timed_out = 1;
            kill(-pid, SIGKILL);
        }
        if (t >= next_tick && !res.exec_errno) {
            sample_t s;
            double c0 = now_s();
            int alive = read_status(&reader, &s);
            if (alive) read_faults(&reader, &s);
            double c1 = now_s();
            long long t_ms = (long long)((c0 - t0) * 1000.0 + 0.5);
            if (alive) {
                res.samples++;
                res.sample_cost_us_total += (c1 - c0) * 1e6;
                if (c0 >= next_rollup) {
                    double r0 = now_s();
                    int got = read_rollup(&reader, &s);
                    double r1 = now_s();
                    if (got) {
                        res.rollup_samples++;
                        res.rollup_cost_us_total += (r1 - r0) * 1e6;
                        for (int i = FIRST_ROLLUP_FIELD; i <= LAST_ROLLUP_FIELD; i++) last_rollup.value[i] = s.value[i];
                    }
                    next_rollup = next_read_time(next_tick, r1 - r0, rollup_interval_ms, interval, c0 - t0);
                }
                /* Between rollup reads its columns repeat the last reading (status columns are fresh every row):
                 * an empty cell stays reserved for a field the kernel does not report. */
                for (int i = FIRST_ROLLUP_FIELD; i <= LAST_ROLLUP_FIELD; i++) s.value[i] = last_rollup.value[i];
                fold_peaks(&res, &s);
                write_timeline_row(timeline, t_ms, &s);
                if (target_count > 0 && c0 >= next_smaps) {
                    double m0 = now_s();
                    int got = read_smaps(&reader);
                    double m1 = now_s();
                    if (got) {
                        res.smaps_samples++;
                        res.smaps_cost_us_total += (m1 - m0) * 1e6;
                        record_mappings(maps_csv, t_ms);
                    }
                    next_smaps = next_read_time(next_tick, m1 - m0, smaps_interval_ms, interval, c0 - t0);
                }
            }
            /* fixed schedule on the monotonic clock; if a sample overran, skip to the next future tick */
            next_tick += interval;
            double after = now_s();
            if (next_tick <= after) next_tick += ((long)((after - next_tick) / interval) + 1) * interval;
        }
        double wake = next_tick;
        if (deadline > 0 && deadline < wake && !res.timed_out) wake = deadline;
        if (forwarded_done == 1 && forwarded_at + STOP_GRACE_S < wake) wake = forwarded_at + STOP_GRACE_S;
        wait_until(wake, &unblocked); /* a child exit or ptrace stop (SIGCHLD) or a stop request wakes it */
    }
    res.wall_s = now_s() - t0;
    kill(-pid, SIGKILL); /* leave nothing of the runner's group behind; ESRCH when it is already empty */

    if (WIFEXITED(status)) {
        res.exited = 1;
        res.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res.signaled = 1;
        res.signal_no = WTERMSIG(status);
    }
    if (res.exec_errno) {
        res.exited = 1;
        res.code = 127;
    }
    explain_missing_exit_sample(&res);
    fclose(timeline);
    fclose(maps_csv);
    write_result(&res);
    if (res.exec_errno) fprintf(stderr, "probe: cannot start %s: %s\n", runner_argv[0], strerror(res.exec_errno));
    if (res.signaled) return 128 + res.signal_no;
    return res.code;
}

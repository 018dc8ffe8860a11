/*
 * edgeship's native x86-64 runner: litert_lm_main's benchmark flags and BenchmarkInfo output, on the LiteRT-LM
 * engine of the litert-lm-api wheel (liblitert-lm.so), driven through the library's exported C API.
 *
 *   litert_lm_runner --model_path=M.litertlm --benchmark [--backend=cpu] [--benchmark_prefill_tokens=N]
 *                    [--benchmark_decode_tokens=N] [--num_iterations=N] [--max_num_tokens=N]
 *                    [--num_cpu_threads=N] [--log_sink_file=F] [--cache_dir=D | --disable_cache]
 *                    [--report_peak_memory_footprint] [--input_prompt=TEXT]
 *
 * Why it exists: a virtual device (ABI x86_64) cannot run the Android arm64 litert_lm_main, and the Python
 * host runner puts a whole interpreter (and its imports) into every memory figure. This program is the engine
 * and little else, so what the probe measures is the model's memory plus a known, small overhead.
 *
 * The wheel ships no header: the signatures below are those litert_lm/_ffi.py declares. The library is
 * dlopen'ed (LD_LIBRARY_PATH first, then this executable's folder), so the runner builds without it and says
 * clearly when it is missing; edgeship pushes it content-addressed beside the runner and sets LD_LIBRARY_PATH.
 *
 * Flags are absl-style like litert_lm_main's: --flag=value, --flag value, -flag, --flag / --noflag for
 * booleans; unknown flags are an error; flags litert_lm_main knows that change nothing here are accepted.
 * With --num_iterations=N the benchmark runs N times (a fresh engine each time, as litert_lm.Benchmark.run
 * does); each run is one prefill and one decode turn of the printed block, and the init and TTFT lines are
 * the last run's. --log_sink_file gets litert_lm_main's key:value lines, with the "Aggregated metrics
 * (median of N runs)" block when N > 1.
 *
 * The last engine is never deleted: the runner prints, flushes and _exits with it alive, so a probe that takes
 * a sample at the runner's exit (PTRACE_O_TRACEEXIT) still sees every section mapping the engine holds.
 * (litert_lm_main deletes its engine before main returns; its exit sample shows the address space after.)
 *
 * Exit code: 0 on success, 1 on a flag error or an engine failure (one "ERROR: ..." line on stderr).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIBRARY_NAME "liblitert-lm.so"
#define MAX_ITERATIONS 1000
#define SEPARATOR "--------------------------------------------------"
#define DEFAULT_PROMPT "How are you" /* litert_lm.Benchmark's: padded or cut to the prefill tokens */
#define INPUT_TEXT 0                 /* InputDataType.TEXT */
#define LOG_SEVERITY_BASE 2          /* LiteRT's INFO; absl's --minloglevel counts from INFO = 0 */

/* ---- the C API, as litert_lm/_ffi.py declares it --------------------------------------------------------- */

typedef struct {
    void *(*settings_create)(const char *model_path, const char *backend, const char *vision_backend,
                             const char *audio_backend);
    void (*settings_delete)(void *settings);
    void (*settings_enable_benchmark)(void *settings);
    void (*settings_set_num_threads)(void *settings, int threads);
    void (*settings_set_max_num_tokens)(void *settings, int tokens);
    void (*settings_set_num_prefill_tokens)(void *settings, int tokens);
    void (*settings_set_num_decode_tokens)(void *settings, int tokens);
    void (*settings_set_cache_dir)(void *settings, const char *dir);
    void *(*engine_create)(void *settings);
    void (*engine_delete)(void *engine);
    void *(*engine_create_session)(void *engine, void *session_config);
    void (*session_delete)(void *session);
    void *(*input_data_create)(int type, const void *data, size_t size);
    void (*input_data_delete)(void *input);
    void *(*session_generate_content)(void *session, void **inputs, size_t count);
    void (*responses_delete)(void *responses);
    void *(*session_get_benchmark_info)(void *session);
    void (*benchmark_info_delete)(void *info);
    double (*info_time_to_first_token)(void *info);
    double (*info_total_init_time_in_second)(void *info);
    int (*info_num_prefill_turns)(void *info);
    int (*info_num_decode_turns)(void *info);
    int (*info_prefill_token_count_at)(void *info, int turn);
    int (*info_decode_token_count_at)(void *info, int turn);
    double (*info_prefill_tokens_per_sec_at)(void *info, int turn);
    double (*info_decode_tokens_per_sec_at)(void *info, int turn);
    void (*set_min_log_level)(int level);
} litert_lm_api_t;

typedef struct {
    void **slot;
    const char *symbol;
} api_symbol_t;

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ERROR: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stdout);
    _exit(1);
}

/* dlopen by name (LD_LIBRARY_PATH, then the system's paths), else from this executable's folder. */
static void *open_library(void) {
    void *handle = dlopen(LIBRARY_NAME, RTLD_NOW | RTLD_LOCAL);
    if (handle) return handle;
    char first_error[512];
    snprintf(first_error, sizeof first_error, "%s", dlerror());
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash && (size_t)(slash - exe) + sizeof "/" LIBRARY_NAME < sizeof exe) {
            strcpy(slash + 1, LIBRARY_NAME);
            handle = dlopen(exe, RTLD_NOW | RTLD_LOCAL);
            if (handle) return handle;
        }
    }
    fail("cannot load %s (%s); set LD_LIBRARY_PATH to the folder holding it (the litert-lm-api wheel's "
         "litert_lm/ folder)",
         LIBRARY_NAME, first_error);
    return NULL;
}

static void load_api(litert_lm_api_t *api) {
    void *handle = open_library();
    const api_symbol_t symbols[] = {
        {(void **)&api->settings_create, "litert_lm_engine_settings_create"},
        {(void **)&api->settings_delete, "litert_lm_engine_settings_delete"},
        {(void **)&api->settings_enable_benchmark, "litert_lm_engine_settings_enable_benchmark"},
        {(void **)&api->settings_set_num_threads, "litert_lm_engine_settings_set_num_threads"},
        {(void **)&api->settings_set_max_num_tokens, "litert_lm_engine_settings_set_max_num_tokens"},
        {(void **)&api->settings_set_num_prefill_tokens, "litert_lm_engine_settings_set_num_prefill_tokens"},
        {(void **)&api->settings_set_num_decode_tokens, "litert_lm_engine_settings_set_num_decode_tokens"},
        {(void **)&api->settings_set_cache_dir, "litert_lm_engine_settings_set_cache_dir"},
        {(void **)&api->engine_create, "litert_lm_engine_create"},
        {(void **)&api->engine_delete, "litert_lm_engine_delete"},
        {(void **)&api->engine_create_session, "litert_lm_engine_create_session"},
        {(void **)&api->session_delete, "litert_lm_session_delete"},
        {(void **)&api->input_data_create, "litert_lm_input_data_create"},
        {(void **)&api->input_data_delete, "litert_lm_input_data_delete"},
        {(void **)&api->session_generate_content, "litert_lm_session_generate_content"},
        {(void **)&api->responses_delete, "litert_lm_responses_delete"},
        {(void **)&api->session_get_benchmark_info, "litert_lm_session_get_benchmark_info"},
        {(void **)&api->benchmark_info_delete, "litert_lm_benchmark_info_delete"},
        {(void **)&api->info_time_to_first_token, "litert_lm_benchmark_info_get_time_to_first_token"},
        {(void **)&api->info_total_init_time_in_second, "litert_lm_benchmark_info_get_total_init_time_in_second"},
        {(void **)&api->info_num_prefill_turns, "litert_lm_benchmark_info_get_num_prefill_turns"},
        {(void **)&api->info_num_decode_turns, "litert_lm_benchmark_info_get_num_decode_turns"},
        {(void **)&api->info_prefill_token_count_at, "litert_lm_benchmark_info_get_prefill_token_count_at"},
        {(void **)&api->info_decode_token_count_at, "litert_lm_benchmark_info_get_decode_token_count_at"},
        {(void **)&api->info_prefill_tokens_per_sec_at, "litert_lm_benchmark_info_get_prefill_tokens_per_sec_at"},
        {(void **)&api->info_decode_tokens_per_sec_at, "litert_lm_benchmark_info_get_decode_tokens_per_sec_at"},
        {(void **)&api->set_min_log_level, "litert_lm_set_min_log_level"},
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        *symbols[i].slot = dlsym(handle, symbols[i].symbol);
        if (!*symbols[i].slot)
            fail("%s has no %s; is it the litert-lm-api build this runner was written for (0.18)?", LIBRARY_NAME,
                 symbols[i].symbol);
    }
}

/* ---- flags ------------------------------------------------------------------------------------------------ */

typedef struct {
    const char *model_path;
    const char *backend;
    bool benchmark;
    int benchmark_prefill_tokens;
    int benchmark_decode_tokens;
    int num_iterations;
    int max_num_tokens; /* 0: the engine's default */
    int num_cpu_threads;
    int minloglevel; /* -1: the library's default */
    const char *log_sink_file;
    const char *cache_dir;
    bool disable_cache;
    bool report_peak_memory_footprint;
    const char *input_prompt;
} flags_t;

typedef enum { FLAG_STRING, FLAG_INT, FLAG_BOOL, FLAG_IGNORED } flag_kind_t;

typedef struct {
    const char *name;
    flag_kind_t kind;
    void *target;
} flag_spec_t;

static bool parse_bool(const char *name, const char *text) {
    static const char *const yes[] = {"true", "1", "yes", "t", "y"};
    static const char *const no[] = {"false", "0", "no", "f", "n"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcasecmp(text, yes[i]) == 0) return true;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcasecmp(text, no[i]) == 0) return false;
    fail("illegal value '%s' for bool flag '%s'", text, name);
    return false;
}

static int parse_int(const char *name, const char *text) {
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || !end || end == text || *end || value < INT_MIN || value > INT_MAX)
        fail("illegal value '%s' specified for int flag '%s'", text, name);
    return (int)value;
}

static void parse_flags(int argc, char **argv, flags_t *flags) {
    const flag_spec_t specs[] = {
        {"model_path", FLAG_STRING, &flags->model_path},
        {"backend", FLAG_STRING, &flags->backend},
        {"benchmark", FLAG_BOOL, &flags->benchmark},
        {"benchmark_prefill_tokens", FLAG_INT, &flags->benchmark_prefill_tokens},
        {"benchmark_decode_tokens", FLAG_INT, &flags->benchmark_decode_tokens},
        {"num_iterations", FLAG_INT, &flags->num_iterations},
        {"max_num_tokens", FLAG_INT, &flags->max_num_tokens},
        {"num_cpu_threads", FLAG_INT, &flags->num_cpu_threads},
        {"minloglevel", FLAG_INT, &flags->minloglevel},
        {"log_sink_file", FLAG_STRING, &flags->log_sink_file},
        {"cache_dir", FLAG_STRING, &flags->cache_dir},
        {"disable_cache", FLAG_BOOL, &flags->disable_cache},
        {"report_peak_memory_footprint", FLAG_BOOL, &flags->report_peak_memory_footprint},
        {"input_prompt", FLAG_STRING, &flags->input_prompt},
        /* litert_lm_main flags that change nothing in a benchmark run here */
        {"async", FLAG_IGNORED, NULL},
        {"vision_backend", FLAG_IGNORED, NULL},
        {"audio_backend", FLAG_IGNORED, NULL},
        {"metric_proto_file_path", FLAG_IGNORED, NULL},
        {"multi_turns", FLAG_IGNORED, NULL},
        {"verbose", FLAG_IGNORED, NULL},
        {"stderrthreshold", FLAG_IGNORED, NULL},
    };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') fail("unexpected argument '%s'", arg);
        while (*arg == '-') arg++;
        char name[128];
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (name_len == 0 || name_len >= sizeof name) fail("Unknown command line flag '%s'", arg);
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        const char *value = eq ? eq + 1 : NULL;
        bool negated = false;
        const flag_spec_t *spec = NULL;
        for (size_t k = 0; k < sizeof specs / sizeof specs[0] && !spec; k++)
            if (strcmp(specs[k].name, name) == 0) spec = &specs[k];
        if (!spec && !value && strncmp(name, "no", 2) == 0) {
            for (size_t k = 0; k < sizeof specs / sizeof specs[0] && !spec; k++)
                if (specs[k].kind == FLAG_BOOL && strcmp(specs[k].name, name + 2) == 0) spec = &specs[k];
            negated = spec != NULL;
        }
        if (!spec) fail("Unknown command line flag '%s'", name);
        if (spec->kind == FLAG_BOOL) {
            *(bool *)spec->target = negated ? false : value ? parse_bool(name, value) : true;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) fail("flag '--%s' is missing its argument", name);
            value = argv[++i];
        }
        if (spec->kind == FLAG_STRING) *(const char **)spec->target = value;
        else if (spec->kind == FLAG_INT) *(int *)spec->target = parse_int(name, value);
    }
    if (!flags->model_path || !flags->model_path[0]) fail("--model_path is required");
    if (strcmp(flags->backend, "cpu") != 0 && strcmp(flags->backend, "gpu") != 0 &&
        strcmp(flags->backend, "npu") != 0)
        fail("--backend must be cpu, gpu or npu (got '%s')", flags->backend);
    if (flags->benchmark_prefill_tokens < 1) fail("--benchmark_prefill_tokens must be at least 1");
    if (flags->benchmark_decode_tokens < 1) fail("--benchmark_decode_tokens must be at least 1");
    if (flags->num_iterations < 1 || flags->num_iterations > MAX_ITERATIONS)
        fail("--num_iterations must be between 1 and %d", MAX_ITERATIONS);
    if (flags->max_num_tokens < 0) fail("--max_num_tokens must not be negative");
    if (flags->num_cpu_threads < 0) fail("--num_cpu_threads must not be negative");
}

/* ---- one benchmark run ------------------------------------------------------------------------------------ */

typedef struct {
    double init_s, ttft_s;
    int prefill_tokens, decode_tokens;
    double prefill_tok_s, decode_tok_s;
} run_figures_t;

typedef struct {
    void *engine, *session;
} engine_t;

/* One engine, one session, one benchmark turn; the engine is returned alive (the caller decides its end). */
static engine_t run_once(const litert_lm_api_t *api, const flags_t *flags, run_figures_t *out) {
    engine_t live = {NULL, NULL};
    void *settings = api->settings_create(flags->model_path, flags->backend, NULL, NULL);
    if (!settings)
        fail("cannot create engine settings (model_path=%s, backend=%s)", flags->model_path, flags->backend);
    api->settings_enable_benchmark(settings);
    if (flags->num_cpu_threads > 0 && strcmp(flags->backend, "cpu") == 0)
        api->settings_set_num_threads(settings, flags->num_cpu_threads);
    if (flags->max_num_tokens > 0) api->settings_set_max_num_tokens(settings, flags->max_num_tokens);
    api->settings_set_num_prefill_tokens(settings, flags->benchmark_prefill_tokens);
    api->settings_set_num_decode_tokens(settings, flags->benchmark_decode_tokens);
    /* litert_lm_main's meaning: no cache at all. Without a cache dir LiteRT-LM writes one beside the model. */
    if (flags->disable_cache)
        api->settings_set_cache_dir(settings, ":nocache");
    else if (flags->cache_dir && flags->cache_dir[0])
        api->settings_set_cache_dir(settings, flags->cache_dir);
    live.engine = api->engine_create(settings);
    api->settings_delete(settings);
    if (!live.engine) fail("cannot create the engine (model_path=%s, backend=%s)", flags->model_path, flags->backend);
    live.session = api->engine_create_session(live.engine, NULL);
    if (!live.session) fail("cannot create a session (model_path=%s)", flags->model_path);

    const char *prompt = flags->input_prompt ? flags->input_prompt : DEFAULT_PROMPT;
    void *input = api->input_data_create(INPUT_TEXT, prompt, strlen(prompt));
    if (!input) fail("cannot create the input data");
    void *inputs[1] = {input};
    void *responses = api->session_generate_content(live.session, inputs, 1);
    api->input_data_delete(input);
    if (responses) api->responses_delete(responses);

    void *info = api->session_get_benchmark_info(live.session);
    if (!info) fail("the session has no benchmark info (was the benchmark enabled?)");
    int prefill_turns = api->info_num_prefill_turns(info);
    int decode_turns = api->info_num_decode_turns(info);
    if (prefill_turns < 1 || decode_turns < 1)
        fail("the engine reported %d prefill and %d decode turns; expected at least one of each", prefill_turns,
             decode_turns);
    out->init_s = api->info_total_init_time_in_second(info);
    out->ttft_s = api->info_time_to_first_token(info);
    out->prefill_tokens = api->info_prefill_token_count_at(info, prefill_turns - 1);
    out->prefill_tok_s = api->info_prefill_tokens_per_sec_at(info, prefill_turns - 1);
    out->decode_tokens = api->info_decode_token_count_at(info, decode_turns - 1);
    out->decode_tok_s = api->info_decode_tokens_per_sec_at(info, decode_turns - 1);
    api->benchmark_info_delete(info);
    return live;
}

/* ---- output --------------------------------------------------------------------------------------------- */

/* absl::Duration text as LiteRT-LM prints it: "477.85ms", "3.917262s", "1m2.5s", "850us". */
static void format_duration(double seconds, char *buf, size_t cap) {
    char number[64];
    if (seconds <= 0) {
        snprintf(buf, cap, "0");
        return;
    }
    const char *unit;
    if (seconds < 1e-3) {
        snprintf(number, sizeof number, "%.3f", seconds * 1e6);
        unit = "us";
    } else if (seconds < 1) {
        snprintf(number, sizeof number, "%.6f", seconds * 1e3);
        unit = "ms";
    } else if (seconds < 60) {
        snprintf(number, sizeof number, "%.9f", seconds);
        unit = "s";
    } else {
        long minutes = (long)(seconds / 60);
        double rest = seconds - 60.0 * (double)minutes;
        long hours = minutes / 60;
        minutes %= 60;
        snprintf(number, sizeof number, "%.6f", rest);
        char *end = number + strlen(number) - 1;
        while (end > number && *end == '0') *end-- = '\0';
        if (*end == '.') *end = '\0';
        if (hours) snprintf(buf, cap, "%ldh%ldm%ss", hours, minutes, number);
        else snprintf(buf, cap, "%ldm%ss", minutes, number);
        return;
    }
    char *end = number + strlen(number) - 1; /* trailing zeros and a bare point go */
    while (end > number && *end == '0') *end-- = '\0';
    if (*end == '.') *end = '\0';
    snprintf(buf, cap, "%s%s", number, unit);
}

static void print_turns(const char *kind, const run_figures_t *runs, int count, bool prefill) {
    printf("  %s Turns (Total %d turns):\n", kind, count);
    for (int i = 0; i < count; i++) {
        int tokens = prefill ? runs[i].prefill_tokens : runs[i].decode_tokens;
        double speed = prefill ? runs[i].prefill_tok_s : runs[i].decode_tok_s;
        char took[64];
        format_duration(speed > 0 ? tokens / speed : 0.0, took, sizeof took);
        printf("    %s Turn %d: Processed %d tokens in %s duration.\n", kind, i + 1, tokens, took);
        printf("      %s Speed: %.2f tokens/sec.\n", kind, speed);
    }
}

/* The new-form BenchmarkInfo block LiteRT-LM prints (the same text as edgeship's Python host runner). */
static void print_benchmark_info(const run_figures_t *runs, int count) {
    const run_figures_t *last = &runs[count - 1];
    printf("BenchmarkInfo:\n  Init Phases (1):\n    - Init Total: %.2f ms\n%s\n", last->init_s * 1000.0, SEPARATOR);
    /* LiteRT-LM prints %.2f; 4 decimals keep tiny test bundles' TTFT (a few ms) readable, same parse */
    printf("  Time to first token: %.4f s\n%s\n", last->ttft_s, SEPARATOR);
    print_turns("Prefill", runs, count, true);
    printf("%s\n", SEPARATOR);
    print_turns("Decode", runs, count, false);
    printf("%s\n", SEPARATOR);
}

static double peak_ram_mb(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_maxrss / 1024.0; /* ru_maxrss is KiB */
}

static double swap_mb(void) {
    FILE *status = fopen("/proc/self/status", "re");
    if (!status) return 0;
    char line[256];
    long kib = 0;
    while (fgets(line, sizeof line, status))
        if (strncmp(line, "VmSwap:", 7) == 0) kib = strtol(line + 7, NULL, 10);
    fclose(status);
    return (double)kib / 1024.0;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of one figure over the runs (statistics.median: the mean of the two middle values when even). */
static double median(const run_figures_t *runs, int count, size_t offset) {
    double values[MAX_ITERATIONS];
    for (int i = 0; i < count; i++) values[i] = *(const double *)((const char *)&runs[i] + offset);
    qsort(values, (size_t)count, sizeof values[0], compare_doubles);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2.0;
}

/* litert_lm_main's log-sink lines (same keys and formats; each run is one session, so its turn is 0), then the
 * medians when there are several runs. */
static void write_log_sink(const flags_t *flags, const run_figures_t *runs, int count) {
    FILE *sink = fopen(flags->log_sink_file, "we");
    if (!sink) fail("cannot write --log_sink_file %s: %s", flags->log_sink_file, strerror(errno));
    for (int i = 0; i < count; i++) {
        fprintf(sink, "Benchmark flags: benchmark_prefill_tokens=%d,benchmark_decode_tokens=%d,backend=%s\n",
                flags->benchmark_prefill_tokens, flags->benchmark_decode_tokens, flags->backend);
        fprintf(sink, "Init Total: %.2f ms\n", runs[i].init_s * 1000.0);
        fprintf(sink, "Time to first token: %.2f s\n", runs[i].ttft_s);
        fprintf(sink, "Prefill speed turn 0: %.2f tk/s\n", runs[i].prefill_tok_s);
        fprintf(sink, "Decode speed turn 0: %.2f tk/s\n", runs[i].decode_tok_s);
    }
    double peak = peak_ram_mb();
    fprintf(sink, "Peak system ram usage: %.2f MB\nPeak private footprint: %.2f MB\n", peak, peak + swap_mb());
    if (count > 1) {
        fprintf(sink, "Aggregated metrics (median of %d runs):\n", count);
        fprintf(sink, "Init Total: %.2f ms\n", median(runs, count, offsetof(run_figures_t, init_s)) * 1000.0);
        fprintf(sink, "Time to first token: %.2f s\n", median(runs, count, offsetof(run_figures_t, ttft_s)));
        fprintf(sink, "Prefill speed turn 0: %.2f tk/s\n",
                median(runs, count, offsetof(run_figures_t, prefill_tok_s)));
        fprintf(sink, "Decode speed turn 0: %.2f tk/s\n",
                median(runs, count, offsetof(run_figures_t, decode_tok_s)));
    }
    if (fclose(sink) != 0) fail("cannot write --log_sink_file %s: %s", flags->log_sink_file, strerror(errno));
}

int main(int argc, char **argv) {
    flags_t flags = {
        .backend = "cpu",
        .benchmark_prefill_tokens = 256,
        .benchmark_decode_tokens = 256,
        .num_iterations = 1,
        .minloglevel = -1,
    };
    parse_flags(argc, argv, &flags);
    if (!flags.benchmark) fail("the edgeship native runner only implements --benchmark runs");
    struct stat model;
    if (stat(flags.model_path, &model) != 0 || !S_ISREG(model.st_mode))
        fail("model file not found: %s", flags.model_path);

    litert_lm_api_t api;
    load_api(&api);
    if (flags.minloglevel >= 0) api.set_min_log_level(LOG_SEVERITY_BASE + flags.minloglevel);

    static run_figures_t runs[MAX_ITERATIONS];
    engine_t live = {NULL, NULL};
    for (int i = 0; i < flags.num_iterations; i++) {
        if (live.engine) { /* only the last run's engine outlives its run */
            api.session_delete(live.session);
            api.engine_delete(live.engine);
        }
        live = run_once(&api, &flags, &runs[i]);
    }
    print_benchmark_info(runs, flags.num_iterations);
    if (flags.report_peak_memory_footprint) printf("Peak system ram usage: %.2f MB\n", peak_ram_mb());
    if (flags.log_sink_file) write_log_sink(&flags, runs, flags.num_iterations);
    fflush(stdout);
    fflush(stderr);
    /* _exit with the engine alive: no teardown of its mappings (or of the library's static state while its
     * worker threads run) before the kernel's own, so the probe's exit sample sees them. */
    _exit(0);
}

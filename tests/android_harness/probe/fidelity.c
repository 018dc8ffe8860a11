/*
 * Fidelity target for the probe tests: makes memory figures the test knows in advance.
 *
 *   fidelity ANON_MIB FILE FILE_TOUCH_MIB FILE_OFFSET_MIB OFFSET_TOUCH_MIB SPIKE_MIB SPIKE_MS HOLD_MS EXIT_CODE
 *            [COLD_FILE COLD_TOUCH_MIB]
 *
 * 1. maps ANON_MIB of anonymous memory and writes every page;
 * 2. maps FILE read-only twice: at offset 0 (reads the first FILE_TOUCH_MIB) and at FILE_OFFSET_MIB (reads the
 *    first OFFSET_TOUCH_MIB of that mapping) — every range a multiple of 64 KiB so the kernel's fault-around
 *    maps no page outside it;
 * 3. holds HOLD_MS, then maps and writes SPIKE_MIB more anonymous memory, holds it SPIKE_MS, unmaps it;
 * 4. holds HOLD_MS again;
 * 5. with COLD_FILE: drops it from the page cache (POSIX_FADV_DONTNEED; the caller synced it), prints
 *    "cold-cached N" (its first COLD_TOUCH_MIB pages still cached, by mincore: 0 when the drop worked), maps it
 *    and reads the first COLD_TOUCH_MIB (page faults, major ones where the drop worked), prints "cold", holds
 *    HOLD_MS;
 * 6. exits with EXIT_CODE.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void *anon(unsigned long bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap anon");
        exit(90);
    }
    memset(p, 0x5a, bytes); /* write every page: resident and private */
    return p;
}

static volatile unsigned long sink;

static void read_pages(const unsigned char *p, unsigned long bytes) {
    long page = sysconf(_SC_PAGESIZE);
    for (unsigned long i = 0; i < bytes; i += (unsigned long)page) sink += p[i];
}

static void touch_cold(const char *file, unsigned long bytes, long hold_ms) {
    int fd = open(file, O_RDONLY);
    if (fd < 0) {
        perror("open cold");
        exit(93);
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    unsigned char *p = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap cold");
        exit(94);
    }
    long page = sysconf(_SC_PAGESIZE);
    unsigned long pages = bytes / (unsigned long)page, cached = 0;
    unsigned char *in_core = malloc(pages);
    if (in_core && mincore(p, bytes, in_core) == 0)
        for (unsigned long i = 0; i < pages; i++) cached += in_core[i] & 1;
    printf("cold-cached %lu\n", cached);
    fflush(stdout);
    read_pages(p, bytes);
    printf("cold\n");
    fflush(stdout);
    sleep_ms(hold_ms);
}

int main(int argc, char **argv) {
    if (argc != 10 && argc != 12) {
        fprintf(stderr, "usage: fidelity ANON FILE TOUCH OFFSET OFFSET_TOUCH SPIKE SPIKE_MS HOLD_MS CODE "
                        "[COLD_FILE COLD_TOUCH]\n");
        return 2;
    }
    unsigned long anon_mib = strtoul(argv[1], NULL, 10);
    const char *file = argv[2];
    unsigned long touch_mib = strtoul(argv[3], NULL, 10);
    unsigned long offset_mib = strtoul(argv[4], NULL, 10);
    unsigned long offset_touch_mib = strtoul(argv[5], NULL, 10);
    unsigned long spike_mib = strtoul(argv[6], NULL, 10);
    long spike_ms = strtol(argv[7], NULL, 10);
    long hold_ms = strtol(argv[8], NULL, 10);
    int code = atoi(argv[9]);

    anon(anon_mib * MIB);
    int fd = open(file, O_RDONLY);
    if (fd < 0) {
        perror("open");
        return 91;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    unsigned char *head = mmap(NULL, (size_t)offset_mib * MIB, PROT_READ, MAP_PRIVATE, fd, 0);
    unsigned char *tail = mmap(NULL, (size_t)(size - (off_t)(offset_mib * MIB)), PROT_READ, MAP_PRIVATE, fd,
                               (off_t)(offset_mib * MIB));
    if (head == MAP_FAILED || tail == MAP_FAILED) {
        perror("mmap file");
        return 92;
    }
    read_pages(head, touch_mib * MIB);
    read_pages(tail, offset_touch_mib * MIB);
    printf("steady\n");
    fflush(stdout);
    sleep_ms(hold_ms);

    void *spike = anon(spike_mib * MIB);
    printf("spike\n");
    fflush(stdout);
    sleep_ms(spike_ms);
    munmap(spike, spike_mib * MIB);
    printf("after\n");
    fflush(stdout);
    sleep_ms(hold_ms);
    if (argc == 12) touch_cold(argv[10], strtoul(argv[11], NULL, 10) * MIB, hold_ms);
    return code;
}

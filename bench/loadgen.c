/* janua bench: a UDP request/response load generator (ours; built by bench/run.py with gcc).
 *
 * It replays pre-built request datagrams from a file (fixed length each, in order) against a
 * server, over a pool of connected UDP sockets with at most one request in flight per socket,
 * so every reply is matched to its request by socket and timed exactly.
 *
 *   loadgen HOST PORT FILE PKTLEN closed WINDOW SECONDS [any]
 *       closed loop: WINDOW sockets, each sends its next request as soon as its reply arrives;
 *       measures the peak rate.
 *   loadgen HOST PORT FILE PKTLEN open RATE SECONDS [any]
 *       open loop: requests are scheduled at RATE per second on free sockets from a pool of 1024;
 *       measures latency at a given offered load (a request that finds no free socket counts as
 *       "saturated").
 *
 * A reply counts as ok when its first byte is 0 (janua's OK status), or always with "any" (the
 * echo reference). A request without a reply after 500 ms counts as lost. The first 10% of the
 * time is warm-up and is not counted. Output: one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOCKS 1024
#define LOST_NS 500000000LL

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: loadgen HOST PORT FILE PKTLEN closed|open WINDOW|RATE SECONDS [any]\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    const char *path = argv[3];
    int pktlen = atoi(argv[4]);
    int open_loop = strcmp(argv[5], "open") == 0;
    double param = atof(argv[6]);
    double seconds = atof(argv[7]);
    int any = argc > 8 && strcmp(argv[8], "any") == 0;

    FILE *f = fopen(path, "rb");
    if (!f) { perror("packets"); return 1; }
    struct stat st;
    fstat(fileno(f), &st);
    size_t npk = st.st_size / pktlen;
    if (npk == 0) { fprintf(stderr, "no packets\n"); return 1; }
    unsigned char *pk = malloc(st.st_size);
    if (fread(pk, 1, st.st_size, f) != (size_t)st.st_size) { perror("read"); return 1; }
    fclose(f);

    int nsock = open_loop ? MAX_SOCKS : (int)param;
    if (nsock < 1 || nsock > MAX_SOCKS) { fprintf(stderr, "bad window\n"); return 2; }
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, host, &sa.sin_addr);

    int ep = epoll_create1(0);
    int fds[MAX_SOCKS];
    int64_t sent_at[MAX_SOCKS]; /* 0 = free */
    for (int i = 0; i < nsock; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0) { perror("socket"); return 1; }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
        sent_at[i] = 0;
    }

    size_t cap = 1 << 20, nlat = 0;
    int64_t *lat = malloc(cap * sizeof *lat);
    uint64_t sent = 0, recvd = 0, ok = 0, lost = 0, saturated = 0, wrapped = 0;
    size_t next = 0;
    int64_t t0 = now_ns();
    int64_t warm = t0 + (int64_t)(seconds * 0.1e9);
    int64_t end = t0 + (int64_t)(seconds * 1e9);
    double interval = open_loop ? 1e9 / param : 0;
    double next_send = (double)t0;
    int free_hint = 0;
    unsigned char buf[2048];

#define SEND_ON(i) do { \
        if (send(fds[i], pk + next * pktlen, pktlen, 0) == pktlen) { sent_at[i] = now_ns(); if (sent_at[i] >= warm) sent++; } \
        next++; if (next == npk) { next = 0; wrapped++; } \
    } while (0)

    if (!open_loop)
        for (int i = 0; i < nsock; i++) SEND_ON(i);

    struct epoll_event evs[256];
    for (;;) {
        int64_t t = now_ns();
        if (t >= end) break;
        if (open_loop) {
            while (next_send <= (double)t) {
                int found = -1;
                for (int k = 0; k < nsock; k++) {
                    int i = (free_hint + k) % nsock;
                    if (sent_at[i] == 0) { found = i; break; }
                }
                if (found < 0) { if (t >= warm) saturated++; }
                else { SEND_ON(found); free_hint = (found + 1) % nsock; }
                next_send += interval;
            }
        }
        int timeout_ms = open_loop ? 0 : 1;
        int n = epoll_wait(ep, evs, 256, timeout_ms);
        t = now_ns();
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32;
            for (;;) {
                ssize_t r = recv(fds[i], buf, sizeof buf, 0);
                if (r < 0) break;
                if (sent_at[i] == 0) continue; /* a late reply to a request counted as lost */
                if (sent_at[i] >= warm) {
                    recvd++;
                    if (any || (r > 0 && buf[0] == 0)) ok++;
                    if (nlat == cap) { cap *= 2; lat = realloc(lat, cap * sizeof *lat); }
                    lat[nlat++] = t - sent_at[i];
                }
                sent_at[i] = 0;
                if (!open_loop) SEND_ON(i);
            }
        }
        /* Requests without a reply for too long are lost; their socket is reused. */
        static int64_t last_scan = 0;
        if (t - last_scan > 50000000LL) {
            last_scan = t;
            for (int i = 0; i < nsock; i++)
                if (sent_at[i] && t - sent_at[i] > LOST_NS) {
                    if (sent_at[i] >= warm) lost++;
                    sent_at[i] = 0;
                    if (!open_loop) SEND_ON(i);
                }
        }
    }
    double measured = (double)(end - warm) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmp_i64);
#define PCT(p) (nlat ? lat[(size_t)((nlat - 1) * (p))] / 1e6 : -1.0)
    printf("{\"sent\": %llu, \"received\": %llu, \"ok\": %llu, \"lost\": %llu, \"saturated\": %llu, "
           "\"wrapped\": %llu, \"seconds\": %.3f, \"received_per_s\": %.1f, \"ok_per_s\": %.1f, "
           "\"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f}\n",
           (unsigned long long)sent, (unsigned long long)recvd, (unsigned long long)ok,
           (unsigned long long)lost, (unsigned long long)saturated, (unsigned long long)wrapped,
           measured, recvd / measured, ok / measured, PCT(0.5), PCT(0.9), PCT(0.99),
           nlat ? lat[nlat - 1] / 1e6 : -1.0);
    return 0;
}

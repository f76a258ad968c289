/* janua bench: a DTLS 1.2 PSK handshake load generator on OpenSSL (ours; built by bench/run.py with gcc
 * and -lssl -lcrypto).
 *
 *   dtls_loadgen HOST PORT IDENTITY PSK_HEX CLIENTS SECONDS
 *
 * CLIENTS concurrent clients, each on its own connected UDP socket, each doing full handshakes back to
 * back: ClientHello, HelloVerifyRequest, ClientHello with the cookie, ServerHello flight, ClientKeyExchange
 * + ChangeCipherSpec + Finished, ChangeCipherSpec + Finished, with TLS_PSK_WITH_AES_128_CCM_8 and
 * OpenSSL's defaults otherwise (extended master secret, renegotiation_info SCSV). A finished handshake
 * is counted and its SSL object freed without close_notify; the next handshake starts on the same
 * socket (same source port: the server replaces that address's state). Lost flights are resent on
 * OpenSSL's DTLS timer (1 s initial). The first 10% of the time is warm-up and is not counted.
 *
 * Output: one JSON object: handshakes, seconds, handshakes_per_s, failures, retransmit_timeouts,
 * p50_ms/p99_ms of the handshake time, and cpu_share (this process's CPU time / wall time: near 1.0
 * means the load generator itself is the bottleneck).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define MAX_SAMPLES 2000000

static const char *g_identity;
static unsigned char g_psk[64];
static unsigned int g_psk_len;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static unsigned int psk_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_identity_len,
                           unsigned char *psk, unsigned int max_psk_len) {
    (void)ssl; (void)hint;
    if (strlen(g_identity) + 1 > max_identity_len || g_psk_len > max_psk_len) return 0;
    strcpy(identity, g_identity);
    memcpy(psk, g_psk, g_psk_len);
    return g_psk_len;
}

struct client {
    int fd;
    SSL *ssl;
    int64_t started;
};

static void start(SSL_CTX *ctx, struct client *c) {
    c->ssl = SSL_new(ctx);
    BIO *bio = BIO_new_dgram(c->fd, BIO_NOCLOSE);
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    getpeername(c->fd, (struct sockaddr *)&peer, &len);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &peer);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_connect_state(c->ssl);
    c->started = now_ns();
    SSL_do_handshake(c->ssl);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: dtls_loadgen HOST PORT IDENTITY PSK_HEX CLIENTS SECONDS\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    g_identity = argv[3];
    const char *hex = argv[4];
    g_psk_len = strlen(hex) / 2;
    if (g_psk_len == 0 || g_psk_len > sizeof g_psk) { fprintf(stderr, "bad PSK\n"); return 2; }
    for (unsigned int i = 0; i < g_psk_len; i++) sscanf(hex + 2 * i, "%2hhx", &g_psk[i]);
    int nclients = atoi(argv[5]);
    if (nclients < 1 || nclients > MAX_CLIENTS) { fprintf(stderr, "CLIENTS must be 1..%d\n", MAX_CLIENTS); return 2; }
    double seconds = atof(argv[6]);

    SSL_CTX *ctx = SSL_CTX_new(DTLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION);
    if (SSL_CTX_set_cipher_list(ctx, "PSK-AES128-CCM8") != 1) { fprintf(stderr, "no CCM8\n"); return 1; }
    SSL_CTX_set_psk_client_callback(ctx, psk_cb);
    SSL_CTX_set_read_ahead(ctx, 1);

    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    struct client clients[MAX_CLIENTS];
    struct pollfd pfd[MAX_CLIENTS];
    for (int i = 0; i < nclients; i++) {
        clients[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (connect(clients[i].fd, (struct sockaddr *)&sa, sizeof sa) != 0) { perror("connect"); return 1; }
        pfd[i].fd = clients[i].fd;
        pfd[i].events = POLLIN;
        start(ctx, &clients[i]);
    }

    int64_t *samples = malloc(sizeof(int64_t) * MAX_SAMPLES);
    int64_t t0 = now_ns(), warm = t0 + (int64_t)(seconds * 0.1e9), end = t0 + (int64_t)(seconds * 1e9);
    struct rusage ru0;
    int counting = 0;
    long done = 0, failures = 0, timeouts = 0, nsamples = 0;
    int64_t t_count = warm;
    for (;;) {
        int64_t now = now_ns();
        if (now >= end) break;
        if (!counting && now >= warm) {
            counting = 1;
            done = failures = timeouts = nsamples = 0;
            t_count = now;
            getrusage(RUSAGE_SELF, &ru0);
        }
        int wait_ms = 50;
        for (int i = 0; i < nclients; i++) {
            struct timeval tv;
            if (DTLSv1_get_timeout(clients[i].ssl, &tv)) {
                int ms = (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
                if (ms < wait_ms) wait_ms = ms;
            }
        }
        int n = poll(pfd, nclients, wait_ms);
        if (n < 0 && errno != EINTR) { perror("poll"); return 1; }
        for (int i = 0; i < nclients; i++) {
            struct client *c = &clients[i];
            if (!(pfd[i].revents & POLLIN)) {
                struct timeval tv;
                if (DTLSv1_get_timeout(c->ssl, &tv) && tv.tv_sec == 0 && tv.tv_usec == 0) {
                    if (DTLSv1_handle_timeout(c->ssl) < 0) {
                        failures++;
                        SSL_free(c->ssl);
                        start(ctx, c);
                    } else {
                        timeouts++;
                    }
                }
                continue;
            }
            int r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                int64_t t = now_ns();
                done++;
                if (nsamples < MAX_SAMPLES) samples[nsamples++] = t - c->started;
                SSL_free(c->ssl);
                char sink[2048];
                while (recv(c->fd, sink, sizeof sink, 0) > 0) {}   /* nothing stale into the next one */
                start(ctx, c);
            } else {
                int e = SSL_get_error(c->ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    failures++;
                    ERR_clear_error();
                    SSL_free(c->ssl);
                    start(ctx, c);
                }
            }
        }
    }
    int64_t t_end = now_ns();
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    double wall = (t_end - t_count) / 1e9;
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    qsort(samples, nsamples, sizeof(int64_t), cmp_i64);
    double p50 = nsamples ? samples[nsamples / 2] / 1e6 : 0, p99 = nsamples ? samples[nsamples * 99 / 100] / 1e6 : 0;
    printf("{\"handshakes\": %ld, \"seconds\": %.3f, \"handshakes_per_s\": %.1f, \"failures\": %ld, "
           "\"retransmit_timeouts\": %ld, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"cpu_share\": %.3f, \"clients\": %d}\n",
           done, wall, done / wall, failures, timeouts, p50, p99, cpu / wall, nclients);
    return 0;
}

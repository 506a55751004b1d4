/* A raw ZeroMQ SUB in C, for bench/compare: the daemons measured, not a Python subscriber.
 *
 *   csub ENDPOINT TOPIC COUNT [--idle S] [--timeout S] [--sample-every N] [--no-stamp]
 *        [--samples PATH]
 *
 * Connects a SUB (SNDHWM and RCVHWM 0, set before connecting) to a node's local PUB,
 * subscribes to the exact group TOPIC + NUL, and reads three-frame messages
 * (docs/PROTOCOL.md section 9.1): the topic, the header, the payload. The header is read
 * at its fixed 29-byte layout, 82 a3 "seq" cf <8 bytes BE> a5 "epoch" cf <8 bytes BE>;
 * any other header, topic or frame count is an error (counted, not decoded). Seq
 * continuity is checked per epoch (gaps and duplicates). Unless --no-stamp, the first
 * 8 bytes of each payload are the publisher's CLOCK_MONOTONIC in ns, little-endian
 * (Python's time.monotonic_ns()), and every Nth message's one-way latency is sampled.
 *
 * Stops after COUNT messages, after --idle seconds without a message once one arrived,
 * or --timeout seconds after it started. Prints `READY {}` once subscribed and
 * `RESULT {json}` at the end, one line each (the protocol of bench/peers/common.py);
 * --samples writes the latency samples there as native int64 ns (common.load_samples).
 * Built by bench/peers/csub.py with gcc against the system libzmq; exit 0 unless it
 * could not start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <zmq.h>

#define HEADER_SIZE 29
#define MAX_EPOCHS 64

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static int64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return (int64_t)v;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "csub: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(2);
}

/* The next frame into msg; 1 if one was read, 0 on the receive timeout. */
static int next_frame(void *sock, zmq_msg_t *msg) {
    for (;;) {
        if (zmq_msg_recv(msg, sock, 0) >= 0) return 1;
        if (zmq_errno() == EAGAIN) return 0;
        if (zmq_errno() != EINTR) die("zmq_msg_recv");
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr,
                "usage: csub ENDPOINT TOPIC COUNT [--idle S] [--timeout S] "
                "[--sample-every N] [--no-stamp] [--samples PATH]\n");
        return 2;
    }
    const char *endpoint = argv[1], *topic = argv[2];
    long long count = atoll(argv[3]);
    double idle_s = 3.0, timeout_s = 120.0;
    long long every = 1;
    int stamped = 1;
    const char *samples_path = NULL;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--idle") && i + 1 < argc) idle_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--sample-every") && i + 1 < argc) every = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--no-stamp")) stamped = 0;
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc) samples_path = argv[++i];
        else {
            fprintf(stderr, "csub: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (every < 1) every = 1;
    size_t topic_len = strlen(topic) + 1; /* with its NUL */
    char *group = malloc(topic_len);
    memcpy(group, topic, topic_len);

    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0, tick_ms = 50;
    if (zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_RCVTIMEO, &tick_ms, sizeof tick_ms))
        die("zmq_setsockopt");
    if (zmq_connect(sock, endpoint)) die("zmq_connect");
    /* Subscribed after connecting: the node sees the group as soon as the connection is up. */
    if (zmq_setsockopt(sock, ZMQ_SUBSCRIBE, group, topic_len)) die("ZMQ_SUBSCRIBE");
    printf("READY {\"endpoint\": \"%s\"}\n", endpoint);
    fflush(stdout);

    size_t cap = stamped ? (size_t)(count / every + 2) : 1;
    int64_t *samples = malloc(cap * sizeof *samples);
    size_t nsamples = 0;
    uint64_t epochs[MAX_EPOCHS], wants[MAX_EPOCHS];
    int nepochs = 0;
    long long received = 0, gaps = 0, duplicates = 0, errors = 0, next_sample = 0;
    int64_t started = now_ns(), first = 0, last = 0;
    int64_t deadline = started + (int64_t)(timeout_s * 1e9), idle = (int64_t)(idle_s * 1e9);
    zmq_msg_t frames[3];
    for (int i = 0; i < 3; i++) zmq_msg_init(&frames[i]);

    while (received < count) {
        if (!next_frame(sock, &frames[0])) {
            int64_t t = now_ns();
            if (t > deadline || (received && t - last > idle)) break;
            continue;
        }
        /* A message's frames arrive together: the rest is there, no timeout in between. */
        int n = 1;
        while (n < 3 && zmq_msg_more(&frames[n - 1])) {
            while (!next_frame(sock, &frames[n])) {
            }
            n++;
        }
        int64_t t = now_ns();
        last = t;
        if (!first) first = t;
        if (n != 3 || zmq_msg_more(&frames[2])) { /* not three frames: skip the rest */
            errors++;
            zmq_msg_t rest;
            zmq_msg_init(&rest);
            int more = zmq_msg_more(&frames[n - 1]);
            while (more) {
                while (!next_frame(sock, &rest)) {
                }
                more = zmq_msg_more(&rest);
            }
            zmq_msg_close(&rest);
            continue;
        }
        const unsigned char *h = zmq_msg_data(&frames[1]);
        if (zmq_msg_size(&frames[0]) != topic_len ||
            memcmp(zmq_msg_data(&frames[0]), group, topic_len) ||
            zmq_msg_size(&frames[1]) != HEADER_SIZE || h[0] != 0x82 || h[1] != 0xa3 ||
            memcmp(h + 2, "seq", 3) || h[5] != 0xcf || h[14] != 0xa5 ||
            memcmp(h + 15, "epoch", 5) || h[20] != 0xcf) {
            errors++;
            continue;
        }
        uint64_t seq = be64(h + 6), epoch = be64(h + 21);
        int e = 0;
        while (e < nepochs && epochs[e] != epoch) e++;
        if (e == nepochs) {
            if (nepochs == MAX_EPOCHS) e = MAX_EPOCHS - 1; /* reuse the last slot */
            else nepochs++;
            epochs[e] = epoch;
            wants[e] = seq; /* a topic may carry earlier runs: start where it is */
        }
        if (seq < wants[e]) {
            duplicates++;
        } else {
            gaps += (long long)(seq - wants[e]);
            wants[e] = seq + 1;
        }
        received++;
        if (stamped && received >= next_sample) {
            next_sample = received + every;
            if (zmq_msg_size(&frames[2]) >= 8 && nsamples < cap)
                samples[nsamples++] = t - le64(zmq_msg_data(&frames[2]));
            else if (zmq_msg_size(&frames[2]) < 8)
                errors++;
        }
    }
    int timed_out = received < count;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6;
    if (samples_path) {
        FILE *f = fopen(samples_path, "wb");
        if (f) {
            fwrite(samples, sizeof *samples, nsamples, f);
            fclose(f);
        }
    }
    /* Nearest-rank percentiles in microseconds, as bench/peers/common.percentiles_us. */
    qsort(samples, nsamples, sizeof *samples, cmp_i64);
    static const char *names[] = {"p50", "p90", "p99", "p99.9"};
    static const double qs[] = {50.0, 90.0, 99.0, 99.9};
    char lat[512];
    int off = snprintf(lat, sizeof lat, "{");
    for (int i = 0; i < 4; i++) {
        if (!nsamples) {
            off += snprintf(lat + off, sizeof lat - off, "\"%s\": null, ", names[i]);
            continue;
        }
        long long k = (long long)(qs[i] / 100 * nsamples + 0.5) - 1;
        if (k < 0) k = 0;
        if (k > (long long)nsamples - 1) k = nsamples - 1;
        off += snprintf(lat + off, sizeof lat - off, "\"%s\": %.3f, ", names[i], samples[k] / 1e3);
    }
    if (nsamples) snprintf(lat + off, sizeof lat - off, "\"max\": %.3f}", samples[nsamples - 1] / 1e3);
    else snprintf(lat + off, sizeof lat - off, "\"max\": null}");
    printf("RESULT {\"received\": %lld, \"expected\": %lld, \"first_ns\": %lld, \"last_ns\": %lld, "
           "\"timed_out\": %s, \"gaps\": %lld, \"duplicates\": %lld, \"errors\": %lld, "
           "\"epochs\": %d, \"latency_us\": %s, \"latency_samples\": %zu, \"cpu_s\": %.6f}\n",
           received, count, (long long)first, (long long)last, timed_out ? "true" : "false", gaps,
           duplicates, errors, nepochs, lat, nsamples, cpu_s);
    fflush(stdout);
    for (int i = 0; i < 3; i++) zmq_msg_close(&frames[i]);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(samples);
    free(group);
    return 0;
}

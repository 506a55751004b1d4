/* WebSocket clients for bench/gateway in C: the protocol of ws_clients.js at a few
 * microseconds per frame, so that the servers, not the clients, use the CPU.
 *
 *   ws_clients --urls ws://127.0.0.1:P/PATH,... --count N [--topic fan] [--join]
 *
 * Opens N connections over the URLs in turn (RFC 6455 handshake, no extensions); with
 * --join, joins the topic as a Phoenix V2 client and then sends a heartbeat every 30 s,
 * each socket at its own phase. Counts pushes, the latency from the "t" (CLOCK_MONOTONIC
 * ns at the sender) in each, and sockets the server closed; answers pings. Prints
 * "ready" once all are open. Stdin lines: "mark" starts a window, "report" prints it as
 * JSON, "quit" ends.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_NS 30000000000LL
#define BUF 65536

typedef struct {
    int fd;
    int open;
    size_t len; /* bytes waiting in buf */
    unsigned char buf[BUF];
    long long ref;
} conn_t;

static conn_t *conns;
static int count;
static long long frames, closed_count, last_ns;
static long long *lat;
static size_t lat_len, lat_cap;
static long long since_ns;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "ws_clients: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { /* a full send buffer: wait for room */
                struct timespec pause = {0, 100000};
                nanosleep(&pause, NULL);
                continue;
            }
            return; /* the server went away: its close is counted on read */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* A client frame: FIN, the opcode, masked with the key 0 (the payload is unchanged). */
static void send_frame(int fd, int opcode, const char *payload, size_t n) {
    unsigned char head[8];
    size_t h = 0;
    head[h++] = 0x80 | opcode;
    if (n < 126) {
        head[h++] = 0x80 | n;
    } else {
        head[h++] = 0x80 | 126;
        head[h++] = n >> 8;
        head[h++] = n & 0xff;
    }
    memset(head + h, 0, 4);
    h += 4;
    unsigned char frame[8 + 256];
    if (n > 256) return;
    memcpy(frame, head, h);
    memcpy(frame + h, payload, n);
    write_all(fd, frame, h + n);
}

static int open_one(const char *url, const char *topic, int join) {
    char host[64], path[256];
    int port;
    if (sscanf(url, "ws://%63[^:]:%d%255s", host, &port, path) != 3) {
        fprintf(stderr, "ws_clients: bad url %s\n", url);
        exit(1);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    char request[512];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, host, port);
    write_all(fd, request, (size_t)n);
    char answer[1024];
    size_t got = 0;
    while (got < sizeof answer - 1) { /* the response head, byte by byte: nothing after it */
        ssize_t r = read(fd, answer + got, 1);
        if (r <= 0) die("handshake");
        got += (size_t)r;
        if (got >= 4 && memcmp(answer + got - 4, "\r\n\r\n", 4) == 0) break;
    }
    answer[got] = 0;
    if (strncmp(answer, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "ws_clients: refused: %.80s\n", answer);
        exit(1);
    }
    if (join) {
        char frame[256];
        int m = snprintf(frame, sizeof frame, "[\"1\",\"1\",\"%s\",\"phx_join\",{}]", topic);
        send_frame(fd, 1, frame, (size_t)m);
        unsigned char head[2]; /* the join's reply: read whole before anything else */
        if (read(fd, head, 2) != 2) die("join");
        size_t len = head[1] & 0x7f;
        if (len == 126) {
            unsigned char ext[2];
            if (read(fd, ext, 2) != 2) die("join");
            len = ((size_t)ext[0] << 8) | ext[1];
        }
        char reply[65536];
        size_t have = 0;
        while (have < len) {
            ssize_t r = read(fd, reply + have, len - have);
            if (r <= 0) die("join reply");
            have += (size_t)r;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void on_text(const unsigned char *p, size_t n) {
    const unsigned char *at = memmem(p, n, "\"t\":", 4);
    if (!at) return; /* a heartbeat's reply */
    long long t = 0;
    for (at += 4; at < p + n && *at >= '0' && *at <= '9'; at++) t = t * 10 + (*at - '0');
    long long now = now_ns();
    frames++;
    last_ns = now;
    if (lat_len == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
        lat = realloc(lat, lat_cap * sizeof *lat);
        if (!lat) die("realloc");
    }
    lat[lat_len++] = now - t;
}

static void close_conn(conn_t *c) {
    if (!c->open) return;
    c->open = 0;
    closed_count++;
    close(c->fd);
}

/* Every whole frame in c->buf; a partial one waits for more. */
static void parse(conn_t *c) {
    size_t at = 0;
    while (c->len - at >= 2) {
        unsigned char *p = c->buf + at;
        int opcode = p[0] & 0x0f;
        size_t len = p[1] & 0x7f, head = 2;
        if (len == 126) {
            if (c->len - at < 4) break;
            len = ((size_t)p[2] << 8) | p[3];
            head = 4;
        } else if (len == 127) {
            if (c->len - at < 10) break;
            len = 0;
            for (int i = 2; i < 10; i++) len = (len << 8) | p[i];
            head = 10;
        }
        if (head + len > BUF) { /* larger than a push of this bench: not ours */
            close_conn(c);
            return;
        }
        if (c->len - at < head + len) break;
        if (opcode == 1 || opcode == 2) on_text(p + head, len);
        else if (opcode == 9) send_frame(c->fd, 10, (const char *)p + head, len);
        else if (opcode == 8) {
            close_conn(c);
            return;
        }
        at += head + len;
    }
    memmove(c->buf, c->buf + at, c->len - at);
    c->len -= at;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void report(void) {
    qsort(lat, lat_len, sizeof *lat, cmp);
    double seconds = (now_ns() - since_ns) / 1e9;
    printf("{\"frames\": %lld, \"closed\": %lld, \"last_ns\": \"%lld\", \"seconds\": %.3f",
           frames, closed_count, last_ns, seconds);
    if (lat_len) {
        size_t p50 = lat_len / 2, p99 = (size_t)(lat_len * 0.99);
        if (p99 >= lat_len) p99 = lat_len - 1;
        printf(", \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}\n", lat[p50] / 1e6,
               lat[p99] / 1e6, lat[lat_len - 1] / 1e6);
    } else {
        printf(", \"p50_ms\": null, \"p99_ms\": null, \"max_ms\": null}\n");
    }
    fflush(stdout);
}

int main(int argc, char **argv) {
    char *urls = NULL;
    const char *topic = "fan";
    int join = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--urls") && i + 1 < argc) urls = argv[++i];
        else if (!strcmp(argv[i], "--count") && i + 1 < argc) count = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--topic") && i + 1 < argc) topic = argv[++i];
        else if (!strcmp(argv[i], "--join")) join = 1;
    }
    if (!urls || count <= 0) {
        fprintf(stderr, "usage: ws_clients --urls URL,... --count N [--topic T] [--join]\n");
        return 2;
    }
    char *list[64];
    int nurls = 0;
    for (char *u = strtok(urls, ","); u && nurls < 64; u = strtok(NULL, ",")) list[nurls++] = u;
    conns = calloc((size_t)count, sizeof *conns);
    if (!conns) die("calloc");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    for (int i = 0; i < count; i++) {
        conns[i].fd = open_one(list[i % nurls], topic, join);
        conns[i].open = 1;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    ev.data.u32 = UINT32_MAX;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    puts("ready");
    fflush(stdout);
    since_ns = now_ns();
    long long beat_every = HEARTBEAT_NS / count, next_beat = now_ns() + beat_every;
    int beat = 0;
    char line[256];
    size_t line_len = 0;
    struct epoll_event ready[256];
    for (;;) {
        int wait_ms = join ? (int)((next_beat - now_ns()) / 1000000) : 100;
        if (wait_ms < 0) wait_ms = 0;
        if (wait_ms > 100) wait_ms = 100;
        int n = epoll_wait(ep, ready, 256, wait_ms);
        for (int k = 0; k < n; k++) {
            uint32_t i = ready[k].data.u32;
            if (i == UINT32_MAX) { /* a command */
                ssize_t r = read(0, line + line_len, sizeof line - 1 - line_len);
                if (r <= 0) return 0;
                line_len += (size_t)r;
                char *nl;
                while ((nl = memchr(line, '\n', line_len))) {
                    *nl = 0;
                    if (!strcmp(line, "mark")) {
                        frames = 0;
                        last_ns = 0;
                        lat_len = 0;
                        since_ns = now_ns();
                    } else if (!strcmp(line, "report")) {
                        report();
                    } else if (!strcmp(line, "quit")) {
                        return 0;
                    }
                    size_t used = (size_t)(nl - line) + 1;
                    memmove(line, nl + 1, line_len - used);
                    line_len -= used;
                }
                continue;
            }
            conn_t *c = &conns[i];
            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len);
                if (r > 0) {
                    c->len += (size_t)r;
                    parse(c);
                    if (!c->open) break;
                    continue;
                }
                if (r == 0 || (errno != EAGAIN && errno != EINTR)) close_conn(c);
                break;
            }
        }
        if (join) { /* one socket's heartbeat every 30 s / count: each at its own phase */
            long long now = now_ns();
            while (now >= next_beat) {
                conn_t *c = &conns[beat];
                beat = (beat + 1) % count;
                next_beat += beat_every;
                if (!c->open) continue;
                char hb[96];
                int m = snprintf(hb, sizeof hb, "[null,\"%lld\",\"phoenix\",\"heartbeat\",{}]",
                                 ++c->ref);
                send_frame(c->fd, 1, hb, (size_t)m);
            }
        }
    }
}

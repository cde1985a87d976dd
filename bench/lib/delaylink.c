/*
 * delaylink — a userspace "slow wire" between two TUN devices.
 *
 * Part of synmux's bench harness (bench/lib/netns.mjs compiles and drives it).
 * The kernel on our machines has no netem qdisc, so the delay is added here:
 * every packet read from one TUN device is held for the one-way delay and then
 * written, in order, to the other TUN device.  Optionally a per-direction rate
 * limit (serialisation at N bytes/s) with a drop-tail queue limit is applied
 * before the propagation delay, like a real bottleneck link.
 *
 * Usage:
 *   delaylink [options]
 *     --ns-a PATH      open device A inside this netns (e.g. /run/netns/foo);
 *                      default: the current netns
 *     --ns-b PATH      same for device B
 *     --dev-a NAME     name of device A (default dla0)
 *     --dev-b NAME     name of device B (default dlb0)
 *     --mtu N          MTU of both devices (default 1500)
 *     --delay-us N     one-way delay in microseconds, both directions
 *                      (default 25000 = 50 ms RTT)
 *     --rate BPS       rate limit in bytes/s, both directions (0 = none)
 *     --queue BYTES    drop-tail limit of the bottleneck backlog when rate>0
 *                      (default 0 = unlimited up to the hard memory cap)
 *     --offload        use IFF_VNET_HDR + TSO/GSO pass-through (large packets
 *                      cross the forwarder as one unit: much higher
 *                      throughput, same delay semantics)
 *
 * The devices are created (non-persistent) and brought up with the given MTU;
 * `lo` in each netns is brought up too.  Addresses and routes are the
 * caller's job (`ip -n NS addr add ...`).  Because the devices are not
 * persistent they vanish as soon as this process exits, whatever the cause.
 *
 * Control (stdin, one command per line; every command is answered with one
 * stdout line "ok <command...>" or "err <reason>"):
 *   drop on | drop off      blackhole: silently drop all packets, both
 *                           directions, including those already in flight
 *   delay MS                one-way delay in milliseconds (float)
 *   rtt MS                  round-trip delay (one-way = MS/2)
 *   rate BPS [BPS_B2A]      rate limit in bytes/s (0 = unlimited); with two
 *                           numbers the first is A->B, the second B->A
 *   queue BYTES             drop-tail bottleneck backlog limit (0 = none)
 *   stats                   answered with "stats {json}" (then no "ok")
 *   quit                    exit
 * Signals: SIGUSR1 = blackhole on, SIGUSR2 = blackhole off (idempotent, not a
 * toggle).  SIGTERM / SIGINT / SIGHUP, EOF on stdin, or death of the parent
 * process make it exit.
 * On startup it prints exactly one line "ready" once both devices are up.
 *
 * Idle behaviour: with no packet queued it sleeps in ppoll() without timeout,
 * so it uses no CPU.  With packets queued it sleeps until the next release
 * time (monotonic clock, nanosecond ppoll timeout).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PKT (65536 + 256)            /* GSO packets are <= 64 KiB + vnet hdr */
#define HARD_CAP_BYTES (256u << 20)     /* never hold more than this per direction */
#define EARLY_NS 50000                  /* release up to 50 us early to batch wakeups */
#define READ_BATCH 256                  /* packets read per readiness event */

struct pkt {
    int64_t release;
    uint32_t len;
    unsigned char data[];
};

struct dir {
    const char *name;
    int in_fd, out_fd;
    struct pkt **q;                     /* ring of pending packets */
    size_t cap, head, count, bytes;
    int64_t delay_ns;
    double rate;                        /* bytes per second, 0 = unlimited */
    int64_t link_free;                  /* when the rate-limited serialiser is idle */
    int64_t last_release;               /* keeps releases monotonic (order kept) */
    uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
    uint64_t drop_blackhole, drop_queue, drop_write;
};

static int g_blackhole;
static size_t g_queue_limit;            /* bottleneck backlog limit in bytes, 0 = none */
static struct dir g_dir[2];

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "delaylink: ");
    vfprintf(stderr, fmt, ap);
    if (errno) fprintf(stderr, ": %s", strerror(errno));
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void out(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(1, buf + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE) exit(0);  /* controller went away */
            return;
        }
        off += w;
    }
}

static void set_up(int sock, const char *ifname, int mtu) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (mtu > 0) {
        ifr.ifr_mtu = mtu;
        if (ioctl(sock, SIOCSIFMTU, &ifr) < 0) die("SIOCSIFMTU %s %d", ifname, mtu);
    }
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) die("SIOCGIFFLAGS %s", ifname);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) die("SIOCSIFFLAGS %s", ifname);
}

/* Enter netns `nspath` (if given), create TUN `ifname` there, bring it and lo up. */
static int open_tun(const char *nspath, const char *ifname, int mtu, int offload) {
    if (nspath) {
        int nfd = open(nspath, O_RDONLY | O_CLOEXEC);
        if (nfd < 0) die("open %s", nspath);
        if (setns(nfd, CLONE_NEWNET) < 0) die("setns %s", nspath);
        close(nfd);
    }
    /* The TUN socket belongs to the netns current at open() time. */
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) die("open /dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF %s", ifname);
    if (offload) {
        int hs = sizeof(struct virtio_net_hdr);
        if (ioctl(fd, TUNSETVNETHDRSZ, &hs) < 0) die("TUNSETVNETHDRSZ");
        unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        if (ioctl(fd, TUNSETOFFLOAD, off) < 0) die("TUNSETOFFLOAD");
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    set_up(s, "lo", 0);
    set_up(s, ifr.ifr_name, mtu);
    close(s);
    return fd;
}

static void q_push(struct dir *d, struct pkt *p) {
    if (d->count == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 1024;
        struct pkt **nq = malloc(ncap * sizeof *nq);
        if (!nq) die("out of memory");
        for (size_t i = 0; i < d->count; i++) nq[i] = d->q[(d->head + i) % d->cap];
        free(d->q);
        d->q = nq;
        d->cap = ncap;
        d->head = 0;
    }
    d->q[(d->head + d->count) % d->cap] = p;
    d->count++;
    d->bytes += p->len;
}

static struct pkt *q_pop(struct dir *d) {
    struct pkt *p = d->q[d->head];
    d->head = (d->head + 1) % d->cap;
    d->count--;
    d->bytes -= p->len;
    return p;
}

static void q_flush(struct dir *d) {
    while (d->count) {
        free(q_pop(d));
        d->drop_blackhole++;
    }
    d->link_free = 0;
}

static unsigned char g_buf[MAX_PKT];

static void ingest(struct dir *d) {
    for (int i = 0; i < READ_BATCH; i++) {
        ssize_t n = read(d->in_fd, g_buf, sizeof g_buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            die("read %s", d->name);
        }
        if (n == 0) return;
        d->rx_pkts++;
        d->rx_bytes += n;
        if (g_blackhole) { d->drop_blackhole++; continue; }
        if (d->bytes + n > HARD_CAP_BYTES) { d->drop_queue++; continue; }
        int64_t now = now_ns();
        int64_t release;
        if (d->rate > 0) {
            int64_t start = d->link_free > now ? d->link_free : now;
            if (g_queue_limit) {
                double backlog = (double)(start - now) * d->rate / 1e9;
                if (backlog + n > (double)g_queue_limit) { d->drop_queue++; continue; }
            }
            d->link_free = start + (int64_t)((double)n * 1e9 / d->rate);
            release = d->link_free + d->delay_ns;
        } else {
            release = now + d->delay_ns;
        }
        if (release < d->last_release) release = d->last_release;
        d->last_release = release;
        struct pkt *p = malloc(sizeof *p + n);
        if (!p) { d->drop_queue++; continue; }
        p->release = release;
        p->len = n;
        memcpy(p->data, g_buf, n);
        q_push(d, p);
    }
}

static void release_due(struct dir *d, int64_t now) {
    while (d->count && d->q[d->head]->release <= now + EARLY_NS) {
        struct pkt *p = q_pop(d);
        ssize_t w;
        do w = write(d->out_fd, p->data, p->len); while (w < 0 && errno == EINTR);
        if (w < 0) d->drop_write++;
        else { d->tx_pkts++; d->tx_bytes += p->len; }
        free(p);
    }
}

static void print_stats(void) {
    char b[2][512];
    for (int i = 0; i < 2; i++) {
        struct dir *d = &g_dir[i];
        snprintf(b[i], sizeof b[i],
                 "{\"rxPackets\":%llu,\"rxBytes\":%llu,\"txPackets\":%llu,\"txBytes\":%llu,"
                 "\"dropBlackhole\":%llu,\"dropQueue\":%llu,\"dropWrite\":%llu,"
                 "\"queued\":%zu,\"queuedBytes\":%zu,\"delayUs\":%.3f,\"rateBps\":%.0f}",
                 (unsigned long long)d->rx_pkts, (unsigned long long)d->rx_bytes,
                 (unsigned long long)d->tx_pkts, (unsigned long long)d->tx_bytes,
                 (unsigned long long)d->drop_blackhole, (unsigned long long)d->drop_queue,
                 (unsigned long long)d->drop_write, d->count, d->bytes,
                 d->delay_ns / 1e3, d->rate);
    }
    out("stats {\"blackhole\":%s,\"queueLimit\":%zu,\"aToB\":%s,\"bToA\":%s}",
        g_blackhole ? "true" : "false", g_queue_limit, b[0], b[1]);
}

static void set_blackhole(int on) {
    g_blackhole = on;
    if (on) { q_flush(&g_dir[0]); q_flush(&g_dir[1]); }
}

/* Returns 1 if the process should exit. */
static int command(char *line) {
    char *argv[4] = {0};
    int argc = 0;
    for (char *tok = strtok(line, " \t\r"); tok && argc < 4; tok = strtok(NULL, " \t\r"))
        argv[argc++] = tok;
    if (argc == 0) return 0;
    char *end;
    if (!strcmp(argv[0], "drop") || !strcmp(argv[0], "blackhole")) {
        if (argc == 2 && (!strcmp(argv[1], "on") || !strcmp(argv[1], "1"))) set_blackhole(1);
        else if (argc == 2 && (!strcmp(argv[1], "off") || !strcmp(argv[1], "0"))) set_blackhole(0);
        else { out("err usage: drop on|off"); return 0; }
        out("ok drop %s", g_blackhole ? "on" : "off");
    } else if (!strcmp(argv[0], "delay") || !strcmp(argv[0], "rtt")) {
        double ms = argc == 2 ? strtod(argv[1], &end) : -1;
        if (argc != 2 || *end || ms < 0 || ms > 600000) { out("err usage: %s MS", argv[0]); return 0; }
        if (!strcmp(argv[0], "rtt")) ms /= 2;
        g_dir[0].delay_ns = g_dir[1].delay_ns = (int64_t)(ms * 1e6);
        out("ok delay %.3f", ms);
    } else if (!strcmp(argv[0], "rate")) {
        double r0 = argc >= 2 ? strtod(argv[1], &end) : -1;
        if (argc < 2 || *end || r0 < 0) { out("err usage: rate BPS [BPS_B2A]"); return 0; }
        double r1 = r0;
        if (argc >= 3) {
            r1 = strtod(argv[2], &end);
            if (*end || r1 < 0) { out("err usage: rate BPS [BPS_B2A]"); return 0; }
        }
        g_dir[0].rate = r0;
        g_dir[1].rate = r1;
        g_dir[0].link_free = g_dir[1].link_free = 0;
        out("ok rate %.0f %.0f", r0, r1);
    } else if (!strcmp(argv[0], "queue")) {
        double q = argc == 2 ? strtod(argv[1], &end) : -1;
        if (argc != 2 || *end || q < 0) { out("err usage: queue BYTES"); return 0; }
        g_queue_limit = (size_t)q;
        out("ok queue %zu", g_queue_limit);
    } else if (!strcmp(argv[0], "stats")) {
        print_stats();
    } else if (!strcmp(argv[0], "quit") || !strcmp(argv[0], "exit")) {
        out("ok quit");
        return 1;
    } else {
        out("err unknown command %s", argv[0]);
    }
    return 0;
}

static char g_line[4096];
static size_t g_line_len;

/* Returns 1 on EOF/quit. */
static int read_control(void) {
    char buf[4096];
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0) return (errno == EINTR || errno == EAGAIN) ? 0 : 1;
    if (n == 0) return 1;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            g_line[g_line_len] = 0;
            g_line_len = 0;
            if (command(g_line)) return 1;
        } else if (g_line_len < sizeof g_line - 1) {
            g_line[g_line_len++] = buf[i];
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *ns_a = NULL, *ns_b = NULL, *dev_a = "dla0", *dev_b = "dlb0";
    int mtu = 1500, offload = 0;
    double delay_us = 25000, rate = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--offload")) { offload = 1; continue; }
        if (!v) { fprintf(stderr, "delaylink: missing value for %s\n", a); return 2; }
        if (!strcmp(a, "--ns-a")) ns_a = v;
        else if (!strcmp(a, "--ns-b")) ns_b = v;
        else if (!strcmp(a, "--dev-a")) dev_a = v;
        else if (!strcmp(a, "--dev-b")) dev_b = v;
        else if (!strcmp(a, "--mtu")) mtu = atoi(v);
        else if (!strcmp(a, "--delay-us")) delay_us = atof(v);
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--queue")) g_queue_limit = (size_t)atof(v);
        else { fprintf(stderr, "delaylink: unknown option %s\n", a); return 2; }
        i++;
    }
    if (!strcmp(dev_a, dev_b) && (!ns_a || !ns_b || !strcmp(ns_a, ns_b))) {
        fprintf(stderr, "delaylink: devices in the same netns need different names\n");
        return 2;
    }

    /* Never outlive the controller: EOF on stdin, or parent death. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    prctl(PR_SET_TIMERSLACK, 1UL);      /* wake up on time, not up to 50 us late */
    signal(SIGPIPE, SIG_IGN);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");

    int fd_a = open_tun(ns_a, dev_a, mtu, offload);
    int fd_b = open_tun(ns_b, dev_b, mtu, offload);

    int64_t d = (int64_t)(delay_us * 1000);
    g_dir[0] = (struct dir){ .name = "a->b", .in_fd = fd_a, .out_fd = fd_b, .delay_ns = d, .rate = rate };
    g_dir[1] = (struct dir){ .name = "b->a", .in_fd = fd_b, .out_fd = fd_a, .delay_ns = d, .rate = rate };

    out("ready");

    struct pollfd pfd[4] = {
        { .fd = fd_a, .events = POLLIN },
        { .fd = fd_b, .events = POLLIN },
        { .fd = sfd, .events = POLLIN },
        { .fd = 0, .events = POLLIN },
    };
    int nfds = 4;
    for (;;) {
        int64_t now = now_ns();
        release_due(&g_dir[0], now);
        release_due(&g_dir[1], now);

        int64_t next = INT64_MAX;
        for (int i = 0; i < 2; i++)
            if (g_dir[i].count && g_dir[i].q[g_dir[i].head]->release < next)
                next = g_dir[i].q[g_dir[i].head]->release;
        struct timespec ts, *tsp = NULL;
        if (next != INT64_MAX) {
            int64_t wait = next - now_ns();
            if (wait < 0) wait = 0;
            ts.tv_sec = wait / 1000000000LL;
            ts.tv_nsec = wait % 1000000000LL;
            tsp = &ts;
        }
        int r = ppoll(pfd, nfds, tsp, NULL);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("ppoll");
        }
        if (r == 0) continue;
        if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) die("device %s gone", dev_a);
        if (pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL)) die("device %s gone", dev_b);
        if (pfd[0].revents & POLLIN) ingest(&g_dir[0]);
        if (pfd[1].revents & POLLIN) ingest(&g_dir[1]);
        if (pfd[2].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGUSR1) set_blackhole(1);
                else if (si.ssi_signo == SIGUSR2) set_blackhole(0);
                else return 0;  /* SIGTERM, SIGINT, SIGHUP */
            }
        }
        if (pfd[3].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (read_control()) return 0;
        }
        if (pfd[3].revents & POLLNVAL) nfds = 3;  /* no stdin at all: signals only */
    }
}

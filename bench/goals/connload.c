// bench/goals connload: the load generator and the target of the
// new-connection rows, in C (one epoll loop each) so that they cost a small
// fraction of what the tunnels under test cost on the same two cores.
//
//   connload target HOST REQ RESP
//       two listeners on HOST, port 0: "exchange" reads REQ bytes, writes RESP
//       bytes and closes; "hold" answers its first bytes with one byte and
//       keeps the connection. Prints "ready <exchangePort> <holdPort>".
//   connload http HOST BODY
//       an HTTP/1.1 origin on HOST, port 0: every request (GET/HEAD, no
//       body) is answered 200 with BODY bytes, keep-alive unless the request
//       says "Connection: close" or is HTTP/1.0 without keep-alive; pipelined
//       requests answered in order. Prints "ready <port>".
//   connload load HOST PORT CONCURRENCY SECONDS REQ RESP
//       CONCURRENCY connections in flight for SECONDS (at least one each):
//       connect, write REQ bytes, read until the far side closes, close.
//       Prints one JSON line: completed, errors, short (closed with a
//       response of the wrong size), seconds, perSecond, latencyMs p50/p99.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXEV 256

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* reads everything readable on fd, adding the byte count to *got; returns 0
   when it would block, 1 at end of stream, or -errno */
static int drain(int fd, long *got) {
  static char buf[65536];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r > 0) {
      *got += r;
      continue;
    }
    if (r == 0) return 1;
    if (errno == EINTR) continue;
    return errno == EAGAIN ? 0 : -errno;
  }
}

static struct sockaddr_in addr_of(const char *host, int port) {
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "bad IPv4 address %s\n", host);
    exit(2);
  }
  return a;
}

/* ---------------------------------------------------------------- target */

enum { L_EXCHANGE = 1, L_HOLD = 2 };
struct conn {
  int fd;
  int kind;      /* L_EXCHANGE or L_HOLD */
  int listening; /* a listener of that kind, or an accepted connection */
  long got;
  int answered;
};

static int listen_on(const char *host, int ep, int kind) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = addr_of(host, 0);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(fd, 4096) < 0) die("listen");
  struct conn *l = calloc(1, sizeof *l);
  l->fd = fd;
  l->kind = kind;
  l->listening = 1;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  return fd;
}

static int port_of(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

/* accepts every pending connection on listener `l` into epoll set `ep`, each
   with a zeroed state of `size` bytes that starts with a struct conn */
static void accept_all(int ep, const struct conn *l, size_t size) {
  for (;;) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    nodelay(fd);
    struct conn *a = calloc(1, size);
    a->fd = fd;
    a->kind = l->kind;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = a};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      free(a);
    }
  }
}

/* The server loop of target and http: accepts on the listeners in `ep`
   (connection state of `size` bytes) and calls `readable` for a readable
   connection; it returns 1 to close it. Never returns. */
static void serve(int ep, size_t size, int (*readable)(struct conn *)) {
  struct epoll_event evs[MAXEV];
  for (;;) {
    int n = epoll_wait(ep, evs, MAXEV, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c->listening) {
        accept_all(ep, c, size);
      } else if (readable(c)) {
        close(c->fd); /* also leaves the epoll set */
        free(c);
      }
    }
  }
}

static long T_req, T_resp;
static char *T_out;

static int target_readable(struct conn *c) {
  int closed = drain(c->fd, &c->got) != 0;
  if (c->kind == L_EXCHANGE && !c->answered && c->got >= T_req) {
    c->answered = 1;
    /* RESP is small (a socket buffer takes it whole); a short write just ends the exchange short */
    if (write(c->fd, T_out, T_resp) < 0) { /* the client sees a short response */ }
    closed = 1;
  } else if (c->kind == L_HOLD && !c->answered && c->got > 0) {
    c->answered = 1;
    if (write(c->fd, "h", 1) < 0) closed = 1;
  }
  return closed;
}

static int target(const char *host, long req, long resp) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  int lx = listen_on(host, ep, L_EXCHANGE);
  int lh = listen_on(host, ep, L_HOLD);
  T_req = req;
  T_resp = resp;
  T_out = malloc(resp > 0 ? resp : 1);
  memset(T_out, 'b', resp > 0 ? resp : 1);
  printf("ready %d %d\n", port_of(lx), port_of(lh));
  fflush(stdout);
  serve(ep, sizeof(struct conn), target_readable);
  return 0;
}

/* ------------------------------------------------------------------ http */

struct hconn {
  struct conn base;
  char in[16384];
  size_t len;
};

static int ci_find(const char *hay, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= n; i++)
    if (!strncasecmp(hay + i, needle, m)) return 1;
  return 0;
}

static char *H_keep, *H_close; /* the two responses: keep-alive, Connection: close */
static size_t H_keep_len, H_close_len;

static int http_readable(struct conn *c) {
  struct hconn *h = (struct hconn *)c;
  int closed = 0;
  for (;;) {
    if (h->len == sizeof h->in) return 1; /* a head larger than 16 KiB: not ours */
    ssize_t r = read(c->fd, h->in + h->len, sizeof h->in - h->len);
    if (r > 0) {
      h->len += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 || errno != EAGAIN) closed = 1;
    break;
  }
  /* answer every complete request head in the buffer, in order */
  for (;;) {
    char *end = memmem(h->in, h->len, "\r\n\r\n", 4);
    if (!end) break;
    size_t n = end + 4 - h->in;
    int http10 = memmem(h->in, n, "HTTP/1.0\r\n", 10) != NULL;
    int close_it = ci_find(h->in, n, "connection: close") || (http10 && !ci_find(h->in, n, "connection: keep-alive"));
    const char *out = close_it ? H_close : H_keep;
    size_t olen = close_it ? H_close_len : H_keep_len;
    /* BODY is small (a socket buffer takes it whole); a short write ends the connection */
    if (write(c->fd, out, olen) != (ssize_t)olen) close_it = 1;
    memmove(h->in, h->in + n, h->len - n);
    h->len -= n;
    if (close_it) return 1;
  }
  return closed;
}

static int http_origin(const char *host, long body) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  int lfd = listen_on(host, ep, L_EXCHANGE);
  char head[256];
  int hlen = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %ld\r\nCache-Control: no-store\r\n", body);
  H_keep = malloc(hlen + 32 + body); /* + the Connection header */
  H_close = malloc(hlen + 32 + body);
  H_keep_len = sprintf(H_keep, "%sConnection: keep-alive\r\n\r\n", head);
  H_close_len = sprintf(H_close, "%sConnection: close\r\n\r\n", head);
  memset(H_keep + H_keep_len, 'c', body);
  memset(H_close + H_close_len, 'c', body);
  H_keep_len += body;
  H_close_len += body;
  printf("ready %d\n", port_of(lfd));
  fflush(stdout);
  serve(ep, sizeof(struct hconn), http_readable);
  return 0;
}

/* ------------------------------------------------------------------ load */

struct client {
  int fd;
  int writing;
  long got;
  double t0;
};

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* the load generator's state (one loop, file scope so the helpers are plain functions) */
static struct sockaddr_in L_to;
static int L_ep;
static char *L_payload;
static long L_req, L_resp;
static double *L_lat;
static size_t L_latcap = 4u << 20, L_nlat;
static long L_completed, L_errors, L_short;
static char L_first_error[200];
static struct client *L_cs;
static double L_end;
static int L_active;

static void note_error(const char *m) {
  if (!L_first_error[0]) snprintf(L_first_error, sizeof L_first_error, "%s", m);
}

/* (re)starts client slot i */
static void start_one(int i) {
  struct client *c = &L_cs[i];
  while (L_errors + L_short < 1000) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket");
    nodelay(c->fd);
    c->got = 0;
    c->writing = 1;
    c->t0 = now_ms();
    if (connect(c->fd, (struct sockaddr *)&L_to, sizeof L_to) < 0 && errno != EINPROGRESS) {
      char m[160];
      snprintf(m, sizeof m, "connect: %s", strerror(errno));
      note_error(m);
      L_errors++;
      close(c->fd);
      continue;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = i};
    if (epoll_ctl(L_ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    L_active++;
    return;
  }
}

/* ends slot i's connection: ok (full response), short, or an error; starts the next while time is left */
static void finish(int i, int ok, const char *err) {
  struct client *c = &L_cs[i];
  close(c->fd);
  L_active--;
  if (err) {
    L_errors++;
    note_error(err);
  } else if (!ok) {
    L_short++;
    char m[160];
    snprintf(m, sizeof m, "response of %ld bytes, not %ld", c->got, L_resp);
    note_error(m);
  } else {
    L_completed++;
    if (L_nlat < L_latcap) L_lat[L_nlat++] = now_ms() - c->t0;
  }
  if (now_ms() < L_end) start_one(i);
}

static int load(const char *host, int port, int conc, double seconds, long req, long resp) {
  L_to = addr_of(host, port);
  L_ep = epoll_create1(EPOLL_CLOEXEC);
  if (L_ep < 0) die("epoll_create1");
  L_req = req;
  L_resp = resp;
  L_payload = malloc(req > 0 ? req : 1);
  memset(L_payload, 'a', req > 0 ? req : 1);
  L_lat = malloc(L_latcap * sizeof *L_lat);
  L_cs = calloc(conc, sizeof *L_cs);
  double start = now_ms();
  L_end = start + seconds * 1000;
  int ep = L_ep;
  struct client *cs = L_cs;
  char *payload = L_payload;

  for (int i = 0; i < conc; i++) start_one(i);
  struct epoll_event evs[MAXEV];
  while (L_active > 0) {
    int n = epoll_wait(ep, evs, MAXEV, 1000);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int k = 0; k < n; k++) {
      int i = evs[k].data.u32;
      struct client *c = &cs[i];
      if (c->writing) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
          char m[160];
          snprintf(m, sizeof m, "connect: %s", strerror(err));
          finish(i, 0, m);
          continue;
        }
        ssize_t w = write(c->fd, payload, req);
        if (w != req) {
          finish(i, 0, w < 0 ? strerror(errno) : "short write");
          continue;
        }
        c->writing = 0;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        continue;
      }
      int r = drain(c->fd, &c->got);
      if (r < 0) finish(i, 0, strerror(-r));
      else if (r == 1) finish(i, c->got == resp, NULL);
    }
  }
  double elapsed = now_ms() - start;
  qsort(L_lat, L_nlat, sizeof *L_lat, cmpd);
  double p50 = L_nlat ? L_lat[(size_t)(0.5 * L_nlat)] : -1, p99 = L_nlat ? L_lat[(size_t)(0.99 * L_nlat)] : -1;
  printf("{\"completed\":%ld,\"errors\":%ld,\"short\":%ld,\"firstError\":", L_completed, L_errors, L_short);
  if (L_first_error[0]) {
    putchar('"');
    for (char *p = L_first_error; *p; p++) if (*p != '"' && *p != '\\') putchar(*p);
    putchar('"');
  } else {
    fputs("null", stdout);
  }
  printf(",\"seconds\":%.3f,\"perSecond\":%.0f,\"latencyMs\":{\"p50\":%.3f,\"p99\":%.3f}}\n", elapsed / 1000, L_completed / (elapsed / 1000), p50, p99);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && !strcmp(argv[1], "target")) return target(argv[2], atol(argv[3]), atol(argv[4]));
  if (argc == 4 && !strcmp(argv[1], "http")) return http_origin(argv[2], atol(argv[3]));
  if (argc == 8 && !strcmp(argv[1], "load")) return load(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), atol(argv[6]), atol(argv[7]));
  fprintf(stderr, "usage: connload target HOST REQ RESP | connload http HOST BODY | connload load HOST PORT CONCURRENCY SECONDS REQ RESP\n");
  return 2;
}

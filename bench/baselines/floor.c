/*
 * The floor: what serving the bench's clients costs when nothing but the kernel is in the way.
 *
 * It answers GET /ace/getstream?id=<40 hex> with the response acemux gives (same status line and
 * headers, close-delimited body, TCP_NODELAY), and every batch period writes each client of a
 * channel the bytes that channel's bitrate makes due: the write sizes acemux's egress makes on
 * its 30 ms clock. There is no upstream: a channel's packets are generated here, in the
 * simulator's --synthetic format (PID 0x1FF0, uint32 BE sequence at bytes 4..8, float64 BE send
 * time in µs of CLOCK_MONOTONIC at 8..16, a PAT and a PMT every 100 ms of stream), so the bench's
 * load client measures latency, alignment and gaps exactly as for a proxy.
 *
 * One thread, epoll, non-blocking sockets. A client that cannot take a whole batch keeps the rest
 * (at most one batch) and skips the batches that come while it has not written it: a stalled
 * client costs nothing and delays nobody. With --bitrate 0 every channel makes a 64 KiB batch per
 * loop for whoever can take it (the bench's unthrottled scenario).
 *
 *   cc -O2 -o floor bench/baselines/floor.c
 *   floor --port 8000 [--host 127.0.0.1] [--bitrate 4000000] [--batch-ms 30]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TS 188
#define DATA_PID 0x1ff0
#define PMT_PID 0x1000
#define REQ_MAX 8192
#define UNTHROTTLED_BATCH (348 * TS) /* 64 KiB of packets */

typedef struct channel channel;
typedef struct client {
  int fd;
  int streaming; /* request answered, body flowing */
  channel *ch;
  struct client *next; /* in ch->clients */
  char req[REQ_MAX];
  size_t req_len;
  unsigned char *pending; /* unwritten rest of one batch */
  size_t pending_len, pending_cap;
  int want_out; /* EPOLLOUT registered */
} client;

struct channel {
  char id[41];
  client *clients;
  channel *next;
  double t0_ms;
  uint64_t sent; /* bytes generated since t0 */
  uint32_t seq;
  unsigned cc_data, cc_pat, cc_pmt, phase;
  unsigned char *batch;
  size_t batch_cap;
};

static int ep;
static long bitrate = 4000000;
static int batch_ms = 30;
static unsigned cycle; /* packets per 100 ms of stream: PAT, PMT, then data */
static channel *channels;
static unsigned char pat[TS], pmt[TS], data_tpl[TS];

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint32_t crc32_mpeg(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffff;
  for (size_t i = 0; i < n; i++) {
    c ^= (uint32_t)p[i] << 24;
    for (int k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
  }
  return c;
}

/* A PSI packet: header, pointer field 0, the section, its CRC, 0xff stuffing. */
static void psi_packet(unsigned char *p, unsigned pid, const unsigned char *sec, size_t n) {
  memset(p, 0xff, TS);
  p[0] = 0x47;
  p[1] = 0x40 | (pid >> 8);
  p[2] = pid & 0xff;
  p[3] = 0x10;
  p[4] = 0;
  memcpy(p + 5, sec, n);
  uint32_t crc = crc32_mpeg(sec, n);
  p[5 + n] = crc >> 24;
  p[6 + n] = crc >> 16;
  p[7 + n] = crc >> 8;
  p[8 + n] = crc;
}

static void templates(void) {
  const unsigned char pat_sec[] = {0x00, 0xb0, 13, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xe0 | (PMT_PID >> 8), PMT_PID & 0xff};
  /* program 1: PCR PID none (0x1fff), one private-data stream on DATA_PID */
  const unsigned char pmt_sec[] = {0x02, 0xb0, 18, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xff, 0xff, 0xf0, 0x00,
                                   0x06, 0xe0 | (DATA_PID >> 8), DATA_PID & 0xff, 0xf0, 0x00};
  psi_packet(pat, 0, pat_sec, sizeof pat_sec);
  psi_packet(pmt, PMT_PID, pmt_sec, sizeof pmt_sec);
  memset(data_tpl, 0xa5, TS);
  data_tpl[0] = 0x47;
  data_tpl[1] = DATA_PID >> 8;
  data_tpl[2] = DATA_PID & 0xff;
  data_tpl[3] = 0x10;
}

static void put_double_be(unsigned char *p, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  for (int i = 7; i >= 0; i--, u >>= 8) p[i] = u & 0xff;
}

/* Generate n packets of channel ch into its batch buffer, stamped with the current time. */
static unsigned char *generate(channel *ch, size_t n) {
  if (n * TS > ch->batch_cap) {
    ch->batch_cap = n * TS;
    ch->batch = realloc(ch->batch, ch->batch_cap);
    if (!ch->batch) abort();
  }
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  double us = t.tv_sec * 1e6 + t.tv_nsec / 1e3;
  unsigned char *p = ch->batch;
  for (size_t i = 0; i < n; i++, p += TS) {
    if (ch->phase == 0) {
      memcpy(p, pat, TS);
      p[3] = 0x10 | ch->cc_pat;
      ch->cc_pat = (ch->cc_pat + 1) & 15;
    } else if (ch->phase == 1) {
      memcpy(p, pmt, TS);
      p[3] = 0x10 | ch->cc_pmt;
      ch->cc_pmt = (ch->cc_pmt + 1) & 15;
    } else {
      memcpy(p, data_tpl, TS);
      p[3] = 0x10 | ch->cc_data;
      ch->cc_data = (ch->cc_data + 1) & 15;
      p[4] = ch->seq >> 24;
      p[5] = ch->seq >> 16;
      p[6] = ch->seq >> 8;
      p[7] = ch->seq;
      ch->seq++;
      put_double_be(p + 8, us);
    }
    if (++ch->phase == cycle) ch->phase = 0;
  }
  ch->sent += n * TS;
  return ch->batch;
}

static void watch_out(client *c, int on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = on;
}

static void close_client(client *c) {
  if (c->ch) {
    channel *ch = c->ch;
    for (client **pp = &ch->clients; *pp; pp = &(*pp)->next)
      if (*pp == c) {
        *pp = c->next;
        break;
      }
    if (!ch->clients) { /* the last viewer left: the channel stops */
      for (channel **pp = &channels; *pp; pp = &(*pp)->next)
        if (*pp == ch) {
          *pp = ch->next;
          break;
        }
      free(ch->batch);
      free(ch);
    }
  }
  close(c->fd); /* also removes it from the epoll set */
  free(c->pending);
  free(c);
}

/* Write what the client still owes from the last batch; 0 when it is all out, -1 on error. */
static int flush_pending(client *c) {
  while (c->pending_len) {
    ssize_t n = write(c->fd, c->pending, c->pending_len);
    if (n < 0) {
      if (errno == EAGAIN) {
        watch_out(c, 1);
        return 1;
      }
      if (errno == EINTR) continue;
      return -1;
    }
    memmove(c->pending, c->pending + n, c->pending_len - n);
    c->pending_len -= n;
  }
  watch_out(c, 0);
  return 0;
}

/* Offer a batch to a client; the part the socket does not take waits in c->pending. */
static int offer(client *c, const unsigned char *b, size_t len) {
  if (c->pending_len) return 0; /* still owes the previous batch: this one is skipped */
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(c->fd, b + off, len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return -1;
      break;
    }
    off += n;
  }
  if (off < len) {
    if (len - off > c->pending_cap) {
      c->pending_cap = len - off;
      c->pending = realloc(c->pending, c->pending_cap);
      if (!c->pending) abort();
    }
    memcpy(c->pending, b + off, len - off);
    c->pending_len = len - off;
    watch_out(c, 1);
  }
  return 0;
}

static void send_all(int fd, const char *s) {
  size_t len = strlen(s), off = 0;
  while (off < len) {
    ssize_t n = write(fd, s + off, len - off);
    if (n <= 0) return; /* a fresh socket takes a few hundred bytes; if not, the client is gone */
    off += n;
  }
}

static int is_hex40(const char *s) {
  for (int i = 0; i < 40; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F'))) return 0;
  return !((s[40] >= '0' && s[40] <= '9') || (s[40] >= 'a' && s[40] <= 'z') || (s[40] >= 'A' && s[40] <= 'Z'));
}

/* The request is complete: answer it like acemux does, or 404. Returns -1 to close. */
static int answer(client *c) {
  const char *id = NULL;
  if (strncmp(c->req, "GET /ace/getstream?", 19) == 0) {
    char *eol = strstr(c->req, " HTTP/");
    for (char *p = c->req + 18; p && (!eol || p < eol); p = strchr(p + 1, '&'))
      if (strncmp(p + 1, "id=", 3) == 0 && is_hex40(p + 4)) {
        id = p + 4;
        break;
      }
  }
  if (!id) {
    send_all(c->fd, "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    "content-length: 21\r\n\r\n{\"error\":\"not found\"}");
    return -1;
  }
  char date[64], head[512];
  time_t t = time(NULL);
  struct tm tm;
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
  snprintf(head, sizeof head,
           "HTTP/1.1 200 OK\r\ncontent-type: video/mp2t\r\ncache-control: no-cache, no-store\r\n"
           "connection: close\r\nx-content-type-options: nosniff\r\nDate: %s\r\n\r\n",
           date);
  send_all(c->fd, head);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  channel *ch = channels;
  while (ch && strncmp(ch->id, id, 40) != 0) ch = ch->next;
  if (!ch) {
    ch = calloc(1, sizeof *ch);
    if (!ch) abort();
    memcpy(ch->id, id, 40);
    ch->t0_ms = now_ms();
    ch->next = channels;
    channels = ch;
  }
  c->ch = ch;
  c->next = ch->clients;
  ch->clients = c;
  c->streaming = 1;
  return 0;
}

/* Readable: the request (until its blank line), or, while streaming, EOF / stray bytes. */
static int on_readable(client *c) {
  char scratch[4096];
  for (;;) {
    char *dst = c->streaming ? scratch : c->req + c->req_len;
    size_t room = c->streaming ? sizeof scratch : REQ_MAX - 1 - c->req_len;
    if (room == 0) return -1; /* oversize request */
    ssize_t n = read(c->fd, dst, room);
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN ? 0 : errno == EINTR ? on_readable(c) : -1;
    if (c->streaming) continue;
    c->req_len += n;
    c->req[c->req_len] = 0;
    if (strstr(c->req, "\r\n\r\n")) return answer(c);
  }
}

/* One batch period: every channel makes the bytes its rate made due, and offers them to each client. */
static void tick(void) {
  double t = now_ms();
  for (channel *ch = channels; ch;) {
    channel *next = ch->next; /* a client error below may free ch */
    size_t n = bitrate > 0 ? (size_t)(((t - ch->t0_ms) * bitrate / 8000.0 - ch->sent) / TS) : UNTHROTTLED_BATCH / TS;
    if (n > 0) {
      int anyone = bitrate > 0;
      if (!anyone)
        for (client *c = ch->clients; c; c = c->next) anyone |= c->pending_len == 0;
      if (anyone) {
        unsigned char *b = generate(ch, n);
        for (client *c = ch->clients; c;) {
          client *cn = c->next;
          if (offer(c, b, n * TS) < 0) close_client(c);
          c = cn;
        }
      }
    }
    ch = next;
  }
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--bitrate")) bitrate = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch-ms")) batch_ms = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: floor --port N [--host H] [--bitrate BPS] [--batch-ms MS]\n");
      return 2;
    }
  }
  if (port <= 0 || port > 65535 || bitrate < 0 || batch_ms < 1) {
    fprintf(stderr, "floor: bad --port, --bitrate or --batch-ms\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  cycle = bitrate > 0 ? (unsigned)(0.1 * bitrate / (TS * 8) + 0.5) : 266;
  if (cycle < 3) cycle = 3;
  templates();

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) {
    perror("floor: listen");
    return 1;
  }
  ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  printf("floor listening on %s:%d, %ld b/s per channel, batches every %d ms\n", host, port, bitrate, batch_ms);
  fflush(stdout);

  struct epoll_event evs[256];
  double next_tick = now_ms() + batch_ms;
  for (;;) {
    int wait = bitrate > 0 ? (int)(next_tick - now_ms() + 0.999) : 1;
    int n = epoll_wait(ep, evs, 256, wait < 0 ? 0 : wait);
    for (int i = 0; i < n; i++) {
      client *c = evs[i].data.ptr;
      if (!c) { /* the listener */
        int fd;
        while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          client *nc = calloc(1, sizeof *nc);
          if (!nc) abort();
          nc->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      int bad = (evs[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;
      if (!bad && (evs[i].events & EPOLLIN)) bad = on_readable(c) < 0;
      if (!bad && (evs[i].events & EPOLLOUT)) bad = flush_pending(c) < 0;
      if (bad) close_client(c);
    }
    if (bitrate == 0 || now_ms() >= next_tick) {
      tick();
      next_tick += batch_ms;
      if (next_tick < now_ms()) next_tick = now_ms() + batch_ms; /* fell behind: no burst of ticks */
    }
  }
}

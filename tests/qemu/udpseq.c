/* Sequence-numbered, self-checking UDP streams and a guest-memory checksum, for the live
 * migration test (tests/qemu/guest-migrate). The same binary runs in the guest and on
 * the host side of the tap.
 *   udpseq send ADDR PORT PPS SIZE STOP_PORT   datagrams until a stop datagram arrives on STOP_PORT
 *   udpseq recv PORT [LAG_MS]                  checks datagrams until an end datagram; prints a
 *                                              status line every second and a summary at the end;
 *                                              with LAG_MS it reads in bursts that far apart, so
 *                                              that datagrams always wait in the socket (their
 *                                              pages, written by the device, are read later)
 *   udpseq end ADDR PORT                       sends the end (or stop) datagram, a few times
 *   udpseq memsum MB                           writes MB of memory once, then prints its checksum
 *                                              every second and rewrites and checks a second,
 *                                              churning region meanwhile (pages dirtied all along)
 * A datagram carries seq, ~seq and bytes derived from seq: a receiver knows what every byte
 * must be, so any corruption is seen, not only a bad checksum. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define END_SEQ 0xffffffffffffffffull
#define MAX_SIZE 1400

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fill(uint8_t *buf, uint64_t seq, size_t size)
{
        uint64_t inv = ~seq;

        memcpy(buf, &seq, 8);
        memcpy(buf + 8, &inv, 8);
        for (size_t i = 16; i < size; i++)
                buf[i] = (uint8_t)(seq * 131 + i * 7 + (seq >> 8));
}

static int udp_socket(uint16_t bind_port)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(bind_port) };
        int fd = socket(AF_INET, SOCK_DGRAM, 0), big = 8 << 20;

        if (fd < 0 || (bind_port && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)) {
                perror("udpseq: socket");
                exit(1);
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
        return fd;
}

static int addr(const char *a, const char *port, struct sockaddr_in *sa)
{
        *sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
        return inet_pton(AF_INET, a, &sa->sin_addr) == 1 ? 0 : -1;
}

static int do_send(struct sockaddr_in *to, unsigned pps, size_t size, uint16_t stop_port)
{
        int fd = udp_socket(0), stop = udp_socket(stop_port);
        uint8_t buf[MAX_SIZE];
        uint64_t seq = 0, start = now_ms(), last_print = start;

        for (;;) {
                struct pollfd p = { .fd = stop, .events = POLLIN };
                uint64_t due = start + seq * 1000 / pps, t = now_ms();

                if ((seq & 63) == 0 && poll(&p, 1, 0) > 0)
                        break;
                if (t > due + 1000)
                        start = t - seq * 1000 / pps;   /* after a pause (migration): no burst to catch up */
                else if (t < due) {
                        if (poll(&p, 1, (int)(due - t)) > 0)
                                break;
                        continue;
                }
                fill(buf, seq, size);
                /* a full socket queue is backpressure, not loss: retry */
                while (sendto(fd, buf, size, 0, (struct sockaddr *)to, sizeof(*to)) < 0) {
                        if (poll(&p, 1, 1) > 0)
                                goto out;
                }
                seq++;
                if (t - last_print >= 1000) {
                        printf("udpseq send: %llu sent\n", (unsigned long long)seq);
                        fflush(stdout);
                        last_print = t;
                }
        }
out:
        printf("udpseq send: stopped after %llu datagrams\n", (unsigned long long)seq);
        return 0;
}

static int do_recv(uint16_t port, unsigned lag_ms)
{
        int fd = udp_socket(port);
        uint8_t buf[MAX_SIZE + 1], want[MAX_SIZE];
        unsigned long long got = 0, corrupt = 0, dup = 0, gaps = 0, missing = 0;
        uint64_t next = 0, t0 = now_ms(), last_print = 0;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t seq, inv, t;
                ssize_t n;

                if (poll(&p, 1, 200) > 0) {
                        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                        if (n < 0 && errno == EAGAIN) {
                                usleep(lag_ms * 1000);
                                continue;
                        }
                        if (n < 16 || n > MAX_SIZE) {
                                if (n >= 0)
                                        corrupt++;
                                continue;
                        }
                        memcpy(&seq, buf, 8);
                        memcpy(&inv, buf + 8, 8);
                        if (seq == END_SEQ && inv == 0)
                                break;
                        fill(want, seq, (size_t)n);
                        if (inv != ~seq || memcmp(buf, want, (size_t)n) != 0) {
                                corrupt++;
                                fprintf(stderr, "udpseq recv: corrupt datagram (seq %llu, %zd bytes)\n",
                                        (unsigned long long)seq, n);
                                continue;
                        }
                        got++;
                        if (seq < next) {
                                dup++;
                        } else {
                                if (seq > next) {
                                        gaps++;
                                        missing += seq - next;
                                }
                                next = seq + 1;
                        }
                }
                t = now_ms();
                if (t - last_print >= 1000) {
                        printf("udpseq recv: t=%llu got=%llu next=%llu corrupt=%llu dup=%llu gaps=%llu missing=%llu\n",
                               (unsigned long long)(t - t0), got, (unsigned long long)next, corrupt, dup, gaps, missing);
                        fflush(stdout);
                        last_print = t;
                }
        }
        printf("udpseq recv: end got=%llu next=%llu corrupt=%llu dup=%llu gaps=%llu missing=%llu\n", got,
               (unsigned long long)next, corrupt, dup, gaps, missing);
        return corrupt || dup ? 1 : 0;
}

static int do_end(struct sockaddr_in *to)
{
        int fd = udp_socket(0);
        uint8_t buf[16] = { 0 };
        uint64_t seq = END_SEQ;

        memcpy(buf, &seq, 8);
        for (int i = 0; i < 5; i++) {
                sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)to, sizeof(*to));
                usleep(50000);
        }
        return 0;
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
        uint64_t h = 0xcbf29ce484222325ull;

        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 0x100000001b3ull;
        return h;
}

static int do_memsum(size_t mb)
{
        size_t n = mb << 20, churn = 64u << 10;
        uint8_t *m = malloc(n), *c = malloc(churn);
        uint64_t pass = 0, bad = 0, last = 0;

        if (!m || !c)
                return 1;
        for (size_t i = 0; i < n; i++)
                m[i] = (uint8_t)(i * 2654435761u >> 13);
        printf("MEMSUM %016llx written\n", (unsigned long long)fnv(m, n));
        fflush(stdout);
        for (;;) {
                /* each pass rewrites the churning region and reads it back */
                for (size_t i = 0; i < churn; i += 8) {
                        uint64_t v = pass * 0x9e3779b97f4a7c15ull ^ i;
                        memcpy(c + i, &v, 8);
                }
                for (size_t i = 0; i < churn; i += 8) {
                        uint64_t v;
                        memcpy(&v, c + i, 8);
                        if (v != (pass * 0x9e3779b97f4a7c15ull ^ i))
                                bad++;
                }
                pass++;
                if (now_ms() - last >= 1000) {
                        printf("MEMSUM %016llx pass=%llu churn_bad=%llu\n", (unsigned long long)fnv(m, n),
                               (unsigned long long)pass, (unsigned long long)bad);
                        fflush(stdout);
                        last = now_ms();
                }
                usleep(20000);
        }
}

int main(int argc, char **argv)
{
        struct sockaddr_in sa;

        if (argc == 7 && !strcmp(argv[1], "send") && addr(argv[2], argv[3], &sa) == 0) {
                unsigned pps = (unsigned)atoi(argv[4]);
                size_t size = (size_t)atoi(argv[5]);
                if (pps == 0 || size < 16 || size > MAX_SIZE)
                        return 2;
                return do_send(&sa, pps, size, (uint16_t)atoi(argv[6]));
        }
        if ((argc == 3 || argc == 4) && !strcmp(argv[1], "recv"))
                return do_recv((uint16_t)atoi(argv[2]), argc == 4 ? (unsigned)atoi(argv[3]) : 0);
        if (argc == 4 && !strcmp(argv[1], "end") && addr(argv[2], argv[3], &sa) == 0)
                return do_end(&sa);
        if (argc == 3 && !strcmp(argv[1], "memsum"))
                return do_memsum((size_t)atoi(argv[2]));
        fprintf(stderr, "usage: udpseq send ADDR PORT PPS SIZE STOP_PORT | recv PORT [LAG_MS] | end ADDR PORT | memsum MB\n");
        return 2;
}

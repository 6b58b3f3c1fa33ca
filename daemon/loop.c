/* epoll event loop with timerfd timers and signalfd signals. */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum source_kind { SOURCE_FD, SOURCE_TIMER, SOURCE_SIGNAL };

struct elvis_loop_source {
        struct elvis_loop *loop;
        enum source_kind kind;
        int fd;
        bool owns_fd;
        bool dead;
        int signo;
        void *cb;
        void *userdata;
        struct elvis_loop_source *next;         /* all sources, for freeing */
};

struct prepare {
        elvis_loop_prepare_cb cb;
        void *userdata;
};

struct elvis_loop {
        int epfd;
        bool exiting;
        int exit_code;
        unsigned dispatching;
        struct elvis_loop_source *sources;
        struct prepare prepares[8];
        unsigned nprepares;
};

uint64_t elvis_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int elvis_loop_new(struct elvis_loop **ret)
{
        struct elvis_loop *loop = calloc(1, sizeof(*loop));

        if (!loop)
                return -ENOMEM;
        loop->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (loop->epfd < 0) {
                int r = -errno;
                free(loop);
                return r;
        }
        *ret = loop;
        return 0;
}

static void source_destroy(struct elvis_loop_source *src)
{
        if (src->owns_fd && src->fd >= 0)
                close(src->fd);
        free(src);
}

static void reap(struct elvis_loop *loop)
{
        struct elvis_loop_source **pp = &loop->sources;

        while (*pp) {
                struct elvis_loop_source *s = *pp;
                if (s->dead) {
                        *pp = s->next;
                        source_destroy(s);
                } else {
                        pp = &s->next;
                }
        }
}

void elvis_loop_free(struct elvis_loop *loop)
{
        if (!loop)
                return;
        while (loop->sources) {
                struct elvis_loop_source *s = loop->sources;
                loop->sources = s->next;
                source_destroy(s);
        }
        close(loop->epfd);
        free(loop);
}

static int add_source(struct elvis_loop *loop, enum source_kind kind, int fd, bool owns_fd, uint32_t events,
                      void *cb, void *userdata, struct elvis_loop_source **ret)
{
        struct elvis_loop_source *src = calloc(1, sizeof(*src));
        struct epoll_event ev = { .events = events };

        if (!src)
                return -ENOMEM;
        *src = (struct elvis_loop_source){ .loop = loop, .kind = kind, .fd = fd, .owns_fd = owns_fd,
                                           .cb = cb, .userdata = userdata };
        ev.data.ptr = src;
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = -errno;
                free(src);
                return r;
        }
        src->next = loop->sources;
        loop->sources = src;
        if (ret)
                *ret = src;
        return 0;
}

int elvis_loop_add_fd(struct elvis_loop *loop, int fd, uint32_t events, elvis_loop_fd_cb cb, void *userdata,
                      struct elvis_loop_source **ret)
{
        return add_source(loop, SOURCE_FD, fd, false, events, (void *)cb, userdata, ret);
}

int elvis_loop_fd_set_events(struct elvis_loop_source *src, uint32_t events)
{
        struct epoll_event ev = { .events = events, .data.ptr = src };

        return epoll_ctl(src->loop->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0 ? -errno : 0;
}

int elvis_loop_timer_rearm(struct elvis_loop_source *src, uint64_t interval_us, bool repeat)
{
        struct itimerspec its = { 0 };

        its.it_value.tv_sec = (time_t)(interval_us / 1000000u);
        its.it_value.tv_nsec = (long)(interval_us % 1000000u) * 1000;
        if (repeat)
                its.it_interval = its.it_value;
        return timerfd_settime(src->fd, 0, &its, NULL) < 0 ? -errno : 0;
}

int elvis_loop_add_timer(struct elvis_loop *loop, uint64_t interval_us, bool repeat, elvis_loop_timer_cb cb,
                         void *userdata, struct elvis_loop_source **ret)
{
        struct elvis_loop_source *src;
        int fd, r;

        fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = add_source(loop, SOURCE_TIMER, fd, true, EPOLLIN, (void *)cb, userdata, &src);
        if (r < 0) {
                close(fd);
                return r;
        }
        if (interval_us) {
                r = elvis_loop_timer_rearm(src, interval_us, repeat);
                if (r < 0) {
                        elvis_loop_source_free(src);
                        return r;
                }
        }
        if (ret)
                *ret = src;
        return 0;
}

int elvis_loop_add_signal(struct elvis_loop *loop, int signo, elvis_loop_signal_cb cb, void *userdata,
                          struct elvis_loop_source **ret)
{
        sigset_t mask;
        int fd, r;

        sigemptyset(&mask);
        sigaddset(&mask, signo);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = add_source(loop, SOURCE_SIGNAL, fd, true, EPOLLIN, (void *)cb, userdata, ret);
        if (r < 0) {
                close(fd);
                return r;
        }
        loop->sources->signo = signo;
        return 0;
}

int elvis_loop_add_prepare(struct elvis_loop *loop, elvis_loop_prepare_cb cb, void *userdata)
{
        if (loop->nprepares >= sizeof(loop->prepares) / sizeof(loop->prepares[0]))
                return -ENOSPC;
        loop->prepares[loop->nprepares++] = (struct prepare){ cb, userdata };
        return 0;
}

void elvis_loop_remove_prepare(struct elvis_loop *loop, elvis_loop_prepare_cb cb, void *userdata)
{
        for (unsigned i = 0; i < loop->nprepares; i++)
                if (loop->prepares[i].cb == cb && loop->prepares[i].userdata == userdata) {
                        memmove(&loop->prepares[i], &loop->prepares[i + 1],
                                (loop->nprepares - i - 1) * sizeof(loop->prepares[0]));
                        loop->nprepares--;
                        return;
                }
}

void elvis_loop_source_free(struct elvis_loop_source *src)
{
        if (!src || src->dead)
                return;
        epoll_ctl(src->loop->epfd, EPOLL_CTL_DEL, src->fd, NULL);
        if (src->owns_fd) {
                close(src->fd);
                src->owns_fd = false;
        }
        src->fd = -1;
        src->dead = true;
        if (!src->loop->dispatching)
                reap(src->loop);
}

static void dispatch(struct elvis_loop_source *src, uint32_t events)
{
        if (src->dead)
                return;
        switch (src->kind) {
        case SOURCE_FD:
                ((elvis_loop_fd_cb)src->cb)(src, src->fd, events, src->userdata);
                break;
        case SOURCE_TIMER: {
                uint64_t expirations;
                if (read(src->fd, &expirations, sizeof(expirations)) != sizeof(expirations))
                        return;
                ((elvis_loop_timer_cb)src->cb)(src, src->userdata);
                break;
        }
        case SOURCE_SIGNAL: {
                struct signalfd_siginfo si;
                while (!src->dead && read(src->fd, &si, sizeof(si)) == sizeof(si))
                        ((elvis_loop_signal_cb)src->cb)(src, (int)si.ssi_signo, src->userdata);
                break;
        }
        }
}

int elvis_loop_iterate(struct elvis_loop *loop, int timeout_ms)
{
        struct epoll_event events[32];
        int n;

        for (unsigned i = 0; i < loop->nprepares; i++) {
                int t = loop->prepares[i].cb(loop->prepares[i].userdata);
                if (t >= 0 && (timeout_ms < 0 || t < timeout_ms))
                        timeout_ms = t;
        }
        n = epoll_wait(loop->epfd, events, 32, timeout_ms);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        loop->dispatching++;
        for (int i = 0; i < n; i++)
                dispatch(events[i].data.ptr, events[i].events);
        loop->dispatching--;
        if (!loop->dispatching)
                reap(loop);
        return n;
}

int elvis_loop_run(struct elvis_loop *loop)
{
        while (!loop->exiting) {
                int r = elvis_loop_iterate(loop, -1);
                if (r < 0)
                        return r;
        }
        return loop->exit_code;
}

void elvis_loop_exit(struct elvis_loop *loop, int code)
{
        loop->exiting = true;
        loop->exit_code = code;
}

bool elvis_loop_exiting(const struct elvis_loop *loop) { return loop->exiting; }

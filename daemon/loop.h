/* A small epoll event loop: fd watches, monotonic timers, signals and prepare hooks.
 * Single-threaded: every callback runs on the thread that calls elvis_loop_run(). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct elvis_loop;
struct elvis_loop_source;

typedef void (*elvis_loop_fd_cb)(struct elvis_loop_source *src, int fd, uint32_t events, void *userdata);
typedef void (*elvis_loop_timer_cb)(struct elvis_loop_source *src, void *userdata);
typedef void (*elvis_loop_signal_cb)(struct elvis_loop_source *src, int signo, void *userdata);
/* Called before each wait; returns the longest the loop may sleep in ms, or -1 for no limit. */
typedef int (*elvis_loop_prepare_cb)(void *userdata);

int elvis_loop_new(struct elvis_loop **ret);
void elvis_loop_free(struct elvis_loop *loop);

int elvis_loop_add_fd(struct elvis_loop *loop, int fd, uint32_t events, elvis_loop_fd_cb cb, void *userdata,
                      struct elvis_loop_source **ret);
int elvis_loop_fd_set_events(struct elvis_loop_source *src, uint32_t events);
/* Fires every interval_us (first after interval_us); interval 0 = one-shot disabled timer. */
int elvis_loop_add_timer(struct elvis_loop *loop, uint64_t interval_us, bool repeat, elvis_loop_timer_cb cb,
                         void *userdata, struct elvis_loop_source **ret);
int elvis_loop_timer_rearm(struct elvis_loop_source *src, uint64_t interval_us, bool repeat);
/* Blocks signo for the whole process (call before starting threads) and delivers it here. */
int elvis_loop_add_signal(struct elvis_loop *loop, int signo, elvis_loop_signal_cb cb, void *userdata,
                          struct elvis_loop_source **ret);
int elvis_loop_add_prepare(struct elvis_loop *loop, elvis_loop_prepare_cb cb, void *userdata);
void elvis_loop_remove_prepare(struct elvis_loop *loop, elvis_loop_prepare_cb cb, void *userdata);
/* Safe from inside callbacks, also for the source being dispatched. NULL is accepted. */
void elvis_loop_source_free(struct elvis_loop_source *src);

/* Runs until elvis_loop_exit(); returns the exit code. */
int elvis_loop_run(struct elvis_loop *loop);
/* Runs one iteration, waiting at most timeout_ms (-1 = no limit). */
int elvis_loop_iterate(struct elvis_loop *loop, int timeout_ms);
void elvis_loop_exit(struct elvis_loop *loop, int code);
bool elvis_loop_exiting(const struct elvis_loop *loop);

uint64_t elvis_now_ns(void);    /* CLOCK_MONOTONIC */

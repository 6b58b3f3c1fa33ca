/* The manager's connections to elvis-dataplane (remote_dp.c): one request/reply channel,
 * and the observer, a thread with a connection of its own that asks for health and
 * counters a few times a second and keeps the last answer.
 *
 * Observation goes through the observer so that the manager's event loop never waits on
 * the data plane to answer a GET: /v1/health reads the last answer (and how long the
 * data plane has been silent), /v1/stats waits at most OBS_FRESH_WAIT_MS for an answer
 * newer than the request, and not at all while the data plane is silent. State-changing
 * calls keep the other connection, so observation and change never share a channel. */
#pragma once
#include "proto.h"

#include <elvis/dataplane.h>

struct dpp_chan {
        int sock;                       /* -1: none */
        uint32_t next_id;
        _Alignas(8) unsigned char out[ELVIS_DPP_MSG_MAX];
        _Alignas(8) unsigned char in[ELVIS_DPP_MSG_MAX];
};

/* Connects to a data plane's socket, with send and receive timeouts of timeout_ms. */
int dpp_connect(const char *path, unsigned timeout_ms);

/* One request (with nfds fds) and its reply. 0: a reply, whose result may be a refusal
 * (res->error < 0); -ENOTCONN: the transport failed; -EPROTO: a malformed reply, or one
 * of another protocol version (*ret_version says which). why says what went wrong. */
int dpp_chan_call(struct dpp_chan *c, uint16_t type, const void *payload, size_t len, const int *fds, unsigned nfds,
                  const struct elvis_dpp_result **ret_res, const void **ret_body, size_t *ret_len,
                  unsigned *ret_version, char *why, size_t wlen);

/* Reads a paged list (LIST_*, STATS_*) into a fresh array (caller frees). Errors as
 * dpp_chan_call, -EBADMSG when the pages do not add up, or a refusal's errno. */
int dpp_chan_pages(struct dpp_chan *c, uint16_t type, size_t item, void **ret, unsigned *ret_n, char *why,
                   size_t wlen);

/* The stats of one reply, in the data-plane interface's shape (fills st). */
int dpp_stats_build(struct elvis_dp_stats *st, const struct elvis_dpp_sidecore_stats *sc, unsigned nsc,
                    const struct elvis_dpp_queue_stats *qs, unsigned nq, uint64_t now_ns);

#define OBS_PERIOD_MS 100               /* asks this often */
#define OBS_FRESH_WAIT_MS 250           /* a stats read waits this long for a fresh answer */
#define OBS_TIMEOUT_MS 1000             /* one answer; then the observer reconnects */

struct dpp_observer;

/* Starts the thread on the data plane's socket path. */
int dpp_observer_start(const char *path, struct dpp_observer **ret);
void dpp_observer_stop(struct dpp_observer *o);
/* How long a question has gone unanswered (0: none outstanding), and why the last one
 * failed, if it did. Never waits. */
uint64_t dpp_observer_silent_ns(struct dpp_observer *o, char *why, size_t wlen);
/* The last health answer: its result and detail; -EAGAIN before the first. Never waits. */
int dpp_observer_health(struct dpp_observer *o, char *detail, size_t len);
/* Counters no older than this call when the data plane answers within
 * OBS_FRESH_WAIT_MS; else the last ones it gave (their timestamp says when), or
 * -ETIMEDOUT when it never answered. Does not wait while the data plane is silent. */
int dpp_observer_stats(struct dpp_observer *o, struct elvis_dp_stats *st);

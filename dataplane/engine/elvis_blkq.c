/* The virtio-blk queue model: see elvis_blkq.h. */
#include "elvis_blkq.h"

void elvis_blkq_init(struct elvis_blkq *q, const struct elvis_blk_disk *disk, const struct elvis_vring_mem *mem,
                     struct elvis_blkq_slot *slots, u16 *free, u32 depth)
{
        memset(q, 0, sizeof(*q));
        q->disk = disk;
        q->mem = mem;
        q->slots = slots;
        q->free = free;
        q->depth = depth;
        for (u32 i = 0; i < depth; i++) {
                slots[i].busy = false;
                free[i] = (u16)(depth - 1 - i);
        }
        q->nfree = depth;
        q->log.base = EV_UPTR_NULL;
        elvis_sched_reset(&q->sched);
}

bool elvis_blkq_live(const struct elvis_blkq *q)
{
        return q->vq.live;
}

u32 elvis_blkq_ring_cap(const struct elvis_blkq *q)
{
        /* half the ring, two descriptors a request at least, and never more than the back
         * end takes at once */
        u32 cap = q->vq.live ? q->vq.num / 4 : 0;

        if (cap > q->depth)
                cap = q->depth;
        return cap ? cap : 1;
}

/* Requests in flight are the ring's no more. */
static void abandon(struct elvis_blkq *q)
{
        if (q->active)
                elvis_blkq_port_abandon(q);
        q->active = 0;
        q->epoch++;
        /* what was not executed again yet stays in flight in the plane's record */
        q->resubmit = NULL;
        q->nresubmit = q->resubmitted = 0;
}

void elvis_blkq_reset(struct elvis_blkq *q)
{
        abandon(q);
        memset(&q->vq, 0, sizeof(q->vq));
        q->log.base = EV_UPTR_NULL;
        q->log.size = 0;
        q->features = 0;
        q->blocked = false;
        elvis_sched_reset(&q->sched);
}

void elvis_blkq_error(struct elvis_blkq *q)
{
        q->vq.live = false;
        abandon(q);
        ev_stat_add(q->st.errors, 1);
        elvis_blkq_port_changed(q, true);
        if (!q->vq.err_signalled) {
                q->vq.err_signalled = true;
                elvis_blkq_port_notify(q, ELVIS_BLKQ_SIG_ERR);
        }
}

void elvis_blkq_fail(struct elvis_blkq *q, int err, const char *what)
{
        if (!q->vq.live && q->vq.vr.error)
                return;
        if (!q->vq.vr.error)
                elvis_vring_fail(&q->vq.vr, err, what);
        elvis_blkq_error(q);
}

/* Publishes the used entries pushed so far and interrupts the guest if it wants. */
static void signal_guest(struct elvis_blkq *q)
{
        struct elvis_qvq *v = &q->vq;
        u16 before = v->vr.published_used;

        if (!v->live || v->vr.used_idx == before)
                return;
        if (elvis_vring_publish(&v->vr) < 0) {
                elvis_blkq_error(q);
                return;
        }
        elvis_blkq_port_track(q, ELVIS_BLKQ_PUBLISHED, v->vr.published_used);
        if (v->vr.published_used != before && elvis_vring_need_signal(&v->vr))
                elvis_blkq_port_notify(q, ELVIS_BLKQ_SIG_CALL);
}

/* A ring that starts afresh: what an earlier back end left in flight goes first, and
 * the avail ring resumes after it (the spec's last_avail = used index + in flight). */
static int recover(struct elvis_blkq *q, const char **why)
{
        struct elvis_vring *vr = &q->vq.vr;
        const u16 *heads = NULL;
        u32 n = 0;
        int r = elvis_blkq_port_recover(q, vr->used_idx, &heads, &n, why);

        if (r <= 0)
                return r;
        if (n > vr->num) {
                *why = "the inflight record holds more requests than the ring";
                return -EINVAL;
        }
        vr->last_avail_idx = vr->avail_idx = (u16)(vr->used_idx + n);
        /* the guest made every one of them available: the avail index is not behind */
        if (elvis_vring_pending(vr) < 0) {
                vr->error = 0;
                *why = "the inflight record has more requests in flight than the guest made available";
                return -EINVAL;
        }
        q->resubmit = heads;
        q->nresubmit = n;
        q->resubmitted = 0;
        return 0;
}

int elvis_blkq_refresh(struct elvis_blkq *q, bool want, const char **why)
{
        struct elvis_qvq *v = &q->vq;
        bool in_place = false;
        int r;

        if (v->live) {
                /* what the disk finished reaches the guest before the ring stops */
                if (q->active)
                        elvis_blkq_port_reap(q, q->depth);
                signal_guest(q);
                v->base = v->vr.last_avail_idx;
                in_place = want && v->num == q->ring_num && v->desc == q->ring_desc && v->avail == q->ring_avail &&
                           v->used == q->ring_used;
        }
        /* a ring that stops, moves or starts from another base answers nothing it popped
         * before; one restarted in place (new memory or features) still owes its requests */
        if (!in_place)
                abandon(q);
        if (!want) {
                v->live = false;
                return 0;
        }
        if ((r = elvis_qvq_start(v, q->mem, q->features, why)) < 0) {
                abandon(q);     /* kept for a restart that failed: nobody answers them now */
                return r;
        }
        if (!in_place && (r = recover(q, why)) < 0) {
                v->live = false;
                elvis_vring_fail(&v->vr, r, *why);
                return r;
        }
        q->blocked = false;
        q->ring_num = v->num;
        q->ring_desc = v->desc;
        q->ring_avail = v->avail;
        q->ring_used = v->used;
        elvis_blkq_log_update(q);
        if (q->sched.mode == ELVIS_TURN_POLL)
                elvis_vring_notify_disable(&v->vr);
        return 0;
}

void elvis_blkq_log_update(struct elvis_blkq *q)
{
        struct elvis_qvq *v = &q->vq;

        if (v->live)
                elvis_vring_set_log(&v->vr, q->log.base != EV_UPTR_NULL ? &q->log : NULL,
                                    q->features & (1ull << ELVIS_VQ_FEAT_LOG_ALL), v->log_used, v->log_addr);
}

void elvis_blkq_set_mode(struct elvis_blkq *q, enum elvis_turn_mode mode)
{
        if (q->sched.mode == mode || !elvis_sched_set_mode(&q->sched, mode, elvis_blkq_port_now()))
                return;
        if (mode == ELVIS_TURN_POLL && q->vq.live)
                elvis_vring_notify_disable(&q->vq.vr);
        elvis_blkq_port_changed(q, false);
}

static void count(struct elvis_blkq *q, const struct elvis_blk_req *r, u8 status)
{
        if (status != ELVIS_BLK_S_OK) {
                ev_stat_add(q->st.drops, 1);    /* answered IOERR or UNSUPP */
        } else if (r->type == ELVIS_BLK_T_IN) {
                ev_stat_add(q->st.rx_packets, 1);
                ev_stat_add(q->st.rx_bytes, r->len);
        } else {
                ev_stat_add(q->st.tx_packets, 1);
                if (r->type == ELVIS_BLK_T_OUT)
                        ev_stat_add(q->st.tx_bytes, r->len);
        }
}

/* Answers a request on the ring; false if the ring stopped. */
static bool answer(struct elvis_blkq *q, const struct elvis_blk_req *r, u8 status, u32 written)
{
        if (elvis_blk_complete(&q->vq.vr, r, status, written) < 0) {
                elvis_blkq_error(q);
                return false;
        }
        elvis_blkq_port_track(q, ELVIS_BLKQ_DONE, r->head);
        count(q, r, status);
        return true;
}

static void slot_put(struct elvis_blkq *q, u32 idx)
{
        q->slots[idx].busy = false;
        q->free[q->nfree++] = (u16)idx;
}

void elvis_blkq_done(struct elvis_blkq *q, u32 tag, u8 status)
{
        struct elvis_blkq_slot *s;

        if (tag >= q->depth || !q->slots[tag].busy)
                return;
        s = &q->slots[tag];
        if (q->inflight)
                q->inflight--;
        if (s->epoch == q->epoch) {
                if (q->active)
                        q->active--;
                if (q->vq.live)
                        answer(q, &s->req, status, 0);
        }
        slot_put(q, tag);
}

/* Pops, checks and starts one request. 1: one more request dealt with; 0: nothing (empty
 * ring, full back end, or the ring stopped). */
static int start_one(struct elvis_blkq *q, u64 *bytes)
{
        struct elvis_qvq *v = &q->vq;
        struct elvis_blkq_slot *s;
        u32 idx, written = 0;
        u8 status = ELVIS_BLK_S_OK;
        bool again = q->resubmitted < q->nresubmit;
        int r;

        if (!q->nfree) {
                q->blocked = true;
                return 0;
        }
        if (again) {
                /* an abandoned copy of it may still be on the disk: that one ends first */
                if (q->inflight > q->active) {
                        q->blocked = true;
                        return 0;
                }
                r = elvis_vring_pop_head(&v->vr, q->resubmit[q->resubmitted], &q->chain, ELVIS_CHAIN_ANY);
                if (r > 0)
                        q->resubmitted++;
        } else {
                r = elvis_vring_pop(&v->vr, &q->chain, ELVIS_CHAIN_ANY);
                if (r > 0)
                        elvis_blkq_port_track(q, ELVIS_BLKQ_POPPED, q->chain.head);
        }
        if (r <= 0) {
                if (r < 0)
                        elvis_blkq_error(q);
                return 0;
        }
        idx = q->free[q->nfree - 1];
        s = &q->slots[idx];
        r = elvis_blk_parse(q->disk, &q->chain, &s->req);
        if (r < 0) {
                elvis_vring_fail(&v->vr, r, r == -EPROTO ? "a block request without a writable status byte" :
                                                           "cannot read a block request's header");
                elvis_blkq_error(q);
                return 0;
        }
        if (r != ELVIS_BLK_S_OK)
                return answer(q, &s->req, (u8)r, 0) ? 1 : 0;
        if (s->req.type == ELVIS_BLK_T_GET_ID) {
                if (elvis_blk_get_id(q->disk, &s->req, &written) < 0)
                        status = ELVIS_BLK_S_IOERR;
                return answer(q, &s->req, status, written) ? 1 : 0;
        }
        q->nfree--;
        s->busy = true;
        s->epoch = q->epoch;
        r = elvis_blkq_port_submit(q, &s->req, idx, &status);
        if (r == -EAGAIN) {
                slot_put(q, idx);
                if (again) {
                        q->resubmitted--;
                } else {
                        elvis_blkq_port_track(q, ELVIS_BLKQ_UNPOPPED, s->req.head);
                        elvis_vring_unpop(&v->vr, 1);
                }
                q->blocked = true;
                return 0;
        }
        if (r == 0) {
                q->inflight++;
                q->active++;
        } else {
                if (r < 0)
                        status = ELVIS_BLK_S_IOERR;
                slot_put(q, idx);
                if (!answer(q, &s->req, status, 0))
                        return 0;
        }
        *bytes += s->req.type == ELVIS_BLK_T_IN || s->req.type == ELVIS_BLK_T_OUT ? s->req.len : 0;
        return 1;
}

unsigned int elvis_blkq_turn(struct elvis_blkq *q, const struct elvis_turn *t)
{
        struct elvis_sched *s = &q->sched;
        struct elvis_qvq *v = &q->vq;
        unsigned int total = 0;
        u64 t1;

        q->blocked = false;
        elvis_blkq_set_mode(q, elvis_sched_want(s, t));
        if (v->live && (v->vr.notify_enabled ||
                        (s->mode == ELVIS_TURN_POLL && elvis_vring_notify_disable_due(&v->vr))))
                elvis_vring_notify_disable(&v->vr);
        /* completions first: they free the slots this turn's requests need */
        if (q->inflight)
                elvis_blkq_port_reap(q, q->depth);
        /* one request of any size always fits the byte grant */
        if (v->live && elvis_sched_grant(s, t, elvis_blkq_ring_cap(q), ELVIS_BLK_MAX_REQ_BYTES)) {
                while (s->deficit_packets > 0 && s->deficit_bytes > 0 && v->live) {
                        u64 bytes = 0;

                        if (!start_one(q, &bytes))
                                break;
                        s->deficit_packets--;
                        s->deficit_bytes -= (s64)bytes;
                        total++;
                }
                elvis_blkq_port_kick(q);
        } else {
                /* a weight still saving up; the round is charged with nothing */
                s->deficit_packets = 0;
        }
        signal_guest(q);
        t1 = total ? elvis_blkq_port_now() : t->now;
        if (elvis_sched_end(s, &q->st, t, total, t1))
                elvis_blkq_set_mode(q, ELVIS_TURN_NOTIFY);
        if (v->live && v->vr.error)
                elvis_blkq_error(q);
        return total;
}

bool elvis_blkq_idle(struct elvis_blkq *q, u64 now, u64 kicks)
{
        if (!q->vq.live || !elvis_sched_quiet(&q->sched, now, kicks) || q->inflight || q->blocked ||
            !elvis_vring_quiet(&q->vq.vr, true))
                return false;
        elvis_sched_peeked(&q->sched, now);
        return true;
}

bool elvis_blkq_enable_notify(struct elvis_blkq *q)
{
        bool more;

        if (!q->vq.live)
                return false;
        more = elvis_vring_notify_enable(&q->vq.vr);
        if (q->vq.vr.error) {
                elvis_blkq_error(q);
                return false;
        }
        /* a full back end wakes its sidecore with a completion, not with a kick; requests
         * to execute again need none */
        return (more || q->resubmitted < q->nresubmit) && !q->blocked;
}

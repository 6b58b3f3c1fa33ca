/* Locks of the user-space data plane, checked two ways:
 *  - Clang's thread-safety analysis (-Wthread-safety, the build-clang stage of
 *    scripts/check): functions say which locks they need (DP_REQUIRES) or take
 *    (DP_ACQUIRE/DP_RELEASE), and every call and every lock/unlock pair is checked. A
 *    function the analysis cannot follow (locks taken in a loop) says so with DP_NO_TSA.
 *  - Debug builds (the ASan run of every suite) assert the owner at run time where data
 *    is touched (dp_assert_held): in C, clang cannot check guarded_by on struct fields
 *    (an attribute cannot name a sibling member), so DP_GUARDED_BY documents only.
 * Other compilers see plain mutexes. */
#pragma once
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>

#if defined(__clang__)
#define DP_TSA(x) __attribute__((x))
#else
#define DP_TSA(x)
#endif
#define DP_CAPABILITY DP_TSA(capability("mutex"))
#define DP_GUARDED_BY(l)                /* documentation: see above */
#define DP_REQUIRES(...) DP_TSA(requires_capability(__VA_ARGS__))
#define DP_ACQUIRE(...) DP_TSA(acquire_capability(__VA_ARGS__))
#define DP_RELEASE(...) DP_TSA(release_capability(__VA_ARGS__))
#define DP_TRY_ACQUIRE(...) DP_TSA(try_acquire_capability(__VA_ARGS__))
#define DP_EXCLUDES(...) DP_TSA(locks_excluded(__VA_ARGS__))
#define DP_ASSERT_HELD(...) DP_TSA(assert_capability(__VA_ARGS__))
#define DP_NO_TSA DP_TSA(no_thread_safety_analysis)

struct DP_CAPABILITY dp_mutex {
        pthread_mutex_t m;
#ifndef NDEBUG
        pthread_t owner;
        bool held;
#endif
};

static inline void dp_mutex_init(struct dp_mutex *l)
{
        pthread_mutex_init(&l->m, NULL);
#ifndef NDEBUG
        l->held = false;
#endif
}

static inline void dp_mutex_destroy(struct dp_mutex *l)
{
#ifndef NDEBUG
        assert(!l->held);
#endif
        pthread_mutex_destroy(&l->m);
}

static inline void dp_mutex_lock(struct dp_mutex *l) DP_ACQUIRE(l) DP_NO_TSA
{
        pthread_mutex_lock(&l->m);
#ifndef NDEBUG
        l->owner = pthread_self();
        __atomic_store_n(&l->held, true, __ATOMIC_RELAXED);
#endif
}

/* true with the lock */
static inline bool dp_mutex_trylock(struct dp_mutex *l) DP_TRY_ACQUIRE(true, l) DP_NO_TSA
{
        if (pthread_mutex_trylock(&l->m) != 0)
                return false;
#ifndef NDEBUG
        l->owner = pthread_self();
        __atomic_store_n(&l->held, true, __ATOMIC_RELAXED);
#endif
        return true;
}

static inline void dp_mutex_unlock(struct dp_mutex *l) DP_RELEASE(l) DP_NO_TSA
{
#ifndef NDEBUG
        assert(l->held && pthread_equal(l->owner, pthread_self()));
        __atomic_store_n(&l->held, false, __ATOMIC_RELAXED);
#endif
        pthread_mutex_unlock(&l->m);
}

/* The caller holds l (debug builds check; the analysis takes it as given from here). */
static inline void dp_assert_held(const struct dp_mutex *l) DP_ASSERT_HELD(l) DP_NO_TSA
{
#ifndef NDEBUG
        assert(__atomic_load_n(&l->held, __ATOMIC_RELAXED) && pthread_equal(l->owner, pthread_self()));
#else
        (void)l;
#endif
}

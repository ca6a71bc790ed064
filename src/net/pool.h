/* A fixed pool of worker threads for blocking work (SQLite, container reads, Argon2id)
 * so that the event loop never blocks. Each worker has its own context (e.g. its own
 * read-only instance handle: SQLite connections are per thread). Work runs on a worker;
 * its completion callback runs afterwards on the loop thread. */
#ifndef ARCA_NET_POOL_H
#define ARCA_NET_POOL_H

#include <stddef.h>

#include "lib/error.h"

struct event_base;
typedef struct arca_pool arca_pool;

/* Creates a worker's context; NULL is a valid context. Runs on the worker thread. */
typedef void *(*arca_pool_init_fn)(void *arg);
typedef void (*arca_pool_fini_fn)(void *thread_ctx);
/* Runs on a worker thread. */
typedef void (*arca_pool_work_fn)(void *thread_ctx, void *job);
/* Runs on the loop thread after work returned; may be NULL. */
typedef void (*arca_pool_done_fn)(void *job);

/* evthread_use_pthreads() must have been called before base was created. */
arca_status arca_pool_new(struct event_base *base, unsigned threads, arca_pool_init_fn init,
                          arca_pool_fini_fn fini, void *arg, arca_pool **out, arca_error *err);
/* Waits for queued and running work to finish (their done callbacks are not run), stops
 * the workers and frees. Accepts NULL. */
void arca_pool_free(arca_pool **p);
/* Queues job. Never blocks for long; ARCA_ERR_LIMIT if ARCA_POOL_MAX_QUEUE jobs are waiting. */
arca_status arca_pool_submit(arca_pool *p, arca_pool_work_fn work, arca_pool_done_fn done,
                             void *job, arca_error *err);
/* Jobs queued or running (for status output). */
size_t arca_pool_pending(arca_pool *p);

#endif

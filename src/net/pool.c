/* Worker pool: one mutex-protected FIFO of jobs, one of finished jobs handed back to the
 * loop through an event made active from the worker (libevent's thread support). */
#include "net/pool.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lib/limits.h"

typedef struct pool_job {
	struct pool_job *next;
	arca_pool_work_fn work;
	arca_pool_done_fn done;
	void *job;
} pool_job;

typedef struct {
	pool_job *head, *tail;
	size_t n;
} pool_queue;

struct arca_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pool_queue queued, done;
	size_t running;
	bool stopping;
	pthread_t *threads;
	unsigned n_threads;
	arca_pool_init_fn init;
	arca_pool_fini_fn fini;
	void *arg;
	struct event *done_ev;
};

static void q_push(pool_queue *q, pool_job *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->n++;
}

static pool_job *q_pop(pool_queue *q)
{
	pool_job *j = q->head;
	if (j == NULL)
		return NULL;
	q->head = j->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->n--;
	return j;
}

static void *worker_main(void *arg)
{
	arca_pool *p = arg;
	void *ctx = p->init != NULL ? p->init(p->arg) : NULL;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		pool_job *j;
		while (p->queued.head == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		j = q_pop(&p->queued);
		if (j == NULL)
			break; /* stopping and nothing left */
		p->running++;
		pthread_mutex_unlock(&p->mu);
		j->work(ctx, j->job);
		pthread_mutex_lock(&p->mu);
		p->running--;
		if (p->stopping) {
			free(j);
		} else {
			q_push(&p->done, j);
			event_active(p->done_ev, EV_READ, 0);
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (p->fini != NULL)
		p->fini(ctx);
	return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	arca_pool *p = arg;
	pool_queue q;
	pool_job *j;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&p->mu);
	q = p->done;
	p->done.head = p->done.tail = NULL;
	p->done.n = 0;
	pthread_mutex_unlock(&p->mu);
	while ((j = q_pop(&q)) != NULL) {
		if (j->done != NULL)
			j->done(j->job);
		free(j);
	}
}

arca_status arca_pool_new(struct event_base *base, unsigned threads, arca_pool_init_fn init,
                          arca_pool_fini_fn fini, void *arg, arca_pool **out, arca_error *err)
{
	arca_pool *p;
	*out = NULL;
	if (threads == 0 || threads > ARCA_POOL_MAX_THREADS)
		return arca_error_set(err, ARCA_ERR_INVALID, "worker threads must be 1..%u",
		                      ARCA_POOL_MAX_THREADS);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->init = init;
	p->fini = fini;
	p->arg = arg;
	p->done_ev = event_new(base, -1, 0, on_done, p);
	p->threads = calloc(threads, sizeof(*p->threads));
	if (p->done_ev == NULL || p->threads == NULL) {
		arca_pool_free(&p);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	for (unsigned i = 0; i < threads; i++) {
		int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
		if (rc != 0) {
			arca_pool_free(&p);
			return arca_error_errno(err, rc, "cannot start worker thread");
		}
		p->n_threads++;
	}
	*out = p;
	return ARCA_OK;
}

void arca_pool_free(arca_pool **pp)
{
	arca_pool *p = pp != NULL ? *pp : NULL;
	pool_job *j;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	while ((j = q_pop(&p->done)) != NULL)
		free(j);
	if (p->done_ev != NULL)
		event_free(p->done_ev);
	free(p->threads);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
	*pp = NULL;
}

arca_status arca_pool_submit(arca_pool *p, arca_pool_work_fn work, arca_pool_done_fn done,
                             void *job, arca_error *err)
{
	pool_job *j;
	pthread_mutex_lock(&p->mu);
	if (p->queued.n >= ARCA_POOL_MAX_QUEUE || p->stopping) {
		pthread_mutex_unlock(&p->mu);
		return arca_error_set(err, ARCA_ERR_LIMIT, "server busy: too many queued requests");
	}
	pthread_mutex_unlock(&p->mu);
	j = malloc(sizeof(*j));
	if (j == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	j->work = work;
	j->done = done;
	j->job = job;
	pthread_mutex_lock(&p->mu);
	q_push(&p->queued, j);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return ARCA_OK;
}

size_t arca_pool_pending(arca_pool *p)
{
	size_t n;
	pthread_mutex_lock(&p->mu);
	n = p->queued.n + p->running + p->done.n;
	pthread_mutex_unlock(&p->mu);
	return n;
}

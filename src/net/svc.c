#include "net/svc.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/limits.h"
#include "lib/log.h"

typedef struct {
	arca_svc_change_fn fn;
	void *arg;
	int id;
} svc_listener;

struct arca_svc {
	struct event_base *base;
	char base_dir[ARCA_PATH_MAX];
	char key_file[ARCA_PATH_MAX];
	arca_pool *pool;
	arca_throttle *throttle;
	struct event *change_ev;
	svc_listener *listeners;
	size_t n_listeners, cap_listeners;
	int next_id;
};

typedef struct {
	arca_svc_work_fn work;
	arca_pool_done_fn done;
	void *job;
} svc_job;

static void *worker_init(void *arg)
{
	arca_svc *svc = arg;
	arca_svc_handles *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	if (arca_instance_open(svc->base_dir, svc->key_file, ARCA_INSTANCE_READONLY, &h->inst,
	                       &h->open_err) != ARCA_OK ||
	    arca_users_open(svc->base_dir, &h->users, &h->open_err) != ARCA_OK) {
		arca_log(ARCA_LOG_ERROR, "svc", "worker cannot open the instance: %s", h->open_err.msg);
		arca_instance_close(&h->inst);
	}
	return h;
}

static void worker_fini(void *ctx)
{
	arca_svc_handles *h = ctx;
	if (h == NULL)
		return;
	arca_instance_close(&h->inst);
	arca_users_close(&h->users);
	free(h);
}

static void run_job(void *ctx, void *arg)
{
	svc_job *j = arg;
	arca_svc_handles none = {0};
	if (ctx == NULL)
		arca_error_set(&none.open_err, ARCA_ERR_NOMEM, "out of memory");
	j->work(ctx != NULL ? ctx : &none, j->job);
}

static void job_done(void *arg)
{
	svc_job *j = arg;
	if (j->done != NULL)
		j->done(j->job);
	free(j);
}

static void on_change(evutil_socket_t fd, short what, void *arg)
{
	arca_svc *svc = arg;
	(void)fd;
	(void)what;
	/* listeners may unregister themselves (or others) while being called */
	for (size_t i = 0; i < svc->n_listeners; i++) {
		int id = svc->listeners[i].id;
		svc->listeners[i].fn(svc->listeners[i].arg);
		if (i < svc->n_listeners && svc->listeners[i].id != id)
			i--;
	}
}

arca_status arca_svc_new(struct event_base *base, const arca_svc_config *cfg, arca_svc **out,
                         arca_error *err)
{
	arca_svc *svc;
	arca_status st;
	*out = NULL;
	svc = calloc(1, sizeof(*svc));
	if (svc == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	svc->base = base;
	if (snprintf(svc->base_dir, sizeof(svc->base_dir), "%s", cfg->base) >= (int)sizeof(svc->base_dir) ||
	    snprintf(svc->key_file, sizeof(svc->key_file), "%s", cfg->key_file) >=
	        (int)sizeof(svc->key_file)) {
		free(svc);
		return arca_error_set(err, ARCA_ERR_INVALID, "path too long");
	}
	svc->change_ev = event_new(base, -1, 0, on_change, svc);
	if (svc->change_ev == NULL) {
		free(svc);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	st = arca_throttle_new(&svc->throttle, err);
	if (st == ARCA_OK)
		st = arca_pool_new(base, cfg->workers ? cfg->workers : 4, worker_init, worker_fini, svc,
		                   &svc->pool, err);
	if (st != ARCA_OK) {
		arca_svc_free(&svc);
		return st;
	}
	*out = svc;
	return ARCA_OK;
}

void arca_svc_free(arca_svc **psvc)
{
	arca_svc *svc = psvc != NULL ? *psvc : NULL;
	if (svc == NULL)
		return;
	arca_pool_free(&svc->pool);
	arca_throttle_free(&svc->throttle);
	if (svc->change_ev != NULL)
		event_free(svc->change_ev);
	free(svc->listeners);
	free(svc);
	*psvc = NULL;
}

struct event_base *arca_svc_base(arca_svc *svc)
{
	return svc->base;
}

const char *arca_svc_base_dir(const arca_svc *svc)
{
	return svc->base_dir;
}

const char *arca_svc_key_file(const arca_svc *svc)
{
	return svc->key_file;
}

arca_status arca_svc_submit(arca_svc *svc, arca_svc_work_fn work, arca_pool_done_fn done, void *job,
                            arca_error *err)
{
	svc_job *j = malloc(sizeof(*j));
	arca_status st;
	if (j == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	j->work = work;
	j->done = done;
	j->job = job;
	st = arca_pool_submit(svc->pool, run_job, job_done, j, err);
	if (st != ARCA_OK)
		free(j);
	return st;
}

arca_throttle *arca_svc_throttle(arca_svc *svc)
{
	return svc->throttle;
}

int arca_svc_on_change(arca_svc *svc, arca_svc_change_fn fn, void *arg)
{
	if (svc->n_listeners == svc->cap_listeners) {
		size_t cap = svc->cap_listeners ? svc->cap_listeners * 2 : 16;
		svc_listener *l = realloc(svc->listeners, cap * sizeof(*l));
		if (l == NULL)
			return -1;
		svc->listeners = l;
		svc->cap_listeners = cap;
	}
	svc->listeners[svc->n_listeners].fn = fn;
	svc->listeners[svc->n_listeners].arg = arg;
	svc->listeners[svc->n_listeners].id = ++svc->next_id;
	svc->n_listeners++;
	return svc->next_id;
}

void arca_svc_off_change(arca_svc *svc, int id)
{
	for (size_t i = 0; i < svc->n_listeners; i++) {
		if (svc->listeners[i].id == id) {
			svc->listeners[i] = svc->listeners[--svc->n_listeners];
			return;
		}
	}
}

void arca_svc_notify_change(arca_svc *svc)
{
	event_active(svc->change_ev, EV_READ, 0);
}

uint64_t arca_svc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

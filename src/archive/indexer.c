#include "archive/indexer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

#define QUEUE_JOBS 256
#define QUEUE_TEXT_MAX (48u * 1024u * 1024u) /* bounds memory held by queued documents */

typedef enum { JOB_DOC, JOB_FOLDER, JOB_COMMIT, JOB_ROLLBACK, JOB_STOP } job_kind;

typedef struct {
	job_kind kind;
	arca_index *ix;
	uint64_t msg_id;
	uint32_t folder_id;
	int64_t date;
	uint64_t size;
	uint64_t batch;
	arca_mime_info *info;
	arca_index_xtext x;
	size_t text;
} job;

typedef struct {
	arca_index *ix;
	bool poisoned; /* a write failed: never commit this index again in this session */
} txn;

struct inst_indexer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t not_full, not_empty, idle;
	job q[QUEUE_JOBS];
	size_t head, n;
	size_t text;
	bool busy;
	/* worker-only state */
	txn *txns;
	size_t n_txns, cap_txns;
};

static size_t job_text(const arca_mime_info *info, const arca_index_xtext *x)
{
	size_t n = (info ? info->body_text_len + info->attachment_text_len + 1024 : 0) +
	           (x ? x->headers_len + x->body_len : 0);
	for (int i = 0; x != NULL && i < ARCA_INDEX_X_FIELDS; i++)
		n += x->fields_len[i];
	return n;
}

static void push(inst_indexer *w, const job *j)
{
	pthread_mutex_lock(&w->mu);
	while (w->n == QUEUE_JOBS || (w->n > 0 && w->text + j->text > QUEUE_TEXT_MAX))
		pthread_cond_wait(&w->not_full, &w->mu);
	w->q[(w->head + w->n) % QUEUE_JOBS] = *j;
	w->n++;
	w->text += j->text;
	pthread_cond_signal(&w->not_empty);
	pthread_mutex_unlock(&w->mu);
}

static txn *txn_for(inst_indexer *w, arca_index *ix)
{
	arca_error err;
	for (size_t i = 0; i < w->n_txns; i++)
		if (w->txns[i].ix == ix)
			return &w->txns[i];
	if (w->n_txns == w->cap_txns) {
		size_t ncap = w->cap_txns ? w->cap_txns * 2 : 8;
		txn *nt = realloc(w->txns, ncap * sizeof(*nt));
		if (nt == NULL)
			return NULL;
		w->txns = nt;
		w->cap_txns = ncap;
	}
	w->txns[w->n_txns].ix = ix;
	w->txns[w->n_txns].poisoned = false;
	if (arca_index_begin(ix, &err) != ARCA_OK) {
		arca_log(ARCA_LOG_WARN, "indexer", "cannot begin index transaction: %s", err.msg);
		w->txns[w->n_txns].poisoned = true;
	}
	return &w->txns[w->n_txns++];
}

static void poison(txn *t, const char *what, const arca_error *err)
{
	if (!t->poisoned)
		arca_log(ARCA_LOG_WARN, "indexer", "%s failed (%s); the index will catch up on the next open",
		         what, err->msg);
	if (!t->poisoned)
		arca_index_rollback(t->ix);
	t->poisoned = true;
}

/* Poisoned entries stay in the list (never committed again); others are closed out. */
static void finish(inst_indexer *w, bool commit, uint64_t batch)
{
	size_t keep = 0;
	for (size_t i = 0; i < w->n_txns; i++) {
		txn *t = &w->txns[i];
		if (t->poisoned) {
			w->txns[keep++] = *t;
			continue;
		}
		if (commit) {
			arca_error err;
			if (arca_index_commit(t->ix, batch, &err) != ARCA_OK) {
				poison(t, "index commit", &err);
				w->txns[keep++] = *t;
			}
		} else {
			arca_index_rollback(t->ix);
		}
	}
	w->n_txns = keep;
}

static void run_job(inst_indexer *w, job *j)
{
	arca_error err;
	txn *t;
	switch (j->kind) {
	case JOB_DOC:
	case JOB_FOLDER:
		t = txn_for(w, j->ix);
		if (t == NULL || t->poisoned)
			break;
		if (j->kind == JOB_DOC) {
			arca_index_doc doc = {.msg_id = j->msg_id, .folder_id = j->folder_id, .date = j->date,
			                      .size = j->size, .info = j->info, .x = &j->x};
			if (arca_index_add(j->ix, &doc, &err) != ARCA_OK)
				poison(t, "index add", &err);
		} else {
			arca_status st = arca_index_add_folder(j->ix, j->msg_id, j->folder_id, &err);
			if (st == ARCA_ERR_NOTFOUND)
				arca_log(ARCA_LOG_WARN, "indexer",
				         "message %llu is not indexed; run arcactl rebuild-index",
				         (unsigned long long)j->msg_id);
			else if (st != ARCA_OK)
				poison(t, "index add folder", &err);
		}
		break;
	case JOB_COMMIT: finish(w, true, j->batch); break;
	case JOB_ROLLBACK: finish(w, false, 0); break;
	case JOB_STOP: break;
	}
	arca_mime_info_free(&j->info);
	arca_index_xtext_free(&j->x);
}

static void *worker(void *arg)
{
	inst_indexer *w = arg;
	for (;;) {
		job j;
		pthread_mutex_lock(&w->mu);
		while (w->n == 0) {
			w->busy = false;
			pthread_cond_broadcast(&w->idle);
			pthread_cond_wait(&w->not_empty, &w->mu);
		}
		w->busy = true;
		j = w->q[w->head];
		pthread_mutex_unlock(&w->mu);
		run_job(w, &j);
		pthread_mutex_lock(&w->mu);
		w->head = (w->head + 1) % QUEUE_JOBS;
		w->n--;
		w->text -= j.text;
		pthread_cond_signal(&w->not_full);
		pthread_mutex_unlock(&w->mu);
		if (j.kind == JOB_STOP)
			break;
	}
	pthread_mutex_lock(&w->mu);
	w->busy = false;
	pthread_cond_broadcast(&w->idle);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

arca_status inst_indexer_start(inst_indexer **out, arca_error *err)
{
	inst_indexer *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (w == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->not_full, NULL);
	pthread_cond_init(&w->not_empty, NULL);
	pthread_cond_init(&w->idle, NULL);
	if (pthread_create(&w->thread, NULL, worker, w) != 0) {
		free(w);
		return arca_error_set(err, ARCA_ERR_NOMEM, "cannot start the indexing thread");
	}
	*out = w;
	return ARCA_OK;
}

void inst_indexer_doc(inst_indexer *w, arca_index *ix, uint64_t msg_id, uint32_t folder_id,
                      int64_t date, uint64_t size, arca_mime_info *info, arca_index_xtext *x)
{
	job j = {.kind = JOB_DOC, .ix = ix, .msg_id = msg_id, .folder_id = folder_id, .date = date,
	         .size = size, .info = info, .text = job_text(info, x)};
	if (x != NULL) {
		j.x = *x; /* taken over */
		memset(x, 0, sizeof(*x));
	}
	push(w, &j);
}

void inst_indexer_folder(inst_indexer *w, arca_index *ix, uint64_t msg_id, uint32_t folder_id)
{
	job j = {.kind = JOB_FOLDER, .ix = ix, .msg_id = msg_id, .folder_id = folder_id};
	push(w, &j);
}

void inst_indexer_commit(inst_indexer *w, uint64_t batch)
{
	job j = {.kind = JOB_COMMIT, .batch = batch};
	push(w, &j);
}

void inst_indexer_rollback(inst_indexer *w)
{
	job j = {.kind = JOB_ROLLBACK};
	push(w, &j);
}

void inst_indexer_sync(inst_indexer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->n > 0 || w->busy)
		pthread_cond_wait(&w->idle, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

void inst_indexer_stop(inst_indexer **wp)
{
	inst_indexer *w = *wp;
	job j = {.kind = JOB_STOP};
	if (w == NULL)
		return;
	push(w, &j);
	pthread_join(w->thread, NULL);
	/* anything still open was never committed: roll it back */
	for (size_t i = 0; i < w->n_txns; i++)
		if (!w->txns[i].poisoned)
			arca_index_rollback(w->txns[i].ix);
	free(w->txns);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->not_full);
	pthread_cond_destroy(&w->not_empty);
	pthread_cond_destroy(&w->idle);
	free(w);
	*wp = NULL;
}

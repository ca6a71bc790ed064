/* The job thread: archive-changing and long operations run here one at a time, each with a
 * writable instance handle of its own (a store has one writer). A job is polled by token
 * (/api/get-status) and cancelled by a flag it checks between messages or stores: what was
 * committed before stays. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_int.h"
#include "crypto/crypto.h"
#include "lib/fs.h"
#include "lib/log.h"
#include "sources/files.h"

static const char *state_name(arca_api_job_state s)
{
	switch (s) {
	case ARCA_API_JOB_QUEUED: return "queued";
	case ARCA_API_JOB_RUNNING: return "running";
	case ARCA_API_JOB_SUCCEEDED: return "succeeded";
	case ARCA_API_JOB_FAILED: return "failed";
	case ARCA_API_JOB_CANCELLED: return "cancelled";
	}
	return "?";
}

static bool finished(const arca_api_job *j)
{
	return j->state >= ARCA_API_JOB_SUCCEEDED;
}

static void job_free(arca_api_job *j)
{
	if (j == NULL)
		return;
	if (j->download[0])
		unlink(j->download);
	json_decref(j->args);
	json_decref(j->result);
	free(j);
}

static void remove_locked(arca_api *api, size_t i)
{
	memmove(&api->jobs[i], &api->jobs[i + 1], (api->n_jobs - i - 1) * sizeof(api->jobs[0]));
	api->n_jobs--;
}

bool arca_api_job_cancelled(arca_api_job *j)
{
	return atomic_load(&j->cancel);
}

void arca_api_job_progress(arca_api_job *j, uint64_t done, uint64_t total, const char *unit,
                           uint64_t messages, uint64_t committed)
{
	pthread_mutex_lock(&j->api->mu);
	j->done = done;
	j->total = total;
	j->unit = unit;
	j->messages = messages;
	j->committed = committed;
	pthread_mutex_unlock(&j->api->mu);
}

static void run_job(arca_api *api, arca_api_job *j)
{
	arca_error err = {0};
	arca_status st;
	bool cancelled;
	st = arca_instance_open(arca_svc_base_dir(api->svc), arca_svc_key_file(api->svc), 0, &j->in,
	                        &err);
	if (st == ARCA_OK)
		st = j->cmd->job(j, &err);
	arca_instance_close(&j->in);
	if (j->cmd->flags & ARCA_API_STORES_CHANGE)
		atomic_fetch_add(&api->store_gen, 1);
	cancelled = atomic_load(&j->cancel);
	pthread_mutex_lock(&api->mu);
	j->t_end = arca_svc_now_ms();
	if (st == ARCA_OK) {
		j->state = cancelled ? ARCA_API_JOB_CANCELLED : ARCA_API_JOB_SUCCEEDED;
	} else {
		j->state = ARCA_API_JOB_FAILED;
		j->code = err.status != ARCA_OK ? (int)err.status : (int)st;
		snprintf(j->msg, sizeof(j->msg), "%s", err.msg[0] ? err.msg : arca_status_name(st));
	}
	pthread_mutex_unlock(&api->mu);
	arca_log(st == ARCA_OK ? ARCA_LOG_INFO : ARCA_LOG_WARN, "api", "job %.8s %s by %s: %s%s%s",
	         j->token, j->cmd->name, j->user, state_name(j->state), st == ARCA_OK ? "" : ": ",
	         st == ARCA_OK ? "" : j->msg);
}

static void *job_main(void *arg)
{
	arca_api *api = arg;
	pthread_mutex_lock(&api->mu);
	for (;;) {
		arca_api_job *j = NULL;
		while (!api->stopping) {
			for (size_t i = 0; i < api->n_jobs && j == NULL; i++)
				if (api->jobs[i]->state == ARCA_API_JOB_QUEUED)
					j = api->jobs[i];
			if (j != NULL)
				break;
			pthread_cond_wait(&api->cv, &api->mu);
		}
		if (j == NULL)
			break;
		j->state = ARCA_API_JOB_RUNNING;
		j->t_start = arca_svc_now_ms();
		api->running = j;
		pthread_mutex_unlock(&api->mu);
		run_job(api, j);
		pthread_mutex_lock(&api->mu);
		api->running = NULL;
		pthread_cond_broadcast(&api->cv);
	}
	pthread_mutex_unlock(&api->mu);
	return NULL;
}

arca_status arca_api_jobs_start(arca_api *api, arca_error *err)
{
	int rc = pthread_create(&api->thread, NULL, job_main, api);
	if (rc != 0)
		return arca_error_errno(err, rc, "cannot start the job thread");
	api->thread_started = true;
	return ARCA_OK;
}

void arca_api_jobs_stop(arca_api *api)
{
	pthread_mutex_lock(&api->mu);
	api->stopping = true;
	for (size_t i = 0; i < api->n_jobs; i++) {
		atomic_store(&api->jobs[i]->cancel, true);
		if (api->jobs[i]->state == ARCA_API_JOB_QUEUED) {
			api->jobs[i]->state = ARCA_API_JOB_CANCELLED;
			api->jobs[i]->t_end = arca_svc_now_ms();
		}
	}
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
	if (api->thread_started)
		pthread_join(api->thread, NULL);
	api->thread_started = false;
	pthread_mutex_lock(&api->mu);
	/* serial submitters (if any) wake up and see their job cancelled */
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
}

/* Frees what is left: only once no worker can be waiting on a job. */
static void jobs_free_all(arca_api *api)
{
	for (size_t i = 0; i < api->n_jobs; i++)
		job_free(api->jobs[i]);
	api->n_jobs = 0;
}

static arca_status make_room_locked(arca_api *api, arca_error *err)
{
	uint64_t now = arca_svc_now_ms();
	size_t oldest = SIZE_MAX;
	for (size_t i = 0; i < api->n_jobs;) {
		arca_api_job *j = api->jobs[i];
		if (finished(j) && !j->serial && now - j->t_end > ARCA_API_JOB_KEEP_MS) {
			job_free(j);
			remove_locked(api, i);
			continue;
		}
		if (finished(j) && !j->serial && oldest == SIZE_MAX)
			oldest = i;
		i++;
	}
	if (api->n_jobs < ARCA_API_MAX_JOBS)
		return ARCA_OK;
	if (oldest == SIZE_MAX)
		return arca_error_set(err, ARCA_ERR_LIMIT, "too many jobs queued (%u)", ARCA_API_MAX_JOBS);
	job_free(api->jobs[oldest]);
	remove_locked(api, oldest);
	return ARCA_OK;
}

arca_status arca_api_job_submit(arca_api_call *c, arca_error *err)
{
	arca_api *api = c->api;
	arca_api_job *j = calloc(1, sizeof(*j));
	uint8_t r[ARCA_API_ID_HEX / 2];
	bool serial = (c->cmd->flags & ARCA_API_SERIAL) != 0;
	if (j == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	j->api = api;
	j->cmd = c->cmd;
	j->args = json_deep_copy(c->args);
	j->privs = c->privs;
	j->serial = serial;
	j->state = ARCA_API_JOB_QUEUED;
	j->t_created = arca_svc_now_ms();
	j->unit = "messages";
	atomic_init(&j->cancel, false);
	snprintf(j->user, sizeof(j->user), "%s", c->user);
	arca_crypto_random(r, sizeof(r));
	arca_hex_encode(r, sizeof(r), j->token);
	if (j->args == NULL) {
		free(j);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_lock(&api->mu);
	if (api->stopping) {
		pthread_mutex_unlock(&api->mu);
		job_free(j);
		c->code = ARCA_API_E_BUSY;
		return arca_error_set(err, ARCA_ERR_STATE, "the server is shutting down");
	}
	if (serial) {
		const arca_api_job *other = api->running;
		for (size_t i = 0; i < api->n_jobs && other == NULL; i++)
			if (api->jobs[i]->state == ARCA_API_JOB_QUEUED)
				other = api->jobs[i];
		if (other != NULL) {
			arca_error_set(err, ARCA_ERR_STATE,
			               "%s must wait: job %s (%s) is %s; try again when it has finished",
			               c->cmd->name, other->token, other->cmd->name, state_name(other->state));
			pthread_mutex_unlock(&api->mu);
			job_free(j);
			c->code = ARCA_API_E_BUSY;
			return ARCA_ERR_STATE;
		}
	}
	if (make_room_locked(api, err) != ARCA_OK) {
		pthread_mutex_unlock(&api->mu);
		job_free(j);
		c->code = ARCA_API_E_BUSY;
		return ARCA_ERR_LIMIT;
	}
	api->jobs[api->n_jobs++] = j;
	pthread_cond_broadcast(&api->cv);
	if (!serial) {
		snprintf(c->token, sizeof(c->token), "%s", j->token);
		c->http = 202;
		pthread_mutex_unlock(&api->mu);
		return ARCA_OK;
	}
	while (!finished(j))
		pthread_cond_wait(&api->cv, &api->mu);
	for (size_t i = 0; i < api->n_jobs; i++)
		if (api->jobs[i] == j)
			remove_locked(api, i);
	pthread_mutex_unlock(&api->mu);
	if (j->state == ARCA_API_JOB_SUCCEEDED) {
		c->result = j->result ? json_incref(j->result) : json_null();
		job_free(j);
		return ARCA_OK;
	}
	if (j->state == ARCA_API_JOB_CANCELLED)
		arca_error_set(err, ARCA_ERR_STATE, "%s was cancelled: the server is shutting down",
		               c->cmd->name);
	else
		arca_error_set(err, (arca_status)j->code, "%s", j->msg);
	job_free(j);
	return err->status;
}

static json_t *envelope_locked(const arca_api_job *j)
{
	uint64_t now = arca_svc_now_ms();
	uint64_t end = finished(j) ? j->t_end : now;
	uint64_t el = j->t_start ? end - j->t_start : 0;
	double rate = el ? (double)j->messages * 1000.0 / (double)el : 0.0;
	json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:b,s:{s:I,s:I,s:s,s:I,s:I,s:f,s:I}}", "status",
	                      state_name(j->state), "token", j->token, "command", j->cmd->name,
	                      "userName", j->user, "cancelRequested", atomic_load(&j->cancel),
	                      "progress", "done", (json_int_t)j->done, "total", (json_int_t)j->total,
	                      "unit", j->unit ? j->unit : "messages", "messages",
	                      (json_int_t)j->messages, "committed", (json_int_t)j->committed, "rate",
	                      rate, "elapsedMs", (json_int_t)el);
	if (e == NULL)
		return NULL;
	if (finished(j) && j->result != NULL)
		json_object_set(e, "result", j->result);
	if (j->state == ARCA_API_JOB_FAILED)
		json_object_set_new(e, "error", json_pack("{s:s,s:s}", "code", arca_api_code_name(j->code),
		                                          "message", j->msg));
	return e;
}

static arca_api_job *find_locked(arca_api *api, const char *token, const char *user,
                                 uint32_t privs, arca_error *err)
{
	for (size_t i = 0; i < api->n_jobs; i++) {
		arca_api_job *j = api->jobs[i];
		if (j->serial || strcmp(j->token, token) != 0)
			continue;
		/* another user's job looks like no job */
		if (!(privs & ARCA_PRIV_ADMIN) && strcmp(j->user, user) != 0)
			break;
		return j;
	}
	arca_error_set(err, ARCA_ERR_NOTFOUND, "no job with this token");
	return NULL;
}

json_t *arca_api_job_status(arca_api *api, const char *token, const char *user, uint32_t privs,
                            bool cancel, arca_error *err)
{
	arca_api_job *j;
	json_t *e = NULL;
	pthread_mutex_lock(&api->mu);
	j = find_locked(api, token, user, privs, err);
	if (j != NULL && cancel && !finished(j)) {
		atomic_store(&j->cancel, true);
		if (j->state == ARCA_API_JOB_QUEUED) {
			j->state = ARCA_API_JOB_CANCELLED;
			j->t_end = arca_svc_now_ms();
		}
	}
	if (j != NULL && (e = envelope_locked(j)) == NULL)
		arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	pthread_mutex_unlock(&api->mu);
	return e;
}

arca_status arca_api_job_download(arca_api *api, const char *token, const char *user,
                                  uint32_t privs, char *path, size_t psz, char *name, size_t nsz,
                                  arca_error *err)
{
	arca_api_job *j;
	arca_status st = ARCA_OK;
	pthread_mutex_lock(&api->mu);
	j = find_locked(api, token, user, privs, err);
	if (j == NULL)
		st = ARCA_ERR_NOTFOUND;
	else if (!finished(j))
		st = arca_error_set(err, ARCA_ERR_STATE, "the job has not finished yet");
	else if (j->download[0] == '\0')
		st = arca_error_set(err, ARCA_ERR_NOTFOUND, "this job has nothing to download");
	if (st == ARCA_OK) {
		snprintf(path, psz, "%s", j->download);
		snprintf(name, nsz, "%s", j->download_name);
	}
	pthread_mutex_unlock(&api->mu);
	return st;
}

arca_status arca_api_h_get_jobs(arca_api_call *c, arca_error *err)
{
	arca_api *api = c->api;
	c->result = json_array();
	pthread_mutex_lock(&api->mu);
	for (size_t i = 0; i < api->n_jobs; i++) {
		arca_api_job *j = api->jobs[i];
		if (j->serial || (!(c->privs & ARCA_PRIV_ADMIN) && strcmp(j->user, c->user) != 0))
			continue;
		json_array_append_new(c->result, envelope_locked(j));
	}
	pthread_mutex_unlock(&api->mu);
	return c->result ? ARCA_OK : arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
}

/* ---- import ---- */

typedef struct {
	arca_api_job *j;
	arca_ingest *ing;
	const arca_source *src;
	uint64_t count;
} import_ctx;

static void import_progress(import_ctx *x)
{
	int is_bytes = 0;
	uint64_t total = arca_source_total(x->src, &is_bytes);
	const arca_ingest_stats *s = arca_ingest_get_stats(x->ing);
	arca_api_job_progress(x->j, is_bytes ? arca_source_done(x->src) : x->count, total,
	                      is_bytes ? "bytes" : "messages", x->count, s->committed);
}

static void on_commit(void *ctx, const arca_ingest_item *items, size_t n)
{
	import_ctx *x = ctx;
	(void)items;
	(void)n;
	if (x->ing != NULL)
		import_progress(x);
	/* IMAP IDLE sessions announce the new messages */
	arca_svc_notify_change(x->j->api->svc);
}

static arca_status sniff_format(const char *path, arca_source_format *fmt)
{
	char head[5];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	if (fd < 0)
		return ARCA_ERR_IO;
	n = read(fd, head, sizeof(head));
	close(fd);
	*fmt = (n == 5 && memcmp(head, "From ", 5) == 0) ? ARCA_SRC_MBOX : ARCA_SRC_EML;
	return ARCA_OK;
}

arca_status arca_api_j_import(arca_api_job *j, arca_error *err)
{
	const char *path = arca_api_str(j->args, "path"), *file = arca_api_str(j->args, "_file");
	const char *archive = arca_api_str(j->args, "archive"), *folder = arca_api_str(j->args, "folder");
	const char *fmt_s = arca_api_str(j->args, "format");
	json_t *batch_v = json_object_get(j->args, "batchSize"), *errors = json_array();
	size_t batch = json_is_integer(batch_v) ? (size_t)json_integer_value(batch_v) : 1000;
	const char *src_path = path ? path : file;
	arca_source_format fmt = ARCA_SRC_AUTO;
	arca_source *src = NULL;
	import_ctx x = {.j = j};
	uint32_t aid, top_id;
	char top[ARCA_FOLDER_MAX];
	uint64_t src_errors = 0, t0 = arca_svc_now_ms();
	arca_status st;
	arca_error e2 = {0};
	const arca_ingest_stats *s;
	if (fmt_s != NULL)
		arca_source_format_parse(fmt_s, &fmt);
	if (file != NULL && fmt == ARCA_SRC_AUTO)
		sniff_format(file, &fmt);
	if ((st = arca_source_open(src_path, fmt, &src, err)) != ARCA_OK)
		goto out;
	x.src = src;
	if (folder != NULL) {
		snprintf(top, sizeof(top), "%s", folder);
	} else if (file != NULL) {
		snprintf(top, sizeof(top), "Import");
	} else {
		arca_source_default_folder(src, path, top, sizeof(top)); /* like arcactl import */
	}
	if ((st = arca_instance_archive_id(j->in, archive, true, &aid, err)) != ARCA_OK ||
	    (st = arca_instance_folder_id(j->in, aid, top, true, &top_id, err)) != ARCA_OK ||
	    (st = arca_ingest_begin(j->in, batch, on_commit, &x, &x.ing, err)) != ARCA_OK)
		goto out;
	for (;;) {
		arca_source_msg m;
		uint32_t fid = top_id;
		const char *warning = NULL;
		if (arca_api_job_cancelled(j))
			break;
		st = arca_source_next(src, &m, &e2);
		if (st == ARCA_ERR_NOTFOUND) {
			st = ARCA_OK;
			break;
		}
		if (st != ARCA_OK) {
			src_errors++;
			if (json_array_size(errors) < 20)
				json_array_append_new(errors, arca_api_jstr(e2.msg));
			st = ARCA_OK;
			continue;
		}
		if (m.subfolder[0] != '\0') {
			char sub[ARCA_FOLDER_MAX * 2];
			snprintf(sub, sizeof(sub), "%s/%s", top, m.subfolder);
			if (arca_instance_folder_id(j->in, aid, sub, true, &fid, &e2) != ARCA_OK) {
				src_errors++;
				continue;
			}
		}
		st = arca_ingest_add(x.ing, m.data, m.len, aid, fid, &warning, &e2);
		if (st != ARCA_OK && st != ARCA_ERR_LIMIT) {
			/* fatal (disk full, I/O): the staged batch is gone, committed ones stay */
			arca_error_set(err, st, "import stopped at %s: %s", m.origin, e2.msg);
			break;
		}
		if (st != ARCA_OK) {
			if (json_array_size(errors) < 20) {
				char line[ARCA_ERROR_MSG_MAX + ARCA_PATH_MAX];
				snprintf(line, sizeof(line), "%s: %s", m.origin, e2.msg);
				json_array_append_new(errors, arca_api_jstr(line));
			}
			st = ARCA_OK;
		}
		x.count++;
		if ((x.count & 15) == 0)
			import_progress(&x);
	}
	/* also on cancel: what was added is committed, so that it is reported as committed */
	if (st == ARCA_OK && (st = arca_ingest_commit(x.ing, err)) != ARCA_OK)
		arca_log(ARCA_LOG_WARN, "api", "import commit failed: %s", err->msg);
	import_progress(&x);
	s = arca_ingest_get_stats(x.ing);
	j->result = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:b,s:s,s:s,s:O}", "archived",
	                      (json_int_t)s->archived, "newContent", (json_int_t)s->new_content,
	                      "duplicates", (json_int_t)s->duplicates, "alreadyPresent",
	                      (json_int_t)s->already_present, "warnings", (json_int_t)s->warnings,
	                      "errors", (json_int_t)(s->errors + src_errors), "bytes",
	                      (json_int_t)s->bytes, "batches", (json_int_t)s->batches, "committed",
	                      (json_int_t)s->committed, "seconds",
	                      (double)(arca_svc_now_ms() - t0) / 1000.0, "complete",
	                      st == ARCA_OK && !arca_api_job_cancelled(j), "archive", archive, "folder",
	                      top, "errorList", errors);
out:
	if (x.ing != NULL && arca_ingest_end(&x.ing, &e2) != ARCA_OK && st == ARCA_OK)
		st = arca_error_set(err, e2.status, "%s", e2.msg);
	arca_source_close(&src);
	json_decref(errors);
	if (file != NULL)
		unlink(file);
	return st;
}

/* ---- export ---- */

typedef struct {
	arca_api_job *j;
	FILE *mboxf;
	const char *dir;
	arca_buf msg, quoted;
	uint64_t n, bytes, failed, total;
	arca_error *err;
} export_ctx;

static arca_status write_eml(const char *path, const void *data, size_t len, arca_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = data;
	if (fd < 0)
		return arca_error_errno(err, errno, "cannot create %s", path);
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			close(fd);
			return arca_error_errno(err, e, "cannot write %s", path);
		}
		p += w;
		len -= (size_t)w;
	}
	if (close(fd) != 0)
		return arca_error_errno(err, errno, "cannot write %s", path);
	return ARCA_OK;
}

static arca_status export_one(void *vctx, uint32_t store_id, uint64_t msg_id)
{
	export_ctx *x = vctx;
	arca_error e = {0};
	if (arca_api_job_cancelled(x->j))
		return ARCA_ERR_STATE; /* stops the walk; the job ends as cancelled */
	arca_buf_reset(&x->msg);
	if (arca_instance_get(x->j->in, store_id, msg_id, &x->msg, &e) != ARCA_OK) {
		arca_log(ARCA_LOG_WARN, "api", "export: cannot read %u:%llu: %s", store_id,
		         (unsigned long long)msg_id, e.msg);
		x->failed++;
		return ARCA_OK;
	}
	if (x->mboxf != NULL) {
		arca_buf_reset(&x->quoted);
		if (arca_mbox_append(&x->quoted, (const uint8_t *)x->msg.data, x->msg.len, 0) != ARCA_OK ||
		    fwrite(x->quoted.data, 1, x->quoted.len, x->mboxf) != x->quoted.len)
			return arca_error_errno(x->err, errno ? errno : EIO, "cannot write the export file");
	} else {
		char p[ARCA_PATH_MAX], name[64];
		arca_status st;
		snprintf(name, sizeof(name), "%u-%llu.eml", store_id, (unsigned long long)msg_id);
		if (arca_fs_join(p, sizeof(p), x->dir, name) != ARCA_OK)
			return arca_error_set(x->err, ARCA_ERR_LIMIT, "path too long");
		if ((st = write_eml(p, x->msg.data ? x->msg.data : "", x->msg.len, x->err)) != ARCA_OK)
			return st;
	}
	x->n++;
	x->bytes += x->msg.len;
	if ((x->n & 15) == 0)
		arca_api_job_progress(x->j, x->n, x->total, "messages", x->n, 0);
	return ARCA_OK;
}

arca_status arca_api_j_export(arca_api_job *j, arca_error *err)
{
	const char *archive = arca_api_str(j->args, "archive"), *folder = arca_api_str(j->args, "folder");
	const char *query = arca_api_str(j->args, "query"), *fmt = arca_api_str(j->args, "format");
	const char *path = arca_api_str(j->args, "path"), *file = arca_api_str(j->args, "_file");
	const char *out = path ? path : file;
	export_ctx x = {.j = j, .err = err};
	uint32_t aid = 0, fid = 0;
	arca_status st = ARCA_OK;
	bool mbox = fmt == NULL || strcmp(fmt, "mbox") == 0;
	arca_buf_init(&x.msg, ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&x.quoted, 2u * ARCA_MAX_MESSAGE_SIZE);
	if ((archive && (st = arca_instance_archive_id(j->in, archive, false, &aid, err)) != ARCA_OK) ||
	    (folder && (st = arca_instance_folder_id(j->in, aid, folder, false, &fid, err)) != ARCA_OK))
		goto out;
	if (mbox) {
		x.mboxf = fopen(out, "wbx");
		if (x.mboxf == NULL && errno == EEXIST && path != NULL) {
			st = arca_error_set(err, ARCA_ERR_EXISTS, "%s exists; will not overwrite it", out);
			goto out;
		}
		if (x.mboxf == NULL) {
			st = arca_error_errno(err, errno, "cannot create %s", out);
			goto out;
		}
	} else {
		x.dir = out;
		if ((st = arca_fs_mkdirs(out, err)) != ARCA_OK)
			goto out;
	}
	if (query != NULL) {
		const char *archives[1] = {archive};
		arca_instance_search_opts so = {.order = ARCA_ORDER_NEWEST, .limit = 10000000,
		                                .archives = archives, .n_archives = archive ? 1 : 0};
		arca_results res;
		if ((st = arca_instance_search(j->in, query, &so, &res, err)) != ARCA_OK)
			goto out;
		x.total = res.n;
		for (size_t i = 0; i < res.n && st == ARCA_OK; i++)
			st = export_one(&x, res.items[i].store_id, res.items[i].msg_id);
		arca_results_free(&res);
	} else {
		arca_folder_info *f;
		size_t nf;
		if (fid != 0 && arca_instance_folders(j->in, aid, &f, &nf, NULL) == ARCA_OK) {
			for (size_t i = 0; i < nf; i++)
				if (f[i].id == fid)
					x.total = f[i].messages;
			arca_folder_infos_free(f, nf);
		}
		st = arca_instance_each_message(j->in, aid, fid, export_one, &x, err);
	}
	if (st == ARCA_ERR_STATE && arca_api_job_cancelled(j))
		st = ARCA_OK;
out:
	if (x.mboxf != NULL && fclose(x.mboxf) != 0 && st == ARCA_OK)
		st = arca_error_errno(err, errno, "cannot write %s", out);
	arca_buf_free(&x.msg);
	arca_buf_free(&x.quoted);
	arca_api_job_progress(j, x.n, x.total, "messages", x.n, 0);
	j->result = json_pack("{s:I,s:I,s:I}", "exported", (json_int_t)x.n, "bytes",
	                      (json_int_t)x.bytes, "failed", (json_int_t)x.failed);
	if (file != NULL) {
		if (st == ARCA_OK && !arca_api_job_cancelled(j)) {
			char url[128];
			pthread_mutex_lock(&j->api->mu);
			snprintf(j->download, sizeof(j->download), "%s", file);
			snprintf(j->download_name, sizeof(j->download_name), "export-%.16s.mbox", j->token);
			pthread_mutex_unlock(&j->api->mu);
			snprintf(url, sizeof(url), "/api/download/%s", j->token);
			json_object_set_new(j->result, "download", json_string(url));
		} else {
			unlink(file);
		}
	}
	return st;
}

/* ---- stores ---- */

static uint32_t arg_store(arca_api_job *j)
{
	json_t *v = json_object_get(j->args, "id");
	return json_is_integer(v) ? (uint32_t)json_integer_value(v) : 0;
}

typedef struct {
	json_t *list;
	uint64_t n;
} damage_ctx;

static void on_damage(void *ctx, uint32_t store_id, uint64_t msg_id, const char *reason)
{
	damage_ctx *d = ctx;
	char id[48];
	d->n++;
	if (json_array_size(d->list) >= 1000)
		return;
	if (msg_id)
		snprintf(id, sizeof(id), "%u:%llu", store_id, (unsigned long long)msg_id);
	else
		snprintf(id, sizeof(id), "%u:?", store_id);
	json_array_append_new(d->list, json_pack("{s:s,s:o}", "id", id, "reason", arca_api_jstr(reason)));
}

/* Store ids to work on: one, or every enabled store (so that a job can stop between them). */
static arca_status store_list(arca_api_job *j, uint32_t one, uint32_t **ids, size_t *n,
                              arca_error *err)
{
	arca_store_info *s;
	size_t ns;
	arca_status st = arca_instance_stores(j->in, &s, &ns, err);
	*ids = NULL;
	*n = 0;
	if (st != ARCA_OK)
		return st;
	*ids = calloc(ns + 1, sizeof(**ids));
	if (*ids == NULL) {
		arca_store_infos_free(s, ns);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < ns; i++)
		if ((one != 0 && s[i].id == one) || (one == 0 && s[i].state != ARCA_STORE_DISABLED))
			(*ids)[(*n)++] = s[i].id;
	arca_store_infos_free(s, ns);
	if (one != 0 && *n == 0) {
		free(*ids);
		*ids = NULL;
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store with id %u", one);
	}
	return ARCA_OK;
}

arca_status arca_api_j_verify(arca_api_job *j, arca_error *err)
{
	damage_ctx d = {json_array(), 0};
	uint32_t *ids;
	size_t n;
	uint64_t checked = 0;
	arca_status st = store_list(j, arg_store(j), &ids, &n, err);
	for (size_t i = 0; i < n && st == ARCA_OK && !arca_api_job_cancelled(j); i++) {
		uint64_t c = 0, dmg = 0;
		arca_api_job_progress(j, i, n, "stores", checked, 0);
		st = arca_instance_verify(j->in, ids[i], on_damage, &d, &c, &dmg, err);
		checked += c;
	}
	arca_api_job_progress(j, n, n, "stores", checked, 0);
	free(ids);
	j->result = json_pack("{s:I,s:I,s:O}", "checked", (json_int_t)checked, "damagedCount",
	                      (json_int_t)d.n, "damaged", d.list);
	json_decref(d.list);
	return st;
}

arca_status arca_api_j_recreate(arca_api_job *j, arca_error *err)
{
	damage_ctx d = {json_array(), 0};
	uint64_t n = 0;
	arca_status st;
	arca_api_job_progress(j, 0, 1, "stores", 0, 0);
	st = arca_instance_recreate(j->in, arg_store(j), on_damage, &d, &n, err);
	arca_api_job_progress(j, 1, 1, "stores", n, 0);
	j->result = json_pack("{s:I,s:O}", "messages", (json_int_t)n, "skipped", d.list);
	json_decref(d.list);
	return st;
}

arca_status arca_api_j_rebuild(arca_api_job *j, arca_error *err)
{
	uint32_t *ids;
	size_t n;
	uint64_t docs = 0;
	arca_status st = store_list(j, arg_store(j), &ids, &n, err);
	for (size_t i = 0; i < n && st == ARCA_OK && !arca_api_job_cancelled(j); i++) {
		uint64_t d = 0;
		arca_api_job_progress(j, i, n, "stores", docs, 0);
		st = arca_instance_rebuild_index(j->in, ids[i], &d, err);
		docs += d;
	}
	arca_api_job_progress(j, n, n, "stores", docs, 0);
	free(ids);
	j->result = json_pack("{s:I}", "documents", (json_int_t)docs);
	return st;
}

arca_status arca_api_j_create_store(arca_api_job *j, arca_error *err)
{
	const char *state = arca_api_str(j->args, "requestedState");
	uint32_t id = 0;
	bool current = false;
	arca_status st;
	if (state != NULL && strcmp(state, "current") == 0)
		current = true;
	else if (state != NULL && strcmp(state, "normal") != 0)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "argument 'requestedState': a new store is 'normal' or 'current'");
	st = arca_instance_store_create(j->in, arca_api_str(j->args, "name"),
	                                arca_api_str(j->args, "metaPath"),
	                                arca_api_str(j->args, "contentPath"),
	                                arca_api_str(j->args, "indexPath"), current, &id, err);
	if (st == ARCA_OK)
		j->result = json_pack("{s:I}", "id", (json_int_t)id);
	return st;
}

arca_status arca_api_j_set_store_state(arca_api_job *j, arca_error *err)
{
	const char *name = arca_api_str(j->args, "requestedState");
	arca_store_state s;
	if (strcmp(name, "writeProtected") == 0)
		name = "write-protected";
	if (arca_store_state_parse(name, &s) != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "argument 'requestedState': expected current, normal, writeProtected "
		                      "or disabled");
	return arca_instance_store_set_state(j->in, arg_store(j), s, err);
}

void arca_api_jobs_free(arca_api *api)
{
	pthread_mutex_lock(&api->mu);
	jobs_free_all(api);
	pthread_mutex_unlock(&api->mu);
}

/* Internal state of the API, shared by the files of src/api/ only. */
#ifndef ARCA_API_API_INT_H
#define ARCA_API_API_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "api/cmd.h"
#include "archive/instance.h"
#include "auth/users.h"
#include "lib/buf.h"
#include "lib/limits.h"
#include "net/svc.h"

#define ARCA_API_TOKEN_HEX 64 /* session tokens: 32 random bytes */
#define ARCA_API_ID_HEX 32    /* job tokens, upload ids: 16 random bytes */
#define ARCA_API_MAX_LISTENERS 16
#define ARCA_API_AUTH_TTL_MS 60000u              /* a verified Basic login is reused this long */
#define ARCA_API_SESSION_IDLE_MS (30u * 60000u)  /* a session token ends after this idle time */
#define ARCA_API_UPLOAD_IDLE_MS (60u * 60000u)   /* an upload not used this long is deleted */
#define ARCA_API_JOB_KEEP_MS (24u * 3600000u)    /* finished job records are kept this long */

typedef enum {
	ARCA_API_JOB_QUEUED,
	ARCA_API_JOB_RUNNING,
	ARCA_API_JOB_SUCCEEDED,
	ARCA_API_JOB_FAILED,
	ARCA_API_JOB_CANCELLED,
} arca_api_job_state;

typedef struct arca_api_job {
	arca_api *api;
	char token[ARCA_API_ID_HEX + 1];
	const arca_api_cmd *cmd;
	json_t *args; /* checked arguments plus "_file" etc. set by the command's handler */
	char user[ARCA_NAME_MAX];
	uint32_t privs;
	bool serial;
	arca_instance *in; /* the job's own writable instance, while it runs */
	atomic_bool cancel;
	/* under api->mu */
	arca_api_job_state state;
	uint64_t done, total, messages, committed;
	const char *unit;
	uint64_t t_created, t_start, t_end;
	json_t *result;
	int code;
	char msg[ARCA_ERROR_MSG_MAX];
	char download[ARCA_PATH_MAX]; /* file the job produced for GET /api/download/<token> */
	char download_name[ARCA_NAME_MAX];
} arca_api_job;

typedef struct {
	char id[ARCA_API_ID_HEX + 1]; /* "" = free slot */
	char owner[ARCA_NAME_MAX];
	char path[ARCA_PATH_MAX];
	uint64_t size, last_used;
	bool busy; /* a chunk is being written */
} arca_api_upload;

typedef struct {
	uint8_t key[32]; /* SHA-256(salt, user, NUL, password) */
	char user[ARCA_NAME_MAX];
	uint64_t expires; /* 0 = free */
} arca_api_cache_entry;

typedef struct {
	uint8_t hash[32]; /* SHA-256 of the token: the token itself is not kept */
	char user[ARCA_NAME_MAX];
	uint64_t last_used;
} arca_api_session;

struct arca_api_req;

struct arca_api {
	arca_svc *svc;
	struct event_base *base;
	char tmp_dir[ARCA_PATH_MAX];
	/* loop thread only */
	struct evhttp *http_list[ARCA_API_MAX_LISTENERS]; /* one per listener: TLS is per evhttp */
	struct evhttp_bound_socket *bound[ARCA_API_MAX_LISTENERS];
	SSL_CTX *tls[ARCA_API_MAX_LISTENERS];
	size_t n_bound;
	uint8_t salt[32];
	arca_api_cache_entry cache[ARCA_API_AUTH_CACHE];
	arca_api_session *sessions;
	size_t n_sessions;
	struct arca_api_req *inflight;
	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	arca_api_job *jobs[ARCA_API_MAX_JOBS];
	size_t n_jobs;
	arca_api_job *running;
	bool stopping;
	bool thread_started;
	pthread_t thread;
	arca_api_upload uploads[ARCA_API_MAX_UPLOADS];
	size_t work_pending; /* work functions queued or running on the svc workers */
	atomic_uint_fast64_t store_gen; /* bumped when the store registry may have changed */
};

/* One command call, on a worker thread. */
typedef struct arca_api_call {
	arca_api *api;
	arca_svc_handles *h;
	const arca_api_cmd *cmd;
	json_t *args;
	char user[ARCA_NAME_MAX];
	uint32_t privs;
	int code;       /* failure: arca_status or ARCA_API_E_* (0: take err.status) */
	int http;       /* success status (200; 202 for a started job) */
	json_t *result; /* "result" of the reply */
	char token[ARCA_API_ID_HEX + 1]; /* started job */
} arca_api_call;

/* ---- helpers (handlers.c) ---- */
arca_status arca_api_forbidden(arca_api_call *c, arca_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *arca_api_str(json_t *args, const char *name); /* NULL if absent or null */
bool arca_api_has(json_t *args, const char *name);
void arca_api_fmt_date(int64_t t, char *out, size_t outsz);
/* "login,read,..." of a privilege set, into out. */
void arca_api_privs_text(uint32_t privs, char *out, size_t outsz);
json_t *arca_api_jstr(const char *s); /* JSON string of possibly invalid UTF-8 (repaired) */

/* ---- jobs (jobs.c) ---- */
arca_status arca_api_jobs_start(arca_api *api, arca_error *err);
void arca_api_jobs_stop(arca_api *api);
/* Frees the job records (after arca_api_jobs_stop and once no worker waits on a job). */
void arca_api_jobs_free(arca_api *api);
/* Starts c->cmd as a job (ASYNC: sets c->token, c->http = 202; SERIAL: waits, sets result). */
arca_status arca_api_job_submit(arca_api_call *c, arca_error *err);
/* The reply envelope of /api/get-status or /api/cancel-async (new reference), or NULL with
 * err set (unknown token, not the caller's job). */
json_t *arca_api_job_status(arca_api *api, const char *token, const char *user, uint32_t privs,
                            bool cancel, arca_error *err);
/* Path and name of a finished job's download, if the caller may have it. */
arca_status arca_api_job_download(arca_api *api, const char *token, const char *user,
                                  uint32_t privs, char *path, size_t psz, char *name, size_t nsz,
                                  arca_error *err);
bool arca_api_job_cancelled(arca_api_job *j);
void arca_api_job_progress(arca_api_job *j, uint64_t done, uint64_t total, const char *unit,
                           uint64_t messages, uint64_t committed);

/* ---- uploads (handlers.c) ---- */
arca_status arca_api_upload_chunk(arca_api_call *c, const char *id, const void *data, size_t len,
                                  arca_error *err);
/* Takes an upload out of the registry for an import; the caller deletes the file. */
arca_status arca_api_upload_take(arca_api *api, const char *id, const char *user, char *path,
                                 size_t psz, arca_error *err);
void arca_api_uploads_clear(arca_api *api);

/* ---- access (handlers.c) ---- */
/* Whether the caller may read message STORE:N; *folders (optional) receives the
 * "archive/folder" names the caller may see. */
arca_status arca_api_may_read_message(arca_api_call *c, uint32_t store_id, uint64_t msg_id,
                                      json_t **folders, arca_error *err);

/* ---- message view (view.c) ---- */
/* Headers, text, sanitised HTML and attachment list of a raw message. */
arca_status arca_api_view_message(const void *data, size_t len, json_t **out, arca_error *err);
/* Decoded content of attachment index (as listed by the view) into out. */
arca_status arca_api_attachment(const void *data, size_t len, uint64_t index, arca_buf *out,
                                char *ctype, size_t csz, char *filename, size_t fsz,
                                arca_error *err);
/* Whitelist HTML sanitiser: safe elements and attributes only, links http/https/mailto,
 * no scripts, styles, images, forms or frames; always balanced. Returns a malloc'd
 * NUL-terminated string of at most max bytes (*truncated set if cut). */
char *arca_api_sanitize_html(const char *html, size_t len, size_t max, bool *truncated);
/* Copies s (len bytes) as valid UTF-8 (invalid sequences become U+FFFD). malloc'd. */
char *arca_api_utf8_fix(const char *s, size_t len, size_t *out_len);

/* ---- command handlers (handlers.c) and jobs (jobs.c) ---- */
arca_status arca_api_h_server_info(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_users(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_user_info(arca_api_call *c, arca_error *err);
arca_status arca_api_h_create_user(arca_api_call *c, arca_error *err);
arca_status arca_api_h_delete_user(arca_api_call *c, arca_error *err);
arca_status arca_api_h_rename_user(arca_api_call *c, arca_error *err);
arca_status arca_api_h_set_user_password(arca_api_call *c, arca_error *err);
arca_status arca_api_h_set_user_info(arca_api_call *c, arca_error *err);
arca_status arca_api_h_set_user_privileges(arca_api_call *c, arca_error *err);
arca_status arca_api_h_set_user_privileges_on_folder(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_user_privileges_on_folders(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_child_folders(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_folder_statistics(arca_api_call *c, arca_error *err);
arca_status arca_api_h_search(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_messages(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_message(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_stores(arca_api_call *c, arca_error *err);
arca_status arca_api_h_get_jobs(arca_api_call *c, arca_error *err);
arca_status arca_api_h_import(arca_api_call *c, arca_error *err);
arca_status arca_api_h_export(arca_api_call *c, arca_error *err);

arca_status arca_api_j_import(arca_api_job *j, arca_error *err);
arca_status arca_api_j_export(arca_api_job *j, arca_error *err);
arca_status arca_api_j_verify(arca_api_job *j, arca_error *err);
arca_status arca_api_j_recreate(arca_api_job *j, arca_error *err);
arca_status arca_api_j_rebuild(arca_api_job *j, arca_error *err);
arca_status arca_api_j_create_store(arca_api_job *j, arca_error *err);
arca_status arca_api_j_set_store_state(arca_api_job *j, arca_error *err);

#endif

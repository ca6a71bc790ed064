/* HTTP: evhttp on the loop thread, routing, authentication (HTTP Basic with a short-lived
 * verification cache, session tokens), the login throttle, and replies. Every command's work
 * runs on a svc worker; the reply is sent from its completion callback on the loop. */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_int.h"
#include "crypto/crypto.h"
#include "lib/fs.h"
#include "lib/log.h"
#include "net/listen.h"

typedef enum {
	R_NONE,
	R_INVOKE,
	R_STATUS,
	R_CANCEL,
	R_LOGIN,
	R_LOGOUT,
	R_UPLOAD,
	R_RAW,
	R_ATTACHMENT,
	R_DOWNLOAD,
} api_route;

typedef struct arca_api_req {
	arca_api *api;
	struct evhttp_request *req;
	struct arca_api_req *prev, *next;
	bool orphan;
	api_route route;
	const char *method;
	char path[160]; /* for the log: ids of uploads and downloads left out */
	char cmd[64];
	char param[ARCA_API_ID_HEX + 32];
	uint64_t index;
	char peer[80];
	uint64_t t0;
	char *body;
	size_t body_len;
	/* credentials */
	char user[ARCA_NAME_MAX];
	char *pass;
	bool basic, auth_failed, db_failed;
	struct event *timer;
	/* worker results */
	arca_api_call call;
	arca_error err;
	int code; /* failure: arca_status or ARCA_API_E_*; 0: success */
	int status;
	json_t *reply;
	arca_buf raw;
	char ctype[160];
	char fname[ARCA_NAME_MAX];
	int fd;
	off_t flen;
} api_req;

static void req_free(api_req *r)
{
	if (r->api != NULL && !r->orphan) {
		if (r->prev)
			r->prev->next = r->next;
		else
			r->api->inflight = r->next;
		if (r->next)
			r->next->prev = r->prev;
	}
	if (r->timer)
		event_free(r->timer);
	if (r->pass) {
		arca_crypto_wipe(r->pass, strlen(r->pass));
		free(r->pass);
	}
	if (r->body) {
		arca_crypto_wipe(r->body, r->body_len); /* may hold passwords */
		free(r->body);
	}
	json_decref(r->call.args);
	json_decref(r->call.result);
	json_decref(r->reply);
	arca_buf_free(&r->raw);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

static void fail(api_req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(api_req *r, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err.msg, sizeof(r->err.msg), fmt, ap);
	va_end(ap);
	r->code = code;
}

/* ---- replies ---- */

static void add_header(api_req *r, const char *k, const char *v)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->req), k, v);
}

static void ref_free(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	free(arg);
}

static void log_line(api_req *r)
{
	arca_log(ARCA_LOG_INFO, "api", "method=%s path=%s command=%s user=%s status=%d ms=%llu",
	         r->method, r->path, r->cmd[0] ? r->cmd : "-", r->user[0] ? r->user : "-", r->status,
	         (unsigned long long)(arca_svc_now_ms() - r->t0));
}

static void invalidate_user(arca_api *api, const char *user)
{
	for (size_t i = 0; i < ARCA_API_AUTH_CACHE; i++)
		if (strcmp(api->cache[i].user, user) == 0)
			memset(&api->cache[i], 0, sizeof(api->cache[i]));
	for (size_t i = 0; i < api->n_sessions;) {
		if (strcmp(api->sessions[i].user, user) == 0) {
			api->sessions[i] = api->sessions[--api->n_sessions];
			continue;
		}
		i++;
	}
}

/* Builds the JSON envelope of a finished request (any thread). */
static void make_envelope(api_req *r)
{
	if (r->reply != NULL)
		return;
	if (r->code != 0) {
		r->status = arca_api_http_status(r->code);
		r->reply = json_pack("{s:s,s:{s:s,s:o}}", "status", "failed", "error", "code",
		                     arca_api_code_name(r->code), "message", arca_api_jstr(r->err.msg));
		return;
	}
	r->status = r->call.http ? r->call.http : 200;
	r->reply = json_pack("{s:s,s:O}", "status", "succeeded", "result",
	                     r->call.result ? r->call.result : json_null());
}

static void send_reply(api_req *r)
{
	struct evbuffer *b = evbuffer_new();
	if (b == NULL) {
		evhttp_send_error(r->req, 500, NULL);
		r->status = 500;
		return;
	}
	add_header(r, "Cache-Control", "no-store");
	add_header(r, "X-Content-Type-Options", "nosniff");
	if (r->code == 0 && (r->raw.data != NULL || r->fd >= 0 || r->ctype[0])) {
		char disp[ARCA_NAME_MAX * 3 + 128], ascii[ARCA_NAME_MAX];
		size_t n = 0, d;
		/* RFC 6266: an ASCII fallback and the UTF-8 name */
		for (const char *p = r->fname; *p && n + 1 < sizeof(ascii); p++)
			ascii[n++] = ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"' ||
			              *p == '\\' || *p == '/')
			                 ? '_'
			                 : *p;
		ascii[n] = '\0';
		d = (size_t)snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"; filename*=UTF-8''",
		                     ascii[0] ? ascii : "download");
		for (const unsigned char *p = (const unsigned char *)r->fname; *p && d + 4 < sizeof(disp); p++) {
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			    *p == '.' || *p == '-' || *p == '_')
				disp[d++] = (char)*p;
			else
				d += (size_t)snprintf(disp + d, sizeof(disp) - d, "%%%02X", *p);
		}
		disp[d] = '\0';
		add_header(r, "Content-Type", r->ctype[0] ? r->ctype : "application/octet-stream");
		add_header(r, "Content-Disposition", disp);
		add_header(r, "Content-Security-Policy", "sandbox");
		if (r->fd >= 0) {
			if (evbuffer_add_file(b, r->fd, 0, r->flen) == 0)
				r->fd = -1; /* the buffer owns it now */
		} else if (r->raw.data != NULL) {
			size_t len;
			char *data = arca_buf_steal(&r->raw, &len);
			if (evbuffer_add_reference(b, data, len, ref_free, data) != 0)
				free(data);
		}
		r->status = 200;
	} else {
		char *text;
		make_envelope(r);
		text = r->reply ? json_dumps(r->reply, JSON_COMPACT) : NULL;
		if (text == NULL) {
			r->status = 500;
			text = strdup("{\"status\":\"failed\",\"error\":{\"code\":\"nomem\",\"message\":\"out of "
			              "memory\"}}");
		}
		if (text != NULL) {
			evbuffer_add(b, text, strlen(text));
			evbuffer_add(b, "\n", 1);
			free(text);
		}
		add_header(r, "Content-Type", "application/json; charset=utf-8");
		if (r->status == 401 && r->route != R_LOGIN && r->route != R_LOGOUT)
			add_header(r, "WWW-Authenticate", "Basic realm=\"Arca\", charset=\"UTF-8\"");
		if (r->code == ARCA_API_E_METHOD)
			add_header(r, "Allow", (r->route == R_RAW || r->route == R_ATTACHMENT ||
			                        r->route == R_DOWNLOAD) ? "GET" : "POST");
	}
	evhttp_send_reply(r->req, r->status, NULL, b);
	evbuffer_free(b);
}

/* Sends the reply, logs, frees (loop thread). */
static void finish(api_req *r)
{
	if (r->orphan) {
		req_free(r);
		return;
	}
	send_reply(r);
	log_line(r);
	if (r->code == 0 && r->call.cmd != NULL && (r->call.cmd->flags & ARCA_API_USER_CHANGE)) {
		const char *u = arca_api_str(r->call.args, "userName");
		if (u == NULL)
			u = arca_api_str(r->call.args, "oldUserName");
		if (u != NULL)
			invalidate_user(r->api, u);
	}
	req_free(r);
}

/* ---- worker side ---- */

static _Thread_local const arca_api *tls_api;
static _Thread_local uint64_t tls_gen;

/* Reopens this worker's read-only instance handle when the store registry may have changed
 * (a job bumped store_gen): the engine loads the store list at open. */
static void refresh_handles(arca_api *api, arca_svc_handles *h)
{
	uint64_t gen = atomic_load(&api->store_gen);
	if (tls_api != api) {
		tls_api = api;
		tls_gen = 0;
	}
	if (h->inst != NULL && tls_gen == gen)
		return;
	arca_instance_close(&h->inst);
	arca_error_clear(&h->open_err);
	if (arca_instance_open(arca_svc_base_dir(api->svc), arca_svc_key_file(api->svc),
	                       ARCA_INSTANCE_READONLY, &h->inst, &h->open_err) != ARCA_OK)
		arca_log(ARCA_LOG_ERROR, "api", "cannot reopen the instance: %s", h->open_err.msg);
	tls_gen = gen;
}

static void do_invoke(api_req *r)
{
	arca_api_call *c = &r->call;
	const arca_api_cmd *cmd = arca_api_command(r->cmd);
	arca_status st;
	if (cmd == NULL) {
		fail(r, ARCA_API_E_COMMAND, "unknown command '%s'", r->cmd);
		return;
	}
	c->cmd = cmd;
	if (cmd->privilege != 0 && !(c->privs & ARCA_PRIV_ADMIN) &&
	    (c->privs & cmd->privilege) != cmd->privilege) {
		fail(r, ARCA_API_E_FORBIDDEN, "%s needs the %s privilege", cmd->name,
		     arca_priv_name(cmd->privilege) ? arca_priv_name(cmd->privilege) : "?");
		return;
	}
	if (arca_api_parse_args(cmd, r->body ? r->body : "", r->body_len, &c->args, &r->err) != ARCA_OK) {
		r->code = r->err.status;
		return;
	}
	if (cmd->handler != NULL)
		st = cmd->handler(c, &r->err);
	else
		st = arca_api_job_submit(c, &r->err);
	if (st != ARCA_OK) {
		r->code = c->code ? c->code : (r->err.status ? (int)r->err.status : (int)st);
		if (r->err.msg[0] == '\0')
			snprintf(r->err.msg, sizeof(r->err.msg), "%s", arca_status_name(st));
		return;
	}
	if (c->token[0]) {
		r->reply = arca_api_job_status(r->api, c->token, c->user, c->privs, false, &r->err);
		r->status = 202;
	}
}

static void do_status(api_req *r, bool cancel)
{
	json_t *args, *tok;
	const char *key;
	json_t *v;
	if (arca_api_parse_json(r->body ? r->body : "", r->body_len, &args, &r->err) != ARCA_OK) {
		r->code = r->err.status;
		return;
	}
	json_object_foreach(args, key, v) if (strcmp(key, "token") != 0)
	{
		json_decref(args);
		fail(r, ARCA_ERR_INVALID, "unknown argument (only 'token' is known)");
		return;
	}
	tok = json_object_get(args, "token");
	if (!json_is_string(tok)) {
		fail(r, ARCA_ERR_INVALID, tok ? "argument 'token': expected a string" :
		                                "missing required argument 'token'");
	} else {
		r->reply = arca_api_job_status(r->api, json_string_value(tok), r->call.user, r->call.privs,
		                               cancel, &r->err);
		if (r->reply == NULL)
			r->code = r->err.status;
		else
			r->status = 200;
	}
	json_decref(args);
}

static void do_message(api_req *r)
{
	arca_api_call *c = &r->call;
	uint32_t sid;
	uint64_t mid;
	arca_status st;
	if (arca_msgid_parse(r->param, &sid, &mid) != ARCA_OK) {
		fail(r, ARCA_ERR_INVALID, "not a message id (STORE:N)");
		return;
	}
	if ((st = arca_api_may_read_message(c, sid, mid, NULL, &r->err)) != ARCA_OK ||
	    (st = arca_instance_get(c->h->inst, sid, mid, &r->raw, &r->err)) != ARCA_OK) {
		r->code = r->err.status ? (int)r->err.status : (int)st;
		return;
	}
	if (r->route == R_RAW) {
		snprintf(r->ctype, sizeof(r->ctype), "message/rfc822");
		snprintf(r->fname, sizeof(r->fname), "%u-%llu.eml", sid, (unsigned long long)mid);
		if (r->raw.data == NULL)
			arca_buf_append(&r->raw, "", 0);
		return;
	} else {
		arca_buf out;
		char ctype[128], name[ARCA_NAME_MAX];
		arca_buf_init(&out, ARCA_MAX_MESSAGE_SIZE);
		st = arca_api_attachment(r->raw.data ? r->raw.data : "", r->raw.len, r->index, &out, ctype,
		                         sizeof(ctype), name, sizeof(name), &r->err);
		arca_buf_free(&r->raw);
		if (st != ARCA_OK) {
			arca_buf_free(&out);
			r->code = r->err.status;
			return;
		}
		r->raw = out;
		if (r->raw.data == NULL)
			arca_buf_append(&r->raw, "", 0);
		/* only the type/subtype token characters: it becomes a header */
		for (char *p = ctype; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("/.+-_", *p)))
				*p = '_';
		snprintf(r->ctype, sizeof(r->ctype), "%s", ctype);
		snprintf(r->fname, sizeof(r->fname), "%s", name[0] ? name : "attachment");
	}
}

static void do_download(api_req *r)
{
	char path[ARCA_PATH_MAX], name[ARCA_NAME_MAX];
	struct stat sb;
	if (arca_api_job_download(r->api, r->param, r->call.user, r->call.privs, path, sizeof(path), name,
	                          sizeof(name), &r->err) != ARCA_OK) {
		r->code = r->err.status;
		return;
	}
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0 || fstat(r->fd, &sb) != 0) {
		arca_error_errno(&r->err, errno, "cannot open the download");
		r->code = r->err.status;
		return;
	}
	r->flen = sb.st_size;
	snprintf(r->ctype, sizeof(r->ctype), "application/mbox");
	snprintf(r->fname, sizeof(r->fname), "%s", name);
}

static void work(arca_svc_handles *h, void *arg)
{
	api_req *r = arg;
	arca_api *api = r->api;
	arca_api_call *c = &r->call;
	arca_user u;
	refresh_handles(api, h);
	c->api = api;
	c->h = h;
	c->http = 200;
	snprintf(c->user, sizeof(c->user), "%s", r->user);
	if (h->users == NULL) {
		fail(r, ARCA_ERR_IO, "the users database is not available: %s", h->open_err.msg);
	} else if (arca_users_get(h->users, r->user, &u, &r->err) != ARCA_OK) {
		if (r->err.status == ARCA_ERR_NOTFOUND)
			fail(r, ARCA_API_E_AUTH, "the user no longer exists");
		else
			r->code = r->err.status;
	} else {
		c->privs = u.privileges;
		arca_user_free_fields(&u);
		if (!(c->privs & ARCA_PRIV_LOGIN)) {
			fail(r, ARCA_API_E_AUTH, "this user may not log in");
		} else {
			switch (r->route) {
			case R_INVOKE: do_invoke(r); break;
			case R_STATUS: do_status(r, false); break;
			case R_CANCEL: do_status(r, true); break;
			case R_UPLOAD:
				if (arca_api_upload_chunk(c, r->param[0] ? r->param : NULL, r->body ? r->body : "",
				                          r->body_len, &r->err) != ARCA_OK)
					r->code = c->code ? c->code : (int)r->err.status;
				break;
			case R_RAW:
			case R_ATTACHMENT: do_message(r); break;
			case R_DOWNLOAD: do_download(r); break;
			default: fail(r, ARCA_ERR_INVALID, "internal routing error"); break;
			}
		}
	}
	if (r->code != 0 || (r->raw.data == NULL && r->fd < 0))
		make_envelope(r);
	pthread_mutex_lock(&api->mu);
	api->work_pending--;
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
}

static void work_done(void *arg)
{
	finish(arg);
}

static void submit(api_req *r, arca_svc_work_fn fn, arca_pool_done_fn done)
{
	arca_error err = {0};
	arca_api *api = r->api;
	pthread_mutex_lock(&api->mu);
	api->work_pending++;
	pthread_mutex_unlock(&api->mu);
	if (arca_svc_submit(api->svc, fn, done, r, &err) != ARCA_OK) {
		pthread_mutex_lock(&api->mu);
		api->work_pending--;
		pthread_mutex_unlock(&api->mu);
		fail(r, ARCA_API_E_BUSY, "server busy: %s", err.msg);
		finish(r);
	}
}

/* ---- authentication ---- */

static void cache_key(arca_api *api, const char *user, const char *pass, uint8_t out[32])
{
	size_t ul = strlen(user), pl = strlen(pass);
	uint8_t *buf = malloc(sizeof(api->salt) + ul + 1 + pl);
	if (buf == NULL) {
		memset(out, 0, 32);
		return;
	}
	memcpy(buf, api->salt, sizeof(api->salt));
	memcpy(buf + sizeof(api->salt), user, ul + 1);
	memcpy(buf + sizeof(api->salt) + ul + 1, pass, pl);
	arca_sha256(buf, sizeof(api->salt) + ul + 1 + pl, out);
	arca_crypto_wipe(buf, sizeof(api->salt) + ul + 1 + pl);
	free(buf);
}

static bool cache_hit(arca_api *api, const char *user, const uint8_t key[32], uint64_t now)
{
	bool hit = false;
	for (size_t i = 0; i < ARCA_API_AUTH_CACHE; i++) {
		arca_api_cache_entry *e = &api->cache[i];
		if (e->expires > now && strcmp(e->user, user) == 0)
			hit |= CRYPTO_memcmp(e->key, key, 32) == 0;
	}
	return hit;
}

static void cache_put(arca_api *api, const char *user, const uint8_t key[32], uint64_t now)
{
	arca_api_cache_entry *slot = &api->cache[0];
	for (size_t i = 0; i < ARCA_API_AUTH_CACHE; i++) {
		if (api->cache[i].expires <= now) {
			slot = &api->cache[i];
			break;
		}
		if (api->cache[i].expires < slot->expires)
			slot = &api->cache[i];
	}
	memcpy(slot->key, key, 32);
	snprintf(slot->user, sizeof(slot->user), "%s", user);
	slot->expires = now + ARCA_API_AUTH_TTL_MS;
}

static void session_hash(const char *token, uint8_t out[32])
{
	arca_sha256(token, strlen(token), out);
}

static const arca_api_session *session_find(arca_api *api, const char *token, uint64_t now)
{
	uint8_t h[32];
	if (strlen(token) != ARCA_API_TOKEN_HEX)
		return NULL;
	session_hash(token, h);
	for (size_t i = 0; i < api->n_sessions;) {
		arca_api_session *s = &api->sessions[i];
		if (now - s->last_used > ARCA_API_SESSION_IDLE_MS) {
			*s = api->sessions[--api->n_sessions];
			continue;
		}
		if (CRYPTO_memcmp(s->hash, h, 32) == 0) {
			s->last_used = now;
			return s;
		}
		i++;
	}
	return NULL;
}

static bool session_new(arca_api *api, const char *user, char token[ARCA_API_TOKEN_HEX + 1])
{
	uint8_t raw[ARCA_API_TOKEN_HEX / 2];
	arca_api_session *s;
	uint64_t now = arca_svc_now_ms();
	if (api->n_sessions == ARCA_API_MAX_SESSIONS) {
		/* full: the least recently used one ends */
		size_t lru = 0;
		for (size_t i = 1; i < api->n_sessions; i++)
			if (api->sessions[i].last_used < api->sessions[lru].last_used)
				lru = i;
		api->sessions[lru] = api->sessions[--api->n_sessions];
	}
	arca_crypto_random(raw, sizeof(raw));
	arca_hex_encode(raw, sizeof(raw), token);
	arca_crypto_wipe(raw, sizeof(raw));
	s = &api->sessions[api->n_sessions++];
	session_hash(token, s->hash);
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->last_used = now;
	return true;
}

static void check_work(arca_svc_handles *h, void *arg)
{
	api_req *r = arg;
	arca_api *api = r->api;
	bool ok = false;
	uint32_t uid = 0, privs = 0;
	arca_error err = {0};
	if (h->users == NULL) {
		r->db_failed = true;
		snprintf(r->err.msg, sizeof(r->err.msg), "the users database is not available");
	} else if (arca_users_check_password(h->users, r->user, r->pass, &ok, &uid, &privs, &err) !=
	           ARCA_OK) {
		r->db_failed = true;
		snprintf(r->err.msg, sizeof(r->err.msg), "%s", err.msg);
	}
	r->auth_failed = !ok;
	pthread_mutex_lock(&api->mu);
	api->work_pending--;
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
}

static void check_done(void *arg)
{
	api_req *r = arg;
	arca_api *api = r->api;
	uint64_t now = arca_svc_now_ms();
	if (r->orphan) {
		req_free(r);
		return;
	}
	if (r->db_failed) {
		fail(r, ARCA_ERR_DB, "cannot check the login: %s", r->err.msg);
		finish(r);
		return;
	}
	arca_throttle_record(arca_svc_throttle(api->svc), r->user, r->peer, !r->auth_failed, now);
	if (r->auth_failed) {
		fail(r, ARCA_API_E_AUTH, "invalid user name or password");
		finish(r);
		return;
	}
	if (r->route == R_LOGIN) {
		char token[ARCA_API_TOKEN_HEX + 1];
		session_new(api, r->user, token);
		r->call.result = json_pack("{s:s,s:o,s:I}", "token", token, "userName",
		                           arca_api_jstr(r->user), "idleTimeout",
		                           (json_int_t)(ARCA_API_SESSION_IDLE_MS / 1000));
		arca_crypto_wipe(token, sizeof(token));
		finish(r);
		return;
	}
	{
		uint8_t key[32];
		cache_key(api, r->user, r->pass, key);
		cache_put(api, r->user, key, now);
	}
	arca_crypto_wipe(r->pass, strlen(r->pass));
	submit(r, work, work_done);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
	api_req *r = arg;
	(void)fd;
	(void)what;
	event_free(r->timer);
	r->timer = NULL;
	submit(r, check_work, check_done);
}

/* A name and password to check: cache (Basic), else throttle delay, then Argon2id on a worker. */
static void check_login(api_req *r)
{
	arca_api *api = r->api;
	uint64_t now = arca_svc_now_ms();
	uint32_t delay;
	if (r->route != R_LOGIN) {
		uint8_t key[32];
		bool hit;
		cache_key(api, r->user, r->pass, key);
		hit = cache_hit(api, r->user, key, now);
		arca_crypto_wipe(key, sizeof(key));
		if (hit) {
			arca_crypto_wipe(r->pass, strlen(r->pass));
			submit(r, work, work_done);
			return;
		}
	}
	delay = arca_throttle_reserve_ms(arca_svc_throttle(api->svc), r->user, r->peer, now);
	if (delay > 0) {
		struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
		r->timer = evtimer_new(api->base, on_delay, r);
		if (r->timer != NULL && evtimer_add(r->timer, &tv) == 0)
			return;
		fail(r, ARCA_ERR_NOMEM, "out of memory");
		finish(r);
		return;
	}
	submit(r, check_work, check_done);
}

static bool parse_basic(api_req *r, const char *b64)
{
	unsigned char dec[ARCA_NAME_MAX + 1024 + 2];
	size_t n = 0;
	const unsigned char *colon;
	if (sodium_base642bin(dec, sizeof(dec) - 1, b64, strlen(b64), NULL, &n, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	dec[n] = '\0';
	colon = memchr(dec, ':', n);
	if (colon == NULL || colon == dec || (size_t)(colon - dec) >= sizeof(r->user) ||
	    memchr(dec, '\0', n) != NULL) {
		arca_crypto_wipe(dec, sizeof(dec));
		return false;
	}
	memcpy(r->user, dec, (size_t)(colon - dec));
	r->user[colon - dec] = '\0';
	r->pass = strdup((const char *)colon + 1);
	arca_crypto_wipe(dec, sizeof(dec));
	return r->pass != NULL;
}

static bool parse_login_body(api_req *r)
{
	json_t *v;
	const char *u, *p;
	bool ok = false;
	if (arca_api_parse_json(r->body ? r->body : "", r->body_len, &v, &r->err) != ARCA_OK)
		return false;
	u = arca_api_str(v, "userName");
	p = arca_api_str(v, "password");
	if (json_object_size(v) == 2 && u != NULL && p != NULL && strlen(u) < sizeof(r->user) &&
	    u[0] != '\0') {
		snprintf(r->user, sizeof(r->user), "%s", u);
		r->pass = strdup(p);
		ok = r->pass != NULL;
	}
	if (!ok)
		arca_error_set(&r->err, ARCA_ERR_INVALID,
		               "login needs {\"userName\": string, \"password\": string} or HTTP Basic");
	json_decref(v);
	return ok;
}

/* ---- routing ---- */

static bool param_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      *s == ':'))
			return false;
	return true;
}

static api_route route_of(api_req *r, const char *path, bool *get)
{
	const char *p;
	*get = false;
	snprintf(r->path, sizeof(r->path), "%s", path);
	if (strncmp(path, "/api/invoke/", 12) == 0) {
		const char *name = path + 12;
		if (param_ok(name, sizeof(r->cmd) - 1) && strchr(name, ':') == NULL)
			snprintf(r->cmd, sizeof(r->cmd), "%s", name);
		else
			snprintf(r->cmd, sizeof(r->cmd), "?");
		return R_INVOKE;
	}
	if (strcmp(path, "/api/get-status") == 0)
		return R_STATUS;
	if (strcmp(path, "/api/cancel-async") == 0)
		return R_CANCEL;
	if (strcmp(path, "/api/login") == 0)
		return R_LOGIN;
	if (strcmp(path, "/api/logout") == 0)
		return R_LOGOUT;
	if (strcmp(path, "/api/upload") == 0)
		return R_UPLOAD;
	if (strncmp(path, "/api/upload/", 12) == 0 && param_ok(path + 12, ARCA_API_ID_HEX)) {
		snprintf(r->param, sizeof(r->param), "%s", path + 12);
		snprintf(r->path, sizeof(r->path), "/api/upload/*");
		return R_UPLOAD;
	}
	if (strncmp(path, "/api/download/", 14) == 0 && param_ok(path + 14, ARCA_API_ID_HEX)) {
		snprintf(r->param, sizeof(r->param), "%s", path + 14);
		snprintf(r->path, sizeof(r->path), "/api/download/*");
		*get = true;
		return R_DOWNLOAD;
	}
	if (strncmp(path, "/api/message/", 13) == 0 && (p = strchr(path + 13, '/')) != NULL &&
	    (size_t)(p - (path + 13)) < 48) {
		char id[48];
		memcpy(id, path + 13, (size_t)(p - (path + 13)));
		id[p - (path + 13)] = '\0';
		if (!param_ok(id, sizeof(id) - 1))
			return R_NONE;
		snprintf(r->param, sizeof(r->param), "%s", id);
		*get = true;
		if (strcmp(p, "/raw") == 0)
			return R_RAW;
		if (strncmp(p, "/attachment/", 12) == 0 && p[12] >= '0' && p[12] <= '9' &&
		    strlen(p + 12) <= 6 && strspn(p + 12, "0123456789") == strlen(p + 12)) {
			r->index = strtoull(p + 12, NULL, 10);
			return R_ATTACHMENT;
		}
	}
	return R_NONE;
}

static void peer_of(api_req *r)
{
	struct evhttp_connection *con = evhttp_request_get_connection(r->req);
	struct bufferevent *bev = con ? evhttp_connection_get_bufferevent(con) : NULL;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	snprintf(r->peer, sizeof(r->peer), "unknown");
	if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		arca_listen_peer_text((struct sockaddr *)&ss, (int)len, true, r->peer, sizeof(r->peer));
}

static void on_request(struct evhttp_request *req, void *arg)
{
	arca_api *api = arg;
	api_req *r = calloc(1, sizeof(*r));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL, *auth;
	char *path;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	struct evbuffer *in;
	bool get = false;
	if (r == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	r->api = api;
	r->req = req;
	r->fd = -1;
	r->t0 = arca_svc_now_ms();
	arca_buf_init(&r->raw, ARCA_MAX_MESSAGE_SIZE);
	r->next = api->inflight;
	if (r->next)
		r->next->prev = r;
	api->inflight = r;
	r->method = m == EVHTTP_REQ_GET    ? "GET"
	            : m == EVHTTP_REQ_POST ? "POST"
	            : m == EVHTTP_REQ_HEAD ? "HEAD"
	                                   : "OTHER";
	peer_of(r);
	path = raw_path ? evhttp_uridecode(raw_path, 0, NULL) : NULL;
	r->route = path ? route_of(r, path, &get) : R_NONE;
	if (path == NULL)
		snprintf(r->path, sizeof(r->path), "?");
	free(path);
	if (r->route == R_NONE) {
		fail(r, ARCA_API_E_NOROUTE, "no such path (see docs/api.md)");
		finish(r);
		return;
	}
	if ((get && m != EVHTTP_REQ_GET) || (!get && m != EVHTTP_REQ_POST)) {
		fail(r, ARCA_API_E_METHOD, "use %s for this path", get ? "GET" : "POST");
		finish(r);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	r->body_len = evbuffer_get_length(in);
	if (r->body_len > ARCA_API_MAX_BODY) {
		fail(r, ARCA_API_E_TOOBIG, "request body larger than %u bytes", ARCA_API_MAX_BODY);
		finish(r);
		return;
	}
	r->body = malloc(r->body_len + 1);
	if (r->body == NULL) {
		fail(r, ARCA_ERR_NOMEM, "out of memory");
		finish(r);
		return;
	}
	evbuffer_remove(in, r->body, r->body_len);
	r->body[r->body_len] = '\0';

	auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (auth != NULL && strlen(auth) > 4096)
		auth = NULL;
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
		const arca_api_session *s = session_find(api, auth + 7, r->t0);
		if (s == NULL) {
			fail(r, ARCA_API_E_AUTH, "invalid or expired session token");
			finish(r);
			return;
		}
		snprintf(r->user, sizeof(r->user), "%s", s->user);
		if (r->route == R_LOGOUT) {
			uint8_t h[32];
			session_hash(auth + 7, h);
			for (size_t i = 0; i < api->n_sessions; i++)
				if (CRYPTO_memcmp(api->sessions[i].hash, h, 32) == 0) {
					api->sessions[i] = api->sessions[--api->n_sessions];
					break;
				}
			finish(r);
			return;
		}
		if (r->route == R_LOGIN) {
			fail(r, ARCA_ERR_INVALID, "already logged in with a session token");
			finish(r);
			return;
		}
		submit(r, work, work_done);
		return;
	}
	if (r->route == R_LOGOUT) {
		fail(r, ARCA_API_E_AUTH, "logout needs the session token (Authorization: Bearer)");
		finish(r);
		return;
	}
	if (auth != NULL && strncasecmp(auth, "Basic ", 6) == 0) {
		if (!parse_basic(r, auth + 6)) {
			fail(r, ARCA_API_E_AUTH, "malformed HTTP Basic credentials");
			finish(r);
			return;
		}
		r->basic = true;
		check_login(r);
		return;
	}
	if (r->route == R_LOGIN) {
		if (!parse_login_body(r)) {
			r->code = r->err.status ? (int)r->err.status : ARCA_ERR_INVALID;
			finish(r);
			return;
		}
		check_login(r);
		return;
	}
	fail(r, ARCA_API_E_AUTH, "authentication required: HTTP Basic or a session token (Bearer)");
	finish(r);
}

/* ---- lifecycle ---- */

static struct bufferevent *bev_tls(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);
	if (ssl == NULL) {
		arca_log(ARCA_LOG_ERROR, "api", "cannot create a TLS session");
		return NULL;
	}
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                      BEV_OPT_CLOSE_ON_FREE);
}

static void clean_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "upload-", 7) == 0 || strncmp(e->d_name, "export-", 7) == 0)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

arca_status arca_api_new(arca_svc *svc, arca_api **out, arca_error *err)
{
	arca_api *api;
	char run[ARCA_PATH_MAX];
	arca_status st;
	*out = NULL;
	api = calloc(1, sizeof(*api));
	if (api == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	api->svc = svc;
	api->base = arca_svc_base(svc);
	pthread_mutex_init(&api->mu, NULL);
	pthread_cond_init(&api->cv, NULL);
	atomic_init(&api->store_gen, 0);
	arca_crypto_random(api->salt, sizeof(api->salt));
	api->sessions = calloc(ARCA_API_MAX_SESSIONS, sizeof(*api->sessions));
	if (api->sessions == NULL) {
		st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if (arca_fs_join(run, sizeof(run), arca_svc_base_dir(svc), "run") != ARCA_OK ||
	    arca_fs_join(api->tmp_dir, sizeof(api->tmp_dir), run, "tmp") != ARCA_OK) {
		st = arca_error_set(err, ARCA_ERR_LIMIT, "base path too long");
		goto fail;
	}
	if ((st = arca_fs_mkdirs(api->tmp_dir, err)) != ARCA_OK)
		goto fail;
	clean_tmp(api->tmp_dir);
	if ((st = arca_api_jobs_start(api, err)) != ARCA_OK)
		goto fail;
	*out = api;
	return ARCA_OK;
fail:
	arca_api_free(&api);
	return st;
}

arca_status arca_api_listen(arca_api *api, struct evconnlistener *l, SSL_CTX *tls, arca_error *err)
{
	struct evhttp *http;
	struct evhttp_bound_socket *b;
	if (api->n_bound == ARCA_API_MAX_LISTENERS)
		return arca_error_set(err, ARCA_ERR_LIMIT, "at most %u API listeners",
		                      ARCA_API_MAX_LISTENERS);
	http = evhttp_new(api->base);
	if (http == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	/* bodies beyond the cap are refused by evhttp itself with 413 before they are read */
	evhttp_set_max_body_size(http, ARCA_API_MAX_BODY);
	evhttp_set_max_headers_size(http, 64 * 1024);
	evhttp_set_timeout(http, 120);
	evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
	                                     EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, on_request, api);
	if (tls != NULL)
		evhttp_set_bevcb(http, bev_tls, tls);
	b = evhttp_bind_listener(http, l);
	if (b == NULL) {
		evhttp_free(http);
		return arca_error_set(err, ARCA_ERR_NOMEM, "cannot serve HTTP on the listener");
	}
	evconnlistener_enable(l); /* it may have been created or left disabled */
	api->http_list[api->n_bound] = http;
	api->bound[api->n_bound] = b;
	api->tls[api->n_bound] = tls;
	api->n_bound++;
	return ARCA_OK;
}

void arca_api_shutdown(arca_api *api)
{
	if (api == NULL)
		return;
	for (size_t i = 0; i < api->n_bound; i++) {
		if (api->bound[i] != NULL)
			evhttp_del_accept_socket(api->http_list[i], api->bound[i]);
		api->bound[i] = NULL;
	}
}

void arca_api_free(arca_api **papi)
{
	arca_api *api = papi ? *papi : NULL;
	if (api == NULL)
		return;
	arca_api_shutdown(api);
	arca_api_jobs_stop(api);
	/* worker functions may still run (a serial job waiting was woken above): wait for them;
	 * their completion callbacks find the request orphaned */
	pthread_mutex_lock(&api->mu);
	while (api->work_pending > 0)
		pthread_cond_wait(&api->cv, &api->mu);
	pthread_mutex_unlock(&api->mu);
	while (api->inflight != NULL) {
		api_req *r = api->inflight;
		api->inflight = r->next;
		r->orphan = true;
		if (r->timer != NULL) /* waiting for the throttle: nothing else refers to it */
			req_free(r);
	}
	for (size_t i = 0; i < api->n_bound; i++)
		evhttp_free(api->http_list[i]);
	arca_api_jobs_free(api);
	arca_api_uploads_clear(api);
	if (api->sessions)
		arca_crypto_wipe(api->sessions, ARCA_API_MAX_SESSIONS * sizeof(*api->sessions));
	free(api->sessions);
	arca_crypto_wipe(api->cache, sizeof(api->cache));
	pthread_mutex_destroy(&api->mu);
	pthread_cond_destroy(&api->cv);
	free(api);
	*papi = NULL;
}

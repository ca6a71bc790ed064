/* IMAP connections: accept, TLS, reading and parsing commands, dispatching them to the loop or
 * the worker pool, and writing responses with flow control.
 *
 * Threads: everything here runs on the loop thread except a command's work step, which runs on
 * a worker and writes into its own evbuffer; imapd_flush hands that to the session's `out`
 * buffer (under the session mutex) and wakes the loop, which moves it to the connection while
 * the connection's output is below OUT_HIGH. A worker waits while `out` is above OUT_HIGH, so a
 * FETCH of a million messages to a slow client holds at most about 2 x OUT_HIGH in memory.
 * With COMPRESS, whoever appends to `out` compresses first (out_append): the worker compresses
 * its own responses, in parallel with the loop thread's TLS and writes.
 * One command runs at a time per session; pipelined commands wait in the input buffer, except
 * FETCHes pipelined behind a FETCH: those are prepared on the loop and run by the same worker
 * right after it, in order (the chain, see chain_or_hold). */
#include "imap/imapd_int.h"

#include <errno.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "net/deflate.h"
#include "net/listen.h"

#define OUT_HIGH (256u * 1024u)
#define WRITE_TIMEOUT_S 600
#define ZIDLE_MS 2000 /* compression state freed after this long without output */

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);
static void session_close(imapd_session *s);
static void process_input(imapd_session *s);
static void command_finish(imapd_cmd *c);
static void continue_command(imapd_cmd *c);
static void dispatch(imapd_session *s);

/* ------------------------------------------------------------------ output */

void imapd_write(imapd_cmd *c, const void *data, size_t len)
{
	if (!c->client_gone)
		evbuffer_add(c->buf, data, len);
}

void imapd_printf(imapd_cmd *c, const char *fmt, ...)
{
	va_list ap;
	if (c->client_gone)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(c->buf, fmt, ap);
	va_end(ap);
}

void imapd_tagged(imapd_cmd *c, const char *status, const char *fmt, ...)
{
	va_list ap;
	if (c->client_gone)
		return;
	evbuffer_add_printf(c->buf, "%s %s ", c->tag, status);
	va_start(ap, fmt);
	evbuffer_add_vprintf(c->buf, fmt, ap);
	va_end(ap);
	evbuffer_add(c->buf, "\r\n", 2);
}

void imapd_tagged_error(imapd_cmd *c, const arca_error *e)
{
	switch (e->status) {
	case ARCA_ERR_SYNTAX:
		imapd_tagged(c, "BAD", "%s", e->msg);
		break;
	case ARCA_ERR_INVALID:
		imapd_tagged(c, "BAD", "%s", e->msg);
		break;
	case ARCA_ERR_NOTFOUND:
		imapd_tagged(c, "NO", "[NONEXISTENT] %s", e->msg);
		break;
	case ARCA_ERR_LIMIT:
		imapd_tagged(c, "NO", "[LIMIT] %s", e->msg);
		break;
	case ARCA_ERR_STATE:
		imapd_tagged(c, "NO", "[CANNOT] %s", e->msg);
		break;
	case ARCA_ERR_CORRUPT:
	case ARCA_ERR_CRYPTO:
		imapd_tagged(c, "NO", "[CORRUPTION] %s", e->msg);
		break;
	default:
		imapd_tagged(c, "NO", "[SERVERBUG] %s", e->msg);
		break;
	}
}

static void out_append(imapd_session *s, struct evbuffer *buf, bool defer);

/* Loop thread: moves worker output to the connection while it is not backed up (compressing
 * what waits uncompressed first). */
static void pump_out(imapd_session *s)
{
	if (s->z != NULL)
		out_append(s, NULL, false);
	pthread_mutex_lock(&s->mu);
	if (s->bev != NULL && evbuffer_get_length(s->out) > 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) < OUT_HIGH) {
		bufferevent_write_buffer(s->bev, s->out);
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	imapd_session *s = arg;
	int failed;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&s->mu);
	failed = s->out_failed;
	pthread_mutex_unlock(&s->mu);
	if (failed != 0) {
		arca_log(ARCA_LOG_ERROR, "imap", "session=%llu compression failed: %s",
		         (unsigned long long)s->id, strerror(failed));
		session_close(s);
		return;
	}
	pump_out(s);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Appends buf (drained; NULL: nothing new) to the session's output, compressed when COMPRESS
 * is on. Any thread. zmu orders the compressors: bytes join `out` in the order they were
 * compressed. With defer, buf waits uncompressed in zraw, before anything appended later, until
 * an append without defer or pump_out (loop thread) compresses it: a command's last bytes are
 * compressed on the loop while a worker already runs the next command (mbsync sends one command
 * per message; compressing inside each made the session's commands wait for zlib in turn).
 * A failure marks the session, which the loop thread then closes (wake_cb). */
static void out_append(imapd_session *s, struct evbuffer *buf, bool defer)
{
	bool arm = false;
	int failed = 0;
	if (s->z == NULL) {
		if (buf == NULL)
			return;
		pthread_mutex_lock(&s->mu);
		evbuffer_add_buffer(s->out, buf);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	pthread_mutex_lock(&s->zmu);
	if (buf != NULL)
		evbuffer_add_buffer(s->zraw, buf);
	if ((defer && evbuffer_get_length(s->zraw) < OUT_HIGH / 2) || evbuffer_get_length(s->zraw) == 0) {
		pthread_mutex_unlock(&s->zmu);
		return;
	}
	if (arca_deflate_out_put(s->z, s->zraw, s->ztmp) != 0) {
		failed = errno != 0 ? errno : EPROTO;
		evbuffer_drain(s->zraw, evbuffer_get_length(s->zraw));
		evbuffer_drain(s->ztmp, evbuffer_get_length(s->ztmp));
	}
	s->zlast = now_ms();
	arm = !s->zarmed;
	s->zarmed = true;
	pthread_mutex_lock(&s->mu);
	evbuffer_add_buffer(s->out, s->ztmp);
	if (failed != 0)
		s->out_failed = failed;
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->zmu);
	if (failed != 0)
		event_active(s->wake_ev, EV_READ, 0);
	if (arm) {
		struct timeval tv = {ZIDLE_MS / 1000, 0};
		evtimer_add(s->ztrim_ev, &tv);
	}
}

/* Loop thread: frees the compression state of a session that has sent nothing for ZIDLE_MS. */
static void ztrim_cb(evutil_socket_t fd, short what, void *arg)
{
	imapd_session *s = arg;
	uint64_t quiet;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&s->zmu);
	quiet = now_ms() - s->zlast;
	if (quiet >= ZIDLE_MS) {
		arca_deflate_out_idle(s->z);
		s->zarmed = false;
	} else {
		uint64_t rest = ZIDLE_MS - quiet;
		struct timeval tv = {(time_t)(rest / 1000), (suseconds_t)(rest % 1000) * 1000};
		evtimer_add(s->ztrim_ev, &tv);
	}
	pthread_mutex_unlock(&s->zmu);
}

/* Worker: c->buf joins `out` once there is room; wake tells the loop to write it now (the last
 * flush of a step does not: the pool's completion wakes the loop anyway, one wake-up fewer per
 * command). */
static bool flush_out(imapd_cmd *c, bool defer, bool wake)
{
	imapd_session *s = c->s;
	bool gone;
	pthread_mutex_lock(&s->mu);
	while (!s->closing && evbuffer_get_length(s->out) >= OUT_HIGH)
		pthread_cond_wait(&s->cv, &s->mu);
	gone = s->closing;
	pthread_mutex_unlock(&s->mu);
	if (gone) {
		c->client_gone = true;
		evbuffer_drain(c->buf, evbuffer_get_length(c->buf));
		return false;
	}
	out_append(s, c->buf, defer);
	if (wake)
		event_active(s->wake_ev, EV_READ, 0);
	return true;
}

bool imapd_flush(imapd_cmd *c)
{
	return flush_out(c, false, true);
}

/* Loop thread: the command's buffered output goes out (after anything a worker left). */
static void send_buf(imapd_session *s, struct evbuffer *buf)
{
	if (s->bev == NULL) {
		evbuffer_drain(buf, evbuffer_get_length(buf));
		return;
	}
	out_append(s, buf, false);
	pump_out(s);
}

static void send_text(imapd_session *s, const char *text)
{
	struct evbuffer *b;
	if (s->bev == NULL || (b = evbuffer_new()) == NULL)
		return;
	evbuffer_add(b, text, strlen(text));
	send_buf(s, b);
	evbuffer_free(b);
}

/* ------------------------------------------------------------------ sessions */

static void user_count_drop(arca_imapd *d, const char *user)
{
	for (size_t i = 0; i < d->n_user_counts; i++) {
		if (strcmp(d->user_counts[i].name, user) == 0) {
			if (--d->user_counts[i].n == 0)
				d->user_counts[i] = d->user_counts[--d->n_user_counts];
			return;
		}
	}
}

bool imapd_user_enter(imapd_session *s, const char *user)
{
	arca_imapd *d = s->d;
	unsigned max = d->cfg.max_user_conns ? d->cfg.max_user_conns : 20;
	for (size_t i = 0; i < d->n_user_counts; i++) {
		if (strcmp(d->user_counts[i].name, user) == 0) {
			if (d->user_counts[i].n >= max)
				return false;
			d->user_counts[i].n++;
			s->counted = true;
			return true;
		}
	}
	if (d->n_user_counts == d->cap_user_counts) {
		size_t cap = d->cap_user_counts ? d->cap_user_counts * 2 : 16;
		struct imapd_user_count *n = realloc(d->user_counts, cap * sizeof(*n));
		if (n == NULL)
			return false;
		d->user_counts = n;
		d->cap_user_counts = cap;
	}
	snprintf(d->user_counts[d->n_user_counts].name, ARCA_NAME_MAX, "%s", user);
	d->user_counts[d->n_user_counts].n = 1;
	d->n_user_counts++;
	s->counted = true;
	return true;
}

void imapd_user_leave(imapd_session *s)
{
	if (s->counted) {
		user_count_drop(s->d, s->user);
		s->counted = false;
	}
}

static void cmd_free(imapd_cmd *c)
{
	if (c == NULL)
		return;
	if (c->data_free != NULL && c->data != NULL)
		c->data_free(c->data);
	if (c->buf != NULL)
		evbuffer_free(c->buf);
	free(c->tag);
	while (c->chain_done != NULL) {
		imapd_cmd *n = c->chain_done;
		c->chain_done = n->chain_next;
		cmd_free(n);
	}
	free(c);
}

/* Pops the first chained command (NULL if none), under mu. */
static imapd_cmd *chain_pop(imapd_session *s)
{
	imapd_cmd *c;
	pthread_mutex_lock(&s->mu);
	c = s->closing ? NULL : s->chain_head;
	if (c != NULL) {
		s->chain_head = c->chain_next;
		if (s->chain_head == NULL)
			s->chain_tail = NULL;
		c->chain_next = NULL;
		s->chain_len--;
	}
	pthread_mutex_unlock(&s->mu);
	return c;
}

static void session_free(imapd_session *s)
{
	arca_imapd *d = s->d;
	arca_log(ARCA_LOG_INFO, "imap", "disconnect session=%llu peer=%s user=%s",
	         (unsigned long long)s->id, s->peer, s->user[0] ? s->user : "-");
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	d->n_sessions--;
	imapd_user_leave(s);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->wake_ev != NULL)
		event_free(s->wake_ev);
	if (s->ztrim_ev != NULL)
		event_free(s->ztrim_ev);
	arca_deflate_out_free(&s->z);
	if (s->ztmp != NULL)
		evbuffer_free(s->ztmp);
	if (s->zraw != NULL)
		evbuffer_free(s->zraw);
	evbuffer_free(s->out);
	arca_imap_parser_free(&s->parser);
	imapd_mailbox_free(&s->mbox);
	free(s->searchres);
	cmd_free(s->cmd);
	while (s->chain_head != NULL) {
		imapd_cmd *n = s->chain_head;
		s->chain_head = n->chain_next;
		cmd_free(n);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->zmu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

/* The connection is gone (or must go now): stop I/O; free unless a worker still runs. */
static void session_close(imapd_session *s)
{
	pthread_mutex_lock(&s->mu);
	s->closing = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->timer != NULL)
		event_del(s->timer);
	if (s->cmd != NULL && s->cmd->next == IMAPD_WORKER)
		return; /* freed when the worker's step returns */
	session_free(s);
}

/* Output still queued in any layer (COMPRESS over TLS over the socket). */
static bool layers_flushed(struct bufferevent *b)
{
	for (; b != NULL; b = bufferevent_get_underlying(b))
		if (evbuffer_get_length(bufferevent_get_output(b)) > 0)
			return false;
	return true;
}

static void graceful_step(evutil_socket_t fd, short what, void *arg);

/* A close we decided (LOGOUT, BYE): everything written goes out through every layer, then
 * TLS says close_notify (clients report "unexpected eof" otherwise), then the socket closes.
 * Bounded: after CLOSE_WAIT_TICKS the session closes anyway. */
#define CLOSE_WAIT_TICKS 500 /* x 10 ms */
static void graceful_close(imapd_session *s)
{
	struct timeval tv = {0, 10000};
	if (s->bev == NULL) {
		session_close(s);
		return;
	}
	bufferevent_disable(s->bev, EV_READ);
	if (!layers_flushed(s->bev) && s->close_ticks < CLOSE_WAIT_TICKS)
		goto wait;
	if (!s->tls_shut_down) {
		struct bufferevent *b;
		s->tls_shut_down = true;
		for (b = s->bev; b != NULL; b = bufferevent_get_underlying(b)) {
			SSL *ssl = bufferevent_openssl_get_ssl(b);
			if (ssl != NULL) {
				SSL_shutdown(ssl);
				break;
			}
		}
		if (!layers_flushed(s->bev) && s->close_ticks < CLOSE_WAIT_TICKS)
			goto wait;
	}
	session_close(s);
	return;
wait:
	s->close_ticks++;
	if (s->timer == NULL)
		s->timer = evtimer_new(bufferevent_get_base(s->bev), graceful_step, s);
	else
		event_assign(s->timer, bufferevent_get_base(s->bev), -1, 0, graceful_step, s);
	if (s->timer == NULL || evtimer_add(s->timer, &tv) != 0)
		session_close(s);
}

static void graceful_step(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	graceful_close(arg);
}

static void set_timeouts(imapd_session *s)
{
	struct timeval rd = {0, 0}, wr = {WRITE_TIMEOUT_S, 0};
	const arca_imapd_config *cfg = &s->d->cfg;
	if (s->bev == NULL)
		return;
	if (s->busy && (s->cmd == NULL || s->cmd->next != IMAPD_WAIT_LINE)) {
		bufferevent_set_timeouts(s->bev, NULL, &wr);
		return;
	}
	if (s->state & IMAPD_NOTAUTH)
		rd.tv_sec = cfg->login_timeout_s ? cfg->login_timeout_s : 60;
	else
		rd.tv_sec = cfg->idle_timeout_s > 1800 ? cfg->idle_timeout_s : 1800;
	bufferevent_set_timeouts(s->bev, &rd, &wr);
}

static void session_setup_bev(imapd_session *s)
{
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUT_HIGH / 2, 0);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	set_timeouts(s);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	arca_imapd *d = arg;
	struct event_base *base = evconnlistener_get_base(l);
	imapd_session *s;
	unsigned idx = 0;
	arca_imap_parser_opts popts = {.literal_plus = true, .max_literal = 0};
	while (idx < d->n_listeners && d->listeners[idx] != l)
		idx++;
	if (d->shutting_down || idx == d->n_listeners) {
		evutil_closesocket(fd);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		evutil_closesocket(fd);
		return;
	}
	if (sa != NULL && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
		/* responses are written as they are ready: do not let Nagle hold the last segment */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	s->d = d;
	s->id = ++d->next_id;
	s->state = IMAPD_NOTAUTH;
	s->trusted = d->listener_trusted[idx];
	arca_listen_peer_text(sa, salen, false, s->peer, sizeof(s->peer));
	arca_listen_peer_text(sa, salen, true, s->peer_host, sizeof(s->peer_host));
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->zmu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->out = evbuffer_new();
	s->wake_ev = event_new(base, -1, 0, wake_cb, s);
	if (d->listener_tls[idx]) {
		SSL *ssl = SSL_new(d->cfg.tls);
		if (ssl != NULL)
			s->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
			                                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		else
			evutil_closesocket(fd);
		s->tls = true;
	} else {
		s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	s->next = d->sessions;
	if (d->sessions != NULL)
		d->sessions->prev = s;
	d->sessions = s;
	d->n_sessions++;
	if (s->out == NULL || s->wake_ev == NULL || s->bev == NULL ||
	    arca_imap_parser_new(&popts, &s->parser, NULL) != ARCA_OK) {
		arca_log(ARCA_LOG_ERROR, "imap", "cannot set up a session for %s", s->peer);
		session_close(s);
		return;
	}
	arca_log(ARCA_LOG_INFO, "imap", "connect session=%llu peer=%s tls=%d", (unsigned long long)s->id,
	         s->peer, s->tls);
	session_setup_bev(s);
	{
		char greet[1024];
		snprintf(greet, sizeof(greet), "* OK [CAPABILITY %s] Arca archive IMAP server ready.\r\n",
		         imapd_capabilities(s));
		send_text(s, greet);
	}
}

/* ------------------------------------------------------------------ commands */

const arca_imap_node *imapd_arg(imapd_cmd *c)
{
	const arca_imap_node *n = arca_imap_node_child(c->args, c->argi);
	if (n != NULL)
		c->argi++;
	return n;
}

size_t imapd_args_left(const imapd_cmd *c)
{
	size_t n = arca_imap_node_count(c->args);
	return n > c->argi ? n - c->argi : 0;
}

const char *imapd_arg_string(imapd_cmd *c, size_t *len)
{
	const arca_imap_node *n = imapd_arg(c);
	arca_imap_node_type t;
	if (n == NULL)
		return NULL;
	t = arca_imap_node_kind(n);
	if (t != ARCA_IMAP_NODE_ATOM && t != ARCA_IMAP_NODE_NUMBER && t != ARCA_IMAP_NODE_NIL &&
	    t != ARCA_IMAP_NODE_STRING)
		return NULL;
	return arca_imap_node_text(n, len);
}

static void worker_step(arca_svc_handles *h, void *arg)
{
	imapd_cmd *c = arg;
	imapd_cmd *n, **done = &c->chain_done;
	c->h = h;
	c->work(c);
	c->h = NULL;
	/* Chain: FETCHes the loop parsed meanwhile run here in turn; their output is woken out
	 * (compressed on the loop) as each ends. Then the last flush needs no wake of its own:
	 * worker_done pumps it out. */
	while ((n = chain_pop(c->s)) != NULL) {
		if (evbuffer_get_length(c->buf) > 0)
			flush_out(c, true, true);
		if (n->next == IMAPD_WORKER) {
			n->h = h;
			n->work(n);
			n->h = NULL;
		}
		n->next = IMAPD_DONE;
		if (evbuffer_get_length(n->buf) > 0)
			flush_out(n, true, true);
		*done = n;
		done = &n->chain_next;
	}
	if (evbuffer_get_length(c->buf) > 0)
		flush_out(c, true, false);
}

static void worker_done(void *arg)
{
	imapd_cmd *c = arg;
	imapd_session *s = c->s;
	c->next = IMAPD_DONE;
	if (s->closing) {
		session_free(s);
		return;
	}
	if (c->after != NULL) {
		imapd_cmd_fn after = c->after;
		c->after = NULL;
		after(c);
	}
	continue_command(c);
}

/* After a step of c: start its next step or finish it. */
static void continue_command(imapd_cmd *c)
{
	imapd_session *s = c->s;
	arca_error e;
	switch (c->next) {
	case IMAPD_WORKER:
		send_buf(s, c->buf);
		if (arca_svc_submit(s->d->svc, worker_step, worker_done, c, &e) != ARCA_OK) {
			c->next = IMAPD_DONE;
			imapd_tagged(c, "NO", "[UNAVAILABLE] %s", e.msg);
			command_finish(c);
		}
		set_timeouts(s);
		return;
	case IMAPD_WAIT_LINE:
		send_buf(s, c->buf);
		if (!s->line_expected) {
			arca_imap_parser_expect_line(s->parser);
			s->line_expected = true;
		}
		set_timeouts(s);
		process_input(s);
		return;
	case IMAPD_WAIT_TIMER:
		send_buf(s, c->buf);
		set_timeouts(s);
		return;
	case IMAPD_CLOSE:
		send_buf(s, c->buf);
		s->flush_close = true;
		command_finish(c);
		return;
	case IMAPD_DONE:
		if (c->after != NULL) {
			/* a loop step that must follow the queued response (STARTTLS, COMPRESS) */
			imapd_cmd_fn after = c->after;
			c->after = NULL;
			send_buf(s, c->buf);
			after(c);
		}
		command_finish(c);
		return;
	}
}

void imapd_resume(imapd_cmd *c)
{
	continue_command(c);
}

static void command_finish(imapd_cmd *c)
{
	imapd_session *s = c->s;
	/* queued, and compressed and written once the next command is on its way (wake_cb) */
	if (s->bev == NULL)
		evbuffer_drain(c->buf, evbuffer_get_length(c->buf));
	else
		out_append(s, c->buf, true);
	event_active(s->wake_ev, EV_READ, 0);
	s->cmd = NULL;
	s->busy = false;
	cmd_free(c);
	if (s->bye_pending && !s->flush_close) {
		send_text(s, "* BYE Server shutting down.\r\n");
		s->flush_close = true;
	}
	if (s->flush_close) {
		if (s->bev != NULL)
			bufferevent_disable(s->bev, EV_READ);
		session_write_cb(s->bev, s);
		return;
	}
	if ((c = chain_pop(s)) != NULL) {
		/* parsed while the previous one ran; its handler ran then */
		s->cmd = c;
		s->busy = true;
		continue_command(c);
		return;
	}
	if (s->held) {
		s->held = false;
		dispatch(s);
		if (s->busy || s->flush_close || s->bev == NULL)
			return; /* process_input carries on when it ends */
	}
	set_timeouts(s);
	process_input(s);
}

/* A raw line arrived for a command waiting for one. */
static void deliver_line(imapd_session *s)
{
	imapd_cmd *c = s->cmd;
	imapd_cmd_fn fn = c->line;
	c->line = NULL;
	c->line_data = arca_imap_parser_line(s->parser, &c->line_len);
	c->next = IMAPD_DONE;
	fn(c);
	continue_command(c);
}

static void dispatch(imapd_session *s)
{
	const char *tag = arca_imap_parser_tag(s->parser);
	const char *name = arca_imap_parser_command(s->parser);
	const imapd_command *cmd;
	imapd_cmd *c = calloc(1, sizeof(*c));
	if (c == NULL || (c->buf = evbuffer_new()) == NULL || (c->tag = strdup(tag)) == NULL) {
		cmd_free(c);
		send_text(s, "* BYE Out of memory.\r\n");
		s->flush_close = true;
		session_write_cb(s->bev, s);
		return;
	}
	c->s = s;
	c->args = arca_imap_parser_args(s->parser);
	c->name = name;
	s->cmd = c;
	s->busy = true;
	if (strcmp(name, "UID") == 0) {
		const char *sub = imapd_arg_string(c, NULL);
		c->uid = true;
		if (sub == NULL || (strcasecmp(sub, "FETCH") != 0 && strcasecmp(sub, "SEARCH") != 0 &&
		                    strcasecmp(sub, "SORT") != 0 && strcasecmp(sub, "THREAD") != 0 &&
		                    strcasecmp(sub, "STORE") != 0 && strcasecmp(sub, "COPY") != 0 &&
		                    strcasecmp(sub, "MOVE") != 0 && strcasecmp(sub, "EXPUNGE") != 0)) {
			imapd_tagged(c, "BAD", "UID must be followed by FETCH, SEARCH, SORT, THREAD, STORE, "
			                       "COPY, MOVE or EXPUNGE");
			command_finish(c);
			return;
		}
		c->name = sub;
	}
	cmd = imapd_command_find(c->name);
	if (cmd == NULL) {
		imapd_tagged(c, "BAD", "Unknown command %.40s", c->name);
		command_finish(c);
		return;
	}
	c->name = cmd->name;
	if ((cmd->states & s->state) == 0) {
		if (s->state & IMAPD_NOTAUTH)
			imapd_tagged(c, "BAD", "%s is not allowed before login", cmd->name);
		else if (s->state & IMAPD_AUTH && cmd->states != IMAPD_NOTAUTH)
			imapd_tagged(c, "BAD", "%s needs a selected mailbox (SELECT or EXAMINE first)",
			             cmd->name);
		else
			imapd_tagged(c, "BAD", "%s is only allowed before login", cmd->name);
		command_finish(c);
		return;
	}
	c->next = IMAPD_DONE;
	cmd->fn(c);
	continue_command(c);
}

/* The parser's error as the tagged BAD, appended to out. */
static void parse_error_to(imapd_session *s, struct evbuffer *out)
{
	const arca_error *e = arca_imap_parser_error(s->parser);
	const char *tag = arca_imap_parser_tag(s->parser);
	const char *code = arca_imap_resp_code_name(arca_imap_parser_error_code(s->parser));
	evbuffer_add_printf(out, "%.200s BAD %s%s%s%s\r\n", tag != NULL ? tag : "*", code != NULL ? "[" : "",
	                    code != NULL ? code : "", code != NULL ? "] " : "", e->msg);
}

static void parse_error(imapd_session *s)
{
	struct evbuffer *b;
	if (s->bev == NULL || (b = evbuffer_new()) == NULL)
		return;
	parse_error_to(s, b);
	send_buf(s, b);
	evbuffer_free(b);
}

/* Chain: a command parsed while a chainable one runs on a worker. A FETCH is prepared now (its
 * handler copies what it needs from the parser) and queued for the worker, which runs it right
 * after, in order; mbsync sends one UID FETCH per message, and the trip through the loop between
 * two of them (a wake-up each way) cost as much as the FETCH. Anything else is held, parsed,
 * until the chain has drained, then dispatched as usual. A syntax error is queued as its BAD. */
static void chain_or_hold(imapd_session *s, arca_imap_result r)
{
	const char *tag = arca_imap_parser_tag(s->parser), *name = arca_imap_parser_command(s->parser);
	imapd_cmd *c;
	if (r == ARCA_IMAP_COMMAND && strcasecmp(name, "FETCH") != 0 && strcasecmp(name, "UID") != 0) {
		s->held = true;
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->buf = evbuffer_new()) == NULL || (tag != NULL && (c->tag = strdup(tag)) == NULL)) {
		cmd_free(c);
		if (r == ARCA_IMAP_COMMAND)
			s->held = true; /* dispatched (or refused) in turn */
		return;
	}
	c->s = s;
	c->next = IMAPD_DONE;
	if (r == ARCA_IMAP_ERROR) {
		parse_error_to(s, c->buf);
	} else {
		const char *sub;
		c->args = arca_imap_parser_args(s->parser);
		c->name = "FETCH";
		if (strcasecmp(name, "UID") == 0) {
			c->uid = true;
			if ((sub = imapd_arg_string(c, NULL)) == NULL || strcasecmp(sub, "FETCH") != 0) {
				cmd_free(c);
				s->held = true;
				return;
			}
		}
		imapd_cmd_fetch(c);
		c->args = NULL; /* the parser moves on */
	}
	pthread_mutex_lock(&s->mu);
	if (s->chain_tail != NULL)
		s->chain_tail->chain_next = c;
	else
		s->chain_head = c;
	s->chain_tail = c;
	s->chain_len++;
	pthread_mutex_unlock(&s->mu);
}

/* While chaining, only whole lines without a literal are parsed: a literal's "+" continuation
 * would go out before the running command's responses. */
static bool chain_line_ready(const struct evbuffer_iovec *v)
{
	const char *p = v->iov_base, *nl = memchr(p, '\n', v->iov_len);
	size_t n;
	if (nl == NULL)
		return false;
	n = (size_t)(nl - p);
	while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	return n == 0 || p[n - 1] != '}';
}

static void process_input(imapd_session *s)
{
	while (s->bev != NULL && !s->flush_close && !s->closing) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		struct evbuffer_iovec v;
		size_t used = 0;
		arca_imap_result r;
		bool waiting_line = s->busy && s->cmd != NULL && s->cmd->next == IMAPD_WAIT_LINE;
		bool chaining = s->busy && s->cmd != NULL && s->cmd->next == IMAPD_WORKER && s->cmd->chainable &&
		                (s->state & IMAPD_SELECTED) != 0;
		if (s->held || (s->busy && !waiting_line && !chaining))
			return;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return;
		if (chaining) {
			bool full;
			pthread_mutex_lock(&s->mu);
			full = s->chain_len >= IMAPD_CHAIN_MAX;
			pthread_mutex_unlock(&s->mu);
			if (full || !chain_line_ready(&v))
				return; /* carried on when the running command ends */
		}
		r = arca_imap_parser_feed(s->parser, v.iov_base, v.iov_len, &used);
		if (chaining && (r == ARCA_IMAP_COMMAND || r == ARCA_IMAP_ERROR)) {
			evbuffer_drain(in, used);
			chain_or_hold(s, r);
			continue;
		}
		evbuffer_drain(in, used);
		switch (r) {
		case ARCA_IMAP_NEED_MORE:
			break;
		case ARCA_IMAP_CONTINUE_LITERAL:
			send_text(s, "+ Ready for literal data\r\n");
			break;
		case ARCA_IMAP_ERROR:
			if (waiting_line) {
				/* cannot happen: lines are raw */
				break;
			}
			parse_error(s);
			break;
		case ARCA_IMAP_LINE:
			s->line_expected = false;
			if (waiting_line)
				deliver_line(s);
			break;
		case ARCA_IMAP_COMMAND:
			dispatch(s);
			break;
		}
	}
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process_input(arg);
}

static void session_write_cb(struct bufferevent *bev, void *arg)
{
	imapd_session *s = arg;
	(void)bev;
	pump_out(s);
	if (s->flush_close && s->bev != NULL && !s->busy) {
		bool empty;
		pthread_mutex_lock(&s->mu);
		empty = evbuffer_get_length(s->out) == 0;
		pthread_mutex_unlock(&s->mu);
		if (empty && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 && s->close_ticks == 0)
			graceful_close(s);
	} else if (s->flush_close && s->bev == NULL && !s->busy) {
		session_close(s);
	}
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	imapd_session *s = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return; /* TLS handshake done */
	if (what & BEV_EVENT_TIMEOUT) {
		if (what & BEV_EVENT_READING) {
			arca_log(ARCA_LOG_INFO, "imap", "session=%llu idle timeout", (unsigned long long)s->id);
			if (!s->busy || (s->cmd != NULL && s->cmd->next == IMAPD_WAIT_LINE)) {
				send_text(s, "* BYE Autologout; idle for too long.\r\n");
				/* nothing more will be read; close once written */
				bufferevent_disable(s->bev, EV_READ);
				if (s->cmd != NULL && s->cmd->next == IMAPD_WAIT_LINE) {
					cmd_free(s->cmd);
					s->cmd = NULL;
					s->busy = false;
				}
				s->flush_close = true;
				return;
			}
			bufferevent_enable(s->bev, EV_READ);
			return;
		}
		arca_log(ARCA_LOG_INFO, "imap", "session=%llu write timeout", (unsigned long long)s->id);
	} else if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(s->bev);
		if (e != 0) {
			char buf[200];
			ERR_error_string_n(e, buf, sizeof(buf));
			arca_log(ARCA_LOG_INFO, "imap", "session=%llu TLS error: %s",
			         (unsigned long long)s->id, buf);
		}
	}
	if (s->busy && s->cmd != NULL && s->cmd->next == IMAPD_WAIT_TIMER) {
		/* the timer's callback owns the command: let it find the session closing */
	}
	session_close(s);
}

/* ------------------------------------------------------------------ TLS, COMPRESS */

bool imapd_start_tls(imapd_session *s)
{
	SSL *ssl = SSL_new(s->d->cfg.tls);
	struct bufferevent *f;
	if (ssl == NULL)
		return false;
	f = bufferevent_openssl_filter_new(bufferevent_get_base(s->bev), s->bev, ssl,
	                                   BUFFEREVENT_SSL_ACCEPTING,
	                                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (f == NULL) {
		SSL_free(ssl);
		return false;
	}
	s->bev = f;
	s->tls = true;
	session_setup_bev(s);
	return true;
}

bool imapd_start_compress(imapd_session *s)
{
	struct bufferevent *f;
	/* the output so far (our tagged OK included) is already in `out`, uncompressed */
	s->z = arca_deflate_out_new();
	s->ztmp = evbuffer_new();
	s->zraw = evbuffer_new();
	s->ztrim_ev = evtimer_new(bufferevent_get_base(s->bev), ztrim_cb, s);
	if (s->z == NULL || s->ztmp == NULL || s->zraw == NULL || s->ztrim_ev == NULL)
		return false;
	f = arca_deflate_bev_new(s->bev, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (f == NULL) {
		s->bev = NULL; /* freed with f's failure */
		return false;
	}
	s->bev = f;
	s->compressed = true;
	session_setup_bev(s);
	return true;
}

/* ------------------------------------------------------------------ server */

static void on_change(void *arg)
{
	arca_imapd *d = arg;
	for (imapd_session *s = d->sessions; s != NULL; s = s->next)
		imapd_idle_changed(s);
}

arca_status arca_imapd_new(arca_svc *svc, const arca_imapd_config *cfg, arca_imapd **out,
                           arca_error *err)
{
	arca_imapd *d = calloc(1, sizeof(*d));
	*out = NULL;
	if (d == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	d->svc = svc;
	d->cfg = *cfg;
	snprintf(d->instance_id, sizeof(d->instance_id), "%s",
	         cfg->instance_id != NULL ? cfg->instance_id : "");
	d->cfg.instance_id = d->instance_id;
	d->change_id = arca_svc_on_change(svc, on_change, d);
	if (d->change_id < 0) {
		free(d);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	*out = d;
	return ARCA_OK;
}

arca_status arca_imapd_listen(arca_imapd *d, struct evconnlistener *l, bool implicit_tls,
                              bool trusted, arca_error *err)
{
	if (d->n_listeners == sizeof(d->listeners) / sizeof(d->listeners[0]))
		return arca_error_set(err, ARCA_ERR_LIMIT, "too many IMAP listeners");
	if (implicit_tls && d->cfg.tls == NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "implicit TLS needs a certificate");
	d->listeners[d->n_listeners] = l;
	d->listener_tls[d->n_listeners] = implicit_tls;
	d->listener_trusted[d->n_listeners] = trusted;
	d->n_listeners++;
	evconnlistener_set_cb(l, on_accept, d);
	return ARCA_OK;
}

void arca_imapd_reconfigure(arca_imapd *d, const arca_imapd_config *cfg)
{
	SSL_CTX *tls = d->cfg.tls;
	d->cfg = *cfg;
	if (d->cfg.tls == NULL)
		d->cfg.tls = tls;
	d->cfg.instance_id = d->instance_id;
}

void arca_imapd_shutdown(arca_imapd *d)
{
	imapd_session *s, *next;
	d->shutting_down = true;
	for (unsigned i = 0; i < d->n_listeners; i++)
		evconnlistener_disable(d->listeners[i]);
	for (s = d->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->busy && s->cmd != NULL && s->cmd->next == IMAPD_WORKER) {
			s->bye_pending = true;
			continue;
		}
		if (s->busy && s->cmd != NULL) {
			cmd_free(s->cmd);
			s->cmd = NULL;
			s->busy = false;
			if (s->timer != NULL)
				event_del(s->timer);
		}
		send_text(s, "* BYE Server shutting down.\r\n");
		s->flush_close = true;
		if (s->bev != NULL)
			bufferevent_disable(s->bev, EV_READ);
		session_write_cb(s->bev, s);
	}
}

void arca_imapd_abort(arca_imapd *d)
{
	if (d->change_id >= 0) {
		arca_svc_off_change(d->svc, d->change_id);
		d->change_id = -1;
	}
	for (imapd_session *s = d->sessions; s != NULL; s = s->next) {
		pthread_mutex_lock(&s->mu);
		s->closing = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
}

unsigned arca_imapd_sessions(const arca_imapd *d)
{
	return d->n_sessions;
}

void arca_imapd_free(arca_imapd **pd)
{
	arca_imapd *d = pd != NULL ? *pd : NULL;
	if (d == NULL)
		return;
	while (d->sessions != NULL) {
		imapd_session *s = d->sessions;
		/* a worker may still hold it: the pool is stopped before this is called */
		if (s->cmd != NULL)
			s->cmd->next = IMAPD_DONE;
		session_close(s);
	}
	if (d->change_id >= 0)
		arca_svc_off_change(d->svc, d->change_id);
	free(d->user_counts);
	free(d);
	*pd = NULL;
}

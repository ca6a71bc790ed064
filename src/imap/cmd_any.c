/* Commands of any state and the login: CAPABILITY, NOOP, LOGOUT, ID, ENABLE, STARTTLS,
 * COMPRESS, LOGIN, AUTHENTICATE PLAIN; the refusals of a read-only archive; the command table. */
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imapd_int.h"
#include "lib/log.h"

/* ------------------------------------------------------------------ capabilities */

const char *imapd_capabilities(const imapd_session *s)
{
	static __thread char buf[600];
	bool authed = (s->state & IMAPD_AUTHED) != 0;
	snprintf(buf, sizeof(buf), "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE%s%s%s",
	         !authed && !s->tls && s->d->cfg.tls != NULL ? " STARTTLS" : "",
	         !authed ? (s->tls || s->trusted ? " AUTH=PLAIN" : " LOGINDISABLED") : "",
	         authed ? " NAMESPACE UNSELECT CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE ESEARCH"
	                  " SEARCHRES SORT THREAD=REFERENCES THREAD=ORDEREDSUBJECT BINARY CONDSTORE" :
	                  "");
	if (authed && !s->compressed && !s->d->cfg.no_compress)
		strncat(buf, " COMPRESS=DEFLATE", sizeof(buf) - strlen(buf) - 1);
	return buf;
}

void imapd_cmd_capability(imapd_cmd *c)
{
	if (imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "CAPABILITY takes no arguments");
		return;
	}
	imapd_printf(c, "* CAPABILITY %s\r\n", imapd_capabilities(c->s));
	imapd_tagged(c, "OK", "CAPABILITY completed");
}

void imapd_cmd_logout(imapd_cmd *c)
{
	imapd_printf(c, "* BYE Logging out\r\n");
	imapd_tagged(c, "OK", "LOGOUT completed");
	c->s->state = IMAPD_LOGOUT;
	c->next = IMAPD_CLOSE;
}

void imapd_cmd_id(imapd_cmd *c)
{
	const arca_imap_node *n = imapd_arg(c);
	if (n == NULL || imapd_args_left(c) > 0 ||
	    (arca_imap_node_kind(n) != ARCA_IMAP_NODE_LIST && arca_imap_node_kind(n) != ARCA_IMAP_NODE_NIL)) {
		imapd_tagged(c, "BAD", "ID takes one argument: a parenthesised list or NIL");
		return;
	}
	if (arca_imap_node_kind(n) == ARCA_IMAP_NODE_LIST && arca_imap_node_count(n) > 60) {
		imapd_tagged(c, "BAD", "ID: at most 30 field-value pairs");
		return;
	}
	imapd_printf(c, "* ID (\"name\" \"Arca\" \"vendor\" \"Arca\" \"version\" \"0.1.0\")\r\n");
	imapd_tagged(c, "OK", "ID completed");
}

void imapd_cmd_enable(imapd_cmd *c)
{
	imapd_session *s = c->s;
	char enabled[200] = "";
	const char *cap;
	if (imapd_args_left(c) == 0) {
		imapd_tagged(c, "BAD", "ENABLE needs at least one capability");
		return;
	}
	while ((cap = imapd_arg_string(c, NULL)) != NULL) {
		if (strcasecmp(cap, "IMAP4rev2") == 0 && !s->rev2) {
			s->rev2 = true;
			strcat(enabled, " IMAP4rev2");
		} else if (strcasecmp(cap, "CONDSTORE") == 0 && !s->condstore) {
			s->condstore = true;
			strcat(enabled, " CONDSTORE");
		}
	}
	imapd_printf(c, "* ENABLED%s\r\n", enabled);
	imapd_tagged(c, "OK", "ENABLE completed");
}

/* ------------------------------------------------------------------ STARTTLS, COMPRESS */

static void starttls_go(imapd_cmd *c)
{
	imapd_session *s = c->s;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	/* anything the client sent after STARTTLS was sent in the clear: drop it (CVE-2011-0411) */
	evbuffer_drain(in, evbuffer_get_length(in));
	if (!imapd_start_tls(s)) {
		s->flush_close = true;
		return;
	}
	arca_log(ARCA_LOG_INFO, "imap", "session=%llu starttls", (unsigned long long)s->id);
}

void imapd_cmd_starttls(imapd_cmd *c)
{
	imapd_session *s = c->s;
	if (imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "STARTTLS takes no arguments");
		return;
	}
	if (s->tls) {
		imapd_tagged(c, "BAD", "TLS is already active");
		return;
	}
	if (s->d->cfg.tls == NULL) {
		imapd_tagged(c, "NO", "TLS is not configured on this server");
		return;
	}
	imapd_tagged(c, "OK", "Begin TLS negotiation now");
	c->after = starttls_go; /* run once the OK is queued */
}

static void compress_go(imapd_cmd *c)
{
	if (!imapd_start_compress(c->s))
		c->s->flush_close = true;
}

void imapd_cmd_compress(imapd_cmd *c)
{
	const char *alg = imapd_arg_string(c, NULL);
	if (alg == NULL || imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "COMPRESS takes one argument: DEFLATE");
		return;
	}
	if (strcasecmp(alg, "DEFLATE") != 0) {
		imapd_tagged(c, "NO", "Unknown compression mechanism %.40s", alg);
		return;
	}
	if (c->s->compressed) {
		imapd_tagged(c, "NO", "[COMPRESSIONACTIVE] DEFLATE is already active");
		return;
	}
	if (c->s->d->cfg.no_compress) {
		imapd_tagged(c, "NO", "[CANNOT] Compression is turned off on this server");
		return;
	}
	imapd_tagged(c, "OK", "DEFLATE active");
	c->after = compress_go;
}

/* ------------------------------------------------------------------ login */

typedef struct {
	char user[ARCA_NAME_MAX + 1];
	char pass[1024];
	bool ok;
	uint32_t user_id, privileges;
	arca_error err;
	bool db_error;
} login_data;

static void login_data_free(void *p)
{
	sodium_memzero(p, sizeof(login_data));
	free(p);
}

static void login_work(imapd_cmd *c)
{
	login_data *ld = c->data;
	if (c->h->users == NULL) {
		ld->err = c->h->open_err;
		ld->db_error = true;
		return;
	}
	if (arca_users_check_password(c->h->users, ld->user, ld->pass, &ld->ok, &ld->user_id,
	                              &ld->privileges, &ld->err) != ARCA_OK)
		ld->db_error = true;
	sodium_memzero(ld->pass, sizeof(ld->pass));
}

static void login_after(imapd_cmd *c)
{
	imapd_session *s = c->s;
	login_data *ld = c->data;
	if (ld->db_error) {
		arca_log(ARCA_LOG_ERROR, "imap", "session=%llu login check failed: %s",
		         (unsigned long long)s->id, ld->err.msg);
		imapd_tagged(c, "NO", "[UNAVAILABLE] Authentication is unavailable, try again later");
		return;
	}
	arca_throttle_record(arca_svc_throttle(s->d->svc), ld->user, s->peer_host, ld->ok,
	                     arca_svc_now_ms());
	if (!ld->ok) {
		arca_log(ARCA_LOG_INFO, "imap", "session=%llu login failed user=%s peer=%s",
		         (unsigned long long)s->id, ld->user, s->peer_host);
		imapd_tagged(c, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
		return;
	}
	snprintf(s->user, sizeof(s->user), "%.*s", (int)sizeof(s->user) - 1, ld->user);
	if (!imapd_user_enter(s, ld->user)) {
		arca_log(ARCA_LOG_INFO, "imap", "session=%llu login refused user=%s: too many sessions",
		         (unsigned long long)s->id, ld->user);
		s->user[0] = 0;
		imapd_tagged(c, "NO", "[LIMIT] Too many connections for this user");
		return;
	}
	s->user_id = ld->user_id;
	s->privileges = ld->privileges;
	s->state = IMAPD_AUTH;
	arca_log(ARCA_LOG_INFO, "imap", "session=%llu login user=%s peer=%s",
	         (unsigned long long)s->id, s->user, s->peer_host);
	imapd_tagged(c, "OK", "[CAPABILITY %s] Logged in", imapd_capabilities(s));
}

static void login_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	imapd_session *s = arg;
	imapd_cmd *c = s->cmd;
	(void)fd;
	(void)what;
	if (c == NULL || c->next != IMAPD_WAIT_TIMER)
		return;
	c->next = IMAPD_WORKER;
	c->work = login_work;
	c->after = login_after;
	/* continue_command is static to imapd.c: go through the public path */
	imapd_resume(c);
}

/* Common tail of LOGIN and AUTHENTICATE: delay by the throttle, then check on a worker. */
static void login_start(imapd_cmd *c, const char *user, size_t user_len, const char *pass,
                        size_t pass_len)
{
	imapd_session *s = c->s;
	login_data *ld;
	uint32_t delay;
	const char *slash;
	if (!s->tls && !s->trusted) {
		imapd_tagged(c, "NO", "[PRIVACYREQUIRED] Use STARTTLS or port 993 before logging in");
		return;
	}
	/* "instance/user" as the Client Access Server passes it; only for this instance */
	slash = memchr(user, '/', user_len);
	if (slash != NULL && s->d->instance_id[0] != 0 &&
	    (size_t)(slash - user) == strlen(s->d->instance_id) &&
	    memcmp(user, s->d->instance_id, (size_t)(slash - user)) == 0) {
		user_len -= (size_t)(slash - user) + 1;
		user = slash + 1;
	}
	ld = calloc(1, sizeof(*ld));
	if (ld == NULL) {
		imapd_tagged(c, "NO", "[SERVERBUG] out of memory");
		return;
	}
	c->data = ld;
	c->data_free = login_data_free;
	/* an overlong name cannot match, but goes through the same check as a wrong password
	 * (as a name that cannot exist: it contains '/') */
	if (user_len >= ARCA_NAME_MAX || memchr(user, 0, user_len) != NULL)
		snprintf(ld->user, sizeof(ld->user), "/invalid/");
	else
		snprintf(ld->user, sizeof(ld->user), "%.*s", (int)user_len, user);
	snprintf(ld->pass, sizeof(ld->pass), "%.*s", (int)(pass_len < sizeof(ld->pass) - 1 ? pass_len :
	                                                   sizeof(ld->pass) - 1), pass);
	delay = arca_throttle_reserve_ms(arca_svc_throttle(s->d->svc), ld->user, s->peer_host,
	                               arca_svc_now_ms());
	if (delay > 0) {
		struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
		arca_log(ARCA_LOG_INFO, "imap", "session=%llu login delayed %u ms (throttle) user=%s peer=%s",
		         (unsigned long long)s->id, delay, ld->user, s->peer_host);
		if (s->timer == NULL)
			s->timer = evtimer_new(bufferevent_get_base(s->bev), login_timer_cb, s);
		if (s->timer != NULL) {
			event_assign(s->timer, bufferevent_get_base(s->bev), -1, 0, login_timer_cb, s);
			evtimer_add(s->timer, &tv);
			c->next = IMAPD_WAIT_TIMER;
			return;
		}
	}
	c->next = IMAPD_WORKER;
	c->work = login_work;
	c->after = login_after;
}

void imapd_cmd_login(imapd_cmd *c)
{
	size_t ul = 0, pl = 0;
	const char *user = imapd_arg_string(c, &ul);
	const char *pass = imapd_arg_string(c, &pl);
	if (user == NULL || pass == NULL || imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "LOGIN takes two arguments: user name and password");
		return;
	}
	login_start(c, user, ul, pass, pl);
}

/* SASL PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd, base64 encoded. */
static void auth_plain(imapd_cmd *c, const char *b64, size_t b64_len)
{
	unsigned char raw[2200];
	size_t n = 0;
	const unsigned char *z1, *z2;
	if (b64_len == 1 && b64[0] == '*') {
		imapd_tagged(c, "BAD", "AUTHENTICATE cancelled");
		return;
	}
	if (b64_len == 1 && b64[0] == '=')
		b64_len = 0;
	if (b64_len > 2 * sizeof(raw) ||
	    sodium_base642bin(raw, sizeof(raw), b64, b64_len, NULL, &n, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0) {
		imapd_tagged(c, "BAD", "AUTHENTICATE PLAIN: invalid base64");
		return;
	}
	z1 = memchr(raw, 0, n);
	z2 = z1 != NULL ? memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - raw)) : NULL;
	if (z1 == NULL || z2 == NULL) {
		sodium_memzero(raw, sizeof(raw));
		imapd_tagged(c, "BAD", "AUTHENTICATE PLAIN: expected authzid NUL authcid NUL password");
		return;
	}
	if (z1 != raw && ((size_t)(z1 - raw) != (size_t)(z2 - z1 - 1) ||
	                  memcmp(raw, z1 + 1, (size_t)(z1 - raw)) != 0)) {
		sodium_memzero(raw, sizeof(raw));
		imapd_tagged(c, "NO", "[AUTHORIZATIONFAILED] Logging in as another user is not allowed");
		return;
	}
	login_start(c, (const char *)z1 + 1, (size_t)(z2 - z1 - 1), (const char *)z2 + 1,
	            n - (size_t)(z2 + 1 - raw));
	sodium_memzero(raw, sizeof(raw));
}

static void auth_line(imapd_cmd *c)
{
	auth_plain(c, c->line_data, c->line_len);
}

void imapd_cmd_authenticate(imapd_cmd *c)
{
	imapd_session *s = c->s;
	const char *mech = imapd_arg_string(c, NULL);
	size_t ir_len = 0;
	const char *ir;
	if (mech == NULL || imapd_args_left(c) > 1) {
		imapd_tagged(c, "BAD", "AUTHENTICATE takes a mechanism and an optional initial response");
		return;
	}
	if (strcasecmp(mech, "PLAIN") != 0) {
		imapd_tagged(c, "NO", "Unsupported authentication mechanism %.40s (use PLAIN)", mech);
		return;
	}
	if (!s->tls && !s->trusted) {
		imapd_tagged(c, "NO", "[PRIVACYREQUIRED] Use STARTTLS or port 993 before logging in");
		return;
	}
	ir = imapd_arg_string(c, &ir_len);
	if (ir != NULL) {
		auth_plain(c, ir, ir_len);
		return;
	}
	imapd_printf(c, "+ \r\n");
	c->line = auth_line;
	c->next = IMAPD_WAIT_LINE;
}

/* ------------------------------------------------------------------ refusals, table */

void imapd_cmd_noop(imapd_cmd *c)
{
	if (imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "%s takes no arguments", c->name);
		return;
	}
	if (c->s->state & IMAPD_SELECTED) {
		imapd_mailbox_poll(c);
		return;
	}
	imapd_tagged(c, "OK", "%s completed", c->name);
}

void imapd_cmd_readonly(imapd_cmd *c)
{
	imapd_tagged(c, "NO", "[NOPERM] The archive is read-only: %s%s is not permitted",
	             c->uid ? "UID " : "", c->name);
}

static const imapd_command commands[] = {
	{"APPEND", IMAPD_AUTHED, imapd_cmd_readonly},
	{"AUTHENTICATE", IMAPD_NOTAUTH, imapd_cmd_authenticate},
	{"CAPABILITY", IMAPD_ANY, imapd_cmd_capability},
	{"CHECK", IMAPD_SELECTED, imapd_cmd_noop},
	{"CLOSE", IMAPD_SELECTED, imapd_cmd_close},
	{"COMPRESS", IMAPD_AUTHED, imapd_cmd_compress},
	{"COPY", IMAPD_SELECTED, imapd_cmd_readonly},
	{"CREATE", IMAPD_AUTHED, imapd_cmd_readonly},
	{"DELETE", IMAPD_AUTHED, imapd_cmd_readonly},
	{"ENABLE", IMAPD_AUTHED, imapd_cmd_enable},
	{"EXAMINE", IMAPD_AUTHED, imapd_cmd_select},
	{"EXPUNGE", IMAPD_SELECTED, imapd_cmd_readonly},
	{"FETCH", IMAPD_SELECTED, imapd_cmd_fetch},
	{"ID", IMAPD_ANY, imapd_cmd_id},
	{"IDLE", IMAPD_AUTHED, imapd_cmd_idle},
	{"LIST", IMAPD_AUTHED, imapd_cmd_list},
	{"LOGIN", IMAPD_NOTAUTH, imapd_cmd_login},
	{"LOGOUT", IMAPD_ANY, imapd_cmd_logout},
	{"LSUB", IMAPD_AUTHED, imapd_cmd_list},
	{"MOVE", IMAPD_SELECTED, imapd_cmd_readonly},
	{"NAMESPACE", IMAPD_AUTHED, imapd_cmd_namespace},
	{"NOOP", IMAPD_ANY, imapd_cmd_noop},
	{"RENAME", IMAPD_AUTHED, imapd_cmd_readonly},
	{"SEARCH", IMAPD_SELECTED, imapd_cmd_search},
	{"SELECT", IMAPD_AUTHED, imapd_cmd_select},
	{"SORT", IMAPD_SELECTED, imapd_cmd_sort},
	{"STARTTLS", IMAPD_NOTAUTH, imapd_cmd_starttls},
	{"STATUS", IMAPD_AUTHED, imapd_cmd_status},
	{"STORE", IMAPD_SELECTED, imapd_cmd_readonly},
	{"SUBSCRIBE", IMAPD_AUTHED, imapd_cmd_subscribe},
	{"THREAD", IMAPD_SELECTED, imapd_cmd_thread},
	{"UNSELECT", IMAPD_SELECTED, imapd_cmd_close},
	{"UNSUBSCRIBE", IMAPD_AUTHED, imapd_cmd_subscribe},
};

const imapd_command *imapd_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcasecmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

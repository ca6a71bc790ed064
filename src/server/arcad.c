/* arcad: the Arca daemon. `arcad instance` runs one instance (one tenant): its IMAP server
 * and JSON API on Unix sockets in the run directory, plus optional TCP listeners with TLS
 * for standalone use. Options can also come from a config file (key = value, the long option
 * names), which SIGHUP re-reads for the settings that can change at run time. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "imap/imapd.h"
#include "lib/fs.h"
#include "lib/log.h"
#include "net/listen.h"
#include "net/svc.h"
#include "net/tls.h"

#define MAX_LISTEN 8
#define SHUTDOWN_GRACE_S 10

typedef struct {
	char base[PATH_MAX], key_file[PATH_MAX], run_dir[PATH_MAX], config[PATH_MAX];
	char cert[PATH_MAX], cert_key[PATH_MAX], instance_id[256];
	char *imap[MAX_LISTEN], *imaps[MAX_LISTEN], *http[MAX_LISTEN], *https[MAX_LISTEN];
	unsigned n_imap, n_imaps, n_http, n_https;
	unsigned workers, max_user_conns, idle_timeout, login_timeout, idle_poll, penalty_scale;
	unsigned imap_cache_mb;
	bool no_compress;
	arca_log_level log_level;
} arcad_opts;

typedef struct {
	arcad_opts o;
	struct event_base *base;
	arca_svc *svc;
	arca_imapd *imapd;
	arca_imap_fcache *fetch_cache;
	arca_api *api;
	SSL_CTX *tls;
	struct evconnlistener *listeners[4 * MAX_LISTEN + 2];
	bool api_owned[4 * MAX_LISTEN + 2]; /* handed to the API, which frees it */
	unsigned n_listeners;
	struct event *sig_term, *sig_int, *sig_hup, *drain_timer;
	SSL_CTX *retired[16]; /* contexts replaced by SIGHUP reloads */
	unsigned n_retired;
	unsigned drain_ticks;
	bool stopping;
} arcad;

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: arcad instance --base DIR --key-file FILE [options]\n"
	        "  --run-dir DIR          Unix sockets and pid file (default BASE/run)\n"
	        "  --imap ADDR:PORT       IMAP with STARTTLS (repeatable; e.g. 127.0.0.1:1143)\n"
	        "  --imaps ADDR:PORT      IMAP over implicit TLS (repeatable)\n"
	        "  --http ADDR:PORT       JSON API over plain HTTP (loopback use; repeatable)\n"
	        "  --https ADDR:PORT      JSON API over HTTPS (repeatable)\n"
	        "  --cert FILE --cert-key FILE\n"
	        "                         TLS certificate chain and key (PEM); default: a self-signed\n"
	        "                         certificate generated in BASE/tls/\n"
	        "  --instance-id ID       accept IMAP logins as ID/user\n"
	        "  --workers N            worker threads (default 4)\n"
	        "  --max-user-conns N     parallel IMAP sessions per user (default 20)\n"
	        "  --idle-timeout S       IMAP autologout after S idle seconds (min/default 1800)\n"
	        "  --login-timeout S      IMAP time to log in (default 60)\n"
	        "  --idle-poll S          IDLE checks for messages from other processes (default 15)\n"
	        "  --imap-cache-mb N      memory for the IMAP FETCH cache (ENVELOPE, BODYSTRUCTURE, ...)\n"
	        "                         in MiB (default 64; 0 disables)\n"
	        "  --imap-compress on|off offer IMAP COMPRESS=DEFLATE (default on; off saves server CPU\n"
	        "                         where links are fast)\n"
	        "  --login-penalty-scale P  failed-login delays at P%% of 2, 4, 8, 15 s (1..1000,\n"
	        "                         default 100)\n"
	        "  --log-level L          debug, info, warn, error (default info)\n"
	        "  --config FILE          key = value lines with the option names above; SIGHUP\n"
	        "                         re-reads it (limits, timeouts, log level, certificate)\n");
}

static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (s[0] == 0 || *end != 0 || errno != 0 || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

static bool set_path(char *dst, const char *v)
{
	return snprintf(dst, PATH_MAX, "%s", v) < PATH_MAX;
}

/* One option, from the command line or the config file. */
static bool apply_opt(arcad_opts *o, const char *key, const char *v, bool reload)
{
	char **slot = NULL;
	unsigned *count = NULL;
	if (strcmp(key, "log-level") == 0) {
		if (strcmp(v, "debug") == 0)
			o->log_level = ARCA_LOG_DEBUG;
		else if (strcmp(v, "info") == 0)
			o->log_level = ARCA_LOG_INFO;
		else if (strcmp(v, "warn") == 0)
			o->log_level = ARCA_LOG_WARN;
		else if (strcmp(v, "error") == 0)
			o->log_level = ARCA_LOG_ERROR;
		else
			return false;
		return true;
	}
	if (strcmp(key, "workers") == 0)
		return reload || parse_uint(v, 64, &o->workers);
	if (strcmp(key, "max-user-conns") == 0)
		return parse_uint(v, 100000, &o->max_user_conns);
	if (strcmp(key, "idle-timeout") == 0)
		return parse_uint(v, 86400, &o->idle_timeout);
	if (strcmp(key, "login-timeout") == 0)
		return parse_uint(v, 3600, &o->login_timeout);
	if (strcmp(key, "idle-poll") == 0)
		return parse_uint(v, 3600, &o->idle_poll);
	if (strcmp(key, "imap-cache-mb") == 0)
		return parse_uint(v, 1024u * 1024u, &o->imap_cache_mb);
	if (strcmp(key, "login-penalty-scale") == 0)
		return parse_uint(v, 1000, &o->penalty_scale) && o->penalty_scale > 0;
	if (strcmp(key, "imap-compress") == 0) {
		o->no_compress = strcmp(v, "off") == 0;
		return o->no_compress || strcmp(v, "on") == 0;
	}
	if (strcmp(key, "cert") == 0)
		return set_path(o->cert, v);
	if (strcmp(key, "cert-key") == 0)
		return set_path(o->cert_key, v);
	if (reload)
		return true; /* the rest needs a restart */
	if (strcmp(key, "base") == 0)
		return set_path(o->base, v);
	if (strcmp(key, "key-file") == 0)
		return set_path(o->key_file, v);
	if (strcmp(key, "run-dir") == 0)
		return set_path(o->run_dir, v);
	if (strcmp(key, "instance-id") == 0)
		return snprintf(o->instance_id, sizeof(o->instance_id), "%s", v) < (int)sizeof(o->instance_id);
	if (strcmp(key, "imap") == 0) {
		slot = o->imap;
		count = &o->n_imap;
	} else if (strcmp(key, "imaps") == 0) {
		slot = o->imaps;
		count = &o->n_imaps;
	} else if (strcmp(key, "http") == 0) {
		slot = o->http;
		count = &o->n_http;
	} else if (strcmp(key, "https") == 0) {
		slot = o->https;
		count = &o->n_https;
	}
	if (slot == NULL || *count >= MAX_LISTEN)
		return false;
	slot[*count] = strdup(v);
	return slot[(*count)++] != NULL;
}

static bool read_config(arcad_opts *o, const char *path, bool reload)
{
	FILE *f = fopen(path, "r");
	char line[PATH_MAX + 64];
	unsigned lineno = 0;
	bool ok = true;
	if (f == NULL) {
		fprintf(stderr, "arcad: cannot read config %s: %s\n", path, strerror(errno));
		return false;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *k = line, *eq, *v, *end;
		lineno++;
		line[strcspn(line, "\r\n")] = 0;
		while (*k == ' ' || *k == '\t')
			k++;
		if (*k == 0 || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (eq == NULL) {
			fprintf(stderr, "arcad: %s:%u: expected key = value\n", path, lineno);
			ok = false;
			continue;
		}
		v = eq + 1;
		end = eq;
		while (end > k && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = 0;
		while (*v == ' ' || *v == '\t')
			v++;
		end = v + strlen(v);
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		if (!apply_opt(o, k, v, reload)) {
			fprintf(stderr, "arcad: %s:%u: bad setting '%s'\n", path, lineno, k);
			ok = false;
		}
	}
	fclose(f);
	return ok;
}

static arca_imapd_config imapd_config(arcad *a)
{
	arca_imapd_config c = {
		.tls = a->tls,
		.max_user_conns = a->o.max_user_conns,
		.idle_timeout_s = a->o.idle_timeout,
		.login_timeout_s = a->o.login_timeout,
		.idle_poll_s = a->o.idle_poll,
		.instance_id = a->o.instance_id,
		.no_compress = a->o.no_compress,
		.fetch_cache = a->fetch_cache,
	};
	return c;
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	arcad *a = arg;
	(void)fd;
	(void)what;
	if (arca_imapd_sessions(a->imapd) == 0 || ++a->drain_ticks >= SHUTDOWN_GRACE_S * 10)
		event_base_loopexit(a->base, NULL);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	arcad *a = arg;
	struct timeval tv = {0, 100000};
	(void)what;
	if (a->stopping)
		return;
	a->stopping = true;
	arca_log(ARCA_LOG_INFO, "arcad", "signal %d: shutting down", (int)sig);
	for (unsigned i = 0; i < a->n_listeners; i++)
		if (!a->api_owned[i])
			evconnlistener_disable(a->listeners[i]);
	arca_imapd_shutdown(a->imapd);
	arca_api_shutdown(a->api);
	a->drain_timer = event_new(a->base, -1, EV_PERSIST, drain_cb, a);
	if (a->drain_timer == NULL)
		event_base_loopexit(a->base, NULL);
	else
		event_add(a->drain_timer, &tv);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	arcad *a = arg;
	arcad_opts o = a->o;
	arca_imapd_config ic;
	(void)sig;
	(void)what;
	if (a->o.config[0] == 0) {
		arca_log(ARCA_LOG_INFO, "arcad", "SIGHUP: no config file to reload");
		return;
	}
	if (!read_config(&o, a->o.config, true)) {
		arca_log(ARCA_LOG_ERROR, "arcad", "SIGHUP: config %s has errors; keeping the old settings",
		         a->o.config);
		return;
	}
	/* A certificate file may have been renewed in place: reload whenever TLS is in use and
	 * the files load. New IMAP sessions use the new context; open sessions keep theirs (SSL
	 * objects hold a reference); the HTTPS listener keeps the context it started with until a
	 * restart. Replaced contexts are kept until exit (the API may still point at one). */
	if (a->tls != NULL && o.cert[0] != 0 && a->n_retired < sizeof(a->retired) / sizeof(a->retired[0])) {
		SSL_CTX *ctx = NULL;
		arca_error e;
		if (arca_tls_server_ctx(o.cert, o.cert_key, &ctx, &e) != ARCA_OK) {
			arca_log(ARCA_LOG_ERROR, "arcad", "SIGHUP: keeping the old certificate: %s", e.msg);
		} else {
			a->retired[a->n_retired++] = a->tls;
			a->tls = ctx;
			snprintf(a->o.cert, PATH_MAX, "%s", o.cert);
			snprintf(a->o.cert_key, PATH_MAX, "%s", o.cert_key);
		}
	}
	a->o.max_user_conns = o.max_user_conns;
	a->o.idle_timeout = o.idle_timeout;
	a->o.login_timeout = o.login_timeout;
	a->o.idle_poll = o.idle_poll;
	a->o.no_compress = o.no_compress;
	a->o.imap_cache_mb = o.imap_cache_mb;
	arca_imap_fcache_set_limit(a->fetch_cache, (size_t)o.imap_cache_mb << 20);
	a->o.log_level = o.log_level;
	arca_log_set_level(o.log_level);
	if (o.penalty_scale != 0)
		arca_throttle_set_scale(arca_svc_throttle(a->svc), o.penalty_scale);
	ic = imapd_config(a);
	arca_imapd_reconfigure(a->imapd, &ic);
	arca_log(ARCA_LOG_INFO, "arcad", "configuration reloaded from %s", a->o.config);
}

static bool add_listener(arcad *a, const char *spec, struct evconnlistener **out, bool *is_unix)
{
	arca_listen_addr addr;
	arca_error e;
	if (arca_listen_parse(spec, &addr, &e) != ARCA_OK ||
	    arca_listen_open(a->base, &addr, NULL, NULL, out, &e) != ARCA_OK) {
		fprintf(stderr, "arcad: %s\n", e.msg);
		return false;
	}
	/* accept callbacks are set by the protocol module; keep it disabled until then */
	evconnlistener_disable(*out);
	a->listeners[a->n_listeners++] = *out;
	if (is_unix != NULL)
		*is_unix = addr.is_unix;
	return true;
}

static bool api_listen(arcad *a, struct evconnlistener *l, SSL_CTX *tls, arca_error *e)
{
	/* the API owns the listener from here on, even if it fails */
	a->api_owned[a->n_listeners - 1] = true;
	return arca_api_listen(a->api, l, tls, e) == ARCA_OK;
}

static int run_instance(arcad *a)
{
	arcad_opts *o = &a->o;
	arca_svc_config sc = {.base = o->base, .key_file = o->key_file, .workers = o->workers};
	arca_imapd_config ic;
	arca_error e;
	char path[PATH_MAX + 32], fp[ARCA_TLS_FINGERPRINT_LEN];
	struct evconnlistener *l;
	bool need_tls = o->n_imap + o->n_imaps + o->n_https > 0;
	int rc = 1;

	if (o->run_dir[0] == 0 && snprintf(o->run_dir, PATH_MAX, "%s/run", o->base) >= PATH_MAX)
		return 2;
	if (mkdir(o->run_dir, 0750) != 0 && errno != EEXIST) {
		fprintf(stderr, "arcad: cannot create %s: %s\n", o->run_dir, strerror(errno));
		return 1;
	}
	if (need_tls || o->cert[0] != 0) {
		if (o->cert[0] == 0) {
			bool created = false;
			char tlsdir[PATH_MAX];
			if (strlen(o->base) + 16 >= sizeof(tlsdir)) {
				fprintf(stderr, "arcad: base path too long\n");
				return 2;
			}
			snprintf(tlsdir, sizeof(tlsdir), "%.*s/tls", PATH_MAX - 16, o->base);
			if (mkdir(tlsdir, 0700) != 0 && errno != EEXIST) {
				fprintf(stderr, "arcad: cannot create %s: %s\n", tlsdir, strerror(errno));
				return 1;
			}
			snprintf(o->cert, PATH_MAX, "%.*s/cert.pem", PATH_MAX - 16, tlsdir);
			snprintf(o->cert_key, PATH_MAX, "%.*s/key.pem", PATH_MAX - 16, tlsdir);
			if (arca_tls_ensure_self_signed(o->cert, o->cert_key, "localhost", &created, &e) !=
			    ARCA_OK) {
				fprintf(stderr, "arcad: %s\n", e.msg);
				return 1;
			}
			if (created)
				arca_log(ARCA_LOG_INFO, "arcad", "generated a self-signed certificate %s", o->cert);
		}
		if (o->cert_key[0] == 0) {
			fprintf(stderr, "arcad: --cert needs --cert-key\n");
			return 2;
		}
		if (arca_tls_server_ctx(o->cert, o->cert_key, &a->tls, &e) != ARCA_OK ||
		    arca_tls_fingerprint(o->cert, fp, &e) != ARCA_OK) {
			fprintf(stderr, "arcad: %s\n", e.msg);
			return 1;
		}
	}
	{
		/* a writable open brings stores and the instance database to the current format (the
		 * worker threads' handles are read-only) */
		arca_instance *inst = NULL;
		if (arca_instance_open(o->base, o->key_file, 0, &inst, &e) != ARCA_OK) {
			fprintf(stderr, "arcad: %s\n", e.msg);
			return 1;
		}
		arca_instance_close(&inst);
	}
	if (arca_svc_new(a->base, &sc, &a->svc, &e) != ARCA_OK) {
		fprintf(stderr, "arcad: %s\n", e.msg);
		return 1;
	}
	if (o->penalty_scale != 0)
		arca_throttle_set_scale(arca_svc_throttle(a->svc), o->penalty_scale);
	if (arca_imap_fcache_new((size_t)o->imap_cache_mb << 20, &a->fetch_cache, &e) != ARCA_OK) {
		fprintf(stderr, "arcad: %s\n", e.msg);
		goto out;
	}
	ic = imapd_config(a);
	if (arca_imapd_new(a->svc, &ic, &a->imapd, &e) != ARCA_OK ||
	    arca_api_new(a->svc, &a->api, &e) != ARCA_OK) {
		fprintf(stderr, "arcad: %s\n", e.msg);
		goto out;
	}
	/* Unix sockets for the Client Access Server / Instance Host (trusted: TLS ends there) */
	snprintf(path, sizeof(path), "unix:%s/imap.sock", o->run_dir);
	if (!add_listener(a, path, &l, NULL) || arca_imapd_listen(a->imapd, l, false, true, &e) != ARCA_OK)
		goto listen_err;
	snprintf(path, sizeof(path), "unix:%s/http.sock", o->run_dir);
	if (!add_listener(a, path, &l, NULL) || !api_listen(a, l, NULL, &e))
		goto listen_err;
	for (unsigned i = 0; i < o->n_imap; i++) {
		bool is_unix = false;
		if (!add_listener(a, o->imap[i], &l, &is_unix) ||
		    arca_imapd_listen(a->imapd, l, false, is_unix, &e) != ARCA_OK)
			goto listen_err;
	}
	for (unsigned i = 0; i < o->n_imaps; i++)
		if (!add_listener(a, o->imaps[i], &l, NULL) ||
		    arca_imapd_listen(a->imapd, l, true, false, &e) != ARCA_OK)
			goto listen_err;
	for (unsigned i = 0; i < o->n_http; i++)
		if (!add_listener(a, o->http[i], &l, NULL) || !api_listen(a, l, NULL, &e))
			goto listen_err;
	for (unsigned i = 0; i < o->n_https; i++)
		if (!add_listener(a, o->https[i], &l, NULL) || !api_listen(a, l, a->tls, &e))
			goto listen_err;
	for (unsigned i = 0; i < a->n_listeners; i++)
		if (!a->api_owned[i])
			evconnlistener_enable(a->listeners[i]);

	a->sig_term = evsignal_new(a->base, SIGTERM, on_term, a);
	a->sig_int = evsignal_new(a->base, SIGINT, on_term, a);
	a->sig_hup = evsignal_new(a->base, SIGHUP, on_hup, a);
	if (a->sig_term == NULL || a->sig_int == NULL || a->sig_hup == NULL ||
	    event_add(a->sig_term, NULL) != 0 || event_add(a->sig_int, NULL) != 0 ||
	    event_add(a->sig_hup, NULL) != 0) {
		fprintf(stderr, "arcad: cannot install signal handlers\n");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/arcad.pid", o->run_dir);
	{
		FILE *pf = fopen(path, "w");
		if (pf != NULL) {
			fprintf(pf, "%ld\n", (long)getpid());
			fclose(pf);
		}
	}
	fprintf(stderr, "arcad: instance %s ready (pid %ld)\n", o->base, (long)getpid());
	fprintf(stderr, "arcad:   imap unix:%s/imap.sock, http unix:%s/http.sock\n", o->run_dir, o->run_dir);
	for (unsigned i = 0; i < o->n_imap; i++)
		fprintf(stderr, "arcad:   imap (STARTTLS) %s\n", o->imap[i]);
	for (unsigned i = 0; i < o->n_imaps; i++)
		fprintf(stderr, "arcad:   imaps %s\n", o->imaps[i]);
	for (unsigned i = 0; i < o->n_http; i++)
		fprintf(stderr, "arcad:   http %s\n", o->http[i]);
	for (unsigned i = 0; i < o->n_https; i++)
		fprintf(stderr, "arcad:   https %s\n", o->https[i]);
	if (a->tls != NULL)
		fprintf(stderr, "arcad:   certificate %s SHA-256 %s\n", o->cert, fp);
	fflush(stderr);
	event_base_dispatch(a->base);
	rc = 0;
	unlink(path);
	goto out;
listen_err:
	fprintf(stderr, "arcad: %s\n", e.msg[0] ? e.msg : "cannot listen");
out:
	for (unsigned i = 0; i < a->n_listeners; i++)
		if (!a->api_owned[i])
			evconnlistener_free(a->listeners[i]);
	a->n_listeners = 0;
	/* jobs stop at a commit boundary; then the workers, then the sessions they served */
	arca_api_free(&a->api);
	if (a->imapd != NULL)
		arca_imapd_abort(a->imapd);
	arca_svc_free(&a->svc);
	arca_imapd_free(&a->imapd);
	arca_imap_fcache_free(&a->fetch_cache);
	if (a->drain_timer != NULL)
		event_free(a->drain_timer);
	if (a->sig_term != NULL)
		event_free(a->sig_term);
	if (a->sig_int != NULL)
		event_free(a->sig_int);
	if (a->sig_hup != NULL)
		event_free(a->sig_hup);
	arca_tls_ctx_free(&a->tls);
	for (unsigned i = 0; i < a->n_retired; i++)
		arca_tls_ctx_free(&a->retired[i]);
	arca_log(ARCA_LOG_INFO, "arcad", "stopped");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"base", required_argument, NULL, 0},       {"key-file", required_argument, NULL, 0},
		{"run-dir", required_argument, NULL, 0},    {"imap", required_argument, NULL, 0},
		{"imaps", required_argument, NULL, 0},      {"http", required_argument, NULL, 0},
		{"https", required_argument, NULL, 0},      {"cert", required_argument, NULL, 0},
		{"cert-key", required_argument, NULL, 0},   {"instance-id", required_argument, NULL, 0},
		{"workers", required_argument, NULL, 0},    {"max-user-conns", required_argument, NULL, 0},
		{"idle-timeout", required_argument, NULL, 0}, {"login-timeout", required_argument, NULL, 0},
		{"idle-poll", required_argument, NULL, 0},  {"log-level", required_argument, NULL, 0},
		{"login-penalty-scale", required_argument, NULL, 0},
		{"imap-cache-mb", required_argument, NULL, 0}, {"imap-compress", required_argument, NULL, 0},
		{"config", required_argument, NULL, 0},     {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static arcad a;
	int idx, c, rc;
	if (argc < 2 || strcmp(argv[1], "instance") != 0) {
		usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	a.o.log_level = ARCA_LOG_INFO;
	a.o.imap_cache_mb = ARCA_IMAP_FCACHE_DEFAULT_MB;
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c != 0)
			return 2;
		if (strcmp(longopts[idx].name, "config") == 0) {
			if (!set_path(a.o.config, optarg) || !read_config(&a.o, a.o.config, false))
				return 2;
			continue;
		}
		if (!apply_opt(&a.o, longopts[idx].name, optarg, false)) {
			fprintf(stderr, "arcad: bad value for --%s: %s\n", longopts[idx].name, optarg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "arcad: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	if (a.o.base[0] == 0 || a.o.key_file[0] == 0) {
		fprintf(stderr, "arcad: --base and --key-file are required\n");
		usage(stderr);
		return 2;
	}
	arca_log_set_level(a.o.log_level);
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "arcad: libevent has no thread support\n");
		return 1;
	}
	a.base = event_base_new();
	if (a.base == NULL) {
		fprintf(stderr, "arcad: cannot create the event loop\n");
		return 1;
	}
	rc = run_instance(&a);
	event_base_free(a.base);
	for (unsigned i = 0; i < MAX_LISTEN; i++) {
		free(a.o.imap[i]);
		free(a.o.imaps[i]);
		free(a.o.http[i]);
		free(a.o.https[i]);
	}
	return rc;
}

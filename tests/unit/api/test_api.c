/* The instance API end to end in one process: an event loop thread with svc + arca_api on a
 * loopback listener, and a blocking HTTP client in the test thread. Covers every command
 * (bad input for every argument of every command: nothing changes), authentication (Basic,
 * cache, sessions, throttle), jobs (import, export, verify, rebuild, recreate), uploads and
 * downloads, the message view and access rules. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/api.h"
#include "api/api_int.h"
#include "api/cmd.h"
#include "archive/instance.h"
#include "auth/users.h"
#include "net/svc.h"

static char base_dir[256], key_file[300];
static struct event_base *evb;
static arca_svc *svc;
static arca_api *api;
static pthread_t loop_thread;
static int port;
static char admin_auth[512], bob_auth[512];

typedef struct {
	int status;
	char *headers;
	char *body;
	size_t body_len;
} resp;

static void resp_free(resp *r)
{
	free(r->headers);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static void basic(char *out, size_t outsz, const char *user, const char *pw)
{
	char plain[256], b64[400];
	snprintf(plain, sizeof(plain), "%s:%s", user, pw);
	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)plain, strlen(plain),
	                  sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, outsz, "Basic %s", b64);
}

/* One request on its own connection (Connection: close); the reply is read to EOF. */
static int http(const char *method, const char *path, const char *auth, const void *body,
                size_t len, resp *out)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	char head[2048];
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap), *sep;
	int fd = socket(AF_INET, SOCK_STREAM, 0), hl;
	memset(out, 0, sizeof(*out));
	assert_non_null(buf);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	hl = snprintf(head, sizeof(head),
	              "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s%s"
	              "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	              method, path, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "",
	              len);
	assert_int_equal(send(fd, head, (size_t)hl, MSG_NOSIGNAL), hl);
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, (const char *)body + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the server may refuse early (413) */
		off += (size_t)w;
	}
	for (;;) {
		ssize_t r;
		if (n + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		r = recv(fd, buf + n, cap - n - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	sep = strstr(buf, "\r\n\r\n");
	assert_non_null(sep);
	*sep = '\0';
	out->headers = strdup(buf);
	out->body_len = n - (size_t)(sep + 4 - buf);
	out->body = malloc(out->body_len + 1);
	memcpy(out->body, sep + 4, out->body_len);
	out->body[out->body_len] = '\0';
	assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &out->status), 1);
	free(buf);
	return out->status;
}

/* A command; returns the parsed reply (asserting it is JSON), *status the HTTP status. */
static json_t *call(const char *auth, const char *cmd, const char *args, int *status)
{
	char path[128];
	resp r;
	json_t *j;
	json_error_t je;
	snprintf(path, sizeof(path), "/api/invoke/%s", cmd);
	*status = http("POST", path, auth, args, args ? strlen(args) : 0, &r);
	j = json_loads(r.body, 0, &je);
	if (j == NULL)
		fail_msg("%s %s: reply is not JSON: %s", cmd, args ? args : "", r.body);
	resp_free(&r);
	return j;
}

static json_t *ok(const char *auth, const char *cmd, const char *args)
{
	int st;
	json_t *j = call(auth, cmd, args, &st);
	if (st != 200 && st != 202) {
		char *s = json_dumps(j, 0);
		fail_msg("%s %s: HTTP %d %s", cmd, args ? args : "", st, s);
	}
	assert_true(json_is_string(json_object_get(j, "status")));
	return j;
}

static json_t *result(json_t *reply)
{
	return json_object_get(reply, "result");
}

/* Expects a failure with this HTTP status, code and (if msg) a message containing msg. */
static void fails(const char *auth, const char *cmd, const char *args, int http_status,
                  const char *code, const char *msg)
{
	int st;
	json_t *j = call(auth, cmd, args, &st), *e = json_object_get(j, "error");
	const char *m = json_string_value(json_object_get(e, "message"));
	if (st != http_status || strcmp(json_string_value(json_object_get(j, "status")), "failed") != 0 ||
	    strcmp(json_string_value(json_object_get(e, "code")), code) != 0 ||
	    (msg != NULL && (m == NULL || strstr(m, msg) == NULL))) {
		char *s = json_dumps(j, 0);
		fail_msg("%s %s: expected %d %s '%s', got %d %s", cmd, args ? args : "", http_status, code,
		         msg ? msg : "", st, s);
	}
	json_decref(j);
}

static json_t *wait_job(const char *auth, json_t *started)
{
	const char *token = json_string_value(json_object_get(started, "token"));
	char body[128];
	assert_non_null(token);
	snprintf(body, sizeof(body), "{\"token\":\"%s\"}", token);
	for (int i = 0; i < 6000; i++) {
		resp r;
		json_t *j;
		const char *s;
		assert_int_equal(http("POST", "/api/get-status", auth, body, strlen(body), &r), 200);
		j = json_loads(r.body, 0, NULL);
		resp_free(&r);
		assert_non_null(j);
		s = json_string_value(json_object_get(j, "status"));
		if (strcmp(s, "queued") != 0 && strcmp(s, "running") != 0)
			return j;
		json_decref(j);
		usleep(20000);
	}
	fail_msg("job did not finish");
	return NULL;
}

static void *loop_main(void *arg)
{
	(void)arg;
	event_base_loop(evb, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void on_accept_unused(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                             int len, void *arg)
{
	(void)l, (void)fd, (void)sa, (void)len, (void)arg;
}

static int setup(void **state)
{
	char rec[ARCA_RECOVERY_KEY_TEXT], tmpl[] = "/tmp/arca-api-test-XXXXXX";
	arca_error err = {0};
	arca_users *u = NULL;
	arca_svc_config cfg = {0};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct evconnlistener *l;
	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	snprintf(base_dir, sizeof(base_dir), "%s/base", tmpl);
	snprintf(key_file, sizeof(key_file), "%s/instance.key", tmpl);
	if (arca_instance_init(base_dir, key_file, 1000000, rec, &err) != ARCA_OK ||
	    arca_users_open(base_dir, &u, &err) != ARCA_OK ||
	    arca_users_create(u, "admin", "The Admin", ARCA_PRIV_DEFAULT | ARCA_PRIV_ADMIN, &err) !=
	        ARCA_OK ||
	    arca_users_set_password(u, "admin", "admin-secret", &err) != ARCA_OK) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	arca_users_close(&u);
	{
		arca_instance *in;
		uint32_t id;
		if (arca_instance_open(base_dir, key_file, 0, &in, &err) != ARCA_OK ||
		    arca_instance_archive_id(in, "admin", true, &id, &err) != ARCA_OK)
			return -1;
		arca_instance_close(&in);
	}
	basic(admin_auth, sizeof(admin_auth), "admin", "admin-secret");
	basic(bob_auth, sizeof(bob_auth), "bob", "bob-secret");
	evthread_use_pthreads();
	evb = event_base_new();
	cfg.base = base_dir;
	cfg.key_file = key_file;
	cfg.workers = 2;
	if (evb == NULL || arca_svc_new(evb, &cfg, &svc, &err) != ARCA_OK ||
	    arca_api_new(svc, &api, &err) != ARCA_OK) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(evb, on_accept_unused, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
	                            64, (struct sockaddr *)&sa, sizeof(sa));
	if (l == NULL || getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	evconnlistener_disable(l);
	port = ntohs(sa.sin_port);
	if (arca_api_listen(api, l, NULL, &err) != ARCA_OK) {
		fprintf(stderr, "listen: %s\n", err.msg);
		return -1;
	}
	evconnlistener_enable(l);
	return pthread_create(&loop_thread, NULL, loop_main, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[400];
	(void)state;
	/* every reply was read, so nothing is in flight */
	event_base_loopbreak(evb);
	pthread_join(loop_thread, NULL);
	arca_api_free(&api);
	arca_svc_free(&svc);
	event_base_free(evb);
	*strrchr(base_dir, '/') = '\0'; /* the temporary directory above base/ */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base_dir);
	if (strstr(base_dir, "/tmp/arca-api-test-") == base_dir && system(cmd) != 0)
		return -1;
	return 0;
}

/* ---- tests ---- */

static void test_auth_required(void **state)
{
	resp r;
	(void)state;
	assert_int_equal(http("POST", "/api/invoke/GetServerInfo", NULL, "", 0, &r), 401);
	assert_non_null(strstr(r.headers, "WWW-Authenticate: Basic"));
	assert_non_null(strstr(r.body, "\"unauthorized\""));
	resp_free(&r);
	assert_int_equal(http("POST", "/api/invoke/GetServerInfo", "Basic !!!", "", 0, &r), 401);
	resp_free(&r);
	assert_int_equal(http("POST", "/api/invoke/GetServerInfo", "Bearer 00", "", 0, &r), 401);
	resp_free(&r);
}

static void test_server_info(void **state)
{
	json_t *j = ok(admin_auth, "GetServerInfo", NULL);
	(void)state;
	assert_string_equal(json_string_value(json_object_get(j, "status")), "succeeded");
	assert_string_equal(json_string_value(json_object_get(result(j), "userName")), "admin");
	assert_non_null(strstr(json_string_value(json_object_get(result(j), "privileges")), "admin"));
	json_decref(j);
	/* again: now from the verification cache */
	json_decref(ok(admin_auth, "GetServerInfo", "{}"));
}

static void test_routing_and_bad_json(void **state)
{
	resp r;
	char *big;
	(void)state;
	fails(admin_auth, "NoSuchCommand", "{}", 404, "unknown_command", "unknown command 'NoSuchCommand'");
	assert_int_equal(http("POST", "/api/nothing", admin_auth, "", 0, &r), 404);
	assert_non_null(strstr(r.body, "\"noroute\""));
	resp_free(&r);
	assert_int_equal(http("GET", "/api/invoke/GetUsers", admin_auth, "", 0, &r), 405);
	assert_non_null(strstr(r.headers, "Allow: POST"));
	resp_free(&r);
	fails(admin_auth, "GetUsers", "{\"a\":", 400, "syntax", "invalid JSON at line 1");
	fails(admin_auth, "GetUsers", "[1,2]", 400, "invalid", "must be a JSON object");
	fails(admin_auth, "GetUsers", "\"x\"", 400, "invalid", "got string");
	fails(admin_auth, "GetUserInfo", "{\"userName\":\"a\",\"userName\":\"b\"}", 400, "syntax",
	      "duplicate");
	fails(admin_auth, "GetUserInfo", "{\"userName\":\"a\\u0000b\"}", 400, "syntax", NULL);
	fails(admin_auth, "GetUserInfo", "{\"userName\":\"\xff\"}", 400, "syntax", NULL);
	fails(admin_auth, "GetUsers",
	      "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
	      413, "limit", "nested deeper");
	/* over the body cap: refused by the HTTP layer */
	big = malloc(ARCA_API_MAX_BODY + 100);
	memset(big, ' ', ARCA_API_MAX_BODY + 100);
	big[0] = '{';
	big[ARCA_API_MAX_BODY + 99] = '}';
	assert_int_equal(http("POST", "/api/invoke/CreateUser", admin_auth, big, ARCA_API_MAX_BODY + 100, &r), 413);
	resp_free(&r);
	free(big);
}

/* Every argument of every command, with a value of the wrong type; every command without
 * its required arguments: a 400 naming the argument, and nothing changed. */
static void test_every_command_bad_input(void **state)
{
	size_t n;
	const arca_api_cmd *cmds = arca_api_commands(&n);
	json_t *before = ok(admin_auth, "GetUsers", NULL), *after;
	json_t *stores_before = ok(admin_auth, "GetStores", NULL), *stores_after;
	(void)state;
	for (size_t i = 0; i < n; i++) {
		char args[512], msg[256];
		bool any_required = false;
		for (size_t k = 0; k < ARCA_API_CMD_ARGS && cmds[i].args[k].name; k++) {
			const arca_api_arg *a = &cmds[i].args[k];
			const char *bad = a->type == ARCA_API_STRING ? "42" : "\"text\"";
			const char *want = a->type == ARCA_API_STRING ? "expected a string, got number"
			                   : a->type == ARCA_API_INT  ? "expected an integer, got string"
			                   : a->type == ARCA_API_BOOL ? "expected a boolean, got string"
			                                              : "expected an array of strings, got string";
			snprintf(args, sizeof(args), "{\"%s\":%s}", a->name, bad);
			snprintf(msg, sizeof(msg), "argument '%s': %s", a->name, want);
			fails(admin_auth, cmds[i].name, args, 400, "invalid", msg);
			any_required |= a->required;
			if (a->type == ARCA_API_STRINGS) {
				snprintf(args, sizeof(args), "{\"%s\":[\"a\",7]}", a->name);
				snprintf(msg, sizeof(msg), "argument '%s': element 1: expected a string, got number",
				         a->name);
				fails(admin_auth, cmds[i].name, args, 400, "invalid", msg);
			}
			if (a->type == ARCA_API_INT) {
				snprintf(args, sizeof(args), "{\"%s\":%lld}", a->name, (long long)a->max + 1);
				snprintf(msg, sizeof(msg), "argument '%s': must be between", a->name);
				fails(admin_auth, cmds[i].name, args, 400, "invalid", msg);
			}
		}
		snprintf(msg, sizeof(msg), "unknown argument 'bogus' for %s", cmds[i].name);
		fails(admin_auth, cmds[i].name, "{\"bogus\":1}", 400, "invalid", msg);
		if (any_required) {
			for (size_t k = 0; k < ARCA_API_CMD_ARGS && cmds[i].args[k].name; k++)
				if (cmds[i].args[k].required) {
					snprintf(msg, sizeof(msg), "missing required argument '%s'",
					         cmds[i].args[k].name);
					break;
				}
			fails(admin_auth, cmds[i].name, "{}", 400, "invalid", msg);
			fails(admin_auth, cmds[i].name, NULL, 400, "invalid", msg);
		}
	}
	after = ok(admin_auth, "GetUsers", NULL);
	stores_after = ok(admin_auth, "GetStores", NULL);
	assert_true(json_equal(before, after));
	assert_int_equal(json_array_size(result(stores_before)), json_array_size(result(stores_after)));
	json_decref(before);
	json_decref(after);
	json_decref(stores_before);
	json_decref(stores_after);
}

static void test_users(void **state)
{
	json_t *j, *u;
	size_t i;
	bool found = false;
	(void)state;
	json_decref(ok(admin_auth, "CreateUser",
	               "{\"userName\":\"bob\",\"fullName\":\"Bob B\",\"password\":\"bob-secret\","
	               "\"privileges\":\"login,archive,read\",\"emailAddresses\":[\"Bob@Example.org\"]}"));
	fails(admin_auth, "CreateUser", "{\"userName\":\"bob\"}", 409, "exists", NULL);
	fails(admin_auth, "CreateUser", "{\"userName\":\"x\",\"privileges\":\"login,fly\"}", 400, "invalid",
	      "unknown privilege 'fly'");
	fails(admin_auth, "CreateUser", "{\"userName\":\"a/b\"}", 400, "invalid", NULL);
	j = ok(admin_auth, "GetUsers", NULL);
	json_array_foreach(result(j), i, u) if (strcmp(json_string_value(json_object_get(u, "userName")), "bob") == 0)
	{
		found = true;
		assert_string_equal(json_string_value(json_object_get(u, "privileges")), "login,archive,read");
		assert_string_equal(json_string_value(json_array_get(json_object_get(u, "emailAddresses"), 0)),
		                    "bob@example.org");
	}
	assert_true(found);
	json_decref(j);
	json_decref(ok(admin_auth, "SetUserInfo", "{\"userName\":\"bob\",\"fullName\":\"Robert\"}"));
	j = ok(bob_auth, "GetUserInfo", "{\"userName\":\"bob\"}");
	assert_string_equal(json_string_value(json_object_get(result(j), "fullName")), "Robert");
	json_decref(j);
	fails(bob_auth, "GetUsers", NULL, 403, "forbidden", "GetUsers needs the admin privilege");
	fails(bob_auth, "GetUserInfo", "{\"userName\":\"admin\"}", 403, "forbidden", NULL);
	fails(bob_auth, "CreateUser", "{\"userName\":\"eve\"}", 403, "forbidden", NULL);
	fails(admin_auth, "GetUserInfo", "{\"userName\":\"nobody\"}", 404, "notfound", NULL);
	fails(admin_auth, "DeleteUser", "{\"userName\":\"admin\"}", 409, "state", "your own user");
	fails(admin_auth, "SetUserPrivileges", "{\"userName\":\"admin\",\"privileges\":\"login\"}", 409,
	      "state", NULL);
	/* rename, password, delete with a scratch user */
	json_decref(ok(admin_auth, "CreateUser", "{\"userName\":\"carol\",\"password\":\"c1\"}"));
	json_decref(ok(admin_auth, "RenameUser", "{\"oldUserName\":\"carol\",\"newUserName\":\"carla\"}"));
	fails(admin_auth, "GetUserInfo", "{\"userName\":\"carol\"}", 404, "notfound", NULL);
	json_decref(ok(admin_auth, "SetUserPassword", "{\"userName\":\"carla\",\"password\":\"c2\"}"));
	fails(admin_auth, "SetUserPassword", "{\"userName\":\"carla\",\"password\":\"\"}", 400, "invalid",
	      "must not be empty");
	json_decref(ok(admin_auth, "SetUserPrivileges", "{\"userName\":\"carla\",\"privileges\":\"none\"}"));
	j = ok(admin_auth, "GetUserInfo", "{\"userName\":\"carla\"}");
	assert_string_equal(json_string_value(json_object_get(result(j), "privileges")), "");
	json_decref(j);
	json_decref(ok(admin_auth, "DeleteUser", "{\"userName\":\"carla\"}"));
	fails(admin_auth, "DeleteUser", "{\"userName\":\"carla\"}", 404, "notfound", NULL);
}

static const char msg_plain[] = "From: Alice <alice@example.com>\nTo: bob@example.org\n"
                                "Subject: Hello one\nDate: Mon, 03 Jun 2024 10:00:00 +0000\n"
                                "Message-ID: <one@test>\n\nhello world alpha\n";
static const char msg_html[] =
    "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Html two\n"
    "Date: Tue, 04 Jun 2024 10:00:00 +0000\nMessage-ID: <two@test>\nMIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=XX\n\n--XX\nContent-Type: text/plain\n\n"
    "plain beta\n--XX\nContent-Type: text/html; charset=iso-8859-1\n\n"
    "<html><head><style>p{}</style></head><body><p onclick=\"x()\">caf\xe9 <b>beta</b></p>"
    "<script>alert(1)</script><a href=\"javascript:alert(2)\">j</a>"
    "<a href=\"https://example.com/\">ok</a><img src=\"http://track/x.gif\"></body></html>\n--XX--\n";
static const char msg_att[] =
    "From: Carol <carol@example.net>\nTo: bob@example.org\nSubject: Report three\n"
    "Date: Wed, 05 Jun 2024 10:00:00 +0000\nMessage-ID: <three@test>\nMIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=YY\n\n--YY\nContent-Type: text/plain\n\n"
    "see the gamma report\n--YY\nContent-Type: text/plain; name=\"report.txt\"\n"
    "Content-Disposition: attachment; filename=\"report.txt\"\nContent-Transfer-Encoding: base64\n\n"
    "QXR0YWNobWVudCBjb250ZW50IGhlcmUK\n--YY--\n";

static char *mbox_of(const char *const *msgs, size_t n, size_t *len)
{
	size_t cap = 16;
	char *out;
	for (size_t i = 0; i < n; i++)
		cap += strlen(msgs[i]) + 64;
	out = malloc(cap);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strcat(out, "From sender@example.com Mon Jun  3 10:00:00 2024\n");
		strcat(out, msgs[i]);
		strcat(out, "\n");
	}
	*len = strlen(out);
	return out;
}

static char *upload(const char *auth, const void *data, size_t len)
{
	resp r;
	json_t *j;
	char *id;
	/* two chunks, to exercise appending */
	size_t half = len / 2;
	char path[128];
	assert_int_equal(http("POST", "/api/upload", auth, data, half, &r), 200);
	j = json_loads(r.body, 0, NULL);
	resp_free(&r);
	id = strdup(json_string_value(json_object_get(result(j), "upload")));
	json_decref(j);
	snprintf(path, sizeof(path), "/api/upload/%s", id);
	assert_int_equal(http("POST", path, auth, (const char *)data + half, len - half, &r), 200);
	j = json_loads(r.body, 0, NULL);
	resp_free(&r);
	assert_int_equal(json_integer_value(json_object_get(result(j), "size")), len);
	json_decref(j);
	return id;
}

/* Runs an Import to its end, which must be success. */
static void import_ok(const char *auth, const char *args)
{
	json_t *j = ok(auth, "Import", args), *fin = wait_job(auth, j);
	assert_string_equal(json_string_value(json_object_get(fin, "status")), "succeeded");
	json_decref(j);
	json_decref(fin);
}

static void test_import_upload(void **state)
{
	const char *msgs[] = {msg_plain, msg_html, msg_att};
	size_t len;
	char *mbox = mbox_of(msgs, 3, &len), *id, args[256];
	json_t *j, *fin;
	resp r;
	(void)state;
	id = upload(admin_auth, mbox, len);
	snprintf(args, sizeof(args), "{\"upload\":\"%s\",\"folder\":\"Inbox\",\"format\":\"mbox\"}", id);
	j = ok(admin_auth, "Import", args);
	assert_non_null(json_object_get(j, "token"));
	fin = wait_job(admin_auth, j);
	assert_string_equal(json_string_value(json_object_get(fin, "status")), "succeeded");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(fin, "result"), "archived")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(fin, "result"), "committed")), 3);
	json_decref(j);
	json_decref(fin);
	/* the upload is consumed */
	fails(admin_auth, "Import", args, 404, "notfound", "no upload");
	free(id);
	/* bob: into his own archive yes, into admin's no; server paths are admin-only */
	id = upload(bob_auth, msg_plain, strlen(msg_plain));
	snprintf(args, sizeof(args), "{\"upload\":\"%s\",\"archive\":\"admin\"}", id);
	fails(bob_auth, "Import", args, 403, "forbidden", "own archive");
	snprintf(args, sizeof(args), "{\"upload\":\"%s\",\"format\":\"eml\"}", id);
	import_ok(bob_auth, args);
	free(id);
	fails(bob_auth, "Import", "{\"path\":\"/etc\"}", 403, "forbidden", "admin privilege");
	fails(admin_auth, "Import", "{\"path\":\"/nonexistent/x.mbox\"}", 404, "notfound", NULL);
	fails(admin_auth, "Import", "{}", 400, "invalid", "exactly one of");
	fails(admin_auth, "Import", "{\"path\":\"/tmp\",\"upload\":\"x\"}", 400, "invalid", "exactly one of");
	fails(admin_auth, "Import", "{\"path\":\"/tmp\",\"format\":\"zip\"}", 400, "invalid", "'format'");
	/* someone else's upload is not found */
	id = upload(admin_auth, "x", 1);
	assert_int_equal(http("POST", "/api/upload/00000000000000000000000000000000", admin_auth, "y", 1, &r), 404);
	resp_free(&r);
	free(id);
	free(mbox);
}

static json_t *find_by(json_t *arr, const char *key, const char *val)
{
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x) if (json_is_string(json_object_get(x, key)) &&
	                                  strcmp(json_string_value(json_object_get(x, key)), val) == 0) return x;
	return NULL;
}

static void test_folders_and_messages(void **state)
{
	json_t *j, *f, *hit, *m, *att;
	char args[128], path[160], id[48];
	resp r;
	(void)state;
	j = ok(admin_auth, "GetChildFolders", NULL);
	assert_non_null(find_by(result(j), "folder", "admin"));
	assert_non_null(find_by(result(j), "folder", "bob"));
	json_decref(j);
	j = ok(admin_auth, "GetChildFolders", "{\"folder\":\"admin\"}");
	f = find_by(result(j), "folder", "admin/Inbox");
	assert_non_null(f);
	assert_int_equal(json_integer_value(json_object_get(f, "messages")), 3);
	json_decref(j);
	fails(admin_auth, "GetChildFolders", "{\"folder\":\"admin/Nope\"}", 404, "notfound", NULL);
	/* bob sees only his archive */
	j = ok(bob_auth, "GetChildFolders", NULL);
	assert_null(find_by(result(j), "folder", "admin"));
	assert_non_null(find_by(result(j), "folder", "bob"));
	json_decref(j);
	j = ok(admin_auth, "GetFolderStatistics", NULL);
	assert_int_equal(json_integer_value(json_object_get(find_by(result(j), "archive", "admin"), "messages")), 3);
	json_decref(j);
	fails(bob_auth, "GetFolderStatistics", NULL, 403, "forbidden", NULL);

	j = ok(admin_auth, "Search", "{\"query\":\"gamma\"}");
	assert_int_equal(json_array_size(json_object_get(result(j), "hits")), 1);
	hit = json_array_get(json_object_get(result(j), "hits"), 0);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(hit, "id")));
	json_decref(j);
	fails(admin_auth, "Search", "{\"query\":\"form:x\"}", 400, "syntax", NULL);
	fails(admin_auth, "Search", "{\"query\":\"x\",\"order\":\"oldest\"}", 400, "invalid", "'order'");
	j = ok(admin_auth, "Search", "{\"query\":\"hello\",\"order\":\"relevance\",\"limit\":5}");
	assert_true(json_array_size(json_object_get(result(j), "hits")) >= 1);
	json_decref(j);
	/* bob's search covers only his archive (one copy of msg_plain) */
	j = ok(bob_auth, "Search", "{\"query\":\"hello\"}");
	assert_int_equal(json_array_size(json_object_get(result(j), "hits")), 1);
	assert_string_equal(json_string_value(json_array_get(
	                        json_object_get(json_array_get(json_object_get(result(j), "hits"), 0), "folders"), 0)),
	                    "bob/Import");
	json_decref(j);
	fails(bob_auth, "Search", "{\"query\":\"gamma\",\"archives\":[\"admin\"]}", 403, "forbidden", NULL);

	j = ok(admin_auth, "GetMessages", "{\"folder\":\"admin/Inbox\"}");
	assert_int_equal(json_array_size(json_object_get(result(j), "messages")), 3);
	json_decref(j);
	fails(bob_auth, "GetMessages", "{\"folder\":\"admin/Inbox\"}", 404, "notfound", NULL);
	fails(admin_auth, "GetMessages", "{\"folder\":\"admin\"}", 400, "invalid", NULL);

	snprintf(args, sizeof(args), "{\"id\":\"%s\"}", id);
	j = ok(admin_auth, "GetMessage", args);
	m = result(j);
	assert_string_equal(json_string_value(json_object_get(m, "subject")), "Report three");
	assert_non_null(strstr(json_string_value(json_object_get(m, "text")), "gamma report"));
	att = json_array_get(json_object_get(m, "attachments"), 0);
	assert_string_equal(json_string_value(json_object_get(att, "filename")), "report.txt");
	assert_int_equal(json_integer_value(json_object_get(att, "size")), 24);
	snprintf(path, sizeof(path), "%s", json_string_value(json_object_get(att, "url")));
	assert_int_equal(http("GET", path, admin_auth, NULL, 0, &r), 200);
	assert_int_equal(r.body_len, 24);
	assert_memory_equal(r.body, "Attachment content here\n", 24);
	assert_non_null(strstr(r.headers, "filename=\"report.txt\""));
	assert_non_null(strstr(r.headers, "Content-Security-Policy: sandbox"));
	resp_free(&r);
	snprintf(path, sizeof(path), "%s", json_string_value(json_object_get(m, "rawUrl")));
	assert_int_equal(http("GET", path, admin_auth, NULL, 0, &r), 200);
	assert_int_equal(r.body_len, strlen(msg_att));
	assert_memory_equal(r.body, msg_att, strlen(msg_att));
	assert_non_null(strstr(r.headers, "message/rfc822"));
	resp_free(&r);
	json_decref(j);
	/* bob may not read it: it looks like it does not exist, and so do its downloads */
	fails(bob_auth, "GetMessage", args, 404, "notfound", NULL);
	assert_int_equal(http("GET", path, bob_auth, NULL, 0, &r), 404);
	resp_free(&r);
	fails(admin_auth, "GetMessage", "{\"id\":\"1:99999\"}", 404, "notfound", NULL);
	fails(admin_auth, "GetMessage", "{\"id\":\"x\"}", 400, "invalid", "STORE:N");
	assert_int_equal(http("POST", path, admin_auth, NULL, 0, &r), 405);
	resp_free(&r);
	/* a folder grant opens it */
	json_decref(ok(admin_auth, "SetUserPrivilegesOnFolder",
	               "{\"userName\":\"bob\",\"folder\":\"admin/Inbox\",\"privileges\":\"read\"}"));
	j = ok(admin_auth, "GetUserPrivilegesOnFolders", "{\"userName\":\"bob\"}");
	assert_non_null(find_by(result(j), "folder", "admin/Inbox"));
	json_decref(j);
	json_decref(ok(bob_auth, "GetMessage", args));
	j = ok(bob_auth, "Search", "{\"query\":\"gamma\"}");
	assert_int_equal(json_array_size(json_object_get(result(j), "hits")), 1);
	json_decref(j);
	json_decref(ok(admin_auth, "SetUserPrivilegesOnFolder",
	               "{\"userName\":\"bob\",\"folder\":\"admin/Inbox\",\"privileges\":\"none\"}"));
	fails(bob_auth, "GetMessage", args, 404, "notfound", NULL);
	fails(admin_auth, "SetUserPrivilegesOnFolder",
	      "{\"userName\":\"bob\",\"folder\":\"admin\",\"privileges\":\"write\"}", 400, "invalid", NULL);

	/* the HTML view is sanitised */
	j = ok(admin_auth, "Search", "{\"query\":\"subject:html\"}");
	snprintf(args, sizeof(args), "{\"id\":\"%s\"}",
	         json_string_value(json_object_get(json_array_get(json_object_get(result(j), "hits"), 0), "id")));
	json_decref(j);
	j = ok(admin_auth, "GetMessage", args);
	{
		const char *html = json_string_value(json_object_get(result(j), "html"));
		assert_non_null(strstr(html, "caf\xc3\xa9 <b>beta</b>"));
		assert_null(strstr(html, "script"));
		assert_null(strstr(html, "alert"));
		assert_null(strstr(html, "onclick"));
		assert_null(strstr(html, "<img"));
		assert_null(strstr(html, "p{}"));
		assert_non_null(strstr(html, "href=\"https://example.com/\""));
	}
	json_decref(j);
}

static void test_export(void **state)
{
	json_t *j, *fin;
	resp r;
	char path[160];
	int froms = 0;
	(void)state;
	j = ok(admin_auth, "Export", "{\"archive\":\"admin\",\"folder\":\"Inbox\"}");
	fin = wait_job(admin_auth, j);
	assert_string_equal(json_string_value(json_object_get(fin, "status")), "succeeded");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(fin, "result"), "exported")), 3);
	snprintf(path, sizeof(path), "%s",
	         json_string_value(json_object_get(json_object_get(fin, "result"), "download")));
	assert_int_equal(http("GET", path, admin_auth, NULL, 0, &r), 200);
	for (const char *p = r.body; (p = strstr(p, "From ")) != NULL; p++)
		froms += p == r.body || p[-1] == '\n';
	assert_int_equal(froms, 3);
	resp_free(&r);
	/* not bob's job */
	assert_int_equal(http("GET", path, bob_auth, NULL, 0, &r), 404);
	resp_free(&r);
	json_decref(j);
	json_decref(fin);
	fails(bob_auth, "Export", "{\"archive\":\"bob\"}", 403, "forbidden", "export privilege");
	fails(admin_auth, "Export", "{\"archive\":\"admin\",\"format\":\"eml\"}", 400, "invalid", "needs 'path'");
	fails(admin_auth, "Export", "{\"folder\":\"Inbox\"}", 400, "invalid", "needs 'archive'");
}

static void test_stores_and_jobs(void **state)
{
	json_t *j, *fin;
	char body[128];
	resp r;
	(void)state;
	j = ok(admin_auth, "GetStores", NULL);
	assert_int_equal(json_array_size(result(j)), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(result(j), 0), "requestedState")),
	                    "current");
	json_decref(j);
	fails(bob_auth, "GetStores", NULL, 403, "forbidden", NULL);
	j = ok(admin_auth, "CreateStore", "{\"name\":\"second\"}");
	assert_int_equal(json_integer_value(json_object_get(result(j), "id")), 2);
	json_decref(j);
	fails(admin_auth, "CreateStore", "{\"requestedState\":\"disabled\"}", 400, "invalid", NULL);
	json_decref(ok(admin_auth, "SetStoreRequestedState", "{\"id\":2,\"requestedState\":\"current\"}"));
	fails(admin_auth, "SetStoreRequestedState", "{\"id\":9,\"requestedState\":\"current\"}", 404,
	      "notfound", NULL);
	fails(admin_auth, "SetStoreRequestedState", "{\"id\":2,\"requestedState\":\"sleepy\"}", 400,
	      "invalid", NULL);
	/* the workers see the new store */
	j = ok(admin_auth, "GetStores", NULL);
	assert_int_equal(json_array_size(result(j)), 2);
	json_decref(j);
	j = ok(admin_auth, "VerifyStore", NULL);
	fin = wait_job(admin_auth, j);
	assert_string_equal(json_string_value(json_object_get(fin, "status")), "succeeded");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(fin, "result"), "checked")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(fin, "result"), "damagedCount")), 0);
	/* cancelling a finished job changes nothing */
	snprintf(body, sizeof(body), "{\"token\":\"%s\"}", json_string_value(json_object_get(j, "token")));
	assert_int_equal(http("POST", "/api/cancel-async", admin_auth, body, strlen(body), &r), 200);
	assert_non_null(strstr(r.body, "\"succeeded\""));
	resp_free(&r);
	/* another user's token is unknown to bob */
	assert_int_equal(http("POST", "/api/get-status", bob_auth, body, strlen(body), &r), 404);
	resp_free(&r);
	json_decref(j);
	json_decref(fin);
	j = ok(admin_auth, "GetJobs", NULL);
	assert_true(json_array_size(result(j)) >= 3);
	json_decref(j);
	j = ok(bob_auth, "GetJobs", NULL);
	assert_int_equal(json_array_size(result(j)), 1); /* his import */
	json_decref(j);
	assert_int_equal(http("POST", "/api/get-status", admin_auth, "{\"token\":\"nope\"}", 16, &r), 404);
	resp_free(&r);
	assert_int_equal(http("POST", "/api/get-status", admin_auth, "{\"token\":5}", 11, &r), 400);
	resp_free(&r);
	assert_int_equal(http("POST", "/api/get-status", admin_auth, "{}", 2, &r), 400);
	resp_free(&r);
	j = ok(admin_auth, "RebuildStoreIndex", "{\"id\":1}");
	fin = wait_job(admin_auth, j);
	assert_string_equal(json_string_value(json_object_get(fin, "status")), "succeeded");
	json_decref(j);
	json_decref(fin);
	j = ok(admin_auth, "RecreateStoreMetadata", "{\"id\":1}");
	fin = wait_job(admin_auth, j);
	assert_string_equal(json_string_value(json_object_get(fin, "status")), "succeeded");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(fin, "result"), "messages")), 3);
	json_decref(j);
	json_decref(fin);
	j = ok(admin_auth, "RecreateStoreMetadata", "{\"id\":7}");
	fin = wait_job(admin_auth, j);
	assert_string_equal(json_string_value(json_object_get(fin, "status")), "failed");
	json_decref(j);
	json_decref(fin);
	/* still searchable after all that */
	j = ok(admin_auth, "Search", "{\"query\":\"gamma\"}");
	assert_int_equal(json_array_size(json_object_get(result(j), "hits")), 1);
	json_decref(j);
}

/* A user whose archive holds messages is renamed with it: the messages are found under the new
 * name, the old name stays the archive's (no one else may take it), renaming back works. */
static void test_rename_user_with_messages(void **state)
{
	char dave[512], args[256], *id;
	json_t *j;
	(void)state;
	json_decref(ok(admin_auth, "CreateUser", "{\"userName\":\"dave\",\"password\":\"d1\"}"));
	basic(dave, sizeof(dave), "dave", "d1");
	id = upload(dave, msg_plain, strlen(msg_plain));
	snprintf(args, sizeof(args), "{\"upload\":\"%s\",\"format\":\"eml\",\"folder\":\"Kept\"}", id);
	import_ok(dave, args);
	free(id);
	json_decref(ok(admin_auth, "RenameUser", "{\"oldUserName\":\"dave\",\"newUserName\":\"david\"}"));
	basic(dave, sizeof(dave), "david", "d1");
	j = ok(dave, "Search", "{\"query\":\"hello\"}");
	assert_int_equal(json_array_size(json_object_get(result(j), "hits")), 1);
	assert_string_equal(json_string_value(json_array_get(
	                        json_object_get(json_array_get(json_object_get(result(j), "hits"), 0), "folders"), 0)),
	                    "david/Kept");
	json_decref(j);
	j = ok(dave, "GetMessages", "{\"folder\":\"david/Kept\"}");
	assert_int_equal(json_array_size(json_object_get(result(j), "messages")), 1);
	json_decref(j);
	/* the old name is the archive's: no new user may take it; another taken name is refused */
	fails(admin_auth, "CreateUser", "{\"userName\":\"dave\",\"password\":\"x\"}", 409, "exists",
	      "renamed");
	fails(admin_auth, "RenameUser", "{\"oldUserName\":\"david\",\"newUserName\":\"bob\"}", 409,
	      "exists", NULL);
	fails(admin_auth, "RenameUser", "{\"oldUserName\":\"nobody\",\"newUserName\":\"x\"}", 404,
	      "notfound", NULL);
	/* back to the old name */
	json_decref(ok(admin_auth, "RenameUser", "{\"oldUserName\":\"david\",\"newUserName\":\"dave\"}"));
	basic(dave, sizeof(dave), "dave", "d1");
	j = ok(dave, "GetMessages", "{\"folder\":\"dave/Kept\"}");
	assert_int_equal(json_array_size(json_object_get(result(j), "messages")), 1);
	json_decref(j);
}

static void test_sessions(void **state)
{
	resp r;
	json_t *j;
	char bearer[128];
	(void)state;
	const char *login = "{\"userName\":\"bob\",\"password\":\"bob-secret\"}";
	assert_int_equal(http("POST", "/api/login", NULL, login, strlen(login), &r), 200);
	j = json_loads(r.body, 0, NULL);
	resp_free(&r);
	assert_int_equal(strlen(json_string_value(json_object_get(result(j), "token"))), 64);
	snprintf(bearer, sizeof(bearer), "Bearer %s", json_string_value(json_object_get(result(j), "token")));
	json_decref(j);
	j = ok(bearer, "GetServerInfo", NULL);
	assert_string_equal(json_string_value(json_object_get(result(j), "userName")), "bob");
	json_decref(j);
	assert_int_equal(http("POST", "/api/login", NULL, "{\"userName\":\"bob\"}", 17, &r), 400);
	resp_free(&r);
	assert_int_equal(http("POST", "/api/logout", bearer, NULL, 0, &r), 200);
	resp_free(&r);
	assert_int_equal(http("POST", "/api/invoke/GetServerInfo", bearer, NULL, 0, &r), 401);
	resp_free(&r);
	assert_int_equal(http("POST", "/api/logout", NULL, NULL, 0, &r), 401);
	resp_free(&r);
}

/* Last: a failed login penalises 127.0.0.1 for the following new logins. */
static void test_bad_password(void **state)
{
	char wrong[512];
	resp r;
	(void)state;
	basic(wrong, sizeof(wrong), "admin", "wrong");
	assert_int_equal(http("POST", "/api/invoke/GetServerInfo", wrong, NULL, 0, &r), 401);
	assert_non_null(strstr(r.body, "invalid user name or password"));
	resp_free(&r);
	basic(wrong, sizeof(wrong), "nobody", "x");
	assert_int_equal(http("POST", "/api/invoke/GetServerInfo", wrong, NULL, 0, &r), 401);
	resp_free(&r);
	/* a password change ends the cached login at once */
	json_decref(ok(admin_auth, "SetUserPassword", "{\"userName\":\"bob\",\"password\":\"new-bob\"}"));
	assert_int_equal(http("POST", "/api/invoke/GetServerInfo", bob_auth, NULL, 0, &r), 401);
	resp_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_auth_required),    cmocka_unit_test(test_server_info),
	    cmocka_unit_test(test_routing_and_bad_json), cmocka_unit_test(test_every_command_bad_input),
	    cmocka_unit_test(test_users),            cmocka_unit_test(test_import_upload),
	    cmocka_unit_test(test_folders_and_messages), cmocka_unit_test(test_export),
	    cmocka_unit_test(test_stores_and_jobs),  cmocka_unit_test(test_rename_user_with_messages),
	    cmocka_unit_test(test_sessions),
	    cmocka_unit_test(test_bad_password),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

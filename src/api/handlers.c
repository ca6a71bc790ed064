/* Command handlers that run on the svc worker threads (read-only instance handle, users
 * handle), access checks, and uploads. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_int.h"
#include "crypto/crypto.h"
#include "lib/fs.h"
#include "lib/log.h"
#include "sources/files.h"

#ifndef ARCA_VERSION
#define ARCA_VERSION "unknown"
#endif

/* ---- helpers ---- */

arca_status arca_api_forbidden(arca_api_call *c, arca_error *err, const char *fmt, ...)
{
	va_list ap;
	char msg[ARCA_ERROR_MSG_MAX];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->code = ARCA_API_E_FORBIDDEN;
	return arca_error_set(err, ARCA_ERR_STATE, "%s", msg);
}

const char *arca_api_str(json_t *args, const char *name)
{
	json_t *v = json_object_get(args, name);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

bool arca_api_has(json_t *args, const char *name)
{
	json_t *v = json_object_get(args, name);
	return v != NULL && !json_is_null(v);
}

static int64_t arg_int(json_t *args, const char *name, int64_t def)
{
	json_t *v = json_object_get(args, name);
	return json_is_integer(v) ? json_integer_value(v) : def;
}

static bool arg_bool(json_t *args, const char *name, bool def)
{
	json_t *v = json_object_get(args, name);
	return json_is_boolean(v) ? json_is_true(v) : def;
}

void arca_api_fmt_date(int64_t t, char *out, size_t outsz)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outsz, "%s", "");
}

void arca_api_privs_text(uint32_t privs, char *out, size_t outsz)
{
	size_t n = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < 32; i++) {
		const char *name;
		if (!(privs & (1u << i)) || (name = arca_priv_name(1u << i)) == NULL)
			continue;
		n += (size_t)snprintf(out + n, n < outsz ? outsz - n : 0, "%s%s", n ? "," : "", name);
		if (n >= outsz) {
			out[outsz - 1] = '\0';
			return;
		}
	}
}

static arca_status privs_parse(const char *text, uint32_t *out, arca_error *err)
{
	char buf[256];
	char *save = NULL;
	*out = 0;
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		uint32_t bit;
		while (*t == ' ')
			t++;
		for (size_t n = strlen(t); n > 0 && t[n - 1] == ' '; n--)
			t[n - 1] = '\0';
		if (*t == '\0' || strcmp(t, "none") == 0)
			continue;
		if (arca_priv_parse(t, &bit) != ARCA_OK)
			return arca_error_set(err, ARCA_ERR_INVALID,
			                      "argument 'privileges': unknown privilege '%.64s' (known: login, "
			                      "archive, read, export, delete, admin, none)",
			                      t);
		*out |= bit;
	}
	return ARCA_OK;
}

json_t *arca_api_jstr(const char *s)
{
	size_t n;
	char *fixed;
	json_t *j;
	if (s == NULL)
		return json_string("");
	j = json_string(s);
	if (j != NULL)
		return j;
	fixed = arca_api_utf8_fix(s, strlen(s), &n);
	j = fixed ? json_stringn(fixed, n) : NULL;
	free(fixed);
	return j ? j : json_string("");
}

static bool is_admin(const arca_api_call *c)
{
	return (c->privs & ARCA_PRIV_ADMIN) != 0;
}

static arca_status need_inst(arca_api_call *c, arca_error *err)
{
	if (c->h->inst == NULL)
		return arca_error_set(err, c->h->open_err.status ? c->h->open_err.status : ARCA_ERR_IO,
		                      "the archive is not available: %s", c->h->open_err.msg);
	return ARCA_OK;
}

/* "archive/folder/sub" -> archive, "folder/sub" ("" if none) */
static arca_status split_folder(const char *spec, char *archive, size_t asz, char *path, size_t psz,
                                arca_error *err)
{
	const char *slash = strchr(spec, '/');
	size_t an = slash ? (size_t)(slash - spec) : strlen(spec);
	if (an == 0 || an >= asz)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "argument 'folder': expected ARCHIVE or ARCHIVE/FOLDER");
	memcpy(archive, spec, an);
	archive[an] = '\0';
	if (snprintf(path, psz, "%s", slash ? slash + 1 : "") >= (int)psz)
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'folder': path too long");
	if (slash && slash[1] == '\0')
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'folder': ends with '/'");
	return ARCA_OK;
}

static arca_status may_read(arca_api_call *c, const char *archive, const char *folder, bool *may,
                            arca_error *err)
{
	if (is_admin(c)) {
		*may = true;
		return ARCA_OK;
	}
	return arca_users_may_read(c->h->users, c->user, archive, folder, may, err);
}

/* Archives the caller may read something of: own (with READ_OWN) and granted ones. */
static arca_status readable_archives(arca_api_call *c, json_t **out, arca_error *err)
{
	arca_folder_grant *g;
	size_t n;
	json_t *set = json_object();
	*out = NULL;
	if (set == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	if (c->privs & ARCA_PRIV_READ_OWN)
		json_object_set_new(set, c->user, json_true());
	if (arca_users_folder_grants(c->h->users, c->user, &g, &n, err) != ARCA_OK) {
		json_decref(set);
		return err ? err->status : ARCA_ERR_DB;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *cur = json_object_get(set, g[i].archive);
		if (g[i].access < ARCA_ACCESS_READ)
			continue;
		/* true: the whole archive; false: only some folders */
		if (cur == NULL || (!json_is_true(cur) && g[i].folder[0] == '\0'))
			json_object_set_new(set, g[i].archive, json_boolean(g[i].folder[0] == '\0'));
	}
	arca_folder_grants_free(g, n);
	*out = set;
	return ARCA_OK;
}

/* ---- server ---- */

arca_status arca_api_h_server_info(arca_api_call *c, arca_error *err)
{
	char p[128];
	arca_api_privs_text(c->privs, p, sizeof(p));
	c->result = json_pack("{s:s,s:o,s:s}", "version", ARCA_VERSION, "userName", arca_api_jstr(c->user),
	                      "privileges", p);
	return c->result ? ARCA_OK : arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
}

/* ---- users ---- */

static json_t *user_json(const arca_user *u)
{
	char p[128];
	json_t *emails = json_array();
	for (size_t i = 0; i < u->n_emails; i++)
		json_array_append_new(emails, arca_api_jstr(u->emails[i]));
	arca_api_privs_text(u->privileges, p, sizeof(p));
	return json_pack("{s:o,s:o,s:o,s:s,s:b}", "userName", arca_api_jstr(u->name), "fullName",
	                 arca_api_jstr(u->full_name), "emailAddresses", emails, "privileges", p,
	                 "hasPassword", u->has_password);
}

arca_status arca_api_h_get_users(arca_api_call *c, arca_error *err)
{
	arca_user *v;
	size_t n;
	if (arca_users_list(c->h->users, &v, &n, err) != ARCA_OK)
		return err->status;
	c->result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(c->result, user_json(&v[i]));
	arca_users_list_free(v, n);
	return ARCA_OK;
}

static arca_status self_or_admin(arca_api_call *c, const char *name, arca_error *err)
{
	if (is_admin(c) || strcmp(name, c->user) == 0)
		return ARCA_OK;
	return arca_api_forbidden(c, err, "%s: only administrators may see other users", c->cmd->name);
}

static json_t *grants_json(arca_folder_grant *g, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char f[ARCA_NAME_MAX + ARCA_FOLDER_MAX + 2];
		snprintf(f, sizeof(f), "%s%s%s", g[i].archive, g[i].folder[0] ? "/" : "", g[i].folder);
		json_array_append_new(a, json_pack("{s:o,s:s}", "folder", arca_api_jstr(f), "privileges",
		                                   g[i].access >= ARCA_ACCESS_READ ? "read" : "none"));
	}
	return a;
}

arca_status arca_api_h_get_user_info(arca_api_call *c, arca_error *err)
{
	const char *name = arca_api_str(c->args, "userName");
	arca_user u;
	arca_folder_grant *g;
	size_t n;
	if (self_or_admin(c, name, err) != ARCA_OK)
		return ARCA_ERR_STATE;
	if (arca_users_get(c->h->users, name, &u, err) != ARCA_OK)
		return err->status;
	c->result = user_json(&u);
	arca_user_free_fields(&u);
	if (arca_users_folder_grants(c->h->users, name, &g, &n, err) != ARCA_OK)
		return err->status;
	json_object_set_new(c->result, "folderPrivileges", grants_json(g, n));
	arca_folder_grants_free(g, n);
	return ARCA_OK;
}

arca_status arca_api_h_get_user_privileges_on_folders(arca_api_call *c, arca_error *err)
{
	const char *name = arca_api_str(c->args, "userName");
	arca_folder_grant *g;
	size_t n;
	arca_user u;
	if (self_or_admin(c, name, err) != ARCA_OK)
		return ARCA_ERR_STATE;
	if (arca_users_get(c->h->users, name, &u, err) != ARCA_OK)
		return err->status;
	arca_user_free_fields(&u);
	if (arca_users_folder_grants(c->h->users, name, &g, &n, err) != ARCA_OK)
		return err->status;
	c->result = grants_json(g, n);
	arca_folder_grants_free(g, n);
	return ARCA_OK;
}

static arca_status emails_arg(json_t *args, const char ***out, size_t *n)
{
	json_t *a = json_object_get(args, "emailAddresses"), *x;
	size_t i;
	*out = NULL;
	*n = json_array_size(a);
	if (*n == 0)
		return ARCA_OK;
	*out = calloc(*n, sizeof(**out));
	if (*out == NULL)
		return ARCA_ERR_NOMEM;
	json_array_foreach(a, i, x)(*out)[i] = json_string_value(x);
	return ARCA_OK;
}

/* The archive of a user: created with the user (a writable instance handle of its own: the
 * worker's is read-only; archive rows live in instance.db, no store lock is involved). */
static arca_status archive_create(arca_api_call *c, const char *name, bool create, uint32_t *id,
                                  arca_error *err)
{
	arca_instance *in = NULL;
	arca_status st = arca_instance_open(arca_svc_base_dir(c->api->svc),
	                                    arca_svc_key_file(c->api->svc), create ? 0 : ARCA_INSTANCE_READONLY,
	                                    &in, err);
	if (st != ARCA_OK)
		return st;
	st = arca_instance_archive_id(in, name, create, id, err);
	arca_instance_close(&in);
	return st;
}

arca_status arca_api_h_create_user(arca_api_call *c, arca_error *err)
{
	const char *name = arca_api_str(c->args, "userName");
	const char *full = arca_api_str(c->args, "fullName");
	const char *pw = arca_api_str(c->args, "password");
	const char *ptext = arca_api_str(c->args, "privileges");
	uint32_t privs = ARCA_PRIV_DEFAULT, aid;
	const char **emails;
	size_t n_emails;
	arca_status st;
	char p[128];
	if (ptext != NULL && privs_parse(ptext, &privs, err) != ARCA_OK)
		return ARCA_ERR_INVALID;
	if (pw != NULL && pw[0] == '\0')
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'password': must not be empty");
	if (strchr(name, '/') != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'userName': must not contain '/'");
	if ((st = arca_users_create(c->h->users, name, full ? full : "", privs, err)) != ARCA_OK)
		return st;
	if (emails_arg(c->args, &emails, &n_emails) != ARCA_OK)
		st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	else if (n_emails > 0)
		st = arca_users_set_emails(c->h->users, name, emails, n_emails, err);
	free(emails);
	if (st == ARCA_OK && pw != NULL)
		st = arca_users_set_password(c->h->users, name, pw, err);
	if (st == ARCA_OK)
		st = archive_create(c, name, true, &aid, err);
	if (st != ARCA_OK) {
		/* all or nothing: the user goes again (an archive already there stays: it may hold mail) */
		arca_users_delete(c->h->users, name, NULL);
		return st;
	}
	arca_api_privs_text(privs, p, sizeof(p));
	c->result = json_pack("{s:o,s:s}", "userName", arca_api_jstr(name), "privileges", p);
	return ARCA_OK;
}

arca_status arca_api_h_delete_user(arca_api_call *c, arca_error *err)
{
	const char *name = arca_api_str(c->args, "userName");
	if (strcmp(name, c->user) == 0)
		return arca_error_set(err, ARCA_ERR_STATE, "you cannot delete your own user");
	return arca_users_delete(c->h->users, name, err);
}

/* Renames the archive old to new in the instance's database (its own writable handle, like
 * archive_create). NOTFOUND when there is no archive old. */
static arca_status archive_rename(arca_api_call *c, const char *old_name, const char *new_name,
                                  arca_error *err)
{
	arca_instance *in = NULL;
	arca_status st = arca_instance_open(arca_svc_base_dir(c->api->svc), arca_svc_key_file(c->api->svc),
	                                    0, &in, err);
	if (st != ARCA_OK)
		return st;
	st = arca_instance_archive_rename(in, old_name, new_name, err);
	arca_instance_close(&in);
	return st;
}

arca_status arca_api_h_rename_user(arca_api_call *c, arca_error *err)
{
	const char *old_name = arca_api_str(c->args, "oldUserName");
	const char *new_name = arca_api_str(c->args, "newUserName");
	arca_user u;
	arca_status st;
	uint32_t aid;
	arca_error e2;
	if (strchr(new_name, '/') != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'newUserName': must not contain '/'");
	if (need_inst(c, err) != ARCA_OK)
		return err->status;
	if (arca_users_get(c->h->users, old_name, &u, err) != ARCA_OK)
		return err->status;
	arca_user_free_fields(&u);
	/* The archive first (its checks: the new name free, not another archive's old name), then
	 * the user; each undone if the other fails. */
	st = archive_rename(c, old_name, new_name, err);
	if (st == ARCA_ERR_NOTFOUND) {
		/* the user has no archive yet: the new name must be free for one */
		st = archive_create(c, new_name, false, &aid, &e2);
		if (st == ARCA_OK)
			return arca_error_set(err, ARCA_ERR_EXISTS, "an archive named '%s' already exists",
			                      new_name);
		st = ARCA_OK;
	} else if (st != ARCA_OK) {
		return st;
	}
	if ((st = arca_users_rename(c->h->users, old_name, new_name, err)) != ARCA_OK) {
		archive_rename(c, new_name, old_name, &e2);
		return st;
	}
	if ((st = archive_create(c, new_name, true, &aid, err)) != ARCA_OK) {
		arca_users_rename(c->h->users, new_name, old_name, NULL);
		archive_rename(c, new_name, old_name, &e2);
		return st;
	}
	arca_log(ARCA_LOG_INFO, "api", "user renamed: %s -> %s (with their archive)", old_name, new_name);
	return ARCA_OK;
}

arca_status arca_api_h_set_user_password(arca_api_call *c, arca_error *err)
{
	return arca_users_set_password(c->h->users, arca_api_str(c->args, "userName"),
	                               arca_api_str(c->args, "password"), err);
}

arca_status arca_api_h_set_user_info(arca_api_call *c, arca_error *err)
{
	const char *name = arca_api_str(c->args, "userName");
	const char *full = arca_api_str(c->args, "fullName");
	arca_user u;
	arca_status st = ARCA_OK;
	if (arca_users_get(c->h->users, name, &u, err) != ARCA_OK)
		return err->status;
	arca_user_free_fields(&u);
	if (full != NULL)
		st = arca_users_set_full_name(c->h->users, name, full, err);
	if (st == ARCA_OK && arca_api_has(c->args, "emailAddresses")) {
		const char **emails;
		size_t n;
		if (emails_arg(c->args, &emails, &n) != ARCA_OK)
			return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		st = arca_users_set_emails(c->h->users, name, emails, n, err);
		free(emails);
	}
	return st;
}

arca_status arca_api_h_set_user_privileges(arca_api_call *c, arca_error *err)
{
	const char *name = arca_api_str(c->args, "userName");
	uint32_t privs;
	if (privs_parse(arca_api_str(c->args, "privileges"), &privs, err) != ARCA_OK)
		return ARCA_ERR_INVALID;
	if (strcmp(name, c->user) == 0 && !(privs & ARCA_PRIV_ADMIN))
		return arca_error_set(err, ARCA_ERR_STATE,
		                      "you cannot take the admin privilege from yourself");
	return arca_users_set_privileges(c->h->users, name, privs, err);
}

arca_status arca_api_h_set_user_privileges_on_folder(arca_api_call *c, arca_error *err)
{
	const char *p = arca_api_str(c->args, "privileges");
	char archive[ARCA_NAME_MAX], path[ARCA_FOLDER_MAX];
	arca_access access;
	if (strcmp(p, "read") == 0)
		access = ARCA_ACCESS_READ;
	else if (strcmp(p, "none") == 0)
		access = ARCA_ACCESS_NONE;
	else
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "argument 'privileges': expected 'read' or 'none'");
	if (split_folder(arca_api_str(c->args, "folder"), archive, sizeof(archive), path, sizeof(path),
	                 err) != ARCA_OK)
		return ARCA_ERR_INVALID;
	return arca_users_set_folder_access(c->h->users, arca_api_str(c->args, "userName"), archive,
	                                    path, access, err);
}

/* ---- folders ---- */

typedef struct {
	char *path; /* "archive" or "archive/folder/..." */
	uint64_t messages;
	int depth; /* 0 for archives */
	bool readable, visible;
} folder_node;

static int node_cmp(const void *a, const void *b)
{
	return strcmp(((const folder_node *)a)->path, ((const folder_node *)b)->path);
}

static bool is_under(const char *path, const char *parent)
{
	size_t n = strlen(parent);
	return strncmp(path, parent, n) == 0 && path[n] == '/';
}

arca_status arca_api_h_get_child_folders(arca_api_call *c, arca_error *err)
{
	const char *spec = arca_api_str(c->args, "folder");
	int levels = (int)arg_int(c->args, "maxLevels", 1), base_depth = -1;
	arca_folder_info *f = NULL;
	arca_archive_info *a = NULL;
	size_t nf = 0, na = 0, nn = 0;
	folder_node *nodes = NULL;
	json_t *access = NULL;
	arca_status st;
	if (spec == NULL)
		spec = "";
	if (need_inst(c, err) != ARCA_OK)
		return err->status;
	if (spec[0] != '\0') {
		char archive[ARCA_NAME_MAX], path[ARCA_FOLDER_MAX];
		if (split_folder(spec, archive, sizeof(archive), path, sizeof(path), err) != ARCA_OK)
			return ARCA_ERR_INVALID;
		base_depth = 0;
		for (const char *p = spec; *p; p++)
			base_depth += *p == '/';
	}
	if (!is_admin(c) && (st = readable_archives(c, &access, err)) != ARCA_OK)
		return st;
	if ((st = arca_instance_archives(c->h->inst, &a, &na, err)) != ARCA_OK ||
	    (st = arca_instance_folders(c->h->inst, 0, &f, &nf, err)) != ARCA_OK)
		goto out;
	nodes = calloc(na + nf + 1, sizeof(*nodes));
	if (nodes == NULL) {
		st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < na + nf; i++) {
		const char *arch = i < na ? a[i].name : f[i - na].archive;
		folder_node *x = &nodes[nn];
		size_t len;
		if (access != NULL && json_object_get(access, arch) == NULL)
			continue;
		len = strlen(arch) + (i < na ? 0 : strlen(f[i - na].path) + 1) + 1;
		x->path = malloc(len);
		if (x->path == NULL) {
			st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			goto out;
		}
		if (i < na) {
			snprintf(x->path, len, "%s", arch);
			x->messages = a[i].messages;
		} else {
			snprintf(x->path, len, "%s/%s", arch, f[i - na].path);
			x->messages = f[i - na].messages;
			for (const char *p = f[i - na].path; *p; p++)
				x->depth += *p == '/';
			x->depth++;
		}
		nn++;
	}
	qsort(nodes, nn, sizeof(*nodes), node_cmp);
	/* readable: by the users module; visible: readable or leading to something readable */
	for (size_t i = 0; i < nn; i++) {
		char archive[ARCA_NAME_MAX], path[ARCA_FOLDER_MAX];
		bool may = true;
		if (split_folder(nodes[i].path, archive, sizeof(archive), path, sizeof(path), NULL) !=
		    ARCA_OK)
			continue;
		if (access != NULL && !json_is_true(json_object_get(access, archive)) &&
		    (st = may_read(c, archive, path, &may, err)) != ARCA_OK)
			goto out;
		nodes[i].readable = nodes[i].visible = may;
	}
	for (size_t i = 0; i < nn; i++)
		if (nodes[i].readable)
			for (size_t k = 0; k < nn; k++)
				if (!nodes[k].visible && is_under(nodes[i].path, nodes[k].path))
					nodes[k].visible = true;
	c->result = json_array();
	for (size_t i = 0; i < nn; i++) {
		const char *name;
		bool children = false;
		if (!nodes[i].visible)
			continue;
		if (spec[0] != '\0' && !is_under(nodes[i].path, spec))
			continue;
		if (nodes[i].depth - base_depth < 1 || nodes[i].depth - base_depth > levels)
			continue;
		for (size_t k = i + 1; k < nn && !children; k++)
			children = nodes[k].visible && is_under(nodes[k].path, nodes[i].path);
		name = strrchr(nodes[i].path, '/');
		name = name ? name + 1 : nodes[i].path;
		json_array_append_new(c->result,
		                      json_pack("{s:o,s:o,s:I,s:b,s:b}", "folder", arca_api_jstr(nodes[i].path),
		                                "name", arca_api_jstr(name), "messages",
		                                (json_int_t)nodes[i].messages, "mayRead", nodes[i].readable,
		                                "hasChildren", children));
	}
	if (spec[0] != '\0' && json_array_size(c->result) == 0) {
		/* an unknown or unreadable folder looks the same: no probing */
		bool found = false;
		for (size_t i = 0; i < nn && !found; i++)
			found = nodes[i].visible && strcmp(nodes[i].path, spec) == 0;
		if (!found) {
			json_decref(c->result);
			c->result = NULL;
			st = arca_error_set(err, ARCA_ERR_NOTFOUND, "no folder '%s'", spec);
		}
	}
out:
	for (size_t i = 0; i < nn; i++)
		free(nodes[i].path);
	free(nodes);
	json_decref(access);
	if (a)
		arca_archive_infos_free(a, na);
	if (f)
		arca_folder_infos_free(f, nf);
	return st;
}

arca_status arca_api_h_get_folder_statistics(arca_api_call *c, arca_error *err)
{
	arca_archive_info *a;
	size_t n;
	if (need_inst(c, err) != ARCA_OK)
		return err->status;
	if (arca_instance_archives(c->h->inst, &a, &n, err) != ARCA_OK)
		return err->status;
	c->result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(c->result,
		                      json_pack("{s:o,s:I,s:I,s:I,s:I}", "archive", arca_api_jstr(a[i].name),
		                                "messages", (json_int_t)a[i].messages, "rawBytes",
		                                (json_int_t)a[i].raw_bytes, "storedBytes",
		                                (json_int_t)a[i].stored_bytes, "indexBytes",
		                                (json_int_t)a[i].index_bytes));
	arca_archive_infos_free(a, n);
	return ARCA_OK;
}

/* ---- messages ---- */

/* Hits as JSON; for non-admins only the folders they may read are shown and hits in none
 * of them are dropped (folder-level grants). */
static arca_status hits_json(arca_api_call *c, const arca_results *res, bool ranks, json_t **out,
                             arca_error *err)
{
	json_t *hits = json_array(), *memo = json_object();
	for (size_t i = 0; i < res->n; i++) {
		const arca_result *r = &res->items[i];
		char id[48], date[40];
		json_t *folders = json_array(), *h;
		for (size_t k = 0; k < r->n_folders; k++) {
			json_t *known = json_object_get(memo, r->folders[k]);
			bool may = true;
			if (!is_admin(c)) {
				if (known != NULL) {
					may = json_is_true(known);
				} else {
					char archive[ARCA_NAME_MAX], path[ARCA_FOLDER_MAX];
					may = false;
					if (split_folder(r->folders[k], archive, sizeof(archive), path, sizeof(path),
					                 NULL) == ARCA_OK &&
					    may_read(c, archive, path, &may, err) != ARCA_OK) {
						json_decref(folders);
						json_decref(hits);
						json_decref(memo);
						return err->status;
					}
					json_object_set_new(memo, r->folders[k], json_boolean(may));
				}
			}
			if (may)
				json_array_append_new(folders, arca_api_jstr(r->folders[k]));
		}
		if (!is_admin(c) && json_array_size(folders) == 0) {
			json_decref(folders);
			continue;
		}
		snprintf(id, sizeof(id), "%u:%llu", r->store_id, (unsigned long long)r->msg_id);
		arca_api_fmt_date(r->date, date, sizeof(date));
		h = json_pack("{s:s,s:s,s:o,s:o,s:I,s:o}", "id", id, "date", date, "from",
		              arca_api_jstr(r->from), "subject", arca_api_jstr(r->subject), "size",
		              (json_int_t)r->size, "folders", folders);
		if (h != NULL && r->snippet != NULL)
			json_object_set_new(h, "snippet", arca_api_jstr(r->snippet));
		if (h != NULL && ranks)
			json_object_set_new(h, "rank", json_real(r->rank));
		json_array_append_new(hits, h);
	}
	json_decref(memo);
	*out = hits;
	return ARCA_OK;
}

static arca_status run_search(arca_api_call *c, const char *query, const char *const *archives,
                              size_t n_archives, arca_order order, size_t offset, size_t limit,
                              bool snippets, const char *key, arca_error *err)
{
	arca_instance_search_opts so = {.archives = archives, .n_archives = n_archives, .order = order,
	                                .offset = offset, .limit = limit, .snippets = snippets};
	arca_results res;
	json_t *hits;
	arca_status st;
	if ((st = arca_instance_search(c->h->inst, query, &so, &res, err)) != ARCA_OK)
		return st;
	st = hits_json(c, &res, order == ARCA_ORDER_RELEVANCE, &hits, err);
	arca_results_free(&res);
	if (st != ARCA_OK)
		return st;
	c->result = json_pack("{s:o,s:I,s:I}", key, hits, "offset", (json_int_t)offset, "limit",
	                      (json_int_t)limit);
	return ARCA_OK;
}

arca_status arca_api_h_search(arca_api_call *c, arca_error *err)
{
	const char *order_s = arca_api_str(c->args, "order");
	json_t *req = json_object_get(c->args, "archives"), *access = NULL, *x;
	const char **names = NULL;
	size_t n = 0, i;
	arca_order order = ARCA_ORDER_NEWEST;
	arca_status st;
	const char *key;
	if (order_s != NULL && strcmp(order_s, "relevance") == 0)
		order = ARCA_ORDER_RELEVANCE;
	else if (order_s != NULL && strcmp(order_s, "newest") != 0)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "argument 'order': expected 'newest' or 'relevance'");
	if (need_inst(c, err) != ARCA_OK)
		return err->status;
	if (!is_admin(c) && (st = readable_archives(c, &access, err)) != ARCA_OK)
		return st;
	names = calloc(json_array_size(req) + json_object_size(access) + 1, sizeof(*names));
	if (names == NULL) {
		json_decref(access);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	json_array_foreach(req, i, x)
	{
		const char *a = json_string_value(x);
		if (access != NULL && json_object_get(access, a) == NULL) {
			free(names);
			json_decref(access);
			return arca_api_forbidden(c, err, "you may not read archive '%.255s'", a);
		}
		names[n++] = a;
	}
	if (json_array_size(req) == 0 && access != NULL) {
		json_object_foreach(access, key, x) names[n++] = key;
		if (n == 0) { /* nothing readable: never "all archives" */
			free(names);
			json_decref(access);
			c->result = json_pack("{s:[],s:I,s:I}", "hits", "offset",
			                      (json_int_t)arg_int(c->args, "offset", 0), "limit",
			                      (json_int_t)arg_int(c->args, "limit", 50));
			return ARCA_OK;
		}
	}
	st = run_search(c, arca_api_str(c->args, "query"), names, n, order,
	                (size_t)arg_int(c->args, "offset", 0), (size_t)arg_int(c->args, "limit", 50),
	                arg_bool(c->args, "snippets", true), "hits", err);
	free(names);
	json_decref(access);
	return st;
}

arca_status arca_api_h_get_messages(arca_api_call *c, arca_error *err)
{
	char archive[ARCA_NAME_MAX], path[ARCA_FOLDER_MAX], query[ARCA_FOLDER_MAX * 2 + 16];
	const char *names[1] = {archive};
	uint32_t aid, fid;
	size_t q = 0;
	bool may;
	if (split_folder(arca_api_str(c->args, "folder"), archive, sizeof(archive), path, sizeof(path),
	                 err) != ARCA_OK)
		return ARCA_ERR_INVALID;
	if (path[0] == '\0')
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "argument 'folder': expected ARCHIVE/FOLDER (use Search for a whole "
		                      "archive)");
	if (need_inst(c, err) != ARCA_OK)
		return err->status;
	if (may_read(c, archive, path, &may, err) != ARCA_OK)
		return err->status;
	if (!may || arca_instance_archive_id(c->h->inst, archive, false, &aid, NULL) != ARCA_OK ||
	    arca_instance_folder_id(c->h->inst, aid, path, false, &fid, NULL) != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no folder '%s/%s'", archive, path);
	/* folder:"..." with \" and \\ escaped (docs/search.md) */
	q += (size_t)snprintf(query, sizeof(query), "folder:\"");
	for (const char *p = path; *p && q + 4 < sizeof(query); p++) {
		if (*p == '"' || *p == '\\')
			query[q++] = '\\';
		query[q++] = *p;
	}
	query[q++] = '"';
	query[q] = '\0';
	return run_search(c, query, names, 1, ARCA_ORDER_NEWEST, (size_t)arg_int(c->args, "offset", 0),
	                  (size_t)arg_int(c->args, "limit", 50), false, "messages", err);
}

typedef struct {
	uint32_t store_id;
	uint64_t msg_id;
} find_ctx;

static arca_status find_cb(void *ctx, uint32_t store_id, uint64_t msg_id)
{
	const find_ctx *f = ctx;
	return (store_id == f->store_id && msg_id == f->msg_id) ? ARCA_ERR_EXISTS : ARCA_OK;
}

/* Without an engine call giving a message's folders (a gap, see docs/api.md), a non-admin's
 * access is established by walking the folders they may read (cost: their archive's size). */
arca_status arca_api_may_read_message(arca_api_call *c, uint32_t store_id, uint64_t msg_id,
                                      json_t **folders, arca_error *err)
{
	arca_folder_info *f;
	size_t nf;
	json_t *access = NULL, *found = json_array();
	find_ctx fc = {store_id, msg_id};
	arca_status st;
	if (folders)
		*folders = NULL;
	if (need_inst(c, err) != ARCA_OK) {
		json_decref(found);
		return err->status;
	}
	if (is_admin(c)) {
		if (folders)
			*folders = found;
		else
			json_decref(found);
		return ARCA_OK;
	}
	if ((st = readable_archives(c, &access, err)) != ARCA_OK) {
		json_decref(found);
		return st;
	}
	if ((st = arca_instance_folders(c->h->inst, 0, &f, &nf, err)) != ARCA_OK) {
		json_decref(access);
		json_decref(found);
		return st;
	}
	for (size_t i = 0; i < nf && st == ARCA_OK; i++) {
		char full[ARCA_NAME_MAX + ARCA_FOLDER_MAX + 2];
		bool may = false;
		if (json_object_get(access, f[i].archive) == NULL)
			continue;
		if ((st = may_read(c, f[i].archive, f[i].path, &may, err)) != ARCA_OK || !may)
			continue;
		st = arca_instance_each_message(c->h->inst, f[i].archive_id, f[i].id, find_cb, &fc, NULL);
		if (st == ARCA_ERR_EXISTS) {
			snprintf(full, sizeof(full), "%s/%s", f[i].archive, f[i].path);
			json_array_append_new(found, arca_api_jstr(full));
			st = ARCA_OK;
		} else if (st != ARCA_OK) {
			/* a disabled or unreadable store: that folder cannot prove access */
			st = ARCA_OK;
		}
	}
	arca_folder_infos_free(f, nf);
	json_decref(access);
	if (st == ARCA_OK && json_array_size(found) == 0)
		st = arca_error_set(err, ARCA_ERR_NOTFOUND, "no message %u:%llu", store_id,
		                    (unsigned long long)msg_id);
	if (st == ARCA_OK && folders)
		*folders = found;
	else
		json_decref(found);
	return st;
}

arca_status arca_api_h_get_message(arca_api_call *c, arca_error *err)
{
	const char *id = arca_api_str(c->args, "id");
	uint32_t sid;
	uint64_t mid;
	arca_buf raw;
	json_t *folders = NULL, *view = NULL, *att;
	arca_status st;
	char url[128];
	size_t i;
	if (arca_msgid_parse(id, &sid, &mid) != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'id': expected STORE:N, e.g. 1:42");
	if ((st = arca_api_may_read_message(c, sid, mid, &folders, err)) != ARCA_OK)
		return st;
	arca_buf_init(&raw, ARCA_MAX_MESSAGE_SIZE);
	st = arca_instance_get(c->h->inst, sid, mid, &raw, err);
	if (st == ARCA_OK)
		st = arca_api_view_message(raw.data, raw.len, &view, err);
	arca_buf_free(&raw);
	if (st != ARCA_OK) {
		json_decref(folders);
		return st;
	}
	json_object_set_new(view, "id", json_string(id));
	json_object_set_new(view, "folders", folders);
	snprintf(url, sizeof(url), "/api/message/%u:%llu/raw", sid, (unsigned long long)mid);
	json_object_set_new(view, "rawUrl", json_string(url));
	json_array_foreach(json_object_get(view, "attachments"), i, att)
	{
		snprintf(url, sizeof(url), "/api/message/%u:%llu/attachment/%zu", sid,
		         (unsigned long long)mid, i);
		json_object_set_new(att, "url", json_string(url));
	}
	c->result = view;
	return ARCA_OK;
}

/* ---- import, export: checks here, the work on the job thread ---- */

arca_status arca_api_h_import(arca_api_call *c, arca_error *err)
{
	const char *path = arca_api_str(c->args, "path"), *upload = arca_api_str(c->args, "upload");
	const char *archive = arca_api_str(c->args, "archive"), *fmt = arca_api_str(c->args, "format");
	const char *folder = arca_api_str(c->args, "folder");
	arca_source_format f;
	char file[ARCA_PATH_MAX];
	if ((path == NULL) == (upload == NULL))
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "give exactly one of the arguments 'path' and 'upload'");
	if (fmt != NULL && arca_source_format_parse(fmt, &f) != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "argument 'format': expected auto, eml, dir, mbox or maildir");
	if (archive == NULL)
		json_object_set_new(c->args, "archive", json_string(c->user));
	archive = arca_api_str(c->args, "archive");
	if (strchr(archive, '/') != NULL || archive[0] == '\0')
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'archive': not an archive name");
	if (folder != NULL && (folder[0] == '\0' || folder[0] == '/'))
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'folder': not a folder path");
	if (path != NULL) {
		if (!is_admin(c))
			return arca_api_forbidden(c, err,
			                          "importing from a path on the server needs the admin privilege");
		if (path[0] != '/')
			return arca_error_set(err, ARCA_ERR_INVALID, "argument 'path': must be absolute");
		if (!arca_fs_exists(path))
			return arca_error_set(err, ARCA_ERR_NOTFOUND, "argument 'path': %s does not exist", path);
		return arca_api_job_submit(c, err);
	}
	if (!is_admin(c) && (!(c->privs & ARCA_PRIV_ARCHIVE_OWN) || strcmp(archive, c->user) != 0))
		return arca_api_forbidden(c, err,
		                          "users may import only into their own archive, with the archive "
		                          "privilege");
	if (arca_api_upload_take(c->api, upload, c->user, file, sizeof(file), err) != ARCA_OK)
		return err->status;
	json_object_set_new(c->args, "_file", json_string(file));
	if (arca_api_job_submit(c, err) != ARCA_OK) {
		unlink(file);
		return err->status;
	}
	return ARCA_OK;
}

arca_status arca_api_h_export(arca_api_call *c, arca_error *err)
{
	const char *archive = arca_api_str(c->args, "archive"), *folder = arca_api_str(c->args, "folder");
	const char *fmt = arca_api_str(c->args, "format"), *path = arca_api_str(c->args, "path");
	bool may;
	if (fmt == NULL)
		fmt = "mbox";
	if (strcmp(fmt, "mbox") != 0 && strcmp(fmt, "eml") != 0)
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'format': expected 'mbox' or 'eml'");
	if (folder != NULL && archive == NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'folder' needs 'archive'");
	if (folder != NULL && arca_api_has(c->args, "query"))
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "arguments 'query' and 'folder' cannot be combined: use folder: in "
		                      "the query");
	if (path != NULL && !is_admin(c))
		return arca_api_forbidden(c, err, "exporting to a path on the server needs the admin privilege");
	if (path != NULL && path[0] != '/')
		return arca_error_set(err, ARCA_ERR_INVALID, "argument 'path': must be absolute");
	if (path == NULL && strcmp(fmt, "eml") == 0)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "format 'eml' writes a directory and needs 'path'; downloads are mbox");
	if (archive == NULL && !is_admin(c))
		return arca_error_set(err, ARCA_ERR_INVALID, "missing required argument 'archive'");
	if (archive != NULL) {
		if (may_read(c, archive, folder ? folder : "", &may, err) != ARCA_OK)
			return err->status;
		if (!may)
			return arca_api_forbidden(c, err, "you may not read %s%s%s", archive, folder ? "/" : "",
			                          folder ? folder : "");
	}
	if (path == NULL) {
		char file[ARCA_PATH_MAX], name[ARCA_API_ID_HEX + 1];
		uint8_t r[ARCA_API_ID_HEX / 2];
		arca_crypto_random(r, sizeof(r));
		arca_hex_encode(r, sizeof(r), name);
		if (snprintf(file, sizeof(file), "%s/export-%s.mbox", c->api->tmp_dir, name) >=
		    (int)sizeof(file))
			return arca_error_set(err, ARCA_ERR_LIMIT, "path too long");
		json_object_set_new(c->args, "_file", json_string(file));
	}
	return arca_api_job_submit(c, err);
}

/* ---- stores ---- */

arca_status arca_api_h_get_stores(arca_api_call *c, arca_error *err)
{
	arca_store_info *s;
	size_t n;
	if (need_inst(c, err) != ARCA_OK)
		return err->status;
	if (arca_instance_stores(c->h->inst, &s, &n, err) != ARCA_OK)
		return err->status;
	c->result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(
		    c->result,
		    json_pack("{s:I,s:o,s:s,s:o,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "id", (json_int_t)s[i].id,
		              "name", arca_api_jstr(s[i].name), "requestedState",
		              arca_store_state_name(s[i].state), "metaPath", arca_api_jstr(s[i].meta_path),
		              "contentPath", arca_api_jstr(s[i].content_path), "indexPath",
		              arca_api_jstr(s[i].index_path), "messages", (json_int_t)s[i].messages,
		              "memberships", (json_int_t)s[i].memberships, "rawBytes",
		              (json_int_t)s[i].raw_bytes, "storedBytes", (json_int_t)s[i].stored_bytes,
		              "metaBytes", (json_int_t)s[i].meta_bytes, "indexBytes",
		              (json_int_t)s[i].index_bytes, "statsValid", s[i].stats_valid));
	arca_store_infos_free(s, n);
	return ARCA_OK;
}

/* ---- uploads ---- */

static void uploads_sweep_locked(arca_api *api, uint64_t now)
{
	for (size_t i = 0; i < ARCA_API_MAX_UPLOADS; i++) {
		arca_api_upload *u = &api->uploads[i];
		if (u->id[0] && !u->busy && now - u->last_used > ARCA_API_UPLOAD_IDLE_MS) {
			unlink(u->path);
			memset(u, 0, sizeof(*u));
		}
	}
}

arca_status arca_api_upload_chunk(arca_api_call *c, const char *id, const void *data, size_t len,
                                  arca_error *err)
{
	arca_api *api = c->api;
	arca_api_upload *u = NULL;
	uint64_t now = arca_svc_now_ms(), size;
	char path[ARCA_PATH_MAX], uid[ARCA_API_ID_HEX + 1];
	bool created = false;
	int fd;
	arca_status st = ARCA_OK;
	if (!is_admin(c) && !(c->privs & ARCA_PRIV_ARCHIVE_OWN))
		return arca_api_forbidden(c, err, "uploading needs the archive privilege");
	pthread_mutex_lock(&api->mu);
	uploads_sweep_locked(api, now);
	for (size_t i = 0; i < ARCA_API_MAX_UPLOADS && id != NULL; i++)
		if (strcmp(api->uploads[i].id, id) == 0 && strcmp(api->uploads[i].owner, c->user) == 0)
			u = &api->uploads[i];
	if (id != NULL && u == NULL)
		st = arca_error_set(err, ARCA_ERR_NOTFOUND, "no upload '%.64s'", id);
	else if (u != NULL && u->busy)
		st = arca_error_set(err, ARCA_ERR_STATE, "a chunk of this upload is being written");
	else if (u != NULL && u->size + len > ARCA_API_MAX_UPLOAD)
		st = arca_error_set(err, ARCA_ERR_LIMIT, "upload larger than %u bytes", ARCA_API_MAX_UPLOAD);
	if (st == ARCA_OK && u == NULL) {
		uint8_t r[ARCA_API_ID_HEX / 2];
		for (size_t i = 0; i < ARCA_API_MAX_UPLOADS && u == NULL; i++)
			if (api->uploads[i].id[0] == '\0')
				u = &api->uploads[i];
		if (u == NULL) {
			c->code = ARCA_API_E_BUSY;
			st = arca_error_set(err, ARCA_ERR_LIMIT, "too many uploads in progress (%u)",
			                    ARCA_API_MAX_UPLOADS);
		} else {
			arca_crypto_random(r, sizeof(r));
			arca_hex_encode(r, sizeof(r), u->id);
			snprintf(u->owner, sizeof(u->owner), "%s", c->user);
			if (snprintf(u->path, sizeof(u->path), "%s/upload-%s", api->tmp_dir, u->id) >=
			    (int)sizeof(u->path)) {
				memset(u, 0, sizeof(*u));
				pthread_mutex_unlock(&api->mu);
				return arca_error_set(err, ARCA_ERR_LIMIT, "path too long");
			}
			u->size = 0;
			created = true;
		}
	}
	if (st != ARCA_OK) {
		pthread_mutex_unlock(&api->mu);
		return st;
	}
	u->busy = true;
	u->last_used = now;
	snprintf(path, sizeof(path), "%s", u->path);
	snprintf(uid, sizeof(uid), "%s", u->id);
	pthread_mutex_unlock(&api->mu);

	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | (created ? O_CREAT | O_EXCL : 0), 0600);
	if (fd < 0) {
		st = arca_error_errno(err, errno, "cannot create upload file");
	} else {
		const char *p = data;
		size_t left = len;
		while (left > 0 && st == ARCA_OK) {
			ssize_t w = write(fd, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				st = arca_error_errno(err, errno, "cannot write upload file");
			else {
				p += w;
				left -= (size_t)w;
			}
		}
		if (close(fd) != 0 && st == ARCA_OK)
			st = arca_error_errno(err, errno, "cannot write upload file");
	}
	pthread_mutex_lock(&api->mu);
	u->busy = false;
	if (st != ARCA_OK) {
		unlink(u->path);
		memset(u, 0, sizeof(*u));
		size = 0;
	} else {
		u->size += len;
		u->last_used = arca_svc_now_ms();
		size = u->size;
	}
	pthread_mutex_unlock(&api->mu);
	if (st != ARCA_OK)
		return st;
	c->result = json_pack("{s:s,s:I}", "upload", uid, "size", (json_int_t)size);
	return ARCA_OK;
}

arca_status arca_api_upload_take(arca_api *api, const char *id, const char *user, char *path,
                                 size_t psz, arca_error *err)
{
	arca_status st = arca_error_set(err, ARCA_ERR_NOTFOUND, "no upload '%.64s'", id);
	pthread_mutex_lock(&api->mu);
	for (size_t i = 0; i < ARCA_API_MAX_UPLOADS; i++) {
		arca_api_upload *u = &api->uploads[i];
		if (strcmp(u->id, id) != 0 || strcmp(u->owner, user) != 0)
			continue;
		if (u->busy) {
			st = arca_error_set(err, ARCA_ERR_STATE, "upload '%s' is still being written", id);
			break;
		}
		snprintf(path, psz, "%s", u->path);
		memset(u, 0, sizeof(*u));
		arca_error_clear(err);
		st = ARCA_OK;
		break;
	}
	pthread_mutex_unlock(&api->mu);
	return st;
}

void arca_api_uploads_clear(arca_api *api)
{
	pthread_mutex_lock(&api->mu);
	for (size_t i = 0; i < ARCA_API_MAX_UPLOADS; i++) {
		if (api->uploads[i].id[0])
			unlink(api->uploads[i].path);
		memset(&api->uploads[i], 0, sizeof(api->uploads[i]));
	}
	pthread_mutex_unlock(&api->mu);
}

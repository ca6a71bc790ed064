/* The command table, argument checking, the HTTP status mapping and docs/api.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/cmd.h"
#include "auth/users.h"
#include "lib/buf.h"
#include "lib/limits.h"

#define ADMIN ARCA_PRIV_ADMIN
#define S ARCA_API_STRING
#define I ARCA_API_INT
#define B ARCA_API_BOOL
#define L ARCA_API_STRINGS

/* clang-format off */
static const arca_api_cmd commands[] = {
    /* ---- server ---- */
    {"GetServerInfo", "Server", "Version of the server and who the caller is.", 0, "any user", 0,
     {{0}},
     "`{version, userName, privileges}`",
     arca_api_h_server_info, NULL},
    {"GetJobs", "Server", "Asynchronous jobs (queued, running and finished ones still kept).", 0,
     "any user (administrators see every job, others their own)", 0,
     {{0}},
     "array of `{token, command, userName, status, progress}`",
     arca_api_h_get_jobs, NULL},

    /* ---- users ---- */
    {"GetUsers", "Users", "All users of the instance, sorted by name.", ADMIN, "admin", 0,
     {{0}},
     "array of `{userName, fullName, emailAddresses, privileges, hasPassword}`",
     arca_api_h_get_users, NULL},
    {"GetUserInfo", "Users", "One user.", 0, "admin, or the user themself", 0,
     {{"userName", S, true, 0, ARCA_NAME_MAX - 1, "user name"}},
     "`{userName, fullName, emailAddresses, privileges, hasPassword, folderPrivileges}`",
     arca_api_h_get_user_info, NULL},
    {"CreateUser", "Users",
     "Creates a user and their archive (an archive carries its user's name).", ADMIN, "admin", 0,
     {{"userName", S, true, 0, ARCA_NAME_MAX - 1, "1-255 bytes, no '/' or control characters"},
      {"fullName", S, false, 0, 1024, "display name"},
      {"password", S, false, 0, 1024, "initial password (else the user cannot log in yet)"},
      {"privileges", S, false, 0, 256,
       "comma-separated: login, archive, read, export, delete, admin, or none "
       "(default: login,archive,read)"},
      {"emailAddresses", L, false, 0, 100, "e-mail addresses of the user"}},
     "`{userName, privileges}`",
     arca_api_h_create_user, NULL},
    {"DeleteUser", "Users",
     "Deletes a user (their archive and its messages stay; a user created later with the same "
     "name owns it again).", ADMIN, "admin", ARCA_API_USER_CHANGE,
     {{"userName", S, true, 0, ARCA_NAME_MAX - 1, "user name"}},
     "null",
     arca_api_h_delete_user, NULL},
    {"RenameUser", "Users",
     "Renames a user and their archive: messages, folders, UIDs and grants stay. The old name "
     "stays the archive's (recovery records written under it still reach it): no other user or "
     "archive may take it (error `exists`), but the user may be renamed back to it.",
     ADMIN, "admin", ARCA_API_USER_CHANGE,
     {{"oldUserName", S, true, 0, ARCA_NAME_MAX - 1, "current name"},
      {"newUserName", S, true, 0, ARCA_NAME_MAX - 1, "new name"}},
     "null",
     arca_api_h_rename_user, NULL},
    {"SetUserPassword", "Users",
     "Sets a user's password (Argon2id). Logins cached for the user and their sessions end.",
     ADMIN, "admin", ARCA_API_USER_CHANGE,
     {{"userName", S, true, 0, ARCA_NAME_MAX - 1, "user name"},
      {"password", S, true, 1, 1024, "new password (not empty)"}},
     "null",
     arca_api_h_set_user_password, NULL},
    {"SetUserInfo", "Users", "Sets a user's full name and/or e-mail addresses.", ADMIN, "admin", 0,
     {{"userName", S, true, 0, ARCA_NAME_MAX - 1, "user name"},
      {"fullName", S, false, 0, 1024, "display name"},
      {"emailAddresses", L, false, 0, 100, "replaces the user's addresses"}},
     "null",
     arca_api_h_set_user_info, NULL},
    {"SetUserPrivileges", "Users", "Sets a user's privileges on the instance.", ADMIN, "admin", 0,
     {{"userName", S, true, 0, ARCA_NAME_MAX - 1, "user name"},
      {"privileges", S, true, 0, 256,
       "comma-separated: login, archive, read, export, delete, admin, or none"}},
     "null",
     arca_api_h_set_user_privileges, NULL},
    {"SetUserPrivilegesOnFolder", "Users",
     "Grants (read) or revokes (none) a user's access to another archive or to one folder of it.",
     ADMIN, "admin", 0,
     {{"userName", S, true, 0, ARCA_NAME_MAX - 1, "user name"},
      {"folder", S, true, 0, ARCA_NAME_MAX + ARCA_FOLDER_MAX,
       "`ARCHIVE` (the whole archive) or `ARCHIVE/FOLDER/SUB`"},
      {"privileges", S, true, 0, 16, "`read` or `none`"}},
     "null",
     arca_api_h_set_user_privileges_on_folder, NULL},
    {"GetUserPrivilegesOnFolders", "Users", "The archives and folders a user was granted.", 0,
     "admin, or the user themself", 0,
     {{"userName", S, true, 0, ARCA_NAME_MAX - 1, "user name"}},
     "array of `{folder, privileges}`",
     arca_api_h_get_user_privileges_on_folders, NULL},

    /* ---- folders ---- */
    {"GetChildFolders", "Folders",
     "Archives (no folder given) or the sub-folders of a folder, with message counts. Users see "
     "the archives and folders they may read (and the folders leading to them).", 0,
     "any user", 0,
     {{"folder", S, false, 0, ARCA_NAME_MAX + ARCA_FOLDER_MAX,
       "`ARCHIVE` or `ARCHIVE/FOLDER`; absent or empty: the archives"},
      {"maxLevels", I, false, 1, 100, "levels below the folder to list (default 1)"}},
     "array of `{folder, name, messages, mayRead, hasChildren}`",
     arca_api_h_get_child_folders, NULL},
    {"GetFolderStatistics", "Folders", "Every archive with its message count and sizes.", ADMIN,
     "admin", 0,
     {{0}},
     "array of `{archive, messages, rawBytes, storedBytes, indexBytes}`",
     arca_api_h_get_folder_statistics, NULL},

    /* ---- messages ---- */
    {"Search", "Messages", "Full-text search (query language: docs/search.md).", 0,
     "any user: searches the archives (and folders) they may read", 0,
     {{"query", S, true, 0, ARCA_QUERY_MAX_LEN, "the query, e.g. `invoice from:acme after:2024`"},
      {"archives", L, false, 0, 64, "restrict to these archives (default: all the caller may read)"},
      {"order", S, false, 0, 16, "`newest` (default) or `relevance`"},
      {"offset", I, false, 0, 1000000, "hits to skip (default 0)"},
      {"limit", I, false, 1, ARCA_API_MAX_PAGE, "hits to return (default 50)"},
      {"snippets", B, false, 0, 0, "include a text excerpt per hit (default true)"}},
     "`{hits: [{id, date, from, subject, size, folders, snippet, rank?}], offset, limit}`",
     arca_api_h_search, NULL},
    {"GetMessages", "Messages", "The messages of one folder, newest first.", 0,
     "any user who may read the folder", 0,
     {{"folder", S, true, 0, ARCA_NAME_MAX + ARCA_FOLDER_MAX, "`ARCHIVE/FOLDER`"},
      {"offset", I, false, 0, 1000000, "messages to skip (default 0)"},
      {"limit", I, false, 1, ARCA_API_MAX_PAGE, "messages to return (default 50)"}},
     "`{messages: [{id, date, from, subject, size, folders}], offset, limit}`",
     arca_api_h_get_messages, NULL},
    {"GetMessage", "Messages",
     "One message: header fields, text, sanitised HTML, attachment list. The raw message and "
     "the attachments are downloads (see Downloads).", 0,
     "any user who may read one of the message's folders", 0,
     {{"id", S, true, 0, 64, "message id `STORE:N`"}},
     "`{id, size, date, subject, from, sender, replyTo, to, cc, bcc, messageId, headers: "
     "[{name, value}], text, html, textTruncated, htmlTruncated, attachments: [{index, filename, "
     "contentType, size, url}], rawUrl, folders}`",
     arca_api_h_get_message, NULL},
    {"Import", "Messages",
     "Imports messages from an upload (see Uploads) or from a path on the server. Commits every "
     "`batchSize` messages; a cancelled or failed import keeps what was committed, and running "
     "it again adds exactly the rest.", 0,
     "server path: admin; upload: admin, or a user with the archive privilege into their own "
     "archive", ARCA_API_ASYNC | ARCA_API_STORES_CHANGE,
     {{"archive", S, false, 0, ARCA_NAME_MAX - 1, "target archive (default: the caller's own)"},
      {"folder", S, false, 0, ARCA_FOLDER_MAX - 1,
       "target folder (default: the source's base name, `Import` for uploads)"},
      {"format", S, false, 0, 16, "`auto` (default), `eml`, `mbox`, `dir`, `maildir`"},
      {"path", S, false, 0, ARCA_PATH_MAX - 1, "a file or directory on the server"},
      {"upload", S, false, 0, ARCA_API_ID_HEX, "an upload id from POST /api/upload"},
      {"batchSize", I, false, 1, 100000, "messages per durable commit (default 1000)"}},
     "job; final result `{archived, newContent, duplicates, alreadyPresent, warnings, errors, "
     "bytes, batches, committed, seconds, complete}`",
     arca_api_h_import, arca_api_j_import},
    {"Export", "Messages",
     "Exports an archive, a folder or a search's hits. Without `path` the result is an mbox "
     "file to download from `/api/download/<token>`.", ARCA_PRIV_EXPORT,
     "users with the export privilege, from archives they may read; `path`: admin",
     ARCA_API_ASYNC,
     {{"archive", S, false, 0, ARCA_NAME_MAX - 1, "archive (required unless admin)"},
      {"folder", S, false, 0, ARCA_FOLDER_MAX - 1, "folder of the archive"},
      {"query", S, false, 0, ARCA_QUERY_MAX_LEN, "export the hits of this search instead"},
      {"format", S, false, 0, 16, "`mbox` (default) or `eml` (one file per message; needs path)"},
      {"path", S, false, 0, ARCA_PATH_MAX - 1, "target on the server (mbox file or eml directory)"}},
     "job; final result `{exported, bytes, failed, download?}`",
     arca_api_h_export, arca_api_j_export},

    /* ---- stores ---- */
    {"GetStores", "Stores", "Archive stores with their state, paths and statistics.", ADMIN,
     "admin", 0,
     {{0}},
     "array of `{id, name, requestedState, metaPath, contentPath, indexPath, messages, "
     "memberships, rawBytes, storedBytes, metaBytes, indexBytes, statsValid}`",
     arca_api_h_get_stores, NULL},
    {"CreateStore", "Stores", "Creates an archive store.", ADMIN, "admin",
     ARCA_API_SERIAL | ARCA_API_STORES_CHANGE,
     {{"name", S, false, 0, ARCA_NAME_MAX - 1, "display name"},
      {"metaPath", S, false, 0, ARCA_PATH_MAX - 1, "metadata directory (absolute or `~/`)"},
      {"contentPath", S, false, 0, ARCA_PATH_MAX - 1, "content directory"},
      {"indexPath", S, false, 0, ARCA_PATH_MAX - 1, "search index directory"},
      {"requestedState", S, false, 0, 32, "`normal` (default) or `current`"}},
     "`{id}`",
     NULL, arca_api_j_create_store},
    {"SetStoreRequestedState", "Stores", "Sets a store's state.", ADMIN, "admin",
     ARCA_API_SERIAL | ARCA_API_STORES_CHANGE,
     {{"id", I, true, 1, UINT32_MAX, "store id"},
      {"requestedState", S, true, 0, 32,
       "`current`, `normal`, `writeProtected` (or `write-protected`), `disabled`"}},
     "null",
     NULL, arca_api_j_set_store_state},
    {"VerifyStore", "Stores",
     "Checks every message of a store (or of all enabled stores) against its hash.", ADMIN,
     "admin", ARCA_API_ASYNC,
     {{"id", I, false, 1, UINT32_MAX, "store id (default: all enabled stores)"}},
     "job; final result `{checked, damagedCount, damaged: [{id, reason}]}`",
     NULL, arca_api_j_verify},
    {"RecreateStoreMetadata", "Stores",
     "Rebuilds a store's metadata database and its index from the recovery records in its "
     "containers (the reference product's RecreateRecoveryRecords goes the other way; Arca "
     "writes every recovery record with its message).", ADMIN, "admin",
     ARCA_API_ASYNC | ARCA_API_STORES_CHANGE,
     {{"id", I, true, 1, UINT32_MAX, "store id"}},
     "job; final result `{messages, skipped: [{id, reason}]}`",
     NULL, arca_api_j_recreate},
    {"RebuildStoreIndex", "Stores", "Rebuilds the search index of a store (or of all stores).",
     ADMIN, "admin", ARCA_API_ASYNC,
     {{"id", I, false, 1, UINT32_MAX, "store id (default: all stores)"}},
     "job; final result `{documents}`",
     NULL, arca_api_j_rebuild},
};
/* clang-format on */

const arca_api_cmd *arca_api_commands(size_t *n)
{
	*n = sizeof(commands) / sizeof(commands[0]);
	return commands;
}

const arca_api_cmd *arca_api_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* ---- parsing and checking ---- */

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "value";
}

static const char *type_name(arca_api_type t)
{
	switch (t) {
	case ARCA_API_STRING: return "a string";
	case ARCA_API_INT: return "an integer";
	case ARCA_API_BOOL: return "a boolean";
	case ARCA_API_STRINGS: return "an array of strings";
	}
	return "?";
}

static bool too_deep(json_t *v, unsigned depth)
{
	if (depth > ARCA_API_MAX_JSON_DEPTH)
		return true;
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) if (too_deep(x, depth + 1)) return true;
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) if (too_deep(x, depth + 1)) return true;
	}
	return false;
}

arca_status arca_api_parse_json(const void *body, size_t len, json_t **out, arca_error *err)
{
	json_error_t je;
	json_t *v;
	size_t i = 0;
	const char *p = body;
	*out = NULL;
	if (len > ARCA_API_MAX_BODY)
		return arca_error_set(err, ARCA_ERR_LIMIT, "request body larger than %u bytes",
		                      ARCA_API_MAX_BODY);
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i == len) {
		*out = json_object();
		return *out ? ARCA_OK : arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	v = json_loadb(p, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (v == NULL)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid JSON at line %d, column %d: %s",
		                      je.line, je.column, je.text);
	if (!json_is_object(v)) {
		arca_error_set(err, ARCA_ERR_INVALID,
		               "the request body must be a JSON object of named arguments, got %s",
		               json_type_name(v));
		json_decref(v);
		return ARCA_ERR_INVALID;
	}
	if (too_deep(v, 1)) {
		json_decref(v);
		return arca_error_set(err, ARCA_ERR_LIMIT, "JSON nested deeper than %u levels",
		                      ARCA_API_MAX_JSON_DEPTH);
	}
	*out = v;
	return ARCA_OK;
}

static arca_status check_string(const arca_api_arg *a, json_t *v, const char *what,
                                arca_error *err)
{
	size_t n = json_string_length(v), max = a->max > 0 ? (size_t)a->max : ARCA_API_MAX_STRING;
	if (max > ARCA_API_MAX_STRING)
		max = ARCA_API_MAX_STRING;
	if (memchr(json_string_value(v), '\0', n) != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "%s: contains a NUL character", what);
	if (n > max)
		return arca_error_set(err, ARCA_ERR_INVALID, "%s: longer than %zu bytes", what, max);
	if (a->min > 0 && n < (size_t)a->min)
		return arca_error_set(err, ARCA_ERR_INVALID, "%s: must not be empty", what);
	return ARCA_OK;
}

static arca_status check_one(const arca_api_arg *a, json_t *v, arca_error *err)
{
	char what[ARCA_NAME_MAX];
	snprintf(what, sizeof(what), "argument '%s'", a->name);
	switch (a->type) {
	case ARCA_API_STRING:
		if (!json_is_string(v))
			break;
		return check_string(a, v, what, err);
	case ARCA_API_INT:
		if (!json_is_integer(v))
			break;
		if (json_integer_value(v) < a->min || json_integer_value(v) > a->max)
			return arca_error_set(err, ARCA_ERR_INVALID, "%s: must be between %lld and %lld",
			                      what, (long long)a->min, (long long)a->max);
		return ARCA_OK;
	case ARCA_API_BOOL:
		if (!json_is_boolean(v))
			break;
		return ARCA_OK;
	case ARCA_API_STRINGS: {
		size_t max = a->max > 0 ? (size_t)a->max : ARCA_API_MAX_ARRAY, i;
		arca_api_arg elem = {a->name, ARCA_API_STRING, false, 0, 0, NULL};
		json_t *x;
		if (!json_is_array(v))
			break;
		if (json_array_size(v) > max)
			return arca_error_set(err, ARCA_ERR_INVALID, "%s: more than %zu elements", what, max);
		json_array_foreach(v, i, x)
		{
			char ewhat[ARCA_NAME_MAX + 32];
			if (!json_is_string(x))
				return arca_error_set(err, ARCA_ERR_INVALID,
				                      "%s: element %zu: expected a string, got %s", what, i,
				                      json_type_name(x));
			snprintf(ewhat, sizeof(ewhat), "%s: element %zu", what, i);
			if (check_string(&elem, x, ewhat, err) != ARCA_OK)
				return ARCA_ERR_INVALID;
		}
		return ARCA_OK;
	}
	}
	return arca_error_set(err, ARCA_ERR_INVALID, "%s: expected %s, got %s", what, type_name(a->type),
	                      json_type_name(v));
}

arca_status arca_api_check_args(const arca_api_cmd *c, json_t *args, arca_error *err)
{
	const char *key;
	json_t *v;
	if (!json_is_object(args))
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "the request body must be a JSON object of named arguments");
	json_object_foreach(args, key, v)
	{
		const arca_api_arg *a = NULL;
		for (size_t i = 0; i < ARCA_API_CMD_ARGS && c->args[i].name; i++)
			if (strcmp(c->args[i].name, key) == 0)
				a = &c->args[i];
		if (a == NULL) {
			/* keys may hold any bytes: show them only if printable and short */
			bool show = strlen(key) <= 64;
			for (const char *p = key; *p && show; p++)
				show = (unsigned char)*p >= 0x20 && *p != 0x7f && *p != '\'';
			if (show)
				return arca_error_set(err, ARCA_ERR_INVALID, "unknown argument '%s' for %s", key,
				                      c->name);
			return arca_error_set(err, ARCA_ERR_INVALID, "unknown argument for %s", c->name);
		}
		if (json_is_null(v) && !a->required)
			continue;
		if (json_is_null(v))
			return arca_error_set(err, ARCA_ERR_INVALID, "missing required argument '%s'", a->name);
		if (check_one(a, v, err) != ARCA_OK)
			return ARCA_ERR_INVALID;
	}
	for (size_t i = 0; i < ARCA_API_CMD_ARGS && c->args[i].name; i++) {
		json_t *x = json_object_get(args, c->args[i].name);
		if (c->args[i].required && (x == NULL || json_is_null(x)))
			return arca_error_set(err, ARCA_ERR_INVALID, "missing required argument '%s'",
			                      c->args[i].name);
	}
	return ARCA_OK;
}

arca_status arca_api_parse_args(const arca_api_cmd *c, const void *body, size_t len, json_t **out,
                                arca_error *err)
{
	json_t *v;
	arca_status st = arca_api_parse_json(body, len, &v, err);
	*out = NULL;
	if (st != ARCA_OK)
		return st;
	if ((st = arca_api_check_args(c, v, err)) != ARCA_OK) {
		json_decref(v);
		return st;
	}
	*out = v;
	return ARCA_OK;
}

/* ---- the one mapping to HTTP ---- */

int arca_api_http_status(int code)
{
	switch (code) {
	case ARCA_OK: return 200;
	case ARCA_ERR_INVALID:
	case ARCA_ERR_SYNTAX: return 400;
	case ARCA_ERR_NOTFOUND:
	case ARCA_API_E_NOROUTE:
	case ARCA_API_E_COMMAND: return 404;
	case ARCA_ERR_EXISTS:
	case ARCA_ERR_STATE: return 409;
	case ARCA_ERR_LIMIT:
	case ARCA_API_E_TOOBIG: return 413;
	case ARCA_API_E_AUTH: return 401;
	case ARCA_API_E_FORBIDDEN: return 403;
	case ARCA_API_E_METHOD: return 405;
	case ARCA_API_E_BUSY: return 503;
	case ARCA_ERR_NOSPACE: return 507;
	default: return 500;
	}
}

const char *arca_api_code_name(int code)
{
	switch (code) {
	case ARCA_API_E_AUTH: return "unauthorized";
	case ARCA_API_E_FORBIDDEN: return "forbidden";
	case ARCA_API_E_BUSY: return "busy";
	case ARCA_API_E_METHOD: return "method";
	case ARCA_API_E_NOROUTE: return "noroute";
	case ARCA_API_E_COMMAND: return "unknown_command";
	case ARCA_API_E_TOOBIG: return "toobig";
	default: return arca_status_name((arca_status)code);
	}
}

/* ---- documentation ---- */

static const char *priv_doc(uint32_t p)
{
	if (p == 0)
		return "";
	if (p == ARCA_PRIV_ADMIN)
		return "admin";
	if (p == ARCA_PRIV_EXPORT)
		return "export";
	return "?";
}

static void doc_escape(arca_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			arca_buf_appendz(b, "\\|");
		else
			arca_buf_append(b, s, 1);
	}
}

char *arca_api_doc_markdown(void)
{
	arca_buf b;
	const char *group = "";
	static const int codes[] = {ARCA_ERR_INVALID,    ARCA_ERR_SYNTAX,   ARCA_API_E_AUTH,
	                            ARCA_API_E_FORBIDDEN, ARCA_ERR_NOTFOUND, ARCA_API_E_NOROUTE,
	                            ARCA_API_E_COMMAND,  ARCA_API_E_METHOD, ARCA_ERR_EXISTS,
	                            ARCA_ERR_STATE,      ARCA_ERR_LIMIT,    ARCA_API_E_TOOBIG,
	                            ARCA_API_E_BUSY,     ARCA_ERR_NOSPACE,  ARCA_ERR_IO,
	                            ARCA_ERR_CORRUPT,    ARCA_ERR_CRYPTO,   ARCA_ERR_NOMEM,
	                            ARCA_ERR_DB};
	arca_buf_init(&b, 4u * 1024u * 1024u);
	arca_buf_appendz(&b, "## Errors\n\n`error.code` and the HTTP status (one mapping in "
	                     "src/api/cmdtab.c, `arca_api_http_status`):\n\n"
	                     "| code | HTTP status |\n| --- | --- |\n");
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		arca_buf_printf(&b, "| `%s` | %d |\n", arca_api_code_name(codes[i]),
		                arca_api_http_status(codes[i]));
	arca_buf_appendz(&b, "\n## Commands\n\n| command | access | kind |\n| --- | --- | --- |\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const arca_api_cmd *c = &commands[i];
		arca_buf_printf(&b, "| [%s](#%s) | %s | %s |\n", c->name, c->name, c->access,
		                (c->flags & ARCA_API_ASYNC)    ? "job (token)"
		                : (c->flags & ARCA_API_SERIAL) ? "job thread, waits"
		                                               : "immediate");
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const arca_api_cmd *c = &commands[i];
		const char *p = priv_doc(c->privilege);
		if (strcmp(group, c->group) != 0) {
			group = c->group;
			arca_buf_printf(&b, "\n## %s\n", group);
		}
		arca_buf_printf(&b, "\n### %s\n\n%s\n\n", c->name, c->summary);
		arca_buf_printf(&b, "- Access: %s%s%s%s\n", c->access, p[0] ? " (privilege `" : "", p,
		                p[0] ? "`)" : "");
		if (c->flags & ARCA_API_ASYNC)
			arca_buf_appendz(&b, "- Runs as a job: the call answers `202` with a token; poll "
			                     "`/api/get-status`, cancel with `/api/cancel-async`.\n");
		if (c->flags & ARCA_API_SERIAL)
			arca_buf_appendz(&b, "- Runs on the job thread and answers when done; `busy` (503) "
			                     "while another job runs.\n");
		arca_buf_printf(&b, "- Result: %s\n", c->result);
		if (c->args[0].name == NULL) {
			arca_buf_appendz(&b, "- Arguments: none\n");
			continue;
		}
		arca_buf_appendz(&b, "\n| argument | type | required | description |\n"
		                     "| --- | --- | --- | --- |\n");
		for (size_t k = 0; k < ARCA_API_CMD_ARGS && c->args[k].name; k++) {
			const arca_api_arg *a = &c->args[k];
			arca_buf_printf(&b, "| `%s` | %s", a->name,
			                a->type == ARCA_API_STRING  ? "string"
			                : a->type == ARCA_API_INT   ? "integer"
			                : a->type == ARCA_API_BOOL  ? "boolean"
			                                            : "array of strings");
			if (a->type == ARCA_API_INT)
				arca_buf_printf(&b, " %lld..%lld", (long long)a->min, (long long)a->max);
			arca_buf_printf(&b, " | %s | ", a->required ? "yes" : "no");
			doc_escape(&b, a->doc);
			arca_buf_appendz(&b, " |\n");
		}
	}
	return arca_buf_steal(&b, NULL);
}

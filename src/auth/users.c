/* Users, e-mail addresses, privileges, folder grants and Argon2id passwords, in the instance
 * database's own tables (users, user_emails, folder_grants). */
#include "auth/users.h"
#include "auth/users_int.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fs.h"
#include "lib/limits.h"
#include "lib/log.h"

/* Argon2id with libsodium's INTERACTIVE preset: t=2, m=64 MiB, p=1. That is above OWASP's
 * minimum (m=19 MiB, t=2, p=1) and costs about 0.12 s on this class of machine, so a login
 * stays fast while a guess costs an attacker 64 MiB of memory-hard work. Hashes made with
 * weaker parameters are upgraded at the next successful login. */
#define USERS_PW_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define USERS_PW_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

/* Verified instead of a real hash for unknown users and users without a password, so that
 * these cases take the time of a real check. The hash of 32 random bytes nobody kept, made
 * with the parameters above (a unit test checks they still match; if they did not, a dummy is
 * computed once per handle). */
const char auth_dummy_hash[crypto_pwhash_STRBYTES] =
    "$argon2id$v=19$m=65536,t=2,p=1$/o9VYgeKoF108oPXg8yHRg$IAg2Ds1PaEMLCthzMhXikafg7VXvYZPCshnYRloHwj0";

#define USERS_BUSY_TIMEOUT_MS 5000

static const char *users_schema =
    "BEGIN IMMEDIATE;"
    /* AUTOINCREMENT: ids are never reused, so a stale session id never names a new user */
    "CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE, full_name TEXT NOT NULL DEFAULT '',"
    " privileges INTEGER NOT NULL, password TEXT, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS user_emails(user_id INTEGER NOT NULL, email TEXT NOT NULL UNIQUE,"
    " PRIMARY KEY(user_id, email));"
    "CREATE TABLE IF NOT EXISTS folder_grants(user_id INTEGER NOT NULL, archive TEXT NOT NULL,"
    " folder TEXT NOT NULL, access INTEGER NOT NULL, PRIMARY KEY(user_id, archive, folder));"
    "CREATE INDEX IF NOT EXISTS folder_grants_archive ON folder_grants(archive);"
    "COMMIT;";

struct arca_users {
	sqlite3 *db;
	char dummy[crypto_pwhash_STRBYTES]; /* used only if auth_dummy_hash is outdated */
	bool dummy_ready;
};

static const struct {
	uint32_t bit;
	const char *name;
} priv_names[] = {
	{ARCA_PRIV_LOGIN, "login"},   {ARCA_PRIV_ARCHIVE_OWN, "archive"}, {ARCA_PRIV_READ_OWN, "read"},
	{ARCA_PRIV_EXPORT, "export"}, {ARCA_PRIV_DELETE, "delete"},       {ARCA_PRIV_ADMIN, "admin"},
};

/* ---- helpers ---- */

static arca_status db_err(arca_users *u, arca_error *err, const char *what)
{
	int code = sqlite3_errcode(u->db);
	if (code == SQLITE_FULL)
		return arca_error_set(err, ARCA_ERR_NOSPACE, "%s: disk full (%s)", what,
		                      sqlite3_errmsg(u->db));
	return arca_error_set(err, ARCA_ERR_DB, "%s: %s", what, sqlite3_errmsg(u->db));
}

static arca_status prep(arca_users *u, const char *sql, sqlite3_stmt **st, arca_error *err)
{
	if (sqlite3_prepare_v2(u->db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return db_err(u, err, "users database");
	}
	return ARCA_OK;
}

/* Runs a statement that returns no rows; on failure reports it and finalizes. */
static arca_status step_done(arca_users *u, sqlite3_stmt *st, const char *what, arca_error *err)
{
	int rc = sqlite3_step(st);
	arca_status s = ARCA_OK;
	if (rc != SQLITE_DONE)
		s = db_err(u, err, what);
	sqlite3_finalize(st);
	return s;
}

static arca_status tx_begin(arca_users *u, arca_error *err)
{
	/* IMMEDIATE: take the write lock now (waiting up to the busy timeout) rather than fail
	 * with SQLITE_BUSY when a read transaction would have to be upgraded */
	if (sqlite3_exec(u->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_err(u, err, "users database: begin");
	return ARCA_OK;
}

static arca_status tx_end(arca_users *u, arca_status s, arca_error *err)
{
	if (s == ARCA_OK && sqlite3_exec(u->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		s = db_err(u, err, "users database: commit");
	if (s != ARCA_OK && !sqlite3_get_autocommit(u->db))
		sqlite3_exec(u->db, "ROLLBACK", NULL, NULL, NULL);
	return s;
}

/* Length of the UTF-8 sequence at s (which has n bytes left), 0 if malformed (overlong,
 * surrogate, beyond U+10FFFF, truncated); *cp receives the code point. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		len = 2, c &= 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, c &= 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Checks text from outside: at most max-1 bytes, no control characters (C0, DEL), and if utf8
 * is set valid UTF-8 without C1 controls either. what names the value in the message, e.g.
 * "user name". */
static arca_status check_text(const char *s, size_t max, const char *what, bool allow_empty,
                              bool utf8, arca_error *err)
{
	size_t n;
	if (s == NULL || s[0] == '\0') {
		if (allow_empty && s != NULL)
			return ARCA_OK;
		return arca_error_set(err, ARCA_ERR_INVALID, "%s must not be empty", what);
	}
	n = strlen(s);
	if (n >= max)
		return arca_error_set(err, ARCA_ERR_INVALID, "%s is longer than %zu bytes", what,
		                      max - 1);
	for (size_t i = 0; i < n;) {
		uint32_t cp = (unsigned char)s[i];
		size_t l = utf8 ? utf8_seq((const unsigned char *)s + i, n - i, &cp) : 1;
		if (l == 0)
			return arca_error_set(err, ARCA_ERR_INVALID, "%s is not valid UTF-8", what);
		if (cp < 0x20 || cp == 0x7f || (utf8 && cp >= 0x80 && cp < 0xa0))
			return arca_error_set(err, ARCA_ERR_INVALID,
			                      "%s must not contain control characters", what);
		i += l;
	}
	return ARCA_OK;
}

static arca_status check_name(const char *name, arca_error *err)
{
	arca_status s = check_text(name, ARCA_NAME_MAX, "user name", false, true, err);
	if (s != ARCA_OK)
		return s;
	if (strchr(name, '/') != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "user name must not contain '/'");
	if (name[0] == '$')
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "user name must not start with '$' (reserved for service accounts)");
	return ARCA_OK;
}

/* Archive names and folder paths follow the archive module's rules (src/archive/instance.c),
 * which do not require UTF-8: whatever it stores can be granted. */
static arca_status check_archive(const char *archive, arca_error *err)
{
	arca_status s = check_text(archive, ARCA_NAME_MAX, "archive name", false, false, err);
	if (s != ARCA_OK)
		return s;
	if (strchr(archive, '/') != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "archive name must not contain '/'");
	return ARCA_OK;
}

/* "" (whole archive) or names separated by single '/', as the archive module stores them. */
static arca_status check_folder(const char *folder, arca_error *err)
{
	size_t n;
	arca_status s = check_text(folder, ARCA_FOLDER_MAX, "folder path", true, false, err);
	if (s != ARCA_OK || folder[0] == '\0')
		return s;
	n = strlen(folder);
	if (folder[0] == '/' || folder[n - 1] == '/' || strstr(folder, "//") != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "folder path must be names separated by single '/'");
	return ARCA_OK;
}

static arca_status check_privileges(uint32_t privileges, arca_error *err)
{
	if (privileges & ~(uint32_t)ARCA_PRIV_ALL)
		return arca_error_set(err, ARCA_ERR_INVALID, "unknown privilege bits 0x%x",
		                      privileges & ~(uint32_t)ARCA_PRIV_ALL);
	return ARCA_OK;
}

/* Lower-cases (ASCII) and checks one address into out (ARCA_EMAIL_MAX bytes). */
static arca_status norm_email(const char *in, char *out, arca_error *err)
{
	const char *at;
	size_t n;
	arca_status s = check_text(in, ARCA_EMAIL_MAX, "email address", false, true, err);
	if (s != ARCA_OK)
		return s;
	n = strlen(in);
	at = strrchr(in, '@');
	if (at == NULL || at == in || at[1] == '\0')
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "email address '%s' is not of the form local@domain", in);
	if (strpbrk(in, " <>,;\"\\") != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "email address '%s' contains a space or one of <>,;\"\\", in);
	for (size_t i = 0; i <= n; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
	return ARCA_OK;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return strdup(t ? (const char *)t : "");
}

/* The id of user name, ARCA_ERR_NOTFOUND if none. privileges may be NULL. */
static arca_status user_lookup(arca_users *u, const char *name, int64_t *id, uint32_t *privileges,
                               arca_error *err)
{
	sqlite3_stmt *st;
	int rc;
	arca_status s = prep(u, "SELECT id, privileges FROM users WHERE name = ?", &st, err);
	if (s != ARCA_OK)
		return s;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		if (privileges != NULL)
			*privileges = (uint32_t)sqlite3_column_int64(st, 1);
	} else if (rc == SQLITE_DONE) {
		s = arca_error_set(err, ARCA_ERR_NOTFOUND, "no user '%s'", name);
	} else {
		s = db_err(u, err, "users");
	}
	sqlite3_finalize(st);
	return s;
}

/* ---- open, close ---- */

static bool tables_exist(arca_users *u)
{
	sqlite3_stmt *st;
	bool yes = false;
	if (sqlite3_prepare_v2(u->db,
	                       "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
	                       "name IN ('users', 'user_emails', 'folder_grants')",
	                       -1, &st, NULL) != SQLITE_OK)
		return false;
	if (sqlite3_step(st) == SQLITE_ROW)
		yes = sqlite3_column_int(st, 0) == 3;
	sqlite3_finalize(st);
	return yes;
}

arca_status arca_users_open(const char *base, arca_users **out, arca_error *err)
{
	char path[ARCA_PATH_MAX];
	arca_users *u;
	*out = NULL;
	if (sodium_init() < 0)
		return arca_error_set(err, ARCA_ERR_CRYPTO, "libsodium initialisation failed");
	if (arca_fs_join(path, sizeof(path), base, "instance.db") != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_LIMIT, "base path too long");
	if (!arca_fs_exists(path))
		return arca_error_set(err, ARCA_ERR_NOTFOUND,
		                      "%s is not an Arca instance (no instance.db; run arcactl init)",
		                      base);
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	if (sqlite3_open_v2(path, &u->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		arca_status s = arca_error_set(err, ARCA_ERR_DB, "cannot open %s: %s", path,
		                               u->db ? sqlite3_errmsg(u->db) : "out of memory");
		arca_users_close(&u);
		return s;
	}
	/* several threads and processes (API, IMAP, jobs) share this database */
	sqlite3_busy_timeout(u->db, USERS_BUSY_TIMEOUT_MS);
	sqlite3_exec(u->db, "PRAGMA synchronous=FULL;", NULL, NULL, NULL);
	/* only the first open writes the schema, so later opens need no write lock */
	if (!tables_exist(u) && sqlite3_exec(u->db, users_schema, NULL, NULL, NULL) != SQLITE_OK) {
		arca_status s = db_err(u, err, "cannot create the user tables");
		if (!sqlite3_get_autocommit(u->db))
			sqlite3_exec(u->db, "ROLLBACK", NULL, NULL, NULL);
		arca_users_close(&u);
		return s;
	}
	*out = u;
	return ARCA_OK;
}

void arca_users_close(arca_users **u)
{
	if (u == NULL || *u == NULL)
		return;
	sqlite3_close_v2((*u)->db);
	sodium_memzero((*u)->dummy, sizeof((*u)->dummy));
	free(*u);
	*u = NULL;
}

/* ---- users ---- */

arca_status arca_users_create(arca_users *u, const char *name, const char *full_name,
                              uint32_t privileges, arca_error *err)
{
	sqlite3_stmt *st;
	arca_status s;
	int rc;
	if (full_name == NULL)
		full_name = "";
	if ((s = check_name(name, err)) != ARCA_OK ||
	    (s = check_text(full_name, ARCA_NAME_MAX, "full name", true, true, err)) != ARCA_OK ||
	    (s = check_privileges(privileges, err)) != ARCA_OK)
		return s;
	s = prep(u,
	         "INSERT INTO users(name, full_name, privileges, created) "
	         "VALUES(?, ?, ?, strftime('%s', 'now'))",
	         &st, err);
	if (s != ARCA_OK)
		return s;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, full_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, privileges);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT)
		s = arca_error_set(err, ARCA_ERR_EXISTS, "user '%s' already exists", name);
	else if (rc != SQLITE_DONE)
		s = db_err(u, err, "cannot create user");
	sqlite3_finalize(st);
	return s;
}

/* Runs sql (binding ?1 = id) inside the caller's transaction. */
static arca_status exec_id(arca_users *u, const char *sql, int64_t id, const char *what,
                           arca_error *err)
{
	sqlite3_stmt *st;
	arca_status s = prep(u, sql, &st, err);
	if (s != ARCA_OK)
		return s;
	sqlite3_bind_int64(st, 1, id);
	return step_done(u, st, what, err);
}

arca_status arca_users_delete(arca_users *u, const char *name, arca_error *err)
{
	int64_t id;
	arca_status s;
	if ((s = check_name(name, err)) != ARCA_OK || (s = tx_begin(u, err)) != ARCA_OK)
		return s;
	s = user_lookup(u, name, &id, NULL, err);
	if (s == ARCA_OK)
		s = exec_id(u, "DELETE FROM folder_grants WHERE user_id = ?1", id, "delete user", err);
	if (s == ARCA_OK)
		s = exec_id(u, "DELETE FROM user_emails WHERE user_id = ?1", id, "delete user", err);
	if (s == ARCA_OK)
		s = exec_id(u, "DELETE FROM users WHERE id = ?1", id, "delete user", err);
	return tx_end(u, s, err);
}

arca_status arca_users_rename(arca_users *u, const char *old_name, const char *new_name,
                              arca_error *err)
{
	sqlite3_stmt *st;
	int64_t id;
	arca_status s;
	int rc;
	if ((s = check_name(old_name, err)) != ARCA_OK || (s = check_name(new_name, err)) != ARCA_OK ||
	    (s = tx_begin(u, err)) != ARCA_OK)
		return s;
	s = user_lookup(u, old_name, &id, NULL, err);
	if (s != ARCA_OK || strcmp(old_name, new_name) == 0)
		return tx_end(u, s, err);
	if ((s = prep(u, "UPDATE users SET name = ? WHERE id = ?", &st, err)) != ARCA_OK)
		return tx_end(u, s, err);
	sqlite3_bind_text(st, 1, new_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT)
		s = arca_error_set(err, ARCA_ERR_EXISTS, "user '%s' already exists", new_name);
	else if (rc != SQLITE_DONE)
		s = db_err(u, err, "cannot rename user");
	sqlite3_finalize(st);
	/* grants on the archive follow its name; a grant already held on new_name (an archive
	 * left behind by a deleted user) is the same read access, so the two merge */
	for (int i = 0; i < 2 && s == ARCA_OK; i++) {
		static const char *sql[2] = {
		    "UPDATE OR IGNORE folder_grants SET archive = ?2 WHERE archive = ?1",
		    "DELETE FROM folder_grants WHERE archive = ?1",
		};
		if ((s = prep(u, sql[i], &st, err)) != ARCA_OK)
			break;
		sqlite3_bind_text(st, 1, old_name, -1, SQLITE_STATIC);
		if (i == 0)
			sqlite3_bind_text(st, 2, new_name, -1, SQLITE_STATIC);
		s = step_done(u, st, "cannot rename user", err);
	}
	return tx_end(u, s, err);
}

void arca_user_free_fields(arca_user *user)
{
	if (user == NULL)
		return;
	free(user->name);
	free(user->full_name);
	for (size_t i = 0; i < user->n_emails; i++)
		free(user->emails[i]);
	free(user->emails);
	memset(user, 0, sizeof(*user));
}

/* Fills out->emails from a prepared "SELECT email ... WHERE user_id = ?" statement. */
static arca_status load_emails(arca_users *u, sqlite3_stmt *st, arca_user *out, arca_error *err)
{
	size_t cap = 0;
	int rc;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, out->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char *e;
		if (out->n_emails == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			char **ne = realloc(out->emails, ncap * sizeof(*ne));
			if (ne == NULL)
				return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			out->emails = ne;
			cap = ncap;
		}
		if ((e = col_dup(st, 0)) == NULL)
			return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		out->emails[out->n_emails++] = e;
	}
	if (rc != SQLITE_DONE)
		return db_err(u, err, "user email addresses");
	return ARCA_OK;
}

#define USER_COLUMNS "SELECT id, name, full_name, privileges, password IS NOT NULL FROM users "
#define EMAILS_SQL "SELECT email FROM user_emails WHERE user_id = ? ORDER BY email"

static arca_status user_from_row(sqlite3_stmt *st, arca_user *out, arca_error *err)
{
	memset(out, 0, sizeof(*out));
	out->id = (uint32_t)sqlite3_column_int64(st, 0);
	out->name = col_dup(st, 1);
	out->full_name = col_dup(st, 2);
	out->privileges = (uint32_t)sqlite3_column_int64(st, 3);
	out->has_password = sqlite3_column_int(st, 4) != 0;
	if (out->name == NULL || out->full_name == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	return ARCA_OK;
}

arca_status arca_users_get(arca_users *u, const char *name, arca_user *out, arca_error *err)
{
	sqlite3_stmt *st, *em = NULL;
	arca_status s;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((s = check_name(name, err)) != ARCA_OK)
		return s;
	/* one read transaction, so the user and their addresses are one snapshot */
	if (sqlite3_exec(u->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return db_err(u, err, "users database: begin");
	if ((s = prep(u, USER_COLUMNS "WHERE name = ?", &st, err)) != ARCA_OK)
		return tx_end(u, s, err);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		s = user_from_row(st, out, err);
	else if (rc == SQLITE_DONE)
		s = arca_error_set(err, ARCA_ERR_NOTFOUND, "no user '%s'", name);
	else
		s = db_err(u, err, "users");
	sqlite3_finalize(st);
	if (s == ARCA_OK && (s = prep(u, EMAILS_SQL, &em, err)) == ARCA_OK)
		s = load_emails(u, em, out, err);
	sqlite3_finalize(em);
	s = tx_end(u, s, err);
	if (s != ARCA_OK)
		arca_user_free_fields(out);
	return s;
}

void arca_users_list_free(arca_user *users, size_t n)
{
	for (size_t i = 0; i < n; i++)
		arca_user_free_fields(&users[i]);
	free(users);
}

arca_status arca_users_list(arca_users *u, arca_user **out, size_t *n, arca_error *err)
{
	sqlite3_stmt *st = NULL, *em = NULL;
	arca_user *list = NULL;
	size_t cnt = 0, cap = 0;
	arca_status s;
	int rc = SQLITE_DONE;
	*out = NULL;
	*n = 0;
	if (sqlite3_exec(u->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return db_err(u, err, "users database: begin");
	/* BINARY collation: sorted by the bytes of the name */
	if ((s = prep(u, USER_COLUMNS "ORDER BY name", &st, err)) != ARCA_OK ||
	    (s = prep(u, EMAILS_SQL, &em, err)) != ARCA_OK)
		goto done;
	while (s == ARCA_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			arca_user *nl = realloc(list, ncap * sizeof(*nl));
			if (nl == NULL) {
				s = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
				break;
			}
			list = nl;
			cap = ncap;
		}
		s = user_from_row(st, &list[cnt], err);
		cnt++;
		if (s == ARCA_OK)
			s = load_emails(u, em, &list[cnt - 1], err);
	}
	if (s == ARCA_OK && rc != SQLITE_DONE)
		s = db_err(u, err, "users");
done:
	sqlite3_finalize(st);
	sqlite3_finalize(em);
	s = tx_end(u, s, err);
	if (s != ARCA_OK) {
		arca_users_list_free(list, cnt);
		return s;
	}
	*out = list;
	*n = cnt;
	return ARCA_OK;
}

/* UPDATE users SET <column> = ?1 WHERE name = ?2, NOTFOUND if no row changed. */
static arca_status update_user(arca_users *u, const char *sql, const char *name, const char *text,
                               int64_t num, arca_error *err)
{
	sqlite3_stmt *st;
	arca_status s = prep(u, sql, &st, err);
	if (s != ARCA_OK)
		return s;
	if (text != NULL)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, num);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	s = step_done(u, st, "cannot update user", err);
	if (s == ARCA_OK && sqlite3_changes(u->db) == 0)
		s = arca_error_set(err, ARCA_ERR_NOTFOUND, "no user '%s'", name);
	return s;
}

arca_status arca_users_set_full_name(arca_users *u, const char *name, const char *full_name,
                                     arca_error *err)
{
	arca_status s;
	if (full_name == NULL)
		full_name = "";
	if ((s = check_name(name, err)) != ARCA_OK ||
	    (s = check_text(full_name, ARCA_NAME_MAX, "full name", true, true, err)) != ARCA_OK)
		return s;
	return update_user(u, "UPDATE users SET full_name = ?1 WHERE name = ?2", name, full_name, 0,
	                   err);
}

arca_status arca_users_set_privileges(arca_users *u, const char *name, uint32_t privileges,
                                      arca_error *err)
{
	arca_status s;
	if ((s = check_name(name, err)) != ARCA_OK || (s = check_privileges(privileges, err)) != ARCA_OK)
		return s;
	return update_user(u, "UPDATE users SET privileges = ?1 WHERE name = ?2", name, NULL,
	                   privileges, err);
}

/* Inserts one normalised address for user id, refusing one that belongs to another user. */
static arca_status add_email(arca_users *u, int64_t id, const char *email, arca_error *err)
{
	sqlite3_stmt *st;
	arca_status s = prep(u,
	                     "SELECT u.name FROM user_emails e JOIN users u ON u.id = e.user_id "
	                     "WHERE e.email = ? AND e.user_id != ?",
	                     &st, err);
	int rc;
	if (s != ARCA_OK)
		return s;
	sqlite3_bind_text(st, 1, email, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		s = arca_error_set(err, ARCA_ERR_EXISTS, "email address '%s' already belongs to user '%s'",
		                   email, (const char *)sqlite3_column_text(st, 0));
	else if (rc != SQLITE_DONE)
		s = db_err(u, err, "user email addresses");
	sqlite3_finalize(st);
	if (s != ARCA_OK)
		return s;
	/* OR IGNORE: the same address twice in one list is kept once */
	if ((s = prep(u, "INSERT OR IGNORE INTO user_emails(user_id, email) VALUES(?, ?)", &st, err)) !=
	    ARCA_OK)
		return s;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
	return step_done(u, st, "cannot set email address", err);
}

arca_status arca_users_set_emails(arca_users *u, const char *name, const char *const *emails,
                                  size_t n, arca_error *err)
{
	char email[ARCA_EMAIL_MAX];
	int64_t id;
	arca_status s;
	if ((s = check_name(name, err)) != ARCA_OK)
		return s;
	if (n > ARCA_USER_MAX_EMAILS)
		return arca_error_set(err, ARCA_ERR_LIMIT, "more than %u email addresses for one user",
		                      ARCA_USER_MAX_EMAILS);
	for (size_t i = 0; i < n; i++)
		if ((s = norm_email(emails[i], email, err)) != ARCA_OK)
			return s;
	if ((s = tx_begin(u, err)) != ARCA_OK)
		return s;
	s = user_lookup(u, name, &id, NULL, err);
	if (s == ARCA_OK)
		s = exec_id(u, "DELETE FROM user_emails WHERE user_id = ?1", id, "cannot set email address",
		            err);
	for (size_t i = 0; i < n && s == ARCA_OK; i++) {
		norm_email(emails[i], email, NULL);
		s = add_email(u, id, email, err);
	}
	return tx_end(u, s, err);
}

arca_status arca_users_find_email(arca_users *u, const char *email, char **name, arca_error *err)
{
	char norm[ARCA_EMAIL_MAX];
	sqlite3_stmt *st;
	arca_status s;
	int rc;
	*name = NULL;
	if ((s = norm_email(email, norm, err)) != ARCA_OK)
		return s;
	s = prep(u, "SELECT u.name FROM user_emails e JOIN users u ON u.id = e.user_id WHERE e.email = ?",
	         &st, err);
	if (s != ARCA_OK)
		return s;
	sqlite3_bind_text(st, 1, norm, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if ((*name = col_dup(st, 0)) == NULL)
			s = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		s = arca_error_set(err, ARCA_ERR_NOTFOUND, "no user has the email address '%s'", norm);
	} else {
		s = db_err(u, err, "user email addresses");
	}
	sqlite3_finalize(st);
	return s;
}

/* ---- privileges ---- */

const char *arca_priv_name(uint32_t bit)
{
	for (size_t i = 0; i < sizeof(priv_names) / sizeof(priv_names[0]); i++)
		if (priv_names[i].bit == bit)
			return priv_names[i].name;
	return NULL;
}

arca_status arca_priv_parse(const char *name, uint32_t *bit)
{
	for (size_t i = 0; name != NULL && i < sizeof(priv_names) / sizeof(priv_names[0]); i++) {
		if (strcmp(priv_names[i].name, name) == 0) {
			*bit = priv_names[i].bit;
			return ARCA_OK;
		}
	}
	return ARCA_ERR_INVALID;
}

/* ---- folder grants ---- */

/* Whether an archive of that name exists, or will (a user's archive appears at its first
 * message). */
static arca_status archive_known(arca_users *u, const char *archive, arca_error *err)
{
	sqlite3_stmt *st;
	int rc;
	arca_status s = prep(u,
	                     "SELECT 1 FROM archives WHERE name = ?1 "
	                     "UNION ALL SELECT 1 FROM users WHERE name = ?1",
	                     &st, err);
	if (s != ARCA_OK)
		return s;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		s = arca_error_set(err, ARCA_ERR_NOTFOUND, "no archive '%s'", archive);
	else if (rc != SQLITE_ROW)
		s = db_err(u, err, "archives");
	sqlite3_finalize(st);
	return s;
}

/* Grants user id holds other than the one on (archive, folder). */
static arca_status grant_count(arca_users *u, int64_t id, const char *archive, const char *folder,
                               int64_t *cnt, arca_error *err)
{
	sqlite3_stmt *st;
	arca_status s = prep(u,
	                     "SELECT count(*) FROM folder_grants WHERE user_id = ? AND "
	                     "NOT (archive = ? AND folder = ?)",
	                     &st, err);
	if (s != ARCA_OK)
		return s;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, folder, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		*cnt = sqlite3_column_int64(st, 0);
	else
		s = db_err(u, err, "folder grants");
	sqlite3_finalize(st);
	return s;
}

arca_status arca_users_set_folder_access(arca_users *u, const char *name, const char *archive,
                                         const char *folder, arca_access access, arca_error *err)
{
	sqlite3_stmt *st;
	int64_t id, cnt = 0;
	arca_status s;
	if (folder == NULL)
		folder = "";
	if ((s = check_name(name, err)) != ARCA_OK || (s = check_archive(archive, err)) != ARCA_OK ||
	    (s = check_folder(folder, err)) != ARCA_OK)
		return s;
	if (access != ARCA_ACCESS_NONE && access != ARCA_ACCESS_READ)
		return arca_error_set(err, ARCA_ERR_INVALID, "unknown access level %d", (int)access);
	if ((s = tx_begin(u, err)) != ARCA_OK)
		return s;
	s = user_lookup(u, name, &id, NULL, err);
	if (s == ARCA_OK && access == ARCA_ACCESS_NONE) {
		/* revoking what is not granted is not an error: the result is the same */
		s = prep(u, "DELETE FROM folder_grants WHERE user_id = ? AND archive = ? AND folder = ?",
		         &st, err);
	} else if (s == ARCA_OK) {
		if ((s = archive_known(u, archive, err)) == ARCA_OK &&
		    (s = grant_count(u, id, archive, folder, &cnt, err)) == ARCA_OK && cnt >= ARCA_USER_MAX_GRANTS)
			s = arca_error_set(err, ARCA_ERR_LIMIT, "user '%s' has %u folder grants already",
			                   name, ARCA_USER_MAX_GRANTS);
		if (s == ARCA_OK)
			s = prep(u,
			         "INSERT OR REPLACE INTO folder_grants(user_id, archive, folder, access) "
			         "VALUES(?, ?, ?, ?)",
			         &st, err);
	}
	if (s != ARCA_OK)
		return tx_end(u, s, err);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, folder, -1, SQLITE_STATIC);
	if (access != ARCA_ACCESS_NONE)
		sqlite3_bind_int(st, 4, (int)access);
	s = step_done(u, st, "cannot set folder access", err);
	return tx_end(u, s, err);
}

void arca_folder_grants_free(arca_folder_grant *g, size_t n)
{
	for (size_t i = 0; g != NULL && i < n; i++) {
		free(g[i].archive);
		free(g[i].folder);
	}
	free(g);
}

arca_status arca_users_folder_grants(arca_users *u, const char *name, arca_folder_grant **out,
                                     size_t *n, arca_error *err)
{
	sqlite3_stmt *st = NULL;
	arca_folder_grant *g = NULL;
	size_t cnt = 0, cap = 0;
	int64_t id;
	arca_status s;
	int rc = SQLITE_DONE;
	*out = NULL;
	*n = 0;
	if ((s = check_name(name, err)) != ARCA_OK)
		return s;
	if (sqlite3_exec(u->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return db_err(u, err, "users database: begin");
	if ((s = user_lookup(u, name, &id, NULL, err)) != ARCA_OK ||
	    (s = prep(u,
	              "SELECT archive, folder, access FROM folder_grants WHERE user_id = ? "
	              "ORDER BY archive, folder",
	              &st, err)) != ARCA_OK)
		return tx_end(u, s, err);
	sqlite3_bind_int64(st, 1, id);
	while (s == ARCA_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			arca_folder_grant *ng = realloc(g, ncap * sizeof(*ng));
			if (ng == NULL) {
				s = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
				break;
			}
			g = ng;
			cap = ncap;
		}
		g[cnt].archive = col_dup(st, 0);
		g[cnt].folder = col_dup(st, 1);
		g[cnt].access = (arca_access)sqlite3_column_int(st, 2);
		if (g[cnt++].archive == NULL || g[cnt - 1].folder == NULL)
			s = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	if (s == ARCA_OK && rc != SQLITE_DONE)
		s = db_err(u, err, "folder grants");
	sqlite3_finalize(st);
	s = tx_end(u, s, err);
	if (s != ARCA_OK) {
		arca_folder_grants_free(g, cnt);
		return s;
	}
	*out = g;
	*n = cnt;
	return ARCA_OK;
}

/* Whether a grant on folder path g covers folder f: the whole archive, f itself, or a parent
 * of f ("Inbox" covers "Inbox/Sub", not "Inbox2"). */
static bool grant_covers(const char *g, const char *f)
{
	size_t n = strlen(g);
	return n == 0 || (strncmp(g, f, n) == 0 && (f[n] == '\0' || f[n] == '/'));
}

arca_status arca_users_may_read(arca_users *u, const char *name, const char *archive,
                                const char *folder, bool *may, arca_error *err)
{
	sqlite3_stmt *st = NULL;
	uint32_t priv = 0;
	int64_t id;
	arca_status s;
	int rc;
	*may = false;
	if (folder == NULL)
		folder = "";
	if ((s = check_name(name, err)) != ARCA_OK || (s = check_archive(archive, err)) != ARCA_OK ||
	    (s = check_folder(folder, err)) != ARCA_OK)
		return s;
	if (sqlite3_exec(u->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return db_err(u, err, "users database: begin");
	if ((s = user_lookup(u, name, &id, &priv, err)) != ARCA_OK)
		return tx_end(u, s, err);
	if ((priv & ARCA_PRIV_ADMIN) || ((priv & ARCA_PRIV_READ_OWN) && strcmp(name, archive) == 0)) {
		*may = true;
		return tx_end(u, s, err);
	}
	s = prep(u,
	         "SELECT folder FROM folder_grants WHERE user_id = ? AND archive = ? AND access >= ?",
	         &st, err);
	if (s != ARCA_OK)
		return tx_end(u, s, err);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, archive, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, ARCA_ACCESS_READ);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *g = (const char *)sqlite3_column_text(st, 0);
		if (g != NULL && grant_covers(g, folder)) {
			*may = true;
			break;
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		s = db_err(u, err, "folder grants");
	sqlite3_finalize(st);
	if (s != ARCA_OK)
		*may = false;
	return tx_end(u, s, err);
}

/* ---- passwords ---- */

static arca_status hash_password(const char *password, size_t len, char out[crypto_pwhash_STRBYTES],
                                 arca_error *err)
{
	if (crypto_pwhash_str_alg(out, password, len, USERS_PW_OPSLIMIT, USERS_PW_MEMLIMIT,
	                          crypto_pwhash_ALG_ARGON2ID13) != 0)
		return arca_error_set(err, ARCA_ERR_NOMEM, "password hashing failed (out of memory)");
	return ARCA_OK;
}

arca_status arca_users_set_password(arca_users *u, const char *name, const char *password,
                                    arca_error *err)
{
	char hash[crypto_pwhash_STRBYTES];
	int64_t id;
	size_t len;
	arca_status s;
	if ((s = check_name(name, err)) != ARCA_OK)
		return s;
	len = password ? strlen(password) : 0;
	if (len == 0)
		return arca_error_set(err, ARCA_ERR_INVALID, "password must not be empty");
	if (len > ARCA_PASSWORD_MAX)
		return arca_error_set(err, ARCA_ERR_LIMIT, "password is longer than %u bytes",
		                      ARCA_PASSWORD_MAX);
	/* fail fast for an unknown user before spending the hashing time */
	if ((s = user_lookup(u, name, &id, NULL, err)) != ARCA_OK)
		return s;
	if ((s = hash_password(password, len, hash, err)) != ARCA_OK)
		return s;
	s = update_user(u, "UPDATE users SET password = ?1 WHERE name = ?2", name, hash, 0, err);
	sodium_memzero(hash, sizeof(hash));
	return s;
}

static const char *dummy_hash(arca_users *u)
{
	if (crypto_pwhash_str_needs_rehash(auth_dummy_hash, USERS_PW_OPSLIMIT, USERS_PW_MEMLIMIT) ==
	    0)
		return auth_dummy_hash;
	if (!u->dummy_ready) {
		unsigned char pw[32];
		randombytes_buf(pw, sizeof(pw));
		if (hash_password((const char *)pw, sizeof(pw), u->dummy, NULL) != ARCA_OK)
			return auth_dummy_hash;
		sodium_memzero(pw, sizeof(pw));
		u->dummy_ready = true;
	}
	return u->dummy;
}

/* After a successful login with a hash made with weaker parameters: store a new one. Only
 * replaces the hash that was checked, so a concurrent password change wins. */
static void upgrade_hash(arca_users *u, int64_t id, const char *old, const char *password,
                         size_t len)
{
	char hash[crypto_pwhash_STRBYTES];
	sqlite3_stmt *st;
	if (hash_password(password, len, hash, NULL) != ARCA_OK)
		return;
	if (sqlite3_prepare_v2(u->db, "UPDATE users SET password = ? WHERE id = ? AND password = ?",
	                       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, id);
		sqlite3_bind_text(st, 3, old, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			arca_log(ARCA_LOG_WARN, "auth", "cannot upgrade a password hash: %s",
			         sqlite3_errmsg(u->db));
		sqlite3_finalize(st);
	}
	sodium_memzero(hash, sizeof(hash));
}

arca_status arca_users_check_password(arca_users *u, const char *name, const char *password,
                                      bool *ok, uint32_t *user_id, uint32_t *privileges,
                                      arca_error *err)
{
	char hash[crypto_pwhash_STRBYTES] = "";
	bool found = false, verified;
	uint32_t priv = 0;
	int64_t id = 0;
	size_t len = password ? strlen(password) : 0;
	*ok = false;
	if (user_id != NULL)
		*user_id = 0;
	if (privileges != NULL)
		*privileges = 0;
	if (password == NULL)
		password = "";
	/* a name that cannot exist is an unknown user: same work, no message telling why */
	if (check_name(name, NULL) == ARCA_OK) {
		sqlite3_stmt *st;
		int rc;
		arca_status s = prep(u, "SELECT id, privileges, password FROM users WHERE name = ?", &st,
		                     err);
		if (s != ARCA_OK)
			return s;
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *h = (const char *)sqlite3_column_text(st, 2);
			id = sqlite3_column_int64(st, 0);
			priv = (uint32_t)sqlite3_column_int64(st, 1);
			if (h != NULL && strlen(h) < sizeof(hash)) {
				memcpy(hash, h, strlen(h) + 1);
				found = true;
			}
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return db_err(u, err, "users");
	}
	/* the check is always run, also when the answer is already known to be no */
	verified = crypto_pwhash_str_verify(found ? hash : dummy_hash(u), password,
	                                    len > ARCA_PASSWORD_MAX ? ARCA_PASSWORD_MAX : len) == 0;
	if (found && verified && len > 0 && len <= ARCA_PASSWORD_MAX && (priv & ARCA_PRIV_LOGIN)) {
		*ok = true;
		if (user_id != NULL)
			*user_id = (uint32_t)id;
		if (privileges != NULL)
			*privileges = priv;
		if (crypto_pwhash_str_needs_rehash(hash, USERS_PW_OPSLIMIT, USERS_PW_MEMLIMIT) != 0)
			upgrade_hash(u, id, hash, password, len);
	}
	sodium_memzero(hash, sizeof(hash));
	return ARCA_OK;
}

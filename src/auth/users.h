/* The instance's users: names, full names, email addresses, Argon2id password hashes and
 * privileges. Lives in the instance database (<base>/instance.db, own tables); one handle
 * per thread (SQLite connection; WAL makes readers and one writer coexist). */
#ifndef ARCA_AUTH_USERS_H
#define ARCA_AUTH_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

typedef struct arca_users arca_users;

/* Privileges on the instance (bit set). */
enum {
	ARCA_PRIV_LOGIN = 1u << 0,        /* may log in at all (API, web, IMAP) */
	ARCA_PRIV_ARCHIVE_OWN = 1u << 1,  /* may archive their own mail */
	ARCA_PRIV_READ_OWN = 1u << 2,     /* may read their own archive */
	ARCA_PRIV_EXPORT = 1u << 3,       /* may export what they can read */
	ARCA_PRIV_DELETE = 1u << 4,       /* may delete (subject to compliance settings) */
	ARCA_PRIV_ADMIN = 1u << 5,        /* administers the instance: everything */
};
#define ARCA_PRIV_DEFAULT (ARCA_PRIV_LOGIN | ARCA_PRIV_ARCHIVE_OWN | ARCA_PRIV_READ_OWN)
#define ARCA_PRIV_ALL 0x3fu /* every bit above; other bits are refused (ARCA_ERR_INVALID) */

/* Access to another archive (or one folder of it, folder "" = whole archive). */
typedef enum { ARCA_ACCESS_NONE = 0, ARCA_ACCESS_READ = 1 } arca_access;

typedef struct {
	uint32_t id;
	char *name;       /* unique, case-sensitive, 1..ARCA_NAME_MAX-1 bytes, no '/' or control chars */
	char *full_name;  /* may be "" */
	char **emails;    /* addresses, lower-cased */
	size_t n_emails;
	uint32_t privileges;
	bool has_password;
} arca_user;

typedef struct {
	char *archive; /* archive name (= owning user's name) */
	char *folder;  /* "" = whole archive */
	arca_access access;
} arca_folder_grant;

arca_status arca_users_open(const char *base, arca_users **out, arca_error *err);
void arca_users_close(arca_users **u);

/* Names must also not start with '$' (reserved for service accounts such as $archiveadmin).
 * full_name NULL = "". ARCA_ERR_EXISTS if the name is taken. */
arca_status arca_users_create(arca_users *u, const char *name, const char *full_name,
                              uint32_t privileges, arca_error *err);
/* Removes the user, their addresses and the grants they hold. The user's archive (data) and
 * grants others hold on it stay: deleting archived mail is a compliance decision. */
arca_status arca_users_delete(arca_users *u, const char *name, arca_error *err);
/* Renames the user and moves grants on the archive old_name to new_name. Does not rename the
 * archive itself: the caller does that with the archive module. */
arca_status arca_users_rename(arca_users *u, const char *old_name, const char *new_name,
                              arca_error *err);
/* Fills *out (free with arca_user_free_fields). ARCA_ERR_NOTFOUND if no such user. */
arca_status arca_users_get(arca_users *u, const char *name, arca_user *out, arca_error *err);
void arca_user_free_fields(arca_user *user);
/* All users sorted by name; free with arca_users_list_free. */
arca_status arca_users_list(arca_users *u, arca_user **out, size_t *n, arca_error *err);
void arca_users_list_free(arca_user *users, size_t n);

arca_status arca_users_set_full_name(arca_users *u, const char *name, const char *full_name,
                                     arca_error *err);
/* Replaces the user's addresses (at most ARCA_USER_MAX_EMAILS; stored lower-cased, duplicates
 * kept once). An address belongs to one user only: ARCA_ERR_EXISTS if another user has it. */
arca_status arca_users_set_emails(arca_users *u, const char *name, const char *const *emails,
                                  size_t n, arca_error *err);
/* The user owning an address (any case); *name is the caller's to free(). NOTFOUND if none. */
arca_status arca_users_find_email(arca_users *u, const char *email, char **name, arca_error *err);
arca_status arca_users_set_privileges(arca_users *u, const char *name, uint32_t privileges,
                                      arca_error *err);
/* Names of privileges for the API ("login", "archive", "read", "export", "delete", "admin").
 * arca_priv_name: NULL unless bit is exactly one known bit; arca_priv_parse: ARCA_ERR_INVALID
 * for an unknown name. */
const char *arca_priv_name(uint32_t bit);
arca_status arca_priv_parse(const char *name, uint32_t *bit);

/* Grant (or with ARCA_ACCESS_NONE revoke) read access to another archive or one of its folders.
 * folder NULL = "". Granting needs an existing archive or user of that name (NOTFOUND);
 * revoking a grant that does not exist succeeds. At most ARCA_USER_MAX_GRANTS per user. */
arca_status arca_users_set_folder_access(arca_users *u, const char *name, const char *archive,
                                         const char *folder, arca_access access, arca_error *err);
arca_status arca_users_folder_grants(arca_users *u, const char *name, arca_folder_grant **out,
                                     size_t *n, arca_error *err);
void arca_folder_grants_free(arca_folder_grant *g, size_t n);
/* Whether user may read archive/folder (own archive with READ_OWN, admin, or a grant on the
 * archive or on that folder or one of its parents, '/' separated). Folder paths compare
 * byte-exact; folder NULL = "" (the whole archive). NOTFOUND if the user does not exist. */
arca_status arca_users_may_read(arca_users *u, const char *name, const char *archive,
                                const char *folder, bool *may, arca_error *err);

/* Sets the password (Argon2id, libsodium crypto_pwhash_str with at least OWASP's parameters:
 * m=19 MiB, t=2, p=1 or stronger). An empty password is refused (ARCA_ERR_INVALID), one
 * longer than ARCA_PASSWORD_MAX bytes too (ARCA_ERR_LIMIT). */
arca_status arca_users_set_password(arca_users *u, const char *name, const char *password,
                                    arca_error *err);
/* Checks a password. *ok false for a wrong password, an unknown user, a user without a
 * password or without the LOGIN privilege (admins too: LOGIN is the account's on switch): in
 * all these cases the same work is done (a dummy hash is verified for unknown users) so that
 * timing does not tell them apart.
 * Returns an error only for database failures. On success *privileges and *user_id are set
 * (each may be NULL), else 0. A hash made with weaker parameters is replaced on success. */
arca_status arca_users_check_password(arca_users *u, const char *name, const char *password,
                                      bool *ok, uint32_t *user_id, uint32_t *privileges,
                                      arca_error *err);

#endif

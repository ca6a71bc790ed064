/* Unit tests for src/auth/users.c: users, addresses, privileges, folder grants, passwords.
 * Each test gets a real instance created by the archive module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "archive/instance.h"
#include "auth/users.h"
#include "auth/users_int.h"
#include "lib/limits.h"

typedef struct {
	char dir[64];
	char base[96];
	char key[96];
	arca_users *u;
} fixture;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	char rec[ARCA_RECOVERY_KEY_TEXT];
	arca_error e;
	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/arca-test-auth-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->base, sizeof(fx->base), "%s/base", fx->dir);
	snprintf(fx->key, sizeof(fx->key), "%s/key", fx->dir);
	if (arca_instance_init(fx->base, fx->key, ARCA_DEFAULT_STORE_MAX, rec, &e) != ARCA_OK) {
		fprintf(stderr, "init: %s\n", e.msg);
		return -1;
	}
	if (arca_users_open(fx->base, &fx->u, &e) != ARCA_OK) {
		fprintf(stderr, "open: %s\n", e.msg);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	arca_users_close(&fx->u);
	nftw(fx->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* Asserts status st with a message containing want (if given). */
#define assert_err(call, st, want)                                                               \
	do {                                                                                     \
		arca_error e_;                                                                   \
		arca_error_clear(&e_);                                                           \
		assert_int_equal((call), (st));                                                  \
		if ((want) != NULL && strstr(e_.msg, (want)) == NULL)                            \
			fail_msg("message \"%s\" lacks \"%s\"", e_.msg, (const char *)(want));    \
	} while (0)
#define E (&e_)
#define OK(call)                                                                                 \
	do {                                                                                     \
		arca_error e_;                                                                   \
		arca_status s_ = (call);                                                         \
		if (s_ != ARCA_OK)                                                               \
			fail_msg("%s: %s", #call, e_.msg);                                       \
	} while (0)

static void test_open_missing(void **state)
{
	fixture *fx = *state;
	char path[160];
	arca_users *u = (arca_users *)1;
	snprintf(path, sizeof(path), "%s/nothing", fx->dir);
	assert_err(arca_users_open(path, &u, E), ARCA_ERR_NOTFOUND, "no instance.db");
	assert_null(u);
	arca_users_close(&u);
	/* a second handle on the same instance sees the same tables */
	OK(arca_users_create(fx->u, "alice", "Alice", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_open(fx->base, &u, E));
	{
		arca_user a;
		OK(arca_users_get(u, "alice", &a, E));
		assert_string_equal(a.full_name, "Alice");
		arca_user_free_fields(&a);
	}
	arca_users_close(&u);
	assert_null(u);
}

static void test_create_get_list(void **state)
{
	fixture *fx = *state;
	arca_user a, *list;
	size_t n;
	OK(arca_users_create(fx->u, "bob", "Bob Builder", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_create(fx->u, "alice", NULL, ARCA_PRIV_LOGIN | ARCA_PRIV_ADMIN, E));
	OK(arca_users_create(fx->u, "Zoë", "Zoë Ünicode", 0, E));
	assert_err(arca_users_create(fx->u, "bob", "", 0, E), ARCA_ERR_EXISTS,
	           "user 'bob' already exists");
	/* names are case-sensitive */
	OK(arca_users_create(fx->u, "Bob", "", 0, E));

	OK(arca_users_get(fx->u, "bob", &a, E));
	assert_string_equal(a.name, "bob");
	assert_string_equal(a.full_name, "Bob Builder");
	assert_int_equal(a.privileges, ARCA_PRIV_DEFAULT);
	assert_false(a.has_password);
	assert_int_equal(a.n_emails, 0);
	assert_true(a.id > 0);
	arca_user_free_fields(&a);
	arca_user_free_fields(&a); /* zeroed: a second free is harmless */
	assert_err(arca_users_get(fx->u, "nobody", &a, E), ARCA_ERR_NOTFOUND, "no user 'nobody'");
	assert_null(a.name);

	OK(arca_users_list(fx->u, &list, &n, E));
	assert_int_equal(n, 4);
	assert_string_equal(list[0].name, "Bob");
	assert_string_equal(list[1].name, "Zoë");
	assert_string_equal(list[2].name, "alice");
	assert_string_equal(list[3].name, "bob");
	assert_string_equal(list[2].full_name, "");
	assert_int_equal(list[2].privileges, ARCA_PRIV_LOGIN | ARCA_PRIV_ADMIN);
	assert_string_equal(list[1].full_name, "Zoë Ünicode");
	arca_users_list_free(list, n);

	OK(arca_users_set_full_name(fx->u, "alice", "Alice Liddell", E));
	OK(arca_users_set_privileges(fx->u, "alice", ARCA_PRIV_READ_OWN, E));
	OK(arca_users_get(fx->u, "alice", &a, E));
	assert_string_equal(a.full_name, "Alice Liddell");
	assert_int_equal(a.privileges, ARCA_PRIV_READ_OWN);
	arca_user_free_fields(&a);
	assert_err(arca_users_set_full_name(fx->u, "nobody", "x", E), ARCA_ERR_NOTFOUND, "no user");
	assert_err(arca_users_set_privileges(fx->u, "nobody", 0, E), ARCA_ERR_NOTFOUND, "no user");
	assert_err(arca_users_set_privileges(fx->u, "alice", 1u << 9, E), ARCA_ERR_INVALID,
	           "unknown privilege");
	assert_err(arca_users_create(fx->u, "carol", "", ARCA_PRIV_ALL + 1, E), ARCA_ERR_INVALID,
	           "unknown privilege");
	assert_err(arca_users_set_full_name(fx->u, "alice", "a\nb", E), ARCA_ERR_INVALID,
	           "full name must not contain control characters");
}

static void test_empty_list(void **state)
{
	fixture *fx = *state;
	arca_user *list = (arca_user *)1;
	size_t n = 7;
	OK(arca_users_list(fx->u, &list, &n, E));
	assert_int_equal(n, 0);
	arca_users_list_free(list, n);
}

static void test_invalid_names(void **state)
{
	fixture *fx = *state;
	char longname[ARCA_NAME_MAX + 1];
	memset(longname, 'a', ARCA_NAME_MAX);
	longname[ARCA_NAME_MAX] = '\0';
	assert_err(arca_users_create(fx->u, "", "", 0, E), ARCA_ERR_INVALID,
	           "user name must not be empty");
	assert_err(arca_users_create(fx->u, NULL, "", 0, E), ARCA_ERR_INVALID, "must not be empty");
	assert_err(arca_users_create(fx->u, "a/b", "", 0, E), ARCA_ERR_INVALID,
	           "user name must not contain '/'");
	assert_err(arca_users_create(fx->u, "$archiveadmin", "", 0, E), ARCA_ERR_INVALID,
	           "must not start with '$'");
	assert_err(arca_users_create(fx->u, "a\tb", "", 0, E), ARCA_ERR_INVALID, "control characters");
	assert_err(arca_users_create(fx->u, "a\x7f", "", 0, E), ARCA_ERR_INVALID, "control characters");
	assert_err(arca_users_create(fx->u, "a\xc2\x85", "", 0, E), ARCA_ERR_INVALID, /* U+0085 */
	           "control characters");
	assert_err(arca_users_create(fx->u, "a\xff", "", 0, E), ARCA_ERR_INVALID, "not valid UTF-8");
	assert_err(arca_users_create(fx->u, "\xc0\xaf", "", 0, E), ARCA_ERR_INVALID, /* overlong '/' */
	           "not valid UTF-8");
	assert_err(arca_users_create(fx->u, "\xed\xa0\x80", "", 0, E), ARCA_ERR_INVALID, /* surrogate */
	           "not valid UTF-8");
	assert_err(arca_users_create(fx->u, "\xe2\x82", "", 0, E), ARCA_ERR_INVALID, /* truncated */
	           "not valid UTF-8");
	assert_err(arca_users_create(fx->u, longname, "", 0, E), ARCA_ERR_INVALID, "longer than 255");
	longname[ARCA_NAME_MAX - 1] = '\0'; /* 255 bytes: the longest allowed */
	OK(arca_users_create(fx->u, longname, "", 0, E));
	OK(arca_users_create(fx->u, "a$b c@example.org", "", 0, E)); /* '$' only reserved first */
	assert_err(arca_users_get(fx->u, "x/y", &(arca_user){0}, E), ARCA_ERR_INVALID, "'/'");
	assert_err(arca_users_delete(fx->u, "", E), ARCA_ERR_INVALID, "empty");
}

static void test_rename_delete(void **state)
{
	fixture *fx = *state;
	arca_user a;
	arca_folder_grant *g;
	size_t n;
	bool may;
	OK(arca_users_create(fx->u, "alice", "Alice", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_create(fx->u, "bob", "Bob", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_create(fx->u, "carol", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_set_emails(fx->u, "alice", (const char *const[]){"alice@example.org"}, 1, E));
	OK(arca_users_set_password(fx->u, "alice", "wonderland", E));
	/* bob may read alice's Inbox; alice may read carol's archive */
	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "Inbox", ARCA_ACCESS_READ, E));
	OK(arca_users_set_folder_access(fx->u, "alice", "carol", "", ARCA_ACCESS_READ, E));

	assert_err(arca_users_rename(fx->u, "alice", "bob", E), ARCA_ERR_EXISTS,
	           "user 'bob' already exists");
	assert_err(arca_users_rename(fx->u, "nobody", "dave", E), ARCA_ERR_NOTFOUND,
	           "no user 'nobody'");
	assert_err(arca_users_rename(fx->u, "alice", "a/b", E), ARCA_ERR_INVALID, "'/'");
	OK(arca_users_rename(fx->u, "alice", "alice", E));
	OK(arca_users_rename(fx->u, "alice", "alicia", E));
	assert_err(arca_users_get(fx->u, "alice", &a, E), ARCA_ERR_NOTFOUND, "no user 'alice'");
	OK(arca_users_get(fx->u, "alicia", &a, E));
	assert_string_equal(a.full_name, "Alice");
	assert_int_equal(a.n_emails, 1);
	assert_true(a.has_password);
	arca_user_free_fields(&a);
	{
		bool ok;
		OK(arca_users_check_password(fx->u, "alicia", "wonderland", &ok, NULL, NULL, E));
		assert_true(ok);
	}
	/* bob's grant follows the archive's new name */
	OK(arca_users_folder_grants(fx->u, "bob", &g, &n, E));
	assert_int_equal(n, 1);
	assert_string_equal(g[0].archive, "alicia");
	assert_string_equal(g[0].folder, "Inbox");
	arca_folder_grants_free(g, n);
	OK(arca_users_may_read(fx->u, "bob", "alicia", "Inbox", &may, E));
	assert_true(may);
	/* alicia's own grants kept */
	OK(arca_users_may_read(fx->u, "alicia", "carol", "X", &may, E));
	assert_true(may);

	/* delete: the user, her addresses and her grants go; grants on her archive stay */
	OK(arca_users_delete(fx->u, "alicia", E));
	assert_err(arca_users_get(fx->u, "alicia", &a, E), ARCA_ERR_NOTFOUND, "no user");
	assert_err(arca_users_delete(fx->u, "alicia", E), ARCA_ERR_NOTFOUND, "no user 'alicia'");
	{
		char *owner;
		assert_err(arca_users_find_email(fx->u, "alice@example.org", &owner, E),
		           ARCA_ERR_NOTFOUND, "no user");
	}
	OK(arca_users_folder_grants(fx->u, "bob", &g, &n, E));
	assert_int_equal(n, 1);
	arca_folder_grants_free(g, n);
	/* a new user of the same name does not inherit her grants, and gets a new id */
	OK(arca_users_create(fx->u, "alicia", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_folder_grants(fx->u, "alicia", &g, &n, E));
	assert_int_equal(n, 0);
	arca_folder_grants_free(g, n);
	OK(arca_users_get(fx->u, "alicia", &a, E));
	assert_false(a.has_password);
	assert_int_equal(a.n_emails, 0);
	arca_user_free_fields(&a);
	/* the address can be given to someone else now */
	OK(arca_users_set_emails(fx->u, "carol", (const char *const[]){"alice@example.org"}, 1, E));
}

static void test_ids_not_reused(void **state)
{
	fixture *fx = *state;
	arca_user a;
	uint32_t first;
	OK(arca_users_create(fx->u, "a", "", 0, E));
	OK(arca_users_get(fx->u, "a", &a, E));
	first = a.id;
	arca_user_free_fields(&a);
	OK(arca_users_delete(fx->u, "a", E));
	OK(arca_users_create(fx->u, "b", "", 0, E));
	OK(arca_users_get(fx->u, "b", &a, E));
	assert_true(a.id > first);
	arca_user_free_fields(&a);
}

static void test_emails(void **state)
{
	fixture *fx = *state;
	const char *const set1[] = {"Alice@Example.ORG", "a.liddell@example.org",
	                            "alice@example.org"};
	const char *const set2[] = {"b@example.org"};
	arca_user a;
	char *owner;
	OK(arca_users_create(fx->u, "alice", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_create(fx->u, "bob", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_set_emails(fx->u, "alice", set1, 3, E));
	OK(arca_users_get(fx->u, "alice", &a, E));
	assert_int_equal(a.n_emails, 2); /* lower-cased, duplicate kept once, sorted */
	assert_string_equal(a.emails[0], "a.liddell@example.org");
	assert_string_equal(a.emails[1], "alice@example.org");
	arca_user_free_fields(&a);
	OK(arca_users_find_email(fx->u, "ALICE@example.org", &owner, E));
	assert_string_equal(owner, "alice");
	free(owner);
	/* an address belongs to one user; a failed set changes nothing */
	assert_err(arca_users_set_emails(fx->u, "bob", (const char *const[]){"b@x.org",
	                                                                       "alice@EXAMPLE.org"},
	                                 2, E),
	           ARCA_ERR_EXISTS, "'alice@example.org' already belongs to user 'alice'");
	OK(arca_users_get(fx->u, "bob", &a, E));
	assert_int_equal(a.n_emails, 0);
	arca_user_free_fields(&a);
	/* replacing the set */
	OK(arca_users_set_emails(fx->u, "alice", set2, 1, E));
	OK(arca_users_get(fx->u, "alice", &a, E));
	assert_int_equal(a.n_emails, 1);
	assert_string_equal(a.emails[0], "b@example.org");
	arca_user_free_fields(&a);
	OK(arca_users_set_emails(fx->u, "alice", NULL, 0, E));
	OK(arca_users_get(fx->u, "alice", &a, E));
	assert_int_equal(a.n_emails, 0);
	arca_user_free_fields(&a);
	/* bad addresses */
	assert_err(arca_users_set_emails(fx->u, "alice", (const char *const[]){"no-at-sign"}, 1, E),
	           ARCA_ERR_INVALID, "local@domain");
	assert_err(arca_users_set_emails(fx->u, "alice", (const char *const[]){"@example.org"}, 1, E),
	           ARCA_ERR_INVALID, "local@domain");
	assert_err(arca_users_set_emails(fx->u, "alice", (const char *const[]){"a b@c.org"}, 1, E),
	           ARCA_ERR_INVALID, "space");
	assert_err(arca_users_set_emails(fx->u, "alice", (const char *const[]){""}, 1, E),
	           ARCA_ERR_INVALID, "empty");
	assert_err(arca_users_set_emails(fx->u, "nobody", set2, 1, E), ARCA_ERR_NOTFOUND, "no user");
	{
		const char *many[ARCA_USER_MAX_EMAILS + 1];
		for (size_t i = 0; i <= ARCA_USER_MAX_EMAILS; i++)
			many[i] = "x@example.org";
		assert_err(arca_users_set_emails(fx->u, "alice", many, ARCA_USER_MAX_EMAILS + 1, E),
		           ARCA_ERR_LIMIT, "more than");
	}
}

static void test_priv_names(void **state)
{
	static const char *names[] = {"login", "archive", "read", "export", "delete", "admin"};
	uint32_t all = 0;
	(void)state;
	for (size_t i = 0; i < 6; i++) {
		uint32_t bit = 0;
		assert_int_equal(arca_priv_parse(names[i], &bit), ARCA_OK);
		assert_int_equal(bit, 1u << i);
		assert_string_equal(arca_priv_name(bit), names[i]);
		all |= bit;
	}
	assert_int_equal(all, ARCA_PRIV_ALL);
	assert_string_equal(arca_priv_name(ARCA_PRIV_LOGIN), "login");
	assert_string_equal(arca_priv_name(ARCA_PRIV_ARCHIVE_OWN), "archive");
	assert_string_equal(arca_priv_name(ARCA_PRIV_READ_OWN), "read");
	assert_string_equal(arca_priv_name(ARCA_PRIV_ADMIN), "admin");
	assert_null(arca_priv_name(0));
	assert_null(arca_priv_name(ARCA_PRIV_LOGIN | ARCA_PRIV_ADMIN));
	assert_null(arca_priv_name(1u << 20));
	{
		uint32_t bit = 99;
		assert_int_equal(arca_priv_parse("Admin", &bit), ARCA_ERR_INVALID);
		assert_int_equal(arca_priv_parse("", &bit), ARCA_ERR_INVALID);
		assert_int_equal(arca_priv_parse(NULL, &bit), ARCA_ERR_INVALID);
		assert_int_equal(bit, 99);
	}
}

static void test_grants_may_read(void **state)
{
	fixture *fx = *state;
	arca_folder_grant *g;
	size_t n;
	bool may;
	arca_instance *in;
	uint32_t aid;
	OK(arca_users_create(fx->u, "alice", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_create(fx->u, "bob", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_create(fx->u, "root", "", ARCA_PRIV_LOGIN | ARCA_PRIV_ADMIN, E));
	OK(arca_users_create(fx->u, "noread", "", ARCA_PRIV_LOGIN, E));
	/* an archive without a user (e.g. a shared or imported archive) */
	OK(arca_instance_open(fx->base, fx->key, 0, &in, E));
	OK(arca_instance_archive_id(in, "shared", true, &aid, E));
	arca_instance_close(&in);

	/* own archive with READ_OWN; not without */
	OK(arca_users_may_read(fx->u, "alice", "alice", "", &may, E));
	assert_true(may);
	OK(arca_users_may_read(fx->u, "alice", "alice", "Inbox/Sub", &may, E));
	assert_true(may);
	OK(arca_users_may_read(fx->u, "noread", "noread", "Inbox", &may, E));
	assert_false(may);
	/* admin reads everything */
	OK(arca_users_may_read(fx->u, "root", "alice", "Inbox", &may, E));
	assert_true(may);
	OK(arca_users_may_read(fx->u, "root", "shared", NULL, &may, E));
	assert_true(may);
	/* nothing granted yet */
	OK(arca_users_may_read(fx->u, "bob", "alice", "Inbox", &may, E));
	assert_false(may);

	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "Inbox", ARCA_ACCESS_READ, E));
	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "Projects/Arca", ARCA_ACCESS_READ, E));
	OK(arca_users_set_folder_access(fx->u, "bob", "shared", NULL, ARCA_ACCESS_READ, E));
	OK(arca_users_set_folder_access(fx->u, "bob", "shared", "", ARCA_ACCESS_READ, E)); /* again */
	static const struct {
		const char *archive, *folder;
		bool want;
	} cases[] = {
	    {"alice", "Inbox", true},
	    {"alice", "Inbox/Sub", true},
	    {"alice", "Inbox/Sub/Deeper", true},
	    {"alice", "Inbox2", false},
	    {"alice", "Inbo", false},
	    {"alice", "inbox", false},
	    {"alice", "", false},
	    {"alice", "Sent", false},
	    {"alice", "Projects", false},
	    {"alice", "Projects/Arca", true},
	    {"alice", "Projects/Arca/2024", true},
	    {"alice", "Projects/Arcadia", false},
	    {"shared", "", true},
	    {"shared", "Anything/At/All", true},
	    {"root", "Inbox", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		OK(arca_users_may_read(fx->u, "bob", cases[i].archive, cases[i].folder, &may, E));
		if (may != cases[i].want)
			fail_msg("bob on %s/%s: %d", cases[i].archive, cases[i].folder, may);
	}
	OK(arca_users_folder_grants(fx->u, "bob", &g, &n, E));
	assert_int_equal(n, 3);
	assert_string_equal(g[0].archive, "alice");
	assert_string_equal(g[0].folder, "Inbox");
	assert_string_equal(g[1].folder, "Projects/Arca");
	assert_string_equal(g[2].archive, "shared");
	assert_string_equal(g[2].folder, "");
	assert_int_equal(g[2].access, ARCA_ACCESS_READ);
	arca_folder_grants_free(g, n);

	/* folder names need not be UTF-8, as in the archive module (e.g. Latin-1 from an mbox) */
	OK(arca_users_set_folder_access(fx->u, "noread", "alice", "Caf\xe9", ARCA_ACCESS_READ, E));
	OK(arca_users_may_read(fx->u, "noread", "alice", "Caf\xe9/2024", &may, E));
	assert_true(may);
	OK(arca_users_set_folder_access(fx->u, "noread", "alice", "Caf\xe9", ARCA_ACCESS_NONE, E));

	/* revoke */
	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "Inbox", ARCA_ACCESS_NONE, E));
	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "Inbox", ARCA_ACCESS_NONE, E));
	OK(arca_users_may_read(fx->u, "bob", "alice", "Inbox/Sub", &may, E));
	assert_false(may);
	OK(arca_users_folder_grants(fx->u, "bob", &g, &n, E));
	assert_int_equal(n, 2);
	arca_folder_grants_free(g, n);

	/* errors */
	assert_err(arca_users_set_folder_access(fx->u, "bob", "ghost", "", ARCA_ACCESS_READ, E),
	           ARCA_ERR_NOTFOUND, "no archive 'ghost'");
	assert_err(arca_users_set_folder_access(fx->u, "nobody", "alice", "", ARCA_ACCESS_READ, E),
	           ARCA_ERR_NOTFOUND, "no user 'nobody'");
	assert_err(arca_users_set_folder_access(fx->u, "bob", "alice", "/Inbox", ARCA_ACCESS_READ, E),
	           ARCA_ERR_INVALID, "folder path");
	assert_err(arca_users_set_folder_access(fx->u, "bob", "alice", "a//b", ARCA_ACCESS_READ, E),
	           ARCA_ERR_INVALID, "folder path");
	assert_err(arca_users_set_folder_access(fx->u, "bob", "alice", "a/", ARCA_ACCESS_READ, E),
	           ARCA_ERR_INVALID, "folder path");
	assert_err(arca_users_set_folder_access(fx->u, "bob", "a/b", "", ARCA_ACCESS_READ, E),
	           ARCA_ERR_INVALID, "archive name must not contain '/'");
	assert_err(arca_users_set_folder_access(fx->u, "bob", "alice", "", (arca_access)7, E),
	           ARCA_ERR_INVALID, "access level");
	assert_err(arca_users_may_read(fx->u, "nobody", "alice", "", &may, E), ARCA_ERR_NOTFOUND,
	           "no user 'nobody'");
	assert_false(may);
	assert_err(arca_users_may_read(fx->u, "bob", "alice", "x//y", &may, E), ARCA_ERR_INVALID,
	           "folder path");
	assert_err(arca_users_folder_grants(fx->u, "nobody", &g, &n, E), ARCA_ERR_NOTFOUND, "no user");
	assert_null(g);
}

/* Reads the stored hash of a user directly from the database. */
static void stored_hash(fixture *fx, const char *name, char *out, size_t outsz)
{
	char path[160];
	sqlite3 *db;
	sqlite3_stmt *st;
	snprintf(path, sizeof(path), "%s/instance.db", fx->base);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT password FROM users WHERE name = ?", -1, &st,
	                                    NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, outsz, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_passwords(void **state)
{
	fixture *fx = *state;
	bool ok;
	uint32_t id, priv;
	arca_user a;
	char hash[256];
	unsigned m = 0, t = 0, p = 0;
	OK(arca_users_create(fx->u, "alice", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_create(fx->u, "nologin", "", ARCA_PRIV_READ_OWN | ARCA_PRIV_ADMIN, E));
	OK(arca_users_create(fx->u, "nopass", "", ARCA_PRIV_DEFAULT, E));

	assert_err(arca_users_set_password(fx->u, "alice", "", E), ARCA_ERR_INVALID,
	           "password must not be empty");
	assert_err(arca_users_set_password(fx->u, "alice", NULL, E), ARCA_ERR_INVALID,
	           "must not be empty");
	assert_err(arca_users_set_password(fx->u, "nobody", "pw", E), ARCA_ERR_NOTFOUND,
	           "no user 'nobody'");
	{
		char big[ARCA_PASSWORD_MAX + 2];
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_err(arca_users_set_password(fx->u, "alice", big, E), ARCA_ERR_LIMIT,
		           "longer than");
	}
	OK(arca_users_set_password(fx->u, "alice", "correct horse", E));
	OK(arca_users_set_password(fx->u, "nologin", "correct horse", E));
	OK(arca_users_get(fx->u, "alice", &a, E));
	assert_true(a.has_password);
	arca_user_free_fields(&a);

	/* the stored string: Argon2id with at least OWASP's parameters, no plaintext */
	stored_hash(fx, "alice", hash, sizeof(hash));
	assert_true(strncmp(hash, "$argon2id$v=19$", 15) == 0);
	assert_int_equal(sscanf(hash, "$argon2id$v=19$m=%u,t=%u,p=%u$", &m, &t, &p), 3);
	assert_true(m >= 19456);
	assert_true(t >= 2);
	assert_true(p >= 1);
	assert_null(strstr(hash, "correct"));

	OK(arca_users_check_password(fx->u, "alice", "correct horse", &ok, &id, &priv, E));
	assert_true(ok);
	assert_true(id > 0);
	assert_int_equal(priv, ARCA_PRIV_DEFAULT);
	OK(arca_users_check_password(fx->u, "alice", "correct horse", &ok, NULL, NULL, E));
	assert_true(ok);

	static const struct {
		const char *name, *pw;
	} wrong[] = {
	    {"alice", "Correct horse"},  /* wrong password */
	    {"alice", "correct horse "}, /* prefix is not enough */
	    {"alice", ""},
	    {"alice", NULL},
	    {"nobody", "correct horse"},  /* unknown user */
	    {"nopass", ""},               /* user without a password */
	    {"nopass", "correct horse"},
	    {"nologin", "correct horse"}, /* right password, no LOGIN privilege (admin or not) */
	    {"a/b", "correct horse"},     /* a name that cannot exist */
	    {"", "x"},
	    {NULL, "x"},
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		id = 77;
		priv = 77;
		ok = true;
		OK(arca_users_check_password(fx->u, wrong[i].name, wrong[i].pw, &ok, &id, &priv, E));
		if (ok)
			fail_msg("case %zu accepted", i);
		assert_int_equal(id, 0);
		assert_int_equal(priv, 0);
	}
	/* granting LOGIN later makes the same password work */
	OK(arca_users_set_privileges(fx->u, "nologin", ARCA_PRIV_LOGIN, E));
	OK(arca_users_check_password(fx->u, "nologin", "correct horse", &ok, NULL, &priv, E));
	assert_true(ok);
	assert_int_equal(priv, ARCA_PRIV_LOGIN);
	/* changing the password */
	OK(arca_users_set_password(fx->u, "alice", "battery staple", E));
	OK(arca_users_check_password(fx->u, "alice", "correct horse", &ok, NULL, NULL, E));
	assert_false(ok);
	OK(arca_users_check_password(fx->u, "alice", "battery staple", &ok, NULL, NULL, E));
	assert_true(ok);
	/* UTF-8 passwords are bytes */
	OK(arca_users_set_password(fx->u, "alice", "pässwörd", E));
	OK(arca_users_check_password(fx->u, "alice", "pässwörd", &ok, NULL, NULL, E));
	assert_true(ok);
}

static void test_rehash_on_login(void **state)
{
	fixture *fx = *state;
	char weak[crypto_pwhash_STRBYTES], path[160], hash[256];
	sqlite3 *db;
	sqlite3_stmt *st;
	bool ok;
	/* a hash made with OWASP's minimum parameters, as an older version might have stored */
	assert_int_equal(crypto_pwhash_str_alg(weak, "old secret", 10, 2, 19u * 1024u * 1024u,
	                                       crypto_pwhash_ALG_ARGON2ID13),
	                 0);
	OK(arca_users_create(fx->u, "alice", "", ARCA_PRIV_DEFAULT, E));
	snprintf(path, sizeof(path), "%s/instance.db", fx->base);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE users SET password = ? WHERE name = 'alice'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(st, 1, weak, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);

	OK(arca_users_check_password(fx->u, "alice", "wrong", &ok, NULL, NULL, E));
	assert_false(ok);
	stored_hash(fx, "alice", hash, sizeof(hash));
	assert_string_equal(hash, weak); /* not touched by a failed login */
	OK(arca_users_check_password(fx->u, "alice", "old secret", &ok, NULL, NULL, E));
	assert_true(ok);
	stored_hash(fx, "alice", hash, sizeof(hash));
	assert_string_not_equal(hash, weak);
	assert_int_equal(crypto_pwhash_str_needs_rehash(hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                                                crypto_pwhash_MEMLIMIT_INTERACTIVE),
	                 0);
	OK(arca_users_check_password(fx->u, "alice", "old secret", &ok, NULL, NULL, E));
	assert_true(ok);
}

static void test_dummy_hash_current(void **state)
{
	/* the built-in dummy hash (verified for unknown users) has the parameters of real hashes,
	 * so that both cost the same time */
	fixture *fx = *state;
	char hash[256];
	unsigned m1, t1, p1;
	OK(arca_users_create(fx->u, "alice", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_set_password(fx->u, "alice", "x", E));
	stored_hash(fx, "alice", hash, sizeof(hash));
	assert_int_equal(sscanf(hash, "$argon2id$v=19$m=%u,t=%u,p=%u$", &m1, &t1, &p1), 3);
	assert_int_equal(m1, 65536);
	assert_int_equal(t1, 2);
	assert_int_equal(p1, 1);
	assert_true(strncmp(auth_dummy_hash, "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0);
	assert_int_equal(crypto_pwhash_str_needs_rehash(auth_dummy_hash,
	                                                crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                                                crypto_pwhash_MEMLIMIT_INTERACTIVE),
	                 0);
}

static void test_grant_limit(void **state)
{
	fixture *fx = *state;
	char path[160];
	sqlite3 *db;
	sqlite3_stmt *st;
	OK(arca_users_create(fx->u, "alice", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_create(fx->u, "bob", "", ARCA_PRIV_DEFAULT, E));
	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "F0", ARCA_ACCESS_READ, E));
	/* fill up to the limit in one transaction (one API call per grant would fsync each) */
	snprintf(path, sizeof(path), "%s/instance.db", fx->base);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
	                                    "FROM n WHERE i < ?1 - 1) "
	                                    "INSERT INTO folder_grants(user_id, archive, folder, access) "
	                                    "SELECT (SELECT id FROM users WHERE name = 'bob'), 'alice', "
	                                    "'F' || i, 1 FROM n",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_int(st, 1, ARCA_USER_MAX_GRANTS);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_err(arca_users_set_folder_access(fx->u, "bob", "alice", "one-more", ARCA_ACCESS_READ,
	                                        E),
	           ARCA_ERR_LIMIT, "folder grants");
	/* re-granting an existing one and revoking still work at the limit */
	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "F5", ARCA_ACCESS_READ, E));
	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "F0", ARCA_ACCESS_NONE, E));
	OK(arca_users_set_folder_access(fx->u, "bob", "alice", "one-more", ARCA_ACCESS_READ, E));
}

typedef struct {
	const char *base;
	int which;
	int failures;
} writer_arg;

static void *writer(void *p)
{
	writer_arg *a = p;
	arca_users *u;
	arca_error e;
	char name[32];
	if (arca_users_open(a->base, &u, &e) != ARCA_OK) {
		a->failures++;
		return NULL;
	}
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "w%d-%d", a->which, i);
		if (arca_users_create(u, name, "", ARCA_PRIV_DEFAULT, &e) != ARCA_OK ||
		    arca_users_set_emails(u, name, (const char *const[]){name}, 0, &e) != ARCA_OK ||
		    arca_users_set_folder_access(u, name, name, "Inbox", ARCA_ACCESS_READ, &e) !=
		        ARCA_OK ||
		    arca_users_delete(u, name, &e) != ARCA_OK) {
			fprintf(stderr, "writer %d: %s\n", a->which, e.msg);
			a->failures++;
		}
	}
	arca_users_close(&u);
	return NULL;
}

static void test_concurrent_handles(void **state)
{
	/* one handle per thread; writers wait for each other (busy timeout, IMMEDIATE) */
	fixture *fx = *state;
	pthread_t th[3];
	writer_arg args[3];
	arca_user *list;
	size_t n;
	for (int i = 0; i < 3; i++) {
		args[i] = (writer_arg){fx->base, i, 0};
		assert_int_equal(pthread_create(&th[i], NULL, writer, &args[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	OK(arca_users_list(fx->u, &list, &n, E));
	assert_int_equal(n, 0);
	arca_users_list_free(list, n);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_open_missing),   T(test_create_get_list), T(test_empty_list),
	    T(test_invalid_names),  T(test_rename_delete),   T(test_ids_not_reused),
	    T(test_emails),         T(test_priv_names),      T(test_grants_may_read),
	    T(test_passwords),      T(test_rehash_on_login), T(test_dummy_hash_current),
	    T(test_grant_limit),    T(test_concurrent_handles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for src/store: write path, dedup, crash and fault handling, verify, recreate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/fs.h"
#include "store/store.h"
#include "store/store_int.h"

typedef struct {
	char dir[64];
	char meta[128];
	char content[128];
	arca_store_paths paths;
	uint8_t key[ARCA_KEY_LEN];
	arca_store *s;
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
	arca_error e;
	if (fx == NULL || arca_crypto_init(NULL) != ARCA_OK)
		return -1;
	strcpy(fx->dir, "/tmp/arca-test-store-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->meta, sizeof(fx->meta), "%s/meta.db", fx->dir);
	snprintf(fx->content, sizeof(fx->content), "%s/content", fx->dir);
	fx->paths.meta_path = fx->meta;
	fx->paths.content_dir = fx->content;
	arca_crypto_random(fx->key, sizeof(fx->key));
	if (arca_store_create(&fx->paths, fx->key, 7, &e) != ARCA_OK) {
		fprintf(stderr, "create: %s\n", e.msg);
		return -1;
	}
	if (arca_store_open(&fx->paths, fx->key, 7, 0, &fx->s, &e) != ARCA_OK) {
		fprintf(stderr, "open: %s\n", e.msg);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	arca_store_close(&fx->s);
	nftw(fx->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void reopen(fixture *fx)
{
	arca_error e;
	arca_store_close(&fx->s);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, 0, &fx->s, &e), ARCA_OK);
}

/* A message; i selects the content, so equal i means equal bytes. */
static size_t make_msg(unsigned i, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "From: alice%u@example.org\r\nTo: bob@example.org\r\n"
	                            "Subject: Quarterly zebra-migration report %u\r\n"
	                            "Message-ID: <%u@example.org>\r\n\r\n", i, i, i);
	for (unsigned k = 0; n + 80 < cap && k < 40 + i % 50; k++)
		n += (size_t)snprintf(buf + n, cap - n, "Line %u of message %u: the herd moves north "
		                      "at dawn %u.\r\n", k, i, k * i);
	return n;
}

static arca_status add_msg(fixture *fx, unsigned i, uint32_t archive, uint32_t folder,
                           arca_store_added *out, arca_error *e)
{
	char buf[8192], an[32], fp[32];
	uint8_t sha[ARCA_SHA256_LEN];
	size_t n = make_msg(i, buf, sizeof(buf));
	arca_store_dest d = {.archive_id = archive, .folder_id = folder, .archive_name = an,
	                     .folder_path = fp, .archive_time = 1700000000 + i};
	snprintf(an, sizeof(an), "archive-%u", archive);
	snprintf(fp, sizeof(fp), "INBOX/f%u", folder);
	arca_sha256(buf, n, sha);
	return arca_store_add(fx->s, buf, n, sha, &d, out, e);
}

static uint64_t add_ok(fixture *fx, unsigned i, uint32_t archive, uint32_t folder)
{
	arca_store_added a;
	arca_error e;
	arca_status st = add_msg(fx, i, archive, folder, &a, &e);
	if (st != ARCA_OK)
		fprintf(stderr, "add: %s\n", e.msg);
	assert_int_equal(st, ARCA_OK);
	return a.msg_id;
}

static uint64_t commit_ok(fixture *fx)
{
	uint64_t b = 0;
	arca_error e;
	arca_status st = arca_store_commit(fx->s, &b, &e);
	if (st != ARCA_OK)
		fprintf(stderr, "commit: %s\n", e.msg);
	assert_int_equal(st, ARCA_OK);
	return b;
}

static void check_get(fixture *fx, uint64_t id, unsigned i)
{
	char buf[8192];
	size_t n = make_msg(i, buf, sizeof(buf));
	arca_buf out;
	arca_error e;
	arca_status st;
	arca_buf_init(&out, ARCA_MAX_MESSAGE_SIZE);
	st = arca_store_get(fx->s, id, &out, &e);
	if (st != ARCA_OK)
		fprintf(stderr, "get %llu: %s\n", (unsigned long long)id, e.msg);
	assert_int_equal(st, ARCA_OK);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.data, buf, n);
	arca_buf_free(&out);
}

static uint64_t file_size(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static void cpath(fixture *fx, uint32_t id, char *out, size_t n)
{
	snprintf(out, n, "%s/c%06u.dat", fx->content, id);
}

/* Record location of a message, straight from the metadata database. */
static void locate(fixture *fx, uint64_t id, uint32_t *cont, uint64_t *off, uint64_t *len)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open_v2(fx->meta, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT container, offset, stored_size FROM messages"
	                                    " WHERE id = ?", -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_int64(q, 1, (int64_t)id);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	*cont = (uint32_t)sqlite3_column_int64(q, 0);
	*off = (uint64_t)sqlite3_column_int64(q, 1);
	*len = (uint64_t)sqlite3_column_int64(q, 2);
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

typedef struct {
	uint64_t ids[64];
	unsigned n, zero;
	char last[ARCA_ERROR_MSG_MAX];
} damage_list;

static void damage_cb(void *ctx, uint64_t msg_id, const char *reason)
{
	damage_list *d = ctx;
	if (msg_id == 0)
		d->zero++;
	else if (d->n < 64)
		d->ids[d->n++] = msg_id;
	snprintf(d->last, sizeof(d->last), "%s", reason);
	if (getenv("SHOW_DAMAGE"))
		fprintf(stderr, "damage %llu: %s\n", (unsigned long long)msg_id, reason);
}

static void verify_clean(fixture *fx)
{
	damage_list d = {0};
	uint64_t checked, damaged;
	arca_error e;
	arca_status st = arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e);
	if (st != ARCA_OK)
		fprintf(stderr, "verify: %s\n", e.msg);
	assert_int_equal(st, ARCA_OK);
	if (damaged != 0)
		fprintf(stderr, "unexpected damage: %s\n", d.last);
	assert_int_equal(damaged, 0);
}

/* ---- tests ---- */

static void test_basic(void **state)
{
	fixture *fx = *state;
	uint64_t ids[10], id;
	arca_store_msginfo mi;
	arca_store_stats stt;
	arca_error e;
	char buf[8192];
	uint8_t sha[32];
	assert_int_equal(arca_store_create(&fx->paths, fx->key, 7, &e), ARCA_ERR_EXISTS);
	assert_int_equal(arca_store_last_batch(fx->s), 0);
	for (unsigned i = 0; i < 10; i++)
		ids[i] = add_ok(fx, i, 1, 1);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(ids[i], i + 1);
	assert_int_equal(commit_ok(fx), 1);
	assert_int_equal(arca_store_last_batch(fx->s), 1);
	for (unsigned i = 0; i < 10; i++)
		check_get(fx, ids[i], i);
	arca_sha256(buf, make_msg(3, buf, sizeof(buf)), sha);
	assert_int_equal(arca_store_lookup(fx->s, sha, &id), ARCA_OK);
	assert_int_equal(id, 4);
	sha[0] ^= 1;
	assert_int_equal(arca_store_lookup(fx->s, sha, &id), ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_store_msginfo_get(fx->s, 4, &mi, &e), ARCA_OK);
	assert_int_equal(mi.size, make_msg(3, buf, sizeof(buf)));
	assert_int_equal(mi.archive_time, 1700000003);
	assert_true(mi.stored_size > 0 && mi.stored_size < mi.size);
	assert_int_equal(arca_store_msginfo_get(fx->s, 99, &mi, &e), ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_store_stats_get(fx->s, &stt, &e), ARCA_OK);
	assert_int_equal(stt.messages, 10);
	assert_int_equal(stt.memberships, 10);
	assert_true(stt.raw_bytes > stt.stored_bytes);
	assert_int_equal(stt.stored_bytes, file_size(fx->content) ? stt.stored_bytes : 0);
	assert_true(stt.meta_bytes > 0);
	/* empty commit: no new batch */
	assert_int_equal(commit_ok(fx), 1);
	/* survives reopen; a read-only handle reads while the writer is open */
	reopen(fx);
	check_get(fx, 10, 9);
	{
		arca_store *ro = NULL;
		arca_buf out;
		arca_buf_init(&out, 1 << 20);
		assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, ARCA_STORE_READONLY, &ro, &e),
		                 ARCA_OK);
		assert_int_equal(arca_store_get(ro, 5, &out, &e), ARCA_OK);
		assert_int_equal(add_msg(fx, 100, 1, 1, &(arca_store_added){0}, &e), ARCA_OK);
		/* staged (uncommitted) content is invisible to other readers */
		assert_int_equal(arca_store_get(ro, 11, &out, &e), ARCA_ERR_NOTFOUND);
		commit_ok(fx);
		arca_buf_reset(&out);
		assert_int_equal(arca_store_get(ro, 11, &out, &e), ARCA_OK);
		assert_int_equal(arca_store_add(ro, "x", 1, sha, &(arca_store_dest){0},
		                                &(arca_store_added){0}, &e), ARCA_ERR_STATE);
		arca_buf_free(&out);
		arca_store_close(&ro);
	}
	/* a second writer is refused */
	{
		arca_store *w2 = NULL;
		assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, 0, &w2, &e), ARCA_ERR_STATE);
		assert_null(w2);
	}
	verify_clean(fx);
}

static void test_bad_args(void **state)
{
	fixture *fx = *state;
	arca_store_added a;
	arca_store_dest d = {.archive_id = 1, .folder_id = 1, .archive_name = "a",
	                     .folder_path = "f"};
	uint8_t sha[32] = {0};
	arca_error e;
	assert_int_equal(arca_store_add(fx->s, "abc", 3, sha, &d, &a, &e), ARCA_ERR_INVALID);
	arca_sha256("abc", 3, sha);
	d.folder_id = 0;
	assert_int_equal(arca_store_add(fx->s, "abc", 3, sha, &d, &a, &e), ARCA_ERR_INVALID);
	d.folder_id = 1;
	assert_int_equal(arca_store_add(fx->s, "abc", 3, sha, &d, &a, &e), ARCA_OK);
	/* empty message is legal */
	arca_sha256("", 0, sha);
	assert_int_equal(arca_store_add(fx->s, "", 0, sha, &d, &a, &e), ARCA_OK);
	commit_ok(fx);
	{
		arca_buf out;
		arca_buf_init(&out, 100);
		assert_int_equal(arca_store_get(fx->s, a.msg_id, &out, &e), ARCA_OK);
		assert_int_equal(out.len, 0);
		arca_buf_free(&out);
	}
	verify_clean(fx);
}

static void test_dedup(void **state)
{
	fixture *fx = *state;
	arca_store_added a;
	arca_store_stats s1, s2;
	arca_error e;
	uint64_t n;
	/* same bytes twice in one batch, same folder */
	assert_int_equal(add_msg(fx, 1, 1, 1, &a, &e), ARCA_OK);
	assert_true(a.new_content && a.new_member && a.new_in_archive);
	assert_int_equal(add_msg(fx, 1, 1, 1, &a, &e), ARCA_OK);
	assert_int_equal(a.msg_id, 1);
	assert_false(a.new_content || a.new_member || a.new_in_archive);
	/* second folder of the same archive, same batch */
	assert_int_equal(add_msg(fx, 1, 1, 2, &a, &e), ARCA_OK);
	assert_false(a.new_content);
	assert_true(a.new_member);
	assert_false(a.new_in_archive);
	/* second archive */
	assert_int_equal(add_msg(fx, 1, 2, 3, &a, &e), ARCA_OK);
	assert_false(a.new_content);
	assert_true(a.new_member && a.new_in_archive);
	assert_int_equal(add_msg(fx, 2, 1, 1, &a, &e), ARCA_OK);
	assert_int_equal(a.msg_id, 2);
	commit_ok(fx);
	assert_int_equal(arca_store_stats_get(fx->s, &s1, &e), ARCA_OK);
	assert_int_equal(s1.messages, 2);
	assert_int_equal(s1.memberships, 4);
	/* across batches */
	assert_int_equal(add_msg(fx, 1, 1, 1, &a, &e), ARCA_OK);
	assert_false(a.new_content || a.new_member || a.new_in_archive);
	assert_int_equal(add_msg(fx, 2, 2, 4, &a, &e), ARCA_OK);
	assert_false(a.new_content);
	assert_true(a.new_member && a.new_in_archive);
	assert_int_equal(add_msg(fx, 2, 2, 3, &a, &e), ARCA_OK);
	assert_true(a.new_member);
	assert_false(a.new_in_archive);
	assert_int_equal(commit_ok(fx), 2);
	assert_int_equal(arca_store_stats_get(fx->s, &s2, &e), ARCA_OK);
	assert_int_equal(s2.messages, 2);
	assert_int_equal(s2.memberships, 6);
	/* only a small links record was added */
	assert_true(s2.stored_bytes - s1.stored_bytes < 150);
	assert_int_equal(arca_store_archive_stats(fx->s, 2, &n, NULL, &e), ARCA_OK);
	assert_int_equal(n, 2);
	assert_int_equal(arca_store_folder_count(fx->s, 3, &n, &e), ARCA_OK);
	assert_int_equal(n, 2);
	/* only duplicates: no new batch */
	assert_int_equal(add_msg(fx, 2, 2, 3, &a, &e), ARCA_OK);
	assert_int_equal(commit_ok(fx), 2);
	check_get(fx, 1, 1);
	check_get(fx, 2, 2);
	verify_clean(fx);
}

/* Re-archiving a corpus into another folder costs a few bytes per message. */
static void test_dedup_growth(void **state)
{
	fixture *fx = *state;
	arca_store_stats s1, s2;
	arca_error e;
	for (unsigned i = 0; i < 2000; i++) {
		add_ok(fx, i, 1, 1);
		if (i % 500 == 499)
			commit_ok(fx);
	}
	assert_int_equal(arca_store_stats_get(fx->s, &s1, &e), ARCA_OK);
	for (unsigned i = 0; i < 2000; i++) {
		add_ok(fx, i, 1, 2);
		if (i % 500 == 499)
			commit_ok(fx);
	}
	assert_int_equal(arca_store_stats_get(fx->s, &s2, &e), ARCA_OK);
	assert_int_equal(s2.messages, 2000);
	assert_int_equal(s2.memberships, 4000);
	fprintf(stderr, "containers %llu -> %llu bytes, meta %llu -> %llu bytes\n",
	              (unsigned long long)s1.stored_bytes, (unsigned long long)s2.stored_bytes,
	              (unsigned long long)s1.meta_bytes, (unsigned long long)s2.meta_bytes);
	assert_true((s2.stored_bytes - s1.stored_bytes) * 100 < s1.stored_bytes);
}

static void test_wrong_key(void **state)
{
	fixture *fx = *state;
	uint8_t k2[ARCA_KEY_LEN];
	arca_store *s2 = NULL;
	arca_error e;
	add_ok(fx, 1, 1, 1);
	commit_ok(fx);
	arca_store_close(&fx->s);
	memcpy(k2, fx->key, sizeof(k2));
	k2[31] ^= 0x80;
	assert_int_equal(arca_store_open(&fx->paths, k2, 7, 0, &s2, &e), ARCA_ERR_CRYPTO);
	assert_null(s2);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 8, 0, &s2, &e), ARCA_ERR_CRYPTO);
	assert_int_equal(arca_store_open(&fx->paths, k2, 7, ARCA_STORE_READONLY, &s2, &e),
	                 ARCA_ERR_CRYPTO);
	reopen(fx);
	check_get(fx, 1, 1);
}

static void test_uncommitted_tail(void **state)
{
	fixture *fx = *state;
	char c1[256];
	uint64_t committed;
	pid_t pid;
	int status;
	arca_buf out;
	arca_error e;
	for (unsigned i = 0; i < 5; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	cpath(fx, 1, c1, sizeof(c1));
	committed = file_size(c1);
	arca_store_close(&fx->s);
	/* A writer that dies mid-batch (records appended, never committed). */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		arca_store *s;
		arca_store_added a;
		if (arca_store_open(&fx->paths, fx->key, 7, 0, &s, &e) != ARCA_OK)
			_exit(1);
		fx->s = s;
		for (unsigned i = 5; i < 8; i++)
			if (add_msg(fx, i, 1, 1, &a, &e) != ARCA_OK)
				_exit(2);
		_exit(0); /* crash: no commit, no close */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(file_size(c1) > committed);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, 0, &fx->s, &e), ARCA_OK);
	assert_int_equal(file_size(c1), committed);
	arca_buf_init(&out, 1 << 20);
	assert_int_equal(arca_store_get(fx->s, 6, &out, &e), ARCA_ERR_NOTFOUND);
	arca_buf_free(&out);
	verify_clean(fx);
	/* ids of the lost batch are handed out again: they were never acknowledged */
	assert_int_equal(add_ok(fx, 5, 1, 1), 6);
	assert_int_equal(commit_ok(fx), 2);
	check_get(fx, 6, 5);
	verify_clean(fx);
}

static void fault_case(fixture *fx, unsigned nth, int errnum, bool at_commit)
{
	arca_store_added a;
	arca_store_stats before, after;
	char c1[256];
	arca_error e;
	arca_status st;
	uint64_t batch = arca_store_last_batch(fx->s), len;
	assert_int_equal(arca_store_stats_get(fx->s, &before, &e), ARCA_OK);
	cpath(fx, 1, c1, sizeof(c1));
	len = file_size(c1);
	if (!at_commit)
		arca_store_fault_inject(fx->s, nth, errnum);
	st = ARCA_OK;
	for (unsigned i = 100; i < 105 && st == ARCA_OK; i++)
		st = add_msg(fx, i, 1, 1, &a, &e);
	if (st == ARCA_OK)
		st = add_msg(fx, 0, 1, 9, &a, &e); /* a dedup hit: exercises the links record */
	if (at_commit) {
		assert_int_equal(st, ARCA_OK);
		arca_store_fault_inject(fx->s, nth, errnum);
		st = arca_store_commit(fx->s, NULL, &e);
	}
	assert_int_equal(st, errnum == ENOSPC ? ARCA_ERR_NOSPACE : ARCA_ERR_IO);
	if (errnum == ENOSPC)
		assert_non_null(strstr(e.msg, "disk full while"));
	assert_non_null(strstr(e.msg, c1));
	assert_non_null(strstr(e.msg, strerror(errnum)));
	/* nothing claimed */
	if (!at_commit)
		assert_int_equal(arca_store_commit(fx->s, NULL, &e), ARCA_OK);
	assert_int_equal(arca_store_last_batch(fx->s), batch);
	assert_int_equal(arca_store_stats_get(fx->s, &after, &e), ARCA_OK);
	assert_int_equal(after.messages, before.messages);
	assert_int_equal(after.memberships, before.memberships);
	assert_int_equal(file_size(c1), len);
	verify_clean(fx);
	/* space is back: the same batch goes through */
	for (unsigned i = 100; i < 105; i++)
		add_ok(fx, i, 1, 1);
	add_ok(fx, 0, 1, 9);
	assert_int_equal(commit_ok(fx), batch + 1);
	for (unsigned i = 100; i < 105; i++)
		check_get(fx, before.messages + 1 + (i - 100), i);
	verify_clean(fx);
	/* and it all survives a reopen */
	reopen(fx);
	verify_clean(fx);
	assert_int_equal(arca_store_stats_get(fx->s, &after, &e), ARCA_OK);
	assert_int_equal(after.memberships, before.memberships + 6);
	/* undo for the next case */
	(void)after;
}

static void test_fault_write(void **state)
{
	fixture *fx = *state;
	add_ok(fx, 0, 1, 1);
	commit_ok(fx);
	fault_case(fx, 1, ENOSPC, false);
}

static void test_fault_write_later(void **state)
{
	fixture *fx = *state;
	add_ok(fx, 0, 1, 1);
	commit_ok(fx);
	fault_case(fx, 3, ENOSPC, false);
}

static void test_fault_links_write(void **state)
{
	fixture *fx = *state;
	add_ok(fx, 0, 1, 1);
	commit_ok(fx);
	fault_case(fx, 1, ENOSPC, true); /* first op at commit: the links record */
}

static void test_fault_sync(void **state)
{
	fixture *fx = *state;
	add_ok(fx, 0, 1, 1);
	commit_ok(fx);
	fault_case(fx, 2, EIO, true); /* links write, then fdatasync fails */
}

static void test_fault_sync_nospace(void **state)
{
	fixture *fx = *state;
	add_ok(fx, 0, 1, 1);
	commit_ok(fx);
	fault_case(fx, 2, ENOSPC, true);
}

/* Faults while a batch rolls over to a new container: the new file is removed. */
static void test_fault_new_container(void **state)
{
	fixture *fx = *state;
	arca_store_added a;
	arca_error e;
	char c2[256];
	arca_store_set_container_max(fx->s, 1200);
	for (unsigned i = 0; i < 3; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	cpath(fx, 2, c2, sizeof(c2));
	assert_true(arca_fs_exists(c2));
	arca_store_fault_inject(fx->s, 4, ENOSPC);
	for (unsigned i = 10; i < 20; i++)
		if (add_msg(fx, i, 1, 1, &a, &e) != ARCA_OK)
			break;
	assert_int_equal(e.status, ARCA_ERR_NOSPACE);
	verify_clean(fx);
	for (unsigned i = 10; i < 20; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	for (unsigned i = 10; i < 20; i++)
		check_get(fx, 4 + i - 10, i);
	verify_clean(fx);
}

static void test_verify_flip(void **state)
{
	fixture *fx = *state;
	damage_list d = {0};
	uint64_t checked, damaged, off, len;
	uint32_t cont;
	char path[256];
	arca_buf out;
	arca_error e;
	for (unsigned i = 0; i < 10; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	for (unsigned i = 0; i < 5; i++)
		add_ok(fx, i, 1, 2); /* links record */
	for (unsigned i = 10; i < 20; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	verify_clean(fx);
	/* a byte inside message 7's ciphertext */
	locate(fx, 7, &cont, &off, &len);
	cpath(fx, cont, path, sizeof(path));
	flip_byte(path, off + len / 2);
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, 20);
	assert_int_equal(damaged, 1);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.ids[0], 7);
	assert_non_null(strstr(d.last, "authentication failed"));
	arca_buf_init(&out, 1 << 20);
	assert_int_equal(arca_store_get(fx->s, 7, &out, &e), ARCA_ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "authentication failed"));
	assert_int_equal(out.len, 0);
	arca_buf_free(&out);
	check_get(fx, 8, 7);
	/* a byte in message 12's header length field: still exactly that message */
	locate(fx, 12, &cont, &off, &len);
	flip_byte(path, off + 13);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(damaged, 2);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.ids[0], 7);
	assert_int_equal(d.ids[1], 12);
	assert_int_equal(d.zero, 0);
	/* the links record (written at commit, after message 20): damage not tied to a
	 * message */
	{
		uint64_t o20, l20;
		locate(fx, 20, &cont, &o20, &l20);
		flip_byte(path, o20 + l20 + 40);
	}
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.zero, 1);
}

static void test_verify_truncate(void **state)
{
	fixture *fx = *state;
	damage_list d = {0};
	uint64_t checked, damaged, off, len;
	uint32_t cont;
	char path[256];
	arca_error e;
	for (unsigned i = 0; i < 12; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	for (unsigned i = 0; i < 3; i++)
		add_ok(fx, i, 1, 2);
	add_ok(fx, 12, 1, 1);
	commit_ok(fx);
	locate(fx, 9, &cont, &off, &len);
	cpath(fx, cont, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)(off + len / 3)), 0);
	/* open still succeeds on a damaged store */
	reopen(fx);
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, 13);
	assert_int_equal(d.n, 5);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(d.ids[i], 9 + i);
	assert_non_null(strstr(d.last, "truncated"));
	check_get(fx, 8, 7);
	/* new writes go to a fresh container, never after the damage */
	add_ok(fx, 50, 1, 1);
	commit_ok(fx);
	locate(fx, 14, &cont, &off, &len);
	assert_int_equal(cont, 2);
	check_get(fx, 14, 50);
	/* a missing container: its messages are named */
	unlink(path);
	reopen(fx);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(d.n, 13);
	assert_non_null(strstr(d.last, "missing"));
}

typedef struct {
	uint64_t msg, batch;
	uint32_t archive, folder;
} member;

typedef struct {
	member m[512];
	unsigned n;
} member_list;

static arca_status collect(void *ctx, uint64_t msg_id, uint32_t archive_id, uint32_t folder_id,
                           uint64_t batch)
{
	member_list *l = ctx;
	if (l->n < 512)
		l->m[l->n++] = (member){msg_id, batch, archive_id, folder_id};
	return ARCA_OK;
}

static arca_status stop_at_3(void *ctx, uint64_t msg_id, uint32_t archive_id, uint32_t folder_id,
                             uint64_t batch)
{
	member_list *l = ctx;
	(void)msg_id, (void)archive_id, (void)folder_id, (void)batch;
	return ++l->n == 3 ? ARCA_ERR_STATE : ARCA_OK;
}

static void test_each_member(void **state)
{
	fixture *fx = *state;
	member_list l = {0};
	arca_error e;
	for (unsigned i = 0; i < 6; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx); /* batch 1: msgs 1..6 in 1/1 */
	for (unsigned i = 0; i < 6; i += 2)
		add_ok(fx, i, 2, 5);
	add_ok(fx, 6, 1, 2);
	commit_ok(fx); /* batch 2: 1,3,5 in 2/5; 7 in 1/2 */
	assert_int_equal(arca_store_each_member(fx->s, 0, 1, collect, &l, &e), ARCA_OK);
	assert_int_equal(l.n, 6);
	for (unsigned i = 0; i < 6; i++)
		assert_true(l.m[i].msg == i + 1 && l.m[i].folder == 1 && l.m[i].batch == 1);
	l.n = 0;
	assert_int_equal(arca_store_each_member(fx->s, 2, 0, collect, &l, &e), ARCA_OK);
	assert_int_equal(l.n, 3);
	assert_true(l.m[0].msg == 1 && l.m[1].msg == 3 && l.m[2].msg == 5);
	assert_true(l.m[2].archive == 2 && l.m[2].folder == 5 && l.m[2].batch == 2);
	l.n = 0;
	assert_int_equal(arca_store_each_member(fx->s, 1, 0, collect, &l, &e), ARCA_OK);
	assert_int_equal(l.n, 7);
	l.n = 0;
	assert_int_equal(arca_store_each_member(fx->s, 0, 0, collect, &l, &e), ARCA_OK);
	assert_int_equal(l.n, 10);
	for (unsigned i = 1; i < l.n; i++)
		assert_true(l.m[i - 1].msg <= l.m[i].msg);
	l.n = 0;
	assert_int_equal(arca_store_each_member(fx->s, 2, 1, collect, &l, &e), ARCA_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(arca_store_each_member_since(fx->s, 1, collect, &l, &e), ARCA_OK);
	assert_int_equal(l.n, 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(l.m[i].batch, 2);
	l.n = 0;
	assert_int_equal(arca_store_each_member_since(fx->s, 2, collect, &l, &e), ARCA_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(arca_store_each_member_since(fx->s, 0, collect, &l, &e), ARCA_OK);
	assert_int_equal(l.n, 10);
	l.n = 0;
	assert_int_equal(arca_store_each_member(fx->s, 0, 0, stop_at_3, &l, &e), ARCA_ERR_STATE);
	assert_int_equal(l.n, 3);
	{
		uint64_t n, raw;
		assert_int_equal(arca_store_archive_stats(fx->s, 1, &n, &raw, &e), ARCA_OK);
		assert_int_equal(n, 7);
		assert_true(raw > 7 * 1000);
		assert_int_equal(arca_store_folder_count(fx->s, 5, &n, &e), ARCA_OK);
		assert_int_equal(n, 3);
	}
}

static bool file_contains(const char *path, const char *needle)
{
	arca_buf b;
	arca_error e;
	bool found;
	arca_buf_init(&b, 64u << 20);
	assert_int_equal(arca_fs_read_file(path, 64u << 20, &b, &e), ARCA_OK);
	found = memmem(b.data, b.len, needle, strlen(needle)) != NULL;
	arca_buf_free(&b);
	return found;
}

static void test_no_plaintext(void **state)
{
	fixture *fx = *state;
	char c1[256];
	for (unsigned i = 0; i < 20; i++)
		add_ok(fx, i, 1, 1);
	for (unsigned i = 0; i < 5; i++)
		add_ok(fx, i, 1, 2);
	commit_ok(fx);
	cpath(fx, 1, c1, sizeof(c1));
	assert_false(file_contains(c1, "zebra-migration"));
	assert_false(file_contains(c1, "example.org"));
	assert_false(file_contains(c1, "INBOX"));
	assert_false(file_contains(c1, "archive-1"));
	assert_true(file_contains(c1, "ARC1"));
}

static void test_container_roll(void **state)
{
	fixture *fx = *state;
	char c3[256];
	arca_store_set_container_max(fx->s, 6000);
	for (unsigned i = 0; i < 30; i++) {
		add_ok(fx, i, 1, 1);
		if (i % 7 == 6)
			commit_ok(fx);
	}
	commit_ok(fx);
	cpath(fx, 3, c3, sizeof(c3));
	assert_true(arca_fs_exists(c3));
	for (unsigned i = 0; i < 30; i++)
		check_get(fx, i + 1, i);
	verify_clean(fx);
	reopen(fx);
	add_ok(fx, 99, 1, 1);
	commit_ok(fx);
	check_get(fx, 31, 99);
	verify_clean(fx);
}

typedef struct {
	unsigned calls;
} resolve_ctx;

static arca_status resolve_names(void *ctx, const char *archive_name, const char *folder_path,
                                 uint32_t *archive_id, uint32_t *folder_id)
{
	resolve_ctx *r = ctx;
	unsigned a, f;
	r->calls++;
	if (sscanf(archive_name, "archive-%u", &a) != 1 || sscanf(folder_path, "INBOX/f%u", &f) != 1)
		return ARCA_ERR_INVALID;
	*archive_id = a;
	*folder_id = f;
	return ARCA_OK;
}

static void unlink_meta(fixture *fx)
{
	char p[256];
	unlink(fx->meta);
	snprintf(p, sizeof(p), "%s-wal", fx->meta);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", fx->meta);
	unlink(p);
}

static void build_mixed(fixture *fx)
{
	arca_store_set_container_max(fx->s, 9000);
	for (unsigned i = 0; i < 25; i++)
		add_ok(fx, i, 1 + i % 2, 1 + i % 3);
	add_ok(fx, 3, 1, 7); /* links in the first batch */
	commit_ok(fx);
	for (unsigned i = 0; i < 25; i += 3)
		add_ok(fx, i, 3, 8);
	for (unsigned i = 25; i < 30; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	for (unsigned i = 0; i < 25; i += 5)
		add_ok(fx, i, 1, 9);
	commit_ok(fx);
}

static void test_recreate(void **state)
{
	fixture *fx = *state;
	member_list before = {0}, after = {0};
	resolve_ctx r = {0};
	damage_list d = {0};
	uint64_t n;
	arca_error e;
	build_mixed(fx);
	assert_int_equal(arca_store_each_member(fx->s, 0, 0, collect, &before, &e), ARCA_OK);
	assert_int_equal(before.n, 25 + 1 + 9 + 5 + 5);
	/* never while a writer is open */
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_ERR_STATE);
	arca_store_close(&fx->s);
	unlink_meta(fx);
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(n, 30);
	assert_int_equal(d.n + d.zero, 0);
	assert_true(r.calls > 0);
	reopen(fx);
	assert_int_equal(arca_store_last_batch(fx->s), 3);
	assert_int_equal(arca_store_each_member(fx->s, 0, 0, collect, &after, &e), ARCA_OK);
	assert_int_equal(after.n, before.n);
	assert_memory_equal(before.m, after.m, before.n * sizeof(member));
	for (unsigned i = 0; i < 30; i++)
		check_get(fx, i + 1, i);
	verify_clean(fx);
	assert_int_equal(add_ok(fx, 77, 1, 1), 31);
	commit_ok(fx);
	assert_int_equal(arca_store_last_batch(fx->s), 4);
	verify_clean(fx);
	/* with the old database present: moved aside, same result */
	arca_store_close(&fx->s);
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(n, 31);
	reopen(fx);
	check_get(fx, 31, 77);
	/* wrong key: refused before anything is touched */
	{
		uint8_t k2[ARCA_KEY_LEN];
		memcpy(k2, fx->key, sizeof(k2));
		k2[0] ^= 1;
		assert_int_equal(arca_store_recreate_meta(&fx->paths, k2, 7, resolve_names, &r,
		                                          damage_cb, &d, &n, &e), ARCA_ERR_CRYPTO);
	}
}

static void test_recreate_damaged(void **state)
{
	fixture *fx = *state;
	resolve_ctx r = {0};
	damage_list d = {0};
	uint64_t n, off, len;
	uint32_t cont;
	char path[256];
	arca_error e;
	arca_buf out;
	build_mixed(fx);
	locate(fx, 5, &cont, &off, &len);
	cpath(fx, cont, path, sizeof(path));
	flip_byte(path, off + 2); /* magic: resync needed */
	locate(fx, 6, &cont, &off, &len);
	cpath(fx, cont, path, sizeof(path));
	flip_byte(path, off + 60);
	arca_store_close(&fx->s);
	unlink_meta(fx);
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(n, 28);
	assert_true(d.n + d.zero >= 2);
	reopen(fx);
	arca_buf_init(&out, 1 << 20);
	assert_int_equal(arca_store_get(fx->s, 5, &out, &e), ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_store_get(fx->s, 6, &out, &e), ARCA_ERR_NOTFOUND);
	arca_buf_free(&out);
	check_get(fx, 7, 6);
	/* the damaged bytes are unknown to the new metadata: verify reports them (msg 0) */
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, NULL, &n, &e), ARCA_OK);
	assert_int_equal(d.n, 0);
	assert_true(d.zero >= 1);
}

/* ---- dictionaries ---- */

static int64_t meta_int(fixture *fx, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t v = -1;
	assert_int_equal(sqlite3_open_v2(fx->meta, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

/* The dictionary id named by message id's content record (read straight from the file). */
static uint32_t rec_dict_id(fixture *fx, uint64_t id)
{
	uint64_t off, len;
	uint32_t cont;
	char path[256];
	const char *why;
	arca_rec_hdr h;
	arca_rec_content c;
	arca_buf rec, plain;
	int fd;
	locate(fx, id, &cont, &off, &len);
	cpath(fx, cont, path, sizeof(path));
	arca_buf_init(&rec, 1 << 24);
	arca_buf_init(&plain, 1 << 24);
	assert_int_equal(arca_buf_reserve(&rec, len), ARCA_OK);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, rec.data, len, (off_t)off), (ssize_t)len);
	close(fd);
	assert_true(arca_rec_hdr_decode((const uint8_t *)rec.data, &h, &why));
	assert_int_equal(h.version, ARCA_REC_VERSION);
	assert_int_equal(arca_rec_open(fx->key, &h, (const uint8_t *)rec.data, &plain, NULL),
	                 ARCA_OK);
	assert_true(arca_rec_content_parse((const uint8_t *)plain.data, plain.len, h.version, &c,
	                                   &why));
	arca_buf_free(&rec);
	arca_buf_free(&plain);
	return c.dict_id;
}

/* 40 messages without a dictionary (trained at the commit that reaches 40), then 40 with. */
static void build_dict(fixture *fx)
{
	arca_store_set_dict_min(fx->s, 40);
	for (unsigned i = 0; i < 25; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dicts"), 0);
	for (unsigned i = 25; i < 40; i++)
		add_ok(fx, i, 1, 1);
	assert_int_equal(commit_ok(fx), 2);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dicts"), 1);
	for (unsigned i = 40; i < 80; i++)
		add_ok(fx, i, 1, 1);
	add_ok(fx, 3, 1, 2); /* a links entry in a dictionary batch */
	assert_int_equal(commit_ok(fx), 3);
}

static void test_dict_train(void **state)
{
	fixture *fx = *state;
	arca_store_added a;
	arca_store_stats s1, s2;
	arca_error e;
	uint64_t dict_size;
	build_dict(fx);
	/* no batch number was used for the dictionary */
	assert_int_equal(arca_store_last_batch(fx->s), 3);
	dict_size = (uint64_t)meta_int(fx, "SELECT stored_size FROM dicts WHERE id = 1");
	assert_true(dict_size > 1000 && dict_size <= ARCA_REC_OVERHEAD + 4 + ARCA_DICT_SIZE);
	assert_int_equal(rec_dict_id(fx, 1), 0);
	assert_int_equal(rec_dict_id(fx, 40), 0);
	assert_int_equal(rec_dict_id(fx, 41), 1);
	assert_int_equal(rec_dict_id(fx, 80), 1);
	for (unsigned i = 0; i < 80; i++)
		check_get(fx, i + 1, i);
	/* the dictionary pays: same-shaped messages store smaller with it */
	{
		arca_store_msginfo m1, m2;
		uint64_t before = 0, after = 0;
		for (unsigned i = 0; i < 30; i++) {
			assert_int_equal(arca_store_msginfo_get(fx->s, 1 + i, &m1, &e), ARCA_OK);
			assert_int_equal(arca_store_msginfo_get(fx->s, 51 + i, &m2, &e), ARCA_OK);
			before += m1.stored_size * 1000 / m1.size;
			after += m2.stored_size * 1000 / m2.size;
		}
		assert_true(after < before);
	}
	/* dedup across the dictionary boundary: no new content */
	assert_int_equal(arca_store_stats_get(fx->s, &s1, &e), ARCA_OK);
	for (unsigned i = 0; i < 80; i += 7) {
		assert_int_equal(add_msg(fx, i, 2, 5, &a, &e), ARCA_OK);
		assert_false(a.new_content);
		assert_int_equal(a.msg_id, i + 1);
	}
	commit_ok(fx);
	assert_int_equal(arca_store_stats_get(fx->s, &s2, &e), ARCA_OK);
	assert_int_equal(s2.messages, 80);
	assert_true(s2.stored_bytes - s1.stored_bytes < 200);
	verify_clean(fx);
	/* reopen: the persisted dictionary is used, no second one is trained */
	reopen(fx);
	arca_store_set_dict_min(fx->s, 40);
	for (unsigned i = 100; i < 150; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dicts"), 1);
	assert_int_equal(rec_dict_id(fx, 81), 1);
	for (unsigned i = 0; i < 80; i++)
		check_get(fx, i + 1, i);
	for (unsigned i = 100; i < 150; i++)
		check_get(fx, 81 + i - 100, i);
	verify_clean(fx);
}

/* A reader opened before the dictionary existed still reads the records that use it. */
static void test_dict_reader_before(void **state)
{
	fixture *fx = *state;
	arca_store *ro = NULL;
	arca_buf out;
	arca_error e;
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, ARCA_STORE_READONLY, &ro, &e),
	                 ARCA_OK);
	build_dict(fx);
	arca_buf_init(&out, 1 << 20);
	assert_int_equal(arca_store_get(ro, 60, &out, &e), ARCA_OK);
	assert_int_equal(out.len, make_msg(59, (char[8192]){0}, 8192));
	arca_buf_free(&out);
	arca_store_close(&ro);
}

/* Training needs material; with too little the store goes on without a dictionary. */
static void test_dict_train_fails(void **state)
{
	fixture *fx = *state;
	char tiny[4] = "abc";
	uint8_t sha[ARCA_SHA256_LEN];
	arca_store_dest d = {.archive_id = 1, .folder_id = 1, .archive_name = "archive-1",
	                     .folder_path = "INBOX/f1"};
	arca_store_added a;
	arca_error e;
	arca_store_set_dict_min(fx->s, 1);
	arca_sha256(tiny, 3, sha);
	assert_int_equal(arca_store_add(fx->s, tiny, 3, sha, &d, &a, &e), ARCA_OK);
	commit_ok(fx);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dicts"), 0);
	add_ok(fx, 1, 1, 1);
	commit_ok(fx);
	check_get(fx, 2, 1);
	verify_clean(fx);
}

static void test_dict_recreate(void **state)
{
	fixture *fx = *state;
	resolve_ctx r = {0};
	damage_list d = {0};
	member_list before = {0}, after = {0};
	uint64_t n;
	arca_error e;
	build_dict(fx);
	assert_int_equal(arca_store_each_member(fx->s, 0, 0, collect, &before, &e), ARCA_OK);
	arca_store_close(&fx->s);
	unlink_meta(fx);
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(n, 80);
	assert_int_equal(d.n + d.zero, 0);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dicts"), 1);
	reopen(fx);
	assert_int_equal(arca_store_last_batch(fx->s), 3);
	assert_int_equal(arca_store_each_member(fx->s, 0, 0, collect, &after, &e), ARCA_OK);
	assert_int_equal(after.n, before.n);
	assert_memory_equal(before.m, after.m, before.n * sizeof(member));
	for (unsigned i = 0; i < 80; i++)
		check_get(fx, i + 1, i);
	verify_clean(fx);
	/* the recreated store goes on with its dictionary */
	add_ok(fx, 200, 1, 1);
	commit_ok(fx);
	assert_int_equal(rec_dict_id(fx, 81), 1);
	check_get(fx, 81, 200);
	verify_clean(fx);
}

/* Turns a format-4 database into its format-3 shape: dicts without sha256, no dict_copies
 * (the dicts row is then the only copy: use only where the container holds just that one). */
#define TO_FORMAT3_SQL \
	"DROP TABLE dict_copies; CREATE TABLE d3(id INTEGER PRIMARY KEY, container INTEGER NOT NULL," \
	" offset INTEGER NOT NULL, stored_size INTEGER NOT NULL);" \
	" INSERT INTO d3 SELECT id, container, offset, stored_size FROM dicts; DROP TABLE dicts;" \
	" ALTER TABLE d3 RENAME TO dicts; UPDATE settings SET format = 3;"

/* Location of the k-th copy (in container order) of dictionary 1. */
static void dict_copy_at(fixture *fx, int k, uint32_t *cont, uint64_t *off, uint64_t *len)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT %%s FROM dict_copies WHERE dict_id = 1 ORDER BY container,"
	         " offset LIMIT 1 OFFSET %d", k);
	{
		char q[200];
		snprintf(q, sizeof(q), sql, "container");
		*cont = (uint32_t)meta_int(fx, q);
		snprintf(q, sizeof(q), sql, "offset");
		*off = (uint64_t)meta_int(fx, q);
		snprintf(q, sizeof(q), sql, "stored_size");
		*len = (uint64_t)meta_int(fx, q);
	}
}

/* One flipped byte in a dictionary copy costs nothing but that copy; only when every copy is
 * damaged are the messages that use the dictionary lost (and named). */
static void test_dict_damaged(void **state)
{
	fixture *fx = *state;
	resolve_ctx r = {0};
	damage_list d = {0};
	uint64_t checked, damaged, n, off1, off2, len1, len2;
	uint32_t c1, c2;
	char path[256], want[128];
	arca_buf out;
	arca_error e;
	build_dict(fx);
	/* two adjacent copies at training, both listed, and the dictionary's hash */
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dict_copies WHERE dict_id = 1"), 2);
	assert_int_equal(meta_int(fx, "SELECT length(sha256) FROM dicts WHERE id = 1"), 32);
	dict_copy_at(fx, 0, &c1, &off1, &len1);
	dict_copy_at(fx, 1, &c2, &off2, &len2);
	assert_int_equal(c1, c2);
	assert_int_equal(off2, off1 + len1);
	assert_int_equal(len1, len2);
	assert_int_equal(meta_int(fx, "SELECT offset FROM dicts WHERE id = 1"), (int64_t)off1);
	cpath(fx, c1, path, sizeof(path));
	flip_byte(path, off1 + 500);
	reopen(fx);
	/* the first copy is damaged: only it is reported, every message reads */
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, 80);
	assert_int_equal(damaged, 1);
	assert_int_equal(d.zero, 1);
	assert_int_equal(d.n, 0);
	snprintf(want, sizeof(want), "dictionary 1 copy at c000001.dat offset %llu damaged: "
	         "authentication failed", (unsigned long long)off1);
	assert_non_null(strstr(d.last, want));
	assert_non_null(strstr(d.last, "another copy is intact"));
	for (unsigned i = 0; i < 80; i++)
		check_get(fx, i + 1, i);
	/* a reader too */
	{
		arca_store *ro = NULL;
		arca_buf_init(&out, 1 << 20);
		assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, ARCA_STORE_READONLY, &ro, &e),
		                 ARCA_OK);
		assert_int_equal(arca_store_get(ro, 45, &out, &e), ARCA_OK);
		arca_store_close(&ro);
		arca_buf_free(&out);
	}
	/* the writer goes on compressing with it */
	add_ok(fx, 300, 1, 1);
	commit_ok(fx);
	assert_int_equal(rec_dict_id(fx, 81), 1);
	check_get(fx, 81, 300);
	/* both copies damaged: now the dictionary and its 41 dependants are lost */
	flip_byte(path, off2 + 700);
	reopen(fx);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, 81);
	assert_int_equal(d.zero, 2);
	assert_int_equal(d.n, 41);
	for (unsigned i = 0; i < 41; i++)
		assert_int_equal(d.ids[i], 41 + i);
	assert_int_equal(damaged, 43);
	assert_non_null(strstr(d.last, "dictionary 1 damaged: all 2 copies damaged"));
	assert_non_null(strstr(d.last, "authentication failed"));
	arca_buf_init(&out, 1 << 20);
	assert_int_equal(arca_store_get(fx->s, 45, &out, &e), ARCA_ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "dictionary 1 damaged"));
	assert_int_equal(out.len, 0);
	arca_buf_free(&out);
	check_get(fx, 40, 39);
	/* the writer does not use a dictionary it cannot read back */
	add_ok(fx, 301, 1, 1);
	commit_ok(fx);
	assert_int_equal(rec_dict_id(fx, 82), 0);
	check_get(fx, 82, 301);
	/* recreate: the dictionary's dependants are lost and named, the rest recovered */
	arca_store_close(&fx->s);
	unlink_meta(fx);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(n, 41);
	assert_int_equal(d.n, 41);
	assert_int_equal(d.zero, 1); /* the adjacent copies are one damaged region */
	assert_non_null(strstr(d.last, "dictionary 1 unknown or damaged"));
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dicts"), 0);
	reopen(fx);
	check_get(fx, 40, 39);
	check_get(fx, 82, 301);
}

/* recreate takes the first intact copy: a damaged first copy is reported and skipped. */
static void test_dict_recreate_copy_damaged(void **state)
{
	fixture *fx = *state;
	resolve_ctx r = {0};
	damage_list d = {0};
	uint64_t n, off1, off2, len, checked, damaged;
	uint32_t c1;
	char path[256];
	arca_error e;
	build_dict(fx);
	dict_copy_at(fx, 0, &c1, &off1, &len);
	dict_copy_at(fx, 1, &c1, &off2, &len);
	cpath(fx, c1, path, sizeof(path));
	flip_byte(path, off1 + 60);
	arca_store_close(&fx->s);
	unlink_meta(fx);
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(n, 80);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.zero, 1);
	assert_non_null(strstr(d.last, "a copy of dictionary 1;"));
	assert_int_equal(meta_int(fx, "SELECT offset FROM dicts WHERE id = 1"), (int64_t)off2);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dict_copies"), 1);
	assert_int_equal(meta_int(fx, "SELECT length(sha256) FROM dicts"), 32);
	/* the writer restores two copies; only the damaged bytes stay reported */
	reopen(fx);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dict_copies"), 2);
	for (unsigned i = 0; i < 80; i++)
		check_get(fx, i + 1, i);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, 80);
	assert_int_equal(damaged, 1);
	assert_int_equal(d.n, 0);
	assert_non_null(strstr(d.last, "authentication failed"));
}

/* Every container begun after the dictionary starts with a copy of it, so a truncated
 * earlier container costs only the records it lost. */
static void test_dict_roll(void **state)
{
	fixture *fx = *state;
	resolve_ctx r = {0};
	damage_list d = {0};
	uint64_t checked, damaged, n, off, len;
	uint32_t c;
	char path[256];
	arca_error e;
	build_dict(fx);
	arca_store_set_container_max(fx->s, 1); /* the next record starts container 2 */
	add_ok(fx, 100, 1, 1);
	commit_ok(fx);
	arca_store_set_container_max(fx->s, (uint64_t)1 << 30);
	for (unsigned i = 101; i < 105; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dict_copies"), 3);
	dict_copy_at(fx, 2, &c, &off, &len);
	assert_int_equal(c, 2);
	assert_int_equal(off, 0);
	assert_int_equal(meta_int(fx, "SELECT container FROM messages WHERE id = 81"), 2);
	assert_int_equal(meta_int(fx, "SELECT offset FROM messages WHERE id = 81"), (int64_t)len);
	assert_int_equal(rec_dict_id(fx, 81), 1);
	verify_clean(fx);
	/* cut container 1 in the middle of the first dictionary copy */
	dict_copy_at(fx, 0, &c, &off, &len);
	assert_int_equal(c, 1);
	arca_store_close(&fx->s);
	cpath(fx, 1, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)(off + 100)), 0);
	reopen(fx);
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, 85);
	assert_int_equal(d.n, 40); /* exactly the messages that were in the cut-off part */
	for (unsigned i = 0; i < 40; i++)
		assert_int_equal(d.ids[i], 41 + i);
	assert_int_equal(d.zero, 3); /* the two copies and the links record of batch 3 */
	for (unsigned i = 0; i < 40; i++)
		check_get(fx, i + 1, i);
	for (unsigned i = 100; i < 105; i++)
		check_get(fx, 81 + i - 100, i);
	/* recreate gets the same back */
	arca_store_close(&fx->s);
	unlink_meta(fx);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(n, 45);
	assert_int_equal(d.n, 0);
	reopen(fx);
	for (unsigned i = 100; i < 105; i++)
		check_get(fx, 81 + i - 100, i);
}

/* A format-1 database (no dicts table) opens read-only as is and is upgraded by a writer. */
static void test_dict_format1(void **state)
{
	fixture *fx = *state;
	arca_store *ro = NULL;
	sqlite3 *db;
	arca_buf out;
	arca_error e;
	for (unsigned i = 0; i < 5; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	arca_store_close(&fx->s);
	assert_int_equal(sqlite3_open(fx->meta, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE dicts; DROP TABLE links; DROP TABLE dict_copies;"
	                              " UPDATE settings SET format = 1", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, ARCA_STORE_READONLY, &ro, &e),
	                 ARCA_OK);
	arca_buf_init(&out, 1 << 20);
	assert_int_equal(arca_store_get(ro, 3, &out, &e), ARCA_OK);
	{
		uint64_t checked, damaged;
		assert_int_equal(arca_store_verify(ro, NULL, NULL, &checked, &damaged, &e), ARCA_OK);
		assert_int_equal(damaged, 0);
	}
	arca_store_close(&ro);
	arca_buf_free(&out);
	assert_int_equal(meta_int(fx, "SELECT format FROM settings"), 1);
	reopen(fx);
	assert_int_equal(meta_int(fx, "SELECT format FROM settings"), ARCA_STORE_FORMAT);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dicts"), 0);
	/* an unknown format is still refused */
	arca_store_close(&fx->s);
	assert_int_equal(sqlite3_open(fx->meta, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE settings SET format = 6", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, 0, &fx->s, &e), ARCA_ERR_STATE);
}

static arca_status resolve_any(void *ctx, const char *archive_name, const char *folder_path,
                               uint32_t *archive_id, uint32_t *folder_id)
{
	(void)ctx;
	*archive_id = 1 + (uint32_t)strlen(archive_name) % 7;
	*folder_id = 1 + (uint32_t)strlen(folder_path) % 13;
	return ARCA_OK;
}

/* Installs a fuzz seed container (key 0x00..0x1f, key id 1) as the only container and
 * recreates the metadata from it. */
static void seed_install(fixture *fx, const char *seed, uint64_t messages, int64_t dicts)
{
	char src[512], dst[256], blk[4096];
	resolve_ctx r = {0};
	damage_list d = {0};
	uint64_t n;
	arca_error e;
	FILE *in, *o;
	size_t k;
	for (unsigned i = 0; i < sizeof(fx->key); i++)
		fx->key[i] = (uint8_t)i;
	arca_store_close(&fx->s);
	unlink_meta(fx);
	snprintf(src, sizeof(src), "%s/%s", SEED_DIR, seed);
	cpath(fx, 1, dst, sizeof(dst));
	in = fopen(src, "rb");
	o = fopen(dst, "wb");
	assert_non_null(in);
	assert_non_null(o);
	while ((k = fread(blk, 1, sizeof(blk), in)) > 0)
		assert_int_equal(fwrite(blk, 1, k, o), k);
	fclose(in);
	fclose(o);
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 1, resolve_any, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(n, messages);
	assert_int_equal(d.n + d.zero, 0);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dicts"), dicts);
}

static void get_all(arca_store *s, uint64_t messages)
{
	arca_buf out;
	arca_error e;
	arca_buf_init(&out, 1 << 20);
	for (uint64_t id = 1; id <= messages; id++) {
		arca_buf_reset(&out);
		assert_int_equal(arca_store_get(s, id, &out, &e), ARCA_OK);
		assert_true(out.len > 0);
	}
	arca_buf_free(&out);
}

/* Recreates the store from a fuzz seed container, then verifies and reads everything. */
static void seed_roundtrip(fixture *fx, const char *seed, uint64_t messages, int64_t dicts)
{
	damage_list d = {0};
	uint64_t checked, damaged;
	arca_error e;
	seed_install(fx, seed, messages, dicts);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 1, 0, &fx->s, &e), ARCA_OK);
	/* a seed written before format 4 has one copy of its dictionary: the writer adds one */
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dict_copies"), 2 * dicts);
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, messages);
	assert_int_equal(damaged, 0);
	get_all(fx->s, messages);
}

/* Containers written by format 1 (record version 1) are still read; the v2 seed has a
 * dictionary record and records that use it, the v4 seed two copies of it. */
static void test_dict_seeds(void **state)
{
	fixture *fx = *state;
	seed_roundtrip(fx, "seed-8msg-links1.dat", 8, 0);
	seed_roundtrip(fx, "seed-v2-17msg-dict1-links1.dat", 17, 1);
	/* format 4: two adjacent copies of the dictionary */
	seed_roundtrip(fx, "seed-v4-17msg-dict1x2-links1.dat", 17, 1);
}

/* A format-3 store (one copy per dictionary) opens read-only as is; a writer upgrades it:
 * dicts.sha256 from the record, dict_copies, and a second copy. */
static void test_dict_upgrade(void **state)
{
	fixture *fx = *state;
	arca_store *ro = NULL;
	damage_list d = {0};
	uint64_t checked, damaged, off, len;
	uint32_t c;
	char path[256];
	sqlite3 *db;
	arca_error e;
	seed_install(fx, "seed-v2-17msg-dict1-links1.dat", 17, 1);
	assert_int_equal(sqlite3_open(fx->meta, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, TO_FORMAT3_SQL, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 1, ARCA_STORE_READONLY, &ro, &e),
	                 ARCA_OK);
	assert_int_equal(arca_store_verify(ro, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, 17);
	assert_int_equal(damaged, 0);
	get_all(ro, 17);
	arca_store_close(&ro);
	assert_int_equal(meta_int(fx, "SELECT format FROM settings"), 3);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 1, 0, &fx->s, &e), ARCA_OK);
	assert_int_equal(meta_int(fx, "SELECT format FROM settings"), ARCA_STORE_FORMAT);
	assert_int_equal(meta_int(fx, "SELECT length(sha256) FROM dicts WHERE id = 1"), 32);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM dict_copies WHERE dict_id = 1"), 2);
	verify_clean(fx);
	get_all(fx->s, 17);
	/* the old copy damaged: the new one serves */
	dict_copy_at(fx, 0, &c, &off, &len);
	cpath(fx, c, path, sizeof(path));
	flip_byte(path, off + 40);
	arca_store_close(&fx->s);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 1, 0, &fx->s, &e), ARCA_OK);
	get_all(fx->s, 17);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_cb, &d, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(damaged, 1);
	assert_non_null(strstr(d.last, "another copy is intact"));
}

/* ---- links records listed in metadata ---- */

typedef struct {
	unsigned n, zero;
	uint64_t ids[64];
	char zr[8][ARCA_ERROR_MSG_MAX]; /* reasons of msg_id-0 reports */
} damage_all;

static void damage_all_cb(void *ctx, uint64_t msg_id, const char *reason)
{
	damage_all *d = ctx;
	if (msg_id != 0 && d->n < 64)
		d->ids[d->n++] = msg_id;
	if (msg_id == 0 && d->zero < 8)
		snprintf(d->zr[d->zero], sizeof(d->zr[0]), "%s", reason);
	d->zero += msg_id == 0;
	if (getenv("SHOW_DAMAGE"))
		fprintf(stderr, "damage %llu: %s\n", (unsigned long long)msg_id, reason);
}

/* Location of the links record(s) of batch b (the first one). */
static void locate_links(fixture *fx, uint64_t b, uint64_t *off, uint64_t *len, uint64_t *entries)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open_v2(fx->meta, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT offset, stored_size, entries FROM links"
	                                    " WHERE batch = ? ORDER BY offset", -1, &q, NULL),
	                 SQLITE_OK);
	sqlite3_bind_int64(q, 1, (int64_t)b);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	*off = (uint64_t)sqlite3_column_int64(q, 0);
	*len = (uint64_t)sqlite3_column_int64(q, 1);
	*entries = (uint64_t)sqlite3_column_int64(q, 2);
	sqlite3_finalize(q);
	sqlite3_close(db);
}

/* Batch 1: messages 1-20 in folder 1. Batch 2: 0-4 into folder 2 (links) and new message 21.
 * Batch 3: 5-9 into folder 3 (links only). Batch 4: 10-15 into folder 4 and new message 22.
 * One container: [1..20][21][links 2][links 3][22][links 4]. */
static void build_links(fixture *fx)
{
	for (unsigned i = 0; i < 20; i++)
		add_ok(fx, i, 1, 1);
	assert_int_equal(commit_ok(fx), 1);
	for (unsigned i = 0; i < 5; i++)
		add_ok(fx, i, 1, 2);
	add_ok(fx, 20, 1, 1);
	assert_int_equal(commit_ok(fx), 2);
	for (unsigned i = 5; i < 10; i++)
		add_ok(fx, i, 2, 3);
	assert_int_equal(commit_ok(fx), 3);
	for (unsigned i = 10; i < 16; i++)
		add_ok(fx, i, 1, 4);
	add_ok(fx, 21, 1, 1);
	assert_int_equal(commit_ok(fx), 4);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM links"), 3);
	assert_int_equal(meta_int(fx, "SELECT sum(entries) FROM links"), 16);
	verify_clean(fx);
}

static void test_links_truncate(void **state)
{
	fixture *fx = *state;
	damage_all d = {0};
	uint64_t checked, damaged, off, len, n3, n4, o22, l22;
	uint32_t cont;
	char path[256];
	arca_error e;
	build_links(fx);
	locate_links(fx, 3, &off, &len, &n3);
	locate_links(fx, 4, &o22, &l22, &n4);
	assert_int_equal(n3, 5);
	assert_int_equal(n4, 6);
	locate(fx, 22, &cont, &o22, &l22);
	assert_true(o22 > off);
	cpath(fx, cont, path, sizeof(path));
	/* the cut goes through the links record of batch 3: it, message 22 and the links
	 * record of batch 4 are lost; batch 2's links record and messages 1-21 are intact */
	assert_int_equal(truncate(path, (off_t)(off + len / 2)), 0);
	reopen(fx);
	assert_int_equal(arca_store_verify(fx->s, damage_all_cb, &d, &checked, &damaged, &e),
	                 ARCA_OK);
	assert_int_equal(checked, 22);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.ids[0], 22);
	assert_int_equal(d.zero, 2);
	assert_int_equal(damaged, 3);
	assert_non_null(strstr(d.zr[0], "links record of batch 3 (memberships of 5 messages) lost: "
	                                "container c000001.dat truncated at offset"));
	assert_non_null(strstr(d.zr[1], "links record of batch 4 (memberships of 6 messages) lost: "
	                                "container c000001.dat truncated at offset"));
	/* the whole links area cut, from batch 2 on: three records by batch */
	locate_links(fx, 2, &off, &len, &n3);
	assert_int_equal(truncate(path, (off_t)off), 0);
	reopen(fx);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_all_cb, &d, &checked, &damaged, &e),
	                 ARCA_OK);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.zero, 3);
	assert_non_null(strstr(d.zr[0], "links record of batch 2 (memberships of 5 messages) lost"));
	assert_non_null(strstr(d.zr[1], "links record of batch 3 "));
	assert_non_null(strstr(d.zr[2], "links record of batch 4 "));
}

static void test_links_flip(void **state)
{
	fixture *fx = *state;
	damage_all d = {0};
	uint64_t damaged, off, len, n;
	char path[256];
	arca_error e;
	build_links(fx);
	locate_links(fx, 3, &off, &len, &n);
	cpath(fx, 1, path, sizeof(path));
	flip_byte(path, off + len / 2);
	assert_int_equal(arca_store_verify(fx->s, damage_all_cb, &d, NULL, &damaged, &e), ARCA_OK);
	assert_int_equal(damaged, 1);
	assert_int_equal(d.n, 0);
	assert_non_null(strstr(d.zr[0], "links record of batch 3 (memberships of 5 messages) "
	                                "damaged: authentication failed"));
	/* a header byte (seq): still that record, by batch */
	flip_byte(path, off + len / 2);
	flip_byte(path, off + 16);
	memset(&d, 0, sizeof(d));
	assert_int_equal(arca_store_verify(fx->s, damage_all_cb, &d, NULL, &damaged, &e), ARCA_OK);
	assert_int_equal(damaged, 1);
	assert_non_null(strstr(d.zr[0], "links record of batch 3 "));
	flip_byte(path, off + 16);
	verify_clean(fx);
}

/* Metadata that the containers do not back: a links row missing, an extra membership. */
static void test_links_membership_check(void **state)
{
	fixture *fx = *state;
	damage_all d = {0};
	uint64_t damaged;
	sqlite3 *db;
	arca_error e;
	build_links(fx);
	arca_store_close(&fx->s);
	assert_int_equal(sqlite3_open(fx->meta, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM links WHERE batch = 3;"
	                              " INSERT INTO members VALUES(9, 1, 17, 1, 4);", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	reopen(fx);
	assert_int_equal(arca_store_verify(fx->s, damage_all_cb, &d, NULL, &damaged, &e), ARCA_OK);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.zero, 2);
	assert_non_null(strstr(d.zr[0], "links record of batch 3 at c000001.dat offset"));
	assert_non_null(strstr(d.zr[0], "unknown to metadata"));
	assert_non_null(strstr(d.zr[1], "memberships of 1 messages in metadata are not held"));
	assert_non_null(strstr(d.zr[1], "message 17"));
}

/* A format-2 store (no links table) opens read-only as is; a writer fills the table. */
static void test_links_format2(void **state)
{
	fixture *fx = *state;
	arca_store *ro = NULL;
	uint64_t checked, damaged, off, len, n;
	sqlite3 *db;
	arca_error e;
	build_links(fx);
	add_ok(fx, 30, 1, 1);
	commit_ok(fx);
	arca_store_close(&fx->s);
	assert_int_equal(sqlite3_open(fx->meta, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, TO_FORMAT3_SQL "DROP TABLE links; UPDATE settings SET"
	                              " format = 2", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, ARCA_STORE_READONLY, &ro, &e),
	                 ARCA_OK);
	assert_int_equal(arca_store_verify(ro, NULL, NULL, &checked, &damaged, &e), ARCA_OK);
	assert_int_equal(checked, 23);
	assert_int_equal(damaged, 0);
	arca_store_close(&ro);
	assert_int_equal(meta_int(fx, "SELECT format FROM settings"), 2);
	reopen(fx);
	assert_int_equal(meta_int(fx, "SELECT format FROM settings"), ARCA_STORE_FORMAT);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM links"), 3);
	locate_links(fx, 4, &off, &len, &n);
	assert_int_equal(n, 6);
	verify_clean(fx);
	check_get(fx, 23, 30);
	add_ok(fx, 2, 3, 5);
	commit_ok(fx);
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM links"), 4);
	verify_clean(fx);
}

static void test_links_recreate(void **state)
{
	fixture *fx = *state;
	resolve_ctx r = {0};
	damage_list d = {0};
	char before[4096], after[4096];
	uint64_t n;
	arca_error e;
	sqlite3 *db;
	sqlite3_stmt *q;
	const char *sql = "SELECT group_concat(x, ' ') FROM (SELECT batch || ':' || container || ':'"
	                  " || offset || ':' || stored_size || ':' || entries AS x FROM links"
	                  " ORDER BY container, offset)";
	char *outs[2] = {before, after};
	build_mixed(fx);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(sqlite3_open_v2(fx->meta, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(q), SQLITE_ROW);
		snprintf(outs[k], sizeof(before), "%s", (const char *)sqlite3_column_text(q, 0));
		sqlite3_finalize(q);
		sqlite3_close(db);
		if (k == 1)
			break;
		arca_store_close(&fx->s);
		unlink_meta(fx);
		assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
		                                          damage_cb, &d, &n, &e), ARCA_OK);
		assert_int_equal(d.n + d.zero, 0);
	}
	assert_int_equal(meta_int(fx, "SELECT count(*) FROM links"), 3);
	assert_string_equal(before, after);
	reopen(fx);
	verify_clean(fx);
}

/* ---- IMAP UIDs ---- */

/* "folder:uid:msg:batch ..." of every membership, in (folder, uid) order. */
static void members_text(fixture *fx, char *out, size_t n)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open_v2(fx->meta, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT coalesce(group_concat(x, ' '), '') FROM"
	                                    " (SELECT folder_id || ':' || uid || ':' || message_id ||"
	                                    " ':' || batch AS x FROM members ORDER BY folder_id, uid)",
	                                    -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	snprintf(out, n, "%s", (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	sqlite3_close(db);
}

typedef struct {
	uint32_t uid[512];
	uint64_t msg[512];
	unsigned n;
} uid_list;

static arca_status collect_uid(void *ctx, uint32_t uid, uint64_t msg_id)
{
	uid_list *l = ctx;
	if (l->n < 512) {
		l->uid[l->n] = uid;
		l->msg[l->n++] = msg_id;
	}
	return ARCA_OK;
}

static uid_list folder_uids(arca_store *s, uint32_t folder, uint32_t from)
{
	uid_list l = {0};
	arca_error e;
	assert_int_equal(arca_store_folder_uids(s, folder, from, collect_uid, &l, &e), ARCA_OK);
	return l;
}

static arca_status add_uid(fixture *fx, unsigned i, uint32_t archive, uint32_t folder,
                           uint32_t uid, arca_store_added *out, arca_error *e)
{
	char buf[8192], an[32], fp[32];
	uint8_t sha[ARCA_SHA256_LEN];
	size_t n = make_msg(i, buf, sizeof(buf));
	arca_store_dest d = {.archive_id = archive, .folder_id = folder, .archive_name = an,
	                     .folder_path = fp, .archive_time = 1700000000 + i, .uid = uid};
	snprintf(an, sizeof(an), "archive-%u", archive);
	snprintf(fp, sizeof(fp), "INBOX/f%u", folder);
	arca_sha256(buf, n, sha);
	return arca_store_add(fx->s, buf, n, sha, &d, out, e);
}

static arca_status fold_list_cb(void *ctx, uint32_t folder_id, uint32_t max_uid)
{
	char *t = ctx;
	size_t n = strlen(t);
	snprintf(t + n, 256 - n, "%u:%u ", (unsigned)folder_id, (unsigned)max_uid);
	return ARCA_OK;
}

/* UIDs ascend per folder in the order memberships are added; a duplicate gets none; only
 * committed memberships are listed; UIDs survive a reopen, a rollback reuses nothing seen. */
static void test_uids(void **state)
{
	fixture *fx = *state;
	arca_store *ro = NULL;
	arca_store_added a;
	arca_error e;
	uid_list l;
	uint32_t u;
	char t[256] = "";
	for (unsigned i = 0; i < 10; i++) {
		assert_int_equal(add_uid(fx, i, 1, 1, 0, &a, &e), ARCA_OK);
		assert_int_equal(a.uid, i + 1);
	}
	/* already in the folder: no new UID, the existing one is reported */
	assert_int_equal(add_uid(fx, 3, 1, 1, 0, &a, &e), ARCA_OK);
	assert_false(a.new_member);
	assert_int_equal(a.uid, 4);
	/* another folder has its own sequence (links entry) */
	assert_int_equal(add_uid(fx, 3, 1, 2, 0, &a, &e), ARCA_OK);
	assert_true(a.new_member && !a.new_content);
	assert_int_equal(a.uid, 1);
	/* staged memberships are not listed, not even on the writer's own handle */
	assert_int_equal(folder_uids(fx->s, 1, 1).n, 0);
	assert_int_equal(arca_store_folder_max_uid(fx->s, 1, &u, &e), ARCA_OK);
	assert_int_equal(u, 0);
	commit_ok(fx);
	l = folder_uids(fx->s, 1, 1);
	assert_int_equal(l.n, 10);
	for (unsigned i = 0; i < 10; i++)
		assert_true(l.uid[i] == i + 1 && l.msg[i] == i + 1);
	l = folder_uids(fx->s, 1, 8);
	assert_true(l.n == 3 && l.uid[0] == 8);
	/* a UID chosen by the caller: never below the folder's highest; gaps are fine */
	assert_int_equal(add_uid(fx, 20, 1, 1, 10, &a, &e), ARCA_ERR_INVALID);
	assert_int_equal(add_uid(fx, 20, 1, 1, 100, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 100);
	assert_int_equal(add_uid(fx, 21, 1, 1, 0, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 101);
	assert_int_equal(add_uid(fx, 22, 1, 1, ARCA_UID_MAX + 1u, &a, &e), ARCA_ERR_INVALID);
	/* a reader sees the committed state only */
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, ARCA_STORE_READONLY, &ro, &e),
	                 ARCA_OK);
	assert_int_equal(folder_uids(ro, 1, 1).n, 10);
	commit_ok(fx);
	l = folder_uids(ro, 1, 11);
	assert_true(l.n == 2 && l.uid[0] == 100 && l.uid[1] == 101 && l.msg[1] == 12);
	assert_int_equal(arca_store_folder_max_uid(ro, 1, &u, &e), ARCA_OK);
	assert_int_equal(u, 101);
	assert_int_equal(arca_store_folder_uid_after(ro, 1, 10, &u, &e), ARCA_OK);
	assert_int_equal(u, 100);
	assert_int_equal(arca_store_folder_uid_after(ro, 1, 101, &u, &e), ARCA_OK);
	assert_int_equal(u, 0);
	assert_int_equal(arca_store_each_folder_max_uid(ro, fold_list_cb, t, &e), ARCA_OK);
	assert_string_equal(t, "1:101 2:1 ");
	arca_store_close(&ro);
	/* a dropped batch gave UIDs nobody saw: they are given again */
	assert_int_equal(add_uid(fx, 30, 1, 1, 0, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 102);
	arca_store_rollback(fx->s);
	assert_int_equal(add_uid(fx, 31, 1, 1, 0, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 102);
	commit_ok(fx);
	/* after a reopen the sequence goes on */
	reopen(fx);
	assert_int_equal(add_uid(fx, 32, 1, 1, 0, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 103);
	assert_int_equal(add_uid(fx, 31, 1, 1, 0, &a, &e), ARCA_OK);
	assert_false(a.new_member);
	assert_int_equal(a.uid, 102);
	commit_ok(fx);
	/* in UID order per folder (the order added), not message order */
	assert_int_equal(add_uid(fx, 0, 1, 2, 0, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 2);
	commit_ok(fx);
	l = folder_uids(fx->s, 2, 1);
	assert_true(l.n == 2 && l.msg[0] == 4 && l.msg[1] == 1);
	{
		member_list ml = {0};
		assert_int_equal(arca_store_each_member(fx->s, 0, 2, collect, &ml, &e), ARCA_OK);
		assert_true(ml.n == 2 && ml.m[0].msg == 4 && ml.m[1].msg == 1);
	}
	verify_clean(fx);
}

/* The UIDs are in the records: recreate restores them exactly. */
static void test_uids_recreate(void **state)
{
	fixture *fx = *state;
	resolve_ctx r = {0};
	damage_list d = {0};
	char before[8192], after[8192];
	uint64_t n;
	arca_error e;
	arca_store_added a;
	build_mixed(fx);
	/* gaps, and a folder added to out of message order */
	assert_int_equal(add_uid(fx, 7, 1, 9, 40, &a, &e), ARCA_OK);
	assert_int_equal(add_uid(fx, 40, 1, 9, 0, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 41);
	commit_ok(fx);
	members_text(fx, before, sizeof(before));
	arca_store_close(&fx->s);
	unlink_meta(fx);
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(d.n + d.zero, 0);
	members_text(fx, after, sizeof(after));
	assert_string_equal(before, after);
	reopen(fx);
	verify_clean(fx);
	assert_int_equal(add_uid(fx, 41, 1, 9, 0, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 42);
	commit_ok(fx);
}

typedef struct {
	uint32_t base;
	uint32_t folders[16];
	uint64_t counts[16];
	unsigned n;
} uid_hook_ctx;

static arca_status hook_base(void *ctx, uint32_t folder_id, uint32_t *first)
{
	uid_hook_ctx *c = ctx;
	*first = c->base * folder_id;
	return ARCA_OK;
}

static void hook_assigned(void *ctx, uint32_t folder_id, uint64_t n)
{
	uid_hook_ctx *c = ctx;
	if (c->n < 16) {
		c->folders[c->n] = folder_id;
		c->counts[c->n++] = n;
	}
}

/* Records written before format 5 (version 2) carry no UID: recreate gives those memberships
 * new UIDs above the hook's base and the folder's restored UIDs, and names the folders. */
static void test_uids_recreate_v2(void **state)
{
	fixture *fx = *state;
	resolve_ctx r = {0};
	damage_list d = {0};
	uid_hook_ctx c = {.base = 1000};
	arca_store_uid_hooks h = {.uid_base = hook_base, .uids_assigned = hook_assigned, .ctx = &c};
	char before[8192], after[8192];
	uint64_t n;
	arca_error e;
	arca_store_set_rec_version(fx->s, ARCA_REC_VERSION_2);
	for (unsigned i = 0; i < 6; i++)
		add_ok(fx, i, 1, 1); /* content records v2: folder 1 uids 1..6 */
	add_ok(fx, 0, 1, 2);     /* links v2: folder 2 uid 1 */
	commit_ok(fx);
	arca_store_set_rec_version(fx->s, ARCA_REC_VERSION);
	for (unsigned i = 6; i < 9; i++)
		add_ok(fx, i, 1, 1); /* v3: folder 1 uids 7..9 */
	add_ok(fx, 1, 1, 3);     /* v3 links: folder 3 uid 1 */
	commit_ok(fx);
	members_text(fx, before, sizeof(before));
	assert_string_equal(before, "1:1:1:1 1:2:2:1 1:3:3:1 1:4:4:1 1:5:5:1 1:6:6:1 1:7:7:2 "
	                    "1:8:8:2 1:9:9:2 2:1:1:1 3:1:2:2");
	arca_store_close(&fx->s);
	unlink_meta(fx);
	assert_int_equal(arca_store_recreate_meta_ex(&fx->paths, fx->key, 7, resolve_names, &r, &h,
	                                             damage_cb, &d, &n, &e), ARCA_OK);
	assert_int_equal(d.n + d.zero, 0);
	/* folder 1: 7..9 restored, 1..6 new from max(1000, 10); folder 2: new from 2000 */
	members_text(fx, after, sizeof(after));
	assert_string_equal(after, "1:7:7:2 1:8:8:2 1:9:9:2 1:1000:1:1 1:1001:2:1 1:1002:3:1 "
	                    "1:1003:4:1 1:1004:5:1 1:1005:6:1 2:2000:1:1 3:1:2:2");
	assert_int_equal(c.n, 2);
	assert_true(c.folders[0] == 1 && c.counts[0] == 6 && c.folders[1] == 2 && c.counts[1] == 1);
	/* without hooks: above the folder's restored UIDs */
	c.n = 0;
	assert_int_equal(arca_store_recreate_meta(&fx->paths, fx->key, 7, resolve_names, &r,
	                                          damage_cb, &d, &n, &e), ARCA_OK);
	members_text(fx, after, sizeof(after));
	assert_string_equal(after, "1:7:7:2 1:8:8:2 1:9:9:2 1:10:1:1 1:11:2:1 1:12:3:1 "
	                    "1:13:4:1 1:14:5:1 1:15:6:1 2:1:1:1 3:1:2:2");
	reopen(fx);
	verify_clean(fx);
	/* batch 1's UIDs of folder 1 now lie above batch 2's: catch-up still finds each batch */
	{
		member_list ml = {0};
		assert_int_equal(arca_store_each_member_since(fx->s, 1, collect, &ml, &e), ARCA_OK);
		assert_int_equal(ml.n, 4);
		for (unsigned i = 0; i < ml.n; i++)
			assert_int_equal(ml.m[i].batch, 2);
		ml.n = 0;
		assert_int_equal(arca_store_each_member_since(fx->s, 0, collect, &ml, &e), ARCA_OK);
		assert_int_equal(ml.n, 11);
		for (unsigned i = 0; i < 7; i++)
			assert_int_equal(ml.m[i].batch, 1);
	}
}

static arca_status resolve_merge(void *ctx, const char *archive_name, const char *folder_path,
                                 uint32_t *archive_id, uint32_t *folder_id)
{
	(void)ctx;
	(void)archive_name;
	(void)folder_path;
	*archive_id = 1;
	*folder_id = 5;
	return ARCA_OK;
}

/* A resolver that maps two folders to one: a message in both is one membership, and a UID
 * that two messages claim is kept by the first; the other gets a new one. */
static void test_uids_recreate_merge(void **state)
{
	fixture *fx = *state;
	damage_list d = {0};
	uid_hook_ctx c = {.base = 1};
	arca_store_uid_hooks h = {.uid_base = hook_base, .uids_assigned = hook_assigned, .ctx = &c};
	char after[8192];
	uint64_t n;
	arca_error e;
	add_ok(fx, 0, 1, 1); /* 1:1 msg 1 */
	add_ok(fx, 1, 1, 1); /* 1:2 msg 2 */
	add_ok(fx, 2, 1, 2); /* 2:1 msg 3 */
	add_ok(fx, 0, 1, 2); /* 2:2 msg 1 */
	commit_ok(fx);
	arca_store_close(&fx->s);
	assert_int_equal(arca_store_recreate_meta_ex(&fx->paths, fx->key, 7, resolve_merge, NULL, &h,
	                                             damage_cb, &d, &n, &e), ARCA_OK);
	members_text(fx, after, sizeof(after));
	/* msg 1 (uid 1, first) and msg 2 (uid 2) kept; msg 3 claimed uid 1: a new UID, from the
	 * hook's base 1 * 5 (above the folder's 2); the second membership of msg 1 is merged */
	assert_string_equal(after, "5:1:1:1 5:2:2:1 5:5:3:1");
	assert_true(c.n == 1 && c.folders[0] == 5 && c.counts[0] == 1);
	reopen(fx);
}

/* Turns the store into format 4: members without UIDs, keyed by (folder_id, message_id). */
#define TO_FORMAT4_SQL \
	"CREATE TABLE m4(folder_id INTEGER NOT NULL, message_id INTEGER NOT NULL," \
	" archive_id INTEGER NOT NULL, batch INTEGER NOT NULL," \
	" PRIMARY KEY(folder_id, message_id)) WITHOUT ROWID;" \
	"INSERT INTO m4 SELECT folder_id, message_id, archive_id, batch FROM members;" \
	"DROP TABLE members; ALTER TABLE m4 RENAME TO members;" \
	"CREATE INDEX members_archive ON members(archive_id, message_id);" \
	"CREATE INDEX members_batch ON members(batch);" \
	"UPDATE settings SET format = 4;"

/* A format-4 store opens read-only as is (no UIDs); a writer upgrades it: every folder's
 * memberships get UIDs in (batch, message_id) order from the hook's base. */
static void test_uids_upgrade(void **state)
{
	fixture *fx = *state;
	arca_store *ro = NULL;
	uid_hook_ctx c = {.base = 100};
	arca_store_uid_hooks h = {.uid_base = hook_base, .uids_assigned = hook_assigned, .ctx = &c};
	char after[8192];
	sqlite3 *db;
	member_list ml = {0};
	arca_error e;
	uint32_t u;
	arca_store_added a;
	for (unsigned i = 0; i < 4; i++)
		add_ok(fx, i, 1, 1);
	commit_ok(fx);
	add_ok(fx, 9, 1, 1);
	add_ok(fx, 2, 1, 2);
	add_ok(fx, 0, 1, 2);
	commit_ok(fx);
	arca_store_close(&fx->s);
	assert_int_equal(sqlite3_open(fx->meta, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, TO_FORMAT4_SQL, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(arca_store_open(&fx->paths, fx->key, 7, ARCA_STORE_READONLY, &ro, &e),
	                 ARCA_OK);
	assert_int_equal(arca_store_format(ro), 4);
	assert_int_equal(arca_store_folder_max_uid(ro, 1, &u, &e), ARCA_ERR_STATE);
	assert_int_equal(arca_store_each_member(ro, 0, 2, collect, &ml, &e), ARCA_OK);
	assert_true(ml.n == 2 && ml.m[0].msg == 1);
	arca_store_close(&ro);
	{
		int f = 0;
		assert_int_equal(arca_store_meta_format(&fx->paths, &f, &e), ARCA_OK);
		assert_int_equal(f, 4);
	}
	assert_int_equal(arca_store_open_ex(&fx->paths, fx->key, 7, 0, &h, &fx->s, &e), ARCA_OK);
	assert_int_equal(arca_store_format(fx->s), ARCA_STORE_FORMAT);
	members_text(fx, after, sizeof(after));
	/* folder 2: batch 2 holds msgs 3 and 1 -> message order within the batch */
	assert_string_equal(after, "1:100:1:1 1:101:2:1 1:102:3:1 1:103:4:1 1:104:5:2 "
	                    "2:200:1:2 2:201:3:2");
	assert_int_equal(meta_int(fx, "SELECT format FROM settings"), ARCA_STORE_FORMAT);
	verify_clean(fx);
	assert_int_equal(add_uid(fx, 20, 1, 2, 0, &a, &e), ARCA_OK);
	assert_int_equal(a.uid, 202);
	assert_int_equal(add_uid(fx, 2, 1, 2, 0, &a, &e), ARCA_OK);
	assert_false(a.new_member);
	assert_int_equal(a.uid, 201);
	commit_ok(fx);
	/* without hooks UIDs start at 1 */
	arca_store_close(&fx->s);
	assert_int_equal(sqlite3_open(fx->meta, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, TO_FORMAT4_SQL, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	reopen(fx);
	members_text(fx, after, sizeof(after));
	assert_string_equal(after, "1:1:1:1 1:2:2:1 1:3:3:1 1:4:4:1 1:5:5:2 "
	                    "2:1:1:2 2:2:3:2 2:3:6:3");
	verify_clean(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uncommitted_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_write_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_links_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_sync_nospace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_new_container, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_flip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_truncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_plaintext, setup, teardown),
		cmocka_unit_test_setup_teardown(test_container_roll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recreate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recreate_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_train, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_reader_before, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_train_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_recreate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_recreate_copy_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_roll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_format1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_seeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links_truncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links_flip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links_membership_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links_format2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links_recreate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_recreate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_recreate_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_recreate_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_upgrade, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

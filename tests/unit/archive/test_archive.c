/* Unit tests for src/archive: IMAP UIDs of folders across stores (rollover, a store made
 * current again, disabled and enabled), folder views and their refresh, read-only handles
 * while an import runs, the upgrade of format-4 stores, recreate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "archive/instance.h"
#include "archive/instance_int.h"
#include "lib/fs.h"
#include "store/store_int.h"

typedef struct {
	char dir[64];
	char base[128];
	char key[128];
	arca_instance *in;
	uint32_t aid, inbox, sent;
} fixture;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static void open_rw(fixture *fx)
{
	arca_error e;
	arca_status st = arca_instance_open(fx->base, fx->key, 0, &fx->in, &e);
	if (st != ARCA_OK)
		fprintf(stderr, "open: %s\n", e.msg);
	assert_int_equal(st, ARCA_OK);
}

static arca_instance *open_ro(fixture *fx)
{
	arca_instance *in = NULL;
	arca_error e;
	assert_int_equal(arca_instance_open(fx->base, fx->key, ARCA_INSTANCE_READONLY, &in, &e),
	                 ARCA_OK);
	return in;
}

static void reopen(fixture *fx)
{
	arca_instance_close(&fx->in);
	open_rw(fx);
}

static int setup_max(void **state, uint64_t store_max)
{
	fixture *fx = calloc(1, sizeof(*fx));
	char rec[ARCA_RECOVERY_KEY_TEXT];
	arca_error e;
	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/arca-test-archive-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->base, sizeof(fx->base), "%s/base", fx->dir);
	snprintf(fx->key, sizeof(fx->key), "%s/key", fx->dir);
	if (arca_instance_init(fx->base, fx->key, store_max, rec, &e) != ARCA_OK) {
		fprintf(stderr, "init: %s\n", e.msg);
		return -1;
	}
	if (arca_instance_open(fx->base, fx->key, 0, &fx->in, &e) != ARCA_OK ||
	    arca_instance_archive_id(fx->in, "alice", true, &fx->aid, &e) != ARCA_OK ||
	    arca_instance_folder_id(fx->in, fx->aid, "INBOX", true, &fx->inbox, &e) != ARCA_OK ||
	    arca_instance_folder_id(fx->in, fx->aid, "Sent", true, &fx->sent, &e) != ARCA_OK) {
		fprintf(stderr, "open: %s\n", e.msg);
		return -1;
	}
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_max(state, 0);
}

static int setup_small(void **state)
{
	return setup_max(state, 10);
}

static int teardown(void **state)
{
	fixture *fx = *state;
	arca_instance_close(&fx->in);
	nftw(fx->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* A message; i selects the content, so equal i means equal bytes. */
static size_t make_msg(unsigned i, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "From: alice%u@example.org\r\nTo: bob@example.org\r\n"
	                            "Subject: Lighthouse report %u\r\nMessage-ID: <%u@example.org>\r\n"
	                            "Date: Tue, 1 Aug 2023 10:00:00 +0000\r\n\r\n", i, i, i);
	for (unsigned k = 0; n + 80 < cap && k < 5 + i % 20; k++)
		n += (size_t)snprintf(buf + n, cap - n, "Line %u of %u: the lamp turns at dusk.\r\n", k,
		                      i);
	return n;
}

/* Imports messages [from, to) into folder on in, committing every `batch`. */
static void import_on(arca_instance *in, unsigned from, unsigned to, uint32_t aid,
                      uint32_t folder, size_t batch)
{
	arca_ingest *ing = NULL;
	arca_error e;
	char buf[4096];
	arca_status st = arca_ingest_begin(in, batch, NULL, NULL, &ing, &e);
	if (st != ARCA_OK)
		fprintf(stderr, "ingest: %s\n", e.msg);
	assert_int_equal(st, ARCA_OK);
	for (unsigned i = from; i < to; i++) {
		size_t n = make_msg(i, buf, sizeof(buf));
		st = arca_ingest_add(ing, buf, n, aid, folder, NULL, &e);
		if (st != ARCA_OK)
			fprintf(stderr, "add: %s\n", e.msg);
		assert_int_equal(st, ARCA_OK);
	}
	assert_int_equal(arca_ingest_end(&ing, &e), ARCA_OK);
}

static void import(fixture *fx, unsigned from, unsigned to, uint32_t folder)
{
	import_on(fx->in, from, to, fx->aid, folder, 7);
}

static arca_folder_view *view_of(arca_instance *in, uint32_t folder)
{
	arca_folder_view *v = NULL;
	arca_error e;
	arca_status st = arca_instance_folder_view(in, folder, &v, &e);
	if (st != ARCA_OK)
		fprintf(stderr, "view: %s\n", e.msg);
	assert_int_equal(st, ARCA_OK);
	return v;
}

/* Strictly ascending UIDs below uid_next, one entry per (store, message). */
static void check_view(const arca_folder_view *v)
{
	assert_true(v->uidvalidity != 0);
	for (size_t i = 0; i < v->count; i++) {
		assert_true(v->msgs[i].uid >= 1 && v->msgs[i].uid < v->uid_next);
		if (i > 0)
			assert_true(v->msgs[i - 1].uid < v->msgs[i].uid);
		for (size_t k = 0; k < i; k++)
			assert_false(v->msgs[k].store_id == v->msgs[i].store_id &&
			             v->msgs[k].msg_id == v->msgs[i].msg_id);
	}
}

static void same_view(const arca_folder_view *a, const arca_folder_view *b)
{
	assert_int_equal(a->uidvalidity, b->uidvalidity);
	assert_int_equal(a->uid_next, b->uid_next);
	assert_int_equal(a->count, b->count);
	if (a->count > 0)
		assert_memory_equal(a->msgs, b->msgs, a->count * sizeof(*a->msgs));
}

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fprintf(stderr, "sql: %s\n", msg);
	assert_null(msg);
	sqlite3_close(db);
}

static void set_state(fixture *fx, uint32_t id, arca_store_state st)
{
	arca_error e;
	assert_int_equal(arca_instance_store_set_state(fx->in, id, st, &e), ARCA_OK);
}

static uint32_t new_store(fixture *fx)
{
	uint32_t id = 0;
	arca_error e;
	assert_int_equal(arca_instance_store_create(fx->in, NULL, NULL, NULL, NULL, true, &id, &e),
	                 ARCA_OK);
	return id;
}

/* ---- tests ---- */

/* UIDs ascend in the order added, duplicates get none, and all of it survives a restart. */
static void test_uids_basic(void **state)
{
	fixture *fx = *state;
	arca_folder_view *v, *w;
	arca_folder_info *fi = NULL;
	arca_message_info mi[3];
	size_t n;
	uint32_t id;
	char buf[4096];
	arca_error e;
	int64_t t0 = (int64_t)time(NULL);
	import(fx, 0, 20, fx->inbox);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_int_equal(v->count, 20);
	assert_int_equal(v->uid_next, 21);
	assert_int_equal(v->folder_id, fx->inbox);
	assert_int_equal(v->archive_id, fx->aid);
	for (unsigned i = 0; i < 20; i++)
		assert_true(v->msgs[i].uid == i + 1 && v->msgs[i].store_id == 1 &&
		            v->msgs[i].msg_id == i + 1);
	/* the same messages again: nothing new, no UID used */
	import(fx, 0, 20, fx->inbox);
	w = view_of(fx->in, fx->inbox);
	same_view(v, w);
	arca_folder_view_free(&w);
	/* the same content into another folder: that folder's own UIDs */
	import(fx, 15, 18, fx->sent);
	w = view_of(fx->in, fx->sent);
	check_view(w);
	assert_true(w->count == 3 && w->msgs[0].uid == 1 && w->msgs[2].uid == 3 &&
	            w->msgs[0].msg_id == 16 && w->uid_next == 4);
	assert_true(w->uidvalidity != 0);
	arca_folder_view_free(&w);
	import(fx, 20, 25, fx->inbox);
	arca_folder_view_free(&v);
	v = view_of(fx->in, fx->inbox);
	assert_true(v->count == 25 && v->msgs[24].uid == 25 && v->uid_next == 26);
	assert_int_equal(arca_folder_view_find(v, 7), 6);
	assert_int_equal(arca_folder_view_find(v, 26), -1);
	/* identical after a restart */
	reopen(fx);
	w = view_of(fx->in, fx->inbox);
	same_view(v, w);
	arca_folder_view_free(&w);
	import(fx, 25, 26, fx->inbox);
	w = view_of(fx->in, fx->inbox);
	assert_true(w->count == 26 && w->msgs[25].uid == 26 && w->uidvalidity == v->uidvalidity);
	arca_folder_view_free(&w);
	/* lookup and listing */
	assert_int_equal(arca_instance_folder_lookup(fx->in, "alice", "INBOX", &id, &e), ARCA_OK);
	assert_int_equal(id, fx->inbox);
	assert_int_equal(arca_instance_folder_lookup(fx->in, "alice", "Nope", &id, &e),
	                 ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_instance_folder_lookup(fx->in, "bob", "INBOX", &id, &e),
	                 ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_instance_folder_get(fx->in, fx->inbox, &fi, &e), ARCA_OK);
	assert_true(fi->id == fx->inbox && fi->messages == 26 && fi->uid_next == 27 &&
	            fi->uidvalidity == v->uidvalidity);
	assert_string_equal(fi->path, "INBOX");
	assert_string_equal(fi->archive, "alice");
	arca_folder_infos_free(fi, 1);
	assert_int_equal(arca_instance_folder_get(fx->in, 999, &fi, &e), ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_instance_folders(fx->in, fx->aid, &fi, &n, &e), ARCA_OK);
	assert_int_equal(n, 2);
	assert_true(fi[1].id == fx->sent && fi[1].uid_next == 4 && fi[1].messages == 3 &&
	            fi[1].uidvalidity != 0);
	arca_folder_infos_free(fi, n);
	/* per-message info for FETCH */
	assert_int_equal(arca_instance_msginfo(fx->in, 1, v->msgs[4].msg_id, &mi[0], &e), ARCA_OK);
	assert_int_equal(mi[0].size, make_msg(4, buf, sizeof(buf)));
	assert_true(mi[0].archive_time >= t0 && mi[0].archive_time <= (int64_t)time(NULL));
	assert_int_equal(arca_instance_msginfo_many(fx->in, v->msgs, 3, mi, &e), ARCA_OK);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(mi[i].size, make_msg(i, buf, sizeof(buf)));
	assert_int_equal(arca_instance_msginfo(fx->in, 1, 999, &mi[0], &e), ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_instance_msginfo(fx->in, 9, 1, &mi[0], &e), ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_instance_folder_view(fx->in, 999, &w, &e), ARCA_ERR_NOTFOUND);
	assert_null(w);
	arca_folder_view_free(&v);
}

/* One ingest per instance: a second one would give the same UIDs. */
static void test_uids_one_writer(void **state)
{
	fixture *fx = *state;
	arca_instance *in2 = NULL;
	arca_ingest *a = NULL, *b = NULL;
	arca_error e;
	assert_int_equal(arca_instance_open(fx->base, fx->key, 0, &in2, &e), ARCA_OK);
	assert_int_equal(arca_ingest_begin(fx->in, 10, NULL, NULL, &a, &e), ARCA_OK);
	assert_int_equal(arca_ingest_begin(in2, 10, NULL, NULL, &b, &e), ARCA_ERR_STATE);
	assert_null(b);
	assert_non_null(strstr(e.msg, "another import"));
	assert_int_equal(arca_ingest_end(&a, &e), ARCA_OK);
	assert_int_equal(arca_ingest_begin(in2, 10, NULL, NULL, &b, &e), ARCA_OK);
	assert_int_equal(arca_ingest_end(&b, &e), ARCA_OK);
	arca_instance_close(&in2);
}

/* Rollover: a folder spans stores and its UIDs go on across them. */
static void test_uids_rollover(void **state)
{
	fixture *fx = *state;
	arca_folder_view *v;
	size_t stores[8] = {0};
	import(fx, 0, 25, fx->inbox);
	import(fx, 30, 34, fx->sent);
	import(fx, 25, 32, fx->inbox);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_int_equal(v->count, 32);
	for (unsigned i = 0; i < 32; i++) {
		assert_int_equal(v->msgs[i].uid, i + 1);
		assert_true(v->msgs[i].store_id < 8);
		stores[v->msgs[i].store_id]++;
	}
	assert_true(stores[1] > 0 && stores[2] > 0 && stores[3] > 0 && stores[4] > 0);
	assert_int_equal(v->uid_next, 33);
	arca_folder_view_free(&v);
	v = view_of(fx->in, fx->sent);
	assert_true(v->count == 4 && v->msgs[3].uid == 4);
	arca_folder_view_free(&v);
}

/* A store made current again, and a store disabled and enabled: no UID is given twice and
 * none goes backwards. */
static void test_uids_stores(void **state)
{
	fixture *fx = *state;
	arca_folder_view *v;
	uint32_t s2;
	import(fx, 0, 10, fx->inbox);          /* store 1: 1..10 */
	s2 = new_store(fx);
	assert_int_equal(s2, 2);
	import(fx, 10, 20, fx->inbox);         /* store 2: 11..20 */
	set_state(fx, 1, ARCA_STORE_CURRENT);
	import(fx, 20, 30, fx->inbox);         /* store 1 again: 21..30 */
	import(fx, 0, 10, fx->inbox);          /* already there */
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_int_equal(v->count, 30);
	for (unsigned i = 0; i < 30; i++) {
		assert_int_equal(v->msgs[i].uid, i + 1);
		assert_int_equal(v->msgs[i].store_id, i >= 10 && i < 20 ? 2 : 1);
	}
	arca_folder_view_free(&v);
	/* disabled: its memberships leave the view, its UIDs stay taken */
	set_state(fx, 2, ARCA_STORE_DISABLED);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_true(v->count == 20 && v->msgs[9].uid == 10 && v->msgs[10].uid == 21);
	assert_int_equal(v->uid_next, 31);
	arca_folder_view_free(&v);
	/* the disabled store's UIDs are not given again (see also test_uids_lagging_mark) */
	import(fx, 40, 45, fx->inbox);         /* store 1: 31..35 */
	set_state(fx, 2, ARCA_STORE_NORMAL);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_int_equal(v->count, 35);
	for (unsigned i = 0; i < 35; i++)
		assert_int_equal(v->msgs[i].uid, i + 1);
	arca_folder_view_free(&v);
	reopen(fx);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_true(v->count == 35 && v->uid_next == 36);
	arca_folder_view_free(&v);
}

/* The high-water mark behind the stores (a crash between a store commit and its raise): the
 * next ingest still starts above every store, and disabling a store raises the mark first. */
static void test_uids_lagging_mark(void **state)
{
	fixture *fx = *state;
	char db[256];
	arca_folder_view *v;
	snprintf(db, sizeof(db), "%s/instance.db", fx->base);
	import(fx, 0, 10, fx->inbox);
	exec_sql(db, "UPDATE folders SET uid_next = 1");
	v = view_of(fx->in, fx->inbox);
	assert_int_equal(v->uid_next, 11); /* the stores count too */
	arca_folder_view_free(&v);
	import(fx, 10, 15, fx->inbox);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_true(v->count == 15 && v->msgs[14].uid == 15);
	arca_folder_view_free(&v);
	/* lagging again, then store 1 disabled and another store current */
	exec_sql(db, "UPDATE folders SET uid_next = 1");
	new_store(fx);
	set_state(fx, 1, ARCA_STORE_DISABLED);
	import(fx, 20, 25, fx->inbox);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_true(v->count == 5 && v->msgs[0].uid == 16 && v->msgs[0].store_id == 2);
	arca_folder_view_free(&v);
	set_state(fx, 1, ARCA_STORE_NORMAL);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_true(v->count == 20 && v->uid_next == 21);
	arca_folder_view_free(&v);
}

/* Refresh appends what was committed since; a read-only handle never sees staged batches. */
static void test_view_refresh(void **state)
{
	fixture *fx = *state;
	arca_instance *ro = open_ro(fx);
	arca_folder_view *v, *w;
	arca_ingest *ing = NULL;
	arca_error e;
	char buf[4096];
	size_t added = 99;
	import(fx, 0, 10, fx->inbox);
	v = view_of(ro, fx->inbox);
	assert_int_equal(v->count, 10);
	assert_int_equal(arca_folder_view_refresh(ro, v, &added, &e), ARCA_OK);
	assert_int_equal(added, 0);
	/* staged, not committed: invisible to the reader (and to the writer's own views) */
	assert_int_equal(arca_ingest_begin(fx->in, 1000, NULL, NULL, &ing, &e), ARCA_OK);
	for (unsigned i = 10; i < 15; i++) {
		size_t n = make_msg(i, buf, sizeof(buf));
		assert_int_equal(arca_ingest_add(ing, buf, n, fx->aid, fx->inbox, NULL, &e), ARCA_OK);
	}
	assert_int_equal(arca_folder_view_refresh(ro, v, &added, &e), ARCA_OK);
	assert_int_equal(added, 0);
	assert_int_equal(v->uid_next, 11);
	w = view_of(fx->in, fx->inbox);
	assert_true(w->count == 10 && w->uid_next == 11);
	arca_folder_view_free(&w);
	w = view_of(ro, fx->inbox);
	same_view(v, w);
	arca_folder_view_free(&w);
	assert_int_equal(arca_ingest_commit(ing, &e), ARCA_OK);
	assert_int_equal(arca_folder_view_refresh(ro, v, &added, &e), ARCA_OK);
	assert_int_equal(added, 5);
	check_view(v);
	assert_true(v->count == 15 && v->msgs[14].uid == 15 && v->uid_next == 16);
	assert_int_equal(arca_ingest_end(&ing, &e), ARCA_OK);
	/* a store created by the writer (rollover) is found by the reader's refresh */
	new_store(fx);
	import(fx, 20, 23, fx->inbox);
	assert_int_equal(arca_folder_view_refresh(ro, v, &added, &e), ARCA_OK);
	assert_int_equal(added, 3);
	assert_true(v->msgs[15].store_id == 2 && v->msgs[17].uid == 18 && v->uid_next == 19);
	w = view_of(ro, fx->inbox);
	same_view(v, w);
	arca_folder_view_free(&w);
	/* a store disabled by the writer leaves the reader's next view */
	set_state(fx, 2, ARCA_STORE_DISABLED);
	w = view_of(ro, fx->inbox);
	assert_true(w->count == 15 && w->uid_next == 19);
	arca_folder_view_free(&w);
	arca_folder_view_free(&v);
	arca_instance_close(&ro);
}

typedef struct {
	fixture *fx;
	volatile int done;
	unsigned refreshes;
	size_t final_count;
	int failed;
} reader_ctx;

static void *reader(void *arg)
{
	reader_ctx *r = arg;
	arca_instance *ro = NULL;
	arca_folder_view *v = NULL;
	arca_error e;
	int last = 0;
	if (arca_instance_open(r->fx->base, r->fx->key, ARCA_INSTANCE_READONLY, &ro, &e) != ARCA_OK ||
	    arca_instance_folder_view(ro, r->fx->inbox, &v, &e) != ARCA_OK) {
		r->failed = 1;
		arca_instance_close(&ro);
		return NULL;
	}
	while (!last) {
		uint32_t before = v->uid_next;
		size_t added;
		last = r->done;
		if (arca_folder_view_refresh(ro, v, &added, &e) != ARCA_OK || v->uid_next < before) {
			r->failed = 2;
			break;
		}
		for (size_t i = 1; i < v->count; i++)
			if (v->msgs[i - 1].uid >= v->msgs[i].uid)
				r->failed = 3;
		if (v->count > 0 && v->msgs[v->count - 1].uid >= v->uid_next)
			r->failed = 4;
		r->refreshes++;
	}
	r->final_count = v->count;
	/* after the writer is done the refreshed view equals a new one */
	{
		arca_folder_view *w = NULL;
		if (arca_instance_folder_view(ro, r->fx->inbox, &w, &e) != ARCA_OK ||
		    w->count != v->count || w->uid_next != v->uid_next ||
		    memcmp(w->msgs, v->msgs, v->count * sizeof(*v->msgs)) != 0)
			r->failed = 5;
		arca_folder_view_free(&w);
	}
	arca_folder_view_free(&v);
	arca_instance_close(&ro);
	return NULL;
}

/* A reader thread (its own read-only handle) refreshes while the writer imports across a
 * rollover: always sorted, never a staged membership, and in the end the full folder. */
static void test_view_reader_thread(void **state)
{
	fixture *fx = *state;
	reader_ctx r = {.fx = fx};
	pthread_t t;
	import(fx, 0, 3, fx->inbox);
	assert_int_equal(pthread_create(&t, NULL, reader, &r), 0);
	for (unsigned k = 0; k < 6; k++)
		import_on(fx->in, 3 + 10 * k, 13 + 10 * k, fx->aid, fx->inbox, 3);
	r.done = 1;
	assert_int_equal(pthread_join(t, NULL), 0);
	if (r.failed)
		fprintf(stderr, "reader failed: %d after %u refreshes\n", r.failed, r.refreshes);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.final_count, 63);
}

/* Turns a store into format 4 (members without UIDs). */
#define TO_FORMAT4_SQL \
	"CREATE TABLE m4(folder_id INTEGER NOT NULL, message_id INTEGER NOT NULL," \
	" archive_id INTEGER NOT NULL, batch INTEGER NOT NULL," \
	" PRIMARY KEY(folder_id, message_id)) WITHOUT ROWID;" \
	"INSERT INTO m4 SELECT folder_id, message_id, archive_id, batch FROM members;" \
	"DROP TABLE members; ALTER TABLE m4 RENAME TO members;" \
	"CREATE INDEX members_archive ON members(archive_id, message_id);" \
	"CREATE INDEX members_batch ON members(batch);" \
	"UPDATE settings SET format = 4;"

/* ... and the instance database into one without UIDs. */
#define OLD_FOLDERS_SQL \
	"CREATE TABLE f0(id INTEGER PRIMARY KEY, archive_id INTEGER NOT NULL," \
	" path TEXT NOT NULL, UNIQUE(archive_id, path));" \
	"INSERT INTO f0 SELECT id, archive_id, path FROM folders;" \
	"DROP TABLE folders; ALTER TABLE f0 RENAME TO folders;"

static void downgrade(fixture *fx, unsigned nstores)
{
	char p[256];
	arca_instance_close(&fx->in);
	for (unsigned i = 1; i <= nstores; i++) {
		snprintf(p, sizeof(p), "%s/stores/%u/meta.db", fx->base, i);
		exec_sql(p, TO_FORMAT4_SQL);
	}
	snprintf(p, sizeof(p), "%s/instance.db", fx->base);
	exec_sql(p, OLD_FOLDERS_SQL);
}

/* Stores and an instance database from before UIDs: a read-only handle has no UIDs to show,
 * a writable open upgrades them in store order (store 1 gets the lower UIDs), a store that
 * was disabled meanwhile is upgraded when enabled, above the others. */
static void test_upgrade_format4(void **state)
{
	fixture *fx = *state;
	arca_instance *ro;
	arca_folder_view *v = NULL;
	arca_folder_info *fi;
	size_t n;
	arca_error e;
	import(fx, 0, 10, fx->inbox);
	import(fx, 0, 5, fx->sent);
	new_store(fx);
	import(fx, 10, 20, fx->inbox);
	new_store(fx);
	import(fx, 20, 25, fx->inbox);
	set_state(fx, 2, ARCA_STORE_CURRENT);
	set_state(fx, 3, ARCA_STORE_DISABLED);
	downgrade(fx, 3);
	ro = open_ro(fx);
	assert_int_equal(arca_instance_folder_view(ro, fx->inbox, &v, &e), ARCA_ERR_STATE);
	assert_int_equal(arca_instance_folders(ro, fx->aid, &fi, &n, &e), ARCA_OK);
	assert_true(n == 2 && fi[0].messages == 20 && fi[0].uidvalidity == 0);
	arca_folder_infos_free(fi, n);
	open_rw(fx);
	/* the read-only handle opened before the upgrade sees it too */
	v = view_of(ro, fx->inbox);
	assert_int_equal(v->count, 20);
	arca_folder_view_free(&v);
	arca_instance_close(&ro);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_int_equal(v->count, 20);
	for (unsigned i = 0; i < 20; i++) {
		assert_int_equal(v->msgs[i].uid, i + 1);
		assert_int_equal(v->msgs[i].store_id, i < 10 ? 1 : 2);
	}
	assert_int_equal(v->uid_next, 21);
	arca_folder_view_free(&v);
	v = view_of(fx->in, fx->sent);
	assert_true(v->count == 5 && v->msgs[4].uid == 5);
	arca_folder_view_free(&v);
	/* the read-only handle can now */
	ro = open_ro(fx);
	v = view_of(ro, fx->inbox);
	assert_int_equal(v->count, 20);
	arca_folder_view_free(&v);
	arca_instance_close(&ro);
	import(fx, 30, 32, fx->inbox); /* store 2 is current: 21, 22 */
	set_state(fx, 3, ARCA_STORE_NORMAL);
	v = view_of(fx->in, fx->inbox);
	check_view(v);
	assert_int_equal(v->count, 27);
	assert_true(v->msgs[20].uid == 21 && v->msgs[22].uid == 23 && v->msgs[22].store_id == 3);
	assert_int_equal(v->uid_next, 28);
	arca_folder_view_free(&v);
	import(fx, 40, 41, fx->inbox);
	v = view_of(fx->in, fx->inbox);
	assert_true(v->count == 28 && v->msgs[27].uid == 28);
	arca_folder_view_free(&v);
}

typedef struct {
	unsigned n;
} damage_count;

static void damage_cb(void *ctx, uint32_t store_id, uint64_t msg_id, const char *reason)
{
	damage_count *d = ctx;
	(void)store_id;
	(void)msg_id;
	fprintf(stderr, "damage: %s\n", reason);
	d->n++;
}

/* Recreate restores the UIDs from the records: the view and UIDVALIDITY stay. */
static void test_recreate_uids(void **state)
{
	fixture *fx = *state;
	arca_folder_view *a, *b, *c, *d;
	damage_count dc = {0};
	uint64_t n;
	arca_error e;
	import(fx, 0, 10, fx->inbox);
	import(fx, 5, 15, fx->sent);     /* links records for 5..9 */
	import(fx, 20, 25, fx->inbox);
	import(fx, 12, 14, fx->inbox);   /* links: INBOX after Sent */
	a = view_of(fx->in, fx->inbox);
	b = view_of(fx->in, fx->sent);
	assert_int_equal(arca_instance_recreate(fx->in, 1, damage_cb, &dc, &n, &e), ARCA_OK);
	assert_int_equal(dc.n, 0);
	assert_int_equal(n, 20);
	c = view_of(fx->in, fx->inbox);
	d = view_of(fx->in, fx->sent);
	same_view(a, c);
	same_view(b, d);
	arca_folder_view_free(&c);
	arca_folder_view_free(&d);
	/* with the instance's marks lost too */
	{
		char db[256];
		snprintf(db, sizeof(db), "%s/instance.db", fx->base);
		exec_sql(db, "UPDATE folders SET uid_next = 1");
	}
	assert_int_equal(arca_instance_recreate(fx->in, 1, damage_cb, &dc, &n, &e), ARCA_OK);
	c = view_of(fx->in, fx->inbox);
	same_view(a, c);
	arca_folder_view_free(&c);
	import(fx, 30, 31, fx->inbox);
	c = view_of(fx->in, fx->inbox);
	assert_true(c->count == a->count + 1 && c->msgs[a->count].uid == a->uid_next);
	arca_folder_view_free(&c);
	arca_folder_view_free(&a);
	arca_folder_view_free(&b);
}

/* Records written before format 5 carry no UIDs: recreate gives those memberships new UIDs
 * above every UID of the folder and the folder a new, higher UIDVALIDITY; a view of the old
 * UIDVALIDITY refuses to refresh. */
static void test_recreate_old_records(void **state)
{
	fixture *fx = *state;
	arca_instance *ro = open_ro(fx);
	arca_folder_view *a, *b, *s1, *s2, *rv;
	inst_store *st;
	damage_count dc = {0};
	uint64_t n;
	size_t added;
	arca_error e;
	st = inst_store_by_id(fx->in, 1);
	assert_int_equal(inst_store_open(fx->in, st, true, &e), ARCA_OK);
	arca_store_set_rec_version(st->store, ARCA_REC_VERSION_2);
	import(fx, 0, 6, fx->inbox);     /* version-2 records: 1..6 */
	import(fx, 0, 2, fx->sent);      /* version-2 links */
	arca_store_set_rec_version(st->store, ARCA_REC_VERSION);
	import(fx, 6, 9, fx->inbox);     /* version 3: 7..9 */
	new_store(fx);
	import(fx, 9, 11, fx->inbox);    /* store 2: 10, 11 */
	import(fx, 20, 22, fx->sent);    /* store 2: Sent 3, 4 */
	a = view_of(fx->in, fx->inbox);
	s1 = view_of(fx->in, fx->sent);
	rv = view_of(ro, fx->inbox);
	assert_int_equal(a->count, 11);
	assert_int_equal(arca_instance_recreate(fx->in, 1, damage_cb, &dc, &n, &e), ARCA_OK);
	assert_int_equal(dc.n, 0);
	b = view_of(fx->in, fx->inbox);
	s2 = view_of(fx->in, fx->sent);
	check_view(b);
	check_view(s2);
	assert_int_equal(b->count, 11);
	assert_true(b->uidvalidity > a->uidvalidity);
	assert_true(s2->uidvalidity > s1->uidvalidity);
	/* 7..9 (store 1, recorded) and 10, 11 (store 2) keep their UIDs; 1..6 come after */
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(b->msgs[i].uid, a->msgs[6 + i].uid);
	for (unsigned i = 5; i < 11; i++) {
		assert_int_equal(b->msgs[i].uid, 12 + (i - 5));
		assert_int_equal(b->msgs[i].msg_id, i - 4);
	}
	assert_int_equal(b->uid_next, 18);
	assert_true(s2->count == 4 && s2->msgs[0].uid == 3 && s2->msgs[2].uid == 5);
	/* a view of the old UIDVALIDITY must be built anew */
	assert_int_equal(arca_folder_view_refresh(ro, rv, &added, &e), ARCA_ERR_STATE);
	assert_int_equal(rv->count, 11);
	import(fx, 40, 41, fx->inbox);
	arca_folder_view_free(&b);
	b = view_of(ro, fx->inbox);
	assert_true(b->count == 12 && b->msgs[11].uid == 18);
	arca_folder_view_free(&a);
	arca_folder_view_free(&b);
	arca_folder_view_free(&s1);
	arca_folder_view_free(&s2);
	arca_folder_view_free(&rv);
	arca_instance_close(&ro);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_uids_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_one_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_rollover, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_uids_stores, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_lagging_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_reader_thread, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_format4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recreate_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recreate_old_records, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

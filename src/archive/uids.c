/* IMAP UIDs of folders (instance.h, "IMAP UIDs"): the instance's per-folder UIDVALIDITY and
 * high-water mark, the UID lock, the hooks that number memberships without a UID (store
 * upgrade, recreate), folder views and per-message info for the IMAP server.
 *
 * Where UIDs live: every store's members table holds (folder_id, uid) as its key, so a
 * folder's memberships in UID order are one range of it in each store. A folder spans stores,
 * so UIDs are given by the instance: an ingest starts each folder at max(high-water, highest
 * UID of the folder in every enabled store) + 1 and raises the high-water after each durable
 * store commit; a crash in between loses nothing (the stores still hold the UIDs), and a
 * disabled store is covered by the high-water (raised from the store once more when it is
 * disabled). */
#include "archive/instance_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/fs.h"
#include "lib/log.h"

#define VALIDITY_NOW_SQL "max(1, min(4294967295, CAST(strftime('%s', 'now') AS INTEGER)))"

/* ---- instance database ---- */

static bool folders_has_uids(arca_instance *in)
{
	sqlite3_stmt *st;
	bool found;
	if (sqlite3_prepare_v2(in->db, "SELECT 1 FROM pragma_table_info('folders')"
	                       " WHERE name = 'uid_next'", -1, &st, NULL) != SQLITE_OK)
		return false;
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

arca_status inst_uid_db_upgrade(arca_instance *in, arca_error *err)
{
	arca_status st = ARCA_OK;
	in->has_uids = folders_has_uids(in);
	if (in->has_uids || (in->flags & ARCA_INSTANCE_READONLY))
		return ARCA_OK;
	if (sqlite3_exec(in->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "cannot upgrade the instance database");
	/* another process may have done it since the check above */
	if (!folders_has_uids(in) &&
	    sqlite3_exec(in->db, "ALTER TABLE folders ADD COLUMN uidvalidity INTEGER NOT NULL"
	                 " DEFAULT 0; ALTER TABLE folders ADD COLUMN uid_next INTEGER NOT NULL"
	                 " DEFAULT 1; UPDATE folders SET uidvalidity = " VALIDITY_NOW_SQL ";",
	                 NULL, NULL, NULL) != SQLITE_OK)
		st = inst_db_err(in, err, "cannot upgrade the instance database");
	if (st == ARCA_OK && sqlite3_exec(in->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		st = inst_db_err(in, err, "cannot upgrade the instance database");
	if (st != ARCA_OK) {
		sqlite3_exec(in->db, "ROLLBACK", NULL, NULL, NULL);
		return st;
	}
	arca_log(ARCA_LOG_INFO, "instance", "instance database upgraded: folders have UIDs");
	in->has_uids = true;
	return ARCA_OK;
}

/* archive id, UIDVALIDITY and high-water mark of folder f */
static arca_status folder_row(arca_instance *in, uint32_t f, uint32_t *archive_id,
                              uint32_t *validity, uint32_t *next, arca_error *err)
{
	sqlite3_stmt *st;
	arca_status res = ARCA_OK;
	int rc;
	if (!in->has_uids) /* a read-only handle: a writer may have upgraded it since */
		in->has_uids = folders_has_uids(in);
	if (!in->has_uids)
		return arca_error_set(err, ARCA_ERR_STATE, "the instance database predates IMAP UIDs: "
		                      "open the instance writable once to upgrade it");
	if (sqlite3_prepare_v2(in->db, "SELECT archive_id, uidvalidity, uid_next FROM folders"
	                       " WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "folders");
	sqlite3_bind_int64(st, 1, f);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t n = sqlite3_column_int64(st, 2);
		*archive_id = (uint32_t)sqlite3_column_int64(st, 0);
		*validity = (uint32_t)sqlite3_column_int64(st, 1);
		*next = n < 1 ? 1 : n > (int64_t)ARCA_UID_MAX + 1 ? ARCA_UID_MAX + 1 : (uint32_t)n;
	} else if (rc == SQLITE_DONE) {
		res = arca_error_set(err, ARCA_ERR_NOTFOUND, "no folder with id %u", (unsigned)f);
	} else {
		res = inst_db_err(in, err, "folders");
	}
	sqlite3_finalize(st);
	return res;
}

/* ---- the UID lock ---- */

arca_status inst_uid_lock(arca_instance *in, arca_error *err)
{
	char path[ARCA_PATH_MAX];
	int fd;
	if (in->uid_lock_depth > 0) {
		in->uid_lock_depth++;
		return ARCA_OK;
	}
	if (arca_fs_join(path, sizeof(path), in->base, "ingest.lock") != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_LIMIT, "base path too long");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return arca_error_errno(err, errno, "cannot open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return arca_error_set(err, ARCA_ERR_STATE, "another import or recreate is running in "
		                      "this instance (%s is locked)", path);
	}
	in->uid_lock_fd = fd;
	in->uid_lock_depth = 1;
	return ARCA_OK;
}

void inst_uid_unlock(arca_instance *in)
{
	if (in->uid_lock_depth == 0 || --in->uid_lock_depth > 0)
		return;
	close(in->uid_lock_fd); /* releases the flock */
	in->uid_lock_fd = -1;
}

/* ---- high-water marks ---- */

/* A read-only handle opened before another handle or process upgraded the store still sees
 * the old format: open it again. */
static arca_status reopen_if_old(arca_instance *in, inst_store *s, arca_error *err)
{
	if (arca_store_format(s->store) >= ARCA_STORE_FORMAT_UIDS || s->store_writable)
		return ARCA_OK;
	inst_store_close(s);
	return inst_store_open(in, s, false, err);
}

arca_status inst_uid_next(arca_instance *in, uint32_t folder_id, uint32_t exclude_store,
                          uint32_t *next, arca_error *err)
{
	uint32_t archive_id, validity, hw = 0;
	uint64_t n;
	arca_status st = folder_row(in, folder_id, &archive_id, &validity, &hw, err);
	if (st != ARCA_OK)
		return st;
	n = hw;
	for (size_t i = 0; i < in->n_stores; i++) {
		inst_store *s = &in->stores[i];
		uint32_t max = 0;
		arca_error e;
		if (s->id == exclude_store || s->state == ARCA_STORE_DISABLED || !s->key_ok)
			continue;
		if (inst_store_open(in, s, false, &e) != ARCA_OK) {
			/* its UIDs are below the high-water unless a crash came right after its last
			 * commit; nothing better can be done without reading it */
			arca_log(ARCA_LOG_WARN, "instance", "store %u not read for UIDs: %s", s->id,
			         e.msg);
			continue;
		}
		/* not upgraded (or upgraded by another process after this handle was opened: then
		 * the high-water marks cover it): its upgrade goes above these */
		if (arca_store_format(s->store) < ARCA_STORE_FORMAT_UIDS)
			continue;
		if ((st = arca_store_folder_max_uid(s->store, folder_id, &max, err)) != ARCA_OK)
			return st;
		if ((uint64_t)max + 1 > n)
			n = (uint64_t)max + 1;
	}
	*next = n > (uint64_t)ARCA_UID_MAX + 1 ? ARCA_UID_MAX + 1 : (uint32_t)n;
	return ARCA_OK;
}

arca_status inst_uid_raise(arca_instance *in, const uint32_t *ids, const uint32_t *next, size_t n,
                           arca_error *err)
{
	sqlite3_stmt *st = NULL;
	arca_status res = ARCA_OK;
	if (n == 0)
		return ARCA_OK;
	if (!in->has_uids)
		return arca_error_set(err, ARCA_ERR_STATE, "the instance database predates IMAP UIDs");
	if (sqlite3_exec(in->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "cannot record UIDs");
	if (sqlite3_prepare_v2(in->db, "UPDATE folders SET uid_next = max(uid_next, ?2) WHERE id = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		res = inst_db_err(in, err, "cannot record UIDs");
	for (size_t i = 0; i < n && res == ARCA_OK; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_int64(st, 2, next[i]);
		if (sqlite3_step(st) != SQLITE_DONE)
			res = inst_db_err(in, err, "cannot record UIDs");
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (res == ARCA_OK && sqlite3_exec(in->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		res = inst_db_err(in, err, "cannot record UIDs");
	if (res != ARCA_OK)
		sqlite3_exec(in->db, "ROLLBACK", NULL, NULL, NULL);
	return res;
}

typedef struct {
	uint32_t *ids, *next;
	size_t n, cap;
} fold_list;

static arca_status fold_cb(void *ctx, uint32_t folder_id, uint32_t max_uid)
{
	fold_list *l = ctx;
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 64;
		uint32_t *a = realloc(l->ids, nc * sizeof(*a)), *b;
		if (a == NULL)
			return ARCA_ERR_NOMEM;
		l->ids = a;
		if ((b = realloc(l->next, nc * sizeof(*b))) == NULL)
			return ARCA_ERR_NOMEM;
		l->next = b;
		l->cap = nc;
	}
	l->ids[l->n] = folder_id;
	l->next[l->n++] = max_uid + 1;
	return ARCA_OK;
}

arca_status inst_uid_fold_store(arca_instance *in, inst_store *s, arca_error *err)
{
	arca_store_paths p = {.meta_path = s->meta_db, .content_dir = s->content_dir};
	arca_store *tmp = NULL, *h = s->store;
	fold_list l = {0};
	arca_status st;
	/* a disabled store (recreated) is read through a handle of its own */
	if (h == NULL && s->state == ARCA_STORE_DISABLED) {
		if ((st = arca_store_open(&p, s->key, s->key_id, ARCA_STORE_READONLY, &tmp, err)) !=
		    ARCA_OK)
			return st;
		h = tmp;
	} else if (h == NULL) {
		if ((st = inst_store_open(in, s, false, err)) != ARCA_OK)
			return st;
		h = s->store;
	}
	st = arca_store_each_folder_max_uid(h, fold_cb, &l, err);
	arca_store_close(&tmp);
	if (st == ARCA_ERR_NOMEM)
		st = arca_error_set(err, st, "out of memory");
	if (st == ARCA_OK)
		st = inst_uid_raise(in, l.ids, l.next, l.n, err);
	free(l.ids);
	free(l.next);
	return st;
}

/* ---- hooks for a store upgrade or recreate ---- */

static arca_status hook_base(void *ctx, uint32_t folder_id, uint32_t *first)
{
	inst_uid_ctx *c = ctx;
	arca_error e;
	arca_status st = inst_uid_next(c->in, folder_id, c->store_id, first, &e);
	if (st == ARCA_ERR_NOTFOUND) {
		/* a folder id the instance does not know (metadata from elsewhere): the store's own
		 * numbering is all there is */
		*first = 1;
		return ARCA_OK;
	}
	if (st != ARCA_OK)
		arca_log(ARCA_LOG_ERROR, "instance", "store %u folder %u: %s", c->store_id,
		         (unsigned)folder_id, e.msg);
	return st;
}

static void hook_assigned(void *ctx, uint32_t folder_id, uint64_t n)
{
	inst_uid_ctx *c = ctx;
	(void)n;
	if (c->nbumped == c->capbumped) {
		size_t nc = c->capbumped ? 2 * c->capbumped : 16;
		uint32_t *a = realloc(c->bumped, nc * sizeof(*a));
		if (a == NULL) {
			c->nomem = true;
			return;
		}
		c->bumped = a;
		c->capbumped = nc;
	}
	c->bumped[c->nbumped++] = folder_id;
}

void inst_uid_hooks(inst_uid_ctx *c, arca_instance *in, uint32_t store_id, bool recreate,
                    arca_store_uid_hooks *h)
{
	memset(c, 0, sizeof(*c));
	c->in = in;
	c->store_id = store_id;
	h->uid_base = hook_base;
	h->uids_assigned = recreate ? hook_assigned : NULL;
	h->ctx = c;
}

arca_status inst_uid_bump(inst_uid_ctx *c, arca_error *err)
{
	arca_instance *in = c->in;
	sqlite3_stmt *st = NULL;
	arca_status res = ARCA_OK;
	if (c->nomem)
		res = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory: UIDVALIDITY not changed");
	if (res == ARCA_OK && c->nbumped > 0 &&
	    sqlite3_prepare_v2(in->db, "UPDATE folders SET uidvalidity = max(uidvalidity + 1, "
	                       VALIDITY_NOW_SQL ") WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		res = inst_db_err(in, err, "cannot change UIDVALIDITY");
	for (size_t i = 0; i < c->nbumped && res == ARCA_OK; i++) {
		sqlite3_bind_int64(st, 1, c->bumped[i]);
		if (sqlite3_step(st) != SQLITE_DONE)
			res = inst_db_err(in, err, "cannot change UIDVALIDITY");
		sqlite3_reset(st);
		if (res == ARCA_OK)
			arca_log(ARCA_LOG_WARN, "instance", "folder %u: UIDs given anew (records without "
			         "UIDs); UIDVALIDITY changed", (unsigned)c->bumped[i]);
	}
	sqlite3_finalize(st);
	free(c->bumped);
	c->bumped = NULL;
	c->nbumped = c->capbumped = 0;
	return res;
}

/* ---- folder views ---- */

typedef struct {
	arca_folder_view *v;
	uint32_t store_id;
} collect_ctx;

static arca_status grow_view(arca_folder_view *v)
{
	size_t nc = v->cap ? 2 * v->cap : 1024;
	arca_folder_msg *m = realloc(v->msgs, nc * sizeof(*m));
	if (m == NULL)
		return ARCA_ERR_NOMEM;
	v->msgs = m;
	v->cap = nc;
	return ARCA_OK;
}

static arca_status collect_cb(void *ctx, uint32_t uid, uint64_t msg_id)
{
	collect_ctx *c = ctx;
	arca_folder_view *v = c->v;
	if (v->count == v->cap && grow_view(v) != ARCA_OK)
		return ARCA_ERR_NOMEM;
	v->msgs[v->count++] = (arca_folder_msg){.uid = uid, .store_id = c->store_id,
	                                        .msg_id = msg_id};
	return ARCA_OK;
}

static int cmp_msg(const void *a, const void *b)
{
	const arca_folder_msg *x = a, *y = b;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->store_id < y->store_id ? -1 : x->store_id > y->store_id;
}

typedef struct {
	inst_store *s;
	uint32_t max; /* highest UID >= from seen in the store (0: none) */
} seen_store;

/* The cut of folder f from `from` on: U such that every committed membership with from <= uid
 * < U is in the enabled stores' snapshots read here and every later one gets uid >= U. With v,
 * those memberships are appended to v (sorted, uid < U). Snapshots of different stores are
 * taken one after the other, so U = max(high-water read first, highest UID seen + 1) is
 * lowered to the lowest UID committed in a store after its snapshot (a store written while
 * the others were read): UIDs are given in commit order by one writer (the UID lock). */
static arca_status folder_cut(arca_instance *in, uint32_t f, uint32_t from, arca_folder_view *v,
                              uint32_t *archive_id, uint32_t *validity, uint32_t *cut,
                              arca_error *err)
{
	seen_store *seen = NULL;
	size_t nseen = 0, base = v != NULL ? v->count : 0;
	uint32_t hw = 0;
	uint64_t u;
	arca_status st;
	if (from == 0)
		from = 1;
	if ((in->flags & ARCA_INSTANCE_READONLY) && (st = inst_stores_sync(in, err)) != ARCA_OK)
		return st;
	if ((st = folder_row(in, f, archive_id, validity, &hw, err)) != ARCA_OK)
		return st;
	u = hw > from ? hw : from;
	seen = calloc(in->n_stores ? in->n_stores : 1, sizeof(*seen));
	if (seen == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < in->n_stores && st == ARCA_OK; i++) {
		inst_store *s = &in->stores[i];
		uint32_t max = 0;
		arca_error e;
		if (s->state == ARCA_STORE_DISABLED || !s->key_ok)
			continue;
		if (inst_store_open(in, s, false, &e) != ARCA_OK) {
			arca_log(ARCA_LOG_WARN, "instance", "store %u left out of folder %u: %s", s->id,
			         (unsigned)f, e.msg);
			continue;
		}
		if ((st = reopen_if_old(in, s, err)) != ARCA_OK)
			break;
		if (arca_store_format(s->store) < ARCA_STORE_FORMAT_UIDS) {
			st = arca_error_set(err, ARCA_ERR_STATE, "store %u predates IMAP UIDs: open the "
			                    "instance writable once to upgrade it", s->id);
			break;
		}
		if (v != NULL) {
			collect_ctx c = {.v = v, .store_id = s->id};
			size_t before = v->count;
			st = arca_store_folder_uids(s->store, f, from, collect_cb, &c, err);
			if (st == ARCA_ERR_NOMEM)
				st = arca_error_set(err, st, "out of memory (folder view)");
			if (v->count > before)
				max = v->msgs[v->count - 1].uid;
		} else {
			st = arca_store_folder_max_uid(s->store, f, &max, err);
			if (max < from)
				max = 0;
		}
		seen[nseen].s = s;
		seen[nseen++].max = max;
		if (max != 0 && (uint64_t)max + 1 > u)
			u = (uint64_t)max + 1;
	}
	/* what a store committed after its snapshot may lie below UIDs seen in later stores */
	for (size_t i = 0; i < nseen && st == ARCA_OK; i++) {
		uint32_t after = seen[i].max > from - 1 ? seen[i].max : from - 1, later = 0;
		st = arca_store_folder_uid_after(seen[i].s->store, f, after, &later, err);
		if (st == ARCA_OK && later != 0 && later < u)
			u = later;
	}
	free(seen);
	if (st != ARCA_OK) {
		if (v != NULL)
			v->count = base;
		return st;
	}
	*cut = u > (uint64_t)ARCA_UID_MAX + 1 ? ARCA_UID_MAX + 1 : (uint32_t)u;
	if (v != NULL) {
		size_t n = base;
		bool sorted = true;
		for (size_t i = base; i < v->count; i++) {
			if (v->msgs[i].uid >= *cut)
				continue; /* not part of this cut: the next refresh takes it */
			if (n > base && v->msgs[i].uid < v->msgs[n - 1].uid)
				sorted = false;
			v->msgs[n++] = v->msgs[i];
		}
		v->count = n;
		/* Stores usually hold disjoint UID ranges of a folder (one after another); a store
		 * made current again interleaves them. */
		if (!sorted)
			qsort(v->msgs + base, v->count - base, sizeof(*v->msgs), cmp_msg);
		n = base;
		for (size_t i = base; i < v->count; i++) {
			if (n > base && v->msgs[i].uid == v->msgs[n - 1].uid) {
				arca_log(ARCA_LOG_ERROR, "instance", "folder %u: UID %u in stores %u and %u; "
				         "the second is left out", (unsigned)f, (unsigned)v->msgs[i].uid,
				         v->msgs[n - 1].store_id, v->msgs[i].store_id);
				continue;
			}
			v->msgs[n++] = v->msgs[i];
		}
		v->count = n;
	}
	return ARCA_OK;
}

arca_status arca_instance_folder_view(arca_instance *in, uint32_t folder_id,
                                      arca_folder_view **out, arca_error *err)
{
	arca_folder_view *v = calloc(1, sizeof(*v));
	arca_status st;
	*out = NULL;
	if (v == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	v->folder_id = folder_id;
	st = folder_cut(in, folder_id, 1, v, &v->archive_id, &v->uidvalidity, &v->uid_next, err);
	if (st != ARCA_OK) {
		arca_folder_view_free(&v);
		return st;
	}
	*out = v;
	return ARCA_OK;
}

arca_status arca_folder_view_refresh(arca_instance *in, arca_folder_view *v, size_t *added,
                                     arca_error *err)
{
	uint32_t archive_id, validity, cut;
	size_t before = v->count;
	arca_status st;
	if (added != NULL)
		*added = 0;
	if (v->uid_next > ARCA_UID_MAX)
		return ARCA_OK; /* no UID can come */
	st = folder_cut(in, v->folder_id, v->uid_next, v, &archive_id, &validity, &cut, err);
	if (st != ARCA_OK)
		return st;
	if (validity != v->uidvalidity) {
		v->count = before;
		return arca_error_set(err, ARCA_ERR_STATE, "UIDVALIDITY of folder %u changed (%u -> %u)",
		                      (unsigned)v->folder_id, (unsigned)v->uidvalidity,
		                      (unsigned)validity);
	}
	v->uid_next = cut;
	if (added != NULL)
		*added = v->count - before;
	return ARCA_OK;
}

long arca_folder_view_find(const arca_folder_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->msgs[mid].uid == uid)
			return (long)mid;
		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void arca_folder_view_free(arca_folder_view **v)
{
	if (v == NULL || *v == NULL)
		return;
	free((*v)->msgs);
	free(*v);
	*v = NULL;
}

arca_status inst_uid_status(arca_instance *in, uint32_t folder_id, uint32_t *validity,
                            uint32_t *uid_next, arca_error *err)
{
	uint32_t archive_id;
	return folder_cut(in, folder_id, 1, NULL, &archive_id, validity, uid_next, err);
}

/* ---- per-message info ---- */

arca_status arca_instance_msginfo(arca_instance *in, uint32_t store_id, uint64_t msg_id,
                                  arca_message_info *out, arca_error *err)
{
	arca_folder_msg m = {.store_id = store_id, .msg_id = msg_id};
	return arca_instance_msginfo_many(in, &m, 1, out, err);
}

arca_status arca_instance_msginfo_many(arca_instance *in, const arca_folder_msg *msgs, size_t n,
                                       arca_message_info *out, arca_error *err)
{
	size_t done = 0;
	arca_status st = ARCA_OK;
	/* store by store, each in one snapshot: a snapshot per lookup costs more than the lookup
	 * (a view of interleaved stores alternates between them) */
	for (size_t k = 0; k < in->n_stores && done < n && st == ARCA_OK; k++) {
		inst_store *s = &in->stores[k];
		bool reading = false;
		for (size_t i = 0; i < n && st == ARCA_OK; i++) {
			arca_store_msginfo mi;
			if (msgs[i].store_id != s->id)
				continue;
			if (!reading) {
				if ((st = inst_store_open(in, s, false, err)) != ARCA_OK ||
				    (st = arca_store_read_begin(s->store, err)) != ARCA_OK)
					break;
				reading = true;
			}
			st = arca_store_msginfo_get(s->store, msgs[i].msg_id, &mi, err);
			if (st == ARCA_OK)
				out[i] = (arca_message_info){.size = mi.size,
				                             .archive_time = mi.archive_time};
			done++;
		}
		if (reading)
			arca_store_read_end(s->store);
	}
	if (st == ARCA_OK && done < n) {
		for (size_t i = 0; i < n; i++)
			if (inst_store_by_id(in, msgs[i].store_id) == NULL)
				return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store %u",
				                      (unsigned)msgs[i].store_id);
	}
	return st;
}

/* Listing, statistics, export iteration and maintenance (verify, recreate, rebuild index). */
#include "archive/instance_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/fs.h"
#include "lib/log.h"

/* Folders of archive_id (0: all) or the one folder folder_id (if not 0). */
static arca_status list_folders(arca_instance *in, uint32_t archive_id, uint32_t folder_id,
                                arca_folder_info **out, size_t *n, arca_error *err)
{
	sqlite3_stmt *st;
	arca_folder_info *v = NULL;
	size_t cnt = 0, cap = 0;
	arca_status res = ARCA_OK;
	*out = NULL;
	*n = 0;
	/* a read-only handle may serve for long: stores created or disabled since count */
	if ((in->flags & ARCA_INSTANCE_READONLY) && (res = inst_stores_sync(in, err)) != ARCA_OK)
		return res;
	if (sqlite3_prepare_v2(in->db,
	                       "SELECT f.id, f.archive_id, a.name, f.path FROM folders f JOIN archives a"
	                       " ON a.id=f.archive_id WHERE (?1=0 OR f.archive_id=?1)"
	                       " AND (?2=0 OR f.id=?2) ORDER BY a.name, f.path",
	                       -1, &st, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "folders");
	sqlite3_bind_int64(st, 1, archive_id);
	sqlite3_bind_int64(st, 2, folder_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		arca_folder_info *f;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			arca_folder_info *nv = realloc(v, ncap * sizeof(*nv));
			if (nv == NULL) {
				res = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
				break;
			}
			v = nv;
			cap = ncap;
		}
		f = &v[cnt++];
		memset(f, 0, sizeof(*f));
		f->id = (uint32_t)sqlite3_column_int64(st, 0);
		f->archive_id = (uint32_t)sqlite3_column_int64(st, 1);
		f->archive = strdup((const char *)sqlite3_column_text(st, 2));
		f->path = strdup((const char *)sqlite3_column_text(st, 3));
		if (f->archive == NULL || f->path == NULL)
			res = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < cnt && res == ARCA_OK; i++) {
		/* 0 while the instance database or a store predates UIDs (read-only handle) */
		if (inst_uid_status(in, v[i].id, &v[i].uidvalidity, &v[i].uid_next, NULL) != ARCA_OK)
			v[i].uidvalidity = v[i].uid_next = 0;
		for (size_t si = 0; si < in->n_stores; si++) {
			inst_store *s = &in->stores[si];
			uint64_t c = 0;
			if (s->state == ARCA_STORE_DISABLED || inst_store_open(in, s, false, NULL) != ARCA_OK)
				continue;
			if (arca_store_folder_count(s->store, v[i].id, &c, NULL) == ARCA_OK)
				v[i].messages += c;
		}
	}
	if (res != ARCA_OK) {
		arca_folder_infos_free(v, cnt);
		return res;
	}
	*out = v;
	*n = cnt;
	return ARCA_OK;
}

arca_status arca_instance_folders(arca_instance *in, uint32_t archive_id, arca_folder_info **out,
                                  size_t *n, arca_error *err)
{
	return list_folders(in, archive_id, 0, out, n, err);
}

arca_status arca_instance_folder_get(arca_instance *in, uint32_t folder_id,
                                     arca_folder_info **out, arca_error *err)
{
	size_t n = 0;
	arca_status st;
	*out = NULL;
	if (folder_id == 0)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no folder with id 0");
	st = list_folders(in, 0, folder_id, out, &n, err);
	if (st == ARCA_OK && n == 0)
		st = arca_error_set(err, ARCA_ERR_NOTFOUND, "no folder with id %u", (unsigned)folder_id);
	return st;
}

arca_status arca_instance_folder_lookup(arca_instance *in, const char *archive, const char *path,
                                        uint32_t *folder_id, arca_error *err)
{
	sqlite3_stmt *st;
	arca_status res = ARCA_OK;
	int rc;
	if (sqlite3_prepare_v2(in->db, "SELECT f.id FROM folders f JOIN archives a ON"
	                       " a.id = f.archive_id WHERE a.name = ?1 AND f.path = ?2", -1, &st,
	                       NULL) != SQLITE_OK)
		return inst_db_err(in, err, "folders");
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*folder_id = (uint32_t)sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		res = arca_error_set(err, ARCA_ERR_NOTFOUND, "no folder \"%s\" in archive \"%s\"", path,
		                     archive);
	else
		res = inst_db_err(in, err, "folders");
	sqlite3_finalize(st);
	return res;
}

void arca_folder_infos_free(arca_folder_info *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].archive);
		free(f[i].path);
	}
	free(f);
}

arca_status arca_instance_archives(arca_instance *in, arca_archive_info **out, size_t *n,
                                   arca_error *err)
{
	sqlite3_stmt *st;
	arca_archive_info *v = NULL;
	size_t cnt = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(in->db, "SELECT id, name FROM archives ORDER BY name", -1, &st, NULL) !=
	    SQLITE_OK)
		return inst_db_err(in, err, "archives");
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			arca_archive_info *nv = realloc(v, ncap * sizeof(*nv));
			if (nv == NULL)
				break;
			v = nv;
			cap = ncap;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		v[cnt].id = (uint32_t)sqlite3_column_int64(st, 0);
		v[cnt].name = strdup((const char *)sqlite3_column_text(st, 1));
		cnt++;
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < cnt; i++) {
		for (size_t si = 0; si < in->n_stores; si++) {
			inst_store *s = &in->stores[si];
			uint64_t m = 0, b = 0;
			if (s->state == ARCA_STORE_DISABLED || inst_store_open(in, s, false, NULL) != ARCA_OK)
				continue;
			if (arca_store_archive_stats(s->store, v[i].id, &m, &b, NULL) == ARCA_OK) {
				v[i].messages += m;
				v[i].raw_bytes += b;
			}
			if (arca_store_archive_stored(s->store, v[i].id, &b, NULL) == ARCA_OK)
				v[i].stored_bytes += b;
			{
				char p[ARCA_PATH_MAX], wal[ARCA_PATH_MAX + 8];
				if (inst_index_path(s, v[i].id, p, sizeof(p)) == ARCA_OK) {
					snprintf(wal, sizeof(wal), "%s-wal", p);
					v[i].index_bytes += arca_fs_du(p, false) + arca_fs_du(wal, false);
				}
			}
		}
	}
	*out = v;
	*n = cnt;
	return ARCA_OK;
}

void arca_archive_infos_free(arca_archive_info *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].name);
	free(a);
}

arca_status arca_instance_stores(arca_instance *in, arca_store_info **out, size_t *n,
                                 arca_error *err)
{
	arca_store_info *v = calloc(in->n_stores ? in->n_stores : 1, sizeof(*v));
	if (v == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < in->n_stores; i++) {
		inst_store *s = &in->stores[i];
		arca_store_stats ss;
		v[i].id = s->id;
		v[i].name = strdup(s->name);
		v[i].state = s->state;
		v[i].meta_path = strdup(s->meta_db);
		v[i].content_path = strdup(s->content_dir);
		v[i].index_path = strdup(s->index_dir);
		v[i].index_bytes = arca_fs_du(s->index_dir, false);
		if (s->state != ARCA_STORE_DISABLED && inst_store_open(in, s, false, NULL) == ARCA_OK &&
		    arca_store_stats_get(s->store, &ss, NULL) == ARCA_OK) {
			v[i].messages = ss.messages;
			v[i].memberships = ss.memberships;
			v[i].raw_bytes = ss.raw_bytes;
			v[i].stored_bytes = ss.stored_bytes;
			v[i].meta_bytes = ss.meta_bytes;
			v[i].stats_valid = true;
		}
	}
	*out = v;
	*n = in->n_stores;
	return ARCA_OK;
}

void arca_store_infos_free(arca_store_info *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].name);
		free(s[i].meta_path);
		free(s[i].content_path);
		free(s[i].index_path);
	}
	free(s);
}

typedef struct {
	arca_instance_msg_cb cb;
	void *ctx;
	uint32_t store_id;
	uint64_t last;
} each_ctx;

static arca_status each_cb(void *vctx, uint64_t msg_id, uint32_t archive_id, uint32_t folder_id,
                           uint64_t batch)
{
	each_ctx *c = vctx;
	(void)archive_id;
	(void)folder_id;
	(void)batch;
	if (msg_id == c->last)
		return ARCA_OK; /* same message in several folders: once */
	c->last = msg_id;
	return c->cb(c->ctx, c->store_id, msg_id);
}

arca_status arca_instance_each_message(arca_instance *in, uint32_t archive_id, uint32_t folder_id,
                                       arca_instance_msg_cb cb, void *ctx, arca_error *err)
{
	for (size_t i = 0; i < in->n_stores; i++) {
		inst_store *s = &in->stores[i];
		each_ctx c = {.cb = cb, .ctx = ctx, .store_id = s->id, .last = 0};
		arca_status st;
		if (s->state == ARCA_STORE_DISABLED)
			continue;
		if ((st = inst_store_open(in, s, false, err)) != ARCA_OK)
			return st;
		st = arca_store_each_member(s->store, archive_id, folder_id, each_cb, &c, err);
		if (st != ARCA_OK)
			return st;
	}
	return ARCA_OK;
}

typedef struct {
	arca_damage_cb cb;
	void *ctx;
	uint32_t store_id;
} damage_ctx;

static void damage_cb(void *vctx, uint64_t msg_id, const char *reason)
{
	damage_ctx *d = vctx;
	if (d->cb)
		d->cb(d->ctx, d->store_id, msg_id, reason);
}

arca_status arca_instance_verify(arca_instance *in, uint32_t store_id, arca_damage_cb cb, void *ctx,
                                 uint64_t *checked, uint64_t *damaged, arca_error *err)
{
	*checked = 0;
	*damaged = 0;
	if (store_id != 0 && inst_store_by_id(in, store_id) == NULL)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store %u", store_id);
	for (size_t i = 0; i < in->n_stores; i++) {
		inst_store *s = &in->stores[i];
		damage_ctx d = {.cb = cb, .ctx = ctx, .store_id = s->id};
		uint64_t c = 0, dm = 0;
		arca_status st;
		if ((store_id != 0 && s->id != store_id) || s->state == ARCA_STORE_DISABLED)
			continue;
		if ((st = inst_store_open(in, s, false, err)) != ARCA_OK)
			return st;
		st = arca_store_verify(s->store, damage_cb, &d, &c, &dm, err);
		*checked += c;
		*damaged += dm;
		if (st != ARCA_OK)
			return st;
	}
	return ARCA_OK;
}

static arca_status resolve_cb(void *vctx, const char *archive_name, const char *folder_path,
                              uint32_t *archive_id, uint32_t *folder_id)
{
	arca_instance *in = vctx;
	arca_status st = inst_archive_for_record(in, archive_name, archive_id, NULL);
	if (st != ARCA_OK)
		return st;
	return arca_instance_folder_id(in, *archive_id, folder_path, true, folder_id, NULL);
}

static arca_status remove_indexes(inst_store *s, arca_error *err)
{
	/* index files are derived data: delete and rebuild */
	char cmd_path[ARCA_PATH_MAX];
	DIR *d;
	struct dirent *de;
	d = opendir(s->index_dir);
	if (d == NULL)
		return ARCA_OK;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != 'a')
			continue;
		if (arca_fs_join(cmd_path, sizeof(cmd_path), s->index_dir, de->d_name) == ARCA_OK &&
		    unlink(cmd_path) != 0) {
			closedir(d);
			return arca_error_errno(err, errno, "cannot remove %s", cmd_path);
		}
	}
	closedir(d);
	return ARCA_OK;
}

typedef struct {
	arca_instance *in;
	inst_store *s;
	arca_buf scratch;
	uint64_t n;
	arca_error *err;
} rebuild_ctx;

static arca_status rebuild_cb(void *vctx, uint64_t msg_id, uint32_t archive_id, uint32_t folder_id,
                              uint64_t batch)
{
	rebuild_ctx *c = vctx;
	arca_index *ix;
	arca_status st;
	(void)batch;
	st = inst_index_get(c->in, c->s, archive_id, true, &ix, c->err);
	if (st != ARCA_OK)
		return st;
	for (size_t i = 0; i < c->s->n_ix; i++) {
		if (c->s->ixs[i].ix == ix && !c->s->ixs[i].in_txn) {
			if ((st = arca_index_begin(ix, c->err)) != ARCA_OK)
				return st;
			c->s->ixs[i].in_txn = true;
		}
	}
	c->n++;
	return inst_index_message(c->in, c->s, ix, msg_id, folder_id, &c->scratch, c->err);
}

static arca_status rebuild_store_index(arca_instance *in, inst_store *s, uint64_t *docs,
                                       arca_error *err)
{
	rebuild_ctx c;
	arca_status st;
	inst_store_close(s);
	if ((st = remove_indexes(s, err)) != ARCA_OK)
		return st;
	if ((st = inst_store_open(in, s, true, err)) != ARCA_OK)
		return st;
	memset(&c, 0, sizeof(c));
	c.in = in;
	c.s = s;
	c.err = err;
	arca_buf_init(&c.scratch, ARCA_MAX_MESSAGE_SIZE);
	/* one walk over every membership fills every archive's (new, empty) index */
	in->rebuilding = true;
	st = arca_store_each_member(s->store, 0, 0, rebuild_cb, &c, err);
	in->rebuilding = false;
	for (size_t i = 0; i < s->n_ix; i++) {
		if (!s->ixs[i].in_txn)
			continue;
		s->ixs[i].in_txn = false;
		if (st == ARCA_OK)
			st = arca_index_commit(s->ixs[i].ix, arca_store_last_batch(s->store), err);
		else
			arca_index_rollback(s->ixs[i].ix);
	}
	arca_buf_free(&c.scratch);
	if (docs)
		*docs += c.n;
	return st;
}

arca_status arca_instance_rebuild_index(arca_instance *in, uint32_t store_id, uint64_t *docs,
                                        arca_error *err)
{
	if (docs)
		*docs = 0;
	if (store_id != 0 && inst_store_by_id(in, store_id) == NULL)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store %u", store_id);
	for (size_t i = 0; i < in->n_stores; i++) {
		inst_store *s = &in->stores[i];
		arca_status st;
		if ((store_id != 0 && s->id != store_id) || s->state == ARCA_STORE_DISABLED)
			continue;
		if (s->state == ARCA_STORE_WRITE_PROTECTED)
			return arca_error_set(err, ARCA_ERR_STATE, "store %u is write-protected", s->id);
		if ((st = rebuild_store_index(in, s, docs, err)) != ARCA_OK)
			return st;
	}
	return ARCA_OK;
}

arca_status arca_instance_recreate(arca_instance *in, uint32_t store_id, arca_damage_cb cb,
                                   void *ctx, uint64_t *messages, arca_error *err)
{
	inst_store *s = inst_store_by_id(in, store_id);
	arca_store_paths p;
	damage_ctx d = {.cb = cb, .ctx = ctx, .store_id = store_id};
	arca_store_uid_hooks h;
	inst_uid_ctx uc;
	arca_status st;
	uint64_t docs = 0;
	if (s == NULL)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store %u", store_id);
	if (in->flags & ARCA_INSTANCE_READONLY)
		return arca_error_set(err, ARCA_ERR_STATE, "instance opened read-only");
	if (!s->key_ok)
		return arca_error_set(err, ARCA_ERR_CRYPTO, "store %u: data key cannot be unwrapped",
		                      store_id);
	/* memberships whose records carry no UID get new ones: no ingest may give UIDs meanwhile */
	if ((st = inst_uid_lock(in, err)) != ARCA_OK)
		return st;
	inst_store_close(s);
	p.meta_path = s->meta_db;
	p.content_dir = s->content_dir;
	inst_uid_hooks(&uc, in, store_id, true, &h);
	st = arca_store_recreate_meta_ex(&p, s->key, s->key_id, resolve_cb, in, &h, damage_cb, &d,
	                                 messages, err);
	/* the folders whose UIDs were given anew get a new UIDVALIDITY; the high-water marks
	 * cover the UIDs restored from the records */
	if (st == ARCA_OK)
		st = inst_uid_bump(&uc, err);
	else
		free(uc.bumped);
	if (st == ARCA_OK)
		st = inst_uid_fold_store(in, s, err);
	inst_store_close(s);
	inst_uid_unlock(in);
	if (st != ARCA_OK)
		return st;
	if (s->state == ARCA_STORE_DISABLED || s->state == ARCA_STORE_WRITE_PROTECTED)
		return ARCA_OK;
	return rebuild_store_index(in, s, &docs, err);
}

/* Instance database, key hierarchy, archives/folders and the store registry. */
#include "archive/instance_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/fs.h"
#include "lib/log.h"

#define KEY_CHECK_LABEL "arca-key-check"
#define INSTANCE_KEY_LABEL "arca-instance-key"
#define STORE_KEY_LABEL "arca-store-key"

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE IF NOT EXISTS archives(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS folders(id INTEGER PRIMARY KEY, archive_id INTEGER NOT NULL,"
    " path TEXT NOT NULL, uidvalidity INTEGER NOT NULL DEFAULT 0,"
    " uid_next INTEGER NOT NULL DEFAULT 1, UNIQUE(archive_id, path));"
    "CREATE TABLE IF NOT EXISTS stores(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " state TEXT NOT NULL, meta_path TEXT NOT NULL, content_path TEXT NOT NULL,"
    " index_path TEXT NOT NULL, key_id INTEGER NOT NULL, wrapped_key BLOB NOT NULL,"
    " created INTEGER NOT NULL);";

arca_status inst_db_err(arca_instance *in, arca_error *err, const char *what)
{
	int code = sqlite3_errcode(in->db);
	if (code == SQLITE_FULL)
		return arca_error_set(err, ARCA_ERR_NOSPACE, "%s: disk full (%s)", what,
		                      sqlite3_errmsg(in->db));
	return arca_error_set(err, ARCA_ERR_DB, "%s: %s", what, sqlite3_errmsg(in->db));
}

const char *arca_store_state_name(arca_store_state s)
{
	switch (s) {
	case ARCA_STORE_DISABLED: return "disabled";
	case ARCA_STORE_WRITE_PROTECTED: return "write-protected";
	case ARCA_STORE_NORMAL: return "normal";
	case ARCA_STORE_CURRENT: return "current";
	}
	return "?";
}

arca_status arca_store_state_parse(const char *name, arca_store_state *out)
{
	for (int i = ARCA_STORE_DISABLED; i <= ARCA_STORE_CURRENT; i++) {
		if (strcmp(name, arca_store_state_name((arca_store_state)i)) == 0) {
			*out = (arca_store_state)i;
			return ARCA_OK;
		}
	}
	return ARCA_ERR_INVALID;
}

/* ---- key file ---- */

static arca_status read_key_file(const char *path, uint8_t key[ARCA_KEY_LEN], arca_error *err)
{
	arca_buf b;
	arca_status st;
	arca_buf_init(&b, 4096);
	st = arca_fs_read_file(path, 4096, &b, err);
	if (st != ARCA_OK) {
		arca_buf_free(&b);
		return arca_error_set(err, st, "cannot read instance key file %s: %s", path,
		                      st == ARCA_ERR_NOTFOUND ? "no such file" : err ? err->msg : "");
	}
	st = arca_hex_decode(b.data ? b.data : "", key, ARCA_KEY_LEN);
	arca_buf_free(&b);
	if (st != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "instance key file %s must hold 64 hex digits (32 bytes)", path);
	return ARCA_OK;
}

static arca_status write_key_file(const char *path, const uint8_t key[ARCA_KEY_LEN],
                                  arca_error *err)
{
	char hex[2 * ARCA_KEY_LEN + 2];
	arca_status st;
	arca_hex_encode(key, ARCA_KEY_LEN, hex);
	strcat(hex, "\n");
	st = arca_fs_write_atomic(path, hex, strlen(hex), 0600, err);
	arca_crypto_wipe(hex, sizeof(hex));
	return st;
}

static void recovery_format(const uint8_t k[ARCA_KEY_LEN], char out[ARCA_RECOVERY_KEY_TEXT])
{
	char hex[2 * ARCA_KEY_LEN + 1];
	size_t o = 0;
	arca_hex_encode(k, ARCA_KEY_LEN, hex);
	for (size_t i = 0; i < 2 * ARCA_KEY_LEN; i++) {
		if (i > 0 && i % 8 == 0)
			out[o++] = '-';
		out[o++] = (char)(hex[i] >= 'a' ? hex[i] - 'a' + 'A' : hex[i]);
	}
	out[o] = '\0';
	arca_crypto_wipe(hex, sizeof(hex));
}

/* ---- settings ---- */

static arca_status setting_set_blob(arca_instance *in, const char *key, const void *v, int len,
                                    arca_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if (sqlite3_prepare_v2(in->db, "INSERT OR REPLACE INTO settings(key,value) VALUES(?,?)", -1,
	                       &st, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "settings");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, v, len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? ARCA_OK : inst_db_err(in, err, "settings");
}

static arca_status setting_set_int(arca_instance *in, const char *key, int64_t v, arca_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if (sqlite3_prepare_v2(in->db, "INSERT OR REPLACE INTO settings(key,value) VALUES(?,?)", -1,
	                       &st, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "settings");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? ARCA_OK : inst_db_err(in, err, "settings");
}

/* Copies a blob setting of exactly len bytes; ARCA_ERR_NOTFOUND if absent. */
static arca_status setting_get_blob(arca_instance *in, const char *key, void *out, int len)
{
	sqlite3_stmt *st;
	arca_status res = ARCA_ERR_NOTFOUND;
	if (sqlite3_prepare_v2(in->db, "SELECT value FROM settings WHERE key=?", -1, &st, NULL) !=
	    SQLITE_OK)
		return ARCA_ERR_DB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == len) {
		memcpy(out, sqlite3_column_blob(st, 0), (size_t)len);
		res = ARCA_OK;
	}
	sqlite3_finalize(st);
	return res;
}

static int64_t setting_get_int(arca_instance *in, const char *key, int64_t def)
{
	sqlite3_stmt *st;
	int64_t v = def;
	if (sqlite3_prepare_v2(in->db, "SELECT value FROM settings WHERE key=?", -1, &st, NULL) !=
	    SQLITE_OK)
		return def;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static arca_status open_db(arca_instance *in, bool create, arca_error *err)
{
	char path[ARCA_PATH_MAX];
	int flags = (in->flags & ARCA_INSTANCE_READONLY) ? SQLITE_OPEN_READONLY
	                                                  : SQLITE_OPEN_READWRITE;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if (arca_fs_join(path, sizeof(path), in->base, "instance.db") != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_LIMIT, "base path too long");
	if (!create && !arca_fs_exists(path))
		return arca_error_set(err, ARCA_ERR_NOTFOUND,
		                      "%s is not an Arca instance (no instance.db; run arcactl init)",
		                      in->base);
	if (sqlite3_open_v2(path, &in->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		return arca_error_set(err, ARCA_ERR_DB, "cannot open %s: %s", path,
		                      in->db ? sqlite3_errmsg(in->db) : "out of memory");
	sqlite3_busy_timeout(in->db, 10000);
	sqlite3_exec(in->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;", NULL, NULL, NULL);
	if (create && sqlite3_exec(in->db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "cannot create instance database");
	return ARCA_OK;
}

/* ---- stores registry ---- */

static arca_status store_paths(arca_instance *in, inst_store *s, arca_error *err)
{
	char metadir[ARCA_PATH_MAX];
	if (arca_fs_expand(metadir, sizeof(metadir), in->base, s->meta_cfg) != ARCA_OK ||
	    arca_fs_join(s->meta_db, sizeof(s->meta_db), metadir, "meta.db") != ARCA_OK ||
	    arca_fs_expand(s->content_dir, sizeof(s->content_dir), in->base, s->content_cfg) !=
	        ARCA_OK ||
	    arca_fs_expand(s->index_dir, sizeof(s->index_dir), in->base, s->index_cfg) != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_LIMIT, "store %u: path too long", s->id);
	return ARCA_OK;
}

static void stores_free(arca_instance *in)
{
	for (size_t i = 0; i < in->n_stores; i++) {
		inst_store *s = &in->stores[i];
		inst_store_close(s);
		free(s->name);
		free(s->meta_cfg);
		free(s->content_cfg);
		free(s->index_cfg);
		arca_crypto_wipe(s->key, sizeof(s->key));
	}
	free(in->stores);
	in->stores = NULL;
	in->n_stores = 0;
}

static arca_status load_stores(arca_instance *in, arca_error *err)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	stores_free(in);
	if (sqlite3_prepare_v2(in->db,
	                       "SELECT id,name,state,meta_path,content_path,index_path,key_id,"
	                       "wrapped_key FROM stores ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "stores");
	while (sqlite3_step(st) == SQLITE_ROW) {
		inst_store *s;
		arca_store_state state = ARCA_STORE_NORMAL;
		if (in->n_stores == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			inst_store *ns = realloc(in->stores, ncap * sizeof(*ns));
			if (ns == NULL) {
				sqlite3_finalize(st);
				return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			}
			in->stores = ns;
			cap = ncap;
		}
		s = &in->stores[in->n_stores++];
		memset(s, 0, sizeof(*s));
		s->id = (uint32_t)sqlite3_column_int64(st, 0);
		s->name = strdup((const char *)sqlite3_column_text(st, 1));
		arca_store_state_parse((const char *)sqlite3_column_text(st, 2), &state);
		s->state = state;
		s->meta_cfg = strdup((const char *)sqlite3_column_text(st, 3));
		s->content_cfg = strdup((const char *)sqlite3_column_text(st, 4));
		s->index_cfg = strdup((const char *)sqlite3_column_text(st, 5));
		s->key_id = (uint32_t)sqlite3_column_int64(st, 6);
		if (s->name == NULL || s->meta_cfg == NULL || s->content_cfg == NULL ||
		    s->index_cfg == NULL) {
			sqlite3_finalize(st);
			return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		}
		if (sqlite3_column_bytes(st, 7) == ARCA_WRAPPED_KEY_LEN &&
		    arca_key_unwrap(in->key, sqlite3_column_blob(st, 7), STORE_KEY_LABEL, s->key, NULL) ==
		        ARCA_OK)
			s->key_ok = true;
		if (store_paths(in, s, err) != ARCA_OK) {
			sqlite3_finalize(st);
			return err ? err->status : ARCA_ERR_LIMIT;
		}
	}
	sqlite3_finalize(st);
	return ARCA_OK;
}

arca_status inst_stores_sync(arca_instance *in, arca_error *err)
{
	sqlite3_stmt *st;
	size_t i = 0;
	bool reload = false;
	int rc;
	if (sqlite3_prepare_v2(in->db, "SELECT id, state FROM stores ORDER BY id", -1, &st, NULL) !=
	    SQLITE_OK)
		return inst_db_err(in, err, "stores");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		arca_store_state state = ARCA_STORE_NORMAL;
		inst_store *s;
		if (i >= in->n_stores || in->stores[i].id != (uint32_t)sqlite3_column_int64(st, 0)) {
			reload = true;
			break;
		}
		s = &in->stores[i++];
		arca_store_state_parse((const char *)sqlite3_column_text(st, 1), &state);
		if (state != s->state) {
			s->state = state;
			if (state == ARCA_STORE_DISABLED)
				inst_store_close(s);
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return inst_db_err(in, err, "stores");
	if (reload || i != in->n_stores)
		return load_stores(in, err);
	return ARCA_OK;
}

inst_store *inst_store_by_id(arca_instance *in, uint32_t id)
{
	for (size_t i = 0; i < in->n_stores; i++)
		if (in->stores[i].id == id)
			return &in->stores[i];
	return NULL;
}

void inst_store_close(inst_store *s)
{
	for (size_t i = 0; i < s->n_ix; i++) {
		if (s->ixs[i].in_txn)
			arca_index_rollback(s->ixs[i].ix);
		arca_index_close(&s->ixs[i].ix);
	}
	free(s->ixs);
	s->ixs = NULL;
	s->n_ix = s->cap_ix = 0;
	arca_store_close(&s->store);
}

/* A writer's open; a store that predates UIDs is upgraded on the way (under the UID lock, its
 * folders numbered above the other stores), and the high-water marks raised to it. */
static arca_status open_writer(arca_instance *in, inst_store *s, arca_error *err)
{
	arca_store_paths p = {.meta_path = s->meta_db, .content_dir = s->content_dir};
	arca_store_uid_hooks h;
	inst_uid_ctx c;
	int fmt = ARCA_STORE_FORMAT_UIDS;
	bool locked = false;
	arca_status st;
	if (arca_store_meta_format(&p, &fmt, NULL) == ARCA_OK && fmt < ARCA_STORE_FORMAT_UIDS) {
		if ((st = inst_uid_lock(in, err)) != ARCA_OK)
			return st;
		locked = true;
	}
	inst_uid_hooks(&c, in, s->id, false, &h);
	st = arca_store_open_ex(&p, s->key, s->key_id, 0, &h, &s->store, err);
	if (st == ARCA_OK && locked) {
		arca_error e;
		arca_log(ARCA_LOG_INFO, "instance", "store %u upgraded: every membership has a UID",
		         s->id);
		/* if this fails the next ingest still starts above the store's UIDs */
		if (inst_uid_fold_store(in, s, &e) != ARCA_OK)
			arca_log(ARCA_LOG_WARN, "instance", "store %u: %s", s->id, e.msg);
	}
	if (locked)
		inst_uid_unlock(in);
	return st;
}

arca_status inst_store_upgrade(arca_instance *in, inst_store *s, arca_error *err)
{
	arca_store_paths p = {.meta_path = s->meta_db, .content_dir = s->content_dir};
	int fmt = ARCA_STORE_FORMAT_UIDS;
	arca_status st;
	if (in->flags & ARCA_INSTANCE_READONLY)
		return arca_error_set(err, ARCA_ERR_STATE, "instance opened read-only");
	if (!s->key_ok)
		return arca_error_set(err, ARCA_ERR_CRYPTO, "store %u: its data key cannot be unwrapped",
		                      s->id);
	/* an unreadable store is left alone: whatever uses it reports it, and a repaired or
	 * recreated one is upgraded at the next writable open */
	if (arca_store_meta_format(&p, &fmt, NULL) != ARCA_OK || fmt >= ARCA_STORE_FORMAT_UIDS)
		return ARCA_OK;
	/* also a write-protected store: the upgrade changes its metadata, not its messages */
	inst_store_close(s);
	st = open_writer(in, s, err);
	inst_store_close(s);
	return st;
}

void inst_upgrade_stores(arca_instance *in)
{
	for (size_t i = 0; i < in->n_stores; i++) {
		inst_store *s = &in->stores[i];
		arca_error e;
		if (s->state == ARCA_STORE_DISABLED || !s->key_ok)
			continue;
		if (inst_store_upgrade(in, s, &e) != ARCA_OK)
			arca_log(ARCA_LOG_ERROR, "instance", "store %u not upgraded to UIDs: %s", s->id,
			         e.msg);
	}
}

arca_status inst_store_open(arca_instance *in, inst_store *s, bool writable, arca_error *err)
{
	arca_store_paths p = {.meta_path = s->meta_db, .content_dir = s->content_dir};
	arca_store_stats stats;
	arca_status st;
	if (in->flags & ARCA_INSTANCE_READONLY)
		writable = false;
	if (s->state == ARCA_STORE_DISABLED)
		return arca_error_set(err, ARCA_ERR_STATE, "store %u is disabled", s->id);
	if (writable && s->state == ARCA_STORE_WRITE_PROTECTED)
		writable = false;
	if (!s->key_ok)
		return arca_error_set(err, ARCA_ERR_CRYPTO,
		                      "store %u: its data key cannot be unwrapped with this instance key",
		                      s->id);
	if (s->store != NULL) {
		if (!writable || s->store_writable)
			return ARCA_OK;
		inst_store_close(s);
	}
	if (writable)
		st = open_writer(in, s, err);
	else
		st = arca_store_open(&p, s->key, s->key_id, ARCA_STORE_READONLY, &s->store, err);
	if (st != ARCA_OK)
		return st;
	s->store_writable = writable;
	/* the message count is for rollover only: counting costs a scan, so only writers pay */
	if (writable && arca_store_stats_get(s->store, &stats, NULL) == ARCA_OK)
		s->content_count = stats.messages;
	return ARCA_OK;
}

static arca_status store_insert(arca_instance *in, const char *name, const char *meta,
                                const char *content, const char *index, arca_store_state state,
                                uint32_t *id_out, arca_error *err)
{
	uint8_t key[ARCA_KEY_LEN], wrapped[ARCA_WRAPPED_KEY_LEN];
	uint32_t key_id;
	sqlite3_stmt *st;
	int64_t id;
	char metacfg[ARCA_PATH_MAX], contentcfg[ARCA_PATH_MAX], indexcfg[ARCA_PATH_MAX];
	char namebuf[ARCA_NAME_MAX];
	inst_store tmp;
	arca_status res;
	arca_store_paths p;

	/* the next id is known before insertion so that default paths can name it */
	{
		sqlite3_stmt *q;
		id = 1;
		if (sqlite3_prepare_v2(in->db, "SELECT COALESCE(MAX(id),0)+1 FROM stores", -1, &q, NULL) ==
		    SQLITE_OK) {
			if (sqlite3_step(q) == SQLITE_ROW)
				id = sqlite3_column_int64(q, 0);
			sqlite3_finalize(q);
		}
	}
	snprintf(metacfg, sizeof(metacfg), "%s", meta ? meta : "");
	snprintf(contentcfg, sizeof(contentcfg), "%s", content ? content : "");
	snprintf(indexcfg, sizeof(indexcfg), "%s", index ? index : "");
	if (!meta)
		snprintf(metacfg, sizeof(metacfg), "~/stores/%lld", (long long)id);
	if (!content)
		snprintf(contentcfg, sizeof(contentcfg), "~/stores/%lld/content", (long long)id);
	if (!index)
		snprintf(indexcfg, sizeof(indexcfg), "~/stores/%lld/index", (long long)id);
	if (name == NULL || name[0] == '\0') {
		snprintf(namebuf, sizeof(namebuf), "store-%lld", (long long)id);
		name = namebuf;
	}
	memset(&tmp, 0, sizeof(tmp));
	tmp.id = (uint32_t)id;
	tmp.meta_cfg = metacfg;
	tmp.content_cfg = contentcfg;
	tmp.index_cfg = indexcfg;
	res = store_paths(in, &tmp, err);
	if (res != ARCA_OK)
		return res;
	{
		char metadir[ARCA_PATH_MAX];
		arca_fs_expand(metadir, sizeof(metadir), in->base, metacfg);
		if ((res = arca_fs_mkdirs(metadir, err)) != ARCA_OK ||
		    (res = arca_fs_mkdirs(tmp.content_dir, err)) != ARCA_OK ||
		    (res = arca_fs_mkdirs(tmp.index_dir, err)) != ARCA_OK)
			return res;
	}
	arca_crypto_random(key, sizeof(key));
	arca_crypto_random(&key_id, sizeof(key_id));
	res = arca_key_wrap(in->key, key, STORE_KEY_LABEL, wrapped, err);
	if (res != ARCA_OK)
		goto out;
	p.meta_path = tmp.meta_db;
	p.content_dir = tmp.content_dir;
	res = arca_store_create(&p, key, key_id, err);
	if (res != ARCA_OK)
		goto out;
	/* a copy of the wrapped key beside the containers, so a store can be re-attached */
	{
		char kp[ARCA_PATH_MAX], text[256], hex[2 * ARCA_WRAPPED_KEY_LEN + 1];
		arca_hex_encode(wrapped, sizeof(wrapped), hex);
		snprintf(text, sizeof(text), "arca-store-key 1\nkey_id %u\nwrapped %s\n", key_id, hex);
		if (arca_fs_join(kp, sizeof(kp), tmp.content_dir, "store.key") == ARCA_OK &&
		    (res = arca_fs_write_atomic(kp, text, strlen(text), 0600, err)) != ARCA_OK)
			goto out;
	}
	if (sqlite3_prepare_v2(in->db,
	                       "INSERT INTO stores(id,name,state,meta_path,content_path,index_path,"
	                       "key_id,wrapped_key,created) VALUES(?,?,?,?,?,?,?,?,?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		res = inst_db_err(in, err, "stores");
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, arca_store_state_name(state), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, metacfg, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, contentcfg, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, indexcfg, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, key_id);
	sqlite3_bind_blob(st, 8, wrapped, sizeof(wrapped), SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (int64_t)time(NULL));
	if (sqlite3_step(st) != SQLITE_DONE)
		res = inst_db_err(in, err, "cannot register store");
	sqlite3_finalize(st);
	if (res == ARCA_OK && id_out)
		*id_out = (uint32_t)id;
out:
	arca_crypto_wipe(key, sizeof(key));
	return res;
}

arca_status arca_instance_init(const char *base, const char *key_file, uint64_t store_max,
                               char recovery_text[ARCA_RECOVERY_KEY_TEXT], arca_error *err)
{
	arca_instance in;
	uint8_t rkey[ARCA_KEY_LEN], wrapped[ARCA_WRAPPED_KEY_LEN], zero[ARCA_KEY_LEN] = {0};
	char path[ARCA_PATH_MAX];
	arca_status st;

	memset(&in, 0, sizeof(in));
	in.uid_lock_fd = -1;
	in.has_uids = true;
	if (strlen(base) >= sizeof(in.base))
		return arca_error_set(err, ARCA_ERR_LIMIT, "base path too long");
	strcpy(in.base, base);
	if (arca_fs_join(path, sizeof(path), base, "instance.db") != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_LIMIT, "base path too long");
	if (arca_fs_exists(path))
		return arca_error_set(err, ARCA_ERR_EXISTS, "%s already holds an instance", base);
	if ((st = arca_crypto_init(err)) != ARCA_OK)
		return st;
	if (arca_fs_exists(key_file)) {
		if ((st = read_key_file(key_file, in.key, err)) != ARCA_OK)
			return st;
	} else {
		arca_crypto_random(in.key, sizeof(in.key));
		if ((st = write_key_file(key_file, in.key, err)) != ARCA_OK)
			return st;
	}
	if ((st = arca_fs_mkdirs(base, err)) != ARCA_OK)
		goto out;
	if ((st = open_db(&in, true, err)) != ARCA_OK)
		goto out;
	arca_crypto_random(rkey, sizeof(rkey));
	if ((st = arca_key_wrap(in.key, zero, KEY_CHECK_LABEL, wrapped, err)) != ARCA_OK ||
	    (st = setting_set_blob(&in, "key_check", wrapped, sizeof(wrapped), err)) != ARCA_OK ||
	    (st = arca_key_wrap(rkey, in.key, INSTANCE_KEY_LABEL, wrapped, err)) != ARCA_OK ||
	    (st = setting_set_blob(&in, "recovery_wrapped_key", wrapped, sizeof(wrapped), err)) !=
	        ARCA_OK ||
	    (st = setting_set_int(&in, "format", 1, err)) != ARCA_OK ||
	    (st = setting_set_int(&in, "store_max_messages",
	                          (int64_t)(store_max ? store_max : ARCA_DEFAULT_STORE_MAX), err)) !=
	        ARCA_OK)
		goto out;
	st = store_insert(&in, NULL, NULL, NULL, NULL, ARCA_STORE_CURRENT, NULL, err);
	if (st == ARCA_OK)
		recovery_format(rkey, recovery_text);
out:
	arca_crypto_wipe(rkey, sizeof(rkey));
	arca_crypto_wipe(in.key, sizeof(in.key));
	if (in.db)
		sqlite3_close(in.db);
	return st;
}

arca_status arca_instance_recover_key(const char *base, const char *recovery_text,
                                      const char *new_key_file, arca_error *err)
{
	arca_instance in;
	uint8_t rkey[ARCA_KEY_LEN], wrapped[ARCA_WRAPPED_KEY_LEN];
	arca_status st;
	memset(&in, 0, sizeof(in));
	in.flags = ARCA_INSTANCE_READONLY;
	in.uid_lock_fd = -1;
	if (strlen(base) >= sizeof(in.base))
		return arca_error_set(err, ARCA_ERR_LIMIT, "base path too long");
	strcpy(in.base, base);
	if (arca_hex_decode(recovery_text, rkey, sizeof(rkey)) != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "a recovery key is 64 hex digits (dashes allowed)");
	if ((st = arca_crypto_init(err)) != ARCA_OK || (st = open_db(&in, false, err)) != ARCA_OK)
		goto out;
	if (setting_get_blob(&in, "recovery_wrapped_key", wrapped, sizeof(wrapped)) != ARCA_OK) {
		st = arca_error_set(err, ARCA_ERR_CORRUPT, "instance database holds no recovery copy");
		goto out;
	}
	if (arca_key_unwrap(rkey, wrapped, INSTANCE_KEY_LABEL, in.key, NULL) != ARCA_OK) {
		st = arca_error_set(err, ARCA_ERR_CRYPTO, "wrong recovery key for this instance");
		goto out;
	}
	if (arca_fs_exists(new_key_file)) {
		st = arca_error_set(err, ARCA_ERR_EXISTS, "%s exists; will not overwrite a key file",
		                    new_key_file);
		goto out;
	}
	st = write_key_file(new_key_file, in.key, err);
out:
	arca_crypto_wipe(rkey, sizeof(rkey));
	arca_crypto_wipe(in.key, sizeof(in.key));
	if (in.db)
		sqlite3_close(in.db);
	return st;
}

arca_status arca_instance_open(const char *base, const char *key_file, int flags,
                               arca_instance **out, arca_error *err)
{
	arca_instance *in;
	uint8_t wrapped[ARCA_WRAPPED_KEY_LEN], zero[ARCA_KEY_LEN];
	arca_status st;
	*out = NULL;
	if ((st = arca_crypto_init(err)) != ARCA_OK)
		return st;
	arca_mime_init();
	in = calloc(1, sizeof(*in));
	if (in == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	in->flags = flags;
	in->uid_lock_fd = -1;
	if (strlen(base) >= sizeof(in->base)) {
		st = arca_error_set(err, ARCA_ERR_LIMIT, "base path too long");
		goto fail;
	}
	strcpy(in->base, base);
	if ((st = read_key_file(key_file, in->key, err)) != ARCA_OK)
		goto fail;
	if ((st = open_db(in, false, err)) != ARCA_OK)
		goto fail;
	if (setting_get_blob(in, "key_check", wrapped, sizeof(wrapped)) != ARCA_OK) {
		st = arca_error_set(err, ARCA_ERR_CORRUPT, "instance database has no key check value");
		goto fail;
	}
	if (arca_key_unwrap(in->key, wrapped, KEY_CHECK_LABEL, zero, NULL) != ARCA_OK) {
		st = arca_error_set(err, ARCA_ERR_CRYPTO,
		                    "the key in %s is not this instance's key", key_file);
		goto fail;
	}
	in->store_max = (uint64_t)setting_get_int(in, "store_max_messages", ARCA_DEFAULT_STORE_MAX);
	if ((st = inst_uid_db_upgrade(in, err)) != ARCA_OK)
		goto fail;
	if ((st = load_stores(in, err)) != ARCA_OK)
		goto fail;
	/* stores written before UIDs get them now, in store id order */
	if (!(flags & ARCA_INSTANCE_READONLY))
		inst_upgrade_stores(in);
	*out = in;
	return ARCA_OK;
fail:
	arca_instance_close(&in);
	return st;
}

void arca_instance_close(arca_instance **inst)
{
	arca_instance *in = *inst;
	if (in == NULL)
		return;
	stores_free(in);
	sqlite3_finalize(in->st_folder_name);
	while (in->uid_lock_depth > 0)
		inst_uid_unlock(in);
	if (in->db)
		sqlite3_close(in->db);
	arca_crypto_wipe(in->key, sizeof(in->key));
	free(in);
	*inst = NULL;
}

/* ---- archives and folders ---- */

static bool valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n >= max)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* The id of the row whose key is (scope, name) — archives have scope 0 — created by
 * insert_sql when missing and create is set. Both statements bind ?1 = scope, ?2 = name. */
static arca_status row_id(arca_instance *in, const char *select_sql, const char *insert_sql,
                          int64_t scope, const char *name, bool create, const char *what,
                          uint32_t *id, arca_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if (sqlite3_prepare_v2(in->db, select_sql, -1, &st, NULL) != SQLITE_OK)
		return inst_db_err(in, err, what);
	sqlite3_bind_int64(st, 1, scope);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return ARCA_OK;
	if (rc != SQLITE_DONE)
		return inst_db_err(in, err, what);
	if (!create)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no %s \"%s\"", what, name);
	if (sqlite3_prepare_v2(in->db, insert_sql, -1, &st, NULL) != SQLITE_OK)
		return inst_db_err(in, err, what);
	sqlite3_bind_int64(st, 1, scope);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return inst_db_err(in, err, what);
	*id = (uint32_t)sqlite3_last_insert_rowid(in->db);
	return ARCA_OK;
}

/* Names an archive had before a rename: they stay with it, so that recovery records written
 * under an old name (recreate resolves records by name) still reach it, and no other archive
 * may take them. Created when first needed (instances made before renames existed lack it). */
static bool aliases_ready(arca_instance *in)
{
	return sqlite3_exec(in->db, "CREATE TABLE IF NOT EXISTS archive_aliases(name TEXT PRIMARY KEY,"
	                            " archive_id INTEGER NOT NULL)", NULL, NULL, NULL) == SQLITE_OK;
}

/* The archive that had name before a rename: ARCA_OK with *id, NOTFOUND, or an error. */
static arca_status alias_id(arca_instance *in, const char *name, uint32_t *id, arca_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if (!aliases_ready(in))
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no alias");
	if (sqlite3_prepare_v2(in->db, "SELECT archive_id FROM archive_aliases WHERE name = ?1", -1, &st,
	                       NULL) != SQLITE_OK)
		return inst_db_err(in, err, "archive");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return ARCA_OK;
	return rc == SQLITE_DONE ? arca_error_set(err, ARCA_ERR_NOTFOUND, "no alias") :
	                           inst_db_err(in, err, "archive");
}

static arca_status check_archive_name(const char *name, arca_error *err)
{
	if (!valid_name(name, ARCA_NAME_MAX) || strchr(name, '/') != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "invalid archive name \"%s\" (1-255 bytes, no '/' or control chars)",
		                      name);
	return ARCA_OK;
}

arca_status arca_instance_archive_id(arca_instance *in, const char *name, bool create,
                                     uint32_t *id, arca_error *err)
{
	uint32_t other;
	arca_status st = check_archive_name(name, err);
	if (st != ARCA_OK)
		return st;
	st = row_id(in, "SELECT id FROM archives WHERE ?1 = 0 AND name = ?2", NULL, 0, name, false,
	            "archive", id, err);
	if (st != ARCA_ERR_NOTFOUND || !create)
		return st;
	if (alias_id(in, name, &other, NULL) == ARCA_OK)
		return arca_error_set(err, ARCA_ERR_EXISTS,
		                      "the name \"%s\" belonged to an archive that was renamed; it stays "
		                      "that archive's (its recovery records use it)", name);
	return row_id(in, "SELECT id FROM archives WHERE ?1 = 0 AND name = ?2",
	              "INSERT INTO archives(name, created) VALUES(?2, ?1 + strftime('%s', 'now'))", 0,
	              name, create, "archive", id, err);
}

arca_status inst_archive_for_record(arca_instance *in, const char *name, uint32_t *id,
                                    arca_error *err)
{
	arca_status st = check_archive_name(name, err);
	if (st != ARCA_OK)
		return st;
	st = row_id(in, "SELECT id FROM archives WHERE ?1 = 0 AND name = ?2", NULL, 0, name, false,
	            "archive", id, err);
	if (st == ARCA_ERR_NOTFOUND && alias_id(in, name, id, NULL) == ARCA_OK)
		return ARCA_OK;
	if (st != ARCA_ERR_NOTFOUND)
		return st;
	return arca_instance_archive_id(in, name, true, id, err);
}

arca_status arca_instance_archive_rename(arca_instance *in, const char *old_name,
                                         const char *new_name, arca_error *err)
{
	uint32_t id, other;
	arca_status st;
	int rc;
	if ((st = check_archive_name(new_name, err)) != ARCA_OK)
		return st;
	if (!aliases_ready(in))
		return inst_db_err(in, err, "archive rename");
	if (sqlite3_exec(in->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "archive rename");
	st = arca_instance_archive_id(in, old_name, false, &id, err);
	if (st == ARCA_OK && arca_instance_archive_id(in, new_name, false, &other, NULL) == ARCA_OK)
		st = arca_error_set(err, ARCA_ERR_EXISTS, "an archive named \"%s\" exists", new_name);
	if (st == ARCA_OK && alias_id(in, new_name, &other, NULL) == ARCA_OK && other != id)
		st = arca_error_set(err, ARCA_ERR_EXISTS,
		                    "the name \"%s\" belonged to another archive that was renamed; it "
		                    "stays that archive's", new_name);
	if (st == ARCA_OK) {
		sqlite3_stmt *q[3] = {NULL, NULL, NULL};
		const char *sql[3] = {
			"DELETE FROM archive_aliases WHERE name = ?2", /* renamed back */
			"INSERT OR REPLACE INTO archive_aliases(name, archive_id) VALUES(?1, ?3)",
			"UPDATE archives SET name = ?2 WHERE id = ?3",
		};
		rc = SQLITE_OK;
		for (int i = 0; i < 3 && rc == SQLITE_OK; i++) {
			rc = sqlite3_prepare_v2(in->db, sql[i], -1, &q[i], NULL);
			if (rc != SQLITE_OK)
				break;
			sqlite3_bind_text(q[i], 1, old_name, -1, SQLITE_STATIC);
			sqlite3_bind_text(q[i], 2, new_name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(q[i], 3, id);
			rc = sqlite3_step(q[i]) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		}
		for (int i = 0; i < 3; i++)
			sqlite3_finalize(q[i]);
		if (rc != SQLITE_OK)
			st = inst_db_err(in, err, "archive rename");
	}
	if (st == ARCA_OK && sqlite3_exec(in->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		st = inst_db_err(in, err, "archive rename");
	if (st != ARCA_OK)
		sqlite3_exec(in->db, "ROLLBACK", NULL, NULL, NULL);
	return st;
}

static arca_status folder_lookup_one(arca_instance *in, uint32_t archive_id, const char *path,
                                     bool create, uint32_t *id, arca_error *err)
{
	/* a new folder's UIDVALIDITY: the time, so that a folder made again never repeats one */
	return row_id(in, "SELECT id FROM folders WHERE archive_id = ?1 AND path = ?2",
	              "INSERT INTO folders(archive_id, path, uidvalidity) VALUES(?1, ?2,"
	              " max(1, min(4294967295, CAST(strftime('%s', 'now') AS INTEGER))))",
	              archive_id, path, create, "folder", id, err);
}

arca_status arca_instance_folder_id(arca_instance *in, uint32_t archive_id, const char *path,
                                    bool create, uint32_t *id, arca_error *err)
{
	char buf[ARCA_FOLDER_MAX];
	size_t n = strlen(path);
	if (!valid_name(path, ARCA_FOLDER_MAX) || path[0] == '/' || path[n - 1] == '/' ||
	    strstr(path, "//") != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID,
		                      "invalid folder path \"%s\" (names separated by '/', no control "
		                      "chars, at most %u bytes)",
		                      path, ARCA_FOLDER_MAX - 1);
	if (create) {
		/* parents first, so that the tree has no gaps */
		memcpy(buf, path, n + 1);
		for (char *p = buf; (p = strchr(p, '/')) != NULL; p++) {
			uint32_t pid;
			arca_status st;
			*p = '\0';
			st = folder_lookup_one(in, archive_id, buf, true, &pid, err);
			*p = '/';
			if (st != ARCA_OK)
				return st;
		}
	}
	return folder_lookup_one(in, archive_id, path, create, id, err);
}

arca_status inst_archive_name(arca_instance *in, uint32_t id, char *out, size_t outsz)
{
	sqlite3_stmt *st;
	arca_status res = ARCA_ERR_NOTFOUND;
	if (sqlite3_prepare_v2(in->db, "SELECT name FROM archives WHERE id=?", -1, &st, NULL) !=
	    SQLITE_OK)
		return ARCA_ERR_DB;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(out, outsz, "%s", (const char *)sqlite3_column_text(st, 0));
		res = ARCA_OK;
	}
	sqlite3_finalize(st);
	return res;
}

arca_status inst_folder_name(arca_instance *in, uint32_t id, char *archive, size_t asz, char *path,
                             size_t psz)
{
	sqlite3_stmt *st;
	arca_status res = ARCA_ERR_NOTFOUND;
	if (in->st_folder_name == NULL &&
	    sqlite3_prepare_v2(in->db,
	                       "SELECT a.name, f.path FROM folders f JOIN archives a ON "
	                       "a.id=f.archive_id WHERE f.id=?",
	                       -1, &in->st_folder_name, NULL) != SQLITE_OK)
		return ARCA_ERR_DB;
	st = in->st_folder_name;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(archive, asz, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(path, psz, "%s", (const char *)sqlite3_column_text(st, 1));
		res = ARCA_OK;
	}
	sqlite3_reset(st);
	return res;
}

/* ---- store registry commands ---- */

arca_status arca_instance_store_create(arca_instance *in, const char *name, const char *meta_dir,
                                       const char *content_dir, const char *index_dir,
                                       bool make_current, uint32_t *id, arca_error *err)
{
	uint32_t nid;
	arca_status st;
	if (in->flags & ARCA_INSTANCE_READONLY)
		return arca_error_set(err, ARCA_ERR_STATE, "instance opened read-only");
	st = store_insert(in, name, meta_dir, content_dir, index_dir, ARCA_STORE_NORMAL, &nid, err);
	if (st == ARCA_OK && make_current)
		st = arca_instance_store_set_state(in, nid, ARCA_STORE_CURRENT, err);
	if (st == ARCA_OK)
		st = load_stores(in, err);
	if (st == ARCA_OK && id)
		*id = nid;
	return st;
}

arca_status arca_instance_store_set_state(arca_instance *in, uint32_t id, arca_store_state state,
                                          arca_error *err)
{
	sqlite3_stmt *st;
	int rc;
	arca_store_state old;
	inst_store *s = inst_store_by_id(in, id);
	if (s == NULL) {
		arca_status lst = load_stores(in, err);
		if (lst != ARCA_OK)
			return lst;
		s = inst_store_by_id(in, id);
	}
	if (s == NULL)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store with id %u", id);
	old = s->state;
	/* A disabled store cannot be read: the high-water marks must cover its UIDs before, so
	 * that no UID of it is given again (they already do unless a crash came between a store
	 * commit and the raise after it). */
	if (state == ARCA_STORE_DISABLED && old != ARCA_STORE_DISABLED && s->key_ok) {
		arca_error e;
		arca_status fst = inst_store_open(in, s, false, &e);
		if (fst == ARCA_OK && arca_store_format(s->store) >= ARCA_STORE_FORMAT_UIDS)
			fst = inst_uid_fold_store(in, s, &e);
		if (fst != ARCA_OK)
			arca_log(ARCA_LOG_WARN, "instance", "store %u: UIDs not checked before disabling: "
			         "%s", id, e.msg);
	}
	if (sqlite3_exec(in->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return inst_db_err(in, err, "set store state");
	/* exactly one current store: the previous current one becomes normal */
	if (state == ARCA_STORE_CURRENT &&
	    sqlite3_exec(in->db, "UPDATE stores SET state='normal' WHERE state='current'", NULL, NULL,
	                 NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(in->db, "UPDATE stores SET state=? WHERE id=?", -1, &st, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, arca_store_state_name(state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || sqlite3_exec(in->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < in->n_stores; i++) {
		inst_store *o = &in->stores[i];
		if (state == ARCA_STORE_CURRENT && o->state == ARCA_STORE_CURRENT)
			o->state = ARCA_STORE_NORMAL;
	}
	s->state = state;
	if (state == ARCA_STORE_DISABLED || state == ARCA_STORE_WRITE_PROTECTED)
		inst_store_close(s);
	/* enabled again: a store disabled before UIDs existed gets them now, above the others */
	if (old == ARCA_STORE_DISABLED && state != ARCA_STORE_DISABLED) {
		arca_error e;
		if (inst_store_upgrade(in, s, &e) != ARCA_OK)
			arca_log(ARCA_LOG_ERROR, "instance", "store %u not upgraded to UIDs: %s", id,
			         e.msg);
	}
	return ARCA_OK;
fail:
	{
		arca_status r = inst_db_err(in, err, "set store state");
		sqlite3_exec(in->db, "ROLLBACK", NULL, NULL, NULL);
		return r;
	}
}

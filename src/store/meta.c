/* The metadata database: schema, connection settings and the key check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "store/store_int.h"

/* Rows are kept small (integer keys, WITHOUT ROWID members) because a store holds millions of
 * messages and re-archiving a corpus into another folder must cost only a few bytes each. */
/* Format 2: where each dictionary record lies (the dictionary itself stays in the container);
 * since format 4 the location of its first copy, and the SHA-256 of the dictionary so copies
 * can be cross-checked (NULL only if an upgrade found the record damaged). */
#define DICTS_SQL \
	"CREATE TABLE dicts(id INTEGER PRIMARY KEY, container INTEGER NOT NULL," \
	" offset INTEGER NOT NULL, stored_size INTEGER NOT NULL, sha256 BLOB);"
/* Format 3: where each links record lies and how many entries it holds, so verify can tell
 * when memberships are no longer recoverable from the containers. One row per links record
 * (usually one per batch; a batch with more than ARCA_REC_LINKS_FLUSH bytes of entries has
 * several, hence no key on batch). */
#define LINKS_SQL \
	"CREATE TABLE links(batch INTEGER NOT NULL, container INTEGER NOT NULL," \
	" offset INTEGER NOT NULL, stored_size INTEGER NOT NULL, entries INTEGER NOT NULL);"

/* Format 4: every copy of every dictionary record (at least two per dictionary, plus one at
 * the start of each container begun after it). A handful of rows per store. */
#define DICT_COPIES_SQL \
	"CREATE TABLE dict_copies(dict_id INTEGER NOT NULL, container INTEGER NOT NULL," \
	" offset INTEGER NOT NULL, stored_size INTEGER NOT NULL," \
	" PRIMARY KEY(container, offset)) WITHOUT ROWID;"

static const char schema_sql[] =
	"CREATE TABLE settings(id INTEGER PRIMARY KEY CHECK (id = 1), format INTEGER NOT NULL,"
	" key_id INTEGER NOT NULL, kcv BLOB NOT NULL, last_batch INTEGER NOT NULL,"
	" next_msg_id INTEGER NOT NULL);"
	"CREATE TABLE messages(id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE,"
	" size INTEGER NOT NULL, stored_size INTEGER NOT NULL, container INTEGER NOT NULL,"
	" offset INTEGER NOT NULL, archive_time INTEGER NOT NULL);"
	/* Format 5: keyed by (folder_id, uid), so a folder's memberships in UID order (an IMAP
	 * folder view, its highest UID) are one range of the table; "is message X already in
	 * folder F" goes through members_archive, whose entries carry folder_id and uid. */
	ARCA_MEMBERS_SQL ARCA_MEMBERS_INDEX_SQL ARCA_BATCH_UIDS_SQL
	"CREATE TABLE containers(id INTEGER PRIMARY KEY, committed_len INTEGER NOT NULL);"
	DICTS_SQL LINKS_SQL DICT_COPIES_SQL;

#define KCV_AAD "arca-store-key-check"
#define KCV_LEN (ARCA_GCM_NONCE_LEN + 32 + ARCA_GCM_TAG_LEN)

arca_status arca_meta_err(sqlite3 *db, int rc, arca_error *err, const char *what)
{
	int prim = rc & 0xff;
	arca_status st = prim == SQLITE_FULL ? ARCA_ERR_NOSPACE :
	                 prim == SQLITE_NOMEM ? ARCA_ERR_NOMEM :
	                 prim == SQLITE_IOERR ? ARCA_ERR_IO :
	                 prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB ? ARCA_ERR_CORRUPT :
	                 ARCA_ERR_DB;
	return arca_error_set(err, st, "%s: %s%s", what, db != NULL ? sqlite3_errmsg(db) :
	                      sqlite3_errstr(rc), prim == SQLITE_FULL ? " (disk full)" : "");
}

arca_status arca_meta_exec(sqlite3 *db, const char *sql, arca_error *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(db, rc, err, "metadata database");
	return ARCA_OK;
}

arca_status arca_meta_open(const char *path, int flags, sqlite3 **db, arca_error *err)
{
	int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	arca_status st;
	if (rc != SQLITE_OK) {
		st = arca_meta_err(*db, rc, err, path);
		sqlite3_close(*db);
		*db = NULL;
		return st;
	}
	sqlite3_extended_result_codes(*db, 1);
	sqlite3_busy_timeout(*db, 10000);
	/* synchronous=FULL: a COMMIT that returned is on disk. */
	st = arca_meta_exec(*db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;", err);
	if (st != ARCA_OK) {
		sqlite3_close(*db);
		*db = NULL;
	}
	return st;
}

arca_status arca_meta_init(sqlite3 *db, const uint8_t key[ARCA_KEY_LEN], uint32_t key_id,
                           arca_error *err)
{
	uint8_t kcv[KCV_LEN], zero[32] = {0};
	sqlite3_stmt *st = NULL;
	arca_status s;
	int rc;
	s = arca_meta_exec(db, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;", err);
	if (s != ARCA_OK)
		return s;
	s = arca_meta_exec(db, "BEGIN", err);
	if (s != ARCA_OK)
		return s;
	s = arca_meta_exec(db, schema_sql, err);
	if (s != ARCA_OK)
		goto fail;
	/* Key check value: an AEAD of a constant, so a wrong key is caught at open. */
	arca_crypto_random(kcv, ARCA_GCM_NONCE_LEN);
	s = arca_aead_seal(key, kcv, KCV_AAD, strlen(KCV_AAD), zero, sizeof(zero),
	                   kcv + ARCA_GCM_NONCE_LEN, kcv + ARCA_GCM_NONCE_LEN + 32, err);
	if (s != ARCA_OK)
		goto fail;
	rc = sqlite3_prepare_v2(db, "INSERT INTO settings VALUES(1, ?, ?, ?, 0, 1)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int(st, 1, ARCA_STORE_FORMAT);
		sqlite3_bind_int64(st, 2, key_id);
		sqlite3_bind_blob(st, 3, kcv, sizeof(kcv), SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		s = arca_meta_err(db, rc, err, "cannot initialise metadata database");
		goto fail;
	}
	return arca_meta_exec(db, "COMMIT", err);
fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return s;
}

arca_status arca_meta_check_key(sqlite3 *db, const uint8_t key[ARCA_KEY_LEN], uint32_t key_id,
                                uint64_t *last_batch, uint64_t *next_id, int *format,
                                arca_error *err)
{
	sqlite3_stmt *st = NULL;
	uint8_t kcv[KCV_LEN], plain[32];
	arca_status s = ARCA_OK;
	int rc = sqlite3_prepare_v2(db, "SELECT format, key_id, kcv, last_batch, next_msg_id"
	                                " FROM settings WHERE id = 1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(db, rc, err, "metadata database is not an arca store");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		s = rc == SQLITE_DONE ? arca_error_set(err, ARCA_ERR_CORRUPT,
		                                       "metadata database has no settings")
		                      : arca_meta_err(db, rc, err, "cannot read store settings");
		goto out;
	}
	if (sqlite3_column_int(st, 0) < ARCA_STORE_FORMAT_V1 ||
	    sqlite3_column_int(st, 0) > ARCA_STORE_FORMAT) {
		s = arca_error_set(err, ARCA_ERR_STATE, "unsupported store format %d",
		                   sqlite3_column_int(st, 0));
		goto out;
	}
	if ((uint32_t)sqlite3_column_int64(st, 1) != key_id) {
		s = arca_error_set(err, ARCA_ERR_CRYPTO, "store uses key id %u, not %u",
		                   (unsigned)sqlite3_column_int64(st, 1), (unsigned)key_id);
		goto out;
	}
	if (sqlite3_column_bytes(st, 2) != KCV_LEN) {
		s = arca_error_set(err, ARCA_ERR_CORRUPT, "store key check value malformed");
		goto out;
	}
	memcpy(kcv, sqlite3_column_blob(st, 2), KCV_LEN);
	if (arca_aead_open(key, kcv, KCV_AAD, strlen(KCV_AAD), kcv + ARCA_GCM_NONCE_LEN, 32, plain,
	                   kcv + ARCA_GCM_NONCE_LEN + 32, NULL) != ARCA_OK) {
		s = arca_error_set(err, ARCA_ERR_CRYPTO, "wrong key for this store");
		goto out;
	}
	if (last_batch != NULL)
		*last_batch = (uint64_t)sqlite3_column_int64(st, 3);
	if (next_id != NULL)
		*next_id = (uint64_t)sqlite3_column_int64(st, 4);
	if (format != NULL)
		*format = sqlite3_column_int(st, 0);
out:
	sqlite3_finalize(st);
	return s;
}

/* Runs a statement with up to two integer arguments that returns no rows. */
static int run2(sqlite3_stmt *q, int64_t a, int64_t b)
{
	int rc;
	sqlite3_bind_int64(q, 1, a);
	sqlite3_bind_int64(q, 2, b);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Folders whose rows in rm lack a UID get a start in temp.ub: max(hooks' base, highest UID
 * of the folder + 1); the folders and counts go to *assigned. */
static arca_status plan_uids(sqlite3 *db, const arca_store_uid_hooks *hooks,
                             arca_meta_assigned **assigned, size_t *nassigned, arca_error *err)
{
	sqlite3_stmt *q = NULL, *ins = NULL;
	arca_status st = ARCA_OK;
	size_t cap = 0;
	int rc = sqlite3_prepare_v2(db, "SELECT folder_id, count(*), (SELECT coalesce(max(uid), 0)"
	                            " FROM rm r2 WHERE r2.folder_id = r1.folder_id) FROM rm r1"
	                            " WHERE uid = 0 GROUP BY folder_id ORDER BY folder_id", -1, &q,
	                            NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO ub(folder_id, first) VALUES(?, ?)", -1, &ins,
		                        NULL);
	if (rc != SQLITE_OK) {
		st = arca_meta_err(db, rc, err, "cannot plan UIDs");
		goto out;
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t fid = sqlite3_column_int64(q, 0), n = sqlite3_column_int64(q, 1);
		int64_t max = sqlite3_column_int64(q, 2);
		uint32_t base = 1;
		uint64_t first;
		if (fid <= 0 || fid > UINT32_MAX) {
			st = arca_error_set(err, ARCA_ERR_CORRUPT, "membership with bad folder id %lld",
			                    (long long)fid);
			goto out;
		}
		if (hooks != NULL && hooks->uid_base != NULL &&
		    (st = hooks->uid_base(hooks->ctx, (uint32_t)fid, &base)) != ARCA_OK) {
			st = arca_error_set(err, st, "cannot find the first UID for folder %lld",
			                    (long long)fid);
			goto out;
		}
		first = (uint64_t)max + 1 > base ? (uint64_t)max + 1 : base;
		if (first == 0 || first - 1 + (uint64_t)n > ARCA_UID_MAX) {
			st = arca_error_set(err, ARCA_ERR_LIMIT, "folder %lld: no UIDs left for %lld "
			                    "memberships", (long long)fid, (long long)n);
			goto out;
		}
		if ((rc = run2(ins, fid, (int64_t)first)) != SQLITE_OK) {
			st = arca_meta_err(db, rc, err, "cannot plan UIDs");
			goto out;
		}
		if (*nassigned == cap) {
			size_t nc = cap ? 2 * cap : 8;
			arca_meta_assigned *na = realloc(*assigned, nc * sizeof(*na));
			if (na == NULL) {
				st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
				goto out;
			}
			*assigned = na;
			cap = nc;
		}
		(*assigned)[(*nassigned)++] = (arca_meta_assigned){.folder_id = (uint32_t)fid,
		                                                     .n = (uint64_t)n};
	}
	if (rc != SQLITE_DONE)
		st = arca_meta_err(db, rc, err, "cannot plan UIDs");
out:
	sqlite3_finalize(q);
	sqlite3_finalize(ins);
	return st;
}

arca_status arca_meta_fill_members(sqlite3 *db, bool dedup, const arca_store_uid_hooks *hooks,
                                   arca_meta_assigned **assigned, size_t *nassigned,
                                   arca_error *err)
{
	arca_status st = ARCA_OK;
	*assigned = NULL;
	*nassigned = 0;
	/* First wins: the walk of recreate (content record, then links records) and a (folder,
	 * message) pair mapped twice by a resolver. */
	if (dedup)
		st = arca_meta_exec(db, "DELETE FROM rm WHERE rowid NOT IN (SELECT min(rowid) FROM rm"
		                    " GROUP BY folder_id, message_id);"
		                    "UPDATE rm SET uid = 0 WHERE uid < 0 OR uid > 4294967294;"
		                    "UPDATE rm SET uid = 0 WHERE uid != 0 AND rowid NOT IN (SELECT"
		                    " min(rowid) FROM rm WHERE uid != 0 GROUP BY folder_id, uid);", err);
	if (st == ARCA_OK)
		st = arca_meta_exec(db, "CREATE TEMP TABLE ub(folder_id INTEGER PRIMARY KEY,"
		                    " first INTEGER);", err);
	if (st == ARCA_OK)
		st = plan_uids(db, hooks, assigned, nassigned, err);
	if (st == ARCA_OK && *nassigned > 0)
		st = arca_meta_exec(db, "UPDATE rm SET uid = x.first - 1 + x.n FROM (SELECT rm.rowid AS r,"
		                    " ub.first AS first, row_number() OVER (PARTITION BY rm.folder_id"
		                    " ORDER BY batch, message_id) AS n FROM rm JOIN ub USING (folder_id)"
		                    " WHERE uid = 0) AS x WHERE rm.rowid = x.r", err);
	if (st == ARCA_OK)
		st = arca_meta_exec(db, "INSERT INTO members(folder_id, uid, message_id, archive_id,"
		                    " batch) SELECT folder_id, uid, message_id, archive_id, batch FROM rm"
		                    " ORDER BY folder_id, uid;" ARCA_MEMBERS_INDEX_SQL
		                    "INSERT INTO batch_uids(batch, folder_id, first_uid, last_uid)"
		                    " SELECT batch, folder_id, min(uid), max(uid) FROM rm"
		                    " GROUP BY batch, folder_id;", err);
	sqlite3_exec(db, "DROP TABLE IF EXISTS temp.rm; DROP TABLE IF EXISTS temp.ub", NULL, NULL,
	             NULL);
	if (st != ARCA_OK) {
		free(*assigned);
		*assigned = NULL;
		*nassigned = 0;
	}
	return st;
}

/* Format 5: members gets UIDs (the table is rebuilt: its key becomes (folder_id, uid)). */
static arca_status members_v5(arca_store *s, const arca_store_uid_hooks *hooks, arca_error *err)
{
	arca_meta_assigned *a = NULL;
	size_t n = 0;
	arca_status st = arca_meta_exec(s->db, ARCA_RM_SQL "INSERT INTO rm(folder_id, message_id,"
	                                " archive_id, batch, uid) SELECT folder_id, message_id,"
	                                " archive_id, batch, 0 FROM members; DROP TABLE members;"
	                                " DROP TABLE IF EXISTS batch_uids;"
	                                ARCA_MEMBERS_SQL ARCA_BATCH_UIDS_SQL, err);
	/* one row per (folder, message) already, and none has a UID: nothing to deduplicate */
	if (st == ARCA_OK)
		st = arca_meta_fill_members(s->db, false, hooks, &a, &n, err);
	else
		sqlite3_exec(s->db, "DROP TABLE IF EXISTS temp.rm", NULL, NULL, NULL);
	if (st == ARCA_OK) {
		uint64_t total = 0;
		for (size_t i = 0; i < n; i++)
			total += a[i].n;
		arca_log(ARCA_LOG_INFO, "store", "upgrade of %s: UIDs for %llu memberships in %zu "
		         "folders", s->meta_path, (unsigned long long)total, n);
	}
	free(a);
	return st;
}

arca_status arca_meta_upgrade(arca_store *s, int format, const arca_store_uid_hooks *hooks,
                              arca_error *err)
{
	char sql[64];
	arca_status st = arca_meta_exec(s->db, "BEGIN IMMEDIATE", err);
	if (st != ARCA_OK)
		return st;
	if (format == ARCA_STORE_FORMAT_V1)
		st = arca_meta_exec(s->db, DICTS_SQL, err);
	else if (format < ARCA_STORE_FORMAT_V4)
		st = arca_meta_exec(s->db, "ALTER TABLE dicts ADD COLUMN sha256 BLOB", err);
	if (st == ARCA_OK && format < ARCA_STORE_FORMAT_V3)
		st = arca_meta_exec(s->db, LINKS_SQL, err);
	/* Old links records are found once by walking the containers, so verify covers them. */
	if (st == ARCA_OK && format < ARCA_STORE_FORMAT_V3)
		st = arca_links_fill(s, err);
	if (st == ARCA_OK && format < ARCA_STORE_FORMAT_V4)
		st = arca_meta_exec(s->db, DICT_COPIES_SQL, err);
	/* The existing dictionary records become first copies; arca_dict_ensure_copies then
	 * writes the second ones. */
	if (st == ARCA_OK && format < ARCA_STORE_FORMAT_V4)
		st = arca_dict_upgrade(s, format, err);
	/* Memberships committed before format 5 get UIDs in the order they were added. Their
	 * records carry none, so a later recreate cannot restore these (docs/storage-format.md). */
	if (st == ARCA_OK)
		st = members_v5(s, hooks, err);
	snprintf(sql, sizeof(sql), "UPDATE settings SET format = %d WHERE id = 1", ARCA_STORE_FORMAT);
	if (st == ARCA_OK)
		st = arca_meta_exec(s->db, sql, err);
	if (st == ARCA_OK)
		return arca_meta_exec(s->db, "COMMIT", err);
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return st;
}

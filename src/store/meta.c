/* The metadata database: schema, connection settings and the key check. */
#include <stdio.h>
#include <string.h>

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
	"CREATE TABLE members(folder_id INTEGER NOT NULL, message_id INTEGER NOT NULL,"
	" archive_id INTEGER NOT NULL, batch INTEGER NOT NULL,"
	" PRIMARY KEY(folder_id, message_id)) WITHOUT ROWID;"
	/* "is message X in archive A" and "members of archive A in message order" */
	"CREATE INDEX members_archive ON members(archive_id, message_id);"
	/* "memberships added after batch B" (index catch-up) */
	"CREATE INDEX members_batch ON members(batch);"
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

arca_status arca_meta_upgrade(arca_store *s, int format, arca_error *err)
{
	char sql[64];
	arca_status st = arca_meta_exec(s->db, "BEGIN IMMEDIATE", err);
	if (st != ARCA_OK)
		return st;
	if (format == ARCA_STORE_FORMAT_V1)
		st = arca_meta_exec(s->db, DICTS_SQL, err);
	else
		st = arca_meta_exec(s->db, "ALTER TABLE dicts ADD COLUMN sha256 BLOB", err);
	if (st == ARCA_OK && format < ARCA_STORE_FORMAT_V3)
		st = arca_meta_exec(s->db, LINKS_SQL, err);
	/* Old links records are found once by walking the containers, so verify covers them. */
	if (st == ARCA_OK && format < ARCA_STORE_FORMAT_V3)
		st = arca_links_fill(s, err);
	if (st == ARCA_OK)
		st = arca_meta_exec(s->db, DICT_COPIES_SQL, err);
	/* The existing dictionary records become first copies; arca_dict_ensure_copies then
	 * writes the second ones. */
	if (st == ARCA_OK)
		st = arca_dict_upgrade(s, format, err);
	snprintf(sql, sizeof(sql), "UPDATE settings SET format = %d WHERE id = 1", ARCA_STORE_FORMAT);
	if (st == ARCA_OK)
		st = arca_meta_exec(s->db, sql, err);
	if (st == ARCA_OK)
		return arca_meta_exec(s->db, "COMMIT", err);
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return st;
}

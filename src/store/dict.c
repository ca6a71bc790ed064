/* Per-store zstd dictionaries (DESIGN.md §3): small messages compress poorly one by one, so
 * once a store holds enough messages without a dictionary, one is trained on a sample of them
 * and written as a dictionary record (type 3) in its own commit. Only after that commit is it
 * used for new content records, so a record never names a dictionary that is not durable.
 * Older records keep decompressing without (dict id 0). Dictionaries are found through the
 * dicts table and loaded lazily from their records; a damaged one makes exactly the messages
 * that use it unreadable, with the reason "dictionary N damaged: ...". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zdict.h>

#include "lib/log.h"
#include "store/store_int.h"

static arca_dict *dict_find(arca_store *s, uint32_t id)
{
	for (size_t i = 0; i < s->ndicts; i++)
		if (s->dicts[i].id == id)
			return &s->dicts[i];
	return NULL;
}

/* Adds a dicts row to the handle, keeping s->dicts sorted by id. */
static arca_dict *dict_add(arca_store *s, uint32_t id, uint32_t container, uint64_t off,
                           uint64_t size)
{
	size_t i;
	if (s->ndicts == s->capdicts) {
		size_t nc = s->capdicts ? 2 * s->capdicts : 4;
		arca_dict *n = realloc(s->dicts, nc * sizeof(*n));
		if (n == NULL)
			return NULL;
		s->dicts = n;
		s->capdicts = nc;
	}
	for (i = s->ndicts; i > 0 && s->dicts[i - 1].id > id; i--)
		s->dicts[i] = s->dicts[i - 1];
	s->dicts[i] = (arca_dict){.id = id, .container = container, .offset = off,
	                          .stored_size = size};
	s->ndicts++;
	return &s->dicts[i];
}

static bool row_ok(int64_t id, int64_t cont, int64_t off, int64_t size)
{
	return id > 0 && id <= UINT32_MAX && cont > 0 && cont <= UINT32_MAX && off >= 0 &&
	       size >= ARCA_REC_OVERHEAD;
}

arca_status arca_dict_list(arca_store *s, arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_status st = ARCA_OK;
	int rc;
	if (s->format == ARCA_STORE_FORMAT_V1)
		return ARCA_OK; /* read-only open of a format-1 store: no dicts table */
	rc = sqlite3_prepare_v2(s->db, "SELECT id, container, offset, stored_size FROM dicts"
	                        " ORDER BY id", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot read dictionaries");
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0), c = sqlite3_column_int64(q, 1);
		int64_t o = sqlite3_column_int64(q, 2), n = sqlite3_column_int64(q, 3);
		/* A bad row is not fatal: the dictionary then reads as damaged. */
		if (!row_ok(id, c, o, n))
			c = o = n = 0;
		if (id <= 0 || id > UINT32_MAX)
			continue;
		if (dict_add(s, (uint32_t)id, (uint32_t)c, (uint64_t)o, (uint64_t)n) == NULL) {
			st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			break;
		}
	}
	if (st == ARCA_OK && rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot read dictionaries");
	sqlite3_finalize(q);
	if (st == ARCA_OK && s->ndicts > 0)
		s->dict_cur = s->dicts[s->ndicts - 1].id; /* the newest one compresses */
	return st;
}

/* A reader opened before a writer committed a dictionary does not know it yet. */
static arca_dict *dict_lookup_db(arca_store *s, uint32_t id)
{
	sqlite3_stmt *q = NULL;
	arca_dict *d = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT container, offset, stored_size FROM dicts"
	                       " WHERE id = ?", -1, &q, NULL) != SQLITE_OK) {
		sqlite3_finalize(q);
		return NULL; /* format 1: no dicts table */
	}
	sqlite3_bind_int64(q, 1, id);
	if (sqlite3_step(q) == SQLITE_ROW) {
		int64_t c = sqlite3_column_int64(q, 0), o = sqlite3_column_int64(q, 1);
		int64_t n = sqlite3_column_int64(q, 2);
		if (!row_ok(id, c, o, n))
			c = o = n = 0;
		d = dict_add(s, id, (uint32_t)c, (uint64_t)o, (uint64_t)n);
	}
	sqlite3_finalize(q);
	return d;
}

/* Reads, authenticates and checks d's record; sets d->ddict or d->why. */
static void dict_load(arca_store *s, arca_dict *d)
{
	arca_store_msgrow m = {.id = d->id, .container = d->container, .offset = d->offset,
	                       .stored_size = d->stored_size};
	char name[32];
	const char *why = NULL;
	const uint8_t *dict;
	size_t dlen;
	arca_rec_hdr h;
	arca_buf plain;
	arca_error e;
	d->loaded = true;
	d->ddict = NULL;
	d->why[0] = '\0';
	if (d->container == 0) {
		snprintf(d->why, sizeof(d->why), "bad metadata row");
		return;
	}
	arca_rec_container_name(name, sizeof(name), d->container);
	if (arca_store_read_record(s, &m, &e) != ARCA_OK) {
		snprintf(d->why, sizeof(d->why), "%.190s", e.msg);
		return;
	}
	if (!arca_rec_hdr_decode((const uint8_t *)s->rbuf.data, &h, &why))
		;
	else if (h.type != ARCA_REC_DICT)
		why = "bad record header (not a dictionary record)";
	else if (h.key_id != s->key_id)
		why = "record encrypted with another key id";
	else if (h.seq != d->id)
		why = "bad record header (belongs to another dictionary)";
	else if ((uint64_t)h.body_len + ARCA_REC_OVERHEAD != d->stored_size)
		why = "bad record header (length differs from metadata)";
	if (why != NULL) {
		snprintf(d->why, sizeof(d->why), "%s: %s offset %llu", why, name,
		         (unsigned long long)d->offset);
		return;
	}
	arca_buf_init(&plain, ARCA_REC_DICT_FIXED + ARCA_DICT_MAX);
	if (arca_rec_open(s->key, &h, (const uint8_t *)s->rbuf.data, &plain, NULL) != ARCA_OK) {
		snprintf(d->why, sizeof(d->why), "authentication failed (record altered): %s "
		         "offset %llu", name, (unsigned long long)d->offset);
	} else if (!arca_rec_dict_parse((const uint8_t *)plain.data, plain.len, h.seq, &dict, &dlen,
	                                &why)) {
		snprintf(d->why, sizeof(d->why), "%s: %s offset %llu", why, name,
		         (unsigned long long)d->offset);
	} else {
		d->ddict = ZSTD_createDDict(dict, dlen);
		if (d->ddict == NULL)
			snprintf(d->why, sizeof(d->why), "cannot load (out of memory?)");
		else if (!s->readonly && d->id == s->dict_cur && s->cdict == NULL &&
		         (s->cdict = ZSTD_createCDict(dict, dlen, ARCA_ZSTD_LEVEL)) == NULL)
			s->cdict_failed = true;
	}
	arca_crypto_wipe(plain.data, plain.len);
	arca_buf_free(&plain);
	if (s->rbuf.cap > ((size_t)8 << 20))
		arca_buf_free(&s->rbuf);
}

arca_status arca_dict_get(arca_store *s, uint32_t id, const ZSTD_DDict **ddict, arca_error *err)
{
	arca_dict *d = dict_find(s, id);
	*ddict = NULL;
	if (d == NULL)
		d = dict_lookup_db(s, id);
	if (d == NULL)
		return arca_error_set(err, ARCA_ERR_CORRUPT, "dictionary %u unknown to metadata",
		                      (unsigned)id);
	if (!d->loaded)
		dict_load(s, d);
	if (d->ddict == NULL)
		return arca_error_set(err, ARCA_ERR_CORRUPT, "dictionary %u damaged: %s", (unsigned)id,
		                      d->why);
	*ddict = d->ddict;
	return ARCA_OK;
}

void arca_dict_reset(arca_store *s)
{
	for (size_t i = 0; i < s->ndicts; i++) {
		ZSTD_freeDDict(s->dicts[i].ddict);
		s->dicts[i].ddict = NULL;
		s->dicts[i].loaded = false;
	}
}

void arca_dict_free(arca_store *s)
{
	arca_dict_reset(s);
	free(s->dicts);
	s->dicts = NULL;
	s->ndicts = s->capdicts = 0;
	ZSTD_freeCDict(s->cdict);
	s->cdict = NULL;
}

void arca_dict_for_write(arca_store *s, uint32_t *id, const ZSTD_CDict **cdict)
{
	*id = 0;
	*cdict = NULL;
	if (s->dict_cur == 0 || s->cdict_failed)
		return;
	if (s->cdict == NULL) {
		arca_dict *d = dict_find(s, s->dict_cur);
		if (d != NULL)
			dict_load(s, d);
		if (s->cdict == NULL) {
			/* Never write records that depend on a dictionary we cannot read back. */
			arca_log(ARCA_LOG_ERROR, "store", "dictionary %u unusable (%s); compressing "
			         "without; run verify", (unsigned)s->dict_cur,
			         d != NULL && d->why[0] ? d->why : "cannot load");
			s->cdict_failed = true;
			return;
		}
	}
	*id = s->dict_cur;
	*cdict = s->cdict;
}

/* Collects training samples from committed messages, newest first: the first
 * ARCA_DICT_SAMPLE_MAX bytes of each message up to ARCA_DICT_SAMPLE_MSG_MAX bytes, at most
 * ARCA_DICT_SAMPLES_MAX bytes in all. Re-reading keeps the write path free of sample
 * buffers and works after a reopen. */
static arca_status gather_samples(arca_store *s, arca_buf *samples, size_t **sizes, unsigned *n,
                                  arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_buf msg;
	size_t cap = 0;
	arca_status st = ARCA_OK;
	int rc = sqlite3_prepare_v2(s->db, "SELECT id, sha256, size, stored_size, container, offset"
	                            " FROM messages WHERE size <= ? ORDER BY id DESC", -1, &q,
	                            NULL);
	*n = 0;
	*sizes = NULL;
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot list messages");
	sqlite3_bind_int64(q, 1, ARCA_DICT_SAMPLE_MSG_MAX);
	arca_buf_init(&msg, ARCA_DICT_SAMPLE_MSG_MAX);
	while (samples->len < ARCA_DICT_SAMPLES_MAX && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		arca_store_msgrow m = {
			.id = (uint64_t)sqlite3_column_int64(q, 0),
			.size = (uint64_t)sqlite3_column_int64(q, 2),
			.stored_size = (uint64_t)sqlite3_column_int64(q, 3),
			.container = (uint32_t)sqlite3_column_int64(q, 4),
			.offset = (uint64_t)sqlite3_column_int64(q, 5),
		};
		arca_error e;
		size_t take;
		if (sqlite3_column_bytes(q, 1) != ARCA_SHA256_LEN || m.size == 0)
			continue;
		memcpy(m.sha, sqlite3_column_blob(q, 1), ARCA_SHA256_LEN);
		arca_buf_reset(&msg);
		if (arca_store_read_msg(s, &m, &msg, NULL, &e) != ARCA_OK)
			continue; /* damaged: verify reports it, it is just no sample */
		take = msg.len < ARCA_DICT_SAMPLE_MAX ? msg.len : ARCA_DICT_SAMPLE_MAX;
		if (take > ARCA_DICT_SAMPLES_MAX - samples->len)
			take = ARCA_DICT_SAMPLES_MAX - samples->len;
		if (*n == cap) {
			size_t nc = cap ? 2 * cap : 1024, *ns = realloc(*sizes, nc * sizeof(*ns));
			if (ns == NULL) {
				st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
				break;
			}
			*sizes = ns;
			cap = nc;
		}
		if ((st = arca_buf_append(samples, msg.data, take)) != ARCA_OK) {
			st = arca_error_set(err, st, "out of memory");
			break;
		}
		(*sizes)[(*n)++] = take;
	}
	if (st == ARCA_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot list messages");
	sqlite3_finalize(q);
	arca_buf_free(&msg);
	return st;
}

/* Writes the dictionary record and its dicts row as one commit (no new batch number). */
static arca_status write_dict(arca_store *s, uint32_t id, const void *dict, size_t dlen,
                              uint32_t *cid, uint64_t *off, arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_buf plain;
	uint8_t idb[4] = {(uint8_t)id, (uint8_t)(id >> 8), (uint8_t)(id >> 16), (uint8_t)(id >> 24)};
	arca_status st;
	int rc;
	arca_buf_init(&plain, ARCA_REC_DICT_FIXED + ARCA_DICT_MAX);
	if ((st = arca_buf_append(&plain, idb, sizeof(idb))) != ARCA_OK ||
	    (st = arca_buf_append(&plain, dict, dlen)) != ARCA_OK) {
		arca_buf_free(&plain);
		return arca_error_set(err, st, "out of memory");
	}
	st = arca_rec_seal(s->key, s->key_id, ARCA_REC_DICT, id, plain.data, plain.len, &s->rec,
	                   err);
	arca_buf_free(&plain);
	if (st != ARCA_OK)
		return st;
	if ((st = arca_store_batch_begin(s, err)) != ARCA_OK)
		return st;
	if ((st = arca_store_write_record(s, cid, off, err)) != ARCA_OK)
		goto fail;
	rc = sqlite3_prepare_v2(s->db, "INSERT INTO dicts(id, container, offset, stored_size)"
	                        " VALUES(?,?,?,?)", -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, id);
		sqlite3_bind_int64(q, 2, *cid);
		sqlite3_bind_int64(q, 3, (int64_t)*off);
		sqlite3_bind_int64(q, 4, (int64_t)s->rec.len);
		rc = sqlite3_step(q);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_OK) {
		st = arca_meta_err(s->db, rc, err, "cannot record dictionary");
		goto fail;
	}
	/* Same protocol as a batch: container fdatasync, then the metadata transaction. */
	return arca_store_batch_commit(s, s->last_batch, err);
fail:
	arca_store_batch_abort(s);
	return st;
}

void arca_dict_maybe_train(arca_store *s)
{
	arca_error e, *err = &e;
	arca_buf samples;
	size_t *sizes = NULL, dlen = 0;
	unsigned n = 0;
	void *dict = NULL;
	uint32_t id, cid = 0;
	uint64_t off = 0, rec_len;
	arca_status st;
	arca_dict *d;
	if (s->readonly || s->poisoned || s->in_txn || s->ndicts > 0 || s->dict_min == 0 ||
	    s->nodict_msgs < s->dict_min || s->nodict_msgs < s->dict_next_try)
		return;
	/* Whatever fails below, wait for another dict_min messages before the next try. */
	s->dict_next_try = s->nodict_msgs + s->dict_min;
	arca_buf_init(&samples, ARCA_DICT_SAMPLES_MAX);
	st = gather_samples(s, &samples, &sizes, &n, err);
	if (st == ARCA_OK && (dict = malloc(ARCA_DICT_SIZE)) == NULL)
		st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	if (st == ARCA_OK) {
		dlen = ZDICT_trainFromBuffer(dict, ARCA_DICT_SIZE, samples.data, sizes, n);
		if (ZDICT_isError(dlen))
			st = arca_error_set(err, ARCA_ERR_INVALID, "training failed on %u samples "
			                    "(%zu bytes): %s", n, samples.len,
			                    ZDICT_getErrorName(dlen));
	}
	arca_crypto_wipe(samples.data, samples.len);
	arca_buf_free(&samples);
	free(sizes);
	if (st != ARCA_OK) {
		arca_log(ARCA_LOG_WARN, "store", "no dictionary: %s", err->msg);
		free(dict);
		return;
	}
	id = 1; /* ndicts == 0; a later retrain would take the highest id + 1 */
	st = write_dict(s, id, dict, dlen, &cid, &off, err);
	rec_len = s->rec.len;
	if (s->rec.cap > ((size_t)8 << 20))
		arca_buf_free(&s->rec);
	if (st != ARCA_OK) {
		free(dict);
		arca_log(s->poisoned ? ARCA_LOG_ERROR : ARCA_LOG_WARN, "store",
		         "cannot write dictionary: %s", err->msg);
		return;
	}
	/* Durable: from now on new content records use it. */
	d = dict_add(s, id, cid, off, rec_len);
	if (d != NULL) {
		d->loaded = true;
		d->ddict = ZSTD_createDDict(dict, dlen);
		s->cdict = ZSTD_createCDict(dict, dlen, ARCA_ZSTD_LEVEL);
		if (d->ddict == NULL)
			d->loaded = false; /* loaded from the record on first use */
		s->dict_cur = id;
		s->cdict_failed = s->cdict == NULL;
	}
	arca_log(ARCA_LOG_INFO, "store", "trained dictionary %u: %zu bytes", (unsigned)id, dlen);
	free(dict);
}

/* Per-store zstd dictionaries (DESIGN.md §3): small messages compress poorly one by one, so
 * once a store holds enough messages without a dictionary, one is trained on a sample of them
 * and written as a dictionary record (type 3) in its own commit. Only after that commit is it
 * used for new content records, so a record never names a dictionary that is not durable.
 * Older records keep decompressing without (dict id 0). Every dictionary record is written at
 * least twice (two copies at training, one at the start of every container begun after it),
 * because the containers are the only copy of the mail: one damaged region must never cost
 * the messages that use a dictionary. Dictionaries are found through the dicts and
 * dict_copies tables and loaded lazily from the first copy that authenticates (and matches
 * the SHA-256 in dicts); only if every copy is damaged are the messages that use it
 * unreadable, with the reason "dictionary N damaged: ...". */
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

/* Adds a dicts row (without copies) to the handle, keeping s->dicts sorted by id. */
static arca_dict *dict_add(arca_store *s, uint32_t id)
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
	s->dicts[i] = (arca_dict){.id = id};
	s->ndicts++;
	return &s->dicts[i];
}

static bool dict_add_copy(arca_dict *d, uint32_t container, uint64_t off, uint64_t size)
{
	arca_dict_copy *n = realloc(d->copies, (d->ncopies + 1) * sizeof(*n));
	if (n == NULL)
		return false;
	d->copies = n;
	d->copies[d->ncopies++] = (arca_dict_copy){.container = container, .offset = off,
	                                           .stored_size = size};
	return true;
}

static bool row_ok(int64_t cont, int64_t off, int64_t size)
{
	return cont > 0 && cont <= UINT32_MAX && off >= 0 && size >= ARCA_REC_OVERHEAD;
}

/* Reads the dicts rows (all, or only id `only`) and their copies into the handle. Before
 * format 4 the dicts row itself is the only copy and no SHA-256 is known. */
static arca_status read_dicts(arca_store *s, int64_t only, arca_error *err)
{
	bool v4 = s->format >= ARCA_STORE_FORMAT_V4;
	sqlite3_stmt *q = NULL;
	arca_status st = ARCA_OK;
	int rc = sqlite3_prepare_v2(s->db, v4 ? "SELECT id, sha256 FROM dicts"
	                            " WHERE ?1 = 0 OR id = ?1 ORDER BY id" :
	                            "SELECT id, NULL FROM dicts WHERE ?1 = 0 OR id = ?1 ORDER BY id",
	                            -1, &q, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot read dictionaries");
	sqlite3_bind_int64(q, 1, only);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		arca_dict *d;
		if (id <= 0 || id > UINT32_MAX || dict_find(s, (uint32_t)id) != NULL)
			continue;
		if ((d = dict_add(s, (uint32_t)id)) == NULL) {
			st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			break;
		}
		if (sqlite3_column_bytes(q, 1) == ARCA_SHA256_LEN) {
			memcpy(d->sha, sqlite3_column_blob(q, 1), ARCA_SHA256_LEN);
			d->has_sha = true;
		}
	}
	if (st == ARCA_OK && rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot read dictionaries");
	sqlite3_finalize(q);
	q = NULL;
	if (st != ARCA_OK)
		return st;
	rc = sqlite3_prepare_v2(s->db, v4 ? "SELECT dict_id, container, offset, stored_size FROM"
	                        " dict_copies WHERE ?1 = 0 OR dict_id = ?1 ORDER BY container, offset" :
	                        "SELECT id, container, offset, stored_size FROM dicts"
	                        " WHERE ?1 = 0 OR id = ?1", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot read dictionary copies");
	sqlite3_bind_int64(q, 1, only);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0), c = sqlite3_column_int64(q, 1);
		int64_t o = sqlite3_column_int64(q, 2), n = sqlite3_column_int64(q, 3);
		arca_dict *d = id > 0 && id <= UINT32_MAX ? dict_find(s, (uint32_t)id) : NULL;
		if (d == NULL)
			continue; /* a copy of no known dictionary: verify finds its record unknown */
		/* A bad row is not fatal: that copy then reads as damaged. */
		if (!row_ok(c, o, n))
			c = o = n = 0;
		if (!dict_add_copy(d, (uint32_t)c, (uint64_t)o, (uint64_t)n)) {
			st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			break;
		}
	}
	if (st == ARCA_OK && rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot read dictionary copies");
	sqlite3_finalize(q);
	return st;
}

arca_status arca_dict_list(arca_store *s, arca_error *err)
{
	arca_status st;
	if (s->format == ARCA_STORE_FORMAT_V1)
		return ARCA_OK; /* read-only open of a format-1 store: no dicts table */
	st = read_dicts(s, 0, err);
	if (st == ARCA_OK && s->ndicts > 0)
		s->dict_cur = s->dicts[s->ndicts - 1].id; /* the newest one compresses */
	return st;
}

/* A reader opened before a writer committed a dictionary does not know it yet. */
static arca_dict *dict_lookup_db(arca_store *s, uint32_t id)
{
	if (s->format == ARCA_STORE_FORMAT_V1 || read_dicts(s, id, NULL) != ARCA_OK)
		return NULL;
	return dict_find(s, id);
}

bool arca_dict_check_copy(arca_store *s, uint32_t id, const uint8_t *sha,
                          const arca_dict_copy *c, arca_buf *plain, const uint8_t **dict,
                          size_t *dlen, char *why, size_t whysz)
{
	arca_store_msgrow m = {.id = id, .container = c->container, .offset = c->offset,
	                       .stored_size = c->stored_size};
	uint8_t got[ARCA_SHA256_LEN];
	unsigned long long off = c->offset;
	char name[32];
	const char *w = NULL;
	arca_rec_hdr h;
	arca_error e;
	if (c->container == 0) {
		snprintf(why, whysz, "bad metadata row");
		return false;
	}
	arca_rec_container_name(name, sizeof(name), c->container);
	if (arca_store_read_record(s, &m, &e) != ARCA_OK) {
		snprintf(why, whysz, "%.200s", e.msg);
		return false;
	}
	if (!arca_rec_hdr_decode((const uint8_t *)s->rbuf.data, &h, &w))
		;
	else if (h.type != ARCA_REC_DICT)
		w = "bad record header (not a dictionary record)";
	else if (h.key_id != s->key_id)
		w = "record encrypted with another key id";
	else if (h.seq != id)
		w = "bad record header (belongs to another dictionary)";
	else if ((uint64_t)h.body_len + ARCA_REC_OVERHEAD != c->stored_size)
		w = "bad record header (length differs from metadata)";
	if (w == NULL && arca_rec_open(s->key, &h, (const uint8_t *)s->rbuf.data, plain, NULL) !=
	    ARCA_OK)
		w = "authentication failed (record altered)";
	else if (w == NULL && !arca_rec_dict_parse((const uint8_t *)plain->data, plain->len, h.seq,
	                                           dict, dlen, &w))
		;
	else if (w == NULL && sha != NULL) {
		arca_sha256(*dict, *dlen, got);
		if (memcmp(got, sha, ARCA_SHA256_LEN) != 0)
			w = "dictionary differs from the one metadata names (sha-256 mismatch)";
	}
	if (w != NULL) {
		snprintf(why, whysz, "%s: %s offset %llu", w, name, off);
		return false;
	}
	return true;
}

/* Loads d from the first copy that authenticates; sets d->ddict or d->why. */
static void dict_load(arca_store *s, arca_dict *d)
{
	char why[200];
	const uint8_t *dict;
	size_t dlen, bad = 0;
	arca_buf plain;
	d->loaded = true;
	ZSTD_freeDDict(d->ddict);
	d->ddict = NULL;
	d->why[0] = '\0';
	if (d->ncopies == 0) {
		snprintf(d->why, sizeof(d->why), "no copy listed in metadata");
		return;
	}
	arca_buf_init(&plain, ARCA_REC_DICT_FIXED + ARCA_DICT_MAX);
	for (size_t i = 0; i < d->ncopies; i++) {
		if (!arca_dict_check_copy(s, d->id, d->has_sha ? d->sha : NULL, &d->copies[i], &plain,
		                          &dict, &dlen, why, sizeof(why))) {
			if (bad++ == 0)
				snprintf(d->why, sizeof(d->why), "%s", why);
			continue;
		}
		d->ddict = ZSTD_createDDict(dict, dlen);
		if (d->ddict == NULL) {
			snprintf(d->why, sizeof(d->why), "cannot load (out of memory?)");
		} else if (!s->readonly && d->id == s->dict_cur) {
			if (s->cdict == NULL &&
			    (s->cdict = ZSTD_createCDict(dict, dlen, ARCA_ZSTD_LEVEL)) == NULL)
				s->cdict_failed = true;
			/* kept for the copy at the start of each new container */
			if (s->dict_rec.len == 0 &&
			    arca_buf_append(&s->dict_rec, s->rbuf.data, s->rbuf.len) != ARCA_OK)
				s->cdict_failed = true;
		}
		break;
	}
	if (d->ddict == NULL && bad == d->ncopies && bad > 1) {
		char first[sizeof(d->why)];
		snprintf(first, sizeof(first), "%s", d->why);
		snprintf(d->why, sizeof(d->why), "all %zu copies damaged (first: %.180s)", bad, first);
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

static void dicts_drop(arca_store *s)
{
	for (size_t i = 0; i < s->ndicts; i++) {
		ZSTD_freeDDict(s->dicts[i].ddict);
		free(s->dicts[i].copies);
	}
	s->ndicts = 0;
}

arca_status arca_dict_reload(arca_store *s, arca_error *err)
{
	uint32_t cur = s->dict_cur;
	arca_status st;
	dicts_drop(s);
	st = arca_dict_list(s, err);
	if (!s->readonly)
		s->dict_cur = cur; /* the writer's choice (it pairs with s->cdict) */
	return st;
}

void arca_dict_free(arca_store *s)
{
	dicts_drop(s);
	free(s->dicts);
	s->dicts = NULL;
	s->capdicts = 0;
	ZSTD_freeCDict(s->cdict);
	s->cdict = NULL;
	arca_buf_free(&s->dict_rec);
}

void arca_dict_for_write(arca_store *s, uint32_t *id, const ZSTD_CDict **cdict)
{
	*id = 0;
	*cdict = NULL;
	if (s->dict_cur == 0 || s->cdict_failed)
		return;
	if (s->cdict == NULL || s->dict_rec.len == 0) {
		arca_dict *d = dict_find(s, s->dict_cur);
		if (d != NULL)
			dict_load(s, d);
		/* Without its record no new container could start with a copy of it. */
		if (s->cdict == NULL || s->dict_rec.len == 0) {
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

const arca_buf *arca_dict_current_record(arca_store *s)
{
	const ZSTD_CDict *cdict;
	uint32_t id;
	arca_dict_for_write(s, &id, &cdict);
	return id != 0 && s->dict_rec.len > 0 ? &s->dict_rec : NULL;
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

/* Writes the dictionary record twice (two copies, so one damaged region never costs the
 * messages that use it) with its dicts and dict_copies rows, as one commit (no new batch
 * number). cid/off get the locations of both copies. */
static arca_status write_dict(arca_store *s, uint32_t id, const void *dict, size_t dlen,
                              uint32_t cid[2], uint64_t off[2], arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_buf plain;
	uint8_t idb[4] = {(uint8_t)id, (uint8_t)(id >> 8), (uint8_t)(id >> 16), (uint8_t)(id >> 24)};
	uint8_t sha[ARCA_SHA256_LEN];
	arca_status st;
	int rc;
	arca_buf_init(&plain, ARCA_REC_DICT_FIXED + ARCA_DICT_MAX);
	if ((st = arca_buf_append(&plain, idb, sizeof(idb))) != ARCA_OK ||
	    (st = arca_buf_append(&plain, dict, dlen)) != ARCA_OK) {
		arca_buf_free(&plain);
		return arca_error_set(err, st, "out of memory");
	}
	st = arca_rec_seal(s->key, s->key_id, ARCA_REC_VERSION, ARCA_REC_DICT, id, plain.data,
	                   plain.len, &s->rec, err);
	arca_buf_free(&plain);
	if (st != ARCA_OK)
		return st;
	arca_sha256(dict, dlen, sha);
	if ((st = arca_store_batch_begin(s, err)) != ARCA_OK)
		return st;
	/* The same sealed bytes twice: identical copies, each authenticates on its own. */
	for (int i = 0; i < 2; i++) {
		if ((st = arca_store_write_record(s, &cid[i], &off[i], err)) != ARCA_OK ||
		    (st = arca_store_ins_dict_copy(s, id, cid[i], off[i], s->rec.len, err)) != ARCA_OK)
			goto fail;
	}
	rc = sqlite3_prepare_v2(s->db, "INSERT INTO dicts(id, container, offset, stored_size,"
	                        " sha256) VALUES(?,?,?,?,?)", -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, id);
		sqlite3_bind_int64(q, 2, cid[0]);
		sqlite3_bind_int64(q, 3, (int64_t)off[0]);
		sqlite3_bind_int64(q, 4, (int64_t)s->rec.len);
		sqlite3_bind_blob(q, 5, sha, sizeof(sha), SQLITE_STATIC);
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
	uint32_t id, cid[2] = {0, 0};
	uint64_t off[2] = {0, 0}, rec_len;
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
	st = write_dict(s, id, dict, dlen, cid, off, err);
	rec_len = s->rec.len;
	arca_buf_reset(&s->dict_rec);
	if (st == ARCA_OK && arca_buf_append(&s->dict_rec, s->rec.data, s->rec.len) != ARCA_OK)
		arca_buf_free(&s->dict_rec); /* loaded from a copy when a container is begun */
	if (s->rec.cap > ((size_t)8 << 20))
		arca_buf_free(&s->rec);
	if (st != ARCA_OK) {
		free(dict);
		arca_log(s->poisoned ? ARCA_LOG_ERROR : ARCA_LOG_WARN, "store",
		         "cannot write dictionary: %s", err->msg);
		return;
	}
	/* Durable: from now on new content records use it. */
	d = dict_add(s, id);
	if (d != NULL && dict_add_copy(d, cid[0], off[0], rec_len) &&
	    dict_add_copy(d, cid[1], off[1], rec_len)) {
		arca_sha256(dict, dlen, d->sha);
		d->has_sha = true;
		d->loaded = true;
		d->ddict = ZSTD_createDDict(dict, dlen);
		s->cdict = ZSTD_createCDict(dict, dlen, ARCA_ZSTD_LEVEL);
		if (d->ddict == NULL)
			d->loaded = false; /* loaded from the record on first use */
		s->dict_cur = id;
		s->cdict_failed = s->cdict == NULL || s->dict_rec.len == 0;
	}
	arca_log(ARCA_LOG_INFO, "store", "trained dictionary %u: %zu bytes", (unsigned)id, dlen);
	free(dict);
}

arca_status arca_dict_upgrade(arca_store *s, int format, arca_error *err)
{
	sqlite3_stmt *q = NULL, *u = NULL;
	arca_buf plain;
	arca_status st;
	int rc;
	if (format == ARCA_STORE_FORMAT_V1)
		return ARCA_OK; /* no dictionaries yet */
	st = arca_meta_exec(s->db, "INSERT OR IGNORE INTO dict_copies(dict_id, container, offset,"
	                    " stored_size) SELECT id, container, offset, stored_size FROM dicts",
	                    err);
	if (st != ARCA_OK)
		return st;
	rc = sqlite3_prepare_v2(s->db, "SELECT id, container, offset, stored_size FROM dicts", -1,
	                        &q, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "UPDATE dicts SET sha256 = ? WHERE id = ?", -1, &u,
		                        NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(q);
		return arca_meta_err(s->db, rc, err, "cannot upgrade dictionaries");
	}
	arca_buf_init(&plain, ARCA_REC_DICT_FIXED + ARCA_DICT_MAX);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0), c = sqlite3_column_int64(q, 1);
		int64_t o = sqlite3_column_int64(q, 2), n = sqlite3_column_int64(q, 3);
		arca_dict_copy cp = {.container = (uint32_t)c, .offset = (uint64_t)o,
		                     .stored_size = (uint64_t)n};
		uint8_t sha[ARCA_SHA256_LEN];
		const uint8_t *dict;
		size_t dlen;
		char why[200];
		/* A damaged record keeps a NULL hash: verify goes on reporting it. */
		if (id <= 0 || id > UINT32_MAX || !row_ok(c, o, n) ||
		    !arca_dict_check_copy(s, (uint32_t)id, NULL, &cp, &plain, &dict, &dlen, why,
		                          sizeof(why)))
			continue;
		arca_sha256(dict, dlen, sha);
		sqlite3_bind_blob(u, 1, sha, sizeof(sha), SQLITE_TRANSIENT);
		sqlite3_bind_int64(u, 2, id);
		rc = sqlite3_step(u);
		sqlite3_reset(u);
		if (rc != SQLITE_DONE)
			break;
	}
	if (rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot upgrade dictionaries");
	arca_crypto_wipe(plain.data, plain.len);
	arca_buf_free(&plain);
	sqlite3_finalize(q);
	sqlite3_finalize(u);
	return st;
}

/* Writes another copy of d (from its first intact copy) in its own commit. */
static arca_status add_copy(arca_store *s, arca_dict *d, arca_error *err)
{
	arca_buf plain;
	const uint8_t *dict = NULL;
	size_t dlen = 0, i;
	char why[200];
	uint32_t cid;
	uint64_t off;
	arca_status st;
	arca_buf_init(&plain, ARCA_REC_DICT_FIXED + ARCA_DICT_MAX);
	for (i = 0; i < d->ncopies; i++)
		if (arca_dict_check_copy(s, d->id, d->has_sha ? d->sha : NULL, &d->copies[i], &plain,
		                         &dict, &dlen, why, sizeof(why)))
			break;
	if (i == d->ncopies) {
		arca_buf_free(&plain);
		return arca_error_set(err, ARCA_ERR_CORRUPT, "no intact copy%s%s", d->ncopies ? ": " :
		                      "", d->ncopies ? why : "");
	}
	if (!d->has_sha) {
		arca_sha256(dict, dlen, d->sha);
		d->has_sha = true;
	}
	arca_crypto_wipe(plain.data, plain.len);
	arca_buf_free(&plain);
	arca_buf_reset(&s->rec);
	if ((st = arca_buf_append(&s->rec, s->rbuf.data, s->rbuf.len)) != ARCA_OK)
		return arca_error_set(err, st, "out of memory");
	if ((st = arca_store_batch_begin(s, err)) != ARCA_OK)
		return st;
	if ((st = arca_store_write_record(s, &cid, &off, err)) != ARCA_OK ||
	    (st = arca_store_ins_dict_copy(s, d->id, cid, off, s->rec.len, err)) != ARCA_OK) {
		arca_store_batch_abort(s);
		return st;
	}
	{
		sqlite3_stmt *u = NULL;
		int rc = sqlite3_prepare_v2(s->db, "UPDATE dicts SET sha256 = ? WHERE id = ? AND"
		                            " sha256 IS NULL", -1, &u, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_blob(u, 1, d->sha, ARCA_SHA256_LEN, SQLITE_STATIC);
			sqlite3_bind_int64(u, 2, d->id);
			rc = sqlite3_step(u) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
		}
		sqlite3_finalize(u);
		if (rc != SQLITE_OK) {
			st = arca_meta_err(s->db, rc, err, "cannot record dictionary hash");
			arca_store_batch_abort(s);
			return st;
		}
	}
	if ((st = arca_store_batch_commit(s, s->last_batch, err)) != ARCA_OK)
		return st;
	if (!dict_add_copy(d, cid, off, s->rec.len))
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	arca_log(ARCA_LOG_INFO, "store", "dictionary %u: copy %zu written (container %u offset "
	         "%llu)", (unsigned)d->id, d->ncopies, (unsigned)cid, (unsigned long long)off);
	return ARCA_OK;
}

void arca_dict_ensure_copies(arca_store *s)
{
	arca_error e;
	for (size_t i = 0; i < s->ndicts && !s->poisoned; i++) {
		if (s->dicts[i].ncopies >= 2)
			continue;
		if (add_copy(s, &s->dicts[i], &e) != ARCA_OK)
			arca_log(s->poisoned ? ARCA_LOG_ERROR : ARCA_LOG_WARN, "store", "dictionary %u "
			         "has a single copy and none can be added: %s; run verify",
			         (unsigned)s->dicts[i].id, e.msg);
	}
	if (s->rec.cap > ((size_t)8 << 20))
		arca_buf_free(&s->rec);
}

/* Verify (metadata and containers agree, every record intact) and recreate_meta (rebuild
 * the metadata database from the recovery records in the containers alone). Both read
 * damaged data by design, so every length comes from a checked header and every problem is
 * reported and skipped, never fatal. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/fs.h"
#include "lib/log.h"
#include "store/store_int.h"

/* ------------------------------------------------------------------------------------ */
/* verify */

/* Location of a dictionary record known to metadata (checked on its own, skipped in gaps). */
typedef struct {
	uint32_t container;
	uint64_t offset, size;
} vdict;

typedef struct {
	arca_store *s;
	arca_store_damage_cb cb;
	void *ctx;
	uint64_t damaged;
	vdict *dicts;
	size_t ndicts;
	arca_buf hb;    /* record bytes of unknown records */
	arca_buf plain; /* their plaintext */
	arca_buf raw;   /* decompressed */
} verify_ctx;

static void report(verify_ctx *v, uint64_t msg_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(verify_ctx *v, uint64_t msg_id, const char *fmt, ...)
{
	char reason[ARCA_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	v->damaged++;
	if (v->cb != NULL)
		v->cb(v->ctx, msg_id, reason);
}

static bool pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* Checks a record not referenced by metadata at [a, b) of container id. Returns the offset
 * after it, or b (resync at the next known record) if the bytes do not form a record. */
static uint64_t check_unknown(verify_ctx *v, uint32_t id, int fd, uint64_t a, uint64_t b)
{
	uint8_t hdr[ARCA_REC_HDR_LEN];
	char name[32];
	const char *why = NULL;
	arca_rec_hdr h;
	uint64_t len;
	arca_rec_container_name(name, sizeof(name), id);
	for (size_t i = 0; i < v->ndicts; i++)
		if (v->dicts[i].container == id && v->dicts[i].offset == a && v->dicts[i].size > 0)
			return a + v->dicts[i].size < b ? a + v->dicts[i].size : b;
	if (b - a < ARCA_REC_OVERHEAD || !pread_all(fd, hdr, sizeof(hdr), a) ||
	    !arca_rec_hdr_decode(hdr, &h, &why) ||
	    (len = ARCA_REC_OVERHEAD + (uint64_t)h.body_len) > b - a) {
		report(v, 0, "unreadable data not known to metadata: %s offset %llu (%llu bytes)%s%s",
		       name, (unsigned long long)a, (unsigned long long)(b - a), why ? ": " : "",
		       why ? why : "");
		return b;
	}
	arca_buf_reset(&v->hb);
	if (arca_buf_reserve(&v->hb, len) != ARCA_OK || !pread_all(fd, v->hb.data, len, a)) {
		report(v, 0, "cannot read record at %s offset %llu", name, (unsigned long long)a);
		return a + len;
	}
	if (h.key_id != v->s->key_id ||
	    arca_rec_open(v->s->key, &h, (const uint8_t *)v->hb.data, &v->plain, NULL) != ARCA_OK) {
		report(v, 0, "authentication failed (record altered): %s record at offset %llu "
		       "(%s %llu)", name, (unsigned long long)a,
		       h.type == ARCA_REC_LINKS ? "links of batch" :
		       h.type == ARCA_REC_DICT ? "dictionary" : "content of message",
		       (unsigned long long)h.seq);
		return a + len;
	}
	if (h.type == ARCA_REC_CONTENT) {
		report(v, 0, "record of message %llu at %s offset %llu is unknown to metadata",
		       (unsigned long long)h.seq, name, (unsigned long long)a);
		return a + len;
	}
	if (h.type == ARCA_REC_DICT) {
		report(v, 0, "dictionary record %llu at %s offset %llu is unknown to metadata",
		       (unsigned long long)h.seq, name, (unsigned long long)a);
		return a + len;
	}
	arca_buf_reset(&v->raw);
	if (!arca_rec_decompress(v->s->dctx, NULL, v->plain.data, v->plain.len, UINT64_MAX,
	                         ARCA_REC_LINKS_MAX, &v->raw, &why)) {
		report(v, 0, "links record of batch %llu at %s offset %llu: %s",
		       (unsigned long long)h.seq, name, (unsigned long long)a, why);
		return a + len;
	}
	size_t pos = 0;
	arca_rec_link l;
	while (arca_rec_link_next((const uint8_t *)v->raw.data, v->raw.len, &pos, &l, &why))
		;
	if (why != NULL)
		report(v, 0, "links record of batch %llu at %s offset %llu: %s",
		       (unsigned long long)h.seq, name, (unsigned long long)a, why);
	return a + len;
}

/* Walks [pos, end) of a container between known records. */
static void scan_gap(verify_ctx *v, uint32_t id, uint64_t pos, uint64_t end)
{
	arca_error e;
	int fd;
	if (pos >= end)
		return;
	fd = arca_store_container_fd(v->s, id, &e);
	if (fd < 0)
		return; /* the messages in it are reported as missing */
	while (pos < end)
		pos = check_unknown(v, id, fd, pos, end);
}

typedef struct {
	uint32_t id;
	uint64_t end; /* min(committed_len, file size) */
} vcont;

static uint64_t container_end(arca_store *s, uint32_t id, uint64_t committed)
{
	arca_error e;
	struct stat sb;
	int fd = arca_store_container_fd(s, id, &e);
	if (fd < 0 || fstat(fd, &sb) != 0)
		return 0;
	return (uint64_t)sb.st_size < committed ? (uint64_t)sb.st_size : committed;
}

/* Re-reads every dictionary record named by metadata; a damaged one is reported once here
 * (msg_id 0) and then again, as the reason, for each message that uses it. */
static arca_status verify_dicts(verify_ctx *v, arca_error *err)
{
	sqlite3_stmt *q = NULL;
	size_t cap = 0;
	int rc;
	arca_dict_reset(v->s);
	if (v->s->format == ARCA_STORE_FORMAT_V1 &&
	    sqlite3_prepare_v2(v->s->db, "SELECT 1 FROM dicts", -1, &q, NULL) != SQLITE_OK) {
		sqlite3_finalize(q);
		return ARCA_OK; /* format 1, not upgraded: no dictionaries */
	}
	sqlite3_finalize(q);
	rc = sqlite3_prepare_v2(v->s->db, "SELECT id, container, offset, stored_size FROM dicts"
	                        " ORDER BY id", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(v->s->db, rc, err, "cannot read dictionaries");
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		const ZSTD_DDict *dd;
		arca_error e;
		if (v->ndicts == cap) {
			vdict *n = realloc(v->dicts, (cap = cap ? 2 * cap : 4) * sizeof(*n));
			if (n == NULL) {
				sqlite3_finalize(q);
				return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			}
			v->dicts = n;
		}
		v->dicts[v->ndicts++] = (vdict){.container = (uint32_t)sqlite3_column_int64(q, 1),
		                                .offset = (uint64_t)sqlite3_column_int64(q, 2),
		                                .size = (uint64_t)sqlite3_column_int64(q, 3)};
		if (id <= 0 || id > UINT32_MAX)
			report(v, 0, "dictionary row with a bad id %lld in metadata", (long long)id);
		else if (arca_dict_get(v->s, (uint32_t)id, &dd, &e) != ARCA_OK)
			report(v, 0, "%s", e.msg);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return arca_meta_err(v->s->db, rc, err, "cannot read dictionaries");
	return ARCA_OK;
}

arca_status arca_store_verify(arca_store *s, arca_store_damage_cb cb, void *ctx, uint64_t *checked,
                              uint64_t *damaged, arca_error *err)
{
	verify_ctx v = {.s = s, .cb = cb, .ctx = ctx};
	sqlite3_stmt *q = NULL;
	vcont *conts = NULL;
	size_t nconts = 0, capc = 0, ci = 0;
	uint64_t nchecked = 0, pos = 0, cend = 0;
	uint32_t cur = 0;
	arca_buf out;
	arca_status st = ARCA_OK;
	int rc;
	if (checked != NULL)
		*checked = 0;
	if (damaged != NULL)
		*damaged = 0;
	if (s->in_txn)
		return arca_error_set(err, ARCA_ERR_STATE, "commit or roll back before verify");
	arca_buf_init(&v.hb, (size_t)2 * ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&v.plain, (size_t)2 * ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&v.raw, ARCA_REC_LINKS_MAX);
	arca_buf_init(&out, ARCA_MAX_MESSAGE_SIZE);
	/* One read transaction: a consistent snapshot while a writer goes on. */
	if ((st = arca_meta_exec(s->db, "BEGIN", err)) != ARCA_OK)
		goto out;
	rc = sqlite3_prepare_v2(s->db, "SELECT id, committed_len FROM containers ORDER BY id", -1,
	                        &q, NULL);
	while (q != NULL && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (nconts == capc) {
			vcont *n = realloc(conts, (capc = capc ? 2 * capc : 16) * sizeof(*n));
			if (n == NULL) {
				st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
				goto out;
			}
			conts = n;
		}
		conts[nconts].id = (uint32_t)sqlite3_column_int64(q, 0);
		conts[nconts].end = (uint64_t)sqlite3_column_int64(q, 1);
		nconts++;
	}
	if (rc != SQLITE_DONE) {
		st = arca_meta_err(s->db, rc, err, "cannot read containers");
		goto out;
	}
	sqlite3_finalize(q);
	q = NULL;
	for (size_t i = 0; i < nconts; i++)
		conts[i].end = container_end(s, conts[i].id, conts[i].end);
	if ((st = verify_dicts(&v, err)) != ARCA_OK)
		goto out;
	rc = sqlite3_prepare_v2(s->db, "SELECT id, sha256, size, stored_size, container, offset"
	                        " FROM messages ORDER BY container, offset", -1, &q, NULL);
	if (rc != SQLITE_OK) {
		st = arca_meta_err(s->db, rc, err, "cannot list messages");
		goto out;
	}
	/* Merge walk: each message's record is checked, and the gaps between them must hold
	 * only links records. */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		arca_store_msgrow m;
		arca_error e;
		m.id = (uint64_t)sqlite3_column_int64(q, 0);
		memset(m.sha, 0, sizeof(m.sha));
		if (sqlite3_column_bytes(q, 1) == ARCA_SHA256_LEN)
			memcpy(m.sha, sqlite3_column_blob(q, 1), ARCA_SHA256_LEN);
		m.size = (uint64_t)sqlite3_column_int64(q, 2);
		m.stored_size = (uint64_t)sqlite3_column_int64(q, 3);
		m.container = (uint32_t)sqlite3_column_int64(q, 4);
		m.offset = (uint64_t)sqlite3_column_int64(q, 5);
		if (m.container != cur) {
			if (cur != 0)
				scan_gap(&v, cur, pos, cend);
			while (ci < nconts && conts[ci].id < m.container) {
				scan_gap(&v, conts[ci].id, 0, conts[ci].end);
				ci++;
			}
			cend = 0;
			if (ci < nconts && conts[ci].id == m.container)
				cend = conts[ci++].end;
			cur = m.container;
			pos = 0;
		}
		if (m.offset > pos)
			scan_gap(&v, cur, pos, m.offset < cend ? m.offset : cend);
		nchecked++;
		arca_buf_reset(&out);
		if (m.offset < pos) {
			report(&v, m.id, "record overlaps the previous record (metadata damaged)");
		} else if (arca_store_read_msg(s, &m, &out, &e) != ARCA_OK) {
			report(&v, m.id, "%s", e.msg);
		}
		if (m.offset + m.stored_size > pos)
			pos = m.offset + m.stored_size;
		if (out.cap > ((size_t)8 << 20))
			arca_buf_free(&out);
	}
	if (rc != SQLITE_DONE) {
		st = arca_meta_err(s->db, rc, err, "cannot list messages");
		goto out;
	}
	if (cur != 0)
		scan_gap(&v, cur, pos, cend);
	for (; ci < nconts; ci++)
		scan_gap(&v, conts[ci].id, 0, conts[ci].end);
out:
	sqlite3_finalize(q);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	free(conts);
	free(v.dicts);
	arca_buf_free(&v.hb);
	arca_buf_free(&v.plain);
	arca_buf_free(&v.raw);
	arca_buf_free(&out);
	if (checked != NULL)
		*checked = nchecked;
	if (damaged != NULL)
		*damaged = v.damaged;
	return st;
}

/* ------------------------------------------------------------------------------------ */
/* recreate_meta */

typedef struct {
	const uint8_t *key;
	uint32_t key_id;
	sqlite3 *db;
	sqlite3_stmt *ins_msg, *ins_mem, *has_msg, *ins_cont;
	arca_store_resolve_cb resolve;
	void *rctx;
	arca_store_damage_cb dcb;
	void *dctx;
	ZSTD_DCtx *dctx_z;
	sqlite3_stmt *ins_dict;
	/* dictionaries recovered so far (they precede the records that use them) */
	struct {
		uint32_t id;
		ZSTD_DDict *ddict;
	} *dicts;
	size_t ndicts, capdicts;
	char why[128];
	arca_buf plain, raw;
	uint64_t messages, max_id, max_batch;
	/* last resolved names: consecutive records usually share them */
	char last_arch[ARCA_NAME_MAX + 1], last_folder[ARCA_FOLDER_MAX + 1];
	uint32_t last_aid, last_fid;
	bool have_last;
} rebuild;

static void rb_report(rebuild *r, uint64_t msg_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rb_report(rebuild *r, uint64_t msg_id, const char *fmt, ...)
{
	char reason[ARCA_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	arca_log(ARCA_LOG_WARN, "store", "recreate: %s", reason);
	if (r->dcb != NULL)
		r->dcb(r->dctx, msg_id, reason);
}

static arca_status resolve(rebuild *r, const char *an, size_t anl, const char *fp, size_t fpl,
                           uint32_t *aid, uint32_t *fid, arca_error *err)
{
	char a[ARCA_NAME_MAX + 1], f[ARCA_FOLDER_MAX + 1];
	arca_status st;
	memcpy(a, an, anl);
	a[anl] = '\0';
	memcpy(f, fp, fpl);
	f[fpl] = '\0';
	if (r->have_last && strcmp(a, r->last_arch) == 0 && strcmp(f, r->last_folder) == 0) {
		*aid = r->last_aid;
		*fid = r->last_fid;
		return ARCA_OK;
	}
	/* Names are binary-safe in the record; a NUL inside cannot be passed on. */
	if (strlen(a) != anl || strlen(f) != fpl)
		return arca_error_set(err, ARCA_ERR_CORRUPT, "name contains NUL");
	st = r->resolve(r->rctx, a, f, aid, fid);
	if (st != ARCA_OK)
		return arca_error_set(err, st, "cannot resolve archive \"%s\" folder \"%s\"", a, f);
	memcpy(r->last_arch, a, anl + 1);
	memcpy(r->last_folder, f, fpl + 1);
	r->last_aid = *aid;
	r->last_fid = *fid;
	r->have_last = true;
	return ARCA_OK;
}

/* Inserts a membership; ARCA_OK also if it exists. Fatal only for database errors. */
static arca_status add_member(rebuild *r, uint64_t msg, uint32_t aid, uint32_t fid, uint64_t batch,
                              arca_error *err)
{
	int rc;
	sqlite3_bind_int64(r->ins_mem, 1, fid);
	sqlite3_bind_int64(r->ins_mem, 2, (int64_t)msg);
	sqlite3_bind_int64(r->ins_mem, 3, aid);
	sqlite3_bind_int64(r->ins_mem, 4, (int64_t)batch);
	rc = sqlite3_step(r->ins_mem);
	sqlite3_reset(r->ins_mem);
	if (rc != SQLITE_DONE)
		return arca_meta_err(r->db, rc, err, "cannot insert membership");
	if (batch > r->max_batch)
		r->max_batch = batch;
	return ARCA_OK;
}

/* Authenticates the record at p (avail bytes left in the file); on success *h is set and
 * r->plain holds the plaintext. */
static bool try_record(rebuild *r, const uint8_t *p, uint64_t avail, arca_rec_hdr *h,
                       const char **why)
{
	if (avail < ARCA_REC_OVERHEAD) {
		*why = "incomplete record";
		return false;
	}
	if (!arca_rec_hdr_decode(p, h, why))
		return false;
	if ((uint64_t)h->body_len + ARCA_REC_OVERHEAD > avail) {
		*why = "incomplete record (container truncated)";
		return false;
	}
	if (h->key_id != r->key_id) {
		*why = "record encrypted with another key id";
		return false;
	}
	if (arca_rec_open(r->key, h, p, &r->plain, NULL) != ARCA_OK) {
		*why = "authentication failed (record altered)";
		return false;
	}
	return true;
}

/* Processes an authenticated content record; false + *why if it is unusable. Database
 * errors are returned through *st. */
static bool take_content(rebuild *r, const arca_rec_hdr *h, uint32_t cid, uint64_t off,
                         const char **why, arca_status *st, arca_error *err)
{
	arca_rec_content c;
	uint8_t sha[ARCA_SHA256_LEN];
	uint32_t aid, fid;
	const ZSTD_DDict *ddict = NULL;
	int rc;
	if (!arca_rec_content_parse((const uint8_t *)r->plain.data, r->plain.len, h->version, &c,
	                            why))
		return false;
	if (c.msg_id != h->seq || c.msg_id == 0 || c.msg_id > INT64_MAX) {
		*why = "content record has an inconsistent message id";
		return false;
	}
	if (c.dict_id != 0) {
		for (size_t i = 0; i < r->ndicts && ddict == NULL; i++)
			if (r->dicts[i].id == c.dict_id)
				ddict = r->dicts[i].ddict;
		if (ddict == NULL) {
			snprintf(r->why, sizeof(r->why), "dictionary %u unknown or damaged",
			         (unsigned)c.dict_id);
			*why = r->why;
			return false;
		}
	}
	arca_buf_reset(&r->raw);
	if (!arca_rec_decompress(r->dctx_z, ddict, c.payload, c.payload_len, c.raw_size,
	                         ARCA_MAX_MESSAGE_SIZE, &r->raw, why))
		return false;
	arca_sha256(r->raw.data, r->raw.len, sha);
	if (memcmp(sha, c.sha, sizeof(sha)) != 0) {
		*why = "sha-256 mismatch";
		return false;
	}
	if (r->raw.cap > ((size_t)8 << 20))
		arca_buf_free(&r->raw);
	sqlite3_bind_int64(r->ins_msg, 1, (int64_t)c.msg_id);
	sqlite3_bind_blob(r->ins_msg, 2, c.sha, ARCA_SHA256_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(r->ins_msg, 3, (int64_t)c.raw_size);
	sqlite3_bind_int64(r->ins_msg, 4, (int64_t)(h->body_len + ARCA_REC_OVERHEAD));
	sqlite3_bind_int64(r->ins_msg, 5, cid);
	sqlite3_bind_int64(r->ins_msg, 6, (int64_t)off);
	sqlite3_bind_int64(r->ins_msg, 7, c.archive_time);
	rc = sqlite3_step(r->ins_msg);
	sqlite3_reset(r->ins_msg);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		*why = "duplicate record (message id or content already recovered; ignored)";
		return false;
	}
	if (rc != SQLITE_DONE) {
		*st = arca_meta_err(r->db, rc, err, "cannot insert message");
		return false;
	}
	r->messages++;
	if (c.msg_id > r->max_id)
		r->max_id = c.msg_id;
	if (c.batch > r->max_batch)
		r->max_batch = c.batch;
	/* From here on the message is recovered; a membership problem is reported apart. */
	if (resolve(r, c.archive_name, c.archive_name_len, c.folder_path, c.folder_path_len, &aid,
	            &fid, err) != ARCA_OK) {
		rb_report(r, c.msg_id, "membership lost: %s", err != NULL ? err->msg : "resolve");
		return true;
	}
	*st = add_member(r, c.msg_id, aid, fid, c.batch, err);
	return true;
}

static bool msg_known(rebuild *r, uint64_t id)
{
	int rc;
	sqlite3_bind_int64(r->has_msg, 1, (int64_t)id);
	rc = sqlite3_step(r->has_msg);
	sqlite3_reset(r->has_msg);
	return rc == SQLITE_ROW;
}

static bool take_links(rebuild *r, const arca_rec_hdr *h, const char **why, arca_status *st,
                       arca_error *err)
{
	arca_rec_link l;
	size_t pos = 0;
	uint64_t lost = 0;
	arca_buf_reset(&r->raw);
	if (!arca_rec_decompress(r->dctx_z, NULL, r->plain.data, r->plain.len, UINT64_MAX,
	                         ARCA_REC_LINKS_MAX, &r->raw, why))
		return false;
	if (h->seq > INT64_MAX) {
		*why = "links record has a bad batch number";
		return false;
	}
	/* Validate the whole list before taking any of it. */
	while (arca_rec_link_next((const uint8_t *)r->raw.data, r->raw.len, &pos, &l, why))
		;
	if (*why != NULL)
		return false;
	pos = 0;
	while (*st == ARCA_OK &&
	       arca_rec_link_next((const uint8_t *)r->raw.data, r->raw.len, &pos, &l, why)) {
		uint32_t aid, fid;
		if (!msg_known(r, l.msg_id)) {
			lost++;
			continue;
		}
		if (resolve(r, l.archive_name, l.archive_name_len, l.folder_path, l.folder_path_len,
		            &aid, &fid, err) != ARCA_OK) {
			rb_report(r, l.msg_id, "membership lost: %s", err != NULL ? err->msg : "resolve");
			continue;
		}
		*st = add_member(r, l.msg_id, aid, fid, h->seq, err);
	}
	if (h->seq > r->max_batch)
		r->max_batch = h->seq;
	if (lost > 0)
		rb_report(r, 0, "links record of batch %llu: %llu memberships refer to messages "
		          "whose content record is lost", (unsigned long long)h->seq,
		          (unsigned long long)lost);
	*why = NULL;
	return true;
}

/* Processes an authenticated dictionary record: keeps it for the content records after it
 * and records its location. */
static bool take_dict(rebuild *r, const arca_rec_hdr *h, uint32_t cid, uint64_t off,
                      const char **why, arca_status *st, arca_error *err)
{
	const uint8_t *dict;
	size_t dlen;
	ZSTD_DDict *dd;
	int rc;
	if (!arca_rec_dict_parse((const uint8_t *)r->plain.data, r->plain.len, h->seq, &dict, &dlen,
	                         why))
		return false;
	for (size_t i = 0; i < r->ndicts; i++) {
		if (r->dicts[i].id == h->seq) {
			*why = "duplicate dictionary record (ignored)";
			return false;
		}
	}
	if (r->ndicts == r->capdicts) {
		size_t nc = r->capdicts ? 2 * r->capdicts : 4;
		void *n = realloc(r->dicts, nc * sizeof(*r->dicts));
		if (n == NULL) {
			*st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			return false;
		}
		r->dicts = n;
		r->capdicts = nc;
	}
	if ((dd = ZSTD_createDDict(dict, dlen)) == NULL) {
		*st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory (dictionary)");
		return false;
	}
	r->dicts[r->ndicts].id = (uint32_t)h->seq;
	r->dicts[r->ndicts++].ddict = dd;
	sqlite3_bind_int64(r->ins_dict, 1, (int64_t)h->seq);
	sqlite3_bind_int64(r->ins_dict, 2, cid);
	sqlite3_bind_int64(r->ins_dict, 3, (int64_t)off);
	sqlite3_bind_int64(r->ins_dict, 4, (int64_t)(h->body_len + ARCA_REC_OVERHEAD));
	rc = sqlite3_step(r->ins_dict);
	sqlite3_reset(r->ins_dict);
	if (rc != SQLITE_DONE)
		*st = arca_meta_err(r->db, rc, err, "cannot insert dictionary");
	return true;
}

static const char *type_name(uint8_t type)
{
	return type == ARCA_REC_CONTENT ? "content" : type == ARCA_REC_DICT ? "dictionary" :
	       "links";
}

/* Walks one container; returns the end of the last good record in *good_end and the file
 * size in *size_out. */
static arca_status walk_container(rebuild *r, const char *path, uint32_t cid, uint64_t *good_end,
                                  uint64_t *size_out, arca_error *err)
{
	struct stat sb;
	const uint8_t *map = NULL;
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	uint64_t size, pos = 0;
	arca_status st = ARCA_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*good_end = 0;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		rb_report(r, 0, "cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return ARCA_OK;
	}
	size = (uint64_t)sb.st_size;
	*size_out = size;
	if (size > 0) {
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			st = arca_error_errno(err, errno, "cannot map %s", path);
			close(fd);
			return st;
		}
	}
	while (pos < size && st == ARCA_OK) {
		arca_rec_hdr h;
		const char *why = NULL;
		uint64_t next;
		bool ok = try_record(r, map + pos, size - pos, &h, &why);
		if (ok) {
			if (h.type == ARCA_REC_CONTENT)
				ok = take_content(r, &h, cid, pos, &why, &st, err);
			else if (h.type == ARCA_REC_DICT)
				ok = take_dict(r, &h, cid, pos, &why, &st, err);
			else
				ok = take_links(r, &h, &why, &st, err);
			if (st != ARCA_OK)
				break;
			pos += ARCA_REC_OVERHEAD + (uint64_t)h.body_len;
			if (ok) {
				*good_end = pos;
			} else {
				rb_report(r, h.type == ARCA_REC_CONTENT ? h.seq : 0,
				          "%s record %llu at %s offset %llu: %s", type_name(h.type),
				          (unsigned long long)h.seq, name,
				          (unsigned long long)(pos - ARCA_REC_OVERHEAD - h.body_len), why);
			}
			continue;
		}
		/* Resync: the next "ARC1" at which a record authenticates. */
		next = size;
		for (uint64_t q = pos + 1; q + ARCA_REC_OVERHEAD <= size; q++) {
			const uint8_t *m = memmem(map + q, size - q, ARCA_REC_MAGIC, 4);
			arca_rec_hdr h2;
			const char *w2;
			if (m == NULL)
				break;
			q = (uint64_t)(m - map);
			if (try_record(r, map + q, size - q, &h2, &w2)) {
				next = q;
				break;
			}
		}
		rb_report(r, 0, "damaged data at %s offset %llu (%llu bytes skipped): %s", name,
		          (unsigned long long)pos, (unsigned long long)(next - pos), why);
		pos = next;
	}
	if (map != NULL)
		munmap((void *)map, size);
	close(fd);
	return st;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorted ids of the container files in dir. */
static arca_status list_containers(const char *dir, uint32_t **ids, size_t *n, arca_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	if (d == NULL)
		return arca_error_errno(err, errno, "cannot open %s", dir);
	while ((de = readdir(d)) != NULL) {
		uint32_t id = arca_rec_container_id(de->d_name);
		if (id == 0)
			continue;
		if (*n == cap) {
			uint32_t *nn = realloc(*ids, (cap = cap ? 2 * cap : 16) * sizeof(*nn));
			if (nn == NULL) {
				closedir(d);
				return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			}
			*ids = nn;
		}
		(*ids)[(*n)++] = id;
	}
	closedir(d);
	if (*n > 0)
		qsort(*ids, *n, sizeof(**ids), cmp_u32);
	return ARCA_OK;
}

static void unlink_db(const char *path)
{
	char p[ARCA_PATH_MAX + 8];
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-journal", path);
	unlink(p);
}

/* Moves the old database (and its WAL, which holds committed data) aside. */
static arca_status move_aside(const char *path, arca_error *err)
{
	char old[ARCA_PATH_MAX + 64], a[ARCA_PATH_MAX + 8], b[ARCA_PATH_MAX + 80];
	snprintf(old, sizeof(old), "%s.old-%lld", path, (long long)time(NULL));
	for (int i = 1; arca_fs_exists(old) && i < 1000; i++)
		snprintf(old, sizeof(old), "%s.old-%lld-%d", path, (long long)time(NULL), i);
	if (rename(path, old) != 0)
		return arca_error_errno(err, errno, "cannot move %s aside", path);
	snprintf(a, sizeof(a), "%s-wal", path);
	snprintf(b, sizeof(b), "%s-wal", old);
	if (arca_fs_exists(a) && rename(a, b) != 0)
		return arca_error_errno(err, errno, "cannot move %s aside", a);
	snprintf(a, sizeof(a), "%s-shm", path);
	unlink(a);
	arca_log(ARCA_LOG_INFO, "store", "old metadata database moved to %s", old);
	return ARCA_OK;
}

arca_status arca_store_recreate_meta(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                                     uint32_t key_id, arca_store_resolve_cb resolve_cb, void *rctx,
                                     arca_store_damage_cb damage_cb, void *dctx, uint64_t *messages,
                                     arca_error *err)
{
	rebuild r = {.key = key, .key_id = key_id, .resolve = resolve_cb, .rctx = rctx,
	             .dcb = damage_cb, .dctx = dctx};
	char tmp[ARCA_PATH_MAX + 16];
	uint32_t *ids = NULL;
	size_t n = 0;
	arca_status st;
	int rc, lock_fd;
	if (messages != NULL)
		*messages = 0;
	if (paths == NULL || paths->meta_path == NULL || paths->content_dir == NULL ||
	    resolve_cb == NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "bad arguments to recreate_meta");
	if (strlen(paths->meta_path) + 16 >= ARCA_PATH_MAX)
		return arca_error_set(err, ARCA_ERR_LIMIT, "path too long");
	/* With the wrong key every record would look damaged: check it against the old
	 * database first if one is readable. */
	if (arca_fs_exists(paths->meta_path)) {
		sqlite3 *old = NULL;
		arca_error e;
		if (arca_meta_open(paths->meta_path, SQLITE_OPEN_READONLY, &old, &e) == ARCA_OK) {
			st = arca_meta_check_key(old, key, key_id, NULL, NULL, NULL, &e);
			sqlite3_close(old);
			if (st == ARCA_ERR_CRYPTO)
				return arca_error_set(err, st, "%s", e.msg);
		}
	}
	/* No writer may append while the containers are walked. */
	lock_fd = open(paths->content_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0)
		return arca_error_errno(err, errno, "cannot open %s", paths->content_dir);
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		close(lock_fd);
		return arca_error_set(err, ARCA_ERR_STATE, "store %s is open for writing",
		                      paths->content_dir);
	}
	if ((st = list_containers(paths->content_dir, &ids, &n, err)) != ARCA_OK) {
		close(lock_fd);
		return st;
	}
	snprintf(tmp, sizeof(tmp), "%s.recreate", paths->meta_path);
	unlink_db(tmp);
	arca_buf_init(&r.plain, (size_t)2 * ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&r.raw, ARCA_REC_LINKS_MAX > ARCA_MAX_MESSAGE_SIZE ? ARCA_REC_LINKS_MAX :
	              ARCA_MAX_MESSAGE_SIZE);
	r.dctx_z = ZSTD_createDCtx();
	if (r.dctx_z == NULL) {
		st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		goto out;
	}
	st = arca_meta_open(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &r.db, err);
	if (st == ARCA_OK)
		st = arca_meta_init(r.db, key, key_id, err);
	if (st == ARCA_OK)
		st = arca_meta_exec(r.db, "BEGIN", err);
	if (st != ARCA_OK)
		goto out;
	rc = sqlite3_prepare_v2(r.db, "INSERT INTO messages(id, sha256, size, stored_size,"
	                        " container, offset, archive_time) VALUES(?,?,?,?,?,?,?)", -1,
	                        &r.ins_msg, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "INSERT OR IGNORE INTO members(folder_id, message_id,"
		                        " archive_id, batch) VALUES(?,?,?,?)", -1, &r.ins_mem, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "SELECT 1 FROM messages WHERE id = ?", -1, &r.has_msg,
		                        NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "INSERT INTO containers(id, committed_len) VALUES(?,?)",
		                        -1, &r.ins_cont, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "INSERT INTO dicts(id, container, offset, stored_size)"
		                        " VALUES(?,?,?,?)", -1, &r.ins_dict, NULL);
	if (rc != SQLITE_OK) {
		st = arca_meta_err(r.db, rc, err, "cannot prepare statements");
		goto out;
	}
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		char path[ARCA_PATH_MAX + 32], name[32];
		uint64_t good = 0, size = 0;
		arca_rec_container_name(name, sizeof(name), ids[i]);
		snprintf(path, sizeof(path), "%s/%s", paths->content_dir, name);
		st = walk_container(&r, path, ids[i], &good, &size, err);
		if (st != ARCA_OK)
			break;
		/* Bytes after the last good record of the last container are a crash tail (the
		 * next open cuts them). Damaged bytes in earlier containers are kept, so nothing
		 * is destroyed automatically; verify keeps reporting them. */
		if (i + 1 < n)
			good = size;
		sqlite3_bind_int64(r.ins_cont, 1, ids[i]);
		sqlite3_bind_int64(r.ins_cont, 2, (int64_t)good);
		rc = sqlite3_step(r.ins_cont);
		sqlite3_reset(r.ins_cont);
		if (rc != SQLITE_DONE)
			st = arca_meta_err(r.db, rc, err, "cannot insert container");
	}
	if (st == ARCA_OK) {
		char sql[128];
		snprintf(sql, sizeof(sql), "UPDATE settings SET last_batch = %llu, next_msg_id = %llu",
		         (unsigned long long)r.max_batch, (unsigned long long)r.max_id + 1);
		st = arca_meta_exec(r.db, sql, err);
	}
	if (st == ARCA_OK)
		st = arca_meta_exec(r.db, "COMMIT", err);
out:
	sqlite3_finalize(r.ins_msg);
	sqlite3_finalize(r.ins_mem);
	sqlite3_finalize(r.has_msg);
	sqlite3_finalize(r.ins_cont);
	sqlite3_finalize(r.ins_dict);
	for (size_t i = 0; i < r.ndicts; i++)
		ZSTD_freeDDict(r.dicts[i].ddict);
	free(r.dicts);
	/* Closing the last connection checkpoints the WAL into the main file. */
	if (r.db != NULL && sqlite3_close(r.db) != SQLITE_OK && st == ARCA_OK)
		st = arca_error_set(err, ARCA_ERR_DB, "cannot close %s", tmp);
	ZSTD_freeDCtx(r.dctx_z);
	arca_buf_free(&r.plain);
	arca_buf_free(&r.raw);
	free(ids);
	if (st == ARCA_OK && arca_fs_exists(paths->meta_path))
		st = move_aside(paths->meta_path, err);
	if (st == ARCA_OK && rename(tmp, paths->meta_path) != 0)
		st = arca_error_errno(err, errno, "cannot rename %s", tmp);
	if (st == ARCA_OK)
		st = arca_fs_fsync_dir(paths->meta_path, err);
	if (st != ARCA_OK)
		unlink_db(tmp);
	else if (messages != NULL)
		*messages = r.messages;
	close(lock_fd);
	return st;
}

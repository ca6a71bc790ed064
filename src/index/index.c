/* Per-archive full-text index: one SQLite database (WAL) holding
 *   fts          contentless FTS5 table; rowid = sort key (day << 12 | slot within the day)
 *   docs         one row per message (rowid = sort key): what a hit list shows, without
 *                touching the store: date, size, from, subject (the excerpt column is only
 *                read from older indexes; snippets are cut from the message by the caller)
 *   doc_folders  (folder_id, sortkey) memberships, for folder-restricted searches
 *   state        schema version, the last store batch indexed, and a generation (random, new
 *                with every file or clear: what a process remembers of an index is stale
 *                when it changes)
 *   xhdr, xbody, xfield  words of the message as the IMAP server reads it that fts lacks, for
 *                IMAP SEARCH's exact substring keys (imap.c)
 * The index is derived data: the store's metadata is the truth, and after a crash the caller
 * re-indexes batches newer than arca_index_last_batch(), so synchronous=NORMAL is enough. */
#include "index/index.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index_int.h"
#include "index/text.h"
#include "lib/buf.h"

/* 2: day-resolution sort keys; 3: xhdr, xbody, xfield (imap.c). A version 2 file is used as it is
 * (its documents have no DOC_XTEXT) and upgraded by the first writable open. */
#define INDEX_SCHEMA_VERSION 3
/* Bytes of body text kept (compressed) per message for snippets. */
#define EXCERPT_MAX 2048
/* Bytes of from/subject kept in docs for hit lists. */
#define DOCS_FIELD_MAX 1000
/* Snippet window, in bytes of text (about characters for Latin scripts). */
#define SNIPPET_LEN 160
#define SNIPPET_LEAD 50
#define SNIPPET_SCAN_MAX (256u * 1024u)
/* Sort keys: the day (UTC) in the high bits, then KEY_SLOTS slots across the day (one per
 * ~21 s), probing upwards on collision. Keys must stay dense: FTS5 stores rowid deltas as
 * varints, and second-resolution keys with message-id bits below made every doclist entry
 * 4 bytes longer (the index of the SpamAssassin corpus was 60% larger). Day resolution also
 * makes after:/before: exact rowid ranges. */
#define KEY_SHIFT 12
#define KEY_SLOTS (1u << KEY_SHIFT)
#define KEY_DAY_MAX ((INT64_C(1) << 40) - 1)

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS state(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS docs("
	" sortkey INTEGER PRIMARY KEY,"
	" msg_id INTEGER NOT NULL UNIQUE,"
	" date INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" flags INTEGER NOT NULL,"
	" from_ TEXT NOT NULL,"
	" subject TEXT NOT NULL,"
	" excerpt BLOB,"
	" folders BLOB);" /* folder ids as little-endian uint32s, for hit lists */
	"CREATE TABLE IF NOT EXISTS doc_folders(folder_id INTEGER NOT NULL,"
	" sortkey INTEGER NOT NULL, PRIMARY KEY(folder_id, sortkey)) WITHOUT ROWID;"
	"CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5("
	" subject, from_, to_, cc, bcc, body, attachment, filename, msgid, flags,"
	" content='', tokenize='unicode61 remove_diacritics 2', detail=full);"
	/* IMAP SEARCH's exact substring support (imap.c): which words a message's text holds as
	 * IMAP reads it, no positions */
	"CREATE VIRTUAL TABLE IF NOT EXISTS xhdr USING fts5(t,"
	" content='', tokenize='unicode61 remove_diacritics 2', detail=none, columnsize=0);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS xbody USING fts5(t,"
	" content='', tokenize='unicode61 remove_diacritics 2', detail=none, columnsize=0);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS xfield USING fts5(subject, from_, to_, cc, bcc, msgid,"
	" content='', tokenize='unicode61 remove_diacritics 2', detail=column, columnsize=0);"
	"INSERT OR IGNORE INTO state(k, v) VALUES('version', 3), ('last_batch', 0),"
	" ('generation', random() & 9223372036854775807);"
	"UPDATE state SET v = 3 WHERE k = 'version' AND v = 2;";

arca_status ix_db_status(int rc)
{
	switch (rc & 0xFF) {
	case SQLITE_FULL: return ARCA_ERR_NOSPACE;
	case SQLITE_NOMEM: return ARCA_ERR_NOMEM;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return ARCA_ERR_CORRUPT;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN: return ARCA_ERR_IO;
	case SQLITE_READONLY: return ARCA_ERR_STATE;
	default: return ARCA_ERR_DB;
	}
}

arca_status ix_db_fail(arca_index *ix, arca_error *err, int rc, const char *what)
{
	return arca_error_set(err, ix_db_status(rc), "index: %s: %s", what,
	                      ix->db != NULL ? sqlite3_errmsg(ix->db) : sqlite3_errstr(rc));
}

/* Prepares a statement on first use and resets it for reuse afterwards. */
int ix_prep(arca_index *ix, sqlite3_stmt **st, const char *sql)
{
	if (*st != NULL) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
		return SQLITE_OK;
	}
	return sqlite3_prepare_v3(ix->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

int ix_exec(arca_index *ix, const char *sql)
{
	return sqlite3_exec(ix->db, sql, NULL, NULL, NULL);
}

static void finalize_all(arca_index *ix)
{
	sqlite3_stmt **all[] = { &ix->st_find_msg, &ix->st_key_taken, &ix->st_ins_doc,
		                 &ix->st_ins_fts, &ix->st_ins_folder, &ix->st_set_folders,
		                 &ix->st_get_doc, &ix->st_set_batch, &ix->st_ins_x[IX_T_XHDR],
		                 &ix->st_ins_x[IX_T_XBODY], &ix->st_ins_x[IX_T_XFIELD] };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		sqlite3_finalize(*all[i]);
		*all[i] = NULL;
	}
	for (size_t i = 0; i < SHAPE_COUNT; i++) {
		sqlite3_finalize(ix->search[i]);
		ix->search[i] = NULL;
	}
	ix_imap_finalize(ix);
}

static arca_status load_state(arca_index *ix, arca_error *err)
{
	sqlite3_stmt *st = NULL;
	int64_t version = -1;
	int rc = sqlite3_prepare_v2(ix->db, "SELECT k, v FROM state", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		if (rc == SQLITE_ERROR)
			return arca_error_set(err, ARCA_ERR_CORRUPT, "index: not an Arca index: %s",
			                      sqlite3_errmsg(ix->db));
		return ix_db_fail(ix, err, rc, "reading state");
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		if (k == NULL)
			continue;
		if (strcmp(k, "version") == 0)
			version = sqlite3_column_int64(st, 1);
		else if (strcmp(k, "last_batch") == 0)
			ix->last_batch = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return ix_db_fail(ix, err, rc, "reading state");
	if (version != INDEX_SCHEMA_VERSION && version != 2)
		return arca_error_set(err, ARCA_ERR_CORRUPT,
		                      "index: schema version %lld, expected %d (rebuild the index)",
		                      (long long)version, INDEX_SCHEMA_VERSION);
	ix->version = (int)version;
	return ARCA_OK;
}

/* ---- relevance ----
 * FTS5's bm25() reads every query term's whole match list for its document frequency, which
 * makes ranking cost grow with the number of matches. Instead, arca_tf() returns per row only
 * what that row holds (its length and each phrase's column-weighted term frequency), and the
 * BM25 formula is applied in C over the newest ARCA_RELEVANCE_WINDOW matches, with document
 * frequencies counted within that window: the cost is bounded by the window. */
#define RANK_MAX_PHRASES 64
/* Column weights in fts column order: a word in the subject says much more about a message
 * than one in a long body; flags never contribute. */
static const double rank_weights[] = {8.0, 3.0, 2.0, 1.5, 1.5, 1.0, 0.7, 2.0, 1.0, 0.0};

static void arca_tf_fn(const Fts5ExtensionApi *api, Fts5Context *fc, sqlite3_context *ctx,
                       int nval, sqlite3_value **vals)
{
	double v[1 + RANK_MAX_PHRASES] = {0};
	int nphr = api->xPhraseCount(fc), ncol = api->xColumnCount(fc), ninst = 0;
	(void)nval;
	(void)vals;
	if (nphr > RANK_MAX_PHRASES)
		nphr = RANK_MAX_PHRASES;
	for (int c = 0; c < ncol; c++) {
		int sz = 0;
		if (api->xColumnSize(fc, c, &sz) == SQLITE_OK)
			v[0] += sz;
	}
	if (api->xInstCount(fc, &ninst) == SQLITE_OK) {
		for (int i = 0; i < ninst; i++) {
			int ip, ic, io;
			if (api->xInst(fc, i, &ip, &ic, &io) != SQLITE_OK)
				break;
			if (ip >= 0 && ip < nphr && ic >= 0 &&
			    (size_t)ic < sizeof(rank_weights) / sizeof(rank_weights[0]))
				v[1 + ip] += rank_weights[ic];
		}
	}
	sqlite3_result_blob(ctx, v, (int)((size_t)(1 + nphr) * sizeof(double)), SQLITE_TRANSIENT);
}

static int register_rank(sqlite3 *db, fts5_api **out)
{
	fts5_api *api = NULL;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
		sqlite3_step(st);
		rc = sqlite3_finalize(st);
	}
	if (rc != SQLITE_OK || api == NULL || api->iVersion < 2)
		return rc != SQLITE_OK ? rc : SQLITE_ERROR;
	*out = api;
	return api->xCreateFunction(api, "arca_tf", NULL, arca_tf_fn, NULL);
}

arca_status arca_index_open(const char *path, int flags, arca_index **out, arca_error *err)
{
	arca_index *ix;
	arca_status st;
	int oflags, rc;

	*out = NULL;
	if ((flags & ARCA_INDEX_READONLY) && (flags & ARCA_INDEX_CREATE))
		return arca_error_set(err, ARCA_ERR_INVALID, "index: cannot create read-only");
	if (!(flags & ARCA_INDEX_CREATE) && access(path, F_OK) != 0)
		return arca_error_errno(err, errno, "index: %s", path);
	ix = calloc(1, sizeof(*ix));
	if (ix == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
	ix->readonly = (flags & ARCA_INDEX_READONLY) != 0;
	ix->path = strdup(path);
	if (ix->path == NULL) {
		free(ix);
		return arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
	}
	oflags = ix->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	if (flags & ARCA_INDEX_CREATE)
		oflags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &ix->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		st = arca_error_set(err, ix_db_status(rc), "index: opening %s: %s", path,
		                    ix->db != NULL ? sqlite3_errmsg(ix->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(ix->db, 1);
	sqlite3_busy_timeout(ix->db, 10000);
	rc = register_rank(ix->db, &ix->fts5);
	if (rc != SQLITE_OK) {
		st = ix_db_fail(ix, err, rc, "registering the rank function");
		goto fail;
	}
	/* Up to 32 MiB page cache per handle: FTS segment reads dominate search latency. */
	rc = ix_exec(ix, "PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY;");
	if (rc == SQLITE_OK && !ix->readonly)
		rc = ix_exec(ix, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
	if (rc == SQLITE_OK && (flags & ARCA_INDEX_CREATE)) {
		rc = ix_exec(ix, "BEGIN IMMEDIATE");
		if (rc == SQLITE_OK) {
			rc = ix_exec(ix, schema_sql);
			rc = rc == SQLITE_OK ? ix_exec(ix, "COMMIT") : (ix_exec(ix, "ROLLBACK"), rc);
		}
	}
	if (rc != SQLITE_OK) {
		st = ix_db_fail(ix, err, rc, path);
		goto fail;
	}
	st = load_state(ix, err);
	if (st != ARCA_OK)
		goto fail;
	ix->cctx = ZSTD_createCCtx();
	ix->dctx = ZSTD_createDCtx();
	if (ix->cctx == NULL || ix->dctx == NULL) {
		st = arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
		goto fail;
	}
	*out = ix;
	return ARCA_OK;
fail:
	arca_index_close(&ix);
	return st;
}

void arca_index_close(arca_index **ixp)
{
	arca_index *ix;
	if (ixp == NULL || *ixp == NULL)
		return;
	ix = *ixp;
	if (ix->in_txn)
		ix_exec(ix, "ROLLBACK");
	finalize_all(ix);
	sqlite3_close_v2(ix->db);
	ZSTD_freeCCtx(ix->cctx);
	ZSTD_freeDCtx(ix->dctx);
	free(ix->path);
	free(ix);
	*ixp = NULL;
}

arca_status arca_index_begin(arca_index *ix, arca_error *err)
{
	int rc;
	if (ix->readonly)
		return arca_error_set(err, ARCA_ERR_STATE, "index: opened read-only");
	if (ix->in_txn)
		return arca_error_set(err, ARCA_ERR_STATE, "index: transaction already open");
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "begin");
	ix->in_txn = true;
	return ARCA_OK;
}

arca_status arca_index_commit(arca_index *ix, uint64_t batch, arca_error *err)
{
	int rc;
	if (!ix->in_txn)
		return arca_error_set(err, ARCA_ERR_STATE, "index: no transaction open");
	if (ix->txn_failed)
		return arca_error_set(err, ARCA_ERR_STATE,
		                      "index: a write in this batch failed; roll it back");
	if (batch > INT64_MAX)
		return arca_error_set(err, ARCA_ERR_INVALID, "index: batch number out of range");
	rc = ix_prep(ix, &ix->st_set_batch, "UPDATE state SET v = ?1 WHERE k = 'last_batch'");
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(ix->st_set_batch, 1, (int64_t)batch);
		rc = sqlite3_step(ix->st_set_batch);
		sqlite3_reset(ix->st_set_batch);
		rc = rc == SQLITE_DONE ? ix_exec(ix, "COMMIT") : rc;
	}
	if (rc != SQLITE_OK) {
		arca_status st = ix_db_fail(ix, err, rc, "commit");
		arca_index_rollback(ix);
		return st;
	}
	ix->in_txn = false;
	ix->last_batch = batch;
	return ARCA_OK;
}

void arca_index_rollback(arca_index *ix)
{
	if (!ix->in_txn)
		return;
	ix_exec(ix, "ROLLBACK");
	ix->in_txn = false;
	ix->txn_failed = false;
	/* last_batch in memory was only changed by a successful commit */
}

uint64_t arca_index_last_batch(arca_index *ix)
{
	return ix->last_batch;
}

/* ---- adding ---- */

static const char *nz(const char *s)
{
	return s != NULL ? s : "";
}

/* First key of the day that holds date (dates before 1970 count as 1970-01-01). */
static int64_t key_of_date(int64_t date)
{
	int64_t day = date < 0 ? 0 : date / 86400;
	if (day > KEY_DAY_MAX)
		day = KEY_DAY_MAX;
	return day << KEY_SHIFT;
}

/* Preferred key of a message: its day plus its time of day scaled to the slots. */
static int64_t key_preferred(int64_t date)
{
	int64_t base = key_of_date(date);
	int64_t secs = date < 0 ? 0 : date % 86400;
	return base + secs * (int64_t)KEY_SLOTS / 86400;
}

/* Appends "a\nb\nc" of the non-empty parts. */
static arca_status join_fields(arca_buf *b, const char *const *parts, size_t n)
{
	arca_status st = ARCA_OK;
	arca_buf_reset(b);
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		if (parts[i] == NULL || parts[i][0] == '\0')
			continue;
		if (b->len > 0)
			st = arca_buf_append(b, "\n", 1);
		if (st == ARCA_OK)
			st = arca_buf_appendz(b, parts[i]);
	}
	return st;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return max;
}


static arca_status add_membership(arca_index *ix, int64_t key, const void *blob, size_t blen,
                                  uint32_t folder_id, arca_error *err)
{
	unsigned char *nb;
	const unsigned char *b = blob;
	int rc;

	for (size_t i = 0; i + 4 <= blen; i += 4) {
		uint32_t f = (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 |
		             (uint32_t)b[i + 3] << 24;
		if (f == folder_id)
			return ARCA_OK;
	}
	nb = malloc(blen + 4);
	if (nb == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
	if (blen > 0)
		memcpy(nb, blob, blen);
	nb[blen] = (unsigned char)folder_id;
	nb[blen + 1] = (unsigned char)(folder_id >> 8);
	nb[blen + 2] = (unsigned char)(folder_id >> 16);
	nb[blen + 3] = (unsigned char)(folder_id >> 24);
	rc = ix_prep(ix, &ix->st_set_folders, "UPDATE docs SET folders = ?1 WHERE sortkey = ?2");
	if (rc == SQLITE_OK) {
		sqlite3_bind_blob(ix->st_set_folders, 1, nb, (int)(blen + 4), SQLITE_TRANSIENT);
		sqlite3_bind_int64(ix->st_set_folders, 2, key);
		rc = sqlite3_step(ix->st_set_folders);
		sqlite3_reset(ix->st_set_folders);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	free(nb);
	if (rc == SQLITE_OK)
		rc = ix_prep(ix, &ix->st_ins_folder,
		          "INSERT OR IGNORE INTO doc_folders(folder_id, sortkey) VALUES(?1, ?2)");
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(ix->st_ins_folder, 1, folder_id);
		sqlite3_bind_int64(ix->st_ins_folder, 2, key);
		rc = sqlite3_step(ix->st_ins_folder);
		sqlite3_reset(ix->st_ins_folder);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "adding folder membership");
	return ARCA_OK;
}

/* Looks up msg_id: 1 and *key / folders (copied into fb) if indexed, 0 if not, <0 error. */
static int find_msg(arca_index *ix, uint64_t msg_id, int64_t *key, arca_buf *fb, int *rcp)
{
	int rc = ix_prep(ix, &ix->st_find_msg, "SELECT sortkey, folders FROM docs WHERE msg_id = ?1");
	int found = 0;
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(ix->st_find_msg, 1, (int64_t)msg_id);
		rc = sqlite3_step(ix->st_find_msg);
		if (rc == SQLITE_ROW) {
			*key = sqlite3_column_int64(ix->st_find_msg, 0);
			if (fb != NULL) {
				const void *b = sqlite3_column_blob(ix->st_find_msg, 1);
				int n = sqlite3_column_bytes(ix->st_find_msg, 1);
				arca_buf_reset(fb);
				if (b != NULL && n > 0 && arca_buf_append(fb, b, (size_t)n) != ARCA_OK)
					rc = SQLITE_NOMEM;
			}
			found = rc == SQLITE_ROW;
			if (found)
				rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
		sqlite3_reset(ix->st_find_msg);
	}
	*rcp = rc;
	return rc == SQLITE_OK ? found : -1;
}

static bool has_xtext(const arca_index_doc *doc)
{
	return doc->x != NULL && doc->x->headers != NULL && doc->x->body != NULL;
}

static int add_x(arca_index *ix, int table, int64_t key, const char *text, size_t len)
{
	static const char *const sql[IX_T_COUNT] = {
		NULL, "INSERT INTO xhdr(rowid, t) VALUES(?1, ?2)", "INSERT INTO xbody(rowid, t) VALUES(?1, ?2)",
		NULL
	};
	int rc = ix_prep(ix, &ix->st_ins_x[table], sql[table]);
	if (rc != SQLITE_OK)
		return rc;
	if (len > INT32_MAX)
		len = INT32_MAX;
	sqlite3_bind_int64(ix->st_ins_x[table], 1, key);
	sqlite3_bind_text(ix->st_ins_x[table], 2, text, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(ix->st_ins_x[table]);
	sqlite3_reset(ix->st_ins_x[table]);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The xfield row: per header column, the words of IMAP's values of its fields that the column
 * (hv[i], hl[i]) lacks; no row when none lacks any. */
static arca_status add_xfield(arca_index *ix, const arca_index_xtext *x, int64_t key,
                              const char *const *hv, const size_t *hl, int *rcp)
{
	arca_buf w[ARCA_INDEX_X_FIELDS];
	arca_status st = ARCA_OK;
	bool any = false;
	int rc = SQLITE_OK;
	for (int i = 0; i < ARCA_INDEX_X_FIELDS; i++)
		arca_buf_init(&w[i], SIZE_MAX / 2);
	for (int i = 0; st == ARCA_OK && i < ARCA_INDEX_X_FIELDS; i++) {
		if (x->fields[i] == NULL || x->fields_len[i] == 0)
			continue;
		st = ix_x_words(ix, &hv[i], &hl[i], 1, x->fields[i], x->fields_len[i], &w[i]);
		any = any || w[i].len > 0;
	}
	if (st == ARCA_OK && any) {
		rc = ix_prep(ix, &ix->st_ins_x[IX_T_XFIELD],
		             "INSERT INTO xfield(rowid, subject, from_, to_, cc, bcc, msgid)"
		             " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(ix->st_ins_x[IX_T_XFIELD], 1, key);
			for (int i = 0; i < ARCA_INDEX_X_FIELDS; i++)
				sqlite3_bind_text(ix->st_ins_x[IX_T_XFIELD], 2 + i, w[i].data != NULL ? w[i].data : "",
				                  (int)w[i].len, SQLITE_STATIC);
			rc = sqlite3_step(ix->st_ins_x[IX_T_XFIELD]);
			sqlite3_reset(ix->st_ins_x[IX_T_XFIELD]);
			rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		}
	}
	for (int i = 0; i < ARCA_INDEX_X_FIELDS; i++)
		arca_buf_free(&w[i]);
	*rcp = rc;
	return st;
}

/* xhdr and xbody rows: the words of IMAP's header and body text that the fts columns the
 * same IMAP keys search (all header columns; body and attachment) do not hold. from and ids are
 * the joined from_ and msgid column texts. */
static arca_status add_xtext(arca_index *ix, const arca_index_doc *doc, int64_t key,
                             const arca_buf *from, const arca_buf *ids, arca_error *err)
{
	const arca_mime_info *m = doc->info;
	const char *hv[] = { nz(m->subject), from->data, nz(m->to), nz(m->cc), nz(m->bcc), ids->data };
	size_t hl[] = { strlen(hv[0]), from->len, strlen(hv[2]), strlen(hv[3]), strlen(hv[4]), ids->len };
	const char *bv[] = { m->body_text, m->attachment_text };
	size_t bl[] = { m->body_text != NULL ? m->body_text_len : 0,
		        m->attachment_text != NULL ? m->attachment_text_len : 0 };
	arca_buf w;
	arca_status st;
	int rc = SQLITE_OK;
	arca_buf_init(&w, SIZE_MAX / 2);
	st = ix_x_words(ix, hv, hl, 6, doc->x->headers, doc->x->headers_len, &w);
	if (st == ARCA_OK && w.len > 0)
		rc = add_x(ix, IX_T_XHDR, key, w.data, w.len);
	if (st == ARCA_OK && rc == SQLITE_OK) {
		arca_buf_reset(&w);
		st = ix_x_words(ix, bv, bl, 2, doc->x->body, doc->x->body_len, &w);
		if (st == ARCA_OK && w.len > 0)
			rc = add_x(ix, IX_T_XBODY, key, w.data, w.len);
	}
	if (st == ARCA_OK && rc == SQLITE_OK)
		st = add_xfield(ix, doc->x, key, hv, hl, &rc);
	arca_buf_free(&w);
	if (st != ARCA_OK)
		return arca_error_set(err, st, "index: words of the IMAP text: %s",
		                      st == ARCA_ERR_NOMEM ? "out of memory" : "tokenizer failed");
	return rc == SQLITE_OK ? ARCA_OK : ix_db_fail(ix, err, rc, "adding document text");
}

static arca_status add_doc(arca_index *ix, const arca_index_doc *doc, arca_error *err)
{
	const arca_mime_info *m = doc->info;
	arca_buf b1, b2, b3, b4;
	int64_t key;
	int rc, found;
	arca_status st = ARCA_OK;
	unsigned char fblob[4];

	arca_buf_init(&b1, SIZE_MAX / 2);
	arca_buf_init(&b2, SIZE_MAX / 2);
	arca_buf_init(&b3, SIZE_MAX / 2);
	arca_buf_init(&b4, SIZE_MAX / 2);

	found = find_msg(ix, doc->msg_id, &key, &b1, &rc);
	if (found < 0) {
		st = ix_db_fail(ix, err, rc, "looking up message");
		goto out;
	}
	if (found) {
		st = add_membership(ix, key, b1.data, b1.len, doc->folder_id, err);
		goto out;
	}

	/* A free sort key: ascending with the date, unique via the message id's low bits. */
	key = key_preferred(doc->date);
	rc = ix_prep(ix, &ix->st_key_taken, "SELECT 1 FROM docs WHERE sortkey = ?1");
	for (unsigned tries = 0; rc == SQLITE_OK; tries++, key++) {
		if (tries > (1u << KEY_SHIFT) || key < 0) {
			st = arca_error_set(err, ARCA_ERR_LIMIT, "index: no free sort key");
			goto out;
		}
		sqlite3_bind_int64(ix->st_key_taken, 1, key);
		rc = sqlite3_step(ix->st_key_taken);
		sqlite3_reset(ix->st_key_taken);
		if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
			break;
		}
		rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK) {
		st = ix_db_fail(ix, err, rc, "choosing sort key");
		goto out;
	}

	/* docs row: no text excerpt; snippets are cut from the message itself at search time
	 * (arca_index_snippet), which keeps the index small (on-disk budget) */
	fblob[0] = (unsigned char)doc->folder_id;
	fblob[1] = (unsigned char)(doc->folder_id >> 8);
	fblob[2] = (unsigned char)(doc->folder_id >> 16);
	fblob[3] = (unsigned char)(doc->folder_id >> 24);
	rc = ix_prep(ix, &ix->st_ins_doc,
	          "INSERT INTO docs(sortkey, msg_id, date, size, flags, from_, subject, excerpt,"
	          " folders) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
	if (rc == SQLITE_OK) {
		sqlite3_stmt *s = ix->st_ins_doc;
		const char *from = nz(m->from);
		const char *subj = nz(m->subject);
		if (from[0] == '\0')
			from = nz(m->sender);
		sqlite3_bind_int64(s, 1, key);
		sqlite3_bind_int64(s, 2, (int64_t)doc->msg_id);
		sqlite3_bind_int64(s, 3, doc->date);
		sqlite3_bind_int64(s, 4, doc->size > INT64_MAX ? INT64_MAX : (int64_t)doc->size);
		sqlite3_bind_int(s, 5, (m->has_attachment ? DOC_HAS_ATTACHMENT : 0) |
		                       (has_xtext(doc) ? DOC_XTEXT : 0));
		sqlite3_bind_text(s, 6, from, (int)utf8_cut(from, strlen(from), DOCS_FIELD_MAX),
		                  SQLITE_STATIC);
		sqlite3_bind_text(s, 7, subj, (int)utf8_cut(subj, strlen(subj), DOCS_FIELD_MAX),
		                  SQLITE_STATIC);
		sqlite3_bind_null(s, 8);
		sqlite3_bind_blob(s, 9, fblob, 4, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc == SQLITE_OK)
		rc = ix_prep(ix, &ix->st_ins_folder,
		          "INSERT OR IGNORE INTO doc_folders(folder_id, sortkey) VALUES(?1, ?2)");
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(ix->st_ins_folder, 1, doc->folder_id);
		sqlite3_bind_int64(ix->st_ins_folder, 2, key);
		rc = sqlite3_step(ix->st_ins_folder);
		sqlite3_reset(ix->st_ins_folder);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK) {
		st = ix_db_fail(ix, err, rc, "adding document");
		goto out;
	}

	/* fts row */
	{
		const char *from_parts[] = { m->sender, m->from, m->reply_to };
		const char *id_parts[] = { m->message_id, m->in_reply_to, m->references };
		st = join_fields(&b1, from_parts, 3);
		if (st == ARCA_OK)
			st = join_fields(&b2, id_parts, 3);
		arca_buf_reset(&b3);
		for (size_t i = 0; st == ARCA_OK && i < m->n_attachments; i++) {
			const char *fn = nz(m->attachments[i].filename);
			if (fn[0] == '\0')
				continue;
			if (b3.len > 0)
				st = arca_buf_append(&b3, "\n", 1);
			if (st == ARCA_OK)
				st = arca_buf_appendz(&b3, fn);
		}
		if (st == ARCA_OK)
			st = arca_buf_appendz(&b4, m->has_attachment ? "doc hasattachment" : "doc");
		if (st != ARCA_OK) {
			st = arca_error_set(err, st, "index: out of memory");
			goto out;
		}
	}
	rc = ix_prep(ix, &ix->st_ins_fts,
	          "INSERT INTO fts(rowid, subject, from_, to_, cc, bcc, body, attachment, filename,"
	          " msgid, flags) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
	if (rc == SQLITE_OK) {
		sqlite3_stmt *s = ix->st_ins_fts;
		sqlite3_bind_int64(s, 1, key);
		sqlite3_bind_text(s, 2, nz(m->subject), -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, b1.data != NULL ? b1.data : "", (int)b1.len, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, nz(m->to), -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, nz(m->cc), -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 6, nz(m->bcc), -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 7, m->body_text != NULL ? m->body_text : "",
		                  m->body_text != NULL ? (int)m->body_text_len : 0, SQLITE_STATIC);
		sqlite3_bind_text(s, 8, m->attachment_text != NULL ? m->attachment_text : "",
		                  m->attachment_text != NULL ? (int)m->attachment_text_len : 0,
		                  SQLITE_STATIC);
		sqlite3_bind_text(s, 9, b3.data != NULL ? b3.data : "", (int)b3.len, SQLITE_STATIC);
		sqlite3_bind_text(s, 10, b2.data != NULL ? b2.data : "", (int)b2.len, SQLITE_STATIC);
		sqlite3_bind_text(s, 11, b4.data, (int)b4.len, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK) {
		st = ix_db_fail(ix, err, rc, "adding document text");
		goto out;
	}
	if (has_xtext(doc))
		st = add_xtext(ix, doc, key, &b1, &b2, err);
out:
	arca_buf_free(&b1);
	arca_buf_free(&b2);
	arca_buf_free(&b3);
	arca_buf_free(&b4);
	return st;
}

/* Runs a write: in the caller's transaction, or in one of its own. No SAVEPOINT per call:
 * FTS5 flushes its pending in-memory terms to a new segment at every savepoint, which made
 * inserts ten times slower and the index larger. A failed write instead poisons the open
 * transaction so that it can only be rolled back. */
static arca_status write_begin(arca_index *ix, bool *own, arca_error *err)
{
	int rc;
	*own = false;
	if (ix->readonly)
		return arca_error_set(err, ARCA_ERR_STATE, "index: opened read-only");
	if (ix->in_txn) {
		if (ix->txn_failed)
			return arca_error_set(err, ARCA_ERR_STATE,
			                      "index: an earlier write failed; roll back the batch");
		return ARCA_OK;
	}
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "begin");
	*own = true;
	return ARCA_OK;
}

static arca_status write_end(arca_index *ix, bool own, arca_status st, arca_error *err)
{
	int rc;
	if (!own) {
		if (st != ARCA_OK && st != ARCA_ERR_NOTFOUND)
			ix->txn_failed = true;
		return st;
	}
	if (st != ARCA_OK) {
		ix_exec(ix, "ROLLBACK");
		return st;
	}
	rc = ix_exec(ix, "COMMIT");
	if (rc != SQLITE_OK) {
		st = ix_db_fail(ix, err, rc, "commit");
		ix_exec(ix, "ROLLBACK");
	}
	return st;
}

arca_status arca_index_add(arca_index *ix, const arca_index_doc *doc, arca_error *err)
{
	arca_status st;
	bool own;
	if (doc == NULL || doc->info == NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "index: no document");
	if (doc->msg_id > INT64_MAX)
		return arca_error_set(err, ARCA_ERR_INVALID, "index: message id out of range");
	st = write_begin(ix, &own, err);
	if (st != ARCA_OK)
		return st;
	return write_end(ix, own, add_doc(ix, doc, err), err);
}

arca_status arca_index_add_folder(arca_index *ix, uint64_t msg_id, uint32_t folder_id,
                                  arca_error *err)
{
	arca_buf fb;
	int64_t key;
	int rc, found;
	arca_status st;
	bool own;

	if (msg_id > INT64_MAX)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "index: message %llu not indexed",
		                      (unsigned long long)msg_id);
	st = write_begin(ix, &own, err);
	if (st != ARCA_OK)
		return st;
	arca_buf_init(&fb, 1u << 24);
	found = find_msg(ix, msg_id, &key, &fb, &rc);
	if (found < 0)
		st = ix_db_fail(ix, err, rc, "looking up message");
	else if (found == 0)
		st = arca_error_set(err, ARCA_ERR_NOTFOUND, "index: message %llu not indexed",
		                    (unsigned long long)msg_id);
	else
		st = add_membership(ix, key, fb.data, fb.len, folder_id, err);
	arca_buf_free(&fb);
	return write_end(ix, own, st, err);
}

bool arca_index_has(arca_index *ix, uint64_t msg_id)
{
	int64_t key;
	int rc;
	if (msg_id > INT64_MAX)
		return false;
	return find_msg(ix, msg_id, &key, NULL, &rc) == 1;
}

arca_status arca_index_clear(arca_index *ix, arca_error *err)
{
	int rc;
	if (ix->readonly)
		return arca_error_set(err, ARCA_ERR_STATE, "index: opened read-only");
	rc = ix_exec(ix, "SAVEPOINT ix_clear;"
	              "DELETE FROM docs; DELETE FROM doc_folders;"
	              "INSERT INTO fts(fts) VALUES('delete-all');"
	              "INSERT INTO xhdr(xhdr) VALUES('delete-all');"
	              "INSERT INTO xbody(xbody) VALUES('delete-all');"
	              "INSERT INTO xfield(xfield) VALUES('delete-all');"
	              "INSERT OR REPLACE INTO state(k, v)"
	              " VALUES('generation', random() & 9223372036854775807);"
	              "UPDATE state SET v = 0 WHERE k = 'last_batch';"
	              "RELEASE ix_clear;");
	if (rc != SQLITE_OK) {
		arca_status st = ix_db_fail(ix, err, rc, "clearing");
		ix_exec(ix, "ROLLBACK TO ix_clear; RELEASE ix_clear;");
		return st;
	}
	/* Outside a transaction the clear is already durable; inside one, commit() sets it. */
	if (!ix->in_txn)
		ix->last_batch = 0;
	return ARCA_OK;
}

arca_status arca_index_stats(arca_index *ix, uint64_t *docs, arca_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(ix->db, "SELECT count(*) FROM docs", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*docs = (uint64_t)sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "stats");
	return ARCA_OK;
}

arca_status arca_index_db_bytes(arca_index *ix, uint64_t *bytes, arca_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(ix->db,
	                            "SELECT page_count * page_size FROM pragma_page_count(),"
	                            " pragma_page_size()", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*bytes = (uint64_t)sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "stats");
	return ARCA_OK;
}

/* ---- snippets ---- */

typedef struct {
	size_t s, e;     /* byte range in the text */
	size_t f0, fn;   /* folded code points in the shared fold array */
} stok;

typedef struct {
	stok *v;
	size_t n, cap;
	uint32_t *fold;
	size_t nfold, capfold;
} stoks;

static void stoks_free(stoks *t)
{
	free(t->v);
	free(t->fold);
	memset(t, 0, sizeof(*t));
}

static bool tokenize(const char *s, size_t len, stoks *t)
{
	size_t i = 0;
	while (i < len) {
		size_t at = i;
		uint32_t cp = arca_index_utf8_next(s, len, &i);
		if (!arca_index_is_token_char(cp))
			continue;
		if (t->n == t->cap) {
			size_t nc = t->cap ? t->cap * 2 : 64;
			stok *v = realloc(t->v, nc * sizeof(*v));
			if (v == NULL)
				return false;
			t->v = v;
			t->cap = nc;
		}
		t->v[t->n] = (stok){ at, at, t->nfold, 0 };
		for (;;) {
			if (t->nfold == t->capfold) {
				size_t nc = t->capfold ? t->capfold * 2 : 256;
				uint32_t *f = realloc(t->fold, nc * sizeof(*f));
				if (f == NULL)
					return false;
				t->fold = f;
				t->capfold = nc;
			}
			t->fold[t->nfold++] = arca_index_fold_char(cp);
			t->v[t->n].fn++;
			t->v[t->n].e = i;
			if (i >= len)
				break;
			at = i;
			cp = arca_index_utf8_next(s, len, &i);
			if (!arca_index_is_token_char(cp)) {
				i = at;
				break;
			}
		}
		t->n++;
	}
	return true;
}

typedef struct {
	stoks toks;
	bool prefix;
} highlight;

/* Number of text tokens matched by h at token i (0 if none). */
static size_t match_at(const stoks *text, size_t i, const highlight *h)
{
	size_t k = h->toks.n;
	if (k == 0 || i + k > text->n)
		return 0;
	for (size_t j = 0; j < k; j++) {
		const stok *a = &text->v[i + j], *b = &h->toks.v[j];
		bool last_prefix = h->prefix && j == k - 1;
		if (last_prefix ? a->fn < b->fn : a->fn != b->fn)
			return 0;
		if (memcmp(text->fold + a->f0, h->toks.fold + b->f0, b->fn * sizeof(uint32_t)) != 0)
			return 0;
	}
	return k;
}

/* Appends text, breaking up "[[" and "]]" so that only our marks use them. */
static arca_status append_plain(arca_buf *b, const char *s, size_t n)
{
	arca_status st = ARCA_OK;
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		char c = s[i];
		if ((c == '[' || c == ']') && b->len > 0 && b->data[b->len - 1] == c)
			st = arca_buf_append(b, " ", 1);
		if (st == ARCA_OK)
			st = arca_buf_append(b, &c, 1);
	}
	return st;
}

static char *make_snippet(const char *text, size_t len, const arca_query *q)
{
	stoks tt = { 0 };
	highlight *hl = NULL;
	size_t nh = arca_query_n_highlights(q);
	size_t first = SIZE_MAX, start_tok = 0, end_byte, start_byte;
	arca_buf out;
	arca_status st = ARCA_OK;
	char *res = NULL;

	arca_buf_init(&out, 4 * SNIPPET_LEN + 64);
	if (!tokenize(text, len, &tt))
		goto done;
	if (nh > 0) {
		hl = calloc(nh, sizeof(*hl));
		if (hl == NULL)
			goto done;
		for (size_t h = 0; h < nh; h++) {
			const char *w = arca_query_highlight(q, h);
			if (!tokenize(w, strlen(w), &hl[h].toks))
				goto done;
			hl[h].prefix = arca_query_highlight_is_prefix(q, h);
		}
	}
	for (size_t i = 0; i < tt.n && first == SIZE_MAX; i++)
		for (size_t h = 0; h < nh; h++)
			if (match_at(&tt, i, &hl[h]) > 0) {
				first = i;
				break;
			}
	/* Window: start a little before the first match, on a word start. */
	if (first != SIZE_MAX) {
		start_tok = first;
		while (start_tok > 0 && tt.v[first].s - tt.v[start_tok - 1].s <= SNIPPET_LEAD)
			start_tok--;
	}
	start_byte = (tt.n > 0 && start_tok > 0) ? tt.v[start_tok].s : 0;
	end_byte = start_byte + SNIPPET_LEN;
	if (end_byte >= len) {
		end_byte = len;
	} else {
		/* end on a word end within the window (or at least after one word) */
		size_t e = 0;
		for (size_t i = start_tok; i < tt.n && tt.v[i].e <= end_byte; i++)
			e = tt.v[i].e;
		if (e <= start_byte)
			e = utf8_cut(text, len, end_byte);
		end_byte = e;
	}
	if (start_byte > 0)
		st = arca_buf_appendz(&out, "\xE2\x80\xA6"); /* … */
	{
		size_t pos = start_byte, i = start_tok;
		while (st == ARCA_OK && i < tt.n && tt.v[i].s < end_byte) {
			size_t k = 0;
			for (size_t h = 0; h < nh && k == 0; h++)
				k = match_at(&tt, i, &hl[h]);
			if (k == 0) {
				i++;
				continue;
			}
			st = append_plain(&out, text + pos, tt.v[i].s - pos);
			if (st == ARCA_OK)
				st = arca_buf_appendz(&out, "[[");
			if (st == ARCA_OK)
				st = append_plain(&out, text + tt.v[i].s, tt.v[i + k - 1].e - tt.v[i].s);
			if (st == ARCA_OK)
				st = arca_buf_appendz(&out, "]]");
			pos = tt.v[i + k - 1].e;
			if (pos > end_byte)
				end_byte = pos;
			i += k;
		}
		if (st == ARCA_OK && pos < end_byte)
			st = append_plain(&out, text + pos, end_byte - pos);
	}
	if (st == ARCA_OK && end_byte < len)
		st = arca_buf_appendz(&out, "\xE2\x80\xA6");
	if (st == ARCA_OK)
		res = out.data != NULL ? arca_buf_steal(&out, NULL) : strdup("");
done:
	arca_buf_free(&out);
	stoks_free(&tt);
	if (hl != NULL)
		for (size_t h = 0; h < nh; h++)
			stoks_free(&hl[h].toks);
	free(hl);
	return res;
}

/* ---- search ---- */

typedef struct {
	int64_t key;
	double rank;
	double *tf; /* relevance: [length, tf of phrase 0, ...] from arca_tf(), else NULL */
	int ntf;
} cand;

static sqlite3_stmt *search_stmt(arca_index *ix, unsigned shape, int *rcp)
{
	char sql[1024];
	if (ix->search[shape] != NULL) {
		sqlite3_reset(ix->search[shape]);
		sqlite3_clear_bindings(ix->search[shape]);
		*rcp = SQLITE_OK;
		return ix->search[shape];
	}
	if (shape & SHAPE_FTS) {
		/* The FTS table drives the query in rowid order, so LIMIT stops it early; size
		 * and folder checks are point lookups per candidate. */
		snprintf(sql, sizeof(sql),
		         "SELECT rowid, %s FROM fts WHERE fts MATCH ?1 AND rowid >= ?2 AND rowid < ?3"
		         "%s%s ORDER BY rowid DESC LIMIT ?7",
		         (shape & SHAPE_RANK) ? "arca_tf(fts)" : "0.0",
		         (shape & SHAPE_SIZE) ? " AND EXISTS (SELECT 1 FROM docs d WHERE"
		                                " d.sortkey = fts.rowid AND d.size >= ?4 AND"
		                                " d.size < ?5)" : "",
		         (shape & SHAPE_FOLDER) ? " AND EXISTS (SELECT 1 FROM doc_folders df WHERE"
		                                  " df.folder_id IN (SELECT value FROM json_each(?6))"
		                                  " AND df.sortkey = fts.rowid)" : "");
	} else if (shape & SHAPE_FOLDER) {
		/* One folder at a time (the caller merges), driven by the folder's key range. */
		snprintf(sql, sizeof(sql),
		         "SELECT df.sortkey, 0.0 FROM doc_folders df%s WHERE df.folder_id = ?6 AND"
		         " df.sortkey >= ?2 AND df.sortkey < ?3 ORDER BY df.sortkey DESC LIMIT ?7",
		         (shape & SHAPE_SIZE) ? " JOIN docs d ON d.sortkey = df.sortkey AND"
		                                " d.size >= ?4 AND d.size < ?5" : "");
	} else {
		snprintf(sql, sizeof(sql),
		         "SELECT sortkey, 0.0 FROM docs WHERE sortkey >= ?2 AND sortkey < ?3%s"
		         " ORDER BY sortkey DESC LIMIT ?7",
		         (shape & SHAPE_SIZE) ? " AND size >= ?4 AND size < ?5" : "");
	}
	*rcp = sqlite3_prepare_v3(ix->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &ix->search[shape],
	                          NULL);
	return *rcp == SQLITE_OK ? ix->search[shape] : NULL;
}

static int cand_by_key_desc(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	return x->key < y->key ? 1 : x->key > y->key ? -1 : 0;
}

static int cand_by_rank(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return cand_by_key_desc(a, b);
}

/* BM25 over the window (see arca_tf_fn): rank = -score, lower is better, like bm25(). */
static void score_window(cand *cv, size_t n)
{
	double df[RANK_MAX_PHRASES] = {0}, avg = 0;
	const double k1 = 1.2, b = 0.75;
	for (size_t i = 0; i < n; i++) {
		if (cv[i].tf == NULL)
			continue;
		avg += cv[i].tf[0];
		for (int p = 1; p < cv[i].ntf; p++)
			if (cv[i].tf[p] > 0)
				df[p - 1] += 1;
	}
	avg = n > 0 ? avg / (double)n : 0;
	if (avg <= 0)
		avg = 1;
	for (size_t i = 0; i < n; i++) {
		double score = 0;
		for (int p = 1; cv[i].tf != NULL && p < cv[i].ntf; p++) {
			double f = cv[i].tf[p];
			double idf = log(1.0 + ((double)n - df[p - 1] + 0.5) / (df[p - 1] + 0.5));
			if (f > 0)
				score += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * cv[i].tf[0] / avg));
		}
		cv[i].rank = -score;
	}
}

static void cands_free(cand *cv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(cv[i].tf);
	free(cv);
}

/* Runs one search statement, appending up to limit candidates. */
static int collect(sqlite3_stmt *s, cand **cv, size_t *n, size_t *cap, size_t limit,
                   bool *truncated)
{
	int rc = SQLITE_DONE;
	size_t got = 0;
	sqlite3_bind_int64(s, 7, (int64_t)limit);
	while (got < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 64;
			cand *v = realloc(*cv, nc * sizeof(*v));
			if (v == NULL) {
				sqlite3_reset(s);
				return SQLITE_NOMEM;
			}
			*cv = v;
			*cap = nc;
		}
		(*cv)[*n].key = sqlite3_column_int64(s, 0);
		(*cv)[*n].rank = 0.0;
		(*cv)[*n].tf = NULL;
		(*cv)[*n].ntf = 0;
		if (sqlite3_column_type(s, 1) == SQLITE_BLOB) {
			int bytes = sqlite3_column_bytes(s, 1);
			double *tf = bytes > 0 ? malloc((size_t)bytes) : NULL;
			if (bytes > 0 && tf == NULL) {
				sqlite3_reset(s);
				return SQLITE_NOMEM;
			}
			if (tf != NULL)
				memcpy(tf, sqlite3_column_blob(s, 1), (size_t)bytes);
			(*cv)[*n].tf = tf;
			(*cv)[*n].ntf = bytes / (int)sizeof(double);
		}
		(*n)++;
		got++;
	}
	if (got == limit) {
		rc = SQLITE_DONE;
		*truncated = true;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static arca_status fill_hit(arca_index *ix, const cand *c, const arca_query *q,
                            bool snippets, arca_hit *h, arca_error *err)
{
	sqlite3_stmt *s;
	int rc = ix_prep(ix, &ix->st_get_doc,
	              "SELECT msg_id, date, size, from_, subject, excerpt, folders FROM docs"
	              " WHERE sortkey = ?1");
	memset(h, 0, sizeof(*h));
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "reading hit");
	s = ix->st_get_doc;
	sqlite3_bind_int64(s, 1, c->key);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			return arca_error_set(err, ARCA_ERR_CORRUPT,
			                      "index: full-text row %lld has no document",
			                      (long long)c->key);
		return ix_db_fail(ix, err, rc, "reading hit");
	}
	h->msg_id = (uint64_t)sqlite3_column_int64(s, 0);
	h->sortkey = c->key;
	h->date = sqlite3_column_int64(s, 1);
	h->size = (uint64_t)sqlite3_column_int64(s, 2);
	h->rank = c->rank;
	h->from = strdup((const char *)(sqlite3_column_text(s, 3) ? sqlite3_column_text(s, 3)
	                                                           : (const unsigned char *)""));
	h->subject = strdup((const char *)(sqlite3_column_text(s, 4) ? sqlite3_column_text(s, 4)
	                                                              : (const unsigned char *)""));
	if (h->from == NULL || h->subject == NULL)
		goto nomem;
	{
		const unsigned char *fb = sqlite3_column_blob(s, 6);
		size_t n = (size_t)sqlite3_column_bytes(s, 6) / 4;
		if (n > 0) {
			h->folders = malloc(n * sizeof(uint32_t));
			if (h->folders == NULL)
				goto nomem;
			for (size_t i = 0; i < n; i++)
				h->folders[i] = (uint32_t)fb[4 * i] | (uint32_t)fb[4 * i + 1] << 8 |
				                (uint32_t)fb[4 * i + 2] << 16 |
				                (uint32_t)fb[4 * i + 3] << 24;
			h->n_folders = n;
		}
	}
	if (snippets) {
		const void *z = sqlite3_column_blob(s, 5);
		size_t zn = (size_t)sqlite3_column_bytes(s, 5);
		char text[EXCERPT_MAX + 8];
		size_t tn = 0;
		if (z != NULL && zn > 0) {
			tn = ZSTD_decompressDCtx(ix->dctx, text, sizeof(text) - 1, z, zn);
			if (ZSTD_isError(tn))
				tn = 0; /* a damaged excerpt only costs the snippet */
		}
		text[tn] = '\0';
		/* indexes written before snippets moved to search time still carry excerpts */
		if (tn > 0) {
			h->snippet = make_snippet(text, tn, q);
			if (h->snippet == NULL)
				goto nomem;
		}
	}
	sqlite3_reset(s);
	return ARCA_OK;
nomem:
	sqlite3_reset(s);
	free(h->from);
	free(h->subject);
	free(h->folders);
	free(h->snippet);
	memset(h, 0, sizeof(*h));
	return arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
}

char *arca_index_snippet(const arca_query *q, const char *text, size_t len)
{
	char *flat, *res;
	size_t n = 0;
	bool space = true; /* drops leading whitespace */
	if (text == NULL)
		len = 0;
	/* a match far down a huge text is not worth scanning for: bounded work per hit */
	if (len > SNIPPET_SCAN_MAX) {
		len = SNIPPET_SCAN_MAX;
		while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
			len--;
	}
	flat = malloc(len + 1);
	if (flat == NULL)
		return NULL;
	/* whitespace runs (line breaks, quoting indentation) become one space */
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
			if (!space)
				flat[n++] = ' ';
			space = true;
		} else {
			flat[n++] = c;
			space = false;
		}
	}
	while (n > 0 && flat[n - 1] == ' ')
		n--;
	flat[n] = '\0';
	res = make_snippet(flat, n, q);
	free(flat);
	return res;
}

arca_status arca_index_search(arca_index *ix, const arca_query *q, const arca_search_opts *opts,
                              arca_hits *out, arca_error *err)
{
	const char *fts = arca_query_fts(q);
	int64_t after = arca_query_after(q), before = arca_query_before(q);
	uint64_t smin = arca_query_size_min(q), smax = arca_query_size_max(q);
	int64_t lo = after == INT64_MIN ? 0 : key_of_date(after);
	int64_t hi = before == INT64_MAX ? INT64_MAX : key_of_date(before);
	bool relevance = opts->order == ARCA_ORDER_RELEVANCE && fts != NULL;
	size_t limit = opts->limit, window = limit;
	unsigned shape = 0;
	cand *cv = NULL;
	size_t n = 0, n_all, cap = 0;
	bool truncated = false;
	char *folder_json = NULL;
	arca_status st = ARCA_OK;
	int rc = SQLITE_OK;

	if (limit == 0)
		return ARCA_OK;
	if (limit > INT64_MAX / 2)
		limit = window = INT64_MAX / 2;
	if (before != INT64_MAX && before <= 0)
		hi = 0; /* before 1970: nothing (dates are clamped at 0) */
	if (relevance && window < ARCA_RELEVANCE_WINDOW)
		window = ARCA_RELEVANCE_WINDOW;
	if (fts != NULL)
		shape |= SHAPE_FTS;
	if (smin > 0 || smax != UINT64_MAX)
		shape |= SHAPE_SIZE;
	if (opts->n_folder_ids > 0)
		shape |= SHAPE_FOLDER;
	if (relevance)
		shape |= SHAPE_RANK;

	if (lo < hi && smin < smax) {
		sqlite3_stmt *s = search_stmt(ix, shape, &rc);
		if (s == NULL)
			return ix_db_fail(ix, err, rc, "preparing search");
		if (fts != NULL)
			sqlite3_bind_text(s, 1, fts, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, lo);
		sqlite3_bind_int64(s, 3, hi);
		sqlite3_bind_int64(s, 4, smin > INT64_MAX ? INT64_MAX : (int64_t)smin);
		sqlite3_bind_int64(s, 5, smax > INT64_MAX ? INT64_MAX : (int64_t)smax);
		if ((shape & SHAPE_FOLDER) && (shape & SHAPE_FTS)) {
			arca_buf jb;
			arca_buf_init(&jb, SIZE_MAX / 2);
			st = arca_buf_append(&jb, "[", 1);
			for (size_t i = 0; st == ARCA_OK && i < opts->n_folder_ids; i++)
				st = arca_buf_printf(&jb, "%s%u", i ? "," : "", opts->folder_ids[i]);
			if (st == ARCA_OK)
				st = arca_buf_append(&jb, "]", 1);
			if (st != ARCA_OK) {
				arca_buf_free(&jb);
				return arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
			}
			folder_json = arca_buf_steal(&jb, NULL);
			sqlite3_bind_text(s, 6, folder_json, -1, SQLITE_STATIC);
			rc = collect(s, &cv, &n, &cap, window, &truncated);
		} else if (shape & SHAPE_FOLDER) {
			/* Newest `limit` of each folder, merged: a message in two folders once. */
			for (size_t i = 0; rc == SQLITE_OK && i < opts->n_folder_ids; i++) {
				sqlite3_bind_int64(s, 6, opts->folder_ids[i]);
				rc = collect(s, &cv, &n, &cap, window, &truncated);
			}
			if (rc == SQLITE_OK && opts->n_folder_ids > 1 && n > 0) {
				size_t w = 1;
				qsort(cv, n, sizeof(*cv), cand_by_key_desc);
				for (size_t i = 1; i < n; i++) {
					if (cv[i].key != cv[w - 1].key)
						cv[w++] = cv[i];
					else
						free(cv[i].tf);
				}
				n = w;
			}
		} else {
			rc = collect(s, &cv, &n, &cap, window, &truncated);
		}
		sqlite3_clear_bindings(s);
		free(folder_json);
		if (rc != SQLITE_OK) {
			cands_free(cv, n);
			return ix_db_fail(ix, err, rc, "searching");
		}
	}
	n_all = n;
	if (relevance) {
		score_window(cv, n);
		qsort(cv, n, sizeof(*cv), cand_by_rank);
	}
	if (n > limit)
		n = limit;
	if (n > 0) {
		arca_hit *hv = realloc(out->hits, (out->n + n) * sizeof(*hv));
		if (hv == NULL) {
			cands_free(cv, n_all);
			return arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
		}
		out->hits = hv;
	}
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		st = fill_hit(ix, &cv[i], q, opts->want_snippets, &out->hits[out->n], err);
		if (st == ARCA_OK)
			out->n++;
	}
	cands_free(cv, n_all);
	/* The count is exact only when every match was seen. */
	if (out->total != UINT64_MAX)
		out->total = truncated ? UINT64_MAX : out->total + n_all;
	return st;
}

void arca_hits_free(arca_hits *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->hits[i].from);
		free(h->hits[i].subject);
		free(h->hits[i].snippet);
		free(h->hits[i].folders);
	}
	free(h->hits);
	h->hits = NULL;
	h->n = 0;
	h->total = 0;
}

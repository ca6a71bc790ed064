/* IMAP SEARCH support: which messages of a folder may match a text key.
 *
 * IMAP's text keys are case-insensitive substring tests (RFC 3501) on the text IMAP reads of a
 * message (src/imap/message.h). The caller checks every candidate against the message, so
 * what these return may hold too much, never too little:
 *   - words are looked up one by one (in any field the key searches, in any order) and the
 *     sets intersected, rather than as a phrase, so a word found in another table (xhdr,
 *     xbody) still counts;
 *   - the words of the header fields as IMAP decodes them at ingest (the fts columns come from
 *     the MIME reader, which may decode a field otherwise or keep only parsed addresses) that
 *     the fts header columns lack: xhdr for all fields together (TEXT, HEADER of any field),
 *     xfield per column for the fields the columns hold (SUBJECT, FROM, ...); xbody, the
 *     words of the body text IMAP reads that the body and attachment columns lack (the other
 *     alternatives of a multipart/alternative, parts the MIME reader reads otherwise);
 *   - the first word may begin inside a longer one ("oba" in "foobar"): the index's
 *     vocabulary (every distinct word of the four tables, read through fts5vocab and kept
 *     per process) gives the longer words that contain it, which are looked up too. Words of
 *     documents indexed after the vocabulary was read are not in it: those documents are
 *     candidates until the vocabulary is read again (after VOCAB_STALE_MAX of them).
 * Documents indexed without xhdr (an older index, or a message IMAP could not parse at ingest)
 * are candidates of every key that needs it. */
#include "index/index_int.h"

#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"

#define TOKENS_MAX 8          /* words of a needle looked up; more only narrow further */
#define INSIDE_TERMS_MAX 512  /* longer words containing the first one, at most */
#define VOCAB_SLOTS 8         /* indexes whose vocabulary a process keeps */
#define VOCAB_MAX_BYTES (64u * 1024u * 1024u) /* per index; larger: every message is checked */
#define VOCAB_STALE_MAX 2000u /* documents newer than the vocabulary before it is read again */

/* fts columns in ARCA_INDEX_F_* bit order */
static const char *const imap_cols[] = { "subject", "from_", "to_", "cc", "bcc", "body",
	                                 "attachment", "filename", "msgid" };
static const char *const tables[IX_T_COUNT] = { "fts", "xhdr", "xbody", "xfield" };

void arca_index_xtext_free(arca_index_xtext *x)
{
	if (x == NULL)
		return;
	free(x->headers);
	free(x->body);
	for (int i = 0; i < ARCA_INDEX_X_FIELDS; i++)
		free(x->fields[i]);
	memset(x, 0, sizeof(*x));
}

void ix_imap_finalize(arca_index *ix)
{
	sqlite3_stmt **all[] = { &ix->st_imap_q[IX_T_FTS], &ix->st_imap_q[IX_T_XHDR],
		                 &ix->st_imap_q[IX_T_XBODY], &ix->st_imap_q[IX_T_XFIELD], &ix->st_imap_folder,
		                 &ix->st_imap_plain, &ix->st_imap_newer, &ix->st_imap_state };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		sqlite3_finalize(*all[i]);
		*all[i] = NULL;
	}
}

/* ------------------------------------------------------------------ id sets */

typedef struct {
	uint64_t *v;
	size_t n;
} idset;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Appends column 0 of every row to *s (unsorted). */
static arca_status collect(arca_index *ix, sqlite3_stmt *st, idset *s, arca_error *err)
{
	size_t cap = s->n;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (s->n == cap) {
			size_t nc = cap < 256 ? 256 : cap * 2;
			uint64_t *nv = realloc(s->v, nc * sizeof(*nv));
			if (nv == NULL) {
				sqlite3_reset(st);
				return arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
			}
			s->v = nv;
			cap = nc;
		}
		s->v[s->n++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? ARCA_OK : ix_db_fail(ix, err, rc, "searching");
}

static void sort_unique(idset *s)
{
	size_t k = 0;
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
	for (size_t i = 0; i < s->n; i++)
		if (k == 0 || s->v[k - 1] != s->v[i])
			s->v[k++] = s->v[i];
	s->n = k;
}

/* a = a ∩ b (both sorted and unique) */
static void intersect(idset *a, const idset *b)
{
	size_t i = 0, j = 0, k = 0;
	while (i < a->n && j < b->n) {
		if (a->v[i] < b->v[j]) {
			i++;
		} else if (a->v[i] > b->v[j]) {
			j++;
		} else {
			a->v[k++] = a->v[i];
			i++;
			j++;
		}
	}
	a->n = k;
}

/* True when IMAP's full case folding (g_utf8_casefold, src/imap/msg_decode.c) changes a word
 * the tokenizer already lower-cased: "ß" is "ss" there, "ﬁ" is "fi", "ſ" is "s". The tables
 * hold such words as they are, so they need a lookup of their own. */
static bool fold_changes(const char *w, size_t n)
{
	bool high = false, changed;
	char *f;
	for (size_t i = 0; i < n && !high; i++)
		high = (unsigned char)w[i] >= 0x80;
	if (!high || !g_utf8_validate(w, (gssize)n, NULL))
		return false;
	f = g_utf8_casefold(w, (gssize)n);
	changed = f == NULL || strlen(f) != n || memcmp(f, w, n) != 0;
	g_free(f);
	return changed;
}

/* ------------------------------------------------------------------ the needle's words */

typedef struct {
	char *tok[TOKENS_MAX];
	size_t len[TOKENS_MAX];
	size_t n;
	int first_start; /* byte offset where the first word begins */
	int last_end;    /* ... and the last one taken ends */
	bool cut;        /* more words followed the last one taken */
	bool open_end;   /* the needle ends right after its last word */
	bool inside;     /* the first word may begin inside a longer one */
	bool special;    /* a word that full case folding changes ("ß" is "ss") */
	arca_status st;
} needle;

static int needle_token(void *p, int tflags, const char *tok, int ntok, int start, int end)
{
	needle *nd = p;
	if ((tflags & FTS5_TOKEN_COLOCATED) || ntok <= 0)
		return SQLITE_OK;
	if (nd->n == TOKENS_MAX) {
		nd->cut = true;
		return SQLITE_DONE;
	}
	nd->tok[nd->n] = malloc((size_t)ntok + 1);
	if (nd->tok[nd->n] == NULL) {
		nd->st = ARCA_ERR_NOMEM;
		return SQLITE_NOMEM;
	}
	memcpy(nd->tok[nd->n], tok, (size_t)ntok);
	nd->tok[nd->n][ntok] = '\0';
	if (fold_changes(tok, (size_t)ntok))
		nd->special = true;
	nd->len[nd->n] = (size_t)ntok;
	if (nd->n == 0)
		nd->first_start = start;
	nd->last_end = end;
	nd->n++;
	return SQLITE_OK;
}

static void needle_free(needle *nd)
{
	for (size_t i = 0; i < nd->n; i++)
		free(nd->tok[i]);
	nd->n = 0;
}

/* Splits text with the index's own tokenizer (case and diacritics folded as in the tables). */
static arca_status needle_split(arca_index *ix, const char *text, size_t len, needle *nd,
                                arca_error *err)
{
	fts5_tokenizer api;
	Fts5Tokenizer *tk = NULL;
	void *ud = NULL;
	const char *args[] = { "remove_diacritics", "2" };
	int rc;
	memset(nd, 0, sizeof(*nd));
	if (len > INT32_MAX)
		return arca_error_set(err, ARCA_ERR_LIMIT, "index: search text too long");
	/* IMAP's check compares bytes then (ASCII folding only), the tokenizer would split at them */
	if (!g_utf8_validate(text, (gssize)len, NULL))
		return arca_error_set(err, ARCA_ERR_INVALID, "search text is not UTF-8");
	/* U+0345 separates words for the tokenizer but folds to a letter (ι) for the check */
	if (memmem(text, len, "\xcd\x85", 2) != NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "search text holds U+0345");
	if (ix->fts5 == NULL || ix->fts5->xFindTokenizer(ix->fts5, "unicode61", &ud, &api) != SQLITE_OK)
		return arca_error_set(err, ARCA_ERR_DB, "index: no unicode61 tokenizer");
	rc = api.xCreate(ud, args, 2, &tk);
	if (rc != SQLITE_OK)
		return arca_error_set(err, ARCA_ERR_DB, "index: cannot create the tokenizer");
	rc = api.xTokenize(tk, nd, FTS5_TOKENIZE_DOCUMENT, text, (int)len, needle_token);
	api.xDelete(tk);
	if (nd->st != ARCA_OK) {
		needle_free(nd);
		return arca_error_set(err, nd->st, "index: out of memory");
	}
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		needle_free(nd);
		return arca_error_set(err, ARCA_ERR_DB, "index: tokenizing failed");
	}
	if (nd->n == 0)
		return arca_error_set(err, ARCA_ERR_INVALID, "no word to look up");
	nd->open_end = (size_t)nd->last_end == len;
	/* The first word may begin inside a longer one unless an ASCII separator (punctuation,
	 * space: always one) comes right before it. A non-ASCII separator may be part of a word in
	 * the message: a combining mark separates words only where a word would start. */
	nd->inside = nd->first_start == 0 || (unsigned char)text[nd->first_start - 1] >= 0x80;
	if (nd->special) {
		needle_free(nd);
		return arca_error_set(err, ARCA_ERR_INVALID, "a word that case folding changes");
	}
	return ARCA_OK;
}

/* ------------------------------------------------------------------ writing the x tables */

/* A set of words: NUL-terminated copies in an arena, found through an open-addressing table of
 * arena offsets (+1; 0 is empty). */
typedef struct {
	arca_buf arena;
	uint32_t *slot;
	size_t cap, n;
	arca_status st;
} wordset;

static uint64_t word_hash(const char *w, size_t n)
{
	uint64_t h = 1469598103934665603u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)w[i]) * 1099511628211u;
	return h;
}

/* Adds w; true if it was not there. */
static bool wordset_add(wordset *s, const char *w, size_t n)
{
	size_t i;
	if (s->st != ARCA_OK)
		return false;
	if ((s->n + 1) * 2 > s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 1024;
		uint32_t *ns = calloc(nc, sizeof(*ns));
		if (ns == NULL) {
			s->st = ARCA_ERR_NOMEM;
			return false;
		}
		for (size_t k = 0; k < s->cap; k++) {
			if (s->slot[k] == 0)
				continue;
			const char *x = s->arena.data + s->slot[k] - 1;
			size_t j = word_hash(x, strlen(x)) & (nc - 1);
			while (ns[j] != 0)
				j = (j + 1) & (nc - 1);
			ns[j] = s->slot[k];
		}
		free(s->slot);
		s->slot = ns;
		s->cap = nc;
	}
	for (i = word_hash(w, n) & (s->cap - 1); s->slot[i] != 0; i = (i + 1) & (s->cap - 1)) {
		const char *x = s->arena.data + s->slot[i] - 1;
		if (strncmp(x, w, n) == 0 && x[n] == '\0')
			return false;
	}
	if (s->arena.len >= UINT32_MAX - n - 1) {
		s->st = ARCA_ERR_LIMIT;
		return false;
	}
	s->slot[i] = (uint32_t)s->arena.len + 1;
	s->st = arca_buf_append(&s->arena, w, n);
	if (s->st == ARCA_OK)
		s->st = arca_buf_append(&s->arena, "", 1);
	s->n++;
	return s->st == ARCA_OK;
}

typedef struct {
	wordset *have;
	arca_buf *out; /* NULL: only collect into have */
	arca_status st;
} wordpass;

static int word_cb(void *p, int tflags, const char *tok, int ntok, int start, int end)
{
	wordpass *wp = p;
	(void)start;
	(void)end;
	if ((tflags & FTS5_TOKEN_COLOCATED) || ntok <= 0)
		return SQLITE_OK;
	if (wordset_add(wp->have, tok, (size_t)ntok) && wp->out != NULL) {
		if (wp->out->len > 0)
			wp->st = arca_buf_append(wp->out, " ", 1);
		if (wp->st == ARCA_OK)
			wp->st = arca_buf_append(wp->out, tok, (size_t)ntok);
	}
	if (wp->have->st != ARCA_OK || wp->st != ARCA_OK)
		return SQLITE_NOMEM;
	return SQLITE_OK;
}

arca_status ix_x_words(arca_index *ix, const char *const *have, const size_t *have_len, size_t nhave,
                       const char *text, size_t len, arca_buf *out)
{
	fts5_tokenizer api;
	Fts5Tokenizer *tk = NULL;
	void *ud = NULL;
	const char *args[] = { "remove_diacritics", "2" };
	wordset set;
	wordpass wp = { .have = &set, .out = NULL, .st = ARCA_OK };
	int rc = SQLITE_OK;
	memset(&set, 0, sizeof(set));
	arca_buf_init(&set.arena, UINT32_MAX);
	if (ix->fts5 == NULL || ix->fts5->xFindTokenizer(ix->fts5, "unicode61", &ud, &api) != SQLITE_OK ||
	    api.xCreate(ud, args, 2, &tk) != SQLITE_OK)
		return ARCA_ERR_DB;
	for (size_t i = 0; rc == SQLITE_OK && i < nhave; i++)
		if (have[i] != NULL && have_len[i] > 0)
			rc = api.xTokenize(tk, &wp, FTS5_TOKENIZE_DOCUMENT, have[i],
			                   (int)(have_len[i] < INT32_MAX ? have_len[i] : INT32_MAX), word_cb);
	wp.out = out;
	if (rc == SQLITE_OK && len > 0)
		rc = api.xTokenize(tk, &wp, FTS5_TOKENIZE_DOCUMENT, text, (int)(len < INT32_MAX ? len : INT32_MAX),
		                   word_cb);
	api.xDelete(tk);
	free(set.slot);
	arca_buf_free(&set.arena);
	if (set.st != ARCA_OK)
		return set.st;
	if (wp.st != ARCA_OK)
		return wp.st;
	return rc == SQLITE_OK ? ARCA_OK : ARCA_ERR_DB;
}

/* ------------------------------------------------------------------ the vocabulary */

/* What an index holds at a moment (index_now). */
typedef struct {
	uint64_t generation, batch, docs, max_id;
} ix_now;

/* Every distinct word of an index's tables when it was read, each preceded by a NUL (so a
 * match can be widened to its word), and what the index held then. Shared by the threads of
 * a process; counted references keep one alive while it is searched. */
typedef struct {
	char *path;
	ix_now at; /* what the index held when the words were read */
	bool too_large; /* more than VOCAB_MAX_BYTES: no words (remembered, not read again) */
	char *terms;
	size_t len;
	char *special; /* words fold_changes: "word\0folded\0" pairs */
	size_t special_len;
	unsigned refs;
	uint64_t used;
} vocab;

static pthread_mutex_t vocab_mu = PTHREAD_MUTEX_INITIALIZER;
static vocab *vocab_slot[VOCAB_SLOTS];
static uint64_t vocab_tick;

static void vocab_free(vocab *v)
{
	free(v->path);
	free(v->terms);
	free(v->special);
	free(v);
}

static void vocab_release(vocab *v)
{
	bool last;
	if (v == NULL)
		return;
	pthread_mutex_lock(&vocab_mu);
	last = --v->refs == 0;
	pthread_mutex_unlock(&vocab_mu);
	if (last)
		vocab_free(v);
}

/* What the index holds now: its generation (new with every clear or new file), the last batch,
 * the number of documents and the highest id. Also takes up the schema version, which a writer
 * may have raised since this handle was opened. */
static arca_status index_now(arca_index *ix, ix_now *now, arca_error *err)
{
	int rc = ix_prep(ix, &ix->st_imap_state,
	                 "SELECT (SELECT v FROM state WHERE k = 'generation'),"
	                 " (SELECT v FROM state WHERE k = 'last_batch'),"
	                 " (SELECT count(*) FROM docs), (SELECT max(msg_id) FROM docs),"
	                 " (SELECT v FROM state WHERE k = 'version')");
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "reading state");
	rc = sqlite3_step(ix->st_imap_state);
	if (rc == SQLITE_ROW) {
		now->generation = (uint64_t)sqlite3_column_int64(ix->st_imap_state, 0);
		now->batch = (uint64_t)sqlite3_column_int64(ix->st_imap_state, 1);
		now->docs = (uint64_t)sqlite3_column_int64(ix->st_imap_state, 2);
		now->max_id = (uint64_t)sqlite3_column_int64(ix->st_imap_state, 3);
		if (sqlite3_column_int(ix->st_imap_state, 4) > ix->version)
			ix->version = sqlite3_column_int(ix->st_imap_state, 4);
	}
	sqlite3_reset(ix->st_imap_state);
	return rc == SQLITE_ROW ? ARCA_OK : ix_db_fail(ix, err, rc, "reading state");
}

static arca_status vocab_read(arca_index *ix, vocab **out, arca_error *err)
{
	vocab *v = calloc(1, sizeof(*v));
	arca_buf b, sp;
	arca_status st;
	arca_buf_init(&b, VOCAB_MAX_BYTES);
	arca_buf_init(&sp, VOCAB_MAX_BYTES);
	if (v == NULL || (v->path = strdup(ix->path)) == NULL) {
		free(v);
		return arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
	}
	/* the state first: documents added while the words are read then count as newer */
	st = index_now(ix, &v->at, err);
	for (int t = 0; st == ARCA_OK && t < (ix->version >= 3 ? IX_T_COUNT : 1); t++) {
		char sql[160];
		sqlite3_stmt *s = NULL;
		int rc;
		snprintf(sql, sizeof(sql),
		         "CREATE VIRTUAL TABLE IF NOT EXISTS temp.arca_v_%s USING fts5vocab(main, %s, row)",
		         tables[t], tables[t]);
		rc = ix_exec(ix, sql);
		if (rc == SQLITE_OK) {
			snprintf(sql, sizeof(sql), "SELECT term FROM temp.arca_v_%s", tables[t]);
			rc = sqlite3_prepare_v2(ix->db, sql, -1, &s, NULL);
		}
		while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
			const char *term = (const char *)sqlite3_column_text(s, 0);
			int tl = sqlite3_column_bytes(s, 0);
			if (term == NULL || tl <= 0)
				continue;
			st = arca_buf_append(&b, "", 1);
			if (st == ARCA_OK)
				st = arca_buf_append(&b, term, (size_t)tl);
			if (st == ARCA_OK && fold_changes(term, (size_t)tl)) {
				char *f = g_utf8_casefold(term, tl);
				st = f == NULL ? ARCA_ERR_NOMEM : arca_buf_append(&sp, term, (size_t)tl + 1);
				if (st == ARCA_OK)
					st = arca_buf_append(&sp, f, strlen(f) + 1);
				g_free(f);
			}
			if (st != ARCA_OK)
				break;
			rc = SQLITE_OK;
		}
		sqlite3_finalize(s);
		if (st == ARCA_ERR_NOMEM)
			st = arca_error_set(err, st, "index: out of memory");
		else if (st == ARCA_OK && rc != SQLITE_DONE)
			st = ix_db_fail(ix, err, rc, "reading the vocabulary");
	}
	if (st == ARCA_OK)
		st = arca_buf_append(&b, "", 1);
	if (st == ARCA_ERR_LIMIT) {
		/* remembered as such: searches that need the words check every message */
		arca_buf_free(&b);
		arca_buf_free(&sp);
		v->too_large = true;
		v->refs = 1;
		*out = v;
		return ARCA_OK;
	}
	if (st != ARCA_OK) {
		arca_buf_free(&b);
		arca_buf_free(&sp);
		vocab_free(v);
		return st;
	}
	v->terms = b.data;
	v->len = b.len;
	v->special = sp.data;
	v->special_len = sp.len;
	v->refs = 1;
	*out = v;
	return ARCA_OK;
}

/* The index's vocabulary (a reference: vocab_release it) and the documents it does not
 * cover, in *newer (sorted): read again when they are too many or the index was rebuilt. */
static arca_status vocab_get(arca_index *ix, uint32_t folder_id, vocab **out, idset *newer,
                             arca_error *err)
{
	ix_now now = {0};
	vocab *v = NULL, *nv = NULL;
	arca_status st = index_now(ix, &now, err);
	int slot = -1;
	if (st != ARCA_OK)
		return st;
	pthread_mutex_lock(&vocab_mu);
	for (int i = 0; i < VOCAB_SLOTS; i++)
		if (vocab_slot[i] != NULL && strcmp(vocab_slot[i]->path, ix->path) == 0) {
			v = vocab_slot[i];
			v->refs++;
			v->used = ++vocab_tick;
			break;
		}
	pthread_mutex_unlock(&vocab_mu);
	/* unchanged; or too large, which growing does not undo */
	if (v != NULL && v->at.generation == now.generation &&
	    (v->too_large || (v->at.batch == now.batch && v->at.docs == now.docs))) {
		*out = v;
		return ARCA_OK;
	}
	if (v != NULL && !v->too_large && v->at.generation == now.generation && now.docs >= v->at.docs &&
	    now.docs - v->at.docs <= VOCAB_STALE_MAX) {
		/* grown since: usable if every new document is above its highest id */
		sqlite3_int64 cnt = 0;
		int rc = ix_prep(ix, &ix->st_imap_newer,
		                 "SELECT d.msg_id FROM doc_folders df JOIN docs d ON d.sortkey = df.sortkey"
		                 " WHERE df.folder_id = ?1 AND d.msg_id > ?2");
		if (rc == SQLITE_OK) {
			sqlite3_stmt *c = NULL;
			rc = sqlite3_prepare_v2(ix->db, "SELECT count(*) FROM docs WHERE msg_id > ?1", -1, &c, NULL);
			if (rc == SQLITE_OK) {
				sqlite3_bind_int64(c, 1, (sqlite3_int64)v->at.max_id);
				if (sqlite3_step(c) == SQLITE_ROW)
					cnt = sqlite3_column_int64(c, 0);
			}
			sqlite3_finalize(c);
		}
		if (rc == SQLITE_OK && (uint64_t)cnt == now.docs - v->at.docs) {
			sqlite3_bind_int64(ix->st_imap_newer, 1, folder_id);
			sqlite3_bind_int64(ix->st_imap_newer, 2, (sqlite3_int64)v->at.max_id);
			st = collect(ix, ix->st_imap_newer, newer, err);
			if (st != ARCA_OK) {
				vocab_release(v);
				return st;
			}
			sort_unique(newer);
			*out = v;
			return ARCA_OK;
		}
	}
	vocab_release(v);
	st = vocab_read(ix, &nv, err);
	if (st != ARCA_OK)
		return st;
	pthread_mutex_lock(&vocab_mu);
	for (int i = 0; i < VOCAB_SLOTS; i++) {
		if (vocab_slot[i] != NULL && strcmp(vocab_slot[i]->path, ix->path) == 0) {
			slot = i;
			break;
		}
		if (slot < 0 || vocab_slot[i] == NULL ||
		    (vocab_slot[slot] != NULL && vocab_slot[i]->used < vocab_slot[slot]->used))
			slot = i;
	}
	v = vocab_slot[slot];
	vocab_slot[slot] = nv;
	nv->refs++; /* the slot's, and the caller's */
	nv->used = ++vocab_tick;
	if (v != NULL && --v->refs == 0) {
		pthread_mutex_unlock(&vocab_mu);
		vocab_free(v);
	} else {
		pthread_mutex_unlock(&vocab_mu);
	}
	*out = nv;
	return ARCA_OK;
}

/* Appends to expr, as ` OR "word"`, the words of v that contain tok after their start (and end
 * with it when at_end). ARCA_ERR_INVALID when there are more than INSIDE_TERMS_MAX. Each word is
 * looked at once, however often tok occurs in it: linear in the vocabulary's size. */
static arca_status inside_words(const vocab *v, const char *tok, size_t tl, bool at_end,
                                arca_buf *expr, arca_error *err)
{
	const char *p = v->terms, *end = v->terms + v->len;
	size_t found = 0;
	arca_status st = ARCA_OK;
	while (st == ARCA_OK && p < end && (p = memmem(p, (size_t)(end - p), tok, tl)) != NULL) {
		const char *ws = p, *we = p + tl;
		size_t wl;
		bool take;
		while (ws > v->terms && ws[-1] != '\0')
			ws--;
		while (we < end && *we != '\0')
			we++;
		p = we; /* the next word */
		wl = (size_t)(we - ws);
		if (wl <= tl)
			continue; /* tok itself: the word's own lookup has it */
		take = at_end ? memcmp(we - tl, tok, tl) == 0 :
		                memmem(ws + 1, wl - 1, tok, tl) != NULL;
		if (!take)
			continue;
		if (++found > INSIDE_TERMS_MAX)
			return arca_error_set(err, ARCA_ERR_INVALID, "too many words contain the string");
		st = arca_buf_appendz(expr, " OR \"");
		for (const char *c = ws; st == ARCA_OK && c < we; c++)
			st = *c == '"' ? arca_buf_append(expr, "\"\"", 2) : arca_buf_append(expr, c, 1);
		if (st == ARCA_OK)
			st = arca_buf_append(expr, "\"", 1);
	}
	return st == ARCA_OK ? ARCA_OK : arca_error_set(err, st, "index: out of memory");
}

/* Appends the words of v whose full case folding contains tok (when it differs from the word:
 * "straße" for "ss"). */
static arca_status folded_words(const vocab *v, const char *tok, size_t tl, arca_buf *expr,
                                arca_error *err)
{
	arca_status st = ARCA_OK;
	for (size_t off = 0; st == ARCA_OK && off < v->special_len;) {
		const char *word = v->special + off, *folded = word + strlen(word) + 1;
		size_t fl = strlen(folded);
		off = (size_t)(folded + fl + 1 - v->special);
		if (memmem(folded, fl, tok, tl) == NULL)
			continue;
		st = arca_buf_appendz(expr, " OR \"");
		for (const char *c = word; st == ARCA_OK && *c != '\0'; c++)
			st = *c == '"' ? arca_buf_append(expr, "\"\"", 2) : arca_buf_append(expr, c, 1);
		if (st == ARCA_OK)
			st = arca_buf_append(expr, "\"", 1);
	}
	return st == ARCA_OK ? ARCA_OK : arca_error_set(err, st, "index: out of memory");
}

/* ------------------------------------------------------------------ lookups */

static arca_status quoted(arca_buf *b, const char *s, size_t n)
{
	arca_status st = arca_buf_append(b, "\"", 1);
	for (size_t i = 0; st == ARCA_OK && i < n; i++)
		st = s[i] == '"' ? arca_buf_append(b, "\"\"", 2) : arca_buf_append(b, &s[i], 1);
	return st == ARCA_OK ? arca_buf_append(b, "\"", 1) : st;
}

/* Adds to *s the documents of the folder in table t matching expr (within cols for fts). */
static arca_status lookup(arca_index *ix, int t, uint32_t folder_id, unsigned fields,
                          const char *alts, size_t alts_len, idset *s, arca_error *err)
{
	static const char *const sql[IX_T_COUNT] = {
		"SELECT d.msg_id FROM fts CROSS JOIN doc_folders df CROSS JOIN docs d"
		" WHERE fts MATCH ?1 AND df.folder_id = ?2 AND df.sortkey = fts.rowid"
		" AND d.sortkey = fts.rowid",
		"SELECT d.msg_id FROM xhdr CROSS JOIN doc_folders df CROSS JOIN docs d"
		" WHERE xhdr MATCH ?1 AND df.folder_id = ?2 AND df.sortkey = xhdr.rowid"
		" AND d.sortkey = xhdr.rowid",
		"SELECT d.msg_id FROM xbody CROSS JOIN doc_folders df CROSS JOIN docs d"
		" WHERE xbody MATCH ?1 AND df.folder_id = ?2 AND df.sortkey = xbody.rowid"
		" AND d.sortkey = xbody.rowid",
		"SELECT d.msg_id FROM xfield CROSS JOIN doc_folders df CROSS JOIN docs d"
		" WHERE xfield MATCH ?1 AND df.folder_id = ?2 AND df.sortkey = xfield.rowid"
		" AND d.sortkey = xfield.rowid",
	};
	arca_buf expr;
	arca_status st = ARCA_OK;
	int rc;
	arca_buf_init(&expr, SIZE_MAX / 2);
	if (t == IX_T_FTS || t == IX_T_XFIELD) {
		bool first = true;
		st = arca_buf_append(&expr, "{", 1);
		unsigned cols = t == IX_T_XFIELD ? fields & ARCA_INDEX_F_HEADERS : fields;
		for (size_t i = 0; st == ARCA_OK && i < sizeof(imap_cols) / sizeof(imap_cols[0]); i++) {
			if (!(cols & (1u << i)))
				continue;
			if (!first)
				st = arca_buf_append(&expr, " ", 1);
			if (st == ARCA_OK)
				st = arca_buf_appendz(&expr, imap_cols[i]);
			first = false;
		}
		if (st == ARCA_OK)
			st = arca_buf_appendz(&expr, "} : ");
	}
	if (st == ARCA_OK)
		st = arca_buf_append(&expr, "(", 1);
	if (st == ARCA_OK)
		st = arca_buf_append(&expr, alts, alts_len);
	if (st == ARCA_OK)
		st = arca_buf_append(&expr, ")", 1);
	if (st != ARCA_OK) {
		arca_buf_free(&expr);
		return arca_error_set(err, st, "index: out of memory");
	}
	rc = ix_prep(ix, &ix->st_imap_q[t], sql[t]);
	if (rc != SQLITE_OK) {
		arca_buf_free(&expr);
		return ix_db_fail(ix, err, rc, "preparing search");
	}
	sqlite3_bind_text(ix->st_imap_q[t], 1, expr.data, (int)expr.len, SQLITE_STATIC);
	sqlite3_bind_int64(ix->st_imap_q[t], 2, folder_id);
	st = collect(ix, ix->st_imap_q[t], s, err);
	sqlite3_clear_bindings(ix->st_imap_q[t]);
	arca_buf_free(&expr);
	return st;
}

/* Adds to *s the documents of the folder with the given docs.flags bit clear. */
static arca_status plain_docs(arca_index *ix, uint32_t folder_id, idset *s, arca_error *err)
{
	int rc = ix_prep(ix, &ix->st_imap_plain,
	                 "SELECT d.msg_id FROM doc_folders df JOIN docs d ON d.sortkey = df.sortkey"
	                 " WHERE df.folder_id = ?1 AND (d.flags & ?2) = 0");
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "preparing search");
	sqlite3_bind_int64(ix->st_imap_plain, 1, folder_id);
	sqlite3_bind_int(ix->st_imap_plain, 2, DOC_XTEXT);
	return collect(ix, ix->st_imap_plain, s, err);
}

/* The documents holding word i of the needle in one of the tables. */
static arca_status word_docs(arca_index *ix, uint32_t folder_id, unsigned fields, const needle *nd,
                             size_t i, const vocab *v, idset *s, arca_error *err)
{
	bool last = i + 1 == nd->n, open_end = last && !nd->cut && nd->open_end;
	arca_buf alts;
	arca_status st;
	arca_buf_init(&alts, SIZE_MAX / 2);
	st = quoted(&alts, nd->tok[i], nd->len[i]);
	if (st == ARCA_OK && open_end)
		st = arca_buf_appendz(&alts, " *");
	if (st != ARCA_OK) {
		arca_buf_free(&alts);
		return arca_error_set(err, st, "index: out of memory");
	}
	/* The first word may begin inside a longer one: then it also ends it, unless the needle
	 * ends after it. */
	if (st == ARCA_OK && i == 0 && nd->inside)
		st = inside_words(v, nd->tok[0], nd->len[0], !open_end, &alts, err);
	if (st == ARCA_OK)
		st = folded_words(v, nd->tok[i], nd->len[i], &alts, err);
	for (int t = 0; st == ARCA_OK && t < IX_T_COUNT; t++) {
		if ((t == IX_T_FTS && (fields & ARCA_INDEX_F_ALL) == 0) ||
		    (t == IX_T_XHDR && (fields & ARCA_INDEX_F_XHDR) == 0) ||
		    (t == IX_T_XBODY && (fields & ARCA_INDEX_F_XBODY) == 0) ||
		    (t == IX_T_XFIELD && ((fields & ARCA_INDEX_F_XFIELD) == 0 ||
		                          (fields & ARCA_INDEX_F_HEADERS) == 0)) ||
		    (t != IX_T_FTS && ix->version < 3))
			continue;
		st = lookup(ix, t, folder_id, fields, alts.data, alts.len, s, err);
	}
	arca_buf_free(&alts);
	if (st == ARCA_OK)
		sort_unique(s);
	return st;
}

arca_status arca_index_imap_words(arca_index *ix, uint32_t folder_id, const char *text, size_t len,
                                  unsigned fields, uint64_t **ids, size_t *n, arca_error *err)
{
	needle nd;
	vocab *v = NULL;
	idset acc = {0}, extra = {0};
	arca_status st;
	*ids = NULL;
	*n = 0;
	st = needle_split(ix, text, len, &nd, err);
	if (st != ARCA_OK)
		return st;
	/* the vocabulary: longer words around the first word (when the needle starts with a word,
	 * it may start inside one) and the words full case folding changes (for every word) */
	st = vocab_get(ix, folder_id, &v, &extra, err);
	if (st == ARCA_OK && v->too_large)
		st = arca_error_set(err, ARCA_ERR_INVALID, "the index's vocabulary is too large to keep");
	for (size_t i = 0; st == ARCA_OK && i < nd.n; i++) {
		idset w = {0};
		st = word_docs(ix, folder_id, fields, &nd, i, v, &w, err);
		if (st != ARCA_OK) {
			free(w.v);
			break;
		}
		if (i == 0) {
			acc = w;
		} else {
			intersect(&acc, &w);
			free(w.v);
		}
	}
	vocab_release(v);
	needle_free(&nd);
	/* documents without the tables the key needs, or newer than the vocabulary */
	if (st == ARCA_OK && (fields & (ARCA_INDEX_F_XHDR | ARCA_INDEX_F_XBODY | ARCA_INDEX_F_XFIELD)) != 0)
		st = plain_docs(ix, folder_id, &extra, err);
	if (st == ARCA_OK && extra.n > 0) {
		uint64_t *nv = realloc(acc.v, (acc.n + extra.n) * sizeof(*nv));
		if (nv == NULL) {
			st = arca_error_set(err, ARCA_ERR_NOMEM, "index: out of memory");
		} else {
			acc.v = nv;
			memcpy(acc.v + acc.n, extra.v, extra.n * sizeof(*nv));
			acc.n += extra.n;
			sort_unique(&acc);
		}
	}
	free(extra.v);
	if (st != ARCA_OK) {
		free(acc.v);
		return st;
	}
	*ids = acc.v;
	*n = acc.n;
	return ARCA_OK;
}

arca_status arca_index_imap_folder(arca_index *ix, uint32_t folder_id, uint64_t **ids, size_t *n,
                                   arca_error *err)
{
	idset s = {0};
	arca_status st;
	int rc;
	*ids = NULL;
	*n = 0;
	rc = ix_prep(ix, &ix->st_imap_folder,
	             "SELECT d.msg_id FROM doc_folders df JOIN docs d ON d.sortkey = df.sortkey"
	             " WHERE df.folder_id = ?1");
	if (rc != SQLITE_OK)
		return ix_db_fail(ix, err, rc, "preparing search");
	sqlite3_bind_int64(ix->st_imap_folder, 1, folder_id);
	st = collect(ix, ix->st_imap_folder, &s, err);
	if (st != ARCA_OK) {
		free(s.v);
		return st;
	}
	sort_unique(&s);
	*ids = s.v;
	*n = s.n;
	return ARCA_OK;
}

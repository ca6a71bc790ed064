/* SEARCH / UID SEARCH (RFC 3501, RFC 9051; ESEARCH RFC 4731, SEARCHRES RFC 5182, MODSEQ
 * RFC 7162), SORT / UID SORT and THREAD / UID THREAD (RFC 5256, DISPLAYFROM/DISPLAYTO of
 * RFC 5957). The handler parses on the loop thread; a worker evaluates.
 *
 * Evaluation (docs/imap.md, "SEARCH"): flags are fixed (every message is \Seen and nothing
 * else), so flag keys decide for all messages at once; sizes and archive times come from the
 * store's metadata; everything else needs the message itself, which is read and parsed at
 * most once per message and only when a key needs it (cheap keys are evaluated first).
 * Text keys (BODY, TEXT, SUBJECT, FROM, TO, CC, BCC, HEADER) first ask the full-text index
 * which of the folder's messages may contain the string (arca_index_imap_words, which never
 * misses one); only those, and the messages the index does not hold yet, are read and checked
 * with RFC 3501's case-insensitive substring test. A string without any word characters, an
 * empty string, one that starts with a short word, or one the index cannot narrow down is
 * checked on every message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "archive/imapsearch.h"
#include "imap/imapd_int.h"
#include "imap/message.h"
#include "imap/search_int.h"
#include "lib/log.h"

#define FLUSH_AT (64u * 1024u)
#define MAX_SORT_KEYS 16u
/* Shortest first word of a string for which the index is asked (see index_fields). */
#define MIN_INDEX_WORD 3u

enum { RET_MIN = 1u, RET_MAX = 2u, RET_ALL = 4u, RET_COUNT = 8u, RET_SAVE = 16u };

typedef enum { CMD_SEARCH, CMD_SORT, CMD_THREAD } cmd_kind;

typedef enum {
	SK_ARRIVAL,
	SK_CC,
	SK_DATE,
	SK_FROM,
	SK_SIZE,
	SK_SUBJECT,
	SK_TO,
	SK_DISPLAYFROM,
	SK_DISPLAYTO,
} sort_key;

typedef struct {
	sort_key key;
	bool reverse;
} sort_crit;

typedef struct {
	cmd_kind kind;
	imapd_skey *prog;
	unsigned ret;  /* RETURN options */
	bool esearch;  /* answer with ESEARCH */
	bool modseq;   /* the program uses MODSEQ */
	sort_crit crit[MAX_SORT_KEYS];
	size_t ncrit;
	bool references; /* THREAD=REFERENCES, else ORDEREDSUBJECT */
} search_data;

static void search_data_free(void *p)
{
	search_data *d = p;
	imapd_search_free(&d->prog);
	free(d);
}

/* ------------------------------------------------------------------ per-message access */

typedef struct {
	imapd_cmd *c;
	size_t idx;
	uint32_t uid, store_id;
	uint64_t msg_id;
	int info, msg; /* 0: not loaded yet, 1: loaded, -1: failed */
	uint64_t size;
	int64_t archived;
	arca_imap_msg *m;
	bool have_body, have_text; /* body, text (the header lines) computed */
	bool failed;
	arca_buf raw, hdr, body, text;
	const arca_message_info *infos; /* every message's, fetched at once (NULL: one by one) */
} mctx;

static void mctx_init(mctx *x, imapd_cmd *c)
{
	memset(x, 0, sizeof(*x));
	x->c = c;
	arca_buf_init(&x->raw, ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&x->hdr, ARCA_MIME_MAX_HEADER_TOTAL);
	arca_buf_init(&x->body, ARCA_MIME_MAX_TEXT + 16);
	arca_buf_init(&x->text, ARCA_MIME_MAX_TEXT + 16);
}

/* Points x at message idx, dropping what was loaded for the previous one. */
static void mctx_at(mctx *x, size_t idx)
{
	arca_imap_msg_free(&x->m);
	x->idx = idx;
	x->info = x->msg = 0;
	x->have_body = x->have_text = x->failed = false;
	imapd_mailbox_entry(x->c->s->mbox, idx, &x->uid, &x->store_id, &x->msg_id);
}

static void mctx_free(mctx *x)
{
	arca_imap_msg_free(&x->m);
	arca_buf_free(&x->raw);
	arca_buf_free(&x->hdr);
	arca_buf_free(&x->body);
	arca_buf_free(&x->text);
}

static bool load_info(mctx *x)
{
	arca_error e;
	if (x->info == 0 && x->infos != NULL) {
		x->size = x->infos[x->idx].size;
		x->archived = x->infos[x->idx].archive_time;
		x->info = 1;
	}
	if (x->info == 0) {
		x->info = imapd_mailbox_msginfo(x->c->h, x->c->s->mbox, x->idx, &x->size, &x->archived,
		                                &e) == ARCA_OK ? 1 : -1;
		if (x->info < 0) {
			arca_log(ARCA_LOG_ERROR, "imap", "session=%llu no size for uid %u: %s",
			         (unsigned long long)x->c->s->id, x->uid, e.msg);
			x->failed = true;
		}
	}
	return x->info > 0;
}

static bool load_msg(mctx *x)
{
	arca_error e;
	if (x->msg == 0) {
		arca_buf_reset(&x->raw);
		if (arca_instance_get(x->c->h->inst, x->store_id, x->msg_id, &x->raw, &e) != ARCA_OK ||
		    arca_imap_msg_parse((const uint8_t *)x->raw.data, x->raw.len, &x->m, &e) != ARCA_OK) {
			arca_log(ARCA_LOG_ERROR, "imap", "session=%llu cannot read message %u:%llu (uid %u): %s",
			         (unsigned long long)x->c->s->id, x->store_id,
			         (unsigned long long)x->msg_id, x->uid, e.msg);
			x->msg = -1;
			x->failed = true;
		} else {
			x->msg = 1;
		}
	}
	return x->msg > 0;
}

/* INTERNALDATE as FETCH shows it: the Date header in its zone, else the archive time (UTC). */
static bool internal_date(mctx *x, int64_t *t, int *tz)
{
	if (!load_msg(x))
		return false;
	if (arca_imap_msg_date(x->m, t, tz) == ARCA_OK)
		return true;
	if (!load_info(x))
		return false;
	*t = x->archived;
	*tz = 0;
	return true;
}

static bool bit(const uint8_t *b, size_t i)
{
	return (b[i / 8] >> (i % 8)) & 1u;
}

static void set_bit(uint8_t *b, size_t i)
{
	b[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* Whether needle occurs across the end of a (the header lines) and the start of b (the body's
 * text): TEXT searches a followed by b. Only the bytes a match across could use are tested,
 * cut at UTF-8 character starts. Folding can make a character of the needle 3 times longer
 * (U+0390: 2 bytes, 6 folded) and one of the text shorter (U+1FBE: 3 bytes, 2 folded), so a
 * match uses at most 4.5 bytes of text per byte of needle; 6 leaves room, on either side. */
static bool across(const arca_buf *a, const arca_buf *b, const char *needle, size_t nlen)
{
	size_t span = nlen * 6 + 16, ta, hb;
	char *joined;
	bool found;
	if (nlen < 2 || a->len == 0 || b->len == 0)
		return false;
	ta = a->len > span ? a->len - span : 0;
	while (ta > 0 && ta < a->len && ((unsigned char)a->data[ta] & 0xC0) == 0x80)
		ta--;
	hb = b->len > span ? span : b->len;
	while (hb < b->len && ((unsigned char)b->data[hb] & 0xC0) == 0x80)
		hb++;
	joined = malloc(a->len - ta + hb);
	if (joined == NULL)
		return true; /* out of memory: better a false match than a lost one */
	memcpy(joined, a->data + ta, a->len - ta);
	memcpy(joined + (a->len - ta), b->data, hb);
	found = arca_imap_match_substring(joined, a->len - ta + hb, needle, nlen);
	free(joined);
	return found;
}

static bool eval(const imapd_skey *k, mctx *x)
{
	switch (k->kind) {
	case IMAPD_SK_ALL:
		return true;
	case IMAPD_SK_NONE:
		return false;
	case IMAPD_SK_AND:
		for (size_t i = 0; i < k->nkids; i++)
			if (!eval(&k->kids[i], x))
				return false;
		return true;
	case IMAPD_SK_OR:
		return eval(&k->kids[0], x) || eval(&k->kids[1], x);
	case IMAPD_SK_NOT:
		return !eval(&k->kids[0], x);
	case IMAPD_SK_SET:
		return bit(k->bits, x->idx);
	case IMAPD_SK_MODSEQ:
		return x->uid >= k->num; /* a message's MODSEQ is its UID */
	case IMAPD_SK_LARGER:
		return load_info(x) && x->size > k->num;
	case IMAPD_SK_SMALLER:
		return load_info(x) && x->size < k->num;
	case IMAPD_SK_BEFORE:
	case IMAPD_SK_ON:
	case IMAPD_SK_SINCE: {
		int64_t t;
		int tz, day;
		if (!internal_date(x, &t, &tz))
			return false;
		day = imapd_search_day(t, tz);
		return k->kind == IMAPD_SK_BEFORE ? day < k->day :
		       k->kind == IMAPD_SK_ON     ? day == k->day :
		                                    day >= k->day;
	}
	case IMAPD_SK_SENTBEFORE:
	case IMAPD_SK_SENTON:
	case IMAPD_SK_SENTSINCE: {
		int64_t t;
		int tz, day;
		if (!load_msg(x) || arca_imap_msg_date(x->m, &t, &tz) != ARCA_OK)
			return false; /* no usable Date header: no sent date */
		day = imapd_search_day(t, tz);
		return k->kind == IMAPD_SK_SENTBEFORE ? day < k->day :
		       k->kind == IMAPD_SK_SENTON     ? day == k->day :
		                                        day >= k->day;
	}
	case IMAPD_SK_HEADER:
		if (k->bits != NULL && !bit(k->bits, x->idx))
			return false;
		if (!load_msg(x))
			return false;
		arca_buf_reset(&x->hdr);
		if (arca_imap_msg_header(x->m, k->field, &x->hdr) == ARCA_ERR_NOTFOUND)
			return false; /* HEADER f "" matches every message that has the field */
		return arca_imap_match_substring(x->hdr.data != NULL ? x->hdr.data : "", x->hdr.len,
		                                 k->text, k->len);
	case IMAPD_SK_BODY:
	case IMAPD_SK_TEXT:
		if (k->bits != NULL && !bit(k->bits, x->idx))
			return false;
		if (!load_msg(x))
			return false;
		/* TEXT: the header lines first, which are cheap, then the body's text (decoding,
		 * charsets, HTML), then the few bytes where the two meet */
		if (k->kind == IMAPD_SK_TEXT) {
			if (!x->have_text) {
				arca_buf_reset(&x->text);
				arca_imap_msg_header_text(x->m, &x->text, ARCA_MIME_MAX_TEXT);
				x->have_text = true;
			}
			if (arca_imap_match_substring(x->text.data != NULL ? x->text.data : "", x->text.len,
			                              k->text, k->len))
				return true;
		}
		if (!x->have_body) {
			arca_buf_reset(&x->body);
			arca_imap_msg_text(x->m, false, &x->body, ARCA_MIME_MAX_TEXT);
			x->have_body = true;
		}
		if (arca_imap_match_substring(x->body.data != NULL ? x->body.data : "", x->body.len,
		                              k->text, k->len))
			return true;
		return k->kind == IMAPD_SK_TEXT && across(&x->text, &x->body, k->text, k->len);
	}
	return false;
}

/* ------------------------------------------------------------------ preparing a program */

/* Members of a sequence set (message numbers beyond the mailbox simply match nothing), a UID
 * set, or "$" (the saved result, RFC 5182). */
static arca_status resolve_set(imapd_cmd *c, imapd_skey *k, size_t n, arca_error *err)
{
	const imapd_mailbox *mb = c->s->mbox;
	arca_imap_seqset *set = NULL;
	arca_status st = arca_imap_seqset_parse(k->set, k->setlen, &set, err);
	uint32_t uid, sid;
	uint64_t mid;
	if (st != ARCA_OK)
		return st;
	k->bits = calloc(n / 8 + 1, 1);
	if (k->bits == NULL) {
		arca_imap_seqset_free(&set);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	if (arca_imap_seqset_is_searchres(set)) {
		for (size_t i = 0; i < c->s->n_searchres; i++) {
			size_t j = imapd_mailbox_lower_bound(mb, c->s->searchres[i]);
			if (j < n) {
				imapd_mailbox_entry(mb, j, &uid, &sid, &mid);
				if (uid == c->s->searchres[i])
					set_bit(k->bits, j);
			}
		}
	} else {
		uint32_t max = (uint32_t)n;
		if (k->uid && n > 0)
			imapd_mailbox_entry(mb, n - 1, &max, &sid, &mid);
		else if (k->uid)
			max = 0;
		for (size_t r = 0; r < arca_imap_seqset_count(set) && max > 0; r++) {
			arca_imap_seqrange rg = arca_imap_seqset_range(set, r);
			uint32_t lo = rg.lo == ARCA_IMAP_SEQ_STAR ? max : rg.lo;
			uint32_t hi = rg.hi == ARCA_IMAP_SEQ_STAR ? max : rg.hi;
			if (lo > hi) {
				uint32_t t = lo;
				lo = hi;
				hi = t;
			}
			if (k->uid) {
				for (size_t j = imapd_mailbox_lower_bound(mb, lo); j < n; j++) {
					imapd_mailbox_entry(mb, j, &uid, &sid, &mid);
					if (uid > hi)
						break;
					set_bit(k->bits, j);
				}
			} else {
				if (hi > n)
					hi = (uint32_t)n;
				for (uint32_t j = lo; j <= hi && j >= 1; j++)
					set_bit(k->bits, j - 1);
			}
		}
	}
	arca_imap_seqset_free(&set);
	return ARCA_OK;
}

static unsigned kind_cost(imapd_search_kind kind)
{
	switch (kind) {
	case IMAPD_SK_ALL:
	case IMAPD_SK_NONE:
	case IMAPD_SK_SET:
	case IMAPD_SK_MODSEQ:
		return 0;
	case IMAPD_SK_LARGER:
	case IMAPD_SK_SMALLER:
		return 1;
	default:
		return 2;
	}
}

/* Resolves sets and orders ANDs and ORs so that cheap keys decide first. */
static arca_status prepare(imapd_cmd *c, imapd_skey *k, size_t n, arca_error *err)
{
	arca_status st = ARCA_OK;
	k->cost = kind_cost(k->kind);
	if (k->kind == IMAPD_SK_SET)
		return resolve_set(c, k, n, err);
	for (size_t i = 0; i < k->nkids && st == ARCA_OK; i++) {
		st = prepare(c, &k->kids[i], n, err);
		if (k->kind == IMAPD_SK_AND || k->kind == IMAPD_SK_OR || k->kind == IMAPD_SK_NOT)
			k->cost = i == 0 || k->kids[i].cost > k->cost ? k->kids[i].cost : k->cost;
	}
	if (st != ARCA_OK)
		return st;
	/* stable insertion sort by cost: the result does not depend on the order */
	if (k->kind == IMAPD_SK_AND || k->kind == IMAPD_SK_OR) {
		for (size_t i = 1; i < k->nkids; i++) {
			imapd_skey t = k->kids[i];
			size_t j = i;
			while (j > 0 && k->kids[j - 1].cost > t.cost) {
				k->kids[j] = k->kids[j - 1];
				j--;
			}
			k->kids[j] = t;
		}
	}
	return ARCA_OK;
}

/* ------------------------------------------------------------------ index candidates */

/* Characters of the word the string starts with (0 if it starts with a non-word character).
 * ASCII letters and digits and every non-ASCII character count as word characters, which
 * over-estimates the index's tokenizer: that only makes a scan less likely, never wrong. */
static size_t first_word_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x80 && !((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')))
			break;
		if ((ch & 0xC0) != 0x80)
			n++;
	}
	return n;
}

/* The index fields that hold what a text key searches, 0 if the index would answer the key too
 * loosely. Header keys also look at the words of the field as IMAP decodes it that its column
 * lacks (xfield, xhdr): the fts columns come from the MIME reader, whose decoding of a field
 * can differ (and which keeps only parsed addresses). */
static unsigned index_fields(const imapd_skey *k)
{
	size_t fw;
	if (k->len == 0)
		return 0; /* "" matches every message that has the field: nothing to look up */
	/* A string starting with a short word is mostly found inside longer words ("re" in
	 * "are"): its candidates would be most of the folder anyway, check every message. */
	fw = first_word_chars(k->text, k->len);
	if (fw > 0 && fw < MIN_INDEX_WORD)
		return 0;
	if (k->kind == IMAPD_SK_BODY)
		return ARCA_INDEX_F_BODY | ARCA_INDEX_F_ATTACHMENT | ARCA_INDEX_F_XBODY;
	if (k->kind == IMAPD_SK_TEXT)
		return ARCA_INDEX_F_ALL | ARCA_INDEX_F_XHDR | ARCA_INDEX_F_XBODY;
	if (k->kind != IMAPD_SK_HEADER)
		return 0;
	/* a field a header column holds: that column and xfield's; any other: xhdr, which holds
	 * the words of every field that the header columns lack, and all of those columns */
	if (strcasecmp(k->field, "Subject") == 0)
		return ARCA_INDEX_F_SUBJECT | ARCA_INDEX_F_XFIELD;
	if (strcasecmp(k->field, "From") == 0 || strcasecmp(k->field, "Sender") == 0 ||
	    strcasecmp(k->field, "Reply-To") == 0)
		return ARCA_INDEX_F_FROM | ARCA_INDEX_F_XFIELD;
	if (strcasecmp(k->field, "To") == 0)
		return ARCA_INDEX_F_TO | ARCA_INDEX_F_XFIELD;
	if (strcasecmp(k->field, "Cc") == 0)
		return ARCA_INDEX_F_CC | ARCA_INDEX_F_XFIELD;
	if (strcasecmp(k->field, "Bcc") == 0)
		return ARCA_INDEX_F_BCC | ARCA_INDEX_F_XFIELD;
	if (strcasecmp(k->field, "Message-ID") == 0 || strcasecmp(k->field, "In-Reply-To") == 0 ||
	    strcasecmp(k->field, "References") == 0)
		return ARCA_INDEX_F_MSGID | ARCA_INDEX_F_XFIELD;
	return ARCA_INDEX_F_HEADERS | ARCA_INDEX_F_XHDR;
}

/* What the indexes of the mailbox's stores hold of its folder, looked up once per command. */
typedef struct {
	uint32_t store_id;
	bool indexed;  /* the store has an index of the archive */
	uint64_t *ids; /* the folder's messages in it, ascending */
	size_t n;
} store_ix;

typedef struct {
	uint32_t archive_id, folder_id;
	store_ix *v;
	size_t n;
	size_t lookups, candidates; /* statistics for the log */
} ix_state;

static bool has_id(const uint64_t *v, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo] == id;
}

static store_ix *ix_store(imapd_cmd *c, ix_state *is, uint32_t store_id)
{
	store_ix *v;
	arca_error e = {0};
	for (size_t i = 0; i < is->n; i++)
		if (is->v[i].store_id == store_id)
			return &is->v[i];
	v = realloc(is->v, (is->n + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	is->v = v;
	v = &is->v[is->n++];
	memset(v, 0, sizeof(*v));
	v->store_id = store_id;
	v->indexed = arca_instance_imap_indexed(c->h->inst, store_id, is->archive_id, is->folder_id,
	                                        &v->ids, &v->n, &e) == ARCA_OK;
	if (!v->indexed && e.status != ARCA_ERR_NOTFOUND)
		arca_log(ARCA_LOG_WARN, "imap", "session=%llu index of store %u unusable: %s",
		         (unsigned long long)c->s->id, store_id, e.msg);
	return v;
}

/* k->bits = the messages that may match text key k: the index's candidates plus every message
 * the index does not hold. Leaves k->bits NULL (check every message) when the index cannot
 * narrow the search down. */
static void text_candidates(imapd_cmd *c, ix_state *is, imapd_skey *k, size_t n)
{
	unsigned fields = index_fields(k);
	const imapd_mailbox *mb = c->s->mbox;
	uint8_t *bits;
	struct {
		uint32_t store_id;
		uint64_t *ids;
		size_t n;
		bool usable;
	} words[8];
	size_t nw = 0;
	if (fields == 0 || is->folder_id == 0)
		return;
	bits = calloc(n / 8 + 1, 1);
	if (bits == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		uint32_t uid, sid;
		uint64_t mid;
		store_ix *sx;
		size_t w;
		imapd_mailbox_entry(mb, i, &uid, &sid, &mid);
		for (w = 0; w < nw && words[w].store_id != sid; w++)
			;
		if (w == nw) {
			arca_error e = {0};
			arca_status st;
			if (nw == sizeof(words) / sizeof(words[0]))
				goto scan; /* more stores than expected: simply check everything */
			sx = ix_store(c, is, sid);
			if (sx == NULL)
				goto scan;
			words[nw].store_id = sid;
			words[nw].ids = NULL;
			words[nw].n = 0;
			words[nw].usable = false;
			nw++;
			if (sx->indexed) {
				st = arca_instance_imap_words(c->h->inst, sid, is->archive_id, is->folder_id,
				                              k->text, k->len, fields, &words[w].ids,
				                              &words[w].n, &e);
				is->lookups++;
				if (st == ARCA_ERR_INVALID)
					goto scan; /* no word in the string: the index cannot help */
				if (st != ARCA_OK)
					arca_log(ARCA_LOG_WARN, "imap", "session=%llu index lookup failed: %s",
					         (unsigned long long)c->s->id, e.msg);
				words[w].usable = st == ARCA_OK;
			}
		}
		sx = ix_store(c, is, sid);
		if (sx == NULL)
			goto scan;
		if (!words[w].usable || !has_id(sx->ids, sx->n, mid) || has_id(words[w].ids, words[w].n, mid)) {
			set_bit(bits, i);
			is->candidates++;
		}
	}
	for (size_t w = 0; w < nw; w++)
		free(words[w].ids);
	k->bits = bits;
	return;
scan:
	for (size_t w = 0; w < nw; w++)
		free(words[w].ids);
	free(bits);
}

static void all_text_candidates(imapd_cmd *c, ix_state *is, imapd_skey *k, size_t n)
{
	if (k->kind == IMAPD_SK_HEADER || k->kind == IMAPD_SK_BODY || k->kind == IMAPD_SK_TEXT)
		text_candidates(c, is, k, n);
	for (size_t i = 0; i < k->nkids; i++)
		all_text_candidates(c, is, &k->kids[i], n);
}

/* The messages that can match k at all (NULL: any), from sets and index candidates: ANDs
 * intersect, ORs unite; NOT and other keys say nothing. Caller frees. */
static uint8_t *candidates(const imapd_skey *k, size_t n, bool *nomem)
{
	size_t bytes = n / 8 + 1;
	uint8_t *r = NULL;
	switch (k->kind) {
	case IMAPD_SK_NONE:
		r = calloc(bytes, 1);
		break;
	case IMAPD_SK_SET:
	case IMAPD_SK_HEADER:
	case IMAPD_SK_BODY:
	case IMAPD_SK_TEXT:
		if (k->bits == NULL)
			return NULL;
		r = malloc(bytes);
		if (r != NULL)
			memcpy(r, k->bits, bytes);
		break;
	case IMAPD_SK_AND:
		for (size_t i = 0; i < k->nkids; i++) {
			uint8_t *x = candidates(&k->kids[i], n, nomem);
			if (x == NULL)
				continue;
			if (r == NULL) {
				r = x;
				continue;
			}
			for (size_t b = 0; b < bytes; b++)
				r[b] &= x[b];
			free(x);
		}
		return r;
	case IMAPD_SK_OR: {
		uint8_t *a = candidates(&k->kids[0], n, nomem), *b = NULL;
		if (a != NULL)
			b = candidates(&k->kids[1], n, nomem);
		if (b == NULL) {
			free(a);
			return NULL;
		}
		for (size_t i = 0; i < bytes; i++)
			a[i] |= b[i];
		free(b);
		return a;
	}
	default:
		return NULL;
	}
	if (r == NULL)
		*nomem = true;
	return r;
}

/* ------------------------------------------------------------------ running the program */

static bool uses_size(const imapd_skey *k)
{
	if (k->kind == IMAPD_SK_LARGER || k->kind == IMAPD_SK_SMALLER)
		return true;
	for (size_t i = 0; i < k->nkids; i++)
		if (uses_size(&k->kids[i]))
			return true;
	return false;
}

/* Sizes and archive times of all n messages in one pass per store (one metadata snapshot each
 * instead of one per message); NULL if that fails (load_info then asks one by one). */
static arca_message_info *all_infos(imapd_cmd *c, size_t n)
{
	arca_folder_msg *msgs = malloc((n + 1) * sizeof(*msgs));
	arca_message_info *infos = malloc((n + 1) * sizeof(*infos));
	arca_error e;
	if (msgs != NULL && infos != NULL) {
		for (size_t i = 0; i < n; i++)
			imapd_mailbox_entry(c->s->mbox, i, &msgs[i].uid, &msgs[i].store_id, &msgs[i].msg_id);
		if (arca_instance_msginfo_many(c->h->inst, msgs, n, infos, &e) != ARCA_OK) {
			free(infos);
			infos = NULL;
		}
	} else {
		free(infos);
		infos = NULL;
	}
	free(msgs);
	return infos;
}

typedef struct {
	size_t *idx; /* matching messages (0-based, ascending) */
	size_t n;
	size_t failed; /* messages that could not be read */
} matches;

/* Evaluates the program over the mailbox. ARCA_ERR_* only for resource failures. */
static arca_status run(imapd_cmd *c, search_data *d, matches *out, arca_error *err)
{
	imapd_session *s = c->s;
	size_t n = imapd_mailbox_count(s->mbox), cap = 0;
	ix_state is = {0};
	arca_message_info *infos = NULL;
	uint8_t *cand;
	bool nomem = false;
	mctx x;
	arca_status st;
	struct timespec t0, t1;
	memset(out, 0, sizeof(*out));
	if (c->h->inst == NULL) {
		/* this worker could not open the instance: say why, like any other failure */
		*err = c->h->open_err;
		return err->status != ARCA_OK ? err->status : ARCA_ERR_IO;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	st = prepare(c, d->prog, n, err);
	if (st != ARCA_OK)
		return st;
	imapd_mailbox_folder(s->mbox, &is.archive_id, &is.folder_id);
	all_text_candidates(c, &is, d->prog, n);
	cand = candidates(d->prog, n, &nomem);
	if (nomem)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	mctx_init(&x, c);
	if (uses_size(d->prog))
		x.infos = infos = all_infos(c, n);
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		bool ok;
		if (cand != NULL && !bit(cand, i))
			continue;
		mctx_at(&x, i);
		ok = eval(d->prog, &x);
		if (x.failed) {
			out->failed++;
			continue;
		}
		if (!ok)
			continue;
		if (out->n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			size_t *v = realloc(out->idx, nc * sizeof(*v));
			if (v == NULL) {
				st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
				break;
			}
			out->idx = v;
			cap = nc;
		}
		out->idx[out->n++] = i;
	}
	mctx_free(&x);
	free(infos);
	free(cand);
	for (size_t i = 0; i < is.n; i++)
		free(is.v[i].ids);
	free(is.v);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	arca_log(ARCA_LOG_DEBUG, "imap",
	         "session=%llu %s messages=%zu index_lookups=%zu candidates=%zu matched=%zu "
	         "unreadable=%zu ms=%.1f", (unsigned long long)s->id, c->name, n, is.lookups,
	         is.candidates, out->n, out->failed,
	         (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	if (st != ARCA_OK) {
		free(out->idx);
		memset(out, 0, sizeof(*out));
	}
	return st;
}

static uint32_t uid_of(imapd_cmd *c, size_t idx)
{
	uint32_t uid, sid;
	uint64_t mid;
	imapd_mailbox_entry(c->s->mbox, idx, &uid, &sid, &mid);
	return uid;
}

static uint32_t id_of(imapd_cmd *c, size_t idx)
{
	return c->uid ? uid_of(c, idx) : (uint32_t)(idx + 1);
}

static void maybe_flush(imapd_cmd *c)
{
	if (evbuffer_get_length(c->buf) >= FLUSH_AT)
		imapd_flush(c);
}

static void warn_unreadable(imapd_cmd *c, const matches *m)
{
	if (m->failed > 0)
		imapd_printf(c, "* NO [CORRUPTION] %zu message(s) could not be read and were left out\r\n",
		             m->failed);
}

/* ------------------------------------------------------------------ SEARCH */

/* "1:3,5" of the ids of m (ascending). */
static void put_set(imapd_cmd *c, const matches *m)
{
	for (size_t i = 0; i < m->n;) {
		uint32_t lo = id_of(c, m->idx[i]), hi = lo;
		size_t j = i + 1;
		while (j < m->n && id_of(c, m->idx[j]) == hi + 1) {
			hi++;
			j++;
		}
		if (lo == hi)
			imapd_printf(c, "%s%u", i ? "," : "", lo);
		else
			imapd_printf(c, "%s%u:%u", i ? "," : "", lo, hi);
		i = j;
		maybe_flush(c);
	}
}

static void save_result(imapd_cmd *c, search_data *d, const matches *m)
{
	imapd_session *s = c->s;
	uint32_t *v = NULL;
	size_t n = 0;
	bool minmax_only = (d->ret & (RET_MIN | RET_MAX)) && !(d->ret & (RET_ALL | RET_COUNT));
	if (m->n > 0) {
		v = malloc(m->n * sizeof(*v));
		if (v == NULL)
			return; /* keep the old one rather than lose it half-way */
		if (minmax_only) {
			if (d->ret & RET_MIN)
				v[n++] = uid_of(c, m->idx[0]);
			if ((d->ret & RET_MAX) && (n == 0 || m->n > 1))
				v[n++] = uid_of(c, m->idx[m->n - 1]);
		} else {
			for (size_t i = 0; i < m->n; i++)
				v[n++] = uid_of(c, m->idx[i]);
		}
	}
	free(s->searchres);
	s->searchres = v;
	s->n_searchres = n;
}

static void search_work(imapd_cmd *c)
{
	search_data *d = c->data;
	matches m;
	arca_error e;
	if (run(c, d, &m, &e) != ARCA_OK) {
		if (d->ret & RET_SAVE) {
			free(c->s->searchres);
			c->s->searchres = NULL;
			c->s->n_searchres = 0;
		}
		imapd_tagged_error(c, &e);
		return;
	}
	if (d->ret & RET_SAVE)
		save_result(c, d, &m);
	warn_unreadable(c, &m);
	if (d->esearch) {
		if (d->ret != RET_SAVE) {
			imapd_printf(c, "* ESEARCH (TAG \"%s\")%s", c->tag, c->uid ? " UID" : "");
			if ((d->ret & RET_MIN) && m.n > 0)
				imapd_printf(c, " MIN %u", id_of(c, m.idx[0]));
			if ((d->ret & RET_MAX) && m.n > 0)
				imapd_printf(c, " MAX %u", id_of(c, m.idx[m.n - 1]));
			if (d->ret & RET_COUNT)
				imapd_printf(c, " COUNT %zu", m.n);
			if ((d->ret & RET_ALL) && m.n > 0) {
				imapd_printf(c, " ALL ");
				put_set(c, &m);
			}
			if (d->modseq && m.n > 0)
				imapd_printf(c, " MODSEQ %u", uid_of(c, m.idx[m.n - 1]));
			imapd_printf(c, "\r\n");
		}
	} else {
		imapd_printf(c, "* SEARCH");
		for (size_t i = 0; i < m.n; i++) {
			imapd_printf(c, " %u", id_of(c, m.idx[i]));
			maybe_flush(c);
		}
		if (d->modseq && m.n > 0)
			imapd_printf(c, " (MODSEQ %u)", uid_of(c, m.idx[m.n - 1]));
		imapd_printf(c, "\r\n");
	}
	free(m.idx);
	imapd_tagged(c, "OK", "%s%s completed", c->uid ? "UID " : "", c->name);
}

/* ------------------------------------------------------------------ argument parsing */

static bool charset_ok(const char *cs)
{
	return strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "US-ASCII") == 0;
}

static void reset_searchres(imapd_cmd *c)
{
	free(c->s->searchres);
	c->s->searchres = NULL;
	c->s->n_searchres = 0;
}

/* The search program from the next argument on (after an optional CHARSET for SEARCH, a
 * required one for SORT/THREAD). Answers the client itself on error (returns false). */
static bool parse_program(imapd_cmd *c, search_data *d, bool charset_required)
{
	const arca_imap_node *n = arca_imap_node_child(c->args, c->argi);
	const char *t = n != NULL ? arca_imap_node_text(n, NULL) : NULL;
	arca_error e;
	arca_status st;
	if (charset_required || (t != NULL && arca_imap_node_kind(n) == ARCA_IMAP_NODE_ATOM &&
	                         strcasecmp(t, "CHARSET") == 0)) {
		const char *cs;
		if (!charset_required)
			imapd_arg(c);
		cs = imapd_arg_string(c, NULL);
		if (cs == NULL) {
			imapd_tagged(c, "BAD", "%s: missing charset", c->name);
			return false;
		}
		if (!charset_ok(cs)) {
			imapd_tagged(c, "NO", "[BADCHARSET (UTF-8 US-ASCII)] charset %.64s is not supported", cs);
			return false;
		}
	}
	st = imapd_search_parse(c->args, c->argi, &d->prog, &e);
	if (st != ARCA_OK) {
		if (st == ARCA_ERR_SYNTAX)
			imapd_tagged(c, "BAD", "%s", e.msg);
		else
			imapd_tagged_error(c, &e);
		return false;
	}
	d->modseq = imapd_search_uses_modseq(d->prog);
	if (d->modseq)
		c->s->condstore = true; /* MODSEQ enables CONDSTORE (RFC 7162 §3.1) */
	return true;
}

static search_data *new_data(imapd_cmd *c, cmd_kind kind)
{
	search_data *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		imapd_tagged(c, "NO", "[SERVERBUG] out of memory");
		return NULL;
	}
	d->kind = kind;
	c->data = d;
	c->data_free = search_data_free;
	return d;
}

void imapd_cmd_search(imapd_cmd *c)
{
	search_data *d = new_data(c, CMD_SEARCH);
	const arca_imap_node *n;
	const char *t;
	if (d == NULL)
		return;
	n = arca_imap_node_child(c->args, c->argi);
	t = n != NULL && arca_imap_node_kind(n) == ARCA_IMAP_NODE_ATOM ? arca_imap_node_text(n, NULL) :
	                                                                 NULL;
	if (t != NULL && strcasecmp(t, "RETURN") == 0) {
		const arca_imap_node *opts;
		imapd_arg(c);
		opts = imapd_arg(c);
		if (opts == NULL || arca_imap_node_kind(opts) != ARCA_IMAP_NODE_LIST) {
			imapd_tagged(c, "BAD", "RETURN needs a list of options");
			return;
		}
		for (size_t i = 0; i < arca_imap_node_count(opts); i++) {
			const char *o = arca_imap_node_text(arca_imap_node_child(opts, i), NULL);
			unsigned bitv = o == NULL                 ? 0 :
			                strcasecmp(o, "MIN") == 0   ? RET_MIN :
			                strcasecmp(o, "MAX") == 0   ? RET_MAX :
			                strcasecmp(o, "ALL") == 0   ? RET_ALL :
			                strcasecmp(o, "COUNT") == 0 ? RET_COUNT :
			                strcasecmp(o, "SAVE") == 0  ? RET_SAVE :
			                                              0;
			if (bitv == 0) {
				imapd_tagged(c, "BAD", "unknown RETURN option %.64s", o != NULL ? o : "(list)");
				return;
			}
			d->ret |= bitv;
		}
		if (d->ret == 0)
			d->ret = RET_ALL; /* RETURN () */
		d->esearch = true;
	} else if (c->s->rev2) {
		d->ret = RET_ALL; /* IMAP4rev2 answers SEARCH with ESEARCH (RFC 9051 §7.3.4) */
		d->esearch = true;
	}
	if (!parse_program(c, d, false)) {
		if (d->ret & RET_SAVE)
			reset_searchres(c); /* RFC 5182 §2.1: a failed SAVE empties $ */
		return;
	}
	c->work = search_work;
	c->next = IMAPD_WORKER;
}

/* ------------------------------------------------------------------ SORT */

typedef struct {
	size_t idx;
	int64_t when; /* INTERNALDATE = sent date here (both the Date header, else archive time) */
	uint64_t size;
	char *str[4]; /* collated: subject, from/displayfrom, to/displayto, cc */
} sort_row;

enum { STR_SUBJECT, STR_FROM, STR_TO, STR_CC, STR_N };

/* The raw value of the first top-level field called name (after the colon, folding kept). */
static bool raw_field(const arca_imap_msg *m, const char *name, arca_buf *scratch, const char **v,
                      size_t *vlen)
{
	arca_imap_field_name f = { .name = name, .len = strlen(name) };
	arca_imap_fetch_section sec = { .kind = ARCA_IMAP_FETCH_BODY,
		                      .spec = ARCA_IMAP_SPEC_HEADER_FIELDS,
		                      .fields = &f,
		                      .nfields = 1 };
	const uint8_t *data = NULL;
	size_t len = 0, i, end;
	if (arca_imap_msg_section(m, &sec, scratch, &data, &len, NULL) != ARCA_OK || data == NULL)
		return false;
	for (i = 0; i < len && data[i] != ':'; i++)
		;
	if (i >= len)
		return false;
	for (end = i + 1; end < len; end++)
		if (data[end] == '\n' && (end + 1 >= len || (data[end + 1] != ' ' && data[end + 1] != '\t')))
			break;
	*v = (const char *)data + i + 1;
	*vlen = end - i - 1;
	return true;
}

static char *address_key(const arca_imap_msg *m, const char *field, bool display, arca_buf *scratch)
{
	const char *v;
	size_t vl;
	char *a, *k;
	if (!raw_field(m, field, scratch, &v, &vl))
		return strdup("");
	a = imapd_search_sort_address(v, vl, display);
	if (a == NULL)
		return NULL;
	k = imapd_search_casemap(a, strlen(a));
	free(a);
	return k;
}

/* The decoded first Subject's base subject, collated; *refwd as imapd_search_base_subject. */
static char *subject_key(const arca_imap_msg *m, arca_buf *tmp, bool *refwd)
{
	char *base, *k;
	size_t len;
	arca_buf_reset(tmp);
	*refwd = false;
	if (arca_imap_msg_header(m, "Subject", tmp) != ARCA_OK || tmp->data == NULL)
		return strdup("");
	len = strcspn(tmp->data, "\n");
	base = imapd_search_base_subject(tmp->data, len, refwd);
	if (base == NULL)
		return NULL;
	k = imapd_search_casemap(base, strlen(base));
	free(base);
	return k;
}

static int cmp_rows(const void *pa, const void *pb, void *ctx)
{
	const sort_row *a = pa, *b = pb;
	const search_data *sort_d = ctx;
	for (size_t i = 0; i < sort_d->ncrit; i++) {
		int r = 0;
		switch (sort_d->crit[i].key) {
		case SK_ARRIVAL:
		case SK_DATE:
			r = a->when < b->when ? -1 : a->when > b->when;
			break;
		case SK_SIZE:
			r = a->size < b->size ? -1 : a->size > b->size;
			break;
		case SK_SUBJECT:
			r = strcmp(a->str[STR_SUBJECT], b->str[STR_SUBJECT]);
			break;
		case SK_FROM:
		case SK_DISPLAYFROM:
			r = strcmp(a->str[STR_FROM], b->str[STR_FROM]);
			break;
		case SK_TO:
		case SK_DISPLAYTO:
			r = strcmp(a->str[STR_TO], b->str[STR_TO]);
			break;
		case SK_CC:
			r = strcmp(a->str[STR_CC], b->str[STR_CC]);
			break;
		}
		if (r != 0)
			return sort_d->crit[i].reverse ? -r : r;
	}
	return a->idx < b->idx ? -1 : a->idx > b->idx; /* ties: by sequence number */
}

static bool wants(const search_data *d, sort_key k)
{
	for (size_t i = 0; i < d->ncrit; i++)
		if (d->crit[i].key == k)
			return true;
	return false;
}

/* Fills row r for message idx. False if the message could not be read. */
static bool fill_row(const search_data *d, mctx *x, sort_row *r, arca_buf *scratch)
{
	bool refwd;
	r->idx = x->idx;
	for (size_t i = 0; i < STR_N; i++)
		r->str[i] = NULL;
	if (wants(d, SK_SIZE)) {
		if (!load_info(x))
			return false;
		r->size = x->size;
	}
	if (wants(d, SK_ARRIVAL) || wants(d, SK_DATE)) {
		int tz;
		if (!internal_date(x, &r->when, &tz))
			return false;
	}
	if (wants(d, SK_SUBJECT) || wants(d, SK_FROM) || wants(d, SK_TO) || wants(d, SK_CC) ||
	    wants(d, SK_DISPLAYFROM) || wants(d, SK_DISPLAYTO)) {
		if (!load_msg(x))
			return false;
	}
	r->str[STR_SUBJECT] = wants(d, SK_SUBJECT) ? subject_key(x->m, scratch, &refwd) : strdup("");
	r->str[STR_FROM] = wants(d, SK_FROM) || wants(d, SK_DISPLAYFROM) ?
	                           address_key(x->m, "From", wants(d, SK_DISPLAYFROM), scratch) :
	                           strdup("");
	r->str[STR_TO] = wants(d, SK_TO) || wants(d, SK_DISPLAYTO) ?
	                         address_key(x->m, "To", wants(d, SK_DISPLAYTO), scratch) :
	                         strdup("");
	r->str[STR_CC] = wants(d, SK_CC) ? address_key(x->m, "Cc", false, scratch) : strdup("");
	return true;
}

static void sort_work(imapd_cmd *c)
{
	search_data *d = c->data;
	matches m;
	arca_error e;
	sort_row *rows;
	arca_message_info *infos = NULL;
	size_t nr = 0;
	arca_buf scratch;
	mctx x;
	bool nomem = false;
	if (run(c, d, &m, &e) != ARCA_OK) {
		imapd_tagged_error(c, &e);
		return;
	}
	rows = calloc(m.n + 1, sizeof(*rows));
	if (rows == NULL) {
		free(m.idx);
		imapd_tagged(c, "NO", "[SERVERBUG] out of memory");
		return;
	}
	arca_buf_init(&scratch, ARCA_MIME_MAX_HEADER_TOTAL);
	mctx_init(&x, c);
	if (wants(d, SK_SIZE))
		x.infos = infos = all_infos(c, imapd_mailbox_count(c->s->mbox));
	for (size_t i = 0; i < m.n; i++) {
		mctx_at(&x, m.idx[i]);
		if (!fill_row(d, &x, &rows[nr], &scratch)) {
			m.failed++;
			continue;
		}
		for (size_t k = 0; k < STR_N; k++)
			if (rows[nr].str[k] == NULL)
				nomem = true;
		nr++;
	}
	mctx_free(&x);
	free(infos);
	arca_buf_free(&scratch);
	if (!nomem) {
		qsort_r(rows, nr, sizeof(*rows), cmp_rows, d);
		warn_unreadable(c, &m);
		imapd_printf(c, "* SORT");
		for (size_t i = 0; i < nr; i++) {
			imapd_printf(c, " %u", id_of(c, rows[i].idx));
			maybe_flush(c);
		}
		if (d->modseq && m.n > 0)
			imapd_printf(c, " (MODSEQ %u)", uid_of(c, m.idx[m.n - 1]));
		imapd_printf(c, "\r\n");
	}
	for (size_t i = 0; i < nr; i++)
		for (size_t k = 0; k < STR_N; k++)
			free(rows[i].str[k]);
	free(rows);
	free(m.idx);
	if (nomem)
		imapd_tagged(c, "NO", "[SERVERBUG] out of memory");
	else
		imapd_tagged(c, "OK", "%sSORT completed", c->uid ? "UID " : "");
}

void imapd_cmd_sort(imapd_cmd *c)
{
	static const struct {
		const char *name;
		sort_key key;
	} keys[] = {
		{ "ARRIVAL", SK_ARRIVAL }, { "CC", SK_CC },           { "DATE", SK_DATE },
		{ "FROM", SK_FROM },       { "SIZE", SK_SIZE },       { "SUBJECT", SK_SUBJECT },
		{ "TO", SK_TO },           { "DISPLAYFROM", SK_DISPLAYFROM },
		{ "DISPLAYTO", SK_DISPLAYTO },
	};
	search_data *d = new_data(c, CMD_SORT);
	const arca_imap_node *crit;
	bool reverse = false;
	if (d == NULL)
		return;
	crit = imapd_arg(c);
	if (crit == NULL || arca_imap_node_kind(crit) != ARCA_IMAP_NODE_LIST ||
	    arca_imap_node_count(crit) == 0) {
		imapd_tagged(c, "BAD", "SORT needs a list of sort criteria, a charset and search keys");
		return;
	}
	for (size_t i = 0; i < arca_imap_node_count(crit); i++) {
		const arca_imap_node *k = arca_imap_node_child(crit, i);
		const char *t = arca_imap_node_kind(k) == ARCA_IMAP_NODE_ATOM ? arca_imap_node_text(k, NULL) :
		                                                               NULL;
		size_t j;
		if (t != NULL && strcasecmp(t, "REVERSE") == 0 && !reverse) {
			reverse = true;
			continue;
		}
		for (j = 0; t != NULL && j < sizeof(keys) / sizeof(keys[0]); j++)
			if (strcasecmp(t, keys[j].name) == 0)
				break;
		if (t == NULL || j == sizeof(keys) / sizeof(keys[0])) {
			imapd_tagged(c, "BAD", "unknown sort criterion %.64s", t != NULL ? t : "(list)");
			return;
		}
		if (d->ncrit == MAX_SORT_KEYS) {
			imapd_tagged(c, "BAD", "too many sort criteria");
			return;
		}
		d->crit[d->ncrit].key = keys[j].key;
		d->crit[d->ncrit].reverse = reverse;
		d->ncrit++;
		reverse = false;
	}
	if (reverse) {
		imapd_tagged(c, "BAD", "REVERSE must be followed by a sort criterion");
		return;
	}
	if (!parse_program(c, d, true))
		return;
	c->work = sort_work;
	c->next = IMAPD_WORKER;
}

/* ------------------------------------------------------------------ THREAD */

typedef struct {
	char *msgid;
	char **refs;
	size_t nrefs;
	char *subject;
} thread_strs;

/* The first message id of a decoded header field into *out (NULL if none). */
static char **header_ids(const arca_imap_msg *m, const char *field, arca_buf *tmp, size_t *n)
{
	char **ids;
	arca_buf_reset(tmp);
	*n = 0;
	if (arca_imap_msg_header(m, field, tmp) != ARCA_OK || tmp->data == NULL || tmp->len == 0)
		return NULL;
	ids = malloc((tmp->len / 3 + 1) * sizeof(char *));
	if (ids == NULL)
		return NULL;
	*n = imapd_thread_msgids(tmp->data, tmp->len, ids, tmp->len / 3 + 1);
	return ids;
}

static void free_ids(char **ids, size_t n)
{
	for (size_t i = 0; ids != NULL && i < n; i++)
		free(ids[i]);
	free(ids);
}

static bool fill_thread(mctx *x, imapd_thread_msg *t, thread_strs *s, arca_buf *tmp, bool *nomem)
{
	int tz;
	size_t n;
	char **ids;
	memset(s, 0, sizeof(*s));
	if (!internal_date(x, &t->date, &tz))
		return false;
	ids = header_ids(x->m, "Message-ID", tmp, &n);
	if (n > 0) {
		s->msgid = ids[0];
		ids[0] = NULL;
	}
	free_ids(ids, n);
	s->refs = header_ids(x->m, "References", tmp, &s->nrefs);
	if (s->nrefs == 0) {
		/* no usable References: the first id of In-Reply-To (RFC 5256 §2.3 step 1) */
		free_ids(s->refs, 0);
		ids = header_ids(x->m, "In-Reply-To", tmp, &n);
		if (n > 0) {
			s->refs = ids;
			s->nrefs = 1;
			for (size_t i = 1; i < n; i++)
				free(ids[i]);
		} else {
			free_ids(ids, n);
			s->refs = NULL;
		}
	}
	s->subject = subject_key(x->m, tmp, &t->refwd);
	if (s->subject == NULL)
		*nomem = true;
	t->id = 0;
	t->seq = (uint32_t)(x->idx + 1);
	t->msgid = s->msgid;
	t->refs = (const char *const *)s->refs;
	t->nrefs = s->nrefs;
	t->subject = s->subject != NULL ? s->subject : "";
	return true;
}

static void thread_work(imapd_cmd *c)
{
	search_data *d = c->data;
	matches m;
	arca_error e;
	imapd_thread_msg *tm;
	thread_strs *ts;
	size_t nt = 0;
	arca_buf tmp, out;
	mctx x;
	bool nomem = false;
	arca_status st = ARCA_OK;
	if (run(c, d, &m, &e) != ARCA_OK) {
		imapd_tagged_error(c, &e);
		return;
	}
	tm = calloc(m.n + 1, sizeof(*tm));
	ts = calloc(m.n + 1, sizeof(*ts));
	if (tm == NULL || ts == NULL) {
		free(tm);
		free(ts);
		free(m.idx);
		imapd_tagged(c, "NO", "[SERVERBUG] out of memory");
		return;
	}
	arca_buf_init(&tmp, ARCA_MIME_MAX_HEADER_TOTAL);
	arca_buf_init(&out, 256u * 1024u * 1024u);
	mctx_init(&x, c);
	for (size_t i = 0; i < m.n && !nomem; i++) {
		mctx_at(&x, m.idx[i]);
		if (!fill_thread(&x, &tm[nt], &ts[nt], &tmp, &nomem)) {
			m.failed++;
			continue;
		}
		tm[nt].id = id_of(c, m.idx[i]);
		nt++;
	}
	mctx_free(&x);
	if (!nomem)
		st = d->references ? imapd_thread_references(tm, nt, &out) :
		                     imapd_thread_orderedsubject(tm, nt, &out);
	if (!nomem && st == ARCA_OK) {
		warn_unreadable(c, &m);
		/* RFC 5256: "THREAD" [SP 1*thread-list]: no space when nothing matched */
		imapd_printf(c, out.len > 0 ? "* THREAD " : "* THREAD");
		for (size_t off = 0; off < out.len; off += FLUSH_AT) {
			size_t k = out.len - off < FLUSH_AT ? out.len - off : FLUSH_AT;
			imapd_write(c, out.data + off, k);
			maybe_flush(c);
		}
		imapd_printf(c, "\r\n");
	}
	for (size_t i = 0; i < nt; i++) {
		free(ts[i].msgid);
		free_ids(ts[i].refs, ts[i].nrefs);
		free(ts[i].subject);
	}
	free(tm);
	free(ts);
	free(m.idx);
	arca_buf_free(&tmp);
	arca_buf_free(&out);
	if (nomem || st != ARCA_OK)
		imapd_tagged(c, "NO", "[SERVERBUG] %s",
		             st == ARCA_ERR_LIMIT ? "the thread list is too long" : "out of memory");
	else
		imapd_tagged(c, "OK", "%sTHREAD completed", c->uid ? "UID " : "");
}

void imapd_cmd_thread(imapd_cmd *c)
{
	search_data *d = new_data(c, CMD_THREAD);
	const char *alg;
	if (d == NULL)
		return;
	alg = imapd_arg_string(c, NULL);
	if (alg == NULL) {
		imapd_tagged(c, "BAD", "THREAD needs an algorithm, a charset and search keys");
		return;
	}
	if (strcasecmp(alg, "REFERENCES") == 0) {
		d->references = true;
	} else if (strcasecmp(alg, "ORDEREDSUBJECT") != 0) {
		imapd_tagged(c, "BAD", "unknown THREAD algorithm %.64s (REFERENCES, ORDEREDSUBJECT)", alg);
		return;
	}
	if (!parse_program(c, d, true))
		return;
	c->work = thread_work;
	c->next = IMAPD_WORKER;
}

/* Full-text index of one archive within one store: one SQLite database with a contentless
 * FTS5 table plus a small docs table (date, size, from, subject; no text: snippets are cut
 * from the message itself by the caller with arca_index_snippet)
 * and doc-folder memberships. Keeping one index per (store, archive) makes search latency
 * independent of other archives' sizes. FTS5 rowids are "sort keys" that ascend with the
 * message date, so newest-first is `ORDER BY rowid DESC` (cheap, see DESIGN.md §2). */
#ifndef ARCA_INDEX_INDEX_H
#define ARCA_INDEX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/query.h"
#include "lib/error.h"
#include "mime/mime.h"

typedef struct arca_index arca_index;

enum { ARCA_INDEX_READONLY = 1, ARCA_INDEX_CREATE = 2 };

arca_status arca_index_open(const char *path, int flags, arca_index **out, arca_error *err);
void arca_index_close(arca_index **ix);

/* Writes happen inside a transaction; commit records the store batch number indexed. */
arca_status arca_index_begin(arca_index *ix, arca_error *err);
arca_status arca_index_commit(arca_index *ix, uint64_t batch, arca_error *err);
void arca_index_rollback(arca_index *ix);
/* Highest store batch fully indexed (0 for a new index). */
uint64_t arca_index_last_batch(arca_index *ix);

/* What IMAP SEARCH reads of a message (arca_imap_msg_header_text / arca_imap_msg_text), where
 * the fts columns, filled from the MIME reader's fields, may lack words of it. Kept as word
 * sets (no positions) so that IMAP's text keys find every message they match. */
/* Header fields by fts column, for arca_index_xtext.fields */
enum {
	ARCA_INDEX_X_SUBJECT, /* Subject */
	ARCA_INDEX_X_FROM,    /* From, Sender, Reply-To */
	ARCA_INDEX_X_TO,
	ARCA_INDEX_X_CC,
	ARCA_INDEX_X_BCC,
	ARCA_INDEX_X_MSGID, /* Message-ID, In-Reply-To, References */
	ARCA_INDEX_X_FIELDS
};

typedef struct {
	char *headers; /* every top-level field as "Name: value\n"; NULL: not known */
	size_t headers_len;
	/* the decoded values of the fields each header column holds ("\n" between); NULL: none */
	char *fields[ARCA_INDEX_X_FIELDS];
	size_t fields_len[ARCA_INDEX_X_FIELDS];
	char *body; /* the text of every text part, as IMAP reads it; NULL: not known (then the document
	             * is a candidate of every key that needs it) */
	size_t body_len;
} arca_index_xtext;

void arca_index_xtext_free(arca_index_xtext *x);

typedef struct {
	uint64_t msg_id;   /* store-local message id */
	uint32_t folder_id;
	int64_t date;      /* message date; if ARCA_MIME_DATE_NONE the caller passes archive time */
	uint64_t size;
	const arca_mime_info *info;
	const arca_index_xtext *x; /* NULL: none (the document is then a candidate of every IMAP text
	                            * search that needs it) */
} arca_index_doc;

/* Adds a document (idempotent per msg_id: a second add only adds the folder membership). */
arca_status arca_index_add(arca_index *ix, const arca_index_doc *doc, arca_error *err);
/* Records that an already indexed message is also in folder_id. ARCA_ERR_NOTFOUND if the
 * message is not indexed yet. */
arca_status arca_index_add_folder(arca_index *ix, uint64_t msg_id, uint32_t folder_id,
                                  arca_error *err);
bool arca_index_has(arca_index *ix, uint64_t msg_id);
/* Empties the index (for rebuild). */
arca_status arca_index_clear(arca_index *ix, arca_error *err);

typedef enum { ARCA_ORDER_NEWEST = 0, ARCA_ORDER_RELEVANCE = 1 } arca_order;

/* Relevance ranks only the newest ARCA_RELEVANCE_WINDOW matches, with BM25 term statistics
 * taken from that window, which bounds its cost (docs/ARCHITECTURE.md). */
#define ARCA_RELEVANCE_WINDOW 2000

typedef struct {
	arca_order order;
	size_t limit;              /* hits wanted (offset + page size when merging) */
	const uint32_t *folder_ids; /* restrict to these folders when n_folder_ids > 0 */
	size_t n_folder_ids;
	bool want_snippets;
} arca_search_opts;

typedef struct {
	uint64_t msg_id;
	int64_t sortkey;
	int64_t date;
	uint64_t size;
	double rank;      /* bm25 (lower is better) when ordered by relevance, else 0 */
	char *from;
	char *subject;
	char *snippet;    /* NULL: the caller cuts it from the message (arca_index_snippet) */
	uint32_t *folders; /* folder ids this message is in (within this archive) */
	size_t n_folders;
} arca_hit;

typedef struct {
	arca_hit *hits;
	size_t n;
	uint64_t total; /* number of matches if cheaply known, else UINT64_MAX */
} arca_hits;

/* Appends up to opts->limit hits, in the requested order, to out. */
arca_status arca_index_search(arca_index *ix, const arca_query *q, const arca_search_opts *opts,
                              arca_hits *out, arca_error *err);
void arca_hits_free(arca_hits *h);

/* A snippet of text (e.g. a message's body text) around the first match of q's words, with
 * matches marked as [[word]]; the start of the text if nothing matches. Caller frees; NULL
 * only when out of memory. Search hits carry snippet == NULL; the instance fills it from the
 * message itself. */
char *arca_index_snippet(const arca_query *q, const char *text, size_t len);

/* Document count and database bytes. */
arca_status arca_index_stats(arca_index *ix, uint64_t *docs, arca_error *err);
/* Size of the database file in bytes (pages in use and free; excludes the WAL). */
arca_status arca_index_db_bytes(arca_index *ix, uint64_t *bytes, arca_error *err);

/* ---- IMAP SEARCH support ---- */

/* Fields of a document, for arca_index_imap_words. */
enum {
	ARCA_INDEX_F_SUBJECT = 1u << 0,
	ARCA_INDEX_F_FROM = 1u << 1, /* From, Sender and Reply-To (addresses as parsed) */
	ARCA_INDEX_F_TO = 1u << 2,
	ARCA_INDEX_F_CC = 1u << 3,
	ARCA_INDEX_F_BCC = 1u << 4,
	ARCA_INDEX_F_BODY = 1u << 5,       /* text of the body parts (one per alternative) */
	ARCA_INDEX_F_ATTACHMENT = 1u << 6, /* text of text attachments and attached messages */
	ARCA_INDEX_F_FILENAME = 1u << 7,
	ARCA_INDEX_F_MSGID = 1u << 8, /* Message-ID, In-Reply-To, References */
	ARCA_INDEX_F_ALL = (1u << 9) - 1,
	/* the columns that hold header fields: with F_XHDR, every word of every field */
	ARCA_INDEX_F_HEADERS = ARCA_INDEX_F_SUBJECT | ARCA_INDEX_F_FROM | ARCA_INDEX_F_TO |
	                       ARCA_INDEX_F_CC | ARCA_INDEX_F_BCC | ARCA_INDEX_F_MSGID,
	/* the words of arca_index_xtext.headers that the F_HEADERS columns lack */
	ARCA_INDEX_F_XHDR = 1u << 9,
	/* the words of arca_index_xtext.body (where kept) that F_BODY and F_ATTACHMENT lack */
	ARCA_INDEX_F_XBODY = 1u << 10,
	/* for each of F_HEADERS asked: the words of arca_index_xtext.fields that its column lacks */
	ARCA_INDEX_F_XFIELD = 1u << 11,
};

/* Message ids (ascending; caller frees *ids) of the documents of folder_id that may contain
 * text[0..len) as a case-insensitive substring of what the fields hold. Never misses one:
 * the result holds every document whose field text (as the tokenizer sees it: case and
 * diacritics folded) contains every word of text, the first also inside a longer word
 * ("oba" in "foobar") unless text starts with a non-word character, the last also as the start
 * of a longer word unless text ends after it; plus, when F_XHDR, F_XBODY or F_XFIELD is asked, every
 * document indexed without them (arca_index_doc.x NULL, or an index of schema version 2).
 * The caller checks each against the message. Words may be found in different fields, and
 * only the first 8 words are looked up, so the result is a superset. ARCA_ERR_INVALID when the
 * index cannot narrow the search down: text holds no word (punctuation only), or its first
 * word is found inside more than a few hundred distinct longer words. */
arca_status arca_index_imap_words(arca_index *ix, uint32_t folder_id, const char *text, size_t len,
                                  unsigned fields, uint64_t **ids, size_t *n, arca_error *err);
/* Message ids (ascending; caller frees *ids) of every document of folder_id in the index. */
arca_status arca_index_imap_folder(arca_index *ix, uint32_t folder_id, uint64_t **ids, size_t *n,
                                   arca_error *err);

#endif

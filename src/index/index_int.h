/* Inside the index module: the handle and the helpers its files share (index.c: schema,
 * writes, the archive's own search; imap.c: IMAP SEARCH support). */
#ifndef ARCA_INDEX_INDEX_INT_H
#define ARCA_INDEX_INDEX_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>
#include <zstd.h>

#include "index/index.h"
#include "lib/buf.h"

/* Search statement shapes, cached per handle (bit set). */
enum {
	SHAPE_FTS = 1,
	SHAPE_SIZE = 2,
	SHAPE_FOLDER = 4,
	SHAPE_RANK = 8,
	SHAPE_COUNT = 16,
};

/* docs.flags */
enum {
	DOC_HAS_ATTACHMENT = 1,
	/* its words are in xhdr, xfield and xbody (as far as fts lacks them): imap.c. (Bit 2 was an
	 * earlier development state whose xbody was partial: such documents count as without.) */
	DOC_XTEXT = 4,
};

/* The tables of IMAP SEARCH's candidate lookups (imap.c), in this order. */
enum { IX_T_FTS, IX_T_XHDR, IX_T_XBODY, IX_T_XFIELD, IX_T_COUNT };

struct arca_index {
	sqlite3 *db;
	char *path;
	bool readonly;
	bool in_txn;
	bool txn_failed; /* a write in the open transaction failed: only rollback is allowed */
	int version;     /* schema version of the file (2 has no xhdr/xbody) */
	uint64_t last_batch;
	sqlite3_stmt *st_find_msg;
	sqlite3_stmt *st_key_taken;
	sqlite3_stmt *st_ins_doc;
	sqlite3_stmt *st_ins_fts;
	sqlite3_stmt *st_ins_x[IX_T_COUNT]; /* [IX_T_XHDR], [IX_T_XBODY], [IX_T_XFIELD] */
	sqlite3_stmt *st_ins_folder;
	sqlite3_stmt *st_set_folders;
	sqlite3_stmt *st_get_doc;
	sqlite3_stmt *st_set_batch;
	sqlite3_stmt *search[SHAPE_COUNT];
	sqlite3_stmt *st_imap_q[IX_T_COUNT]; /* IMAP SEARCH: matches within one folder */
	sqlite3_stmt *st_imap_folder;        /* IMAP SEARCH: documents of one folder */
	sqlite3_stmt *st_imap_plain;         /* ... of them without DOC_XTEXT */
	sqlite3_stmt *st_imap_newer;         /* ... of them above a message id */
	sqlite3_stmt *st_imap_state;         /* last_batch, docs, max msg_id as stored now */
	fts5_api *fts5;                      /* for the tokenizer (imap.c) */
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
};

arca_status ix_db_status(int rc);
arca_status ix_db_fail(arca_index *ix, arca_error *err, int rc, const char *what);
/* Prepares a statement on first use and resets it for reuse afterwards. */
int ix_prep(arca_index *ix, sqlite3_stmt **st, const char *sql);
int ix_exec(arca_index *ix, const char *sql);
/* Appends to out, separated by spaces and each once, the words (as the tokenizer folds them) of
 * text[0..len) that none of have[0..nhave) holds: what xhdr and xbody keep beside fts. */
arca_status ix_x_words(arca_index *ix, const char *const *have, const size_t *have_len, size_t nhave,
                       const char *text, size_t len, arca_buf *out);
/* Finalizes imap.c's statements. */
void ix_imap_finalize(arca_index *ix);

#endif

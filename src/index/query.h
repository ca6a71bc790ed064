/* The search query language (docs/search.md): words, "phrases", prefix*, AND / OR / NOT / -,
 * parentheses; field terms from: to: cc: bcc: subject: body: attachment: filename:
 * message-id:; after: / before: (YYYY-MM-DD); larger: / smaller: (bytes, with k/m/g
 * suffixes); has:attachment; folder:; archive:. Parsed into a compiled query that the index
 * turns into an FTS5 MATCH expression plus range filters. */
#ifndef ARCA_INDEX_QUERY_H
#define ARCA_INDEX_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

typedef struct arca_query arca_query;

/* Syntax errors give ARCA_ERR_SYNTAX with a message naming the position and the problem,
 * e.g. "column 7: unbalanced parenthesis". */
arca_status arca_query_parse(const char *text, arca_query **out, arca_error *err);
void arca_query_free(arca_query **q);

/* The FTS5 MATCH expression, or NULL when the query has no text terms (only filters). */
const char *arca_query_fts(const arca_query *q);
/* Date range as seconds since epoch: after is inclusive (start of day, UTC), before
 * exclusive (start of that day). INT64_MIN / INT64_MAX when unset. */
int64_t arca_query_after(const arca_query *q);
int64_t arca_query_before(const arca_query *q);
/* Size range in bytes: min inclusive (larger:N means size > N), max exclusive. */
uint64_t arca_query_size_min(const arca_query *q); /* 0 when unset */
uint64_t arca_query_size_max(const arca_query *q); /* UINT64_MAX when unset */
int arca_query_has_attachment(const arca_query *q); /* 1 if has:attachment given */
/* folder: and archive: values (ANDed scope restrictions; several archive: values are ORed,
 * several folder: values are ORed). */
size_t arca_query_n_folders(const arca_query *q);
const char *arca_query_folder(const arca_query *q, size_t i);
size_t arca_query_n_archives(const arca_query *q);
const char *arca_query_archive(const arca_query *q, size_t i);
/* Plain words and phrases of the query (without field names or operators), for marking
 * matches in snippets. */
size_t arca_query_n_highlights(const arca_query *q);
const char *arca_query_highlight(const arca_query *q, size_t i);
/* True if highlight i was a prefix search (word*): match words starting with it. */
bool arca_query_highlight_is_prefix(const arca_query *q, size_t i);

#endif

/* Small Unicode helpers shared by the query parser and the snippet maker (internal to
 * src/index). They approximate what FTS5's "unicode61 remove_diacritics 2" tokenizer treats
 * as token characters and how it folds case and diacritics, closely enough for deciding
 * whether a query word has any searchable characters and for marking matches in snippets. */
#ifndef ARCA_INDEX_TEXT_H
#define ARCA_INDEX_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s[*i] and advances *i. Invalid or truncated sequences decode
 * as U+FFFD and advance by one byte. */
uint32_t arca_index_utf8_next(const char *s, size_t len, size_t *i);
/* True if s[0..len) is valid UTF-8; otherwise *bad_at (if non-NULL) gets the byte offset. */
bool arca_index_utf8_valid(const char *s, size_t len, size_t *bad_at);
/* Letters, digits and other characters the tokenizer keeps inside words. */
bool arca_index_is_token_char(uint32_t cp);
/* Lower-case and strip diacritics from Latin letters; other characters lower-cased where
 * simple (Greek, Cyrillic) or returned unchanged. */
uint32_t arca_index_fold_char(uint32_t cp);

#endif

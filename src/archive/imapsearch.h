/* What the full-text indexes know about a folder, for the IMAP server's SEARCH: which of the
 * folder's messages an index holds, and which of them may contain a text (candidates the
 * caller checks against the messages themselves; see arca_index_imap_words). Each call
 * answers from the index of one (store, archive) as it is now; an index may lag its store
 * (an import is still indexing), so a message the index does not hold must be checked by
 * reading it. */
#ifndef ARCA_ARCHIVE_IMAPSEARCH_H
#define ARCA_ARCHIVE_IMAPSEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "archive/instance.h"
#include "index/index.h"

/* Store-local message ids (ascending; caller frees *ids) of folder_id's messages in the index
 * of (store_id, archive_id). ARCA_ERR_NOTFOUND if that index does not exist (yet) or the store
 * is not open. */
arca_status arca_instance_imap_indexed(arca_instance *in, uint32_t store_id, uint32_t archive_id,
                                       uint32_t folder_id, uint64_t **ids, size_t *n,
                                       arca_error *err);
/* Those that may contain text[0..len) in one of fields (ARCA_INDEX_F_*), as
 * arca_index_imap_words. ARCA_ERR_NOTFOUND as above; ARCA_ERR_INVALID if text has no word. */
arca_status arca_instance_imap_words(arca_instance *in, uint32_t store_id, uint32_t archive_id,
                                     uint32_t folder_id, const char *text, size_t len,
                                     unsigned fields, uint64_t **ids, size_t *n, arca_error *err);

#endif

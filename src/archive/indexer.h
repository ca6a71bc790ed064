/* The ingest pipeline's second stage: a thread that feeds parsed messages into the FTS5
 * indexes while the ingest thread reads, hashes, compresses, encrypts and parses the next
 * ones (indexing is the ingest bottleneck, DESIGN.md §2). The index is derived data: the
 * store commit is what makes a batch durable; index commits follow it in the same order, and
 * an index that fails is left behind to be caught up on the next writable open. */
#ifndef ARCA_ARCHIVE_INDEXER_H
#define ARCA_ARCHIVE_INDEXER_H

#include <stdint.h>

#include "index/index.h"
#include "lib/error.h"
#include "mime/mime.h"

typedef struct inst_indexer inst_indexer;

arca_status inst_indexer_start(inst_indexer **out, arca_error *err);
/* Queues a document; takes ownership of info and of x's buffers (x may be NULL). Blocks while
 * the queue is full. */
void inst_indexer_doc(inst_indexer *w, arca_index *ix, uint64_t msg_id, uint32_t folder_id,
                      int64_t date, uint64_t size, arca_mime_info *info, arca_index_xtext *x);
/* Queues "msg_id is also in folder_id". */
void inst_indexer_folder(inst_indexer *w, arca_index *ix, uint64_t msg_id, uint32_t folder_id);
/* Queues a commit of every index written since the last commit/rollback, as store batch. */
void inst_indexer_commit(inst_indexer *w, uint64_t batch);
/* Queues a rollback of every index written since the last commit. */
void inst_indexer_rollback(inst_indexer *w);
/* Waits until every queued job is done. */
void inst_indexer_sync(inst_indexer *w);
/* Drains the queue, stops the thread, frees. */
void inst_indexer_stop(inst_indexer **w);

#endif

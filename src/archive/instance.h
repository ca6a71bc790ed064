/* An instance: one customer's archive. The base directory holds the instance database
 * (archives = one per user, each a folder tree; stores; settings), wrapped key material
 * only, and the archive stores. This module ties the store, index, MIME and source modules
 * together: ingest, search across stores, retrieval, export, statistics and maintenance. */
#ifndef ARCA_ARCHIVE_INSTANCE_H
#define ARCA_ARCHIVE_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>

#include "index/index.h"
#include "lib/buf.h"
#include "lib/error.h"

typedef struct arca_instance arca_instance;

#define ARCA_DEFAULT_STORE_MAX 5000000u
#define ARCA_RECOVERY_KEY_TEXT 72 /* 64 hex digits + 7 dashes + NUL */

enum { ARCA_INSTANCE_READONLY = 1 };

/* Creates base dir + instance db + store 1 (current). Creates key_file (0600) if missing.
 * recovery_text receives the recovery key to show the operator once. */
arca_status arca_instance_init(const char *base, const char *key_file, uint64_t store_max,
                               char recovery_text[ARCA_RECOVERY_KEY_TEXT], arca_error *err);
/* Writes a new key file holding the instance key recovered with the recovery key. */
arca_status arca_instance_recover_key(const char *base, const char *recovery_text,
                                      const char *new_key_file, arca_error *err);
arca_status arca_instance_open(const char *base, const char *key_file, int flags,
                               arca_instance **out, arca_error *err);
void arca_instance_close(arca_instance **inst);

/* ---- archives and folders ---- */
arca_status arca_instance_archive_id(arca_instance *in, const char *name, bool create,
                                     uint32_t *id, arca_error *err);
arca_status arca_instance_folder_id(arca_instance *in, uint32_t archive_id, const char *path,
                                    bool create, uint32_t *id, arca_error *err);
typedef struct {
	uint32_t id;
	uint32_t archive_id;
	char *archive;
	char *path;
	uint64_t messages;
} arca_folder_info;
/* Lists folders (all archives if archive_id == 0), with message counts over all stores. */
arca_status arca_instance_folders(arca_instance *in, uint32_t archive_id, arca_folder_info **out,
                                  size_t *n, arca_error *err);
void arca_folder_infos_free(arca_folder_info *f, size_t n);

/* ---- stores ---- */
typedef enum {
	ARCA_STORE_DISABLED = 0,
	ARCA_STORE_WRITE_PROTECTED,
	ARCA_STORE_NORMAL,
	ARCA_STORE_CURRENT,
} arca_store_state;
const char *arca_store_state_name(arca_store_state s);
arca_status arca_store_state_parse(const char *name, arca_store_state *out);

typedef struct {
	uint32_t id;
	char *name;
	arca_store_state state;
	char *meta_path, *content_path, *index_path; /* as configured */
	uint64_t messages, memberships, raw_bytes, stored_bytes, meta_bytes, index_bytes;
	bool stats_valid; /* false if the store could not be opened (e.g. disabled) */
} arca_store_info;
arca_status arca_instance_stores(arca_instance *in, arca_store_info **out, size_t *n,
                                 arca_error *err);
void arca_store_infos_free(arca_store_info *s, size_t n);
/* Paths may be NULL for the defaults (~/stores/<id>/...). */
arca_status arca_instance_store_create(arca_instance *in, const char *name, const char *meta_dir,
                                       const char *content_dir, const char *index_dir,
                                       bool make_current, uint32_t *id, arca_error *err);
arca_status arca_instance_store_set_state(arca_instance *in, uint32_t id, arca_store_state st,
                                          arca_error *err);

/* ---- ingest ---- */
typedef struct arca_ingest arca_ingest;
typedef struct {
	uint64_t archived;        /* new folder memberships */
	uint64_t new_content;     /* of which stored as new content */
	uint64_t duplicates;      /* content already in the store (stored once) */
	uint64_t already_present; /* already in that folder: nothing added */
	uint64_t warnings;        /* archived, but MIME problems (indexed as far as parseable) */
	uint64_t errors;          /* not archived (unreadable, too large) */
	uint64_t bytes;           /* raw bytes read */
	uint64_t batches;         /* durable commits */
	uint64_t committed;       /* messages durably committed (archived + already_present) */
} arca_ingest_stats;

/* Called after each durable commit with the message ids of the batch. */
typedef struct {
	uint8_t sha[32];
	uint32_t store_id;
	uint64_t msg_id;
	bool is_new;
} arca_ingest_item;
typedef void (*arca_ingest_commit_cb)(void *ctx, const arca_ingest_item *items, size_t n);

arca_status arca_ingest_begin(arca_instance *in, size_t batch_size, arca_ingest_commit_cb cb,
                              void *ctx, arca_ingest **out, arca_error *err);
/* Adds one message; *warning receives a MIME warning text (static until next call) or NULL.
 * A returned error is about this message only unless it is NOSPACE/IO/DB, which are fatal. */
arca_status arca_ingest_add(arca_ingest *ing, const void *data, size_t len, uint32_t archive_id,
                            uint32_t folder_id, const char **warning, arca_error *err);
arca_status arca_ingest_commit(arca_ingest *ing, arca_error *err);
/* Commits what is pending (unless it failed) and frees. */
arca_status arca_ingest_end(arca_ingest **ing, arca_error *err);
const arca_ingest_stats *arca_ingest_get_stats(const arca_ingest *ing);

/* ---- retrieval, search ---- */
/* Message ids are "STORE:N". */
arca_status arca_msgid_parse(const char *text, uint32_t *store_id, uint64_t *msg_id);
arca_status arca_instance_get(arca_instance *in, uint32_t store_id, uint64_t msg_id, arca_buf *out,
                              arca_error *err);

typedef struct {
	uint32_t store_id;
	uint64_t msg_id;
	int64_t date;
	uint64_t size;
	double rank;
	char *from, *subject, *snippet;
	char **folders; /* "archive/folder" */
	size_t n_folders;
} arca_result;
typedef struct {
	arca_result *items;
	size_t n;
} arca_results;

typedef struct {
	const char *const *archives; /* restrict to these archive names (n_archives > 0) */
	size_t n_archives;
	arca_order order;
	size_t offset, limit;
	bool snippets;
} arca_instance_search_opts;
arca_status arca_instance_search(arca_instance *in, const char *query,
                                 const arca_instance_search_opts *opts, arca_results *out,
                                 arca_error *err);
void arca_results_free(arca_results *r);

/* Calls cb for every distinct message of a folder (folder_id != 0) or archive, in order. */
typedef arca_status (*arca_instance_msg_cb)(void *ctx, uint32_t store_id, uint64_t msg_id);
arca_status arca_instance_each_message(arca_instance *in, uint32_t archive_id, uint32_t folder_id,
                                       arca_instance_msg_cb cb, void *ctx, arca_error *err);

/* ---- statistics and maintenance ---- */
typedef struct {
	uint32_t id;
	char *name;
	uint64_t messages, raw_bytes;
	uint64_t stored_bytes; /* container bytes of its messages (shared ones count in each) */
	uint64_t index_bytes;  /* its search indexes, all stores */
} arca_archive_info;
arca_status arca_instance_archives(arca_instance *in, arca_archive_info **out, size_t *n,
                                   arca_error *err);
void arca_archive_infos_free(arca_archive_info *a, size_t n);

typedef void (*arca_damage_cb)(void *ctx, uint32_t store_id, uint64_t msg_id, const char *reason);
/* store_id 0 = all enabled stores. */
arca_status arca_instance_verify(arca_instance *in, uint32_t store_id, arca_damage_cb cb, void *ctx,
                                 uint64_t *checked, uint64_t *damaged, arca_error *err);
arca_status arca_instance_recreate(arca_instance *in, uint32_t store_id, arca_damage_cb cb,
                                   void *ctx, uint64_t *messages, arca_error *err);
arca_status arca_instance_rebuild_index(arca_instance *in, uint32_t store_id, uint64_t *docs,
                                        arca_error *err);

#endif

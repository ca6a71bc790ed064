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
/* The archive called name (create: made if there is none). A name an archive had before a
 * rename stays that archive's: creating it again is ARCA_ERR_EXISTS. */
arca_status arca_instance_archive_id(arca_instance *in, const char *name, bool create,
                                     uint32_t *id, arca_error *err);
/* Renames an archive: its messages, folders, UIDs and index stay (they hang on its id); the old
 * name becomes an alias (recovery records written before carry it, and recreate resolves them
 * to this archive) that no other archive may take. NOTFOUND (no such archive), EXISTS (the
 * new name is taken, or another archive's old name), INVALID (a bad name). Renaming back to an
 * old name of the same archive is allowed. */
arca_status arca_instance_archive_rename(arca_instance *in, const char *old_name,
                                         const char *new_name, arca_error *err);
arca_status arca_instance_folder_id(arca_instance *in, uint32_t archive_id, const char *path,
                                    bool create, uint32_t *id, arca_error *err);
typedef struct {
	uint32_t id;
	uint32_t archive_id;
	char *archive;
	char *path;
	uint64_t messages;    /* memberships in all enabled stores */
	uint32_t uidvalidity; /* IMAP UIDVALIDITY (see "IMAP UIDs" below); 0: not known yet */
	uint32_t uid_next;    /* IMAP UIDNEXT, as arca_folder_view.uid_next; 0: not known yet */
} arca_folder_info;
/* Lists folders (all archives if archive_id == 0), with message counts over all stores. */
arca_status arca_instance_folders(arca_instance *in, uint32_t archive_id, arca_folder_info **out,
                                  size_t *n, arca_error *err);
void arca_folder_infos_free(arca_folder_info *f, size_t n);
/* The folder `path` of the archive named `archive`: ARCA_OK and *folder_id, or
 * ARCA_ERR_NOTFOUND. Creates nothing. */
arca_status arca_instance_folder_lookup(arca_instance *in, const char *archive, const char *path,
                                        uint32_t *folder_id, arca_error *err);
/* One folder as arca_instance_folders lists it; *out (one element) is freed with
 * arca_folder_infos_free(*out, 1). ARCA_ERR_NOTFOUND if there is no such folder. */
arca_status arca_instance_folder_get(arca_instance *in, uint32_t folder_id,
                                     arca_folder_info **out, arca_error *err);

/* ---- IMAP UIDs ----
 * Every membership of a folder has a UID (1 .. ARCA_UID_MAX = 2^32 - 2) given when the
 * membership is added, strictly ascending in the order memberships are added to the folder
 * (across all stores: rollover, a store made current again), never reused, and the same after
 * a restart. A duplicate (the message is already in the folder) gets none. Each folder has a
 * UIDVALIDITY (32-bit, nonzero) that changes only when UIDs of the folder had to be given
 * anew: a recreate that found memberships whose records carry no UID (written before store
 * format 5); it then grows (max(old + 1, time)). The instance database keeps per folder the
 * UIDVALIDITY and a high-water mark (every UID below it was given), raised after each durable
 * store commit; a new ingest starts each folder above that mark and above the highest UID of
 * the folder in every enabled store. One ingest (or recreate) per instance at a time: a
 * second one is refused (ARCA_ERR_STATE), so two writers can never give the same UID. */

typedef struct {
	uint32_t uid;
	uint32_t store_id;
	uint64_t msg_id;
} arca_folder_msg;

/* A folder as an IMAP mailbox: its committed memberships in all enabled stores, by UID. */
typedef struct {
	uint32_t folder_id;
	uint32_t archive_id;
	uint32_t uidvalidity;
	uint32_t uid_next;     /* UIDNEXT: every membership committed later has a UID >= this */
	size_t count;          /* entries in msgs (EXISTS); message sequence number = index + 1 */
	arca_folder_msg *msgs; /* sorted by uid (strictly ascending) */
	size_t cap;            /* allocated entries (private) */
} arca_folder_view;

/* Builds the view of folder_id (owned by the caller: arca_folder_view_free). Only committed
 * memberships, also while another handle or process imports: the view holds exactly those
 * with uid < uid_next, and whatever is committed later gets a UID >= uid_next. Cost: one
 * range scan of the folder's key per enabled store (and a few index seeks); for a
 * read-only handle the store list is re-read first (stores created or disabled meanwhile).
 * ARCA_ERR_NOTFOUND: no such folder; ARCA_ERR_STATE: a store or the instance database has
 * not been upgraded to UIDs yet (a writable open does that). */
arca_status arca_instance_folder_view(arca_instance *in, uint32_t folder_id,
                                      arca_folder_view **out, arca_error *err);
/* Appends the memberships committed since (uid >= v->uid_next) and advances v->uid_next;
 * *added (may be NULL) gets their number. Cheap: one seek per store (IMAP NOOP/IDLE).
 * Memberships that disappear (a store disabled) stay in v until it is built again.
 * ARCA_ERR_STATE if the folder's UIDVALIDITY changed (v is then unchanged: build anew). */
arca_status arca_folder_view_refresh(arca_instance *in, arca_folder_view *v, size_t *added,
                                     arca_error *err);
/* Index of uid in v->msgs, or -1 (binary search). */
long arca_folder_view_find(const arca_folder_view *v, uint32_t uid);
void arca_folder_view_free(arca_folder_view **v);

typedef struct {
	uint64_t size;        /* raw bytes (RFC822.SIZE) */
	int64_t archive_time; /* seconds since the epoch, when it was archived (INTERNALDATE) */
} arca_message_info;
/* Size and archive time of a message, from the store's metadata (no container read). */
arca_status arca_instance_msginfo(arca_instance *in, uint32_t store_id, uint64_t msg_id,
                                  arca_message_info *out, arca_error *err);
/* The same for n messages of a view (e.g. FETCH 1:* RFC822.SIZE INTERNALDATE): out[i] for
 * msgs[i]; one store snapshot per store. */
arca_status arca_instance_msginfo_many(arca_instance *in, const arca_folder_msg *msgs, size_t n,
                                       arca_message_info *out, arca_error *err);

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

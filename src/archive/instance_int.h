/* Internal state of an instance, shared by the files of src/archive/ only. */
#ifndef ARCA_ARCHIVE_INSTANCE_INT_H
#define ARCA_ARCHIVE_INSTANCE_INT_H

#include <sqlite3.h>

#include "archive/instance.h"
#include "crypto/crypto.h"
#include "index/index.h"
#include "lib/limits.h"
#include "mime/mime.h"
#include "store/store.h"

typedef struct {
	uint32_t archive_id;
	arca_index *ix;
	bool writable;
	bool in_txn;
} inst_index;

typedef struct {
	uint32_t id;
	char *name;
	arca_store_state state;
	char *meta_cfg, *content_cfg, *index_cfg;
	char meta_db[ARCA_PATH_MAX];
	char content_dir[ARCA_PATH_MAX];
	char index_dir[ARCA_PATH_MAX];
	uint32_t key_id;
	uint8_t key[ARCA_KEY_LEN];
	bool key_ok;
	arca_store *store;
	bool store_writable;
	uint64_t content_count; /* committed content records, for rollover */
	inst_index *ixs;
	size_t n_ix, cap_ix;
} inst_store;

struct arca_instance {
	char base[ARCA_PATH_MAX];
	sqlite3 *db;
	uint8_t key[ARCA_KEY_LEN];
	int flags;
	uint64_t store_max;
	inst_store *stores;
	size_t n_stores;
	bool rebuilding; /* rebuild walks every membership itself: no catch-up on index open */
	sqlite3_stmt *st_folder_name; /* hit lists name every folder of every hit: prepare once */
	bool has_uids;     /* folders has uidvalidity and uid_next (false: an old read-only db) */
	int uid_lock_fd;   /* BASE/ingest.lock while held (-1), see inst_uid_lock */
	unsigned uid_lock_depth;
};

inst_store *inst_store_by_id(arca_instance *in, uint32_t id);
/* Read-only handle: re-reads the store list (stores created, states changed by another
 * process); handles of stores that are gone or disabled are closed. */
arca_status inst_stores_sync(arca_instance *in, arca_error *err);
/* Opens the store handle if needed (writable unless the instance or store forbids it). */
arca_status inst_store_open(arca_instance *in, inst_store *s, bool writable, arca_error *err);
void inst_store_close(inst_store *s);
/* Index handle of (store, archive); NULL with ARCA_ERR_NOTFOUND if it does not exist and
 * !create. A writable index is caught up with the store before it is returned. */
arca_status inst_index_get(arca_instance *in, inst_store *s, uint32_t archive_id, bool writable,
                           arca_index **out, arca_error *err);
/* Index path of (store, archive). */
arca_status inst_index_path(inst_store *s, uint32_t archive_id, char *out, size_t outsz);
/* Parses a stored message and adds it to ix (or only the folder if already indexed). A
 * damaged record is logged and skipped (ARCA_OK): verify reports it. */
arca_status inst_index_message(arca_instance *in, inst_store *s, arca_index *ix, uint64_t msg_id,
                               uint32_t folder_id, arca_buf *scratch, arca_error *err);
arca_status inst_index_doc(arca_index *ix, uint64_t msg_id, uint32_t folder_id, const void *data,
                           size_t len, int64_t archive_time, const char **warning,
                           arca_error *err);
arca_status inst_archive_name(arca_instance *in, uint32_t id, char *out, size_t outsz);
/* The archive a recovery record's archive name means: the archive of that name, else the one
 * that had it before a rename, else a new one (recreate). */
arca_status inst_archive_for_record(arca_instance *in, const char *name, uint32_t *id,
                                    arca_error *err);
arca_status inst_folder_name(arca_instance *in, uint32_t id, char *archive, size_t asz, char *path,
                             size_t psz);
arca_status inst_db_err(arca_instance *in, arca_error *err, const char *what);

/* ---- uids.c: IMAP UIDs (instance.h, "IMAP UIDs") ---- */

/* Adds folders.uidvalidity / uid_next to an older instance database (writable), sets
 * in->has_uids. */
arca_status inst_uid_db_upgrade(arca_instance *in, arca_error *err);
/* The instance-wide lock of UID assignment (BASE/ingest.lock): one ingest or recreate at a
 * time. Nested calls on one handle count; ARCA_ERR_STATE if another handle holds it. */
arca_status inst_uid_lock(arca_instance *in, arca_error *err);
void inst_uid_unlock(arca_instance *in);
/* The first UID a new membership of folder_id may get: max(high-water, highest UID of the
 * folder + 1 in every enabled store but exclude_store). */
arca_status inst_uid_next(arca_instance *in, uint32_t folder_id, uint32_t exclude_store,
                          uint32_t *next, arca_error *err);
/* Raises the high-water of folder ids[i] to next[i] (never lowers it), in one transaction. */
arca_status inst_uid_raise(arca_instance *in, const uint32_t *ids, const uint32_t *next, size_t n,
                           arca_error *err);
/* Raises the high-water of every folder to one above its highest UID in store s. */
arca_status inst_uid_fold_store(arca_instance *in, inst_store *s, arca_error *err);
/* Opens store s writable (also if write-protected) if its metadata predates UIDs: the upgrade
 * numbers each folder's memberships above the high-water mark and the other stores. */
arca_status inst_store_upgrade(arca_instance *in, inst_store *s, arca_error *err);
/* Writable open: upgrades every enabled store that predates UIDs, in store id order (so older
 * stores get the lower UIDs). Failures are logged. */
void inst_upgrade_stores(arca_instance *in);
/* Hooks giving a format-4 upgrade (or a recreate) of store exclude_store its first UIDs. */
typedef struct {
	arca_instance *in;
	uint32_t store_id;
	uint32_t *bumped; /* recreate: folders whose UIDs were given anew */
	size_t nbumped, capbumped;
	bool nomem;
} inst_uid_ctx;
void inst_uid_hooks(inst_uid_ctx *c, arca_instance *in, uint32_t store_id, bool recreate,
                    arca_store_uid_hooks *h);
/* UIDVALIDITY and UIDNEXT of a folder (as a view built now would have them). */
arca_status inst_uid_status(arca_instance *in, uint32_t folder_id, uint32_t *validity,
                            uint32_t *uid_next, arca_error *err);
/* After a recreate: each folder in c->bumped gets a new, higher UIDVALIDITY. */
arca_status inst_uid_bump(inst_uid_ctx *c, arca_error *err);

#endif

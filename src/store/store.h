/* An archive store: append-only encrypted content containers plus a SQLite metadata
 * database. Content is deduplicated by SHA-256 of the exact bytes, zstd-compressed and
 * AES-256-GCM encrypted with the store's data key. Every record is self-describing
 * (a recovery record) so the metadata database can be rebuilt from the containers alone.
 *
 * Writes are batched: arca_store_add() stages a message (its record is appended to the
 * container but is not yet durable); arca_store_commit() makes the whole batch durable
 * (fdatasync of containers, then the metadata transaction). Only after commit returns
 * ARCA_OK may a caller report the batch's messages as archived. A crash before that
 * loses only the staged batch; on the next open, container bytes beyond the committed
 * length are truncated away. If a write fails (e.g. disk full) the batch is rolled back
 * and the store stays consistent. */
#ifndef ARCA_STORE_STORE_H
#define ARCA_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "lib/buf.h"
#include "lib/error.h"

typedef struct arca_store arca_store;

/* IMAP UIDs: every membership (folder, message) has a UID, 1..ARCA_UID_MAX, unique within
 * its folder and ascending in the order memberships are added. Within a store the store
 * guarantees this itself; across the stores of an instance the caller assigns them
 * (arca_store_dest.uid). The largest UID leaves room for UIDNEXT = ARCA_UID_MAX + 1 in 32
 * bits. */
#define ARCA_UID_MAX 0xfffffffeu
/* The first metadata format with UIDs (arca_store_format, arca_store_meta_format). */
#define ARCA_STORE_FORMAT_UIDS 5

typedef struct {
	const char *meta_path;   /* metadata database file, e.g. BASE/stores/1/meta.db */
	const char *content_dir; /* directory of container files */
} arca_store_paths;

typedef struct {
	uint32_t archive_id;      /* instance-level ids, recorded in the metadata database; a */
	uint32_t folder_id;       /* folder belongs to one archive (always the same archive_id) */
	const char *archive_name; /* names, recorded in the recovery record */
	const char *folder_path;
	int64_t archive_time;     /* seconds since epoch */
	uint32_t uid;             /* UID for a new membership: 0 = one above the highest UID of
	                           * the folder in this store; otherwise at least that */
} arca_store_dest;

typedef struct {
	uint64_t msg_id;       /* store-local message id, 1, 2, 3, ... never reused */
	uint32_t uid;          /* UID of the membership (the existing one if !new_member) */
	bool new_content;      /* a new content record was written */
	bool new_member;       /* the folder did not yet contain the message */
	bool new_in_archive;   /* no folder of dest->archive_id contained the message before */
} arca_store_added;

/* UIDs for memberships that have none: a format-4 store upgraded by a writer's open (all its
 * memberships), a recreate from records written before format 5. */
typedef struct {
	/* The first UID to give folder_id's memberships without one (numbered from there in
	 * (batch, message_id) order; never below one above the folder's highest UID in the
	 * store). NULL: 1. A non-OK return fails the upgrade or recreate. */
	arca_status (*uid_base)(void *ctx, uint32_t folder_id, uint32_t *first_uid);
	/* Called after the upgrade or recreate succeeded, once per folder whose memberships got
	 * new UIDs (n of them). May be NULL. */
	void (*uids_assigned)(void *ctx, uint32_t folder_id, uint64_t n);
	void *ctx;
} arca_store_uid_hooks;

enum { ARCA_STORE_READONLY = 1 };

/* Creates an empty store (meta db + content dir). Fails with ARCA_ERR_EXISTS if present. */
arca_status arca_store_create(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                              uint32_t key_id, arca_error *err);
/* Opens a store; truncates uncommitted container tails unless READONLY. A wrong key gives
 * ARCA_ERR_CRYPTO (checked against a key-check value in the metadata database). */
arca_status arca_store_open(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                            uint32_t key_id, int flags, arca_store **out, arca_error *err);
/* As arca_store_open; a writer upgrading a format-1..4 store takes the first UIDs from hooks
 * (may be NULL). */
arca_status arca_store_open_ex(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                               uint32_t key_id, int flags, const arca_store_uid_hooks *hooks,
                               arca_store **out, arca_error *err);
/* settings.format of the store's metadata database, read without opening the store. */
arca_status arca_store_meta_format(const arca_store_paths *paths, int *format, arca_error *err);
/* The format of an open store (after a writer's upgrade: the current one). A read-only handle
 * of a store older than format 5 has no UIDs (the UID functions give ARCA_ERR_STATE). */
int arca_store_format(const arca_store *s);
void arca_store_close(arca_store **store);

/* Looks up content by SHA-256: ARCA_OK and *msg_id, or ARCA_ERR_NOTFOUND. */
arca_status arca_store_lookup(arca_store *s, const uint8_t sha[ARCA_SHA256_LEN], uint64_t *msg_id);
/* Stages a message for dest (see header comment). sha is SHA-256 of data, computed by caller. */
arca_status arca_store_add(arca_store *s, const void *data, size_t len,
                           const uint8_t sha[ARCA_SHA256_LEN], const arca_store_dest *dest,
                           arca_store_added *out, arca_error *err);
/* Makes all staged messages durable; returns the batch number in *batch (may be NULL). */
arca_status arca_store_commit(arca_store *s, uint64_t *batch, arca_error *err);
/* Drops all staged messages. */
void arca_store_rollback(arca_store *s);
/* Number of batches committed so far (0 for a new store). */
uint64_t arca_store_last_batch(arca_store *s);

/* Reads a message back: decrypts, decompresses, checks SHA-256. Appends to out. */
arca_status arca_store_get(arca_store *s, uint64_t msg_id, arca_buf *out, arca_error *err);

typedef struct {
	uint64_t msg_id;
	uint64_t size;        /* raw bytes */
	uint64_t stored_size; /* record bytes in the container */
	int64_t archive_time;
	uint8_t sha[ARCA_SHA256_LEN];
} arca_store_msginfo;
arca_status arca_store_msginfo_get(arca_store *s, uint64_t msg_id, arca_store_msginfo *out,
                                   arca_error *err);
/* Many reads in one snapshot (a read transaction), e.g. msginfo of every message of a
 * folder: much cheaper than one snapshot per read. No-op on a writer with an open batch; no
 * arca_store_add until arca_store_read_end. */
arca_status arca_store_read_begin(arca_store *s, arca_error *err);
void arca_store_read_end(arca_store *s);

/* Callback iteration; a non-OK return from cb stops and is returned. */
typedef arca_status (*arca_store_member_cb)(void *ctx, uint64_t msg_id, uint32_t archive_id,
                                            uint32_t folder_id, uint64_t batch);
/* Memberships in msg_id order (with folder_id != 0: in UID order); folder_id == 0 means all
 * folders; archive_id == 0 all archives. */
arca_status arca_store_each_member(arca_store *s, uint32_t archive_id, uint32_t folder_id,
                                   arca_store_member_cb cb, void *ctx, arca_error *err);
/* Memberships of folder_id with from_uid <= uid, in UID order: (uid, msg_id). Only committed
 * memberships (on a writer's handle too), in one snapshot. A non-OK return from cb stops. */
typedef arca_status (*arca_store_uid_cb)(void *ctx, uint32_t uid, uint64_t msg_id);
arca_status arca_store_folder_uids(arca_store *s, uint32_t folder_id, uint32_t from_uid,
                                   arca_store_uid_cb cb, void *ctx, arca_error *err);
/* The highest committed UID of folder_id in this store (0: none). */
arca_status arca_store_folder_max_uid(arca_store *s, uint32_t folder_id, uint32_t *max_uid,
                                      arca_error *err);
/* The lowest committed UID of folder_id above after (0: none). */
arca_status arca_store_folder_uid_after(arca_store *s, uint32_t folder_id, uint32_t after,
                                        uint32_t *uid, arca_error *err);
/* cb(ctx, folder_id, highest committed UID) for every folder with memberships in the store,
 * in folder_id order. */
typedef arca_status (*arca_store_folder_uid_cb)(void *ctx, uint32_t folder_id, uint32_t max_uid);
arca_status arca_store_each_folder_max_uid(arca_store *s, arca_store_folder_uid_cb cb, void *ctx,
                                           arca_error *err);
/* Memberships with batch > after_batch (to catch an index up after a crash). */
arca_status arca_store_each_member_since(arca_store *s, uint64_t after_batch,
                                         arca_store_member_cb cb, void *ctx, arca_error *err);

typedef struct {
	uint64_t messages;     /* content records */
	uint64_t memberships;  /* (folder, message) pairs */
	uint64_t raw_bytes;    /* sum of message sizes */
	uint64_t stored_bytes; /* container bytes */
	uint64_t meta_bytes;   /* metadata database incl. WAL */
} arca_store_stats;
arca_status arca_store_stats_get(arca_store *s, arca_store_stats *out, arca_error *err);
/* Per archive: messages (distinct) and raw bytes in that archive. */
arca_status arca_store_archive_stats(arca_store *s, uint32_t archive_id, uint64_t *messages,
                                     uint64_t *raw_bytes, arca_error *err);
/* Per archive: container bytes of the messages in that archive (shared content counts in
 * every archive that holds it). */
arca_status arca_store_archive_stored(arca_store *s, uint32_t archive_id, uint64_t *stored_bytes,
                                      arca_error *err);
/* Per folder: message count. */
arca_status arca_store_folder_count(arca_store *s, uint32_t folder_id, uint64_t *messages,
                                    arca_error *err);

/* Verify: reads every record; checks header, decryption, decompression, SHA-256 and size,
 * and that metadata and containers agree (every message has a good record at its offset,
 * every links record listed in metadata is intact, every record in a container is known to
 * the metadata, every membership is held by a record). Never stops at the first problem:
 * cb is called once per damaged message (msg_id 0 for damage not tied to a known message,
 * e.g. an unknown record) with a reason. *damaged counts calls. */
typedef void (*arca_store_damage_cb)(void *ctx, uint64_t msg_id, const char *reason);
arca_status arca_store_verify(arca_store *s, arca_store_damage_cb cb, void *ctx, uint64_t *checked,
                              uint64_t *damaged, arca_error *err);

/* Recreate the metadata database from the containers alone (the old meta db, if any, is
 * moved aside to meta_path.old-<time>). resolve maps a recovery record's archive name and
 * folder path to instance ids (creating them if needed). Damaged records are reported via
 * damage_cb and skipped. Memberships keep the UIDs their records carry (format 5); those
 * whose records carry none (written before format 5), or whose UID another membership of the
 * folder already took, get new ones (arca_store_recreate_meta_ex: from uid_hooks). */
typedef arca_status (*arca_store_resolve_cb)(void *ctx, const char *archive_name,
                                             const char *folder_path, uint32_t *archive_id,
                                             uint32_t *folder_id);
arca_status arca_store_recreate_meta(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                                     uint32_t key_id, arca_store_resolve_cb resolve, void *rctx,
                                     arca_store_damage_cb damage_cb, void *dctx, uint64_t *messages,
                                     arca_error *err);
arca_status arca_store_recreate_meta_ex(const arca_store_paths *paths,
                                        const uint8_t key[ARCA_KEY_LEN], uint32_t key_id,
                                        arca_store_resolve_cb resolve, void *rctx,
                                        const arca_store_uid_hooks *uid_hooks,
                                        arca_store_damage_cb damage_cb, void *dctx,
                                        uint64_t *messages, arca_error *err);

/* Test hook: makes the next n-th container write or fdatasync fail with errno (e.g. ENOSPC).
 * n == 0 disables. Used by unit tests for fault injection. */
void arca_store_fault_inject(arca_store *s, unsigned n, int errnum);

#endif

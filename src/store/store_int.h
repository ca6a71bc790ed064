/* Internals of the store shared by store.c (API, write path), record.c (on-disk record
 * format), meta.c (SQLite schema) and recover.c (verify, recreate). Not a public header;
 * unit tests may include it for test hooks. The format is described in docs/storage-format.md. */
#ifndef ARCA_STORE_STORE_INT_H
#define ARCA_STORE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>
#include <zstd.h>

#include "lib/limits.h"
#include "store/store.h"

/* settings.format of the metadata database. 2 added the dicts table, 3 the links table, 4 the
 * dict_copies table and dicts.sha256 (every dictionary record written at least twice), 5 the
 * members.uid column (IMAP UIDs; members keyed by (folder_id, uid)); a format-1 to -4
 * database is still opened (read-only as is, a writer upgrades it in place). */
#define ARCA_STORE_FORMAT 5
#define ARCA_STORE_FORMAT_V1 1
#define ARCA_STORE_FORMAT_V2 2
#define ARCA_STORE_FORMAT_V3 3
#define ARCA_STORE_FORMAT_V4 4

#define ARCA_REC_MAGIC "ARC1"
/* Record version 2 added the dictionary id to the content inner plaintext and the dictionary
 * record type, version 3 the UID of the membership to the content inner plaintext and to every
 * links entry; version 1 and 2 records are still read. Writers write version 3 (a test hook
 * can make them write version 2). */
#define ARCA_REC_VERSION 3
#define ARCA_REC_VERSION_2 2
#define ARCA_REC_VERSION_1 1
#define ARCA_REC_CONTENT 1
#define ARCA_REC_LINKS 2
#define ARCA_REC_DICT 3
#define ARCA_REC_HDR_LEN 36 /* magic4 ver1 type1 rsv2 key_id4 body_len4 seq8 nonce12 */
#define ARCA_REC_OVERHEAD (ARCA_REC_HDR_LEN + ARCA_GCM_TAG_LEN)
/* Fixed part of the content inner plaintext: sha32 raw8 time8 msg8 batch8 arch4 fold4, since
 * version 2 dict4, since version 3 uid4. */
#define ARCA_REC_CONTENT_FIXED_V1 (32 + 8 + 8 + 8 + 8 + 4 + 4)
#define ARCA_REC_CONTENT_FIXED_V2 (ARCA_REC_CONTENT_FIXED_V1 + 4)
#define ARCA_REC_CONTENT_FIXED (ARCA_REC_CONTENT_FIXED_V2 + 4)
/* Dictionary record inner plaintext: dict_id4, then the zstd dictionary. */
#define ARCA_REC_DICT_FIXED 4
#define ARCA_DICT_MAX (1024u * 1024u)  /* largest dictionary a reader accepts */
#define ARCA_DICT_SIZE (112u * 1024u)  /* size of a trained dictionary */
#define ARCA_DICT_MIN_MSGS 1000        /* train once this many messages lack a dictionary */
#define ARCA_DICT_SAMPLE_MAX (64u * 1024u)         /* bytes taken from one message */
#define ARCA_DICT_SAMPLES_MAX (8u * 1024u * 1024u) /* bytes of samples in all */
#define ARCA_DICT_SAMPLE_MSG_MAX (1024u * 1024u)   /* larger messages are not sampled */
/* A links record is flushed when its raw entry list reaches this size, and no links record
 * may decompress to more than ARCA_REC_LINKS_MAX (bound for readers). */
#define ARCA_REC_LINKS_FLUSH (4u * 1024u * 1024u)
#define ARCA_REC_LINKS_MAX (64u * 1024u * 1024u)
/* Fixed part of a links entry: msg8 arch4 fold4, since version 3 uid4. */
#define ARCA_REC_LINK_FIXED_V2 (8 + 4 + 4)
#define ARCA_REC_LINK_FIXED (ARCA_REC_LINK_FIXED_V2 + 4)
#define ARCA_ZSTD_LEVEL 3
#define ARCA_STORE_CPATH (ARCA_PATH_MAX + 48) /* content_dir + "/" + container name */

typedef struct {
	uint8_t version;
	uint8_t type;
	uint32_t key_id;
	uint32_t body_len;
	uint64_t seq;
	uint8_t nonce[ARCA_GCM_NONCE_LEN];
} arca_rec_hdr;

/* Decoded content inner plaintext (pointers into the plaintext buffer). */
typedef struct {
	uint8_t sha[ARCA_SHA256_LEN];
	uint64_t raw_size;
	int64_t archive_time;
	uint64_t msg_id;
	uint64_t batch;
	uint32_t archive_id;
	uint32_t folder_id;
	uint32_t dict_id; /* 0: compressed without a dictionary (always 0 in version 1) */
	uint32_t uid;     /* UID of the first membership (0: not recorded, before version 3) */
	const char *archive_name;
	size_t archive_name_len;
	const char *folder_path;
	size_t folder_path_len;
	const uint8_t *payload; /* zstd frame */
	size_t payload_len;
} arca_rec_content;

typedef struct {
	uint64_t msg_id;
	uint32_t archive_id;
	uint32_t folder_id;
	uint32_t uid; /* 0: not recorded (before version 3) */
	const char *archive_name;
	size_t archive_name_len;
	const char *folder_path;
	size_t folder_path_len;
} arca_rec_link;

/* ---- record.c: pure encoding/decoding, no I/O ---- */

/* Largest body_len a reader accepts for a record type (0 for an unknown type). */
uint64_t arca_rec_body_max(uint8_t version, uint8_t type);
void arca_rec_hdr_encode(uint8_t out[ARCA_REC_HDR_LEN], const arca_rec_hdr *h);
/* Checks magic, version, type, reserved bytes and the body_len bound; *why on failure. */
bool arca_rec_hdr_decode(const uint8_t in[ARCA_REC_HDR_LEN], arca_rec_hdr *h, const char **why);
/* Encrypts plain into rec (reset first): header (record version `version`) || ciphertext ||
 * tag, fresh random nonce. */
arca_status arca_rec_seal(const uint8_t key[ARCA_KEY_LEN], uint32_t key_id, uint8_t version,
                          uint8_t type, uint64_t seq, const void *plain, size_t len, arca_buf *rec,
                          arca_error *err);
/* Authenticates and decrypts a whole record (rec_len = OVERHEAD + h->body_len) into plain
 * (reset first). ARCA_ERR_CRYPTO if authentication fails. */
arca_status arca_rec_open(const uint8_t key[ARCA_KEY_LEN], const arca_rec_hdr *h,
                          const uint8_t *rec, arca_buf *plain, arca_error *err);
/* Appends the content inner fields (without payload) in the layout of record version
 * `version` (2 or 3) to plain. */
arca_status arca_rec_content_encode(arca_buf *plain, const arca_rec_content *c, uint8_t version);
/* Parses the content inner plaintext of a record of the given header version. */
bool arca_rec_content_parse(const uint8_t *p, size_t len, uint8_t version, arca_rec_content *c,
                            const char **why);
/* Parses a dictionary inner plaintext of the record with header seq: checks the id and that
 * the bytes are a zstd dictionary; *dict points into p. */
bool arca_rec_dict_parse(const uint8_t *p, size_t len, uint64_t seq, const uint8_t **dict,
                         size_t *dict_len, const char **why);
/* Appends a links entry in the layout of record version `version` (2 or 3). */
arca_status arca_rec_link_encode(arca_buf *raw, const arca_rec_link *l, uint8_t version);
/* Parses the entry at *pos of a links record of the given header version; false at the end
 * (*why NULL) or on malformed data (*why set). */
bool arca_rec_link_next(const uint8_t *p, size_t len, uint8_t version, size_t *pos,
                        arca_rec_link *l, const char **why);
/* Decompresses one zstd frame of exactly expect bytes (or, if expect is UINT64_MAX, at most
 * max bytes), appending to out; with ddict if not NULL. *why on failure. */
bool arca_rec_decompress(ZSTD_DCtx *dctx, const ZSTD_DDict *ddict, const void *src,
                         size_t srclen, uint64_t expect, uint64_t max, arca_buf *out,
                         const char **why);
void arca_rec_container_name(char *out, size_t outsz, uint32_t id);
/* Parses "c000123.dat" (canonical spelling only); 0 if not a container name. */
uint32_t arca_rec_container_id(const char *name);

/* ---- meta.c: schema ---- */

/* Creates schema + settings row in an empty database. */
arca_status arca_meta_init(sqlite3 *db, const uint8_t key[ARCA_KEY_LEN], uint32_t key_id,
                           arca_error *err);
/* Opens path (flags as sqlite3_open_v2) and sets per-connection pragmas. */
arca_status arca_meta_open(const char *path, int flags, sqlite3 **db, arca_error *err);
/* Checks format, key id and the key check value; *format (may be NULL) gets the format. */
arca_status arca_meta_check_key(sqlite3 *db, const uint8_t key[ARCA_KEY_LEN], uint32_t key_id,
                                uint64_t *last_batch, uint64_t *next_id, int *format,
                                arca_error *err);
/* Upgrades a format-1 to -4 database of the writer s to the current format in one
 * transaction: creates the missing tables and fills links from the containers
 * (arca_links_fill), gives every membership a UID (arca_meta_members_v5). Container tails
 * must already be cut (open_containers). hooks may be NULL. */
arca_status arca_meta_upgrade(arca_store *s, int format, const arca_store_uid_hooks *hooks,
                              arca_error *err);
/* Fills the members table (format 5, empty, without its secondary index) from the temporary
 * table rm(folder_id, message_id, archive_id, batch, uid) of db, then creates the index, fills
 * batch_uids (empty) and drops rm. With dedup, a (folder, message) pair found twice keeps its first row (lowest
 * rowid) and a UID found twice in a folder is kept by the first row only. Rows without a UID
 * (0) get new
 * ones per folder in (batch, message_id) order from max(hooks->uid_base, the folder's highest
 * UID + 1). The folders that got new UIDs are appended to *assigned (n pairs folder_id,
 * count; caller frees). */
typedef struct {
	uint32_t folder_id;
	uint64_t n;
} arca_meta_assigned;
arca_status arca_meta_fill_members(sqlite3 *db, bool dedup, const arca_store_uid_hooks *hooks,
                                   arca_meta_assigned **assigned, size_t *nassigned,
                                   arca_error *err);
#define ARCA_MEMBERS_SQL \
	"CREATE TABLE members(folder_id INTEGER NOT NULL, uid INTEGER NOT NULL," \
	" message_id INTEGER NOT NULL, archive_id INTEGER NOT NULL, batch INTEGER NOT NULL," \
	" PRIMARY KEY(folder_id, uid)) WITHOUT ROWID;"
/* "is message X in archive A (and in which folders)" and "members of archive A in message
 * order" (the index holds the key columns folder_id, uid too). */
#define ARCA_MEMBERS_INDEX_SQL \
	"CREATE INDEX members_archive ON members(archive_id, message_id);"
/* Format 5: per batch and folder, the UIDs its memberships got (one range: a folder's UIDs are
 * given in the order added), for "memberships added after batch B" (index catch-up) without
 * an index on members(batch). A few rows per batch. */
#define ARCA_BATCH_UIDS_SQL \
	"CREATE TABLE batch_uids(batch INTEGER NOT NULL, folder_id INTEGER NOT NULL," \
	" first_uid INTEGER NOT NULL, last_uid INTEGER NOT NULL," \
	" PRIMARY KEY(batch, folder_id)) WITHOUT ROWID;"
#define ARCA_RM_SQL \
	"CREATE TEMP TABLE rm(folder_id INTEGER NOT NULL, message_id INTEGER NOT NULL," \
	" archive_id INTEGER NOT NULL, batch INTEGER NOT NULL, uid INTEGER NOT NULL);"
/* Maps a SQLite result code to a status and error text. */
arca_status arca_meta_err(sqlite3 *db, int rc, arca_error *err, const char *what);
arca_status arca_meta_exec(sqlite3 *db, const char *sql, arca_error *err);

/* ---- store.c internals used by recover.c ---- */

typedef struct {
	int fd;             /* -1 until opened */
	bool known;         /* has a row in containers */
	bool missing;       /* file missing or shorter than committed at open */
	bool touched;       /* written in the current batch */
	bool created;       /* created in the current batch */
	uint64_t committed; /* containers.committed_len (writer) */
	uint64_t end;       /* writer: end of data incl. staged records */
} arca_container;

/* One copy of a dictionary record (a dict_copies row; the dicts row before format 4). */
typedef struct {
	uint32_t container; /* 0: bad metadata row */
	uint64_t offset;
	uint64_t stored_size;
} arca_dict_copy;

/* A dictionary known to the handle (a dicts row and its copies); loaded lazily from the
 * first copy that authenticates. */
typedef struct {
	uint32_t id;
	bool has_sha;        /* sha256 known (NULL after an upgrade that found it damaged) */
	uint8_t sha[ARCA_SHA256_LEN]; /* SHA-256 of the zstd dictionary bytes */
	arca_dict_copy *copies;
	size_t ncopies;
	bool loaded;         /* load attempted: ddict set, or bad with why */
	char why[240];       /* reason the dictionary is unusable */
	ZSTD_DDict *ddict;
} arca_dict;

struct arca_store {
	char meta_path[ARCA_PATH_MAX];
	char content_dir[ARCA_PATH_MAX];
	uint8_t key[ARCA_KEY_LEN];
	uint32_t key_id;
	bool readonly;
	int format;    /* settings.format at open (after a writer's upgrade) */
	bool poisoned; /* a commit's outcome is unknown: refuse writes until reopened */
	bool read_txn; /* arca_store_read_begin's transaction is open */
	int lock_fd;   /* flock on content_dir: one writer */
	sqlite3 *db;
	sqlite3_stmt *st_lookup, *st_msg, *st_ins_msg, *st_ins_mem, *st_mem_of, *st_max_uid;
	sqlite3_stmt *st_upd_cont, *st_ins_cont, *st_upd_set, *st_ins_link, *st_ins_dcopy;
	sqlite3_stmt *st_ins_buid;
	arca_container *c; /* indexed by container id; slot 0 unused */
	uint32_t nc;       /* slots allocated */
	uint32_t cur;      /* container appended to (0: none yet) */
	bool roll;         /* start a new container at the next write */
	uint64_t last_batch;
	uint64_t next_id;
	/* batch state */
	bool in_txn;
	uint64_t batch_next_id; /* next_id when the batch began */
	uint64_t staged;        /* memberships staged */
	bool dir_dirty;         /* a container file was created */
	arca_buf links;         /* raw links entries not yet written */
	uint64_t links_n;       /* entries in links */
	arca_buf plain, rec, rbuf;
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	/* dictionaries */
	arca_dict *dicts;      /* sorted by id */
	size_t ndicts, capdicts;
	uint32_t dict_cur;     /* writer: dictionary for new content records (0: none) */
	ZSTD_CDict *cdict;     /* for dict_cur, created lazily */
	bool cdict_failed;     /* dict_cur is unusable: compress without */
	arca_buf dict_rec;     /* writer: an authenticated record of dict_cur, copied to the start
	                        * of every new container (empty: not loaded yet) */
	uint64_t nodict_msgs;  /* writer: committed messages while the store has no dictionary */
	uint64_t dict_min;     /* train when nodict_msgs reaches this (0: never) */
	uint64_t dict_next_try; /* after a failed training: retry at this count */
	uint64_t container_max;
	uint8_t rec_version;   /* record version written (ARCA_REC_VERSION; tests: 2) */
	/* writer: next UID per folder (sorted by folder_id), from the committed maximum at first
	 * use; forgotten when a batch is dropped */
	struct store_uid_next {
		uint32_t folder_id;
		uint32_t next;
		uint32_t first, last; /* UIDs given in the open batch (first 0: none) */
	} *uidn;
	size_t nuidn, capuidn;
	unsigned fault_n;
	int fault_errno;
};

typedef struct {
	uint64_t id;
	uint8_t sha[ARCA_SHA256_LEN];
	uint64_t size;
	uint64_t stored_size;
	uint32_t container;
	uint64_t offset;
} arca_store_msgrow;

/* Reads, authenticates, decompresses and checks message m into out (appending); *batch (may
 * be NULL) gets the batch of the record's first membership. On failure err holds a reason
 * starting with a short phrase, e.g. "authentication failed ...". */
arca_status arca_store_read_msg(arca_store *s, const arca_store_msgrow *m, arca_buf *out,
                                uint64_t *batch, arca_error *err);
/* Container file descriptor for reading (opened lazily); -1 with err if missing. */
int arca_store_container_fd(arca_store *s, uint32_t id, arca_error *err);
/* Reads the stored_size record bytes at (container, offset) into s->rbuf. */
arca_status arca_store_read_record(arca_store *s, const arca_store_msgrow *m, arca_error *err);
/* Batch machinery (store.c), used by dict.c to write a dictionary in its own commit. */
arca_status arca_store_batch_begin(arca_store *s, arca_error *err);
/* Writes s->rec at the end of the current container; its location goes to cid, off. */
arca_status arca_store_write_record(arca_store *s, uint32_t *cid, uint64_t *off, arca_error *err);
/* Inserts a dict_copies row in the open batch transaction. */
arca_status arca_store_ins_dict_copy(arca_store *s, uint32_t dict_id, uint32_t cid, uint64_t off,
                                     uint64_t len, arca_error *err);
/* fdatasync containers, update containers/settings (last_batch = b), COMMIT. On failure the
 * batch is dropped (or the handle poisoned if the outcome is unknown). */
arca_status arca_store_batch_commit(arca_store *s, uint64_t b, arca_error *err);
void arca_store_batch_abort(arca_store *s);

/* ---- recover.c internals ---- */

/* Inserts a links row for every intact links record between the known records of s's
 * containers (upgrade from format 1 or 2, inside its transaction). Damaged bytes are left
 * out: verify keeps reporting them. */
arca_status arca_links_fill(arca_store *s, arca_error *err);

/* ---- dict.c: dictionaries ---- */

/* Reads the dicts rows and their copies into s->dicts (nothing loaded yet); no table
 * (format 1) is fine. */
arca_status arca_dict_list(arca_store *s, arca_error *err);
/* Checks one copy of dictionary id (sha: expected SHA-256 of the dictionary, or NULL): header,
 * authentication, content. On success s->rbuf holds the record, plain its plaintext and
 * *dict, *dlen the dictionary inside plain; otherwise why (whysz bytes) gets the reason. */
bool arca_dict_check_copy(arca_store *s, uint32_t id, const uint8_t *sha,
                          const arca_dict_copy *c, arca_buf *plain, const uint8_t **dict,
                          size_t *dlen, char *why, size_t whysz);
/* Upgrade to format 4 inside arca_meta_upgrade's transaction: dicts.sha256 (from the record,
 * NULL if it is damaged) and dict_copies (the dicts row as the first copy). */
arca_status arca_dict_upgrade(arca_store *s, int format, arca_error *err);
/* Writer open: a dictionary with fewer than two copies (an upgraded store) that still has an
 * intact one gets another copy, in its own commit. Failures are logged. */
void arca_dict_ensure_copies(arca_store *s);
/* Writer: the record of the dictionary new content records use, to copy at the start of a
 * new container (NULL: none, or unusable; then records are written without). */
const arca_buf *arca_dict_current_record(arca_store *s);
/* The decompression dictionary id: loads and checks its record on first use. On failure err
 * says "dictionary N damaged: ..." or "dictionary N unknown". */
arca_status arca_dict_get(arca_store *s, uint32_t id, const ZSTD_DDict **ddict, arca_error *err);
/* Forgets loaded dictionaries and lists them again (verify re-reads them, in its snapshot). */
arca_status arca_dict_reload(arca_store *s, arca_error *err);
void arca_dict_free(arca_store *s);
/* Compression dictionary for new content records: *id 0 and *cdict NULL if none. */
void arca_dict_for_write(arca_store *s, uint32_t *id, const ZSTD_CDict **cdict);
/* After a commit: trains and durably writes a dictionary if due. Failures are logged and the
 * store goes on without (an unknown commit outcome poisons the handle, as for a batch). */
void arca_dict_maybe_train(arca_store *s);

/* Test hook: container roll size (default ARCA_CONTAINER_MAX_SIZE). */
void arca_store_set_container_max(arca_store *s, uint64_t max);
/* Test hook: messages without a dictionary before one is trained (default
 * ARCA_DICT_MIN_MSGS; 0 never trains). */
void arca_store_set_dict_min(arca_store *s, uint64_t n);
/* Test hook: record version of the content and links records written from now on (2: without
 * UIDs, as before format 5; default ARCA_REC_VERSION). */
void arca_store_set_rec_version(arca_store *s, uint8_t version);

#endif

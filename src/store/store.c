/* Store API: create/open, the batched write path (add, commit, rollback) and read paths.
 *
 * Crash safety rests on one order of events per batch: records are appended to the
 * container (not yet durable), the metadata rows are staged in an open SQLite transaction,
 * and commit does fdatasync(containers) -> COMMIT. containers.committed_len only ever covers
 * synced bytes, so whatever lies beyond it after a crash was never acknowledged and is
 * truncated at the next open. An arca_store handle is not thread-safe: use one per thread
 * (readers may open READONLY handles while a writer works; SQLite WAL + pread). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "lib/fs.h"
#include "lib/log.h"
#include "store/store_int.h"

#define BUF_MAX ((size_t)2 * ARCA_MAX_MESSAGE_SIZE)
/* Scratch buffers above this size are freed after use instead of being kept. */
#define BUF_KEEP ((size_t)8 * 1024 * 1024)

static void container_path(const arca_store *s, uint32_t id, char *out, size_t outsz)
{
	char name[32];
	arca_rec_container_name(name, sizeof(name), id);
	snprintf(out, outsz, "%s/%s", s->content_dir, name);
}

static arca_status grow_containers(arca_store *s, uint32_t id, arca_error *err)
{
	arca_container *n;
	uint32_t nn;
	if (id < s->nc)
		return ARCA_OK;
	nn = s->nc ? s->nc : 8;
	while (nn <= id)
		nn *= 2;
	n = realloc(s->c, nn * sizeof(*n));
	if (n == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	for (uint32_t i = s->nc; i < nn; i++)
		n[i] = (arca_container){.fd = -1};
	s->c = n;
	s->nc = nn;
	return ARCA_OK;
}

int arca_store_container_fd(arca_store *s, uint32_t id, arca_error *err)
{
	char path[ARCA_STORE_CPATH];
	int fd;
	if (id == 0 || grow_containers(s, id, err) != ARCA_OK) {
		arca_error_set(err, ARCA_ERR_CORRUPT, "bad container id %u", (unsigned)id);
		return -1;
	}
	if (s->c[id].fd >= 0)
		return s->c[id].fd;
	container_path(s, id, path, sizeof(path));
	fd = open(path, (s->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		arca_error_errno(err, errno, "container missing: cannot open %s", path);
		if (err != NULL)
			err->status = ARCA_ERR_CORRUPT;
		return -1;
	}
	s->c[id].fd = fd;
	return fd;
}

/* Fault injection: counts container writes and syncs; the n-th fails with fault_errno. */
static bool fault_hit(arca_store *s)
{
	if (s->fault_n == 0)
		return false;
	if (--s->fault_n == 0) {
		errno = s->fault_errno;
		return true;
	}
	return false;
}

static arca_status write_error(arca_store *s, uint32_t id, int e, arca_error *err)
{
	char path[ARCA_STORE_CPATH];
	container_path(s, id, path, sizeof(path));
	if (e == ENOSPC || e == EDQUOT)
		return arca_error_errno(err, e, "disk full while writing %s", path);
	return arca_error_errno(err, e, "cannot write %s", path);
}

static arca_status container_write(arca_store *s, uint32_t id, const void *data, size_t len,
                                   arca_error *err)
{
	arca_container *c = &s->c[id];
	const uint8_t *p = data;
	uint64_t off = c->end;
	c->touched = true;
	if (fault_hit(s))
		return write_error(s, id, errno, err);
	while (len > 0) {
		ssize_t n = pwrite(c->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return write_error(s, id, n < 0 ? errno : EIO, err);
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
		c->end = off;
	}
	return ARCA_OK;
}

static sqlite3_stmt *prep(arca_store *s, const char *sql, arca_error *err, arca_status *st)
{
	sqlite3_stmt *stmt = NULL;
	int rc;
	if (*st != ARCA_OK)
		return NULL;
	rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
	if (rc != SQLITE_OK)
		*st = arca_meta_err(s->db, rc, err, "cannot prepare statement");
	return stmt;
}

/* Runs a prepared statement that returns no rows, then resets it. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void store_free(arca_store *s)
{
	sqlite3_stmt **sts[] = {&s->st_lookup, &s->st_msg, &s->st_ins_msg, &s->st_ins_mem,
	                        &s->st_mem_of, &s->st_max_uid, &s->st_upd_cont, &s->st_ins_cont,
	                        &s->st_upd_set, &s->st_ins_link, &s->st_ins_dcopy, &s->st_ins_buid};
	for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++) {
		sqlite3_finalize(*sts[i]);
		*sts[i] = NULL;
	}
	if (s->db != NULL)
		sqlite3_close(s->db);
	for (uint32_t i = 0; i < s->nc; i++)
		if (s->c[i].fd >= 0)
			close(s->c[i].fd);
	free(s->c);
	free(s->uidn);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	arca_buf_free(&s->links);
	arca_buf_free(&s->plain);
	arca_buf_free(&s->rec);
	arca_buf_free(&s->rbuf);
	arca_dict_free(s);
	ZSTD_freeCCtx(s->cctx);
	ZSTD_freeDCtx(s->dctx);
	arca_crypto_wipe(s->key, sizeof(s->key));
	free(s);
}

static bool dir_has_containers(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;
	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL)
		found = arca_rec_container_id(de->d_name) != 0;
	closedir(d);
	return found;
}

static arca_status check_paths(const arca_store_paths *paths, arca_error *err)
{
	if (paths == NULL || paths->meta_path == NULL || paths->content_dir == NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "store paths missing");
	if (strlen(paths->meta_path) + 32 >= ARCA_PATH_MAX ||
	    strlen(paths->content_dir) + 32 >= ARCA_PATH_MAX)
		return arca_error_set(err, ARCA_ERR_LIMIT, "store path too long");
	return ARCA_OK;
}

arca_status arca_store_create(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                              uint32_t key_id, arca_error *err)
{
	char tmp[ARCA_PATH_MAX], dir[ARCA_PATH_MAX], *slash;
	sqlite3 *db = NULL;
	arca_status st = check_paths(paths, err);
	if (st != ARCA_OK)
		return st;
	if (arca_fs_exists(paths->meta_path))
		return arca_error_set(err, ARCA_ERR_EXISTS, "%s already exists", paths->meta_path);
	/* Never start a fresh database over existing containers: that is recreate_meta's job. */
	if (dir_has_containers(paths->content_dir))
		return arca_error_set(err, ARCA_ERR_EXISTS, "%s already holds container files",
		                      paths->content_dir);
	snprintf(dir, sizeof(dir), "%s", paths->meta_path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if ((st = arca_fs_mkdirs(dir, err)) != ARCA_OK)
			return st;
	}
	if ((st = arca_fs_mkdirs(paths->content_dir, err)) != ARCA_OK)
		return st;
	/* Build under a temporary name and rename: a crash never leaves a half-made store. */
	snprintf(tmp, sizeof(tmp), "%s.creating", paths->meta_path);
	unlink(tmp);
	st = arca_meta_open(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db, err);
	if (st == ARCA_OK)
		st = arca_meta_init(db, key, key_id, err);
	if (db != NULL && sqlite3_close(db) != SQLITE_OK && st == ARCA_OK)
		st = arca_error_set(err, ARCA_ERR_DB, "cannot close %s", tmp);
	if (st == ARCA_OK && rename(tmp, paths->meta_path) != 0)
		st = arca_error_errno(err, errno, "cannot rename %s", tmp);
	if (st == ARCA_OK)
		st = arca_fs_fsync_dir(paths->meta_path, err);
	if (st == ARCA_OK)
		st = arca_fs_fsync_dir(paths->content_dir, err);
	if (st != ARCA_OK) {
		char w[ARCA_PATH_MAX + 8];
		unlink(tmp);
		snprintf(w, sizeof(w), "%s-wal", tmp);
		unlink(w);
		snprintf(w, sizeof(w), "%s-shm", tmp);
		unlink(w);
	}
	return st;
}

/* Writer open: cut tails beyond committed_len (never acknowledged), drop container files
 * beyond the last known one (created by a batch that never committed). */
static arca_status open_containers(arca_store *s, arca_error *err)
{
	sqlite3_stmt *st = NULL;
	uint32_t maxid = 0;
	DIR *d;
	struct dirent *de;
	arca_status ret = ARCA_OK;
	int rc = sqlite3_prepare_v2(s->db, "SELECT id, committed_len FROM containers ORDER BY id",
	                            -1, &st, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot read containers");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0), len = sqlite3_column_int64(st, 1);
		arca_container *c;
		char path[ARCA_STORE_CPATH];
		struct stat sb;
		if (id <= 0 || id > UINT32_MAX || len < 0) {
			ret = arca_error_set(err, ARCA_ERR_CORRUPT, "bad container row %lld",
			                     (long long)id);
			break;
		}
		if ((ret = grow_containers(s, (uint32_t)id, err)) != ARCA_OK)
			break;
		c = &s->c[id];
		c->known = true;
		c->committed = c->end = (uint64_t)len;
		maxid = (uint32_t)id;
		if (s->readonly)
			continue;
		container_path(s, (uint32_t)id, path, sizeof(path));
		c->fd = open(path, O_RDWR | O_CLOEXEC);
		if (c->fd < 0 || fstat(c->fd, &sb) != 0) {
			arca_log(ARCA_LOG_ERROR, "store", "container %s missing (%s); run verify", path,
			         strerror(errno));
			c->missing = true;
			continue;
		}
		if ((uint64_t)sb.st_size > c->committed) {
			arca_log(ARCA_LOG_INFO, "store", "%s: dropping %llu uncommitted bytes", path,
			         (unsigned long long)((uint64_t)sb.st_size - c->committed));
			if (ftruncate(c->fd, (off_t)c->committed) != 0 || fdatasync(c->fd) != 0) {
				ret = arca_error_errno(err, errno, "cannot truncate %s", path);
				break;
			}
		} else if ((uint64_t)sb.st_size < c->committed) {
			arca_log(ARCA_LOG_ERROR, "store", "%s is shorter than committed (%llu < %llu); "
			         "run verify", path, (unsigned long long)sb.st_size,
			         (unsigned long long)c->committed);
			c->missing = true;
		}
	}
	if (ret == ARCA_OK && rc != SQLITE_DONE)
		ret = arca_meta_err(s->db, rc, err, "cannot read containers");
	sqlite3_finalize(st);
	if (ret != ARCA_OK)
		return ret;
	s->cur = maxid;
	/* Never append to a damaged container: records would land at unexpected offsets. */
	s->roll = maxid == 0 || s->c[maxid].missing;
	if (s->readonly)
		return ARCA_OK;
	d = opendir(s->content_dir);
	if (d == NULL)
		return arca_error_errno(err, errno, "cannot open %s", s->content_dir);
	while ((de = readdir(d)) != NULL) {
		uint32_t id = arca_rec_container_id(de->d_name);
		if (id > maxid) {
			char path[ARCA_STORE_CPATH];
			container_path(s, id, path, sizeof(path));
			arca_log(ARCA_LOG_INFO, "store", "removing uncommitted container %s", path);
			if (unlink(path) != 0) {
				ret = arca_error_errno(err, errno, "cannot remove %s", path);
				break;
			}
		}
	}
	closedir(d);
	return ret;
}

arca_status arca_store_meta_format(const arca_store_paths *paths, int *format, arca_error *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	arca_status st = check_paths(paths, err);
	int rc;
	if (st != ARCA_OK)
		return st;
	if (!arca_fs_exists(paths->meta_path))
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store at %s", paths->meta_path);
	if ((st = arca_meta_open(paths->meta_path, SQLITE_OPEN_READONLY, &db, err)) != ARCA_OK)
		return st;
	rc = sqlite3_prepare_v2(db, "SELECT format FROM settings WHERE id = 1", -1, &q, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW)
		*format = sqlite3_column_int(q, 0);
	else
		st = arca_meta_err(db, rc, err, "metadata database is not an arca store");
	sqlite3_finalize(q);
	sqlite3_close(db);
	return st;
}

int arca_store_format(const arca_store *s)
{
	return s->format;
}

arca_status arca_store_open(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                            uint32_t key_id, int flags, arca_store **out, arca_error *err)
{
	return arca_store_open_ex(paths, key, key_id, flags, NULL, out, err);
}

arca_status arca_store_open_ex(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                               uint32_t key_id, int flags, const arca_store_uid_hooks *hooks,
                               arca_store **out, arca_error *err)
{
	arca_store *s;
	arca_status st = check_paths(paths, err);
	int format = 0;
	*out = NULL;
	if (st != ARCA_OK)
		return st;
	if (!arca_fs_exists(paths->meta_path))
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store at %s", paths->meta_path);
	if (!arca_fs_is_dir(paths->content_dir))
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "content directory %s missing",
		                      paths->content_dir);
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	s->lock_fd = -1;
	snprintf(s->meta_path, sizeof(s->meta_path), "%s", paths->meta_path);
	snprintf(s->content_dir, sizeof(s->content_dir), "%s", paths->content_dir);
	memcpy(s->key, key, ARCA_KEY_LEN);
	s->key_id = key_id;
	s->readonly = (flags & ARCA_STORE_READONLY) != 0;
	s->container_max = ARCA_CONTAINER_MAX_SIZE;
	s->dict_min = ARCA_DICT_MIN_MSGS;
	s->rec_version = ARCA_REC_VERSION;
	arca_buf_init(&s->links, ARCA_REC_LINKS_MAX);
	arca_buf_init(&s->plain, BUF_MAX);
	arca_buf_init(&s->rec, BUF_MAX);
	arca_buf_init(&s->rbuf, BUF_MAX);
	arca_buf_init(&s->dict_rec, ARCA_REC_OVERHEAD + ARCA_REC_DICT_FIXED + ARCA_DICT_MAX);
	s->cctx = ZSTD_createCCtx();
	s->dctx = ZSTD_createDCtx();
	if (s->cctx == NULL || s->dctx == NULL) {
		st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory (zstd)");
		goto fail;
	}
	if (!s->readonly) {
		/* One writer per store (process or handle): container offsets live in memory. */
		s->lock_fd = open(s->content_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->lock_fd < 0) {
			st = arca_error_errno(err, errno, "cannot open %s", s->content_dir);
			goto fail;
		}
		if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
			st = arca_error_set(err, ARCA_ERR_STATE, "store %s is already open for writing",
			                    s->content_dir);
			goto fail;
		}
	}
	st = arca_meta_open(s->meta_path, s->readonly ? SQLITE_OPEN_READONLY :
	                    SQLITE_OPEN_READWRITE, &s->db, err);
	if (st != ARCA_OK)
		goto fail;
	st = arca_meta_check_key(s->db, key, key_id, &s->last_batch, &s->next_id, &format, err);
	if (st != ARCA_OK)
		goto fail;
	s->format = format;
	st = open_containers(s, err);
	if (st != ARCA_OK)
		goto fail;
	/* A writer upgrades an older store before writing into it, so an older program refuses
	 * the store instead of meeting records it cannot read or links records it does not
	 * list. After open_containers: the links walk must not see uncommitted tails. */
	if (!s->readonly && format != ARCA_STORE_FORMAT) {
		if ((st = arca_meta_upgrade(s, format, hooks, err)) != ARCA_OK)
			goto fail;
		s->format = ARCA_STORE_FORMAT;
	}
	if ((st = arca_dict_list(s, err)) != ARCA_OK)
		goto fail;
	if (!s->readonly && s->ndicts == 0) {
		sqlite3_stmt *q = prep(s, "SELECT count(*) FROM messages", err, &st);
		if (q != NULL && sqlite3_step(q) == SQLITE_ROW)
			s->nodict_msgs = (uint64_t)sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		if (st != ARCA_OK)
			goto fail;
	}
	s->st_lookup = prep(s, "SELECT id FROM messages WHERE sha256 = ?", err, &st);
	s->st_msg = prep(s, "SELECT sha256, size, stored_size, container, offset, archive_time"
	                 " FROM messages WHERE id = ?", err, &st);
	if (!s->readonly) {
		/* one lookup answers "in this folder (with which UID)?" and "in this archive?" */
		s->st_mem_of = prep(s, "SELECT folder_id, uid FROM members INDEXED BY members_archive"
		                    " WHERE archive_id = ?1 AND message_id = ?2", err, &st);
		s->st_max_uid = prep(s, "SELECT max(uid) FROM members WHERE folder_id = ?", err, &st);
		s->st_ins_msg = prep(s, "INSERT INTO messages(id, sha256, size, stored_size,"
		                     " container, offset, archive_time) VALUES(?,?,?,?,?,?,?)",
		                     err, &st);
		s->st_ins_mem = prep(s, "INSERT INTO members(folder_id, uid, message_id, archive_id,"
		                     " batch) VALUES(?,?,?,?,?)", err, &st);
		s->st_upd_cont = prep(s, "UPDATE containers SET committed_len = ? WHERE id = ?",
		                      err, &st);
		s->st_ins_cont = prep(s, "INSERT INTO containers(id, committed_len) VALUES(?, 0)",
		                      err, &st);
		s->st_upd_set = prep(s, "UPDATE settings SET last_batch = ?, next_msg_id = ?"
		                     " WHERE id = 1", err, &st);
		s->st_ins_link = prep(s, "INSERT INTO links(batch, container, offset, stored_size,"
		                      " entries) VALUES(?,?,?,?,?)", err, &st);
		s->st_ins_dcopy = prep(s, "INSERT INTO dict_copies(dict_id, container, offset,"
		                       " stored_size) VALUES(?,?,?,?)", err, &st);
		s->st_ins_buid = prep(s, "INSERT INTO batch_uids(batch, folder_id, first_uid, last_uid)"
		                      " VALUES(?,?,?,?)", err, &st);
	}
	if (st != ARCA_OK)
		goto fail;
	/* An upgraded store's dictionaries have one copy: give them a second one now. */
	if (!s->readonly)
		arca_dict_ensure_copies(s);
	*out = s;
	return ARCA_OK;
fail:
	store_free(s);
	return st;
}

void arca_store_close(arca_store **store)
{
	if (store == NULL || *store == NULL)
		return;
	arca_store_read_end(*store);
	arca_store_rollback(*store);
	store_free(*store);
	*store = NULL;
}

void arca_store_set_container_max(arca_store *s, uint64_t max)
{
	s->container_max = max;
}

void arca_store_set_dict_min(arca_store *s, uint64_t n)
{
	s->dict_min = n;
	s->dict_next_try = 0;
}

void arca_store_set_rec_version(arca_store *s, uint8_t version)
{
	s->rec_version = version;
}

void arca_store_fault_inject(arca_store *s, unsigned n, int errnum)
{
	s->fault_n = n;
	s->fault_errno = errnum;
}

uint64_t arca_store_last_batch(arca_store *s)
{
	return s->last_batch;
}

static void shrink(arca_buf *b)
{
	if (b->cap > BUF_KEEP)
		arca_buf_free(b);
	else
		arca_buf_reset(b);
}

/* Drops the staged batch: SQL rollback, container tails cut back to committed_len,
 * containers created by the batch removed. If a truncate fails the handle is poisoned:
 * the next open cuts the tail. */
void arca_store_batch_abort(arca_store *s)
{
	if (!s->in_txn)
		return;
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	for (uint32_t id = 1; id < s->nc; id++) {
		arca_container *c = &s->c[id];
		char path[ARCA_STORE_CPATH];
		if (!c->touched)
			continue;
		container_path(s, id, path, sizeof(path));
		if (c->created) {
			close(c->fd);
			*c = (arca_container){.fd = -1};
			if (unlink(path) != 0) {
				arca_log(ARCA_LOG_ERROR, "store", "cannot remove %s: %s", path,
				         strerror(errno));
				s->poisoned = true;
			}
			continue;
		}
		if (ftruncate(c->fd, (off_t)c->committed) != 0) {
			arca_log(ARCA_LOG_ERROR, "store", "cannot truncate %s: %s", path,
			         strerror(errno));
			s->poisoned = true;
		}
		c->end = c->committed;
		c->touched = false;
	}
	while (s->cur > 0 && !s->c[s->cur].known)
		s->cur--;
	s->roll = s->cur == 0 || s->c[s->cur].missing;
	s->next_id = s->batch_next_id;
	s->staged = 0;
	s->dir_dirty = false;
	s->in_txn = false;
	arca_buf_reset(&s->links);
	s->links_n = 0;
	s->nuidn = 0; /* may hold UIDs of the dropped batch: read them again */
}

void arca_store_rollback(arca_store *s)
{
	arca_store_batch_abort(s);
}

/* Fails the batch: everything staged is dropped, the error in err is kept. */
static arca_status batch_fail(arca_store *s, arca_status st)
{
	arca_store_batch_abort(s);
	return st;
}

arca_status arca_store_read_begin(arca_store *s, arca_error *err)
{
	int rc;
	if (s->in_txn || s->read_txn || !sqlite3_get_autocommit(s->db))
		return ARCA_OK;
	rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot begin reading");
	s->read_txn = true;
	return ARCA_OK;
}

void arca_store_read_end(arca_store *s)
{
	if (!s->read_txn)
		return;
	s->read_txn = false;
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
}

arca_status arca_store_batch_begin(arca_store *s, arca_error *err)
{
	int rc;
	if (s->in_txn)
		return ARCA_OK;
	if (s->read_txn)
		return arca_error_set(err, ARCA_ERR_STATE, "a read snapshot is open (arca_store_read_end)");
	rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot begin batch");
	s->in_txn = true;
	s->batch_next_id = s->next_id;
	s->staged = 0;
	return ARCA_OK;
}

arca_status arca_store_ins_dict_copy(arca_store *s, uint32_t dict_id, uint32_t cid, uint64_t off,
                                     uint64_t len, arca_error *err)
{
	int rc;
	sqlite3_bind_int64(s->st_ins_dcopy, 1, dict_id);
	sqlite3_bind_int64(s->st_ins_dcopy, 2, cid);
	sqlite3_bind_int64(s->st_ins_dcopy, 3, (int64_t)off);
	sqlite3_bind_int64(s->st_ins_dcopy, 4, (int64_t)len);
	rc = step_done(s->st_ins_dcopy);
	return rc == SQLITE_OK ? ARCA_OK : arca_meta_err(s->db, rc, err,
	                                                 "cannot record dictionary copy");
}

/* A new container starts with a copy of the dictionary new records use (before any record
 * that uses it), so damage to earlier containers never costs the messages in this one. The
 * copy and its dict_copies row are part of the batch: durable with it. */
static arca_status container_dict_copy(arca_store *s, uint32_t cid, arca_error *err)
{
	const arca_buf *r = arca_dict_current_record(s);
	uint64_t off = s->c[cid].end;
	arca_status st;
	if (r == NULL)
		return ARCA_OK; /* no dictionary, or unusable: records are written without */
	if ((st = container_write(s, cid, r->data, r->len, err)) != ARCA_OK)
		return st;
	return arca_store_ins_dict_copy(s, s->dict_cur, cid, off, r->len, err);
}

/* Picks the container for a record of len bytes, starting a new one when needed. */
static arca_status container_for(arca_store *s, size_t len, uint32_t *id, arca_error *err)
{
	char path[ARCA_STORE_CPATH];
	uint32_t nid;
	arca_container *c;
	int rc;
	arca_status st;
	if (!s->roll && s->cur > 0) {
		c = &s->c[s->cur];
		if (c->end == 0 || c->end + len <= s->container_max) {
			if (c->fd < 0 && arca_store_container_fd(s, s->cur, err) < 0)
				return err != NULL ? err->status : ARCA_ERR_IO;
			*id = s->cur;
			return ARCA_OK;
		}
	}
	nid = s->cur + 1;
	if (nid == 0)
		return arca_error_set(err, ARCA_ERR_LIMIT, "too many containers");
	if ((st = grow_containers(s, nid, err)) != ARCA_OK)
		return st;
	container_path(s, nid, path, sizeof(path));
	c = &s->c[nid];
	/* O_TRUNC: a file with this id can only be left over from a batch that never committed. */
	c->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (c->fd < 0)
		return write_error(s, nid, errno, err);
	c->created = c->touched = c->known = true;
	c->committed = c->end = 0;
	c->missing = false;
	sqlite3_bind_int64(s->st_ins_cont, 1, nid);
	rc = step_done(s->st_ins_cont);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot record new container");
	s->cur = nid;
	s->roll = false;
	s->dir_dirty = true;
	*id = nid;
	return container_dict_copy(s, nid, err);
}

arca_status arca_store_write_record(arca_store *s, uint32_t *cid, uint64_t *off, arca_error *err)
{
	arca_status st = container_for(s, s->rec.len, cid, err);
	if (st != ARCA_OK)
		return st;
	*off = s->c[*cid].end;
	return container_write(s, *cid, s->rec.data, s->rec.len, err);
}

/* Writes the pending links entries as one links record of the current batch, and its links
 * row in the batch transaction (so it is committed exactly when the record is durable). */
static arca_status flush_links(arca_store *s, arca_error *err)
{
	size_t bound = ZSTD_compressBound(s->links.len), n;
	uint32_t cid;
	uint64_t off;
	arca_status st;
	int rc;
	if (s->links.len == 0)
		return ARCA_OK;
	arca_buf_reset(&s->plain);
	if ((st = arca_buf_reserve(&s->plain, bound)) != ARCA_OK)
		return arca_error_set(err, st, "out of memory");
	n = ZSTD_compressCCtx(s->cctx, s->plain.data, bound, s->links.data, s->links.len,
	                      ARCA_ZSTD_LEVEL);
	if (ZSTD_isError(n))
		return arca_error_set(err, ARCA_ERR_INVALID, "compression failed: %s",
		                      ZSTD_getErrorName(n));
	st = arca_rec_seal(s->key, s->key_id, s->rec_version, ARCA_REC_LINKS, s->last_batch + 1,
	                   s->plain.data, n, &s->rec, err);
	if (st == ARCA_OK)
		st = arca_store_write_record(s, &cid, &off, err);
	if (st == ARCA_OK) {
		sqlite3_bind_int64(s->st_ins_link, 1, (int64_t)(s->last_batch + 1));
		sqlite3_bind_int64(s->st_ins_link, 2, cid);
		sqlite3_bind_int64(s->st_ins_link, 3, (int64_t)off);
		sqlite3_bind_int64(s->st_ins_link, 4, (int64_t)s->rec.len);
		sqlite3_bind_int64(s->st_ins_link, 5, (int64_t)s->links_n);
		rc = step_done(s->st_ins_link);
		if (rc != SQLITE_OK)
			st = arca_meta_err(s->db, rc, err, "cannot record links record");
	}
	arca_buf_reset(&s->links);
	s->links_n = 0;
	shrink(&s->plain);
	shrink(&s->rec);
	return st;
}

static arca_status add_content(arca_store *s, const void *data, size_t len,
                               const uint8_t sha[ARCA_SHA256_LEN], const arca_store_dest *d,
                               uint64_t id, uint32_t uid, arca_error *err)
{
	arca_rec_content c = {
		.raw_size = len, .archive_time = d->archive_time, .msg_id = id,
		.batch = s->last_batch + 1, .archive_id = d->archive_id, .folder_id = d->folder_id,
		.uid = uid,
		.archive_name = d->archive_name, .archive_name_len = strlen(d->archive_name),
		.folder_path = d->folder_path, .folder_path_len = strlen(d->folder_path),
	};
	size_t bound = ZSTD_compressBound(len), n, hdr;
	const ZSTD_CDict *cdict;
	uint32_t cid;
	uint64_t off;
	arca_status st;
	int rc;
	memcpy(c.sha, sha, ARCA_SHA256_LEN);
	/* The dictionary record was committed before dict_cur was set (dict.c). */
	arca_dict_for_write(s, &c.dict_id, &cdict);
	arca_buf_reset(&s->plain);
	if ((st = arca_rec_content_encode(&s->plain, &c, s->rec_version)) != ARCA_OK ||
	    (st = arca_buf_reserve(&s->plain, bound)) != ARCA_OK)
		return arca_error_set(err, st, "cannot build record for message %llu",
		                      (unsigned long long)id);
	hdr = s->plain.len;
	/* Compress, then encrypt: no plaintext of a message ever reaches a container. */
	if (cdict != NULL)
		n = ZSTD_compress_usingCDict(s->cctx, s->plain.data + hdr, bound, data, len, cdict);
	else
		n = ZSTD_compressCCtx(s->cctx, s->plain.data + hdr, bound, data, len,
		                      ARCA_ZSTD_LEVEL);
	if (ZSTD_isError(n))
		return arca_error_set(err, ARCA_ERR_INVALID, "compression failed: %s",
		                      ZSTD_getErrorName(n));
	s->plain.len = hdr + n;
	st = arca_rec_seal(s->key, s->key_id, s->rec_version, ARCA_REC_CONTENT, id, s->plain.data,
	                   s->plain.len, &s->rec, err);
	if (st == ARCA_OK)
		st = arca_store_write_record(s, &cid, &off, err);
	if (st != ARCA_OK)
		return st;
	sqlite3_bind_int64(s->st_ins_msg, 1, (int64_t)id);
	sqlite3_bind_blob(s->st_ins_msg, 2, sha, ARCA_SHA256_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s->st_ins_msg, 3, (int64_t)len);
	sqlite3_bind_int64(s->st_ins_msg, 4, (int64_t)s->rec.len);
	sqlite3_bind_int64(s->st_ins_msg, 5, cid);
	sqlite3_bind_int64(s->st_ins_msg, 6, (int64_t)off);
	sqlite3_bind_int64(s->st_ins_msg, 7, d->archive_time);
	rc = step_done(s->st_ins_msg);
	sqlite3_clear_bindings(s->st_ins_msg);
	shrink(&s->plain);
	shrink(&s->rec);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot record message");
	return ARCA_OK;
}

/* Where message id already is in archive a: *in_folder (with *uid) if in folder f, *in_archive
 * if in any folder of a. Returns a SQLite code. */
static int member_of(arca_store *s, uint32_t a, uint32_t f, uint64_t id, bool *in_folder,
                     bool *in_archive, uint32_t *uid)
{
	sqlite3_stmt *q = s->st_mem_of;
	int rc;
	*in_folder = *in_archive = false;
	sqlite3_bind_int64(q, 1, a);
	sqlite3_bind_int64(q, 2, (int64_t)id);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		*in_archive = true;
		if ((uint32_t)sqlite3_column_int64(q, 0) == f) {
			*in_folder = true;
			*uid = (uint32_t)sqlite3_column_int64(q, 1);
		}
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The writer's next-UID slot of folder f (kept sorted by folder id): from the folder's highest
 * UID in the store at first use. No row of f can be staged then: the slot is created by the
 * first add to f and only dropped with the whole batch. */
static arca_status uid_slot(arca_store *s, uint32_t f, struct store_uid_next **out,
                            arca_error *err)
{
	size_t lo = 0, hi = s->nuidn;
	int64_t max = 0;
	int rc;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->uidn[mid].folder_id < f)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->nuidn && s->uidn[lo].folder_id == f) {
		*out = &s->uidn[lo];
		return ARCA_OK;
	}
	sqlite3_bind_int64(s->st_max_uid, 1, f);
	rc = sqlite3_step(s->st_max_uid);
	if (rc == SQLITE_ROW)
		max = sqlite3_column_int64(s->st_max_uid, 0);
	sqlite3_reset(s->st_max_uid);
	if (rc != SQLITE_ROW)
		return arca_meta_err(s->db, rc, err, "cannot read the highest UID");
	if (max < 0 || max > ARCA_UID_MAX)
		return arca_error_set(err, ARCA_ERR_CORRUPT, "folder %u has a bad UID %lld",
		                      (unsigned)f, (long long)max);
	if (s->nuidn == s->capuidn) {
		size_t nc = s->capuidn ? 2 * s->capuidn : 8;
		struct store_uid_next *n = realloc(s->uidn, nc * sizeof(*n));
		if (n == NULL)
			return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		s->uidn = n;
		s->capuidn = nc;
	}
	memmove(s->uidn + lo + 1, s->uidn + lo, (s->nuidn - lo) * sizeof(*s->uidn));
	s->uidn[lo] = (struct store_uid_next){.folder_id = f, .next = (uint32_t)max + 1};
	s->nuidn++;
	*out = &s->uidn[lo];
	return ARCA_OK;
}

arca_status arca_store_lookup(arca_store *s, const uint8_t sha[ARCA_SHA256_LEN], uint64_t *msg_id)
{
	int rc;
	arca_status st = ARCA_ERR_NOTFOUND;
	sqlite3_bind_blob(s->st_lookup, 1, sha, ARCA_SHA256_LEN, SQLITE_STATIC);
	rc = sqlite3_step(s->st_lookup);
	if (rc == SQLITE_ROW) {
		*msg_id = (uint64_t)sqlite3_column_int64(s->st_lookup, 0);
		st = ARCA_OK;
	} else if (rc != SQLITE_DONE) {
		st = ARCA_ERR_DB;
	}
	sqlite3_reset(s->st_lookup);
	sqlite3_clear_bindings(s->st_lookup);
	return st;
}

arca_status arca_store_add(arca_store *s, const void *data, size_t len,
                           const uint8_t sha[ARCA_SHA256_LEN], const arca_store_dest *dest,
                           arca_store_added *out, arca_error *err)
{
	uint8_t check[ARCA_SHA256_LEN];
	struct store_uid_next *slot = NULL;
	uint64_t id = 0;
	uint32_t uid = 0;
	bool found;
	arca_status st;
	int rc;
	memset(out, 0, sizeof(*out));
	if (s->readonly)
		return arca_error_set(err, ARCA_ERR_STATE, "store opened read-only");
	if (s->poisoned)
		return arca_error_set(err, ARCA_ERR_STATE, "store must be reopened after an error");
	if (dest == NULL || dest->archive_name == NULL || dest->folder_path == NULL ||
	    dest->archive_id == 0 || dest->folder_id == 0 || (data == NULL && len > 0))
		return arca_error_set(err, ARCA_ERR_INVALID, "bad arguments to arca_store_add");
	if (len > ARCA_MAX_MESSAGE_SIZE)
		return arca_error_set(err, ARCA_ERR_LIMIT, "message too large (%zu bytes)", len);
	if (strlen(dest->archive_name) > ARCA_NAME_MAX ||
	    strlen(dest->folder_path) > ARCA_FOLDER_MAX)
		return arca_error_set(err, ARCA_ERR_LIMIT, "archive name or folder path too long");
	/* The key of deduplication must be right: never trust a caller's hash blindly. */
	arca_sha256(data, len, check);
	if (memcmp(check, sha, ARCA_SHA256_LEN) != 0)
		return arca_error_set(err, ARCA_ERR_INVALID, "sha-256 does not match the message");
	if ((st = arca_store_batch_begin(s, err)) != ARCA_OK)
		return st;
	st = arca_store_lookup(s, sha, &id);
	if (st == ARCA_ERR_DB)
		return batch_fail(s, arca_meta_err(s->db, sqlite3_errcode(s->db), err, "lookup"));
	found = st == ARCA_OK;
	if (found) {
		bool in_folder, in_archive;
		rc = member_of(s, dest->archive_id, dest->folder_id, id, &in_folder, &in_archive,
		               &uid);
		if (rc != SQLITE_OK)
			return batch_fail(s, arca_meta_err(s->db, rc, err, "membership lookup"));
		if (in_folder) {
			out->msg_id = id;
			out->uid = uid;
			return ARCA_OK; /* already in this folder: nothing to write */
		}
		out->new_in_archive = !in_archive;
	}
	if ((st = uid_slot(s, dest->folder_id, &slot, err)) != ARCA_OK)
		return batch_fail(s, st);
	uid = dest->uid != 0 ? dest->uid : slot->next;
	if (uid < slot->next || uid > ARCA_UID_MAX) {
		/* nothing of this message is staged; the batch stays as it was */
		memset(out, 0, sizeof(*out));
		if (slot->next > ARCA_UID_MAX)
			return arca_error_set(err, ARCA_ERR_LIMIT, "folder %u has no UIDs left",
			                      (unsigned)dest->folder_id);
		return arca_error_set(err, ARCA_ERR_INVALID, "UID %u of folder %u is not above its "
		                      "highest UID %u in the store", (unsigned)uid,
		                      (unsigned)dest->folder_id, (unsigned)(slot->next - 1));
	}
	if (found) {
		/* The content record names only the first folder; later ones go to links. */
		arca_rec_link l = {
			.msg_id = id, .archive_id = dest->archive_id, .folder_id = dest->folder_id,
			.uid = uid, .archive_name = dest->archive_name,
			.archive_name_len = strlen(dest->archive_name), .folder_path = dest->folder_path,
			.folder_path_len = strlen(dest->folder_path),
		};
		if (arca_rec_link_encode(&s->links, &l, s->rec_version) != ARCA_OK)
			return batch_fail(s, arca_error_set(err, ARCA_ERR_NOMEM, "out of memory"));
		s->links_n++;
		if (s->links.len >= ARCA_REC_LINKS_FLUSH && (st = flush_links(s, err)) != ARCA_OK)
			return batch_fail(s, st);
	} else {
		id = s->next_id;
		if ((st = add_content(s, data, len, sha, dest, id, uid, err)) != ARCA_OK)
			return batch_fail(s, st);
		s->next_id++;
		out->new_content = out->new_in_archive = true;
	}
	sqlite3_bind_int64(s->st_ins_mem, 1, dest->folder_id);
	sqlite3_bind_int64(s->st_ins_mem, 2, uid);
	sqlite3_bind_int64(s->st_ins_mem, 3, (int64_t)id);
	sqlite3_bind_int64(s->st_ins_mem, 4, dest->archive_id);
	sqlite3_bind_int64(s->st_ins_mem, 5, (int64_t)(s->last_batch + 1));
	rc = step_done(s->st_ins_mem);
	if (rc != SQLITE_OK)
		return batch_fail(s, arca_meta_err(s->db, rc, err, "cannot record membership"));
	slot->next = uid + 1;
	if (slot->first == 0)
		slot->first = uid;
	slot->last = uid;
	s->staged++;
	out->msg_id = id;
	out->uid = uid;
	out->new_member = true;
	return ARCA_OK;
}

arca_status arca_store_commit(arca_store *s, uint64_t *batch, arca_error *err)
{
	uint64_t b = s->last_batch + 1, new_msgs;
	arca_status st;
	if (batch != NULL)
		*batch = s->last_batch;
	if (s->poisoned)
		return arca_error_set(err, ARCA_ERR_STATE, "store must be reopened after an error");
	if (!s->in_txn)
		return ARCA_OK;
	if (s->staged == 0) {
		arca_store_batch_abort(s); /* only duplicates were added: no new batch */
		return ARCA_OK;
	}
	if ((st = flush_links(s, err)) != ARCA_OK)
		return batch_fail(s, st);
	/* the UID range of each folder in this batch (index catch-up finds the batch by it) */
	for (size_t i = 0; i < s->nuidn; i++) {
		struct store_uid_next *u = &s->uidn[i];
		int rc;
		if (u->first == 0)
			continue;
		sqlite3_bind_int64(s->st_ins_buid, 1, (int64_t)b);
		sqlite3_bind_int64(s->st_ins_buid, 2, u->folder_id);
		sqlite3_bind_int64(s->st_ins_buid, 3, u->first);
		sqlite3_bind_int64(s->st_ins_buid, 4, u->last);
		if ((rc = step_done(s->st_ins_buid)) != SQLITE_OK)
			return batch_fail(s, arca_meta_err(s->db, rc, err, "cannot record batch UIDs"));
	}
	new_msgs = s->next_id - s->batch_next_id;
	if ((st = arca_store_batch_commit(s, b, err)) != ARCA_OK)
		return st;
	for (size_t i = 0; i < s->nuidn; i++)
		s->uidn[i].first = s->uidn[i].last = 0;
	if (batch != NULL)
		*batch = b;
	if (s->ndicts == 0)
		s->nodict_msgs += new_msgs;
	/* The batch is durable whatever happens here: a dictionary problem is only logged (if
	 * its commit outcome is unknown the handle is poisoned and refuses the next write). */
	arca_dict_maybe_train(s);
	return ARCA_OK;
}

arca_status arca_store_batch_commit(arca_store *s, uint64_t b, arca_error *err)
{
	arca_status st;
	int rc;
	/* 1. container bytes durable */
	for (uint32_t id = 1; id < s->nc; id++) {
		if (!s->c[id].touched)
			continue;
		if (fault_hit(s) || fdatasync(s->c[id].fd) != 0) {
			char path[ARCA_STORE_CPATH];
			int e = errno;
			container_path(s, id, path, sizeof(path));
			if (e == ENOSPC || e == EDQUOT)
				st = arca_error_errno(err, e, "disk full while syncing %s", path);
			else
				st = arca_error_errno(err, e, "cannot sync %s", path);
			return batch_fail(s, st);
		}
		sqlite3_bind_int64(s->st_upd_cont, 1, (int64_t)s->c[id].end);
		sqlite3_bind_int64(s->st_upd_cont, 2, id);
		rc = step_done(s->st_upd_cont);
		if (rc != SQLITE_OK)
			return batch_fail(s, arca_meta_err(s->db, rc, err, "cannot update container"));
	}
	if (s->dir_dirty && (st = arca_fs_fsync_dir(s->content_dir, err)) != ARCA_OK)
		return batch_fail(s, st);
	/* 2. metadata */
	sqlite3_bind_int64(s->st_upd_set, 1, (int64_t)b);
	sqlite3_bind_int64(s->st_upd_set, 2, (int64_t)s->next_id);
	rc = step_done(s->st_upd_set);
	if (rc != SQLITE_OK)
		return batch_fail(s, arca_meta_err(s->db, rc, err, "cannot update settings"));
	rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		st = arca_meta_err(s->db, rc, err, "cannot commit batch");
		/* SQLITE_FULL: the commit frame was not written, the batch is simply lost. Other
		 * errors (I/O) leave the outcome unknown: keep the container bytes and let the
		 * next open decide (it truncates them unless the commit reached the disk). */
		if ((rc & 0xff) != SQLITE_FULL) {
			if (!sqlite3_get_autocommit(s->db))
				sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			s->poisoned = true;
			s->in_txn = false;
			return st;
		}
		return batch_fail(s, st);
	}
	for (uint32_t id = 1; id < s->nc; id++) {
		arca_container *c = &s->c[id];
		if (c->touched)
			c->committed = c->end;
		c->touched = c->created = false;
	}
	s->last_batch = b;
	s->in_txn = false;
	s->staged = 0;
	s->dir_dirty = false;
	return ARCA_OK;
}

/* Reads the record bytes of m into s->rbuf; false + err if the container is short. */
arca_status arca_store_read_record(arca_store *s, const arca_store_msgrow *m, arca_error *err)
{
	char name[32];
	size_t got = 0;
	int fd;
	arca_rec_container_name(name, sizeof(name), m->container);
	if (m->stored_size < ARCA_REC_OVERHEAD || m->stored_size > BUF_MAX)
		return arca_error_set(err, ARCA_ERR_CORRUPT, "metadata has a bad record size for "
		                      "record %llu", (unsigned long long)m->id);
	fd = arca_store_container_fd(s, m->container, err);
	if (fd < 0)
		return ARCA_ERR_CORRUPT;
	arca_buf_reset(&s->rbuf);
	if (arca_buf_reserve(&s->rbuf, m->stored_size) != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	while (got < m->stored_size) {
		ssize_t n = pread(fd, s->rbuf.data + got, m->stored_size - got,
		                  (off_t)(m->offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return arca_error_errno(err, errno, "read error in %s at offset %llu", name,
			                        (unsigned long long)m->offset);
		if (n == 0)
			return arca_error_set(err, ARCA_ERR_CORRUPT, "container truncated: %s ends "
			                      "inside the record at offset %llu", name,
			                      (unsigned long long)m->offset);
		got += (size_t)n;
	}
	s->rbuf.len = got;
	return ARCA_OK;
}

arca_status arca_store_read_msg(arca_store *s, const arca_store_msgrow *m, arca_buf *out,
                                uint64_t *batch, arca_error *err)
{
	char name[32];
	const char *why = NULL;
	arca_rec_hdr h;
	arca_rec_content c;
	uint8_t sha[ARCA_SHA256_LEN];
	size_t start = out->len;
	unsigned long long off = m->offset;
	const ZSTD_DDict *ddict = NULL;
	arca_status st = arca_store_read_record(s, m, err);
	arca_rec_container_name(name, sizeof(name), m->container);
	if (st != ARCA_OK)
		goto done;
	if (!arca_rec_hdr_decode((const uint8_t *)s->rbuf.data, &h, &why)) {
		st = ARCA_ERR_CORRUPT;
	} else if (h.type != ARCA_REC_CONTENT) {
		why = "bad record header (not a content record)";
		st = ARCA_ERR_CORRUPT;
	} else if (h.key_id != s->key_id) {
		why = "record encrypted with another key id";
		st = ARCA_ERR_CRYPTO;
	} else if (h.seq != m->id) {
		why = "bad record header (belongs to another message)";
		st = ARCA_ERR_CORRUPT;
	} else if ((uint64_t)h.body_len + ARCA_REC_OVERHEAD != m->stored_size) {
		why = "bad record header (length differs from metadata)";
		st = ARCA_ERR_CORRUPT;
	}
	if (st != ARCA_OK) {
		st = arca_error_set(err, st, "%s: %s offset %llu", why, name, off);
		goto done;
	}
	if (arca_rec_open(s->key, &h, (const uint8_t *)s->rbuf.data, &s->plain, NULL) != ARCA_OK) {
		st = arca_error_set(err, ARCA_ERR_CORRUPT, "authentication failed (record altered): "
		                    "%s offset %llu", name, off);
		goto done;
	}
	if (!arca_rec_content_parse((const uint8_t *)s->plain.data, s->plain.len, h.version, &c,
	                            &why)) {
		st = arca_error_set(err, ARCA_ERR_CORRUPT, "%s: %s offset %llu", why, name, off);
		goto done;
	}
	if (c.msg_id != m->id || memcmp(c.sha, m->sha, ARCA_SHA256_LEN) != 0 ||
	    c.raw_size != m->size) {
		st = arca_error_set(err, ARCA_ERR_CORRUPT, "record does not match metadata "
		                    "(id, sha-256 or size): %s offset %llu", name, off);
		goto done;
	}
	if (c.dict_id != 0 && (st = arca_dict_get(s, c.dict_id, &ddict, err)) != ARCA_OK)
		goto done; /* err names the dictionary */
	if (!arca_rec_decompress(s->dctx, ddict, c.payload, c.payload_len, c.raw_size,
	                         ARCA_MAX_MESSAGE_SIZE, out, &why)) {
		st = arca_error_set(err, ARCA_ERR_CORRUPT, "%s: %s offset %llu", why, name, off);
		goto done;
	}
	arca_sha256(out->data + start, out->len - start, sha);
	if (memcmp(sha, m->sha, ARCA_SHA256_LEN) != 0)
		st = arca_error_set(err, ARCA_ERR_CORRUPT, "sha-256 mismatch: %s offset %llu", name,
		                    off);
	else if (batch != NULL)
		*batch = c.batch;
done:
	if (st != ARCA_OK && out->len > start) {
		out->len = start;
		out->data[start] = '\0';
	}
	shrink(&s->rbuf);
	shrink(&s->plain);
	return st;
}

static arca_status get_row(arca_store *s, uint64_t msg_id, arca_store_msgrow *m,
                           int64_t *archive_time, arca_error *err)
{
	sqlite3_stmt *q = s->st_msg;
	arca_status st = ARCA_OK;
	int rc;
	sqlite3_bind_int64(q, 1, (int64_t)msg_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		m->id = msg_id;
		if (sqlite3_column_bytes(q, 0) == ARCA_SHA256_LEN)
			memcpy(m->sha, sqlite3_column_blob(q, 0), ARCA_SHA256_LEN);
		else
			st = arca_error_set(err, ARCA_ERR_CORRUPT, "bad sha-256 in metadata");
		m->size = (uint64_t)sqlite3_column_int64(q, 1);
		m->stored_size = (uint64_t)sqlite3_column_int64(q, 2);
		m->container = (uint32_t)sqlite3_column_int64(q, 3);
		m->offset = (uint64_t)sqlite3_column_int64(q, 4);
		if (archive_time != NULL)
			*archive_time = sqlite3_column_int64(q, 5);
	} else if (rc == SQLITE_DONE) {
		st = arca_error_set(err, ARCA_ERR_NOTFOUND, "no message %llu in store",
		                    (unsigned long long)msg_id);
	} else {
		st = arca_meta_err(s->db, rc, err, "cannot read message metadata");
	}
	sqlite3_reset(q);
	return st;
}

arca_status arca_store_get(arca_store *s, uint64_t msg_id, arca_buf *out, arca_error *err)
{
	arca_store_msgrow m;
	arca_status st = get_row(s, msg_id, &m, NULL, err);
	if (st != ARCA_OK)
		return st;
	st = arca_store_read_msg(s, &m, out, NULL, err);
	if (st != ARCA_OK && err != NULL) {
		char tmp[ARCA_ERROR_MSG_MAX];
		snprintf(tmp, sizeof(tmp), "%s", err->msg);
		snprintf(err->msg, sizeof(err->msg), "message %llu: %.400s", (unsigned long long)msg_id,
		         tmp);
	}
	return st;
}

arca_status arca_store_msginfo_get(arca_store *s, uint64_t msg_id, arca_store_msginfo *out,
                                   arca_error *err)
{
	arca_store_msgrow m = {0};
	arca_status st = get_row(s, msg_id, &m, &out->archive_time, err);
	if (st != ARCA_OK)
		return st;
	out->msg_id = msg_id;
	out->size = m.size;
	out->stored_size = m.stored_size;
	memcpy(out->sha, m.sha, ARCA_SHA256_LEN);
	return ARCA_OK;
}

/* Iterations prepare their own statement so a callback may use the store (even iterate). */
static arca_status each(arca_store *s, const char *sql, const int64_t *args, int nargs,
                        arca_store_member_cb cb, void *ctx, arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_status st = ARCA_OK;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot list members");
	for (int i = 0; i < nargs; i++)
		sqlite3_bind_int64(q, i + 1, args[i]);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		st = cb(ctx, (uint64_t)sqlite3_column_int64(q, 0), (uint32_t)sqlite3_column_int64(q, 1),
		        (uint32_t)sqlite3_column_int64(q, 2), (uint64_t)sqlite3_column_int64(q, 3));
		if (st != ARCA_OK)
			break;
	}
	if (st == ARCA_OK && rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot list members");
	sqlite3_finalize(q);
	return st;
}

#define MEMBER_COLS "SELECT message_id, archive_id, folder_id, batch FROM members "

arca_status arca_store_each_member(arca_store *s, uint32_t archive_id, uint32_t folder_id,
                                   arca_store_member_cb cb, void *ctx, arca_error *err)
{
	int64_t a[2] = {folder_id, archive_id};
	bool v5 = s->format >= ARCA_STORE_FORMAT;
	/* a folder in UID order: one range of the key (before format 5, in message order) */
	if (folder_id != 0 && archive_id != 0)
		return each(s, v5 ? MEMBER_COLS "WHERE folder_id = ?1 AND archive_id = ?2 ORDER BY uid" :
		            MEMBER_COLS "WHERE folder_id = ?1 AND archive_id = ?2 ORDER BY message_id",
		            a, 2, cb, ctx, err);
	if (folder_id != 0)
		return each(s, v5 ? MEMBER_COLS "WHERE folder_id = ?1 ORDER BY uid" :
		            MEMBER_COLS "WHERE folder_id = ?1 ORDER BY message_id", a, 1, cb, ctx, err);
	if (archive_id != 0)
		return each(s, MEMBER_COLS "INDEXED BY members_archive WHERE archive_id = ?1 "
		            "ORDER BY message_id", a + 1, 1, cb, ctx, err);
	return each(s, MEMBER_COLS "ORDER BY message_id, folder_id", NULL, 0, cb, ctx, err);
}

arca_status arca_store_each_member_since(arca_store *s, uint64_t after_batch,
                                         arca_store_member_cb cb, void *ctx, arca_error *err)
{
	/* committed batches only: on a writer's handle the open batch's rows are visible too,
	 * and an index must never take in what may still be rolled back */
	int64_t a[2] = {(int64_t)after_batch, (int64_t)arca_store_last_batch(s)};
	if (s->format < ARCA_STORE_FORMAT) /* read-only, not upgraded: members has no uid */
		return each(s, MEMBER_COLS "WHERE batch > ?1 AND batch <= ?2 ORDER BY batch,"
		            " message_id", a, 2, cb, ctx, err);
	/* each batch's memberships of a folder are one UID range of it (batch_uids); the batch
	 * test keeps the rows of other batches out should ranges overlap (UIDs given anew by a
	 * recreate) */
	return each(s, "SELECT m.message_id, m.archive_id, m.folder_id, m.batch FROM batch_uids b"
	            " CROSS JOIN members m ON m.folder_id = b.folder_id AND m.uid BETWEEN"
	            " b.first_uid AND b.last_uid AND m.batch = b.batch WHERE b.batch > ?1 AND"
	            " b.batch <= ?2 ORDER BY b.batch, b.folder_id, m.uid", a, 2, cb, ctx, err);
}

/* ---- UIDs ---- */

/* The highest batch a UID query may show: on a writer's handle with an open batch, its staged
 * rows are visible to its own connection and must not be. */
static int64_t committed_batch(const arca_store *s)
{
	return s->in_txn ? (int64_t)s->last_batch : INT64_MAX;
}

static arca_status uid_prepare(arca_store *s, const char *sql, sqlite3_stmt **q, arca_error *err)
{
	int rc;
	if (s->format < ARCA_STORE_FORMAT)
		return arca_error_set(err, ARCA_ERR_STATE, "store %s has format %d, without UIDs "
		                      "(a writer's open upgrades it)", s->meta_path, s->format);
	rc = sqlite3_prepare_v2(s->db, sql, -1, q, NULL);
	return rc == SQLITE_OK ? ARCA_OK : arca_meta_err(s->db, rc, err, "cannot read UIDs");
}

arca_status arca_store_folder_uids(arca_store *s, uint32_t folder_id, uint32_t from_uid,
                                   arca_store_uid_cb cb, void *ctx, arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_status st = uid_prepare(s, "SELECT uid, message_id FROM members WHERE folder_id = ?1"
	                             " AND uid >= ?2 AND batch <= ?3 ORDER BY uid", &q, err);
	int rc;
	if (st != ARCA_OK)
		return st;
	sqlite3_bind_int64(q, 1, folder_id);
	sqlite3_bind_int64(q, 2, from_uid);
	sqlite3_bind_int64(q, 3, committed_batch(s));
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		st = cb(ctx, (uint32_t)sqlite3_column_int64(q, 0), (uint64_t)sqlite3_column_int64(q, 1));
		if (st != ARCA_OK)
			break;
	}
	if (st == ARCA_OK && rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot read UIDs");
	sqlite3_finalize(q);
	return st;
}

/* The first committed UID of a folder above after, scanning up (asc) or down from the top. */
static arca_status uid_edge(arca_store *s, uint32_t folder_id, uint32_t after, bool asc,
                            uint32_t *uid, arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_status st = uid_prepare(s, asc ? "SELECT uid FROM members WHERE folder_id = ?1 AND"
	                             " uid > ?2 AND batch <= ?3 ORDER BY uid LIMIT 1" :
	                             "SELECT uid FROM members WHERE folder_id = ?1 AND uid > ?2 AND"
	                             " batch <= ?3 ORDER BY uid DESC LIMIT 1", &q, err);
	int rc;
	*uid = 0;
	if (st != ARCA_OK)
		return st;
	sqlite3_bind_int64(q, 1, folder_id);
	sqlite3_bind_int64(q, 2, after);
	sqlite3_bind_int64(q, 3, committed_batch(s));
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*uid = (uint32_t)sqlite3_column_int64(q, 0);
	else if (rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot read UIDs");
	sqlite3_finalize(q);
	return st;
}

arca_status arca_store_folder_max_uid(arca_store *s, uint32_t folder_id, uint32_t *max_uid,
                                      arca_error *err)
{
	return uid_edge(s, folder_id, 0, false, max_uid, err);
}

arca_status arca_store_folder_uid_after(arca_store *s, uint32_t folder_id, uint32_t after,
                                        uint32_t *uid, arca_error *err)
{
	return uid_edge(s, folder_id, after, true, uid, err);
}

arca_status arca_store_each_folder_max_uid(arca_store *s, arca_store_folder_uid_cb cb, void *ctx,
                                           arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_status st = uid_prepare(s, "SELECT folder_id FROM members WHERE folder_id > ?"
	                             " ORDER BY folder_id LIMIT 1", &q, err);
	int64_t f = 0;
	int rc;
	if (st != ARCA_OK)
		return st;
	/* one seek per folder rather than a scan of every membership */
	for (;;) {
		uint32_t max = 0;
		sqlite3_bind_int64(q, 1, f);
		rc = sqlite3_step(q);
		if (rc == SQLITE_ROW)
			f = sqlite3_column_int64(q, 0);
		sqlite3_reset(q);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			st = arca_meta_err(s->db, rc, err, "cannot read UIDs");
			break;
		}
		if (f <= 0 || f > UINT32_MAX) {
			st = arca_error_set(err, ARCA_ERR_CORRUPT, "membership with bad folder id %lld",
			                    (long long)f);
			break;
		}
		if ((st = arca_store_folder_max_uid(s, (uint32_t)f, &max, err)) != ARCA_OK)
			break;
		if (max != 0 && (st = cb(ctx, (uint32_t)f, max)) != ARCA_OK)
			break;
	}
	sqlite3_finalize(q);
	return st;
}

static arca_status query_u64(arca_store *s, const char *sql, const int64_t *arg, uint64_t *v1,
                             uint64_t *v2, arca_error *err)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(s->db, rc, err, "cannot read statistics");
	if (arg != NULL)
		sqlite3_bind_int64(q, 1, *arg);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*v1 = (uint64_t)sqlite3_column_int64(q, 0);
		if (v2 != NULL)
			*v2 = (uint64_t)sqlite3_column_int64(q, 1);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_OK ? ARCA_OK : arca_meta_err(s->db, rc, err, "cannot read statistics");
}

static uint64_t file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

arca_status arca_store_stats_get(arca_store *s, arca_store_stats *out, arca_error *err)
{
	char wal[ARCA_PATH_MAX + 8];
	arca_status st;
	memset(out, 0, sizeof(*out));
	st = query_u64(s, "SELECT count(*), coalesce(sum(size), 0) FROM messages", NULL,
	               &out->messages, &out->raw_bytes, err);
	if (st == ARCA_OK)
		st = query_u64(s, "SELECT count(*) FROM members", NULL, &out->memberships, NULL, err);
	if (st == ARCA_OK)
		st = query_u64(s, "SELECT coalesce(sum(committed_len), 0) FROM containers", NULL,
		               &out->stored_bytes, NULL, err);
	snprintf(wal, sizeof(wal), "%s-wal", s->meta_path);
	out->meta_bytes = file_size(s->meta_path) + file_size(wal);
	return st;
}

arca_status arca_store_archive_stats(arca_store *s, uint32_t archive_id, uint64_t *messages,
                                     uint64_t *raw_bytes, arca_error *err)
{
	int64_t a = archive_id;
	uint64_t dummy;
	return query_u64(s, "SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE id IN"
	                 " (SELECT message_id FROM members WHERE archive_id = ?1)", &a, messages,
	                 raw_bytes != NULL ? raw_bytes : &dummy, err);
}

arca_status arca_store_archive_stored(arca_store *s, uint32_t archive_id, uint64_t *stored_bytes,
                                      arca_error *err)
{
	int64_t a = archive_id;
	return query_u64(s, "SELECT coalesce(sum(stored_size), 0) FROM messages WHERE id IN"
	                 " (SELECT message_id FROM members WHERE archive_id = ?1)", &a, stored_bytes,
	                 NULL, err);
}

arca_status arca_store_folder_count(arca_store *s, uint32_t folder_id, uint64_t *messages,
                                    arca_error *err)
{
	int64_t a = folder_id;
	return query_u64(s, "SELECT count(*) FROM members WHERE folder_id = ?1", &a, messages, NULL,
	                 err);
}

/* Ingest: batches of messages into the current store and the archives' indexes.
 * Order per batch: store commit (durable) -> index commits (derived; caught up on open
 * if a crash came between) -> report the batch as committed. */
#include "archive/instance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/indexer.h"
#include "archive/xtext.h"
#include "lib/fs.h"
#include "lib/log.h"

arca_status inst_index_path(inst_store *s, uint32_t archive_id, char *out, size_t outsz)
{
	char name[32];
	snprintf(name, sizeof(name), "a%u.db", archive_id);
	return arca_fs_join(out, outsz, s->index_dir, name);
}

arca_status inst_index_doc(arca_index *ix, uint64_t msg_id, uint32_t folder_id, const void *data,
                           size_t len, int64_t archive_time, const char **warning,
                           arca_error *err)
{
	arca_mime_info *info = NULL;
	arca_index_doc doc;
	arca_index_xtext x;
	arca_status st = arca_mime_parse(data, len, &info, err);
	static __thread char warnbuf[256];
	if (warning)
		*warning = NULL;
	if (st != ARCA_OK)
		return st;
	if (warning && info->warnings != 0) {
		snprintf(warnbuf, sizeof(warnbuf), "%s", info->warning ? info->warning : "malformed");
		*warning = warnbuf;
	}
	doc.msg_id = msg_id;
	doc.folder_id = folder_id;
	doc.date = info->date != ARCA_MIME_DATE_NONE ? info->date : archive_time;
	doc.size = len;
	doc.info = info;
	inst_xtext_make(data, len, info, &x);
	doc.x = &x;
	st = arca_index_add(ix, &doc, err);
	arca_index_xtext_free(&x);
	arca_mime_info_free(&info);
	return st;
}

arca_status inst_index_message(arca_instance *in, inst_store *s, arca_index *ix, uint64_t msg_id,
                               uint32_t folder_id, arca_buf *scratch, arca_error *err)
{
	arca_store_msginfo mi;
	arca_status st;
	(void)in;
	if (arca_index_has(ix, msg_id))
		return arca_index_add_folder(ix, msg_id, folder_id, err);
	arca_buf_reset(scratch);
	st = arca_store_get(s->store, msg_id, scratch, err);
	if (st == ARCA_OK)
		st = arca_store_msginfo_get(s->store, msg_id, &mi, err);
	if (st == ARCA_ERR_CORRUPT || st == ARCA_ERR_CRYPTO) {
		/* a damaged record must not block indexing of the rest; verify reports it */
		arca_log(ARCA_LOG_WARN, "index", "store %u message %llu not indexed: %s", s->id,
		         (unsigned long long)msg_id, err ? err->msg : "damaged");
		return ARCA_OK;
	}
	if (st != ARCA_OK)
		return st;
	return inst_index_doc(ix, msg_id, folder_id, scratch->data, scratch->len, mi.archive_time,
	                      NULL, err);
}

typedef struct {
	arca_instance *in;
	inst_store *s;
	arca_index *ix;
	uint32_t archive_id;
	arca_buf scratch;
	uint64_t n;
	arca_error *err;
} catchup_ctx;

static arca_status catchup_cb(void *vctx, uint64_t msg_id, uint32_t archive_id, uint32_t folder_id,
                              uint64_t batch)
{
	catchup_ctx *c = vctx;
	(void)batch;
	if (archive_id != c->archive_id)
		return ARCA_OK;
	c->n++;
	return inst_index_message(c->in, c->s, c->ix, msg_id, folder_id, &c->scratch, c->err);
}

/* Brings an index up to the store's last committed batch (after a crash between the store
 * commit and the index commit, or for an index that was deleted). */
static arca_status index_catch_up(arca_instance *in, inst_store *s, inst_index *x, arca_error *err)
{
	uint64_t have = arca_index_last_batch(x->ix), want = arca_store_last_batch(s->store);
	catchup_ctx c;
	arca_status st;
	if (have >= want)
		return ARCA_OK;
	memset(&c, 0, sizeof(c));
	c.in = in;
	c.s = s;
	c.ix = x->ix;
	c.archive_id = x->archive_id;
	c.err = err;
	arca_buf_init(&c.scratch, ARCA_MAX_MESSAGE_SIZE);
	st = arca_index_begin(x->ix, err);
	if (st == ARCA_OK)
		st = arca_store_each_member_since(s->store, have, catchup_cb, &c, err);
	if (st == ARCA_OK)
		st = arca_index_commit(x->ix, want, err);
	else
		arca_index_rollback(x->ix);
	arca_buf_free(&c.scratch);
	if (st == ARCA_OK && c.n > 0)
		arca_log(ARCA_LOG_INFO, "index", "store %u archive %u: caught up %llu messages", s->id,
		         x->archive_id, (unsigned long long)c.n);
	return st;
}

arca_status inst_index_get(arca_instance *in, inst_store *s, uint32_t archive_id, bool writable,
                           arca_index **out, arca_error *err)
{
	char path[ARCA_PATH_MAX];
	arca_status st;
	inst_index *x = NULL;
	if (in->flags & ARCA_INSTANCE_READONLY)
		writable = false;
	for (size_t i = 0; i < s->n_ix; i++) {
		if (s->ixs[i].archive_id == archive_id) {
			x = &s->ixs[i];
			break;
		}
	}
	if (x != NULL && (!writable || x->writable)) {
		*out = x->ix;
		return ARCA_OK;
	}
	if (inst_index_path(s, archive_id, path, sizeof(path)) != ARCA_OK)
		return arca_error_set(err, ARCA_ERR_LIMIT, "index path too long");
	if (!writable && !arca_fs_exists(path))
		return ARCA_ERR_NOTFOUND;
	if (x == NULL) {
		if (s->n_ix == s->cap_ix) {
			size_t ncap = s->cap_ix ? s->cap_ix * 2 : 8;
			inst_index *nx = realloc(s->ixs, ncap * sizeof(*nx));
			if (nx == NULL)
				return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			s->ixs = nx;
			s->cap_ix = ncap;
		}
		x = &s->ixs[s->n_ix++];
		memset(x, 0, sizeof(*x));
		x->archive_id = archive_id;
	} else {
		arca_index_close(&x->ix);
	}
	st = arca_index_open(path, writable ? ARCA_INDEX_CREATE : ARCA_INDEX_READONLY, &x->ix, err);
	if (st != ARCA_OK) {
		*x = s->ixs[--s->n_ix];
		return st;
	}
	x->writable = writable;
	if (writable && s->store != NULL && s->store_writable && !in->rebuilding) {
		st = index_catch_up(in, s, x, err);
		if (st != ARCA_OK)
			return st;
	}
	*out = x->ix;
	return ARCA_OK;
}

/* ---- the ingest session ---- */

struct arca_ingest {
	arca_instance *in;
	size_t batch_size;
	arca_ingest_commit_cb cb;
	void *ctx;
	arca_ingest_item *items;
	size_t n_items;
	uint32_t store_id; /* store the pending batch goes to */
	uint64_t pending_new;
	arca_ingest_stats stats;
	arca_ingest_stats pending; /* counts of the uncommitted batch */
	bool failed;
	inst_indexer *indexer;
	/* next UID per folder (sorted by folder_id), from inst_uid_next at first use; dirty: UIDs
	 * given since the last raise of the high-water mark */
	struct ing_uid {
		uint32_t folder_id;
		uint32_t next;
		bool dirty;
	} *uids;
	size_t nuids, capuids;
	bool locked; /* holds the UID lock */
};

arca_status arca_ingest_begin(arca_instance *in, size_t batch_size, arca_ingest_commit_cb cb,
                              void *ctx, arca_ingest **out, arca_error *err)
{
	arca_ingest *ing;
	*out = NULL;
	if (in->flags & ARCA_INSTANCE_READONLY)
		return arca_error_set(err, ARCA_ERR_STATE, "instance opened read-only");
	ing = calloc(1, sizeof(*ing));
	if (ing == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	ing->in = in;
	ing->batch_size = batch_size ? batch_size : 1000;
	ing->cb = cb;
	ing->ctx = ctx;
	ing->items = calloc(ing->batch_size, sizeof(*ing->items));
	if (ing->items == NULL) {
		free(ing);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	/* one writer of UIDs per instance: two ingests could give the same UID in two stores */
	if (inst_uid_lock(in, err) != ARCA_OK) {
		free(ing->items);
		free(ing);
		return err ? err->status : ARCA_ERR_STATE;
	}
	ing->locked = true;
	if (inst_indexer_start(&ing->indexer, err) != ARCA_OK) {
		inst_uid_unlock(in);
		free(ing->items);
		free(ing);
		return err ? err->status : ARCA_ERR_NOMEM;
	}
	*out = ing;
	return ARCA_OK;
}

/* The session's UID slot of folder f: first use starts above the instance's high-water mark
 * and every enabled store's UIDs of the folder. */
static arca_status uid_slot(arca_ingest *ing, uint32_t f, struct ing_uid **out, arca_error *err)
{
	size_t lo = 0, hi = ing->nuids;
	uint32_t next;
	arca_status st;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ing->uids[mid].folder_id < f)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ing->nuids && ing->uids[lo].folder_id == f) {
		*out = &ing->uids[lo];
		return ARCA_OK;
	}
	if ((st = inst_uid_next(ing->in, f, 0, &next, err)) != ARCA_OK)
		return st;
	if (ing->nuids == ing->capuids) {
		size_t nc = ing->capuids ? 2 * ing->capuids : 16;
		struct ing_uid *n = realloc(ing->uids, nc * sizeof(*n));
		if (n == NULL)
			return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		ing->uids = n;
		ing->capuids = nc;
	}
	memmove(ing->uids + lo + 1, ing->uids + lo, (ing->nuids - lo) * sizeof(*ing->uids));
	ing->uids[lo] = (struct ing_uid){.folder_id = f, .next = next};
	ing->nuids++;
	*out = &ing->uids[lo];
	return ARCA_OK;
}

/* After a durable store commit: the high-water marks of the folders that got UIDs. A failure
 * only leaves the mark behind the stores, which every reader of it allows for. */
static void uid_raise(arca_ingest *ing)
{
	uint32_t *ids, *next;
	size_t n = 0;
	arca_error e;
	if (ing->nuids == 0)
		return;
	ids = malloc(ing->nuids * sizeof(*ids));
	next = malloc(ing->nuids * sizeof(*next));
	if (ids != NULL && next != NULL) {
		for (size_t i = 0; i < ing->nuids; i++) {
			if (!ing->uids[i].dirty)
				continue;
			ids[n] = ing->uids[i].folder_id;
			next[n++] = ing->uids[i].next;
		}
		if (inst_uid_raise(ing->in, ids, next, n, &e) == ARCA_OK) {
			for (size_t i = 0; i < ing->nuids; i++)
				ing->uids[i].dirty = false;
		} else {
			arca_log(ARCA_LOG_WARN, "ingest", "UID high-water marks not recorded: %s", e.msg);
		}
	}
	free(ids);
	free(next);
}

const arca_ingest_stats *arca_ingest_get_stats(const arca_ingest *ing)
{
	return &ing->stats;
}

static void add_stats(arca_ingest_stats *a, const arca_ingest_stats *b)
{
	a->archived += b->archived;
	a->new_content += b->new_content;
	a->duplicates += b->duplicates;
	a->already_present += b->already_present;
	a->warnings += b->warnings;
	a->bytes += b->bytes;
	a->committed += b->archived + b->already_present;
}

arca_status arca_ingest_commit(arca_ingest *ing, arca_error *err)
{
	inst_store *s;
	uint64_t batch = 0;
	arca_status st;
	if (ing->failed)
		return arca_error_set(err, ARCA_ERR_STATE, "ingest stopped after an earlier error");
	if (ing->n_items == 0 && ing->pending.already_present == 0)
		return ARCA_OK;
	s = inst_store_by_id(ing->in, ing->store_id);
	if (s == NULL || s->store == NULL)
		return ARCA_OK;
	st = arca_store_commit(s->store, &batch, err);
	if (st != ARCA_OK) {
		inst_indexer_rollback(ing->indexer);
		ing->failed = true;
		ing->n_items = 0;
		ing->pending_new = 0;
		memset(&ing->pending, 0, sizeof(ing->pending));
		return st;
	}
	s->content_count += ing->pending_new;
	add_stats(&ing->stats, &ing->pending);
	ing->stats.batches++;
	uid_raise(ing);
	/* report first: the batch is durable now; the index commit may wait for the queue */
	if (ing->cb != NULL && ing->n_items > 0)
		ing->cb(ing->ctx, ing->items, ing->n_items);
	/* the indexes follow in the same order on the indexing thread */
	inst_indexer_commit(ing->indexer, batch);
	ing->n_items = 0;
	ing->pending_new = 0;
	memset(&ing->pending, 0, sizeof(ing->pending));
	return ARCA_OK;
}

/* Drops the staged batch everywhere and stops the session: nothing of it was reported. */
static void abort_batch(arca_ingest *ing, inst_store *s)
{
	arca_store_rollback(s->store);
	inst_indexer_rollback(ing->indexer);
	ing->failed = true;
	ing->n_items = 0;
	ing->pending_new = 0;
	memset(&ing->pending, 0, sizeof(ing->pending));
}

static inst_store *current_store(arca_instance *in)
{
	for (size_t i = 0; i < in->n_stores; i++)
		if (in->stores[i].state == ARCA_STORE_CURRENT)
			return &in->stores[i];
	return NULL;
}

/* Creates a new current store when the current one is full. */
static arca_status rollover(arca_ingest *ing, inst_store **sp, arca_error *err)
{
	arca_instance *in = ing->in;
	inst_store *s = *sp;
	uint32_t nid;
	arca_status st;
	if (s->content_count + ing->pending_new < in->store_max)
		return ARCA_OK;
	if ((st = arca_ingest_commit(ing, err)) != ARCA_OK)
		return st;
	/* store handles are reloaded below: the indexing thread must be done with them */
	inst_indexer_sync(ing->indexer);
	arca_log(ARCA_LOG_INFO, "ingest", "store %u reached %llu messages; creating a new store",
	         s->id, (unsigned long long)s->content_count);
	if ((st = arca_instance_store_create(in, NULL, NULL, NULL, NULL, true, &nid, err)) != ARCA_OK)
		return st;
	*sp = inst_store_by_id(in, nid);
	return ARCA_OK;
}

arca_status arca_ingest_add(arca_ingest *ing, const void *data, size_t len, uint32_t archive_id,
                            uint32_t folder_id, const char **warning, arca_error *err)
{
	arca_instance *in = ing->in;
	inst_store *s;
	arca_store_dest dest;
	arca_store_added added;
	arca_index *ix;
	arca_ingest_item *item;
	struct ing_uid *uid = NULL;
	char aname[ARCA_NAME_MAX], apath_arch[ARCA_NAME_MAX], fpath[ARCA_FOLDER_MAX];
	arca_status st;

	if (warning)
		*warning = NULL;
	if (ing->failed)
		return arca_error_set(err, ARCA_ERR_STATE, "ingest stopped after an earlier error");
	if (len > ARCA_MAX_MESSAGE_SIZE) {
		ing->stats.errors++;
		return arca_error_set(err, ARCA_ERR_LIMIT, "message of %zu bytes exceeds the limit of %u",
		                      len, ARCA_MAX_MESSAGE_SIZE);
	}
	s = current_store(in);
	if (s == NULL)
		return arca_error_set(err, ARCA_ERR_STATE,
		                      "no current store: set one with arcactl store set-state ID current");
	if ((st = inst_store_open(in, s, true, err)) != ARCA_OK)
		return st;
	if ((st = rollover(ing, &s, err)) != ARCA_OK)
		return st;
	if ((st = inst_store_open(in, s, true, err)) != ARCA_OK)
		return st;
	if (ing->n_items > 0 && ing->store_id != s->id && (st = arca_ingest_commit(ing, err)) != ARCA_OK)
		return st;
	ing->store_id = s->id;
	if (inst_archive_name(in, archive_id, aname, sizeof(aname)) != ARCA_OK ||
	    inst_folder_name(in, folder_id, apath_arch, sizeof(apath_arch), fpath, sizeof(fpath)) !=
	        ARCA_OK)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "unknown archive or folder id");
	/* the index first: opening it may catch it up, which must happen before this message is
	 * staged (catch-up reads committed batches only, see arca_store_each_member_since) */
	st = inst_index_get(in, s, archive_id, true, &ix, err);
	if (st != ARCA_OK)
		return st;
	if ((st = uid_slot(ing, folder_id, &uid, err)) != ARCA_OK)
		return st;
	if (uid->next > ARCA_UID_MAX) {
		ing->stats.errors++;
		return arca_error_set(err, ARCA_ERR_LIMIT, "folder %s/%s has no UIDs left", aname,
		                      fpath);
	}
	item = &ing->items[ing->n_items];
	arca_sha256(data, len, item->sha);
	dest.archive_id = archive_id;
	dest.folder_id = folder_id;
	dest.archive_name = aname;
	dest.folder_path = fpath;
	dest.archive_time = (int64_t)time(NULL);
	dest.uid = uid->next;
	st = arca_store_add(s->store, data, len, item->sha, &dest, &added, err);
	if (st != ARCA_OK) {
		/* the store rolled its whole staged batch back: so must we */
		abort_batch(ing, s);
		return st;
	}
	if (added.new_member) {
		uid->next = added.uid + 1;
		uid->dirty = true;
	}
	ing->pending.bytes += len;
	if (!added.new_member) {
		ing->pending.already_present++;
		ing->pending.duplicates++;
		goto maybe_commit;
	}
	ing->pending.archived++;
	if (added.new_content) {
		ing->pending.new_content++;
		ing->pending_new++;
	} else {
		ing->pending.duplicates++;
	}
	item->store_id = s->id;
	item->msg_id = added.msg_id;
	item->is_new = added.new_content;
	ing->n_items++;

	if (added.new_content || added.new_in_archive) {
		/* parse here, index on the indexing thread */
		arca_mime_info *info = NULL;
		st = arca_mime_parse(data, len, &info, err);
		if (st != ARCA_OK) {
			/* staged but not indexable (out of memory): never commit it unindexed */
			abort_batch(ing, s);
			return st;
		}
		if (info->warnings != 0) {
			static __thread char warnbuf[256];
			snprintf(warnbuf, sizeof(warnbuf), "%s", info->warning ? info->warning : "malformed");
			ing->pending.warnings++;
			if (warning)
				*warning = warnbuf;
		}
		arca_index_xtext x;
		inst_xtext_make(data, len, info, &x);
		inst_indexer_doc(ing->indexer, ix, added.msg_id, folder_id,
		                 info->date != ARCA_MIME_DATE_NONE ? info->date : dest.archive_time, len,
		                 info, &x);
	} else {
		inst_indexer_folder(ing->indexer, ix, added.msg_id, folder_id);
	}
maybe_commit:
	if (ing->n_items >= ing->batch_size ||
	    ing->pending.already_present + ing->n_items >= ing->batch_size * 4)
		return arca_ingest_commit(ing, err);
	return ARCA_OK;
}

arca_status arca_ingest_end(arca_ingest **ingp, arca_error *err)
{
	arca_ingest *ing = *ingp;
	arca_status st = ARCA_OK;
	if (ing == NULL)
		return ARCA_OK;
	if (!ing->failed)
		st = arca_ingest_commit(ing, err);
	inst_indexer_stop(&ing->indexer);
	if (ing->locked)
		inst_uid_unlock(ing->in);
	free(ing->uids);
	free(ing->items);
	free(ing);
	*ingp = NULL;
	return st;
}

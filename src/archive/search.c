/* Search across every store and every archive in scope: each (store, archive) index answers
 * its best `offset + limit` hits; the hits are merged by sort key (newest first) or rank. */
#include "archive/instance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/query.h"

arca_status arca_msgid_parse(const char *text, uint32_t *store_id, uint64_t *msg_id)
{
	char *end;
	unsigned long long sid, mid;
	if (text == NULL || *text < '0' || *text > '9')
		return ARCA_ERR_INVALID;
	sid = strtoull(text, &end, 10);
	if (*end != ':' || sid == 0 || sid > UINT32_MAX || end[1] < '0' || end[1] > '9')
		return ARCA_ERR_INVALID;
	mid = strtoull(end + 1, &end, 10);
	if (*end != '\0' || mid == 0)
		return ARCA_ERR_INVALID;
	*store_id = (uint32_t)sid;
	*msg_id = mid;
	return ARCA_OK;
}

arca_status arca_instance_get(arca_instance *in, uint32_t store_id, uint64_t msg_id, arca_buf *out,
                              arca_error *err)
{
	inst_store *s = inst_store_by_id(in, store_id);
	arca_status st;
	if (s == NULL)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store %u", store_id);
	if ((st = inst_store_open(in, s, false, err)) != ARCA_OK)
		return st;
	return arca_store_get(s->store, msg_id, out, err);
}

typedef struct {
	uint32_t id;
	char *name;
} archive_ref;

static void archive_refs_free(archive_ref *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].name);
	free(a);
}

/* Archives in scope: the intersection of opts->archives (if any) and the query's archive:
 * values (if any); all archives when neither is given. */
static arca_status scope_archives(arca_instance *in, const arca_query *q,
                                  const arca_instance_search_opts *opts, archive_ref **out,
                                  size_t *n, arca_error *err)
{
	sqlite3_stmt *st;
	archive_ref *a = NULL;
	size_t cnt = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(in->db, "SELECT id, name FROM archives ORDER BY id", -1, &st, NULL) !=
	    SQLITE_OK)
		return inst_db_err(in, err, "archives");
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		bool ok = true;
		if (opts->n_archives > 0) {
			ok = false;
			for (size_t i = 0; i < opts->n_archives; i++)
				if (strcmp(opts->archives[i], name) == 0)
					ok = true;
		}
		if (ok && arca_query_n_archives(q) > 0) {
			ok = false;
			for (size_t i = 0; i < arca_query_n_archives(q); i++)
				if (strcmp(arca_query_archive(q, i), name) == 0)
					ok = true;
		}
		if (!ok)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			archive_ref *na = realloc(a, ncap * sizeof(*na));
			if (na == NULL) {
				sqlite3_finalize(st);
				archive_refs_free(a, cnt);
				return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			}
			a = na;
			cap = ncap;
		}
		a[cnt].id = (uint32_t)sqlite3_column_int64(st, 0);
		a[cnt].name = strdup(name);
		cnt++;
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < opts->n_archives; i++) {
		bool found = false;
		for (size_t j = 0; j < cnt; j++)
			if (strcmp(a[j].name, opts->archives[i]) == 0)
				found = true;
		if (!found) {
			archive_refs_free(a, cnt);
			return arca_error_set(err, ARCA_ERR_NOTFOUND, "no archive named \"%s\"",
			                      opts->archives[i]);
		}
	}
	*out = a;
	*n = cnt;
	return ARCA_OK;
}

/* Folder ids of an archive matching the query's folder: values (the folder or below it). */
static arca_status scope_folders(arca_instance *in, const arca_query *q, uint32_t archive_id,
                                 uint32_t **ids, size_t *n, arca_error *err)
{
	sqlite3_stmt *st;
	uint32_t *v = NULL;
	size_t cnt = 0, cap = 0;
	*ids = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(in->db, "SELECT id, path FROM folders WHERE archive_id=?", -1, &st,
	                       NULL) != SQLITE_OK)
		return inst_db_err(in, err, "folders");
	sqlite3_bind_int64(st, 1, archive_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 1);
		bool ok = false;
		for (size_t i = 0; i < arca_query_n_folders(q); i++) {
			const char *f = arca_query_folder(q, i);
			size_t fl = strlen(f);
			if (strcmp(path, f) == 0 || (strncmp(path, f, fl) == 0 && path[fl] == '/'))
				ok = true;
		}
		if (!ok)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			uint32_t *nv = realloc(v, ncap * sizeof(*nv));
			if (nv == NULL) {
				free(v);
				sqlite3_finalize(st);
				return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			}
			v = nv;
			cap = ncap;
		}
		v[cnt++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	*ids = v;
	*n = cnt;
	return ARCA_OK;
}

typedef struct {
	arca_hit hit;
	uint32_t store_id;
} tagged_hit;

/* After a crash between a store commit and the following index commit, an index lags its
 * store. A search catches it up first when it may write and no import holds the store;
 * otherwise it answers from the index as it is (an import catches up on its own). */
static arca_status fresh_index(arca_instance *in, inst_store *s, uint32_t archive_id,
                               arca_index **ix, arca_error *err)
{
	arca_status st = inst_store_open(in, s, false, err);
	bool lag = false;
	if (st != ARCA_OK)
		return st;
	st = inst_index_get(in, s, archive_id, false, ix, err);
	if (st == ARCA_ERR_NOTFOUND) {
		uint64_t m = 0;
		lag = arca_store_archive_stats(s->store, archive_id, &m, NULL, NULL) == ARCA_OK && m > 0;
	} else if (st == ARCA_OK) {
		lag = arca_index_last_batch(*ix) < arca_store_last_batch(s->store);
	} else {
		return st;
	}
	if (!lag || (in->flags & ARCA_INSTANCE_READONLY) ||
	    (s->state != ARCA_STORE_CURRENT && s->state != ARCA_STORE_NORMAL))
		return st;
	if (inst_store_open(in, s, true, NULL) != ARCA_OK) {
		if ((st = inst_store_open(in, s, false, err)) != ARCA_OK)
			return st;
		return inst_index_get(in, s, archive_id, false, ix, err);
	}
	return inst_index_get(in, s, archive_id, true, ix, err);
}

static int cmp_newest(const void *a, const void *b)
{
	const tagged_hit *x = a, *y = b;
	if (x->hit.sortkey != y->hit.sortkey)
		return x->hit.sortkey < y->hit.sortkey ? 1 : -1;
	return x->store_id < y->store_id ? 1 : (x->store_id > y->store_id ? -1 : 0);
}

static int cmp_rank(const void *a, const void *b)
{
	const tagged_hit *x = a, *y = b;
	if (x->hit.rank != y->hit.rank)
		return x->hit.rank < y->hit.rank ? -1 : 1;
	return cmp_newest(a, b);
}

static int cmp_message(const void *a, const void *b)
{
	const tagged_hit *x = a, *y = b;
	if (x->store_id != y->store_id)
		return x->store_id < y->store_id ? -1 : 1;
	if (x->hit.msg_id != y->hit.msg_id)
		return x->hit.msg_id < y->hit.msg_id ? -1 : 1;
	return cmp_newest(a, b);
}

static void hit_free(arca_hit *h);

/* A message in several archives is a hit in each archive's index: keep one hit per message
 * (the best-ranked) with the folders of all. Returns the new count. */
static size_t merge_same_message(tagged_hit *all, size_t n)
{
	size_t w = 0;
	if (n < 2)
		return n;
	qsort(all, n, sizeof(*all), cmp_message);
	for (size_t r = 0; r < n; r++) {
		tagged_hit *keep = w > 0 ? &all[w - 1] : NULL;
		if (keep != NULL && keep->store_id == all[r].store_id &&
		    keep->hit.msg_id == all[r].hit.msg_id) {
			arca_hit *h = &all[r].hit;
			uint32_t *nf = realloc(keep->hit.folders,
			                       (keep->hit.n_folders + h->n_folders + 1) * sizeof(uint32_t));
			if (nf != NULL) {
				memcpy(nf + keep->hit.n_folders, h->folders, h->n_folders * sizeof(uint32_t));
				keep->hit.folders = nf;
				keep->hit.n_folders += h->n_folders;
			}
			if (h->rank < keep->hit.rank)
				keep->hit.rank = h->rank;
			hit_free(h);
			continue;
		}
		if (w != r)
			all[w] = all[r];
		w++;
	}
	return w;
}

static void hit_free(arca_hit *h)
{
	free(h->from);
	free(h->subject);
	free(h->snippet);
	free(h->folders);
}

/* Snippets come from the message itself (the index keeps no text): one read, decrypt and
 * parse per hit on the page. A message that cannot be read gets an empty snippet; verify
 * reports it. */
static void add_snippet(arca_instance *in, const arca_query *q, arca_result *r, arca_buf *scratch)
{
	arca_mime_info *info = NULL;
	inst_store *s = inst_store_by_id(in, r->store_id);
	arca_buf_reset(scratch);
	if (s != NULL && inst_store_open(in, s, false, NULL) == ARCA_OK &&
	    arca_store_get(s->store, r->msg_id, scratch, NULL) == ARCA_OK &&
	    arca_mime_parse(scratch->data, scratch->len, &info, NULL) == ARCA_OK) {
		r->snippet = arca_index_snippet(q, info->body_text, info->body_text_len);
		/* no match in the body: the words may be in an attachment's text */
		if (info->attachment_text_len > 0 &&
		    (r->snippet == NULL || strstr(r->snippet, "[[") == NULL)) {
			char *att = arca_index_snippet(q, info->attachment_text, info->attachment_text_len);
			if (att != NULL && (strstr(att, "[[") != NULL || info->body_text_len == 0)) {
				free(r->snippet);
				r->snippet = att;
			} else {
				free(att);
			}
		}
		arca_mime_info_free(&info);
	}
	if (r->snippet == NULL)
		r->snippet = strdup("");
}

arca_status arca_instance_search(arca_instance *in, const char *query,
                                 const arca_instance_search_opts *opts, arca_results *out,
                                 arca_error *err)
{
	arca_query *q = NULL;
	archive_ref *arch = NULL;
	size_t n_arch = 0, want = opts->offset + opts->limit;
	tagged_hit *all = NULL;
	size_t n_all = 0, cap_all = 0;
	arca_status st;
	arca_buf scratch;

	out->items = NULL;
	out->n = 0;
	arca_buf_init(&scratch, ARCA_MAX_MESSAGE_SIZE);
	if ((st = arca_query_parse(query, &q, err)) != ARCA_OK)
		return st;
	if ((st = scope_archives(in, q, opts, &arch, &n_arch, err)) != ARCA_OK)
		goto done;
	for (size_t si = 0; si < in->n_stores && st == ARCA_OK; si++) {
		inst_store *s = &in->stores[si];
		if (s->state == ARCA_STORE_DISABLED || !s->key_ok)
			continue;
		for (size_t ai = 0; ai < n_arch && st == ARCA_OK; ai++) {
			arca_index *ix;
			arca_hits hits = {0};
			arca_search_opts so = {.order = opts->order, .limit = want, .want_snippets = false};
			uint32_t *fids = NULL;
			size_t nf = 0;
			st = fresh_index(in, s, arch[ai].id, &ix, err);
			if (st == ARCA_ERR_NOTFOUND) {
				st = ARCA_OK;
				continue;
			}
			if (st != ARCA_OK)
				break;
			if (arca_query_n_folders(q) > 0) {
				if ((st = scope_folders(in, q, arch[ai].id, &fids, &nf, err)) != ARCA_OK)
					break;
				if (nf == 0)
					continue;
				so.folder_ids = fids;
				so.n_folder_ids = nf;
			}
			st = arca_index_search(ix, q, &so, &hits, err);
			free(fids);
			if (st != ARCA_OK) {
				arca_hits_free(&hits);
				break;
			}
			for (size_t h = 0; h < hits.n; h++) {
				if (n_all == cap_all) {
					size_t ncap = cap_all ? cap_all * 2 : 64;
					tagged_hit *na = realloc(all, ncap * sizeof(*na));
					if (na == NULL) {
						st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
						break;
					}
					all = na;
					cap_all = ncap;
				}
				all[n_all].hit = hits.hits[h];
				all[n_all].store_id = s->id;
				memset(&hits.hits[h], 0, sizeof(hits.hits[h]));
				n_all++;
			}
			arca_hits_free(&hits);
		}
	}
	if (st != ARCA_OK)
		goto done;
	n_all = merge_same_message(all, n_all);
	if (n_all > 1)
		qsort(all, n_all, sizeof(*all), opts->order == ARCA_ORDER_RELEVANCE ? cmp_rank : cmp_newest);
	if (n_all > opts->offset) {
		size_t take = n_all - opts->offset;
		if (take > opts->limit)
			take = opts->limit;
		out->items = calloc(take ? take : 1, sizeof(*out->items));
		if (out->items == NULL) {
			st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			goto done;
		}
		for (size_t i = 0; i < take; i++) {
			tagged_hit *t = &all[opts->offset + i];
			arca_result *r = &out->items[i];
			r->store_id = t->store_id;
			r->msg_id = t->hit.msg_id;
			r->date = t->hit.date;
			r->size = t->hit.size;
			r->rank = t->hit.rank;
			r->from = t->hit.from;
			r->subject = t->hit.subject;
			r->snippet = t->hit.snippet;
			t->hit.from = t->hit.subject = t->hit.snippet = NULL;
			r->folders = calloc(t->hit.n_folders ? t->hit.n_folders : 1, sizeof(char *));
			for (size_t f = 0; r->folders && f < t->hit.n_folders; f++) {
				char an[ARCA_NAME_MAX], fp[ARCA_FOLDER_MAX], full[ARCA_NAME_MAX + ARCA_FOLDER_MAX + 2];
				if (inst_folder_name(in, t->hit.folders[f], an, sizeof(an), fp, sizeof(fp)) !=
				    ARCA_OK)
					continue;
				snprintf(full, sizeof(full), "%s/%s", an, fp);
				r->folders[r->n_folders] = strdup(full);
				if (r->folders[r->n_folders])
					r->n_folders++;
			}
			if (opts->snippets && r->snippet == NULL)
				add_snippet(in, q, r, &scratch);
			out->n++;
		}
	}
done:
	arca_buf_free(&scratch);
	for (size_t i = 0; i < n_all; i++)
		hit_free(&all[i].hit);
	free(all);
	archive_refs_free(arch, n_arch);
	arca_query_free(&q);
	if (st != ARCA_OK)
		arca_results_free(out);
	return st;
}

void arca_results_free(arca_results *r)
{
	for (size_t i = 0; i < r->n; i++) {
		arca_result *x = &r->items[i];
		free(x->from);
		free(x->subject);
		free(x->snippet);
		for (size_t f = 0; f < x->n_folders; f++)
			free(x->folders[f]);
		free(x->folders);
	}
	free(r->items);
	r->items = NULL;
	r->n = 0;
}

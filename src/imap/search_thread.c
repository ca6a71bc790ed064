/* THREAD=REFERENCES and THREAD=ORDEREDSUBJECT (RFC 5256 §2.2, §2.3) on a list of messages'
 * ids, references, base subjects and dates. No I/O. Trees can be as deep as the mailbox is
 * long (a chain of replies), so every walk over them is iterative. */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/search_int.h"

typedef struct {
	long msg;     /* index into msgs, -1 for a dummy */
	long parent;  /* -1: none */
	long *kids;
	size_t nkids, cap;
} tnode;

typedef struct {
	const imapd_thread_msg *msgs;
	tnode *v;
	size_t n, cap;
	bool nomem;
} tree;

static long node_new(tree *t, long msg)
{
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 64;
		tnode *nv = realloc(t->v, nc * sizeof(*nv));
		if (nv == NULL) {
			t->nomem = true;
			return -1;
		}
		t->v = nv;
		t->cap = nc;
	}
	memset(&t->v[t->n], 0, sizeof(t->v[0]));
	t->v[t->n].msg = msg;
	t->v[t->n].parent = -1;
	return (long)t->n++;
}

static bool kid_push(tree *t, long p, long k)
{
	tnode *pn = &t->v[p];
	if (pn->nkids == pn->cap) {
		size_t nc = pn->cap ? pn->cap * 2 : 4;
		long *nk = realloc(pn->kids, nc * sizeof(*nk));
		if (nk == NULL) {
			t->nomem = true;
			return false;
		}
		pn->kids = nk;
		pn->cap = nc;
	}
	pn->kids[pn->nkids++] = k;
	return true;
}

static void link_to(tree *t, long p, long k)
{
	if (kid_push(t, p, k))
		t->v[k].parent = p;
}

static void unlink_from_parent(tree *t, long k)
{
	long p = t->v[k].parent;
	if (p < 0)
		return;
	for (size_t i = 0; i < t->v[p].nkids; i++) {
		if (t->v[p].kids[i] == k) {
			memmove(&t->v[p].kids[i], &t->v[p].kids[i + 1],
			        (t->v[p].nkids - i - 1) * sizeof(long));
			t->v[p].nkids--;
			break;
		}
	}
	t->v[k].parent = -1;
}

/* Would making p the parent of k create a loop (p is k or below k)? */
static bool would_loop(const tree *t, long p, long k)
{
	if (p == k)
		return true;
	if (t->v[k].nkids == 0)
		return false; /* nothing is below k */
	for (long a = t->v[p].parent; a >= 0; a = t->v[a].parent)
		if (a == k)
			return true;
	return false;
}

static void tree_free(tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].kids);
	free(t->v);
}

/* Sort key of a node: its message, or a dummy's first child's. */
static const imapd_thread_msg *key_msg(const tree *t, long x)
{
	while (x >= 0 && t->v[x].msg < 0)
		x = t->v[x].nkids > 0 ? t->v[x].kids[0] : -1;
	return x >= 0 ? &t->msgs[t->v[x].msg] : NULL;
}

static int cmp_msgs(const imapd_thread_msg *a, const imapd_thread_msg *b)
{
	if (a == NULL || b == NULL)
		return (a == NULL) - (b == NULL);
	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

typedef struct {
	long node;
	const imapd_thread_msg *key;
} sort_item;

static int cmp_items(const void *a, const void *b)
{
	return cmp_msgs(((const sort_item *)a)->key, ((const sort_item *)b)->key);
}

static bool sort_kids(tree *t, long *kids, size_t n)
{
	sort_item *v;
	if (n < 2)
		return true;
	v = malloc(n * sizeof(*v));
	if (v == NULL) {
		t->nomem = true;
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		v[i].node = kids[i];
		v[i].key = key_msg(t, kids[i]);
	}
	qsort(v, n, sizeof(*v), cmp_items);
	for (size_t i = 0; i < n; i++)
		kids[i] = v[i].node;
	free(v);
	return true;
}

/* Nodes below the given top-level nodes, children before their parents. */
static long *post_order(tree *t, const long *top, size_t ntop, size_t *count)
{
	long *order = malloc((t->n + 1) * sizeof(long));
	long *stack = malloc((t->n + 1) * sizeof(long));
	size_t *next = calloc(t->n + 1, sizeof(size_t));
	size_t no = 0;
	if (order == NULL || stack == NULL || next == NULL) {
		free(order);
		free(stack);
		free(next);
		t->nomem = true;
		return NULL;
	}
	for (size_t r = 0; r < ntop; r++) {
		size_t sp = 0;
		stack[sp++] = top[r];
		next[top[r]] = 0;
		while (sp > 0) {
			long x = stack[sp - 1];
			if (next[x] < t->v[x].nkids) {
				long k = t->v[x].kids[next[x]++];
				next[k] = 0;
				stack[sp++] = k;
			} else {
				order[no++] = x;
				sp--;
			}
		}
	}
	free(stack);
	free(next);
	*count = no;
	return order;
}

/* Rebuilds a sibling list without dummies: a childless dummy goes, a dummy with children is
 * replaced by them (at the top level only if it has just one). */
static bool prune_list(tree *t, long **kids, size_t *nkids, size_t *capp, bool top)
{
	long *nv = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < *nkids; i++) {
		long k = (*kids)[i];
		const tnode *kn = &t->v[k];
		size_t add = 1;
		const long *src = &(*kids)[i];
		if (kn->msg < 0 && kn->nkids == 0)
			continue;
		if (kn->msg < 0 && (!top || kn->nkids == 1)) {
			add = kn->nkids;
			src = kn->kids;
		}
		if (n + add > cap) {
			size_t nc = (cap ? cap * 2 : 4) + add;
			long *x = realloc(nv, nc * sizeof(long));
			if (x == NULL) {
				free(nv);
				t->nomem = true;
				return false;
			}
			nv = x;
			cap = nc;
		}
		memcpy(nv + n, src, add * sizeof(long));
		n += add;
	}
	free(*kids);
	*kids = nv;
	*nkids = n;
	if (capp != NULL)
		*capp = cap;
	return true;
}

static const char *node_subject(const tree *t, long x)
{
	const imapd_thread_msg *m = t->v[x].msg >= 0 ? &t->msgs[t->v[x].msg] : key_msg(t, x);
	return m != NULL && m->subject != NULL ? m->subject : "";
}

enum { ACT_OPEN = -1, ACT_CLOSE = -2 };

/* Appends the members of thread x: a chain of single children is one run of numbers; several
 * children are each written in parentheses. Iterative: stack holds nodes to write and the
 * parentheses around them (at most 3 entries per node). */
static arca_status put_thread(const tree *t, long x, arca_buf *out, long *stack)
{
	size_t sp = 0;
	arca_status st = ARCA_OK;
	stack[sp++] = x;
	while (sp > 0 && st == ARCA_OK) {
		long y = stack[--sp];
		bool first = true;
		if (y == ACT_OPEN || y == ACT_CLOSE) {
			st = arca_buf_append(out, y == ACT_OPEN ? "(" : ")", 1);
			continue;
		}
		for (;;) {
			const tnode *yn = &t->v[y];
			if (yn->msg >= 0) {
				st = arca_buf_printf(out, "%s%u", first ? "" : " ", t->msgs[yn->msg].id);
				first = false;
			}
			if (yn->nkids != 1 || st != ARCA_OK)
				break;
			y = yn->kids[0];
		}
		if (st == ARCA_OK && t->v[y].nkids > 1) {
			if (!first)
				st = arca_buf_append(out, " ", 1);
			for (size_t i = t->v[y].nkids; i-- > 0;) {
				stack[sp++] = ACT_CLOSE;
				stack[sp++] = t->v[y].kids[i];
				stack[sp++] = ACT_OPEN;
			}
		}
	}
	return st;
}

static arca_status write_threads(const tree *t, const long *top, size_t ntop, arca_buf *out)
{
	long *stack = malloc((3 * t->n + 4) * sizeof(long));
	arca_status st = ARCA_OK;
	if (stack == NULL)
		return ARCA_ERR_NOMEM;
	for (size_t i = 0; i < ntop && st == ARCA_OK; i++) {
		st = arca_buf_append(out, "(", 1);
		if (st == ARCA_OK)
			st = put_thread(t, top[i], out, stack);
		if (st == ARCA_OK)
			st = arca_buf_append(out, ")", 1);
	}
	free(stack);
	return st;
}

arca_status imapd_thread_references(const imapd_thread_msg *msgs, size_t n, arca_buf *out)
{
	tree t = { .msgs = msgs };
	GHashTable *ids = g_hash_table_new(g_str_hash, g_str_equal);
	GHashTable *subj = NULL;
	long *top = NULL, *order = NULL;
	size_t ntop = 0, norder = 0;
	arca_status st = ARCA_OK;

	/* (1) link messages by their references */
	for (size_t i = 0; i < n && !t.nomem; i++) {
		const imapd_thread_msg *m = &msgs[i];
		long self = -1, prev = -1;
		gpointer v;
		if (m->msgid != NULL && m->msgid[0] != '\0' &&
		    g_hash_table_lookup_extended(ids, m->msgid, NULL, &v)) {
			long x = (long)(intptr_t)v;
			if (t.v[x].msg < 0) { /* a dummy made for a reference: this is the message */
				t.v[x].msg = (long)i;
				self = x;
			}
		}
		if (self < 0) {
			/* no id, or a duplicate (the first message keeps it): a unique node */
			self = node_new(&t, (long)i);
			if (self < 0)
				break;
			if (m->msgid != NULL && m->msgid[0] != '\0' && !g_hash_table_contains(ids, m->msgid))
				g_hash_table_insert(ids, (gpointer)m->msgid, (gpointer)(intptr_t)self);
		}
		for (size_t r = 0; r < m->nrefs && !t.nomem; r++) {
			long x;
			if (g_hash_table_lookup_extended(ids, m->refs[r], NULL, &v)) {
				x = (long)(intptr_t)v;
			} else {
				x = node_new(&t, -1);
				if (x < 0)
					break;
				g_hash_table_insert(ids, (gpointer)m->refs[r], (gpointer)(intptr_t)x);
			}
			/* (A) each reference is the parent of the next, unless that one has a
			 * parent already (References may be truncated) or a loop would result */
			if (prev >= 0 && t.v[x].parent < 0 && !would_loop(&t, prev, x))
				link_to(&t, prev, x);
			prev = x;
		}
		/* (B) the last reference is the message's parent */
		unlink_from_parent(&t, self);
		if (prev >= 0 && !t.nomem && !would_loop(&t, prev, self))
			link_to(&t, prev, self);
	}
	if (t.nomem)
		goto nomem;
	/* (2) the parentless nodes are the threads */
	top = malloc((t.n + 1) * sizeof(long));
	if (top == NULL)
		goto nomem;
	for (size_t i = 0; i < t.n; i++)
		if (t.v[i].parent < 0)
			top[ntop++] = (long)i;
	/* (3) prune dummies, children first */
	order = post_order(&t, top, ntop, &norder);
	if (order == NULL)
		goto nomem;
	for (size_t i = 0; i < norder; i++)
		if (!prune_list(&t, &t.v[order[i]].kids, &t.v[order[i]].nkids, &t.v[order[i]].cap,
		                false))
			goto nomem;
	if (!prune_list(&t, &top, &ntop, NULL, true))
		goto nomem;
	/* (4) sort the top level by date (a dummy by its earliest child) */
	for (size_t i = 0; i < ntop; i++)
		if (t.v[top[i]].msg < 0)
			sort_kids(&t, t.v[top[i]].kids, t.v[top[i]].nkids);
	sort_kids(&t, top, ntop);
	/* (5) gather threads with the same base subject */
	subj = g_hash_table_new(g_str_hash, g_str_equal);
	for (size_t i = 0; i < ntop; i++) {
		long cur = top[i], have;
		const char *s = node_subject(&t, cur);
		gpointer v;
		if (s[0] == '\0')
			continue;
		if (!g_hash_table_lookup_extended(subj, s, NULL, &v)) {
			g_hash_table_insert(subj, (gpointer)s, (gpointer)(intptr_t)cur);
			continue;
		}
		have = (long)(intptr_t)v;
		if (t.v[have].msg >= 0 &&
		    (t.v[cur].msg < 0 || (msgs[t.v[have].msg].refwd && !msgs[t.v[cur].msg].refwd)))
			g_hash_table_insert(subj, (gpointer)s, (gpointer)(intptr_t)cur);
	}
	{
		size_t w = 0;
		for (size_t i = 0; i < ntop && !t.nomem; i++) {
			long cur = top[i], have;
			const char *s = node_subject(&t, cur);
			gpointer v;
			if (s[0] == '\0' || !g_hash_table_lookup_extended(subj, s, NULL, &v) ||
			    (have = (long)(intptr_t)v) == cur) {
				top[w++] = cur;
				continue;
			}
			if (t.v[have].msg < 0 && t.v[cur].msg < 0) {
				for (size_t k = 0; k < t.v[cur].nkids; k++)
					link_to(&t, have, t.v[cur].kids[k]);
				t.v[cur].nkids = 0;
			} else if (t.v[have].msg < 0) {
				link_to(&t, have, cur);
			} else if (msgs[t.v[cur].msg].refwd && !msgs[t.v[have].msg].refwd) {
				link_to(&t, have, cur);
			} else {
				long d = node_new(&t, -1);
				if (d < 0)
					break;
				link_to(&t, d, have);
				link_to(&t, d, cur);
				g_hash_table_insert(subj, (gpointer)s, (gpointer)(intptr_t)d);
				/* the dummy takes the place of the table's message in the top level */
				for (size_t k = 0; k < w; k++)
					if (top[k] == have)
						top[k] = d;
				for (size_t k = i + 1; k < ntop; k++)
					if (top[k] == have)
						top[k] = d;
			}
		}
		ntop = w;
	}
	if (t.nomem)
		goto nomem;
	/* (6) sort every set of siblings by date, deepest first */
	free(order);
	order = post_order(&t, top, ntop, &norder);
	if (order == NULL)
		goto nomem;
	for (size_t i = 0; i < norder; i++)
		sort_kids(&t, t.v[order[i]].kids, t.v[order[i]].nkids);
	sort_kids(&t, top, ntop);
	st = write_threads(&t, top, ntop, out);
	goto done;
nomem:
	st = ARCA_ERR_NOMEM;
done:
	free(order);
	free(top);
	if (subj != NULL)
		g_hash_table_destroy(subj);
	g_hash_table_destroy(ids);
	tree_free(&t);
	return st;
}

static int cmp_ordered(const void *a, const void *b)
{
	const imapd_thread_msg *x = *(const imapd_thread_msg *const *)a;
	const imapd_thread_msg *y = *(const imapd_thread_msg *const *)b;
	int c = strcmp(x->subject != NULL ? x->subject : "", y->subject != NULL ? y->subject : "");
	return c != 0 ? c : cmp_msgs(x, y);
}

typedef struct {
	size_t start, count;
	const imapd_thread_msg *first;
} os_run;

static int cmp_runs(const void *a, const void *b)
{
	return cmp_msgs(((const os_run *)a)->first, ((const os_run *)b)->first);
}

arca_status imapd_thread_orderedsubject(const imapd_thread_msg *msgs, size_t n, arca_buf *out)
{
	const imapd_thread_msg **p = malloc((n + 1) * sizeof(*p));
	os_run *runs = malloc((n + 1) * sizeof(*runs));
	size_t nr = 0;
	arca_status st = ARCA_OK;
	if (p == NULL || runs == NULL) {
		free(p);
		free(runs);
		return ARCA_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		p[i] = &msgs[i];
	qsort(p, n, sizeof(*p), cmp_ordered);
	/* a thread per base subject: the earliest message and the others as its children */
	for (size_t i = 0; i < n; i++) {
		const char *s = p[i]->subject != NULL ? p[i]->subject : "";
		if (i == 0 || strcmp(s, p[i - 1]->subject != NULL ? p[i - 1]->subject : "") != 0)
			runs[nr++] = (os_run){ .start = i, .count = 0, .first = p[i] };
		runs[nr - 1].count++;
	}
	qsort(runs, nr, sizeof(*runs), cmp_runs);
	for (size_t i = 0; i < nr && st == ARCA_OK; i++) {
		size_t at = runs[i].start, cnt = runs[i].count;
		st = arca_buf_printf(out, "(%u", p[at]->id);
		if (st == ARCA_OK && cnt == 2) {
			st = arca_buf_printf(out, " %u", p[at + 1]->id);
		} else if (st == ARCA_OK && cnt > 2) {
			st = arca_buf_append(out, " ", 1);
			for (size_t k = 1; k < cnt && st == ARCA_OK; k++)
				st = arca_buf_printf(out, "(%u)", p[at + k]->id);
		}
		if (st == ARCA_OK)
			st = arca_buf_append(out, ")", 1);
	}
	free(p);
	free(runs);
	return st;
}

size_t imapd_thread_msgids(const char *s, size_t len, char **ids, size_t max)
{
	size_t n = 0, i = 0;
	while (i < len && n < max) {
		size_t j;
		bool ok = true;
		if (s[i] != '<') {
			i++;
			continue;
		}
		for (j = i + 1; j < len && s[j] != '>' && s[j] != '<'; j++)
			if (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n' || s[j] == '\0')
				ok = false;
		if (j >= len || s[j] == '<') {
			i = j;
			continue;
		}
		if (ok && j > i + 1) {
			ids[n] = strndup(s + i + 1, j - i - 1);
			if (ids[n] == NULL)
				break;
			n++;
		}
		i = j + 1;
	}
	return n;
}

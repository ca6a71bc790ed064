/* Mailbox commands: NAMESPACE, LIST/LSUB (LIST-EXTENDED, LIST-STATUS, CHILDREN, SPECIAL-USE),
 * STATUS, SELECT/EXAMINE (CONDSTORE), CLOSE/UNSELECT, IDLE, SUBSCRIBE/UNSUBSCRIBE.
 *
 * Names: the user's own archive's folders are at the top level ("INBOX", "Sent", "Projects/A");
 * archives the user may read are under "Other Users/<archive>/" (the NAMESPACE's other-users
 * namespace). The hierarchy separator is '/'. An INBOX always exists (empty when the archive has
 * no such folder), because clients expect one. Every folder is subscribed, permanently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imapd_int.h"
#include "imap/mutf7.h"
#include "imap/write.h"
#include "lib/log.h"

#define OTHER_NS "Other Users"

enum {
	F_NOSELECT = 1u << 0,  /* a name on the way to folders, not a folder itself */
	F_CHILDREN = 1u << 1,
	F_MATCHED = 1u << 2,
};

typedef struct {
	char *name; /* UTF-8 */
	uint32_t archive_id, folder_id;
	uint64_t messages;
	uint32_t uidvalidity, uidnext;
	unsigned flags;
} mbox_entry;

typedef struct {
	mbox_entry *v;
	size_t n, cap;
} mbox_list;

static void list_free(mbox_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static mbox_entry *list_find(mbox_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

static mbox_entry *list_add(mbox_list *l, const char *name, arca_error *err)
{
	mbox_entry *e;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		mbox_entry *v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL) {
			arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			return NULL;
		}
		l->v = v;
		l->cap = cap;
	}
	e = &l->v[l->n];
	memset(e, 0, sizeof(*e));
	e->name = strdup(name);
	if (e->name == NULL) {
		arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		return NULL;
	}
	l->n++;
	return e;
}

/* Adds name and, as \Noselect entries, its missing parents; marks parents as having children. */
static arca_status list_add_path(mbox_list *l, const char *name, mbox_entry **out, arca_error *err)
{
	char buf[ARCA_FOLDER_MAX + ARCA_NAME_MAX + 32];
	mbox_entry *e;
	size_t len = strlen(name);
	if (len >= sizeof(buf))
		return arca_error_set(err, ARCA_ERR_LIMIT, "mailbox name too long");
	memcpy(buf, name, len + 1);
	for (size_t i = 1; i < len; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = 0;
		e = list_find(l, buf);
		if (e == NULL) {
			e = list_add(l, buf, err);
			if (e == NULL)
				return err->status;
			e->flags = F_NOSELECT;
		}
		e->flags |= F_CHILDREN;
		buf[i] = '/';
	}
	e = list_find(l, name);
	if (e == NULL && (e = list_add(l, name, err)) == NULL)
		return err->status;
	e->flags &= ~(unsigned)F_NOSELECT;
	*out = e;
	return ARCA_OK;
}

static int entry_cmp(const void *a, const void *b)
{
	const mbox_entry *x = a, *y = b;
	/* INBOX first, then by name */
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

static bool is_inbox(const char *path)
{
	return strcasecmp(path, "INBOX") == 0;
}

/* Everything the session's user may see, with counts. Worker thread. */
static arca_status visible_list(imapd_cmd *c, mbox_list *l, arca_error *err)
{
	imapd_session *s = c->s;
	arca_folder_info *f = NULL;
	size_t n = 0;
	arca_status st;
	bool inbox = false;
	if (c->h->inst == NULL) {
		*err = c->h->open_err;
		return err->status ? err->status : ARCA_ERR_IO;
	}
	st = arca_instance_folders(c->h->inst, 0, &f, &n, err);
	if (st != ARCA_OK)
		return st;
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		char name[ARCA_FOLDER_MAX + ARCA_NAME_MAX + 32];
		bool own = strcmp(f[i].archive, s->user) == 0;
		bool may = false;
		mbox_entry *e;
		if (own && (s->privileges & (ARCA_PRIV_READ_OWN | ARCA_PRIV_ADMIN))) {
			may = true;
		} else {
			st = arca_users_may_read(c->h->users, s->user, f[i].archive, f[i].path, &may, err);
			if (st != ARCA_OK)
				break;
		}
		if (!may)
			continue;
		if (own && is_inbox(f[i].path)) {
			snprintf(name, sizeof(name), "INBOX");
			inbox = true;
		} else if (own) {
			snprintf(name, sizeof(name), "%s", f[i].path);
		} else {
			snprintf(name, sizeof(name), OTHER_NS "/%s/%s", f[i].archive, f[i].path);
		}
		st = list_add_path(l, name, &e, err);
		if (st == ARCA_OK) {
			e->archive_id = f[i].archive_id;
			e->folder_id = f[i].id;
			e->messages = f[i].messages;
			e->uidvalidity = f[i].uidvalidity;
			e->uidnext = f[i].uid_next;
		}
	}
	arca_folder_infos_free(f, n);
	if (st == ARCA_OK && !inbox) {
		mbox_entry *e;
		st = list_add_path(l, "INBOX", &e, err);
		if (st == ARCA_OK) {
			e->uidvalidity = 1;
			e->uidnext = 1;
		}
	}
	if (st != ARCA_OK) {
		list_free(l);
		return st;
	}
	qsort(l->v, l->n, sizeof(l->v[0]), entry_cmp);
	return ARCA_OK;
}

/* Mailbox name argument -> UTF-8 (decoding modified UTF-7 unless the client uses UTF-8). */
static const char *mailbox_arg(imapd_cmd *c, arca_buf *name, arca_error *err)
{
	size_t len = 0;
	const char *raw = imapd_arg_string(c, &len);
	if (raw == NULL) {
		arca_error_set(err, ARCA_ERR_SYNTAX, "%s: missing mailbox name", c->name);
		return NULL;
	}
	if (strlen(raw) != len) {
		arca_error_set(err, ARCA_ERR_SYNTAX, "%s: mailbox name contains NUL", c->name);
		return NULL;
	}
	arca_buf_init(name, ARCA_FOLDER_MAX + ARCA_NAME_MAX + 32);
	if (c->s->rev2 || c->s->utf8) {
		if (arca_buf_append(name, raw, len) != ARCA_OK) {
			arca_error_set(err, ARCA_ERR_LIMIT, "mailbox name too long");
			return NULL;
		}
	} else if (arca_imap_mutf7_decode(raw, len, name, err) != ARCA_OK) {
		return NULL;
	}
	if (name->data == NULL && arca_buf_reserve(name, 1) != ARCA_OK) {
		arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (name->len == 0)
		name->data[0] = 0;
	/* INBOX is case-insensitive, also as a prefix of its children */
	if (strncasecmp(name->data, "INBOX", 5) == 0 && (name->data[5] == 0 || name->data[5] == '/'))
		memcpy(name->data, "INBOX", 5);
	return name->data;
}

/* Writes a mailbox name as the client expects it (UTF-8 or modified UTF-7), as an astring. */
static void put_name(imapd_cmd *c, const char *utf8)
{
	arca_buf b;
	arca_buf_init(&b, ARCA_IMAP_MAX_LINE);
	if (c->s->rev2 || c->s->utf8) {
		arca_imap_write_astring(&b, utf8, strlen(utf8));
	} else {
		arca_buf enc;
		arca_buf_init(&enc, ARCA_IMAP_MAX_LINE);
		if (arca_imap_mutf7_encode(utf8, strlen(utf8), &enc, NULL) == ARCA_OK && enc.data != NULL)
			arca_imap_write_astring(&b, enc.data, enc.len);
		else
			arca_imap_write_astring(&b, utf8, strlen(utf8));
		arca_buf_free(&enc);
	}
	if (b.data != NULL)
		imapd_write(c, b.data, b.len);
	arca_buf_free(&b);
}

/* ------------------------------------------------------------------ NAMESPACE */

void imapd_cmd_namespace(imapd_cmd *c)
{
	if (imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "NAMESPACE takes no arguments");
		return;
	}
	imapd_printf(c, "* NAMESPACE ((\"\" \"/\")) ((\"" OTHER_NS "/\" \"/\")) NIL\r\n");
	imapd_tagged(c, "OK", "NAMESPACE completed");
}

/* ------------------------------------------------------------------ LIST */

/* IMAP LIST wildcard match: '*' anything, '%' anything but the separator. Bounded by the
 * pattern and name lengths through memoisation-free backtracking on '*' only at the last star
 * (classic greedy glob with one backtrack point per wildcard kind). */
static bool wild_match(const char *p, const char *n)
{
	const char *star_p = NULL, *star_n = NULL;
	while (*n != 0) {
		if (*p == '*') {
			star_p = ++p;
			star_n = n;
			continue;
		}
		if (*p == '%') {
			/* '%' is local: try to match the rest at every position up to the next '/' */
			const char *q = n;
			for (;;) {
				if (wild_match(p + 1, q))
					return true;
				if (*q == 0 || *q == '/')
					break;
				q++;
			}
			goto backtrack;
		}
		if (*p == *n) {
			p++;
			n++;
			continue;
		}
backtrack:
		if (star_p == NULL)
			return false;
		p = star_p;
		n = ++star_n;
	}
	while (*p == '*' || *p == '%')
		p++;
	return *p == 0;
}

typedef struct {
	bool lsub;
	bool sel_subscribed, sel_special, sel_recursive;
	bool ret_subscribed, ret_children, ret_special, ret_status;
	bool extended; /* LIST-EXTENDED syntax was used */
	unsigned status_items;
	char *patterns[16];
	size_t n_patterns;
	mbox_list list;
	arca_error err;
	arca_status st;
} list_data;

enum {
	ST_MESSAGES = 1u << 0,
	ST_UIDNEXT = 1u << 1,
	ST_UIDVALIDITY = 1u << 2,
	ST_UNSEEN = 1u << 3,
	ST_RECENT = 1u << 4,
	ST_DELETED = 1u << 5,
	ST_HIGHESTMODSEQ = 1u << 6,
	ST_SIZE = 1u << 7,
};

static void list_data_free(void *p)
{
	list_data *ld = p;
	for (size_t i = 0; i < ld->n_patterns; i++)
		free(ld->patterns[i]);
	list_free(&ld->list);
	free(ld);
}

static const char *special_use(const char *name)
{
	const char *leaf = strrchr(name, '/');
	leaf = leaf != NULL ? leaf + 1 : name;
	if (strchr(name, '/') != NULL)
		return NULL; /* only top-level folders of the user's own archive */
	if (strcasecmp(leaf, "Sent") == 0 || strcasecmp(leaf, "Sent Items") == 0 ||
	    strcasecmp(leaf, "Sent Messages") == 0)
		return "\\Sent";
	if (strcasecmp(leaf, "Drafts") == 0)
		return "\\Drafts";
	if (strcasecmp(leaf, "Junk") == 0 || strcasecmp(leaf, "Spam") == 0)
		return "\\Junk";
	if (strcasecmp(leaf, "Trash") == 0 || strcasecmp(leaf, "Deleted Items") == 0)
		return "\\Trash";
	if (strcasecmp(leaf, "Archive") == 0)
		return "\\Archive";
	return NULL;
}

/* STATUS items -> bits; false on an unknown item. */
static bool parse_status_items(const arca_imap_node *list, unsigned *items, arca_error *err)
{
	size_t n = arca_imap_node_count(list);
	*items = 0;
	if (arca_imap_node_kind(list) != ARCA_IMAP_NODE_LIST || n == 0) {
		arca_error_set(err, ARCA_ERR_SYNTAX, "STATUS items must be a non-empty list");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const char *t = arca_imap_node_text(arca_imap_node_child(list, i), NULL);
		if (t == NULL)
			t = "";
		if (strcasecmp(t, "MESSAGES") == 0)
			*items |= ST_MESSAGES;
		else if (strcasecmp(t, "UIDNEXT") == 0)
			*items |= ST_UIDNEXT;
		else if (strcasecmp(t, "UIDVALIDITY") == 0)
			*items |= ST_UIDVALIDITY;
		else if (strcasecmp(t, "UNSEEN") == 0)
			*items |= ST_UNSEEN;
		else if (strcasecmp(t, "RECENT") == 0)
			*items |= ST_RECENT;
		else if (strcasecmp(t, "DELETED") == 0)
			*items |= ST_DELETED;
		else if (strcasecmp(t, "HIGHESTMODSEQ") == 0)
			*items |= ST_HIGHESTMODSEQ;
		else if (strcasecmp(t, "SIZE") == 0)
			*items |= ST_SIZE;
		else {
			arca_error_set(err, ARCA_ERR_SYNTAX, "unknown STATUS item %.40s", t);
			return false;
		}
	}
	return true;
}

/* STATUS SIZE (RFC 9051): the sum of the folder's RFC822.SIZEs, from the store metadata. */
static unsigned long long folder_size(imapd_cmd *c, const mbox_entry *e)
{
	arca_folder_view *v = NULL;
	arca_message_info *infos = NULL;
	unsigned long long total = 0;
	arca_error err;
	if (e->folder_id == 0 || c->h->inst == NULL ||
	    arca_instance_folder_view(c->h->inst, e->folder_id, &v, &err) != ARCA_OK)
		return 0;
	infos = v->count > 0 ? malloc(v->count * sizeof(*infos)) : NULL;
	if (infos != NULL && arca_instance_msginfo_many(c->h->inst, v->msgs, v->count, infos, &err) == ARCA_OK)
		for (size_t i = 0; i < v->count; i++)
			total += infos[i].size;
	free(infos);
	arca_folder_view_free(&v);
	return total;
}

static void put_status(imapd_cmd *c, const char *name, const mbox_entry *e, unsigned items)
{
	const char *sep = "";
	imapd_printf(c, "* STATUS ");
	put_name(c, name);
	imapd_printf(c, " (");
#define ITEM(bit, fmt, val)                                    \
	if (items & (bit)) {                                   \
		imapd_printf(c, "%s" fmt, sep, val);            \
		sep = " ";                                     \
	}
	ITEM(ST_MESSAGES, "MESSAGES %llu", (unsigned long long)e->messages);
	ITEM(ST_UIDNEXT, "UIDNEXT %u", e->uidnext ? e->uidnext : 1u);
	ITEM(ST_UIDVALIDITY, "UIDVALIDITY %u", e->uidvalidity ? e->uidvalidity : 1u);
	ITEM(ST_UNSEEN, "UNSEEN %u", 0u);
	ITEM(ST_RECENT, "RECENT %u", 0u);
	ITEM(ST_DELETED, "DELETED %u", 0u);
	ITEM(ST_HIGHESTMODSEQ, "HIGHESTMODSEQ %u", e->uidnext > 1 ? e->uidnext - 1 : 1u);
	ITEM(ST_SIZE, "SIZE %llu", folder_size(c, e));
#undef ITEM
	imapd_printf(c, ")\r\n");
}

static void list_work(imapd_cmd *c)
{
	list_data *ld = c->data;
	ld->st = visible_list(c, &ld->list, &ld->err);
	if (ld->st != ARCA_OK) {
		imapd_tagged_error(c, &ld->err);
		return;
	}
	for (size_t pi = 0; pi < ld->n_patterns; pi++)
		for (size_t i = 0; i < ld->list.n; i++)
			if (wild_match(ld->patterns[pi], ld->list.v[i].name))
				ld->list.v[i].flags |= F_MATCHED;
	for (size_t i = 0; i < ld->list.n; i++) {
		mbox_entry *e = &ld->list.v[i];
		const char *su = e->folder_id != 0 || strcmp(e->name, "INBOX") == 0 ?
		                         (strncmp(e->name, OTHER_NS "/", strlen(OTHER_NS) + 1) == 0 ?
		                                  NULL :
		                                  special_use(e->name)) :
		                         NULL;
		bool selectable = !(e->flags & F_NOSELECT);
		char attrs[160] = "";
		if (!(e->flags & F_MATCHED))
			continue;
		if (ld->sel_special && su == NULL)
			continue;
		if ((ld->lsub || ld->sel_subscribed) && !selectable) {
			/* LSUB "%" shows unsubscribed parents with \Noselect; RECURSIVEMATCH: CHILDINFO */
			if (!ld->lsub && !ld->sel_recursive)
				continue;
		}
		if (!selectable)
			strcat(attrs, ld->extended ? "\\NonExistent" : "\\Noselect");
		if (!ld->lsub) {
			if (attrs[0])
				strcat(attrs, " ");
			strcat(attrs, (e->flags & F_CHILDREN) ? "\\HasChildren" : "\\HasNoChildren");
		}
		if ((ld->sel_subscribed || ld->ret_subscribed) && selectable)
			strcat(attrs, " \\Subscribed");
		if (su != NULL && (ld->ret_special || ld->sel_special || !ld->extended) && !ld->lsub) {
			strcat(attrs, " ");
			strcat(attrs, su);
		}
		imapd_printf(c, "* %s (%s) \"/\" ", ld->lsub ? "LSUB" : "LIST", attrs);
		put_name(c, e->name);
		if (ld->sel_recursive && !selectable && (e->flags & F_CHILDREN))
			imapd_printf(c, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		imapd_printf(c, "\r\n");
		if (ld->ret_status && selectable)
			put_status(c, e->name, e, ld->status_items);
		if (!imapd_flush(c))
			return;
	}
	imapd_tagged(c, "OK", "%s completed", c->name);
}

static bool take_pattern(list_data *ld, const char *ref, const char *pat, arca_error *err)
{
	size_t rl = strlen(ref), pl = strlen(pat);
	char *p;
	if (ld->n_patterns == sizeof(ld->patterns) / sizeof(ld->patterns[0])) {
		arca_error_set(err, ARCA_ERR_LIMIT, "too many LIST patterns (at most 16)");
		return false;
	}
	p = malloc(rl + pl + 2);
	if (p == NULL) {
		arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		return false;
	}
	/* reference and pattern join at the hierarchy separator */
	if (rl > 0 && ref[rl - 1] != '/' && pl > 0 && pat[0] != '/')
		snprintf(p, rl + pl + 2, "%s/%s", ref, pat);
	else
		snprintf(p, rl + pl + 2, "%s%s", ref, pat);
	if (strncasecmp(p, "INBOX", 5) == 0 && (p[5] == 0 || p[5] == '/'))
		memcpy(p, "INBOX", 5);
	ld->patterns[ld->n_patterns++] = p;
	return true;
}

void imapd_cmd_list(imapd_cmd *c)
{
	list_data *ld = calloc(1, sizeof(*ld));
	const arca_imap_node *n;
	arca_buf ref, pat;
	arca_error e;
	const char *r;
	bool ok = true;
	if (ld == NULL) {
		imapd_tagged(c, "NO", "[SERVERBUG] out of memory");
		return;
	}
	c->data = ld;
	c->data_free = list_data_free;
	ld->lsub = strcmp(c->name, "LSUB") == 0;
	n = arca_imap_node_child(c->args, c->argi);
	if (!ld->lsub && n != NULL && arca_imap_node_kind(n) == ARCA_IMAP_NODE_LIST) {
		ld->extended = true;
		c->argi++;
		for (size_t i = 0; i < arca_imap_node_count(n); i++) {
			const char *o = arca_imap_node_text(arca_imap_node_child(n, i), NULL);
			if (o != NULL && strcasecmp(o, "SUBSCRIBED") == 0)
				ld->sel_subscribed = true;
			else if (o != NULL && strcasecmp(o, "REMOTE") == 0)
				;
			else if (o != NULL && strcasecmp(o, "RECURSIVEMATCH") == 0)
				ld->sel_recursive = true;
			else if (o != NULL && strcasecmp(o, "SPECIAL-USE") == 0)
				ld->sel_special = true;
			else {
				imapd_tagged(c, "BAD", "LIST: unknown selection option %.40s", o ? o : "()");
				return;
			}
		}
		if (ld->sel_recursive && !ld->sel_subscribed && !ld->sel_special) {
			imapd_tagged(c, "BAD", "LIST: RECURSIVEMATCH needs another selection option");
			return;
		}
	}
	r = mailbox_arg(c, &ref, &e);
	if (r == NULL) {
		imapd_tagged(c, "BAD", "%s", e.msg);
		return;
	}
	n = arca_imap_node_child(c->args, c->argi);
	if (n != NULL && arca_imap_node_kind(n) == ARCA_IMAP_NODE_LIST && !ld->lsub) {
		ld->extended = true;
		c->argi++;
		for (size_t i = 0; i < arca_imap_node_count(n) && ok; i++) {
			const char *p = arca_imap_node_text(arca_imap_node_child(n, i), NULL);
			arca_buf b;
			arca_buf_init(&b, ARCA_FOLDER_MAX + 64);
			if (p == NULL || (c->s->rev2 ? arca_buf_appendz(&b, p) :
			                               arca_imap_mutf7_decode(p, strlen(p), &b, &e)) != ARCA_OK ||
			    !take_pattern(ld, r, b.data ? b.data : "", &e))
				ok = false;
			arca_buf_free(&b);
		}
	} else {
		const char *p = mailbox_arg(c, &pat, &e);
		if (p == NULL || !take_pattern(ld, r, p, &e))
			ok = false;
		if (p != NULL)
			arca_buf_free(&pat);
	}
	arca_buf_free(&ref);
	if (!ok) {
		imapd_tagged(c, "BAD", "%s: %s", c->name, e.msg[0] ? e.msg : "bad mailbox pattern");
		return;
	}
	n = imapd_arg(c);
	if (n != NULL) {
		const char *kw = arca_imap_node_text(n, NULL);
		const arca_imap_node *opts = imapd_arg(c);
		if (ld->lsub || kw == NULL || strcasecmp(kw, "RETURN") != 0 || opts == NULL ||
		    arca_imap_node_kind(opts) != ARCA_IMAP_NODE_LIST || imapd_args_left(c) > 0) {
			imapd_tagged(c, "BAD", "%s: unexpected arguments after the pattern", c->name);
			return;
		}
		ld->extended = true;
		for (size_t i = 0; i < arca_imap_node_count(opts); i++) {
			const arca_imap_node *o = arca_imap_node_child(opts, i);
			const char *t = arca_imap_node_text(o, NULL);
			if (t != NULL && strcasecmp(t, "SUBSCRIBED") == 0)
				ld->ret_subscribed = true;
			else if (t != NULL && strcasecmp(t, "CHILDREN") == 0)
				ld->ret_children = true;
			else if (t != NULL && strcasecmp(t, "SPECIAL-USE") == 0)
				ld->ret_special = true;
			else if (t != NULL && strcasecmp(t, "STATUS") == 0) {
				const arca_imap_node *items = arca_imap_node_child(opts, ++i);
				if (items == NULL || !parse_status_items(items, &ld->status_items, &e)) {
					imapd_tagged(c, "BAD", "LIST RETURN STATUS: %s",
					             items == NULL ? "missing item list" : e.msg);
					return;
				}
				ld->ret_status = true;
			} else {
				imapd_tagged(c, "BAD", "LIST: unknown return option %.40s", t ? t : "()");
				return;
			}
		}
	}
	/* LIST "" "": the hierarchy delimiter and root */
	if (ld->n_patterns == 1 && ld->patterns[0][0] == 0) {
		imapd_printf(c, "* %s (\\Noselect) \"/\" \"\"\r\n", ld->lsub ? "LSUB" : "LIST");
		imapd_tagged(c, "OK", "%s completed", c->name);
		return;
	}
	c->work = list_work;
	c->next = IMAPD_WORKER;
}

/* ------------------------------------------------------------------ STATUS */

/* The selectable mailbox `name` among those the user sees, pointing into *l (the caller frees
 * l); NULL after writing the tagged answer (no such mailbox, or the archive failed). */
static mbox_entry *find_selectable(imapd_cmd *c, const char *name, mbox_list *l)
{
	arca_error e;
	mbox_entry *m;
	if (visible_list(c, l, &e) != ARCA_OK) {
		imapd_tagged_error(c, &e);
		return NULL;
	}
	m = list_find(l, name);
	if (m == NULL || (m->flags & F_NOSELECT)) {
		imapd_tagged(c, "NO", "[NONEXISTENT] No such mailbox");
		list_free(l);
		return NULL;
	}
	return m;
}

typedef struct {
	char *name;
	unsigned items;
} status_data;

static void status_data_free(void *p)
{
	status_data *sd = p;
	free(sd->name);
	free(sd);
}

static void status_work(imapd_cmd *c)
{
	status_data *sd = c->data;
	mbox_list l = {0};
	mbox_entry *m = find_selectable(c, sd->name, &l);
	if (m == NULL)
		return;
	put_status(c, m->name, m, sd->items);
	imapd_tagged(c, "OK", "STATUS completed");
	list_free(&l);
}

void imapd_cmd_status(imapd_cmd *c)
{
	arca_buf name;
	arca_error e;
	const char *n = mailbox_arg(c, &name, &e);
	const arca_imap_node *items;
	status_data *sd;
	if (n == NULL) {
		imapd_tagged(c, "BAD", "%s", e.msg);
		return;
	}
	items = imapd_arg(c);
	sd = calloc(1, sizeof(*sd));
	if (sd == NULL || items == NULL || imapd_args_left(c) > 0 ||
	    !parse_status_items(items, &sd->items, &e)) {
		imapd_tagged(c, "BAD", "STATUS: %s", items == NULL ? "missing item list" :
		                                   imapd_args_left(c) > 0 ? "too many arguments" : e.msg);
		free(sd);
		arca_buf_free(&name);
		return;
	}
	sd->name = arca_buf_steal(&name, NULL);
	c->data = sd;
	c->data_free = status_data_free;
	c->work = status_work;
	c->next = IMAPD_WORKER;
}

/* ------------------------------------------------------------------ SELECT */

typedef struct {
	char *name;
	bool examine, condstore;
	imapd_mailbox *mbox;
} select_data;

static void select_data_free(void *p)
{
	select_data *sd = p;
	free(sd->name);
	imapd_mailbox_free(&sd->mbox);
	free(sd);
}

static void select_work(imapd_cmd *c)
{
	select_data *sd = c->data;
	mbox_list l = {0};
	arca_error e;
	mbox_entry *m = find_selectable(c, sd->name, &l);
	if (m == NULL)
		return;
	if (imapd_mailbox_open(c->h, m->name, m->archive_id, m->folder_id, &sd->mbox, &e) != ARCA_OK) {
		imapd_tagged_error(c, &e);
		list_free(&l);
		return;
	}
	list_free(&l);
	imapd_printf(c, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n");
	imapd_printf(c, "* %zu EXISTS\r\n", imapd_mailbox_count(sd->mbox));
	if (!c->s->rev2)
		imapd_printf(c, "* 0 RECENT\r\n");
	imapd_printf(c, "* OK [UIDVALIDITY %u] UIDs valid\r\n", imapd_mailbox_uidvalidity(sd->mbox));
	imapd_printf(c, "* OK [UIDNEXT %u] Predicted next UID\r\n", imapd_mailbox_uidnext(sd->mbox));
	imapd_printf(c, "* OK [PERMANENTFLAGS ()] The archive is read-only\r\n");
	if (sd->condstore || c->s->condstore)
		imapd_printf(c, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
		             (unsigned long long)imapd_mailbox_highestmodseq(sd->mbox));
	if (c->s->rev2) {
		imapd_printf(c, "* LIST () \"/\" ");
		put_name(c, sd->name);
		imapd_printf(c, "\r\n");
	}
	imapd_tagged(c, "OK", "[READ-ONLY] %s completed", sd->examine ? "EXAMINE" : "SELECT");
}

static void select_after(imapd_cmd *c)
{
	imapd_session *s = c->s;
	select_data *sd = c->data;
	if (sd->mbox == NULL)
		return; /* failed: RFC 3501 leaves the session unselected */
	s->mbox = sd->mbox;
	sd->mbox = NULL;
	s->examine = sd->examine;
	if (sd->condstore)
		s->condstore = true;
	s->state = IMAPD_SELECTED;
	arca_log(ARCA_LOG_INFO, "imap", "session=%llu select user=%s mailbox=\"%s\" messages=%zu",
	         (unsigned long long)s->id, s->user, sd->name, imapd_mailbox_count(s->mbox));
}

void imapd_cmd_select(imapd_cmd *c)
{
	imapd_session *s = c->s;
	arca_buf name;
	arca_error e;
	const char *n = mailbox_arg(c, &name, &e);
	select_data *sd;
	const arca_imap_node *params;
	if (n == NULL) {
		imapd_tagged(c, "BAD", "%s", e.msg);
		return;
	}
	sd = calloc(1, sizeof(*sd));
	if (sd == NULL) {
		arca_buf_free(&name);
		imapd_tagged(c, "NO", "[SERVERBUG] out of memory");
		return;
	}
	sd->name = arca_buf_steal(&name, NULL);
	sd->examine = strcmp(c->name, "EXAMINE") == 0;
	c->data = sd;
	c->data_free = select_data_free;
	params = imapd_arg(c);
	if (params != NULL) {
		if (arca_imap_node_kind(params) != ARCA_IMAP_NODE_LIST || imapd_args_left(c) > 0) {
			imapd_tagged(c, "BAD", "%s: unexpected arguments after the mailbox name", c->name);
			return;
		}
		for (size_t i = 0; i < arca_imap_node_count(params); i++) {
			const char *t = arca_imap_node_text(arca_imap_node_child(params, i), NULL);
			if (t != NULL && strcasecmp(t, "CONDSTORE") == 0) {
				sd->condstore = true;
			} else {
				imapd_tagged(c, "BAD", "%s: unknown parameter %.40s", c->name, t ? t : "()");
				return;
			}
		}
	}
	/* leaving the old mailbox first (RFC 3501: a failed SELECT leaves none selected) */
	if (s->state & IMAPD_SELECTED) {
		imapd_mailbox_free(&s->mbox);
		free(s->searchres);
		s->searchres = NULL;
		s->n_searchres = 0;
		s->state = IMAPD_AUTH;
		imapd_printf(c, "* OK [CLOSED] Previous mailbox closed\r\n");
	}
	c->work = select_work;
	c->after = select_after;
	c->next = IMAPD_WORKER;
}

void imapd_cmd_close(imapd_cmd *c)
{
	imapd_session *s = c->s;
	if (imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "%s takes no arguments", c->name);
		return;
	}
	/* read-only: CLOSE expunges nothing, exactly like UNSELECT */
	imapd_mailbox_free(&s->mbox);
	free(s->searchres);
	s->searchres = NULL;
	s->n_searchres = 0;
	s->state = IMAPD_AUTH;
	imapd_tagged(c, "OK", "%s completed", c->name);
}

void imapd_cmd_subscribe(imapd_cmd *c)
{
	arca_buf name;
	arca_error e;
	const char *n = mailbox_arg(c, &name, &e);
	if (n == NULL || imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "%s takes one argument: a mailbox name", c->name);
		if (n != NULL)
			arca_buf_free(&name);
		return;
	}
	arca_buf_free(&name);
	if (strcmp(c->name, "SUBSCRIBE") == 0)
		imapd_tagged(c, "OK", "SUBSCRIBE completed (every archive folder is subscribed)");
	else
		imapd_tagged(c, "NO", "[CANNOT] Every archive folder stays subscribed");
}

/* ------------------------------------------------------------------ NOOP, IDLE */

static void poll_work(imapd_cmd *c)
{
	size_t before = imapd_mailbox_count(c->s->mbox), added = 0;
	arca_error e;
	if (imapd_mailbox_refresh(c->h, c->s->mbox, &added, &e) != ARCA_OK)
		arca_log(ARCA_LOG_WARN, "imap", "session=%llu refresh failed: %s",
		         (unsigned long long)c->s->id, e.msg);
	if (added > 0)
		imapd_printf(c, "* %zu EXISTS\r\n", before + added);
	if (!c->idling)
		imapd_tagged(c, "OK", "%s completed", c->name);
}

void imapd_mailbox_poll(imapd_cmd *c)
{
	c->work = poll_work;
	c->next = IMAPD_WORKER;
}

static void idle_line(imapd_cmd *c);

static void idle_poll_after(imapd_cmd *c)
{
	/* back to waiting for DONE */
	c->line = idle_line;
	c->next = IMAPD_WAIT_LINE;
}

static void idle_line(imapd_cmd *c)
{
	imapd_session *s = c->s;
	if (s->timer != NULL)
		event_del(s->timer);
	if (c->line_len == 4 && strncasecmp(c->line_data, "DONE", 4) == 0)
		imapd_tagged(c, "OK", "IDLE terminated");
	else
		imapd_tagged(c, "BAD", "Expected DONE to end IDLE");
}

static void idle_refresh(imapd_session *s)
{
	imapd_cmd *c = s->cmd;
	if (c == NULL || c->next != IMAPD_WAIT_LINE || c->line != idle_line || s->mbox == NULL)
		return;
	c->line = NULL;
	c->work = poll_work;
	c->after = idle_poll_after;
	c->next = IMAPD_WORKER;
	imapd_resume(c);
}

void imapd_idle_changed(imapd_session *s)
{
	idle_refresh(s);
}

static void idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	imapd_session *s = arg;
	unsigned secs = s->d->cfg.idle_poll_s ? s->d->cfg.idle_poll_s : 15;
	struct timeval tv = {secs, 0};
	(void)fd;
	(void)what;
	if (s->cmd == NULL || s->cmd->line != idle_line)
		return;
	evtimer_add(s->timer, &tv);
	idle_refresh(s);
}

void imapd_cmd_idle(imapd_cmd *c)
{
	imapd_session *s = c->s;
	unsigned secs = s->d->cfg.idle_poll_s ? s->d->cfg.idle_poll_s : 15;
	struct timeval tv = {secs, 0};
	if (imapd_args_left(c) > 0) {
		imapd_tagged(c, "BAD", "IDLE takes no arguments");
		return;
	}
	imapd_printf(c, "+ idling\r\n");
	c->idling = true; /* polls send no tagged reply */
	c->line = idle_line;
	c->next = IMAPD_WAIT_LINE;
	/* other processes (arcactl import) do not notify us: poll now and then */
	if (s->mbox != NULL) {
		if (s->timer == NULL)
			s->timer = evtimer_new(bufferevent_get_base(s->bev), idle_timer_cb, s);
		else
			event_assign(s->timer, bufferevent_get_base(s->bev), -1, 0, idle_timer_cb, s);
		if (s->timer != NULL)
			evtimer_add(s->timer, &tv);
	}
}

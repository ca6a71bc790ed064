/* Content-* fields (RFC 2045, RFC 2183, RFC 3066 tags, RFC 2231 parameters) and the BODY /
 * BODYSTRUCTURE writer. Parameters are parsed leniently: garbage between parameters is
 * skipped up to the next ';', an unquoted value may hold spaces up to the next ';', and RFC
 * 2231 sections are merged the way Dovecot does (name*0, name*1*... -> name or name*, the
 * encoded value kept as charset'lang'%XX so the output stays 7-bit). */
#include "imap/msg_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/write.h"

bool arca_msg_range_present(arca_msg_range r)
{
	return r.off != ARCA_MSG_NONE;
}

arca_status arca_msg_unfold(const arca_imap_msg *m, arca_msg_range r, arca_buf *out)
{
	const uint8_t *p = m->data + r.off, *end = p + r.len;
	size_t budget = ARCA_MIME_MAX_FIELD;
	arca_status st = ARCA_OK;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	while (p < end && st == ARCA_OK && budget > 0) {
		const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *stop = lf != NULL ? lf : end;
		size_t n;
		if (lf != NULL && stop > p && stop[-1] == '\r')
			stop--;
		n = (size_t)(stop - p);
		if (n > budget)
			n = budget;
		st = arca_buf_append(out, p, n);
		budget -= n;
		p = lf != NULL ? lf + 1 : end;
	}
	return st;
}

/* ---- tokens --------------------------------------------------------------------------- */

typedef struct {
	const uint8_t *p, *end;
} cur;

static void skip_cfws(cur *c)
{
	while (c->p < c->end) {
		uint8_t ch = *c->p;
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
			c->p++;
		} else if (ch == '(') {
			size_t depth = 0;
			while (c->p < c->end) {
				ch = *c->p++;
				if (ch == '\\' && c->p < c->end)
					c->p++;
				else if (ch == '(')
					depth++;
				else if (ch == ')' && --depth == 0)
					break;
			}
		} else {
			break;
		}
	}
}

/* RFC 2045 token characters. */
static bool tchar(uint8_t c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static arca_msg_str token(arca_imap_msg *m, cur *c, bool *nomem)
{
	arca_msg_str s = { NULL, 0 };
	const uint8_t *start = c->p;
	while (c->p < c->end && tchar(*c->p))
		c->p++;
	if (c->p == start)
		return s;
	s.len = (size_t)(c->p - start);
	s.s = arca_msg_strdup(m, start, s.len);
	if (s.s == NULL)
		*nomem = true;
	return s;
}

/* A quoted string at c->p ('"'), unescaped, folding removed. */
static arca_msg_str quoted(arca_imap_msg *m, cur *c, bool *nomem)
{
	arca_msg_str s = { NULL, 0 };
	const uint8_t *q = c->p + 1, *stop;
	char *o;
	size_t n = 0;
	while (q < c->end && *q != '"')
		q += (*q == '\\' && q + 1 < c->end) ? 2 : 1;
	stop = q;
	o = arca_msg_alloc(m, (size_t)(stop - (c->p + 1)) + 1);
	if (o == NULL) {
		*nomem = true;
		return s;
	}
	for (q = c->p + 1; q < stop; q++) {
		if (*q == '\\' && q + 1 < stop)
			q++;
		else if (*q == '\r' || *q == '\n')
			continue;
		o[n++] = (char)*q;
	}
	c->p = stop < c->end ? stop + 1 : stop;
	o[n] = '\0';
	s.s = o;
	s.len = n;
	return s;
}

/* ---- parameters ----------------------------------------------------------------------- */

typedef struct {
	arca_msg_param *v;
	size_t n;
} plist;

typedef struct {
	size_t base_len; /* name before '*' */
	unsigned idx;
	bool ext;
	size_t pos; /* original position, for a stable sort */
	const arca_msg_param *prm;
} sect;

static int sect_cmp(const void *a, const void *b)
{
	const sect *x = a, *y = b;
	size_t l = x->base_len < y->base_len ? x->base_len : y->base_len;
	int c = strncasecmp(x->prm->name.s, y->prm->name.s, l);
	if (c == 0 && x->base_len != y->base_len)
		c = x->base_len < y->base_len ? -1 : 1;
	if (c != 0)
		return c;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->pos < y->pos ? -1 : (x->pos > y->pos ? 1 : 0);
}

/* name*N, name*N*, name*: RFC 2231 sections. */
static bool rfc2231_name(const arca_msg_str *name, sect *s)
{
	const char *star = memchr(name->s, '*', name->len);
	const char *p, *end = name->s + name->len;
	unsigned long idx = 0;
	if (star == NULL || star == name->s)
		return false;
	p = star + 1;
	s->ext = false;
	if (p == end) {
		s->ext = true; /* name*: one encoded section */
	} else {
		if (*p < '0' || *p > '9')
			return false;
		while (p < end && *p >= '0' && *p <= '9') {
			idx = idx * 10 + (unsigned long)(*p - '0');
			if (idx > 100000)
				return false;
			p++;
		}
		if (p < end && *p == '*') {
			s->ext = true;
			p++;
		}
		if (p != end)
			return false;
	}
	s->base_len = (size_t)(star - name->s);
	s->idx = (unsigned)idx;
	return true;
}

static bool push_param(arca_imap_msg *m, plist *l, size_t *cap, arca_msg_str name, arca_msg_str value)
{
	if (l->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 4;
		arca_msg_param *nv = arca_msg_alloc(m, nc * sizeof(*nv));
		if (nv == NULL)
			return false;
		if (l->n > 0)
			memcpy(nv, l->v, l->n * sizeof(*nv));
		l->v = nv;
		*cap = nc;
	}
	l->v[l->n].name = name;
	l->v[l->n].value = value;
	l->n++;
	return true;
}

/* Appends s to the arena string being built in b (escaping '%' when esc). */
static bool merged_append(arca_buf *b, const arca_msg_str *s, bool esc)
{
	if (!esc)
		return arca_buf_append(b, s->s, s->len) == ARCA_OK;
	for (size_t i = 0; i < s->len; i++) {
		arca_status st = s->s[i] == '%' ? arca_buf_append(b, "%25", 3) : arca_buf_append(b, &s->s[i], 1);
		if (st != ARCA_OK)
			return false;
	}
	return true;
}

/* Merges RFC 2231 sections of raw (in order) into out. */
static bool merge_2231(arca_imap_msg *m, const plist *raw, plist *out)
{
	size_t cap = 0, nsect = 0;
	sect *ss;
	arca_buf b;
	bool ok = true;
	ss = raw->n > 0 ? malloc(raw->n * sizeof(*ss)) : NULL;
	if (raw->n > 0 && ss == NULL)
		return false;
	for (size_t i = 0; i < raw->n; i++) {
		sect s;
		if (rfc2231_name(&raw->v[i].name, &s)) {
			s.pos = i;
			s.prm = &raw->v[i];
			ss[nsect++] = s;
		} else if (!push_param(m, out, &cap, raw->v[i].name, raw->v[i].value)) {
			free(ss);
			return false;
		}
	}
	if (nsect == 0) {
		free(ss);
		return true;
	}
	qsort(ss, nsect, sizeof(*ss), sect_cmp);
	arca_buf_init(&b, ARCA_MIME_MAX_FIELD * 4);
	for (size_t i = 0, next; ok && i < nsect; i = next) {
		bool consecutive = true, have_ext = false;
		arca_msg_str name, value;
		for (next = i; next < nsect; next++) {
			if (ss[next].base_len != ss[i].base_len ||
			    strncasecmp(ss[next].prm->name.s, ss[i].prm->name.s, ss[i].base_len) != 0)
				break;
			if (ss[next].idx != next - i)
				consecutive = false;
			have_ext |= ss[next].ext;
		}
		if (!consecutive) {
			/* Missing or repeated sections: keep them as they were sent. */
			for (size_t j = i; ok && j < next; j++)
				ok = push_param(m, out, &cap, ss[j].prm->name, ss[j].prm->value);
			continue;
		}
		arca_buf_reset(&b);
		if (have_ext && !ss[i].ext)
			ok = arca_buf_append(&b, "''", 2) == ARCA_OK;
		for (size_t j = i; ok && j < next; j++)
			ok = merged_append(&b, &ss[j].prm->value, have_ext && !ss[j].ext);
		if (!ok)
			break;
		name.len = ss[i].base_len + (have_ext ? 1 : 0);
		name.s = arca_msg_strdup(m, ss[i].prm->name.s, name.len);
		value.len = b.len;
		value.s = arca_msg_strdup(m, b.data != NULL ? b.data : "", b.len);
		ok = name.s != NULL && value.s != NULL && push_param(m, out, &cap, name, value);
	}
	arca_buf_free(&b);
	free(ss);
	return ok;
}

/* ";" attribute "=" value ... after the type (or disposition). */
static bool parse_params(arca_imap_msg *m, cur *c, arca_msg_param **v, size_t *n)
{
	plist raw = { NULL, 0 }, merged = { NULL, 0 };
	size_t cap = 0;
	bool nomem = false;
	while (c->p < c->end && raw.n < ARCA_MIME_MAX_PARAMS) {
		arca_msg_str name, value = { "", 0 };
		skip_cfws(c);
		if (c->p >= c->end)
			break;
		if (*c->p != ';') {
			/* garbage: skip to the next parameter */
			const uint8_t *semi = memchr(c->p, ';', (size_t)(c->end - c->p));
			if (semi == NULL)
				break;
			c->p = semi;
		}
		c->p++;
		skip_cfws(c);
		name = token(m, c, &nomem);
		if (nomem)
			return false;
		if (name.s == NULL)
			continue;
		skip_cfws(c);
		if (c->p >= c->end || *c->p != '=')
			continue;
		c->p++;
		skip_cfws(c);
		if (c->p < c->end && *c->p == '"') {
			value = quoted(m, c, &nomem);
		} else if (c->p < c->end) {
			const uint8_t *start = c->p, *stop, *q;
			while (c->p < c->end && *c->p != ';' && *c->p != ' ' && *c->p != '\t' &&
			       *c->p != '\r' && *c->p != '\n' && *c->p != '(' && *c->p != '"')
				c->p++;
			stop = c->p;
			/* An unquoted value with spaces ("name=my file.txt") runs to the next ';'. */
			q = c->p;
			while (q < c->end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
				q++;
			if (q < c->end && *q != ';' && *q != '(' && stop > start) {
				const uint8_t *semi = memchr(q, ';', (size_t)(c->end - q));
				stop = semi != NULL ? semi : c->end;
				while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t' ||
				                        stop[-1] == '\r' || stop[-1] == '\n'))
					stop--;
				c->p = semi != NULL ? semi : c->end;
			}
			if (stop > start) {
				/* unfold: drop CR/LF inside */
				char *o = arca_msg_alloc(m, (size_t)(stop - start) + 1);
				size_t k = 0;
				if (o == NULL)
					return false;
				for (const uint8_t *s = start; s < stop; s++)
					if (*s != '\r' && *s != '\n')
						o[k++] = (char)*s;
				o[k] = '\0';
				value.s = o;
				value.len = k;
			}
		}
		if (nomem || !push_param(m, &raw, &cap, name, value))
			return false;
	}
	if (!merge_2231(m, &raw, &merged))
		return false;
	*v = merged.v;
	*n = merged.n;
	return true;
}

static bool parse_type(arca_imap_msg *m, arca_msg_part *p, arca_msg_range r)
{
	cur c = { m->data + r.off, m->data + r.off + r.len };
	arca_msg_str type, sub;
	bool nomem = false;
	skip_cfws(&c);
	type = token(m, &c, &nomem);
	skip_cfws(&c);
	if (nomem)
		return false;
	if (type.s == NULL || c.p >= c.end || *c.p != '/')
		return true; /* invalid: text/plain (RFC 2045 §5.2) */
	c.p++;
	skip_cfws(&c);
	sub = token(m, &c, &nomem);
	if (nomem)
		return false;
	if (sub.s == NULL)
		return true;
	p->type = type;
	p->subtype = sub;
	if (!parse_params(m, &c, &p->params, &p->nparams))
		return false;
	for (size_t i = 0; i < p->nparams; i++) {
		const arca_msg_str *n = &p->params[i].name;
		if (n->len == 8 && strncasecmp(n->s, "boundary", 8) == 0) {
			const arca_msg_str *v = &p->params[i].value;
			/* A boundary never spans lines; one that has CR, LF or NUL cannot match. */
			if (v->len > 0 && memchr(v->s, '\n', v->len) == NULL && memchr(v->s, '\r', v->len) == NULL)
				p->boundary = *v;
			break;
		}
	}
	return true;
}

int arca_msg_cte_kind(const char *t, size_t len)
{
	if ((len == 4 && (strncasecmp(t, "7bit", 4) == 0 || strncasecmp(t, "8bit", 4) == 0)) ||
	    (len == 6 && strncasecmp(t, "binary", 6) == 0))
		return ARCA_MSG_CTE_IDENTITY;
	if (len == 6 && strncasecmp(t, "base64", 6) == 0)
		return ARCA_MSG_CTE_BASE64;
	if (len == 16 && strncasecmp(t, "quoted-printable", 16) == 0)
		return ARCA_MSG_CTE_QP;
	return ARCA_MSG_CTE_UNKNOWN;
}

static bool atext(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80 ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

bool arca_msg_parse_content(arca_imap_msg *m, arca_msg_part *p)
{
	arca_msg_range *cf = p->content;
	bool nomem = false;
	p->cte = ARCA_MSG_CTE_IDENTITY;
	if (arca_msg_range_present(cf[ARCA_MSG_C_TYPE]) && !parse_type(m, p, cf[ARCA_MSG_C_TYPE]))
		return false;
	if (arca_msg_range_present(cf[ARCA_MSG_C_ENCODING])) {
		arca_msg_range r = cf[ARCA_MSG_C_ENCODING];
		cur c = { m->data + r.off, m->data + r.off + r.len };
		arca_msg_str t;
		skip_cfws(&c);
		t = token(m, &c, &nomem);
		if (nomem)
			return false;
		skip_cfws(&c);
		/* Anything after the token makes it invalid, which means 7bit (as Dovecot). */
		if (t.s != NULL && c.p == c.end) {
			p->encoding = t;
			p->cte = arca_msg_cte_kind(t.s, t.len);
		}
	}
	if (arca_msg_range_present(cf[ARCA_MSG_C_DISPOSITION])) {
		arca_msg_range r = cf[ARCA_MSG_C_DISPOSITION];
		cur c = { m->data + r.off, m->data + r.off + r.len };
		skip_cfws(&c);
		p->disposition = token(m, &c, &nomem);
		if (nomem)
			return false;
		if (p->disposition.s != NULL && !parse_params(m, &c, &p->dparams, &p->ndparams))
			return false;
	}
	if (arca_msg_range_present(cf[ARCA_MSG_C_LANGUAGE])) {
		arca_msg_range r = cf[ARCA_MSG_C_LANGUAGE];
		cur c = { m->data + r.off, m->data + r.off + r.len };
		size_t cap = 0;
		skip_cfws(&c);
		while (c.p < c.end && p->nlanguages < ARCA_MIME_MAX_PARAMS) {
			const uint8_t *start = c.p;
			arca_msg_str s;
			while (c.p < c.end && atext(*c.p))
				c.p++;
			if (c.p == start)
				break;
			s.len = (size_t)(c.p - start);
			s.s = arca_msg_strdup(m, start, s.len);
			if (s.s == NULL)
				return false;
			if (p->nlanguages == cap) {
				size_t nc = cap ? cap * 2 : 4;
				arca_msg_str *nv = arca_msg_alloc(m, nc * sizeof(*nv));
				if (nv == NULL)
					return false;
				if (p->nlanguages > 0)
					memcpy(nv, p->languages, p->nlanguages * sizeof(*nv));
				p->languages = nv;
				cap = nc;
			}
			p->languages[p->nlanguages++] = s;
			skip_cfws(&c);
			if (c.p >= c.end || *c.p != ',')
				break;
			c.p++;
			skip_cfws(&c);
		}
	}
	return true;
}

/* ---- BODY / BODYSTRUCTURE -------------------------------------------------------------- */

typedef struct {
	const arca_imap_msg *m;
	arca_buf *out;
	arca_buf tmp;
	arca_status st;
} wr;

static void put(wr *w, const char *s)
{
	if (w->st == ARCA_OK)
		w->st = arca_msg_put(w->out, s, strlen(s));
}

/* " <n>" */
static void put_num(wr *w, size_t n)
{
	char b[24];
	size_t i = sizeof(b);
	do {
		b[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	b[--i] = ' ';
	if (w->st == ARCA_OK)
		w->st = arca_msg_put(w->out, b + i, sizeof(b) - i);
}

static void put_str(wr *w, const arca_msg_str *s)
{
	if (w->st == ARCA_OK)
		w->st = arca_imap_write_string(w->out, s->s, s->len);
}

/* nstring of a header value, unfolded */
static void put_value(wr *w, arca_msg_range r)
{
	if (w->st != ARCA_OK)
		return;
	if (!arca_msg_range_present(r)) {
		put(w, "NIL");
		return;
	}
	{
		const uint8_t *p = w->m->data + r.off, *end = p + r.len;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (memchr(p, '\n', (size_t)(end - p)) == NULL && (size_t)(end - p) <= ARCA_MIME_MAX_FIELD) {
			w->st = arca_imap_write_string(w->out, p, (size_t)(end - p));
			return;
		}
	}
	arca_buf_reset(&w->tmp);
	w->st = arca_msg_unfold(w->m, r, &w->tmp);
	if (w->st == ARCA_OK)
		w->st = arca_imap_write_string(w->out, w->tmp.data, w->tmp.len);
}

static void put_params(wr *w, const arca_msg_param *v, size_t n, bool default_charset)
{
	bool charset = false;
	if (n == 0 && !default_charset) {
		put(w, "NIL");
		return;
	}
	put(w, "(");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			put(w, " ");
		put_str(w, &v[i].name);
		put(w, " ");
		put_str(w, &v[i].value);
		if (v[i].name.len == 7 && strncasecmp(v[i].name.s, "charset", 7) == 0)
			charset = true;
	}
	if (default_charset && !charset)
		put(w, n > 0 ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"");
	put(w, ")");
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void put_ext_common(wr *w, const arca_msg_part *p)
{
	put(w, " ");
	if (p->disposition.s == NULL) {
		put(w, "NIL");
	} else {
		put(w, "(");
		put_str(w, &p->disposition);
		put(w, " ");
		put_params(w, p->dparams, p->ndparams, false);
		put(w, ")");
	}
	put(w, " ");
	if (p->nlanguages == 0) {
		put(w, "NIL");
	} else {
		put(w, "(");
		for (size_t i = 0; i < p->nlanguages; i++) {
			if (i > 0)
				put(w, " ");
			put_str(w, &p->languages[i]);
		}
		put(w, ")");
	}
	put(w, " ");
	put_value(w, p->content[ARCA_MSG_C_LOCATION]);
}

static void put_body(wr *w, const arca_msg_part *p, bool ext)
{
	bool text;
	if (w->st != ARCA_OK)
		return;
	if ((p->flags & ARCA_MSG_F_MULTIPART) != 0) {
		for (const arca_msg_part *c = p->children; c != NULL; c = c->next) {
			put(w, "(");
			put_body(w, c, ext);
			put(w, ")");
		}
		put(w, " ");
		put_str(w, &p->subtype);
		if (!ext)
			return;
		put(w, " ");
		put_params(w, p->params, p->nparams, false);
		put_ext_common(w, p);
		return;
	}
	if ((p->flags & ARCA_MSG_F_RFC822) != 0) {
		put(w, "\"message\" \"rfc822\" ");
		put_params(w, p->type.s != NULL ? p->params : NULL, p->type.s != NULL ? p->nparams : 0, false);
		text = false;
	} else if ((p->flags & ARCA_MSG_F_DEMOTED) != 0 || p->type.s == NULL) {
		put(w, "\"text\" \"plain\" ");
		put_params(w, NULL, 0, true);
		text = true;
	} else {
		text = (p->flags & ARCA_MSG_F_TEXT) != 0;
		put_str(w, &p->type);
		put(w, " ");
		put_str(w, &p->subtype);
		put(w, " ");
		put_params(w, p->params, p->nparams, text);
	}
	put(w, " ");
	put_value(w, p->content[ARCA_MSG_C_ID]);
	put(w, " ");
	put_value(w, p->content[ARCA_MSG_C_DESCRIPTION]);
	put(w, " ");
	if (p->encoding.s != NULL)
		put_str(w, &p->encoding);
	else
		put(w, "\"7bit\"");
	put_num(w, p->body_len);
	if (text) {
		put_num(w, p->body_lines);
	} else if ((p->flags & ARCA_MSG_F_RFC822) != 0 && p->children != NULL) {
		put(w, " ");
		if (w->st == ARCA_OK)
			w->st = arca_msg_write_envelope(w->m, p->children, w->out);
		put(w, " (");
		put_body(w, p->children, ext);
		put(w, ")");
		put_num(w, p->body_lines);
	}
	if (!ext)
		return;
	put(w, " ");
	put_value(w, p->content[ARCA_MSG_C_MD5]);
	put_ext_common(w, p);
}

arca_status arca_msg_write_body(const arca_imap_msg *m, const arca_msg_part *p, bool ext,
                                arca_buf *out)
{
	wr w = { m, out, { NULL, 0, 0, 0 }, ARCA_OK };
	arca_buf_init(&w.tmp, ARCA_MIME_MAX_FIELD + 16);
	put_body(&w, p, ext);
	arca_buf_free(&w.tmp);
	return w.st;
}

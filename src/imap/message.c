/* IMAP message layer: the arena, the structure scanner, part lookup and the section fetches.
 * The scanner is one forward pass over the raw bytes: every line is looked at once, a line
 * that starts with "--" is compared with the boundaries of the enclosing multiparts (at most
 * ARCA_MIME_MAX_DEPTH of them, each compare stops at the line's end), so the time is linear
 * in the message size whatever the nesting or boundary lengths. */
#include "imap/msg_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/write.h"

#define ARENA_FIRST 3072u
#define ARENA_MAX_BLOCK (256u * 1024u)

/* ---- arena ---------------------------------------------------------------------------- */

void *arca_msg_alloc(arca_imap_msg *m, size_t n)
{
	arca_msg_block *b = m->blocks;
	size_t a = sizeof(max_align_t);
	void *p;
	if (n > SIZE_MAX / 2)
		return NULL;
	n = (n + a - 1) / a * a;
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = b != NULL ? b->cap * 2 : ARENA_FIRST;
		arca_msg_block *nb;
		if (cap > ARENA_MAX_BLOCK)
			cap = ARENA_MAX_BLOCK;
		if (cap < n)
			cap = n;
		nb = malloc(sizeof(*nb) + cap);
		if (nb == NULL)
			return NULL;
		nb->next = b;
		nb->used = 0;
		nb->cap = cap;
		m->blocks = b = nb;
	}
	p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

char *arca_msg_strdup(arca_imap_msg *m, const void *s, size_t n)
{
	char *p = arca_msg_alloc(m, n + 1);
	if (p == NULL)
		return NULL;
	if (n > 0)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* ---- scanner -------------------------------------------------------------------------- */

typedef struct {
	arca_msg_part *owner;
	const uint8_t *s;
	size_t len;
} bnd;

typedef struct {
	size_t line;    /* offset of the boundary line ("--...") */
	size_t next;    /* offset after its LF (or the end) */
	size_t lf_line; /* LFs before line */
	size_t idx;     /* index in the boundary stack */
	bool close;     /* "--boundary--" */
} bline;

typedef struct {
	arca_imap_msg *m;
	const uint8_t *d;
	size_t n;
	size_t pos;
	size_t lf; /* LF characters before pos */
	bnd stack[ARCA_MIME_MAX_DEPTH + 1];
	size_t nb;
	size_t hdr_bytes_left; /* ARCA_MIME_MAX_HEADER_TOTAL budget */
	size_t fields_left;    /* ARCA_MIME_MAX_HEADERS_TOTAL budget */
	bool no_more_parts;
	bool nomem;
} scan;

enum { H_BLANK, H_EOF, H_CUT, H_BOUNDARY };

static size_t count_lf(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	size_t c = 0;
	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		c++;
		p++;
	}
	return c;
}

static arca_msg_part *new_part(scan *sc, arca_msg_part *parent, bool root)
{
	arca_msg_part *p = arca_msg_alloc(sc->m, sizeof(*p));
	if (p == NULL) {
		sc->nomem = true;
		return NULL;
	}
	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < ARCA_MSG_C_N; i++)
		p->content[i].off = ARCA_MSG_NONE;
	if (root) {
		p->env = arca_msg_alloc(sc->m, sizeof(*p->env) * ARCA_MSG_ENV_N);
		if (p->env == NULL) {
			sc->nomem = true;
			return NULL;
		}
		for (size_t i = 0; i < ARCA_MSG_ENV_N; i++)
			p->env[i].off = ARCA_MSG_NONE;
		p->flags |= ARCA_MSG_F_ROOT;
	}
	p->parent = parent;
	if (parent != NULL) {
		p->depth = parent->depth + 1;
		if (parent->last_child != NULL)
			parent->last_child->next = p;
		else
			parent->children = p;
		parent->last_child = p;
		parent->nchildren++;
	}
	sc->m->nparts++;
	if (sc->m->nparts >= ARCA_MIME_MAX_PARTS)
		sc->no_more_parts = true;
	return p;
}

/* Is the line at L (which starts with "--") a boundary of an enclosing multipart? *next gets
 * the offset of the following line either way. */
static bool boundary_at(scan *sc, size_t L, bline *bl, size_t *next)
{
	const uint8_t *p = sc->d + L + 2;
	size_t rest = sc->n - L - 2;
	const uint8_t *lf = memchr(p, '\n', rest);
	size_t line = lf != NULL ? (size_t)(lf - p) : rest;
	size_t fs = line, best = SIZE_MAX;
	*next = lf != NULL ? (size_t)(lf - sc->d) + 1 : sc->n;
	while (fs > 0 && (p[fs - 1] == '\r' || p[fs - 1] == ' ' || p[fs - 1] == '\t'))
		fs--;
	if (fs > 2 && p[fs - 1] == '-' && p[fs - 2] == '-')
		fs -= 2;
	/* Innermost first; the longest matching boundary wins (one may prefix another). */
	for (size_t i = sc->nb; i-- > 0;) {
		const bnd *b = &sc->stack[i];
		if (b->len <= fs && memcmp(b->s, p, b->len) == 0 &&
		    (best == SIZE_MAX || b->len > sc->stack[best].len)) {
			best = i;
			if (b->len == fs)
				break;
		}
	}
	if (best == SIZE_MAX)
		return false;
	bl->line = L;
	bl->next = *next;
	bl->idx = best;
	bl->close = line >= sc->stack[best].len + 2 && p[sc->stack[best].len] == '-' &&
	            p[sc->stack[best].len + 1] == '-';
	return true;
}

static bool name_is(const uint8_t *name, size_t len, const char *lit)
{
	return strlen(lit) == len && strncasecmp((const char *)name, lit, len) == 0;
}

static void set_first(arca_msg_range *r, size_t off, size_t len)
{
	if (r->off == ARCA_MSG_NONE) {
		r->off = off;
		r->len = len;
	}
}

/* A complete header field [fs, fend) whose first line ends at fline. Records the fields the
 * structure and the envelope need (first occurrence). */
static void field_done(scan *sc, arca_msg_part *p, size_t fs, size_t fline, size_t fend)
{
	const uint8_t *d = sc->d;
	const uint8_t *colon = memchr(d + fs, ':', fline - fs);
	const uint8_t *name = d + fs;
	size_t nlen, voff, vlen;
	arca_msg_range *env = p->env;
	if (colon == NULL)
		return;
	nlen = (size_t)(colon - name);
	while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
		nlen--;
	voff = (size_t)(colon - d) + 1;
	vlen = fend - voff;
	if (nlen < 2)
		return;
	switch (name[0] | 0x20) {
	case 'c':
		if (nlen > 8 && strncasecmp((const char *)name, "content-", 8) == 0) {
			static const char *const cn[ARCA_MSG_C_N] = {
				"type", "transfer-encoding", "id", "description",
				"disposition", "language", "location", "md5",
			};
			for (size_t i = 0; i < ARCA_MSG_C_N; i++)
				if (name_is(name + 8, nlen - 8, cn[i])) {
					set_first(&p->content[i], voff, vlen);
					break;
				}
		} else if (env != NULL && name_is(name, nlen, "cc")) {
			set_first(&env[ARCA_MSG_ENV_CC], voff, vlen);
		}
		break;
	case 'm':
		if (name_is(name, nlen, "mime-version"))
			p->flags |= ARCA_MSG_F_MIMEVER;
		else if (env != NULL && name_is(name, nlen, "message-id"))
			set_first(&env[ARCA_MSG_ENV_MESSAGE_ID], voff, vlen);
		break;
	case 'd':
		if (env != NULL && name_is(name, nlen, "date"))
			set_first(&env[ARCA_MSG_ENV_DATE], voff, vlen);
		break;
	case 's':
		if (env != NULL && name_is(name, nlen, "subject"))
			set_first(&env[ARCA_MSG_ENV_SUBJECT], voff, vlen);
		else if (env != NULL && name_is(name, nlen, "sender"))
			set_first(&env[ARCA_MSG_ENV_SENDER], voff, vlen);
		break;
	case 'f':
		if (env != NULL && name_is(name, nlen, "from"))
			set_first(&env[ARCA_MSG_ENV_FROM], voff, vlen);
		break;
	case 't':
		if (env != NULL && name_is(name, nlen, "to"))
			set_first(&env[ARCA_MSG_ENV_TO], voff, vlen);
		break;
	case 'r':
		if (env != NULL && name_is(name, nlen, "reply-to"))
			set_first(&env[ARCA_MSG_ENV_REPLY_TO], voff, vlen);
		break;
	case 'b':
		if (env != NULL && name_is(name, nlen, "bcc"))
			set_first(&env[ARCA_MSG_ENV_BCC], voff, vlen);
		break;
	case 'i':
		if (env != NULL && name_is(name, nlen, "in-reply-to"))
			set_first(&env[ARCA_MSG_ENV_IN_REPLY_TO], voff, vlen);
		break;
	default:
		break;
	}
}

/* Parses the header of p starting at sc->pos. Returns H_BLANK / H_EOF / H_CUT with sc->pos at
 * the body, or H_BOUNDARY with *bl describing the enclosing boundary line that ended it (the
 * header then ends before that line's preceding newline). */
static int parse_header(scan *sc, arca_msg_part *p, bline *bl)
{
	const uint8_t *d = sc->d;
	size_t n = sc->n, start = sc->pos, pos = start, nfields = 0;
	size_t max_bytes = ARCA_MIME_MAX_HEADER_BYTES, max_fields = ARCA_MIME_MAX_HEADERS;
	size_t fs = ARCA_MSG_NONE, fline = 0, fend = 0;
	int r;
	if (max_bytes > sc->hdr_bytes_left)
		max_bytes = sc->hdr_bytes_left;
	if (max_fields > sc->fields_left)
		max_fields = sc->fields_left;
	for (;;) {
		const uint8_t *lf;
		size_t next, cend;
		uint8_t c;
		if (pos >= n) {
			r = H_EOF;
			break;
		}
		c = d[pos];
		if (c == '\n' || (c == '\r' && pos + 1 < n && d[pos + 1] == '\n')) {
			size_t e = pos + (c == '\n' ? 1 : 2);
			if (e - start > max_bytes) {
				r = H_CUT;
				break;
			}
			pos = e;
			sc->lf++;
			r = H_BLANK;
			break;
		}
		if ((c != ' ' && c != '\t') || fs == ARCA_MSG_NONE) {
			if (fs != ARCA_MSG_NONE) {
				field_done(sc, p, fs, fline, fend);
				fs = ARCA_MSG_NONE;
			}
			if (c == '-' && sc->nb > 0 && pos + 1 < n && d[pos + 1] == '-' &&
			    boundary_at(sc, pos, bl, &next)) {
				bl->lf_line = sc->lf;
				sc->pos = pos;
				r = H_BOUNDARY;
				goto done;
			}
			if (nfields == max_fields) {
				r = H_CUT;
				break;
			}
			nfields++;
			fs = pos;
			fline = ARCA_MSG_NONE;
		}
		lf = memchr(d + pos, '\n', n - pos);
		next = lf != NULL ? (size_t)(lf - d) + 1 : n;
		if (next - start > max_bytes) {
			if (pos == start) {
				/* One line longer than the budget: cut inside it. */
				pos = start + max_bytes;
				fs = ARCA_MSG_NONE;
			} else if (fs == pos) {
				fs = ARCA_MSG_NONE; /* the field starting here is not complete */
			}
			r = H_CUT;
			break;
		}
		cend = lf != NULL ? (size_t)(lf - d) : n;
		if (lf != NULL && cend > pos && d[cend - 1] == '\r')
			cend--;
		if (fline == ARCA_MSG_NONE)
			fline = cend;
		fend = cend;
		if (lf != NULL)
			sc->lf++;
		pos = next;
	}
	if (fs != ARCA_MSG_NONE)
		field_done(sc, p, fs, fline, fend);
	sc->pos = pos;
done:
	if (r == H_CUT)
		sc->m->limited = true;
	/* The message's header budget: once spent, no more parts are made (the rest is body). */
	sc->hdr_bytes_left -= (sc->pos - start) < sc->hdr_bytes_left ? sc->pos - start : sc->hdr_bytes_left;
	sc->fields_left -= nfields;
	if (sc->hdr_bytes_left == 0 || sc->fields_left == 0)
		sc->no_more_parts = true;
	return r;
}

static bool ieq(arca_msg_str s, const char *lit)
{
	return s.s != NULL && strlen(lit) == s.len && strncasecmp(s.s, lit, s.len) == 0;
}

/* End of p's header: decide what p is. has_body false when an enclosing boundary cut the
 * header (nothing follows it inside this part). */
static void classify(scan *sc, arca_msg_part *p, bool has_body)
{
	bool mime = (p->flags & ARCA_MSG_F_MIMEVER) != 0 ||
	            p->content[ARCA_MSG_C_TYPE].off != ARCA_MSG_NONE ||
	            (p->parent != NULL && (p->parent->flags & ARCA_MSG_F_MULTIPART) != 0);
	bool multipart = false, rfc822 = false;
	if (mime) {
		p->flags |= ARCA_MSG_F_MIME;
		if (!arca_msg_parse_content(sc->m, p))
			sc->nomem = true;
	} else {
		for (size_t i = 0; i < ARCA_MSG_C_N; i++)
			p->content[i].off = ARCA_MSG_NONE;
	}
	if (p->type.s == NULL) {
		if (p->parent != NULL && (p->parent->flags & ARCA_MSG_F_DIGEST) != 0)
			rfc822 = true;
		else
			p->flags |= ARCA_MSG_F_TEXT;
	} else if (ieq(p->type, "multipart")) {
		multipart = true;
	} else if (ieq(p->type, "message") && ieq(p->subtype, "rfc822")) {
		rfc822 = true;
	} else if (ieq(p->type, "text")) {
		p->flags |= ARCA_MSG_F_TEXT;
	}
	if (multipart) {
		bool limit = (p->flags & ARCA_MSG_F_LEAF_ONLY) != 0 || p->depth >= ARCA_MIME_MAX_DEPTH ||
		             sc->no_more_parts || sc->nb >= ARCA_MIME_MAX_DEPTH;
		if (p->boundary.len == 0 || limit) {
			if (limit)
				sc->m->limited = true;
			p->flags |= ARCA_MSG_F_DEMOTED | ARCA_MSG_F_TEXT;
		} else {
			p->flags |= ARCA_MSG_F_MULTIPART;
			if (ieq(p->subtype, "digest"))
				p->flags |= ARCA_MSG_F_DIGEST;
			if (has_body) {
				bnd *b = &sc->stack[sc->nb++];
				b->owner = p;
				b->s = (const uint8_t *)p->boundary.s;
				b->len = p->boundary.len;
			}
		}
	} else if (rfc822) {
		if ((p->flags & ARCA_MSG_F_LEAF_ONLY) != 0) {
			sc->m->limited = true;
			p->flags |= ARCA_MSG_F_DEMOTED | ARCA_MSG_F_TEXT;
		} else {
			p->flags |= ARCA_MSG_F_RFC822;
		}
	}
}

/* The nested message of a message/rfc822 part; always created (the grammar needs its
 * envelope and body), but not parsed further beyond the limits. */
static arca_msg_part *nested_root(scan *sc, arca_msg_part *p)
{
	bool limit = sc->no_more_parts || p->depth + 1 > ARCA_MIME_MAX_DEPTH;
	arca_msg_part *c = new_part(sc, p, true);
	if (c == NULL)
		return NULL;
	if (limit) {
		c->flags |= ARCA_MSG_F_LEAF_ONLY;
		sc->m->limited = true;
	}
	return c;
}

static void close_part(arca_msg_part *p, size_t end, size_t lf_end)
{
	if (end > p->body_off) {
		p->body_len = end - p->body_off;
		p->body_lines = lf_end - p->lf_at_body;
	} else {
		p->body_len = 0;
		p->body_lines = 0;
	}
}

/* Scans a body from sc->pos for a boundary line; false at the end of the message. */
static bool scan_body(scan *sc, bline *bl)
{
	const uint8_t *d = sc->d;
	size_t n = sc->n, pos = sc->pos;
	if (sc->nb == 0) {
		sc->lf += count_lf(d + pos, n - pos);
		sc->pos = n;
		return false;
	}
	while (pos < n) {
		const uint8_t *lf;
		if (d[pos] == '-' && pos + 1 < n && d[pos + 1] == '-') {
			size_t next;
			if (boundary_at(sc, pos, bl, &next)) {
				bl->lf_line = sc->lf;
				sc->pos = pos;
				return true;
			}
			if (next > pos && d[next - 1] == '\n')
				sc->lf++;
			pos = next;
			continue;
		}
		lf = memchr(d + pos, '\n', n - pos);
		if (lf == NULL)
			break;
		sc->lf++;
		pos = (size_t)(lf - d) + 1;
	}
	sc->pos = n;
	return false;
}

/* The boundary line *bl was found while inside cur: close the parts it ends and start the next
 * body part (returned, header to parse) or continue in the owner's epilogue (*epilogue). */
static arca_msg_part *at_boundary(scan *sc, arca_msg_part *cur, const bline *bl, bool *epilogue)
{
	const uint8_t *d = sc->d;
	arca_msg_part *owner = sc->stack[bl->idx].owner;
	size_t end = bl->line, lf_end = bl->lf_line;
	/* The newline before the boundary line belongs to the boundary. */
	if (end > 0 && d[end - 1] == '\n') {
		end--;
		lf_end--;
		if (end > 0 && d[end - 1] == '\r')
			end--;
	}
	for (arca_msg_part *p = cur; p != owner && p != NULL; p = p->parent)
		close_part(p, end, lf_end);
	sc->pos = bl->next;
	sc->lf = bl->lf_line + (bl->next > bl->line && d[bl->next - 1] == '\n' ? 1 : 0);
	*epilogue = true;
	if (bl->close) {
		sc->nb = bl->idx;
		return owner;
	}
	if (sc->no_more_parts) {
		/* No more parts: the rest of this multipart is its epilogue. */
		sc->m->limited = true;
		sc->nb = bl->idx;
		return owner;
	}
	sc->nb = bl->idx + 1; /* forget the boundaries of parts it closed */
	*epilogue = false;
	return new_part(sc, owner, false);
}

static void demote_empty(arca_msg_part *p)
{
	for (arca_msg_part *c = p->children; c != NULL; c = c->next)
		demote_empty(c);
	if ((p->flags & ARCA_MSG_F_MULTIPART) != 0 && p->nchildren == 0) {
		p->flags &= ~(unsigned)(ARCA_MSG_F_MULTIPART | ARCA_MSG_F_DIGEST);
		p->flags |= ARCA_MSG_F_DEMOTED | ARCA_MSG_F_TEXT;
	}
}

static void scan_message(scan *sc)
{
	arca_msg_part *cur = sc->m->root;
	bool in_header = true;
	bline bl;
	for (;;) {
		bool epilogue;
		if (cur == NULL || sc->nomem)
			return;
		if (in_header) {
			int r;
			cur->hdr_off = sc->pos;
			r = parse_header(sc, cur, &bl);
			if (r == H_BOUNDARY) {
				size_t e = bl.line;
				if (e > cur->hdr_off && sc->d[e - 1] == '\n') {
					e--;
					if (e > cur->hdr_off && sc->d[e - 1] == '\r')
						e--;
				}
				cur->hdr_len = e - cur->hdr_off;
				cur->body_off = e;
				cur->lf_at_body = bl.lf_line;
				classify(sc, cur, false);
				if ((cur->flags & ARCA_MSG_F_RFC822) != 0) {
					arca_msg_part *c = nested_root(sc, cur);
					if (c == NULL)
						return;
					c->hdr_off = c->body_off = e;
					c->lf_at_body = bl.lf_line;
					classify(sc, c, false);
					cur = c;
				}
				cur = at_boundary(sc, cur, &bl, &epilogue);
				in_header = !epilogue;
				continue;
			}
			cur->hdr_len = sc->pos - cur->hdr_off;
			classify(sc, cur, true);
			cur->body_off = sc->pos;
			cur->lf_at_body = sc->lf;
			if ((cur->flags & ARCA_MSG_F_RFC822) != 0) {
				cur = nested_root(sc, cur);
				continue;
			}
			in_header = false;
		}
		if (!scan_body(sc, &bl)) {
			for (arca_msg_part *p = cur; p != NULL; p = p->parent)
				close_part(p, sc->n, sc->lf);
			return;
		}
		cur = at_boundary(sc, cur, &bl, &epilogue);
		in_header = !epilogue;
	}
}

arca_status arca_imap_msg_parse(const uint8_t *data, size_t len, arca_imap_msg **out,
                                arca_error *err)
{
	arca_imap_msg *m;
	scan sc;
	*out = NULL;
	if (data == NULL)
		len = 0;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory parsing a message");
	m->data = data != NULL ? data : (const uint8_t *)"";
	m->len = len;
	m->has_nul = len > 0 && memchr(m->data, 0, len) != NULL;
	memset(&sc, 0, sizeof(sc));
	sc.m = m;
	sc.d = m->data;
	sc.n = len;
	sc.hdr_bytes_left = ARCA_MIME_MAX_HEADER_TOTAL;
	sc.fields_left = ARCA_MIME_MAX_HEADERS_TOTAL;
	m->root = new_part(&sc, NULL, true);
	if (m->root != NULL)
		scan_message(&sc);
	if (sc.nomem || m->root == NULL) {
		arca_imap_msg_free(&m);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory parsing a message");
	}
	demote_empty(m->root);
	*out = m;
	return ARCA_OK;
}

void arca_imap_msg_free(arca_imap_msg **msg)
{
	arca_imap_msg *m;
	if (msg == NULL || *msg == NULL)
		return;
	m = *msg;
	while (m->blocks != NULL) {
		arca_msg_block *b = m->blocks;
		m->blocks = b->next;
		free(b);
	}
	free(m);
	*msg = NULL;
}

size_t arca_imap_msg_size(const arca_imap_msg *msg)
{
	return msg->len;
}

size_t arca_imap_msg_part_count(const arca_imap_msg *msg)
{
	return msg->nparts;
}

bool arca_imap_msg_limited(const arca_imap_msg *msg)
{
	return msg->limited;
}

arca_status arca_imap_msg_envelope(const arca_imap_msg *msg, arca_buf *out)
{
	return arca_msg_write_envelope(msg, msg->root, out);
}

arca_status arca_imap_msg_bodystructure(const arca_imap_msg *msg, bool extended, arca_buf *out)
{
	arca_status st = arca_buf_append(out, "(", 1);
	if (st == ARCA_OK)
		st = arca_msg_write_body(msg, msg->root, extended, out);
	if (st == ARCA_OK)
		st = arca_buf_append(out, ")", 1);
	return st;
}

/* ---- header fields -------------------------------------------------------------------- */

bool arca_msg_next_field(const uint8_t *d, size_t end, size_t *pos, size_t *name_len,
                         size_t *field_off, size_t *field_len, size_t *value_off)
{
	size_t p = *pos, fline, fend;
	const uint8_t *lf, *colon;
	if (p >= end || d[p] == '\n' || (d[p] == '\r' && p + 1 < end && d[p + 1] == '\n'))
		return false;
	*field_off = p;
	fline = ARCA_MSG_NONE;
	for (;;) {
		size_t cend;
		lf = memchr(d + p, '\n', end - p);
		cend = lf != NULL ? (size_t)(lf - d) : end;
		if (lf != NULL && cend > p && d[cend - 1] == '\r')
			cend--;
		if (fline == ARCA_MSG_NONE)
			fline = cend;
		fend = cend;
		p = lf != NULL ? (size_t)(lf - d) + 1 : end;
		if (p >= end || (d[p] != ' ' && d[p] != '\t'))
			break;
	}
	colon = memchr(d + *field_off, ':', fline - *field_off);
	if (colon != NULL) {
		size_t nl = (size_t)(colon - d) - *field_off;
		while (nl > 0 && (d[*field_off + nl - 1] == ' ' || d[*field_off + nl - 1] == '\t'))
			nl--;
		*name_len = nl;
		*value_off = (size_t)(colon - d) + 1;
	} else {
		*name_len = fline - *field_off;
		*value_off = ARCA_MSG_NONE;
	}
	*field_len = fend - *field_off;
	*pos = p;
	return true;
}

/* ---- sections ------------------------------------------------------------------------- */

static const arca_msg_part *find_part(const arca_imap_msg *m, const uint32_t *parts, size_t n)
{
	const arca_msg_part *p = m->root;
	for (size_t i = 0; i < n && p != NULL; i++) {
		uint32_t num = parts[i];
		bool more = i + 1 < n;
		if ((p->flags & ARCA_MSG_F_MULTIPART) != 0) {
			const arca_msg_part *c = p->children;
			while (c != NULL && num > 1) {
				c = c->next;
				num--;
			}
			p = num == 1 ? c : NULL;
		} else if (num != 1 || (more && (p->flags & ARCA_MSG_F_RFC822) == 0)) {
			/* A leaf has only part 1 (itself); only a message/rfc822 part goes deeper. */
			p = NULL;
		}
		if (p != NULL && more && (p->flags & ARCA_MSG_F_RFC822) != 0)
			p = p->children;
	}
	return p;
}

static const uint8_t empty[1];

static arca_status not_found(const uint8_t **data, size_t *len, arca_error *err)
{
	*data = empty;
	*len = 0;
	return arca_error_set(err, ARCA_ERR_NOTFOUND, "no such body part");
}

static int field_cmp(const void *a, const void *b)
{
	const arca_imap_field_name *x = a, *y = b;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return strncasecmp(x->name, y->name, x->len);
}

static bool field_listed(const arca_imap_fetch_section *sec, const uint8_t *name, size_t len)
{
	if (sec->sorted != NULL) {
		arca_imap_field_name key = { (const char *)name, len };
		return bsearch(&key, sec->sorted, sec->nfields, sizeof(key), field_cmp) != NULL;
	}
	for (size_t i = 0; i < sec->nfields; i++)
		if (sec->fields[i].len == len && strncasecmp(sec->fields[i].name, (const char *)name, len) == 0)
			return true;
	return false;
}

/* HEADER.FIELDS / HEADER.FIELDS.NOT of the header [off, off+len) into scratch. */
static arca_status filter_header(const arca_imap_msg *m, const arca_imap_fetch_section *sec, size_t off,
                                 size_t len, arca_buf *scratch)
{
	const uint8_t *d = m->data;
	size_t end = off + len, pos = off, nl, fo, fl, vo;
	bool not = sec->spec == ARCA_IMAP_SPEC_HEADER_FIELDS_NOT;
	const char *eol = "\r\n";
	const uint8_t *lf = memchr(d + off, '\n', len);
	arca_status st = ARCA_OK;
	if (lf != NULL && (lf == d + off || lf[-1] != '\r'))
		eol = "\n";
	while (st == ARCA_OK && arca_msg_next_field(d, end, &pos, &nl, &fo, &fl, &vo)) {
		size_t stop;
		if (field_listed(sec, d + fo, nl) == not)
			continue;
		/* the field with the newline that ends it, or the header's own style if none */
		stop = fo + fl;
		if (stop < end && d[stop] == '\r' && stop + 1 < end && d[stop + 1] == '\n')
			stop += 2;
		else if (stop < end && d[stop] == '\n')
			stop += 1;
		st = arca_buf_append(scratch, d + fo, stop - fo);
		if (st == ARCA_OK && stop == fo + fl)
			st = arca_buf_appendz(scratch, eol);
	}
	if (st == ARCA_OK)
		st = arca_buf_appendz(scratch, eol);
	return st;
}

void arca_imap_fetch_section_partial(const arca_imap_fetch_section *sec, const uint8_t **data,
                                     size_t *len)
{
	if (!sec->partial)
		return;
	if (sec->offset >= *len) {
		*data = empty;
		*len = 0;
		return;
	}
	*data += sec->offset;
	*len -= sec->offset;
	if (*len > sec->count)
		*len = sec->count;
}

static arca_status limit_error(arca_status st, arca_error *err)
{
	if (st == ARCA_ERR_NOMEM)
		return arca_error_set(err, st, "out of memory fetching a body section");
	return arca_error_set(err, st, "body section larger than the output buffer allows");
}

arca_status arca_imap_msg_section(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                  arca_buf *scratch, const uint8_t **data, size_t *len,
                                  arca_error *err)
{
	const arca_msg_part *p = msg->root, *t;
	bool in_scratch = false;
	size_t off = 0, n = 0;
	arca_buf_reset(scratch);
	if (sec->nparts > 0) {
		p = find_part(msg, sec->parts, sec->nparts);
		if (p == NULL)
			return not_found(data, len, err);
	}
	t = p;
	switch (sec->spec) {
	case ARCA_IMAP_SPEC_ALL:
		if (sec->nparts == 0) {
			off = 0;
			n = msg->len;
		} else {
			off = p->body_off;
			n = p->body_len;
		}
		break;
	case ARCA_IMAP_SPEC_MIME:
		if (sec->nparts == 0)
			return not_found(data, len, err);
		off = p->hdr_off;
		n = p->hdr_len;
		break;
	case ARCA_IMAP_SPEC_HEADER:
	case ARCA_IMAP_SPEC_TEXT:
	case ARCA_IMAP_SPEC_HEADER_FIELDS:
	case ARCA_IMAP_SPEC_HEADER_FIELDS_NOT:
		if (sec->nparts > 0) {
			if ((p->flags & ARCA_MSG_F_RFC822) == 0 || p->children == NULL)
				return not_found(data, len, err);
			t = p->children;
		}
		if (sec->spec == ARCA_IMAP_SPEC_HEADER) {
			off = t->hdr_off;
			n = t->hdr_len;
		} else if (sec->spec == ARCA_IMAP_SPEC_TEXT) {
			off = t->body_off;
			n = t->body_len;
		} else {
			arca_status st = filter_header(msg, sec, t->hdr_off, t->hdr_len, scratch);
			if (st != ARCA_OK)
				return limit_error(st, err);
			in_scratch = true;
		}
		break;
	}
	if (in_scratch) {
		*data = (const uint8_t *)scratch->data;
		*len = scratch->len;
	} else {
		*data = msg->data + off;
		*len = n;
	}
	arca_imap_fetch_section_partial(sec, data, len);
	if (msg->has_nul && *len > 0 && memchr(*data, 0, *len) != NULL) {
		uint8_t *w;
		if (!in_scratch) {
			arca_status st = arca_buf_append(scratch, *data, *len);
			if (st != ARCA_OK)
				return limit_error(st, err);
			*data = (const uint8_t *)scratch->data;
		}
		w = (uint8_t *)*data;
		for (size_t i = 0; i < *len; i++)
			if (w[i] == 0)
				w[i] = 0x80;
	}
	return ARCA_OK;
}

/* The part BINARY[section] decodes and its encoding; NULL if none. */
static const arca_msg_part *binary_part(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                        size_t *off, size_t *n, int *cte)
{
	const arca_msg_part *p;
	*cte = ARCA_MSG_CTE_IDENTITY;
	if (sec->nparts == 0) {
		*off = 0;
		*n = msg->len;
		return msg->root;
	}
	p = find_part(msg, sec->parts, sec->nparts);
	if (p == NULL)
		return NULL;
	*off = p->body_off;
	*n = p->body_len;
	if ((p->flags & (ARCA_MSG_F_MULTIPART | ARCA_MSG_F_RFC822)) == 0 && (p->flags & ARCA_MSG_F_MIME) != 0)
		*cte = p->cte;
	return p;
}

static arca_status unknown_cte(arca_error *err)
{
	return arca_error_set(err, ARCA_IMAP_MSG_UNKNOWN_CTE, "unknown Content-Transfer-Encoding");
}

arca_status arca_imap_msg_binary(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                 arca_buf *scratch, const uint8_t **data, size_t *len,
                                 arca_error *err)
{
	size_t off, n, limit = SIZE_MAX;
	int cte;
	arca_status st = ARCA_OK;
	arca_buf_reset(scratch);
	if (binary_part(msg, sec, &off, &n, &cte) == NULL)
		return not_found(data, len, err);
	if (cte == ARCA_MSG_CTE_UNKNOWN) {
		*data = empty;
		*len = 0;
		return unknown_cte(err);
	}
	if (cte == ARCA_MSG_CTE_IDENTITY) {
		*data = msg->data + off;
		*len = n;
		arca_imap_fetch_section_partial(sec, data, len);
		return ARCA_OK;
	}
	if (sec->partial)
		limit = (size_t)sec->offset + sec->count;
	if (arca_msg_decode(cte, msg->data + off, n, limit, scratch, &st) == SIZE_MAX)
		return limit_error(st, err);
	*data = scratch->data != NULL ? (const uint8_t *)scratch->data : empty;
	*len = scratch->len;
	arca_imap_fetch_section_partial(sec, data, len);
	return ARCA_OK;
}

arca_status arca_imap_msg_binary_size(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                      uint64_t *size, arca_error *err)
{
	size_t off, n;
	int cte;
	arca_status st = ARCA_OK;
	*size = 0;
	if (binary_part(msg, sec, &off, &n, &cte) == NULL)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no such body part");
	if (cte == ARCA_MSG_CTE_UNKNOWN)
		return unknown_cte(err);
	if (cte == ARCA_MSG_CTE_IDENTITY)
		*size = n;
	else
		*size = arca_msg_decode(cte, msg->data + off, n, SIZE_MAX, NULL, &st);
	return ARCA_OK;
}

arca_status arca_imap_msg_fetch(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                arca_buf *scratch, const uint8_t **data, size_t *len,
                                arca_error *err)
{
	uint64_t size;
	arca_status st;
	switch (sec->kind) {
	case ARCA_IMAP_FETCH_BINARY:
		return arca_imap_msg_binary(msg, sec, scratch, data, len, err);
	case ARCA_IMAP_FETCH_BINARY_SIZE:
		st = arca_imap_msg_binary_size(msg, sec, &size, err);
		*data = NULL;
		*len = (size_t)size;
		return st;
	case ARCA_IMAP_FETCH_BODY:
	default:
		return arca_imap_msg_section(msg, sec, scratch, data, len, err);
	}
}

/* ---- section specs -------------------------------------------------------------------- */

arca_status arca_imap_fetch_section_from_node(const arca_imap_node *node, arca_imap_fetch_section *out,
                                            arca_error *err)
{
	static const struct {
		const char *name;
		arca_imap_fetch_kind kind;
		bool peek;
	} kinds[] = {
		{ "BODY", ARCA_IMAP_FETCH_BODY, false },
		{ "BODY.PEEK", ARCA_IMAP_FETCH_BODY, true },
		{ "BINARY", ARCA_IMAP_FETCH_BINARY, false },
		{ "BINARY.PEEK", ARCA_IMAP_FETCH_BINARY, true },
		{ "BINARY.SIZE", ARCA_IMAP_FETCH_BINARY_SIZE, false },
	};
	static const struct {
		const char *text;
		arca_imap_spec spec;
	} specs[] = {
		{ "", ARCA_IMAP_SPEC_ALL },
		{ "HEADER", ARCA_IMAP_SPEC_HEADER },
		{ "HEADER.FIELDS", ARCA_IMAP_SPEC_HEADER_FIELDS },
		{ "HEADER.FIELDS.NOT", ARCA_IMAP_SPEC_HEADER_FIELDS_NOT },
		{ "TEXT", ARCA_IMAP_SPEC_TEXT },
		{ "MIME", ARCA_IMAP_SPEC_MIME },
	};
	const char *name, *text;
	const arca_imap_node *fields;
	size_t k, total = 0;
	char *blob;
	memset(out, 0, sizeof(*out));
	if (node == NULL || arca_imap_node_kind(node) != ARCA_IMAP_NODE_SECTION)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "not a section specification");
	name = arca_imap_section_name(node);
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (strcmp(name, kinds[k].name) == 0)
			break;
	if (k == sizeof(kinds) / sizeof(kinds[0]))
		return arca_error_set(err, ARCA_ERR_SYNTAX, "unknown fetch item %s[]", name);
	out->kind = kinds[k].kind;
	out->peek = kinds[k].peek;
	out->nparts = arca_imap_section_nparts(node);
	if (out->nparts > ARCA_IMAP_MAX_SECTION_PARTS)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "too many part numbers in %s[]", name);
	for (size_t i = 0; i < out->nparts; i++) {
		out->parts[i] = arca_imap_section_part(node, i);
		if (out->parts[i] == 0)
			return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid part number in %s[]", name);
	}
	text = arca_imap_section_text(node);
	for (k = 0; k < sizeof(specs) / sizeof(specs[0]); k++)
		if (strcmp(text, specs[k].text) == 0)
			break;
	if (k == sizeof(specs) / sizeof(specs[0]))
		return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid section in %s[]", name);
	out->spec = specs[k].spec;
	if (out->kind != ARCA_IMAP_FETCH_BODY && out->spec != ARCA_IMAP_SPEC_ALL)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid section in %s[] (only part numbers)", name);
	if (out->spec == ARCA_IMAP_SPEC_MIME && out->nparts == 0)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "MIME needs a part number in %s[]", name);
	out->partial = arca_imap_section_partial(node, &out->offset, &out->count);
	if (out->partial && out->kind == ARCA_IMAP_FETCH_BINARY_SIZE)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "BINARY.SIZE takes no partial range");
	if (out->spec != ARCA_IMAP_SPEC_HEADER_FIELDS && out->spec != ARCA_IMAP_SPEC_HEADER_FIELDS_NOT)
		return ARCA_OK;
	fields = arca_imap_section_fields(node);
	out->nfields = fields != NULL ? arca_imap_node_count(fields) : 0;
	if (out->nfields == 0)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "empty header list in %s[]", name);
	for (size_t i = 0; i < out->nfields; i++) {
		size_t l = 0;
		if (arca_imap_node_text(arca_imap_node_child(fields, i), &l) == NULL) {
			out->nfields = 0;
			return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid header name in %s[]", name);
		}
		total += l + 1;
	}
	blob = malloc(2 * out->nfields * sizeof(*out->fields) + total);
	if (blob == NULL) {
		out->nfields = 0;
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	out->owned = blob;
	out->fields = (arca_imap_field_name *)(void *)blob;
	blob += 2 * out->nfields * sizeof(*out->fields);
	for (size_t i = 0; i < out->nfields; i++) {
		size_t l = 0;
		const char *s = arca_imap_node_text(arca_imap_node_child(fields, i), &l);
		memcpy(blob, s, l);
		blob[l] = '\0';
		out->fields[i].name = blob;
		out->fields[i].len = l;
		blob += l + 1;
	}
	{
		arca_imap_field_name *sorted = out->fields + out->nfields;
		memcpy(sorted, out->fields, out->nfields * sizeof(*sorted));
		qsort(sorted, out->nfields, sizeof(*sorted), field_cmp);
		out->sorted = sorted;
	}
	return ARCA_OK;
}

void arca_imap_fetch_section_clear(arca_imap_fetch_section *sec)
{
	if (sec == NULL)
		return;
	free(sec->owned);
	memset(sec, 0, sizeof(*sec));
}

arca_status arca_imap_fetch_section_format(const arca_imap_fetch_section *sec, arca_buf *out)
{
	static const char *const texts[] = { "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
		                             "TEXT", "MIME" };
	const char *kind = sec->kind == ARCA_IMAP_FETCH_BINARY ? "BINARY" :
	                   sec->kind == ARCA_IMAP_FETCH_BINARY_SIZE ? "BINARY.SIZE" : "BODY";
	arca_status st = arca_buf_printf(out, "%s[", kind);
	for (size_t i = 0; st == ARCA_OK && i < sec->nparts; i++)
		st = arca_buf_printf(out, i > 0 ? ".%u" : "%u", (unsigned)sec->parts[i]);
	if (st == ARCA_OK && sec->spec != ARCA_IMAP_SPEC_ALL && (unsigned)sec->spec < 6)
		st = arca_buf_printf(out, "%s%s", sec->nparts > 0 ? "." : "", texts[sec->spec]);
	if (st == ARCA_OK && (sec->spec == ARCA_IMAP_SPEC_HEADER_FIELDS ||
	                      sec->spec == ARCA_IMAP_SPEC_HEADER_FIELDS_NOT)) {
		st = arca_buf_append(out, " (", 2);
		for (size_t i = 0; st == ARCA_OK && i < sec->nfields; i++) {
			if (i > 0)
				st = arca_buf_append(out, " ", 1);
			if (st == ARCA_OK)
				st = arca_imap_write_astring(out, sec->fields[i].name, sec->fields[i].len);
		}
		if (st == ARCA_OK)
			st = arca_buf_append(out, ")", 1);
	}
	if (st == ARCA_OK)
		st = arca_buf_append(out, "]", 1);
	if (st == ARCA_OK && sec->partial && sec->kind != ARCA_IMAP_FETCH_BINARY_SIZE)
		st = arca_buf_printf(out, "<%u>", (unsigned)sec->offset);
	return st;
}

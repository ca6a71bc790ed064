/* Incremental IMAP command parser. Bytes are collected a line at a time (a line is bounded by
 * ARCA_IMAP_MAX_LINE); each complete line is tokenised into the command's argument tree, whose
 * state (open lists, pending section) survives across literals. Literal bytes go straight into
 * the command's arena. So a syntax error is always found before the server is asked to send a
 * literal continuation, and nothing is parsed twice.
 *
 * Memory: one arena per command (tokens, nodes, literal data), reset when the next feed starts
 * after an event; the line buffer and the node stack have fixed caps, so one connection costs at
 * most about ARCA_IMAP_MAX_COMMAND + ARCA_IMAP_MAX_LINE plus node overhead. */
#include "imap/parser.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/limits.h"

/* ------------------------------------------------------------------ arena */

#define ARENA_CHUNK (16u * 1024u)
/* Everything one command can need: its bytes, one NUL per node, the nodes and the list
 * pointer arrays, plus chunk slack. Reaching it would be a bug in the accounting below. */
#define ARENA_MAX (2u * ARCA_IMAP_MAX_COMMAND + 256u * ARCA_IMAP_MAX_ARGS)

struct chunk {
	struct chunk *next;
	size_t cap, used;
	max_align_t data[];
};

typedef struct {
	struct chunk *head;
	size_t total;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
	struct chunk *c = a->head;
	size_t al = (n + 15u) & ~(size_t)15u;
	if (al < n)
		return NULL;
	if (c == NULL || c->cap - c->used < al) {
		size_t cap = al > ARENA_CHUNK ? al : ARENA_CHUNK;
		if (a->total + cap > ARENA_MAX)
			return NULL;
		c = malloc(sizeof(*c) + cap);
		if (c == NULL)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		a->total += cap;
	}
	void *r = (char *)c->data + c->used;
	c->used += al;
	return r;
}

/* Frees all but one standard chunk, which is kept for the next command. */
static void arena_reset(arena *a)
{
	struct chunk *keep = NULL, *c = a->head;
	while (c != NULL) {
		struct chunk *next = c->next;
		if (keep == NULL && c->cap == ARENA_CHUNK) {
			keep = c;
			keep->used = 0;
			keep->next = NULL;
		} else {
			free(c);
		}
		c = next;
	}
	a->head = keep;
	a->total = keep != NULL ? keep->cap : 0;
}

static void arena_free(arena *a)
{
	struct chunk *c = a->head;
	while (c != NULL) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->total = 0;
}

/* ------------------------------------------------------------------ types */

struct section {
	const char *name;
	const char *text;
	uint32_t parts[ARCA_IMAP_MAX_SECTION_PARTS];
	size_t nparts;
	arca_imap_node *fields;
	bool partial;
	uint32_t offset, count;
};

struct arca_imap_node {
	arca_imap_node_type type;
	arca_imap_string_kind skind;
	const char *text; /* ATOM/NUMBER/NIL/STRING */
	size_t len;
	uint64_t num;
	arca_imap_node **kids; /* LIST */
	size_t nkids;
	struct section *sec; /* SECTION */
};

enum state {
	ST_LINE,    /* collecting a line */
	ST_LITERAL, /* reading literal bytes into lit */
	ST_DISCARD, /* dropping bytes up to LF (then report a pending error, if any) */
	ST_SKIP,    /* dropping the bytes of a rejected non-synchronizing literal */
};

enum frame_kind { FR_LIST, FR_FIELDS };

struct frame {
	enum frame_kind kind;
	size_t start;          /* index into items of the first child */
	arca_imap_node *sect;  /* FR_FIELDS: the section being built */
};

/* Result of tokenising one line of a command. */
enum seg { SEG_DONE, SEG_LITERAL, SEG_ERROR };

struct arca_imap_parser {
	bool literal_plus;
	size_t max_literal;

	enum state st;
	bool reset_pending; /* an event was returned: start a fresh command on the next feed */
	bool expect_line;
	arca_buf line;
	arena mem;

	/* the command being parsed */
	bool started; /* tag seen */
	char *tag;
	char *cmd;
	arca_imap_node **items; /* finished nodes not yet placed into a list */
	size_t nitems, items_cap;
	struct frame frames[ARCA_IMAP_MAX_DEPTH + 1];
	size_t depth;
	size_t nnodes;
	uint64_t cmd_bytes;
	bool need_sep; /* the next argument needs a SP before it */
	arca_imap_node args;

	/* literal being read */
	arca_imap_node *lit;
	uint64_t lit_size, lit_done;
	bool lit_sync;
	bool lit_nul;

	/* error handling */
	bool pending_error; /* report when the line being discarded ends */
	uint64_t skip;
	char tail[32]; /* last bytes of the line being discarded, to spot {n+} */
	size_t tail_len;
	arca_error err;
	arca_imap_resp_code code;
	const char *err_tag;

	const char *raw_line;
	size_t raw_len;
};

/* ------------------------------------------------------------------ helpers */

/* ATOM-CHAR: CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]". */
static bool is_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

/* tag = 1*<ASTRING-CHAR except "+">; ASTRING-CHAR = ATOM-CHAR / "]". */
static bool is_tag_char(unsigned char c)
{
	return (is_atom_char(c) || c == ']') && c != '+';
}

/* Characters of a generic argument token: ATOM-CHAR plus list-wildcards (LIST "" *),
 * resp-specials (astring) and "*" of sequence sets. Backslash only leads a flag. */
static bool is_arg_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){\"\\", c) == NULL;
}

static arca_imap_result set_error(arca_imap_parser *p, arca_status st, arca_imap_resp_code code,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static arca_imap_result set_error(arca_imap_parser *p, arca_status st, arca_imap_resp_code code,
                                  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	p->err.status = st;
	vsnprintf(p->err.msg, sizeof(p->err.msg), fmt, ap);
	va_end(ap);
	p->code = code;
	p->err_tag = p->tag;
	return ARCA_IMAP_ERROR;
}

static enum seg seg_fail(arca_imap_parser *p, arca_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum seg seg_fail(arca_imap_parser *p, arca_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	p->err.status = st;
	vsnprintf(p->err.msg, sizeof(p->err.msg), fmt, ap);
	va_end(ap);
	p->code = st == ARCA_ERR_LIMIT ? ARCA_IMAP_CODE_TOOBIG : ARCA_IMAP_CODE_NONE;
	p->err_tag = p->tag;
	return SEG_ERROR;
}

static enum seg fail_nomem(arca_imap_parser *p)
{
	return seg_fail(p, ARCA_ERR_NOMEM, "out of memory");
}

/* Describes an unexpected byte without echoing control or 8-bit bytes back to the client. */
static const char *describe(unsigned char c, char buf[16])
{
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, 16, "'%c'", c);
	else if (c == ' ')
		snprintf(buf, 16, "space");
	else
		snprintf(buf, 16, "byte 0x%02x", c);
	return buf;
}

static char *arena_strndup(arca_imap_parser *p, const unsigned char *s, size_t n)
{
	char *r = arena_alloc(&p->mem, n + 1);
	if (r == NULL)
		return NULL;
	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

static arca_imap_node *new_node(arca_imap_parser *p, arca_imap_node_type type)
{
	arca_imap_node *n;
	if (p->nnodes >= ARCA_IMAP_MAX_ARGS)
		return NULL;
	n = arena_alloc(&p->mem, sizeof(*n));
	if (n == NULL)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->type = type;
	p->nnodes++;
	return n;
}

/* new_node failed: say why. */
static enum seg fail_node(arca_imap_parser *p)
{
	if (p->nnodes >= ARCA_IMAP_MAX_ARGS)
		return seg_fail(p, ARCA_ERR_LIMIT, "too many arguments (at most %u)", ARCA_IMAP_MAX_ARGS);
	return fail_nomem(p);
}

static bool push_item(arca_imap_parser *p, arca_imap_node *n)
{
	if (p->nitems == p->items_cap) {
		size_t ncap = p->items_cap ? p->items_cap * 2 : 64;
		arca_imap_node **v;
		if (ncap > ARCA_IMAP_MAX_ARGS)
			ncap = ARCA_IMAP_MAX_ARGS;
		if (ncap <= p->items_cap)
			return false;
		v = realloc(p->items, ncap * sizeof(*v));
		if (v == NULL)
			return false;
		p->items = v;
		p->items_cap = ncap;
	}
	p->items[p->nitems++] = n;
	return true;
}

/* Moves items[start..] into list node l. */
static bool collect(arca_imap_parser *p, arca_imap_node *l, size_t start)
{
	size_t k = p->nitems - start;
	l->nkids = k;
	if (k > 0) {
		l->kids = arena_alloc(&p->mem, k * sizeof(*l->kids));
		if (l->kids == NULL)
			return false;
		memcpy(l->kids, p->items + start, k * sizeof(*l->kids));
	}
	p->nitems = start;
	return true;
}

/* Parses up to max decimal digits at s[*i]; false if none or the value exceeds max. */
static bool parse_u64(const unsigned char *s, size_t n, size_t *i, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t j = *i;
	if (j >= n || !isdigit(s[j]))
		return false;
	while (j < n && isdigit(s[j])) {
		unsigned d = (unsigned)(s[j] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
		j++;
	}
	*i = j;
	*out = v;
	return true;
}

/* If the line ends with a non-synchronizing literal header {n+} or ~{n+}, its size. */
static bool tail_nonsync(const char *s, size_t n, uint64_t *size)
{
	size_t j;
	uint64_t v = 0;
	if (n < 4 || s[n - 1] != '}' || s[n - 2] != '+')
		return false;
	j = n - 2;
	while (j > 0 && isdigit((unsigned char)s[j - 1]))
		j--;
	if (j == n - 2 || j == 0 || s[j - 1] != '{')
		return false;
	for (; j < n - 2; j++) {
		unsigned d = (unsigned)(s[j] - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d; /* saturate */
	}
	*size = v;
	return true;
}

static void tail_add(arca_imap_parser *p, const void *data, size_t n)
{
	const size_t cap = sizeof(p->tail);
	if (n >= cap) {
		memcpy(p->tail, (const char *)data + n - cap, cap);
		p->tail_len = cap;
		return;
	}
	if (p->tail_len + n > cap) {
		size_t drop = p->tail_len + n - cap;
		memmove(p->tail, p->tail + drop, p->tail_len - drop);
		p->tail_len -= drop;
	}
	memcpy(p->tail + p->tail_len, data, n);
	p->tail_len += n;
}

/* For a "line too long" error before the line was parsed: the tag, if the line starts with one,
 * so that the BAD can be tagged. */
static void guess_tag(arca_imap_parser *p, const char *s, size_t n)
{
	size_t j = 0;
	if (p->started || p->expect_line)
		return;
	while (j < n && is_tag_char((unsigned char)s[j]))
		j++;
	if (j > 0 && j < n && s[j] == ' ')
		p->tag = arena_strndup(p, (const unsigned char *)s, j);
}

/* ------------------------------------------------------------------ lifecycle */

arca_status arca_imap_parser_new(const arca_imap_parser_opts *opts, arca_imap_parser **out,
                                 arca_error *err)
{
	arca_imap_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	p->max_literal = ARCA_IMAP_MAX_LITERAL;
	if (opts != NULL) {
		p->literal_plus = opts->literal_plus;
		if (opts->max_literal != 0 && opts->max_literal < p->max_literal)
			p->max_literal = opts->max_literal;
	}
	/* one more byte than a line may hold, for the CR before LF */
	arca_buf_init(&p->line, ARCA_IMAP_MAX_LINE + 1);
	p->args.type = ARCA_IMAP_NODE_LIST;
	p->st = ST_LINE;
	*out = p;
	return ARCA_OK;
}

void arca_imap_parser_free(arca_imap_parser **pp)
{
	arca_imap_parser *p;
	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	arena_free(&p->mem);
	arca_buf_free(&p->line);
	free(p->items);
	free(p);
	*pp = NULL;
}

static void reset_command(arca_imap_parser *p)
{
	arena_reset(&p->mem);
	p->started = false;
	p->tag = NULL;
	p->cmd = NULL;
	p->nitems = 0;
	p->depth = 0;
	p->nnodes = 0;
	p->cmd_bytes = 0;
	p->need_sep = false;
	p->args.kids = NULL;
	p->args.nkids = 0;
	p->lit = NULL;
	p->lit_size = p->lit_done = 0;
	p->lit_nul = false;
	p->pending_error = false;
	arca_error_clear(&p->err);
	p->code = ARCA_IMAP_CODE_NONE;
	p->err_tag = NULL;
	p->raw_line = NULL;
	p->raw_len = 0;
}

void arca_imap_parser_expect_line(arca_imap_parser *p)
{
	p->expect_line = true;
}

bool arca_imap_parser_in_command(const arca_imap_parser *p)
{
	if (p->st != ST_LINE)
		return true;
	if (p->reset_pending)
		return false;
	return p->started || p->line.len > 0;
}

/* ------------------------------------------------------------------ tokenizer */

static enum seg close_frame(arca_imap_parser *p, const unsigned char *s, size_t n, size_t *i);

/* After "]" of a section: optional <offset.count>, then the node is done. */
static enum seg finish_section(arca_imap_parser *p, arca_imap_node *nd, const unsigned char *s,
                               size_t n, size_t *i)
{
	struct section *sec = nd->sec;
	if (*i < n && s[*i] == '<') {
		uint64_t off, cnt;
		size_t j = *i + 1;
		if (strcmp(sec->name, "BINARY.SIZE") == 0)
			return seg_fail(p, ARCA_ERR_SYNTAX, "BINARY.SIZE takes no partial range");
		if (!parse_u64(s, n, &j, UINT32_MAX, &off) || j >= n || s[j] != '.')
			return seg_fail(p, ARCA_ERR_SYNTAX, "invalid partial range in %s[]", sec->name);
		j++;
		if (!parse_u64(s, n, &j, UINT32_MAX, &cnt) || cnt == 0 || j >= n || s[j] != '>')
			return seg_fail(p, ARCA_ERR_SYNTAX, "invalid partial range in %s[]", sec->name);
		sec->partial = true;
		sec->offset = (uint32_t)off;
		sec->count = (uint32_t)cnt;
		*i = j + 1;
	}
	if (!push_item(p, nd))
		return fail_nomem(p);
	p->need_sep = true;
	return SEG_DONE;
}

static bool match_kw(const unsigned char *s, size_t n, size_t i, const char *kw)
{
	size_t k = strlen(kw);
	return n - i >= k && strncasecmp((const char *)s + i, kw, k) == 0;
}

/* s[*i] is the '[' after a section name. */
static enum seg parse_section(arca_imap_parser *p, const char *name, const unsigned char *s,
                              size_t n, size_t *i)
{
	arca_imap_node *nd = new_node(p, ARCA_IMAP_NODE_SECTION);
	struct section *sec;
	bool binary = name[1] == 'I';
	size_t j = *i + 1;
	bool dot = false; /* a '.' after the part numbers: section-text must follow */
	if (nd == NULL)
		return fail_node(p);
	sec = arena_alloc(&p->mem, sizeof(*sec));
	if (sec == NULL)
		return fail_nomem(p);
	memset(sec, 0, sizeof(*sec));
	nd->sec = sec;
	sec->name = name;
	sec->text = "";
	while (j < n && isdigit(s[j])) {
		uint64_t v;
		if (s[j] == '0' || !parse_u64(s, n, &j, UINT32_MAX, &v))
			return seg_fail(p, ARCA_ERR_SYNTAX, "invalid part number in %s[]", name);
		if (sec->nparts == ARCA_IMAP_MAX_SECTION_PARTS)
			return seg_fail(p, ARCA_ERR_LIMIT, "too many part numbers in %s[] (at most %u)", name,
			                ARCA_IMAP_MAX_SECTION_PARTS);
		sec->parts[sec->nparts++] = (uint32_t)v;
		if (j < n && s[j] == '.') {
			j++;
			dot = true;
			if (binary || (j < n && isdigit(s[j]))) {
				dot = false;
				if (j < n && isdigit(s[j]))
					continue;
				return seg_fail(p, ARCA_ERR_SYNTAX, "invalid part number in %s[]", name);
			}
			break; /* section-text follows */
		}
		if (j < n && s[j] != ']')
			return seg_fail(p, ARCA_ERR_SYNTAX, "invalid section in %s[]", name);
		break;
	}
	if (j < n && s[j] != ']') {
		static const char *const texts[] = { "HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER",
			                             "TEXT", "MIME" };
		size_t t;
		if (binary)
			return seg_fail(p, ARCA_ERR_SYNTAX, "invalid section in %s[] (only part numbers)", name);
		for (t = 0; t < sizeof(texts) / sizeof(texts[0]); t++)
			if (match_kw(s, n, j, texts[t]))
				break;
		if (t == sizeof(texts) / sizeof(texts[0]) || (t == 4 && sec->nparts == 0))
			return seg_fail(p, ARCA_ERR_SYNTAX, "invalid section in %s[]", name);
		sec->text = texts[t];
		j += strlen(texts[t]);
		if (t <= 1) {
			/* HEADER.FIELDS[.NOT] SP "(" astring *(SP astring) ")" "]" */
			if (j + 1 >= n || s[j] != ' ' || s[j + 1] != '(')
				return seg_fail(p, ARCA_ERR_SYNTAX, "%s[%s] needs a list of header names",
				                name, sec->text);
			if (p->depth == ARCA_IMAP_MAX_DEPTH)
				return seg_fail(p, ARCA_ERR_LIMIT, "lists nested too deeply (at most %u)",
				                ARCA_IMAP_MAX_DEPTH);
			p->depth++;
			p->frames[p->depth].kind = FR_FIELDS;
			p->frames[p->depth].start = p->nitems;
			p->frames[p->depth].sect = nd;
			p->need_sep = false;
			*i = j + 2;
			return SEG_DONE;
		}
	}
	else if (dot)
		return seg_fail(p, ARCA_ERR_SYNTAX, "invalid section in %s[]", name);
	if (j >= n || s[j] != ']')
		return seg_fail(p, ARCA_ERR_SYNTAX, "invalid section in %s[]: missing ']'", name);
	*i = j + 1;
	return finish_section(p, nd, s, n, i);
}

static enum seg close_frame(arca_imap_parser *p, const unsigned char *s, size_t n, size_t *i)
{
	struct frame *f;
	arca_imap_node *l;
	if (p->depth == 0)
		return seg_fail(p, ARCA_ERR_SYNTAX, "unexpected ')'");
	f = &p->frames[p->depth];
	(*i)++;
	if (f->kind == FR_LIST) {
		l = new_node(p, ARCA_IMAP_NODE_LIST);
		if (l == NULL)
			return fail_node(p);
		if (!collect(p, l, f->start))
			return fail_nomem(p);
		p->depth--;
		if (!push_item(p, l))
			return fail_nomem(p);
		p->need_sep = true;
		return SEG_DONE;
	}
	arca_imap_node *nd = f->sect;
	if (p->nitems == f->start)
		return seg_fail(p, ARCA_ERR_SYNTAX, "empty header list in %s[]", nd->sec->name);
	l = new_node(p, ARCA_IMAP_NODE_LIST);
	if (l == NULL)
		return fail_node(p);
	if (!collect(p, l, f->start))
		return fail_nomem(p);
	nd->sec->fields = l;
	p->depth--;
	if (*i >= n || s[*i] != ']')
		return seg_fail(p, ARCA_ERR_SYNTAX, "invalid section in %s[]: missing ']'", nd->sec->name);
	(*i)++;
	return finish_section(p, nd, s, n, i);
}

static enum seg parse_quoted(arca_imap_parser *p, const unsigned char *s, size_t n, size_t *i)
{
	size_t j = *i + 1, o = 0;
	char *out = arena_alloc(&p->mem, n - *i);
	arca_imap_node *nd;
	if (out == NULL)
		return fail_nomem(p);
	for (;; j++) {
		if (j >= n)
			return seg_fail(p, ARCA_ERR_SYNTAX, "unterminated quoted string");
		unsigned char c = s[j];
		if (c == '"')
			break;
		if (c == '\0')
			return seg_fail(p, ARCA_ERR_SYNTAX, "NUL in quoted string");
		if (c == '\r')
			return seg_fail(p, ARCA_ERR_SYNTAX, "CR in quoted string");
		if (c == '\\') {
			if (j + 1 >= n)
				return seg_fail(p, ARCA_ERR_SYNTAX, "unterminated quoted string");
			c = s[++j];
			if (c != '"' && c != '\\')
				return seg_fail(p, ARCA_ERR_SYNTAX,
				                "invalid escape in quoted string (only \\\" and \\\\)");
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	nd = new_node(p, ARCA_IMAP_NODE_STRING);
	if (nd == NULL)
		return fail_node(p);
	nd->skind = ARCA_IMAP_STRING_QUOTED;
	nd->text = out;
	nd->len = o;
	if (!push_item(p, nd))
		return fail_nomem(p);
	*i = j + 1;
	p->need_sep = true;
	return SEG_DONE;
}

/* s[*i] is '{' (binary: preceded by '~'). The header must end the line. */
static enum seg parse_literal(arca_imap_parser *p, const unsigned char *s, size_t n, size_t *i,
                              bool binary)
{
	size_t j = *i + 1;
	uint64_t size;
	bool sync = true;
	arca_imap_node *nd;
	if (j >= n || !isdigit(s[j]))
		return seg_fail(p, ARCA_ERR_SYNTAX, "invalid literal header (expected {number})");
	if (!parse_u64(s, n, &j, UINT64_MAX, &size)) {
		while (j < n && isdigit(s[j]))
			j++;
		size = UINT64_MAX;
	}
	if (j < n && s[j] == '+') {
		sync = false;
		j++;
	}
	if (j >= n || s[j] != '}')
		return seg_fail(p, ARCA_ERR_SYNTAX, "invalid literal header (expected {number})");
	if (j + 1 != n)
		return seg_fail(p, ARCA_ERR_SYNTAX, "literal header must end the line");
	if (!sync && !p->literal_plus && size > ARCA_IMAP_LITERAL_MINUS_MAX)
		return seg_fail(p, ARCA_ERR_LIMIT,
		                "non-synchronizing literal too big (at most %u bytes, LITERAL-)",
		                ARCA_IMAP_LITERAL_MINUS_MAX);
	if (size > p->max_literal)
		return seg_fail(p, ARCA_ERR_LIMIT, "literal too big (at most %zu bytes)", p->max_literal);
	if (p->cmd_bytes + size > ARCA_IMAP_MAX_COMMAND)
		return seg_fail(p, ARCA_ERR_LIMIT, "command too big (at most %u bytes)",
		                ARCA_IMAP_MAX_COMMAND);
	nd = new_node(p, ARCA_IMAP_NODE_STRING);
	if (nd == NULL)
		return fail_node(p);
	nd->skind = binary ? ARCA_IMAP_STRING_BINARY : ARCA_IMAP_STRING_LITERAL;
	char *buf = arena_alloc(&p->mem, (size_t)size + 1);
	if (buf == NULL)
		return fail_nomem(p);
	buf[size] = '\0';
	nd->text = buf;
	nd->len = (size_t)size;
	if (!push_item(p, nd))
		return fail_nomem(p);
	p->cmd_bytes += size;
	p->lit = nd;
	p->lit_size = size;
	p->lit_done = 0;
	p->lit_sync = sync;
	p->lit_nul = false;
	p->need_sep = true;
	*i = n;
	return SEG_LITERAL;
}

static const char *section_name(const unsigned char *s, size_t len)
{
	static const char *const names[] = { "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK",
		                             "BINARY.SIZE" };
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (strlen(names[k]) == len && strncasecmp((const char *)s, names[k], len) == 0)
			return names[k];
	return NULL;
}

static enum seg parse_atom(arca_imap_parser *p, const unsigned char *s, size_t n, size_t *i)
{
	size_t start = *i, j = *i;
	bool in_fields = p->depth > 0 && p->frames[p->depth].kind == FR_FIELDS;
	arca_imap_node *nd;
	char d[16];
	if (s[j] == '\\')
		j++;
	while (j < n && is_arg_char(s[j])) {
		if (s[j] == '[' && !in_fields && s[start] != '\\') {
			const char *name = section_name(s + start, j - start);
			if (name != NULL) {
				*i = j;
				return parse_section(p, name, s, n, i);
			}
		}
		j++;
	}
	if (j == start || (j == start + 1 && s[start] == '\\')) {
		if (j >= n)
			return seg_fail(p, ARCA_ERR_SYNTAX, "unexpected end of line after '\\'");
		return seg_fail(p, ARCA_ERR_SYNTAX, "unexpected %s", describe(s[j], d));
	}
	nd = new_node(p, ARCA_IMAP_NODE_ATOM);
	if (nd == NULL)
		return fail_node(p);
	nd->len = j - start;
	nd->text = arena_strndup(p, s + start, nd->len);
	if (nd->text == NULL)
		return fail_nomem(p);
	if (isdigit(s[start])) {
		size_t k = start;
		uint64_t v;
		if (parse_u64(s, n, &k, INT64_MAX, &v) && k == j) {
			nd->type = ARCA_IMAP_NODE_NUMBER;
			nd->num = v;
		}
	} else if (nd->len == 3 && strncasecmp(nd->text, "NIL", 3) == 0) {
		nd->type = ARCA_IMAP_NODE_NIL;
	}
	if (!push_item(p, nd))
		return fail_nomem(p);
	*i = j;
	p->need_sep = true;
	return SEG_DONE;
}

/* Tag and command name at the start of a command's first line. */
static enum seg parse_head(arca_imap_parser *p, const unsigned char *s, size_t n, size_t *i)
{
	size_t j = 0;
	char d[16];
	if (n == 0)
		return seg_fail(p, ARCA_ERR_SYNTAX, "empty command line");
	while (j < n && is_tag_char(s[j]))
		j++;
	if (j == 0) {
		if (s[0] == ' ')
			return seg_fail(p, ARCA_ERR_SYNTAX, "missing tag");
		return seg_fail(p, ARCA_ERR_SYNTAX, "invalid tag (starts with %s)", describe(s[0], d));
	}
	if (j < n && s[j] != ' ')
		return seg_fail(p, ARCA_ERR_SYNTAX, "invalid character in tag: %s", describe(s[j], d));
	p->tag = arena_strndup(p, s, j);
	if (p->tag == NULL)
		return fail_nomem(p);
	p->started = true;
	while (j < n && s[j] == ' ')
		j++;
	if (j == n)
		return seg_fail(p, ARCA_ERR_SYNTAX, "missing command name");
	size_t c0 = j;
	while (j < n && is_atom_char(s[j]))
		j++;
	if (j == c0 || (j < n && s[j] != ' '))
		return seg_fail(p, ARCA_ERR_SYNTAX, "invalid command name");
	p->cmd = arena_strndup(p, s + c0, j - c0);
	if (p->cmd == NULL)
		return fail_nomem(p);
	for (char *c = p->cmd; *c != '\0'; c++)
		*c = (char)toupper((unsigned char)*c);
	p->need_sep = true;
	*i = j;
	return SEG_DONE;
}

/* Tokenises one complete line (without CRLF) of the current command. */
static enum seg parse_segment(arca_imap_parser *p, const unsigned char *s, size_t n)
{
	size_t i = 0;
	enum seg r;
	char d[16];
	if (p->cmd_bytes + n > ARCA_IMAP_MAX_COMMAND)
		return seg_fail(p, ARCA_ERR_LIMIT, "command too big (at most %u bytes)", ARCA_IMAP_MAX_COMMAND);
	p->cmd_bytes += n;
	if (!p->started) {
		r = parse_head(p, s, n, &i);
		if (r != SEG_DONE)
			return r;
	}
	for (;;) {
		bool sep = false;
		while (i < n && s[i] == ' ') {
			i++;
			sep = true;
		}
		if (i == n) {
			if (p->depth > 0)
				return seg_fail(p, ARCA_ERR_SYNTAX, p->frames[p->depth].kind == FR_LIST ?
				                "unclosed parenthesis" : "unterminated section header list");
			if (!collect(p, &p->args, 0))
				return fail_nomem(p);
			return SEG_DONE;
		}
		unsigned char c = s[i];
		if (c == ')') {
			r = close_frame(p, s, n, &i);
			if (r != SEG_DONE)
				return r;
			continue;
		}
		if (p->need_sep && !sep)
			return seg_fail(p, ARCA_ERR_SYNTAX, "expected space before %s", describe(c, d));
		bool in_fields = p->depth > 0 && p->frames[p->depth].kind == FR_FIELDS;
		switch (c) {
		case '(':
			if (in_fields)
				return seg_fail(p, ARCA_ERR_SYNTAX, "unexpected '(' in header list");
			if (p->depth == ARCA_IMAP_MAX_DEPTH)
				return seg_fail(p, ARCA_ERR_LIMIT, "lists nested too deeply (at most %u)",
				                ARCA_IMAP_MAX_DEPTH);
			p->depth++;
			p->frames[p->depth].kind = FR_LIST;
			p->frames[p->depth].start = p->nitems;
			p->frames[p->depth].sect = NULL;
			p->need_sep = false;
			i++;
			r = SEG_DONE;
			break;
		case '"':
			r = parse_quoted(p, s, n, &i);
			break;
		case '{':
			return parse_literal(p, s, n, &i, false);
		case '~':
			if (i + 1 < n && s[i + 1] == '{') {
				i++;
				return parse_literal(p, s, n, &i, true);
			}
			r = parse_atom(p, s, n, &i);
			break;
		default:
			r = parse_atom(p, s, n, &i);
			break;
		}
		if (r != SEG_DONE)
			return r;
	}
}

/* ------------------------------------------------------------------ feed */

/* After an error at the end of a line: swallow a non-synchronizing literal that line announced
 * (the client sends it regardless) and the rest of that command. */
static void after_error_line(arca_imap_parser *p, const char *line, size_t n)
{
	uint64_t size;
	p->pending_error = false;
	if (tail_nonsync(line, n, &size)) {
		p->skip = size;
		p->st = ST_SKIP;
	} else {
		p->st = ST_LINE;
	}
}

static arca_imap_result line_done(arca_imap_parser *p)
{
	const char *s = p->line.data != NULL ? p->line.data : "";
	size_t n = p->line.len;
	enum seg r;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n > ARCA_IMAP_MAX_LINE) {
		guess_tag(p, s, n);
		set_error(p, ARCA_ERR_LIMIT, ARCA_IMAP_CODE_TOOBIG, "line too long (at most %u bytes)",
		          ARCA_IMAP_MAX_LINE);
		after_error_line(p, s, n);
		arca_buf_reset(&p->line);
		return ARCA_IMAP_ERROR;
	}
	if (p->expect_line && !p->started) {
		p->expect_line = false;
		p->raw_line = arena_strndup(p, (const unsigned char *)s, n);
		arca_buf_reset(&p->line);
		if (p->raw_line == NULL)
			return set_error(p, ARCA_ERR_NOMEM, ARCA_IMAP_CODE_NONE, "out of memory");
		p->raw_len = n;
		return ARCA_IMAP_LINE;
	}
	r = parse_segment(p, (const unsigned char *)s, n);
	switch (r) {
	case SEG_DONE:
		arca_buf_reset(&p->line);
		if (p->cmd == NULL) /* only possible for an empty continuation: cannot happen */
			return set_error(p, ARCA_ERR_SYNTAX, ARCA_IMAP_CODE_NONE, "missing command name");
		return ARCA_IMAP_COMMAND;
	case SEG_LITERAL:
		arca_buf_reset(&p->line);
		p->st = ST_LITERAL;
		return p->lit_sync ? ARCA_IMAP_CONTINUE_LITERAL : ARCA_IMAP_NEED_MORE;
	case SEG_ERROR:
		break;
	}
	after_error_line(p, s, n);
	arca_buf_reset(&p->line);
	return ARCA_IMAP_ERROR;
}

/* Starts discarding the rest of the current line, reporting the error at its end. */
static void start_discard(arca_imap_parser *p, const void *seen, size_t n)
{
	p->st = ST_DISCARD;
	p->pending_error = true;
	p->tail_len = 0;
	tail_add(p, seen, n);
}

arca_imap_result arca_imap_parser_feed(arca_imap_parser *p, const void *data, size_t len,
                                       size_t *consumed)
{
	const unsigned char *d = data;
	size_t pos = 0;
	arca_imap_result res = ARCA_IMAP_NEED_MORE;

	if (p->reset_pending) {
		reset_command(p);
		p->reset_pending = false;
	}
	while (res == ARCA_IMAP_NEED_MORE) {
		if (p->st == ST_LITERAL && p->lit_done == p->lit_size) {
			/* also for {0}: nothing to read */
			if (p->lit_nul) {
				set_error(p, ARCA_ERR_SYNTAX, ARCA_IMAP_CODE_NONE,
				          "NUL in literal (only allowed in a binary literal ~{n})");
				start_discard(p, "", 0);
			} else {
				p->st = ST_LINE;
			}
			continue;
		}
		if (pos >= len)
			break;
		switch (p->st) {
		case ST_LINE: {
			const unsigned char *nl = memchr(d + pos, '\n', len - pos);
			size_t take = nl != NULL ? (size_t)(nl - (d + pos)) : len - pos;
			size_t room = p->line.max - p->line.len;
			if (take > room) {
				/* overlong: fill the buffer (for the tag), drop the rest of the line and
				 * report at its end */
				if (arca_buf_append(&p->line, d + pos, room) != ARCA_OK)
					p->line.len = 0;
				pos += room;
				guess_tag(p, p->line.data != NULL ? p->line.data : "", p->line.len);
				set_error(p, ARCA_ERR_LIMIT, ARCA_IMAP_CODE_TOOBIG,
				          "line too long (at most %u bytes)", ARCA_IMAP_MAX_LINE);
				start_discard(p, p->line.data, p->line.len);
				arca_buf_reset(&p->line);
				break;
			}
			if (arca_buf_append(&p->line, d + pos, take) != ARCA_OK) {
				set_error(p, ARCA_ERR_NOMEM, ARCA_IMAP_CODE_NONE, "out of memory");
				start_discard(p, p->line.data, p->line.len);
				arca_buf_reset(&p->line);
				break;
			}
			pos += take;
			if (nl != NULL) {
				pos++;
				res = line_done(p);
			}
			break;
		}
		case ST_LITERAL: {
			uint64_t want = p->lit_size - p->lit_done;
			size_t take = len - pos < want ? len - pos : (size_t)want;
			char *dst = (char *)p->lit->text + p->lit_done;
			memcpy(dst, d + pos, take);
			if (p->lit->skind != ARCA_IMAP_STRING_BINARY && memchr(dst, '\0', take) != NULL)
				p->lit_nul = true;
			p->lit_done += take;
			pos += take;
			break;
		}
		case ST_SKIP: {
			size_t take = len - pos < p->skip ? len - pos : (size_t)p->skip;
			p->skip -= take;
			pos += take;
			if (p->skip == 0) {
				p->st = ST_DISCARD;
				p->tail_len = 0;
			}
			break;
		}
		case ST_DISCARD: {
			const unsigned char *nl = memchr(d + pos, '\n', len - pos);
			size_t take = nl != NULL ? (size_t)(nl - (d + pos)) : len - pos;
			tail_add(p, d + pos, take);
			pos += take;
			if (nl != NULL) {
				size_t tl = p->tail_len;
				bool report = p->pending_error;
				pos++;
				if (tl > 0 && p->tail[tl - 1] == '\r')
					tl--;
				after_error_line(p, p->tail, tl);
				p->tail_len = 0;
				if (report)
					res = ARCA_IMAP_ERROR;
			}
			break;
		}
		}
	}
	if (res == ARCA_IMAP_COMMAND || res == ARCA_IMAP_ERROR || res == ARCA_IMAP_LINE)
		p->reset_pending = true;
	if (res == ARCA_IMAP_ERROR) {
		if (p->err_tag == NULL)
			p->err_tag = p->tag;
		p->expect_line = false; /* e.g. an overlong DONE: the exchange is over */
	}
	*consumed = pos;
	return res;
}

/* ------------------------------------------------------------------ accessors */

const char *arca_imap_parser_tag(const arca_imap_parser *p)
{
	return p->err.status != ARCA_OK ? p->err_tag : p->tag;
}

const char *arca_imap_parser_command(const arca_imap_parser *p)
{
	return p->cmd;
}

const arca_imap_node *arca_imap_parser_args(const arca_imap_parser *p)
{
	return &p->args;
}

uint64_t arca_imap_parser_literal_size(const arca_imap_parser *p)
{
	return p->lit_size;
}

const char *arca_imap_parser_line(const arca_imap_parser *p, size_t *len)
{
	if (len != NULL)
		*len = p->raw_len;
	return p->raw_line;
}

const arca_error *arca_imap_parser_error(const arca_imap_parser *p)
{
	return &p->err;
}

arca_imap_resp_code arca_imap_parser_error_code(const arca_imap_parser *p)
{
	return p->code;
}

const char *arca_imap_resp_code_name(arca_imap_resp_code code)
{
	return code == ARCA_IMAP_CODE_TOOBIG ? "TOOBIG" : NULL;
}

arca_imap_node_type arca_imap_node_kind(const arca_imap_node *n)
{
	return n->type;
}

const char *arca_imap_node_text(const arca_imap_node *n, size_t *len)
{
	if (n->type == ARCA_IMAP_NODE_LIST || n->type == ARCA_IMAP_NODE_SECTION) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = n->len;
	return n->text;
}

uint64_t arca_imap_node_number(const arca_imap_node *n)
{
	return n->type == ARCA_IMAP_NODE_NUMBER ? n->num : 0;
}

arca_imap_string_kind arca_imap_node_string_kind(const arca_imap_node *n)
{
	return n->skind;
}

size_t arca_imap_node_count(const arca_imap_node *n)
{
	return n->type == ARCA_IMAP_NODE_LIST ? n->nkids : 0;
}

const arca_imap_node *arca_imap_node_child(const arca_imap_node *n, size_t i)
{
	if (n->type != ARCA_IMAP_NODE_LIST || i >= n->nkids)
		return NULL;
	return n->kids[i];
}

const char *arca_imap_section_name(const arca_imap_node *n)
{
	return n->type == ARCA_IMAP_NODE_SECTION ? n->sec->name : NULL;
}

size_t arca_imap_section_nparts(const arca_imap_node *n)
{
	return n->type == ARCA_IMAP_NODE_SECTION ? n->sec->nparts : 0;
}

uint32_t arca_imap_section_part(const arca_imap_node *n, size_t i)
{
	if (n->type != ARCA_IMAP_NODE_SECTION || i >= n->sec->nparts)
		return 0;
	return n->sec->parts[i];
}

const char *arca_imap_section_text(const arca_imap_node *n)
{
	return n->type == ARCA_IMAP_NODE_SECTION ? n->sec->text : NULL;
}

const arca_imap_node *arca_imap_section_fields(const arca_imap_node *n)
{
	return n->type == ARCA_IMAP_NODE_SECTION ? n->sec->fields : NULL;
}

bool arca_imap_section_partial(const arca_imap_node *n, uint32_t *offset, uint32_t *count)
{
	if (n->type != ARCA_IMAP_NODE_SECTION || !n->sec->partial)
		return false;
	if (offset != NULL)
		*offset = n->sec->offset;
	if (count != NULL)
		*count = n->sec->count;
	return true;
}

static arca_status format_string(const arca_imap_node *n, arca_buf *out)
{
	arca_status st = ARCA_OK;
	if (n->skind == ARCA_IMAP_STRING_LITERAL)
		st = arca_buf_printf(out, "{%zu}", n->len);
	else if (n->skind == ARCA_IMAP_STRING_BINARY)
		st = arca_buf_printf(out, "~{%zu}", n->len);
	if (st == ARCA_OK)
		st = arca_buf_append(out, "\"", 1);
	for (size_t k = 0; k < n->len && st == ARCA_OK; k++) {
		unsigned char c = (unsigned char)n->text[k];
		if (c == '"' || c == '\\')
			st = arca_buf_printf(out, "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			st = arca_buf_printf(out, "\\x%02x", c);
		else
			st = arca_buf_append(out, &n->text[k], 1);
	}
	if (st == ARCA_OK)
		st = arca_buf_append(out, "\"", 1);
	return st;
}

arca_status arca_imap_node_format(const arca_imap_node *n, arca_buf *out)
{
	arca_status st = ARCA_OK;
	switch (n->type) {
	case ARCA_IMAP_NODE_ATOM:
	case ARCA_IMAP_NODE_NUMBER:
	case ARCA_IMAP_NODE_NIL:
		return arca_buf_append(out, n->text, n->len);
	case ARCA_IMAP_NODE_STRING:
		return format_string(n, out);
	case ARCA_IMAP_NODE_LIST:
		st = arca_buf_append(out, "(", 1);
		for (size_t k = 0; k < n->nkids && st == ARCA_OK; k++) {
			if (k > 0)
				st = arca_buf_append(out, " ", 1);
			if (st == ARCA_OK)
				st = arca_imap_node_format(n->kids[k], out);
		}
		return st == ARCA_OK ? arca_buf_append(out, ")", 1) : st;
	case ARCA_IMAP_NODE_SECTION: {
		const struct section *sec = n->sec;
		st = arca_buf_printf(out, "%s[", sec->name);
		for (size_t k = 0; k < sec->nparts && st == ARCA_OK; k++)
			st = arca_buf_printf(out, k > 0 ? ".%u" : "%u", sec->parts[k]);
		if (st == ARCA_OK && sec->text[0] != '\0')
			st = arca_buf_printf(out, "%s%s", sec->nparts > 0 ? "." : "", sec->text);
		if (st == ARCA_OK && sec->fields != NULL) {
			st = arca_buf_append(out, " ", 1);
			if (st == ARCA_OK)
				st = arca_imap_node_format(sec->fields, out);
		}
		if (st == ARCA_OK)
			st = arca_buf_append(out, "]", 1);
		if (st == ARCA_OK && sec->partial)
			st = arca_buf_printf(out, "<%u.%u>", sec->offset, sec->count);
		return st;
	}
	}
	return ARCA_ERR_INVALID;
}

/* ------------------------------------------------------------------ sequence sets */

struct arca_imap_seqset {
	bool searchres;
	size_t n;
	arca_imap_seqrange r[];
};

static bool seq_number(const char *s, size_t len, size_t *i, uint32_t *out)
{
	uint64_t v;
	if (*i < len && s[*i] == '*') {
		(*i)++;
		*out = ARCA_IMAP_SEQ_STAR;
		return true;
	}
	if (*i >= len || s[*i] == '0')
		return false;
	if (!parse_u64((const unsigned char *)s, len, i, UINT32_MAX, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

arca_status arca_imap_seqset_parse(const char *text, size_t len, arca_imap_seqset **out,
                                   arca_error *err)
{
	arca_imap_seqset *s;
	size_t n = 1, i = 0;
	*out = NULL;
	if (len > ARCA_IMAP_MAX_LINE)
		return arca_error_set(err, ARCA_ERR_LIMIT, "sequence set too long (at most %u bytes)",
		                      ARCA_IMAP_MAX_LINE);
	if (len == 0)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid sequence set: empty");
	if (len == 1 && text[0] == '$') {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		s->searchres = true;
		*out = s;
		return ARCA_OK;
	}
	for (size_t k = 0; k < len; k++)
		n += text[k] == ',';
	s = malloc(sizeof(*s) + n * sizeof(s->r[0]));
	if (s == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	s->searchres = false;
	s->n = 0;
	for (;;) {
		uint32_t a, b;
		if (!seq_number(text, len, &i, &a))
			goto bad;
		b = a;
		if (i < len && text[i] == ':') {
			i++;
			if (!seq_number(text, len, &i, &b))
				goto bad;
		}
		/* normalise: lo <= hi, '*' (the largest) last */
		if (a == ARCA_IMAP_SEQ_STAR || (b != ARCA_IMAP_SEQ_STAR && b < a)) {
			uint32_t t = a;
			a = b;
			b = t;
		}
		s->r[s->n].lo = a;
		s->r[s->n].hi = b;
		s->n++;
		if (i == len)
			break;
		if (text[i] != ',')
			goto bad;
		i++;
	}
	*out = s;
	return ARCA_OK;
bad:
	free(s);
	if (i < len && text[i] == '0')
		return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid sequence set: 0 is not a valid number");
	if (i < len && isdigit((unsigned char)text[i]))
		return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid sequence set: number too large");
	if (i < len && text[i] == '$')
		return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid sequence set: '$' must stand alone");
	return arca_error_set(err, ARCA_ERR_SYNTAX, "invalid sequence set at offset %zu", i);
}

void arca_imap_seqset_free(arca_imap_seqset **s)
{
	if (s == NULL)
		return;
	free(*s);
	*s = NULL;
}

bool arca_imap_seqset_is_searchres(const arca_imap_seqset *s)
{
	return s->searchres;
}

size_t arca_imap_seqset_count(const arca_imap_seqset *s)
{
	return s->n;
}

arca_imap_seqrange arca_imap_seqset_range(const arca_imap_seqset *s, size_t i)
{
	arca_imap_seqrange none = { 0, 0 };
	return i < s->n ? s->r[i] : none;
}

bool arca_imap_seqset_contains(const arca_imap_seqset *s, uint32_t n, uint32_t max)
{
	for (size_t k = 0; k < s->n; k++) {
		uint32_t lo = s->r[k].lo, hi = s->r[k].hi;
		if (hi == ARCA_IMAP_SEQ_STAR) {
			if (max == 0)
				continue;
			hi = max;
		}
		if (lo == ARCA_IMAP_SEQ_STAR)
			lo = max;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (n >= lo && n <= hi)
			return true;
	}
	return false;
}

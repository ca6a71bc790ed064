/* Query language parser: a recursive-descent parser over a small lexer that turns the user's
 * query into an FTS5 MATCH expression plus range/scope filters (docs/search.md).
 *
 * Safety rule: every user word reaches FTS5 only inside a double-quoted string with '"'
 * doubled, and column filters come only from the fixed table below, so no input can use
 * FTS5 operators (NEAR, ^, :, {}, *, AND/OR/NOT) except through the grammar here. */
#include "index/query.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "index/text.h"
#include "lib/buf.h"
#include "lib/limits.h"

/* Parenthesis / NOT nesting allowed; bounds recursion independently of the term limit. */
#define QUERY_MAX_DEPTH 32
/* Longest FTS5 expression we build: every byte of input can at most double when quoted, plus
 * a bounded amount of syntax per term. */
#define QUERY_FTS_MAX (4 * ARCA_QUERY_MAX_LEN + 256 * ARCA_QUERY_MAX_TERMS)
/* Without a prefix index (it cost +38% index size and half the insert rate, measured),
 * a prefix search merges the doclists of every matching term; short stems match too many. */
#define QUERY_MIN_PREFIX 3

/* Every document has this token in the flags column: it is the "everything" operand that
 * lets purely negative (sub)queries like `-spam` be expressed, since FTS5 NOT is binary. */
#define FTS_ALL "{flags} : \"doc\""
/* Unqualified words search every column except message ids and internal flags. */
#define FTS_DEFAULT_COLS "- {msgid flags} : "

enum field_kind {
	FK_TEXT,
	FK_AFTER,
	FK_BEFORE,
	FK_LARGER,
	FK_SMALLER,
	FK_HAS,
	FK_FOLDER,
	FK_ARCHIVE,
};

static const struct {
	const char *name;
	enum field_kind kind;
	const char *cols; /* FTS5 column filter for FK_TEXT */
} fields[] = {
	{ "from", FK_TEXT, "{from_} : " },
	{ "to", FK_TEXT, "{to_} : " },
	{ "cc", FK_TEXT, "{cc} : " },
	{ "bcc", FK_TEXT, "{bcc} : " },
	{ "subject", FK_TEXT, "{subject} : " },
	{ "body", FK_TEXT, "{body} : " },
	{ "attachment", FK_TEXT, "{attachment} : " },
	{ "filename", FK_TEXT, "{filename} : " },
	{ "message-id", FK_TEXT, "{msgid} : " },
	{ "msgid", FK_TEXT, "{msgid} : " },
	{ "after", FK_AFTER, NULL },
	{ "before", FK_BEFORE, NULL },
	{ "larger", FK_LARGER, NULL },
	{ "smaller", FK_SMALLER, NULL },
	{ "has", FK_HAS, NULL },
	{ "folder", FK_FOLDER, NULL },
	{ "archive", FK_ARCHIVE, NULL },
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

typedef struct {
	char **v;
	bool *prefix;
	size_t n, cap;
} strlist;

struct arca_query {
	char *fts;
	int64_t after, before;
	uint64_t size_min, size_max;
	int has_attachment;
	strlist folders, archives, highlights;
};

typedef enum {
	T_END,
	T_LPAREN,
	T_RPAREN,
	T_WORD,   /* text: the word; prefix if it ended in '*' */
	T_PHRASE, /* text: contents of "..." with \" unescaped */
	T_MINUS,  /* '-' glued to the following term */
	T_AND,
	T_OR,
	T_NOT,
	T_FIELD,  /* field: index into fields[]; the value follows with no space */
} tok_type;

typedef struct {
	tok_type type;
	size_t start;  /* byte offset, for error columns */
	char *text;    /* T_WORD / T_PHRASE, owned */
	bool prefix;
	size_t field;
} token;

typedef struct {
	const char *s;
	size_t len;
	size_t pos;
	token tok;       /* current lookahead */
	unsigned nterms;
	unsigned depth;
	unsigned nfilters;   /* scope filters applied so far */
	size_t last_filter;  /* fields[] index and position of the latest one */
	size_t last_filter_at;
	arca_query *q;
	arca_error *err;
	arca_status st;  /* first error; parsing stops once set */
} parser;

/* A parsed subexpression: FTS5 text, or NULL when it holds no text terms (filters only, or
 * words without searchable characters). neg means "the complement of text". */
typedef struct {
	char *text;
	bool neg;
} frag;

static size_t column_of(const parser *p, size_t off)
{
	size_t col = 1;
	for (size_t i = 0; i < off && i < p->len; i++)
		if (((unsigned char)p->s[i] & 0xC0) != 0x80)
			col++;
	return col;
}

static void fail(parser *p, arca_status st, size_t off, const char *fmt, const char *arg)
{
	char msg[ARCA_ERROR_MSG_MAX];
	if (p->st != ARCA_OK)
		return;
	p->st = st;
	snprintf(msg, sizeof(msg), fmt, arg != NULL ? arg : "");
	arca_error_set(p->err, st, "column %zu: %s", column_of(p, off), msg);
}

static void nomem(parser *p)
{
	if (p->st == ARCA_OK) {
		p->st = ARCA_ERR_NOMEM;
		arca_error_set(p->err, ARCA_ERR_NOMEM, "out of memory parsing query");
	}
}

static bool strlist_add(strlist *l, const char *s, size_t n, bool prefix)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 4;
		char **v = realloc(l->v, ncap * sizeof(*v));
		bool *pf;
		if (v == NULL)
			return false;
		l->v = v;
		pf = realloc(l->prefix, ncap * sizeof(*pf));
		if (pf == NULL)
			return false;
		l->prefix = pf;
		l->cap = ncap;
	}
	l->v[l->n] = strndup(s, n);
	if (l->v[l->n] == NULL)
		return false;
	l->prefix[l->n] = prefix;
	l->n++;
	return true;
}

static void strlist_free(strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->prefix);
	memset(l, 0, sizeof(*l));
}

/* ---- lexer ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Characters that end a bare word. */
static bool is_word_end(char c)
{
	return c == '\0' || is_space(c) || c == '(' || c == ')' || c == '"';
}

static void tok_clear(token *t)
{
	free(t->text);
	memset(t, 0, sizeof(*t));
}

static size_t field_lookup(const char *s, size_t n)
{
	for (size_t i = 0; i < N_FIELDS; i++)
		if (strlen(fields[i].name) == n && strncasecmp(fields[i].name, s, n) == 0)
			return i;
	return N_FIELDS;
}

static void lex_phrase(parser *p, token *t)
{
	arca_buf b;
	size_t i = p->pos + 1;
	arca_buf_init(&b, ARCA_QUERY_MAX_LEN);
	for (;;) {
		char c = p->s[i];
		if (i >= p->len) {
			arca_buf_free(&b);
			fail(p, ARCA_ERR_SYNTAX, t->start, "unterminated quote%s", NULL);
			return;
		}
		if (c == '"')
			break;
		if (c == '\\' && i + 1 < p->len && p->s[i + 1] == '"') {
			c = '"';
			i++;
		}
		if (arca_buf_append(&b, &c, 1) != ARCA_OK) {
			arca_buf_free(&b);
			nomem(p);
			return;
		}
		i++;
	}
	i++; /* closing quote */
	t->type = T_PHRASE;
	t->text = b.data != NULL ? arca_buf_steal(&b, NULL) : strdup("");
	if (t->text == NULL) {
		nomem(p);
		return;
	}
	if (i < p->len && p->s[i] == '*') {
		t->prefix = true;
		i++;
	}
	p->pos = i;
}

/* Reads the next token. glued: the caller needs a value directly at pos (after "field:"),
 * so whitespace is not skipped and operators are not recognised. */
static void lex(parser *p, bool glued)
{
	token *t = &p->tok;
	size_t i, end, colon;

	tok_clear(t);
	if (p->st != ARCA_OK) {
		t->type = T_END;
		return;
	}
	if (!glued)
		while (p->pos < p->len && is_space(p->s[p->pos]))
			p->pos++;
	t->start = p->pos;
	if (p->pos >= p->len) {
		t->type = T_END;
		return;
	}
	if (++p->nterms > ARCA_QUERY_MAX_TERMS) {
		char lim[32];
		snprintf(lim, sizeof(lim), "%u", ARCA_QUERY_MAX_TERMS);
		fail(p, ARCA_ERR_LIMIT, t->start, "too many terms (at most %s)", lim);
		t->type = T_END;
		return;
	}
	switch (p->s[p->pos]) {
	case '(':
		t->type = T_LPAREN;
		p->pos++;
		return;
	case ')':
		t->type = T_RPAREN;
		p->pos++;
		return;
	case '"':
		lex_phrase(p, t);
		if (p->st != ARCA_OK)
			t->type = T_END;
		return;
	case '-':
		if (!glued && p->pos + 1 < p->len && !is_space(p->s[p->pos + 1]) &&
		    p->s[p->pos + 1] != ')' && p->s[p->pos + 1] != '-') {
			t->type = T_MINUS;
			p->pos++;
			return;
		}
		break;
	default:
		break;
	}
	i = p->pos;
	end = i;
	while (end < p->len && !is_word_end(p->s[end]))
		end++;
	p->pos = end;
	if (!glued) {
		size_t n = end - i;
		if (n == 2 && memcmp(p->s + i, "OR", 2) == 0) {
			t->type = T_OR;
			return;
		}
		if (n == 3 && memcmp(p->s + i, "AND", 3) == 0) {
			t->type = T_AND;
			return;
		}
		if (n == 3 && memcmp(p->s + i, "NOT", 3) == 0) {
			t->type = T_NOT;
			return;
		}
		/* "name:value": a field if name is letters and hyphens. */
		colon = i;
		while (colon < end && (isalpha((unsigned char)p->s[colon]) || p->s[colon] == '-'))
			colon++;
		if (colon > i && colon < end && p->s[colon] == ':') {
			size_t f = field_lookup(p->s + i, colon - i);
			bool has_value = colon + 1 < p->len && !is_space(p->s[colon + 1]) &&
			                 p->s[colon + 1] != ')';
			if (f < N_FIELDS) {
				if (!has_value) {
					char name[64];
					snprintf(name, sizeof(name), "%s", fields[f].name);
					fail(p, ARCA_ERR_SYNTAX, i, "missing value after '%s:'", name);
					t->type = T_END;
					return;
				}
				t->type = T_FIELD;
				t->field = f;
				p->pos = colon + 1;
				return;
			}
			/* URLs (http://...) are words, not fields */
			if (has_value &&
			    !(colon + 2 < end && p->s[colon + 1] == '/' && p->s[colon + 2] == '/')) {
				char name[64];
				snprintf(name, sizeof(name), "%.*s", (int)(colon - i < 60 ? colon - i : 60),
				         p->s + i);
				fail(p, ARCA_ERR_SYNTAX, i,
				     "unknown field '%s:' (put the word in quotes to search for it)", name);
				t->type = T_END;
				return;
			}
			/* "Re:" and the like: a plain word. */
		}
	}
	if (end == i) {
		/* glued value starting with a space or parenthesis handled by the caller */
		t->type = T_END;
		return;
	}
	t->type = T_WORD;
	if (end - i > 1 && p->s[end - 1] == '*') {
		t->prefix = true;
		end--;
		while (end > i + 1 && p->s[end - 1] == '*')
			end--;
	}
	t->text = strndup(p->s + i, end - i);
	if (t->text == NULL) {
		nomem(p);
		t->type = T_END;
	}
}

/* ---- FTS text building ---- */

static char *fts_quote(parser *p, const char *cols, const char *word, bool prefix)
{
	arca_buf b;
	arca_status st;
	arca_buf_init(&b, QUERY_FTS_MAX);
	st = arca_buf_appendz(&b, cols);
	if (st == ARCA_OK)
		st = arca_buf_append(&b, "\"", 1);
	for (const char *c = word; st == ARCA_OK && *c != '\0'; c++)
		st = *c == '"' ? arca_buf_append(&b, "\"\"", 2) : arca_buf_append(&b, c, 1);
	if (st == ARCA_OK)
		st = arca_buf_appendz(&b, prefix ? "\" *" : "\"");
	if (st != ARCA_OK) {
		arca_buf_free(&b);
		nomem(p);
		return NULL;
	}
	return arca_buf_steal(&b, NULL);
}

/* Counts token characters in s; *last gets the count in the final token (for prefixes). */
static size_t count_token_chars(const char *s, size_t *last)
{
	size_t len = strlen(s), i = 0, total = 0, run = 0;
	while (i < len) {
		uint32_t cp = arca_index_utf8_next(s, len, &i);
		if (arca_index_is_token_char(cp)) {
			total++;
			run++;
		} else {
			run = 0;
		}
	}
	if (last != NULL)
		*last = run;
	return total;
}

/* Turns a word or phrase token into a fragment, with cols as the column filter. */
static frag term_frag(parser *p, const token *t, const char *cols, bool negated)
{
	frag f = { NULL, false };
	size_t last;
	if (count_token_chars(t->text, &last) == 0)
		return f; /* punctuation only: nothing to search for, like web search engines */
	if (t->prefix && last < QUERY_MIN_PREFIX) {
		char n[16];
		snprintf(n, sizeof(n), "%d", QUERY_MIN_PREFIX);
		fail(p, ARCA_ERR_SYNTAX, t->start,
		     "a prefix search needs at least %s letters before '*'", n);
		return f;
	}
	f.text = fts_quote(p, cols, t->text, t->prefix);
	if (f.text != NULL && !negated &&
	    !strlist_add(&p->q->highlights, t->text, strlen(t->text), t->prefix)) {
		free(f.text);
		f.text = NULL;
		nomem(p);
	}
	return f;
}

static char *join3(parser *p, const char *a, const char *sep, const char *b)
{
	size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
	char *r;
	if (la + ls + lb > QUERY_FTS_MAX) {
		fail(p, ARCA_ERR_LIMIT, 0, "query too complex%s", NULL);
		return NULL;
	}
	r = malloc(la + ls + lb + 1);
	if (r == NULL) {
		nomem(p);
		return NULL;
	}
	memcpy(r, a, la);
	memcpy(r + la, sep, ls);
	memcpy(r + la + ls, b, lb + 1);
	return r;
}

/* Makes a fragment stand on its own: a negative one becomes "(ALL NOT (x))". */
static char *standalone(parser *p, frag f)
{
	char *inner, *r;
	if (!f.neg || f.text == NULL)
		return f.text;
	inner = join3(p, "(" FTS_ALL ") NOT (", f.text, "))");
	free(f.text);
	if (inner == NULL)
		return NULL;
	r = join3(p, "(", inner, "");
	free(inner);
	return r;
}

/* ---- filters ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	/* Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic Gregorian calendar. */
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool parse_num(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* YYYY, YYYY-MM or YYYY-MM-DD ('/' also accepted) -> seconds at 00:00 UTC. */
static bool parse_date(const char *s, int64_t *out)
{
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y, m = 1, d = 1;
	size_t n = strlen(s);
	if (n != 4 && n != 7 && n != 10)
		return false;
	if (!parse_num(s, 4, &y) || y < 1900 || y > 9999)
		return false;
	if (n >= 7) {
		if ((s[4] != '-' && s[4] != '/') || !parse_num(s + 5, 2, &m) || m < 1 || m > 12)
			return false;
	}
	if (n == 10) {
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		if (s[7] != s[4] || !parse_num(s + 8, 2, &d) || d < 1 || d > mdays[m - 1] ||
		    (m == 2 && d == 29 && !leap))
			return false;
	}
	*out = days_from_civil(y, m, d) * 86400;
	return true;
}

/* N, Nk, Nm, Ng (also kb/mb/gb, any case) -> bytes. */
static bool parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	size_t i = 0, n = strlen(s);
	while (i < n && isdigit((unsigned char)s[i])) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
		i++;
	}
	if (i == 0)
		return false;
	if (i < n) {
		switch (tolower((unsigned char)s[i])) {
		case 'k': mul = 1024; break;
		case 'm': mul = 1024 * 1024; break;
		case 'g': mul = 1024 * 1024 * 1024; break;
		case 'b': mul = 1; i--; break;
		default: return false;
		}
		i++;
		if (i < n && tolower((unsigned char)s[i]) == 'b')
			i++;
		if (i != n)
			return false;
	}
	if (v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static void apply_filter(parser *p, size_t f, const token *t, bool conj)
{
	const char *name = fields[f].name;
	const char *v = t->text;
	int64_t date;
	uint64_t size;

	if (!conj) {
		fail(p, ARCA_ERR_SYNTAX, t->start, "'%s:' cannot be used inside OR or NOT", name);
		return;
	}
	p->nfilters++;
	p->last_filter = f;
	p->last_filter_at = t->start;
	switch (fields[f].kind) {
	case FK_AFTER:
	case FK_BEFORE:
		if (!parse_date(v, &date)) {
			fail(p, ARCA_ERR_SYNTAX, t->start,
			     "bad date '%s' (use YYYY-MM-DD, YYYY-MM or YYYY)", v);
			return;
		}
		if (fields[f].kind == FK_AFTER && date > p->q->after)
			p->q->after = date;
		if (fields[f].kind == FK_BEFORE && date < p->q->before)
			p->q->before = date;
		return;
	case FK_LARGER:
	case FK_SMALLER:
		if (!parse_size(v, &size)) {
			fail(p, ARCA_ERR_SYNTAX, t->start,
			     "bad size '%s' (use a number with an optional k, m or g suffix)", v);
			return;
		}
		if (fields[f].kind == FK_LARGER) {
			if (size == UINT64_MAX)
				size--; /* nothing is larger; an empty range is still a valid query */
			if (size + 1 > p->q->size_min)
				p->q->size_min = size + 1;
		} else if (size < p->q->size_max) {
			p->q->size_max = size;
		}
		return;
	case FK_FOLDER:
	case FK_ARCHIVE:
		if (v[0] == '\0') {
			fail(p, ARCA_ERR_SYNTAX, t->start, "empty %s name", name);
			return;
		}
		if (strlen(v) > (fields[f].kind == FK_FOLDER ? ARCA_FOLDER_MAX : ARCA_NAME_MAX)) {
			fail(p, ARCA_ERR_LIMIT, t->start, "%s name too long", name);
			return;
		}
		if (!strlist_add(fields[f].kind == FK_FOLDER ? &p->q->folders : &p->q->archives, v,
		                 strlen(v), false))
			nomem(p);
		return;
	default:
		return;
	}
}

/* ---- parser ---- */

static frag parse_or(parser *p, const char *cols, bool conj, bool negated);

static void frag_free(frag *f)
{
	free(f->text);
	f->text = NULL;
}

static bool enter(parser *p)
{
	if (++p->depth > QUERY_MAX_DEPTH) {
		fail(p, ARCA_ERR_LIMIT, p->tok.start, "query nested too deeply%s", NULL);
		return false;
	}
	return true;
}

/* '(' or_expr ')' with the lookahead on '('. */
static frag parse_group(parser *p, const char *cols, bool conj, bool negated)
{
	frag f = { NULL, false };
	size_t open = p->tok.start;
	lex(p, false);
	if (p->tok.type == T_RPAREN) {
		fail(p, ARCA_ERR_SYNTAX, open, "empty parentheses%s", NULL);
		return f;
	}
	f = parse_or(p, cols, conj, negated);
	if (p->st != ARCA_OK)
		return f;
	if (p->tok.type != T_RPAREN) {
		frag_free(&f);
		fail(p, ARCA_ERR_SYNTAX, open, "unbalanced parenthesis: '(' is never closed%s",
		     NULL);
		return f;
	}
	lex(p, false);
	return f;
}

static frag parse_field(parser *p, bool conj, bool negated)
{
	frag f = { NULL, false };
	size_t fi = p->tok.field;
	size_t at = p->tok.start;

	lex(p, true);
	if (p->st != ARCA_OK)
		return f;
	if (fields[fi].kind == FK_TEXT) {
		if (p->tok.type == T_LPAREN)
			return parse_group(p, fields[fi].cols, conj, negated);
		if (p->tok.type != T_WORD && p->tok.type != T_PHRASE) {
			fail(p, ARCA_ERR_SYNTAX, at, "missing value after '%s:'", fields[fi].name);
			return f;
		}
		f = term_frag(p, &p->tok, fields[fi].cols, negated);
		lex(p, false);
		return f;
	}
	if (p->tok.type != T_WORD && p->tok.type != T_PHRASE) {
		fail(p, ARCA_ERR_SYNTAX, at, "missing value after '%s:'", fields[fi].name);
		return f;
	}
	if (p->tok.prefix) {
		fail(p, ARCA_ERR_SYNTAX, p->tok.start, "'*' is not allowed in '%s:'",
		     fields[fi].name);
		return f;
	}
	if (fields[fi].kind == FK_HAS) {
		/* has:attachment is an FTS term in the flags column, so it also works under NOT
		 * and OR; only a plain positive use is reported by arca_query_has_attachment(). */
		if (strcasecmp(p->tok.text, "attachment") != 0 &&
		    strcasecmp(p->tok.text, "attachments") != 0) {
			fail(p, ARCA_ERR_SYNTAX, p->tok.start,
			     "unknown 'has:' value '%s' (only has:attachment)", p->tok.text);
			return f;
		}
		if (conj && !negated)
			p->q->has_attachment = 1;
		f.text = strdup("{flags} : \"hasattachment\"");
		if (f.text == NULL)
			nomem(p);
		lex(p, false);
		return f;
	}
	apply_filter(p, fi, &p->tok, conj && !negated);
	lex(p, false);
	return f;
}

/* unary := ('-' | NOT) unary | '(' or_expr ')' | field | word | phrase */
static frag parse_unary(parser *p, const char *cols, bool conj, bool negated)
{
	frag f = { NULL, false };
	if (!enter(p))
		return f;
	switch (p->tok.type) {
	case T_MINUS:
	case T_NOT:
		lex(p, false);
		if (p->tok.type == T_END || p->tok.type == T_RPAREN || p->tok.type == T_OR ||
		    p->tok.type == T_AND) {
			fail(p, ARCA_ERR_SYNTAX, p->tok.start, "NOT needs a term after it%s", NULL);
			break;
		}
		f = parse_unary(p, cols, false, !negated);
		f.neg = !f.neg; /* NOT of a complement is the expression itself */
		break;
	case T_LPAREN:
		f = parse_group(p, cols, conj, negated);
		break;
	case T_FIELD:
		if (cols != NULL && strcmp(cols, FTS_DEFAULT_COLS) != 0) {
			fail(p, ARCA_ERR_SYNTAX, p->tok.start,
			     "'%s:' cannot be used inside another field's parentheses",
			     fields[p->tok.field].name);
			break;
		}
		f = parse_field(p, conj, negated);
		break;
	case T_WORD:
	case T_PHRASE:
		f = term_frag(p, &p->tok, cols, negated);
		lex(p, false);
		break;
	case T_RPAREN:
		fail(p, ARCA_ERR_SYNTAX, p->tok.start, "unbalanced parenthesis: unexpected ')'%s",
		     NULL);
		break;
	case T_OR:
	case T_AND:
		fail(p, ARCA_ERR_SYNTAX, p->tok.start, "%s needs a term before it",
		     p->tok.type == T_OR ? "OR" : "AND");
		break;
	case T_END:
		fail(p, ARCA_ERR_SYNTAX, p->tok.start, "unexpected end of query%s", NULL);
		break;
	}
	p->depth--;
	if (p->st != ARCA_OK)
		frag_free(&f);
	return f;
}

static bool starts_unary(tok_type t)
{
	return t == T_MINUS || t == T_NOT || t == T_LPAREN || t == T_FIELD || t == T_WORD ||
	       t == T_PHRASE;
}

/* and_expr := unary ([AND] unary)*. Positives are ANDed, negatives ORed and subtracted. */
static frag parse_and(parser *p, const char *cols, bool conj, bool negated)
{
	frag out = { NULL, false };
	char *pos = NULL, *neg = NULL;

	for (;;) {
		frag f = parse_unary(p, cols, conj, negated);
		if (p->st != ARCA_OK)
			break;
		if (f.text != NULL) {
			/* wrap each operand so precedence never depends on FTS5's rules */
			char *w = join3(p, "(", f.text, ")");
			char **dst = f.neg ? &neg : &pos;
			free(f.text);
			if (w == NULL)
				break;
			if (*dst == NULL) {
				*dst = w;
			} else {
				char *j = join3(p, *dst, f.neg ? " OR " : " AND ", w);
				free(w);
				free(*dst);
				*dst = j;
				if (j == NULL)
					break;
			}
		}
		if (p->tok.type == T_AND) {
			lex(p, false);
			if (!starts_unary(p->tok.type)) {
				fail(p, ARCA_ERR_SYNTAX, p->tok.start, "AND needs a term after it%s",
				     NULL);
				break;
			}
			continue;
		}
		if (!starts_unary(p->tok.type))
			break;
	}
	if (p->st != ARCA_OK) {
		free(pos);
		free(neg);
		return out;
	}
	if (neg == NULL) {
		out.text = pos;
	} else if (pos == NULL) {
		out.text = neg; /* the complement of (n1 OR n2 ...) */
		out.neg = true;
	} else {
		char *w = join3(p, "(", neg, "))");
		out.text = w != NULL ? join3(p, "(", pos, "") : NULL;
		if (out.text != NULL) {
			char *j = join3(p, out.text, " NOT ", w);
			free(out.text);
			out.text = j;
		}
		free(w);
		free(pos);
		free(neg);
	}
	return out;
}

/* or_expr := and_expr (OR and_expr)*. Filters (after:, folder:, ...) are scope restrictions
 * and only make sense ANDed with the whole query, so they are refused next to an OR. */
/* Appends "(s)" to an OR list; takes ownership of s. False on failure. */
static bool or_append(parser *p, char **acc, char *s)
{
	char *w, *j;
	if (s == NULL)
		return p->st == ARCA_OK;
	/* each operand parenthesised: FTS5 must never see "a OR b AND c" */
	w = join3(p, "(", s, ")");
	free(s);
	if (w == NULL)
		return false;
	if (*acc == NULL) {
		*acc = w;
		return true;
	}
	j = join3(p, *acc, " OR ", w);
	free(w);
	free(*acc);
	*acc = j;
	return j != NULL;
}

static frag parse_or(parser *p, const char *cols, bool conj, bool negated)
{
	frag out = { NULL, false };
	frag f;
	char *acc = NULL;
	unsigned filters_before = p->nfilters;

	if (cols == NULL)
		cols = FTS_DEFAULT_COLS;
	f = parse_and(p, cols, conj, negated);
	if (p->st != ARCA_OK || p->tok.type != T_OR)
		return f; /* no OR: keep the fragment's sign for the caller */
	if (p->nfilters != filters_before) {
		frag_free(&f);
		fail(p, ARCA_ERR_SYNTAX, p->last_filter_at, "'%s:' cannot be used next to OR",
		     fields[p->last_filter].name);
		return out;
	}
	or_append(p, &acc, standalone(p, f));
	while (p->st == ARCA_OK && p->tok.type == T_OR) {
		lex(p, false);
		if (!starts_unary(p->tok.type)) {
			fail(p, ARCA_ERR_SYNTAX, p->tok.start, "OR needs a term after it%s", NULL);
			break;
		}
		f = parse_and(p, cols, false, negated);
		if (p->st != ARCA_OK)
			break;
		if (!or_append(p, &acc, standalone(p, f)))
			break;
	}
	if (p->st != ARCA_OK) {
		free(acc);
		return out;
	}
	if (acc != NULL) {
		out.text = join3(p, "(", acc, ")");
		free(acc);
	}
	return out;
}

arca_status arca_query_parse(const char *text, arca_query **out, arca_error *err)
{
	parser p;
	arca_query *q;
	frag f;
	size_t bad;

	*out = NULL;
	if (text == NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "no query");
	memset(&p, 0, sizeof(p));
	p.s = text;
	p.len = strlen(text);
	p.err = err;
	if (p.len > ARCA_QUERY_MAX_LEN)
		return arca_error_set(err, ARCA_ERR_LIMIT, "query too long (at most %u bytes)",
		                      ARCA_QUERY_MAX_LEN);
	if (!arca_index_utf8_valid(text, p.len, &bad)) {
		fail(&p, ARCA_ERR_SYNTAX, bad, "invalid UTF-8%s", NULL);
		return p.st;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory parsing query");
	q->after = INT64_MIN;
	q->before = INT64_MAX;
	q->size_min = 0;
	q->size_max = UINT64_MAX;
	p.q = q;

	lex(&p, false);
	if (p.st == ARCA_OK && p.tok.type == T_END)
		fail(&p, ARCA_ERR_SYNTAX, 0, "empty query%s", NULL);
	f = (frag){ NULL, false };
	if (p.st == ARCA_OK)
		f = parse_or(&p, NULL, true, false);
	if (p.st == ARCA_OK && p.tok.type != T_END) {
		if (p.tok.type == T_RPAREN)
			fail(&p, ARCA_ERR_SYNTAX, p.tok.start,
			     "unbalanced parenthesis: unexpected ')'%s", NULL);
		else
			fail(&p, ARCA_ERR_SYNTAX, p.tok.start, "unexpected input%s", NULL);
	}
	if (p.st == ARCA_OK) {
		q->fts = standalone(&p, f);
		f.text = NULL;
		if (p.st == ARCA_OK && q->fts == NULL && q->after == INT64_MIN &&
		    q->before == INT64_MAX && q->size_min == 0 && q->size_max == UINT64_MAX &&
		    q->folders.n == 0 && q->archives.n == 0)
			fail(&p, ARCA_ERR_SYNTAX, 0,
			     "nothing to search for (the query has no letters or digits)%s", NULL);
	}
	frag_free(&f);
	tok_clear(&p.tok);
	if (p.st != ARCA_OK) {
		arca_query_free(&q);
		return p.st;
	}
	*out = q;
	return ARCA_OK;
}

void arca_query_free(arca_query **qp)
{
	arca_query *q;
	if (qp == NULL || *qp == NULL)
		return;
	q = *qp;
	free(q->fts);
	strlist_free(&q->folders);
	strlist_free(&q->archives);
	strlist_free(&q->highlights);
	free(q);
	*qp = NULL;
}

const char *arca_query_fts(const arca_query *q)
{
	return q->fts;
}

int64_t arca_query_after(const arca_query *q)
{
	return q->after;
}

int64_t arca_query_before(const arca_query *q)
{
	return q->before;
}

uint64_t arca_query_size_min(const arca_query *q)
{
	return q->size_min;
}

uint64_t arca_query_size_max(const arca_query *q)
{
	return q->size_max;
}

int arca_query_has_attachment(const arca_query *q)
{
	return q->has_attachment;
}

size_t arca_query_n_folders(const arca_query *q)
{
	return q->folders.n;
}

const char *arca_query_folder(const arca_query *q, size_t i)
{
	return i < q->folders.n ? q->folders.v[i] : NULL;
}

size_t arca_query_n_archives(const arca_query *q)
{
	return q->archives.n;
}

const char *arca_query_archive(const arca_query *q, size_t i)
{
	return i < q->archives.n ? q->archives.v[i] : NULL;
}

size_t arca_query_n_highlights(const arca_query *q)
{
	return q->highlights.n;
}

const char *arca_query_highlight(const arca_query *q, size_t i)
{
	return i < q->highlights.n ? q->highlights.v[i] : NULL;
}

bool arca_query_highlight_is_prefix(const arca_query *q, size_t i)
{
	return i < q->highlights.n ? q->highlights.prefix[i] : false;
}

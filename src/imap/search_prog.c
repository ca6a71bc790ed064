/* Search programs (RFC 3501 §6.4.4, RFC 9051 §6.4.4, MODSEQ of RFC 7162 §3.1.5): parser nodes
 * -> a key tree, and the date arithmetic the date keys need. No I/O. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/search_int.h"

typedef struct {
	const arca_imap_node *list;
	size_t i, n;
	arca_error *err;
} cursor;

static const arca_imap_node *next_node(cursor *c)
{
	return c->i < c->n ? arca_imap_node_child(c->list, c->i++) : NULL;
}

static void key_clear(imapd_skey *k)
{
	for (size_t i = 0; i < k->nkids; i++)
		key_clear(&k->kids[i]);
	free(k->kids);
	free(k->field);
	free(k->text);
	free(k->set);
	free(k->bits);
	memset(k, 0, sizeof(*k));
}

void imapd_search_free(imapd_skey **key)
{
	if (key == NULL || *key == NULL)
		return;
	key_clear(*key);
	free(*key);
	*key = NULL;
}

bool imapd_search_uses_modseq(const imapd_skey *k)
{
	if (k->kind == IMAPD_SK_MODSEQ)
		return true;
	for (size_t i = 0; i < k->nkids; i++)
		if (imapd_search_uses_modseq(&k->kids[i]))
			return true;
	return false;
}

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool imapd_search_parse_date(const char *s, size_t len, int32_t *day)
{
	static const char months[12][4] = { "jan", "feb", "mar", "apr", "may", "jun",
		                            "jul", "aug", "sep", "oct", "nov", "dec" };
	static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	size_t i = 0;
	unsigned d = 0, m = 0, y = 0, nd = 0, ny = 0;
	while (i < len && s[i] >= '0' && s[i] <= '9' && nd < 2) {
		d = d * 10 + (unsigned)(s[i++] - '0');
		nd++;
	}
	if (nd == 0 || i + 5 > len || s[i] != '-' || s[i + 4] != '-')
		return false;
	for (m = 0; m < 12; m++)
		if (strncasecmp(s + i + 1, months[m], 3) == 0)
			break;
	if (m == 12)
		return false;
	for (i += 5; i < len && s[i] >= '0' && s[i] <= '9' && ny < 4; i++, ny++)
		y = y * 10 + (unsigned)(s[i] - '0');
	if (ny != 4 || i != len || y == 0 || d == 0 ||
	    d > mdays[m] + (m == 1 && leap((int64_t)y) ? 1u : 0u))
		return false;
	*day = (int32_t)days_from_civil((int64_t)y, m + 1, d);
	return true;
}

int32_t imapd_search_day(int64_t t, int tz_minutes)
{
	int64_t local = t + (int64_t)tz_minutes * 60;
	int64_t d = local / 86400;
	if (local % 86400 < 0)
		d--;
	if (d < INT32_MIN)
		return INT32_MIN;
	if (d > INT32_MAX)
		return INT32_MAX;
	return (int32_t)d;
}

/* ---- parsing ---- */

static arca_status parse_key(cursor *c, imapd_skey *k, unsigned depth);

static arca_status nomem(cursor *c)
{
	return arca_error_set(c->err, ARCA_ERR_NOMEM, "out of memory");
}

/* astring argument (atom, number, string; NIL is the atom "NIL") */
static arca_status take_string(cursor *c, const char *key, char **out, size_t *len)
{
	const arca_imap_node *n = next_node(c);
	const char *t;
	size_t l = 0;
	arca_imap_node_type ty = n != NULL ? arca_imap_node_kind(n) : ARCA_IMAP_NODE_LIST;
	if (ty == ARCA_IMAP_NODE_LIST || ty == ARCA_IMAP_NODE_SECTION ||
	    (t = arca_imap_node_text(n, &l)) == NULL)
		return arca_error_set(c->err, ARCA_ERR_SYNTAX, "%s needs a string", key);
	*out = malloc(l + 1);
	if (*out == NULL)
		return nomem(c);
	memcpy(*out, t, l);
	(*out)[l] = '\0';
	if (len != NULL)
		*len = l;
	return ARCA_OK;
}

static arca_status take_date(cursor *c, const char *key, int32_t *day)
{
	const arca_imap_node *n = next_node(c);
	const char *t;
	size_t l = 0;
	if (n == NULL || arca_imap_node_kind(n) == ARCA_IMAP_NODE_LIST ||
	    (t = arca_imap_node_text(n, &l)) == NULL || !imapd_search_parse_date(t, l, day))
		return arca_error_set(c->err, ARCA_ERR_SYNTAX, "%s needs a date like 1-Feb-2024", key);
	return ARCA_OK;
}

static arca_status take_number(cursor *c, const char *key, uint64_t *v)
{
	const arca_imap_node *n = next_node(c);
	if (n == NULL || arca_imap_node_kind(n) != ARCA_IMAP_NODE_NUMBER)
		return arca_error_set(c->err, ARCA_ERR_SYNTAX, "%s needs a number", key);
	*v = arca_imap_node_number(n);
	return ARCA_OK;
}

static arca_status set_key(cursor *c, imapd_skey *k, const char *t, size_t l, bool uid)
{
	arca_imap_seqset *set = NULL;
	arca_status st = arca_imap_seqset_parse(t, l, &set, c->err);
	if (st != ARCA_OK)
		return st;
	arca_imap_seqset_free(&set);
	k->kind = IMAPD_SK_SET;
	k->uid = uid;
	k->set = malloc(l + 1);
	if (k->set == NULL)
		return nomem(c);
	memcpy(k->set, t, l);
	k->set[l] = '\0';
	k->setlen = l;
	return ARCA_OK;
}

static arca_status header_key(cursor *c, imapd_skey *k, const char *field, const char *key)
{
	k->kind = IMAPD_SK_HEADER;
	k->field = strdup(field);
	if (k->field == NULL)
		return nomem(c);
	return take_string(c, key, &k->text, &k->len);
}

/* Parses the keys of a list (parenthesised group or the command's tail) into an AND. */
static arca_status parse_and(cursor *c, imapd_skey *k, unsigned depth)
{
	size_t cap = 0;
	k->kind = IMAPD_SK_AND;
	while (c->i < c->n) {
		arca_status st;
		if (k->nkids == cap) {
			size_t nc = cap ? cap * 2 : 4;
			imapd_skey *v = realloc(k->kids, nc * sizeof(*v));
			if (v == NULL)
				return nomem(c);
			k->kids = v;
			cap = nc;
		}
		memset(&k->kids[k->nkids], 0, sizeof(k->kids[0]));
		k->nkids++;
		st = parse_key(c, &k->kids[k->nkids - 1], depth);
		if (st != ARCA_OK)
			return st;
	}
	return ARCA_OK;
}

static arca_status kids(cursor *c, imapd_skey *k, imapd_search_kind kind, size_t n,
                        unsigned depth)
{
	k->kind = kind;
	k->kids = calloc(n, sizeof(*k->kids));
	if (k->kids == NULL)
		return nomem(c);
	k->nkids = n;
	for (size_t i = 0; i < n; i++) {
		arca_status st;
		if (c->i >= c->n)
			return arca_error_set(c->err, ARCA_ERR_SYNTAX, "%s needs %s search key%s",
			                      kind == IMAPD_SK_OR ? "OR" : "NOT", n == 2 ? "two" : "a",
			                      n == 2 ? "s" : "");
		st = parse_key(c, &k->kids[i], depth + 1);
		if (st != ARCA_OK)
			return st;
	}
	return ARCA_OK;
}

static arca_status parse_key(cursor *c, imapd_skey *k, unsigned depth)
{
	const arca_imap_node *n = next_node(c);
	arca_imap_node_type ty;
	const char *t;
	size_t l = 0;
	if (depth >= IMAPD_SEARCH_MAX_DEPTH)
		return arca_error_set(c->err, ARCA_ERR_LIMIT, "search program nested too deeply");
	if (n == NULL)
		return arca_error_set(c->err, ARCA_ERR_SYNTAX, "missing search key");
	ty = arca_imap_node_kind(n);
	if (ty == ARCA_IMAP_NODE_LIST) {
		cursor sub = { .list = n, .i = 0, .n = arca_imap_node_count(n), .err = c->err };
		if (sub.n == 0)
			return arca_error_set(c->err, ARCA_ERR_SYNTAX, "empty parenthesised search key");
		return parse_and(&sub, k, depth + 1);
	}
	t = arca_imap_node_text(n, &l);
	if (t == NULL || (ty != ARCA_IMAP_NODE_ATOM && ty != ARCA_IMAP_NODE_NUMBER))
		return arca_error_set(c->err, ARCA_ERR_SYNTAX, "a search key was expected, not a string");
	if ((t[0] >= '0' && t[0] <= '9') || t[0] == '*' || t[0] == '$')
		return set_key(c, k, t, l, false);
#define IS(s) (strcasecmp(t, s) == 0)
	if (IS("ALL") || IS("SEEN") || IS("OLD") || IS("UNANSWERED") || IS("UNDELETED") ||
	    IS("UNDRAFT") || IS("UNFLAGGED")) {
		k->kind = IMAPD_SK_ALL;
		return ARCA_OK;
	}
	if (IS("UNSEEN") || IS("NEW") || IS("RECENT") || IS("ANSWERED") || IS("DELETED") ||
	    IS("DRAFT") || IS("FLAGGED")) {
		k->kind = IMAPD_SK_NONE;
		return ARCA_OK;
	}
	if (IS("KEYWORD") || IS("UNKEYWORD")) {
		const arca_imap_node *f = next_node(c);
		const char *ft = f != NULL ? arca_imap_node_text(f, NULL) : NULL;
		if (ft == NULL || arca_imap_node_kind(f) != ARCA_IMAP_NODE_ATOM)
			return arca_error_set(c->err, ARCA_ERR_SYNTAX, "%s needs a flag", IS("KEYWORD") ?
			                                                            "KEYWORD" : "UNKEYWORD");
		/* \Seen is the only flag any message has; it is not a keyword, but clients send it */
		k->kind = (strcasecmp(ft, "\\Seen") == 0) == IS("KEYWORD") ? IMAPD_SK_ALL : IMAPD_SK_NONE;
		return ARCA_OK;
	}
	if (IS("UID")) {
		const arca_imap_node *s = next_node(c);
		const char *st = s != NULL ? arca_imap_node_text(s, &l) : NULL;
		if (st == NULL || (arca_imap_node_kind(s) != ARCA_IMAP_NODE_ATOM &&
		                   arca_imap_node_kind(s) != ARCA_IMAP_NODE_NUMBER))
			return arca_error_set(c->err, ARCA_ERR_SYNTAX, "UID needs a sequence set");
		return set_key(c, k, st, l, true);
	}
	if (IS("NOT"))
		return kids(c, k, IMAPD_SK_NOT, 1, depth);
	if (IS("OR"))
		return kids(c, k, IMAPD_SK_OR, 2, depth);
	if (IS("LARGER") || IS("SMALLER")) {
		k->kind = IS("LARGER") ? IMAPD_SK_LARGER : IMAPD_SK_SMALLER;
		return take_number(c, IS("LARGER") ? "LARGER" : "SMALLER", &k->num);
	}
	if (IS("MODSEQ")) {
		/* optional entry-name and entry-type-req (RFC 7162): flags never change here, so
		 * they do not matter */
		if (c->i < c->n &&
		    arca_imap_node_kind(arca_imap_node_child(c->list, c->i)) == ARCA_IMAP_NODE_STRING) {
			const arca_imap_node *ty2;
			const char *en = arca_imap_node_text(next_node(c), NULL), *tt;
			ty2 = next_node(c);
			tt = ty2 != NULL ? arca_imap_node_text(ty2, NULL) : NULL;
			if (strncasecmp(en, "/flags/", 7) != 0 || tt == NULL ||
			    (strcasecmp(tt, "priv") != 0 && strcasecmp(tt, "shared") != 0 &&
			     strcasecmp(tt, "all") != 0))
				return arca_error_set(c->err, ARCA_ERR_SYNTAX,
				                      "MODSEQ takes [\"/flags/<flag>\" priv|shared|all] and a "
				                      "mod-sequence");
		}
		k->kind = IMAPD_SK_MODSEQ;
		return take_number(c, "MODSEQ", &k->num);
	}
	{
		static const struct {
			const char *name;
			imapd_search_kind kind;
		} dates[] = {
			{ "BEFORE", IMAPD_SK_BEFORE },         { "ON", IMAPD_SK_ON },
			{ "SINCE", IMAPD_SK_SINCE },           { "SENTBEFORE", IMAPD_SK_SENTBEFORE },
			{ "SENTON", IMAPD_SK_SENTON },         { "SENTSINCE", IMAPD_SK_SENTSINCE },
		};
		static const char *const headers[] = { "SUBJECT", "FROM", "TO", "CC", "BCC" };
		for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
			if (IS(dates[i].name)) {
				k->kind = dates[i].kind;
				return take_date(c, dates[i].name, &k->day);
			}
		}
		for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
			if (IS(headers[i]))
				return header_key(c, k, headers[i], headers[i]);
	}
	if (IS("HEADER")) {
		char *field = NULL;
		size_t fl = 0;
		arca_status st = take_string(c, "HEADER", &field, &fl);
		if (st != ARCA_OK)
			return st;
		if (fl == 0 || strlen(field) != fl) {
			free(field);
			return arca_error_set(c->err, ARCA_ERR_SYNTAX, "HEADER needs a field name");
		}
		k->kind = IMAPD_SK_HEADER;
		k->field = field;
		return take_string(c, "HEADER", &k->text, &k->len);
	}
	if (IS("BODY") || IS("TEXT")) {
		k->kind = IS("BODY") ? IMAPD_SK_BODY : IMAPD_SK_TEXT;
		return take_string(c, IS("BODY") ? "BODY" : "TEXT", &k->text, &k->len);
	}
#undef IS
	return arca_error_set(c->err, ARCA_ERR_SYNTAX, "unknown search key %.64s", t);
}

arca_status imapd_search_parse(const arca_imap_node *list, size_t first, imapd_skey **out,
                               arca_error *err)
{
	cursor c = { .list = list, .i = first, .n = arca_imap_node_count(list), .err = err };
	imapd_skey *k;
	arca_status st;
	*out = NULL;
	if (first >= c.n)
		return arca_error_set(err, ARCA_ERR_SYNTAX, "missing search key");
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	st = parse_and(&c, k, 0);
	if (st != ARCA_OK) {
		imapd_search_free(&k);
		return st;
	}
	*out = k;
	return ARCA_OK;
}

/* Transfer decoding (BINARY, text extraction) and what SEARCH needs: decoded header values,
 * the text of text parts, a case-insensitive matcher and the Date header. GMime does the
 * RFC 2047 decoding, charset tables and date parsing; the decoders are small and our own so
 * that they can stop at a partial range and count without keeping anything. */
#include "imap/msg_int.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "mime/mime.h"

/* ---- transfer decoding ---------------------------------------------------------------- */

typedef struct {
	arca_buf *out; /* NULL: only count */
	uint8_t chunk[8192];
	size_t used;
	size_t produced; /* bytes decoded so far (counted even without out) */
	size_t limit;
	arca_status st;
} sink;

static void flush(sink *k)
{
	if (k->out != NULL && k->used > 0 && k->st == ARCA_OK)
		k->st = arca_buf_append(k->out, k->chunk, k->used);
	k->used = 0;
}

/* false once the limit is reached or out failed */
static bool emit(sink *k, uint8_t c)
{
	if (k->produced >= k->limit || k->st != ARCA_OK)
		return false;
	k->produced++;
	k->chunk[k->used++] = c;
	if (k->used == sizeof(k->chunk))
		flush(k);
	return true;
}

static bool emit_run(sink *k, const uint8_t *p, size_t n)
{
	while (n > 0) {
		size_t room = sizeof(k->chunk) - k->used, take = n;
		if (k->produced >= k->limit || k->st != ARCA_OK)
			return false;
		if (take > room)
			take = room;
		if (take > k->limit - k->produced)
			take = k->limit - k->produced;
		memcpy(k->chunk + k->used, p, take);
		k->used += take;
		k->produced += take;
		p += take;
		n -= take;
		if (k->used == sizeof(k->chunk))
			flush(k);
	}
	return true;
}

/* 0-63: base64 digit; 64: '='; 65: anything else */
#define ROW(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const uint8_t b64tbl[256] = {
	ROW(65),
	ROW(65),
	65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 62, 65, 65, 65, 63,         /* + / */
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 65, 65, 65, 64, 65, 65,         /* 0-9 = */
	65, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,                   /* A-O */
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 65, 65, 65, 65, 65,        /* P-Z */
	65, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,        /* a-o */
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 65, 65, 65, 65, 65,        /* p-z */
	ROW(65), ROW(65), ROW(65), ROW(65), ROW(65), ROW(65), ROW(65), ROW(65),
};
#undef ROW

/* Lenient base64: characters outside the alphabet (line breaks, spaces, garbage) are skipped;
 * "=" ends a quantum (so concatenated encodings decode); a trailing partial quantum gives the
 * bytes it holds. Whole quanta of four digits (nearly everything) take the fast path. */
static void decode_b64(sink *k, const uint8_t *p, size_t len)
{
	uint32_t acc = 0;
	int n = 0;
	size_t i = 0;
	while (i < len) {
		unsigned v;
		if (n == 0 && i + 4 <= len && k->limit - k->produced >= 3 && sizeof(k->chunk) - k->used >= 3) {
			unsigned a = b64tbl[p[i]], b = b64tbl[p[i + 1]], c = b64tbl[p[i + 2]], d = b64tbl[p[i + 3]];
			if ((a | b | c | d) < 64) {
				uint32_t q = a << 18 | b << 12 | c << 6 | d;
				k->chunk[k->used] = (uint8_t)(q >> 16);
				k->chunk[k->used + 1] = (uint8_t)(q >> 8);
				k->chunk[k->used + 2] = (uint8_t)q;
				k->used += 3;
				k->produced += 3;
				if (k->used > sizeof(k->chunk) - 3)
					flush(k);
				if (k->st != ARCA_OK)
					return;
				i += 4;
				continue;
			}
		}
		v = b64tbl[p[i++]];
		if (v >= 64) {
			if (v == 64 && n >= 2) {
				if (!emit(k, (uint8_t)(n == 2 ? acc >> 4 : acc >> 10)))
					return;
				if (n == 3 && !emit(k, (uint8_t)(acc >> 2)))
					return;
				n = 0;
				acc = 0;
			}
			continue;
		}
		acc = acc << 6 | v;
		if (++n == 4) {
			if (!emit(k, (uint8_t)(acc >> 16)) || !emit(k, (uint8_t)(acc >> 8)) || !emit(k, (uint8_t)acc))
				return;
			n = 0;
			acc = 0;
		}
	}
	if (n == 2)
		(void)emit(k, (uint8_t)(acc >> 4));
	else if (n == 3 && emit(k, (uint8_t)(acc >> 10)))
		(void)emit(k, (uint8_t)(acc >> 2));
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Lenient quoted-printable: "=XX" (either case) is a byte, "=" + whitespace + line end a soft
 * break, any other "=" stays; whitespace before a line end is dropped (RFC 2045 §6.7 (3)).
 * Runs of other characters are copied as they are. */
static void decode_qp(sink *k, const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = p[i];
		if (c == '=') {
			size_t j = i + 1;
			if (j + 1 < len && hexval(p[j]) >= 0 && hexval(p[j + 1]) >= 0) {
				if (!emit(k, (uint8_t)(hexval(p[j]) << 4 | hexval(p[j + 1]))))
					return;
				i += 3;
				continue;
			}
			while (j < len && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (j == len) {
				i = len;
				continue;
			}
			if (p[j] == '\n' || (p[j] == '\r' && j + 1 < len && p[j + 1] == '\n')) {
				i = j + (p[j] == '\n' ? 1 : 2);
				continue;
			}
			if (!emit(k, '='))
				return;
			i++;
		} else if (c == ' ' || c == '\t') {
			size_t j = i;
			while (j < len && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (j == len || p[j] == '\n' || (p[j] == '\r' && j + 1 < len && p[j + 1] == '\n')) {
				i = j; /* transport padding */
				continue;
			}
			if (!emit_run(k, p + i, j - i))
				return;
			i = j;
		} else {
			size_t j = i + 1;
			while (j < len && p[j] != '=' && p[j] != ' ' && p[j] != '\t')
				j++;
			if (!emit_run(k, p + i, j - i))
				return;
			i = j;
		}
	}
}

size_t arca_msg_decode(int cte, const uint8_t *p, size_t len, size_t limit, arca_buf *out,
                       arca_status *st)
{
	sink *k;
	size_t r;
	if (cte != ARCA_MSG_CTE_BASE64 && cte != ARCA_MSG_CTE_QP) {
		size_t n = len < limit ? len : limit;
		*st = out != NULL ? arca_buf_append(out, p, n) : ARCA_OK;
		return *st == ARCA_OK ? n : SIZE_MAX;
	}
	k = malloc(sizeof(*k));
	if (k == NULL) {
		*st = ARCA_ERR_NOMEM;
		return SIZE_MAX;
	}
	k->out = out;
	k->used = 0;
	k->produced = 0;
	k->limit = limit;
	k->st = ARCA_OK;
	if (cte == ARCA_MSG_CTE_BASE64)
		decode_b64(k, p, len);
	else
		decode_qp(k, p, len);
	flush(k);
	*st = k->st;
	r = k->st == ARCA_OK ? k->produced : SIZE_MAX;
	free(k);
	return r;
}

/* ---- GMime ---------------------------------------------------------------------------- */

static pthread_once_t opts_once = PTHREAD_ONCE_INIT;
static GMimeParserOptions *opts;

static void opts_init(void)
{
	const char *fallback[] = { "utf-8", "windows-1252", NULL };
	arca_mime_init();
	opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_fallback_charsets(opts, fallback);
}

static GMimeParserOptions *gmime_opts(void)
{
	pthread_once(&opts_once, opts_init);
	return opts;
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* Windows-1252 0x80-0x9F; 0xA0-0xFF are the same code points (Latin-1). */
static const unsigned short cp1252_c1[32] = {
	0x20ac, 0xfffd, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0xfffd, 0x017d, 0xfffd,
	0xfffd, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0xfffd, 0x017e, 0x0178,
};

static arca_status put_cp(arca_buf *out, unsigned cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	}
	return arca_buf_append(out, u, n);
}

/* Appends p as UTF-8: valid UTF-8 is kept, other bytes are read as windows-1252, NUL becomes
 * a space. */
static arca_status repair_utf8(const uint8_t *p, size_t len, arca_buf *out)
{
	arca_status st = ARCA_OK;
	while (len > 0 && st == ARCA_OK) {
		const gchar *end;
		size_t ok;
		g_utf8_validate((const gchar *)p, (gssize)len, &end);
		ok = (size_t)((const uint8_t *)end - p);
		if (ok > 0)
			st = arca_buf_append(out, p, ok);
		p += ok;
		len -= ok;
		if (len == 0 || st != ARCA_OK)
			break;
		if (*p == 0)
			st = arca_buf_append(out, " ", 1);
		else if (*p >= 0x80 && *p < 0xa0)
			st = put_cp(out, cp1252_c1[*p - 0x80]);
		else
			st = put_cp(out, *p);
		p++;
		len--;
	}
	return st;
}

static bool is_utf8_name(const char *cs)
{
	return cs == NULL || strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

/* Appends p converted from charset to UTF-8 (invalid sequences become U+FFFD; an unknown
 * charset is read as UTF-8 with windows-1252 fallback). */
static arca_status to_utf8(const char *charset, const uint8_t *p, size_t len, arca_buf *out)
{
	iconv_t cd;
	arca_status st = ARCA_OK;
	char chunk[8192];
	if (is_utf8_name(charset))
		return repair_utf8(p, len, out);
	cd = g_mime_iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return repair_utf8(p, len, out);
	while (len > 0 && st == ARCA_OK) {
		char *in = (char *)(uintptr_t)p, *o = chunk;
		size_t inleft = len, oleft = sizeof(chunk);
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);
		int e = errno;
		st = arca_buf_append(out, chunk, sizeof(chunk) - oleft);
		p = (const uint8_t *)in;
		len = inleft;
		if (r != (size_t)-1 || st != ARCA_OK)
			break;
		if (e == E2BIG)
			continue;
		/* EILSEQ / EINVAL: one replacement character, skip a byte */
		st = arca_buf_append(out, "\xef\xbf\xbd", 3);
		p++;
		len--;
	}
	g_mime_iconv_close(cd);
	return st;
}

/* Appends s (UTF-8) to out while out->len < cap, cutting at a character boundary. False when
 * the cap is reached. */
static bool append_capped(arca_buf *out, size_t cap, const char *s, size_t n, arca_status *st)
{
	size_t room = out->len < cap ? cap - out->len : 0;
	bool whole = n <= room;
	if (!whole) {
		n = room;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	if (n > 0 && *st == ARCA_OK)
		*st = arca_buf_append(out, s, n);
	return whole && *st == ARCA_OK;
}

/* ---- header values -------------------------------------------------------------------- */

/* Decodes one raw header value (unfolded here) into UTF-8 and appends it. */
static arca_status decode_value(const arca_imap_msg *m, size_t off, size_t len, arca_buf *out)
{
	arca_buf raw;
	arca_msg_range r = { off, len };
	arca_status st;
	char *dec;
	arca_buf_init(&raw, ARCA_MIME_MAX_FIELD + 16);
	st = arca_msg_unfold(m, r, &raw);
	if (st != ARCA_OK || raw.len == 0) {
		arca_buf_free(&raw);
		return st;
	}
	bool plain = true;
	for (size_t i = 0; i < raw.len; i++) {
		if (raw.data[i] == 0)
			raw.data[i] = ' ';
		else if ((unsigned char)raw.data[i] >= 0x80 ||
		         (raw.data[i] == '=' && i + 1 < raw.len && raw.data[i + 1] == '?'))
			plain = false;
	}
	if (plain) {
		/* ASCII without encoded words: GMime would hand it back as it is */
		st = arca_buf_append(out, raw.data, raw.len);
		arca_buf_free(&raw);
		return st;
	}
	dec = g_mime_utils_header_decode_text(gmime_opts(), raw.data);
	if (dec != NULL) {
		st = repair_utf8((const uint8_t *)dec, strlen(dec), out);
		g_free(dec);
	} else {
		st = repair_utf8((const uint8_t *)raw.data, raw.len, out);
	}
	arca_buf_free(&raw);
	return st;
}

arca_status arca_imap_msg_header(const arca_imap_msg *msg, const char *field, arca_buf *out)
{
	const arca_msg_part *r = msg->root;
	size_t pos = r->hdr_off, end = r->hdr_off + r->hdr_len, nl, fo, fl, vo, flen = strlen(field);
	bool found = false;
	arca_status st = ARCA_OK;
	while (st == ARCA_OK && arca_msg_next_field(msg->data, end, &pos, &nl, &fo, &fl, &vo)) {
		if (nl != flen || strncasecmp((const char *)msg->data + fo, field, flen) != 0 || vo == ARCA_MSG_NONE)
			continue;
		if (found)
			st = arca_buf_append(out, "\n", 1);
		found = true;
		if (st == ARCA_OK)
			st = decode_value(msg, vo, fo + fl - vo, out);
	}
	if (st != ARCA_OK)
		return st;
	return found ? ARCA_OK : ARCA_ERR_NOTFOUND;
}

arca_status arca_imap_msg_date(const arca_imap_msg *msg, int64_t *unix_seconds,
                               int *tz_offset_minutes)
{
	const arca_msg_range *env = msg->root->env;
	arca_buf raw;
	GDateTime *dt;
	arca_status st;
	*unix_seconds = 0;
	*tz_offset_minutes = 0;
	if (env == NULL || !arca_msg_range_present(env[ARCA_MSG_ENV_DATE]))
		return ARCA_ERR_NOTFOUND;
	arca_buf_init(&raw, 1024);
	st = arca_msg_unfold(msg, env[ARCA_MSG_ENV_DATE], &raw);
	if (st == ARCA_ERR_LIMIT)
		st = ARCA_OK; /* a date longer than 1 KB is garbage at the end: parse the start */
	if (st != ARCA_OK || raw.data == NULL) {
		arca_buf_free(&raw);
		return st != ARCA_OK ? st : ARCA_ERR_NOTFOUND;
	}
	for (size_t i = 0; i < raw.len; i++)
		if (raw.data[i] == 0)
			raw.data[i] = ' ';
	gmime_opts();
	dt = g_mime_utils_header_decode_date(raw.data);
	arca_buf_free(&raw);
	if (dt == NULL)
		return ARCA_ERR_NOTFOUND;
	*unix_seconds = g_date_time_to_unix(dt);
	*tz_offset_minutes = (int)(g_date_time_get_utc_offset(dt) / G_TIME_SPAN_MINUTE);
	g_date_time_unref(dt);
	return ARCA_OK;
}

/* ---- text ----------------------------------------------------------------------------- */

typedef struct {
	const arca_imap_msg *m;
	arca_buf *out;
	size_t cap; /* out->len limit */
	size_t parts;
	arca_buf dec, utf;
	arca_status st;
	bool full;
} textctx;

static const char *param(const arca_msg_part *p, const char *name, arca_buf *tmp)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < p->nparams; i++)
		if (p->params[i].name.len == n && strncasecmp(p->params[i].name.s, name, n) == 0) {
			arca_buf_reset(tmp);
			if (arca_buf_append(tmp, p->params[i].value.s, p->params[i].value.len) != ARCA_OK)
				return NULL;
			return tmp->data;
		}
	return NULL;
}

static void text_part(textctx *t, const arca_msg_part *p)
{
	const arca_imap_msg *m = t->m;
	bool mime = (p->flags & ARCA_MSG_F_MIME) != 0 && (p->flags & ARCA_MSG_F_DEMOTED) == 0;
	int cte = (p->flags & ARCA_MSG_F_MIME) != 0 ? p->cte : ARCA_MSG_CTE_IDENTITY;
	size_t room = t->cap - t->out->len, limit;
	arca_buf csbuf;
	const char *charset = NULL;
	arca_buf_init(&csbuf, 256);
	bool html = mime && p->subtype.s != NULL && p->subtype.len == 4 && strncasecmp(p->subtype.s, "html", 4) == 0;
	if (cte == ARCA_MSG_CTE_UNKNOWN)
		cte = ARCA_MSG_CTE_IDENTITY;
	if (mime)
		charset = param(p, "charset", &csbuf);
	/* Decode no more than the text could still use: UTF-8 (or a charset read as it) never
	 * shrinks, other charsets shrink at most to a third (UTF-32), HTML loses its tags. */
	limit = is_utf8_name(charset) ? room : room > SIZE_MAX / 4 ? SIZE_MAX : room * 4;
	if (html)
		limit = limit > SIZE_MAX / 8 ? SIZE_MAX : limit * 8;
	limit = limit > SIZE_MAX - 64 ? SIZE_MAX : limit + 64;
	arca_buf_reset(&t->dec);
	arca_buf_reset(&t->utf);
	if (arca_msg_decode(cte, m->data + p->body_off, p->body_len, limit, &t->dec, &t->st) == SIZE_MAX) {
		arca_buf_free(&csbuf);
		return;
	}
	t->st = to_utf8(charset, (const uint8_t *)(t->dec.data != NULL ? t->dec.data : ""), t->dec.len, &t->utf);
	arca_buf_free(&csbuf);
	if (t->st != ARCA_OK)
		return;
	if (t->parts++ > 0 && !append_capped(t->out, t->cap, "\n", 1, &t->st)) {
		t->full = true;
		return;
	}
	if (html) {
		size_t n = 0;
		char *plain = arca_mime_html_to_text(t->utf.data != NULL ? t->utf.data : "", t->utf.len, &n);
		if (plain == NULL) {
			t->st = ARCA_ERR_NOMEM;
			return;
		}
		if (!append_capped(t->out, t->cap, plain, n, &t->st))
			t->full = true;
		free(plain);
		return;
	}
	if (t->utf.len > 0 && !append_capped(t->out, t->cap, t->utf.data, t->utf.len, &t->st))
		t->full = true;
}

static void text_walk(textctx *t, const arca_msg_part *p)
{
	for (; p != NULL && !t->full && t->st == ARCA_OK; p = p->next) {
		if ((p->flags & (ARCA_MSG_F_MULTIPART | ARCA_MSG_F_RFC822)) != 0)
			text_walk(t, p->children);
		else if ((p->flags & ARCA_MSG_F_TEXT) != 0)
			text_part(t, p);
	}
}

/* The top-level header fields as "Name: decoded value\n" lines, appended to t->out. */
static void header_lines(textctx *t)
{
	const arca_imap_msg *msg = t->m;
	const arca_msg_part *r = msg->root;
	size_t pos = r->hdr_off, end = r->hdr_off + r->hdr_len, nl, fo, fl, vo;
	arca_buf line;
	arca_buf_init(&line, ARCA_MIME_MAX_FIELD * 2);
	while (!t->full && t->st == ARCA_OK && arca_msg_next_field(msg->data, end, &pos, &nl, &fo, &fl, &vo)) {
		arca_buf_reset(&line);
		t->st = repair_utf8(msg->data + fo, nl, &line);
		if (t->st == ARCA_OK)
			t->st = arca_buf_append(&line, ": ", 2);
		if (t->st == ARCA_OK && vo != ARCA_MSG_NONE && vo < fo + fl)
			t->st = decode_value(msg, vo, fo + fl - vo, &line);
		if (t->st == ARCA_OK)
			t->st = arca_buf_append(&line, "\n", 1);
		if (t->st == ARCA_ERR_LIMIT)
			t->st = ARCA_OK; /* an overlong field: what fitted */
		if (t->st == ARCA_OK && line.len > 0 && !append_capped(t->out, t->cap, line.data, line.len, &t->st))
			t->full = true;
	}
	arca_buf_free(&line);
}

static arca_status msg_text(const arca_imap_msg *msg, bool headers, bool body, arca_buf *out, size_t max)
{
	textctx t;
	memset(&t, 0, sizeof(t));
	t.m = msg;
	t.out = out;
	if (max == 0)
		max = ARCA_MIME_MAX_TEXT;
	t.cap = out->len + (max < SIZE_MAX - out->len ? max : SIZE_MAX - out->len);
	arca_buf_init(&t.dec, ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&t.utf, ARCA_MAX_MESSAGE_SIZE);
	if (headers)
		header_lines(&t);
	if (body)
		text_walk(&t, msg->root);
	arca_buf_free(&t.dec);
	arca_buf_free(&t.utf);
	return t.st;
}

arca_status arca_imap_msg_text(const arca_imap_msg *msg, bool with_headers, arca_buf *out,
                               size_t max)
{
	return msg_text(msg, with_headers, true, out, max);
}

arca_status arca_imap_msg_header_text(const arca_imap_msg *msg, arca_buf *out, size_t max)
{
	return msg_text(msg, true, false, out, max);
}

static bool alternatives_in(const arca_msg_part *p)
{
	for (; p != NULL; p = p->next) {
		if ((p->flags & ARCA_MSG_F_MULTIPART) != 0 && p->subtype.s != NULL && p->subtype.len == 11 &&
		    strncasecmp(p->subtype.s, "alternative", 11) == 0) {
			size_t texts = 0;
			for (const arca_msg_part *c = p->children; c != NULL; c = c->next)
				if ((c->flags & (ARCA_MSG_F_MULTIPART | ARCA_MSG_F_RFC822)) != 0 ||
				    (c->flags & ARCA_MSG_F_TEXT) != 0)
					texts++;
			if (texts >= 2)
				return true;
		}
		if ((p->flags & (ARCA_MSG_F_MULTIPART | ARCA_MSG_F_RFC822)) != 0 && alternatives_in(p->children))
			return true;
	}
	return false;
}

bool arca_imap_msg_has_text_alternatives(const arca_imap_msg *msg)
{
	return alternatives_in(msg->root);
}

/* ---- matching ------------------------------------------------------------------------- */

static bool has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

static char *ascii_fold(const char *s, size_t n, char *stackbuf, size_t stacklen)
{
	char *o = n <= stacklen ? stackbuf : malloc(n ? n : 1);
	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		o[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	return o;
}

/* True when s holds a character whose Unicode case folding contains ASCII (CaseFolding.txt,
 * full foldings): U+00DF, U+0130, U+0149, U+017F, U+01F0, U+1E96..U+1E9A, U+1E9E, U+212A,
 * U+FB00..U+FB06. Every other non-ASCII character folds to non-ASCII only, so without these an
 * ASCII needle matches the folded text exactly where it matches the ASCII-lowercased text. */
static bool folds_into_ascii(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i + 1 < n; i++) {
		unsigned c = p[i], d = p[i + 1];
		if (c < 0xC3)
			continue;
		if ((c == 0xC3 && d == 0x9F) || (c == 0xC4 && d == 0xB0) || (c == 0xC5 && (d == 0x89 || d == 0xBF)) ||
		    (c == 0xC7 && d == 0xB0))
			return true;
		if (i + 2 < n) {
			unsigned e = p[i + 2];
			if ((c == 0xE1 && d == 0xBA && ((e >= 0x96 && e <= 0x9A) || e == 0x9E)) ||
			    (c == 0xE2 && d == 0x84 && e == 0xAA) || (c == 0xEF && d == 0xAC && e <= 0x86))
				return true;
		}
	}
	return false;
}

bool arca_imap_match_substring(const char *haystack, size_t hlen, const char *needle, size_t nlen)
{
	char hs[512], ns[256];
	char *h, *n;
	bool r;
	if (nlen == 0)
		return true;
	if (haystack == NULL)
		return false;
	/* Unicode folding (slow: it copies through glib) only when it can change the answer: an
	 * ASCII needle against text without characters that fold into ASCII needs ASCII folding
	 * only, which is most searches of most mail. */
	if ((has_8bit(needle, nlen) || (has_8bit(haystack, hlen) && folds_into_ascii(haystack, hlen))) &&
	    g_utf8_validate(haystack, (gssize)hlen, NULL) && g_utf8_validate(needle, (gssize)nlen, NULL)) {
		gchar *fh = g_utf8_casefold(haystack, (gssize)hlen);
		gchar *fn = g_utf8_casefold(needle, (gssize)nlen);
		r = memmem(fh, strlen(fh), fn, strlen(fn)) != NULL;
		g_free(fh);
		g_free(fn);
		return r;
	}
	if (nlen > hlen)
		return false;
	h = ascii_fold(haystack, hlen, hs, sizeof(hs));
	n = ascii_fold(needle, nlen, ns, sizeof(ns));
	r = h != NULL && n != NULL && memmem(h, hlen, n, nlen) != NULL;
	if (h != hs)
		free(h);
	if (n != ns)
		free(n);
	return r;
}

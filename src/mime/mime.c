/* GMime wrapper: header fields, text and attachment list of one message.
 *
 * GMime owns the MIME grammar; this file decides what to index. Part bodies are read in
 * place from the caller's buffer (the parser keeps substreams of our memory stream), and
 * transfer decoding and charset conversion go straight into bounded buffers. */
#include "mime/mime.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "lib/buf.h"
#include "lib/limits.h"

/* How much of one text part is transfer-decoded at most: HTML shrinks a lot when the tags
 * go, so it may use more input than the text budget. */
#define HTML_INPUT_MAX (2u * ARCA_MIME_MAX_TEXT)
/* GMime compares every line starting with "--" against every open boundary, so a deeply
 * nested message full of such lines costs lines x depth. Inputs whose estimate exceeds
 * this are parsed only up to that point. */
#define BOUNDARY_WORK_MAX (16u * 1024u * 1024u)
#define DECODE_CHUNK 65536u

typedef struct {
	arca_mime_info *info;
	arca_buf body;
	arca_buf attach;
	size_t text_left;   /* shared budget of body + attachment text */
	unsigned parts;
	bool stop;          /* part limit reached: walk no further */
	bool nomem;
	arca_buf dec;       /* transfer-decoded bytes of the current part */
	arca_buf conv;      /* charset-converted bytes (iconv) */
	arca_buf html;      /* UTF-8 HTML before tag removal */
	arca_buf raw;       /* part bodies GMime did not keep in our memory stream */
	bool sep_added;     /* text_begin added a separator line */
	size_t n_att, cap_att;
} ctx;

enum { CS_UTF8, CS_LATIN, CS_OTHER };
enum { WALK_INDEX, WALK_LIST_ONLY };

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static GMimeParserOptions *parser_opts;

/* Windows-1252 0x80-0x9F; 0xA0-0xFF map to the same code points (Latin-1). */
static const unsigned short cp1252_c1[32] = {
	0x20ac, 0xfffd, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0xfffd, 0x017d, 0xfffd,
	0xfffd, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0xfffd, 0x017e, 0x0178,
};

static void warn(ctx *c, unsigned flag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void warn(ctx *c, unsigned flag, const char *fmt, ...)
{
	va_list ap;
	char msg[160];
	c->info->warnings |= flag;
	if (c->info->warning != NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->info->warning = strdup(msg);
	if (c->info->warning == NULL)
		c->nomem = true;
}

static void init_once_fn(void)
{
	const char *fallback[] = { "utf-8", "windows-1252", NULL };
	g_mime_init();
	parser_opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(parser_opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_address_compliance_mode(parser_opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(parser_opts,
	    GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_fallback_charsets(parser_opts, fallback);
	/* No warning callback: with one set GMime checks every header for duplicates and
	 * decodes every value, which costs 40% more parse time. The walk detects what we
	 * report itself. */
}

void arca_mime_init(void)
{
	pthread_once(&init_once, init_once_fn);
}

/* ---- UTF-8 repair --------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0 if invalid. */
static size_t utf8_valid_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
			return 0; /* overlong or surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

static size_t cp1252_encode(unsigned char b, char *u)
{
	unsigned cp = b < 0xa0 ? cp1252_c1[b - 0x80] : b;
	if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	u[0] = (char)(0xe0 | (cp >> 12));
	u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
	u[2] = (char)(0x80 | (cp & 0x3f));
	return 3;
}

enum { FIX_TEXT = 0, FIX_LINE = 1 };

/* Appends s to dst as valid UTF-8, at most `limit` bytes (cut at a character boundary).
 * latin: decode every 8-bit byte as windows-1252; otherwise keep valid UTF-8 and decode only
 * the invalid bytes as windows-1252. NULs are dropped, CRLF and CR become LF (FIX_LINE: all
 * control characters become spaces). Returns true if the limit cut the text. `what` names
 * the charset for the warning. */
static bool append_fixed(ctx *c, arca_buf *dst, const unsigned char *s, size_t n, size_t limit,
    bool latin, int mode, const char *what)
{
	size_t room, i = 0;
	char *o;
	bool bad8 = false, badc = false, nul = false, cut = false;
	size_t want = n > limit / 3 ? limit : n * 3;
	if (arca_buf_reserve(dst, want) != ARCA_OK) {
		c->nomem = true;
		return true;
	}
	o = dst->data + dst->len;
	room = want;
	while (i < n) {
		unsigned char ch = s[i];
		if (ch >= 0x20 && ch < 0x80) {
			size_t j = i + 1, k;
			/* Eight bytes at a time while none is >= 0x80 or < 0x20. */
			while (j + 8 <= n) {
				uint64_t w;
				memcpy(&w, s + j, 8);
				uint64_t low = w - 0x2020202020202020ull;
				if (((w | low) & 0x8080808080808080ull) != 0)
					break;
				j += 8;
			}
			while (j < n && s[j] >= 0x20 && s[j] < 0x80)
				j++;
			k = j - i;
			if (k > room) {
				k = room;
				cut = true;
			}
			memcpy(o, s + i, k);
			o += k;
			room -= k;
			if (cut)
				break;
			i = j;
			continue;
		}
		if (ch < 0x80) {
			char r = (char)ch;
			if (ch == 0) {
				nul = true;
				i++;
				continue;
			}
			if (ch == '\r') {
				if (i + 1 < n && s[i + 1] == '\n') {
					i++;
					continue;
				}
				r = '\n';
			}
			/* Other control characters only disturb snippets: make them spaces. */
			if (mode == FIX_LINE || (r != '\n' && r != '\t'))
				r = ' ';
			if (room < 1) {
				cut = true;
				break;
			}
			*o++ = r;
			room--;
			i++;
			continue;
		}
		size_t k = latin ? 0 : utf8_valid_seq(s + i, n - i);
		if (k > 0) {
			if (k > room) {
				cut = true;
				break;
			}
			memcpy(o, s + i, k);
			i += k;
		} else {
			char u[3];
			k = cp1252_encode(ch, u);
			if (k > room) {
				cut = true;
				break;
			}
			if (ch == 0x81 || ch == 0x8d || ch == 0x8f || ch == 0x90 || ch == 0x9d)
				badc = true;
			else if (!latin)
				bad8 = true;
			memcpy(o, u, k);
			i++;
		}
		o += k;
		room -= k;
	}
	dst->len = (size_t)(o - dst->data);
	dst->data[dst->len] = '\0';
	if (nul)
		warn(c, ARCA_MIME_WARN_BINARY, "NUL bytes removed from text");
	if (bad8)
		warn(c, ARCA_MIME_WARN_BAD_CHARSET, "invalid bytes in charset %s decoded as "
		    "windows-1252", what);
	if (badc)
		warn(c, ARCA_MIME_WARN_BAD_CHARSET, "invalid bytes in charset %s replaced", what);
	return cut;
}

/* A header value as a new NUL-terminated UTF-8 string ("" for NULL), at most MAX_FIELD. */
static char *field_dup(ctx *c, const char *s)
{
	arca_buf b;
	size_t n = s != NULL ? strlen(s) : 0;
	arca_buf_init(&b, ARCA_MIME_MAX_FIELD);
	if (append_fixed(c, &b, (const unsigned char *)s, n, ARCA_MIME_MAX_FIELD, false, FIX_LINE,
	    "of a header") && !c->nomem)
		warn(c, ARCA_MIME_WARN_LIMIT, "header field too long");
	return arca_buf_steal(&b, NULL);
}

/* ---- charsets ------------------------------------------------------------------------- */

static int charset_kind(const char *cs)
{
	static const char *const utf8ish[] = {
		"utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968", "unknown-8bit", "x-unknown",
		"unknown", "default", "7bit", "8bit", "us",
	};
	static const char *const latin[] = {
		"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "windows-1252",
		"cp1252", "x-cp1252", "iso-8859-15"
	};
	size_t i;
	if (cs == NULL || *cs == '\0')
		return CS_UTF8;
	for (i = 0; i < sizeof(utf8ish) / sizeof(utf8ish[0]); i++)
		if (strcasecmp(cs, utf8ish[i]) == 0)
			return CS_UTF8;
	/* iso-8859-15 differs from windows-1252 in 8 rarely used characters (€ at 0xA4);
	 * iconv would be exact but slower, so only that one goes there. */
	for (i = 0; i < sizeof(latin) / sizeof(latin[0]) - 1; i++)
		if (strcasecmp(cs, latin[i]) == 0)
			return CS_LATIN;
	return CS_OTHER;
}

/* Converts s from charset cs to UTF-8 in c->conv with iconv. Returns false if iconv does not
 * know the charset. Invalid input bytes become U+FFFD. */
static bool iconv_convert(ctx *c, const char *cs, const char *s, size_t n, size_t max_out)
{
	iconv_t cd = g_mime_iconv_open("UTF-8", cs);
	bool bad = false;
	if (cd == (iconv_t)-1)
		return false;
	arca_buf_reset(&c->conv);
	while (n > 0 && c->conv.len < max_out) {
		size_t want = n * 2 + 16, left;
		char *in = (char *)s, *o;
		if (want > max_out - c->conv.len + 16)
			want = max_out - c->conv.len + 16;
		if (arca_buf_reserve(&c->conv, want) != ARCA_OK) {
			c->nomem = true;
			break;
		}
		o = c->conv.data + c->conv.len;
		left = want;
		size_t r = iconv(cd, &in, &n, &o, &left);
		int e = errno;
		c->conv.len = (size_t)(o - c->conv.data);
		s = in;
		if (r != (size_t)-1 || e == E2BIG)
			continue;
		/* EILSEQ or EINVAL (truncated sequence): replace one byte and resynchronise. */
		if (arca_buf_append(&c->conv, "\xef\xbf\xbd", 3) != ARCA_OK)
			break;
		bad = true;
		s++;
		n--;
	}
	/* Flush shift state (ISO-2022-JP etc.). */
	if (arca_buf_reserve(&c->conv, 16) == ARCA_OK) {
		char *o = c->conv.data + c->conv.len;
		size_t left = 16;
		iconv(cd, NULL, NULL, &o, &left);
		c->conv.len = (size_t)(o - c->conv.data);
		c->conv.data[c->conv.len] = '\0';
	}
	g_mime_iconv_close(cd);
	if (bad)
		warn(c, ARCA_MIME_WARN_BAD_CHARSET, "invalid bytes in charset %s replaced", cs);
	return true;
}

/* Appends decoded text in charset cs to dst as UTF-8, at most limit bytes. */
static bool append_charset(ctx *c, arca_buf *dst, const char *cs, const char *s, size_t n,
    size_t limit)
{
	int kind = charset_kind(cs);
	if (kind == CS_OTHER) {
		/* UTF-16/32 need up to 4 input bytes per output byte. */
		size_t max_out = limit > SIZE_MAX / 4 ? SIZE_MAX : limit * 4 + 64;
		if (iconv_convert(c, cs, s, n, max_out))
			return append_fixed(c, dst, (const unsigned char *)c->conv.data,
			    c->conv.len, limit, false, FIX_TEXT, cs);
		warn(c, ARCA_MIME_WARN_BAD_CHARSET, "unknown charset %.40s", cs);
		kind = CS_UTF8;
	}
	return append_fixed(c, dst, (const unsigned char *)s, n, limit, kind == CS_LATIN, FIX_TEXT,
	    cs != NULL && *cs != '\0' ? cs : "(undeclared)");
}

/* ---- transfer decoding ---------------------------------------------------------------- */

/* Raw (still transfer-encoded) bytes of a part. They point into the parser's memory stream,
 * which shares the caller's buffer; other stream types are copied into c->conv. */
static bool part_raw(ctx *c, GMimeDataWrapper *w, const char **p, size_t *n)
{
	GMimeStream *s = g_mime_data_wrapper_get_stream(w);
	if (s == NULL)
		return false;
	if (GMIME_IS_STREAM_MEM(s)) {
		GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
		gint64 start = s->bound_start, end = s->bound_end;
		if (a == NULL)
			return false;
		if (end < 0 || end > (gint64)a->len)
			end = a->len;
		if (start < 0 || start > end)
			return false;
		*p = (const char *)a->data + start;
		*n = (size_t)(end - start);
		return true;
	}
	GMimeStream *m = g_mime_stream_mem_new();
	g_mime_stream_reset(s);
	g_mime_stream_write_to_stream(s, m);
	GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(m));
	arca_buf_reset(&c->raw);
	if (arca_buf_append(&c->raw, a->data, a->len) != ARCA_OK)
		c->nomem = true;
	g_object_unref(m);
	*p = c->raw.data;
	*n = c->raw.len;
	return *p != NULL;
}

static bool base64_suspicious(const char *s, size_t n)
{
	size_t i, chars = 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' || ch == '=')
			chars++;
		else if (ch != '\r' && ch != '\n' && ch != ' ' && ch != '\t')
			return true;
	}
	return chars % 4 != 0;
}

/* Transfer-decodes a part. The first `keep` decoded bytes are returned in out/out_len
 * (pointing into the raw input or c->dec); *size gets the full decoded size. */
static void part_decode(ctx *c, GMimeObject *obj, size_t keep, const char **out, size_t *out_len,
    uint64_t *size)
{
	GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
	GMimeContentEncoding enc;
	GMimeEncoding st;
	const char *raw;
	size_t n, off;
	*out = "";
	*out_len = 0;
	*size = 0;
	if (w == NULL || !part_raw(c, w, &raw, &n))
		return;
	enc = g_mime_data_wrapper_get_encoding(w);
	if (enc != GMIME_CONTENT_ENCODING_BASE64 && enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
	    enc != GMIME_CONTENT_ENCODING_UUENCODE) {
		if (enc == GMIME_CONTENT_ENCODING_DEFAULT) {
			const char *h = g_mime_object_get_header(obj, "Content-Transfer-Encoding");
			if (h != NULL && g_mime_content_encoding_from_string(h) ==
			    GMIME_CONTENT_ENCODING_DEFAULT)
				warn(c, ARCA_MIME_WARN_BAD_ENCODING, "unknown transfer encoding");
		}
		*out = raw;
		*out_len = n < keep ? n : keep;
		*size = n;
		return;
	}
	if (enc == GMIME_CONTENT_ENCODING_BASE64 && base64_suspicious(raw, n))
		warn(c, ARCA_MIME_WARN_BAD_ENCODING, "invalid base64 data");
	g_mime_encoding_init_decode(&st, enc);
	arca_buf_reset(&c->dec);
	for (off = 0;; off += DECODE_CHUNK) {
		size_t in = n - off < DECODE_CHUNK ? n - off : DECODE_CHUNK;
		bool last = off + in >= n;
		size_t kept = c->dec.len, got;
		/* Past `keep`, output lands after the kept bytes and is dropped: it is decoded
		 * only to count the size. */
		if (arca_buf_reserve(&c->dec, g_mime_encoding_outlen(&st, in) + 16) != ARCA_OK) {
			c->nomem = true;
			return;
		}
		got = last ? g_mime_encoding_flush(&st, raw + off, in, c->dec.data + kept) :
		    g_mime_encoding_step(&st, raw + off, in, c->dec.data + kept);
		*size += got;
		c->dec.len = got > keep - kept ? keep : kept + got;
		if (last)
			break;
	}
	*out = c->dec.data != NULL ? c->dec.data : "";
	*out_len = c->dec.len;
}

/* ---- collecting ----------------------------------------------------------------------- */

static void lower_ascii(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void add_attachment(ctx *c, const char *filename, const char *type, const char *subtype,
    uint64_t size)
{
	arca_mime_attachment *a;
	c->info->has_attachment = true;
	if (c->n_att >= ARCA_MIME_MAX_ATTACHMENTS) {
		warn(c, ARCA_MIME_WARN_LIMIT, "too many attachments");
		return;
	}
	if (c->n_att == c->cap_att) {
		size_t ncap = c->cap_att ? c->cap_att * 2 : 4;
		a = realloc(c->info->attachments, ncap * sizeof(*a));
		if (a == NULL) {
			c->nomem = true;
			return;
		}
		c->info->attachments = a;
		c->cap_att = ncap;
	}
	a = &c->info->attachments[c->n_att];
	a->filename = field_dup(c, filename);
	size_t tl = strlen(type), sl = strlen(subtype);
	a->content_type = malloc(tl + sl + 2);
	if (a->filename == NULL || a->content_type == NULL) {
		free(a->filename);
		free(a->content_type);
		c->nomem = true;
		return;
	}
	memcpy(a->content_type, type, tl);
	a->content_type[tl] = '/';
	memcpy(a->content_type + tl + 1, subtype, sl + 1);
	lower_ascii(a->content_type);
	a->size = size;
	c->n_att++;
	c->info->n_attachments = c->n_att;
}

/* Starts a new part's text in dst: returns the byte budget for it (0 = full). */
static size_t text_begin(ctx *c, arca_buf *dst)
{
	c->sep_added = false;
	if (c->text_left == 0)
		return 0;
	if (dst->len > 0 && dst->data[dst->len - 1] != '\n') {
		if (arca_buf_append(dst, "\n", 1) != ARCA_OK) {
			c->nomem = true;
			return 0;
		}
		c->text_left--;
		c->sep_added = true;
	}
	return c->text_left;
}

static void text_end(ctx *c, arca_buf *dst, size_t before, bool cut)
{
	c->text_left -= dst->len - before;
	if (dst->len == before && c->sep_added) {
		/* the part had no text: take the separator back */
		dst->data[--dst->len] = '\0';
		c->text_left++;
	}
	c->sep_added = false;
	if (cut && !c->nomem) {
		warn(c, ARCA_MIME_WARN_LIMIT, "text limit reached");
		c->text_left = 0;
	}
}

/* Appends UTF-8 text that is already clean (from the HTML converter). */
static bool append_clean(ctx *c, arca_buf *dst, const char *s, size_t n, size_t limit)
{
	bool cut = false;
	if (n > limit) {
		n = limit;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		cut = true;
	}
	if (arca_buf_append(dst, s, n) != ARCA_OK)
		c->nomem = true;
	return cut;
}

/* Indexes the text of one text leaf part into dst. */
static void part_text(ctx *c, GMimeObject *obj, arca_buf *dst, bool html, uint64_t *size)
{
	const char *dec, *cs;
	size_t dec_len, limit, before;
	bool cut;
	limit = text_begin(c, dst);
	if (limit == 0) {
		const char *d;
		size_t dl;
		part_decode(c, obj, 0, &d, &dl, size);
		return;
	}
	before = dst->len;
	/* Enough input for `limit` bytes of output even from UTF-32. */
	size_t keep = html ? HTML_INPUT_MAX :
	    (limit > SIZE_MAX / 4 - 16 ? SIZE_MAX : limit * 4 + 16);
	part_decode(c, obj, keep, &dec, &dec_len, size);
	if (dec_len < *size && !html && dec_len == keep)
		warn(c, ARCA_MIME_WARN_LIMIT, "text limit reached");
	cs = g_mime_object_get_content_type_parameter(obj, "charset");
	if (!html) {
		cut = append_charset(c, dst, cs, dec, dec_len, limit);
	} else {
		char *t;
		size_t tl;
		if (dec_len < *size)
			warn(c, ARCA_MIME_WARN_LIMIT, "HTML part too large, truncated");
		arca_buf_reset(&c->html);
		append_charset(c, &c->html, cs, dec, dec_len, HTML_INPUT_MAX * 3);
		t = arca_mime_html_to_text(c->html.data != NULL ? c->html.data : "", c->html.len,
		    &tl);
		if (t == NULL) {
			c->nomem = true;
			return;
		}
		cut = append_clean(c, dst, t, tl, limit);
		free(t);
	}
	text_end(c, dst, before, cut);
}

/* Appends "label value\n" lines of an embedded message's headers to the attachment text. */
static void embedded_header(ctx *c, const char *value)
{
	size_t limit, before;
	bool cut;
	if (value == NULL || *value == '\0')
		return;
	limit = text_begin(c, &c->attach);
	if (limit == 0)
		return;
	before = c->attach.len;
	cut = append_fixed(c, &c->attach, (const unsigned char *)value, strlen(value), limit, false,
	    FIX_LINE, "of a header");
	text_end(c, &c->attach, before, cut);
}

static void format_addresses(ctx *c, arca_buf *b, InternetAddressList *l, unsigned *count,
    int depth);

static char *addresses(ctx *c, InternetAddressList *l)
{
	arca_buf b;
	unsigned count = 0;
	char *r;
	arca_buf_init(&b, ARCA_MIME_MAX_FIELD);
	if (l != NULL)
		format_addresses(c, &b, l, &count, 0);
	r = field_dup(c, b.data);
	arca_buf_free(&b);
	return r;
}

static void format_addresses(ctx *c, arca_buf *b, InternetAddressList *l, unsigned *count,
    int depth)
{
	int i, n = internet_address_list_length(l);
	for (i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(l, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			InternetAddressList *m = internet_address_group_get_members(
			    INTERNET_ADDRESS_GROUP(ia));
			if (m != NULL && depth < 4)
				format_addresses(c, b, m, count, depth + 1);
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		if (*count >= ARCA_MIME_MAX_ADDRESSES) {
			warn(c, ARCA_MIME_WARN_LIMIT, "too many addresses");
			return;
		}
		const char *name = internet_address_get_name(ia);
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		size_t nl = name != NULL ? strlen(name) : 0, al = addr != NULL ? strlen(addr) : 0;
		if (nl == 0 && al == 0)
			continue;
		arca_status st = arca_buf_reserve(b, nl + al + 5);
		if (st != ARCA_OK) {
			if (st == ARCA_ERR_NOMEM)
				c->nomem = true;
			else
				warn(c, ARCA_MIME_WARN_LIMIT, "header field too long");
			return;
		}
		if (b->len > 0)
			arca_buf_append(b, ", ", 2);
		if (nl > 0) {
			arca_buf_append(b, name, nl);
			if (al > 0)
				arca_buf_append(b, " <", 2);
		}
		if (al > 0) {
			size_t a0 = b->len;
			arca_buf_append(b, addr, al);
			lower_ascii(b->data + a0);
			if (nl > 0)
				arca_buf_append(b, ">", 1);
		}
		(*count)++;
	}
}

/* Message-ids of a References/In-Reply-To header, space separated, without brackets. */
static char *msgid_list(ctx *c, GMimeObject *msg, const char *header)
{
	const char *v = g_mime_object_get_header(msg, header);
	GMimeReferences *refs;
	arca_buf b;
	char *r;
	int i, n;
	if (v == NULL)
		return field_dup(c, NULL);
	refs = g_mime_references_parse(parser_opts, v);
	arca_buf_init(&b, ARCA_MIME_MAX_FIELD);
	n = refs != NULL ? g_mime_references_length(refs) : 0;
	for (i = 0; i < n; i++) {
		const char *id = g_mime_references_get_message_id(refs, i);
		size_t l = id != NULL ? strlen(id) : 0;
		if (l == 0)
			continue;
		if (arca_buf_reserve(&b, l + 1) != ARCA_OK) {
			warn(c, ARCA_MIME_WARN_LIMIT, "header field too long");
			break;
		}
		if (b.len > 0)
			arca_buf_append(&b, " ", 1);
		arca_buf_append(&b, id, l);
	}
	if (refs != NULL)
		g_mime_references_free(refs);
	r = field_dup(c, b.data);
	arca_buf_free(&b);
	return r;
}

static void walk(ctx *c, GMimeObject *obj, unsigned depth, bool in_attach, int mode);

/* The child of a multipart/alternative to index: the first text/plain, else the first
 * text/html, else the last (richest) one. */
static int alternative_choice(GMimeMultipart *mp)
{
	int i, n = g_mime_multipart_get_count(mp), html = -1;
	if (n > (int)ARCA_MIME_MAX_PARTS)
		n = (int)ARCA_MIME_MAX_PARTS;
	for (i = 0; i < n; i++) {
		GMimeObject *child = g_mime_multipart_get_part(mp, i);
		GMimeContentType *ct = g_mime_object_get_content_type(child);
		if (ct == NULL || !g_mime_content_type_is_type(ct, "text", "*"))
			continue;
		if (g_mime_content_type_is_type(ct, "text", "plain"))
			return i;
		if (html < 0 && g_mime_content_type_is_type(ct, "text", "html"))
			html = i;
	}
	return html >= 0 ? html : n - 1;
}

static void walk_message(ctx *c, GMimeObject *obj, unsigned depth, int mode)
{
	GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
	GMimeContentDisposition *d = g_mime_object_get_content_disposition(obj);
	const char *fn = d != NULL ? g_mime_content_disposition_get_parameter(d, "filename") : NULL;
	GMimeStream *null;
	char *s;
	/* The raw size of an embedded message is not kept by GMime; writing it to a null stream
	 * re-serialises the headers as parsed and copies the bodies, so it is close. */
	null = g_mime_stream_null_new();
	if (m != NULL)
		g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, null);
	add_attachment(c, fn, "message", "rfc822", GMIME_STREAM_NULL(null)->written);
	g_object_unref(null);
	if (m == NULL)
		return;
	if (mode == WALK_INDEX) {
		embedded_header(c, g_mime_message_get_subject(m));
		s = addresses(c, g_mime_message_get_from(m));
		embedded_header(c, s);
		free(s);
		s = addresses(c, g_mime_message_get_to(m));
		embedded_header(c, s);
		free(s);
	}
	if (g_mime_message_get_mime_part(m) != NULL)
		walk(c, g_mime_message_get_mime_part(m), depth + 1, true, mode);
}

static void walk_leaf(ctx *c, GMimeObject *obj, bool in_attach, int mode)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	const char *type = ct != NULL ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *sub = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : NULL;
	const char *disp = g_mime_object_get_disposition(obj);
	const char *fn = g_mime_part_get_filename(GMIME_PART(obj));
	bool is_att_disp = disp != NULL && g_ascii_strcasecmp(disp, "attachment") == 0;
	bool has_fn = fn != NULL && *fn != '\0';
	bool text, plain = false, html = false, attach;
	uint64_t size = 0;
	if (type == NULL || *type == '\0')
		type = "application";
	if (sub == NULL || *sub == '\0')
		sub = "octet-stream";
	text = g_ascii_strcasecmp(type, "text") == 0;
	if (text) {
		plain = g_ascii_strcasecmp(sub, "plain") == 0 ||
		    g_ascii_strcasecmp(sub, "enriched") == 0;
		html = g_ascii_strcasecmp(sub, "html") == 0;
	} else if (g_ascii_strcasecmp(type, "message") == 0) {
		/* delivery-status, disposition-notification, ...: plain text reports */
		text = true;
	}
	attach = !text || is_att_disp || has_fn;
	if (text && mode == WALK_INDEX) {
		arca_buf *dst = attach || in_attach || !(plain || html) ? &c->attach : &c->body;
		part_text(c, obj, dst, html, &size);
	} else if (attach) {
		const char *d;
		size_t dl;
		part_decode(c, obj, 0, &d, &dl, &size);
	}
	if (attach)
		add_attachment(c, fn, type, sub, size);
}

static void walk(ctx *c, GMimeObject *obj, unsigned depth, bool in_attach, int mode)
{
	if (c->stop || c->nomem || obj == NULL)
		return;
	if (++c->parts > ARCA_MIME_MAX_PARTS) {
		warn(c, ARCA_MIME_WARN_LIMIT, "too many MIME parts");
		c->stop = true;
		return;
	}
	if (depth > ARCA_MIME_MAX_DEPTH) {
		warn(c, ARCA_MIME_WARN_LIMIT, "MIME nesting too deep");
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		GMimeContentType *ct = g_mime_object_get_content_type(obj);
		int i, n = g_mime_multipart_get_count(mp), choice = -1;
		bool signed_ = ct != NULL && g_mime_content_type_is_type(ct, "multipart", "signed");
		/* GMime clears write_end_boundary when the closing boundary is missing. */
		if (!mp->write_end_boundary || n == 0 ||
		    g_mime_object_get_content_type_parameter(obj, "boundary") == NULL)
			warn(c, ARCA_MIME_WARN_BAD_BOUNDARY, "multipart boundary missing");
		if (n == 0 && mode == WALK_INDEX) {
			/* boundary never found: GMime left everything in the prologue; index it as
			 * text so that the message stays findable */
			const char *pro = g_mime_multipart_get_prologue(mp);
			if (pro != NULL && pro[0] != '\0') {
				arca_buf *dst = in_attach ? &c->attach : &c->body;
				size_t limit = text_begin(c, dst), before = dst->len;
				const unsigned char *u = (const unsigned char *)pro;
				bool cut = append_fixed(c, dst, u, strlen(pro), limit, false, FIX_TEXT,
				                        "(undeclared)");
				text_end(c, dst, before, cut);
			}
		}
		if (ct != NULL && g_mime_content_type_is_type(ct, "multipart", "alternative"))
			choice = alternative_choice(mp);
		for (i = 0; i < n && !c->stop; i++) {
			/* The detached signature of multipart/signed is not an attachment. */
			if (signed_ && i == 1)
				continue;
			walk(c, g_mime_multipart_get_part(mp, i), depth + 1, in_attach,
			    choice < 0 || i == choice ? mode : WALK_LIST_ONLY);
		}
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		walk_message(c, obj, depth, mode);
	} else if (GMIME_IS_PART(obj)) {
		walk_leaf(c, obj, in_attach, mode);
	}
}

/* ---- input checks --------------------------------------------------------------------- */

/* Whether data starts with a header field (or an mbox "From " line). */
static bool starts_with_header(const char *d, size_t n)
{
	size_t i;
	if (n >= 5 && memcmp(d, "From ", 5) == 0)
		return true;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)d[i];
		if (ch == ':')
			break;
		if (ch == ' ' || ch == '\t') {
			/* "Name :" is obsolete syntax but still a header */
			size_t j = i;
			while (j < n && (d[j] == ' ' || d[j] == '\t'))
				j++;
			if (j < n && d[j] == ':' && i > 0)
				return true;
			return false;
		}
		if (ch < 33 || ch > 126)
			return false;
	}
	return i > 0 && i < n;
}

/* ---- reduced view ---------------------------------------------------------------------
 *
 * GMime builds every header, address and part before the walk can apply the limits, and its
 * memory is a large multiple of the input (a 10 MB Subject costs ~250 MB, 200,000 parts
 * ~400 MB). So one pass over the lines decides what GMime gets to see: header fields are cut
 * to ARCA_MIME_MAX_FIELD (at a line, UTF-8 and preferably list-item boundary, keeping the
 * folding valid), fields beyond the count and byte budgets of their block or of the message
 * are dropped, and the input ends after PART_LINES_MAX boundary lines or ARCA_MIME_MAX_PARSE
 * bytes. The raw message is archived elsewhere; this view is only for indexing. A copy is
 * made only when a field has to be cut or dropped; otherwise GMime reads the caller's bytes
 * (possibly a prefix of them) in place. */

/* Boundary lines (and embedded message header blocks) handed to GMime: the walk looks at
 * ARCA_MIME_MAX_PARTS parts, the slack covers closing boundaries and containers. */
#define PART_LINES_MAX (ARCA_MIME_MAX_PARTS + 100u)
/* Content-* fields kept (cut to STRUCT_FIELD_MAX) in a block whose budget is spent, so that
 * its structure (type, boundary, encoding) survives. */
#define STRUCT_FIELDS_MAX 8u
#define STRUCT_FIELD_MAX 1024u
/* Distinct boundaries remembered; a message declaring more (or one the scan cannot read)
 * makes every line starting with "--" count as a boundary line. */
#define BOUNDARIES_MAX 64u
#define BOUNDARY_LEN_MAX 200u

enum { F_KEEP, F_CUT, F_DROP }; /* current header field: kept so far, truncated, dropped */

typedef struct {
	ctx *c;
	const char *d;
	size_t n;
	arca_buf red;        /* the reduced copy, once an edit was needed */
	bool copying;
	size_t copied;       /* source bytes up to here are in red (or skipped) */
	size_t removed;      /* source bytes dropped so far, less those inserted */
	/* header block */
	bool in_headers;
	unsigned block_fields, block_extra;
	size_t block_bytes;
	bool block_message;  /* Content-Type: message/rfc822 etc.: the body is a header block */
	bool block_has_ct, block_from_boundary;
	unsigned total_fields;
	size_t total_bytes;
	/* current field */
	int fmode;
	size_t field_used, field_max;
	bool field_budget_cut; /* field_max is what is left of the block/message budget */
	bool in_ct, ct_multipart, ct_boundary;
	/* structure */
	bool digest;
	bool any_dash;       /* boundaries unknown: every "--" line counts */
	unsigned n_bounds;
	unsigned objects;
	unsigned multiparts; /* multipart Content-Type fields, at most 1024 */
	const char *bounds[BOUNDARIES_MAX];
	size_t bound_len[BOUNDARIES_MAX];
} scan;

/* Replaces source bytes [from, to) by ins in the reduced copy, starting it if needed. */
static void scan_edit(scan *s, size_t from, size_t to, const char *ins, size_t ins_len)
{
	if (s->c->nomem)
		return;
	if (!s->copying) {
		size_t cap = s->n < ARCA_MIME_MAX_PARSE ? s->n : ARCA_MIME_MAX_PARSE;
		arca_buf_init(&s->red, SIZE_MAX);
		/* The copy is never longer than the source prefix it reduces. */
		if (arca_buf_reserve(&s->red, cap + 16) != ARCA_OK) {
			s->c->nomem = true;
			return;
		}
		s->copying = true;
	}
	if (arca_buf_append(&s->red, s->d + s->copied, from - s->copied) != ARCA_OK ||
	    arca_buf_append(&s->red, ins, ins_len) != ARCA_OK)
		s->c->nomem = true;
	s->removed += to - from - ins_len;
	s->copied = to;
}

static bool has_ci(const char *l, size_t ll, const char *what)
{
	size_t i, wl = strlen(what);
	for (i = 0; i + wl <= ll; i++)
		if (strncasecmp(l + i, what, wl) == 0)
			return true;
	return false;
}

/* Looks at a kept line of a Content-Type field: multipart, digest, message, boundary. */
static void scan_ct_line(scan *s, const char *l, size_t ll)
{
	size_t i;
	if (has_ci(l, ll, "multipart")) {
		if (!s->ct_multipart && s->multiparts < 1024)
			s->multiparts++;
		s->ct_multipart = true;
		if (has_ci(l, ll, "multipart/digest"))
			s->digest = true;
	}
	if (has_ci(l, ll, "message/rfc822") || has_ci(l, ll, "message/news") ||
	    has_ci(l, ll, "message/global"))
		s->block_message = true;
	for (i = 0; i + 8 <= ll; i++) {
		size_t j, k;
		if (strncasecmp(l + i, "boundary", 8) != 0)
			continue;
		j = i + 8;
		while (j < ll && (l[j] == ' ' || l[j] == '\t'))
			j++;
		if (j >= ll || l[j] != '=')
			continue;
		j++;
		while (j < ll && (l[j] == ' ' || l[j] == '\t'))
			j++;
		if (j < ll && l[j] == '"') {
			for (k = ++j; k < ll && l[k] != '"'; k++)
				;
		} else {
			for (k = j; k < ll && l[k] != ';' && l[k] != ' ' && l[k] != '\t' &&
			    l[k] != '\r'; k++)
				;
		}
		if (k == j || k - j > BOUNDARY_LEN_MAX)
			continue;
		s->ct_boundary = true;
		unsigned b;
		for (b = 0; b < s->n_bounds; b++)
			if (s->bound_len[b] == k - j && memcmp(s->bounds[b], l + j, k - j) == 0)
				break;
		if (b < s->n_bounds)
			continue;
		if (s->n_bounds == BOUNDARIES_MAX) {
			s->any_dash = true;
			continue;
		}
		s->bounds[s->n_bounds] = l + j;
		s->bound_len[s->n_bounds++] = k - j;
	}
}

/* The current header field is over: a multipart type whose boundary the scan could not read
 * (folded, RFC 2231 continuations) leaves only the crude count. */
static void scan_field_end(scan *s)
{
	if (s->in_ct && s->ct_multipart && !s->ct_boundary)
		s->any_dash = true;
	s->in_ct = s->ct_multipart = s->ct_boundary = false;
}

static void scan_block_start(scan *s, bool from_boundary)
{
	s->in_headers = true;
	s->block_fields = s->block_extra = 0;
	s->block_bytes = 0;
	s->block_message = s->block_has_ct = false;
	s->block_from_boundary = from_boundary;
	s->fmode = F_DROP; /* continuation lines before any field */
	s->field_used = 0;
	s->field_max = 0;
}

/* Where to cut a header line so that at most `room` bytes stay: after a ',' or white space
 * near the end if there is one (whole addresses and words), never inside a UTF-8 sequence. */
static size_t cut_point(const char *l, size_t room)
{
	size_t k = room, i;
	for (i = k; i > 0 && k - i < 512; i--)
		if (l[i - 1] == ',' || l[i - 1] == ' ' || l[i - 1] == '\t')
			return i;
	while (k > 0 && ((unsigned char)l[k] & 0xc0) == 0x80)
		k--;
	return k;
}

/* One line of a header block (not the empty line that ends it). */
static void scan_header_line(scan *s, size_t pos, size_t ll, size_t next)
{
	const char *l = s->d + pos;
	bool cont = l[0] == ' ' || l[0] == '\t';
	size_t len = next - pos; /* with the line end */
	if (!cont) {
		scan_field_end(s);
		s->block_fields++;
		s->total_fields++;
		bool structural = ll >= 8 && strncasecmp(l, "content-", 8) == 0;
		bool over_count = s->block_fields > ARCA_MIME_MAX_HEADERS ||
		    s->total_fields > ARCA_MIME_MAX_HEADERS_TOTAL;
		bool over_bytes = s->block_bytes >= ARCA_MIME_MAX_HEADER_BYTES ||
		    s->total_bytes >= ARCA_MIME_MAX_HEADER_TOTAL;
		s->field_used = 0;
		s->field_budget_cut = false;
		s->fmode = F_KEEP;
		s->field_max = ARCA_MIME_MAX_FIELD;
		if (over_count || over_bytes) {
			if (structural && s->block_extra < STRUCT_FIELDS_MAX) {
				s->block_extra++;
				s->field_max = STRUCT_FIELD_MAX;
			} else {
				s->fmode = F_DROP;
			}
			warn(s->c, ARCA_MIME_WARN_LIMIT, over_count ?
			    "too many header fields, rest not indexed" :
			    "header block too large, rest not indexed");
		} else {
			size_t r = ARCA_MIME_MAX_HEADER_BYTES - s->block_bytes;
			if (r < s->field_max) {
				s->field_max = r;
				s->field_budget_cut = true;
			}
			r = ARCA_MIME_MAX_HEADER_TOTAL - s->total_bytes;
			if (r < s->field_max) {
				s->field_max = r;
				s->field_budget_cut = true;
			}
		}
		if (s->fmode == F_KEEP && ll >= 13 && strncasecmp(l, "content-type:", 13) == 0) {
			s->in_ct = true;
			s->block_has_ct = true;
		}
	}
	if (s->fmode != F_KEEP) {
		scan_edit(s, pos, next, "", 0);
		return;
	}
	size_t keep = ll;
	if (s->field_used + len > s->field_max) {
		size_t room = s->field_max - s->field_used;
		const char *term = ll > 0 && l[ll - 1] == '\r' ? "\r\n" : "\n";
		size_t tl = strlen(term);
		keep = room > tl + 1 ? cut_point(l, room - tl) : 0;
		if (keep == 0 && !cont)
			keep = 1; /* a field line keeps its first byte: GMime sees a field */
		s->fmode = F_CUT;
		warn(s->c, ARCA_MIME_WARN_LIMIT, s->field_budget_cut ?
		    "header block too large, rest not indexed" :
		    "header field too long, truncated for indexing");
		if (keep == 0 || (cont && keep < 2)) {
			scan_edit(s, pos, next, "", 0);
			return;
		}
		scan_edit(s, pos + keep, next, term, tl);
		len = keep + tl;
	}
	s->field_used += len;
	s->block_bytes += len;
	s->total_bytes += len;
	if (s->in_ct)
		scan_ct_line(s, l, keep);
}

/* Whether the line is a boundary line of the message (or could be one). */
static bool scan_is_boundary(scan *s, const char *l, size_t ll)
{
	unsigned b;
	if (ll < 2 || l[0] != '-' || l[1] != '-')
		return false;
	if (s->any_dash)
		return true;
	for (b = 0; b < s->n_bounds; b++)
		if (ll >= 2 + s->bound_len[b] && memcmp(l + 2, s->bounds[b], s->bound_len[b]) == 0)
			return true;
	return false;
}

/* One pass over the lines: NULs in the header block, the reduced view described above, and
 * an estimate of GMime's boundary matching work (lines starting with "--" times the open
 * multiparts, bounded by the number of multipart Content-Type headers seen). Sets *out and
 * returns its length: the bytes GMime should parse; *copy is the reduced copy to free (or
 * NULL when GMime reads the caller's bytes). */
static size_t prescan(ctx *c, const char *d, size_t n, const char **out, char **copy)
{
	size_t pos = 0, work = 0, cut = n;
	bool first_block = true;
	scan s;
	memset(&s, 0, sizeof(s));
	s.c = c;
	s.d = d;
	s.n = n;
	scan_block_start(&s, false);
	s.objects = 1;
	while (pos < n) {
		const char *nl = memchr(d + pos, '\n', n - pos);
		size_t end = nl != NULL ? (size_t)(nl - d) : n, ll = end - pos;
		size_t next = nl != NULL ? end + 1 : n;
		const char *l = d + pos;
		/* What GMime gets is capped, not the source: header lines shrink to at most
		 * ARCA_MIME_MAX_FIELD; a body line straddling the cap is cut, a header line
		 * dropped. */
		size_t out_pos = pos - s.removed, grow = next - pos;
		if (s.in_headers && grow > ARCA_MIME_MAX_FIELD)
			grow = ARCA_MIME_MAX_FIELD;
		if (out_pos + grow > ARCA_MIME_MAX_PARSE) {
			cut = s.in_headers ? pos : pos + (ARCA_MIME_MAX_PARSE - out_pos);
			warn(c, ARCA_MIME_WARN_LIMIT, "message too large, only the first %u MiB indexed",
			    (unsigned)(ARCA_MIME_MAX_PARSE >> 20));
			break;
		}
		if (ll >= 2 && l[0] == '-' && l[1] == '-') {
			work += s.multiparts;
			if (work > BOUNDARY_WORK_MAX) {
				warn(c, ARCA_MIME_WARN_LIMIT,
				    "MIME structure too complex, rest not parsed");
				cut = pos;
				break;
			}
			if (scan_is_boundary(&s, l, ll)) {
				if (++s.objects > PART_LINES_MAX) {
					warn(c, ARCA_MIME_WARN_LIMIT,
					    "too many MIME parts, rest not indexed");
					cut = pos;
					break;
				}
				if (s.in_headers)
					scan_field_end(&s);
				scan_block_start(&s, true);
				pos = next;
				continue;
			}
		}
		if (s.in_headers) {
			if (ll == 0 || (ll == 1 && l[0] == '\r')) {
				scan_field_end(&s);
				s.in_headers = false;
				if (first_block && memchr(d, '\0', pos) != NULL)
					warn(c, ARCA_MIME_WARN_BINARY, "NUL bytes in header block");
				first_block = false;
				/* the body of message/rfc822 (and of a typeless digest part) is
				 * another header block */
				if (s.block_message || (s.digest && s.block_from_boundary &&
				    !s.block_has_ct)) {
					if (++s.objects > PART_LINES_MAX) {
						warn(c, ARCA_MIME_WARN_LIMIT,
						    "too many MIME parts, rest not indexed");
						cut = next;
						break;
					}
					scan_block_start(&s, false);
				}
			} else {
				scan_header_line(&s, pos, ll, next);
			}
		}
		pos = next;
	}
	if (pos >= n && s.in_headers && first_block && memchr(d, '\0', n) != NULL)
		warn(c, ARCA_MIME_WARN_BINARY, "NUL bytes in header block");
	if (s.copying) {
		if (cut > s.copied)
			scan_edit(&s, cut, cut, "", 0);
		size_t rl = 0;
		*copy = arca_buf_steal(&s.red, &rl);
		*out = *copy;
		return *copy != NULL ? rl : 0;
	}
	*copy = NULL;
	*out = d;
	return cut;
}

/* ---- entry points --------------------------------------------------------------------- */

static void whole_as_text(ctx *c, const void *data, size_t len)
{
	size_t limit = text_begin(c, &c->body), before = c->body.len;
	bool cut = append_fixed(c, &c->body, data, len, limit, false, FIX_TEXT, "(undeclared)");
	text_end(c, &c->body, before, cut);
}

static void parse_headers(ctx *c, GMimeMessage *msg)
{
	arca_mime_info *info = c->info;
	GMimeObject *obj = GMIME_OBJECT(msg);
	GDateTime *dt;
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	if (hl != NULL && g_mime_header_list_get_count(hl) > (int)ARCA_MIME_MAX_HEADERS)
		warn(c, ARCA_MIME_WARN_LIMIT, "too many header fields");
	info->subject = field_dup(c, g_mime_message_get_subject(msg));
	info->from = addresses(c, g_mime_message_get_from(msg));
	info->sender = addresses(c, g_mime_message_get_sender(msg));
	info->reply_to = addresses(c, g_mime_message_get_reply_to(msg));
	info->to = addresses(c, g_mime_message_get_to(msg));
	info->cc = addresses(c, g_mime_message_get_cc(msg));
	info->bcc = addresses(c, g_mime_message_get_bcc(msg));
	info->message_id = field_dup(c, g_mime_message_get_message_id(msg));
	info->in_reply_to = msgid_list(c, obj, "In-Reply-To");
	info->references = msgid_list(c, obj, "References");
	dt = g_mime_message_get_date(msg);
	if (dt != NULL) {
		info->date = g_date_time_to_unix(dt);
	} else if (g_mime_object_get_header(obj, "Date") != NULL) {
		warn(c, ARCA_MIME_WARN_BAD_DATE, "unparseable Date header");
	} else {
		warn(c, ARCA_MIME_WARN_BAD_DATE, "no Date header");
	}
}

static void fill_empty(ctx *c)
{
	arca_mime_info *i = c->info;
	char **f[] = { &i->subject, &i->from, &i->sender, &i->reply_to, &i->to, &i->cc, &i->bcc,
		&i->message_id, &i->in_reply_to, &i->references, &i->warning };
	size_t k;
	for (k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
		if (*f[k] == NULL) {
			*f[k] = calloc(1, 1);
			if (*f[k] == NULL)
				c->nomem = true;
		}
	}
}

arca_status arca_mime_parse(const void *data, size_t len, arca_mime_info **out, arca_error *err)
{
	ctx c;
	arca_mime_info *info;
	*out = NULL;
	if (len > ARCA_MAX_MESSAGE_SIZE)
		return arca_error_set(err, ARCA_ERR_LIMIT, "message of %zu bytes exceeds the limit",
		    len);
	arca_mime_init();
	info = calloc(1, sizeof(*info));
	if (info == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	memset(&c, 0, sizeof(c));
	c.info = info;
	c.text_left = ARCA_MIME_MAX_TEXT;
	arca_buf_init(&c.body, ARCA_MIME_MAX_TEXT);
	arca_buf_init(&c.attach, ARCA_MIME_MAX_TEXT);
	arca_buf_init(&c.dec, SIZE_MAX);
	arca_buf_init(&c.conv, SIZE_MAX);
	arca_buf_init(&c.html, SIZE_MAX);
	arca_buf_init(&c.raw, SIZE_MAX);
	info->date = ARCA_MIME_DATE_NONE;
	info->size = len;

	GMimeMessage *msg = NULL;
	GByteArray *arr = NULL;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	size_t parse_len = 0;
	char *copy = NULL;
	if (len > 0 && starts_with_header(data, len)) {
		const char *view;
		parse_len = prescan(&c, data, len, &view, &copy);
		/* The stream reads the caller's bytes (or the reduced copy) in place; GMime never
		 * writes to a stream it parses, and the array is emptied before it is freed. */
		arr = g_byte_array_new_take((guint8 *)(uintptr_t)view, parse_len);
		stream = g_mime_stream_mem_new();
		g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(stream), arr);
		parser = g_mime_parser_new_with_stream(stream);
		g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
		msg = g_mime_parser_construct_message(parser, parser_opts);
	}
	if (msg == NULL) {
		warn(&c, ARCA_MIME_WARN_NO_HEADERS, "no header block");
		whole_as_text(&c, data, len);
	} else {
		parse_headers(&c, msg);
		walk(&c, g_mime_message_get_mime_part(msg), 0, false, WALK_INDEX);
	}
	if (parser != NULL)
		g_object_unref(parser);
	if (msg != NULL)
		g_object_unref(msg);
	if (stream != NULL)
		g_object_unref(stream);
	if (arr != NULL) {
		(void)g_byte_array_steal(arr, NULL); /* the caller's buffer, not ours */
		g_byte_array_unref(arr);
	}
	free(copy);
	info->body_text = arca_buf_steal(&c.body, &info->body_text_len);
	info->attachment_text = arca_buf_steal(&c.attach, &info->attachment_text_len);
	arca_buf_free(&c.dec);
	arca_buf_free(&c.conv);
	arca_buf_free(&c.html);
	arca_buf_free(&c.raw);
	fill_empty(&c);
	if (c.nomem || info->body_text == NULL || info->attachment_text == NULL) {
		arca_mime_info_free(&info);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory parsing a message");
	}
	*out = info;
	return ARCA_OK;
}

void arca_mime_info_free(arca_mime_info **pinfo)
{
	arca_mime_info *i;
	size_t k;
	if (pinfo == NULL || *pinfo == NULL)
		return;
	i = *pinfo;
	free(i->subject);
	free(i->from);
	free(i->sender);
	free(i->reply_to);
	free(i->to);
	free(i->cc);
	free(i->bcc);
	free(i->message_id);
	free(i->in_reply_to);
	free(i->references);
	free(i->body_text);
	free(i->attachment_text);
	for (k = 0; k < i->n_attachments; k++) {
		free(i->attachments[k].filename);
		free(i->attachments[k].content_type);
	}
	free(i->attachments);
	free(i->warning);
	free(i);
	*pinfo = NULL;
}

#include "imap/write.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Byte classes for strings: 0 plain, 1 quoted with a backslash ('"' and '\\'), 2 only in a
 * literal (NUL, CR, LF, 8-bit). */
#define ROW(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const uint8_t str_class[256] = {
	2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 2, 0, 0, /* 0x00: NUL, LF, CR */
	ROW(0),
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20: '"' */
	ROW(0),
	ROW(0),
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50: '\\' */
	ROW(0),
	ROW(0),
	ROW(2), ROW(2), ROW(2), ROW(2), ROW(2), ROW(2), ROW(2), ROW(2),
};
#undef ROW

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HASZERO(v) (((v) - ONES) & ~(v) & HIGHS)

/* One pass: 2 if a literal is needed, else 1 if escapes are, else 0; *esc counts escapes.
 * Eight bytes at a time while they are plain 7-bit text (the common case). */
static unsigned classify(const unsigned char *p, size_t len, size_t *esc)
{
	unsigned all = 0;
	size_t e = 0, i = 0;
	if (len > ARCA_IMAP_QUOTED_MAX)
		return 2;
	for (; i + 8 <= len; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		if ((v & HIGHS) != 0)
			return 2;
		if (HASZERO(v) | HASZERO(v ^ (ONES * '\r')) | HASZERO(v ^ (ONES * '\n')) |
		    HASZERO(v ^ (ONES * '"')) | HASZERO(v ^ (ONES * '\\')))
			break;
	}
	for (; i < len; i++) {
		unsigned c = str_class[p[i]];
		all |= c;
		e += c & 1;
	}
	*esc = e;
	return all & 2 ? 2 : all;
}

bool arca_imap_quotable(const void *s, size_t len)
{
	size_t esc;
	return classify(s, len, &esc) != 2;
}

static arca_status write_literal(arca_buf *out, const unsigned char *p, size_t len)
{
	arca_status st = arca_buf_printf(out, "{%zu}\r\n", len);
	char *dst;
	if (st != ARCA_OK)
		return st;
	if (len == 0)
		return ARCA_OK;
	if ((st = arca_buf_reserve(out, len)) != ARCA_OK)
		return st;
	dst = out->data + out->len;
	memcpy(dst, p, len);
	/* Literals cannot carry NUL: send 0x80 instead (Dovecot does the same). */
	for (char *z = memchr(dst, 0, len); z != NULL; z = memchr(z + 1, 0, (size_t)(dst + len - z - 1)))
		*z = (char)0x80;
	out->len += len;
	out->data[out->len] = '\0';
	return ARCA_OK;
}

static arca_status write_quoted(arca_buf *out, const unsigned char *p, size_t len, size_t esc)
{
	char *dst;
	arca_status st;
	if ((st = arca_buf_reserve(out, len + esc + 2)) != ARCA_OK)
		return st;
	dst = out->data + out->len;
	*dst++ = '"';
	if (esc == 0) {
		memcpy(dst, p, len);
		dst += len;
	} else {
		for (size_t i = 0; i < len; i++) {
			if (p[i] == '"' || p[i] == '\\')
				*dst++ = '\\';
			*dst++ = (char)p[i];
		}
	}
	*dst++ = '"';
	out->len = (size_t)(dst - out->data);
	out->data[out->len] = '\0';
	return ARCA_OK;
}

arca_status arca_imap_write_string(arca_buf *out, const void *s, size_t len)
{
	const unsigned char *p = s != NULL ? s : (const unsigned char *)"";
	size_t esc = 0;
	if (classify(p, len, &esc) != 2)
		return write_quoted(out, p, len, esc);
	return write_literal(out, p, len);
}

arca_status arca_imap_write_nstring(arca_buf *out, const void *s, size_t len)
{
	if (s == NULL)
		return arca_buf_append(out, "NIL", 3);
	return arca_imap_write_string(out, s, len);
}

arca_status arca_imap_write_stringz(arca_buf *out, const char *s)
{
	return arca_imap_write_string(out, s, strlen(s));
}

/* ASTRING-CHAR = ATOM-CHAR / resp-specials; ATOM-CHAR excludes "(" ")" "{" SP CTL "%" "*"
 * '"' "\" and "]" (which resp-specials adds back). */
static bool astring_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\", c) == NULL;
}

arca_status arca_imap_write_astring(arca_buf *out, const void *s, size_t len)
{
	const unsigned char *p = s;
	bool atom = len > 0 && !(len == 3 && strncasecmp((const char *)p, "NIL", 3) == 0);
	for (size_t i = 0; atom && i < len; i++)
		atom = astring_char(p[i]);
	if (atom)
		return arca_buf_append(out, p, len);
	return arca_imap_write_string(out, s, len);
}

arca_status arca_imap_write_datetime(arca_buf *out, int64_t unix_seconds, int tz_offset_minutes)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	time_t t;
	int tz = tz_offset_minutes;
	int atz;
	if (tz > 99 * 60 + 59)
		tz = 99 * 60 + 59;
	if (tz < -(99 * 60 + 59))
		tz = -(99 * 60 + 59);
	/* Keep the year within 4 digits: the grammar has no room for more. */
	if (unix_seconds < -62135596800LL)
		unix_seconds = -62135596800LL; /* 0001-01-01 */
	if (unix_seconds > 253402300799LL)
		unix_seconds = 253402300799LL; /* 9999-12-31 23:59:59 */
	t = (time_t)(unix_seconds + (int64_t)tz * 60);
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	atz = tz < 0 ? -tz : tz;
	return arca_buf_printf(out, "\"%2d-%s-%04d %02d:%02d:%02d %c%02d%02d\"", tm.tm_mday,
	                       months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	                       tm.tm_sec, tz < 0 ? '-' : '+', atz / 60, atz % 60);
}

#include "imap/mutf7.h"

#include <glib.h>
#include <stdint.h>
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Next code point of UTF-8 text, or -1 if invalid (overlongs, surrogates, > U+10FFFF). */
static int32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i];
	int32_t cp;
	size_t n;
	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		cp = c & 0x07;
	} else {
		return -1;
	}
	for (size_t k = 1; k <= n; k++) {
		if (*i + k >= len || (s[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[*i + k] & 0x3f);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += n + 1;
	return cp;
}

static arca_status flush_b64(arca_buf *out, const uint16_t *u, size_t n)
{
	uint32_t acc = 0;
	int bits = 0;
	arca_status st = arca_buf_append(out, "&", 1);
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		acc = (acc << 16) | u[i];
		bits += 16;
		while (bits >= 6 && st == ARCA_OK) {
			bits -= 6;
			st = arca_buf_append(out, &b64[(acc >> bits) & 0x3f], 1);
		}
	}
	if (bits > 0 && st == ARCA_OK)
		st = arca_buf_append(out, &b64[(acc << (6 - bits)) & 0x3f], 1);
	if (st == ARCA_OK)
		st = arca_buf_append(out, "-", 1);
	return st;
}

arca_status arca_imap_mutf7_encode(const char *utf8, size_t len, arca_buf *out, arca_error *err)
{
	const unsigned char *s = (const unsigned char *)utf8;
	uint16_t u[128];
	size_t nu = 0, i = 0;
	arca_status st = ARCA_OK;
	while (i < len && st == ARCA_OK) {
		int32_t cp;
		if (s[i] >= 0x20 && s[i] <= 0x7e) {
			if (nu > 0) {
				st = flush_b64(out, u, nu);
				nu = 0;
			}
			if (st == ARCA_OK)
				st = arca_buf_append(out, s[i] == '&' ? "&-" : (const char *)&s[i],
				                     s[i] == '&' ? 2 : 1);
			i++;
			continue;
		}
		cp = utf8_next(s, len, &i);
		if (cp < 0)
			return arca_error_set(err, ARCA_ERR_INVALID, "mailbox name is not valid UTF-8");
		if (nu + 2 > sizeof(u) / sizeof(u[0])) {
			st = flush_b64(out, u, nu);
			nu = 0;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			u[nu++] = (uint16_t)(0xd800 + (cp >> 10));
			u[nu++] = (uint16_t)(0xdc00 + (cp & 0x3ff));
		} else {
			u[nu++] = (uint16_t)cp;
		}
	}
	if (nu > 0 && st == ARCA_OK)
		st = flush_b64(out, u, nu);
	if (st != ARCA_OK)
		return arca_error_set(err, st, "mailbox name too long");
	return ARCA_OK;
}

static arca_status put_utf8(arca_buf *out, uint32_t cp)
{
	char b[6];
	return arca_buf_append(out, b, (size_t)g_unichar_to_utf8((gunichar)cp, b));
}

arca_status arca_imap_mutf7_decode(const char *in, size_t len, arca_buf *out, arca_error *err)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		uint32_t acc = 0, hi = 0;
		int bits = 0;
		size_t start;
		if (c < 0x20 || c > 0x7e)
			return arca_error_set(err, ARCA_ERR_SYNTAX,
			                      "mailbox name has a byte outside printable ASCII (use modified UTF-7"
			                      " or ENABLE UTF8=ACCEPT)");
		if (c != '&') {
			if (arca_buf_append(out, &in[i], 1) != ARCA_OK)
				return arca_error_set(err, ARCA_ERR_LIMIT, "mailbox name too long");
			i++;
			continue;
		}
		i++;
		if (i < len && in[i] == '-') {
			if (arca_buf_append(out, "&", 1) != ARCA_OK)
				return arca_error_set(err, ARCA_ERR_LIMIT, "mailbox name too long");
			i++;
			continue;
		}
		start = i;
		while (i < len && in[i] != '-') {
			const char *p = memchr(b64, in[i], 64);
			if (p == NULL || in[i] == 0)
				return arca_error_set(err, ARCA_ERR_SYNTAX, "bad modified UTF-7 in mailbox name");
			acc = (acc << 6) | (uint32_t)(p - b64);
			bits += 6;
			i++;
			if (bits >= 16) {
				uint32_t u;
				bits -= 16;
				u = (acc >> bits) & 0xffff;
				if (u >= 0xd800 && u <= 0xdbff) {
					if (hi != 0)
						return arca_error_set(err, ARCA_ERR_SYNTAX,
						                      "bad surrogate in mailbox name");
					hi = u;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					if (hi == 0)
						return arca_error_set(err, ARCA_ERR_SYNTAX,
						                      "bad surrogate in mailbox name");
					if (put_utf8(out, 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00)) != ARCA_OK)
						return arca_error_set(err, ARCA_ERR_LIMIT, "mailbox name too long");
					hi = 0;
				} else {
					if (hi != 0 || (u >= 0x20 && u <= 0x7e))
						return arca_error_set(err, ARCA_ERR_SYNTAX,
						                      "bad modified UTF-7 in mailbox name");
					if (put_utf8(out, u) != ARCA_OK)
						return arca_error_set(err, ARCA_ERR_LIMIT, "mailbox name too long");
				}
			}
		}
		if (i >= len || i == start || hi != 0 || bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
			return arca_error_set(err, ARCA_ERR_SYNTAX, "bad modified UTF-7 in mailbox name");
		i++; /* '-' */
	}
	return ARCA_OK;
}

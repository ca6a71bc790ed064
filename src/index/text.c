#include "index/text.h"

uint32_t arca_index_utf8_next(const char *s, size_t len, size_t *i)
{
	const unsigned char *p = (const unsigned char *)s + *i;
	size_t left = len - *i;
	uint32_t cp, min;
	size_t n, k;

	if (p[0] < 0x80) {
		*i += 1;
		return p[0];
	}
	if ((p[0] & 0xE0) == 0xC0) {
		n = 2;
		cp = p[0] & 0x1F;
		min = 0x80;
	} else if ((p[0] & 0xF0) == 0xE0) {
		n = 3;
		cp = p[0] & 0x0F;
		min = 0x800;
	} else if ((p[0] & 0xF8) == 0xF0) {
		n = 4;
		cp = p[0] & 0x07;
		min = 0x10000;
	} else {
		goto bad;
	}
	if (left < n)
		goto bad;
	for (k = 1; k < n; k++) {
		if ((p[k] & 0xC0) != 0x80)
			goto bad;
		cp = (cp << 6) | (p[k] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		goto bad;
	*i += n;
	return cp;
bad:
	*i += 1;
	return 0xFFFD;
}

bool arca_index_utf8_valid(const char *s, size_t len, size_t *bad_at)
{
	size_t i = 0;
	while (i < len) {
		size_t at = i;
		uint32_t cp = arca_index_utf8_next(s, len, &i);
		/* A real U+FFFD is three bytes; a one-byte advance means an invalid sequence. */
		if (cp == 0xFFFD && i - at == 1) {
			if (bad_at != NULL)
				*bad_at = at;
			return false;
		}
	}
	return true;
}

bool arca_index_is_token_char(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
	if (cp < 0xC0)
		return cp == 0xAA || cp == 0xB2 || cp == 0xB3 || cp == 0xB5 || cp == 0xB9 ||
		       cp == 0xBA || (cp >= 0xBC && cp <= 0xBE);
	if (cp == 0xD7 || cp == 0xF7)
		return false;
	/* General punctuation, currency, arrows, math, box drawing, shapes, dingbats, CJK
	 * punctuation, full-width punctuation, specials, emoji: separators for unicode61. */
	if ((cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x20A0 && cp <= 0x20CF) ||
	    (cp >= 0x2190 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
	    (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF0F) ||
	    (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFFF0 && cp <= 0xFFFF) ||
	    (cp >= 0x1F000 && cp <= 0x1FAFF))
		return false;
	return true;
}

/* Base letters for U+00C0..U+00FF and U+0100..U+017F; '.' keeps the (lower-cased) letter. */
static const char latin1_base[] =
	"aaaaaa.ceeeeiiii.nooooo.ouuuuy.."
	"aaaaaa.ceeeeiiii.nooooo.ouuuuy.y";
static const char latin_ext_a_base[] =
	"aaaaaaccccccccdd"
	"ddeeeeeeeeeegggg"
	"gggghhhhiiiiiiii"
	"ii..jjkkklllllll"
	"lllnnnnnnnnnoooo"
	"oo..rrrrrrssssss"
	"ssttttttuuuuuuuu"
	"uuuuwwyyyzzzzzzs";

uint32_t arca_index_fold_char(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
	if (cp >= 0xC0 && cp <= 0xFF) {
		char b = latin1_base[cp - 0xC0];
		if (b != '.')
			return (uint32_t)(unsigned char)b;
		if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
			return cp + 0x20;
		return cp;
	}
	if (cp >= 0x100 && cp <= 0x17F) {
		char b = latin_ext_a_base[cp - 0x100];
		if (b != '.')
			return (uint32_t)(unsigned char)b;
		return cp | 1u; /* Ĳ/ĳ, Œ/œ: upper case is even */
	}
	if (cp >= 0x391 && cp <= 0x3A9)
		return cp + 0x20;
	if (cp >= 0x410 && cp <= 0x42F)
		return cp + 0x20;
	if (cp >= 0x400 && cp <= 0x40F)
		return cp + 0x50;
	return cp;
}

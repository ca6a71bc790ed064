/* Single-pass HTML to text for indexing. Not a conforming HTML parser: it only needs to
 * find the words a reader would see. Linear time, no recursion, and the output is never
 * longer than the input (every construct it decodes is at least as long as its UTF-8). */
#include "mime/mime.h"

#include "lib/hex.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Names of the HTML 4 Latin-1 entities, U+00A0 to U+00FF in order. */
static const char *const latin1_names[96] = {
	"nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect",
	"uml", "copy", "ordf", "laquo", "not", "shy", "reg", "macr",
	"deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot",
	"cedil", "sup1", "ordm", "raquo", "frac14", "frac12", "frac34", "iquest",
	"Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil",
	"Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml",
	"ETH", "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times",
	"Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig",
	"agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
	"egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc", "iuml",
	"eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml", "divide",
	"oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
};

static const struct {
	const char *name;
	unsigned cp;
} other_entities[] = {
	{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''},
	{"euro", 0x20ac}, {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013},
	{"lsquo", 0x2018}, {"rsquo", 0x2019}, {"sbquo", 0x201a}, {"ldquo", 0x201c},
	{"rdquo", 0x201d}, {"bdquo", 0x201e}, {"bull", 0x2022}, {"trade", 0x2122},
	{"dagger", 0x2020}, {"Dagger", 0x2021}, {"permil", 0x2030}, {"lsaquo", 0x2039},
	{"rsaquo", 0x203a}, {"ensp", ' '}, {"emsp", ' '}, {"thinsp", ' '},
	{"zwnj", 0}, {"zwj", 0}, {"lrm", 0}, {"rlm", 0}, {"OElig", 0x152},
	{"oelig", 0x153}, {"Scaron", 0x160}, {"scaron", 0x161}, {"Yuml", 0x178},
	{"fnof", 0x192}, {"circ", 0x2c6}, {"tilde", 0x2dc}, {"larr", 0x2190},
	{"rarr", 0x2192}, {"uarr", 0x2191}, {"darr", 0x2193}, {"hearts", 0x2665},
	{"infin", 0x221e}, {"ne", 0x2260}, {"le", 0x2264}, {"ge", 0x2265},
	{"minus", 0x2212}, {"prime", 0x2032}, {"Prime", 0x2033}, {"alpha", 0x3b1},
	{"beta", 0x3b2}, {"mu", 0x3bc}, {"pi", 0x3c0}, {"Omega", 0x3a9},
};

/* Windows-1252 meanings of &#128; to &#159;, as browsers decode them. */
static const unsigned short c1_map[32] = {
	0x20ac, 0xfffd, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0xfffd, 0x017d, 0xfffd,
	0xfffd, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0xfffd, 0x017e, 0x0178,
};

typedef struct {
	const char *name;
	size_t len;
} tag_name;

#define TAG(s) { s, sizeof(s) - 1 }
#define N_TAGS(a) (sizeof(a) / sizeof((a)[0]))

/* Tags whose start or end is a line break. */
static const tag_name block_tags[] = {
	TAG("p"), TAG("br"), TAG("div"), TAG("tr"), TAG("li"), TAG("h1"), TAG("h2"), TAG("h3"),
	TAG("h4"), TAG("h5"), TAG("h6"), TAG("table"), TAG("ul"), TAG("ol"), TAG("dl"), TAG("dt"),
	TAG("dd"), TAG("blockquote"), TAG("pre"), TAG("hr"), TAG("title"), TAG("section"),
	TAG("article"), TAG("header"), TAG("footer"), TAG("center"), TAG("address"), TAG("form"),
	TAG("tbody"), TAG("thead"), TAG("tfoot"), TAG("caption"), TAG("body"), TAG("html"),
	TAG("head"), TAG("nav"), TAG("aside"), TAG("main"), TAG("figure"), TAG("figcaption"),
	TAG("fieldset"),
};

/* Tags whose content is dropped up to the matching end tag. */
static const tag_name skip_tags[] = { TAG("script"), TAG("style"), TAG("template"), TAG("xml") };

enum { WS_NONE, WS_SPACE, WS_BREAK };

typedef struct {
	char *p;      /* output start */
	size_t len;   /* bytes written */
	int ws;       /* pending whitespace, collapsed */
} out_state;

static void put_ws(out_state *o, int kind)
{
	if (kind > o->ws)
		o->ws = kind;
}

/* Emits bytes that are not whitespace, first flushing the pending whitespace. The pending
 * whitespace is only emitted between words, so output never starts or ends with it, and the
 * room it needs was taken by the tag or space characters that produced it. */
static void put_bytes(out_state *o, const char *s, size_t n)
{
	if (o->ws != WS_NONE && o->len > 0)
		o->p[o->len++] = o->ws == WS_BREAK ? '\n' : ' ';
	o->ws = WS_NONE;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static size_t utf8_encode(unsigned cp, char *b)
{
	if (cp < 0x80) {
		b[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	b[0] = (char)(0xf0 | (cp >> 18));
	b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	b[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(unsigned char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Looks up a named entity (case-sensitive, as in HTML). Returns the code point or -1. */
static long named_entity(const char *name, size_t n)
{
	size_t i;
	for (i = 0; i < sizeof(other_entities) / sizeof(other_entities[0]); i++) {
		const char *e = other_entities[i].name;
		if (e[0] == name[0] && strncmp(e, name, n) == 0 && e[n] == '\0')
			return (long)other_entities[i].cp;
	}
	for (i = 0; i < 96; i++) {
		const char *e = latin1_names[i];
		if (e[0] == name[0] && strncmp(e, name, n) == 0 && e[n] == '\0')
			return (long)(0xa0 + i);
	}
	return -1;
}

/* Decodes the entity at s[0] == '&'. On success emits it and returns the bytes consumed
 * (which is never less than the bytes emitted); returns 0 if it is not an entity. */
static size_t decode_entity(out_state *o, const char *s, size_t n)
{
	char u[4];
	size_t i = 1, start;
	unsigned long cp = 0;
	if (n > 1 && s[1] == '#') {
		bool hex = n > 2 && (s[2] == 'x' || s[2] == 'X');
		i = hex ? 3 : 2;
		start = i;
		while (i < n) {
			int v = hex ? arca_hex_digit((unsigned char)s[i]) : (s[i] >= '0' && s[i] <= '9' ?
			    s[i] - '0' : -1);
			if (v < 0)
				break;
			cp = cp * (hex ? 16 : 10) + (unsigned long)v;
			if (cp > 0x10ffff)
				cp = 0x110000; /* saturate: U+FFFD below */
			i++;
		}
		if (i == start)
			return 0;
		if (i < n && s[i] == ';')
			i++;
		if (cp >= 0x80 && cp < 0xa0)
			cp = c1_map[cp - 0x80];
		else if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
			cp = 0xfffd;
		/* "&#N" is at least 3 bytes; all code points up to 0x7ff fit in 2, U+FFFD
		 * needs 3 and the shortest way to ask for one of 4 bytes is "&#65536". */
		if (cp < 0x80 && is_space((unsigned char)cp))
			put_ws(o, WS_SPACE);
		else if (cp >= 0x20 || cp == '\t')
			put_bytes(o, u, utf8_encode((unsigned)cp, u));
		return i;
	}
	start = 1;
	while (i < n && i - start < 10 && is_alnum((unsigned char)s[i]))
		i++;
	if (i == start)
		return 0;
	long v = named_entity(s + start, i - start);
	if (v < 0)
		return 0;
	/* Without ';' only the legacy short ones count, and not inside a longer word. */
	if (i < n && s[i] == ';')
		i++;
	else if (i - start > 4)
		return 0;
	if (v == 0)
		return i;
	if (v == 0xa0 || v == ' ')
		put_ws(o, WS_SPACE);
	else if (v == 0xad)
		; /* soft hyphen: invisible */
	else
		put_bytes(o, u, utf8_encode((unsigned)v, u));
	return i;
}

/* Case-insensitive search for "</name" starting at s; returns its offset or n. */
static size_t find_end_tag(const char *s, size_t n, const char *name)
{
	size_t nl = strlen(name), i = 0;
	while (i < n) {
		const char *lt = memchr(s + i, '<', n - i);
		if (lt == NULL)
			return n;
		i = (size_t)(lt - s);
		if (i + 2 + nl <= n && s[i + 1] == '/' && strncasecmp(s + i + 2, name, nl) == 0 &&
		    (i + 2 + nl == n || !is_alnum((unsigned char)s[i + 2 + nl])))
			return i;
		i++;
	}
	return n;
}

static bool tag_in(const char *name, size_t nl, const tag_name *list, size_t count)
{
	size_t i;
	for (i = 0; i < count; i++) {
		if (list[i].len == nl && (name[0] | 0x20) == list[i].name[0] &&
		    strncasecmp(list[i].name, name, nl) == 0)
			return true;
	}
	return false;
}

/* Skips from s[0] == '<' past the end of the tag at '>' (quoted attribute values may contain
 * '>'); returns the offset after it, or n if unterminated. */
static size_t skip_tag(const char *s, size_t n)
{
	size_t i = 1;
	char quote = 0;
	for (; i < n; i++) {
		char c = s[i];
		if (quote) {
			if (c == quote)
				quote = 0;
		} else if (c == '"' || c == '\'') {
			/* Only an attribute value starts a quote, i.e. after '='. */
			size_t j = i;
			while (j > 1 && is_space((unsigned char)s[j - 1]))
				j--;
			if (s[j - 1] == '=')
				quote = c;
		} else if (c == '>') {
			return i + 1;
		}
	}
	return n;
}

char *arca_mime_html_to_text(const char *html, size_t len, size_t *out_len)
{
	out_state o;
	size_t i = 0;
	o.p = malloc(len + 1);
	if (o.p == NULL) {
		if (out_len != NULL)
			*out_len = 0;
		return NULL;
	}
	o.len = 0;
	o.ws = WS_NONE;
	while (i < len) {
		unsigned char c = (unsigned char)html[i];
		if (c == '<') {
			const char *s = html + i;
			size_t n = len - i, nl, end;
			bool closing;
			if (n >= 4 && memcmp(s, "<!--", 4) == 0) {
				const char *e = memmem(s + 4, n - 4, "-->", 3);
				i = e != NULL ? (size_t)(e - html) + 3 : len;
				continue;
			}
			if (n >= 2 && (s[1] == '!' || s[1] == '?')) {
				i += skip_tag(s, n);
				continue;
			}
			closing = n >= 2 && s[1] == '/';
			nl = closing ? 2 : 1;
			if (nl >= n || !is_alpha((unsigned char)s[nl])) {
				put_bytes(&o, "<", 1); /* a lone '<' is text */
				i++;
				continue;
			}
			const char *name = s + nl;
			while (nl < n && is_alnum((unsigned char)s[nl]))
				nl++;
			size_t name_len = (size_t)(s + nl - name);
			end = skip_tag(s, n);
			i += end;
			if (tag_in(name, name_len, block_tags, N_TAGS(block_tags)))
				put_ws(&o, WS_BREAK);
			else if (name_len == 2 && (strncasecmp(name, "td", 2) == 0 ||
			    strncasecmp(name, "th", 2) == 0))
				put_ws(&o, WS_SPACE);
			if (!closing && end >= 2 && s[end - 2] != '/' &&
			    tag_in(name, name_len, skip_tags, N_TAGS(skip_tags))) {
				char tname[16];
				memcpy(tname, name, name_len < 15 ? name_len : 15);
				tname[name_len < 15 ? name_len : 15] = '\0';
				i += find_end_tag(html + i, len - i, tname);
			}
			continue;
		}
		if (c == '&') {
			size_t used = decode_entity(&o, html + i, len - i);
			if (used > 0) {
				i += used;
				continue;
			}
			put_bytes(&o, "&", 1);
			i++;
			continue;
		}
		if (is_space(c)) {
			put_ws(&o, WS_SPACE);
			i++;
			continue;
		}
		if (c == '\0') {
			i++;
			continue;
		}
		/* A run of ordinary text. */
		size_t j = i + 1;
		while (j < len && html[j] != '<' && html[j] != '&' && html[j] != '\0' &&
		    !is_space((unsigned char)html[j]))
			j++;
		put_bytes(&o, html + i, j - i);
		i = j;
	}
	o.p[o.len] = '\0';
	if (out_len != NULL)
		*out_len = o.len;
	return o.p;
}

/* Sorting support for SORT and THREAD (RFC 5256, RFC 5957): base subjects, the
 * i;unicode-casemap collation (RFC 5051), and the address a message sorts by. No I/O. */
#include <glib.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/search_int.h"
#include "mime/mime.h"

static bool wsp(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* A subj-blob at s[i..n): "[" *BLOBCHAR "]" *WSP. Returns its end or 0 if none. BLOBCHAR is
 * any character but '[' and ']' (8-bit ones included: the subject is decoded UTF-8). */
static size_t blob_end(const char *s, size_t i, size_t n)
{
	size_t j;
	if (i >= n || s[i] != '[')
		return 0;
	for (j = i + 1; j < n && s[j] != '[' && s[j] != ']'; j++)
		;
	if (j >= n || s[j] != ']')
		return 0;
	for (j++; j < n && wsp(s[j]); j++)
		;
	return j;
}

/* subj-refwd at s[i..n): ("re" / ("fw" ["d"])) *WSP [subj-blob] ":". Returns its end or 0. */
static size_t refwd_end(const char *s, size_t i, size_t n)
{
	size_t j = i, b;
	if (j + 2 <= n && strncasecmp(s + j, "re", 2) == 0)
		j += 2;
	else if (j + 2 <= n && strncasecmp(s + j, "fw", 2) == 0)
		j += (j + 3 <= n && (s[j + 2] == 'd' || s[j + 2] == 'D')) ? 3 : 2;
	else
		return 0;
	while (j < n && wsp(s[j]))
		j++;
	if ((b = blob_end(s, j, n)) != 0)
		j = b;
	return j < n && s[j] == ':' ? j + 1 : 0;
}

/* subj-leader at the start: (*subj-blob subj-refwd) / WSP. Returns its end or 0. */
static size_t leader_end(const char *s, size_t n, bool *refwd)
{
	size_t j = 0, b, r;
	if (n > 0 && wsp(s[0]))
		return 1;
	while ((b = blob_end(s, j, n)) != 0)
		j = b;
	if ((r = refwd_end(s, j, n)) != 0) {
		*refwd = true;
		return r;
	}
	return 0;
}

static bool has_nonwsp(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!wsp(s[i]))
			return true;
	return false;
}

char *imapd_search_base_subject(const char *subject, size_t len, bool *refwd_out)
{
	char *buf = malloc(len + 1), *s;
	size_t n = 0;
	bool refwd = false;
	if (buf == NULL)
		return NULL;
	/* (1) tabs and line breaks become spaces; runs of spaces become one */
	for (size_t i = 0; i < len; i++) {
		char ch = subject[i];
		if (ch == '\t' || ch == '\r' || ch == '\n' || ch == '\0')
			ch = ' ';
		if (ch == ' ' && n > 0 && buf[n - 1] == ' ')
			continue;
		buf[n++] = ch;
	}
	s = buf;
	for (;;) {
		bool changed;
		/* (2) trailers: "(fwd)" and whitespace */
		for (;;) {
			if (n > 0 && wsp(s[n - 1]))
				n--;
			else if (n >= 5 && strncasecmp(s + n - 5, "(fwd)", 5) == 0)
				n -= 5;
			else
				break;
		}
		/* (3)-(5) leaders and a leading blob, as long as something is removed */
		do {
			size_t e, b;
			changed = false;
			while ((e = leader_end(s, n, &refwd)) != 0) {
				s += e;
				n -= e;
				changed = true;
			}
			b = blob_end(s, 0, n);
			if (b != 0 && has_nonwsp(s + b, n - b)) {
				s += b;
				n -= b;
				changed = true;
			}
		} while (changed);
		/* (6) "[fwd: ...]" */
		if (n >= 6 && strncasecmp(s, "[fwd:", 5) == 0 && s[n - 1] == ']') {
			s += 5;
			n -= 6;
			refwd = true;
			continue;
		}
		break;
	}
	memmove(buf, s, n);
	buf[n] = '\0';
	if (refwd_out != NULL)
		*refwd_out = refwd;
	return buf;
}

char *imapd_search_casemap(const char *s, size_t len)
{
	GString *t;
	gchar *norm;
	char *res;
	if (!g_utf8_validate(s, (gssize)len, NULL) || memchr(s, 0, len) != NULL) {
		res = malloc(len + 1);
		if (res == NULL)
			return NULL;
		for (size_t i = 0; i < len; i++)
			res[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
		res[len] = '\0';
		return res;
	}
	t = g_string_sized_new(len + 8);
	for (const char *p = s; p < s + len; p = g_utf8_next_char(p))
		g_string_append_unichar(t, g_unichar_totitle(g_utf8_get_char(p)));
	norm = g_utf8_normalize(t->str, (gssize)t->len, G_NORMALIZE_NFKD);
	g_string_free(t, TRUE);
	if (norm == NULL)
		return strdup("");
	res = strdup(norm);
	g_free(norm);
	return res;
}

char *imapd_search_sort_address(const char *raw, size_t len, bool display)
{
	InternetAddressList *l;
	InternetAddress *ia;
	char *copy, *res = NULL;
	const char *name;
	if (raw == NULL || len == 0)
		return strdup("");
	copy = malloc(len + 1);
	if (copy == NULL)
		return NULL;
	memcpy(copy, raw, len);
	copy[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (copy[i] == '\0')
			copy[i] = ' ';
	arca_mime_init();
	l = internet_address_list_parse(NULL, copy);
	free(copy);
	if (l == NULL)
		return strdup("");
	if (internet_address_list_length(l) == 0) {
		g_object_unref(l);
		return strdup("");
	}
	ia = internet_address_list_get_address(l, 0);
	name = internet_address_get_name(ia);
	if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		if (addr == NULL)
			addr = "";
		if (display && name != NULL && name[0] != '\0') {
			res = strdup(name);
		} else if (display) {
			res = strdup(addr);
		} else {
			const char *at = strrchr(addr, '@');
			res = at != NULL ? strndup(addr, (size_t)(at - addr)) : strdup(addr);
		}
	} else {
		/* a group: its name is what the envelope shows first */
		res = strdup(name != NULL ? name : "");
	}
	g_object_unref(l);
	return res;
}

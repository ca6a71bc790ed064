/* A message for display: header fields, text, sanitised HTML and attachments, read with
 * GMime (which parses anything); and the HTML sanitiser. */
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "mime/mime.h"

/* ---- UTF-8 ---- */

static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned c = s[0];
	size_t n;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

char *arca_api_utf8_fix(const char *s, size_t len, size_t *out_len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(len * 3 + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0 || (n == 1 && p[i] == 0)) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(o, p + i, n);
			o += n;
			i += n;
		}
	}
	*o = '\0';
	if (out_len)
		*out_len = (size_t)(o - out);
	return out;
}

/* Cuts a valid UTF-8 string at most max bytes long on a character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* ---- HTML sanitiser ---- */

static const char *const allowed_tags[] = {
    "a",    "abbr", "b",      "blockquote", "br",     "caption", "center", "cite",  "code", "col",
    "colgroup", "dd", "del",  "div",        "dl",     "dt",      "em",     "font",  "h1",   "h2",
    "h3",   "h4",   "h5",     "h6",         "hr",     "i",       "ins",    "li",    "ol",   "p",
    "pre",  "q",    "s",      "small",      "span",   "strike",  "strong", "sub",   "sup",  "table",
    "tbody", "td",  "tfoot",  "th",         "thead",  "tr",      "tt",     "u",     "ul",   NULL};
static const char *const void_tags[] = {"br", "hr", "col", NULL};
/* elements whose content goes too (scripts, styles, embedded objects, titles) */
static const char *const drop_tags[] = {"script", "style",  "iframe",   "object",  "embed",
                                        "applet", "noscript", "template", "svg",     "math",
                                        "textarea", "select", "title",    "noembed", "noframes",
                                        "xmp",    "frameset", "canvas",   "audio",   "video",
                                        "plaintext", NULL};

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

#define SAN_MAX_DEPTH 128

typedef struct {
	arca_buf *out;
	size_t limit; /* stop emitting beyond this; the rest of max is for closing tags */
	bool full;
	char stack[SAN_MAX_DEPTH][12];
	int depth;
} san;

static void emit(san *s, const char *p, size_t n)
{
	if (s->full || s->out->len + n > s->limit) {
		s->full = true;
		return;
	}
	arca_buf_append(s->out, p, n);
}

static void emitz(san *s, const char *p)
{
	emit(s, p, strlen(p));
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

/* Length of a character reference at p ("&amp;", "&#38;", "&#x26;"), 0 if none. */
static size_t entity_len(const char *p, const char *end)
{
	const char *q = p + 1;
	size_t n = 0;
	if (q < end && *q == '#') {
		q++;
		if (q < end && (*q == 'x' || *q == 'X')) {
			q++;
			while (q < end && n < 7 &&
			       ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F')))
				q++, n++;
		} else {
			while (q < end && n < 8 && *q >= '0' && *q <= '9')
				q++, n++;
		}
	} else {
		while (q < end && n < 32 && is_alnum(*q))
			q++, n++;
	}
	if (n == 0 || q >= end || *q != ';')
		return 0;
	return (size_t)(q + 1 - p);
}

static void emit_text(san *s, const char *p, size_t n, bool in_attr)
{
	const char *end = p + n;
	while (p < end && !s->full) {
		const char *run = p;
		while (p < end && *p != '<' && *p != '>' && *p != '&' && *p != '"' && *p != '\'' && *p != '\0')
			p++;
		emit(s, run, (size_t)(p - run));
		if (p >= end)
			break;
		switch (*p) {
		case '\0': emitz(s, "\xef\xbf\xbd"); break; /* U+FFFD, as HTML parsers do */
		case '<': emitz(s, "&lt;"); break;
		case '>': emitz(s, "&gt;"); break;
		case '"': emitz(s, in_attr ? "&quot;" : "\""); break;
		case '\'': emitz(s, in_attr ? "&#39;" : "'"); break;
		case '&': {
			size_t e = entity_len(p, end);
			if (e > 0) {
				emit(s, p, e);
				p += e;
				continue;
			}
			emitz(s, "&amp;");
			break;
		}
		}
		p++;
	}
}

static bool attr_allowed(const char *tag, const char *name, const char *v, size_t vn)
{
	if (strcmp(tag, "a") == 0 && strcmp(name, "href") == 0) {
		/* no control characters at all (browsers drop some of them inside URLs), and no
		 * leading space before the scheme */
		for (size_t i = 0; i < vn; i++)
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
				return false;
		while (vn > 0 && *v == ' ')
			v++, vn--;
		return (vn >= 5 && strncasecmp(v, "http:", 5) == 0) ||
		       (vn >= 6 && strncasecmp(v, "https:", 6) == 0) ||
		       (vn >= 7 && strncasecmp(v, "mailto:", 7) == 0);
	}
	if (strcmp(name, "title") == 0 && (strcmp(tag, "a") == 0 || strcmp(tag, "abbr") == 0))
		return true;
	if ((strcmp(name, "colspan") == 0 || strcmp(name, "rowspan") == 0 || strcmp(name, "start") == 0) &&
	    (strcmp(tag, "td") == 0 || strcmp(tag, "th") == 0 || strcmp(tag, "ol") == 0)) {
		if (vn == 0 || vn > 3)
			return false;
		for (size_t i = 0; i < vn; i++)
			if (v[i] < '0' || v[i] > '9')
				return false;
		return true;
	}
	if (strcmp(name, "align") == 0)
		return (vn == 4 && strncasecmp(v, "left", 4) == 0) || (vn == 5 && strncasecmp(v, "right", 5) == 0) ||
		       (vn == 6 && strncasecmp(v, "center", 6) == 0) ||
		       (vn == 7 && strncasecmp(v, "justify", 7) == 0);
	return false;
}

/* Skips to the end of a raw-text element's closing tag; returns the position after it. */
static const char *skip_element(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);
	for (; p + 2 + n <= end; p++) {
		if (p[0] == '<' && p[1] == '/' && strncasecmp(p + 2, name, n) == 0 &&
		    (p + 2 + n == end || is_space(p[2 + n]) || p[2 + n] == '>' || p[2 + n] == '/')) {
			const char *gt = memchr(p, '>', (size_t)(end - p));
			return gt ? gt + 1 : end;
		}
	}
	return end;
}

/* Parses a tag starting after '<' (or "</"): name lower-cased into name; returns the end of
 * the name. */
static const char *tag_name(const char *p, const char *end, char *name, size_t nsz)
{
	size_t n = 0;
	while (p < end && (is_alnum(*p) || *p == '-' || *p == ':' || *p == '_')) {
		if (n + 1 < nsz)
			name[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		else
			n = nsz; /* too long: no element we know */
		p++;
	}
	name[n < nsz ? n : 0] = '\0';
	if (n >= nsz)
		name[0] = '\0';
	return p;
}

static void close_to(san *s, int k)
{
	while (s->depth > k) {
		s->depth--;
		arca_buf_printf(s->out, "</%s>", s->stack[s->depth]);
	}
}

char *arca_api_sanitize_html(const char *html, size_t len, size_t max, bool *truncated)
{
	arca_buf out;
	san s = {.out = &out, .depth = 0};
	const char *p = html, *end = html + len;
	size_t reserve = SAN_MAX_DEPTH * 16;
	arca_buf_init(&out, max + 1);
	s.limit = max > reserve ? max - reserve : 0;
	*truncated = false;
	while (p < end && !s.full) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		const char *stop = lt ? lt : end;
		emit_text(&s, p, (size_t)(stop - p), false);
		p = stop;
		if (p >= end)
			break;
		if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
			const char *e = p + 4;
			for (; e + 3 <= end && memcmp(e, "-->", 3) != 0; e++)
				;
			p = e + 3 <= end ? e + 3 : end;
		} else if (end - p >= 2 && (p[1] == '!' || p[1] == '?')) {
			const char *gt = memchr(p, '>', (size_t)(end - p));
			p = gt ? gt + 1 : end;
		} else if (end - p >= 2 && p[1] == '/' && end - p >= 3 && is_alpha(p[2])) {
			char name[12];
			const char *gt;
			p = tag_name(p + 2, end, name, sizeof(name));
			gt = memchr(p, '>', (size_t)(end - p));
			p = gt ? gt + 1 : end;
			if (name[0] && in_list(allowed_tags, name) && !in_list(void_tags, name))
				for (int k = s.depth - 1; k >= 0; k--)
					if (strcmp(s.stack[k], name) == 0) {
						close_to(&s, k);
						break;
					}
		} else if (end - p >= 2 && is_alpha(p[1])) {
			char name[12], tag[16 * 1024];
			size_t tn = 0;
			bool keep, dropped;
			p = tag_name(p + 1, end, name, sizeof(name));
			keep = name[0] && in_list(allowed_tags, name) && s.depth < SAN_MAX_DEPTH;
			dropped = name[0] && in_list(drop_tags, name);
			if (keep)
				tn = (size_t)snprintf(tag, sizeof(tag), "<%s", name);
			/* attributes, up to '>' outside quotes */
			while (p < end && *p != '>') {
				char an[32];
				size_t ann = 0;
				const char *v = NULL;
				size_t vn = 0;
				if (is_space(*p) || *p == '/') {
					p++;
					continue;
				}
				while (p < end && !is_space(*p) && *p != '=' && *p != '>' && *p != '/') {
					if (ann + 1 < sizeof(an))
						an[ann++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
					p++;
				}
				an[ann] = '\0';
				while (p < end && is_space(*p))
					p++;
				if (p < end && *p == '=') {
					p++;
					while (p < end && is_space(*p))
						p++;
					if (p < end && (*p == '"' || *p == '\'')) {
						char q = *p++;
						const char *qe = memchr(p, q, (size_t)(end - p));
						v = p;
						vn = (size_t)((qe ? qe : end) - p);
						p = qe ? qe + 1 : end;
					} else {
						v = p;
						while (p < end && !is_space(*p) && *p != '>')
							p++;
						vn = (size_t)(p - v);
					}
				}
				if (keep && v != NULL && attr_allowed(name, an, v, vn)) {
					arca_buf ab;
					while (vn > 0 && *v == ' ') /* URLs: as browsers read them */
						v++, vn--;
					san as = {.out = &ab, .limit = sizeof(tag) / 2};
					arca_buf_init(&ab, sizeof(tag));
					emit_text(&as, v, vn, true);
					if (!as.full && ab.data != NULL && tn + ann + ab.len + 8 < sizeof(tag))
						tn += (size_t)snprintf(tag + tn, sizeof(tag) - tn, " %s=\"%s\"", an,
						                       ab.data);
					else if (!as.full && ab.data == NULL && tn + ann + 8 < sizeof(tag))
						tn += (size_t)snprintf(tag + tn, sizeof(tag) - tn, " %s=\"\"", an);
					arca_buf_free(&ab);
				}
			}
			p = p < end ? p + 1 : end;
			if (dropped) {
				p = skip_element(p, end, name);
				continue;
			}
			if (!keep)
				continue;
			if (strcmp(name, "a") == 0)
				tn += (size_t)snprintf(tag + tn, sizeof(tag) - tn,
				                       " rel=\"noopener noreferrer nofollow\" target=\"_blank\"");
			emit(&s, tag, tn);
			emitz(&s, ">");
			if (!s.full && !in_list(void_tags, name)) {
				snprintf(s.stack[s.depth], sizeof(s.stack[0]), "%s", name);
				s.depth++;
			}
		} else {
			emitz(&s, "&lt;");
			p++;
		}
	}
	close_to(&s, 0);
	*truncated = s.full;
	if (out.data == NULL)
		return strdup("");
	return arca_buf_steal(&out, NULL);
}

/* ---- the message ---- */

typedef struct {
	arca_buf text, html;
	json_t *atts;
	uint64_t want; /* attachment wanted for download, UINT64_MAX: none */
	uint64_t index;
	arca_buf *dl;
	char *dl_type, *dl_name;
	size_t dl_tsz, dl_nsz;
	bool found;
	unsigned parts;
} walk_ctx;

static void decode_to(GMimeObject *obj, bool to_utf8, arca_buf *out)
{
	GMimeStream *mem = g_mime_stream_mem_new(), *target = mem;
	GByteArray *ba;
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m != NULL)
			g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem);
	} else {
		GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
		if (to_utf8) {
			const char *cs = g_mime_object_get_content_type_parameter(obj, "charset");
			if (cs != NULL && strcasecmp(cs, "utf-8") != 0 && strcasecmp(cs, "us-ascii") != 0) {
				GMimeFilter *f = g_mime_filter_charset_new(cs, "utf-8");
				if (f != NULL) {
					target = g_mime_stream_filter_new(mem);
					g_mime_stream_filter_add(GMIME_STREAM_FILTER(target), f);
					g_object_unref(f);
				}
			}
		}
		if (w != NULL)
			g_mime_data_wrapper_write_to_stream(w, target);
		g_mime_stream_flush(target);
	}
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (ba != NULL && ba->len > 0 &&
	    arca_buf_append(out, ba->data, ba->len) == ARCA_ERR_LIMIT && out->max > out->len)
		arca_buf_append(out, ba->data, out->max - out->len); /* as much as fits */
	if (target != mem)
		g_object_unref(target);
	g_object_unref(mem);
}

static uint64_t decoded_size(GMimeObject *obj)
{
	arca_buf b;
	uint64_t n;
	arca_buf_init(&b, ARCA_MAX_MESSAGE_SIZE);
	decode_to(obj, false, &b);
	n = b.len;
	arca_buf_free(&b);
	return n;
}

static void walk(GMimeObject *obj, unsigned depth, walk_ctx *w)
{
	GMimeContentType *ct;
	char *mime, *fixed_name;
	const char *filename = NULL;
	bool is_att;
	if (obj == NULL || depth > ARCA_MIME_MAX_DEPTH || w->parts++ >= ARCA_MIME_MAX_PARTS)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		int n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
		for (int i = 0; i < n; i++)
			walk(g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), depth + 1, w);
		return;
	}
	if (!GMIME_IS_PART(obj) && !GMIME_IS_MESSAGE_PART(obj))
		return;
	ct = g_mime_object_get_content_type(obj);
	mime = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
	if (mime == NULL)
		mime = g_strdup("application/octet-stream");
	for (char *q = mime; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q + 32);
	if (GMIME_IS_PART(obj)) {
		filename = g_mime_part_get_filename(GMIME_PART(obj));
		is_att = g_mime_part_is_attachment(GMIME_PART(obj)) || (filename && *filename);
	} else {
		filename = g_mime_object_get_content_disposition_parameter(obj, "filename");
		is_att = true;
	}
	if (!is_att && strcmp(mime, "text/plain") == 0) {
		if (w->text.len > 0)
			arca_buf_append(&w->text, "\n", 1);
		decode_to(obj, true, &w->text);
	} else if (!is_att && strcmp(mime, "text/html") == 0 && w->html.len == 0) {
		decode_to(obj, true, &w->html);
	} else if (w->index < ARCA_MIME_MAX_ATTACHMENTS) {
		uint64_t idx = w->index++;
		if (filename == NULL || *filename == '\0')
			filename = GMIME_IS_MESSAGE_PART(obj) ? "message.eml" : "";
		fixed_name = arca_api_utf8_fix(filename, strlen(filename), NULL);
		if (w->want == UINT64_MAX) {
			json_array_append_new(w->atts,
			                      json_pack("{s:I,s:s,s:s,s:I}", "index", (json_int_t)idx, "filename",
			                                fixed_name ? fixed_name : "", "contentType", mime,
			                                "size", (json_int_t)decoded_size(obj)));
		} else if (idx == w->want) {
			decode_to(obj, false, w->dl);
			snprintf(w->dl_type, w->dl_tsz, "%s", mime);
			snprintf(w->dl_name, w->dl_nsz, "%s", fixed_name ? fixed_name : "");
			w->found = true;
		}
		free(fixed_name);
	}
	g_free(mime);
}

static GMimeMessage *parse(const void *data, size_t len)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	g_object_unref(st);
	return m;
}

static json_t *addr_json(InternetAddressList *l)
{
	char *s = l ? internet_address_list_to_string(l, NULL, FALSE) : NULL;
	json_t *j = arca_api_jstr(s ? s : "");
	g_free(s);
	return j;
}

static json_t *text_json(arca_buf *b, size_t max, bool *truncated)
{
	size_t n;
	char *fixed = arca_api_utf8_fix(b->data ? b->data : "", b->len, &n);
	json_t *j;
	size_t cut;
	if (fixed == NULL)
		return json_string("");
	cut = utf8_cut(fixed, n, max);
	*truncated = cut < n || b->len >= b->max;
	j = json_stringn(fixed, cut);
	free(fixed);
	return j ? j : json_string("");
}

arca_status arca_api_view_message(const void *data, size_t len, json_t **out, arca_error *err)
{
	walk_ctx w = {.want = UINT64_MAX};
	GMimeMessage *m;
	GMimeHeaderList *hl;
	GDateTime *d;
	json_t *v, *headers = json_array();
	char date[40] = "";
	bool t_trunc = false, h_trunc = false;
	char *clean;
	*out = NULL;
	arca_mime_init();
	m = parse(data, len);
	if (m == NULL) {
		json_decref(headers);
		return arca_error_set(err, ARCA_ERR_CORRUPT, "the message cannot be parsed");
	}
	arca_buf_init(&w.text, ARCA_MIME_MAX_TEXT + 1);
	arca_buf_init(&w.html, ARCA_MIME_MAX_PARSE);
	w.atts = json_array();
	walk(g_mime_message_get_mime_part(m), 0, &w);
	hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
	for (int i = 0; hl && i < g_mime_header_list_get_count(hl) && i < (int)ARCA_MIME_MAX_HEADERS; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		json_array_append_new(headers, json_pack("{s:o,s:o}", "name",
		                                         arca_api_jstr(g_mime_header_get_name(h)), "value",
		                                         arca_api_jstr(g_mime_header_get_value(h))));
	}
	d = g_mime_message_get_date(m);
	if (d != NULL)
		arca_api_fmt_date((int64_t)g_date_time_to_unix(d), date, sizeof(date));
	clean = arca_api_sanitize_html(w.html.data ? w.html.data : "", w.html.len, ARCA_API_MAX_HTML,
	                               &h_trunc);
	v = json_pack("{s:I,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:O}", "size", (json_int_t)len,
	              "date", date, "subject", arca_api_jstr(g_mime_message_get_subject(m)), "from",
	              addr_json(g_mime_message_get_from(m)), "sender",
	              addr_json(g_mime_message_get_sender(m)), "replyTo",
	              addr_json(g_mime_message_get_reply_to(m)), "to",
	              addr_json(g_mime_message_get_to(m)), "cc", addr_json(g_mime_message_get_cc(m)),
	              "bcc", addr_json(g_mime_message_get_bcc(m)), "messageId",
	              arca_api_jstr(g_mime_message_get_message_id(m)), "headers", headers, "text",
	              text_json(&w.text, ARCA_MIME_MAX_TEXT, &t_trunc), "attachments", w.atts);
	if (v != NULL) {
		bool dummy;
		json_object_set_new(v, "html", clean ? text_json(&(arca_buf){.data = clean, .len = strlen(clean),
		                                                              .max = SIZE_MAX},
		                                                 ARCA_API_MAX_HTML, &dummy)
		                                     : json_string(""));
		json_object_set_new(v, "textTruncated", json_boolean(t_trunc));
		json_object_set_new(v, "htmlTruncated", json_boolean(h_trunc));
	}
	free(clean);
	json_decref(w.atts);
	arca_buf_free(&w.text);
	arca_buf_free(&w.html);
	g_object_unref(m);
	if (v == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	*out = v;
	return ARCA_OK;
}

arca_status arca_api_attachment(const void *data, size_t len, uint64_t index, arca_buf *out,
                                char *ctype, size_t csz, char *filename, size_t fsz,
                                arca_error *err)
{
	walk_ctx w = {.want = index, .dl = out, .dl_type = ctype, .dl_tsz = csz, .dl_name = filename,
	              .dl_nsz = fsz};
	GMimeMessage *m;
	arca_mime_init();
	m = parse(data, len);
	if (m == NULL)
		return arca_error_set(err, ARCA_ERR_CORRUPT, "the message cannot be parsed");
	arca_buf_init(&w.text, 1);
	arca_buf_init(&w.html, 1);
	w.atts = json_array();
	walk(g_mime_message_get_mime_part(m), 0, &w);
	json_decref(w.atts);
	arca_buf_free(&w.text);
	arca_buf_free(&w.html);
	g_object_unref(m);
	if (!w.found)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "the message has no attachment %llu",
		                      (unsigned long long)index);
	return ARCA_OK;
}

/* ENVELOPE (RFC 3501 §7.4.2): raw header values and RFC 5322 address lists. The address
 * parser is ours (not GMime's) because IMAP wants the raw tokens: names keep their
 * encoded-words for the client to decode, quoted strings are unquoted, words of a phrase are
 * joined by one space, a comment names an address without a phrase, route addresses keep
 * their @route in adl, group syntax gives (NIL NIL "name" NIL) ... (NIL NIL NIL NIL), and a
 * missing mailbox or domain is filled with MISSING_MAILBOX / MISSING_DOMAIN (all as Dovecot).
 * Garbage between addresses is skipped up to the next ',' (and ';' outside a group, as some
 * mailers separate addresses with it); at most ARCA_MIME_MAX_ADDRESSES items per field. */
#include "imap/msg_int.h"

#include <string.h>

#include "imap/write.h"

typedef struct {
	const uint8_t *p, *end;
	arca_buf name, route, mailbox, domain, comment, tmp;
	bool has_name, has_route, has_mailbox, has_domain;
	arca_buf *out;
	size_t count;
	arca_status st;
} ap;

static bool at(const ap *a, uint8_t c)
{
	return a->p < a->end && *a->p == c;
}

static void ap_put(ap *a, arca_buf *b, const void *s, size_t n)
{
	if (a->st == ARCA_OK)
		a->st = arca_msg_put(b, s, n);
}

/* Skips whitespace, folding and comments; keeps the text of the last comment. */
static void skip(ap *a)
{
	while (a->p < a->end) {
		uint8_t c = *a->p;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			a->p++;
		} else if (c == '(') {
			size_t depth = 0;
			arca_buf_reset(&a->comment);
			while (a->p < a->end) {
				c = *a->p++;
				if (c == '\\' && a->p < a->end) {
					ap_put(a, &a->comment, a->p, 1);
					a->p++;
					continue;
				}
				if (c == '(') {
					if (depth++ == 0)
						continue;
				} else if (c == ')' && --depth == 0) {
					break;
				}
				if (c != '\r' && c != '\n')
					ap_put(a, &a->comment, &c, 1);
			}
		} else {
			break;
		}
	}
}

/* RFC 5322 atext, plus 8-bit (raw UTF-8 or legacy bytes in names). */
#define ROW(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const uint8_t atext_tbl[256] = {
	ROW(0),
	ROW(0),
	0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, /* !#$%&'*+-/ */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1, /* 0-9 = ? */
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* A-O */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* P-Z ^ _ */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* ` a-o */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* p-z { | } ~ */
	ROW(1), ROW(1), ROW(1), ROW(1), ROW(1), ROW(1), ROW(1), ROW(1),
};
#undef ROW

static bool atext(uint8_t c)
{
	return atext_tbl[c] != 0;
}

/* quoted-string at a->p, content appended to b (unescaped, folding removed) */
static void quoted(ap *a, arca_buf *b)
{
	a->p++;
	while (a->p < a->end && *a->p != '"') {
		const uint8_t *s = a->p;
		while (a->p < a->end && *a->p != '"' && *a->p != '\\' && *a->p != '\r' && *a->p != '\n')
			a->p++;
		if (a->p > s)
			ap_put(a, b, s, (size_t)(a->p - s));
		if (a->p >= a->end || *a->p == '"')
			break;
		if (*a->p == '\\' && a->p + 1 < a->end) {
			ap_put(a, b, a->p + 1, 1);
			a->p += 2;
		} else {
			a->p++; /* CR, LF of folding; a lone backslash at the end */
		}
	}
	if (a->p < a->end)
		a->p++;
	skip(a);
}

/* phrase = 1*word / obs-phrase; words joined by one space. Returns the number of words;
 * *plain says the phrase was one unquoted word (which is then also a valid local-part). */
static size_t phrase(ap *a, arca_buf *b, bool *plain)
{
	size_t words = 0;
	*plain = true;
	while (a->p < a->end && a->st == ARCA_OK) {
		if (*a->p == '"') {
			if (words++ > 0)
				ap_put(a, b, " ", 1);
			quoted(a, b);
			*plain = false;
		} else if (atext(*a->p) || *a->p == '.') {
			const uint8_t *s = a->p;
			while (a->p < a->end && (atext(*a->p) || *a->p == '.'))
				a->p++;
			if (words++ > 0)
				ap_put(a, b, " ", 1);
			ap_put(a, b, s, (size_t)(a->p - s));
			skip(a);
		} else {
			break;
		}
	}
	if (words != 1)
		*plain = false;
	return words;
}

/* dot-atom (lenient: empty atoms and CFWS around dots allowed) */
static bool dot_atom(ap *a, arca_buf *b)
{
	bool any = false;
	while (a->p < a->end && a->st == ARCA_OK) {
		const uint8_t *s = a->p;
		while (a->p < a->end && atext(*a->p))
			a->p++;
		if (a->p > s) {
			ap_put(a, b, s, (size_t)(a->p - s));
			any = true;
		}
		skip(a);
		if (!at(a, '.'))
			break;
		ap_put(a, b, ".", 1);
		any = true;
		a->p++;
		skip(a);
	}
	return any;
}

static void local_part(ap *a)
{
	arca_buf_reset(&a->mailbox);
	if (at(a, '"')) {
		quoted(a, &a->mailbox);
		a->has_mailbox = true;
	} else {
		a->has_mailbox = dot_atom(a, &a->mailbox);
	}
}

/* a->p at '@' */
static bool domain(ap *a, arca_buf *b)
{
	a->p++;
	skip(a);
	if (at(a, '[')) {
		const uint8_t *s = a->p;
		while (a->p < a->end && *a->p != ']')
			a->p++;
		if (a->p < a->end)
			a->p++;
		ap_put(a, b, s, (size_t)(a->p - s));
		skip(a);
		return true;
	}
	return dot_atom(a, b);
}

/* a->p at '<': [@route,@route:] local-part [@ domain] '>' */
static void angle_addr(ap *a)
{
	a->p++;
	skip(a);
	if (at(a, '@')) {
		arca_buf_reset(&a->route);
		while (at(a, '@')) {
			if (a->route.len > 0)
				ap_put(a, &a->route, ",", 1);
			ap_put(a, &a->route, "@", 1);
			domain(a, &a->route);
			while (at(a, ',')) {
				a->p++;
				skip(a);
			}
		}
		a->has_route = true;
		if (at(a, ':')) {
			a->p++;
			skip(a);
		}
	}
	if (!at(a, '>'))
		local_part(a);
	if (at(a, '@')) {
		arca_buf_reset(&a->domain);
		a->has_domain = domain(a, &a->domain);
	}
	/* skip whatever is left up to '>' */
	while (a->p < a->end && *a->p != '>' && *a->p != ',')
		a->p++;
	if (at(a, '>'))
		a->p++;
	skip(a);
}

static void put_nstring(ap *a, bool has, const char *s, size_t len)
{
	if (a->st != ARCA_OK)
		return;
	if (!has)
		a->st = arca_buf_append(a->out, "NIL", 3);
	else
		a->st = arca_imap_write_string(a->out, s, len);
}

static void emit_raw(ap *a, const char *s)
{
	if (a->st == ARCA_OK)
		a->st = arca_msg_put(a->out, s, strlen(s));
}

static void emit_address(ap *a)
{
	if (a->count >= ARCA_MIME_MAX_ADDRESSES)
		return;
	a->count++;
	emit_raw(a, "(");
	put_nstring(a, a->has_name && a->name.len > 0, a->name.data, a->name.len);
	emit_raw(a, " ");
	put_nstring(a, a->has_route, a->route.data, a->route.len);
	emit_raw(a, " ");
	if (a->has_mailbox)
		put_nstring(a, true, a->mailbox.data, a->mailbox.len);
	else
		emit_raw(a, "\"MISSING_MAILBOX\"");
	emit_raw(a, " ");
	if (a->has_domain)
		put_nstring(a, true, a->domain.data, a->domain.len);
	else
		emit_raw(a, "\"MISSING_DOMAIN\"");
	emit_raw(a, ")");
}

static void reset_addr(ap *a)
{
	arca_buf_reset(&a->name);
	arca_buf_reset(&a->route);
	arca_buf_reset(&a->mailbox);
	arca_buf_reset(&a->domain);
	arca_buf_reset(&a->comment);
	a->has_name = a->has_route = a->has_mailbox = a->has_domain = false;
}

/* mailbox = name-addr / addr-spec. Emits it if anything was found; false if nothing was
 * consumed. */
static bool mailbox(ap *a)
{
	const uint8_t *start = a->p;
	bool plain;
	reset_addr(a);
	a->has_name = phrase(a, &a->name, &plain) > 0;
	if (at(a, '<')) {
		angle_addr(a);
	} else {
		if (plain && !at(a, '.')) {
			/* "user@domain": the one word read is the local-part */
			arca_buf tmp = a->mailbox;
			a->mailbox = a->name;
			a->name = tmp;
			arca_buf_reset(&a->name);
			a->has_mailbox = true;
			a->has_name = false;
		} else {
			/* addr-spec: re-read from the start as local-part [@ domain] */
			a->p = start;
			reset_addr(a);
			local_part(a);
		}
		if (at(a, '@')) {
			arca_buf_reset(&a->domain);
			a->has_domain = domain(a, &a->domain);
		}
		if (a->comment.len > 0) {
			arca_buf_reset(&a->name);
			ap_put(a, &a->name, a->comment.data, a->comment.len);
			a->has_name = true;
		}
	}
	if (a->p == start)
		return false;
	if (a->has_mailbox || a->has_domain || a->has_route || a->has_name)
		emit_address(a);
	return true;
}

/* group = display-name ":" [mailbox-list] ";" ; returns false (nothing consumed) if the text
 * at a->p is not a group. */
static bool group(ap *a)
{
	const uint8_t *start = a->p;
	bool plain;
	arca_buf_reset(&a->tmp);
	if (phrase(a, &a->tmp, &plain) == 0 || !at(a, ':')) {
		a->p = start;
		return false;
	}
	a->p++;
	skip(a);
	if (a->count < ARCA_MIME_MAX_ADDRESSES) {
		a->count++;
		emit_raw(a, "(NIL NIL ");
		if (a->st == ARCA_OK)
			a->st = arca_imap_write_string(a->out, a->tmp.data, a->tmp.len);
		emit_raw(a, " NIL)");
	}
	while (a->p < a->end && !at(a, ';') && a->st == ARCA_OK) {
		if (at(a, ',')) {
			a->p++;
			skip(a);
			continue;
		}
		if (!mailbox(a)) {
			/* garbage inside the group: skip to the next ',' or ';' */
			while (a->p < a->end && *a->p != ',' && *a->p != ';')
				a->p++;
		}
		skip(a);
	}
	if (at(a, ';'))
		a->p++;
	skip(a);
	if (a->count < ARCA_MIME_MAX_ADDRESSES) {
		a->count++;
		emit_raw(a, "(NIL NIL NIL NIL)");
	}
	return true;
}

/* Writes the address list of r as ((...)(...)) or NIL; *any says whether one was written.
 * a holds the work buffers (kept across fields, so that an envelope allocates them once). */
static arca_status write_addresses(const arca_imap_msg *m, ap *a, arca_msg_range r, arca_buf *out,
                                   bool *any)
{
	size_t mark = out->len;
	*any = false;
	if (!arca_msg_range_present(r))
		return arca_buf_append(out, "NIL", 3);
	a->p = m->data + r.off;
	/* Only the first ARCA_MIME_MAX_FIELD bytes are read, so that no part of an address can
	 * outgrow the work buffers: any error below comes from out. */
	a->end = a->p + (r.len < ARCA_MIME_MAX_FIELD ? r.len : ARCA_MIME_MAX_FIELD);
	a->out = out;
	a->count = 0;
	a->st = arca_buf_append(out, "(", 1);
	skip(a);
	while (a->p < a->end && a->st == ARCA_OK && a->count < ARCA_MIME_MAX_ADDRESSES) {
		if (at(a, ',') || at(a, ';')) {
			a->p++;
			skip(a);
			continue;
		}
		if (!group(a) && !mailbox(a)) {
			/* garbage: skip to the next separator */
			while (a->p < a->end && *a->p != ',' && *a->p != ';')
				a->p++;
		}
		skip(a);
	}
	if (a->st == ARCA_OK) {
		if (a->count == 0) {
			out->len = mark;
			out->data[mark] = '\0';
			a->st = arca_buf_append(out, "NIL", 3);
		} else {
			a->st = arca_buf_append(out, ")", 1);
			*any = true;
		}
	}
	return a->st;
}

/* nstring of a raw header value, unfolded (copied only when it is folded) */
static arca_status write_value(const arca_imap_msg *m, arca_msg_range r, arca_buf *tmp, arca_buf *out)
{
	const uint8_t *p, *end;
	arca_status st;
	if (!arca_msg_range_present(r))
		return arca_buf_append(out, "NIL", 3);
	p = m->data + r.off;
	end = p + r.len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (memchr(p, '\n', (size_t)(end - p)) == NULL && (size_t)(end - p) <= ARCA_MIME_MAX_FIELD)
		return arca_imap_write_string(out, p, (size_t)(end - p));
	arca_buf_reset(tmp);
	st = arca_msg_unfold(m, r, tmp);
	if (st == ARCA_OK)
		st = arca_imap_write_string(out, tmp->data, tmp->len);
	return st;
}

arca_status arca_msg_write_envelope(const arca_imap_msg *m, const arca_msg_part *p, arca_buf *out)
{
	const arca_msg_range *env = p->env;
	ap a;
	arca_status st;
	bool any;
	size_t from_off, from_len, mark;
	if (env == NULL)
		return arca_buf_appendz(out, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	memset(&a, 0, sizeof(a));
	arca_buf_init(&a.name, ARCA_MIME_MAX_FIELD + 16);
	arca_buf_init(&a.route, ARCA_MIME_MAX_FIELD + 16);
	arca_buf_init(&a.mailbox, ARCA_MIME_MAX_FIELD + 16);
	arca_buf_init(&a.domain, ARCA_MIME_MAX_FIELD + 16);
	arca_buf_init(&a.comment, ARCA_MIME_MAX_FIELD + 16);
	arca_buf_init(&a.tmp, ARCA_MIME_MAX_FIELD + 16);
	st = arca_buf_append(out, "(", 1);
#define STEP(x)                                                                                    \
	do {                                                                                       \
		if (st == ARCA_OK)                                                                 \
			st = (x);                                                                  \
	} while (0)
	STEP(write_value(m, env[ARCA_MSG_ENV_DATE], &a.tmp, out));
	STEP(arca_msg_put(out, " ", 1));
	STEP(write_value(m, env[ARCA_MSG_ENV_SUBJECT], &a.tmp, out));
	STEP(arca_msg_put(out, " ", 1));
	/* From, then Sender and Reply-To, which are From when absent or empty (RFC 3501) */
	from_off = out->len;
	STEP(write_addresses(m, &a, env[ARCA_MSG_ENV_FROM], out, &any));
	from_len = out->len - from_off;
	for (int f = ARCA_MSG_ENV_SENDER; f <= ARCA_MSG_ENV_REPLY_TO; f++) {
		STEP(arca_msg_put(out, " ", 1));
		mark = out->len;
		STEP(write_addresses(m, &a, env[f], out, &any));
		if (st == ARCA_OK && !any) {
			out->len = mark;
			/* reserve first: the copy's source is out itself */
			STEP(arca_buf_reserve(out, from_len));
			if (st == ARCA_OK) {
				memcpy(out->data + out->len, out->data + from_off, from_len);
				out->len += from_len;
				out->data[out->len] = '\0';
			}
		}
	}
	for (int f = ARCA_MSG_ENV_TO; f <= ARCA_MSG_ENV_BCC; f++) {
		STEP(arca_msg_put(out, " ", 1));
		STEP(write_addresses(m, &a, env[f], out, &any));
	}
	STEP(arca_msg_put(out, " ", 1));
	STEP(write_value(m, env[ARCA_MSG_ENV_IN_REPLY_TO], &a.tmp, out));
	STEP(arca_msg_put(out, " ", 1));
	STEP(write_value(m, env[ARCA_MSG_ENV_MESSAGE_ID], &a.tmp, out));
	STEP(arca_buf_append(out, ")", 1));
#undef STEP
	arca_buf_free(&a.name);
	arca_buf_free(&a.route);
	arca_buf_free(&a.mailbox);
	arca_buf_free(&a.domain);
	arca_buf_free(&a.comment);
	arca_buf_free(&a.tmp);
	return st;
}

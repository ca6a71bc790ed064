/* FETCH and UID FETCH: every RFC 3501 item, BINARY (RFC 3516), MODSEQ/CHANGEDSINCE (RFC 7162).
 * Runs on a worker: each message is read from its store (decrypted, decompressed), parsed once
 * for all items asked, and its response streamed out with flow control.
 *
 * What a message's content says that FETCH sends without its bytes (ENVELOPE, BODY,
 * BODYSTRUCTURE, the Date as INTERNALDATE, the size) comes from the process's FETCH cache
 * (fetch_cache.h) when it is there; a metadata FETCH of a cached folder reads no message. A
 * parsed message that is not in the cache is put there. Items that are the whole message
 * (RFC822, BODY[], BINARY[], BINARY.SIZE[], with or without <partial>) need its bytes but no
 * parse: mbsync fetches every message as UID FETCH n (BODY.PEEK[]).
 *
 * FLAGS are always (\Seen): archived mail has been read, and nothing can change it.
 * INTERNALDATE is the message's own Date (in the zone it was written in), falling back to the
 * time it was archived when it has none: an archive imported years after the fact would
 * otherwise show every message as arriving on import day (docs/imap.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/fetch_cache.h"
#include "imap/imapd_int.h"
#include "imap/message.h"
#include "imap/write.h"
#include "lib/log.h"

#define FLUSH_AT (64u * 1024u)
#define ITEM_MAX (64u * 1024u * 1024u) /* one ENVELOPE, BODYSTRUCTURE, ... */

typedef enum {
	IT_UID,
	IT_FLAGS,
	IT_INTERNALDATE,
	IT_SIZE,
	IT_ENVELOPE,
	IT_BODY,          /* BODY without section: non-extended structure */
	IT_BODYSTRUCTURE,
	IT_SECTION,       /* BODY[...], BINARY[...], BINARY.SIZE[...] */
	IT_RFC822,
	IT_RFC822_HEADER,
	IT_RFC822_TEXT,
	IT_MODSEQ,
} item_kind;

typedef struct {
	item_kind kind;
	arca_imap_fetch_section sec;
} fetch_item;

typedef struct {
	fetch_item items[64];
	size_t n;
	bool need_meta;     /* ENVELOPE, BODY, BODYSTRUCTURE, INTERNALDATE: cached or parsed */
	bool need_raw;      /* some item sends (part of) the message's bytes */
	bool need_parse;    /* ... and one of them is not the whole message */
	bool has_size;
	bool has_uid;
	bool changedsince;
	uint64_t since;
	uint8_t *set;       /* bitmap over the mailbox's messages */
	arca_error err;
} fetch_data;

static void fetch_data_free(void *p)
{
	fetch_data *fd = p;
	for (size_t i = 0; i < fd->n; i++)
		arca_imap_fetch_section_clear(&fd->items[i].sec);
	free(fd->set);
	free(fd);
}

static bool add_item(fetch_data *fd, item_kind k)
{
	if (fd->n == sizeof(fd->items) / sizeof(fd->items[0]))
		return false;
	memset(&fd->items[fd->n], 0, sizeof(fd->items[0]));
	fd->items[fd->n++].kind = k;
	fd->has_uid |= k == IT_UID;
	fd->has_size |= k == IT_SIZE;
	fd->need_meta |= k == IT_INTERNALDATE || k == IT_ENVELOPE || k == IT_BODY || k == IT_BODYSTRUCTURE;
	fd->need_raw |= k == IT_SECTION || k == IT_RFC822 || k == IT_RFC822_HEADER || k == IT_RFC822_TEXT;
	fd->need_parse |= k == IT_RFC822_HEADER || k == IT_RFC822_TEXT;
	return true;
}

/* BODY[], BINARY[] and BINARY.SIZE[]: the whole message, no parse needed. */
static bool whole_message(const arca_imap_fetch_section *sec)
{
	return sec->nparts == 0 && (sec->kind != ARCA_IMAP_FETCH_BODY || sec->spec == ARCA_IMAP_SPEC_ALL);
}

static bool parse_item(fetch_data *fd, const arca_imap_node *n, arca_error *err)
{
	const char *t;
	if (arca_imap_node_kind(n) == ARCA_IMAP_NODE_SECTION) {
		if (!add_item(fd, IT_SECTION)) {
			arca_error_set(err, ARCA_ERR_LIMIT, "too many FETCH items");
			return false;
		}
		if (arca_imap_fetch_section_from_node(n, &fd->items[fd->n - 1].sec, err) != ARCA_OK) {
			fd->n--;
			return false;
		}
		fd->need_parse |= !whole_message(&fd->items[fd->n - 1].sec);
		return true;
	}
	t = arca_imap_node_text(n, NULL);
	if (t == NULL || arca_imap_node_kind(n) != ARCA_IMAP_NODE_ATOM) {
		arca_error_set(err, ARCA_ERR_SYNTAX, "invalid FETCH item");
		return false;
	}
#define IS(s) (strcasecmp(t, s) == 0)
	if (IS("UID"))
		return add_item(fd, IT_UID);
	if (IS("FLAGS"))
		return add_item(fd, IT_FLAGS);
	if (IS("INTERNALDATE"))
		return add_item(fd, IT_INTERNALDATE);
	if (IS("RFC822.SIZE"))
		return add_item(fd, IT_SIZE);
	if (IS("ENVELOPE"))
		return add_item(fd, IT_ENVELOPE);
	if (IS("BODY"))
		return add_item(fd, IT_BODY);
	if (IS("BODYSTRUCTURE"))
		return add_item(fd, IT_BODYSTRUCTURE);
	if (IS("RFC822"))
		return add_item(fd, IT_RFC822);
	if (IS("RFC822.HEADER"))
		return add_item(fd, IT_RFC822_HEADER);
	if (IS("RFC822.TEXT"))
		return add_item(fd, IT_RFC822_TEXT);
	if (IS("MODSEQ"))
		return add_item(fd, IT_MODSEQ);
	if (IS("ALL"))
		return add_item(fd, IT_FLAGS) && add_item(fd, IT_INTERNALDATE) && add_item(fd, IT_SIZE) &&
		       add_item(fd, IT_ENVELOPE);
	if (IS("FAST"))
		return add_item(fd, IT_FLAGS) && add_item(fd, IT_INTERNALDATE) && add_item(fd, IT_SIZE);
	if (IS("FULL"))
		return add_item(fd, IT_FLAGS) && add_item(fd, IT_INTERNALDATE) && add_item(fd, IT_SIZE) &&
		       add_item(fd, IT_ENVELOPE) && add_item(fd, IT_BODY);
#undef IS
	arca_error_set(err, ARCA_ERR_SYNTAX, "unknown FETCH item %.40s", t);
	return false;
}

/* a literal (literal8 when it holds NUL: only BINARY keeps NUL bytes) */
static void put_literal(imapd_cmd *c, const uint8_t *data, size_t len)
{
	bool nul = memchr(data, 0, len) != NULL;
	imapd_printf(c, "%s{%zu}\r\n", nul ? "~" : "", len);
	imapd_write(c, data, len);
}

static void put_buf(imapd_cmd *c, arca_buf *b)
{
	if (b->len > 0)
		imapd_write(c, b->data, b->len);
	arca_buf_reset(b);
}

typedef struct {
	arca_buf raw;     /* the message */
	arca_buf tmp;     /* one item's text */
	arca_buf scratch; /* a section that is not one range of raw */
	arca_buf meta;    /* the strings of the message's arca_imap_fcache_val */
	bool unknown_cte;
} fetch_bufs;

static const uint8_t *raw_bytes(const arca_buf *raw)
{
	return raw->data != NULL ? (const uint8_t *)raw->data : (const uint8_t *)"";
}

/* A whole-message section without a parse, byte for byte what arca_imap_msg_fetch answers
 * (message.c): the raw bytes or their <partial> range ("" from at or past the end); BODY[]
 * turns NUL into 0x80 (a literal cannot carry NUL), BINARY keeps it (literal8); BINARY.SIZE
 * is the length (data NULL). */
static void whole_message_section(const arca_imap_fetch_section *sec, const arca_buf *raw,
                                  arca_buf *scratch, const uint8_t **data, size_t *len)
{
	*data = raw_bytes(raw);
	*len = raw->len;
	if (sec->kind == ARCA_IMAP_FETCH_BINARY_SIZE) {
		*data = NULL;
		return;
	}
	arca_imap_fetch_section_partial(sec, data, len);
	arca_buf_reset(scratch);
	if (sec->kind == ARCA_IMAP_FETCH_BODY && *len > 0 && memchr(*data, 0, *len) != NULL &&
	    arca_buf_append(scratch, *data, *len) == ARCA_OK) {
		uint8_t *w = (uint8_t *)scratch->data;
		for (size_t i = 0; i < *len; i++)
			if (w[i] == 0)
				w[i] = 0x80;
		*data = w;
	}
}

/* The cacheable values of a parsed message into b->meta and *v: all of them for the cache,
 * otherwise only those fd asks for. False if one could not be written whole (not cached). */
static bool derive_meta(const arca_imap_msg *m, const fetch_data *fd, bool all, fetch_bufs *b,
                        arca_imap_fcache_val *v)
{
	bool want[3] = {all, all, all};
	size_t end[3];
	arca_status st = ARCA_OK;
	for (size_t i = 0; i < fd->n; i++) {
		want[0] |= fd->items[i].kind == IT_ENVELOPE;
		want[1] |= fd->items[i].kind == IT_BODY;
		want[2] |= fd->items[i].kind == IT_BODYSTRUCTURE;
	}
	arca_buf_reset(&b->meta);
	for (int i = 0; i < 3; i++) {
		arca_status s2 = ARCA_OK;
		if (want[i])
			s2 = i == 0 ? arca_imap_msg_envelope(m, &b->meta) :
			              arca_imap_msg_bodystructure(m, i == 2, &b->meta);
		if (st == ARCA_OK)
			st = s2;
		end[i] = b->meta.len;
	}
	memset(v, 0, sizeof(*v));
	v->envelope = (const char *)raw_bytes(&b->meta);
	v->envelope_len = end[0];
	v->body = v->envelope + end[0];
	v->body_len = end[1] - end[0];
	v->bodystructure = v->body + v->body_len;
	v->bodystructure_len = end[2] - end[1];
	v->has_date = arca_imap_msg_date(m, &v->date, &v->tz) == ARCA_OK;
	v->size = b->raw.len;
	return st == ARCA_OK;
}

/* Reads (and when needed parses) message idx; fills *meta from the parse unless cached. A
 * parsed message not yet in the cache is put there. */
static bool read_message(imapd_cmd *c, fetch_data *fd, size_t idx, bool cached, fetch_bufs *b,
                         arca_imap_msg **m, arca_imap_fcache_val *meta)
{
	imapd_session *s = c->s;
	arca_imap_fcache *cache = s->d->cfg.fetch_cache;
	uint32_t uid, store_id;
	uint64_t msg_id;
	arca_error e;
	imapd_mailbox_entry(s->mbox, idx, &uid, &store_id, &msg_id);
	arca_buf_reset(&b->raw);
	if (arca_instance_get(c->h->inst, store_id, msg_id, &b->raw, &e) != ARCA_OK ||
	    ((fd->need_parse || (fd->need_meta && !cached)) &&
	     arca_imap_msg_parse(raw_bytes(&b->raw), b->raw.len, m, &e) != ARCA_OK)) {
		arca_log(ARCA_LOG_ERROR, "imap", "session=%llu cannot read message %u:%llu (uid %u): %s",
		         (unsigned long long)s->id, store_id, (unsigned long long)msg_id, uid, e.msg);
		return false;
	}
	if (*m == NULL || cached)
		return true;
	if (arca_imap_fcache_enabled(cache)) {
		/* a presence check (no copy) when the FETCH wants none of the values */
		if ((fd->need_meta || !arca_imap_fcache_get(cache, store_id, msg_id, NULL, NULL)) &&
		    derive_meta(*m, fd, true, b, meta))
			arca_imap_fcache_put(cache, store_id, msg_id, meta);
	} else if (fd->need_meta) {
		derive_meta(*m, fd, false, b, meta);
	}
	return true;
}

/* One message's response. Returns false when the message could not be read. */
static bool fetch_one(imapd_cmd *c, fetch_data *fd, size_t idx, fetch_bufs *b)
{
	imapd_session *s = c->s;
	uint32_t uid, store_id;
	uint64_t msg_id, size = 0;
	int64_t archived = 0;
	arca_imap_msg *m = NULL;
	arca_imap_fcache_val meta;
	bool cached = false;
	arca_error e;
	const char *sp = "";
	imapd_mailbox_entry(s->mbox, idx, &uid, &store_id, &msg_id);
	if (fd->changedsince && uid <= fd->since)
		return true;
	memset(&meta, 0, sizeof(meta));
	if (fd->need_meta)
		cached = arca_imap_fcache_get(s->d->cfg.fetch_cache, store_id, msg_id, &b->meta, &meta);
	if (fd->need_raw || (fd->need_meta && !cached)) {
		if (!read_message(c, fd, idx, cached, b, &m, &meta))
			return false;
		size = b->raw.len;
	} else if (cached) {
		size = meta.size;
	} else if (fd->has_size && imapd_mailbox_msginfo(c->h, s->mbox, idx, &size, &archived, &e) != ARCA_OK) {
		arca_log(ARCA_LOG_ERROR, "imap", "session=%llu no size for uid %u: %s",
		         (unsigned long long)s->id, uid, e.msg);
		return false;
	}
	imapd_printf(c, "* %zu FETCH (", idx + 1);
	if (c->uid && !fd->has_uid) {
		imapd_printf(c, "UID %u", uid);
		sp = " ";
	}
	for (size_t i = 0; i < fd->n; i++) {
		fetch_item *it = &fd->items[i];
		const uint8_t *data = NULL;
		size_t len = 0;
		if (it->kind == IT_SECTION && whole_message(&it->sec)) {
			whole_message_section(&it->sec, &b->raw, &b->scratch, &data, &len);
		} else if (it->kind == IT_SECTION &&
		           arca_imap_msg_fetch(m, &it->sec, &b->scratch, &data, &len, &e) ==
		                   ARCA_IMAP_MSG_UNKNOWN_CTE) {
			b->unknown_cte = true; /* the item is left out; the tagged NO says why */
			continue;
		}
		imapd_printf(c, "%s", sp);
		sp = " ";
		switch (it->kind) {
		case IT_UID:
			imapd_printf(c, "UID %u", uid);
			break;
		case IT_FLAGS:
			imapd_printf(c, "FLAGS (\\Seen)");
			break;
		case IT_MODSEQ:
			imapd_printf(c, "MODSEQ (%u)", uid);
			break;
		case IT_SIZE:
			imapd_printf(c, "RFC822.SIZE %llu", (unsigned long long)size);
			break;
		case IT_INTERNALDATE: {
			int64_t t = meta.date;
			int tz = meta.tz;
			if (!meta.has_date) {
				if (archived == 0)
					imapd_mailbox_msginfo(c->h, s->mbox, idx, &size, &archived, NULL);
				t = archived;
				tz = 0;
			}
			imapd_printf(c, "INTERNALDATE ");
			arca_imap_write_datetime(&b->tmp, t, tz);
			put_buf(c, &b->tmp);
			break;
		}
		case IT_ENVELOPE:
			imapd_printf(c, "ENVELOPE ");
			imapd_write(c, meta.envelope, meta.envelope_len);
			break;
		case IT_BODY:
			imapd_printf(c, "BODY ");
			imapd_write(c, meta.body, meta.body_len);
			break;
		case IT_BODYSTRUCTURE:
			imapd_printf(c, "BODYSTRUCTURE ");
			imapd_write(c, meta.bodystructure, meta.bodystructure_len);
			break;
		case IT_RFC822:
			imapd_printf(c, "RFC822 ");
			put_literal(c, raw_bytes(&b->raw), b->raw.len);
			break;
		case IT_RFC822_HEADER:
		case IT_RFC822_TEXT: {
			arca_imap_fetch_section sec = {.kind = ARCA_IMAP_FETCH_BODY,
			                             .spec = it->kind == IT_RFC822_HEADER ? ARCA_IMAP_SPEC_HEADER :
			                                                                    ARCA_IMAP_SPEC_TEXT};
			arca_imap_msg_section(m, &sec, &b->scratch, &data, &len, NULL);
			imapd_printf(c, "%s ", it->kind == IT_RFC822_HEADER ? "RFC822.HEADER" : "RFC822.TEXT");
			put_literal(c, data != NULL ? data : (const uint8_t *)"", len);
			break;
		}
		case IT_SECTION:
			arca_imap_fetch_section_format(&it->sec, &b->tmp);
			put_buf(c, &b->tmp);
			imapd_printf(c, " ");
			if (it->sec.kind == ARCA_IMAP_FETCH_BINARY_SIZE)
				imapd_printf(c, "%zu", len);
			else
				put_literal(c, data != NULL ? data : (const uint8_t *)"", len);
			break;
		}
	}
	imapd_printf(c, ")\r\n");
	arca_imap_msg_free(&m);
	return true;
}

/* The first message at or after i in the bitmap (n if none). Skips unset messages 64 and 8 at a
 * time: mbsync fetches a folder one message per command, and testing every bit of the folder's
 * bitmap for each command made a pull quadratic in the folder size. */
static size_t next_set(const uint8_t *set, size_t i, size_t n)
{
	while (i < n) {
		if (i % 64 == 0 && i + 64 <= n) {
			uint64_t w;
			memcpy(&w, set + i / 8, sizeof(w));
			if (w == 0) {
				i += 64;
				continue;
			}
		}
		if (i % 8 == 0 && set[i / 8] == 0) {
			i += 8;
			continue;
		}
		if (set[i / 8] & (1u << (i % 8)))
			return i;
		i++;
	}
	return n;
}

static void fetch_work(imapd_cmd *c)
{
	fetch_data *fd = c->data;
	imapd_session *s = c->s;
	size_t n = imapd_mailbox_count(s->mbox), failed = 0;
	fetch_bufs b;
	if (c->h->inst == NULL) {
		imapd_tagged_error(c, &c->h->open_err);
		return;
	}
	arca_buf_init(&b.raw, ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&b.tmp, ITEM_MAX);
	arca_buf_init(&b.scratch, ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&b.meta, 3 * ITEM_MAX);
	b.unknown_cte = false;
	for (size_t i = next_set(fd->set, 0, n); i < n; i = next_set(fd->set, i + 1, n)) {
		if (!fetch_one(c, fd, i, &b))
			failed++;
		if (evbuffer_get_length(c->buf) >= FLUSH_AT && !imapd_flush(c))
			break;
	}
	arca_buf_free(&b.raw);
	arca_buf_free(&b.tmp);
	arca_buf_free(&b.scratch);
	arca_buf_free(&b.meta);
	if (b.unknown_cte)
		imapd_tagged(c, "NO", "[UNKNOWN-CTE] A part has a Content-Transfer-Encoding the server "
		                      "cannot decode");
	else if (failed > 0)
		imapd_tagged(c, "NO", "[CORRUPTION] %zu message(s) could not be read; the rest was sent",
		             failed);
	else
		imapd_tagged(c, "OK", "%sFETCH completed", c->uid ? "UID " : "");
}

void imapd_cmd_fetch(imapd_cmd *c)
{
	fetch_data *fd = calloc(1, sizeof(*fd));
	const arca_imap_node *set, *items, *mods;
	size_t setlen = 0;
	const char *settext;
	arca_error e;
	if (fd == NULL) {
		imapd_tagged(c, "NO", "[SERVERBUG] out of memory");
		return;
	}
	c->data = fd;
	c->data_free = fetch_data_free;
	set = imapd_arg(c);
	items = imapd_arg(c);
	mods = imapd_arg(c);
	if (set == NULL || items == NULL || imapd_args_left(c) > 0 ||
	    (settext = arca_imap_node_text(set, &setlen)) == NULL) {
		imapd_tagged(c, "BAD", "FETCH takes a sequence set, items and optional modifiers");
		return;
	}
	if (arca_imap_node_kind(items) == ARCA_IMAP_NODE_LIST) {
		if (arca_imap_node_count(items) == 0) {
			imapd_tagged(c, "BAD", "FETCH: empty item list");
			return;
		}
		for (size_t i = 0; i < arca_imap_node_count(items); i++) {
			if (!parse_item(fd, arca_imap_node_child(items, i), &e)) {
				imapd_tagged(c, "BAD", "FETCH: %s", e.msg[0] ? e.msg : "too many items");
				return;
			}
		}
	} else if (!parse_item(fd, items, &e)) {
		imapd_tagged(c, "BAD", "FETCH: %s", e.msg[0] ? e.msg : "too many items");
		return;
	}
	if (mods != NULL) {
		const char *k = arca_imap_node_kind(mods) == ARCA_IMAP_NODE_LIST ?
		                        arca_imap_node_text(arca_imap_node_child(mods, 0), NULL) :
		                        NULL;
		const arca_imap_node *v = arca_imap_node_child(mods, 1);
		bool has_modseq = false;
		if (k == NULL || strcasecmp(k, "CHANGEDSINCE") != 0 || v == NULL ||
		    arca_imap_node_kind(v) != ARCA_IMAP_NODE_NUMBER || arca_imap_node_count(mods) != 2) {
			imapd_tagged(c, "BAD", "FETCH: the only modifier is (CHANGEDSINCE mod-sequence)");
			return;
		}
		fd->changedsince = true;
		fd->since = arca_imap_node_number(v);
		c->s->condstore = true;
		/* CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1) */
		for (size_t i = 0; i < fd->n; i++)
			has_modseq |= fd->items[i].kind == IT_MODSEQ;
		if (!has_modseq)
			add_item(fd, IT_MODSEQ);
	}
	if (imapd_mailbox_select_set(c->s, settext, setlen, c->uid, &fd->set, &e) != ARCA_OK) {
		imapd_tagged(c, "BAD", "FETCH: %s", e.msg);
		return;
	}
	c->work = fetch_work;
	c->next = IMAPD_WORKER;
	c->chainable = true; /* fetch_data holds all it needs; FETCH changes no session state */
}

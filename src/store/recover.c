/* Verify (metadata and containers agree, every record intact) and recreate_meta (rebuild
 * the metadata database from the recovery records in the containers alone). Both read
 * damaged data by design, so every length comes from a checked header and every problem is
 * reported and skipped, never fatal. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/fs.h"
#include "lib/log.h"
#include "store/store_int.h"

/* ------------------------------------------------------------------------------------ */
/* links records: shared by the format upgrade (arca_links_fill) and verify */

static bool pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* Authenticates the links record rec (header h) and decompresses its entry list into raw,
 * checking every entry; *n gets their number. false + *why if it is damaged. */
static bool links_open(arca_store *s, const arca_rec_hdr *h, const uint8_t *rec, arca_buf *plain,
                       arca_buf *raw, uint64_t *n, const char **why)
{
	size_t pos = 0;
	arca_rec_link l;
	*n = 0;
	if (h->key_id != s->key_id) {
		*why = "record encrypted with another key id";
		return false;
	}
	if (arca_rec_open(s->key, h, rec, plain, NULL) != ARCA_OK) {
		*why = "authentication failed (record altered)";
		return false;
	}
	arca_buf_reset(raw);
	if (!arca_rec_decompress(s->dctx, NULL, plain->data, plain->len, UINT64_MAX,
	                         ARCA_REC_LINKS_MAX, raw, why))
		return false;
	while (arca_rec_link_next((const uint8_t *)raw->data, raw->len, h->version, &pos, &l, why))
		(*n)++;
	return *why == NULL;
}

/* End of the readable, committed part of container id: min(committed_len, file size). */
static uint64_t fill_end(arca_store *s, uint32_t id, int *fd)
{
	arca_error e;
	struct stat sb;
	*fd = arca_store_container_fd(s, id, &e);
	if (*fd < 0 || fstat(*fd, &sb) != 0)
		return 0;
	return (uint64_t)sb.st_size < s->c[id].committed ? (uint64_t)sb.st_size :
	       s->c[id].committed;
}

/* Inserts a links row for each intact links record in [a, b) of container id; stops at the
 * first unreadable header (the rest of the gap is damage that verify reports). */
static arca_status fill_gap(arca_store *s, sqlite3_stmt *ins, uint32_t id, int fd, uint64_t a,
                            uint64_t b, arca_buf *raw, arca_error *err)
{
	while (a < b && b - a >= ARCA_REC_OVERHEAD) {
		uint8_t hdr[ARCA_REC_HDR_LEN];
		const char *why = NULL;
		arca_rec_hdr h;
		uint64_t len, n;
		int rc;
		if (!pread_all(fd, hdr, sizeof(hdr), a) || !arca_rec_hdr_decode(hdr, &h, &why) ||
		    (len = ARCA_REC_OVERHEAD + (uint64_t)h.body_len) > b - a)
			break;
		if (h.type == ARCA_REC_LINKS && h.seq <= INT64_MAX) {
			arca_store_msgrow m = {.id = h.seq, .container = id, .offset = a,
			                       .stored_size = len};
			arca_error e;
			if (arca_store_read_record(s, &m, &e) == ARCA_OK &&
			    links_open(s, &h, (const uint8_t *)s->rbuf.data, &s->plain, raw, &n, &why)) {
				sqlite3_bind_int64(ins, 1, (int64_t)h.seq);
				sqlite3_bind_int64(ins, 2, id);
				sqlite3_bind_int64(ins, 3, (int64_t)a);
				sqlite3_bind_int64(ins, 4, (int64_t)len);
				sqlite3_bind_int64(ins, 5, (int64_t)n);
				rc = sqlite3_step(ins);
				sqlite3_reset(ins);
				if (rc != SQLITE_DONE)
					return arca_meta_err(s->db, rc, err, "cannot insert links row");
			}
		}
		a += len;
	}
	return ARCA_OK;
}

arca_status arca_links_fill(arca_store *s, arca_error *err)
{
	sqlite3_stmt *q = NULL, *ins = NULL;
	arca_buf raw;
	arca_status st = ARCA_OK;
	bool have = false;
	int64_t rc_c = 0, rc_o = 0, rc_n = 0;
	uint64_t filled = 0;
	int rc;
	/* Links records lie between the records metadata knows: read only those gaps. */
	rc = sqlite3_prepare_v2(s->db, "SELECT container, offset, stored_size FROM messages"
	                        " UNION ALL SELECT container, offset, stored_size FROM dicts"
	                        " ORDER BY 1, 2", -1, &q, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "INSERT INTO links(batch, container, offset,"
		                        " stored_size, entries) VALUES(?,?,?,?,?)", -1, &ins, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(q);
		return arca_meta_err(s->db, rc, err, "cannot list records");
	}
	arca_buf_init(&raw, ARCA_REC_LINKS_MAX);
	rc = sqlite3_step(q);
	for (uint32_t id = 1; id < s->nc && st == ARCA_OK; id++) {
		uint64_t pos = 0, end;
		int fd;
		if (!s->c[id].known)
			continue;
		end = fill_end(s, id, &fd);
		for (;;) {
			if (!have && rc == SQLITE_ROW) {
				rc_c = sqlite3_column_int64(q, 0);
				rc_o = sqlite3_column_int64(q, 1);
				rc_n = sqlite3_column_int64(q, 2);
				have = true;
			}
			if (!have || rc_c > id)
				break;
			have = false;
			rc = sqlite3_step(q);
			if (rc_c < id || rc_o < 0 || rc_n < 0)
				continue; /* an unknown container or a bad row: nothing to walk */
			if (fd >= 0 && (uint64_t)rc_o > pos &&
			    (st = fill_gap(s, ins, id, fd, pos, (uint64_t)rc_o < end ? (uint64_t)rc_o :
			                   end, &raw, err)) != ARCA_OK)
				break;
			if ((uint64_t)rc_o + (uint64_t)rc_n > pos)
				pos = (uint64_t)rc_o + (uint64_t)rc_n;
		}
		if (st == ARCA_OK && fd >= 0)
			st = fill_gap(s, ins, id, fd, pos, end, &raw, err);
	}
	if (st == ARCA_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = arca_meta_err(s->db, rc, err, "cannot list records");
	sqlite3_finalize(q);
	sqlite3_finalize(ins);
	arca_buf_free(&raw);
	if (st == ARCA_OK) {
		sqlite3_stmt *c = NULL;
		if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM links", -1, &c, NULL) == SQLITE_OK &&
		    sqlite3_step(c) == SQLITE_ROW)
			filled = (uint64_t)sqlite3_column_int64(c, 0);
		sqlite3_finalize(c);
		arca_log(ARCA_LOG_INFO, "store", "upgraded %s to format %d: %llu links records found",
		         s->meta_path, ARCA_STORE_FORMAT, (unsigned long long)filled);
	}
	return st;
}

/* ------------------------------------------------------------------------------------ */
/* verify */

/* A dictionary or links record known to metadata: checked on its own, skipped in gaps. */
typedef struct {
	uint32_t container;
	uint64_t offset, size;
} vknown;

/* Per message id: memberships in metadata against the ones the records back (content record
 * first membership, links entries). cnt is the number of metadata rows minus the number of
 * records, acc the same for the sums of mix(batch), so an unbacked or re-batched membership
 * leaves one of them non-zero. */
enum { MC_PRESENT = 1, MC_SKIP = 2 };

typedef struct {
	uint32_t *acc;
	int32_t *cnt;
	uint8_t *flags;
	uint64_t n;            /* array size (max message id + 1); 0: check skipped */
	uint64_t unknown_meta; /* metadata memberships of messages that do not exist */
	uint64_t lost_entries; /* entries of lost or damaged links records */
} mcheck;

typedef struct {
	arca_store *s;
	arca_store_damage_cb cb;
	void *ctx;
	uint64_t damaged;
	vknown *known;  /* dictionary and links records, sorted by (container, offset) */
	size_t nknown, capknown;
	bool has_links; /* metadata lists links records (format 3) */
	mcheck mc;
	arca_buf hb;    /* record bytes of unknown records */
	arca_buf plain; /* their plaintext */
	arca_buf raw;   /* decompressed */
} verify_ctx;

static void report(verify_ctx *v, uint64_t msg_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(verify_ctx *v, uint64_t msg_id, const char *fmt, ...)
{
	char reason[ARCA_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	v->damaged++;
	if (v->cb != NULL)
		v->cb(v->ctx, msg_id, reason);
}

static uint32_t mix(uint64_t b)
{
	b += 0x9e3779b97f4a7c15ull;
	b = (b ^ (b >> 30)) * 0xbf58476d1ce4e5b9ull;
	b = (b ^ (b >> 27)) * 0x94d049bb133111ebull;
	return (uint32_t)(b ^ (b >> 31)) | 1u;
}

static bool mc_present(const mcheck *mc, uint64_t id)
{
	return id < mc->n && (mc->flags[id] & MC_PRESENT) != 0;
}

/* Takes the entries of an intact links record (decoded in raw, record version `version`) as
 * backing; returns how many name messages that metadata does not have. */
static uint64_t mc_links(verify_ctx *v, const arca_buf *raw, uint8_t version, uint64_t batch)
{
	size_t pos = 0;
	const char *why;
	arca_rec_link l;
	uint64_t unknown = 0;
	if (v->mc.n == 0)
		return 0;
	while (arca_rec_link_next((const uint8_t *)raw->data, raw->len, version, &pos, &l, &why)) {
		if (mc_present(&v->mc, l.msg_id)) {
			v->mc.acc[l.msg_id] -= mix(batch);
			v->mc.cnt[l.msg_id]--;
		} else {
			unknown++;
		}
	}
	return unknown;
}

/* Reads the message ids and memberships of metadata. A bad maximum id (damaged metadata) or
 * too little memory only skips the membership check. */
static arca_status mc_init(verify_ctx *v, arca_error *err)
{
	sqlite3_stmt *q = NULL;
	mcheck *mc = &v->mc;
	int64_t max = 0;
	int rc = sqlite3_prepare_v2(v->s->db, "SELECT coalesce(max(id), 0) FROM messages", -1, &q,
	                            NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		max = sqlite3_column_int64(q, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_OK)
		return arca_meta_err(v->s->db, rc, err, "cannot list messages");
	if (max <= 0 || max >= (int64_t)UINT32_MAX)
		return ARCA_OK;
	mc->acc = calloc((size_t)max + 1, sizeof(*mc->acc));
	mc->cnt = calloc((size_t)max + 1, sizeof(*mc->cnt));
	mc->flags = calloc((size_t)max + 1, 1);
	if (mc->acc == NULL || mc->cnt == NULL || mc->flags == NULL) {
		arca_log(ARCA_LOG_WARN, "store", "verify: not enough memory to check memberships");
		free(mc->acc);
		free(mc->cnt);
		free(mc->flags);
		mc->acc = NULL;
		mc->cnt = NULL;
		mc->flags = NULL;
		return ARCA_OK;
	}
	mc->n = (uint64_t)max + 1;
	if ((rc = sqlite3_prepare_v2(v->s->db, "SELECT id FROM messages", -1, &q, NULL)) ==
	    SQLITE_OK)
		rc = sqlite3_step(q);
	for (; rc == SQLITE_ROW; rc = sqlite3_step(q)) {
		int64_t id = sqlite3_column_int64(q, 0);
		if (id > 0 && (uint64_t)id < mc->n)
			mc->flags[id] |= MC_PRESENT;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return arca_meta_err(v->s->db, rc, err, "cannot list messages");
	if ((rc = sqlite3_prepare_v2(v->s->db, "SELECT message_id, batch FROM members", -1, &q,
	                             NULL)) == SQLITE_OK)
		rc = sqlite3_step(q);
	for (; rc == SQLITE_ROW; rc = sqlite3_step(q)) {
		int64_t id = sqlite3_column_int64(q, 0);
		if (id > 0 && mc_present(mc, (uint64_t)id)) {
			mc->acc[id] += mix((uint64_t)sqlite3_column_int64(q, 1));
			mc->cnt[id]++;
		} else {
			mc->unknown_meta++;
		}
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return arca_meta_err(v->s->db, rc, err, "cannot list memberships");
	return ARCA_OK;
}

/* Reports memberships that the records do not back, except as many as the lost links
 * records held (those are reported per record). Messages with a damaged content record are
 * left out: they are reported themselves. Records holding more memberships than metadata is
 * not damage: recreate merges them when a resolver maps two names to one folder. */
static void mc_report(verify_ctx *v)
{
	mcheck *mc = &v->mc;
	uint64_t diff = 0, ex[3] = {0};
	if (mc->unknown_meta > 0)
		report(v, 0, "%llu memberships in metadata name messages that do not exist "
		       "(metadata damaged)", (unsigned long long)mc->unknown_meta);
	for (uint64_t id = 1; id < mc->n; id++) {
		if (mc->flags[id] != MC_PRESENT || mc->cnt[id] < 0 ||
		    (mc->cnt[id] == 0 && mc->acc[id] == 0))
			continue;
		if (diff < 3)
			ex[diff] = id;
		diff++;
	}
	if (diff > mc->lost_entries)
		report(v, 0, "memberships of %llu messages in metadata are not held by their content "
		       "or links records (e.g. message %llu%s%.0llu%s%.0llu)%s: recreate would not "
		       "restore them", (unsigned long long)diff,
		       (unsigned long long)ex[0], ex[1] ? ", " : "", (unsigned long long)ex[1],
		       ex[2] ? ", " : "", (unsigned long long)ex[2],
		       mc->lost_entries ? ", more than the lost links records held" : "");
}

static int cmp_known(const void *a, const void *b)
{
	const vknown *x = a, *y = b;
	if (x->container != y->container)
		return x->container < y->container ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static arca_status add_known(verify_ctx *v, uint32_t container, uint64_t offset, uint64_t size,
                             arca_error *err)
{
	if (v->nknown == v->capknown) {
		size_t nc = v->capknown ? 2 * v->capknown : 16;
		vknown *n = realloc(v->known, nc * sizeof(*n));
		if (n == NULL)
			return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		v->known = n;
		v->capknown = nc;
	}
	v->known[v->nknown++] = (vknown){.container = container, .offset = offset, .size = size};
	return ARCA_OK;
}

/* Checks a record not referenced by messages at [a, b) of container id. Returns the offset
 * after it, or b (resync at the next known record) if the bytes do not form a record. */
static uint64_t check_unknown(verify_ctx *v, uint32_t id, int fd, uint64_t a, uint64_t b)
{
	uint8_t hdr[ARCA_REC_HDR_LEN];
	char name[32];
	const char *why = NULL;
	vknown key = {.container = id, .offset = a}, *k;
	arca_rec_hdr h;
	uint64_t len, n;
	arca_rec_container_name(name, sizeof(name), id);
	/* Dictionary and links records listed in metadata are checked on their own. */
	k = v->nknown ? bsearch(&key, v->known, v->nknown, sizeof(key), cmp_known) : NULL;
	if (k != NULL && k->size > 0)
		return a + k->size < b ? a + k->size : b;
	if (b - a < ARCA_REC_OVERHEAD || !pread_all(fd, hdr, sizeof(hdr), a) ||
	    !arca_rec_hdr_decode(hdr, &h, &why) ||
	    (len = ARCA_REC_OVERHEAD + (uint64_t)h.body_len) > b - a) {
		report(v, 0, "unreadable data not known to metadata: %s offset %llu (%llu bytes)%s%s",
		       name, (unsigned long long)a, (unsigned long long)(b - a), why ? ": " : "",
		       why ? why : "");
		return b;
	}
	arca_buf_reset(&v->hb);
	if (arca_buf_reserve(&v->hb, len) != ARCA_OK || !pread_all(fd, v->hb.data, len, a)) {
		report(v, 0, "cannot read record at %s offset %llu", name, (unsigned long long)a);
		return a + len;
	}
	if (h.type == ARCA_REC_LINKS) {
		if (!links_open(v->s, &h, (const uint8_t *)v->hb.data, &v->plain, &v->raw, &n, &why)) {
			report(v, 0, "links record of batch %llu at %s offset %llu damaged: %s",
			       (unsigned long long)h.seq, name, (unsigned long long)a, why);
			return a + len;
		}
		/* Recreate would take its memberships, so they back metadata all the same. */
		n = mc_links(v, &v->raw, h.version, h.seq);
		if (v->has_links)
			report(v, 0, "links record of batch %llu at %s offset %llu is unknown to "
			       "metadata", (unsigned long long)h.seq, name, (unsigned long long)a);
		else if (n > 0)
			report(v, 0, "links record of batch %llu at %s offset %llu names %llu messages "
			       "unknown to metadata", (unsigned long long)h.seq, name,
			       (unsigned long long)a, (unsigned long long)n);
		return a + len;
	}
	if (h.key_id != v->s->key_id ||
	    arca_rec_open(v->s->key, &h, (const uint8_t *)v->hb.data, &v->plain, NULL) != ARCA_OK) {
		report(v, 0, "authentication failed (record altered): %s record at offset %llu "
		       "(%s %llu)", name, (unsigned long long)a,
		       h.type == ARCA_REC_DICT ? "dictionary" : "content of message",
		       (unsigned long long)h.seq);
		return a + len;
	}
	if (h.type == ARCA_REC_CONTENT)
		report(v, 0, "record of message %llu at %s offset %llu is unknown to metadata",
		       (unsigned long long)h.seq, name, (unsigned long long)a);
	else
		report(v, 0, "dictionary record %llu at %s offset %llu is unknown to metadata",
		       (unsigned long long)h.seq, name, (unsigned long long)a);
	return a + len;
}

/* Walks [pos, end) of a container between known records. */
static void scan_gap(verify_ctx *v, uint32_t id, uint64_t pos, uint64_t end)
{
	arca_error e;
	int fd;
	if (pos >= end)
		return;
	fd = arca_store_container_fd(v->s, id, &e);
	if (fd < 0)
		return; /* the messages in it are reported as missing */
	while (pos < end)
		pos = check_unknown(v, id, fd, pos, end);
}

typedef struct {
	uint32_t id;
	uint64_t committed;
	uint64_t size; /* file size (0 if missing) */
	uint64_t end;  /* min(committed_len, file size) */
	bool missing;
} vcont;

static void container_end(arca_store *s, vcont *c)
{
	arca_error e;
	struct stat sb;
	int fd = arca_store_container_fd(s, c->id, &e);
	c->missing = fd < 0 || fstat(fd, &sb) != 0;
	c->size = c->missing ? 0 : (uint64_t)sb.st_size;
	c->end = c->size < c->committed ? c->size : c->committed;
}

/* Re-reads every copy of every dictionary named by metadata. A damaged copy is reported once
 * (msg_id 0); the messages that use the dictionary are reported only if no copy is intact
 * (as the reason "dictionary N damaged: ...", for each of them). */
static arca_status verify_dicts(verify_ctx *v, arca_error *err)
{
	arca_store *s = v->s;
	arca_buf plain;
	arca_status st;
	sqlite3_stmt *q = NULL;
	int rc;
	if (s->format == ARCA_STORE_FORMAT_V1)
		return ARCA_OK; /* format 1, not upgraded: no dictionaries */
	/* The list of this snapshot (a reader may have opened before a dictionary or a copy). */
	if ((st = arca_dict_reload(s, err)) != ARCA_OK)
		return st;
	rc = sqlite3_prepare_v2(s->db, "SELECT id FROM dicts WHERE id <= 0 OR id > 4294967295",
	                        -1, &q, NULL);
	while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		report(v, 0, "dictionary row with a bad id %lld in metadata",
		       (long long)sqlite3_column_int64(q, 0));
	sqlite3_finalize(q);
	arca_buf_init(&plain, ARCA_REC_DICT_FIXED + ARCA_DICT_MAX);
	for (size_t i = 0; i < s->ndicts && st == ARCA_OK; i++) {
		arca_dict *d = &s->dicts[i];
		char (*why)[200] = d->ncopies ? calloc(d->ncopies, sizeof(*why)) : NULL;
		size_t ngood = 0;
		const uint8_t *dict;
		size_t dlen;
		if (d->ncopies > 0 && why == NULL) {
			st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			break;
		}
		for (size_t k = 0; k < d->ncopies && st == ARCA_OK; k++) {
			const arca_dict_copy *c = &d->copies[k];
			if (c->container != 0)
				st = add_known(v, c->container, c->offset, c->stored_size, err);
			if (arca_dict_check_copy(s, d->id, d->has_sha ? d->sha : NULL, c, &plain, &dict,
			                         &dlen, why[k], sizeof(why[k])))
				ngood++;
		}
		for (size_t k = 0; k < d->ncopies && st == ARCA_OK; k++) {
			const arca_dict_copy *c = &d->copies[k];
			char name[32] = "(bad metadata row)";
			if (why[k][0] == '\0')
				continue;
			if (c->container != 0)
				arca_rec_container_name(name, sizeof(name), c->container);
			report(v, 0, "dictionary %u copy at %s offset %llu damaged: %s; %s", (unsigned)d->id,
			       name, (unsigned long long)c->offset, why[k],
			       ngood ? "another copy is intact" : "no copy is intact");
		}
		if (d->ncopies == 0)
			report(v, 0, "dictionary %u has no copy listed in metadata", (unsigned)d->id);
		free(why);
	}
	arca_crypto_wipe(plain.data, plain.len);
	arca_buf_free(&plain);
	return st;
}

static const vcont *find_cont(const vcont *conts, size_t n, uint32_t id)
{
	for (size_t lo = 0, hi = n; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		if (conts[mid].id == id)
			return &conts[mid];
		if (conts[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Checks one links row: the record must be there in full, authenticate and hold as many
 * entries as the row says. Its memberships are lost from the containers otherwise. */
static void verify_link(verify_ctx *v, const vcont *conts, size_t nconts, uint64_t batch,
                        uint32_t cid, uint64_t off, uint64_t size, uint64_t entries)
{
	char name[32], what[160];
	const char *why = NULL;
	const vcont *c = find_cont(conts, nconts, cid);
	arca_store_msgrow m = {.id = batch, .container = cid, .offset = off, .stored_size = size};
	arca_rec_hdr h;
	arca_error e;
	uint64_t n = 0;
	arca_rec_container_name(name, sizeof(name), cid);
	snprintf(what, sizeof(what), "links record of batch %llu (memberships of %llu messages)",
	         (unsigned long long)batch, (unsigned long long)entries);
	if (size < ARCA_REC_OVERHEAD || size > ARCA_REC_OVERHEAD +
	    arca_rec_body_max(ARCA_REC_VERSION, ARCA_REC_LINKS) || off > INT64_MAX) {
		why = "metadata has a bad record size";
	} else if (c == NULL) {
		why = "its container is unknown to metadata";
	} else if (c->missing) {
		v->mc.lost_entries += entries;
		report(v, 0, "%s lost: container %s missing", what, name);
		return;
	} else if (off + size > c->size) {
		v->mc.lost_entries += entries;
		report(v, 0, "%s lost: container %s truncated at offset %llu (record at offset %llu, "
		       "%llu bytes)", what, name, (unsigned long long)c->size,
		       (unsigned long long)off, (unsigned long long)size);
		return;
	} else if (off + size > c->committed) {
		why = "record lies beyond the committed length (metadata damaged)";
	} else if (arca_store_read_record(v->s, &m, &e) != ARCA_OK) {
		v->mc.lost_entries += entries;
		report(v, 0, "%s lost: %s", what, e.msg);
		return;
	} else if (!arca_rec_hdr_decode((const uint8_t *)v->s->rbuf.data, &h, &why)) {
		/* why set */
	} else if (h.type != ARCA_REC_LINKS || h.seq != batch ||
	           (uint64_t)h.body_len + ARCA_REC_OVERHEAD != size) {
		why = "bad record header (not this links record)";
	} else if (!links_open(v->s, &h, (const uint8_t *)v->s->rbuf.data, &v->plain, &v->raw, &n,
	                       &why)) {
		/* why set */
	} else {
		uint64_t unknown = mc_links(v, &v->raw, h.version, batch);
		if (n != entries)
			report(v, 0, "links record of batch %llu at %s offset %llu holds %llu entries, "
			       "metadata says %llu (metadata damaged)", (unsigned long long)batch, name,
			       (unsigned long long)off, (unsigned long long)n,
			       (unsigned long long)entries);
		if (unknown > 0)
			report(v, 0, "links record of batch %llu at %s offset %llu names %llu messages "
			       "unknown to metadata", (unsigned long long)batch, name,
			       (unsigned long long)off, (unsigned long long)unknown);
		return;
	}
	v->mc.lost_entries += entries;
	report(v, 0, "%s damaged: %s: %s offset %llu", what, why, name, (unsigned long long)off);
}

/* Checks every links record listed in metadata (format 3) and remembers where they lie. */
static arca_status verify_links(verify_ctx *v, const vcont *conts, size_t nconts,
                                arca_error *err)
{
	sqlite3_stmt *q = NULL;
	arca_status st = ARCA_OK;
	int rc;
	if (v->s->format < ARCA_STORE_FORMAT_V3)
		return ARCA_OK; /* read-only open of an older store: links are found in the gaps */
	v->has_links = true;
	rc = sqlite3_prepare_v2(v->s->db, "SELECT batch, container, offset, stored_size, entries"
	                        " FROM links ORDER BY container, offset", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return arca_meta_err(v->s->db, rc, err, "cannot read links records");
	while (st == ARCA_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t b = sqlite3_column_int64(q, 0), c = sqlite3_column_int64(q, 1);
		int64_t o = sqlite3_column_int64(q, 2), n = sqlite3_column_int64(q, 3);
		int64_t k = sqlite3_column_int64(q, 4);
		if (b <= 0 || c <= 0 || c > UINT32_MAX || o < 0 || n < 0 || k < 0) {
			report(v, 0, "bad links row in metadata (batch %lld, container %lld, offset "
			       "%lld)", (long long)b, (long long)c, (long long)o);
			continue;
		}
		st = add_known(v, (uint32_t)c, (uint64_t)o, (uint64_t)n, err);
		verify_link(v, conts, nconts, (uint64_t)b, (uint32_t)c, (uint64_t)o, (uint64_t)n,
		            (uint64_t)k);
		if (v->raw.cap > ((size_t)8 << 20))
			arca_buf_free(&v->raw);
	}
	sqlite3_finalize(q);
	if (st == ARCA_OK && rc != SQLITE_DONE)
		st = arca_meta_err(v->s->db, rc, err, "cannot read links records");
	return st;
}

arca_status arca_store_verify(arca_store *s, arca_store_damage_cb cb, void *ctx, uint64_t *checked,
                              uint64_t *damaged, arca_error *err)
{
	verify_ctx v = {.s = s, .cb = cb, .ctx = ctx};
	sqlite3_stmt *q = NULL;
	vcont *conts = NULL;
	size_t nconts = 0, capc = 0, ci = 0;
	uint64_t nchecked = 0, pos = 0, cend = 0;
	uint32_t cur = 0;
	arca_buf out;
	arca_status st = ARCA_OK;
	int rc;
	if (checked != NULL)
		*checked = 0;
	if (damaged != NULL)
		*damaged = 0;
	if (s->in_txn)
		return arca_error_set(err, ARCA_ERR_STATE, "commit or roll back before verify");
	arca_buf_init(&v.hb, (size_t)2 * ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&v.plain, (size_t)2 * ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&v.raw, ARCA_REC_LINKS_MAX);
	arca_buf_init(&out, ARCA_MAX_MESSAGE_SIZE);
	/* One read transaction: a consistent snapshot while a writer goes on. */
	if ((st = arca_meta_exec(s->db, "BEGIN", err)) != ARCA_OK)
		goto out;
	rc = sqlite3_prepare_v2(s->db, "SELECT id, committed_len FROM containers ORDER BY id", -1,
	                        &q, NULL);
	while (q != NULL && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (nconts == capc) {
			vcont *n = realloc(conts, (capc = capc ? 2 * capc : 16) * sizeof(*n));
			if (n == NULL) {
				st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
				goto out;
			}
			conts = n;
		}
		conts[nconts].id = (uint32_t)sqlite3_column_int64(q, 0);
		conts[nconts].committed = (uint64_t)sqlite3_column_int64(q, 1);
		nconts++;
	}
	if (rc != SQLITE_DONE) {
		st = arca_meta_err(s->db, rc, err, "cannot read containers");
		goto out;
	}
	sqlite3_finalize(q);
	q = NULL;
	for (size_t i = 0; i < nconts; i++)
		container_end(s, &conts[i]);
	if ((st = mc_init(&v, err)) != ARCA_OK || (st = verify_dicts(&v, err)) != ARCA_OK ||
	    (st = verify_links(&v, conts, nconts, err)) != ARCA_OK)
		goto out;
	if (v.nknown > 1)
		qsort(v.known, v.nknown, sizeof(*v.known), cmp_known);
	rc = sqlite3_prepare_v2(s->db, "SELECT id, sha256, size, stored_size, container, offset"
	                        " FROM messages ORDER BY container, offset", -1, &q, NULL);
	if (rc != SQLITE_OK) {
		st = arca_meta_err(s->db, rc, err, "cannot list messages");
		goto out;
	}
	/* Merge walk: each message's record is checked, and the gaps between them must hold
	 * only links and dictionary records. */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		arca_store_msgrow m;
		arca_error e;
		uint64_t batch = 0;
		bool ok = false;
		m.id = (uint64_t)sqlite3_column_int64(q, 0);
		memset(m.sha, 0, sizeof(m.sha));
		if (sqlite3_column_bytes(q, 1) == ARCA_SHA256_LEN)
			memcpy(m.sha, sqlite3_column_blob(q, 1), ARCA_SHA256_LEN);
		m.size = (uint64_t)sqlite3_column_int64(q, 2);
		m.stored_size = (uint64_t)sqlite3_column_int64(q, 3);
		m.container = (uint32_t)sqlite3_column_int64(q, 4);
		m.offset = (uint64_t)sqlite3_column_int64(q, 5);
		if (m.container != cur) {
			if (cur != 0)
				scan_gap(&v, cur, pos, cend);
			while (ci < nconts && conts[ci].id < m.container) {
				scan_gap(&v, conts[ci].id, 0, conts[ci].end);
				ci++;
			}
			cend = 0;
			if (ci < nconts && conts[ci].id == m.container)
				cend = conts[ci++].end;
			cur = m.container;
			pos = 0;
		}
		if (m.offset > pos)
			scan_gap(&v, cur, pos, m.offset < cend ? m.offset : cend);
		nchecked++;
		arca_buf_reset(&out);
		if (m.offset < pos) {
			report(&v, m.id, "record overlaps the previous record (metadata damaged)");
		} else if (arca_store_read_msg(s, &m, &out, &batch, &e) != ARCA_OK) {
			report(&v, m.id, "%s", e.msg);
		} else {
			ok = true;
		}
		if (mc_present(&v.mc, m.id)) {
			if (ok) {
				v.mc.acc[m.id] -= mix(batch); /* the first membership */
				v.mc.cnt[m.id]--;
			} else {
				v.mc.flags[m.id] |= MC_SKIP;
			}
		}
		if (m.offset + m.stored_size > pos)
			pos = m.offset + m.stored_size;
		if (out.cap > ((size_t)8 << 20))
			arca_buf_free(&out);
	}
	if (rc != SQLITE_DONE) {
		st = arca_meta_err(s->db, rc, err, "cannot list messages");
		goto out;
	}
	if (cur != 0)
		scan_gap(&v, cur, pos, cend);
	for (; ci < nconts; ci++)
		scan_gap(&v, conts[ci].id, 0, conts[ci].end);
	mc_report(&v);
out:
	sqlite3_finalize(q);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	free(conts);
	free(v.known);
	free(v.mc.acc);
	free(v.mc.cnt);
	free(v.mc.flags);
	arca_buf_free(&v.hb);
	arca_buf_free(&v.plain);
	arca_buf_free(&v.raw);
	arca_buf_free(&out);
	if (checked != NULL)
		*checked = nchecked;
	if (damaged != NULL)
		*damaged = v.damaged;
	return st;
}

/* ------------------------------------------------------------------------------------ */
/* recreate_meta */

typedef struct {
	const uint8_t *key;
	uint32_t key_id;
	sqlite3 *db;
	sqlite3_stmt *ins_msg, *ins_mem, *has_msg, *ins_cont;
	arca_store_resolve_cb resolve;
	void *rctx;
	arca_store_damage_cb dcb;
	void *dctx;
	ZSTD_DCtx *dctx_z;
	sqlite3_stmt *ins_dict, *ins_link, *ins_copy;
	/* dictionaries recovered so far (they precede the records that use them) */
	struct {
		uint32_t id;
		uint8_t sha[ARCA_SHA256_LEN];
		ZSTD_DDict *ddict;
	} *dicts;
	size_t ndicts, capdicts;
	char why[128];
	arca_buf plain, raw;
	uint64_t messages, max_id, max_batch;
	/* last resolved names: consecutive records usually share them */
	char last_arch[ARCA_NAME_MAX + 1], last_folder[ARCA_FOLDER_MAX + 1];
	uint32_t last_aid, last_fid;
	bool have_last;
} rebuild;

static void rb_report(rebuild *r, uint64_t msg_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rb_report(rebuild *r, uint64_t msg_id, const char *fmt, ...)
{
	char reason[ARCA_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	arca_log(ARCA_LOG_WARN, "store", "recreate: %s", reason);
	if (r->dcb != NULL)
		r->dcb(r->dctx, msg_id, reason);
}

static arca_status resolve(rebuild *r, const char *an, size_t anl, const char *fp, size_t fpl,
                           uint32_t *aid, uint32_t *fid, arca_error *err)
{
	char a[ARCA_NAME_MAX + 1], f[ARCA_FOLDER_MAX + 1];
	arca_status st;
	memcpy(a, an, anl);
	a[anl] = '\0';
	memcpy(f, fp, fpl);
	f[fpl] = '\0';
	if (r->have_last && strcmp(a, r->last_arch) == 0 && strcmp(f, r->last_folder) == 0) {
		*aid = r->last_aid;
		*fid = r->last_fid;
		return ARCA_OK;
	}
	/* Names are binary-safe in the record; a NUL inside cannot be passed on. */
	if (strlen(a) != anl || strlen(f) != fpl)
		return arca_error_set(err, ARCA_ERR_CORRUPT, "name contains NUL");
	st = r->resolve(r->rctx, a, f, aid, fid);
	if (st != ARCA_OK)
		return arca_error_set(err, st, "cannot resolve archive \"%s\" folder \"%s\"", a, f);
	memcpy(r->last_arch, a, anl + 1);
	memcpy(r->last_folder, f, fpl + 1);
	r->last_aid = *aid;
	r->last_fid = *fid;
	r->have_last = true;
	return ARCA_OK;
}

/* Stages a membership (uid 0: not recorded); duplicates are resolved after the walk
 * (arca_meta_fill_members). Fatal only for database errors. */
static arca_status add_member(rebuild *r, uint64_t msg, uint32_t aid, uint32_t fid, uint64_t batch,
                              uint32_t uid, arca_error *err)
{
	int rc;
	sqlite3_bind_int64(r->ins_mem, 1, fid);
	sqlite3_bind_int64(r->ins_mem, 2, (int64_t)msg);
	sqlite3_bind_int64(r->ins_mem, 3, aid);
	sqlite3_bind_int64(r->ins_mem, 4, (int64_t)batch);
	sqlite3_bind_int64(r->ins_mem, 5, uid);
	rc = sqlite3_step(r->ins_mem);
	sqlite3_reset(r->ins_mem);
	if (rc != SQLITE_DONE)
		return arca_meta_err(r->db, rc, err, "cannot insert membership");
	if (batch > r->max_batch)
		r->max_batch = batch;
	return ARCA_OK;
}

/* Authenticates the record at p (avail bytes left in the file); on success *h is set and
 * r->plain holds the plaintext. */
static bool try_record(rebuild *r, const uint8_t *p, uint64_t avail, arca_rec_hdr *h,
                       const char **why)
{
	if (avail < ARCA_REC_OVERHEAD) {
		*why = "incomplete record";
		return false;
	}
	if (!arca_rec_hdr_decode(p, h, why))
		return false;
	if ((uint64_t)h->body_len + ARCA_REC_OVERHEAD > avail) {
		*why = "incomplete record (container truncated)";
		return false;
	}
	if (h->key_id != r->key_id) {
		*why = "record encrypted with another key id";
		return false;
	}
	if (arca_rec_open(r->key, h, p, &r->plain, NULL) != ARCA_OK) {
		*why = "authentication failed (record altered)";
		return false;
	}
	return true;
}

/* Processes an authenticated content record; false + *why if it is unusable. Database
 * errors are returned through *st. */
static bool take_content(rebuild *r, const arca_rec_hdr *h, uint32_t cid, uint64_t off,
                         const char **why, arca_status *st, arca_error *err)
{
	arca_rec_content c;
	uint8_t sha[ARCA_SHA256_LEN];
	uint32_t aid, fid;
	const ZSTD_DDict *ddict = NULL;
	int rc;
	if (!arca_rec_content_parse((const uint8_t *)r->plain.data, r->plain.len, h->version, &c,
	                            why))
		return false;
	if (c.msg_id != h->seq || c.msg_id == 0 || c.msg_id > INT64_MAX) {
		*why = "content record has an inconsistent message id";
		return false;
	}
	if (c.dict_id != 0) {
		for (size_t i = 0; i < r->ndicts && ddict == NULL; i++)
			if (r->dicts[i].id == c.dict_id)
				ddict = r->dicts[i].ddict;
		if (ddict == NULL) {
			snprintf(r->why, sizeof(r->why), "dictionary %u unknown or damaged",
			         (unsigned)c.dict_id);
			*why = r->why;
			return false;
		}
	}
	arca_buf_reset(&r->raw);
	if (!arca_rec_decompress(r->dctx_z, ddict, c.payload, c.payload_len, c.raw_size,
	                         ARCA_MAX_MESSAGE_SIZE, &r->raw, why))
		return false;
	arca_sha256(r->raw.data, r->raw.len, sha);
	if (memcmp(sha, c.sha, sizeof(sha)) != 0) {
		*why = "sha-256 mismatch";
		return false;
	}
	if (r->raw.cap > ((size_t)8 << 20))
		arca_buf_free(&r->raw);
	sqlite3_bind_int64(r->ins_msg, 1, (int64_t)c.msg_id);
	sqlite3_bind_blob(r->ins_msg, 2, c.sha, ARCA_SHA256_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(r->ins_msg, 3, (int64_t)c.raw_size);
	sqlite3_bind_int64(r->ins_msg, 4, (int64_t)(h->body_len + ARCA_REC_OVERHEAD));
	sqlite3_bind_int64(r->ins_msg, 5, cid);
	sqlite3_bind_int64(r->ins_msg, 6, (int64_t)off);
	sqlite3_bind_int64(r->ins_msg, 7, c.archive_time);
	rc = sqlite3_step(r->ins_msg);
	sqlite3_reset(r->ins_msg);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		*why = "duplicate record (message id or content already recovered; ignored)";
		return false;
	}
	if (rc != SQLITE_DONE) {
		*st = arca_meta_err(r->db, rc, err, "cannot insert message");
		return false;
	}
	r->messages++;
	if (c.msg_id > r->max_id)
		r->max_id = c.msg_id;
	if (c.batch > r->max_batch)
		r->max_batch = c.batch;
	/* From here on the message is recovered; a membership problem is reported apart. */
	if (resolve(r, c.archive_name, c.archive_name_len, c.folder_path, c.folder_path_len, &aid,
	            &fid, err) != ARCA_OK) {
		rb_report(r, c.msg_id, "membership lost: %s", err != NULL ? err->msg : "resolve");
		return true;
	}
	*st = add_member(r, c.msg_id, aid, fid, c.batch, c.uid, err);
	return true;
}

static bool msg_known(rebuild *r, uint64_t id)
{
	int rc;
	sqlite3_bind_int64(r->has_msg, 1, (int64_t)id);
	rc = sqlite3_step(r->has_msg);
	sqlite3_reset(r->has_msg);
	return rc == SQLITE_ROW;
}

/* Processes an authenticated links record: its memberships and its links row. */
static bool take_links(rebuild *r, const arca_rec_hdr *h, uint32_t cid, uint64_t off,
                       const char **why, arca_status *st, arca_error *err)
{
	arca_rec_link l;
	size_t pos = 0;
	uint64_t lost = 0, entries = 0;
	int rc;
	arca_buf_reset(&r->raw);
	if (!arca_rec_decompress(r->dctx_z, NULL, r->plain.data, r->plain.len, UINT64_MAX,
	                         ARCA_REC_LINKS_MAX, &r->raw, why))
		return false;
	if (h->seq > INT64_MAX) {
		*why = "links record has a bad batch number";
		return false;
	}
	/* Validate the whole list before taking any of it. */
	while (arca_rec_link_next((const uint8_t *)r->raw.data, r->raw.len, h->version, &pos, &l,
	                          why))
		entries++;
	if (*why != NULL)
		return false;
	sqlite3_bind_int64(r->ins_link, 1, (int64_t)h->seq);
	sqlite3_bind_int64(r->ins_link, 2, cid);
	sqlite3_bind_int64(r->ins_link, 3, (int64_t)off);
	sqlite3_bind_int64(r->ins_link, 4, (int64_t)(h->body_len + ARCA_REC_OVERHEAD));
	sqlite3_bind_int64(r->ins_link, 5, (int64_t)entries);
	rc = sqlite3_step(r->ins_link);
	sqlite3_reset(r->ins_link);
	if (rc != SQLITE_DONE) {
		*st = arca_meta_err(r->db, rc, err, "cannot insert links row");
		return false;
	}
	pos = 0;
	while (*st == ARCA_OK &&
	       arca_rec_link_next((const uint8_t *)r->raw.data, r->raw.len, h->version, &pos, &l,
	                          why)) {
		uint32_t aid, fid;
		if (!msg_known(r, l.msg_id)) {
			lost++;
			continue;
		}
		if (resolve(r, l.archive_name, l.archive_name_len, l.folder_path, l.folder_path_len,
		            &aid, &fid, err) != ARCA_OK) {
			rb_report(r, l.msg_id, "membership lost: %s", err != NULL ? err->msg : "resolve");
			continue;
		}
		*st = add_member(r, l.msg_id, aid, fid, h->seq, l.uid, err);
	}
	if (h->seq > r->max_batch)
		r->max_batch = h->seq;
	if (lost > 0)
		rb_report(r, 0, "links record of batch %llu: %llu memberships refer to messages "
		          "whose content record is lost", (unsigned long long)h->seq,
		          (unsigned long long)lost);
	*why = NULL;
	return true;
}

static bool insert_copy(rebuild *r, uint64_t id, uint32_t cid, uint64_t off, uint64_t len,
                        arca_status *st, arca_error *err)
{
	int rc;
	sqlite3_bind_int64(r->ins_copy, 1, (int64_t)id);
	sqlite3_bind_int64(r->ins_copy, 2, cid);
	sqlite3_bind_int64(r->ins_copy, 3, (int64_t)off);
	sqlite3_bind_int64(r->ins_copy, 4, (int64_t)len);
	rc = sqlite3_step(r->ins_copy);
	sqlite3_reset(r->ins_copy);
	if (rc != SQLITE_DONE)
		*st = arca_meta_err(r->db, rc, err, "cannot insert dictionary copy");
	return rc == SQLITE_DONE;
}

/* Processes an authenticated dictionary record: the first copy of a dictionary is kept for
 * the content records after it and gives the dicts row; every copy with the same content
 * gives a dict_copies row. A record with the id of another dictionary is refused. */
static bool take_dict(rebuild *r, const arca_rec_hdr *h, uint32_t cid, uint64_t off,
                      const char **why, arca_status *st, arca_error *err)
{
	const uint8_t *dict;
	uint8_t sha[ARCA_SHA256_LEN];
	uint64_t len = h->body_len + ARCA_REC_OVERHEAD;
	size_t dlen;
	ZSTD_DDict *dd;
	int rc;
	if (!arca_rec_dict_parse((const uint8_t *)r->plain.data, r->plain.len, h->seq, &dict, &dlen,
	                         why))
		return false;
	arca_sha256(dict, dlen, sha);
	for (size_t i = 0; i < r->ndicts; i++) {
		if (r->dicts[i].id != h->seq)
			continue;
		if (memcmp(r->dicts[i].sha, sha, sizeof(sha)) != 0) {
			*why = "dictionary record differs from the first copy of this id (ignored)";
			return false;
		}
		insert_copy(r, h->seq, cid, off, len, st, err);
		return true;
	}
	if (r->ndicts == r->capdicts) {
		size_t nc = r->capdicts ? 2 * r->capdicts : 4;
		void *n = realloc(r->dicts, nc * sizeof(*r->dicts));
		if (n == NULL) {
			*st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			return false;
		}
		r->dicts = n;
		r->capdicts = nc;
	}
	if ((dd = ZSTD_createDDict(dict, dlen)) == NULL) {
		*st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory (dictionary)");
		return false;
	}
	r->dicts[r->ndicts].id = (uint32_t)h->seq;
	memcpy(r->dicts[r->ndicts].sha, sha, sizeof(sha));
	r->dicts[r->ndicts++].ddict = dd;
	sqlite3_bind_int64(r->ins_dict, 1, (int64_t)h->seq);
	sqlite3_bind_int64(r->ins_dict, 2, cid);
	sqlite3_bind_int64(r->ins_dict, 3, (int64_t)off);
	sqlite3_bind_int64(r->ins_dict, 4, (int64_t)len);
	sqlite3_bind_blob(r->ins_dict, 5, sha, sizeof(sha), SQLITE_TRANSIENT);
	rc = sqlite3_step(r->ins_dict);
	sqlite3_reset(r->ins_dict);
	if (rc != SQLITE_DONE)
		*st = arca_meta_err(r->db, rc, err, "cannot insert dictionary");
	else
		insert_copy(r, h->seq, cid, off, len, st, err);
	return true;
}

static const char *type_name(uint8_t type)
{
	return type == ARCA_REC_CONTENT ? "content" : type == ARCA_REC_DICT ? "dictionary" :
	       "links";
}

/* Walks one container; returns the end of the last good record in *good_end and the file
 * size in *size_out. */
static arca_status walk_container(rebuild *r, const char *path, uint32_t cid, uint64_t *good_end,
                                  uint64_t *size_out, arca_error *err)
{
	struct stat sb;
	const uint8_t *map = NULL;
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	uint64_t size, pos = 0;
	arca_status st = ARCA_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*good_end = 0;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		rb_report(r, 0, "cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return ARCA_OK;
	}
	size = (uint64_t)sb.st_size;
	*size_out = size;
	if (size > 0) {
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			st = arca_error_errno(err, errno, "cannot map %s", path);
			close(fd);
			return st;
		}
	}
	while (pos < size && st == ARCA_OK) {
		arca_rec_hdr h;
		const char *why = NULL;
		uint64_t next;
		bool ok = try_record(r, map + pos, size - pos, &h, &why);
		if (ok) {
			if (h.type == ARCA_REC_CONTENT)
				ok = take_content(r, &h, cid, pos, &why, &st, err);
			else if (h.type == ARCA_REC_DICT)
				ok = take_dict(r, &h, cid, pos, &why, &st, err);
			else
				ok = take_links(r, &h, cid, pos, &why, &st, err);
			if (st != ARCA_OK)
				break;
			pos += ARCA_REC_OVERHEAD + (uint64_t)h.body_len;
			if (ok) {
				*good_end = pos;
			} else {
				rb_report(r, h.type == ARCA_REC_CONTENT ? h.seq : 0,
				          "%s record %llu at %s offset %llu: %s", type_name(h.type),
				          (unsigned long long)h.seq, name,
				          (unsigned long long)(pos - ARCA_REC_OVERHEAD - h.body_len), why);
			}
			continue;
		}
		/* Resync: the next "ARC1" at which a record authenticates. */
		next = size;
		for (uint64_t q = pos + 1; q + ARCA_REC_OVERHEAD <= size; q++) {
			const uint8_t *m = memmem(map + q, size - q, ARCA_REC_MAGIC, 4);
			arca_rec_hdr h2;
			const char *w2;
			if (m == NULL)
				break;
			q = (uint64_t)(m - map);
			if (try_record(r, map + q, size - q, &h2, &w2)) {
				next = q;
				break;
			}
		}
		{
			/* A damaged dictionary copy costs nothing while another copy is intact. */
			arca_rec_hdr h3;
			const char *w3;
			char what[112] = "";
			if (size - pos >= ARCA_REC_HDR_LEN && arca_rec_hdr_decode(map + pos, &h3, &w3) &&
			    h3.type == ARCA_REC_DICT)
				snprintf(what, sizeof(what), " (starting with a copy of dictionary %llu; "
				         "any intact copy is used)", (unsigned long long)h3.seq);
			rb_report(r, 0, "damaged data at %s offset %llu (%llu bytes skipped): %s%s", name,
			          (unsigned long long)pos, (unsigned long long)(next - pos), why, what);
		}
		pos = next;
	}
	if (map != NULL)
		munmap((void *)map, size);
	close(fd);
	return st;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorted ids of the container files in dir. */
static arca_status list_containers(const char *dir, uint32_t **ids, size_t *n, arca_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	if (d == NULL)
		return arca_error_errno(err, errno, "cannot open %s", dir);
	while ((de = readdir(d)) != NULL) {
		uint32_t id = arca_rec_container_id(de->d_name);
		if (id == 0)
			continue;
		if (*n == cap) {
			uint32_t *nn = realloc(*ids, (cap = cap ? 2 * cap : 16) * sizeof(*nn));
			if (nn == NULL) {
				closedir(d);
				return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
			}
			*ids = nn;
		}
		(*ids)[(*n)++] = id;
	}
	closedir(d);
	if (*n > 0)
		qsort(*ids, *n, sizeof(**ids), cmp_u32);
	return ARCA_OK;
}

static void unlink_db(const char *path)
{
	char p[ARCA_PATH_MAX + 32]; /* path may be a temp name a little over ARCA_PATH_MAX */
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-journal", path);
	unlink(p);
}

/* Moves the old database (and its WAL, which holds committed data) aside. */
static arca_status move_aside(const char *path, arca_error *err)
{
	char old[ARCA_PATH_MAX + 64], a[ARCA_PATH_MAX + 8], b[ARCA_PATH_MAX + 80];
	snprintf(old, sizeof(old), "%s.old-%lld", path, (long long)time(NULL));
	for (int i = 1; arca_fs_exists(old) && i < 1000; i++)
		snprintf(old, sizeof(old), "%s.old-%lld-%d", path, (long long)time(NULL), i);
	if (rename(path, old) != 0)
		return arca_error_errno(err, errno, "cannot move %s aside", path);
	snprintf(a, sizeof(a), "%s-wal", path);
	snprintf(b, sizeof(b), "%s-wal", old);
	if (arca_fs_exists(a) && rename(a, b) != 0)
		return arca_error_errno(err, errno, "cannot move %s aside", a);
	snprintf(a, sizeof(a), "%s-shm", path);
	unlink(a);
	arca_log(ARCA_LOG_INFO, "store", "old metadata database moved to %s", old);
	return ARCA_OK;
}

arca_status arca_store_recreate_meta(const arca_store_paths *paths, const uint8_t key[ARCA_KEY_LEN],
                                     uint32_t key_id, arca_store_resolve_cb resolve_cb, void *rctx,
                                     arca_store_damage_cb damage_cb, void *dctx, uint64_t *messages,
                                     arca_error *err)
{
	return arca_store_recreate_meta_ex(paths, key, key_id, resolve_cb, rctx, NULL, damage_cb,
	                                   dctx, messages, err);
}

arca_status arca_store_recreate_meta_ex(const arca_store_paths *paths,
                                        const uint8_t key[ARCA_KEY_LEN], uint32_t key_id,
                                        arca_store_resolve_cb resolve_cb, void *rctx,
                                        const arca_store_uid_hooks *uid_hooks,
                                        arca_store_damage_cb damage_cb, void *dctx,
                                        uint64_t *messages, arca_error *err)
{
	rebuild r = {.key = key, .key_id = key_id, .resolve = resolve_cb, .rctx = rctx,
	             .dcb = damage_cb, .dctx = dctx};
	arca_meta_assigned *assigned = NULL;
	size_t nassigned = 0;
	char tmp[ARCA_PATH_MAX + 16];
	uint32_t *ids = NULL;
	size_t n = 0;
	arca_status st;
	int rc, lock_fd;
	if (messages != NULL)
		*messages = 0;
	if (paths == NULL || paths->meta_path == NULL || paths->content_dir == NULL ||
	    resolve_cb == NULL)
		return arca_error_set(err, ARCA_ERR_INVALID, "bad arguments to recreate_meta");
	if (strlen(paths->meta_path) + 16 >= ARCA_PATH_MAX)
		return arca_error_set(err, ARCA_ERR_LIMIT, "path too long");
	/* With the wrong key every record would look damaged: check it against the old
	 * database first if one is readable. */
	if (arca_fs_exists(paths->meta_path)) {
		sqlite3 *old = NULL;
		arca_error e;
		if (arca_meta_open(paths->meta_path, SQLITE_OPEN_READONLY, &old, &e) == ARCA_OK) {
			st = arca_meta_check_key(old, key, key_id, NULL, NULL, NULL, &e);
			sqlite3_close(old);
			if (st == ARCA_ERR_CRYPTO)
				return arca_error_set(err, st, "%s", e.msg);
		}
	}
	/* No writer may append while the containers are walked. */
	lock_fd = open(paths->content_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0)
		return arca_error_errno(err, errno, "cannot open %s", paths->content_dir);
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		close(lock_fd);
		return arca_error_set(err, ARCA_ERR_STATE, "store %s is open for writing",
		                      paths->content_dir);
	}
	if ((st = list_containers(paths->content_dir, &ids, &n, err)) != ARCA_OK) {
		close(lock_fd);
		return st;
	}
	snprintf(tmp, sizeof(tmp), "%s.recreate", paths->meta_path);
	unlink_db(tmp);
	arca_buf_init(&r.plain, (size_t)2 * ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&r.raw, ARCA_REC_LINKS_MAX > ARCA_MAX_MESSAGE_SIZE ? ARCA_REC_LINKS_MAX :
	              ARCA_MAX_MESSAGE_SIZE);
	r.dctx_z = ZSTD_createDCtx();
	if (r.dctx_z == NULL) {
		st = arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
		goto out;
	}
	st = arca_meta_open(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &r.db, err);
	if (st == ARCA_OK)
		st = arca_meta_init(r.db, key, key_id, err);
	/* memberships are staged in rm and go to members (and its indexes) after the walk */
	if (st == ARCA_OK)
		st = arca_meta_exec(r.db, "BEGIN; DROP INDEX members_archive;" ARCA_RM_SQL, err);
	if (st != ARCA_OK)
		goto out;
	rc = sqlite3_prepare_v2(r.db, "INSERT INTO messages(id, sha256, size, stored_size,"
	                        " container, offset, archive_time) VALUES(?,?,?,?,?,?,?)", -1,
	                        &r.ins_msg, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "INSERT INTO rm(folder_id, message_id, archive_id, batch,"
		                        " uid) VALUES(?,?,?,?,?)", -1, &r.ins_mem, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "SELECT 1 FROM messages WHERE id = ?", -1, &r.has_msg,
		                        NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "INSERT INTO containers(id, committed_len) VALUES(?,?)",
		                        -1, &r.ins_cont, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "INSERT INTO dicts(id, container, offset, stored_size,"
		                        " sha256) VALUES(?,?,?,?,?)", -1, &r.ins_dict, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "INSERT OR IGNORE INTO dict_copies(dict_id, container,"
		                        " offset, stored_size) VALUES(?,?,?,?)", -1, &r.ins_copy,
		                        NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(r.db, "INSERT INTO links(batch, container, offset,"
		                        " stored_size, entries) VALUES(?,?,?,?,?)", -1, &r.ins_link,
		                        NULL);
	if (rc != SQLITE_OK) {
		st = arca_meta_err(r.db, rc, err, "cannot prepare statements");
		goto out;
	}
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		char path[ARCA_PATH_MAX + 32], name[32];
		uint64_t good = 0, size = 0;
		arca_rec_container_name(name, sizeof(name), ids[i]);
		snprintf(path, sizeof(path), "%s/%s", paths->content_dir, name);
		st = walk_container(&r, path, ids[i], &good, &size, err);
		if (st != ARCA_OK)
			break;
		/* Bytes after the last good record of the last container are a crash tail (the
		 * next open cuts them). Damaged bytes in earlier containers are kept, so nothing
		 * is destroyed automatically; verify keeps reporting them. */
		if (i + 1 < n)
			good = size;
		sqlite3_bind_int64(r.ins_cont, 1, ids[i]);
		sqlite3_bind_int64(r.ins_cont, 2, (int64_t)good);
		rc = sqlite3_step(r.ins_cont);
		sqlite3_reset(r.ins_cont);
		if (rc != SQLITE_DONE)
			st = arca_meta_err(r.db, rc, err, "cannot insert container");
	}
	if (st == ARCA_OK) {
		char sql[128];
		snprintf(sql, sizeof(sql), "UPDATE settings SET last_batch = %llu, next_msg_id = %llu",
		         (unsigned long long)r.max_batch, (unsigned long long)r.max_id + 1);
		st = arca_meta_exec(r.db, sql, err);
	}
	/* UIDs from the records; new ones where a record carries none (before format 5) */
	if (st == ARCA_OK) {
		sqlite3_finalize(r.ins_mem);
		r.ins_mem = NULL;
		st = arca_meta_fill_members(r.db, true, uid_hooks, &assigned, &nassigned, err);
	}
	if (st == ARCA_OK)
		st = arca_meta_exec(r.db, "COMMIT", err);
out:
	sqlite3_finalize(r.ins_msg);
	sqlite3_finalize(r.ins_mem);
	sqlite3_finalize(r.has_msg);
	sqlite3_finalize(r.ins_cont);
	sqlite3_finalize(r.ins_dict);
	sqlite3_finalize(r.ins_link);
	sqlite3_finalize(r.ins_copy);
	for (size_t i = 0; i < r.ndicts; i++)
		ZSTD_freeDDict(r.dicts[i].ddict);
	free(r.dicts);
	/* Closing the last connection checkpoints the WAL into the main file. */
	if (r.db != NULL && sqlite3_close(r.db) != SQLITE_OK && st == ARCA_OK)
		st = arca_error_set(err, ARCA_ERR_DB, "cannot close %s", tmp);
	ZSTD_freeDCtx(r.dctx_z);
	arca_buf_free(&r.plain);
	arca_buf_free(&r.raw);
	free(ids);
	if (st == ARCA_OK && arca_fs_exists(paths->meta_path))
		st = move_aside(paths->meta_path, err);
	if (st == ARCA_OK && rename(tmp, paths->meta_path) != 0)
		st = arca_error_errno(err, errno, "cannot rename %s", tmp);
	if (st == ARCA_OK)
		st = arca_fs_fsync_dir(paths->meta_path, err);
	if (st != ARCA_OK)
		unlink_db(tmp);
	else if (messages != NULL)
		*messages = r.messages;
	for (size_t i = 0; st == ARCA_OK && i < nassigned; i++) {
		arca_log(ARCA_LOG_INFO, "store", "recreate: folder %u: %llu memberships without a "
		         "recorded UID got new ones", (unsigned)assigned[i].folder_id,
		         (unsigned long long)assigned[i].n);
		if (uid_hooks != NULL && uid_hooks->uids_assigned != NULL)
			uid_hooks->uids_assigned(uid_hooks->ctx, assigned[i].folder_id, assigned[i].n);
	}
	free(assigned);
	close(lock_fd);
	return st;
}

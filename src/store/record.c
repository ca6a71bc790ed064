/* The on-disk record format (docs/storage-format.md): encoding and strict decoding.
 * Everything read here may come from a damaged or hostile file: every length is checked
 * against the bytes present and against the bounds in lib/limits.h before it is used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static bool known_version(uint8_t version)
{
	return version == ARCA_REC_VERSION_1 || version == ARCA_REC_VERSION_2 ||
	       version == ARCA_REC_VERSION;
}

static size_t content_fixed(uint8_t version)
{
	return version == ARCA_REC_VERSION_1 ? ARCA_REC_CONTENT_FIXED_V1 :
	       version == ARCA_REC_VERSION_2 ? ARCA_REC_CONTENT_FIXED_V2 : ARCA_REC_CONTENT_FIXED;
}

uint64_t arca_rec_body_max(uint8_t version, uint8_t type)
{
	if (!known_version(version))
		return 0;
	switch (type) {
	case ARCA_REC_CONTENT:
		return content_fixed(version) + 2 + ARCA_NAME_MAX + 2 + ARCA_FOLDER_MAX +
		       ZSTD_compressBound(ARCA_MAX_MESSAGE_SIZE);
	case ARCA_REC_LINKS:
		return ZSTD_compressBound(ARCA_REC_LINKS_MAX);
	case ARCA_REC_DICT:
		return version == ARCA_REC_VERSION_1 ? 0 : ARCA_REC_DICT_FIXED + ARCA_DICT_MAX;
	default:
		return 0;
	}
}

void arca_rec_hdr_encode(uint8_t out[ARCA_REC_HDR_LEN], const arca_rec_hdr *h)
{
	memcpy(out, ARCA_REC_MAGIC, 4);
	out[4] = h->version;
	out[5] = h->type;
	put16(out + 6, 0);
	put32(out + 8, h->key_id);
	put32(out + 12, h->body_len);
	put64(out + 16, h->seq);
	memcpy(out + 24, h->nonce, ARCA_GCM_NONCE_LEN);
}

bool arca_rec_hdr_decode(const uint8_t in[ARCA_REC_HDR_LEN], arca_rec_hdr *h, const char **why)
{
	if (memcmp(in, ARCA_REC_MAGIC, 4) != 0) {
		*why = "bad record header (magic)";
		return false;
	}
	if (!known_version(in[4])) {
		*why = "bad record header (unknown version)";
		return false;
	}
	h->version = in[4];
	h->type = in[5];
	if (arca_rec_body_max(h->version, h->type) == 0) {
		*why = "bad record header (unknown type)";
		return false;
	}
	if (get16(in + 6) != 0) {
		*why = "bad record header (reserved bits set)";
		return false;
	}
	h->key_id = get32(in + 8);
	h->body_len = get32(in + 12);
	h->seq = get64(in + 16);
	memcpy(h->nonce, in + 24, ARCA_GCM_NONCE_LEN);
	if (h->body_len > arca_rec_body_max(h->version, h->type)) {
		*why = "bad record header (length out of range)";
		return false;
	}
	return true;
}

arca_status arca_rec_seal(const uint8_t key[ARCA_KEY_LEN], uint32_t key_id, uint8_t version,
                          uint8_t type, uint64_t seq, const void *plain, size_t len, arca_buf *rec,
                          arca_error *err)
{
	arca_rec_hdr h = {.version = version, .type = type, .key_id = key_id,
	                  .body_len = (uint32_t)len, .seq = seq};
	uint8_t *p;
	arca_status st;
	if (len > arca_rec_body_max(h.version, type))
		return arca_error_set(err, ARCA_ERR_LIMIT, "record too large (%zu bytes)", len);
	arca_buf_reset(rec);
	st = arca_buf_reserve(rec, ARCA_REC_OVERHEAD + len);
	if (st != ARCA_OK)
		return arca_error_set(err, st, "cannot allocate record buffer (%zu bytes)", len);
	p = (uint8_t *)rec->data;
	arca_crypto_random(h.nonce, sizeof(h.nonce));
	arca_rec_hdr_encode(p, &h);
	/* The whole header is the AAD: no bit of a record can change unnoticed. */
	st = arca_aead_seal(key, h.nonce, p, ARCA_REC_HDR_LEN, plain, len, p + ARCA_REC_HDR_LEN,
	                    p + ARCA_REC_HDR_LEN + len, err);
	if (st != ARCA_OK)
		return st;
	rec->len = ARCA_REC_OVERHEAD + len;
	rec->data[rec->len] = '\0';
	return ARCA_OK;
}

arca_status arca_rec_open(const uint8_t key[ARCA_KEY_LEN], const arca_rec_hdr *h,
                          const uint8_t *rec, arca_buf *plain, arca_error *err)
{
	arca_status st;
	arca_buf_reset(plain);
	st = arca_buf_reserve(plain, h->body_len);
	if (st != ARCA_OK)
		return arca_error_set(err, st, "cannot allocate %u bytes", h->body_len);
	st = arca_aead_open(key, h->nonce, rec, ARCA_REC_HDR_LEN, rec + ARCA_REC_HDR_LEN,
	                    h->body_len, plain->data, rec + ARCA_REC_HDR_LEN + h->body_len, err);
	if (st != ARCA_OK)
		return st;
	plain->len = h->body_len;
	plain->data[plain->len] = '\0';
	return ARCA_OK;
}

arca_status arca_rec_content_encode(arca_buf *plain, const arca_rec_content *c, uint8_t version)
{
	uint8_t f[ARCA_REC_CONTENT_FIXED + 2];
	size_t fixed = content_fixed(version);
	arca_status st;
	if (c->archive_name_len > ARCA_NAME_MAX || c->folder_path_len > ARCA_FOLDER_MAX ||
	    version == ARCA_REC_VERSION_1 || !known_version(version))
		return ARCA_ERR_LIMIT;
	memcpy(f, c->sha, 32);
	put64(f + 32, c->raw_size);
	put64(f + 40, (uint64_t)c->archive_time);
	put64(f + 48, c->msg_id);
	put64(f + 56, c->batch);
	put32(f + 64, c->archive_id);
	put32(f + 68, c->folder_id);
	put32(f + 72, c->dict_id);
	if (version == ARCA_REC_VERSION)
		put32(f + 76, c->uid);
	put16(f + fixed, (uint16_t)c->archive_name_len);
	if ((st = arca_buf_append(plain, f, fixed + 2)) != ARCA_OK ||
	    (st = arca_buf_append(plain, c->archive_name, c->archive_name_len)) != ARCA_OK)
		return st;
	put16(f, (uint16_t)c->folder_path_len);
	if ((st = arca_buf_append(plain, f, 2)) != ARCA_OK ||
	    (st = arca_buf_append(plain, c->folder_path, c->folder_path_len)) != ARCA_OK)
		return st;
	return ARCA_OK;
}

/* Reads a u16-length-prefixed string of at most max bytes at *pos. */
static bool get_str(const uint8_t *p, size_t len, size_t *pos, size_t max, const char **s,
                    size_t *slen)
{
	size_t n;
	if (len - *pos < 2)
		return false;
	n = get16(p + *pos);
	*pos += 2;
	if (n > max || len - *pos < n)
		return false;
	*s = (const char *)p + *pos;
	*slen = n;
	*pos += n;
	return true;
}

bool arca_rec_content_parse(const uint8_t *p, size_t len, uint8_t version, arca_rec_content *c,
                            const char **why)
{
	size_t pos = content_fixed(version);
	if (len < pos) {
		*why = "content record too short";
		return false;
	}
	memcpy(c->sha, p, 32);
	c->raw_size = get64(p + 32);
	c->archive_time = (int64_t)get64(p + 40);
	c->msg_id = get64(p + 48);
	c->batch = get64(p + 56);
	c->archive_id = get32(p + 64);
	c->folder_id = get32(p + 68);
	c->dict_id = version == ARCA_REC_VERSION_1 ? 0 : get32(p + 72);
	c->uid = version == ARCA_REC_VERSION ? get32(p + 76) : 0;
	if (!get_str(p, len, &pos, ARCA_NAME_MAX, &c->archive_name, &c->archive_name_len) ||
	    !get_str(p, len, &pos, ARCA_FOLDER_MAX, &c->folder_path, &c->folder_path_len)) {
		*why = "content record has malformed names";
		return false;
	}
	if (c->raw_size > ARCA_MAX_MESSAGE_SIZE) {
		*why = "content record size out of range";
		return false;
	}
	c->payload = p + pos;
	c->payload_len = len - pos;
	return true;
}

bool arca_rec_dict_parse(const uint8_t *p, size_t len, uint64_t seq, const uint8_t **dict,
                         size_t *dict_len, const char **why)
{
	if (len < ARCA_REC_DICT_FIXED) {
		*why = "dictionary record too short";
		return false;
	}
	if (seq == 0 || get32(p) != seq) {
		*why = "dictionary record has an inconsistent id";
		return false;
	}
	*dict = p + ARCA_REC_DICT_FIXED;
	*dict_len = len - ARCA_REC_DICT_FIXED;
	/* Only trained dictionaries (zstd magic + entropy tables) are written; a raw-content
	 * dictionary here means the record is not what it claims. */
	if (*dict_len > ARCA_DICT_MAX || ZSTD_getDictID_fromDict(*dict, *dict_len) == 0) {
		*why = "dictionary record does not hold a zstd dictionary";
		return false;
	}
	return true;
}

static size_t link_fixed(uint8_t version)
{
	return version == ARCA_REC_VERSION ? ARCA_REC_LINK_FIXED : ARCA_REC_LINK_FIXED_V2;
}

arca_status arca_rec_link_encode(arca_buf *raw, const arca_rec_link *l, uint8_t version)
{
	uint8_t f[ARCA_REC_LINK_FIXED + 2];
	size_t fixed = link_fixed(version);
	arca_status st;
	if (l->archive_name_len > ARCA_NAME_MAX || l->folder_path_len > ARCA_FOLDER_MAX)
		return ARCA_ERR_LIMIT;
	put64(f, l->msg_id);
	put32(f + 8, l->archive_id);
	put32(f + 12, l->folder_id);
	if (version == ARCA_REC_VERSION)
		put32(f + 16, l->uid);
	put16(f + fixed, (uint16_t)l->archive_name_len);
	if ((st = arca_buf_append(raw, f, fixed + 2)) != ARCA_OK ||
	    (st = arca_buf_append(raw, l->archive_name, l->archive_name_len)) != ARCA_OK)
		return st;
	put16(f, (uint16_t)l->folder_path_len);
	if ((st = arca_buf_append(raw, f, 2)) != ARCA_OK ||
	    (st = arca_buf_append(raw, l->folder_path, l->folder_path_len)) != ARCA_OK)
		return st;
	return ARCA_OK;
}

bool arca_rec_link_next(const uint8_t *p, size_t len, uint8_t version, size_t *pos,
                        arca_rec_link *l, const char **why)
{
	size_t fixed = link_fixed(version);
	*why = NULL;
	if (*pos >= len)
		return false;
	if (len - *pos < fixed) {
		*why = "links record entry truncated";
		return false;
	}
	l->msg_id = get64(p + *pos);
	l->archive_id = get32(p + *pos + 8);
	l->folder_id = get32(p + *pos + 12);
	l->uid = version == ARCA_REC_VERSION ? get32(p + *pos + 16) : 0;
	*pos += fixed;
	if (!get_str(p, len, pos, ARCA_NAME_MAX, &l->archive_name, &l->archive_name_len) ||
	    !get_str(p, len, pos, ARCA_FOLDER_MAX, &l->folder_path, &l->folder_path_len)) {
		*why = "links record entry has malformed names";
		return false;
	}
	return true;
}

bool arca_rec_decompress(ZSTD_DCtx *dctx, const ZSTD_DDict *ddict, const void *src,
                         size_t srclen, uint64_t expect, uint64_t max, arca_buf *out,
                         const char **why)
{
	unsigned long long fcs = ZSTD_getFrameContentSize(src, srclen);
	size_t r;
	/* We always write the content size into the frame; refuse frames without it so the
	 * output bound is known before decompressing. */
	if (fcs == ZSTD_CONTENTSIZE_ERROR || fcs == ZSTD_CONTENTSIZE_UNKNOWN) {
		*why = "decompression failed (bad frame header)";
		return false;
	}
	if ((expect != UINT64_MAX && fcs != expect) || fcs > max) {
		*why = "decompression failed (size mismatch)";
		return false;
	}
	if (arca_buf_reserve(out, (size_t)fcs) != ARCA_OK) {
		*why = "decompression failed (out of memory)";
		return false;
	}
	if (ddict != NULL)
		r = ZSTD_decompress_usingDDict(dctx, out->data + out->len, (size_t)fcs, src, srclen,
		                               ddict);
	else
		r = ZSTD_decompressDCtx(dctx, out->data + out->len, (size_t)fcs, src, srclen);
	if (ZSTD_isError(r) || r != fcs) {
		*why = "decompression failed";
		return false;
	}
	out->len += (size_t)fcs;
	out->data[out->len] = '\0';
	return true;
}

void arca_rec_container_name(char *out, size_t outsz, uint32_t id)
{
	snprintf(out, outsz, "c%06u.dat", (unsigned)id);
}

uint32_t arca_rec_container_id(const char *name)
{
	char canon[32];
	unsigned long v;
	char *end;
	if (name[0] != 'c' || name[1] < '0' || name[1] > '9')
		return 0;
	v = strtoul(name + 1, &end, 10);
	if (strcmp(end, ".dat") != 0 || v == 0 || v > UINT32_MAX)
		return 0;
	arca_rec_container_name(canon, sizeof(canon), (uint32_t)v);
	return strcmp(canon, name) == 0 ? (uint32_t)v : 0;
}

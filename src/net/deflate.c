/* COMPRESS=DEFLATE. Raw DEFLATE streams both ways: we compress with ISA-L's igzip at level 1
 * with a 32 KB window (RFC 4978 lets the compressor choose), and decompress with zlib and a 32 KB
 * window since the peer may use any.
 *
 * Compression (arca_deflate_out) is separate from the filter so that the thread that produces a
 * response can compress it. ISA-L rather than zlib because on loopback and LANs the compressor is
 * the bottleneck of a bulk FETCH: on the SpamAssassin corpus, sync-flushed per message, zlib 1.2.13
 * level 1 runs at 50-55 MB/s for 0.37 of the input, igzip level 1 at 175-210 MB/s for 0.36
 * (docs/adr/007). Decompression stays on zlib: clients send little, and the filter needs zlib's
 * Z_BLOCK, inflatePrime and dictionary calls to find block boundaries and release its state.
 *
 * Memory per compressed session (ISA-L 2.30, zlib 1.2.13, x86-64):
 *   - while compressing: igzip stream 82 KB (its 64 KB history buffer and hash tables) + the level 1
 *     buffer 84 KB, one allocation, kept across the commands of a busy session and freed by
 *     arca_deflate_out_idle when the session goes idle; a new stream then starts without
 *     history, which a DEFLATE stream allows after a sync flush (the peer's decompressor keeps its
 *     window; we just do not refer to it);
 *   - while decompressing: inflate state 7 KB + 32 KB window;
 *   - idle (after each flushed batch from the peer): no inflate state; only the history the
 *     peer's next bytes may refer to, copied out: up to 32 KB (as much as it sent so far), plus
 *     the filter's struct (about 200 bytes).
 * The inflate state is rebuilt from that history when data arrives again (inflateSetDictionary,
 * which raw streams allow at block boundaries).
 *
 * The decompressor is released only at a block boundary: after a sync flush (an empty stored
 * block) or a partial flush (an empty fixed block, which can leave up to 9 of its bits for later:
 * those wait in the underlying input or in in_bits until the peer's next bytes complete them). */
#include "net/deflate.h"

#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define DEFL_WBITS 15           /* compressor window 32 KB */
#define DEFL_LEVEL 1            /* see above */
#define DEFL_LEVEL_BUF ISAL_DEF_LVL1_SMALL /* 84 KB: as fast as the default 276 KB here */
#define OUT_NOSPACE (-1000)    /* evbuffer space could not be had (ISA-L's own codes are > -20) */
#define LEVEL_BUF_AT ((sizeof(struct isal_zstream) + 63u) & ~(size_t)63u) /* 64-byte aligned */
#define INFL_WBITS 15           /* the peer may use any window */
#define STEP_IN (64u * 1024u)   /* input handed to zlib per call */
#define STEP_OUT (16u * 1024u)  /* output space reserved per call */
#define READ_MAX (64u * 1024u)  /* inflated bytes per filter call */
/* Output inflate still owes for input it already took when the output space ran out: at most one
 * match (258 bytes) plus what the < 8 bits it holds decode to (3 more matches). Inflation stops
 * this far below the cap so that paying it out never crosses ARCA_DEFLATE_MAX_INPUT. */
#define READ_SLACK (8u * 1024u)

typedef struct {
	struct bufferevent *bev, *under; /* the filter itself, what it wraps */
	struct evbuffer_cb_entry *resume_cb;
	z_stream in;                  /* valid while in_live */
	unsigned char *in_hist;       /* history of a released state */
	unsigned in_hist_len;
	unsigned in_bits, in_bitval; /* at a block boundary: bits inflate holds (< 8) and their value */
	unsigned char in_last;       /* last byte inflate took: those bits are its top ones */
	bool in_live;
	bool in_boundary; /* inflate stopped right after a block (or holds no state at all) */
	bool in_ended;    /* the peer ended its stream (a final block) */
	bool in_stalled;  /* stopped at the cap with input left: resume when the reader drains */
	bool rd_paused;   /* reading from under is off while stalled */
	bool in_busy, failed;
} defl;

/* Fails the session: the event callback runs (deferred, from the loop) with errno set to err. */
static void defl_fail(defl *d, short what, int err)
{
	if (d->failed)
		return;
	d->failed = true;
	errno = err;
	bufferevent_trigger_event(d->bev, (short)(what | BEV_EVENT_ERROR), BEV_TRIG_DEFER_CALLBACKS);
}

/* ------------------------------------------------------------------ decompression */

/* While inflation is stalled, under stops reading: what waits there stays at most what one read
 * brought. (Not a read high watermark on under: libevent 2.1.12 re-runs the read callback of a
 * bufferevent whose input stays at its high watermark in a busy loop.) */
static void in_stall(defl *d, bool stalled)
{
	d->in_stalled = stalled;
	if (stalled == d->rd_paused)
		return;
	d->rd_paused = stalled;
	if (stalled)
		bufferevent_disable(d->under, EV_READ);
	else
		bufferevent_enable(d->under, EV_READ);
}

static int in_start(defl *d)
{
	memset(&d->in, 0, sizeof d->in);
	if (inflateInit2(&d->in, -INFL_WBITS) != Z_OK)
		return -1;
	d->in_live = true;
	if (d->in_hist_len > 0 && inflateSetDictionary(&d->in, d->in_hist, d->in_hist_len) != Z_OK)
		return -1;
	if (d->in_bits > 0 && inflatePrime(&d->in, (int)d->in_bits, (int)d->in_bitval) != Z_OK)
		return -1;
	free(d->in_hist);
	d->in_hist = NULL;
	d->in_hist_len = 0;
	return 0;
}

/* At a block boundary: keeps the window's contents and the held bits, frees the state. */
static void in_release(defl *d)
{
	uInt n = 0;
	unsigned char *h = NULL;
	if (inflateGetDictionary(&d->in, NULL, &n) != Z_OK)
		return;
	if (n > 0) {
		h = malloc(n);
		if (h == NULL || inflateGetDictionary(&d->in, h, &n) != Z_OK) {
			free(h);
			return; /* keep the live state */
		}
	}
	inflateEnd(&d->in);
	d->in_live = false;
	d->in_hist = h;
	d->in_hist_len = n;
}

/* True when what is left at a block boundary (the held bits, then src) is shorter than 10 bits:
 * no block yields output before that (3 header bits and a 7-bit code at least). The partial flush
 * a peer may use ends in such a tail (an empty fixed block, part of which its compressor keeps);
 * it stays in src until the peer's next bytes complete it. */
static bool in_idle_tail(const defl *d, struct evbuffer *src)
{
	return d->in_boundary && d->in_bits + 8 * evbuffer_get_length(src) < 10;
}

/* One inflate call from src's first chain (or none: take_input false) into at most want bytes of
 * dst. *full: the output space ran out, so zlib may owe more for input it already took. */
static int in_step(defl *d, struct evbuffer *src, struct evbuffer *dst, size_t want, bool take_input,
                   size_t *produced, bool *full, bool *progress)
{
	struct evbuffer_iovec iv = {0}, ov;
	size_t in_len = 0, used, got;
	int ret;
	if (take_input && evbuffer_peek(src, -1, NULL, &iv, 1) >= 1)
		in_len = iv.iov_len < STEP_IN ? iv.iov_len : STEP_IN;
	if (want > STEP_OUT)
		want = STEP_OUT;
	if (evbuffer_reserve_space(dst, (ev_ssize_t)want, &ov, 1) != 1)
		return Z_MEM_ERROR;
	d->in.next_in = in_len > 0 ? iv.iov_base : NULL;
	d->in.avail_in = (uInt)in_len;
	d->in.next_out = ov.iov_base;
	d->in.avail_out = (uInt)(ov.iov_len < want ? ov.iov_len : want);
	got = d->in.avail_out;
	/* Z_BLOCK: stop after each block, so that we learn where the boundaries are. */
	ret = inflate(&d->in, Z_BLOCK);
	used = in_len - d->in.avail_in;
	got -= d->in.avail_out;
	d->in.next_in = NULL;
	d->in.avail_in = 0;
	*full = d->in.avail_out == 0;
	*progress = used > 0 || got > 0;
	if (used > 0) {
		d->in_last = ((const unsigned char *)iv.iov_base)[used - 1];
		evbuffer_drain(src, used);
	}
	if (got > 0) {
		ov.iov_len = got;
		if (evbuffer_commit_space(dst, &ov, 1) != 0)
			return Z_MEM_ERROR;
		*produced += got;
	}
	/* data_type: held bits, + 64 in the last block, + 128 right after a block's end. */
	d->in_boundary = (d->in.data_type & 0xC0) == 0x80 && (d->in.data_type & 0x3F) < 8;
	if (d->in_boundary) {
		d->in_bits = (unsigned)d->in.data_type & 7u;
		d->in_bitval = d->in_bits > 0 ? (unsigned)d->in_last >> (8 - d->in_bits) : 0;
	}
	if (ret == Z_STREAM_END) {
		d->in_ended = true;
		d->in_boundary = false;
		return Z_OK;
	}
	return ret == Z_BUF_ERROR ? Z_OK : ret;
}

static enum bufferevent_filter_result defl_in(struct evbuffer *src, struct evbuffer *dst,
                                              ev_ssize_t dst_limit, enum bufferevent_flush_mode mode,
                                              void *arg)
{
	defl *d = arg;
	size_t have = evbuffer_get_length(dst), room, produced = 0;
	bool full = false, progress = true;
	int ret = Z_OK;
	(void)mode;
	if (d->failed) {
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_ERROR;
	}
	if (d->in_busy) /* re-entered from a callback of dst */
		return BEV_NEED_MORE;
	if (evbuffer_get_length(src) == 0 || in_idle_tail(d, src)) {
		in_stall(d, false);
		return BEV_NEED_MORE;
	}
	if (d->in_ended) {
		defl_fail(d, BEV_EVENT_READING, EPROTO);
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_ERROR;
	}
	room = have < ARCA_DEFLATE_MAX_INPUT - READ_SLACK ? ARCA_DEFLATE_MAX_INPUT - READ_SLACK - have : 0;
	if (dst_limit >= 0 && (size_t)dst_limit < room)
		room = (size_t)dst_limit;
	if (room > READ_MAX)
		room = READ_MAX;
	if (room == 0) {
		in_stall(d, true);
		return BEV_NEED_MORE;
	}
	if (!d->in_live && in_start(d) != 0) {
		defl_fail(d, BEV_EVENT_READING, ENOMEM);
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_ERROR;
	}
	d->in_busy = true;
	while (ret == Z_OK && progress && produced < room && evbuffer_get_length(src) > 0 && !d->in_ended &&
	       !in_idle_tail(d, src))
		ret = in_step(d, src, dst, room - produced, true, &produced, &full, &progress);
	/* Pay out what inflate owes for input it already took (no output may wait inside zlib: nothing
	 * would call us again while the underlying input is empty), taking no more input. */
	while (ret == Z_OK && full)
		ret = in_step(d, src, dst, STEP_OUT, false, &produced, &full, &progress);
	d->in_busy = false;
	if (ret != Z_OK || (d->in_ended && evbuffer_get_length(src) > 0)) {
		defl_fail(d, BEV_EVENT_READING, ret == Z_MEM_ERROR ? ENOMEM : EPROTO);
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_ERROR;
	}
	in_stall(d, evbuffer_get_length(src) > 0 && !in_idle_tail(d, src));
	if (!d->in_stalled && d->in_boundary && d->in_live)
		in_release(d);
	return produced > 0 ? BEV_OK : BEV_NEED_MORE;
}

/* The reader drained the input buffer: carry on inflating if we stopped at our cap. (libevent
 * resumes by itself only when a read high watermark stopped us.) */
static void defl_resume(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	defl *d = arg;
	if (!d->in_stalled || d->in_busy || info->n_deleted == 0 ||
	    evbuffer_get_length(buf) >= ARCA_DEFLATE_MAX_INPUT - READ_SLACK)
		return;
	if (bufferevent_flush(d->bev, EV_READ, BEV_NORMAL) > 0)
		bufferevent_trigger(d->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/* ------------------------------------------------------------------ compression */

struct arca_deflate_out {
	struct isal_zstream *z; /* with its level buffer behind it (one allocation); NULL while idle */
	bool failed;
};

arca_deflate_out *arca_deflate_out_new(void)
{
	return calloc(1, sizeof(arca_deflate_out));
}

void arca_deflate_out_idle(arca_deflate_out *o)
{
	if (o != NULL) {
		free(o->z);
		o->z = NULL;
	}
}

void arca_deflate_out_free(arca_deflate_out **po)
{
	arca_deflate_out *o = po != NULL ? *po : NULL;
	if (o == NULL)
		return;
	arca_deflate_out_idle(o);
	free(o);
	*po = NULL;
}

static int out_start(arca_deflate_out *o)
{
	void *mem = NULL;
	struct isal_zstream *z;
	if (posix_memalign(&mem, 64, LEVEL_BUF_AT + DEFL_LEVEL_BUF) != 0)
		return -1;
	z = mem;
	isal_deflate_init(z);
	z->level = DEFL_LEVEL;
	z->level_buf = (uint8_t *)mem + LEVEL_BUF_AT;
	z->level_buf_size = DEFL_LEVEL_BUF;
	z->hist_bits = DEFL_WBITS;
	z->gzip_flag = IGZIP_DEFLATE; /* raw: no header, no trailer */
	z->end_of_stream = 0;
	o->z = z;
	return 0;
}

/* One isal_deflate call into fresh space at the end of dst; *full when the space ran out (there
 * may be more to give). */
static int out_step(struct isal_zstream *z, struct evbuffer *dst, bool *full)
{
	struct evbuffer_iovec ov;
	size_t got;
	int ret;
	if (evbuffer_reserve_space(dst, STEP_OUT, &ov, 1) != 1)
		return OUT_NOSPACE;
	z->next_out = ov.iov_base;
	z->avail_out = (uint32_t)(ov.iov_len < UINT32_MAX ? ov.iov_len : UINT32_MAX);
	got = z->avail_out;
	ret = isal_deflate(z);
	got -= z->avail_out;
	*full = z->avail_out == 0;
	ov.iov_len = got;
	if (evbuffer_commit_space(dst, &ov, 1) != 0)
		return OUT_NOSPACE;
	return ret;
}

int arca_deflate_out_put(arca_deflate_out *o, struct evbuffer *src, struct evbuffer *dst)
{
	bool full = false;
	int ret = COMP_OK;
	if (o->failed) {
		errno = EPROTO;
		return -1;
	}
	if (evbuffer_get_length(src) == 0)
		return 0;
	if (o->z == NULL && out_start(o) != 0) {
		errno = ENOMEM;
		return -1;
	}
	while (ret == COMP_OK && evbuffer_get_length(src) > 0) {
		struct evbuffer_iovec iv;
		size_t n;
		bool last;
		if (evbuffer_peek(src, -1, NULL, &iv, 1) < 1)
			break;
		n = iv.iov_len < STEP_IN ? iv.iov_len : STEP_IN;
		last = n == evbuffer_get_length(src);
		/* Only the last piece flushes: one sync flush (5 bytes) per put. The flush is complete
		 * once all input is taken and a call leaves output space unused (igzip_lib.h). */
		o->z->next_in = iv.iov_base;
		o->z->avail_in = (uint32_t)n;
		o->z->flush = last ? SYNC_FLUSH : NO_FLUSH;
		do
			ret = out_step(o->z, dst, &full);
		while (ret == COMP_OK && (o->z->avail_in > 0 || (last && full)));
		n -= o->z->avail_in;
		o->z->next_in = NULL;
		o->z->avail_in = 0;
		evbuffer_drain(src, n);
	}
	if (ret != COMP_OK) {
		o->failed = true;
		errno = ret == OUT_NOSPACE ? ENOMEM : EPROTO;
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ life cycle */

static void defl_free(void *arg)
{
	defl *d = arg;
	if (d == NULL)
		return;
	if (d->resume_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(d->bev), d->resume_cb);
	if (d->in_live)
		inflateEnd(&d->in);
	free(d->in_hist);
	free(d);
}

struct bufferevent *arca_deflate_bev_new(struct bufferevent *underlying, int options)
{
	struct bufferevent *bev;
	defl *d;
	if (underlying == NULL)
		return NULL;
	d = calloc(1, sizeof *d);
	if (d == NULL) {
		bufferevent_free(underlying);
		return NULL;
	}
	d->in_boundary = true; /* the start of the stream */
	bev = bufferevent_filter_new(underlying, defl_in, NULL, options | BEV_OPT_CLOSE_ON_FREE, defl_free, d);
	if (bev == NULL) {
		free(d);
		bufferevent_free(underlying);
		return NULL;
	}
	d->bev = bev;
	d->under = underlying;
	d->resume_cb = evbuffer_add_cb(bufferevent_get_input(bev), defl_resume, d);
	if (d->resume_cb == NULL) {
		bufferevent_free(bev); /* frees d and underlying */
		return NULL;
	}
	return bev;
}

/* IMAP COMPRESS=DEFLATE (RFC 4978), raw DEFLATE (no zlib header or trailer) in both directions:
 * a bufferevent filter that inflates what the peer sends, and a compressor for what we send.
 *
 * Output: the filter passes written bytes through unchanged; the caller compresses them first with
 * an arca_deflate_out, on whatever thread produces them (one at a time, in the order they are to
 * be sent). Each arca_deflate_out_put ends with a sync flush, so everything put reaches the peer
 * without waiting for more: hand over a response batch in one put (each costs about 5 bytes).
 *
 * Input: at most ARCA_DEFLATE_MAX_INPUT inflated bytes wait in the input buffer; the reader must
 * consume as it goes (a streaming parser) or inflation stalls there, and reading from the
 * underlying bufferevent stops until the reader makes room (what waits there then is what its last
 * read brought, 16 KB by default). With libevent 2.1.12, leave the read high watermark of the
 * returned bufferevent unset or keep the input below it: a read callback that leaves the input at
 * its high watermark is run again and again in a busy loop. Corrupt input, or input after the
 * peer ended its stream, makes the event callback run (deferred) with BEV_EVENT_READING |
 * BEV_EVENT_ERROR and errno EPROTO; an allocation failure with BEV_EVENT_ERROR | BEV_EVENT_READING
 * and errno ENOMEM. Close the session then.
 *
 * Memory: see deflate.c; an idle session holds no compression state and only the history the
 * peer's next bytes may refer to. */
#ifndef ARCA_NET_DEFLATE_H
#define ARCA_NET_DEFLATE_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#define ARCA_DEFLATE_MAX_INPUT (256u * 1024u) /* inflated bytes waiting for the reader */

/* Wraps underlying (a socket or TLS bufferevent) in the filter. options are those of
 * bufferevent_filter_new (BEV_OPT_THREADSAFE, BEV_OPT_DEFER_CALLBACKS...); BEV_OPT_CLOSE_ON_FREE
 * is always added: the returned bufferevent owns underlying and frees it. On failure returns NULL
 * and has freed underlying too. Compressed bytes already waiting in underlying's input buffer are
 * inflated when the next ones arrive (the peer starts compressing only after our tagged OK). */
struct bufferevent *arca_deflate_bev_new(struct bufferevent *underlying, int options);

typedef struct arca_deflate_out arca_deflate_out;

/* A compressor for one stream (NULL when out of memory). Not thread-safe: callers serialise. */
arca_deflate_out *arca_deflate_out_new(void);
void arca_deflate_out_free(arca_deflate_out **z);

/* Compresses all of src (drained) onto the end of dst, then sync-flushes, so the peer can decode
 * everything put so far. An empty src appends nothing. 0, or -1 with errno ENOMEM or EPROTO (a
 * zlib failure): the stream is then unusable, close the session. */
int arca_deflate_out_put(arca_deflate_out *z, struct evbuffer *src, struct evbuffer *dst);

/* The session is idle: frees the compression state (about 165 KB); the next put starts a new
 * one. */
void arca_deflate_out_idle(arca_deflate_out *z);

#endif

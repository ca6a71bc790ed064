/* IMAP COMPRESS=DEFLATE (RFC 4978): a bufferevent filter that inflates what the peer sends and
 * deflates what we write, raw DEFLATE (no zlib header or trailer) in both directions.
 *
 * Everything written to the returned bufferevent reaches the peer without waiting for more: the
 * compressor is sync-flushed whenever its input is used up (and on bufferevent_flush with
 * BEV_FLUSH or BEV_FINISHED, which never end the stream). For the best ratio, hand a response
 * batch over in one write (evbuffer_add_buffer) rather than in many small ones: each write that
 * empties the output costs a flush (about 5 bytes).
 *
 * Input: at most ARCA_DEFLATE_MAX_INPUT inflated bytes wait in the input buffer; the reader must
 * consume as it goes (a streaming parser) or inflation stalls there, and reading from the
 * underlying bufferevent stops until the reader makes room (what waits there then is what its last
 * read brought, 16 KB by default). With libevent 2.1.12, leave the read high watermark of the
 * returned bufferevent unset or keep the input below it: a read callback that leaves the input at
 * its high watermark is run again and again in a busy loop. Corrupt input, or input after the
 * peer ended its stream, makes the
 * event callback run (deferred) with BEV_EVENT_READING | BEV_EVENT_ERROR and errno EPROTO; an
 * allocation failure with BEV_EVENT_ERROR (and READING or WRITING) and errno ENOMEM. Close the
 * session then.
 *
 * Memory: the compression states exist only while data is passing; an idle session keeps only the
 * history the next bytes may refer to (see deflate.c). */
#ifndef ARCA_NET_DEFLATE_H
#define ARCA_NET_DEFLATE_H

#include <event2/bufferevent.h>

#define ARCA_DEFLATE_MAX_INPUT (256u * 1024u) /* inflated bytes waiting for the reader */

/* Wraps underlying (a socket or TLS bufferevent) in the filter. options are those of
 * bufferevent_filter_new (BEV_OPT_THREADSAFE, BEV_OPT_DEFER_CALLBACKS...); BEV_OPT_CLOSE_ON_FREE
 * is always added: the returned bufferevent owns underlying and frees it. On failure returns NULL
 * and has freed underlying too. Compressed bytes already waiting in underlying's input buffer are
 * inflated when the next ones arrive (the peer starts compressing only after our tagged OK). */
struct bufferevent *arca_deflate_bev_new(struct bufferevent *underlying, int options);

#endif

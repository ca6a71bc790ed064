/* A process-wide, bounded, thread-safe memory cache of what FETCH derives from a message's
 * content: ENVELOPE, BODY, BODYSTRUCTURE, the Date header as INTERNALDATE, RFC822.SIZE. Keyed
 * by (store id, message id): a stored message's bytes never change and its id is never
 * reused (docs/ARCHITECTURE.md "Message ids"), so an entry never becomes stale and there is
 * nothing to invalidate. A repeated metadata FETCH then reads no message at all (no read, no
 * decryption, no decompression, no parse), as Dovecot answers from its cache file.
 *
 * Bounded by bytes: every entry counts its strings plus a fixed overhead (the hash table's
 * buckets, 8 bytes an entry, and malloc's own overhead are not counted). Eviction is CLOCK
 * (second chance): a hit sets a bit, so lookups never reorder anything. An entry larger than
 * an eighth of the bound is not kept (one huge message must not empty the cache). One mutex;
 * a hit copies the entry out under it (a few hundred bytes to a few KiB). */
#ifndef ARCA_IMAP_FETCH_CACHE_H
#define ARCA_IMAP_FETCH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/error.h"

#define ARCA_IMAP_FCACHE_DEFAULT_MB 64u

typedef struct arca_imap_fcache arca_imap_fcache;

/* One message's values. The strings are the items' values exactly as FETCH writes them after
 * "ENVELOPE ", "BODY ", "BODYSTRUCTURE " (not NUL-terminated). */
typedef struct {
	const char *envelope;
	size_t envelope_len;
	const char *body;          /* BODY: the non-extended structure */
	size_t body_len;
	const char *bodystructure; /* BODYSTRUCTURE: extended */
	size_t bodystructure_len;
	bool has_date;             /* the Date header was usable: date and tz are INTERNALDATE */
	int64_t date;              /* seconds since the epoch */
	int tz;                    /* minutes east of UTC */
	uint64_t size;             /* the raw message's length */
} arca_imap_fcache_val;

typedef struct {
	uint64_t hits, misses, inserts, evictions;
	size_t entries, bytes, max_bytes;
} arca_imap_fcache_stats;

/* A cache holding at most max_bytes (0: disabled until arca_imap_fcache_set_limit). */
arca_status arca_imap_fcache_new(size_t max_bytes, arca_imap_fcache **out, arca_error *err);
/* Frees the cache and every entry; sets *c to NULL; accepts NULL. No other thread may use it. */
void arca_imap_fcache_free(arca_imap_fcache **c);
/* A new bound (e.g. on SIGHUP): evicts down to it at once; 0 empties and disables. */
void arca_imap_fcache_set_limit(arca_imap_fcache *c, size_t max_bytes);
/* False for NULL or a disabled cache: callers then need not derive what they would put. */
bool arca_imap_fcache_enabled(const arca_imap_fcache *c);
/* Looks (store_id, msg_id) up. On a hit copies the strings into out (reset first) and fills
 * *v, whose pointers point into out->data (valid until out changes), and returns true. False
 * on a miss, for NULL or a disabled cache, and when out's cap is too small. With out and v
 * NULL only tells whether the entry is there (and counts as a use of it). */
bool arca_imap_fcache_get(arca_imap_fcache *c, uint32_t store_id, uint64_t msg_id, arca_buf *out,
                          arca_imap_fcache_val *v);
/* Stores a copy of *v (the caller keeps its strings), evicting as needed. Does nothing when
 * the key is present, the cache is NULL or disabled, the entry is too large, or memory is
 * short: the cache is only ever an optimisation. */
void arca_imap_fcache_put(arca_imap_fcache *c, uint32_t store_id, uint64_t msg_id,
                          const arca_imap_fcache_val *v);
/* Counters since creation, and the current size. */
void arca_imap_fcache_stats_get(arca_imap_fcache *c, arca_imap_fcache_stats *out);

#endif

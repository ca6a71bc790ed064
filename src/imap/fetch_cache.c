/* The FETCH cache (fetch_cache.h): a chained hash table over (store id, message id) and a
 * CLOCK ring of the same entries, under one mutex. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "imap/fetch_cache.h"

#define INITIAL_BUCKETS_LOG2 10u

typedef struct node node;
struct node {
	node *hnext;       /* hash chain */
	node *prev, *next; /* the CLOCK ring */
	uint64_t msg_id;
	uint32_t store_id;
	bool ref;          /* looked up since the hand last passed */
	bool has_date;
	int tz;
	int64_t date;
	uint64_t size;
	size_t bytes;      /* what the entry counts against the bound */
	size_t env_len, body_len, bs_len;
	char data[];       /* envelope, body, bodystructure */
};

struct arca_imap_fcache {
	pthread_mutex_t mu;
	atomic_size_t max_bytes; /* read without the lock by arca_imap_fcache_enabled */
	node **table;
	unsigned bits;           /* table has 1 << bits buckets */
	node *hand;              /* the CLOCK hand; new entries go just behind it; NULL: empty */
	size_t entries, bytes;
	uint64_t hits, misses, inserts, evictions;
};

/* Fibonacci hashing: message ids are dense (1, 2, 3, ...), the top bits of the product
 * spread them evenly. */
static size_t bucket(unsigned bits, uint32_t store_id, uint64_t msg_id)
{
	uint64_t h = (msg_id ^ ((uint64_t)store_id << 44) ^ ((uint64_t)store_id >> 20)) *
	             0x9e3779b97f4a7c15ull;
	return (size_t)(h >> (64u - bits));
}

static node **find(arca_imap_fcache *c, uint32_t store_id, uint64_t msg_id)
{
	node **p = &c->table[bucket(c->bits, store_id, msg_id)];
	while (*p != NULL && ((*p)->msg_id != msg_id || (*p)->store_id != store_id))
		p = &(*p)->hnext;
	return p;
}

static void remove_node(arca_imap_fcache *c, node *n)
{
	node **p = find(c, n->store_id, n->msg_id);
	*p = n->hnext;
	if (n->next == n) {
		c->hand = NULL;
	} else {
		n->prev->next = n->next;
		n->next->prev = n->prev;
		if (c->hand == n)
			c->hand = n->next;
	}
	c->bytes -= n->bytes;
	c->entries--;
	free(n);
}

/* Second chance: the hand clears the bits of entries looked up since it last passed and
 * takes the first entry whose bit is clear. Ends within one turn of the ring. */
static void evict_until(arca_imap_fcache *c, size_t max)
{
	while (c->hand != NULL && c->bytes > max) {
		while (c->hand->ref) {
			c->hand->ref = false;
			c->hand = c->hand->next;
		}
		remove_node(c, c->hand);
		c->evictions++;
	}
}

/* Doubles the table when entries outnumber buckets; without memory the chains grow instead. */
static void maybe_grow(arca_imap_fcache *c)
{
	size_t n = (size_t)1 << c->bits;
	node **t;
	if (c->entries < n || c->bits >= 40)
		return;
	t = calloc(2 * n, sizeof(*t));
	if (t == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		node *e = c->table[i];
		while (e != NULL) {
			node *next = e->hnext;
			size_t b = bucket(c->bits + 1, e->store_id, e->msg_id);
			e->hnext = t[b];
			t[b] = e;
			e = next;
		}
	}
	free(c->table);
	c->table = t;
	c->bits++;
}

arca_status arca_imap_fcache_new(size_t max_bytes, arca_imap_fcache **out, arca_error *err)
{
	arca_imap_fcache *c = calloc(1, sizeof(*c));
	*out = NULL;
	if (c == NULL || (c->table = calloc((size_t)1 << INITIAL_BUCKETS_LOG2, sizeof(node *))) == NULL) {
		free(c);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory creating the FETCH cache");
	}
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c->table);
		free(c);
		return arca_error_set(err, ARCA_ERR_NOMEM, "cannot create the FETCH cache's mutex");
	}
	c->bits = INITIAL_BUCKETS_LOG2;
	atomic_init(&c->max_bytes, max_bytes);
	*out = c;
	return ARCA_OK;
}

void arca_imap_fcache_free(arca_imap_fcache **pc)
{
	arca_imap_fcache *c;
	if (pc == NULL || *pc == NULL)
		return;
	c = *pc;
	evict_until(c, 0);
	free(c->table);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*pc = NULL;
}

void arca_imap_fcache_set_limit(arca_imap_fcache *c, size_t max_bytes)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	atomic_store(&c->max_bytes, max_bytes);
	evict_until(c, max_bytes);
	pthread_mutex_unlock(&c->mu);
}

bool arca_imap_fcache_enabled(const arca_imap_fcache *c)
{
	return c != NULL && atomic_load_explicit(&c->max_bytes, memory_order_relaxed) > 0;
}

bool arca_imap_fcache_get(arca_imap_fcache *c, uint32_t store_id, uint64_t msg_id, arca_buf *out,
                          arca_imap_fcache_val *v)
{
	node *n;
	bool hit = false;
	if (!arca_imap_fcache_enabled(c))
		return false;
	if (out != NULL)
		arca_buf_reset(out);
	pthread_mutex_lock(&c->mu);
	n = *find(c, store_id, msg_id);
	if (n != NULL && out == NULL) {
		n->ref = true;
		hit = true;
	} else if (n != NULL && arca_buf_append(out, n->data, n->env_len + n->body_len + n->bs_len) == ARCA_OK) {
		n->ref = true;
		hit = true;
		v->envelope = out->data;
		v->envelope_len = n->env_len;
		v->body = out->data + n->env_len;
		v->body_len = n->body_len;
		v->bodystructure = v->body + n->body_len;
		v->bodystructure_len = n->bs_len;
		v->has_date = n->has_date;
		v->date = n->date;
		v->tz = n->tz;
		v->size = n->size;
	}
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void arca_imap_fcache_put(arca_imap_fcache *c, uint32_t store_id, uint64_t msg_id,
                          const arca_imap_fcache_val *v)
{
	size_t len = v->envelope_len + v->body_len + v->bodystructure_len, max;
	node *n, **slot;
	if (!arca_imap_fcache_enabled(c))
		return;
	/* built outside the lock: the copy is the expensive part */
	n = malloc(sizeof(*n) + len);
	if (n == NULL)
		return;
	memset(n, 0, sizeof(*n));
	n->store_id = store_id;
	n->msg_id = msg_id;
	n->has_date = v->has_date;
	n->date = v->date;
	n->tz = v->tz;
	n->size = v->size;
	n->bytes = sizeof(*n) + len;
	n->env_len = v->envelope_len;
	n->body_len = v->body_len;
	n->bs_len = v->bodystructure_len;
	if (v->envelope_len > 0)
		memcpy(n->data, v->envelope, v->envelope_len);
	if (v->body_len > 0)
		memcpy(n->data + v->envelope_len, v->body, v->body_len);
	if (v->bodystructure_len > 0)
		memcpy(n->data + v->envelope_len + v->body_len, v->bodystructure, v->bodystructure_len);
	pthread_mutex_lock(&c->mu);
	max = atomic_load(&c->max_bytes);
	if (n->bytes > max / 8 || *find(c, store_id, msg_id) != NULL) {
		pthread_mutex_unlock(&c->mu);
		free(n);
		return;
	}
	evict_until(c, max - n->bytes);
	c->entries++;
	maybe_grow(c);
	slot = &c->table[bucket(c->bits, store_id, msg_id)];
	n->hnext = *slot;
	*slot = n;
	if (c->hand == NULL) {
		n->prev = n->next = n;
		c->hand = n;
	} else {
		n->next = c->hand;
		n->prev = c->hand->prev;
		c->hand->prev->next = n;
		c->hand->prev = n;
	}
	c->bytes += n->bytes;
	c->inserts++;
	pthread_mutex_unlock(&c->mu);
}

void arca_imap_fcache_stats_get(arca_imap_fcache *c, arca_imap_fcache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	out->hits = c->hits;
	out->misses = c->misses;
	out->inserts = c->inserts;
	out->evictions = c->evictions;
	out->entries = c->entries;
	out->bytes = c->bytes;
	out->max_bytes = atomic_load(&c->max_bytes);
	pthread_mutex_unlock(&c->mu);
}

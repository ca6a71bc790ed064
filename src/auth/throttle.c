/* Login throttling: failure counts per source address and distinct failing addresses per user
 * name, in two bounded tables.
 *
 * Keys are SipHash-2-4 values (libsodium crypto_shorthash) of the address or name under a
 * random per-process key, never the text: entries have a fixed size, and an attacker who
 * chooses names cannot aim them at one bucket of the table (hash flooding). Two keys collide
 * with probability ~2^-64; a collision merely shares a penalty.
 *
 * Each table is open addressing with linear probing over an entry pool that grows up to its
 * cap; entries also form a list in the order they were last touched, so the oldest is evicted
 * when the table is full and expired entries are dropped from its front. */
#include "auth/throttle.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/limits.h"
#include "lib/log.h"

/* Failures older than this are forgotten: 15 minutes, long enough that a guessing attacker
 * spends most of the time waiting, short enough that a user who mistyped is not punished an
 * hour later (Dovecot forgets after an hour of quiet; its delays are smaller). */
#define THR_DECAY_MS (15u * 60u * 1000u)
/* An address that logged in as a user stays exempt from that user's penalty this long. */
#define THR_TRUST_MS (24u * 3600u * 1000u)
#define THR_BASE_MS 2000u  /* delay at the second failure */
#define THR_MAX_MS 15000u  /* cap of the delay */
/* Distinct failing addresses tolerated per user name before its penalty starts: the user on
 * a phone, a laptop and at home with an old password is not an attack. */
#define THR_USER_FREE_ADDRS 4u

_Static_assert(ARCA_THROTTLE_USER_ADDRS >= THR_USER_FREE_ADDRS + 4,
               "the user penalty must be able to reach its cap");

#define NIL UINT32_MAX

typedef struct {
	uint64_t key;
	uint64_t expires;    /* now_ms from which the entry holds nothing worth keeping */
	uint32_t prev, next; /* touch order (oldest first); next also chains free entries */
} thr_node;

typedef struct {
	thr_node node; /* first member */
	uint64_t last_fail;
	uint64_t next_answer; /* now_ms before which no penalised attempt is answered */
	uint32_t fails;
} thr_addr;

typedef struct {
	uint64_t addr; /* address key */
	uint64_t at;   /* now_ms of the last event */
	bool used;
} thr_seen;

typedef struct {
	thr_node node; /* first member */
	thr_seen failed[ARCA_THROTTLE_USER_ADDRS];
	thr_seen trusted[ARCA_THROTTLE_USER_TRUSTED];
} thr_user;

typedef struct {
	unsigned char *mem; /* pool of entries of esz bytes, each starting with a thr_node */
	size_t esz;
	uint32_t n_alloc, n_init, count, max;
	uint32_t free_head, head, tail;
	uint32_t *slots; /* entry index + 1; 0 = empty */
	uint32_t mask;   /* number of slots - 1 */
} thr_table;

struct arca_throttle {
	unsigned char key[crypto_shorthash_KEYBYTES];
	unsigned scale; /* percent of the schedule (tests run it faster) */
	thr_table addrs, users;
};

/* ---- table ---- */

static thr_node *node_at(const thr_table *t, uint32_t i)
{
	return (thr_node *)(void *)(t->mem + (size_t)i * t->esz);
}

static bool table_init(thr_table *t, size_t esz, uint32_t max)
{
	memset(t, 0, sizeof(*t));
	t->esz = esz;
	t->max = max;
	t->free_head = t->head = t->tail = NIL;
	t->mask = 63;
	t->slots = calloc(t->mask + 1, sizeof(*t->slots));
	return t->slots != NULL;
}

static void table_free(thr_table *t)
{
	free(t->mem);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

static uint32_t table_find(const thr_table *t, uint64_t key)
{
	for (uint32_t i = (uint32_t)key & t->mask; t->slots[i] != 0; i = (i + 1) & t->mask)
		if (node_at(t, t->slots[i] - 1)->key == key)
			return t->slots[i] - 1;
	return NIL;
}

static void list_unlink(thr_table *t, uint32_t i)
{
	thr_node *n = node_at(t, i);
	if (n->prev != NIL)
		node_at(t, n->prev)->next = n->next;
	else
		t->head = n->next;
	if (n->next != NIL)
		node_at(t, n->next)->prev = n->prev;
	else
		t->tail = n->prev;
}

static void list_append(thr_table *t, uint32_t i)
{
	thr_node *n = node_at(t, i);
	n->prev = t->tail;
	n->next = NIL;
	if (t->tail != NIL)
		node_at(t, t->tail)->next = i;
	else
		t->head = i;
	t->tail = i;
}

/* Marks entry i as touched now: it moves to the end of the eviction order. */
static void table_touch(thr_table *t, uint32_t i, uint64_t expires)
{
	list_unlink(t, i);
	list_append(t, i);
	node_at(t, i)->expires = expires;
}

static void slot_put(thr_table *t, uint32_t i)
{
	uint32_t s = (uint32_t)node_at(t, i)->key & t->mask;
	while (t->slots[s] != 0)
		s = (s + 1) & t->mask;
	t->slots[s] = i + 1;
}

static void table_remove(thr_table *t, uint32_t i)
{
	uint64_t key = node_at(t, i)->key;
	uint32_t s = (uint32_t)key & t->mask;
	while (t->slots[s] != i + 1)
		s = (s + 1) & t->mask;
	/* backward-shift deletion: move later members of the probe run into the hole */
	for (uint32_t j = (s + 1) & t->mask; t->slots[j] != 0; j = (j + 1) & t->mask) {
		uint32_t home = (uint32_t)node_at(t, t->slots[j] - 1)->key & t->mask;
		/* the entry at j may fill the hole at s if its home is not within (s, j] */
		if (((j - home) & t->mask) >= ((j - s) & t->mask)) {
			t->slots[s] = t->slots[j];
			s = j;
		}
	}
	t->slots[s] = 0;
	list_unlink(t, i);
	node_at(t, i)->next = t->free_head;
	t->free_head = i;
	t->count--;
}

/* Doubles the slot array when more than half full; false if that allocation failed. */
static bool table_grow_slots(thr_table *t)
{
	uint32_t n = (t->mask + 1) * 2;
	uint32_t *ns;
	if ((uint64_t)(t->count + 1) * 2 <= (uint64_t)t->mask + 1)
		return true;
	ns = calloc(n, sizeof(*ns));
	if (ns == NULL)
		return false;
	free(t->slots);
	t->slots = ns;
	t->mask = n - 1;
	for (uint32_t i = t->head; i != NIL; i = node_at(t, i)->next)
		slot_put(t, i);
	return true;
}

/* A free entry index, growing the pool (doubling, up to max) if needed; NIL if none. */
static uint32_t table_alloc(thr_table *t)
{
	uint32_t i;
	if (t->free_head != NIL) {
		i = t->free_head;
		t->free_head = node_at(t, i)->next;
		return i;
	}
	if (t->n_init == t->n_alloc) {
		uint32_t n = t->n_alloc ? t->n_alloc * 2 : 64;
		unsigned char *nm;
		if (n > t->max)
			n = t->max;
		if (n == t->n_alloc)
			return NIL;
		nm = realloc(t->mem, (size_t)n * t->esz);
		if (nm == NULL)
			return NIL;
		t->mem = nm;
		t->n_alloc = n;
	}
	return t->n_init++;
}

/* Inserts a zeroed entry for key (not present), evicting the least recently touched entry when
 * the table is at its cap or memory is short. NIL only if nothing could be stored at all. */
static uint32_t table_insert(thr_table *t, uint64_t key, uint64_t expires)
{
	uint32_t i = NIL;
	thr_node *n;
	if (t->count < t->max && table_grow_slots(t))
		i = table_alloc(t);
	if (i == NIL) {
		if (t->head == NIL)
			return NIL;
		table_remove(t, t->head);
		i = table_alloc(t);
	}
	n = node_at(t, i);
	memset(n, 0, t->esz);
	n->key = key;
	n->expires = expires;
	list_append(t, i);
	slot_put(t, i);
	t->count++;
	return i;
}

/* Drops expired entries from the front of the touch order. An entry behind a live one stays
 * until it reaches the front or is evicted; lookups treat it as expired meanwhile. */
static void table_prune(thr_table *t, uint64_t now)
{
	while (t->head != NIL && node_at(t, t->head)->expires <= now)
		table_remove(t, t->head);
}

/* ---- policy ---- */

static uint64_t age(uint64_t now, uint64_t at)
{
	return now > at ? now - at : 0;
}

/* 0, 0 (one typo is free), 2, 4, 8, 15 s, 15 s, ... */
static uint32_t schedule(uint32_t failures)
{
	uint32_t ms;
	if (failures < 2)
		return 0;
	ms = failures - 2 >= 3 ? THR_BASE_MS << 3 : THR_BASE_MS << (failures - 2);
	return ms > THR_MAX_MS ? THR_MAX_MS : ms;
}

/* Address key: IPv4 as its 4 bytes (also when written as ::ffff:a.b.c.d), IPv6 as its /64
 * network, since one host usually holds a whole /64; other text as it is. */
static uint64_t addr_key(const arca_throttle *t, const char *addr)
{
	unsigned char in[1 + 16], out[crypto_shorthash_BYTES];
	uint64_t k;
	size_t len;
	if (inet_pton(AF_INET, addr, in + 1) == 1) {
		in[0] = 4;
		len = 5;
	} else if (inet_pton(AF_INET6, addr, in + 1) == 1) {
		static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(in + 1, v4mapped, sizeof(v4mapped)) == 0) {
			memmove(in + 1, in + 13, 4);
			in[0] = 4;
			len = 5;
		} else {
			memset(in + 9, 0, 8);
			in[0] = 6;
			len = 17;
		}
	} else {
		crypto_shorthash(out, (const unsigned char *)addr, strlen(addr), t->key);
		memcpy(&k, out, sizeof(k));
		return k ^ 1; /* keep text apart from the binary forms above */
	}
	crypto_shorthash(out, in, len, t->key);
	memcpy(&k, out, sizeof(k));
	return k;
}

static uint64_t user_key(const arca_throttle *t, const char *user)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t k;
	crypto_shorthash(out, (const unsigned char *)user, strlen(user), t->key);
	memcpy(&k, out, sizeof(k));
	return k;
}

static thr_addr *find_addr(arca_throttle *t, uint64_t key)
{
	uint32_t i = table_find(&t->addrs, key);
	return i == NIL ? NULL : (thr_addr *)(void *)node_at(&t->addrs, i);
}

static thr_user *find_user(arca_throttle *t, uint64_t key)
{
	uint32_t i = table_find(&t->users, key);
	return i == NIL ? NULL : (thr_user *)(void *)node_at(&t->users, i);
}

static bool seen_recent(const thr_seen *s, size_t n, uint64_t addr, uint64_t now, uint64_t window)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].used && s[i].addr == addr && age(now, s[i].at) < window)
			return true;
	return false;
}

/* Records addr in set s (n entries): refreshes it if there, else takes a free or expired
 * entry, else replaces the oldest. */
static void seen_add(thr_seen *s, size_t n, uint64_t addr, uint64_t now, uint64_t window)
{
	size_t pick = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].used && s[i].addr == addr) {
			s[i].at = now;
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!s[i].used || age(now, s[i].at) >= window) {
			pick = i;
			break;
		}
		if (s[i].at < s[pick].at)
			pick = i;
	}
	s[pick].used = true;
	s[pick].addr = addr;
	s[pick].at = now;
}

static uint64_t user_expires(const thr_user *u, uint64_t now)
{
	uint64_t e = now + THR_DECAY_MS;
	for (size_t i = 0; i < ARCA_THROTTLE_USER_TRUSTED; i++)
		if (u->trusted[i].used && u->trusted[i].at + THR_TRUST_MS > e)
			e = u->trusted[i].at + THR_TRUST_MS;
	return e;
}

/* ---- public ---- */

arca_status arca_throttle_new(arca_throttle **out, arca_error *err)
{
	arca_throttle *t;
	*out = NULL;
	if (sodium_init() < 0)
		return arca_error_set(err, ARCA_ERR_CRYPTO, "libsodium initialisation failed");
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	crypto_shorthash_keygen(t->key);
	t->scale = 100;
	if (!table_init(&t->addrs, sizeof(thr_addr), ARCA_THROTTLE_MAX_ADDRS) ||
	    !table_init(&t->users, sizeof(thr_user), ARCA_THROTTLE_MAX_USERS)) {
		arca_throttle_free(&t);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	*out = t;
	return ARCA_OK;
}

void arca_throttle_free(arca_throttle **t)
{
	if (t == NULL || *t == NULL)
		return;
	table_free(&(*t)->addrs);
	table_free(&(*t)->users);
	sodium_memzero((*t)->key, sizeof((*t)->key));
	free(*t);
	*t = NULL;
}

uint32_t arca_throttle_delay_ms(arca_throttle *t, const char *user, const char *addr,
                                uint64_t now_ms)
{
	uint32_t delay = 0;
	uint64_t akey = 0;
	bool have_addr = addr != NULL && addr[0] != '\0';
	if (t == NULL)
		return 0;
	if (have_addr) {
		thr_addr *a;
		akey = addr_key(t, addr);
		a = find_addr(t, akey);
		if (a != NULL && age(now_ms, a->last_fail) < THR_DECAY_MS)
			delay = schedule(a->fails);
	}
	if (user != NULL && user[0] != '\0') {
		thr_user *u = find_user(t, user_key(t, user));
		if (u != NULL && !(have_addr && seen_recent(u->trusted, ARCA_THROTTLE_USER_TRUSTED, akey,
		                                           now_ms, THR_TRUST_MS))) {
			uint32_t distinct = 0, d;
			for (size_t i = 0; i < ARCA_THROTTLE_USER_ADDRS; i++)
				if (u->failed[i].used && age(now_ms, u->failed[i].at) < THR_DECAY_MS)
					distinct++;
			/* 5 distinct addresses -> 2 s, 6 -> 4 s, 7 -> 8 s, 8 -> 15 s */
			d = distinct > THR_USER_FREE_ADDRS ? schedule(distinct - THR_USER_FREE_ADDRS + 1)
			                                   : 0;
			if (d > delay)
				delay = d;
		}
	}
	return t->scale == 100 ? delay : (uint32_t)((uint64_t)delay * t->scale / 100u);
}

void arca_throttle_set_scale(arca_throttle *t, unsigned percent)
{
	t->scale = percent == 0 ? 100 : percent > 1000 ? 1000 : percent;
}

uint32_t arca_throttle_reserve_ms(arca_throttle *t, const char *user, const char *addr,
                                  uint64_t now_ms)
{
	uint32_t delay = arca_throttle_delay_ms(t, user, addr, now_ms);
	thr_addr *a;
	uint64_t start, at;
	if (delay == 0 || addr == NULL || addr[0] == '\0')
		return delay;
	a = find_addr(t, addr_key(t, addr));
	if (a == NULL || age(now_ms, a->last_fail) >= THR_DECAY_MS)
		return delay; /* only the user name is penalised: no queue */
	/* penalised attempts from one address are answered one after another, each its delay
	 * after the previous answer: parallel connections buy no more guesses than one */
	start = a->next_answer > now_ms ? a->next_answer : now_ms;
	at = start + delay;
	a->next_answer = at;
	return at - now_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)(at - now_ms);
}

void arca_throttle_record(arca_throttle *t, const char *user, const char *addr, int success,
                          uint64_t now_ms)
{
	uint64_t akey = 0, ukey;
	bool have_addr = addr != NULL && addr[0] != '\0';
	thr_user *u = NULL;
	if (t == NULL)
		return;
	table_prune(&t->addrs, now_ms);
	table_prune(&t->users, now_ms);
	if (have_addr)
		akey = addr_key(t, addr);
	if (have_addr && !success) {
		thr_addr *a = find_addr(t, akey);
		if (a == NULL) {
			uint32_t i = table_insert(&t->addrs, akey, now_ms + THR_DECAY_MS);
			a = i == NIL ? NULL : (thr_addr *)(void *)node_at(&t->addrs, i);
		}
		if (a != NULL) {
			if (age(now_ms, a->last_fail) >= THR_DECAY_MS)
				a->fails = 0;
			if (a->fails < UINT32_MAX)
				a->fails++;
			a->last_fail = now_ms;
			table_touch(&t->addrs, (uint32_t)(((unsigned char *)a - t->addrs.mem) / t->addrs.esz),
			            now_ms + THR_DECAY_MS);
		}
	}
	if (user == NULL || user[0] == '\0')
		return;
	ukey = user_key(t, user);
	u = find_user(t, ukey);
	if (u == NULL) {
		uint32_t i;
		if (!success && !have_addr)
			return;
		i = table_insert(&t->users, ukey, now_ms);
		if (i == NIL) {
			arca_log(ARCA_LOG_WARN, "auth", "login throttling: out of memory");
			return;
		}
		u = (thr_user *)(void *)node_at(&t->users, i);
	}
	if (success) {
		/* the right password ends the user's penalty; the address keeps its own */
		memset(u->failed, 0, sizeof(u->failed));
		if (have_addr)
			seen_add(u->trusted, ARCA_THROTTLE_USER_TRUSTED, akey, now_ms, THR_TRUST_MS);
	} else if (have_addr &&
	           !seen_recent(u->trusted, ARCA_THROTTLE_USER_TRUSTED, akey, now_ms, THR_TRUST_MS)) {
		/* a trusted address mistyping is the user, not a spray */
		seen_add(u->failed, ARCA_THROTTLE_USER_ADDRS, akey, now_ms, THR_DECAY_MS);
	}
	table_touch(&t->users, (uint32_t)(((unsigned char *)u - t->users.mem) / t->users.esz),
	            user_expires(u, now_ms));
}

void arca_throttle_counts(const arca_throttle *t, size_t *addrs, size_t *users)
{
	*addrs = t ? t->addrs.count : 0;
	*users = t ? t->users.count : 0;
}

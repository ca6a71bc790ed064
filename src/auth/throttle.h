/* Login throttling (like Dovecot's auth penalty): a login attempt from a penalised source
 * waits before its answer, 2 -> 4 -> 8 -> 15 s (capped) as failures accumulate; penalties
 * decay after a quiet period. Two keys: the source address (brute force from one place,
 * parallel connections included since the count is per address, not per connection) and
 * the user name, which is penalised by the number of *distinct* addresses failing for it
 * (password spraying from many places) so that one attacker address cannot lock the real
 * user out: the right password from another address still logs in at once. Pure bookkeeping
 * with the clock passed in, so it is testable and the caller decides how to wait (an event
 * timer, not a sleeping thread). Not thread-safe: used from the event loop thread. */
#ifndef ARCA_AUTH_THROTTLE_H
#define ARCA_AUTH_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

typedef struct arca_throttle arca_throttle;

arca_status arca_throttle_new(arca_throttle **out, arca_error *err);
void arca_throttle_free(arca_throttle **t);

/* Milliseconds the attempt (user name as typed, address as text) must wait before its result
 * is given, from the failures recorded so far. now_ms: a monotonic clock. A pure query. */
uint32_t arca_throttle_delay_ms(arca_throttle *t, const char *user, const char *addr,
                                uint64_t now_ms);
/* What a server calls once per attempt: like delay_ms, but a penalised address's attempts
 * queue up (each is answered its delay after the previous one's answer), so parallel
 * connections from one address wait in line instead of guessing side by side. */
uint32_t arca_throttle_reserve_ms(arca_throttle *t, const char *user, const char *addr,
                                  uint64_t now_ms);
/* Records the outcome of an attempt. A failure raises the penalty of user and addr; a
 * success clears the user's (not the address's) penalty. */
void arca_throttle_record(arca_throttle *t, const char *user, const char *addr, int success,
                          uint64_t now_ms);

/* Policy details (throttle.c): one failure is free, then 2, 4, 8, 15 s; a user name is
 * penalised from its 5th distinct failing address in the same steps (5 -> 2 s ... 8 -> 15 s).
 * Failures are forgotten 15 minutes after the last one. An address that logged in as a user
 * is exempt from that user's penalty for 24 hours. IPv6 addresses count per /64 network.
 * addr is the address text without a port; NULL or "" user/addr skip that key. Memory is
 * bounded (ARCA_THROTTLE_* in lib/limits.h): when full, the least recently touched entries
 * are forgotten first. */

/* Scales every delay to percent of the schedule (1..1000; default 100): the test suite runs
 * the policy faster; an operator may make it stricter. */
void arca_throttle_set_scale(arca_throttle *t, unsigned percent);

/* Entries currently held (for tests and monitoring). */
void arca_throttle_counts(const arca_throttle *t, size_t *addrs, size_t *users);

#endif

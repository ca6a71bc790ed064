/* Internals of src/auth shared with its unit tests. */
#ifndef ARCA_AUTH_USERS_INT_H
#define ARCA_AUTH_USERS_INT_H

/* The Argon2id hash verified for unknown users and users without a password (users.c;
 * crypto_pwhash_STRBYTES bytes, NUL-padded, as libsodium reads that many). */
extern const char auth_dummy_hash[];

#endif

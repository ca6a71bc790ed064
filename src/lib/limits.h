/* Every bound on outside input lives here, so that no message, file or query
 * can make Arca use unbounded time or memory (CVE-2024-23184, CVE-2020-12100 classes). */
#ifndef ARCA_LIB_LIMITS_H
#define ARCA_LIB_LIMITS_H

#define ARCA_MAX_MESSAGE_SIZE (256u * 1024u * 1024u) /* bytes of one archived message */
#define ARCA_MIME_MAX_DEPTH 32u                      /* multipart/message nesting */
#define ARCA_MIME_MAX_PARTS 1000u                    /* MIME parts looked at per message */
#define ARCA_MIME_MAX_HEADERS 2000u                  /* header fields looked at per part */
#define ARCA_MIME_MAX_ADDRESSES 2000u                /* addresses kept per address field */
#define ARCA_MIME_MAX_FIELD (64u * 1024u)            /* bytes kept of one decoded header value */
#define ARCA_MIME_MAX_HEADER_BYTES (256u * 1024u)    /* raw header bytes parsed per part */
#define ARCA_MIME_MAX_HEADER_TOTAL (4u * 1024u * 1024u) /* raw header bytes parsed per message */
#define ARCA_MIME_MAX_HEADERS_TOTAL 20000u           /* header fields parsed per message */
#define ARCA_MIME_MAX_PARSE (64u * 1024u * 1024u)    /* bytes of one message parsed for indexing */
#define ARCA_MIME_MAX_TEXT (4u * 1024u * 1024u)      /* UTF-8 text extracted per message */
#define ARCA_MIME_MAX_ATTACHMENTS 500u               /* attachments listed per message */
#define ARCA_QUERY_MAX_LEN 4096u                     /* bytes of one search query */
#define ARCA_QUERY_MAX_TERMS 64u                     /* terms/operators in one query */
#define ARCA_PATH_MAX 4096u                          /* file system path */
#define ARCA_FOLDER_MAX 1024u                        /* bytes of a folder path */
#define ARCA_NAME_MAX 256u                           /* archive/user/store name */
#define ARCA_IMAP_MAX_LINE (64u * 1024u)             /* bytes of one IMAP command line (no literals, CRLF) */
#define ARCA_IMAP_MAX_LITERAL (1024u * 1024u)        /* bytes of one IMAP literal (read-only server) */
#define ARCA_IMAP_MAX_COMMAND (4u * 1024u * 1024u)   /* bytes of one IMAP command: lines plus literals */
#define ARCA_IMAP_MAX_DEPTH 32u                      /* nested parenthesised lists in one command */
#define ARCA_IMAP_MAX_ARGS 4096u                     /* argument nodes (atoms, strings, lists) per command */
#define ARCA_IMAP_MAX_SECTION_PARTS 32u              /* part numbers in BODY[1.2.3...] */
#define ARCA_IMAP_LITERAL_MINUS_MAX 4096u            /* {n+} without LITERAL+ (RFC 7888 LITERAL-) */
#define ARCA_POOL_MAX_THREADS 64u                   /* worker threads of one process */
#define ARCA_POOL_MAX_QUEUE 100000u                 /* jobs waiting for a worker */
#define ARCA_CONTAINER_MAX_SIZE (1024ull * 1024u * 1024u) /* roll container files at 1 GiB */
#define ARCA_PASSWORD_MAX 1024u                      /* bytes of one password */
#define ARCA_EMAIL_MAX 255u                          /* bytes of one email address + NUL */
#define ARCA_USER_MAX_EMAILS 100u                    /* email addresses of one user */
#define ARCA_USER_MAX_GRANTS 10000u                  /* folder grants held by one user */
#define ARCA_THROTTLE_MAX_ADDRS 65536u               /* source addresses login throttling remembers (~48 B each) */
#define ARCA_THROTTLE_MAX_USERS 65536u               /* user names login throttling remembers (~230 B each) */
#define ARCA_THROTTLE_USER_ADDRS 8u                  /* distinct failing addresses kept per user name */
#define ARCA_THROTTLE_USER_TRUSTED 4u                /* addresses kept per user that logged in recently */

#define ARCA_API_MAX_BODY (1024u * 1024u)            /* bytes of one HTTP API request body (JSON or upload chunk) */
#define ARCA_API_MAX_UPLOAD (256u * 1024u * 1024u)    /* bytes of one uploaded file (sum of its chunks) */
#define ARCA_API_MAX_UPLOADS 16u                      /* uploads open at once per instance process */
#define ARCA_API_MAX_JSON_DEPTH 32u                   /* nesting of arrays/objects in an API request */
#define ARCA_API_MAX_ARRAY 1000u                      /* elements of one array argument */
#define ARCA_API_MAX_STRING (64u * 1024u)             /* bytes of one string argument */
#define ARCA_API_MAX_JOBS 64u                         /* async jobs kept (queued, running, recent results) */
#define ARCA_API_MAX_SESSIONS 4096u                   /* API/browser session tokens held at once */
#define ARCA_API_AUTH_CACHE 256u                      /* cached HTTP Basic verifications */
#define ARCA_API_MAX_PAGE 1000u                       /* search hits / folder messages per page */
#define ARCA_API_MAX_HTML (4u * 1024u * 1024u)        /* bytes of sanitised HTML returned per message */
#define ARCA_MIME_MAX_PARAMS 100u                     /* parameters (and language tags) kept per MIME field */

#endif

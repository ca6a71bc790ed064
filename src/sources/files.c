#include "sources/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fs.h"
#include "lib/limits.h"

typedef struct {
	char *path;
	char *subfolder;
} src_file;

struct arca_source {
	arca_source_format fmt;
	/* file list (eml, dir, maildir) */
	src_file *files;
	size_t n_files, cap_files, next_file;
	arca_buf data;
	/* mbox */
	char *mbox_path;
	int fd;
	const uint8_t *map;
	size_t map_len;
	size_t pos;
	size_t released; /* mapped bytes before this offset were handed back to the kernel */
	char origin[ARCA_PATH_MAX + 32];
};

/* Pages of the mapping already read are dropped every MBOX_RELEASE_STEP bytes, so that a
 * multi-gigabyte mbox does not grow the importer's resident set. */
#define MBOX_RELEASE_STEP (16u * 1024u * 1024u)

arca_status arca_source_format_parse(const char *name, arca_source_format *out)
{
	static const char *names[] = {"auto", "eml", "dir", "mbox", "maildir"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (arca_source_format)i;
			return ARCA_OK;
		}
	}
	return ARCA_ERR_INVALID;
}

const char *arca_source_format_name(arca_source_format f)
{
	switch (f) {
	case ARCA_SRC_AUTO: return "auto";
	case ARCA_SRC_EML: return "eml";
	case ARCA_SRC_DIR: return "dir";
	case ARCA_SRC_MBOX: return "mbox";
	case ARCA_SRC_MAILDIR: return "maildir";
	}
	return "?";
}

static arca_status add_file(arca_source *s, const char *path, const char *sub, arca_error *err)
{
	if (s->n_files == s->cap_files) {
		size_t ncap = s->cap_files ? s->cap_files * 2 : 256;
		src_file *nf = realloc(s->files, ncap * sizeof(*nf));
		if (nf == NULL)
			return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory listing files");
		s->files = nf;
		s->cap_files = ncap;
	}
	s->files[s->n_files].path = strdup(path);
	s->files[s->n_files].subfolder = strdup(sub);
	if (s->files[s->n_files].path == NULL || s->files[s->n_files].subfolder == NULL) {
		free(s->files[s->n_files].path);
		free(s->files[s->n_files].subfolder);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory listing files");
	}
	s->n_files++;
	return ARCA_OK;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in a directory, without "." entries and dot-files (".complete", ...)
 * unless keep_dot. */
static arca_status list_dir(const char *dir, int keep_dot, char ***out, size_t *n, arca_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t cnt = 0, cap = 0;
	if (d == NULL)
		return arca_error_errno(err, errno, "cannot open directory %s", dir);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.' && !keep_dot)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nn = realloc(names, ncap * sizeof(*nn));
			if (nn == NULL)
				goto nomem;
			names = nn;
			cap = ncap;
		}
		names[cnt] = strdup(de->d_name);
		if (names[cnt] == NULL)
			goto nomem;
		cnt++;
	}
	closedir(d);
	if (cnt > 1)
		qsort(names, cnt, sizeof(*names), cmp_names);
	*out = names;
	*n = cnt;
	return ARCA_OK;
nomem:
	closedir(d);
	for (size_t i = 0; i < cnt; i++)
		free(names[i]);
	free(names);
	return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory listing %s", dir);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int is_maildir(const char *dir)
{
	char p[ARCA_PATH_MAX];
	if (arca_fs_join(p, sizeof(p), dir, "cur") == ARCA_OK && arca_fs_is_dir(p))
		return 1;
	if (arca_fs_join(p, sizeof(p), dir, "new") == ARCA_OK && arca_fs_is_dir(p))
		return 1;
	return 0;
}

static arca_status join_sub(char *out, size_t outsz, const char *sub, const char *name)
{
	int n = sub[0] ? snprintf(out, outsz, "%s/%s", sub, name) : snprintf(out, outsz, "%s", name);
	if (n < 0 || (size_t)n >= outsz || (size_t)n >= ARCA_FOLDER_MAX)
		return ARCA_ERR_LIMIT;
	return ARCA_OK;
}

static arca_status walk_plain_files(arca_source *s, const char *dir, const char *sub,
                                    arca_error *err)
{
	char **names;
	size_t n;
	arca_status st = list_dir(dir, 0, &names, &n, err);
	if (st != ARCA_OK)
		return st;
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		char p[ARCA_PATH_MAX];
		struct stat sb;
		if (arca_fs_join(p, sizeof(p), dir, names[i]) != ARCA_OK)
			continue;
		if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
			st = add_file(s, p, sub, err);
	}
	free_names(names, n);
	return st;
}

static arca_status walk_maildir(arca_source *s, const char *dir, const char *sub, arca_error *err);

/* A directory tree: files are messages; sub-directories become sub-folders; a sub-directory
 * that is a Maildir contributes its cur/ and new/ messages to its own folder. */
static arca_status walk_tree(arca_source *s, const char *dir, const char *sub, unsigned depth,
                             arca_error *err)
{
	char **names;
	size_t n;
	arca_status st;
	if (depth > 64)
		return arca_error_set(err, ARCA_ERR_LIMIT, "%s: directory tree deeper than 64 levels", dir);
	st = list_dir(dir, 0, &names, &n, err);
	if (st != ARCA_OK)
		return st;
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		char p[ARCA_PATH_MAX], nsub[ARCA_FOLDER_MAX + 1];
		struct stat sb;
		if (arca_fs_join(p, sizeof(p), dir, names[i]) != ARCA_OK || stat(p, &sb) != 0)
			continue;
		if (S_ISREG(sb.st_mode)) {
			st = add_file(s, p, sub, err);
		} else if (S_ISDIR(sb.st_mode)) {
			if (join_sub(nsub, sizeof(nsub), sub, names[i]) != ARCA_OK) {
				st = arca_error_set(err, ARCA_ERR_LIMIT, "%s: folder path too long", p);
				break;
			}
			if (is_maildir(p))
				st = walk_maildir(s, p, nsub, err);
			else
				st = walk_tree(s, p, nsub, depth + 1, err);
		}
	}
	free_names(names, n);
	return st;
}

/* Maildir: cur/ and new/ of this directory, then Maildir++ sub-folders ".A.B" -> "A/B". */
static arca_status walk_maildir(arca_source *s, const char *dir, const char *sub, arca_error *err)
{
	char p[ARCA_PATH_MAX];
	char **names;
	size_t n;
	arca_status st = ARCA_OK;
	static const char *parts[] = {"cur", "new"};
	for (size_t i = 0; i < 2 && st == ARCA_OK; i++) {
		if (arca_fs_join(p, sizeof(p), dir, parts[i]) == ARCA_OK && arca_fs_is_dir(p))
			st = walk_plain_files(s, p, sub, err);
	}
	if (st != ARCA_OK)
		return st;
	st = list_dir(dir, 1, &names, &n, err);
	if (st != ARCA_OK)
		return st;
	for (size_t i = 0; i < n && st == ARCA_OK; i++) {
		char nsub[ARCA_FOLDER_MAX + 1], conv[ARCA_FOLDER_MAX + 1];
		size_t len;
		if (names[i][0] != '.' || names[i][1] == '\0' || strcmp(names[i], "..") == 0)
			continue;
		if (arca_fs_join(p, sizeof(p), dir, names[i]) != ARCA_OK || !is_maildir(p))
			continue;
		len = strlen(names[i] + 1);
		if (len >= sizeof(conv))
			continue;
		memcpy(conv, names[i] + 1, len + 1);
		for (char *c = conv; *c; c++)
			if (*c == '.')
				*c = '/';
		if (join_sub(nsub, sizeof(nsub), sub, conv) != ARCA_OK)
			continue;
		for (size_t k = 0; k < 2 && st == ARCA_OK; k++) {
			char cp[ARCA_PATH_MAX];
			if (arca_fs_join(cp, sizeof(cp), p, parts[k]) == ARCA_OK && arca_fs_is_dir(cp))
				st = walk_plain_files(s, cp, nsub, err);
		}
	}
	free_names(names, n);
	return st;
}

static int looks_like_mbox(const char *path)
{
	char head[5];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	if (fd < 0)
		return 0;
	n = read(fd, head, sizeof(head));
	close(fd);
	return n == 5 && memcmp(head, "From ", 5) == 0;
}

arca_status arca_source_open(const char *path, arca_source_format fmt, arca_source **out,
                             arca_error *err)
{
	arca_source *s;
	struct stat sb;
	arca_status st = ARCA_OK;
	*out = NULL;
	if (stat(path, &sb) != 0)
		return arca_error_errno(err, errno, "cannot open source %s", path);
	if (fmt == ARCA_SRC_AUTO) {
		if (S_ISDIR(sb.st_mode))
			fmt = is_maildir(path) ? ARCA_SRC_MAILDIR : ARCA_SRC_DIR;
		else
			fmt = looks_like_mbox(path) ? ARCA_SRC_MBOX : ARCA_SRC_EML;
	}
	if ((fmt == ARCA_SRC_DIR || fmt == ARCA_SRC_MAILDIR) && !S_ISDIR(sb.st_mode))
		return arca_error_set(err, ARCA_ERR_INVALID, "%s is not a directory (format %s)", path,
		                      arca_source_format_name(fmt));
	if ((fmt == ARCA_SRC_EML || fmt == ARCA_SRC_MBOX) && !S_ISREG(sb.st_mode))
		return arca_error_set(err, ARCA_ERR_INVALID, "%s is not a regular file (format %s)", path,
		                      arca_source_format_name(fmt));
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	s->fmt = fmt;
	s->fd = -1;
	arca_buf_init(&s->data, ARCA_MAX_MESSAGE_SIZE);
	switch (fmt) {
	case ARCA_SRC_EML: st = add_file(s, path, "", err); break;
	case ARCA_SRC_DIR: st = walk_tree(s, path, "", 0, err); break;
	case ARCA_SRC_MAILDIR: st = walk_maildir(s, path, "", err); break;
	case ARCA_SRC_MBOX:
		s->mbox_path = strdup(path);
		s->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s->mbox_path == NULL || s->fd < 0) {
			st = arca_error_errno(err, s->fd < 0 ? errno : ENOMEM, "cannot open mbox %s", path);
			break;
		}
		s->map_len = (size_t)sb.st_size;
		if (s->map_len > 0) {
			void *m = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, s->fd, 0);
			if (m == MAP_FAILED) {
				st = arca_error_errno(err, errno, "cannot map mbox %s", path);
				break;
			}
			s->map = m;
			madvise(m, s->map_len, MADV_SEQUENTIAL);
			if (s->map_len < 5 || memcmp(s->map, "From ", 5) != 0)
				st = arca_error_set(err, ARCA_ERR_INVALID,
				                    "%s is not an mbox file (it does not start with \"From \")", path);
		}
		break;
	case ARCA_SRC_AUTO: break;
	}
	if (st != ARCA_OK) {
		arca_source_close(&s);
		return st;
	}
	*out = s;
	return ARCA_OK;
}

void arca_source_close(arca_source **src)
{
	arca_source *s = *src;
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_files; i++) {
		free(s->files[i].path);
		free(s->files[i].subfolder);
	}
	free(s->files);
	arca_buf_free(&s->data);
	if (s->map != NULL)
		munmap((void *)s->map, s->map_len);
	if (s->fd >= 0)
		close(s->fd);
	free(s->mbox_path);
	free(s);
	*src = NULL;
}

arca_source_format arca_source_get_format(const arca_source *src)
{
	return src->fmt;
}

void arca_source_default_folder(const arca_source *src, const char *path, char *out, size_t outsz)
{
	char tmp[ARCA_PATH_MAX], *b;
	snprintf(tmp, sizeof(tmp), "%s", path);
	while (strlen(tmp) > 1 && tmp[strlen(tmp) - 1] == '/')
		tmp[strlen(tmp) - 1] = '\0';
	b = strrchr(tmp, '/');
	b = b ? b + 1 : tmp;
	if (src->fmt == ARCA_SRC_EML || src->fmt == ARCA_SRC_MBOX) {
		char *dot = strrchr(b, '.');
		if (dot && dot != b)
			*dot = '\0';
	}
	snprintf(out, outsz, "%s", b[0] ? b : "Import");
}

uint64_t arca_source_total(const arca_source *src, int *is_bytes)
{
	*is_bytes = src->fmt == ARCA_SRC_MBOX;
	return src->fmt == ARCA_SRC_MBOX ? src->map_len : src->n_files;
}

uint64_t arca_source_done(const arca_source *src)
{
	return src->fmt == ARCA_SRC_MBOX ? src->pos : src->next_file;
}

/* Finds the message starting at the From_ line at pos: [*b, *e) is the still-quoted message,
 * *next the start of the following From_ line (or len). */
static void mbox_bounds(const uint8_t *d, size_t len, size_t pos, size_t *b, size_t *e,
                        size_t *next)
{
	const uint8_t *nl = memchr(d + pos, '\n', len - pos);
	size_t body = nl ? (size_t)(nl - d) + 1 : len;
	size_t i = body;
	*b = body;
	for (;;) {
		const uint8_t *p = memmem(d + i, len - i, "\nFrom ", 6);
		if (p == NULL) {
			*next = len;
			*e = len;
			/* writer's separator newline at the end of the file */
			if (*e > body && d[*e - 1] == '\n')
				(*e)--;
			return;
		}
		/* the message (incl. its own final newline) ends at p; p itself is the separator */
		*e = (size_t)(p - d);
		*next = *e + 1;
		if (*e < body)
			*e = body;
		return;
	}
}

static int line_is_quoted_from(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] == '>')
		i++;
	return i > 0 && n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/* Removes one '>' from lines matching ^>+From . Zero-copy when nothing is quoted. */
static arca_status mbox_unquote(const uint8_t *d, size_t b, size_t e, arca_buf *out,
                                const uint8_t **res, size_t *reslen)
{
	int any = 0;
	for (size_t i = b; i < e;) {
		const uint8_t *nl = memchr(d + i, '\n', e - i);
		size_t lend = nl ? (size_t)(nl - d) + 1 : e;
		if (d[i] == '>' && line_is_quoted_from(d + i, lend - i)) {
			any = 1;
			break;
		}
		i = lend;
	}
	if (!any) {
		*res = d + b;
		*reslen = e - b;
		return ARCA_OK;
	}
	arca_buf_reset(out);
	for (size_t i = b; i < e;) {
		const uint8_t *nl = memchr(d + i, '\n', e - i);
		size_t lend = nl ? (size_t)(nl - d) + 1 : e;
		size_t skip = (d[i] == '>' && line_is_quoted_from(d + i, lend - i)) ? 1 : 0;
		arca_status st = arca_buf_append(out, d + i + skip, lend - i - skip);
		if (st != ARCA_OK)
			return st;
		i = lend;
	}
	*res = (const uint8_t *)out->data;
	*reslen = out->len;
	return ARCA_OK;
}

arca_status arca_mbox_split(const uint8_t *data, size_t len, arca_mbox_cb cb, void *ctx,
                            uint64_t *count, arca_error *err)
{
	size_t pos = 0;
	uint64_t n = 0;
	arca_buf tmp;
	arca_status st = ARCA_OK;
	if (count)
		*count = 0;
	if (len == 0)
		return ARCA_OK;
	if (len < 5 || memcmp(data, "From ", 5) != 0)
		return arca_error_set(err, ARCA_ERR_INVALID, "not an mbox: no leading \"From \" line");
	arca_buf_init(&tmp, ARCA_MAX_MESSAGE_SIZE);
	while (pos < len) {
		size_t b, e, next;
		const uint8_t *m;
		size_t mlen;
		mbox_bounds(data, len, pos, &b, &e, &next);
		st = mbox_unquote(data, b, e, &tmp, &m, &mlen);
		if (st != ARCA_OK) {
			arca_error_set(err, st, "mbox message at offset %zu too large", pos);
			break;
		}
		n++;
		if (cb != NULL && cb(ctx, m, mlen, pos) != 0)
			break;
		pos = next;
	}
	arca_buf_free(&tmp);
	if (count)
		*count = n;
	return st;
}

arca_status arca_mbox_append(arca_buf *out, const uint8_t *msg, size_t len, int64_t date)
{
	char line[96];
	time_t t = (time_t)(date > 0 ? date : 0);
	struct tm tm;
	arca_status st;
	gmtime_r(&t, &tm);
	strftime(line, sizeof(line), "From MAILER-DAEMON %a %b %e %H:%M:%S %Y\n", &tm);
	st = arca_buf_appendz(out, line);
	for (size_t i = 0; i < len && st == ARCA_OK;) {
		const uint8_t *nl = memchr(msg + i, '\n', len - i);
		size_t lend = nl ? (size_t)(nl - msg) + 1 : len;
		size_t q = 0;
		while (i + q < lend && msg[i + q] == '>')
			q++;
		if (lend - i - q >= 5 && memcmp(msg + i + q, "From ", 5) == 0)
			st = arca_buf_append(out, ">", 1);
		if (st == ARCA_OK)
			st = arca_buf_append(out, msg + i, lend - i);
		i = lend;
	}
	if (st == ARCA_OK)
		st = arca_buf_append(out, "\n", 1);
	return st;
}

arca_status arca_source_next(arca_source *s, arca_source_msg *msg, arca_error *err)
{
	memset(msg, 0, sizeof(*msg));
	if (s->fmt == ARCA_SRC_MBOX) {
		size_t b, e, next;
		arca_status st;
		if (s->map == NULL || s->pos >= s->map_len)
			return ARCA_ERR_NOTFOUND;
		if (s->pos - s->released >= MBOX_RELEASE_STEP) {
			size_t upto = s->pos & ~(size_t)(sysconf(_SC_PAGESIZE) - 1);
			if (upto > s->released) {
				madvise((void *)(s->map + s->released), upto - s->released, MADV_DONTNEED);
				s->released = upto;
			}
		}
		mbox_bounds(s->map, s->map_len, s->pos, &b, &e, &next);
		snprintf(s->origin, sizeof(s->origin), "%s:%zu", s->mbox_path, s->pos);
		msg->origin = s->origin;
		msg->subfolder = "";
		s->pos = next;
		st = mbox_unquote(s->map, b, e, &s->data, &msg->data, &msg->len);
		if (st != ARCA_OK)
			return arca_error_set(err, st, "%s: message larger than %u bytes", s->origin,
			                      ARCA_MAX_MESSAGE_SIZE);
		return ARCA_OK;
	}
	if (s->next_file >= s->n_files)
		return ARCA_ERR_NOTFOUND;
	{
		src_file *f = &s->files[s->next_file++];
		arca_status st;
		msg->origin = f->path;
		msg->subfolder = f->subfolder;
		arca_buf_reset(&s->data);
		st = arca_fs_read_file(f->path, ARCA_MAX_MESSAGE_SIZE, &s->data, err);
		if (st != ARCA_OK)
			return st;
		msg->data = (const uint8_t *)(s->data.data ? s->data.data : "");
		msg->len = s->data.len;
		return ARCA_OK;
	}
}

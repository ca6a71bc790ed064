#include "lib/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/limits.h"

arca_status arca_fs_read_file(const char *path, size_t max, arca_buf *out, arca_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat stbuf;
	arca_status st;
	if (fd < 0)
		return arca_error_errno(err, errno, "cannot open %s", path);
	if (fstat(fd, &stbuf) == 0 && stbuf.st_size > 0) {
		if ((uint64_t)stbuf.st_size > max) {
			close(fd);
			return arca_error_set(err, ARCA_ERR_LIMIT, "%s: file larger than %zu bytes", path, max);
		}
		if (arca_buf_reserve(out, (size_t)stbuf.st_size) != ARCA_OK) {
			close(fd);
			return arca_error_set(err, ARCA_ERR_NOMEM, "%s: out of memory", path);
		}
	}
	for (;;) {
		char tmp[65536];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			st = arca_error_errno(err, errno, "cannot read %s", path);
			close(fd);
			return st;
		}
		if (n == 0)
			break;
		if (arca_buf_append(out, tmp, (size_t)n) != ARCA_OK) {
			close(fd);
			return arca_error_set(err, ARCA_ERR_LIMIT, "%s: file larger than %zu bytes", path, max);
		}
	}
	close(fd);
	return ARCA_OK;
}

static arca_status write_all(int fd, const void *data, size_t len, const char *path, arca_error *err)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return arca_error_errno(err, errno, "cannot write %s", path);
		}
		p += n;
		len -= (size_t)n;
	}
	return ARCA_OK;
}

arca_status arca_fs_fsync_dir(const char *dir, arca_error *err)
{
	char tmp[ARCA_PATH_MAX];
	int fd;
	if (!arca_fs_is_dir(dir)) {
		char *slash;
		if (strlen(dir) >= sizeof(tmp))
			return arca_error_set(err, ARCA_ERR_LIMIT, "path too long");
		strcpy(tmp, dir);
		slash = strrchr(tmp, '/');
		if (slash == NULL)
			strcpy(tmp, ".");
		else if (slash == tmp)
			tmp[1] = '\0';
		else
			*slash = '\0';
		dir = tmp;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return arca_error_errno(err, errno, "cannot open directory %s", dir);
	if (fsync(fd) != 0) {
		arca_status st = arca_error_errno(err, errno, "cannot fsync directory %s", dir);
		close(fd);
		return st;
	}
	close(fd);
	return ARCA_OK;
}

arca_status arca_fs_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
                                 arca_error *err)
{
	char tmp[ARCA_PATH_MAX];
	int fd;
	arca_status st;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return arca_error_set(err, ARCA_ERR_LIMIT, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (fd < 0)
		return arca_error_errno(err, errno, "cannot create %s", tmp);
	st = write_all(fd, data, len, tmp, err);
	if (st == ARCA_OK && fsync(fd) != 0)
		st = arca_error_errno(err, errno, "cannot fsync %s", tmp);
	if (close(fd) != 0 && st == ARCA_OK)
		st = arca_error_errno(err, errno, "cannot close %s", tmp);
	if (st == ARCA_OK && rename(tmp, path) != 0)
		st = arca_error_errno(err, errno, "cannot rename %s", tmp);
	if (st != ARCA_OK) {
		unlink(tmp);
		return st;
	}
	return arca_fs_fsync_dir(path, err);
}

arca_status arca_fs_mkdirs(const char *path, arca_error *err)
{
	char tmp[ARCA_PATH_MAX];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(tmp))
		return arca_error_set(err, ARCA_ERR_INVALID, "bad directory path");
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
				return arca_error_errno(err, errno, "cannot create directory %s", tmp);
			*p = '/';
		}
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return arca_error_errno(err, errno, "cannot create directory %s", tmp);
	return ARCA_OK;
}

bool arca_fs_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

bool arca_fs_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

uint64_t arca_fs_du(const char *path, bool on_disk)
{
	struct stat st;
	uint64_t total = 0;
	DIR *d;
	struct dirent *de;
	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return on_disk ? (uint64_t)st.st_blocks * 512u : (uint64_t)st.st_size;
	d = opendir(path);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char sub[ARCA_PATH_MAX];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (arca_fs_join(sub, sizeof(sub), path, de->d_name) == ARCA_OK)
			total += arca_fs_du(sub, on_disk);
	}
	closedir(d);
	return total;
}

arca_status arca_fs_join(char *out, size_t outsz, const char *a, const char *b)
{
	size_t la = strlen(a);
	int n;
	while (la > 1 && a[la - 1] == '/')
		la--;
	n = snprintf(out, outsz, "%.*s/%s", (int)la, a, b);
	if (n < 0 || (size_t)n >= outsz)
		return ARCA_ERR_LIMIT;
	return ARCA_OK;
}

arca_status arca_fs_expand(char *out, size_t outsz, const char *base, const char *path)
{
	int n;
	if (path[0] == '/')
		n = snprintf(out, outsz, "%s", path);
	else if (path[0] == '~' && (path[1] == '/' || path[1] == '\0'))
		return arca_fs_join(out, outsz, base, path[1] ? path + 2 : ".");
	else
		return arca_fs_join(out, outsz, base, path);
	if (n < 0 || (size_t)n >= outsz)
		return ARCA_ERR_LIMIT;
	return ARCA_OK;
}

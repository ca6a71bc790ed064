/* The unit tests' index fixture: a fresh index in a temporary directory, removed after. */
#ifndef ARCA_TEST_INDEX_FIXTURE_H
#define ARCA_TEST_INDEX_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index.h"

typedef struct {
	char dir[64];
	char path[128];
	arca_index *ix;
} fixture;

static inline int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	arca_error err;
	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/arca-index-test-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/index.db", f->dir);
	if (arca_index_open(f->path, ARCA_INDEX_CREATE, &f->ix, &err) != ARCA_OK) {
		fprintf(stderr, "open: %s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static inline int teardown(void **state)
{
	fixture *f = *state;
	char p[160];
	arca_index_close(&f->ix);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

#endif

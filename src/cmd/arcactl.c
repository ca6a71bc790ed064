/* arcactl: offline administration of an instance base directory (docs/cli.md). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/instance.h"
#include "auth/users.h"
#include "crypto/crypto.h"
#include "lib/fs.h"
#include "lib/limits.h"
#include "sources/files.h"

#define EXIT_ERR 1
#define EXIT_USAGE 2
#define EXIT_DAMAGED 3

static const char *opt_base;
static const char *opt_key_file;

static const char usage_text[] =
    "usage: arcactl [--base DIR] [--key-file FILE] COMMAND [ARGS]\n"
    "\n"
    "  init [--store-max-messages N]\n"
    "  recover-key --recovery-key KEY --out NEW_KEY_FILE\n"
    "  store list [--json]\n"
    "  store create [--name N] [--meta DIR] [--content DIR] [--index DIR] [--current]\n"
    "  store set-state ID current|normal|write-protected|disabled\n"
    "  import --archive NAME [--folder PATH] [--format auto|eml|dir|mbox|maildir]\n"
    "         [--batch N] [--commit-log FILE] [--json] [--quiet] SOURCE\n"
    "  search [--archive NAME]... [--relevance] [--page N] [--per-page N] [--json] QUERY\n"
    "  search-bench [--archive NAME] [--relevance] [--runs N] QUERIES_FILE\n"
    "  get ID [--out FILE]\n"
    "  export [--archive NAME] [--folder PATH] [--query Q] --format eml|mbox --out PATH\n"
    "  archives [--json]\n"
    "  folders [--archive NAME] [--json]\n"
    "  stats [--json]\n"
    "  verify [--store ID] [--json]\n"
    "  recreate --store ID\n"
    "  rebuild-index [--store ID]\n"
    "  user create NAME [--admin] [--full-name TEXT] [--password-stdin]\n"
    "  user list [--json]\n"
    "  user set-password NAME --password-stdin\n"
    "  user delete NAME\n"
    "\n"
    "--base and --key-file default to $ARCA_BASE and $ARCA_KEY_FILE. See docs/cli.md.\n";

static int usage(const char *msg)
{
	if (msg)
		fprintf(stderr, "arcactl: %s\n", msg);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static int fail(const arca_error *err)
{
	fprintf(stderr, "arcactl: %s\n", err->msg[0] ? err->msg : arca_status_name(err->status));
	return EXIT_ERR;
}

static int need_base(void)
{
	if (opt_base == NULL || opt_base[0] == '\0')
		return usage("--base DIR (or ARCA_BASE) is required");
	if (opt_key_file == NULL || opt_key_file[0] == '\0')
		return usage("--key-file FILE (or ARCA_KEY_FILE) is required");
	return 0;
}

static int open_instance(int flags, arca_instance **in)
{
	arca_error err = {0};
	int rc = need_base();
	if (rc)
		return rc;
	if (arca_instance_open(opt_base, opt_key_file, flags, in, &err) != ARCA_OK)
		return fail(&err);
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(1) | JSON_ENSURE_ASCII);
	if (s) {
		puts(s);
		free(s);
	}
	json_decref(j);
}

static void fmt_date(int64_t t, char *out, size_t outsz)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outsz, "?");
}

/* getopt_long state is reset before each command's own parsing */
static void reset_getopt(void)
{
	optind = 1;
	opterr = 1;
}

/* ---------------- init / recover-key ---------------- */

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {{"store-max-messages", required_argument, NULL, 'm'},
	                                     {NULL, 0, NULL, 0}};
	uint64_t max = ARCA_DEFAULT_STORE_MAX;
	char rec[ARCA_RECOVERY_KEY_TEXT];
	arca_error err = {0};
	int c, rc;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'm') {
			if (parse_u64(optarg, &max) != 0 || max == 0)
				return usage("--store-max-messages needs a positive number");
		} else {
			return usage(NULL);
		}
	}
	if (optind != argc)
		return usage("init takes no arguments");
	if ((rc = need_base()) != 0)
		return rc;
	if (arca_instance_init(opt_base, opt_key_file, max, rec, &err) != ARCA_OK)
		return fail(&err);
	printf("Instance created in %s (instance key: %s).\n", opt_base, opt_key_file);
	printf("Recovery key (shown only now; store it offline, it can restore the instance key):\n"
	       "  %s\n",
	       rec);
	return 0;
}

static int cmd_recover_key(int argc, char **argv)
{
	static const struct option opts[] = {{"recovery-key", required_argument, NULL, 'r'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {NULL, 0, NULL, 0}};
	const char *rk = NULL, *out = NULL;
	arca_error err = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			rk = optarg;
		else if (c == 'o')
			out = optarg;
		else
			return usage(NULL);
	}
	if (rk == NULL || out == NULL || opt_base == NULL)
		return usage("recover-key needs --base, --recovery-key and --out");
	if (arca_instance_recover_key(opt_base, rk, out, &err) != ARCA_OK)
		return fail(&err);
	printf("Instance key written to %s\n", out);
	return 0;
}

/* ---------------- store ---------------- */

static int cmd_store(int argc, char **argv)
{
	arca_instance *in = NULL;
	arca_error err = {0};
	int rc;
	if (argc < 2)
		return usage("store needs a sub-command: list, create, set-state");
	if (strcmp(argv[1], "list") == 0) {
		arca_store_info *v;
		size_t n;
		int json = argc > 2 && strcmp(argv[2], "--json") == 0;
		if ((rc = open_instance(ARCA_INSTANCE_READONLY, &in)) != 0)
			return rc;
		if (arca_instance_stores(in, &v, &n, &err) != ARCA_OK) {
			arca_instance_close(&in);
			return fail(&err);
		}
		if (json) {
			json_t *a = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(
				    a, json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "id", (json_int_t)v[i].id,
				                 "name", v[i].name, "state", arca_store_state_name(v[i].state),
				                 "meta", v[i].meta_path, "content", v[i].content_path, "index",
				                 v[i].index_path, "messages", (json_int_t)v[i].messages,
				                 "raw_bytes", (json_int_t)v[i].raw_bytes, "stored_bytes",
				                 (json_int_t)v[i].stored_bytes));
			print_json(a);
		} else {
			printf("%-4s %-16s %-16s %10s  %s\n", "ID", "NAME", "STATE", "MESSAGES", "CONTENT");
			for (size_t i = 0; i < n; i++)
				printf("%-4u %-16s %-16s %10llu  %s\n", v[i].id, v[i].name,
				       arca_store_state_name(v[i].state), (unsigned long long)v[i].messages,
				       v[i].content_path);
		}
		arca_store_infos_free(v, n);
		arca_instance_close(&in);
		return 0;
	}
	if (strcmp(argv[1], "create") == 0) {
		static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
		                                     {"meta", required_argument, NULL, 'm'},
		                                     {"content", required_argument, NULL, 'c'},
		                                     {"index", required_argument, NULL, 'i'},
		                                     {"current", no_argument, NULL, 'C'},
		                                     {NULL, 0, NULL, 0}};
		const char *name = NULL, *meta = NULL, *content = NULL, *index = NULL;
		bool current = false;
		uint32_t id;
		int c;
		argc--;
		argv++;
		reset_getopt();
		while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
			switch (c) {
			case 'n': name = optarg; break;
			case 'm': meta = optarg; break;
			case 'c': content = optarg; break;
			case 'i': index = optarg; break;
			case 'C': current = true; break;
			default: return usage(NULL);
			}
		}
		if ((rc = open_instance(0, &in)) != 0)
			return rc;
		if (arca_instance_store_create(in, name, meta, content, index, current, &id, &err) !=
		    ARCA_OK) {
			arca_instance_close(&in);
			return fail(&err);
		}
		printf("Store %u created%s.\n", id, current ? " (current)" : " (normal)");
		arca_instance_close(&in);
		return 0;
	}
	if (strcmp(argv[1], "set-state") == 0) {
		uint64_t id;
		arca_store_state state;
		if (argc != 4 || parse_u64(argv[2], &id) != 0 || id == 0 || id > UINT32_MAX)
			return usage("store set-state ID STATE");
		if (arca_store_state_parse(argv[3], &state) != ARCA_OK)
			return usage("STATE is one of current, normal, write-protected, disabled");
		if ((rc = open_instance(0, &in)) != 0)
			return rc;
		if (arca_instance_store_set_state(in, (uint32_t)id, state, &err) != ARCA_OK) {
			arca_instance_close(&in);
			return fail(&err);
		}
		printf("Store %llu is now %s.\n", (unsigned long long)id, argv[3]);
		arca_instance_close(&in);
		return 0;
	}
	return usage("unknown store sub-command");
}

/* ---------------- import ---------------- */

typedef struct {
	FILE *log;
	int log_fd;
	bool log_failed;
} commit_log;

static void on_commit(void *ctx, const arca_ingest_item *items, size_t n)
{
	commit_log *cl = ctx;
	if (cl->log == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		char hex[65];
		arca_hex_encode(items[i].sha, 32, hex);
		fprintf(cl->log, "%s %u:%llu %s\n", hex, items[i].store_id,
		        (unsigned long long)items[i].msg_id, items[i].is_new ? "new" : "dup");
	}
	if (fflush(cl->log) != 0 || fsync(cl->log_fd) != 0)
		cl->log_failed = true;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(const arca_source *src, uint64_t count, double t0, bool final)
{
	int is_bytes;
	uint64_t total = arca_source_total(src, &is_bytes), done = arca_source_done(src);
	double el = now_s() - t0, rate = el > 0 ? (double)count / el : 0;
	double frac = total ? (double)done / (double)total : 1.0;
	double eta = frac > 0 ? el / frac - el : 0;
	fprintf(stderr, "%simported %llu messages (%.0f%%), %.0f msg/s, elapsed %.0fs, ETA %.0fs%s",
	        isatty(2) ? "\r" : "", (unsigned long long)count, frac * 100.0, rate, el,
	        eta < 0 ? 0 : eta, isatty(2) && !final ? "   " : "\n");
	fflush(stderr);
}

static int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {{"archive", required_argument, NULL, 'a'},
	                                     {"folder", required_argument, NULL, 'f'},
	                                     {"format", required_argument, NULL, 'F'},
	                                     {"batch", required_argument, NULL, 'b'},
	                                     {"commit-log", required_argument, NULL, 'l'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"quiet", no_argument, NULL, 'q'},
	                                     {NULL, 0, NULL, 0}};
	const char *archive = NULL, *folder = NULL, *logpath = NULL, *path;
	arca_source_format fmt = ARCA_SRC_AUTO;
	uint64_t batch = 1000;
	bool json = false, quiet = false;
	arca_instance *in = NULL;
	arca_source *src = NULL;
	arca_ingest *ing = NULL;
	arca_error err = {0};
	commit_log cl = {0};
	uint32_t archive_id, top_folder;
	char top[ARCA_FOLDER_MAX];
	double t0, last = 0;
	arca_status st = ARCA_OK;
	int c, rc, exit_code = 0;
	uint64_t count = 0, src_errors = 0;
	const arca_ingest_stats *stats;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': archive = optarg; break;
		case 'f': folder = optarg; break;
		case 'F':
			if (arca_source_format_parse(optarg, &fmt) != ARCA_OK)
				return usage("--format is one of auto, eml, dir, mbox, maildir");
			break;
		case 'b':
			if (parse_u64(optarg, &batch) != 0 || batch == 0 || batch > 100000)
				return usage("--batch needs a number between 1 and 100000");
			break;
		case 'l': logpath = optarg; break;
		case 'j': json = true; break;
		case 'q': quiet = true; break;
		default: return usage(NULL);
		}
	}
	if (archive == NULL)
		return usage("import needs --archive NAME");
	if (optind + 1 != argc)
		return usage("import needs exactly one SOURCE");
	path = argv[optind];
	if ((rc = need_base()) != 0)
		return rc;
	if (arca_source_open(path, fmt, &src, &err) != ARCA_OK)
		return fail(&err);
	if (folder == NULL) {
		arca_source_default_folder(src, path, top, sizeof(top));
	} else {
		snprintf(top, sizeof(top), "%s", folder);
	}
	if ((rc = open_instance(0, &in)) != 0) {
		arca_source_close(&src);
		return rc;
	}
	if (arca_instance_archive_id(in, archive, true, &archive_id, &err) != ARCA_OK ||
	    arca_instance_folder_id(in, archive_id, top, true, &top_folder, &err) != ARCA_OK) {
		exit_code = fail(&err);
		goto out;
	}
	if (logpath != NULL) {
		cl.log = fopen(logpath, "a");
		if (cl.log == NULL) {
			fprintf(stderr, "arcactl: cannot open commit log %s: %s\n", logpath, strerror(errno));
			exit_code = EXIT_ERR;
			goto out;
		}
		cl.log_fd = fileno(cl.log);
	}
	if (arca_ingest_begin(in, batch, on_commit, &cl, &ing, &err) != ARCA_OK) {
		exit_code = fail(&err);
		goto out;
	}
	t0 = now_s();
	for (;;) {
		arca_source_msg m;
		uint32_t fid = top_folder;
		const char *warning = NULL;
		st = arca_source_next(src, &m, &err);
		if (st == ARCA_ERR_NOTFOUND) {
			st = ARCA_OK;
			break;
		}
		if (st != ARCA_OK) {
			fprintf(stderr, "arcactl: error: %s\n", err.msg);
			src_errors++;
			st = ARCA_OK;
			continue;
		}
		if (m.subfolder[0] != '\0') {
			char sub[ARCA_FOLDER_MAX * 2];
			snprintf(sub, sizeof(sub), "%s/%s", top, m.subfolder);
			if (arca_instance_folder_id(in, archive_id, sub, true, &fid, &err) != ARCA_OK) {
				fprintf(stderr, "arcactl: error: %s: %s\n", m.origin, err.msg);
				src_errors++;
				continue;
			}
		}
		st = arca_ingest_add(ing, m.data, m.len, archive_id, fid, &warning, &err);
		if (st != ARCA_OK && st != ARCA_ERR_LIMIT) {
			/* anything but a message over the size limit ends the session: the staged
			 * batch was dropped, only committed batches count */
			fprintf(stderr, "arcactl: import stopped: %s: %s\n", m.origin, err.msg);
			break;
		}
		if (st != ARCA_OK) {
			fprintf(stderr, "arcactl: error: %s: %s (not archived)\n", m.origin, err.msg);
			st = ARCA_OK;
		} else if (warning != NULL) {
			fprintf(stderr, "arcactl: warning: %s: %s (archived byte-exact)\n", m.origin, warning);
		}
		count++;
		if (last == 0)
			last = now_s(); /* first progress line after real work, not before */
		if (!quiet && now_s() - last >= (isatty(2) ? 0.5 : 5.0)) {
			last = now_s();
			progress(src, arca_ingest_get_stats(ing)->committed, t0, false);
		}
	}
	if (st == ARCA_OK) {
		if (arca_ingest_commit(ing, &err) != ARCA_OK) {
			fprintf(stderr, "arcactl: import stopped: %s\n", err.msg);
			st = err.status;
		}
	}
	stats = arca_ingest_get_stats(ing);
	if (!quiet)
		progress(src, stats->committed, t0, true);
	{
		double el = now_s() - t0;
		uint64_t errors = stats->errors + src_errors;
		if (json) {
			print_json(json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:b,s:s}", "archived",
			                     (json_int_t)stats->archived, "new_content",
			                     (json_int_t)stats->new_content, "duplicates",
			                     (json_int_t)stats->duplicates, "already_present",
			                     (json_int_t)stats->already_present, "warnings",
			                     (json_int_t)stats->warnings, "errors", (json_int_t)errors, "bytes",
			                     (json_int_t)stats->bytes, "batches", (json_int_t)stats->batches,
			                     "committed", (json_int_t)stats->committed, "seconds", el,
			                     "complete", st == ARCA_OK, "error",
			                     st == ARCA_OK ? "" : err.msg));
		} else {
			printf("%s: archived %llu (new content %llu), duplicates %llu (already in folder "
			       "%llu), warnings %llu, errors %llu, %.1f MB in %.1fs (%.0f msg/s)\n",
			       st == ARCA_OK ? "import complete" : "import INCOMPLETE",
			       (unsigned long long)stats->archived, (unsigned long long)stats->new_content,
			       (unsigned long long)stats->duplicates,
			       (unsigned long long)stats->already_present, (unsigned long long)stats->warnings,
			       (unsigned long long)errors, (double)stats->bytes / 1e6, el,
			       el > 0 ? (double)count / el : 0.0);
			if (st != ARCA_OK)
				printf("%llu messages were durably committed before the error; run the same "
				       "import again to continue (nothing is archived twice).\n",
				       (unsigned long long)stats->committed);
		}
		if (st != ARCA_OK)
			exit_code = EXIT_ERR;
	}
	if (cl.log_failed) {
		fprintf(stderr, "arcactl: writing the commit log failed\n");
		exit_code = EXIT_ERR;
	}
out:
	if (ing != NULL && arca_ingest_end(&ing, &err) != ARCA_OK && exit_code == 0)
		exit_code = fail(&err);
	if (cl.log)
		fclose(cl.log);
	arca_source_close(&src);
	arca_instance_close(&in);
	return exit_code;
}

/* ---------------- search ---------------- */

static int cmd_search(int argc, char **argv)
{
	static const struct option opts[] = {{"archive", required_argument, NULL, 'a'},
	                                     {"relevance", no_argument, NULL, 'r'},
	                                     {"page", required_argument, NULL, 'p'},
	                                     {"per-page", required_argument, NULL, 'n'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {NULL, 0, NULL, 0}};
	const char *archives[64];
	arca_instance_search_opts so = {.order = ARCA_ORDER_NEWEST, .limit = 50, .snippets = true};
	uint64_t page = 1, per = 50;
	bool json = false;
	arca_instance *in = NULL;
	arca_results res;
	arca_error err = {0};
	int c, rc;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (so.n_archives >= 64)
				return usage("at most 64 --archive options");
			archives[so.n_archives++] = optarg;
			break;
		case 'r': so.order = ARCA_ORDER_RELEVANCE; break;
		case 'p':
			if (parse_u64(optarg, &page) != 0 || page == 0 || page > 1000000)
				return usage("--page needs a number from 1");
			break;
		case 'n':
			if (parse_u64(optarg, &per) != 0 || per == 0 || per > 10000)
				return usage("--per-page needs a number from 1 to 10000");
			break;
		case 'j': json = true; break;
		default: return usage(NULL);
		}
	}
	if (optind + 1 != argc)
		return usage("search needs exactly one QUERY argument (quote it)");
	so.archives = archives;
	so.offset = (size_t)((page - 1) * per);
	so.limit = (size_t)per;
	/* not read-only: a search may catch an index up after a crash (see fresh_index) */
	if ((rc = open_instance(0, &in)) != 0)
		return rc;
	if (arca_instance_search(in, argv[optind], &so, &res, &err) != ARCA_OK) {
		arca_instance_close(&in);
		return fail(&err);
	}
	if (json) {
		json_t *hits = json_array();
		for (size_t i = 0; i < res.n; i++) {
			arca_result *r = &res.items[i];
			char id[48], date[40];
			json_t *folders = json_array(), *h;
			snprintf(id, sizeof(id), "%u:%llu", r->store_id, (unsigned long long)r->msg_id);
			fmt_date(r->date, date, sizeof(date));
			for (size_t f = 0; f < r->n_folders; f++)
				json_array_append_new(folders, json_string(r->folders[f]));
			h = json_pack("{s:s,s:s,s:s?,s:s?,s:o,s:s?,s:I}", "id", id, "date", date, "from",
			              r->from, "subject", r->subject, "folders", folders, "snippet",
			              r->snippet, "size", (json_int_t)r->size);
			if (h && so.order == ARCA_ORDER_RELEVANCE)
				json_object_set_new(h, "rank", json_real(r->rank));
			json_array_append_new(hits, h);
		}
		print_json(json_pack("{s:o,s:I,s:I}", "hits", hits, "page", (json_int_t)page,
		                     "per_page", (json_int_t)per));
	} else {
		for (size_t i = 0; i < res.n; i++) {
			arca_result *r = &res.items[i];
			char date[40];
			fmt_date(r->date, date, sizeof(date));
			printf("%u:%llu  %.10s  %-30.30s  %s\n", r->store_id, (unsigned long long)r->msg_id,
			       date, r->from ? r->from : "", r->subject ? r->subject : "");
			for (size_t f = 0; f < r->n_folders; f++)
				printf("    in %s\n", r->folders[f]);
			if (r->snippet && r->snippet[0])
				printf("    %s\n", r->snippet);
		}
		if (res.n == 0)
			printf("no messages found\n");
	}
	arca_results_free(&res);
	arca_instance_close(&in);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Times many queries in one process (bench/search): one JSON line per query. */
static int cmd_search_bench(int argc, char **argv)
{
	static const struct option opts[] = {{"archive", required_argument, NULL, 'a'},
	                                     {"relevance", no_argument, NULL, 'r'},
	                                     {"runs", required_argument, NULL, 'n'},
	                                     {NULL, 0, NULL, 0}};
	const char *archives[1];
	arca_instance_search_opts so = {.order = ARCA_ORDER_NEWEST, .limit = 50, .snippets = true};
	uint64_t runs = 5;
	arca_instance *in = NULL;
	arca_error err = {0};
	FILE *f;
	char line[ARCA_QUERY_MAX_LEN + 2];
	int c, rc;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			archives[0] = optarg;
			so.archives = archives;
			so.n_archives = 1;
			break;
		case 'r': so.order = ARCA_ORDER_RELEVANCE; break;
		case 'n':
			if (parse_u64(optarg, &runs) != 0 || runs == 0 || runs > 1000)
				return usage("--runs needs 1..1000");
			break;
		default: return usage(NULL);
		}
	}
	if (optind + 1 != argc)
		return usage("search-bench needs a QUERIES_FILE (one query per line)");
	f = fopen(argv[optind], "r");
	if (f == NULL) {
		fprintf(stderr, "arcactl: cannot open %s: %s\n", argv[optind], strerror(errno));
		return EXIT_ERR;
	}
	if ((rc = open_instance(ARCA_INSTANCE_READONLY, &in)) != 0) {
		fclose(f);
		return rc;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		double ms[1000], order[1000];
		size_t hits = 0;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		for (uint64_t r = 0; r < runs; r++) {
			arca_results res;
			double t = now_s();
			if (arca_instance_search(in, line, &so, &res, &err) != ARCA_OK) {
				fclose(f);
				arca_instance_close(&in);
				return fail(&err);
			}
			ms[r] = order[r] = (now_s() - t) * 1000.0;
			hits = res.n;
			arca_results_free(&res);
		}
		qsort(ms, runs, sizeof(double), cmp_double);
		{
			json_t *j = json_pack("{s:s,s:I,s:f,s:f,s:f}", "query", line, "hits", (json_int_t)hits,
			                      "min_ms", ms[0], "median_ms", ms[runs / 2], "max_ms",
			                      ms[runs - 1]);
			json_t *all = json_array();
			char *s;
			for (uint64_t r = 0; r < runs; r++) /* in execution order: the first is the cold one */
				json_array_append_new(all, json_real(order[r]));
			json_object_set_new(j, "runs_ms", all);
			s = json_dumps(j, JSON_COMPACT);
			puts(s);
			free(s);
			json_decref(j);
		}
	}
	fclose(f);
	arca_instance_close(&in);
	return 0;
}

/* ---------------- get / export ---------------- */

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "arcactl: cannot write %s: %s\n", path, strerror(errno));
		return EXIT_ERR;
	}
	return 0;
}

static int cmd_get(int argc, char **argv)
{
	static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
	                                     {NULL, 0, NULL, 0}};
	const char *out = NULL;
	uint32_t sid;
	uint64_t mid;
	arca_instance *in = NULL;
	arca_buf b;
	arca_error err = {0};
	int c, rc;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else
			return usage(NULL);
	}
	if (optind + 1 != argc)
		return usage("get needs one message ID (STORE:N)");
	if (arca_msgid_parse(argv[optind], &sid, &mid) != ARCA_OK)
		return usage("a message ID looks like 1:42 (STORE:N)");
	if ((rc = open_instance(ARCA_INSTANCE_READONLY, &in)) != 0)
		return rc;
	arca_buf_init(&b, ARCA_MAX_MESSAGE_SIZE);
	if (arca_instance_get(in, sid, mid, &b, &err) != ARCA_OK) {
		arca_buf_free(&b);
		arca_instance_close(&in);
		return fail(&err);
	}
	if (out)
		rc = write_file(out, b.data, b.len);
	else if (b.len > 0 && fwrite(b.data, 1, b.len, stdout) != b.len)
		rc = EXIT_ERR;
	arca_buf_free(&b);
	arca_instance_close(&in);
	return rc;
}

typedef struct {
	arca_instance *in;
	bool mbox;
	const char *out;
	FILE *mboxf;
	arca_buf msg, quoted;
	uint64_t n, bytes, failed;
} export_ctx;

static arca_status export_one(void *vctx, uint32_t store_id, uint64_t msg_id)
{
	export_ctx *x = vctx;
	arca_error err = {0};
	arca_buf_reset(&x->msg);
	if (arca_instance_get(x->in, store_id, msg_id, &x->msg, &err) != ARCA_OK) {
		fprintf(stderr, "arcactl: cannot export %u:%llu: %s\n", store_id,
		        (unsigned long long)msg_id, err.msg);
		x->failed++;
		return ARCA_OK;
	}
	if (x->mbox) {
		arca_buf_reset(&x->quoted);
		if (arca_mbox_append(&x->quoted, (const uint8_t *)x->msg.data, x->msg.len, 0) != ARCA_OK ||
		    fwrite(x->quoted.data, 1, x->quoted.len, x->mboxf) != x->quoted.len) {
			fprintf(stderr, "arcactl: cannot write %s: %s\n", x->out, strerror(errno));
			return ARCA_ERR_IO;
		}
	} else {
		char p[ARCA_PATH_MAX], name[64];
		snprintf(name, sizeof(name), "%u-%llu.eml", store_id, (unsigned long long)msg_id);
		if (arca_fs_join(p, sizeof(p), x->out, name) != ARCA_OK ||
		    write_file(p, x->msg.data ? x->msg.data : "", x->msg.len) != 0)
			return ARCA_ERR_IO;
	}
	x->n++;
	x->bytes += x->msg.len;
	return ARCA_OK;
}

static int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {{"archive", required_argument, NULL, 'a'},
	                                     {"folder", required_argument, NULL, 'f'},
	                                     {"query", required_argument, NULL, 'q'},
	                                     {"format", required_argument, NULL, 'F'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {NULL, 0, NULL, 0}};
	const char *archive = NULL, *folder = NULL, *query = NULL, *format = NULL;
	export_ctx x;
	arca_error err = {0};
	uint32_t aid = 0, fid = 0;
	int c, rc, exit_code = 0;
	memset(&x, 0, sizeof(x));
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': archive = optarg; break;
		case 'f': folder = optarg; break;
		case 'q': query = optarg; break;
		case 'F': format = optarg; break;
		case 'o': x.out = optarg; break;
		default: return usage(NULL);
		}
	}
	if (format == NULL || (strcmp(format, "eml") != 0 && strcmp(format, "mbox") != 0))
		return usage("export needs --format eml|mbox");
	if (x.out == NULL || optind != argc)
		return usage("export needs --out PATH and no other arguments");
	if (folder != NULL && archive == NULL)
		return usage("--folder needs --archive");
	x.mbox = strcmp(format, "mbox") == 0;
	if ((rc = open_instance(ARCA_INSTANCE_READONLY, &x.in)) != 0)
		return rc;
	if (archive && arca_instance_archive_id(x.in, archive, false, &aid, &err) != ARCA_OK) {
		exit_code = fail(&err);
		goto out;
	}
	if (folder && arca_instance_folder_id(x.in, aid, folder, false, &fid, &err) != ARCA_OK) {
		exit_code = fail(&err);
		goto out;
	}
	if (x.mbox) {
		x.mboxf = fopen(x.out, "wb");
		if (x.mboxf == NULL) {
			fprintf(stderr, "arcactl: cannot create %s: %s\n", x.out, strerror(errno));
			exit_code = EXIT_ERR;
			goto out;
		}
	} else if (arca_fs_mkdirs(x.out, &err) != ARCA_OK) {
		exit_code = fail(&err);
		goto out;
	}
	arca_buf_init(&x.msg, ARCA_MAX_MESSAGE_SIZE);
	arca_buf_init(&x.quoted, 2u * ARCA_MAX_MESSAGE_SIZE);
	if (query != NULL) {
		const char *archives[1] = {archive};
		arca_instance_search_opts so = {.order = ARCA_ORDER_NEWEST, .limit = 10000000,
		                                .archives = archives, .n_archives = archive ? 1 : 0};
		arca_results res;
		if (folder != NULL) {
			exit_code = usage("--query and --folder cannot be combined; use folder: in the query");
			goto out2;
		}
		if (arca_instance_search(x.in, query, &so, &res, &err) != ARCA_OK) {
			exit_code = fail(&err);
			goto out2;
		}
		for (size_t i = 0; i < res.n; i++)
			if (export_one(&x, res.items[i].store_id, res.items[i].msg_id) != ARCA_OK) {
				exit_code = EXIT_ERR;
				break;
			}
		arca_results_free(&res);
	} else if (arca_instance_each_message(x.in, aid, fid, export_one, &x, &err) != ARCA_OK) {
		exit_code = err.msg[0] ? fail(&err) : EXIT_ERR;
	}
	if (x.failed)
		exit_code = EXIT_ERR;
	printf("exported %llu messages (%.1f MB) to %s%s\n", (unsigned long long)x.n,
	       (double)x.bytes / 1e6, x.out, x.failed ? " -- some messages FAILED, see above" : "");
out2:
	arca_buf_free(&x.msg);
	arca_buf_free(&x.quoted);
out:
	if (x.mboxf && fclose(x.mboxf) != 0) {
		fprintf(stderr, "arcactl: cannot write %s: %s\n", x.out, strerror(errno));
		exit_code = EXIT_ERR;
	}
	arca_instance_close(&x.in);
	return exit_code;
}

/* ---------------- listing and statistics ---------------- */

static int cmd_archives(int argc, char **argv)
{
	arca_instance *in = NULL;
	arca_archive_info *v;
	size_t n;
	arca_error err = {0};
	int rc, json = argc > 1 && strcmp(argv[1], "--json") == 0;
	if ((rc = open_instance(ARCA_INSTANCE_READONLY, &in)) != 0)
		return rc;
	if (arca_instance_archives(in, &v, &n, &err) != ARCA_OK) {
		arca_instance_close(&in);
		return fail(&err);
	}
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s,s:I,s:I,s:I,s:I}", "name", v[i].name,
			                                   "messages", (json_int_t)v[i].messages, "raw_bytes",
			                                   (json_int_t)v[i].raw_bytes, "stored_bytes",
			                                   (json_int_t)v[i].stored_bytes, "index_bytes",
			                                   (json_int_t)v[i].index_bytes));
		print_json(a);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%-30s %10llu messages %12llu bytes\n", v[i].name,
			       (unsigned long long)v[i].messages, (unsigned long long)v[i].raw_bytes);
	}
	arca_archive_infos_free(v, n);
	arca_instance_close(&in);
	return 0;
}

static int cmd_folders(int argc, char **argv)
{
	static const struct option opts[] = {{"archive", required_argument, NULL, 'a'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {NULL, 0, NULL, 0}};
	const char *archive = NULL;
	bool json = false;
	arca_instance *in = NULL;
	arca_folder_info *v;
	size_t n;
	uint32_t aid = 0;
	arca_error err = {0};
	int c, rc;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a')
			archive = optarg;
		else if (c == 'j')
			json = true;
		else
			return usage(NULL);
	}
	if ((rc = open_instance(ARCA_INSTANCE_READONLY, &in)) != 0)
		return rc;
	if ((archive && arca_instance_archive_id(in, archive, false, &aid, &err) != ARCA_OK) ||
	    arca_instance_folders(in, aid, &v, &n, &err) != ARCA_OK) {
		arca_instance_close(&in);
		return fail(&err);
	}
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s,s:s,s:I}", "archive", v[i].archive, "folder",
			                                   v[i].path, "messages", (json_int_t)v[i].messages));
		print_json(a);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s/%s  %llu\n", v[i].archive, v[i].path, (unsigned long long)v[i].messages);
	}
	arca_folder_infos_free(v, n);
	arca_instance_close(&in);
	return 0;
}

static int cmd_stats(int argc, char **argv)
{
	arca_instance *in = NULL;
	arca_store_info *s;
	arca_archive_info *a;
	size_t ns, na;
	arca_error err = {0};
	int rc, json = argc > 1 && strcmp(argv[1], "--json") == 0;
	uint64_t t_msgs = 0, t_raw = 0, t_stored = 0, t_meta = 0, t_index = 0;
	if ((rc = open_instance(ARCA_INSTANCE_READONLY, &in)) != 0)
		return rc;
	if (arca_instance_stores(in, &s, &ns, &err) != ARCA_OK ||
	    arca_instance_archives(in, &a, &na, &err) != ARCA_OK) {
		arca_instance_close(&in);
		return fail(&err);
	}
	for (size_t i = 0; i < ns; i++) {
		t_msgs += s[i].messages;
		t_raw += s[i].raw_bytes;
		t_stored += s[i].stored_bytes;
		t_meta += s[i].meta_bytes;
		t_index += s[i].index_bytes;
	}
	if (json) {
		json_t *js = json_array(), *ja = json_array();
		for (size_t i = 0; i < ns; i++)
			json_array_append_new(
			    js, json_pack("{s:i,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "id", (json_int_t)s[i].id,
			                  "name", s[i].name, "state", arca_store_state_name(s[i].state),
			                  "messages", (json_int_t)s[i].messages, "memberships",
			                  (json_int_t)s[i].memberships, "raw_bytes", (json_int_t)s[i].raw_bytes,
			                  "stored_bytes", (json_int_t)s[i].stored_bytes, "meta_bytes",
			                  (json_int_t)s[i].meta_bytes, "index_bytes",
			                  (json_int_t)s[i].index_bytes));
		for (size_t i = 0; i < na; i++)
			json_array_append_new(ja, json_pack("{s:s,s:I,s:I,s:I,s:I}", "name", a[i].name,
			                                    "messages", (json_int_t)a[i].messages, "raw_bytes",
			                                    (json_int_t)a[i].raw_bytes, "stored_bytes",
			                                    (json_int_t)a[i].stored_bytes, "index_bytes",
			                                    (json_int_t)a[i].index_bytes));
		print_json(json_pack("{s:o,s:o,s:{s:I,s:I,s:I,s:I,s:I}}", "stores", js, "archives", ja,
		                     "total", "messages", (json_int_t)t_msgs, "raw_bytes",
		                     (json_int_t)t_raw, "stored_bytes", (json_int_t)t_stored, "meta_bytes",
		                     (json_int_t)t_meta, "index_bytes", (json_int_t)t_index));
	} else {
		printf("%-5s %-16s %-15s %10s %12s %12s %10s %10s\n", "STORE", "NAME", "STATE", "MESSAGES",
		       "RAW", "STORED", "META", "INDEX");
		for (size_t i = 0; i < ns; i++)
			printf("%-5u %-16s %-15s %10llu %12llu %12llu %10llu %10llu\n", s[i].id, s[i].name,
			       arca_store_state_name(s[i].state), (unsigned long long)s[i].messages,
			       (unsigned long long)s[i].raw_bytes, (unsigned long long)s[i].stored_bytes,
			       (unsigned long long)s[i].meta_bytes, (unsigned long long)s[i].index_bytes);
		printf("total: %llu messages, raw %llu bytes, on disk %llu bytes (%.2fx raw)\n",
		       (unsigned long long)t_msgs, (unsigned long long)t_raw,
		       (unsigned long long)(t_stored + t_meta + t_index),
		       t_raw ? (double)(t_stored + t_meta + t_index) / (double)t_raw : 0.0);
		printf("\n%-30s %10s %12s %12s %10s\n", "ARCHIVE", "MESSAGES", "RAW", "STORED", "INDEX");
		for (size_t i = 0; i < na; i++)
			printf("%-30s %10llu %12llu %12llu %10llu\n", a[i].name,
			       (unsigned long long)a[i].messages, (unsigned long long)a[i].raw_bytes,
			       (unsigned long long)a[i].stored_bytes, (unsigned long long)a[i].index_bytes);
	}
	arca_store_infos_free(s, ns);
	arca_archive_infos_free(a, na);
	arca_instance_close(&in);
	return 0;
}

/* ---------------- maintenance ---------------- */

typedef struct {
	json_t *list;
} damage_list;

static void on_damage(void *ctx, uint32_t store_id, uint64_t msg_id, const char *reason)
{
	damage_list *d = ctx;
	char id[48];
	if (msg_id)
		snprintf(id, sizeof(id), "%u:%llu", store_id, (unsigned long long)msg_id);
	else
		snprintf(id, sizeof(id), "%u:?", store_id);
	json_array_append_new(d->list, json_pack("{s:s,s:s}", "id", id, "reason", reason));
}

static int store_arg(int argc, char **argv, uint64_t *store, bool required, bool *json)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {NULL, 0, NULL, 0}};
	int c;
	*store = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's') {
			if (parse_u64(optarg, store) != 0 || *store == 0 || *store > UINT32_MAX)
				return usage("--store needs a store id");
		} else if (c == 'j' && json) {
			*json = true;
		} else {
			return usage(NULL);
		}
	}
	if (optind != argc)
		return usage("unexpected argument");
	if (required && *store == 0)
		return usage("--store ID is required");
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	uint64_t store, checked = 0, damaged = 0;
	bool json = false;
	arca_instance *in = NULL;
	arca_error err = {0};
	damage_list d = {json_array()};
	int rc;
	if ((rc = store_arg(argc, argv, &store, false, &json)) != 0 ||
	    (rc = open_instance(ARCA_INSTANCE_READONLY, &in)) != 0) {
		json_decref(d.list);
		return rc;
	}
	if (arca_instance_verify(in, (uint32_t)store, on_damage, &d, &checked, &damaged, &err) !=
	    ARCA_OK) {
		json_decref(d.list);
		arca_instance_close(&in);
		return fail(&err);
	}
	if (json) {
		print_json(json_pack("{s:I,s:O}", "checked", (json_int_t)checked, "damaged", d.list));
	} else {
		for (size_t i = 0; i < json_array_size(d.list); i++) {
			json_t *e = json_array_get(d.list, i);
			printf("damaged %s: %s\n", json_string_value(json_object_get(e, "id")),
			       json_string_value(json_object_get(e, "reason")));
		}
		printf("verified %llu messages: %s\n", (unsigned long long)checked,
		       damaged ? "DAMAGE FOUND" : "all intact");
	}
	json_decref(d.list);
	arca_instance_close(&in);
	return damaged ? EXIT_DAMAGED : 0;
}

static int cmd_recreate(int argc, char **argv)
{
	uint64_t store, n = 0;
	arca_instance *in = NULL;
	arca_error err = {0};
	damage_list d = {json_array()};
	int rc;
	if ((rc = store_arg(argc, argv, &store, true, NULL)) != 0 || (rc = open_instance(0, &in)) != 0) {
		json_decref(d.list);
		return rc;
	}
	if (arca_instance_recreate(in, (uint32_t)store, on_damage, &d, &n, &err) != ARCA_OK) {
		json_decref(d.list);
		arca_instance_close(&in);
		return fail(&err);
	}
	for (size_t i = 0; i < json_array_size(d.list); i++) {
		json_t *e = json_array_get(d.list, i);
		printf("skipped damaged record %s: %s\n", json_string_value(json_object_get(e, "id")),
		       json_string_value(json_object_get(e, "reason")));
	}
	printf("store %llu: metadata recreated from the containers: %llu messages; index rebuilt%s\n",
	       (unsigned long long)store, (unsigned long long)n,
	       json_array_size(d.list) ? " (damaged records were skipped, see above)" : "");
	rc = json_array_size(d.list) ? EXIT_DAMAGED : 0;
	json_decref(d.list);
	arca_instance_close(&in);
	return rc;
}

static int cmd_rebuild_index(int argc, char **argv)
{
	uint64_t store, docs = 0;
	arca_instance *in = NULL;
	arca_error err = {0};
	int rc;
	if ((rc = store_arg(argc, argv, &store, false, NULL)) != 0 || (rc = open_instance(0, &in)) != 0)
		return rc;
	if (arca_instance_rebuild_index(in, (uint32_t)store, &docs, &err) != ARCA_OK) {
		arca_instance_close(&in);
		return fail(&err);
	}
	printf("index rebuilt: %llu memberships indexed\n", (unsigned long long)docs);
	arca_instance_close(&in);
	return 0;
}

/* ---------------- users (bootstrap: the first administrator, without the API) ---------------- */

/* One line from stdin, without its line end; empty is refused. */
static int read_password(char *buf, size_t sz)
{
	size_t n;
	if (fgets(buf, (int)sz, stdin) == NULL)
		return -1;
	n = strlen(buf);
	if (n + 1 == sz && buf[n - 1] != '\n')
		return -1; /* too long */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return n > 0 ? 0 : -1;
}

static int open_users(arca_users **u)
{
	arca_error err = {0};
	if (opt_base == NULL || opt_base[0] == '\0')
		return usage("--base DIR (or ARCA_BASE) is required");
	if (arca_users_open(opt_base, u, &err) != ARCA_OK)
		return fail(&err);
	return 0;
}

static int user_create(int argc, char **argv)
{
	static const struct option opts[] = {{"admin", no_argument, NULL, 'a'},
	                                     {"full-name", required_argument, NULL, 'f'},
	                                     {"password-stdin", no_argument, NULL, 'p'},
	                                     {NULL, 0, NULL, 0}};
	const char *full = "";
	bool admin = false, pw_stdin = false;
	char pw[1025];
	arca_users *u = NULL;
	arca_instance *in = NULL;
	arca_error err = {0};
	uint32_t aid;
	int c, rc;
	reset_getopt();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': admin = true; break;
		case 'f': full = optarg; break;
		case 'p': pw_stdin = true; break;
		default: return usage(NULL);
		}
	}
	if (optind + 1 != argc)
		return usage("user create needs exactly one NAME");
	if (pw_stdin && read_password(pw, sizeof(pw)) != 0)
		return usage("--password-stdin: expected one non-empty line (at most 1024 bytes) on stdin");
	/* the user's archive first (it needs the instance key), then the user */
	if ((rc = open_instance(0, &in)) != 0)
		return rc;
	if (arca_instance_archive_id(in, argv[optind], true, &aid, &err) != ARCA_OK) {
		arca_instance_close(&in);
		return fail(&err);
	}
	arca_instance_close(&in);
	if ((rc = open_users(&u)) != 0)
		return rc;
	if (arca_users_create(u, argv[optind], full,
	                      ARCA_PRIV_DEFAULT | (admin ? ARCA_PRIV_ADMIN : 0u), &err) != ARCA_OK ||
	    (pw_stdin && arca_users_set_password(u, argv[optind], pw, &err) != ARCA_OK)) {
		if (err.status != ARCA_ERR_EXISTS)
			arca_users_delete(u, argv[optind], NULL);
		arca_crypto_wipe(pw, sizeof(pw));
		arca_users_close(&u);
		return fail(&err);
	}
	arca_crypto_wipe(pw, sizeof(pw));
	arca_users_close(&u);
	printf("User %s created%s%s.\n", argv[optind], admin ? " (administrator)" : "",
	       pw_stdin ? "" : " without a password (set one with user set-password)");
	return 0;
}

static int cmd_user(int argc, char **argv)
{
	arca_users *u = NULL;
	arca_error err = {0};
	int rc;
	if (argc < 2)
		return usage("user needs a sub-command: create, list, set-password, delete");
	if (strcmp(argv[1], "create") == 0)
		return user_create(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0) {
		arca_user *v;
		size_t n;
		bool json = argc == 3 && strcmp(argv[2], "--json") == 0;
		if (argc > 3 || (argc == 3 && !json))
			return usage("user list [--json]");
		if ((rc = open_users(&u)) != 0)
			return rc;
		if (arca_users_list(u, &v, &n, &err) != ARCA_OK) {
			arca_users_close(&u);
			return fail(&err);
		}
		if (json) {
			json_t *a = json_array();
			for (size_t i = 0; i < n; i++) {
				json_t *p = json_array();
				for (unsigned b = 0; b < 32; b++)
					if ((v[i].privileges & (1u << b)) && arca_priv_name(1u << b))
						json_array_append_new(p, json_string(arca_priv_name(1u << b)));
				json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:b}", "name", v[i].name,
				                                   "full_name", v[i].full_name, "privileges", p,
				                                   "has_password", v[i].has_password));
			}
			print_json(a);
		} else {
			for (size_t i = 0; i < n; i++) {
				printf("%-30s", v[i].name);
				for (unsigned b = 0; b < 32; b++)
					if ((v[i].privileges & (1u << b)) && arca_priv_name(1u << b))
						printf(" %s", arca_priv_name(1u << b));
				printf("%s\n", v[i].has_password ? "" : "  (no password)");
			}
		}
		arca_users_list_free(v, n);
		arca_users_close(&u);
		return 0;
	}
	if (strcmp(argv[1], "set-password") == 0) {
		char pw[1025];
		if (argc != 4 || strcmp(argv[3], "--password-stdin") != 0)
			return usage("user set-password NAME --password-stdin");
		if (read_password(pw, sizeof(pw)) != 0)
			return usage("--password-stdin: expected one non-empty line (at most 1024 bytes) on stdin");
		if ((rc = open_users(&u)) != 0)
			return rc;
		rc = arca_users_set_password(u, argv[2], pw, &err) == ARCA_OK ? 0 : fail(&err);
		arca_crypto_wipe(pw, sizeof(pw));
		arca_users_close(&u);
		if (rc == 0)
			printf("Password of %s set.\n", argv[2]);
		return rc;
	}
	if (strcmp(argv[1], "delete") == 0) {
		if (argc != 3)
			return usage("user delete NAME");
		if ((rc = open_users(&u)) != 0)
			return rc;
		rc = arca_users_delete(u, argv[2], &err) == ARCA_OK ? 0 : fail(&err);
		arca_users_close(&u);
		if (rc == 0)
			printf("User %s deleted (the archive %s stays).\n", argv[2], argv[2]);
		return rc;
	}
	return usage("unknown user sub-command");
}

/* ---------------- main ---------------- */

typedef struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} command;

static const command commands[] = {
    {"init", cmd_init},         {"recover-key", cmd_recover_key}, {"store", cmd_store},
    {"import", cmd_import},     {"search", cmd_search},           {"search-bench", cmd_search_bench},
    {"get", cmd_get},           {"export", cmd_export},           {"archives", cmd_archives},
    {"folders", cmd_folders},   {"stats", cmd_stats},             {"verify", cmd_verify},
    {"recreate", cmd_recreate}, {"rebuild-index", cmd_rebuild_index},
    {"user", cmd_user},
};

int main(int argc, char **argv)
{
	int i = 1;
	opt_base = getenv("ARCA_BASE");
	opt_key_file = getenv("ARCA_KEY_FILE");
	signal(SIGPIPE, SIG_IGN);
	/* global options before the command */
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
			opt_base = argv[i + 1];
		else if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
			opt_key_file = argv[i + 1];
		else
			return usage("unknown global option");
		i += 2;
	}
	if (i >= argc)
		return usage(NULL);
	/* global options may also follow the command: pull them out */
	{
		int w = i + 1;
		for (int r = i + 1; r < argc; r++) {
			if ((strcmp(argv[r], "--base") == 0 || strcmp(argv[r], "--key-file") == 0) &&
			    r + 1 < argc) {
				if (argv[r][2] == 'b')
					opt_base = argv[r + 1];
				else
					opt_key_file = argv[r + 1];
				r++;
				continue;
			}
			argv[w++] = argv[r];
		}
		argc = w;
	}
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		if (strcmp(argv[i], commands[c].name) == 0) {
			reset_getopt();
			return commands[c].fn(argc - i, argv + i);
		}
	}
	fprintf(stderr, "arcactl: unknown command \"%s\"\n", argv[i]);
	return usage(NULL);
}

#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static arca_log_level log_min = ARCA_LOG_INFO;

void arca_log_set_level(arca_log_level min)
{
	log_min = min;
}

void arca_log(arca_log_level lvl, const char *module, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	char line[2048];
	int n;
	va_list ap;
	if (lvl < log_min)
		return;
	/* one line formatted first and written with one call: several threads log at once */
	n = snprintf(line, sizeof(line), "arca: %s %s: ", names[lvl], module);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n] = '\n';
	fwrite(line, 1, (size_t)n + 1, stderr);
}

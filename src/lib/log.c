#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>

static arca_log_level log_min = ARCA_LOG_INFO;

void arca_log_set_level(arca_log_level min)
{
	log_min = min;
}

void arca_log(arca_log_level lvl, const char *module, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	va_list ap;
	if (lvl < log_min)
		return;
	fprintf(stderr, "arca: %s %s: ", names[lvl], module);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

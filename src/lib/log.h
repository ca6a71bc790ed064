/* Structured log lines on stderr: "arca: LEVEL module: message". Never log secrets. */
#ifndef ARCA_LIB_LOG_H
#define ARCA_LIB_LOG_H

typedef enum { ARCA_LOG_DEBUG, ARCA_LOG_INFO, ARCA_LOG_WARN, ARCA_LOG_ERROR } arca_log_level;

void arca_log_set_level(arca_log_level min);
void arca_log(arca_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

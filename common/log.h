/*
 * log — one leveled, structured logger.
 *
 * Each record is a message plus key/value string pairs, terminated by NULL:
 *     log_info("sidecar ready", "slug", slug, "port", port_str, NULL);
 * Records go to stderr (or a file set with log_set_output) as logfmt, or as
 * one JSON object per line when BOTTLE_LOG_FORMAT=json. The threshold comes
 * from BOTTLE_LOG_LEVEL (error|warn|info|debug; default warn). Never log a
 * secret: callers pass values through the redactor first.
 */
#ifndef BOTTLE_COMMON_LOG_H
#define BOTTLE_COMMON_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Reads BOTTLE_LOG_LEVEL and BOTTLE_LOG_FORMAT; name is the program name. */
void log_init(const char *program);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_json(bool json);
void log_set_output(FILE *out);
/* Parses "error|warn|info|debug"; returns -1 for anything else. */
int log_level_parse(const char *s);
bool log_enabled(enum log_level level);

void log_record(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#define log_error(...) log_record(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_record(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_record(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_record(LOG_LVL_DEBUG, __VA_ARGS__)

#endif

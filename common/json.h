/*
 * json — the one JSON layer, over cJSON. Small helpers so callers build and
 * read documents without repeating cJSON's boilerplate or its NULL checks.
 */
#ifndef BOTTLE_COMMON_JSON_H
#define BOTTLE_COMMON_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "common/buf.h"
#include "common/err.h"

/* Adds a string member; a NULL value adds JSON null. */
void json_add_str(cJSON *obj, const char *key, const char *value);
void json_add_num(cJSON *obj, const char *key, double value);
void json_add_bool(cJSON *obj, const char *key, bool value);
/* Adds an array of strings built from a NULL-terminated or counted list. */
cJSON *json_add_str_array(cJSON *obj, const char *key, char *const *items, size_t n);
/* Pretty (two-space indented, stable key order as inserted) text with a final newline. */
char *json_to_text(const cJSON *doc, bool pretty);
/* Parses text; on error fills err with the byte offset. */
cJSON *json_parse(const char *text, size_t len, const char *what, struct bottle_err *err);
/* Typed getters: NULL/false/default when absent or of another type. */
const char *json_get_str(const cJSON *obj, const char *key);
bool json_get_bool(const cJSON *obj, const char *key, bool dflt);
double json_get_num(const cJSON *obj, const char *key, double dflt);

#endif

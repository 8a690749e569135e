/*
 * json — the one JSON layer, over cJSON. Small helpers so callers build and
 * read documents without repeating cJSON's boilerplate or its NULL checks,
 * and the one string escaper for text written as JSON without a document
 * (log lines, local answers, DLP's encodings of a secret); no other module
 * escapes JSON strings by hand.
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

/* Flags of json_escape_append. */
#define JSON_ESCAPE_SLASH 0x1u /* '/' as "\/" too, as some writers do */

/*
 * Appends s[0..n) as the inside of a JSON string (no quotes): '"' and '\\'
 * backslashed, newline, carriage return and tab as \n \r \t, other control
 * bytes as \u00XX. Every other byte, UTF-8 included, is copied as it is.
 */
void json_escape_append(struct buf *b, const char *s, size_t n, unsigned flags);

#endif

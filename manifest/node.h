/*
 * node — the positioned document tree every manifest, settings file and
 * sidecar config is validated from.
 *
 * YAML frontmatter (through libyaml, strictly: no anchors, aliases, tags,
 * duplicate keys or non-scalar keys) and JSON (through cJSON) both become the
 * same tree, so one validator serves the manifest loader and the sidecar.
 * Every node remembers file:line:col (1-based) so errors can point at it.
 */
#ifndef BOTTLE_MANIFEST_NODE_H
#define BOTTLE_MANIFEST_NODE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum node_kind { NODE_NULL, NODE_SCALAR, NODE_SEQ, NODE_MAP };

struct node_pos {
    const char *file; /* owned by the node_doc */
    unsigned line;    /* 1-based; 0 when unknown (e.g. JSON) */
    unsigned col;     /* 1-based */
};

struct node;

struct node_pair {
    char *key;
    struct node_pos key_pos;
    struct node *value;
};

struct node {
    enum node_kind kind;
    struct node_pos pos;
    char *scalar; /* NODE_SCALAR: the text */
    bool plain;   /* NODE_SCALAR: unquoted (only plain scalars are bools, numbers, null) */
    struct node **items;
    size_t n_items;
    struct node_pair *pairs;
    size_t n_pairs;
};

struct node_doc {
    char *file;        /* display path used in positions */
    struct node *root; /* NODE_MAP for a document with content; NODE_NULL when empty */
};

/*
 * Splits "---\n<yaml>\n---\n<body>" frontmatter. A file without a leading
 * "---" line is an error. yaml_first_line is the file line the YAML starts on.
 */
int frontmatter_split(const char *file, const char *text, size_t len, const char **yaml,
                      size_t *yaml_len, unsigned *yaml_first_line, const char **body,
                      size_t *body_len, struct bottle_err *err);

/*
 * Parses one strict YAML document. first_line shifts reported lines (the
 * frontmatter's offset in its file). The root must be a mapping (or empty).
 */
int yaml_parse_doc(const char *file, const char *text, size_t len, unsigned first_line,
                   struct node_doc *out, struct bottle_err *err);

/* Builds a tree from JSON; positions carry the file and line 0. */
int node_doc_from_json(const char *file, const cJSON *json, struct node_doc *out,
                       struct bottle_err *err);

void node_doc_free(struct node_doc *doc);

/* Lookups and typed reads. Every error is "manifest: file:line:col: what: ...". */
const struct node *node_map_get(const struct node *map, const char *key);
const struct node_pair *node_map_pair(const struct node *map, const char *key);
/* Rejects keys not in allowed (NULL-terminated), listing the accepted ones. */
int node_check_keys(const struct node *map, const char *what, const char *const allowed[],
                    struct bottle_err *err);
int node_want_map(const struct node *n, const char *what, struct bottle_err *err);
int node_want_seq(const struct node *n, const char *what, struct bottle_err *err);
/* A string scalar, non-empty unless allow_empty. */
int node_get_string(const struct node *n, const char *what, bool allow_empty, char **out,
                    struct bottle_err *err);
/* Plain true/false only. */
int node_get_bool(const struct node *n, const char *what, bool *out, struct bottle_err *err);
/* Plain decimal digits, no sign, fits in uint64. */
int node_get_u64(const struct node *n, const char *what, uint64_t *out, struct bottle_err *err);
/* A sequence of non-empty strings. Returns count, items in *out (strv-style, NULL-terminated). */
int node_get_string_list(const struct node *n, const char *what, char ***out, size_t *count,
                         struct bottle_err *err);

/* Manifest-kind error at a position: "manifest: FILE:LINE:COL: message". */
int node_error(struct bottle_err *err, const struct node_pos *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *node_kind_name(enum node_kind kind);
/* What a value is, for "expected X, found Y": "a string", "a number", "a list", ... */
const char *node_describe(const struct node *n);

#endif

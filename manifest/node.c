/*
 * node — strict YAML and JSON into one positioned tree, plus the typed reads
 * the validators share.
 *
 * The YAML side walks libyaml's event stream and refuses every feature that
 * would let a manifest mean something other than what it plainly says:
 * anchors, aliases, tags, duplicate keys, non-scalar keys, several
 * documents. Nothing here knows the manifest schema; it only reports where a
 * value is and what kind of value it is.
 */
#include "manifest/node.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/buf.h"

/* Deeper nesting than any manifest needs; it also bounds the recursive free. */
#define NODE_MAX_DEPTH 64
/* Bounds the quadratic duplicate-key check; real manifests have a few dozen. */
#define NODE_MAX_KEYS 10000

/* ---- errors ------------------------------------------------------------- */

int node_error(struct bottle_err *err, const struct node_pos *pos, const char *fmt, ...)
{
    char msg[BOTTLE_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!pos || !pos->file)
        return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL, "manifest: %s", msg);
    if (pos->line == 0)
        return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL, "manifest: %s: %s", pos->file, msg);
    return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL, "manifest: %s:%u:%u: %s", pos->file,
                        pos->line, pos->col, msg);
}

const char *node_kind_name(enum node_kind kind)
{
    switch (kind) {
    case NODE_NULL:
        return "null";
    case NODE_SCALAR:
        return "scalar";
    case NODE_SEQ:
        return "sequence";
    case NODE_MAP:
        return "mapping";
    }
    return "unknown";
}

/* ---- scalar classification ---------------------------------------------- */

static bool is_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* What YAML would read as a number: ints, floats, hex/octal, .inf, .nan. */
static bool looks_numeric(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (strcmp(p, ".inf") == 0 || strcmp(p, ".Inf") == 0 || strcmp(p, ".INF") == 0)
        return true;
    if (p == s && (strcmp(p, ".nan") == 0 || strcmp(p, ".NaN") == 0 || strcmp(p, ".NAN") == 0))
        return true;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o') && p[2]) {
        for (const char *q = p + 2; *q; q++)
            if (!((*q >= '0' && *q <= '9') || (p[1] == 'x' && strchr("abcdefABCDEF", *q))))
                return false;
        return true;
    }
    bool digits = false;
    while (*p >= '0' && *p <= '9') {
        p++;
        digits = true;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits = true;
        }
    }
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static bool is_plain_bool(const struct node *n)
{
    return n->kind == NODE_SCALAR && n->plain &&
           (strcmp(n->scalar, "true") == 0 || strcmp(n->scalar, "false") == 0);
}

static bool is_plain_number(const struct node *n)
{
    return n->kind == NODE_SCALAR && n->plain && looks_numeric(n->scalar);
}

/* "a string", "a number", ... for "expected X, found Y" messages. */
const char *node_describe(const struct node *n)
{
    if (!n)
        return "nothing";
    switch (n->kind) {
    case NODE_NULL:
        return "an empty value";
    case NODE_SCALAR:
        if (is_plain_bool(n))
            return "a boolean";
        if (is_plain_number(n))
            return "a number";
        return "a string";
    case NODE_SEQ:
        return "a list";
    case NODE_MAP:
        return "a mapping";
    }
    return "an unknown value";
}

static const struct node_pos *pos_of(const struct node *n)
{
    return n ? &n->pos : NULL;
}

/* ---- tree construction and release --------------------------------------- */

static struct node *node_new(enum node_kind kind, const char *file, unsigned line, unsigned col)
{
    struct node *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->pos.file = file;
    n->pos.line = line;
    n->pos.col = col;
    return n;
}

static void node_free(struct node *n)
{
    if (!n)
        return;
    free(n->scalar);
    for (size_t i = 0; i < n->n_items; i++)
        node_free(n->items[i]);
    free(n->items);
    for (size_t i = 0; i < n->n_pairs; i++) {
        free(n->pairs[i].key);
        node_free(n->pairs[i].value);
    }
    free(n->pairs);
    free(n);
}

void node_doc_free(struct node_doc *doc)
{
    if (!doc)
        return;
    node_free(doc->root);
    free(doc->file);
    doc->root = NULL;
    doc->file = NULL;
}

static void seq_append(struct node *seq, struct node *item)
{
    seq->items = xrealloc(seq->items, (seq->n_items + 1) * sizeof(*seq->items));
    seq->items[seq->n_items++] = item;
}

static void map_append(struct node *map, char *key, struct node_pos key_pos, struct node *value)
{
    map->pairs = xrealloc(map->pairs, (map->n_pairs + 1) * sizeof(*map->pairs));
    struct node_pair *p = &map->pairs[map->n_pairs++];
    p->key = key;
    p->key_pos = key_pos;
    p->value = value;
}

/* ---- frontmatter ---------------------------------------------------------- */

/* Length of the line at p (without its terminator) and where the next one starts. */
static size_t line_span(const char *p, const char *end, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *next = nl ? nl + 1 : end;
    return (size_t)((nl ? nl : end) - p);
}

/* "---" with optional trailing blanks (and the \r of a CRLF file). */
static bool is_marker_line(const char *p, size_t n)
{
    if (n < 3 || memcmp(p, "---", 3) != 0)
        return false;
    for (size_t i = 3; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

int frontmatter_split(const char *file, const char *text, size_t len, const char **yaml,
                      size_t *yaml_len, unsigned *yaml_first_line, const char **body,
                      size_t *body_len, struct bottle_err *err)
{
    struct node_pos at = {file ? file : "<input>", 1, 1};
    const char *p = text ? text : "";
    const char *end = p + (text ? len : 0);
    if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    const char *next;
    size_t n = line_span(p, end, &next);
    if (p == end || !is_marker_line(p, n))
        return node_error(err, &at,
                          "missing frontmatter: the file must start with a '---' line, then the "
                          "YAML settings, then a closing '---' line");
    const char *start = next;
    for (const char *q = start; q < end; q = next) {
        n = line_span(q, end, &next);
        if (is_marker_line(q, n)) {
            *yaml = start;
            *yaml_len = (size_t)(q - start);
            *yaml_first_line = 2;
            *body = next;
            *body_len = (size_t)(end - next);
            return 0;
        }
    }
    return node_error(err, &at,
                      "unterminated frontmatter: no closing '---' line after the opening one");
}

/* ---- YAML ------------------------------------------------------------------ */

struct frame {
    struct node *node;
    char *key; /* NODE_MAP: the key waiting for its value */
    struct node_pos key_pos;
};

struct yaml_ctx {
    const char *file;
    unsigned base; /* file line of the YAML's first line */
    struct frame stack[NODE_MAX_DEPTH];
    size_t depth;
    struct node *root;
    bool have_root;
    int documents;
    struct bottle_err *err;
};

static struct node_pos mark_pos(const struct yaml_ctx *c, yaml_mark_t m)
{
    struct node_pos pos = {c->file, (unsigned)m.line + c->base, (unsigned)m.column + 1};
    return pos;
}

/* Attaches a finished or opening node to its parent (or makes it the root). */
static void attach(struct yaml_ctx *c, struct node *n)
{
    if (c->depth == 0) {
        c->root = n;
        c->have_root = true;
        return;
    }
    struct frame *top = &c->stack[c->depth - 1];
    if (top->node->kind == NODE_SEQ) {
        seq_append(top->node, n);
    } else {
        map_append(top->node, top->key, top->key_pos, n);
        top->key = NULL;
    }
}

static bool expecting_key(const struct yaml_ctx *c)
{
    if (c->depth == 0)
        return false;
    const struct frame *top = &c->stack[c->depth - 1];
    return top->node->kind == NODE_MAP && top->key == NULL;
}

static int reject_anchor_tag(struct yaml_ctx *c, yaml_mark_t m, const yaml_char_t *anchor,
                             const yaml_char_t *tag)
{
    struct node_pos pos = mark_pos(c, m);
    if (anchor)
        return node_error(c->err, &pos, "anchors are not allowed ('&%s'); write the value out",
                          (const char *)anchor);
    if (tag)
        return node_error(c->err, &pos, "tags are not allowed ('%s'); remove the tag",
                          (const char *)tag);
    return 0;
}

static int on_scalar(struct yaml_ctx *c, const yaml_event_t *ev)
{
    const char *value = (const char *)ev->data.scalar.value;
    size_t length = ev->data.scalar.length;
    struct node_pos pos = mark_pos(c, ev->start_mark);
    if (memchr(value, '\0', length))
        return node_error(c->err, &pos, "NUL characters are not allowed in values");
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

    if (expecting_key(c)) {
        struct frame *top = &c->stack[c->depth - 1];
        if (length == 0)
            return node_error(c->err, &pos, "empty keys are not allowed");
        if (top->node->n_pairs == NODE_MAX_KEYS)
            return node_error(c->err, &pos, "more than %d keys in one mapping", NODE_MAX_KEYS);
        for (size_t i = 0; i < top->node->n_pairs; i++) {
            const struct node_pair *p = &top->node->pairs[i];
            if (strcmp(p->key, value) == 0)
                return node_error(c->err, &pos, "duplicate key '%s' (first defined at line %u)",
                                  value, p->key_pos.line);
        }
        top->key = xstrndup(value, length);
        top->key_pos = pos;
        return 0;
    }

    struct node *n;
    if (plain && (length == 0 || strcmp(value, "null") == 0 || strcmp(value, "~") == 0)) {
        n = node_new(NODE_NULL, c->file, pos.line, pos.col);
    } else {
        n = node_new(NODE_SCALAR, c->file, pos.line, pos.col);
        n->scalar = xstrndup(value, length);
        n->plain = plain;
    }
    attach(c, n);
    return 0;
}

static int on_collection_start(struct yaml_ctx *c, const yaml_event_t *ev, enum node_kind kind)
{
    struct node_pos pos = mark_pos(c, ev->start_mark);
    if (expecting_key(c))
        return node_error(c->err, &pos, "keys must be plain strings, found a %s used as a key",
                          kind == NODE_MAP ? "mapping" : "list");
    if (c->depth == NODE_MAX_DEPTH)
        return node_error(c->err, &pos, "nesting deeper than %d levels is not allowed",
                          NODE_MAX_DEPTH);
    struct node *n = node_new(kind, c->file, pos.line, pos.col);
    attach(c, n);
    struct frame *f = &c->stack[c->depth++];
    f->node = n;
    f->key = NULL;
    return 0;
}

static int on_event(struct yaml_ctx *c, const yaml_event_t *ev)
{
    struct node_pos pos = mark_pos(c, ev->start_mark);
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++c->documents > 1)
            return node_error(c->err, &pos,
                              "multiple documents are not allowed; remove the extra '---' or "
                              "'...' line");
        if (ev->data.document_start.tag_directives.start !=
            ev->data.document_start.tag_directives.end)
            return node_error(c->err, &pos, "tags are not allowed (%%TAG directive)");
        return 0;
    case YAML_ALIAS_EVENT:
        return node_error(c->err, &pos, "aliases are not allowed ('*%s'); write the value out",
                          (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT: {
        int rc = reject_anchor_tag(c, ev->start_mark, ev->data.scalar.anchor, ev->data.scalar.tag);
        return rc < 0 ? rc : on_scalar(c, ev);
    }
    case YAML_SEQUENCE_START_EVENT: {
        int rc = reject_anchor_tag(c, ev->start_mark, ev->data.sequence_start.anchor,
                                   ev->data.sequence_start.tag);
        return rc < 0 ? rc : on_collection_start(c, ev, NODE_SEQ);
    }
    case YAML_MAPPING_START_EVENT: {
        int rc = reject_anchor_tag(c, ev->start_mark, ev->data.mapping_start.anchor,
                                   ev->data.mapping_start.tag);
        return rc < 0 ? rc : on_collection_start(c, ev, NODE_MAP);
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (c->depth > 0) {
            struct frame *top = &c->stack[--c->depth];
            free(top->key);
            top->key = NULL;
        }
        return 0;
    default:
        return 0;
    }
}

static int parser_error(struct yaml_ctx *c, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "malformed document";
    struct node_pos pos = mark_pos(c, parser->problem_mark);
    if (parser->error == YAML_READER_ERROR) {
        pos = mark_pos(c, parser->mark);
        return node_error(c->err, &pos, "invalid YAML: %s", problem);
    }
    if (parser->context)
        return node_error(c->err, &pos, "invalid YAML: %s %s", problem, parser->context);
    return node_error(c->err, &pos, "invalid YAML: %s", problem);
}

int yaml_parse_doc(const char *file, const char *text, size_t len, unsigned first_line,
                   struct node_doc *out, struct bottle_err *err)
{
    out->file = xstrdup(file ? file : "<input>");
    out->root = NULL;

    struct yaml_ctx c;
    memset(&c, 0, sizeof(c));
    c.file = out->file;
    c.base = first_line ? first_line : 1;
    c.err = err;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        node_doc_free(out);
        return err_set_kind(err, ERR_KIND_MANIFEST, ENOMEM, "manifest: out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""),
                                 text ? len : 0);

    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&c, &parser);
            break;
        }
        bool done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&c, &ev);
        yaml_event_delete(&ev);
        if (rc < 0 || done)
            break;
    }
    yaml_parser_delete(&parser);
    for (size_t i = 0; i < c.depth; i++)
        free(c.stack[i].key);

    if (rc == 0 && c.root && c.root->kind != NODE_MAP && c.root->kind != NODE_NULL)
        rc = node_error(err, &c.root->pos,
                        "the document must be a mapping of keys to values, found %s",
                        node_describe(c.root));
    if (rc < 0) {
        node_free(c.root);
        node_doc_free(out);
        return rc;
    }
    if (!c.root)
        c.root = node_new(NODE_NULL, out->file, c.base, 1);
    out->root = c.root;
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static int json_to_node(const char *file, const cJSON *j, int depth, struct node **out,
                        struct bottle_err *err)
{
    struct node_pos pos = {file, 0, 0};
    if (depth > NODE_MAX_DEPTH)
        return node_error(err, &pos, "nesting deeper than %d levels is not allowed",
                          NODE_MAX_DEPTH);
    struct node *n = NULL;
    if (cJSON_IsNull(j)) {
        n = node_new(NODE_NULL, file, 0, 0);
    } else if (cJSON_IsBool(j)) {
        n = node_new(NODE_SCALAR, file, 0, 0);
        n->scalar = xstrdup(cJSON_IsTrue(j) ? "true" : "false");
        n->plain = true;
    } else if (cJSON_IsNumber(j)) {
        n = node_new(NODE_SCALAR, file, 0, 0);
        double v = j->valuedouble;
        if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(long long)v)
            n->scalar = xasprintf("%lld", (long long)v);
        else
            n->scalar = xasprintf("%.17g", v);
        n->plain = true;
    } else if (cJSON_IsString(j)) {
        n = node_new(NODE_SCALAR, file, 0, 0);
        n->scalar = xstrdup(j->valuestring);
    } else if (cJSON_IsArray(j)) {
        n = node_new(NODE_SEQ, file, 0, 0);
        for (const cJSON *it = j->child; it; it = it->next) {
            struct node *child;
            int rc = json_to_node(file, it, depth + 1, &child, err);
            if (rc < 0) {
                node_free(n);
                return rc;
            }
            seq_append(n, child);
        }
    } else if (cJSON_IsObject(j)) {
        n = node_new(NODE_MAP, file, 0, 0);
        for (const cJSON *it = j->child; it; it = it->next) {
            const char *key = it->string ? it->string : "";
            if (!*key) {
                node_free(n);
                return node_error(err, &pos, "empty keys are not allowed");
            }
            if (n->n_pairs == NODE_MAX_KEYS) {
                node_free(n);
                return node_error(err, &pos, "more than %d keys in one mapping", NODE_MAX_KEYS);
            }
            if (node_map_pair(n, key)) {
                node_free(n);
                return node_error(err, &pos, "duplicate key '%s'", key);
            }
            struct node *child;
            int rc = json_to_node(file, it, depth + 1, &child, err);
            if (rc < 0) {
                node_free(n);
                return rc;
            }
            map_append(n, xstrdup(key), pos, child);
        }
    } else {
        return node_error(err, &pos, "unsupported JSON value");
    }
    *out = n;
    return 0;
}

int node_doc_from_json(const char *file, const cJSON *json, struct node_doc *out,
                       struct bottle_err *err)
{
    out->file = xstrdup(file ? file : "<input>");
    out->root = NULL;
    struct node *root = NULL;
    int rc = json ? json_to_node(out->file, json, 1, &root, err) : 0;
    if (rc == 0 && root && root->kind != NODE_MAP && root->kind != NODE_NULL) {
        struct node_pos pos = {out->file, 0, 0};
        rc = node_error(err, &pos, "the document must be a JSON object, found %s",
                        node_describe(root));
    }
    if (rc < 0) {
        node_free(root);
        node_doc_free(out);
        return rc;
    }
    out->root = root ? root : node_new(NODE_NULL, out->file, 0, 0);
    return 0;
}

/* ---- lookups and typed reads ----------------------------------------------- */

const struct node_pair *node_map_pair(const struct node *map, const char *key)
{
    if (!map || map->kind != NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n_pairs; i++)
        if (strcmp(map->pairs[i].key, key) == 0)
            return &map->pairs[i];
    return NULL;
}

const struct node *node_map_get(const struct node *map, const char *key)
{
    const struct node_pair *p = node_map_pair(map, key);
    return p ? p->value : NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int node_check_keys(const struct node *map, const char *what, const char *const allowed[],
                    struct bottle_err *err)
{
    if (!map || map->kind != NODE_MAP)
        return 0;
    for (size_t i = 0; i < map->n_pairs; i++) {
        const struct node_pair *p = &map->pairs[i];
        size_t n = 0;
        bool known = false;
        for (; allowed[n]; n++)
            if (strcmp(allowed[n], p->key) == 0)
                known = true;
        if (known)
            continue;
        const char **sorted = xcalloc(n + 1, sizeof(*sorted));
        memcpy(sorted, allowed, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_str);
        struct buf list = BUF_INIT;
        for (size_t k = 0; k < n; k++)
            buf_printf(&list, "%s%s", k ? ", " : "", sorted[k]);
        int rc = node_error(err, &p->key_pos, "unknown key '%s' in %s; accepted: %s", p->key, what,
                            n ? list.data : "(none)");
        buf_free(&list);
        free(sorted);
        return rc;
    }
    return 0;
}

int node_want_map(const struct node *n, const char *what, struct bottle_err *err)
{
    if (n && n->kind == NODE_MAP)
        return 0;
    return node_error(err, pos_of(n), "%s: expected a mapping, found %s", what, node_describe(n));
}

int node_want_seq(const struct node *n, const char *what, struct bottle_err *err)
{
    if (n && n->kind == NODE_SEQ)
        return 0;
    return node_error(err, pos_of(n), "%s: expected a list, found %s", what, node_describe(n));
}

int node_get_string(const struct node *n, const char *what, bool allow_empty, char **out,
                    struct bottle_err *err)
{
    *out = NULL;
    if (n && n->kind == NODE_NULL) {
        if (!allow_empty)
            return node_error(err, &n->pos, "%s: must not be empty", what);
        *out = xstrdup("");
        return 0;
    }
    if (!n || n->kind != NODE_SCALAR)
        return node_error(err, pos_of(n), "%s: expected a string, found %s", what,
                          node_describe(n));
    if (is_plain_bool(n) || is_plain_number(n))
        return node_error(err, &n->pos,
                          "%s: expected a string, found %s (quote it to use it as text: \"%s\")",
                          what, node_describe(n), n->scalar);
    if (!allow_empty && n->scalar[0] == '\0')
        return node_error(err, &n->pos, "%s: must not be empty", what);
    *out = xstrdup(n->scalar);
    return 0;
}

int node_get_bool(const struct node *n, const char *what, bool *out, struct bottle_err *err)
{
    if (n && is_plain_bool(n)) {
        *out = strcmp(n->scalar, "true") == 0;
        return 0;
    }
    return node_error(err, pos_of(n), "%s: expected true or false, found %s", what,
                      node_describe(n));
}

int node_get_u64(const struct node *n, const char *what, uint64_t *out, struct bottle_err *err)
{
    if (!n || n->kind != NODE_SCALAR || !n->plain || !is_digits(n->scalar))
        return node_error(err, pos_of(n), "%s: expected a whole number, found %s", what,
                          node_describe(n));
    uint64_t v = 0;
    for (const char *p = n->scalar; *p; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return node_error(err, &n->pos, "%s: number %s is too large", what, n->scalar);
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int node_get_string_list(const struct node *n, const char *what, char ***out, size_t *count,
                         struct bottle_err *err)
{
    *out = NULL;
    *count = 0;
    if (!n || n->kind != NODE_SEQ)
        return node_error(err, pos_of(n), "%s: expected a list of strings, found %s", what,
                          node_describe(n));
    char **items = xcalloc(n->n_items + 1, sizeof(*items));
    for (size_t i = 0; i < n->n_items; i++) {
        char *item_what = xasprintf("%s[%zu]", what, i);
        int rc = node_get_string(n->items[i], item_what, false, &items[i], err);
        free(item_what);
        if (rc < 0) {
            for (size_t k = 0; k < i; k++)
                free(items[k]);
            free(items);
            return rc;
        }
    }
    *out = items;
    *count = n->n_items;
    return (int)n->n_items;
}

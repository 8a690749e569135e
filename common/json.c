#include "common/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void json_add_str(cJSON *obj, const char *key, const char *value)
{
    if (value)
        cJSON_AddItemToObject(obj, key, cJSON_CreateString(value));
    else
        cJSON_AddItemToObject(obj, key, cJSON_CreateNull());
}

void json_add_num(cJSON *obj, const char *key, double value)
{
    cJSON_AddItemToObject(obj, key, cJSON_CreateNumber(value));
}

void json_add_bool(cJSON *obj, const char *key, bool value)
{
    cJSON_AddItemToObject(obj, key, cJSON_CreateBool(value));
}

cJSON *json_add_str_array(cJSON *obj, const char *key, char *const *items, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; items && i < n && items[i]; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(items[i]));
    cJSON_AddItemToObject(obj, key, arr);
    return arr;
}

/* cJSON's own pretty printer uses tabs; this one indents with two spaces. */
static void print_value(struct buf *b, const cJSON *v, int depth, bool pretty);

static void indent(struct buf *b, int depth)
{
    for (int i = 0; i < depth; i++)
        buf_append(b, "  ", 2);
}

static void print_string(struct buf *b, const char *s)
{
    char *esc = cJSON_PrintUnformatted(&(cJSON){.type = cJSON_String, .valuestring = (char *)s});
    buf_append_str(b, esc ? esc : "\"\"");
    cJSON_free(esc);
}

static void print_value(struct buf *b, const cJSON *v, int depth, bool pretty)
{
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        bool obj = cJSON_IsObject(v);
        buf_append_char(b, obj ? '{' : '[');
        const cJSON *c = v->child;
        if (!c) {
            buf_append_char(b, obj ? '}' : ']');
            return;
        }
        for (; c; c = c->next) {
            if (pretty) {
                buf_append_char(b, '\n');
                indent(b, depth + 1);
            }
            if (obj) {
                print_string(b, c->string);
                buf_append_str(b, pretty ? ": " : ":");
            }
            print_value(b, c, depth + 1, pretty);
            if (c->next)
                buf_append_char(b, ',');
        }
        if (pretty) {
            buf_append_char(b, '\n');
            indent(b, depth);
        }
        buf_append_char(b, obj ? '}' : ']');
        return;
    }
    if (cJSON_IsString(v)) {
        print_string(b, v->valuestring);
        return;
    }
    char *t = cJSON_PrintUnformatted(v);
    buf_append_str(b, t ? t : "null");
    cJSON_free(t);
}

char *json_to_text(const cJSON *doc, bool pretty)
{
    struct buf b = BUF_INIT;
    print_value(&b, doc, 0, pretty);
    buf_append_char(&b, '\n');
    return buf_steal(&b);
}

cJSON *json_parse(const char *text, size_t len, const char *what, struct bottle_err *err)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!doc) {
        size_t off = end ? (size_t)(end - text) : 0;
        err_set(err, EINVAL, "%s: invalid JSON near byte %zu", what, off);
    }
    return doc;
}

const char *json_get_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool json_get_bool(const cJSON *obj, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

double json_get_num(const cJSON *obj, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

void json_escape_append(struct buf *b, const char *s, size_t n, unsigned flags)
{
    static const char hex[] = "0123456789abcdef";
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && (c != '/' || !(flags & JSON_ESCAPE_SLASH)))
            continue;
        if (i > from)
            buf_append(b, s + from, i - from);
        from = i + 1;
        char esc[6] = {'\\', (char)c};
        size_t len = 2;
        if (c == '\n')
            esc[1] = 'n';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c == '\t')
            esc[1] = 't';
        else if (c < 0x20) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        buf_append(b, esc, len);
    }
    if (n > from)
        buf_append(b, s + from, n - from);
}

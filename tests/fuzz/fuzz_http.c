/*
 * libFuzzer target for the sidecar's HTTP parser: request and response heads
 * and the chunked decoder. Besides "no crash, no sanitizer report" it checks
 * the properties the proxy relies on: feeding in pieces gives the answer of
 * feeding at once, and a head we re-serialize parses back to the same
 * framing. The first input byte picks the piece size, HEAD or not, and
 * tight limits (so the limit paths are reached by short inputs).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "sidecar/http.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static bool same_error(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_slice(struct http_slice a, const char *abuf, struct http_slice b, const char *bbuf,
                       size_t len)
{
    if (a.len != b.len || (a.len && memcmp(a.ptr, b.ptr, a.len) != 0))
        return false;
    uintptr_t ao = (uintptr_t)a.ptr - (uintptr_t)abuf, bo = (uintptr_t)b.ptr - (uintptr_t)bbuf;
    return a.len == 0 || ((ao < len || bo < len) ? ao == bo : a.ptr == b.ptr);
}

/* Each step gets a fresh copy of the prefix, so a parser that kept a pointer would be caught. */
static ssize_t parse_request_in_steps(const uint8_t *data, size_t size, size_t step,
                                      const struct http_limits *limits, struct http_request *r,
                                      char **last)
{
    ssize_t rc = 0;
    char *prev = NULL;
    http_request_reset(r);
    for (size_t n = step < size ? step : size; rc == 0; n = n + step < size ? n + step : size) {
        char *copy = malloc(n ? n : 1);
        CHECK(copy);
        memcpy(copy, data, n);
        rc = http_parse_request(copy, n, r, limits);
        free(prev);
        prev = copy;
        if (n == size)
            break;
    }
    *last = prev;
    return rc;
}

static void compare_requests(const struct http_request *a, const char *abuf,
                             const struct http_request *b, const char *bbuf, size_t len)
{
    CHECK(same_slice(a->method, abuf, b->method, bbuf, len));
    CHECK(same_slice(a->target, abuf, b->target, bbuf, len));
    CHECK(same_slice(a->host, abuf, b->host, bbuf, len));
    CHECK(same_slice(a->authority, abuf, b->authority, bbuf, len));
    CHECK(same_slice(a->path, abuf, b->path, bbuf, len));
    CHECK(a->form == b->form && a->port == b->port && a->version_minor == b->version_minor);
    CHECK(a->n_headers == b->n_headers);
    for (size_t i = 0; i < a->n_headers; i++) {
        CHECK(same_slice(a->headers[i].name, abuf, b->headers[i].name, bbuf, len));
        CHECK(same_slice(a->headers[i].value, abuf, b->headers[i].value, bbuf, len));
    }
    CHECK(a->content_length == b->content_length && a->chunked == b->chunked);
    CHECK(a->keep_alive == b->keep_alive && a->upgrade_websocket == b->upgrade_websocket);
    CHECK(a->expect_continue == b->expect_continue);
}

/* Decodes in pieces of step bytes; returns the final result. */
static int decode_chunked(const uint8_t *data, size_t size, size_t step,
                          const struct http_limits *limits, struct buf *out, size_t *consumed,
                          const char **error)
{
    struct http_chunked st;
    http_chunked_init(&st, limits);
    int rc = HTTP_CHUNKED_MORE;
    size_t off = 0;
    *consumed = 0;
    while (off < size && (rc == HTTP_CHUNKED_MORE || rc == HTTP_CHUNKED_DATA)) {
        size_t n = size - off < step ? size - off : step;
        char *piece = malloc(n);
        CHECK(piece);
        memcpy(piece, data + off, n);
        size_t used_total = 0;
        do {
            size_t used;
            struct http_slice d;
            rc = http_chunked_feed(&st, piece + used_total, n - used_total, &used, &d);
            CHECK(used <= n - used_total);
            CHECK(d.len == 0 || rc == HTTP_CHUNKED_DATA);
            buf_append(out, d.ptr, d.len);
            used_total += used;
        } while (rc == HTTP_CHUNKED_DATA && used_total < n);
        CHECK(rc != HTTP_CHUNKED_MORE || used_total == n);
        free(piece);
        off += used_total;
        *consumed += used_total;
    }
    *error = st.error;
    CHECK((rc == HTTP_CHUNKED_ERROR) == (st.error != NULL));
    return rc;
}

static void fuzz_chunked(const uint8_t *data, size_t size, size_t step,
                         const struct http_limits *limits)
{
    struct buf a = BUF_INIT, b = BUF_INIT;
    size_t ca, cb;
    const char *ea, *eb;
    int ra = decode_chunked(data, size, size ? size : 1, limits, &a, &ca, &ea);
    int rb = decode_chunked(data, size, step, limits, &b, &cb, &eb);
    CHECK(ra == rb && ca == cb && same_error(ea, eb));
    CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    buf_free(&a);
    buf_free(&b);
}

static void fuzz_request(const uint8_t *data, size_t size, size_t step,
                         const struct http_limits *limits)
{
    struct http_request *whole = malloc(sizeof(*whole));
    struct http_request *steps = malloc(sizeof(*steps));
    CHECK(whole && steps);
    http_request_reset(whole);
    ssize_t rc = http_parse_request((const char *)data, size, whole, limits);
    char *last = NULL;
    ssize_t rc2 = parse_request_in_steps(data, size, step, limits, steps, &last);
    CHECK(rc == rc2);
    CHECK(rc < 0 ? same_error(whole->error, steps->error) : !steps->error);
    if (rc > 0)
        compare_requests(whole, (const char *)data, steps, last, size);
    free(last);

    if (rc > 0) {
        CHECK((size_t)rc <= size);
        CHECK(whole->content_length >= -1 && !(whole->chunked && whole->content_length >= 0));
        struct buf out = BUF_INIT;
        /* An added field made of the input's last bytes: written only when it is valid. */
        size_t tail = size < 12 ? size : 12;
        const struct http_header add = {{"X-Fuzz", 6}, {(const char *)data + size - tail, tail}};
        int wrc = http_request_write_head(&out, whole, NULL, 0, &add, 1);
        CHECK(wrc == 0 || (wrc == -EINVAL && out.len == 0));
        if (wrc != 0)
            CHECK(http_request_write_head(&out, whole, NULL, 0, NULL, 0) == 0);
        if (whole->version_minor == 1 && limits == NULL) {
            ssize_t again = http_parse_request(out.data, out.len, steps, NULL);
            CHECK(again == (ssize_t)out.len);
            CHECK(steps->content_length == whole->content_length);
            CHECK(steps->chunked == whole->chunked);
            CHECK(steps->upgrade_websocket == whole->upgrade_websocket);
            CHECK(steps->form == HTTP_FORM_ORIGIN || steps->form == whole->form);
            CHECK(steps->path.len == whole->path.len &&
                  memcmp(steps->path.ptr, whole->path.ptr, whole->path.len) == 0);
        }
        buf_free(&out);
        if (whole->chunked)
            fuzz_chunked(data + rc, size - (size_t)rc, step, limits);
    }
    free(whole);
    free(steps);
}

static void fuzz_response(const uint8_t *data, size_t size, size_t step, bool head,
                          const struct http_limits *limits)
{
    struct http_response *whole = malloc(sizeof(*whole));
    struct http_response *steps = malloc(sizeof(*steps));
    CHECK(whole && steps);
    http_response_reset(whole);
    http_response_reset(steps);
    ssize_t rc = http_parse_response((const char *)data, size, head, whole, limits);
    ssize_t rc2 = 0;
    for (size_t n = step < size ? step : size; rc2 == 0; n = n + step < size ? n + step : size) {
        rc2 = http_parse_response((const char *)data, n, head, steps, limits);
        if (n == size)
            break;
    }
    CHECK(rc == rc2);
    if (rc < 0)
        CHECK(same_error(whole->error, steps->error) && whole->error_status == 502);
    if (rc > 0) {
        CHECK(whole->body == steps->body && whole->status_code == steps->status_code);
        CHECK(whole->keep_alive == steps->keep_alive);
        struct buf out = BUF_INIT;
        CHECK(http_response_write_head(&out, whole, NULL, 0, NULL, 0) == 0);
        if (!limits) {
            CHECK(http_parse_response(out.data, out.len, head, steps, NULL) == (ssize_t)out.len);
            CHECK(steps->body == whole->body);
        }
        buf_free(&out);
    }
    free(whole);
    free(steps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = (size_t)(data[0] & 0x0f) + 1;
    static const struct http_limits tight = {64, 256, 4, 16, 32};
    bool head = data[0] & 0x10;
    const struct http_limits *limits = (data[0] & 0x60) == 0x60 ? &tight : NULL;
    data++;
    size--;
    fuzz_request(data, size, step, limits);
    fuzz_response(data, size, step, head, limits);
    fuzz_chunked(data, size, step, limits);
    return 0;
}

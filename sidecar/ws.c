/* ws — see ws.h. */
#include "sidecar/ws.h"

#include <string.h>

/* Frame heads and control frames held beside a message's payload, at most. */
#define WS_HOLD_SLACK 65536

void ws_dir_init(struct ws_dir *d, bool from_client, size_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->from_client = from_client;
    d->max_message = max_message;
    d->head_need = 2;
}

void ws_dir_free(struct ws_dir *d)
{
    buf_free(&d->hold);
    buf_free(&d->msg);
    buf_free(&d->ctl);
}

static enum ws_unit fail(struct ws_dir *d, const char *why)
{
    d->error = why;
    return WS_UNIT_ERROR;
}

static bool is_control(int op)
{
    return op >= 0x8;
}

/* The whole head is in d->head: check the frame, set up its payload. */
static enum ws_unit frame_start(struct ws_dir *d)
{
    const unsigned char *h = d->head;
    d->fin = h[0] & 0x80;
    d->opcode = h[0] & 0x0f;
    d->masked = h[1] & 0x80;
    if (h[0] & 0x70)
        return fail(d, "a frame uses an extension (reserved bits set); it cannot be scanned");
    if (d->masked != d->from_client)
        return fail(d,
                    d->from_client ? "a client frame is not masked" : "a server frame is masked");
    unsigned len7 = h[1] & 0x7f;
    size_t at = 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        at = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        at = 10;
        if (len >> 63)
            return fail(d, "a frame length is out of range");
    }
    if (d->masked)
        memcpy(d->key, h + at, 4);
    d->key_pos = 0;
    d->payload_left = len;
    if (is_control(d->opcode)) {
        if (d->opcode > WS_OP_PONG)
            return fail(d, "a frame has a reserved opcode");
        if (!d->fin || len > 125)
            return fail(d, "a control frame is fragmented or longer than 125 bytes");
        d->ctl_opcode = d->opcode;
        buf_reset(&d->ctl);
    } else if (d->opcode == WS_OP_CONTINUATION) {
        if (!d->in_message)
            return fail(d, "a continuation frame arrived outside a message");
    } else if (d->opcode == WS_OP_TEXT || d->opcode == WS_OP_BINARY) {
        if (d->in_message)
            return fail(d, "a new message started inside a fragmented one");
        d->in_message = true;
        d->msg_opcode = d->opcode;
        buf_reset(&d->msg);
    } else {
        return fail(d, "a frame has a reserved opcode");
    }
    if (!is_control(d->opcode) && d->msg.len + len > d->max_message)
        return fail(d, "a message is larger than the sidecar can scan");
    /* What is held counts too: many empty fragments or pings inside one message. */
    if (d->hold.len + len > d->max_message + WS_HOLD_SLACK)
        return fail(d, "a message is larger than the sidecar can scan");
    d->in_payload = true;
    return WS_UNIT_NONE;
}

/* Head bytes needed so far, given the first two. */
static size_t head_size(const unsigned char *h)
{
    unsigned len7 = h[1] & 0x7f;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* The frame's payload is complete: is a unit complete with it? */
static enum ws_unit frame_end(struct ws_dir *d)
{
    d->in_payload = false;
    d->head_len = 0;
    d->head_need = 2;
    if (is_control(d->opcode))
        return WS_UNIT_CONTROL;
    if (d->fin) {
        d->in_message = false;
        return WS_UNIT_MESSAGE;
    }
    return WS_UNIT_NONE;
}

enum ws_unit ws_dir_feed(struct ws_dir *d, const unsigned char *p, size_t n, size_t *used)
{
    size_t i = 0;
    enum ws_unit u = WS_UNIT_NONE;
    if (d->error) {
        *used = 0;
        return WS_UNIT_ERROR;
    }
    while (i < n && u == WS_UNIT_NONE) {
        if (!d->in_payload) {
            while (i < n && d->head_len < d->head_need) {
                d->head[d->head_len++] = p[i];
                buf_append(&d->hold, p + i, 1);
                i++;
                if (d->head_len == 2)
                    d->head_need = head_size(d->head);
            }
            if (d->head_len < d->head_need)
                break;
            u = frame_start(d);
            if (u == WS_UNIT_ERROR)
                break;
            if (d->payload_left == 0)
                u = frame_end(d);
            continue;
        }
        size_t take = n - i;
        if (take > d->payload_left)
            take = (size_t)d->payload_left;
        buf_append(&d->hold, p + i, take);
        struct buf *dst = is_control(d->opcode) ? &d->ctl : &d->msg;
        buf_reserve(dst, take + 1);
        unsigned char *o = (unsigned char *)dst->data + dst->len;
        for (size_t k = 0; k < take; k++)
            o[k] = d->masked ? p[i + k] ^ d->key[(d->key_pos + k) & 3] : p[i + k];
        dst->len += take;
        dst->data[dst->len] = '\0';
        d->key_pos = (d->key_pos + take) & 3;
        d->payload_left -= take;
        i += take;
        if (d->payload_left == 0)
            u = frame_end(d);
    }
    *used = i;
    return u;
}

/* Copies n payload bytes into a held frame at dst, masked with key when the frame is. */
static void put_payload(unsigned char *dst, const char *src, size_t n, const unsigned char *key)
{
    for (size_t k = 0; k < n; k++)
        dst[k] = (unsigned char)src[k] ^ (key ? key[k & 3] : 0);
}

void ws_dir_rewrite(struct ws_dir *d, enum ws_unit unit)
{
    unsigned char *h = (unsigned char *)d->hold.data;
    size_t len = d->hold.len;
    if (unit == WS_UNIT_CONTROL) { /* the frame just completed is the last one held */
        if (d->ctl.len <= len)
            put_payload(h + len - d->ctl.len, d->ctl.data, d->ctl.len, d->masked ? d->key : NULL);
        return;
    }
    if (unit != WS_UNIT_MESSAGE)
        return;
    size_t at = 0, from = 0; /* in hold, in msg */
    while (at + 2 <= len) {
        size_t hs = head_size(h + at);
        if (at + hs > len)
            return;
        uint64_t n = h[at + 1] & 0x7f;
        if (n == 126) {
            n = ((uint64_t)h[at + 2] << 8) | h[at + 3];
        } else if (n == 127) {
            n = 0;
            for (int i = 0; i < 8; i++)
                n = (n << 8) | h[at + 2 + i];
        }
        const unsigned char *key = (h[at + 1] & 0x80) ? h + at + hs - 4 : NULL;
        at += hs;
        if (n > len - at)
            return;
        if (!is_control(h[at - hs] & 0x0f) && from + n <= d->msg.len) {
            put_payload(h + at, d->msg.data + from, (size_t)n, key);
            from += (size_t)n;
        }
        at += (size_t)n;
    }
}

bool ws_dir_release(struct ws_dir *d, enum ws_unit unit, struct buf *out)
{
    if (unit == WS_UNIT_MESSAGE)
        buf_reset(&d->msg);
    else if (unit == WS_UNIT_CONTROL)
        buf_reset(&d->ctl);
    if (d->in_message)
        return false;
    buf_append(out, d->hold.data, d->hold.len);
    buf_reset(&d->hold);
    return true;
}

void ws_close_frame(struct buf *out, uint16_t code, const char *reason)
{
    size_t rlen = strlen(reason);
    if (rlen > 123)
        rlen = 123; /* a control frame's payload is at most 125 bytes */
    unsigned char h[4] = {0x80 | WS_OP_CLOSE, (unsigned char)(2 + rlen), (unsigned char)(code >> 8),
                          (unsigned char)code};
    buf_append(out, h, 4);
    buf_append(out, reason, rlen);
}

/*
 * ws — WebSocket framing (RFC 6455 §5) for the relay after a 101, so the
 * sidecar can check every message before it is forwarded.
 *
 * One struct ws_dir per direction. Raw frames are taken in as they arrive
 * and held (ws_dir.hold) until the unit they belong to is complete: a whole
 * data message (all its fragments, unmasked into ws_dir.msg) or a control
 * frame (ws_dir.ctl). The caller checks the unit and then forwards the held
 * bytes unchanged, or closes the connection; nothing of an unchecked unit
 * is forwarded. A control frame arriving between the fragments of a message
 * is checked on its own but stays held with the message.
 *
 * Frames the sidecar cannot read are errors: reserved bits (compression or
 * another extension, which the sidecar never lets the two sides negotiate),
 * an unmasked client frame or a masked server frame, a reserved opcode, a
 * fragmented or oversized control frame, a continuation with no message or
 * a new message inside one, and a message over the size limit.
 */
#ifndef BOTTLE_SIDECAR_WS_H
#define BOTTLE_SIDECAR_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum ws_opcode {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

/* What ws_dir_feed stopped at. */
enum ws_unit {
    WS_UNIT_NONE = 0, /* all input taken, nothing complete */
    WS_UNIT_MESSAGE,  /* msg holds a whole data message (msg_opcode) */
    WS_UNIT_CONTROL,  /* ctl holds a control frame's payload (ctl_opcode) */
    WS_UNIT_ERROR,    /* error says why; the stream cannot be relayed further */
};

struct ws_dir {
    bool from_client; /* client frames are masked, server frames are not */
    size_t max_message;
    /* the frame being read */
    unsigned char head[14];
    size_t head_len, head_need;
    bool in_payload;
    uint64_t payload_left;
    unsigned char key[4];
    bool masked;
    size_t key_pos;
    int opcode;
    bool fin;
    /* the message being collected */
    bool in_message;
    int msg_opcode;
    int ctl_opcode;
    struct buf hold; /* raw frames of units not yet checked */
    struct buf msg;  /* unmasked payload of the current data message */
    struct buf ctl;  /* unmasked payload of the current control frame */
    const char *error;
};

void ws_dir_init(struct ws_dir *d, bool from_client, size_t max_message);
void ws_dir_free(struct ws_dir *d);

/*
 * Takes bytes from p (raw frames) until a unit is complete or the input is
 * used up; *used says how many were taken (all of them for WS_UNIT_NONE).
 * After a unit the caller checks it and calls ws_dir_release before
 * feeding on.
 */
enum ws_unit ws_dir_feed(struct ws_dir *d, const unsigned char *p, size_t n, size_t *used);

/*
 * The payload of the unit just fed (msg or ctl) was rewritten in place,
 * keeping its length: the held raw frames are made to carry it (masked
 * again for a client's frames), so what is released is what was checked.
 */
void ws_dir_rewrite(struct ws_dir *d, enum ws_unit unit);

/*
 * The checked unit is done with: its payload buffer is emptied and, when no
 * message is still being collected, the held raw bytes are appended to out
 * (to be forwarded) and true is returned.
 */
bool ws_dir_release(struct ws_dir *d, enum ws_unit unit, struct buf *out);

/* A close frame (server to client, unmasked) with a status code and reason. */
void ws_close_frame(struct buf *out, uint16_t code, const char *reason);

#endif

/*
 * batch — the providers' batch APIs on a metered route: Anthropic Message
 * Batches (/v1/messages/batches), OpenAI Batch (/v1/batches) and the files
 * uploaded for it (/v1/files with purpose=batch).
 *
 * A batch runs after the request that creates it is answered, for up to a
 * day, possibly after the bottle is gone, and a request of the batch can
 * spend as much as one sent alone. No reservation of this run can hold that,
 * so under a budget creating a batch is refused (403 `batch_under_budget`,
 * with the batch's worst case in the message) and so is uploading its input
 * file. Without a budget a batch is forwarded free, and the usage its
 * results report is recorded in the ledger when they are fetched through
 * the sidecar (once per batch and sidecar). Listing, retrieving, cancelling
 * and deleting batches spend nothing.
 *
 * Like meter.c it only observes a response: it never holds, alters or
 * refuses its bytes. Memory per results stream is one line of at most
 * METER_EVENT_MAX bytes plus the content decoder's state.
 */
#ifndef BOTTLE_SIDECAR_METER_BATCH_H
#define BOTTLE_SIDECAR_METER_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "ledger/ledger.h"
#include "sidecar/config.h"
#include "sidecar/http.h"
#include "sidecar/proxy_types.h"

#define REASON_BATCH_UNDER_BUDGET "batch_under_budget"

enum meter_batch_kind {
    METER_BATCH_NONE = 0, /* not a batch endpoint */
    METER_BATCH_CREATE,   /* POST .../messages/batches, POST .../batches */
    METER_BATCH_UPLOAD,   /* POST .../files with purpose=batch: a batch's input */
    METER_BATCH_RESULTS,  /* GET .../messages/batches/{id}/results, GET .../files/{id}/content */
    METER_BATCH_MANAGE,   /* list, retrieve, cancel, delete: nothing is generated */
};

/* What a request on a metered route is, from its method, path and (for uploads) its body. */
enum meter_batch_kind meter_batch_kind_of(const struct http_request *req, const char *body,
                                          size_t len);

/* A batch's worst case: its requests and their tokens (input by bytes, output by limit). */
struct meter_batch_cost {
    int64_t requests;
    int64_t tokens;
    bool known; /* false: the request names its input elsewhere (an uploaded file) */
};

/* The worst case of a CREATE or UPLOAD body; never fails (unknown when unreadable). */
void meter_batch_cost_of(enum meter_batch_kind kind, const char *path, size_t path_len,
                         const char *body, size_t len, struct meter_batch_cost *out);

/*
 * Whether a CREATE or UPLOAD may pass: under budget (non-NULL) it may not,
 * and out is filled with the refusal naming the worst case.
 */
bool meter_batch_admit(enum meter_batch_kind kind, const struct config_budget *budget,
                       const char *scope_words, const struct http_request *req, const char *body,
                       size_t len, struct proxy_verdict *out);

/* The usage in a batch's results as they are fetched. */
struct meter_batch_results;

/* id: the batch or file the results belong to (from the path). */
struct meter_batch_results *meter_batch_results_new(const char *id);
/* The response head: its status, Content-Encoding. */
void meter_batch_results_head(struct meter_batch_results *r, const struct http_response *resp);
void meter_batch_results_feed(struct meter_batch_results *r, const char *p, size_t n);

/*
 * The response ended (complete: the whole body reached the client). A
 * complete 2xx answer with usage in it is recorded for who, once per id
 * (recorded holds the ids already recorded by this sidecar). Frees r.
 * Returns the tokens recorded (0 when nothing was).
 */
int64_t meter_batch_results_end(struct meter_batch_results *r, struct ledger *lg,
                                const struct ledger_subject *who, bool complete,
                                struct strv *recorded);

/* The id of a RESULTS path (the batch's, or the file's), allocated; NULL when none. */
char *meter_batch_results_id(const char *path, size_t len);

#endif

/*
 * probe — the BPF section of `bottle doctor`: whether the policy programs
 * load and attach here and whether socket destroy works, as text and JSON.
 * Creates and removes a temporary cgroup; pins and leaves nothing.
 */
#ifndef BOTTLE_BPF_PROBE_H
#define BOTTLE_BPF_PROBE_H

#include <cjson/cJSON.h>

#include "common/buf.h"

/* Text lines into out (when non-NULL) and an object added to json as "bpf" (when non-NULL). */
void bpf_probe_report(struct buf *out, cJSON *json);

#endif

/*
 * probe — what `bottle doctor` asks of BPF on this host (see probe.h).
 */
#include "bpf/probe.h"

#include <stdio.h>

#include "bpf/policy.h"
#include "bpf/sockkill.h"
#include "common/json.h"

void bpf_probe_report(struct buf *out, cJSON *json)
{
    struct bpf_policy_probe r;
    bpf_policy_probe_run(&r);
    struct bottle_err err = {0};
    if (bpf_sockkill_probe(&err) == 0)
        r.sock_destroy = true;
    else
        snprintf(r.sock_destroy_error, sizeof(r.sock_destroy_error), "%.250s", err.msg);
    size_t attached = 0;
    for (size_t i = 0; i < r.n_programs; i++)
        attached += r.programs[i].attached;
    if (out) {
        if (r.loaded)
            buf_printf(out, "bpf programs: %zu loaded in %.1f ms, %zu/%zu attach to a cgroup\n",
                       r.n_programs, r.load_ms, attached, r.n_programs);
        else
            buf_printf(out, "bpf programs: do not load: %s\n", r.load_error);
        for (size_t i = 0; i < r.n_programs; i++) {
            if (r.programs[i].attached)
                buf_printf(out, "  %-20s ok\n", r.programs[i].name);
            else
                buf_printf(out, "  %-20s cannot attach: %s\n", r.programs[i].name,
                           r.programs[i].error);
        }
        if (r.sock_destroy)
            buf_append_str(out, "socket destroy: available (cutoff aborts connections)\n");
        else
            buf_printf(out, "socket destroy: unavailable (%s)\n", r.sock_destroy_error);
    }
    if (json) {
        cJSON *o = cJSON_AddObjectToObject(json, "bpf");
        json_add_bool(o, "loaded", r.loaded);
        json_add_str(o, "load_error", r.loaded ? NULL : r.load_error);
        json_add_num(o, "load_ms", r.load_ms);
        cJSON *progs = cJSON_AddArrayToObject(o, "programs");
        for (size_t i = 0; i < r.n_programs; i++) {
            cJSON *p = cJSON_CreateObject();
            json_add_str(p, "section", r.programs[i].name);
            json_add_bool(p, "attached", r.programs[i].attached);
            json_add_str(p, "error", r.programs[i].attached ? NULL : r.programs[i].error);
            cJSON_AddItemToArray(progs, p);
        }
        json_add_bool(o, "sock_destroy", r.sock_destroy);
        json_add_str(o, "sock_destroy_error", r.sock_destroy ? NULL : r.sock_destroy_error);
    }
}

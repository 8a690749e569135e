/*
 * trust — a project's own files (./.bottle/) and whether the user trusts them.
 *
 * The project directory is usually the workspace an agent writes, so its
 * files are read once, into memory (struct project_files), and the index
 * parses them from that copy: what was checked is what is used. Their
 * digest is compared with the record `bottle trust` left in
 * $BOTTLE_HOME/trust/ (never in the project). This module only reads those
 * records; writing one is the CLI's (runtime/cli/cmd_trust.c).
 *
 * Whatever their trust state, project bottles may neither copy host
 * variables into the agent's environment nor send a credential to a host
 * the user's own files do not already send it to (project_bottle_check,
 * manifest/project.c): a trusted repository still cannot exfiltrate a token.
 */
#ifndef BOTTLE_MANIFEST_TRUST_H
#define BOTTLE_MANIFEST_TRUST_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "manifest/manifest.h"

#define TRUST_STORE_DIR      "trust"   /* under $BOTTLE_HOME */
#define PROJECT_DIR_NAME     ".bottle" /* under the project directory */
#define PROJECT_MAX_FILES    4096
#define PROJECT_MAX_DEPTH    8
#define PROJECT_MAX_BYTES    (256u << 20) /* hashed in all */
#define PROJECT_MANIFEST_MAX (1u << 20)   /* one agent or bottle file */

/* ---- the project's files ----------------------------------------------------- */

struct project_file {
    char *rel;  /* below .bottle/, '/'-separated, e.g. "bottles/dev.md" */
    char *data; /* agents/NAME.md and bottles/NAME.md only (NUL-terminated); else NULL */
    size_t len;
    bool too_big; /* a manifest over PROJECT_MANIFEST_MAX: hashed, not kept */
    char sha256[65];
};

struct project_files {
    char *root;                 /* the project directory (real path), which holds .bottle/ */
    char *dir;                  /* root/.bottle */
    struct project_file *items; /* sorted by rel (bytewise) */
    size_t len;
    /*
     * SHA-256 over every file in order: its rel, a NUL, its length as 8
     * bytes big-endian, its content.
     */
    char digest[65];
};

/*
 * Reads every file below root/.bottle (symlinks followed, as the loader
 * would; PROJECT_MAX_DEPTH levels, PROJECT_MAX_FILES files). A missing
 * .bottle gives zero files. Anything else than files and directories is an
 * error.
 */
int project_files_read(const char *root, struct project_files *out, struct bottle_err *err);
const struct project_file *project_files_find(const struct project_files *pf, const char *rel);
void project_files_free(struct project_files *pf);

/* ---- the trust store ------------------------------------------------------------ */

enum trust_state {
    TRUST_NONE = 0,  /* no project files */
    TRUST_TRUSTED,   /* the digest matches the record */
    TRUST_UNTRUSTED, /* never trusted (or revoked) */
    TRUST_CHANGED,   /* trusted once, different now */
};
const char *trust_state_name(enum trust_state s);

struct trust_record {
    char *project;     /* the project directory */
    char *digest;      /* project_files.digest when trusted */
    char *trusted_at;  /* UTC, 2024-01-02T03:04:05Z */
    struct strv files; /* rel paths, sorted */
    struct strv sums;  /* their SHA-256, in the same order */
};

/* $BOTTLE_HOME/trust/<SHA-256 of the project directory's path>.json */
char *trust_record_path(const char *home, const char *root);
/* *found is false (and 0 returned) when there is no record. */
int trust_record_read(const char *path, struct trust_record *out, bool *found,
                      struct bottle_err *err);
void trust_record_free(struct trust_record *r);
/* The record for pf, as the CLI writes it. */
cJSON *trust_record_to_json(const struct project_files *pf, const char *trusted_at);
/* Every record in the store, sorted by project; a file that does not parse is skipped. */
int trust_store_list(const char *home, struct trust_record **out, size_t *n,
                     struct bottle_err *err);

struct trust_report {
    enum trust_state state;
    char *trusted_at;    /* of the record, when there is one */
    struct strv added;   /* files not in the record */
    struct strv changed; /* files whose content differs */
    struct strv removed; /* files of the record that are gone */
};

/* The trust state of an index's project files (TRUST_NONE without any). */
enum trust_state manifest_index_trust(const struct manifest_index *idx);

/* Compares pf with its record in home. */
int trust_evaluate(const char *home, const struct project_files *pf, struct trust_report *out,
                   struct bottle_err *err);
void trust_report_free(struct trust_report *r);
/* The lines naming what is new, changed or gone ("  new:      bottles/x.md\n"...). */
void trust_report_lines(const struct trust_report *r, struct buf *out);
/* The command that trusts root, shell-quoted when needed: "bottle trust /w". */
char *trust_command(const char *root);

/* ---- the project rules (project.c) ------------------------------------------------ */

/* Where a credential goes: a token reference sent to host:port (0: the default ports). */
struct credential_use {
    char *token_ref;
    char *host;
    uint16_t port;
    char *origin; /* the file (or "built-in") that sends it there */
};

struct credential_uses {
    struct credential_use *items;
    size_t len;
};

/*
 * The credentials the user's own files send, and where: the provider
 * templates' defaults, the shipped examples, and every bottle in
 * $BOTTLE_HOME/bottles/ (each file on its own; one that does not parse adds
 * nothing).
 */
void credential_uses_collect(const char *home, struct credential_uses *out);
void credential_uses_add_bottle(struct credential_uses *uses, const struct bottle_def *b);
bool credential_uses_allow(const struct credential_uses *uses, const char *token_ref,
                           const char *host, uint16_t port);
void credential_uses_free(struct credential_uses *uses);

/*
 * A bottle from a project directory: refused (ERR_KIND_REFUSED, file:line:col)
 * when its env copies a host variable, when it sends a credential to a host
 * the user's own files do not send that credential to, or when its
 * Dockerfile lies outside the project's .bottle/.
 */
int project_bottle_check(const struct bottle_def *b, const char *rel,
                         const struct credential_uses *uses, struct bottle_err *err);

#endif

/*
 * Fuzzes the manifest loader: frontmatter split, strict YAML, and the agent,
 * bottle and settings validators over the same bytes. Every input must either
 * parse or fail with a manifest error; nothing may crash, leak or read out of
 * bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest/manifest.h"

static void check_error(int rc, const struct bottle_err *err)
{
    if (rc < 0 && (err->kind != ERR_KIND_MANIFEST || strncmp(err->msg, "manifest: ", 10) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copy so reads past the end are caught even without a terminator. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);

    struct bottle_err err = {0};
    const char *yaml, *body;
    size_t yaml_len, body_len;
    unsigned first_line;
    int rc = frontmatter_split("f.md", text, size, &yaml, &yaml_len, &first_line, &body, &body_len,
                               &err);
    check_error(rc, &err);
    if (rc == 0) {
        if (yaml < text || yaml + yaml_len > text + size || body < text ||
            body + body_len > text + size)
            abort();
        struct node_doc doc = {0};
        rc = yaml_parse_doc("f.md", yaml, yaml_len, first_line, &doc, &err);
        check_error(rc, &err);
        if (rc == 0 && (!doc.root || (doc.root->kind != NODE_MAP && doc.root->kind != NODE_NULL)))
            abort();
        node_doc_free(&doc);
    }

    struct bottle_def b;
    rc = bottle_parse("bottles/dev.md", "dev", text, size, &b, &err);
    check_error(rc, &err);
    if (rc == 0) {
        struct bottle_def copy;
        bottle_def_copy(&copy, &b);
        bottle_def_free(&copy);
        bottle_def_free(&b);
    }

    struct agent_def a;
    rc = agent_parse("agents/coder.md", "coder", text, size, &a, &err);
    check_error(rc, &err);
    if (rc == 0)
        agent_def_free(&a);

    struct settings s;
    rc = settings_parse("settings.yml", text, size, &s, &err);
    check_error(rc, &err);
    if (rc == 0)
        settings_free(&s);

    free(text);
    return 0;
}

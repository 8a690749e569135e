/*
 * The agent image: a reference given as is, or one built from a Dockerfile
 * and tagged by the SHA-256 of the Dockerfile's bytes, so a second start
 * with the same Dockerfile reuses the image instead of building again.
 * The build's output goes to the user's terminal as it happens.
 */
#include <errno.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/docker_internal.h"
#include "common/fs.h"

int docker_image_tag_for(const char *dockerfile, char **tag, struct bottle_err *err)
{
    struct buf text = BUF_INIT;
    int rc = fs_read_file(dockerfile, 4u << 20, &text, err);
    if (rc < 0) {
        buf_free(&text);
        return err_prefix(err, "docker: Dockerfile");
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(text.data ? text.data : "", text.len, md, &md_len, EVP_sha256(), NULL)) {
        buf_free(&text);
        return err_set(err, EIO, "docker: cannot hash %s", dockerfile);
    }
    buf_free(&text);
    char hex[17];
    for (size_t i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *tag = xasprintf("%s:%s", DOCKER_IMAGE_REPO, hex);
    return 0;
}

static bool image_present(const struct docker_cli *cli, const char *ref)
{
    const char *args[] = {"image", "inspect", "--format", "{{.Id}}", ref, NULL};
    struct bottle_err ignored = {0};
    return docker_cli_run(cli, args, false, NULL, &ignored) == 0;
}

int docker_image_resolve(const struct docker_cli *cli, const struct backend_spec *spec,
                         char **image, struct bottle_err *err)
{
    *image = NULL;
    if (spec->image && *spec->image) {
        if (!image_present(cli, spec->image))
            return err_set_kind(err, ERR_KIND_USAGE, ENOENT,
                                "docker: image '%s' is not in the engine; build or pull it "
                                "first (bottle never pulls)",
                                spec->image);
        *image = xstrdup(spec->image);
        return 0;
    }
    if (!spec->dockerfile || !*spec->dockerfile)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "docker: no image and no Dockerfile; set agent_provider.dockerfile");
    if (!fs_is_file(spec->dockerfile))
        return err_set_kind(err, ERR_KIND_USAGE, ENOENT, "docker: Dockerfile %s does not exist",
                            spec->dockerfile);
    char *tag = NULL;
    int rc = docker_image_tag_for(spec->dockerfile, &tag, err);
    if (rc < 0)
        return rc;
    if (image_present(cli, tag)) {
        *image = tag;
        return 0;
    }
    char *context = xstrdup(spec->dockerfile);
    char *slash = strrchr(context, '/');
    if (slash == context)
        context[1] = '\0';
    else if (slash)
        *slash = '\0';
    else {
        free(context);
        context = xstrdup(".");
    }
    const char *args[] = {"build", "--tag", tag, "--file", spec->dockerfile, context, NULL};
    rc = docker_cli_run(cli, args, true, NULL, err);
    free(context);
    if (rc < 0) {
        free(tag);
        return err_prefix(err, "docker: building the agent image from %s", spec->dockerfile);
    }
    *image = tag;
    return 0;
}

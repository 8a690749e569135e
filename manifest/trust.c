/*
 * trust — reading a project's files once, their digest, and the records
 * `bottle trust` keeps in $BOTTLE_HOME/trust/ (see trust.h). Reads only.
 */
#include "manifest/trust.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"

/* ---- hashing ------------------------------------------------------------------------ */

static void hex(const unsigned char *md, unsigned n, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n && i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex(md, n, out);
}

/* ---- walking .bottle/ ------------------------------------------------------------- */

struct walk {
    const char *root_real; /* symlinks may not lead outside it */
    struct project_files *pf;
    uint64_t bytes;
    struct bottle_err *err;
};

static bool is_manifest_rel(const char *rel)
{
    const char *slash = strchr(rel, '/');
    if (!slash || strchr(slash + 1, '/'))
        return false;
    size_t kind = (size_t)(slash - rel);
    if (!((kind == 6 && strncmp(rel, "agents", 6) == 0) ||
          (kind == 7 && strncmp(rel, "bottles", 7) == 0)))
        return false;
    return str_ends_with(slash + 1, ".md");
}

static bool within(const char *path, const char *base)
{
    size_t n = strlen(base);
    return strncmp(path, base, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Reads one regular file: its SHA-256, and its bytes when it is a manifest. */
static int read_one(struct walk *w, int fd, const char *shown, struct project_file *f)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    struct buf keep = BUF_INIT;
    bool want = is_manifest_rel(f->rel);
    char chunk[65536];
    int rc = 0;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        rc = err_set(w->err, ENOMEM, "manifest: cannot hash %s", shown);
    while (rc == 0) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set_kind(w->err, ERR_KIND_MANIFEST, errno, "manifest: %s: cannot read: %s",
                              shown, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        w->bytes += (uint64_t)n;
        f->len += (size_t)n;
        if (w->bytes > PROJECT_MAX_BYTES) {
            rc = err_set_kind(w->err, ERR_KIND_MANIFEST, EFBIG,
                              "manifest: %s holds more than %u MiB; a project's .bottle/ is for "
                              "agents, bottles and their files",
                              w->pf->dir, PROJECT_MAX_BYTES >> 20);
            break;
        }
        EVP_DigestUpdate(ctx, chunk, (size_t)n);
        if (want && !f->too_big) {
            if (keep.len + (size_t)n > PROJECT_MANIFEST_MAX) {
                f->too_big = true;
                buf_free(&keep);
            } else {
                buf_append(&keep, chunk, (size_t)n);
            }
        }
    }
    if (rc == 0) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        EVP_DigestFinal_ex(ctx, md, &n);
        hex(md, n, f->sha256);
        if (want && !f->too_big)
            f->data = keep.data ? buf_steal(&keep) : xstrdup("");
    }
    buf_free(&keep);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int walk_dir(struct walk *w, int fd, const char *path, const char *rel, int depth);

/* Where fd really is, when /proc tells; NULL otherwise. */
static char *fd_path(int fd)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0)
        return NULL;
    target[n] = '\0';
    return xstrdup(target);
}

static int outside(struct walk *w, const char *path)
{
    return err_set_kind(w->err, ERR_KIND_MANIFEST, EPERM,
                        "manifest: %s is a symbolic link that leads outside the project %s (or "
                        "nowhere); a project's files stay inside it",
                        path, w->root_real);
}

static int walk_entry(struct walk *w, const char *path, const char *rel, int depth)
{
    struct stat lsb;
    if (lstat(path, &lsb) < 0)
        return err_set_kind(w->err, ERR_KIND_MANIFEST, errno, "manifest: %s: %s", path,
                            strerror(errno));
    bool link = S_ISLNK(lsb.st_mode);
    if (link) {
        char *real = realpath(path, NULL);
        bool ok = real && within(real, w->root_real);
        free(real);
        if (!ok)
            return outside(w, path);
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | (link ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return err_set_kind(w->err, ERR_KIND_MANIFEST, errno, "manifest: %s: cannot open: %s", path,
                            strerror(errno));
    /* What was opened, not what the path said a moment before, must be inside. */
    char *opened = fd_path(fd);
    if (opened && !within(opened, w->root_real)) {
        free(opened);
        close(fd);
        return outside(w, path);
    }
    free(opened);
    struct stat sb;
    int rc =
        fstat(fd, &sb) < 0 ? err_set(w->err, errno, "manifest: %s: %s", path, strerror(errno)) : 0;
    if (rc == 0 && S_ISDIR(sb.st_mode))
        return walk_dir(w, fd, path, rel, depth + 1); /* takes fd */
    if (rc == 0 && !*rel)
        rc = err_set_kind(w->err, ERR_KIND_MANIFEST, ENOTDIR, "manifest: %s is not a directory",
                          path);
    if (rc == 0 && !S_ISREG(sb.st_mode))
        rc = err_set_kind(w->err, ERR_KIND_MANIFEST, EINVAL,
                          "manifest: %s is neither a file nor a directory; a project's .bottle/ "
                          "holds only those",
                          path);
    if (rc == 0 && w->pf->len >= PROJECT_MAX_FILES)
        rc = err_set_kind(w->err, ERR_KIND_MANIFEST, EMFILE,
                          "manifest: %s holds more than %d files", w->pf->dir, PROJECT_MAX_FILES);
    if (rc == 0) {
        w->pf->items = xrealloc(w->pf->items, (w->pf->len + 1) * sizeof(*w->pf->items));
        struct project_file *f = &w->pf->items[w->pf->len++];
        memset(f, 0, sizeof(*f));
        f->rel = xstrdup(rel);
        rc = read_one(w, fd, path, f);
    }
    close(fd);
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the directory open on fd (and closes it), then walks each entry. */
static int walk_dir(struct walk *w, int fd, const char *path, const char *rel, int depth)
{
    if (depth > PROJECT_MAX_DEPTH) {
        close(fd);
        return err_set_kind(w->err, ERR_KIND_MANIFEST, ELOOP,
                            "manifest: %s is nested more than %d levels deep (a symlink loop?)",
                            path, PROJECT_MAX_DEPTH);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return err_set_kind(w->err, ERR_KIND_MANIFEST, e, "manifest: %s: cannot list: %s", path,
                            strerror(e));
    }
    struct strv names = STRV_INIT;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            strv_push(&names, de->d_name);
    closedir(d);
    if (names.len > 1)
        qsort(names.items, names.len, sizeof(char *), cmp_name);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < names.len; i++) {
        char *child = fs_join(path, names.items[i]);
        char *child_rel = *rel ? xasprintf("%s/%s", rel, names.items[i]) : xstrdup(names.items[i]);
        rc = walk_entry(w, child, child_rel, depth);
        free(child_rel);
        free(child);
    }
    strv_free(&names);
    return rc;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct project_file *)a)->rel, ((const struct project_file *)b)->rel);
}

static void project_digest(struct project_files *pf)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; i < pf->len; i++) {
        const struct project_file *f = &pf->items[i];
        unsigned char len[8];
        uint64_t n = f->len;
        for (int k = 7; k >= 0; k--) {
            len[k] = (unsigned char)(n & 0xff);
            n >>= 8;
        }
        EVP_DigestUpdate(ctx, f->rel, strlen(f->rel) + 1);
        EVP_DigestUpdate(ctx, len, sizeof(len));
        EVP_DigestUpdate(ctx, f->sha256, 64); /* stands for the content, hashed once */
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    hex(md, n, pf->digest);
}

int project_files_read(const char *root, struct project_files *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    char *real = realpath(root, NULL);
    if (!real)
        return err_set_kind(err, ERR_KIND_USAGE, errno, "%s: %s", root, strerror(errno));
    out->root = real;
    out->dir = fs_join(real, PROJECT_DIR_NAME);
    if (!fs_is_dir(out->dir))
        return 0;
    struct walk w = {.root_real = real, .pf = out, .err = err};
    /* .bottle itself is walked as an entry (depth -1): the same symlink rule applies. */
    int rc = walk_entry(&w, out->dir, "", -1);
    if (rc < 0) {
        project_files_free(out);
        return rc;
    }
    if (out->len > 1)
        qsort(out->items, out->len, sizeof(*out->items), cmp_file);
    project_digest(out);
    return 0;
}

const struct project_file *project_files_find(const struct project_files *pf, const char *rel)
{
    for (size_t i = 0; pf && i < pf->len; i++)
        if (strcmp(pf->items[i].rel, rel) == 0)
            return &pf->items[i];
    return NULL;
}

void project_files_free(struct project_files *pf)
{
    if (!pf)
        return;
    for (size_t i = 0; i < pf->len; i++) {
        free(pf->items[i].rel);
        free(pf->items[i].data);
    }
    free(pf->items);
    free(pf->root);
    free(pf->dir);
    memset(pf, 0, sizeof(*pf));
}

/* ---- records -------------------------------------------------------------------------- */

const char *trust_state_name(enum trust_state s)
{
    switch (s) {
    case TRUST_NONE:
        return "none";
    case TRUST_TRUSTED:
        return "trusted";
    case TRUST_UNTRUSTED:
        return "untrusted";
    case TRUST_CHANGED:
        return "changed";
    }
    return "?";
}

char *trust_record_path(const char *home, const char *root)
{
    char key[65];
    sha256_hex(root, strlen(root), key);
    char *dir = fs_join(home, TRUST_STORE_DIR);
    char *name = xasprintf("%s.json", key);
    char *path = fs_join(dir, name);
    free(name);
    free(dir);
    return path;
}

static bool is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static int record_from_json(const char *path, const cJSON *doc, struct trust_record *r,
                            struct bottle_err *err)
{
    memset(r, 0, sizeof(*r));
    const char *project = json_get_str(doc, "project");
    const char *digest = json_get_str(doc, "digest");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(doc, "files");
    if (!project || !is_hex64(digest) || !cJSON_IsObject(files))
        return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL,
                            "trust: %s is not a trust record (run 'bottle trust' again)", path);
    r->project = xstrdup(project);
    r->digest = xstrdup(digest);
    r->trusted_at = xstrdup_or_null(json_get_str(doc, "trusted_at"));
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (!f->string || !cJSON_IsString(f) || !is_hex64(f->valuestring)) {
            trust_record_free(r);
            return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL,
                                "trust: %s: a file entry is not a SHA-256", path);
        }
        strv_push(&r->files, f->string);
        strv_push(&r->sums, f->valuestring);
    }
    return 0;
}

int trust_record_read(const char *path, struct trust_record *out, bool *found,
                      struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    *found = false;
    if (access(path, F_OK) < 0 && errno == ENOENT)
        return 0;
    struct buf text = BUF_INIT;
    int rc = fs_read_file(path, 4u << 20, &text, err);
    if (rc < 0)
        return rc;
    cJSON *doc = cJSON_ParseWithLength(text.data ? text.data : "", text.len);
    buf_free(&text);
    if (!doc)
        return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL,
                            "trust: %s is not valid JSON (run 'bottle trust' again)", path);
    rc = record_from_json(path, doc, out, err);
    cJSON_Delete(doc);
    if (rc == 0)
        *found = true;
    return rc;
}

void trust_record_free(struct trust_record *r)
{
    if (!r)
        return;
    free(r->project);
    free(r->digest);
    free(r->trusted_at);
    strv_free(&r->files);
    strv_free(&r->sums);
    memset(r, 0, sizeof(*r));
}

cJSON *trust_record_to_json(const struct project_files *pf, const char *trusted_at)
{
    cJSON *doc = cJSON_CreateObject();
    json_add_num(doc, "version", 1);
    json_add_str(doc, "project", pf->root);
    json_add_str(doc, "digest", pf->digest);
    json_add_str(doc, "trusted_at", trusted_at);
    cJSON *files = cJSON_AddObjectToObject(doc, "files");
    for (size_t i = 0; i < pf->len; i++)
        json_add_str(files, pf->items[i].rel, pf->items[i].sha256);
    return doc;
}

static int cmp_record(const void *a, const void *b)
{
    return strcmp(((const struct trust_record *)a)->project,
                  ((const struct trust_record *)b)->project);
}

int trust_store_list(const char *home, struct trust_record **out, size_t *n, struct bottle_err *err)
{
    (void)err;
    *out = NULL;
    *n = 0;
    char *dir = fs_join(home, TRUST_STORE_DIR);
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return 0;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len != 69 || !str_ends_with(de->d_name, ".json"))
            continue;
        char *path = fs_join(dir, de->d_name);
        struct trust_record r;
        bool found = false;
        struct bottle_err ignored = {0};
        if (trust_record_read(path, &r, &found, &ignored) == 0 && found) {
            *out = xrealloc(*out, (*n + 1) * sizeof(**out));
            (*out)[(*n)++] = r;
        }
        free(path);
    }
    closedir(d);
    free(dir);
    if (*n > 1)
        qsort(*out, *n, sizeof(**out), cmp_record);
    return 0;
}

/* ---- evaluation ------------------------------------------------------------------------ */

int trust_evaluate(const char *home, const struct project_files *pf, struct trust_report *out,
                   struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!pf || pf->len == 0) {
        out->state = TRUST_NONE;
        return 0;
    }
    char *path = trust_record_path(home, pf->root);
    struct trust_record rec;
    bool found = false;
    int rc = trust_record_read(path, &rec, &found, err);
    free(path);
    if (rc < 0)
        return rc;
    if (found && strcmp(rec.project, pf->root) != 0)
        found = false; /* a record for another path: not this project's */
    for (size_t i = 0; i < pf->len; i++) {
        const struct project_file *f = &pf->items[i];
        size_t j;
        for (j = 0; found && j < rec.files.len; j++)
            if (strcmp(rec.files.items[j], f->rel) == 0)
                break;
        if (!found || j == rec.files.len)
            strv_push(&out->added, f->rel);
        else if (strcmp(rec.sums.items[j], f->sha256) != 0)
            strv_push(&out->changed, f->rel);
    }
    for (size_t j = 0; found && j < rec.files.len; j++)
        if (!project_files_find(pf, rec.files.items[j]))
            strv_push(&out->removed, rec.files.items[j]);
    if (!found)
        out->state = TRUST_UNTRUSTED;
    else if (strcmp(rec.digest, pf->digest) == 0 && out->added.len == 0 && out->changed.len == 0 &&
             out->removed.len == 0)
        out->state = TRUST_TRUSTED;
    else
        out->state = TRUST_CHANGED;
    if (found)
        out->trusted_at = xstrdup_or_null(rec.trusted_at);
    trust_record_free(&rec);
    return 0;
}

void trust_report_free(struct trust_report *r)
{
    if (!r)
        return;
    free(r->trusted_at);
    strv_free(&r->added);
    strv_free(&r->changed);
    strv_free(&r->removed);
    memset(r, 0, sizeof(*r));
}

void trust_report_lines(const struct trust_report *r, struct buf *out)
{
    const struct {
        const char *label;
        const struct strv *v;
    } groups[] = {{"new", &r->added}, {"changed", &r->changed}, {"removed", &r->removed}};
    for (size_t g = 0; g < 3; g++)
        for (size_t i = 0; i < groups[g].v->len; i++)
            buf_printf(out, "  %-8s %s\n", groups[g].label, groups[g].v->items[i]);
}

char *trust_command(const char *root)
{
    bool plain = *root != '\0';
    for (const char *p = root; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("/._-+:@%,=", *p)))
            plain = false;
    if (plain)
        return xasprintf("bottle trust %s", root);
    struct buf b = BUF_INIT;
    buf_append_str(&b, "bottle trust '");
    for (const char *p = root; *p; p++) {
        if (*p == '\'')
            buf_append_str(&b, "'\\''");
        else
            buf_append_char(&b, *p);
    }
    buf_append_char(&b, '\'');
    return buf_steal(&b);
}

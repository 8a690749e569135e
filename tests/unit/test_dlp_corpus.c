#include "tests/unit/testutil.h"

#include <zlib.h>

#include "common/buf.h"
#include "sidecar/dlp/dlp.h"

/*
 * False positives of the outbound detectors on a corpus of what an agent
 * really sends: source code, lockfiles, images as base64, UUIDs, git
 * SHAs and logs, prose, URLs, minified JavaScript, all of it also wrapped
 * in Anthropic- and OpenAI-shaped JSON request bodies. The corpus is
 * generated here from a fixed seed, so every run scans the same bytes; the
 * known secrets the engine is built with come from another stream and are
 * never in it. docs/dlp.md ("False positives") reports what this measures.
 *
 * Every credential-shaped literal is split in the source so that no
 * literal here is a whole credential.
 */

#define HEXL  "0123456789abcdef"
#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define B64U  ALNUM "-_"

/* ---- a fixed-seed generator (splitmix64) ------------------------------------------ */

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t below(struct rng *r, size_t n)
{
    return (size_t)(rnd(r) % n);
}

static const char *pick_from(struct rng *r, const char *const *list, size_t n)
{
    return list[below(r, n)];
}

#define PICK(r, list) pick_from(r, list, sizeof(list) / sizeof(list[0]))

static void put_chars(struct buf *b, struct rng *r, const char *alphabet, size_t n)
{
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        buf_append_char(b, alphabet[below(r, k)]);
}

static char *random_string(struct rng *r, const char *prefix, const char *alphabet, size_t n)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, prefix);
    put_chars(&b, r, alphabet, n);
    return buf_steal(&b);
}

static void put_b64(struct buf *b, const unsigned char *p, size_t n, bool url, bool pad)
{
    const char *a = url ? B64U : ALNUM "+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        v |= i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0;
        v |= i + 2 < n ? p[i + 2] : 0;
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < 4; k++) {
            if (k < chars)
                buf_append_char(b, a[(v >> (18 - 6 * k)) & 63]);
            else if (pad)
                buf_append_char(b, '=');
        }
    }
}

static void put_random_b64(struct buf *b, struct rng *r, size_t nbytes, bool url, bool pad)
{
    unsigned char *p = xmalloc(nbytes + 1);
    for (size_t i = 0; i < nbytes; i++)
        p[i] = (unsigned char)rnd(r);
    put_b64(b, p, nbytes, url, pad);
    free(p);
}

static void put_uuid(struct buf *b, struct rng *r)
{
    put_chars(b, r, HEXL, 8);
    buf_append_str(b, "-");
    put_chars(b, r, HEXL, 4);
    buf_append_str(b, "-4");
    put_chars(b, r, HEXL, 3);
    buf_append_char(b, "89ab"[below(r, 4)]);
    put_chars(b, r, HEXL, 3);
    buf_append_str(b, "-");
    put_chars(b, r, HEXL, 12);
}

/* ---- words ------------------------------------------------------------------------- */

static const char *const words[] = {
    "the",       "of",        "and",      "to",      "a",         "in",        "is",
    "that",      "for",       "it",       "as",      "was",       "with",      "be",
    "by",        "on",        "not",      "this",    "are",       "or",        "from",
    "at",        "which",     "but",      "have",    "an",        "they",      "you",
    "were",      "their",     "one",      "all",     "we",        "can",       "has",
    "there",     "been",      "if",       "more",    "when",      "will",      "would",
    "who",       "so",        "no",       "request", "server",    "client",    "value",
    "function",  "module",    "error",    "buffer",  "parser",    "handler",   "token",
    "secret",    "config",    "cache",    "index",   "stream",    "socket",    "thread",
    "queue",     "message",   "response", "header",  "payload",   "session",   "account",
    "user",      "key",       "hash",     "digest",  "signature", "commit",    "branch",
    "merge",     "release",   "version",  "package", "library",   "compiler",  "memory",
    "allocator", "pointer",   "length",   "offset",  "window",    "table",     "entry",
    "record",    "field",     "schema",   "query",   "filter",    "result",    "status",
    "timeout",   "retry",     "backoff",  "limit",   "budget",    "policy",    "route",
    "proxy",     "upstream",  "sidecar",  "sandbox", "container", "process",   "signal",
    "kernel",    "network",   "address",  "port",    "host",      "domain",    "certificate",
    "because",   "however",   "although", "usually", "quickly",   "carefully", "simply",
    "describes", "returns",   "checks",   "builds",  "reads",     "writes",    "keeps",
    "sends",     "receives",  "ignores",  "refuses", "accepts",   "parses",    "encodes",
    "decodes",   "important", "small",    "large",   "new",       "old",       "first",
    "last",      "next",      "previous", "whole",   "partial",   "empty",     "valid",
};

static const char *const names[] = {"Alice Martin", "Bob Chen",     "Carla Rossi", "Dmitri Ivanov",
                                    "Eve Okafor",   "Farid Haddad", "Grace Kim",   "Hiro Tanaka"};

static const char *word(struct rng *r)
{
    return PICK(r, words);
}

static void put_sentence(struct buf *b, struct rng *r)
{
    size_t n = 6 + below(r, 18);
    for (size_t i = 0; i < n; i++) {
        const char *w = word(r);
        if (i == 0)
            buf_printf(b, "%c%s", w[0] - 32 * (w[0] >= 'a' && w[0] <= 'z'), w + 1);
        else
            buf_printf(b, " %s", w);
        if (i + 1 < n && below(r, 12) == 0)
            buf_append_char(b, ',');
    }
    /* Some non-ASCII, as prose has: escaped as \u in JSON by many writers. */
    if (below(r, 20) == 0)
        buf_append_str(b, below(r, 2) ? " \xe2\x80\x94 caf\xc3\xa9" : " \xf0\x9f\x99\x82");
    buf_append_str(b, below(r, 10) == 0 ? "? " : ". ");
}

static void put_paragraph(struct buf *b, struct rng *r, size_t sentences)
{
    for (size_t i = 0; i < sentences; i++)
        put_sentence(b, r);
    buf_append_str(b, "\n\n");
}

enum ident_style { SNAKE, CAMEL, PASCAL, UPPER };

static void put_ident(struct buf *b, struct rng *r, enum ident_style style)
{
    size_t n = 1 + below(r, 3);
    for (size_t i = 0; i < n; i++) {
        const char *w = word(r);
        if (i > 0 && (style == SNAKE || style == UPPER))
            buf_append_char(b, '_');
        for (size_t k = 0; w[k]; k++) {
            char c = w[k];
            bool cap = style == UPPER || (k == 0 && (style == PASCAL || (style == CAMEL && i > 0)));
            buf_append_char(b, cap && c >= 'a' && c <= 'z' ? (char)(c - 32) : c);
        }
    }
}

static char *ident(struct rng *r, enum ident_style style)
{
    struct buf b = BUF_INIT;
    put_ident(&b, r, style);
    return buf_steal(&b);
}

/* ---- source code ------------------------------------------------------------------- */

static void gen_c(struct buf *b, struct rng *r)
{
    buf_append_str(b, "/*\n * ");
    put_sentence(b, r);
    buf_append_str(b, "\n */\n#include <stdint.h>\n#include <string.h>\n\n");
    for (size_t f = 0; f < 6; f++) {
        char *fn = ident(r, SNAKE), *ty = ident(r, SNAKE), *k = ident(r, UPPER);
        buf_printf(b, "#define %s 0x%llxu\n\n", k, (unsigned long long)(rnd(r) & 0xffffff));
        buf_printf(b, "static const uint32_t %s_table[8] = {\n   ", fn);
        for (int i = 0; i < 8; i++)
            buf_printf(b, " 0x%08xu,", (unsigned)rnd(r));
        buf_append_str(b, "\n};\n\n");
        if (below(r, 2)) {
            buf_printf(
                b, "/* test fixture: %zu random bytes, base64 */\nstatic const char %s_b64[] =\n",
                (size_t)57 * 4, fn);
            for (int l = 0; l < 4; l++) {
                buf_append_str(b, "    \"");
                put_random_b64(b, r, 57, false, true);
                buf_append_str(b, l == 3 ? "\";\n\n" : "\"\n");
            }
        }
        buf_printf(b, "int %s(struct %s *ctx, const char *key, size_t len)\n{\n", fn, ty);
        buf_printf(b, "    if (len > %s)\n        return -EINVAL;\n", k);
        buf_printf(b, "    uint64_t h = 0x%016llxull;\n", (unsigned long long)rnd(r));
        buf_append_str(b, "    for (size_t i = 0; i < len; i++)\n"
                          "        h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;\n");
        buf_append_str(b, "    snprintf(ctx->msg, sizeof(ctx->msg), \"%s: ");
        put_sentence(b, r);
        buf_append_str(b, "\", key);\n    return (int)(h & 0x7fffffff);\n}\n\n");
        free(fn), free(ty), free(k);
    }
}

static void gen_python(struct buf *b, struct rng *r)
{
    buf_append_str(b, "import base64\nimport hashlib\nimport uuid\n\n");
    buf_append_str(b, "EXPECTED_SHA256 = \"");
    put_chars(b, r, HEXL, 64);
    buf_append_str(b, "\"\nFIXTURE = base64.b64decode(\n    \"");
    put_random_b64(b, r, 48 + below(r, 96), false, true);
    buf_append_str(b, "\"\n)\n\n");
    for (size_t c = 0; c < 3; c++) {
        char *cls = ident(r, PASCAL);
        buf_printf(b, "class %s:\n    \"\"\"", cls);
        put_sentence(b, r);
        buf_append_str(b, "\"\"\"\n\n");
        for (size_t m = 0; m < 3; m++) {
            char *fn = ident(r, SNAKE), *a = ident(r, SNAKE);
            buf_printf(b, "    def %s(self, %s, timeout=%zu):\n", fn, a, below(r, 120));
            buf_printf(
                b, "        url = f\"https://api.example.com/v1/%s/{%s}?page=%zu&per_page=100\"\n",
                word(r), a, below(r, 9) + 1);
            buf_append_str(b, "        key = hashlib.sha1(url.encode()).hexdigest()  # e.g. ");
            put_chars(b, r, HEXL, 40);
            buf_append_str(b, "\n        return {\"id\": \"");
            put_uuid(b, r);
            buf_printf(b, "\", \"name\": \"%s\", \"digest\": key, \"n\": %zu}\n\n", word(r),
                       below(r, 1000));
            free(fn), free(a);
        }
        free(cls);
    }
}

static void gen_js(struct buf *b, struct rng *r)
{
    buf_append_str(b, "'use strict';\n\nconst crypto = require('crypto');\n\n");
    for (size_t f = 0; f < 6; f++) {
        char *fn = ident(r, CAMEL), *a = ident(r, CAMEL);
        buf_printf(b, "export async function %s(%s, opts = {}) {\n", fn, a);
        buf_printf(b,
                   "  const url = `https://%s.example.org/api/%s?id=${encodeURIComponent(%s)}"
                   "&v=%zu`;\n",
                   word(r), word(r), a, below(r, 5));
        buf_append_str(b, "  const res = await fetch(url, { headers: { 'X-Request-Id': '");
        put_uuid(b, r);
        buf_append_str(b, "' } });\n  if (!res.ok) throw new Error(`");
        put_sentence(b, r);
        buf_append_str(b, "${res.status}`);\n  const etag = 'W/\"");
        put_chars(b, r, HEXL, 32);
        buf_append_str(b, "\"';\n  return { etag, body: await res.json() };\n}\n\n");
        free(fn), free(a);
    }
    buf_append_str(b, "test('decodes the fixture', () => {\n  const png = Buffer.from('");
    put_random_b64(b, r, 120, false, true);
    buf_append_str(b,
                   "', 'base64');\n  expect(crypto.createHash('sha256').update(png).digest('hex'))"
                   ".toBe('");
    put_chars(b, r, HEXL, 64);
    buf_append_str(b, "');\n});\n");
}

static void gen_go(struct buf *b, struct rng *r)
{
    buf_printf(b, "package %s\n\nimport (\n\t\"encoding/hex\"\n\t\"fmt\"\n)\n\n", word(r));
    for (size_t s = 0; s < 4; s++) {
        char *ty = ident(r, PASCAL), *fa = ident(r, PASCAL), *fb = ident(r, PASCAL),
             *ja = ident(r, SNAKE), *jb = ident(r, SNAKE);
        buf_printf(b, "// %s ", ty);
        put_sentence(b, r);
        buf_printf(b,
                   "\ntype %s struct {\n\t%s string `json:\"%s\"`\n\t%s int64 "
                   "`json:\"%s,omitempty\"`\n}\n\n",
                   ty, fa, ja, fb, jb);
        buf_printf(b, "var golden%s = \"", ty);
        put_chars(b, r, HEXL, 64);
        buf_printf(b, "\"\n\nfunc (x *%s) Check(sum []byte) error {\n", ty);
        buf_printf(b,
                   "\tif hex.EncodeToString(sum) != golden%s {\n\t\treturn fmt.Errorf(\"%%s: ", ty);
        put_sentence(b, r);
        buf_printf(b, "\", x.%s)\n\t}\n\treturn nil\n}\n\n", fa);
        free(ty), free(fa), free(fb), free(ja), free(jb);
    }
}

static void gen_rust(struct buf *b, struct rng *r)
{
    buf_append_str(b, "use std::collections::HashMap;\n\n");
    for (size_t s = 0; s < 4; s++) {
        char *k = ident(r, UPPER), *fn = ident(r, SNAKE), *ty = ident(r, PASCAL);
        buf_printf(b, "const %s: [u8; 16] = [", k);
        for (int i = 0; i < 16; i++)
            buf_printf(b, "0x%02x%s", (unsigned)(rnd(r) & 0xff), i < 15 ? ", " : "");
        buf_printf(b, "];\n\n/// ");
        put_sentence(b, r);
        buf_printf(b, "\npub fn %s(map: &mut HashMap<String, %s>) -> Result<u64, Error> {\n", fn,
                   ty);
        buf_append_str(b, "    let id = uuid::Uuid::parse_str(\"");
        put_uuid(b, r);
        buf_printf(
            b, "\")?;\n    let sum = blake3::hash(&%s);\n    assert_eq!(sum.to_hex().as_str(), \"",
            k);
        put_chars(b, r, HEXL, 64);
        buf_append_str(b, "\");\n    map.entry(id.to_string()).or_default();\n    Ok(0x");
        put_chars(b, r, HEXL, 12);
        buf_append_str(b, ")\n}\n\n");
        free(k), free(fn), free(ty);
    }
}

/* ---- lockfiles --------------------------------------------------------------------- */

static void put_version(struct buf *b, struct rng *r)
{
    buf_printf(b, "%zu.%zu.%zu", below(r, 12), below(r, 40), below(r, 30));
}

static void gen_package_lock(struct buf *b, struct rng *r)
{
    buf_append_str(b, "{\n  \"name\": \"app\",\n  \"lockfileVersion\": 3,\n  \"packages\": {\n");
    for (size_t i = 0; i < 30; i++) {
        char *name = ident(r, SNAKE);
        for (char *c = name; *c; c++)
            *c = *c == '_' ? '-' : *c;
        struct buf v = BUF_INIT;
        put_version(&v, r);
        buf_printf(b, "    \"node_modules/%s\": {\n      \"version\": \"%s\",\n", name, v.data);
        buf_printf(b, "      \"resolved\": \"https://registry.npmjs.org/%s/-/%s-%s.tgz\",\n", name,
                   name, v.data);
        bool sha512 = below(r, 8) != 0; /* older entries carry sha1 */
        buf_printf(b, "      \"integrity\": \"%s-", sha512 ? "sha512" : "sha1");
        put_random_b64(b, r, sha512 ? 64 : 20, false, true);
        buf_append_str(b, below(r, 3) ? "\",\n      \"dev\": true\n    },\n" : "\"\n    },\n");
        buf_free(&v);
        free(name);
    }
    buf_append_str(b, "  }\n}\n");
}

static void gen_cargo_lock(struct buf *b, struct rng *r)
{
    buf_append_str(b, "# This file is automatically @generated by Cargo.\nversion = 3\n\n");
    for (size_t i = 0; i < 30; i++) {
        char *name = ident(r, SNAKE);
        buf_printf(b, "[[package]]\nname = \"%s\"\nversion = \"", name);
        put_version(b, r);
        buf_append_str(b, "\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"
                          "checksum = \"");
        put_chars(b, r, HEXL, 64);
        buf_printf(b, "\"\ndependencies = [\n \"%s\",\n \"%s\",\n]\n\n", word(r), word(r));
        free(name);
    }
}

static void gen_poetry_lock(struct buf *b, struct rng *r)
{
    for (size_t i = 0; i < 20; i++) {
        char *name = ident(r, SNAKE);
        struct buf v = BUF_INIT;
        put_version(&v, r);
        buf_printf(b, "[[package]]\nname = \"%s\"\nversion = \"%s\"\ndescription = \"", name,
                   v.data);
        put_sentence(b, r);
        buf_append_str(b, "\"\noptional = false\npython-versions = \">=3.8\"\nfiles = [\n");
        for (int f = 0; f < 2; f++) {
            buf_printf(b, "    {file = \"%s-%s%s\", hash = \"sha256:", name, v.data,
                       f ? ".tar.gz" : "-py3-none-any.whl");
            put_chars(b, r, HEXL, 64);
            buf_append_str(b, "\"},\n");
        }
        buf_append_str(b, "]\n\n");
        buf_free(&v);
        free(name);
    }
    buf_append_str(b, "[metadata]\nlock-version = \"2.0\"\ncontent-hash = \"");
    put_chars(b, r, HEXL, 64);
    buf_append_str(b, "\"\n");
}

static void gen_go_sum(struct buf *b, struct rng *r)
{
    static const char *const hosts[] = {"github.com", "golang.org/x", "google.golang.org",
                                        "go.uber.org", "gopkg.in"};
    for (size_t i = 0; i < 40; i++) {
        struct buf mod = BUF_INIT, v = BUF_INIT;
        buf_printf(&mod, "%s/%s/%s", PICK(r, hosts), word(r), word(r));
        buf_append_char(&v, 'v');
        put_version(&v, r);
        buf_printf(b, "%s %s h1:", mod.data, v.data);
        put_random_b64(b, r, 32, false, true);
        buf_printf(b, "\n%s %s/go.mod h1:", mod.data, v.data);
        put_random_b64(b, r, 32, false, true);
        buf_append_char(b, '\n');
        buf_free(&mod);
        buf_free(&v);
    }
}

/* ---- images, ids, git, prose, URLs, minified JS ---------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* A PNG (signature, IHDR, one IDAT of incompressible bytes, IEND) or a JFIF JPEG, as base64. */
static void put_image_b64(struct buf *b, struct rng *r, bool png, size_t payload)
{
    size_t n = payload + 64;
    unsigned char *p = xcalloc(n, 1), *q = p;
    if (png) {
        static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        memcpy(q, sig, 8), q += 8;
        put_be32(q, 13), memcpy(q + 4, "IHDR", 4), q += 8;
        put_be32(q, 64 + (uint32_t)below(r, 1024)), put_be32(q + 4, 64 + (uint32_t)below(r, 768));
        q[8] = 8, q[9] = 6, q += 13;
        put_be32(q, (uint32_t)crc32(0, q - 17, 17)), q += 4;
        put_be32(q, (uint32_t)payload), memcpy(q + 4, "IDAT", 4), q += 8;
        q[0] = 0x78, q[1] = 0xda; /* a zlib header, then deflate-like bytes */
        for (size_t i = 2; i < payload; i++)
            q[i] = (unsigned char)rnd(r);
        put_be32(q + payload, (uint32_t)crc32(0, q - 4, (uInt)payload + 4)), q += payload + 4;
        put_be32(q, 0), memcpy(q + 4, "IEND", 4), put_be32(q + 8, 0xae426082u), q += 12;
    } else {
        static const unsigned char soi[20] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F',
                                              0,    1,    1,    0,    0, 1,  0,   1,   0,   0};
        memcpy(q, soi, 20), q += 20;
        for (size_t i = 0; i < payload; i++)
            q[i] = (unsigned char)rnd(r);
        q += payload;
        q[0] = 0xff, q[1] = 0xd9, q += 2;
    }
    put_b64(b, p, (size_t)(q - p), false, true);
    free(p);
}

static void gen_image(struct buf *b, struct rng *r)
{
    bool png = below(r, 3) != 0;
    size_t payload = 2048 + below(r, below(r, 4) ? 24576 : 196608);
    if (below(r, 2)) {
        buf_printf(
            b,
            "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"%s\",\"data\":\"",
            png ? "image/png" : "image/jpeg");
        put_image_b64(b, r, png, payload);
        buf_append_str(b, "\"}}");
    } else {
        buf_printf(b, "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:%s;base64,",
                   png ? "image/png" : "image/jpeg");
        put_image_b64(b, r, png, payload);
        buf_append_str(b, "\",\"detail\":\"auto\"}}");
    }
}

static void gen_uuid_log(struct buf *b, struct rng *r)
{
    static const char *const levels[] = {"debug", "info", "info", "warn", "error"};
    for (size_t i = 0; i < 60; i++) {
        buf_printf(b,
                   "{\"ts\":\"2024-%02zu-%02zuT%02zu:%02zu:%02zu.%03zuZ\",\"level\":\"%s\","
                   "\"request_id\":\"",
                   1 + below(r, 12), 1 + below(r, 28), below(r, 24), below(r, 60), below(r, 60),
                   below(r, 1000), PICK(r, levels));
        put_uuid(b, r);
        buf_append_str(b, "\",\"trace_id\":\"");
        put_chars(b, r, HEXL, 32);
        buf_append_str(b, "\",\"span_id\":\"");
        put_chars(b, r, HEXL, 16);
        buf_append_str(b, "\",\"user\":\"");
        put_uuid(b, r);
        buf_append_str(b, "\",\"msg\":\"");
        put_sentence(b, r);
        buf_printf(b, "\",\"latency_ms\":%zu}\n", below(r, 5000));
    }
}

static void gen_git(struct buf *b, struct rng *r)
{
    static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (size_t i = 0; i < 12; i++) {
        const char *who = PICK(r, names);
        buf_append_str(b, "commit ");
        put_chars(b, r, HEXL, 40);
        if (below(r, 5) == 0) {
            buf_append_str(b, "\nMerge: ");
            put_chars(b, r, HEXL, 7);
            buf_append_char(b, ' ');
            put_chars(b, r, HEXL, 7);
        }
        buf_printf(b,
                   "\nAuthor: %s <%.*s@example.com>\nDate:   %s %s %zu %02zu:%02zu:%02zu 2024 "
                   "+0%zu00\n\n    ",
                   who, (int)strcspn(who, " "), who, PICK(r, days), PICK(r, months),
                   1 + below(r, 28), below(r, 24), below(r, 60), below(r, 60), below(r, 3));
        put_sentence(b, r);
        buf_append_str(b, "\n\n    ");
        put_sentence(b, r);
        put_sentence(b, r);
        buf_printf(b, "\n\n    Signed-off-by: %s <%.*s@example.com>\n\n", who,
                   (int)strcspn(who, " "), who);
    }
    for (size_t i = 0; i < 20; i++) {
        put_chars(b, r, HEXL, 7 + below(r, 2) * 5);
        buf_append_char(b, ' ');
        put_sentence(b, r);
        buf_append_char(b, '\n');
    }
    char *file = ident(r, SNAKE);
    buf_printf(b, "diff --git a/src/%s.c b/src/%s.c\nindex ", file, file);
    put_chars(b, r, HEXL, 7);
    buf_append_str(b, "..");
    put_chars(b, r, HEXL, 7);
    buf_printf(b, " 100644\n--- a/src/%s.c\n+++ b/src/%s.c\n@@ -%zu,6 +%zu,7 @@\n", file, file,
               below(r, 400), below(r, 400));
    for (int l = 0; l < 7; l++) {
        buf_append_str(b, l == 3 ? "+    " : "     ");
        put_ident(b, r, SNAKE);
        buf_append_str(b, "(ctx, 0x");
        put_chars(b, r, HEXL, 8);
        buf_append_str(b, ");\n");
    }
    for (int l = 0; l < 4; l++) {
        put_chars(b, r, HEXL, 40);
        buf_printf(b, "\trefs/heads/%s\n", word(r));
    }
    free(file);
}

static void gen_prose(struct buf *b, struct rng *r)
{
    buf_printf(b, "# %s %s\n\n", word(r), word(r));
    for (size_t p = 0; p < 10; p++)
        put_paragraph(b, r, 3 + below(r, 6));
}

static void put_url(struct buf *b, struct rng *r)
{
    switch (below(r, 6)) {
    case 0:
        buf_printf(b, "https://www.google.com/search?q=%s+%s+%s&hl=en&sourceid=chrome&ie=UTF-8",
                   word(r), word(r), word(r));
        break;
    case 1:
        buf_printf(b, "https://github.com/%s/%s/blob/", word(r), word(r));
        put_chars(b, r, HEXL, 40);
        buf_printf(b, "/src/%s.c#L%zu-L%zu", word(r), below(r, 300), 300 + below(r, 300));
        break;
    case 2:
        buf_printf(b,
                   "https://%s.s3.us-east-1.amazonaws.com/%s/%s.tar.gz?X-Amz-Algorithm="
                   "AWS4-HMAC-SHA256&X-Amz-Date=20240105T101500Z&X-Amz-Expires=3600"
                   "&X-Amz-SignedHeaders=host&X-Amz-Signature=",
                   word(r), word(r), word(r));
        put_chars(b, r, HEXL, 64);
        break;
    case 3:
        buf_printf(b, "https://accounts.example.com/oauth/authorize?response_type=code&client_id=");
        put_chars(b, r, ALNUM, 20);
        buf_printf(b,
                   "&redirect_uri=https%%3A%%2F%%2Fapp.example.com%%2Fcallback&scope=read%%20write"
                   "&state=");
        put_chars(b, r, B64U, 43);
        break;
    case 4:
        buf_printf(b,
                   "https://shop.example.com/p/%s-%s?utm_source=newsletter&utm_medium=email"
                   "&utm_campaign=%s&gclid=",
                   word(r), word(r), word(r));
        put_chars(b, r, B64U, 40);
        break;
    default:
        buf_printf(b, "https://cdn.example.net/assets/%s.", word(r));
        put_chars(b, r, HEXL, 20);
        buf_append_str(b, ".js?v=");
        put_chars(b, r, HEXL, 8);
        break;
    }
}

static void gen_urls(struct buf *b, struct rng *r)
{
    for (size_t i = 0; i < 40; i++) {
        put_url(b, r);
        buf_append_char(b, '\n');
    }
}

static void gen_minified_js(struct buf *b, struct rng *r)
{
    static const char *const ids[] = {"e", "t", "n", "r", "o", "i", "a", "s", "u", "c", "l", "f"};
    buf_append_str(b, "!function(e,t){\"object\"==typeof exports&&\"undefined\"!=typeof module?"
                      "module.exports=t():\"function\"==typeof define&&define.amd?define(t):"
                      "(e=e||self).Lib=t()}(this,function(){\"use strict\";");
    for (size_t i = 0; i < 300; i++) {
        const char *x = PICK(r, ids), *y = PICK(r, ids);
        switch (below(r, 5)) {
        case 0:
            buf_printf(b, "var %s%zu=function(%s,%s){return %s.%s(%s)};", x, i, x, y, y, word(r),
                       x);
            break;
        case 1:
            buf_printf(b, "%s.prototype.%s=function(){return this._%s||(this._%s=%zu)};", x,
                       word(r), word(r), word(r), below(r, 99999));
            break;
        case 2:
            buf_printf(b, "if(%s&&%s.%s===\"%s\")throw new Error(\"%s %s\");", x, y, word(r),
                       word(r), word(r), word(r));
            break;
        case 3:
            buf_printf(b, "%s[%zu]=0x%llx;", x, below(r, 256), (unsigned long long)(rnd(r) >> 36));
            break;
        default:
            buf_printf(b, "for(var %s=0;%s<%s.length;%s++)%s+=%s.charCodeAt(%s)<<%zu;", x, x, y, x,
                       y, y, x, below(r, 24));
            break;
        }
    }
    buf_append_str(b, "});\n//# sourceMappingURL=data:application/json;charset=utf-8;base64,");
    struct buf map = BUF_INIT;
    buf_append_str(&map, "{\"version\":3,\"sources\":[\"../src/index.ts\"],\"names\":[");
    for (int i = 0; i < 40; i++)
        buf_printf(&map, "%s\"%s\"", i ? "," : "", word(r));
    buf_append_str(&map, "],\"mappings\":\"");
    put_chars(&map, r, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/;,", 2000);
    buf_append_str(&map, "\"}");
    put_b64(b, (const unsigned char *)map.data, map.len, false, true);
    buf_append_char(b, '\n');
    buf_free(&map);
}

/*
 * Configuration and documentation an agent reads and forwards: .env
 * examples that name variables instead of values, test keys of providers
 * whose live keys the rules match, AWS's documentation key id, public
 * certificates and keys, registry and image digests.
 */
static void gen_config(struct buf *b, struct rng *r)
{
    buf_append_str(b, "# .env.example\nANTHROPIC_API_KEY=$ANTHROPIC_API_KEY\n"
                      "OPENAI_API_KEY=\"<your key>\"\nGITHUB_TOKEN=${GITHUB_TOKEN:?set it}\n");
    buf_append_str(b, "STRIPE_KEY=sk_"
                      "test_");
    put_chars(b, r, ALNUM, 24);
    buf_append_str(b, "\nSTRIPE_PUBLISHABLE_KEY=pk_"
                      "live_");
    put_chars(b, r, ALNUM, 24);
    buf_append_str(b, "\nTWILIO_ACCOUNT_SID=AC"
                      "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n"
                      "aws_access_key_id = AKIA"
                      "IOSFODNN7EXAMPLE\n"
                      "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}\n"
                      "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n"
                      "Authorization: Bearer $TOKEN\n\n");
    buf_append_str(b, "-----BEGIN CERTIFICATE-----\n");
    for (int l = 0; l < 8; l++) {
        put_random_b64(b, r, 48, false, false);
        buf_append_char(b, '\n');
    }
    buf_append_str(b, "-----END CERTIFICATE-----\n-----BEGIN PUBLIC KEY-----\n");
    put_random_b64(b, r, 48, false, false);
    buf_append_str(b, "\n-----END PUBLIC KEY-----\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI");
    put_random_b64(b, r, 32, false, false);
    buf_printf(b, " %s@%s\n\nimage: ghcr.io/%s/%s@sha256:", word(r), word(r), word(r), word(r));
    put_chars(b, r, HEXL, 64);
    buf_append_str(b, "\n<script src=\"https://cdn.example.net/lib.min.js\" integrity=\"sha384-");
    put_random_b64(b, r, 48, false, true);
    buf_append_str(b, "\" crossorigin=\"anonymous\"></script>\n\n");
    put_paragraph(b, r, 3);
}

/* ---- the corpus ---------------------------------------------------------------------- */

struct corpus_kind {
    const char *name;
    void (*gen)(struct buf *b, struct rng *r);
    size_t docs;
    bool json_block; /* the document is a JSON content block, not text */
};

static const struct corpus_kind kinds[] = {
    {"c", gen_c, 120, false},
    {"python", gen_python, 120, false},
    {"javascript", gen_js, 120, false},
    {"go", gen_go, 120, false},
    {"rust", gen_rust, 120, false},
    {"package-lock.json", gen_package_lock, 60, false},
    {"Cargo.lock", gen_cargo_lock, 50, false},
    {"poetry.lock", gen_poetry_lock, 50, false},
    {"go.sum", gen_go_sum, 60, false},
    {"image", gen_image, 60, true},
    {"uuid-log", gen_uuid_log, 80, false},
    {"git", gen_git, 100, false},
    {"prose", gen_prose, 150, false},
    {"url", gen_urls, 80, false},
    {"minified-js", gen_minified_js, 60, false},
    {"config", gen_config, 60, false},
};

#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

/* JSON string escaping as writers do it: optionally '/' as "\/", non-ASCII as \uXXXX. */
static void put_json_string(struct buf *b, const char *p, size_t n, bool slash, bool ascii)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c == '/' && slash)
            buf_append_str(b, "\\/");
        else if (c == '\n')
            buf_append_str(b, "\\n");
        else if (c == '\t')
            buf_append_str(b, "\\t");
        else if (c < 0x20)
            buf_printf(b, "\\u%04x", c);
        else if (c >= 0x80 && ascii) {
            unsigned cp = 0, more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
            cp = c & (0x3f >> more);
            for (unsigned k = 0; k < more && i + 1 < n; k++)
                cp = (cp << 6) | ((unsigned char)p[++i] & 0x3f);
            if (cp >= 0x10000)
                buf_printf(b, "\\u%04x\\u%04x", 0xd800 + ((cp - 0x10000) >> 10),
                           0xdc00 + ((cp - 0x10000) & 0x3ff));
            else
                buf_printf(b, "\\u%04x", cp);
        } else
            buf_append_char(b, (char)c);
    }
}

static void put_json_text(struct buf *b, struct rng *r, bool slash, bool ascii)
{
    struct buf t = BUF_INIT;
    put_paragraph(&t, r, 2 + below(r, 4));
    put_json_string(b, t.data, t.len, slash, ascii);
    buf_free(&t);
}

/*
 * An Anthropic Messages or OpenAI Chat Completions request carrying doc as a
 * tool result (or as a content block, for images), with the ids, metadata
 * and tool definitions real clients send.
 */
static void build_request(struct buf *b, struct rng *r, const char *doc, size_t n, bool block,
                          bool openai)
{
    bool slash = below(r, 4) == 0, ascii = below(r, 2) == 0;
    char *call =
        openai ? random_string(r, "call_", ALNUM, 24) : random_string(r, "toolu_01", ALNUM, 22);
    if (!openai) {
        buf_append_str(b, "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":8192,\"system\":\"");
        put_json_text(b, r, slash, ascii);
        buf_append_str(
            b, "\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"");
        put_json_text(b, r, slash, ascii);
        buf_append_str(b,
                       "\"}]},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"");
        put_json_text(b, r, slash, ascii);
        buf_printf(b,
                   "\"},{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":\"read_file\",\"input\":{"
                   "\"path\":\"src/%s.c\"}}]},{\"role\":\"user\",\"content\":[{\"type\":"
                   "\"tool_result\",\"tool_use_id\":\"%s\",\"content\":",
                   call, word(r), call);
        if (block) {
            buf_append_str(b, "[");
            buf_append(b, doc, n);
            buf_append_str(b, "]");
        } else {
            buf_append_str(b, "\"");
            put_json_string(b, doc, n, slash, ascii);
            buf_append_str(b, "\"");
        }
        buf_append_str(b, "}]}],\"tools\":[{\"name\":\"read_file\",\"description\":\"");
        put_json_text(b, r, slash, ascii);
        buf_append_str(
            b, "\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":"
               "\"string\"}},\"required\":[\"path\"]}}],\"metadata\":{\"user_id\":\"user_");
        put_chars(b, r, HEXL, 64);
        buf_append_str(b, "_account_");
        put_uuid(b, r);
        buf_append_str(b, "_session_");
        put_uuid(b, r);
        buf_append_str(b, "\"},\"stream\":true}");
    } else {
        buf_append_str(b,
                       "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"");
        put_json_text(b, r, slash, ascii);
        buf_append_str(b, "\"},{\"role\":\"user\",\"content\":\"");
        put_json_text(b, r, slash, ascii);
        /* arguments is JSON inside a JSON string: escaped twice */
        buf_printf(b,
                   "\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"%s\","
                   "\"type\":\"function\",\"function\":{\"name\":\"run_shell\",\"arguments\":"
                   "\"{\\\"cmd\\\":\\\"cat src/%s.py | head -n 200\\\"}\"}}]},",
                   call, word(r));
        if (block) {
            buf_append_str(b, "{\"role\":\"user\",\"content\":[");
            buf_append(b, doc, n);
            buf_append_str(b, "]}");
        } else {
            buf_printf(b, "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"", call);
            put_json_string(b, doc, n, slash, ascii);
            buf_append_str(b, "\"}");
        }
        buf_append_str(b, "],\"temperature\":0.2,\"stream\":true,\"user\":\"");
        put_uuid(b, r);
        buf_append_str(b, "\"}");
    }
    free(call);
}

struct corpus {
    struct buf *docs; /* raw documents */
    struct buf *reqs; /* each wrapped in a request body */
    size_t *kind;     /* kinds[] index of each */
    size_t n;
    size_t doc_bytes, req_bytes;
};

static void corpus_build(struct corpus *c, uint64_t seed)
{
    struct rng r = {seed};
    memset(c, 0, sizeof(*c));
    for (size_t k = 0; k < N_KINDS; k++)
        c->n += kinds[k].docs;
    c->docs = xcalloc(c->n, sizeof(*c->docs));
    c->reqs = xcalloc(c->n, sizeof(*c->reqs));
    c->kind = xcalloc(c->n, sizeof(*c->kind));
    size_t i = 0;
    for (size_t k = 0; k < N_KINDS; k++) {
        for (size_t d = 0; d < kinds[k].docs; d++, i++) {
            c->kind[i] = k;
            kinds[k].gen(&c->docs[i], &r);
            build_request(&c->reqs[i], &r, c->docs[i].data, c->docs[i].len, kinds[k].json_block,
                          i % 2 == 1);
            c->doc_bytes += c->docs[i].len;
            c->req_bytes += c->reqs[i].len;
        }
    }
}

static void corpus_free(struct corpus *c)
{
    for (size_t i = 0; i < c->n; i++) {
        buf_free(&c->docs[i]);
        buf_free(&c->reqs[i]);
    }
    free(c->docs), free(c->reqs), free(c->kind);
}

/* ---- the secrets the engine holds ------------------------------------------------------ */

#define N_SECRETS 50

/*
 * Shaped like what the sidecar holds: route tokens of the usual providers,
 * opaque urlsafe and hex tokens, the canary (40 hex) and the provider
 * placeholders. Drawn from a seed of their own: none is in the corpus.
 */
static void make_secrets(struct strv *v, uint64_t seed)
{
    struct rng r = {seed};
    strv_push_owned(v, random_string(&r, "", HEXL, 40)); /* canary */
    for (int i = 0; i < 4; i++)
        strv_push_owned(v, random_string(&r, "bottle-placeholder-", HEXL, 32));
    for (int i = 0; i < 6; i++) {
        char *t = random_string(&r, "sk-ant-api03-", B64U, 93);
        strv_push_owned(v, xasprintf("%sAA", t));
        free(t);
    }
    for (int i = 0; i < 4; i++)
        strv_push_owned(v, random_string(&r,
                                         "sk-pr"
                                         "oj-",
                                         B64U, 156));
    for (int i = 0; i < 4; i++)
        strv_push_owned(v, random_string(&r,
                                         "gh"
                                         "p_",
                                         ALNUM, 36));
    for (int i = 0; i < 4; i++)
        strv_push_owned(v, random_string(&r, "tok-", HEXL, 32));
    while (v->len < N_SECRETS) {
        size_t n = 32 + below(&r, 33);
        strv_push_owned(v, below(&r, 2) ? random_string(&r, "", B64U, n)
                                        : random_string(&r, "", HEXL, n & ~(size_t)1));
    }
}

static struct dlp_engine *corpus_engine(const struct strv *secrets)
{
    struct dlp_config cfg = {.max_matches = 100000};
    struct bottle_err err = {0};
    struct dlp_engine *e = dlp_engine_new(&cfg, secrets, &err);
    assert_non_null(e);
    assert_int_equal(dlp_engine_secret_count(e, NULL), secrets->len);
    return e;
}

static struct http_header hdr(const char *n, const char *v)
{
    return (struct http_header){{n, strlen(n)}, {v, strlen(v)}};
}

static void scan_json_body(const struct dlp_engine *e, unsigned bits, const char *body, size_t n,
                           struct dlp_result *res)
{
    struct http_header hs[3] = {hdr("Content-Type", "application/json"),
                                hdr("Anthropic-Version", "2023-06-01"),
                                hdr("User-Agent", "claude-cli/1.0.0 (external, cli)")};
    struct dlp_request req = {
        "api.anthropic.com", "/v1/messages?beta=true", 22, hs, 3, NULL, body, n};
    assert_int_equal(dlp_scan_request(e, bits, &req, res), 0);
}

/* Fails with the rule, location and a redacted snippet of every block-severity match. */
static void assert_no_block(const struct dlp_result *res, const char *what, const char *text,
                            size_t len)
{
    const struct dlp_match *m = dlp_result_first_block(res);
    if (!m)
        return;
    char snip[200];
    dlp_snippet(text, len, res, m, snip, sizeof(snip));
    fail_msg("false positive in %s: %s in %s at %zu: %s", what, m->rule, m->location, m->offset,
             snip);
}

static size_t count_rule(const struct dlp_result *res, const char *rule)
{
    size_t n = 0;
    for (size_t i = 0; i < res->n; i++)
        n += strcmp(res->matches[i].rule, rule) == 0;
    return n;
}

static bool has_rule(const struct dlp_result *res, const char *rule, enum dlp_severity sev)
{
    for (size_t i = 0; i < res->n; i++)
        if (strcmp(res->matches[i].rule, rule) == 0 && res->matches[i].severity == sev)
            return true;
    return false;
}

/*
 * The test can fail: a value put into a corpus document, as text and inside
 * its request, is found. A token of a rule, a known secret, and 12
 * characters of a known secret's projection.
 */
static void check_positive_controls(const struct dlp_engine *e, const struct strv *secrets,
                                    const struct corpus *c)
{
    struct rng r = {0xc0de};
    char *pat = random_string(&r,
                              "gh"
                              "p_",
                              ALNUM, 36);
    char *partial = xasprintf("%.12s", secrets->items[19] + 4); /* tok-<hex>: 12 of its hex */
    const struct {
        const char *value, *rule;
    } controls[] = {
        {pat, "github_pat"},
        {secrets->items[7], DLP_RULE_KNOWN_SECRET},
        {partial, DLP_RULE_SECRET_PARTIAL},
    };
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 7; i < c->n; i += c->n / 9) {
            if (kinds[c->kind[i]].json_block)
                continue;
            const struct buf *d = &c->docs[i];
            const char *nl = memchr(d->data + d->len / 2, '\n', d->len - d->len / 2);
            size_t at = nl ? (size_t)(nl - d->data) + 1 : d->len;
            struct buf doc = BUF_INIT, req = BUF_INIT;
            buf_append(&doc, d->data, at);
            buf_printf(&doc, "value: %s\n", controls[k].value);
            buf_append(&doc, d->data + at, d->len - at);
            struct dlp_result res;
            dlp_result_init(&res);
            assert_int_equal(dlp_scan_text(e, DLP_OUT_DEFAULT, "body", doc.data, doc.len, &res), 0);
            if (!has_rule(&res, controls[k].rule, DLP_BLOCK))
                fail_msg("%s not found in %s (text)", controls[k].rule, kinds[c->kind[i]].name);
            build_request(&req, &r, doc.data, doc.len, false, i % 2 == 0);
            dlp_result_reset(&res);
            scan_json_body(e, DLP_OUT_DEFAULT, req.data, req.len, &res);
            if (!has_rule(&res, controls[k].rule, DLP_BLOCK))
                fail_msg("%s not found in %s (request)", controls[k].rule, kinds[c->kind[i]].name);
            dlp_result_free(&res);
            buf_free(&doc);
            buf_free(&req);
        }
    }
    free(pat), free(partial);
}

/*
 * Entropy (opt-in, a warning) on this corpus, as docs/dlp.md reports it:
 * only base64 of random bytes 64 characters long or more reaches the
 * threshold, so it warns on documents of two kinds, and on few of those.
 */
#define ENTROPY_FLAGGED_IMAGES 32 /* of 60: every blob over a few KiB */
#define ENTROPY_FLAGGED_LOCKS  6  /* of 60 package-lock.json: sha512 integrity values */
#define ENTROPY_FLAGGED_SLACK  4

static void test_corpus_default_rules(void **state)
{
    (void)state;
    struct corpus c;
    corpus_build(&c, 0x5eed0001);
    struct strv secrets = STRV_INIT;
    make_secrets(&secrets, 0x5ec7e75);
    struct dlp_engine *e = corpus_engine(&secrets);
    assert_true(c.doc_bytes > ((size_t)8 << 20));

    size_t flagged[N_KINDS] = {0}, flagged_docs = 0, pieces = 0;
    struct dlp_result res;
    dlp_result_init(&res);
    /* every request to one route: pieces of secrets across requests never add up here */
    struct dlp_recent *recent = dlp_recent_new(0);
    for (size_t i = 0; i < c.n; i++) {
        const char *what = kinds[c.kind[i]].name;
        dlp_result_reset(&res);
        assert_int_equal(
            dlp_scan_text(e, DLP_OUT_DEFAULT, "body", c.docs[i].data, c.docs[i].len, &res), 0);
        assert_no_block(&res, what, c.docs[i].data, c.docs[i].len);
        assert_int_equal(res.n, 0);

        dlp_result_reset(&res);
        scan_json_body(e, DLP_OUT_DEFAULT, c.reqs[i].data, c.reqs[i].len, &res);
        assert_no_block(&res, what, c.reqs[i].data, c.reqs[i].len);
        assert_int_equal(res.n, 0);
        assert_false(res.too_large || res.undecodable);
        struct dlp_verdict pv;
        pieces += res.n_pieces;
        if (dlp_recent_check(recent, "api.anthropic.com:443", &res, 1000 + i, &pv))
            fail_msg("false positive in %s: %s", what, pv.message);

        /* entropy: a warning, never a block; a document flagged as text is flagged in its request
         */
        dlp_result_reset(&res);
        assert_int_equal(dlp_scan_text(e, DLP_OUT_DEFAULT | DLP_OUT_ENTROPY, "body", c.docs[i].data,
                                       c.docs[i].len, &res),
                         0);
        size_t as_text = res.n;
        dlp_result_reset(&res);
        scan_json_body(e, DLP_OUT_DEFAULT | DLP_OUT_ENTROPY, c.reqs[i].data, c.reqs[i].len, &res);
        assert_int_equal(count_rule(&res, DLP_RULE_ENTROPY), res.n);
        assert_null(dlp_result_first_block(&res));
        assert_int_equal(res.n, as_text);
        flagged[c.kind[i]] += as_text > 0;
        flagged_docs += as_text > 0;
    }
    dlp_recent_free(recent);
    print_message("corpus: %zu documents, %zu bytes as text, %zu bytes as requests; default "
                  "rules: 0 matches; pieces of secrets: %zu, never adding up across requests; "
                  "entropy: %zu documents flagged\n",
                  c.n, c.doc_bytes, c.req_bytes, pieces, flagged_docs);
    for (size_t k = 0; k < N_KINDS; k++) {
        if (strcmp(kinds[k].name, "image") == 0)
            assert_in_range(flagged[k], ENTROPY_FLAGGED_IMAGES - ENTROPY_FLAGGED_SLACK,
                            ENTROPY_FLAGGED_IMAGES + ENTROPY_FLAGGED_SLACK);
        else if (strcmp(kinds[k].name, "package-lock.json") == 0)
            assert_in_range(flagged[k], 0, ENTROPY_FLAGGED_LOCKS + ENTROPY_FLAGGED_SLACK);
        else if (flagged[k])
            fail_msg("entropy warns on %zu %s documents", flagged[k], kinds[k].name);
    }

    check_positive_controls(e, &secrets, &c);
    dlp_result_free(&res);
    dlp_engine_free(e);
    strv_free(&secrets);
    corpus_free(&c);
}

/*
 * Documentation values with a credential's shape: placeholders in docs and
 * .env examples, public example keys, and PEM header strings in code that
 * parses keys. None of them is matched; beside each, a real-looking value of
 * the same shape still is (documentation_controls), so the exemptions
 * cannot grow into a hole.
 */
static const struct {
    const char *rule;
    const char *text;
} documentation_values[] = {
    /* Runs of a few repeated characters (fewer than 6 distinct). */
    {"github_pat", "GITHUB_TOKEN=gh"
                   "p_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"},
    {"huggingface_token", "HF_TOKEN=h"
                          "f_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"},
    {"gitlab_pat", "export GITLAB_TOKEN=glp"
                   "at-xxxxxxxxxxxxxxxxxxxx\n"},
    {"anthropic_api_key", "ANTHROPIC_API_KEY=sk-"
                          "ant-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"},
    {"openai_api_key", "OPENAI_API_KEY=sk-"
                       "proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"},
    {"google_api_key", "apiKey: \"AI"
                       "zaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"\n"},
    {"databricks_token", "DATABRICKS_TOKEN=da"
                         "pi00000000000000000000000000000000\n"},
    /* Slack's documented webhook (T00000000, XXXX...). */
    {"slack_webhook", "url = https://hooks.slack.com/services/T00000000/B00000000/"
                      "XXXXXXXXXXXXXXXXXXXXXXXX\n"},
    /* Words after the prefix: real bot tokens carry digits (xoxb-<digits>-<digits>-...). */
    {"slack_token", "SLACK_BOT_TOKEN=xo"
                    "xb-your-bot-token\n"},
    /* AWS's documentation secret ends in EXAMPLEKEY, as its key ids end in EXAMPLE. */
    {"aws_secret_access_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfi"
                              "CYEXAMPLEKEY\n"},
    /* Azurite's published development key, by value. */
    {"azure_storage_key", "AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1"
                          "OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\n"},
    /* A BEGIN line named in code, with no key after it. */
    {"private_key", "    if line.startswith(\"-----BEGIN RSA PRIVATE"
                    " KEY-----\"):\n"},
    {"private_key", "const pemHeader = \"-----BEGIN PRIVATE"
                    " KEY-----\"\n"},
};

static const struct {
    const char *rule;
    const char *text;
} documentation_controls[] = {
    {"github_pat", "GITHUB_TOKEN=gh"
                   "p_x7Kq2ZpR9vLmN4tW8sYb3CdE6fGhJ1aQ5uIo\n"},
    {"google_api_key", "apiKey: \"AI"
                       "zaSyB7kM2nQ4rT6vX8zA1cE3gI5kM7oQ9sU0w\"\n"},
    {"databricks_token", "DATABRICKS_TOKEN=da"
                         "pi3f9a2c1d8e7b6a5f4e3d2c1b0a9f8e7d\n"},
    {"slack_token", "SLACK_BOT_TOKEN=xo"
                    "xb-2384-99431-Zx8bQ2mN4pR6tV8w\n"},
    {"aws_secret_access_key", "aws_secret_access_key = kR8mN2pQ4sT6vX8zA1cE3gI5kM7oQ9sU0wY2aB4d\n"},
    {"private_key", "-----BEGIN RSA PRIVATE"
                    " KEY-----\nMIIEowIBAAKCAQEAx7Kq2ZpR9vLmN4tW8sYb3\n"},
    {"private_key", "{\"key\": \"-----BEGIN PRIVATE"
                    " KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\"}"},
    {"private_key", "-----BEGIN OPENSSH PRIVATE"
                    " KEY-----"}, /* the key may follow in the next piece */
    {"private_key", "{\"args\": \"{\\\"pem\\\": \\\"-----BEGIN EC PRIVATE"
                    " KEY-----\\\\nMHcCAQEEIDx7Kq2ZpR9vLmN4\\\"}\"}"}, /* escaped twice */
    {"private_key", "lines = [\"-----BEGIN RSA PRIVATE"
                    " KEY-----\", \"MIIEowIBAAKCAQEAx7Kq2ZpR9vLmN4tW8sYb3CdE6fGhJ1aQ5uIo\"]"},
    {"private_key", "-----BEGIN RSA PRIVATE"
                    " KEY-----\nProc-Type: 4,ENCRYPTED\n"},
};

static void test_documentation_values(void **state)
{
    (void)state;
    struct strv secrets = STRV_INIT;
    make_secrets(&secrets, 0x5ec7e75);
    struct dlp_engine *e = corpus_engine(&secrets);
    for (size_t i = 0; i < sizeof(documentation_values) / sizeof(documentation_values[0]); i++) {
        const char *text = documentation_values[i].text;
        struct dlp_result res;
        dlp_result_init(&res);
        assert_int_equal(dlp_scan_text(e, DLP_OUT_DEFAULT, "body", text, strlen(text), &res), 0);
        if (res.n)
            fail_msg("documentation value %zu (%s) matched %s", i, documentation_values[i].rule,
                     res.matches[0].rule);
        dlp_result_free(&res);
    }
    for (size_t i = 0; i < sizeof(documentation_controls) / sizeof(documentation_controls[0]);
         i++) {
        const char *text = documentation_controls[i].text;
        struct dlp_result res;
        dlp_result_init(&res);
        assert_int_equal(dlp_scan_text(e, DLP_OUT_DEFAULT, "body", text, strlen(text), &res), 0);
        if (!has_rule(&res, documentation_controls[i].rule, DLP_BLOCK))
            fail_msg("control %zu: %s not found", i, documentation_controls[i].rule);
        dlp_result_free(&res);
    }
    dlp_engine_free(e);
    strv_free(&secrets);
}

/* ---- redaction of a known token in a JSON body ------------------------------------------ */

/* The template with {T} the token, {U} it with its first letter as \u0074, {D} its '-' as \u002d,
 * {X} the token + "-h", {C} the canary, {P} a placeholder. */
struct redact_values {
    const char *tok, *canary, *placeholder;
};

static char *expand(const char *tpl, const struct redact_values *v)
{
    struct buf b = BUF_INIT;
    for (const char *p = tpl; *p; p++) {
        if (p[0] != '{' || !p[1] || p[2] != '}') {
            buf_append_char(&b, *p);
            continue;
        }
        switch (p[1]) {
        case 'T':
            buf_append_str(&b, v->tok);
            break;
        case 'U':
            buf_printf(&b, "\\u%04x%s", v->tok[0], v->tok + 1);
            break;
        case 'D':
            buf_printf(&b, "%.3s\\u002d%s", v->tok, v->tok + 4);
            break;
        case 'X':
            buf_printf(&b, "%s-h", v->tok);
            break;
        case 'C':
            buf_append_str(&b, v->canary);
            break;
        case 'P':
            buf_append_str(&b, v->placeholder);
            break;
        default:
            fail_msg("template %s", tpl);
        }
        p += 2;
    }
    return buf_steal(&b);
}

/* JSON string escapes undone over the whole text (\uXXXX of ASCII only: enough here). */
static char *json_unescaped(const char *p, size_t n)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (p[i] == '\\' && i + 5 < n && p[i + 1] == 'u' && sscanf(p + i + 2, "%4x", &v) == 1 &&
            v < 0x80) {
            buf_append_char(&b, (char)v);
            i += 5;
        } else if (p[i] == '\\' && i + 1 < n) {
            char c = p[++i];
            buf_append_char(&b, c == 'n' ? '\n' : c == 't' ? '\t' : c);
        } else {
            buf_append_char(&b, p[i]);
        }
    }
    return buf_steal(&b);
}

static void gzip_into(const char *p, size_t n, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf_reserve(out, deflateBound(&z, (uLong)n) + 1);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)(out->cap - 1);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len = z.total_out;
    deflateEnd(&z);
}

static void gunzip_into(const char *p, size_t n, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 47), Z_OK);
    char chunk[4096];
    int rc = Z_OK;
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    while (rc != Z_STREAM_END) {
        z.next_out = (Bytef *)chunk;
        z.avail_out = sizeof(chunk);
        rc = inflate(&z, Z_NO_FLUSH);
        assert_true(rc == Z_OK || rc == Z_STREAM_END);
        buf_append(out, chunk, sizeof(chunk) - z.avail_out);
    }
    inflateEnd(&z);
}

/* No DLP_PARTIAL_MIN_LEN-character window of secret is left in text. */
static void assert_no_window(const char *what, const char *text, size_t n, const char *secret)
{
    size_t len = strlen(secret);
    for (size_t i = 0; i + DLP_PARTIAL_MIN_LEN <= len; i++)
        if (memmem(text, n, secret + i, DLP_PARTIAL_MIN_LEN))
            fail_msg("%s: 12 characters of a secret left at its offset %zu", what, i);
}

struct redact_case {
    const char *name;
    const char *body; /* template (expand) */
    bool gzip;
};

static const struct redact_case redact_cases[] = {
    {"middle", "{\"messages\":[{\"role\":\"user\",\"content\":\"my token is {T} ok\"}]}", false},
    {"start", "{\"messages\":[{\"role\":\"user\",\"content\":\"{T} is my token\"}]}", false},
    {"end", "{\"messages\":[{\"role\":\"user\",\"content\":\"my token is {T}\"}]}", false},
    {"whole string", "{\"messages\":[{\"role\":\"user\",\"content\":\"{T}\"}]}", false},
    {"as a key", "{\"{T}\":1,\"messages\":[]}", false},
    {"several places",
     "{\"system\":\"{T}\",\"messages\":[{\"role\":\"user\",\"content\":\"a {T} b {T}\"},"
     "{\"role\":\"assistant\",\"content\":\"ok: {T}.\"}]}",
     false},
    {"with the canary and a placeholder",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"token {T}, canary {C}, placeholder {P}\"}]}",
     false},
    {"after other escapes",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"line\\n\\t\\\"q\\\" https:\\/\\/api.test\\/"
     "?t={T}&x=1 \\u00e9\"}]}",
     false},
    {"first letter as \\u0074",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"my token is {U} ok\"}]}", false},
    {"hyphen as \\u002d", "{\"messages\":[{\"role\":\"user\",\"content\":\"my token is {D} ok\"}]}",
     false},
    {"escaped in one string, plain in another",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"{U}\"},{\"role\":\"user\",\"content\":\"{T}"
     "\"}]}",
     false},
    {"plain and escaped in one string",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"plain {T} escaped {U} ok\"}]}", false},
    {"gzip", "{\"messages\":[{\"role\":\"user\",\"content\":\"my token is {T} ok\"}]}", true},
    {"gzip, several places, escaped",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"{T}\"},{\"role\":\"user\",\"content\":\"x "
     "{D}\"}]}",
     true},
    {"gzip, the token + \"-h\" as text",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"header token {X} ok\"}]}", true},
};

/* Redacts c's body under the redact policy; returns NULL when done right, else what went wrong. */
static char *token_redaction_error(const struct dlp_engine *e, const struct redact_case *c,
                                   const struct redact_values *v)
{
    char *json = expand(c->body, v), *error = NULL;
    struct buf z = BUF_INIT;
    if (c->gzip)
        gzip_into(json, strlen(json), &z);
    struct http_header hs[2] = {hdr("Content-Type", "application/json"),
                                hdr("Content-Encoding", "gzip")};
    struct dlp_request req = {"api.test",
                              "/v1/messages",
                              12,
                              hs,
                              c->gzip ? 2 : 1,
                              NULL,
                              c->gzip ? z.data : json,
                              c->gzip ? z.len : strlen(json)};
    struct route_dlp d = {.outbound = DLP_OUT_DEFAULT, .on_match = DLP_POLICY_REDACT};
    struct dlp_redacted red;
    struct dlp_verdict verdict;
    struct dlp_result first;
    dlp_result_init(&first);
    assert_int_equal(dlp_check_request(e, &d, &req, &red, &verdict, &first), 0);
    if (verdict.action != DLP_REDACT) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "%d %s (%s); first scan:", verdict.status,
                   verdict.reason ? verdict.reason : "-", verdict.message);
        for (size_t i = 0; i < first.n; i++)
            buf_printf(&b, " %s/%s@%zu+%zu", first.matches[i].rule, first.matches[i].location,
                       first.matches[i].offset, first.matches[i].length);
        error = buf_steal(&b);
    } else {
        assert_true(red.body_changed);
        assert_null(red.target);
        assert_int_equal(red.n_headers, 0);
        struct buf plain = BUF_INIT;
        if (c->gzip)
            gunzip_into(red.body.data, red.body.len, &plain);
        else
            buf_append(&plain, red.body.data, red.body.len);
        if (!strstr(plain.data, "[REDACTED:known_secret]"))
            fail_msg("%s: no marker in %s", c->name, plain.data);
        char *unescaped = json_unescaped(plain.data, plain.len);
        assert_no_window(c->name, plain.data, plain.len, v->tok);
        assert_no_window(c->name, unescaped, strlen(unescaped), v->tok);
        assert_no_window(c->name, unescaped, strlen(unescaped), v->canary);
        assert_no_window(c->name, unescaped, strlen(unescaped), v->placeholder);
        free(unescaped);
        buf_free(&plain);
        dlp_redacted_free(&red);
    }
    dlp_result_free(&first);
    buf_free(&z);
    free(json);
    return error;
}

static size_t redact_all_cases(const struct dlp_engine *e, const struct redact_values *v,
                               const char *engine_name)
{
    size_t failed = 0;
    for (size_t i = 0; i < sizeof(redact_cases) / sizeof(redact_cases[0]); i++) {
        char *error = token_redaction_error(e, &redact_cases[i], v);
        if (error) {
            print_error("%s, %s: %s\n", engine_name, redact_cases[i].name, error);
            failed++;
        }
        free(error);
    }
    return failed;
}

static void test_redact_known_token_in_json(void **state)
{
    (void)state;
    struct rng r = {0x70c3e};
    char *tok = random_string(&r, "tok-", HEXL, 32);
    char *tok_h = xasprintf("%s-h", tok);
    struct strv secrets = STRV_INIT;
    make_secrets(&secrets, 0x5ec7e75); /* canary first, then placeholders */
    struct redact_values v = {tok, secrets.items[0], secrets.items[1]};
    strv_push(&secrets, tok);
    struct dlp_engine *e = corpus_engine(&secrets);
    /*
     * The sidecar's test fixtures hold a second token that extends the first
     * (tests/fixtures/sidecar_env.sh). Passes 2 and 3 must not read what pass
     * 1 found whole: a secret sharing 12 characters with it (this one, or the
     * placeholders' common "bottle-placeholder-") would be a partial leak,
     * refused under every policy, though redacting the value removes it.
     */
    strv_push(&secrets, tok_h);
    struct dlp_engine *e2 = corpus_engine(&secrets);
    size_t failed = redact_all_cases(e, &v, "token");
    failed += redact_all_cases(e2, &v, "token and token-h");
    assert_int_equal(failed, 0);
    dlp_engine_free(e);
    dlp_engine_free(e2);
    strv_free(&secrets);
    free(tok), free(tok_h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_default_rules),
        cmocka_unit_test(test_documentation_values),
        cmocka_unit_test(test_redact_known_token_in_json),
    };
    return cmocka_run_group_tests_name("dlp_corpus", tests, NULL, NULL);
}

/*
 * Host normalization: the one canonical spelling of a host that routes are
 * stored under and requests are looked up by. Both sides go through here, so
 * two spellings of the same host always compare equal and a spelling that
 * some resolver would read differently from us is refused instead.
 *
 * Choices worth knowing:
 * - IDN uses IDNA2008 with UTS #46 mapping, non-transitional (what current
 *   browsers do): `faß.de` becomes `xn--fa-hia.de`, not `fass.de`. There is no
 *   transitional fallback: it would give one name two canonical forms, and
 *   every common name already converts without it.
 * - Pure-ASCII names never go through libidn2, because IDNA rejects valid DNS
 *   names such as `r3---sn-abc.example` (hyphens in positions 3-4). Their
 *   `xn--` labels are still checked to be valid punycode.
 * - `_` is allowed only as the first character of a label: service labels
 *   such as `_bottle.local` (the sidecar's introspection host) or
 *   `_dmarc.example` parse, while `a_b.example`, which no public name uses
 *   and resolvers treat inconsistently, does not.
 * - A name whose last label is numeric (or 0x-hex) is an IPv4 literal and
 *   must be canonical dotted-quad. `127.1`, `0x7f.1`, `0177.0.0.1`,
 *   `2130706433` and zero-padded octets all reach 127.0.0.1 through
 *   inet_aton-style parsers, which makes them classic allowlist bypasses.
 * - IPv6 literals come back bare (no brackets) in inet_ntop's canonical
 *   form. Zone ids (`fe80::1%eth0`) are refused: they name an interface on
 *   the sidecar's host, which a bottle has no business choosing.
 */
#include "manifest/route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

#define HOST_LABEL_MAX_LEN 63
/* Longer input is refused before any work is done on it. */
#define HOST_INPUT_MAX_LEN 1024

/* A printable, bounded copy of untrusted input for error messages. */
static void host_display(const char *in, char *out, size_t outsz)
{
    size_t o = 0;
    const size_t keep = outsz > 4 ? outsz - 4 : 0;
    for (size_t i = 0; in[i] && o < keep; i++) {
        unsigned char c = (unsigned char)in[i];
        out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (in[o] && o == keep) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static int host_invalid(struct bottle_err *err, const char *in, const char *why)
{
    char shown[96];
    host_display(in, shown, sizeof(shown));
    return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "invalid host '%s': %s", shown, why);
}

static bool is_ascii_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ascii_alnum(char c)
{
    return is_ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex_label(const char *s, size_t len)
{
    if (len < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    for (size_t i = 2; i < len; i++)
        if (!is_ascii_digit(s[i]) && !((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f'))
            return false;
    return true;
}

static bool is_digit_label(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_ascii_digit(s[i]))
            return false;
    return true;
}

/* Strict dotted-quad: four decimal octets 0-255, no leading zeros, nothing else. */
static bool ipv4_is_canonical(const char *s)
{
    int parts = 0;
    const char *p = s;
    while (parts < 4) {
        size_t n = 0;
        unsigned v = 0;
        while (n < 4 && is_ascii_digit(p[n])) {
            v = v * 10 + (unsigned)(p[n] - '0');
            n++;
        }
        if (n == 0 || n > 3 || v > 255 || (n > 1 && p[0] == '0'))
            return false;
        p += n;
        parts++;
        if (parts < 4) {
            if (*p != '.')
                return false;
            p++;
        }
    }
    return *p == '\0';
}

static int host_ipv6(const char *in, const char *text, size_t len, char **out,
                     struct bottle_err *err)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr addr;
    if (memchr(text, '%', len))
        return host_invalid(err, in, "IPv6 zone identifiers are not allowed");
    if (len == 0 || len >= sizeof(buf))
        return host_invalid(err, in, "not a valid IPv6 address");
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, &addr) != 1)
        return host_invalid(err, in, "not a valid IPv6 address");
    char canon[INET6_ADDRSTRLEN];
    if (!inet_ntop(AF_INET6, &addr, canon, sizeof(canon)))
        return host_invalid(err, in, "not a valid IPv6 address");
    *out = xstrdup(canon);
    return 0;
}

/* An xn-- label must be punycode that IDNA2008 accepts and re-encodes to itself. */
static bool alabel_is_valid(const char *label, size_t len)
{
    char *copy = xstrndup(label, len);
    char *ascii = NULL;
    bool ok =
        idn2_to_ascii_8z(copy, &ascii, IDN2_NONTRANSITIONAL) == IDN2_OK && strcmp(ascii, copy) == 0;
    idn2_free(ascii);
    free(copy);
    return ok;
}

/* LDH checks on a lowercase ASCII name without its trailing dot. */
static int host_check_labels(const char *in, const char *name, struct bottle_err *err)
{
    size_t total = strlen(name);
    if (total > HOST_NAME_MAX_LEN)
        return host_invalid(err, in, "longer than 253 characters");
    const char *label = name;
    for (;;) {
        const char *dot = strchr(label, '.');
        size_t len = dot ? (size_t)(dot - label) : strlen(label);
        if (len == 0)
            return host_invalid(err, in, "has an empty label");
        if (len > HOST_LABEL_MAX_LEN)
            return host_invalid(err, in, "has a label longer than 63 characters");
        size_t start = label[0] == '_' ? 1 : 0;
        if (start == len)
            return host_invalid(err, in, "has a label that is only '_'");
        for (size_t i = start; i < len; i++) {
            char c = label[i];
            if (c == '_')
                return host_invalid(err, in,
                                    "'_' is allowed only as the first character of a label");
            if (!is_ascii_alnum(c) && c != '-') {
                char why[80];
                snprintf(why, sizeof(why),
                         "character '%c' is not allowed (letters, digits, '-' and '.' only)", c);
                return host_invalid(err, in, why);
            }
        }
        if (label[start] == '-' || label[len - 1] == '-')
            return host_invalid(err, in, "a label may not start or end with '-'");
        if (len >= 4 && strncmp(label, "xn--", 4) == 0 && !alabel_is_valid(label, len))
            return host_invalid(err, in, "has an 'xn--' label that is not valid punycode");
        if (!dot)
            break;
        label = dot + 1;
    }
    return 0;
}

static int host_normalize_ascii(const char *in, const char *text, char **out, bool *is_ip,
                                struct bottle_err *err)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= 0x20 || c == 0x7f)
            return host_invalid(err, in, "contains whitespace or control characters");
    }
    if (text[0] == '[') {
        if (len < 2 || text[len - 1] != ']')
            return host_invalid(err, in, "unbalanced '[' in an IPv6 literal");
        *is_ip = true;
        return host_ipv6(in, text + 1, len - 2, out, err);
    }
    const char *colon = strchr(text, ':');
    if (colon && !strchr(colon + 1, ':'))
        return host_invalid(err, in, "a port does not belong in the host name");
    if (colon) {
        *is_ip = true;
        return host_ipv6(in, text, len, out, err);
    }
    if (strchr(text, '%'))
        return host_invalid(err, in, "percent-encoding is not allowed in a host name");

    char *name = xstrdup(text);
    str_lower(name);
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        name[--n] = '\0';
    if (n == 0) {
        free(name);
        return host_invalid(err, in, "empty");
    }

    const char *last_dot = strrchr(name, '.');
    const char *last = last_dot ? last_dot + 1 : name;
    size_t last_len = strlen(last);
    if (is_digit_label(last, last_len) || is_hex_label(last, last_len)) {
        if (!ipv4_is_canonical(name)) {
            free(name);
            return host_invalid(err, in,
                                "not a canonical dotted-quad IPv4 address (shortened, hex, octal "
                                "and zero-padded forms are refused)");
        }
        *is_ip = true;
        *out = name;
        return 0;
    }
    int rc = host_check_labels(in, name, err);
    if (rc < 0) {
        free(name);
        return rc;
    }
    *is_ip = false;
    *out = name;
    return 0;
}

int host_normalize(const char *in, char **out, bool *is_ip, struct bottle_err *err)
{
    bool ip = false;
    char *result = NULL;
    if (!in || !out)
        return err_set(err, EINVAL, "host_normalize: missing argument");
    *out = NULL;
    size_t len = strnlen(in, HOST_INPUT_MAX_LEN + 1);
    if (len == 0)
        return host_invalid(err, in, "empty");
    if (len > HOST_INPUT_MAX_LEN)
        return host_invalid(err, in, "longer than 253 characters");

    bool ascii = true;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)in[i] >= 0x80)
            ascii = false;

    int rc;
    if (ascii) {
        rc = host_normalize_ascii(in, in, &result, &ip, err);
    } else {
        char *converted = NULL;
        int irc = idn2_to_ascii_8z(in, &converted, IDN2_NONTRANSITIONAL);
        if (irc != IDN2_OK) {
            char why[160];
            snprintf(why, sizeof(why), "not a valid internationalized name (%s)",
                     idn2_strerror(irc));
            idn2_free(converted);
            return host_invalid(err, in, why);
        }
        /* The mapped form is checked like any ASCII input (it may even be an IP literal). */
        rc = host_normalize_ascii(in, converted, &result, &ip, err);
        idn2_free(converted);
    }
    if (rc < 0)
        return rc;
    *out = result;
    if (is_ip)
        *is_ip = ip;
    return 0;
}

/* Decimal 1-65535, digits only, no sign and no leading zero. */
static int port_parse(const char *in, const char *s, uint16_t *port, struct bottle_err *err)
{
    size_t n = strlen(s);
    bool digits = n > 0 && n <= 5;
    for (size_t i = 0; digits && i < n; i++)
        digits = is_ascii_digit(s[i]);
    unsigned long v = digits ? strtoul(s, NULL, 10) : 0;
    if (!digits || s[0] == '0' || v < 1 || v > 65535) {
        char shown[96];
        host_display(in, shown, sizeof(shown));
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "invalid port in '%s': expected a decimal number from 1 to 65535",
                            shown);
    }
    *port = (uint16_t)v;
    return 0;
}

int host_port_parse(const char *in, char **host, uint16_t *port, bool *is_ip,
                    struct bottle_err *err)
{
    if (!in || !host || !port)
        return err_set(err, EINVAL, "host_port_parse: missing argument");
    *host = NULL;
    *port = 0;
    if (strnlen(in, HOST_INPUT_MAX_LEN + 1) > HOST_INPUT_MAX_LEN)
        return host_invalid(err, in, "longer than 253 characters");

    char *host_part = NULL;
    const char *port_part = NULL;
    if (in[0] == '[') {
        const char *close = strchr(in, ']');
        if (!close)
            return host_invalid(err, in, "unbalanced '[' in an IPv6 literal");
        host_part = xstrndup(in, (size_t)(close - in) + 1);
        if (close[1] == ':')
            port_part = close + 2;
        else if (close[1] != '\0') {
            free(host_part);
            return host_invalid(err, in, "unexpected text after ']'");
        }
    } else {
        const char *colon = strchr(in, ':');
        if (colon && !strchr(colon + 1, ':')) {
            host_part = xstrndup(in, (size_t)(colon - in));
            port_part = colon + 1;
        } else {
            /* No colon, or several: a bare IPv6 literal, which cannot carry a port. */
            host_part = xstrdup(in);
        }
    }

    uint16_t p = 0;
    if (port_part && port_parse(in, port_part, &p, err) < 0) {
        free(host_part);
        return -EINVAL;
    }
    int rc = host_normalize(host_part, host, is_ip, err);
    free(host_part);
    if (rc < 0)
        return rc;
    *port = p;
    return 0;
}

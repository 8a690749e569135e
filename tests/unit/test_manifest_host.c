#include "tests/unit/testutil.h"

#include "common/buf.h"
#include "manifest/route.h"

struct host_ok_case {
    const char *in;
    const char *out;
    bool is_ip;
};

static const struct host_ok_case host_ok_cases[] = {
    {"example.com", "example.com", false},
    {"Example.COM", "example.com", false},
    {"API.GitHub.com.", "api.github.com", false},
    {"localhost", "localhost", false},
    {"a-b.example", "a-b.example", false},
    {"r3---sn-abc.example", "r3---sn-abc.example", false},
    {"1password.com", "1password.com", false},
    {"host.123abc", "host.123abc", false},
    {"0x7f.example.com", "0x7f.example.com", false},
    {"_bottle.local", "_bottle.local", false},
    {"_dmarc.Example.com", "_dmarc.example.com", false},
    {"bücher.example", "xn--bcher-kva.example", false},
    {"BÜCHER.example.", "xn--bcher-kva.example", false},
    {"faß.de", "xn--fa-hia.de", false},
    {"xn--bcher-kva.example", "xn--bcher-kva.example", false},
    {"XN--BCHER-KVA.example", "xn--bcher-kva.example", false},
    {"例え.テスト", "xn--r8jz45g.xn--zckzah", false},
    /* Full-width letters map to ASCII under UTS #46. */
    {"\xef\xbd\x85xample.com", "example.com", false},
    {"127.0.0.1", "127.0.0.1", true},
    {"10.0.0.255", "10.0.0.255", true},
    {"0.0.0.0", "0.0.0.0", true},
    {"127.0.0.1.", "127.0.0.1", true},
    {"::1", "::1", true},
    {"[::1]", "::1", true},
    {"[2001:DB8:0:0:0:0:0:1]", "2001:db8::1", true},
    {"2001:0db8::0001", "2001:db8::1", true},
    {"::ffff:127.0.0.1", "::ffff:127.0.0.1", true},
    /* Full-width digits map to a canonical IPv4 literal and are treated as one. */
    {"\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97.0.0.1", "127.0.0.1", true},
};

static void test_host_normalize_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(host_ok_cases) / sizeof(host_ok_cases[0]); i++) {
        const struct host_ok_case *c = &host_ok_cases[i];
        struct bottle_err err = {0};
        char *out = NULL;
        bool is_ip = !c->is_ip;
        int rc = host_normalize(c->in, &out, &is_ip, &err);
        if (rc != 0)
            fail_msg("'%s' was refused: %s", c->in, err.msg);
        if (strcmp(out, c->out) != 0)
            fail_msg("'%s' -> '%s', want '%s'", c->in, out, c->out);
        if (is_ip != c->is_ip)
            fail_msg("'%s': is_ip %d, want %d", c->in, is_ip, c->is_ip);
        free(out);
    }
}

struct host_bad_case {
    const char *in;
    const char *why; /* expected tail of the message */
};

static const struct host_bad_case host_bad_cases[] = {
    {"", "empty"},
    {".", "empty"},
    {"example..com", "has an empty label"},
    {".example.com", "has an empty label"},
    {"example.com..", "has an empty label"},
    {"ex ample.com", "contains whitespace or control characters"},
    {"example.com\t", "contains whitespace or control characters"},
    {"exa\rmple.com", "contains whitespace or control characters"},
    {"a_b.example", "'_' is allowed only as the first character of a label"},
    {"_a_.example", "'_' is allowed only as the first character of a label"},
    {"_.example", "has a label that is only '_'"},
    {"-a.example", "a label may not start or end with '-'"},
    {"a-.example", "a label may not start or end with '-'"},
    {"_-a.example", "a label may not start or end with '-'"},
    {"exa!mple.com", "character '!' is not allowed (letters, digits, '-' and '.' only)"},
    {"exa/mple.com", "character '/' is not allowed (letters, digits, '-' and '.' only)"},
    {"user@example.com", "character '@' is not allowed (letters, digits, '-' and '.' only)"},
    {"exa%2emple.com", "percent-encoding is not allowed in a host name"},
    {"xn--zz.example", "has an 'xn--' label that is not valid punycode"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
     "has a label longer than 63 characters"},
    /* Classic allowlist bypass spellings of 127.0.0.1. */
    {"127.1", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
              "zero-padded forms are refused)"},
    {"0x7f.1", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
               "zero-padded forms are refused)"},
    {"0x7f000001", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
                   "zero-padded forms are refused)"},
    {"2130706433", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
                   "zero-padded forms are refused)"},
    {"0177.0.0.1", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
                   "zero-padded forms are refused)"},
    {"127.0.0.01", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
                   "zero-padded forms are refused)"},
    {"127.0.0.0x1", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
                    "zero-padded forms are refused)"},
    {"256.0.0.1", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
                  "zero-padded forms are refused)"},
    {"1.2.3.4.5", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
                  "zero-padded forms are refused)"},
    {"example.123", "not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
                    "zero-padded forms are refused)"},
    {"fe80::1%eth0", "IPv6 zone identifiers are not allowed"},
    {"[fe80::1%25eth0]", "IPv6 zone identifiers are not allowed"},
    {"[::1", "unbalanced '[' in an IPv6 literal"},
    {"[example.com]", "not a valid IPv6 address"},
    {"[127.0.0.1]", "not a valid IPv6 address"},
    {"[]", "not a valid IPv6 address"},
    {"::1::2", "not a valid IPv6 address"},
    {"example.com:443", "a port does not belong in the host name"},
    {"ab--ü.example", "not a valid internationalized name"},
    {"\xff\xfe.example", "not a valid internationalized name"},
};

static void test_host_normalize_refuses(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(host_bad_cases) / sizeof(host_bad_cases[0]); i++) {
        const struct host_bad_case *c = &host_bad_cases[i];
        struct bottle_err err = {0};
        char *out = (char *)"untouched";
        int rc = host_normalize(c->in, &out, NULL, &err);
        if (rc != -EINVAL)
            fail_msg("'%s' was accepted (rc %d)", c->in, rc);
        assert_null(out);
        const char *colon = strstr(err.msg, "': ");
        if (!str_starts_with(err.msg, "invalid host '") || !colon ||
            !str_starts_with(colon + 3, c->why))
            fail_msg("'%s': message '%s', want '...: %s'", c->in, err.msg, c->why);
        assert_int_equal(err_exit_code(&err), EXIT_USAGE);
    }
}

static void test_host_normalize_limits(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    char *out = NULL;
    /* 4 labels of 63 + 3 dots = 255 > 253; 253 exactly is fine. */
    char name[300];
    memset(name, 'a', sizeof(name));
    for (int i = 63; i < 255; i += 64)
        name[i] = '.';
    name[255] = '\0';
    assert_int_equal(host_normalize(name, &out, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "longer than 253 characters"));
    /* The message quotes a bounded, printable copy of the input. */
    assert_true(strlen(err.msg) < 200);
    assert_non_null(strstr(err.msg, "...'"));
    name[253] = '\0';
    assert_int_equal(host_normalize(name, &out, NULL, &err), 0);
    assert_int_equal(strlen(out), 253);
    free(out);
    /* 253 characters plus the one trailing dot that is dropped. */
    name[253] = '.';
    name[254] = '\0';
    assert_int_equal(host_normalize(name, &out, NULL, &err), 0);
    assert_int_equal(strlen(out), 253);
    free(out);

    char huge[5000];
    memset(huge, 'a', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(host_normalize(huge, &out, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "longer than 253 characters"));

    /* Control characters are shown as '?', never echoed raw. */
    assert_int_equal(host_normalize("a\x1b[31mb", &out, NULL, &err), -EINVAL);
    assert_null(strchr(err.msg, '\x1b'));
    assert_non_null(strstr(err.msg, "'a?[31mb'"));
}

struct host_port_case {
    const char *in;
    const char *host; /* NULL: refused */
    uint16_t port;
    bool is_ip;
    const char *msg; /* expected message when refused */
};

static const struct host_port_case host_port_cases[] = {
    {"example.com", "example.com", 0, false, NULL},
    {"Example.com:8443", "example.com", 8443, false, NULL},
    {"example.com.:443", "example.com", 443, false, NULL},
    {"bücher.example:1", "xn--bcher-kva.example", 1, false, NULL},
    {"127.0.0.1:65535", "127.0.0.1", 65535, true, NULL},
    {"[::1]", "::1", 0, true, NULL},
    {"[::1]:8080", "::1", 8080, true, NULL},
    {"[2001:db8::0:1]:443", "2001:db8::1", 443, true, NULL},
    {"2001:db8::1", "2001:db8::1", 0, true, NULL},
    {"example.com:", NULL, 0, false,
     "invalid port in 'example.com:': expected a decimal number from 1 to 65535"},
    {"example.com:0", NULL, 0, false,
     "invalid port in 'example.com:0': expected a decimal number from 1 to 65535"},
    {"example.com:00", NULL, 0, false,
     "invalid port in 'example.com:00': expected a decimal number from 1 to 65535"},
    {"example.com:0443", NULL, 0, false,
     "invalid port in 'example.com:0443': expected a decimal number from 1 to 65535"},
    {"example.com:+443", NULL, 0, false,
     "invalid port in 'example.com:+443': expected a decimal number from 1 to 65535"},
    {"example.com:-1", NULL, 0, false,
     "invalid port in 'example.com:-1': expected a decimal number from 1 to 65535"},
    {"example.com:65536", NULL, 0, false,
     "invalid port in 'example.com:65536': expected a decimal number from 1 to 65535"},
    {"example.com:4294967739", NULL, 0, false,
     "invalid port in 'example.com:4294967739': expected a decimal number from 1 to 65535"},
    {"example.com:44 3", NULL, 0, false,
     "invalid port in 'example.com:44 3': expected a decimal number from 1 to 65535"},
    {"example.com:https", NULL, 0, false,
     "invalid port in 'example.com:https': expected a decimal number from 1 to 65535"},
    {"[::1]:", NULL, 0, false,
     "invalid port in '[::1]:': expected a decimal number from 1 to 65535"},
    {"[::1]8080", NULL, 0, false, "invalid host '[::1]8080': unexpected text after ']'"},
    {"[::1:8080", NULL, 0, false, "invalid host '[::1:8080': unbalanced '[' in an IPv6 literal"},
    {"::1:8080:", NULL, 0, false, "invalid host '::1:8080:': not a valid IPv6 address"},
    {"example.com:80:90", NULL, 0, false,
     "invalid host 'example.com:80:90': not a valid IPv6 address"},
    {"127.1:80", NULL, 0, false,
     "invalid host '127.1': not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
     "zero-padded forms are refused)"},
    {":443", NULL, 0, false, "invalid host '': empty"},
};

static void test_host_port_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(host_port_cases) / sizeof(host_port_cases[0]); i++) {
        const struct host_port_case *c = &host_port_cases[i];
        struct bottle_err err = {0};
        char *host = NULL;
        uint16_t port = 7;
        bool is_ip = false;
        int rc = host_port_parse(c->in, &host, &port, &is_ip, &err);
        if (c->host) {
            if (rc != 0)
                fail_msg("'%s' was refused: %s", c->in, err.msg);
            if (strcmp(host, c->host) != 0 || port != c->port || is_ip != c->is_ip)
                fail_msg("'%s' -> '%s' port %u ip %d", c->in, host, port, is_ip);
            free(host);
        } else {
            if (rc != -EINVAL)
                fail_msg("'%s' was accepted", c->in);
            assert_null(host);
            assert_int_equal(port, 0);
            if (strcmp(err.msg, c->msg) != 0)
                fail_msg("'%s': message '%s', want '%s'", c->in, err.msg, c->msg);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_normalize_accepts),
        cmocka_unit_test(test_host_normalize_refuses),
        cmocka_unit_test(test_host_normalize_limits),
        cmocka_unit_test(test_host_port_parse),
    };
    return cmocka_run_group_tests_name("host", tests, NULL, NULL);
}

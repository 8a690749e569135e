/*
 * The sidecar's own answers (sidecar/respond.c) for the two access checks:
 * a connection beyond max_connections gets a 503 too_many_connections at
 * once and is closed without being read; a missing proxy credential gets a
 * 407 proxy_auth_required that tells the client how to authenticate.
 */
#include "testutil.h"

#include <sys/socket.h>

#include "sidecar/config.h"
#include "sidecar/respond.h"

#define TLS "\"tls\": {\"ca_cert\": \"c\", \"ca_key\": \"k\", \"leaf_key\": \"l\"}"

static struct config *load(const char *json)
{
    struct config_tokens t = {0};
    struct bottle_err err = {0};
    struct config *c = NULL;
    if (config_parse("cfg.json", json, strlen(json), &t, &c, &err) < 0)
        fail_msg("%s", err.msg);
    return c;
}

static void test_connection_limit(void **state)
{
    (void)state;
    static const char json[] = "{\"listen\": \"127.0.0.1:1\", " TLS ", \"log\": \"off\", "
                               "\"max_connections\": 2}";
    struct proxy px;
    memset(&px, 0, sizeof(px));
    px.cfg = load(json);
    for (int i = 0; i < 12; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        /* The client has sent a request: the answer must not wait for it to be read. */
        assert_int_equal(write(sv[1], "GET / HTTP/1.1\r\n", 16), 16);
        respond_connection_limit(&px, sv[0]);
        char buf[2048];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof(buf) - 1 && (r = read(sv[1], buf + n, sizeof(buf) - 1 - n)) > 0)
            n += (size_t)r;
        buf[n] = '\0';
        assert_int_equal(r, 0); /* closed by the sidecar */
        close(sv[1]);
        assert_true(strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
        assert_non_null(strstr(buf, "\r\nConnection: close\r\n"));
        assert_non_null(strstr(buf, "\r\nRetry-After: 1\r\n"));
        assert_non_null(strstr(buf, "\"reason\": \"too_many_connections\""));
        assert_non_null(strstr(buf, "already has 2 connections open"));
        assert_non_null(strstr(buf, "sidecar.max_connections"));
        const char *body = strstr(buf, "\r\n\r\n");
        assert_non_null(body);
        char length[40];
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", strlen(body + 4));
        assert_non_null(strstr(buf, length));
    }
    assert_int_equal(px.metrics.connections_refused, 12);
    assert_int_equal(px.metrics.n_refusals, 1);
    assert_string_equal(px.metrics.refusals[0].reason, REASON_TOO_MANY_CONNECTIONS);
    assert_int_equal(px.metrics.refusals[0].count, 12);
    config_unref(px.cfg);
    buf_free(&px.scratch);
}

static void test_proxy_auth_refusal(void **state)
{
    (void)state;
    static const char json[] = "{\"listen\": \"127.0.0.1:1\", " TLS ", \"log\": \"off\"}";
    struct proxy px;
    memset(&px, 0, sizeof(px));
    px.cfg = load(json);
    struct conn c;
    memset(&c, 0, sizeof(c));
    c.px = &px;
    c.cli.fd = c.up.fd = -1;
    c.req_done = true;
    c.cfg = config_ref(px.cfg);
    conn_refuse_proxy_auth(&c, "send the bottle's proxy credential");
    buf_append_char(&c.cout, '\0');
    const char *out = c.cout.data;
    assert_true(strncmp(out, "HTTP/1.1 407 Proxy Authentication Required\r\n", 44) == 0);
    assert_non_null(strstr(out, "\r\nProxy-Authenticate: Basic realm=\"bottle\"\r\n"));
    assert_non_null(strstr(out, "\"reason\": \"proxy_auth_required\""));
    assert_non_null(strstr(out, "\"message\": \"send the bottle's proxy credential\""));
    assert_int_equal(px.metrics.refusals[0].count, 1);
    assert_null(c.cfg); /* the request is finished */
    assert_int_equal(c.state, CONN_HEAD);

    /* An ordinary refusal carries no Proxy-Authenticate. */
    buf_reset(&c.cout);
    c.req_done = true;
    c.cfg = config_ref(px.cfg);
    conn_refuse(&c, 403, "host_not_allowed", "no");
    buf_append_char(&c.cout, '\0');
    assert_null(strstr(c.cout.data, "Proxy-Authenticate"));
    assert_true(strncmp(c.cout.data, "HTTP/1.1 403 Forbidden\r\n", 24) == 0);
    buf_free(&c.cout);
    buf_free(&c.log.headers);
    config_unref(px.cfg);
    buf_free(&px.scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_proxy_auth_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

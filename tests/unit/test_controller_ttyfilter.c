/*
 * ttyfilter: the escape-sequence filter between the agent and the host
 * terminal. A table of inputs, each with the bytes that must reach the
 * terminal and the class it drops, run whole, byte by byte and split at
 * every point (a sequence cut across reads is held, never half-passed);
 * the manifest switches; 7-bit, raw 8-bit and UTF-8 encoded C1 introducers;
 * and random inputs, whose output a second filter (standing for the
 * terminal) must find nothing dangerous in, and which never holds a
 * clipboard write.
 */
#include "testutil.h"

#include "runtime/controller/ttyfilter.h"

#define NONE 0 /* nothing dropped */
#define D(c) (1u << (c))

struct filter_case {
    const char *name;
    const char *in;
    size_t in_len; /* 0: strlen(in) */
    const char *want;
    size_t want_len;  /* 0: strlen(want) */
    unsigned dropped; /* the classes (D(class)) each counted once, or NONE */
    unsigned flags;
};

#define OSC52_WRITE "\x1b]52;c;cm0gLXJmIH4K\x07"

static const struct filter_case cases[] = {
    /* text and harmless controls */
    {"plain text", "hello, world\r\n", 0, "hello, world\r\n", 0, NONE, 0},
    {"utf-8 text", "caf\xc3\xa9 \xe2\x80\x9dq\xe2\x80\x9d \xf0\x9f\x98\x80", 0,
     "caf\xc3\xa9 \xe2\x80\x9dq\xe2\x80\x9d \xf0\x9f\x98\x80", 0, NONE, 0},
    {"colours and cursor", "\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H\x1b[?1049h\x1b[?25l", 0,
     "\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H\x1b[?1049h\x1b[?25l", 0, NONE, 0},
    {"status and attribute requests", "\x1b[6n\x1b[c\x1b[>c\x1b[?2026$p", 0,
     "\x1b[6n\x1b[c\x1b[>c\x1b[?2026$p", 0, NONE, 0},
    {"escape sequences",
     "\x1b"
     "7\x1b"
     "8\x1b(B\x1b=\x1b#8",
     0,
     "\x1b"
     "7\x1b"
     "8\x1b(B\x1b=\x1b#8",
     0, NONE, 0},
    {"title, BEL", "\x1b]0;my title\x07x", 0, "\x1b]0;my title\x07x", 0, NONE, 0},
    {"title, ST, UTF-8 with a 0x9c byte", "\x1b]2;\xe2\x9c\xb3 Claude\x1b\\", 0,
     "\x1b]2;\xe2\x9c\xb3 Claude\x1b\\", 0, NONE, 0},
    {"hyperlink", "\x1b]8;;https://example.test/\x1b\\link\x1b]8;;\x1b\\", 0,
     "\x1b]8;;https://example.test/\x1b\\link\x1b]8;;\x1b\\", 0, NONE, 0},
    {"colour set", "\x1b]11;rgb:00/00/00\x07\x1b]4;1;#ff0000\x07\x1b]104\x07", 0,
     "\x1b]11;rgb:00/00/00\x07\x1b]4;1;#ff0000\x07\x1b]104\x07", 0, NONE, 0},
    {"prompt mark and cwd", "\x1b]133;A\x07\x1b]7;file://bottle/ws\x07", 0,
     "\x1b]133;A\x07\x1b]7;file://bottle/ws\x07", 0, NONE, 0},
    {"title stack", "\x1b[22;0t\x1b[23;0t", 0, "\x1b[22;0t\x1b[23;0t", 0, NONE, 0},

    /* clipboard */
    {"OSC 52 write, BEL", "a" OSC52_WRITE "b", 0, "ab", 0, D(TTY_DROP_OSC52), 0},
    {"OSC 52 write, ST", "a\x1b]52;p;eA==\x1b\\b", 0, "ab", 0, D(TTY_DROP_OSC52), 0},
    {"OSC 52 query",
     "a\x1b]52;c;?\x07"
     "b",
     0, "ab", 0, D(TTY_DROP_OSC52), 0},
    {"OSC 52 write, 8-bit C1",
     "a\x9d"
     "52;c;eA==\x9c"
     "b",
     0, "ab", 0, D(TTY_DROP_OSC52), 0},
    {"OSC 52 write, UTF-8 C1",
     "a\xc2\x9d"
     "52;c;eA==\xc2\x9c"
     "b",
     0, "ab", 0, D(TTY_DROP_OSC52), 0},
    {"OSC 52 write allowed", "a" OSC52_WRITE "b", 0, "a" OSC52_WRITE "b", 0, NONE,
     TTY_FILTER_ALLOW_OSC52},
    {"OSC 52 query never allowed", "a\x1b]52;c;?\x1b\\b", 0, "ab", 0, D(TTY_DROP_OSC52),
     TTY_FILTER_ALLOW_OSC52},
    {"passthrough", "a" OSC52_WRITE "\x1bP$qm\x1b\\\x1b[21t", 0,
     "a" OSC52_WRITE "\x1bP$qm\x1b\\\x1b[21t", 0, NONE, TTY_FILTER_PASSTHROUGH},

    /* queries the terminal answers by typing */
    {"OSC 50 font",
     "a\x1b]50;?\x07"
     "b",
     0, "ab", 0, D(TTY_DROP_OSC), 0},
    {"OSC 4 query",
     "a\x1b]4;1;?\x07"
     "b",
     0, "ab", 0, D(TTY_DROP_QUERY), 0},
    {"OSC 11 query", "a\x1b]11;?\x1b\\b", 0, "ab", 0, D(TTY_DROP_QUERY), 0},
    {"OSC 10 query",
     "a\x1b]10;?\x07"
     "b",
     0, "ab", 0, D(TTY_DROP_QUERY), 0},
    {"iTerm2 1337",
     "a\x1b]1337;RequestUpload=format=tgz\x07"
     "b",
     0, "ab", 0, D(TTY_DROP_OSC), 0},
    {"OSC without a number", "a\x1b]l title\x1b\\b", 0, "ab", 0, D(TTY_DROP_OSC), 0},
    {"DECRQSS", "a\x1bP$qm\x1b\\b", 0, "ab", 0, D(TTY_DROP_STRING), 0},
    {"XTGETTCAP", "a\x1bP+q544e\x1b\\b", 0, "ab", 0, D(TTY_DROP_STRING), 0},
    {"DECUDK key definition", "a\x1bP0;1|17/726D202D7266\x1b\\b", 0, "ab", 0, D(TTY_DROP_STRING),
     0},
    /* The inner ESC ends the DCS; what follows is parsed as the terminal would. */
    {"tmux passthrough", "a\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\b", 0, "a\x1b\\b", 0,
     D(TTY_DROP_STRING) | D(TTY_DROP_OSC52), 0},
    {"DCS 8-bit",
     "a\x90$qm\x9c"
     "b",
     0, "ab", 0, D(TTY_DROP_STRING), 0},
    {"APC", "a\x1b_Gi=1,a=q;\x1b\\b", 0, "ab", 0, D(TTY_DROP_STRING), 0},
    {"PM", "a\x1b^private\x1b\\b", 0, "ab", 0, D(TTY_DROP_STRING), 0},
    {"SOS", "a\x1bXstring\x1b\\b", 0, "ab", 0, D(TTY_DROP_STRING), 0},
    {"title report", "a\x1b[21tb", 0, "ab", 0, D(TTY_DROP_WINDOW), 0},
    {"window size report", "a\x1b[14tb", 0, "ab", 0, D(TTY_DROP_WINDOW), 0},
    {"window move", "a\x1b[3;0;0tb", 0, "ab", 0, D(TTY_DROP_WINDOW), 0},
    {"title report, 8-bit CSI",
     "a\x9b"
     "21tb",
     0, "ab", 0, D(TTY_DROP_WINDOW), 0},
    {"title report, UTF-8 CSI",
     "a\xc2\x9b"
     "21tb",
     0, "ab", 0, D(TTY_DROP_WINDOW), 0},
    {"C0 inside CSI runs, the CSI still counts", "a\x1b[2\n1tb", 0, "a\nb", 0, D(TTY_DROP_WINDOW),
     0},

    /* C1 and malformed input */
    {"stray C1",
     "a\x85"
     "b",
     0, "ab", 0, D(TTY_DROP_C1), 0},
    {"stray C1, UTF-8",
     "a\xc2\x85"
     "b",
     0, "ab", 0, D(TTY_DROP_C1), 0},
    {"overlong lead then C1 CSI",
     "a\xe0\x9b"
     "21tb",
     0,
     "a\xe0"
     "b",
     0, D(TTY_DROP_WINDOW), 0},
    {"C2 then text", "\xc2\xa9 \xc2x", 0, "\xc2\xa9 \xc2x", 0, NONE, 0},
    {"newline inside an OSC",
     "a\x1b]0;ti\ntle\x07"
     "b",
     0, "ab", 0, D(TTY_DROP_MALFORMED), 0},
    {"CAN aborts a sequence",
     "a\x1b]52;c;eA\x18"
     "b",
     0, "ab", 0, D(TTY_DROP_MALFORMED), 0},
    {"ESC ends an OSC, the next sequence stands", "a\x1b]0;t\x1b[1mb", 0, "a\x1b[1mb", 0,
     D(TTY_DROP_MALFORMED), 0},
    {"parameter after intermediate", "a\x1b[1 2mb", 0, "ab", 0, D(TTY_DROP_MALFORMED), 0},
    {"text ends an escape",
     "a\x1b\xc3\xa9"
     "b",
     0,
     "a\xc3\xa9"
     "b",
     0, NONE, 0},
    {"NUL passes", "a\0b", 3, "a\0b", 3, NONE, 0},
};

static size_t want_len(const struct filter_case *c)
{
    return c->want_len ? c->want_len : strlen(c->want);
}

/* Runs the filter over in, cut into pieces of at most chunk bytes (or at split). */
static size_t run_split(const struct filter_case *c, size_t split, size_t chunk, char *out,
                        struct tty_filter *f)
{
    size_t n = c->in_len ? c->in_len : strlen(c->in), len = 0;
    tty_filter_init(f, c->flags);
    for (size_t at = 0; at < n;) {
        size_t take = split ? (at < split ? split - at : n - at) : chunk;
        if (take > n - at)
            take = n - at;
        size_t before = tty_filter_held(f);
        size_t wrote = tty_filter_run(f, c->in + at, take, out + len);
        assert_true(wrote <= before + take); /* the room the relay leaves is enough */
        len += wrote;
        at += take;
    }
    return len;
}

static void check_case(const struct filter_case *c, size_t split, size_t chunk)
{
    char out[1024];
    struct tty_filter f;
    size_t len = run_split(c, split, chunk, out, &f);
    size_t wl = want_len(c);
    if (len != wl || memcmp(out, c->want, wl) != 0)
        fail_msg("%s (split %zu, chunk %zu): %zu bytes out, want %zu", c->name, split, chunk, len,
                 wl);
    assert_int_equal(tty_filter_held(&f), 0);
    for (int k = 0; k < TTY_DROP_CLASSES; k++) {
        unsigned long want = (c->dropped & D(k)) ? 1 : 0;
        if (f.dropped[k] != want)
            fail_msg("%s (split %zu, chunk %zu): class %d dropped %lu times, want %lu", c->name,
                     split, chunk, k, f.dropped[k], want);
    }
}

static void test_table_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i], 0, 1 << 20);
}

static void test_table_byte_by_byte(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i], 0, 1);
}

static void test_table_every_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = cases[i].in_len ? cases[i].in_len : strlen(cases[i].in);
        for (size_t split = 1; split < n; split++)
            check_case(&cases[i], split, 0);
    }
}

/* A sequence cut short by the end of the input is held, and shows nothing yet. */
static void test_held_until_complete(void **state)
{
    (void)state;
    struct tty_filter f;
    tty_filter_init(&f, 0);
    char out[64];
    assert_int_equal(tty_filter_run(&f, "ok\x1b]0;ti", 8, out), 2);
    assert_memory_equal(out, "ok", 2);
    assert_int_equal(tty_filter_held(&f), 6);
    assert_int_equal(tty_filter_run(&f, "tle", 3, out), 0);
    assert_int_equal(tty_filter_run(&f, "\x07", 1, out), 10);
    assert_memory_equal(out, "\x1b]0;title\x07", 10);
    assert_int_equal(tty_filter_held(&f), 0);
    /* A lone C2 at the end may start a C1 control: held too. */
    assert_int_equal(tty_filter_run(&f, "x\xc2", 2, out), 1);
    assert_int_equal(tty_filter_held(&f), 1);
    assert_int_equal(tty_filter_run(&f, "\xa9", 1, out), 2);
    assert_memory_equal(out, "\xc2\xa9", 2);
}

/* Too long to hold: dropped whole, and what follows its end shows again. */
static void test_overlong_sequences_dropped(void **state)
{
    (void)state;
    struct tty_filter f;
    tty_filter_init(&f, 0);
    char *big = malloc(TTY_FILTER_SEQ_MAX + 64);
    char *out = malloc(TTY_FILTER_SEQ_MAX + 64);
    size_t n = 0;
    n += (size_t)sprintf(big, "\x1b]0;");
    memset(big + n, 'a', TTY_FILTER_SEQ_MAX);
    n += TTY_FILTER_SEQ_MAX;
    memcpy(big + n, "\x07ok", 3);
    n += 3;
    assert_int_equal(tty_filter_run(&f, big, n, out), 2);
    assert_memory_equal(out, "ok", 2);
    assert_int_equal(f.dropped[TTY_DROP_MALFORMED], 1);

    n = (size_t)sprintf(big, "\x1b[");
    memset(big + n, '1', TTY_FILTER_CSI_MAX);
    n += TTY_FILTER_CSI_MAX;
    memcpy(big + n, "mok", 3);
    n += 3;
    assert_int_equal(tty_filter_run(&f, big, n, out), 2);
    assert_memory_equal(out, "ok", 2);
    assert_int_equal(f.dropped[TTY_DROP_MALFORMED], 2);
    free(big);
    free(out);
}

/*
 * Random input built from the bytes that matter. The terminal is modelled by a second
 * filter reading the output: it must find nothing of a dangerous class there (the filter
 * only emits what it allows, whole), the output holds no clipboard write, and no chunking
 * of the input changes the output.
 */
static void test_random_input(void **state)
{
    (void)state;
    static const unsigned char alphabet[] = {0x1b, ']',  '[',  'P',  '\\', 0x07, '5',  '2',
                                             ';',  '0',  '1',  't',  '?',  'c',  'a',  '\n',
                                             0x9b, 0x9d, 0x9c, 0x90, 0xc2, 0xe2, 0x80, 0x18};
    static const int dangerous[] = {TTY_DROP_OSC52, TTY_DROP_QUERY, TTY_DROP_OSC, TTY_DROP_STRING,
                                    TTY_DROP_WINDOW};
    unsigned seed = 12345;
    char in[512], once[1024], twice[1024], chunked[1024];
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)(rand_r(&seed) % sizeof(in));
        for (size_t i = 0; i < n; i++)
            in[i] = (char)alphabet[rand_r(&seed) % sizeof(alphabet)];
        struct tty_filter f;
        tty_filter_init(&f, 0);
        size_t a = tty_filter_run(&f, in, n, once);
        /* End the input (CAN cancels a sequence) so nothing stays held. */
        a += tty_filter_run(&f, "\x18", 1, once + a);
        assert_int_equal(tty_filter_held(&f), 0);
        tty_filter_init(&f, 0);
        tty_filter_run(&f, once, a, twice);
        tty_filter_run(&f, "\x18", 1, twice);
        for (size_t k = 0; k < sizeof(dangerous) / sizeof(dangerous[0]); k++)
            if (f.dropped[dangerous[k]])
                fail_msg("round %d: the output holds a sequence of class %d", round, dangerous[k]);
        for (size_t i = 0; i + 3 < a; i++)
            if (memcmp(once + i, "\x1b]52", 4) == 0)
                fail_msg("round %d: a clipboard write got through", round);
        tty_filter_init(&f, 0);
        size_t c = 0;
        for (size_t at = 0; at < n;) {
            size_t take = 1 + (size_t)(rand_r(&seed) % 7);
            take = take > n - at ? n - at : take;
            c += tty_filter_run(&f, in + at, take, chunked + c);
            at += take;
        }
        c += tty_filter_run(&f, "\x18", 1, chunked + c);
        if (c != a || memcmp(chunked, once, a) != 0)
            fail_msg("round %d: chunking changed the output", round);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_whole),
        cmocka_unit_test(test_table_byte_by_byte),
        cmocka_unit_test(test_table_every_split),
        cmocka_unit_test(test_held_until_complete),
        cmocka_unit_test(test_overlong_sequences_dropped),
        cmocka_unit_test(test_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

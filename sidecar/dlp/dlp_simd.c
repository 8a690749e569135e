/*
 * dlp_simd — vector filters in front of the hand-written matchers, used when
 * the CPU has AVX2 (checked once, when the engine is built). Each one only
 * skips positions the portable code would reject, or produces exactly the
 * bytes the portable code would, so results do not depend on the path; the
 * portable loops in dlp_rules.c and dlp_secrets.c remain the reference (and
 * the only path on other CPUs), and the unit tests compare the two.
 *
 *  - Token starts: a Teddy-style filter over the two-byte starts of every
 *    prefix. The first byte of each pair chooses one of 16 buckets; four
 *    nibble lookups (pshufb) per 32 positions answer "some pair of this
 *    bucket may start here", ANDed with "the byte before is not
 *    alphanumeric". Only set bits are looked up in the exact two-byte
 *    bitmap, and only its hits are returned to the matchers.
 *  - Projection: the alphanumeric bytes of 8 input bytes, case folded, are
 *    packed with one shuffle chosen by their 8-bit mask (a 256-entry table
 *    in the engine).
 */
#include <stdlib.h>
#include <string.h>

#include "sidecar/dlp/dlp_simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DLP_HAVE_AVX2 1
#include <immintrin.h>
#endif

/* Bucket of a pair's first byte: letters fold case, so A/a or S/s share one. */
static unsigned bucket_of(unsigned char b0, unsigned char *firsts, unsigned *n_firsts)
{
    unsigned char f = (b0 >= 'A' && b0 <= 'Z') ? (unsigned char)(b0 + 32) : b0;
    for (unsigned k = 0; k < *n_firsts; k++)
        if (firsts[k] == f)
            return k % DLP_SIMD_BUCKETS;
    firsts[(*n_firsts)++] = f;
    return (*n_firsts - 1) % DLP_SIMD_BUCKETS;
}

/* Nibble tables from the exact pair bitmap: every pair sets its bucket's bit in all four. */
static void teddy_build(struct dlp_engine *e)
{
    unsigned char firsts[256];
    unsigned n_firsts = 0;
    memset(e->teddy, 0, sizeof(e->teddy));
    for (unsigned pair = 0; pair < 65536; pair++) {
        if (!((e->pairs[pair >> 6] >> (pair & 63)) & 1))
            continue;
        unsigned char b0 = (unsigned char)(pair & 0xff), b1 = (unsigned char)(pair >> 8);
        unsigned k = bucket_of(b0, firsts, &n_firsts), set = k / 8;
        uint8_t bit = (uint8_t)(1u << (k % 8));
        e->teddy[set * 4 + 0][b0 & 15] |= bit;
        e->teddy[set * 4 + 1][b0 >> 4] |= bit;
        e->teddy[set * 4 + 2][b1 & 15] |= bit;
        e->teddy[set * 4 + 3][b1 >> 4] |= bit;
    }
}

/* pack[mask]: the shuffle moving the bytes selected by mask to the front, in order. */
static void pack_build(struct dlp_engine *e)
{
    for (unsigned mask = 0; mask < 256; mask++) {
        unsigned n = 0;
        for (unsigned b = 0; b < 8; b++)
            if (mask & (1u << b))
                e->pack[mask][n++] = (uint8_t)b;
        while (n < 8)
            e->pack[mask][n++] = 0x80; /* pshufb writes 0 */
    }
}

void dlp_simd_init(struct dlp_engine *e)
{
    teddy_build(e);
    pack_build(e);
#ifdef DLP_HAVE_AVX2
    __builtin_cpu_init();
    e->simd_cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
#else
    e->simd_cpu = false;
#endif
    const char *env = getenv("BOTTLE_DLP_SIMD");
    e->simd = e->simd_cpu && !(env && strcmp(env, "0") == 0);
}

void dlp_engine_use_simd(struct dlp_engine *e, bool on)
{
    e->simd = on && e->simd_cpu;
}

#ifdef DLP_HAVE_AVX2

__attribute__((target("avx2"))) static __m256i table(const uint8_t t[16])
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)t));
}

/* Bytes of v that are ASCII letters or digits (signed compares: bytes >= 0x80 are not). */
__attribute__((target("avx2"))) static __m256i alnum32(__m256i v)
{
    __m256i digit = _mm256_and_si256(_mm256_cmpgt_epi8(v, _mm256_set1_epi8('0' - 1)),
                                     _mm256_cmpgt_epi8(_mm256_set1_epi8('9' + 1), v));
    __m256i low = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
    __m256i alpha = _mm256_and_si256(_mm256_cmpgt_epi8(low, _mm256_set1_epi8('a' - 1)),
                                     _mm256_cmpgt_epi8(_mm256_set1_epi8('z' + 1), low));
    return _mm256_or_si256(digit, alpha);
}

__attribute__((target("avx2"))) size_t
dlp_simd_next_start(const struct dlp_engine *e, const unsigned char *u, size_t k, size_t limit)
{
    const __m256i nib = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    const __m256i a0l = table(e->teddy[0]), a0h = table(e->teddy[1]);
    const __m256i a1l = table(e->teddy[2]), a1h = table(e->teddy[3]);
    const __m256i b0l = table(e->teddy[4]), b0h = table(e->teddy[5]);
    const __m256i b1l = table(e->teddy[6]), b1h = table(e->teddy[7]);
    for (; k < limit; k += 32) {
        __m256i c0 = _mm256_loadu_si256((const __m256i *)(const void *)(u + k));
        __m256i c1 = _mm256_loadu_si256((const __m256i *)(const void *)(u + k + 1));
        __m256i before = _mm256_loadu_si256((const __m256i *)(const void *)(u + k - 1));
        __m256i c0l = _mm256_and_si256(c0, nib);
        __m256i c0h = _mm256_and_si256(_mm256_srli_epi16(c0, 4), nib);
        __m256i c1l = _mm256_and_si256(c1, nib);
        __m256i c1h = _mm256_and_si256(_mm256_srli_epi16(c1, 4), nib);
        __m256i a = _mm256_and_si256(
            _mm256_and_si256(_mm256_shuffle_epi8(a0l, c0l), _mm256_shuffle_epi8(a0h, c0h)),
            _mm256_and_si256(_mm256_shuffle_epi8(a1l, c1l), _mm256_shuffle_epi8(a1h, c1h)));
        __m256i b = _mm256_and_si256(
            _mm256_and_si256(_mm256_shuffle_epi8(b0l, c0l), _mm256_shuffle_epi8(b0h, c0h)),
            _mm256_and_si256(_mm256_shuffle_epi8(b1l, c1l), _mm256_shuffle_epi8(b1h, c1h)));
        __m256i none = _mm256_cmpeq_epi8(_mm256_or_si256(a, b), zero);
        uint32_t m = ~(uint32_t)_mm256_movemask_epi8(_mm256_or_si256(none, alnum32(before)));
        for (; m; m &= m - 1) { /* the exact two-byte check here: no return per false hit */
            size_t at = k + (size_t)__builtin_ctz(m);
            unsigned pair = u[at] | (unsigned)u[at + 1] << 8;
            if (at >= limit)
                return limit;
            if ((e->pairs[pair >> 6] >> (pair & 63)) & 1)
                return at;
        }
    }
    return limit;
}

__attribute__((target("avx2,popcnt"))) void dlp_simd_project(const struct dlp_engine *e,
                                                             const char *p, size_t *pi, size_t len,
                                                             char *q, size_t *pm, size_t cap)
{
    size_t i = *pi, m = *pm;
    while (i + 32 <= len && m + 32 <= cap) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(p + i));
        uint32_t keep = (uint32_t)_mm256_movemask_epi8(alnum32(v));
        __m256i folded =
            _mm256_or_si256(v, _mm256_set1_epi8((char)e->fold)); /* as the scalar loop */
        for (unsigned half = 0; half < 2; half++, keep >>= 16) {
            __m128i x = half ? _mm256_extracti128_si256(folded, 1) : _mm256_castsi256_si128(folded);
            unsigned lo = keep & 0xff, hi = (keep >> 8) & 0xff;
            uint64_t sl, sh;
            memcpy(&sl, e->pack[lo], 8);
            memcpy(&sh, e->pack[hi], 8);
            /* the high half's indices point 8 bytes further; 0x80 entries stay 0x80 and up */
            __m128i shuf = _mm_set_epi64x((long long)(sh + 0x0808080808080808ull), (long long)sl);
            __m128i packed = _mm_shuffle_epi8(x, shuf);
            _mm_storel_epi64((__m128i *)(void *)(q + m), packed);
            m += (size_t)__builtin_popcount(lo);
            _mm_storel_epi64((__m128i *)(void *)(q + m), _mm_unpackhi_epi64(packed, packed));
            m += (size_t)__builtin_popcount(hi);
        }
        i += 32;
    }
    *pi = i;
    *pm = m;
}

#else

size_t dlp_simd_next_start(const struct dlp_engine *e, const unsigned char *u, size_t k,
                           size_t limit)
{
    (void)e;
    (void)u;
    (void)limit;
    return k;
}

void dlp_simd_project(const struct dlp_engine *e, const char *p, size_t *pi, size_t len, char *q,
                      size_t *pm, size_t cap)
{
    (void)e;
    (void)p;
    (void)pi;
    (void)len;
    (void)q;
    (void)pm;
    (void)cap;
}

#endif

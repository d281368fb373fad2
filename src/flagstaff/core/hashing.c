/* SHA-1 (FIPS 180-4 §6.1) and SHA-256 (FIPS 180-4 §6.2), byte-oriented,
 * big-endian message schedule, one 64-byte block at a time. */
#include <stdlib.h>
#include <string.h>

#include "hashing.h"

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

/* ---- Message buffering, shared by both hashes ----------------------------
 * Both absorb 64-byte blocks and pad the same way (FIPS 180-4 §5.1.1): a 1
 * bit, zeros up to 56 mod 64, then the length in bits, big-endian. */
typedef void (*compress_fn)(uint32_t *state, const uint8_t *blocks,
                            size_t count);

static void absorb(uint32_t *state, uint8_t block[64], size_t *used,
                   uint64_t *length, const uint8_t *p, size_t size,
                   compress_fn compress)
{
    *length += size;
    if (*used) {
        size_t take = 64 - *used < size ? 64 - *used : size;
        memcpy(block + *used, p, take);
        *used += take;
        p += take;
        size -= take;
        if (*used < 64)
            return;
        compress(state, block, 1);
        *used = 0;
    }
    if (size >= 64) {
        compress(state, p, size / 64);
        p += size & ~(size_t)63;
        size &= 63;
    }
    memcpy(block, p, size);
    *used = size;
}

static void pad(uint32_t *state, uint8_t block[64], size_t used,
                uint64_t length, compress_fn compress)
{
    block[used++] = 0x80;
    if (used > 56) {
        memset(block + used, 0, 64 - used);
        compress(state, block, 1);
        used = 0;
    }
    memset(block + used, 0, 56 - used);
    store_be64(block + 56, length * 8);
    compress(state, block, 1);
}

/* ---- SHA-1 ------------------------------------------------------------ */

/* The portable rounds. The schedule lives in a 16-word ring, and each group
 * of twenty rounds has its own loop so that the round function and constant
 * are fixed inside it (the compiler unrolls them). */
#define SHA1_W(t) \
    (w[(t) & 15] = ROTL(w[((t) + 13) & 15] ^ w[((t) + 8) & 15] ^ \
                        w[((t) + 2) & 15] ^ w[(t) & 15], 1))
#define SHA1_ROUND(f, k, wt)                                  \
    do {                                                      \
        uint32_t temp = ROTL(a, 5) + (f) + e + (k) + (wt);    \
        e = d;                                                \
        d = c;                                                \
        c = ROTL(b, 30);                                      \
        b = a;                                                \
        a = temp;                                             \
    } while (0)

static void sha1_blocks_portable(uint32_t state[5], const uint8_t *data,
                                 size_t blocks)
{
    for (; blocks; blocks--, data += 64) {
        uint32_t w[16];
        for (int t = 0; t < 16; t++)
            w[t] = load_be32(data + 4 * t);

        uint32_t a = state[0], b = state[1], c = state[2], d = state[3],
                 e = state[4];
        int t = 0;
        for (; t < 16; t++)
            SHA1_ROUND((b & c) | (~b & d), 0x5a827999, w[t]);   /* Ch */
        for (; t < 20; t++)
            SHA1_ROUND((b & c) | (~b & d), 0x5a827999, SHA1_W(t));
        for (; t < 40; t++)
            SHA1_ROUND(b ^ c ^ d, 0x6ed9eba1, SHA1_W(t));       /* Parity */
        for (; t < 60; t++)
            SHA1_ROUND((b & c) | (b & d) | (c & d), 0x8f1bbcdc,  /* Maj */
                       SHA1_W(t));
        for (; t < 80; t++)
            SHA1_ROUND(b ^ c ^ d, 0xca62c1d6, SHA1_W(t));
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
    }
}

#if (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define FS_HAVE_SHA_NI 1

/* The same compression with the CPU's SHA extensions: each sha1rnds4 does
 * four rounds, sha1nexte derives the next E from the state four rounds
 * back, and sha1msg1/sha1msg2 extend the schedule four words at a time:
 * W[i] = msg2(msg1(W[i-4], W[i-3]) ^ W[i-2], W[i-1]). Lanes hold the words
 * big end first (A, and w[4i], in the top lane). */
#define SHA1_NI_GROUPS(first, last, function)                       \
    for (int i = (first); i < (last); i++) {                        \
        __m128i previous = abcd;                                    \
        abcd = _mm_sha1rnds4_epu32(abcd, e, (function));            \
        e = _mm_sha1nexte_epu32(previous, i < 19 ? w[i + 1] : saved_e); \
    }

__attribute__((target("sha,ssse3,sse4.1")))
static void sha1_blocks_ni(uint32_t state[5], const uint8_t *data,
                           size_t blocks)
{
    const __m128i reverse_bytes =
        _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(
        _mm_loadu_si128((const __m128i *)state), 0x1b);
    __m128i e0 = _mm_set_epi32((int)state[4], 0, 0, 0);

    for (; blocks; blocks--, data += 64) {
        __m128i w[20];
        for (int i = 0; i < 4; i++)
            w[i] = _mm_shuffle_epi8(
                _mm_loadu_si128((const __m128i *)(data + 16 * i)),
                reverse_bytes);
        for (int i = 4; i < 20; i++)
            w[i] = _mm_sha1msg2_epu32(
                _mm_xor_si128(_mm_sha1msg1_epu32(w[i - 4], w[i - 3]),
                              w[i - 2]),
                w[i - 1]);

        __m128i saved_abcd = abcd, saved_e = e0;
        __m128i e = _mm_add_epi32(e0, w[0]);
        SHA1_NI_GROUPS(0, 5, 0)
        SHA1_NI_GROUPS(5, 10, 1)
        SHA1_NI_GROUPS(10, 15, 2)
        SHA1_NI_GROUPS(15, 20, 3)
        e0 = e;
        abcd = _mm_add_epi32(abcd, saved_abcd);
    }
    _mm_storeu_si128((__m128i *)state, _mm_shuffle_epi32(abcd, 0x1b));
    state[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}

static int cpu_has_sha_ni(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return 0;
    int ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        return 0;
    return ssse3 && sse41 && ((ebx >> 29) & 1);
}
#endif

/* Chosen once, on first use: the SHA extensions where the CPU has them. */
static compress_fn sha1_blocks_impl;

static void sha1_blocks(uint32_t state[5], const uint8_t *data, size_t blocks)
{
    compress_fn impl = sha1_blocks_impl;
    if (!impl) {
        impl = sha1_blocks_portable;
#ifdef FS_HAVE_SHA_NI
        if (cpu_has_sha_ni() && !getenv("FLAGSTAFF_PORTABLE_SHA1"))
            impl = sha1_blocks_ni;
#endif
        sha1_blocks_impl = impl;
    }
    impl(state, data, blocks);
}

const char *fs_sha1_implementation(void)
{
    uint32_t state[5] = {0};
    uint8_t block[64] = {0};
    sha1_blocks(state, block, 0);
    return sha1_blocks_impl == sha1_blocks_portable ? "portable" : "sha-ni";
}

void fs_sha1_init(fs_sha1 *ctx)
{
    static const uint32_t initial[5] = {
        0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0,
    };
    memcpy(ctx->state, initial, sizeof initial);
    ctx->length = 0;
    ctx->used = 0;
}

void fs_sha1_update(fs_sha1 *ctx, const void *data, size_t size)
{
    absorb(ctx->state, ctx->block, &ctx->used, &ctx->length, data, size,
           sha1_blocks);
}

void fs_sha1_final(fs_sha1 *ctx, uint8_t digest[20])
{
    pad(ctx->state, ctx->block, ctx->used, ctx->length, sha1_blocks);
    for (int i = 0; i < 5; i++)
        store_be32(digest + 4 * i, ctx->state[i]);
}

/* ---- SHA-256 ---------------------------------------------------------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void sha256_block(uint32_t state[8], const uint8_t *block)
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^
                      (w[t - 15] >> 3);
        uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^
                      (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3],
             e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t sum1 = ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + sum1 + ch + K256[t] + w[t];
        uint32_t sum0 = ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = sum0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void fs_sha256_init(fs_sha256 *ctx)
{
    static const uint32_t initial[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(ctx->state, initial, sizeof initial);
    ctx->length = 0;
    ctx->used = 0;
}

static void sha256_blocks(uint32_t *state, const uint8_t *data, size_t count)
{
    for (; count; count--, data += 64)
        sha256_block(state, data);
}

void fs_sha256_update(fs_sha256 *ctx, const void *data, size_t size)
{
    absorb(ctx->state, ctx->block, &ctx->used, &ctx->length, data, size,
           sha256_blocks);
}

void fs_sha256_final(fs_sha256 *ctx, uint8_t digest[32])
{
    pad(ctx->state, ctx->block, ctx->used, ctx->length, sha256_blocks);
    for (int i = 0; i < 8; i++)
        store_be32(digest + 4 * i, ctx->state[i]);
}

/* ---- Percentage bucketing ----------------------------------------------
 * ConfigCat hashes the setting key followed by the attribute's text, takes
 * the first seven hex digits of the SHA-1 (28 bits) as a number and keeps
 * it modulo 100. The same bucket comes out in every ConfigCat SDK. */
int fs_bucket(const char *prefix, size_t prefix_size,
              const char *text, size_t text_size)
{
    static const uint32_t initial[5] = {
        0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0,
    };
    size_t size = prefix_size + text_size;
    uint32_t first;

    if (size <= 55) {
        /* A short message pads into one block: compress it directly. */
        uint32_t state[5];
        uint8_t block[64] = {0};
        memcpy(state, initial, sizeof state);
        memcpy(block, prefix, prefix_size);
        memcpy(block + prefix_size, text, text_size);
        block[size] = 0x80;
        store_be64(block + 56, (uint64_t)size * 8);
        sha1_blocks(state, block, 1);
        first = state[0];
    } else {
        fs_sha1 ctx;
        uint8_t digest[20];
        fs_sha1_init(&ctx);
        fs_sha1_update(&ctx, prefix, prefix_size);
        fs_sha1_update(&ctx, text, text_size);
        fs_sha1_final(&ctx, digest);
        first = load_be32(digest);
    }
    return (int)((first >> 4) % 100);
}

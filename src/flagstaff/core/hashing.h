/* SHA-1 and SHA-256 for flagstaff's evaluation core.
 *
 * ConfigCat buckets users for percentage options with SHA-1 and compares
 * confidential (hashed) values with SHA-256. Both are written here, for the
 * short messages that evaluation hashes; they need no Python and no GIL.
 */
#ifndef FLAGSTAFF_HASHING_H
#define FLAGSTAFF_HASHING_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[5];
    uint64_t length;            /* bytes absorbed so far */
    uint8_t block[64];
    size_t used;                /* bytes waiting in block */
} fs_sha1;

typedef struct {
    uint32_t state[8];
    uint64_t length;
    uint8_t block[64];
    size_t used;
} fs_sha256;

void fs_sha1_init(fs_sha1 *ctx);
void fs_sha1_update(fs_sha1 *ctx, const void *data, size_t size);
void fs_sha1_final(fs_sha1 *ctx, uint8_t digest[20]);

/* Which SHA-1 compression this CPU runs: "sha-ni" or "portable". Setting
 * FLAGSTAFF_PORTABLE_SHA1 in the environment forces the portable one. */
const char *fs_sha1_implementation(void);

void fs_sha256_init(fs_sha256 *ctx);
void fs_sha256_update(fs_sha256 *ctx, const void *data, size_t size);
void fs_sha256_final(fs_sha256 *ctx, uint8_t digest[32]);

/* The percentage bucket of ConfigCat: the first 28 bits of
 * SHA-1(prefix ‖ text), read as a big-endian number, modulo 100. */
int fs_bucket(const char *prefix, size_t prefix_size,
              const char *text, size_t text_size);

#endif

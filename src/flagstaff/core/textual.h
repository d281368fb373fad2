/* Text handling for flagstaff's evaluation core: the conversions that
 * ConfigCat's comparators apply to user attribute values (whitespace
 * trimming, decimal numbers, semantic versions, JSON string arrays) and the
 * canonical string form of numbers. Pure C, usable without the GIL. */
#ifndef FLAGSTAFF_TEXTUAL_H
#define FLAGSTAFF_TEXTUAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *ptr;
    size_t size;
} fs_bytes;

/* Strips the characters Python's str.strip() strips (Unicode white space)
 * from both ends of UTF-8 text. */
fs_bytes fs_strip(fs_bytes text);

/* Parses text as Python's float() does after ConfigCat replaced every ','
 * by '.': the white space float() skips around it, an optional sign,
 * digits (of any script) with single underscores between them, an optional
 * fraction and exponent, or inf/infinity/nan in any case. Returns 1 and
 * stores the value on success, 0 when the text is not a number. */
int fs_parse_number(fs_bytes text, double *out);

/* A parsed SemVer 2.0.0 version; the parts point into the parsed text. */
typedef struct {
    fs_bytes major, minor, patch;
    fs_bytes prerelease;        /* empty when the version has none */
} fs_semver;

/* Parses a strict SemVer 2.0.0 version (no 'v' prefix, no leading zeros,
 * all three numbers). The text must already be stripped. 1 on success. */
int fs_semver_parse(fs_bytes text, fs_semver *out);

/* Orders two versions by SemVer precedence, ignoring build metadata:
 * negative, zero or positive. */
int fs_semver_compare(const fs_semver *a, const fs_semver *b);

/* Decodes text holding a JSON array of strings, the form ConfigCat accepts
 * for array comparators. Decoded items go to `items` (at most max_items)
 * with their UTF-8 bytes in `scratch` (scratch_size bytes). Returns the
 * number of items, -1 when the text is not a JSON array of strings, or -2
 * when it does not fit the space given (the caller retries with more). */
int fs_parse_string_array(fs_bytes text, fs_bytes *items, int max_items,
                          char *scratch, size_t scratch_size);

/* Writes the canonical string of a double as ConfigCat's SDKs print it
 * (ECMAScript's Number::toString: NaN, Infinity, plain decimals from 1e-6
 * to below 1e21, exponent form elsewhere, shortest round-trip digits).
 * `out` must hold 32 bytes; returns the length. */
int fs_format_double(double value, char *out);

/* Writes JSON for a list of strings as Python's json.dumps does with
 * ensure_ascii=False and compact separators. Returns the length written or,
 * when out_size is too small, the length needed. */
size_t fs_format_string_list(const fs_bytes *items, int count, char *out,
                             size_t out_size);

/* Seconds since the epoch from `ticks` of 1/per_second s, correctly
 * rounded (as Python's timedelta.total_seconds()). */
double fs_ticks_to_seconds(int64_t ticks, int64_t per_second);

void fs_textual_init(void);

#endif

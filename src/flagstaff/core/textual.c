/* Conversions of user attribute text for the comparators; see textual.h. */
#define _GNU_SOURCE
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textual.h"

/* strtod reads numbers in the "C" locale whatever the process set, so that
 * "1.5" means the same to every application. */
static locale_t c_locale;

void fs_textual_init(void)
{
    if (!c_locale)
        c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static double c_strtod(const char *text, char **end)
{
    if (c_locale)
        return strtod_l(text, end, c_locale);
    return strtod(text, end);
}

/* ---- White space --------------------------------------------------------
 * The code points for which Python's str.isspace() is true, which is what
 * str.strip() removes when ConfigCat trims a version or a number. */
static int is_python_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) ||
           cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Decodes the code point starting at p (valid UTF-8 assumed, as produced
 * by Python) and returns its length in bytes. */
static int decode_utf8(const unsigned char *p, size_t avail, uint32_t *cp)
{
    if (p[0] < 0x80 || avail < 2) {
        *cp = p[0];
        return 1;
    }
    if ((p[0] & 0xe0) == 0xc0) {
        *cp = ((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
        return 2;
    }
    if ((p[0] & 0xf0) == 0xe0 && avail >= 3) {
        *cp = ((uint32_t)(p[0] & 0x0f) << 12) |
              ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
        return 3;
    }
    if (avail >= 4) {
        *cp = ((uint32_t)(p[0] & 0x07) << 18) |
              ((uint32_t)(p[1] & 0x3f) << 12) |
              ((uint32_t)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
        return 4;
    }
    *cp = p[0];
    return 1;
}

/* Strips the code points `is_space` accepts from both ends of UTF-8 text. */
static fs_bytes strip_with(fs_bytes text, int (*is_space)(uint32_t))
{
    const unsigned char *p = (const unsigned char *)text.ptr;
    size_t start = 0, end = text.size;
    uint32_t cp;

    while (start < end) {
        int n = decode_utf8(p + start, end - start, &cp);
        if (!is_space(cp))
            break;
        start += n;
    }
    while (end > start) {
        size_t lead = end - 1;
        while (lead > start && (p[lead] & 0xc0) == 0x80)
            lead--;
        decode_utf8(p + lead, end - lead, &cp);
        if (!is_space(cp))
            break;
        end = lead;
    }
    fs_bytes out = {text.ptr + start, end - start};
    return out;
}

fs_bytes fs_strip(fs_bytes text)
{
    return strip_with(text, is_python_space);
}

/* The white space Python's float() skips around a number: str.strip()'s,
 * except the ASCII separators U+001C to U+001F, which float() refuses. */
static int is_float_space(uint32_t cp)
{
    return is_python_space(cp) && !(cp >= 0x1c && cp <= 0x1f);
}

/* ---- Decimal numbers --------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int lower_equals(const char *p, size_t n, const char *word)
{
    size_t len = strlen(word);
    if (n != len)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return 0;
    }
    return 1;
}

/* Copies a run of digits in which single underscores may separate digits
 * (PEP 515), dropping the underscores. Returns the digits copied, or -1
 * when an underscore is misplaced. */
static long copy_digit_group(const char *p, size_t n, size_t *pos,
                             char *out, size_t *out_pos)
{
    long digits = 0;
    while (*pos < n) {
        char c = p[*pos];
        if (is_digit(c)) {
            out[(*out_pos)++] = c;
            digits++;
            (*pos)++;
        } else if (c == '_' && digits > 0 && *pos + 1 < n &&
                   is_digit(p[*pos + 1])) {
            (*pos)++;
        } else if (c == '_') {
            return -1;
        } else {
            break;
        }
    }
    return digits;
}

/* The first code point of each run of ten decimal digits (Unicode category
 * Nd, Unicode 14) outside ASCII: Python's float() reads them as 0-9. */
static const uint32_t decimal_zeros[] = {
    0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66,
    0xbe6, 0xc66, 0xce6, 0xd66, 0xde6, 0xe50, 0xed0, 0xf20,
    0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0,
    0xa9f0, 0xaa50, 0xabf0, 0xff10, 0x104a0, 0x10d30, 0x11066, 0x110f0,
    0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730,
    0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50,
    0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950,
    0x1fbf0,
};

static int decimal_digit(uint32_t cp)
{
    size_t n = sizeof decimal_zeros / sizeof decimal_zeros[0];
    for (size_t i = 0; i < n && decimal_zeros[i] <= cp; i++)
        if (cp - decimal_zeros[i] < 10)
            return (int)(cp - decimal_zeros[i]);
    return -1;
}

static int parse_ascii_number(fs_bytes text, double *out);

/* Text with non-ASCII characters parses as Python does it: decimal digits of
 * any script become ASCII digits; any other character makes it no number. */
static int parse_unicode_number(fs_bytes text, double *out)
{
    char local[128];
    char *ascii = text.size <= sizeof local ? local : malloc(text.size);
    if (!ascii)
        return 0;
    const unsigned char *p = (const unsigned char *)text.ptr;
    size_t at = 0, used = 0;
    int ok = 1;
    while (at < text.size && ok) {
        uint32_t cp;
        at += (size_t)decode_utf8(p + at, text.size - at, &cp);
        int digit = cp < 0x80 ? -1 : decimal_digit(cp);
        if (cp < 0x80)
            ascii[used++] = (char)cp;
        else if (digit >= 0)
            ascii[used++] = (char)('0' + digit);
        else
            ok = 0;
    }
    fs_bytes converted = {ascii, used};
    ok = ok && parse_ascii_number(converted, out);
    if (ascii != local)
        free(ascii);
    return ok;
}

int fs_parse_number(fs_bytes raw, double *out)
{
    fs_bytes text = strip_with(raw, is_float_space);
    for (size_t i = 0; i < text.size; i++)
        if ((unsigned char)text.ptr[i] >= 0x80)
            return parse_unicode_number(text, out);
    return parse_ascii_number(text, out);
}

static int parse_ascii_number(fs_bytes text, double *out)
{
    const char *p = text.ptr;
    size_t n = text.size, pos = 0, o = 0;
    char local[128];
    char *buf = local;
    int ok = 0;

    if (n == 0)
        return 0;
    if (n + 2 > sizeof local) {
        buf = malloc(n + 2);
        if (!buf)
            return 0;
    }

    int negative = 0;
    if (p[pos] == '+' || p[pos] == '-') {
        negative = p[pos] == '-';
        buf[o++] = p[pos++];
    }
    if (lower_equals(p + pos, n - pos, "inf") ||
        lower_equals(p + pos, n - pos, "infinity")) {
        *out = negative ? -INFINITY : INFINITY;
        ok = 1;
        goto done;
    }
    if (lower_equals(p + pos, n - pos, "nan")) {
        *out = NAN;
        ok = 1;
        goto done;
    }

    long whole = copy_digit_group(p, n, &pos, buf, &o);
    if (whole < 0)
        goto done;
    long fraction = 0;
    /* ConfigCat turns every ',' into '.', so both mark the fraction. */
    if (pos < n && (p[pos] == '.' || p[pos] == ',')) {
        buf[o++] = '.';
        pos++;
        fraction = copy_digit_group(p, n, &pos, buf, &o);
        if (fraction < 0)
            goto done;
    }
    if (whole == 0 && fraction == 0)
        goto done;
    if (pos < n && (p[pos] == 'e' || p[pos] == 'E')) {
        buf[o++] = 'e';
        pos++;
        if (pos < n && (p[pos] == '+' || p[pos] == '-'))
            buf[o++] = p[pos++];
        if (copy_digit_group(p, n, &pos, buf, &o) <= 0)
            goto done;
    }
    if (pos != n)
        goto done;
    buf[o] = '\0';

    char *end;
    *out = c_strtod(buf, &end);
    ok = end == buf + o;
done:
    if (buf != local)
        free(buf);
    return ok;
}

/* ---- Semantic versions --------------------------------------------------
 * SemVer 2.0.0: MAJOR.MINOR.PATCH, numbers without leading zeros, then an
 * optional pre-release (dot-separated identifiers; numeric ones without
 * leading zeros) and optional build metadata, which ordering ignores. */

static int is_ident_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '-';
}

static int parse_number_part(const char *p, size_t n, size_t *pos,
                             fs_bytes *part)
{
    size_t start = *pos;
    while (*pos < n && is_digit(p[*pos]))
        (*pos)++;
    size_t len = *pos - start;
    if (len == 0 || (len > 1 && p[start] == '0'))
        return 0;
    part->ptr = p + start;
    part->size = len;
    return 1;
}

/* Checks dot-separated identifiers in p[start, end); numeric pre-release
 * identifiers may not have leading zeros. */
static int valid_identifiers(const char *p, size_t start, size_t end,
                             int prerelease)
{
    if (start == end)
        return 0;
    size_t i = start;
    while (i <= end) {
        size_t j = i;
        int all_digits = 1;
        while (j < end && p[j] != '.') {
            if (!is_ident_char(p[j]))
                return 0;
            if (!is_digit(p[j]))
                all_digits = 0;
            j++;
        }
        if (j == i)
            return 0;
        if (prerelease && all_digits && j - i > 1 && p[i] == '0')
            return 0;
        i = j + 1;
    }
    return 1;
}

int fs_semver_parse(fs_bytes text, fs_semver *out)
{
    const char *p = text.ptr;
    size_t n = text.size, pos = 0;

    if (!parse_number_part(p, n, &pos, &out->major) || pos >= n ||
        p[pos++] != '.')
        return 0;
    if (!parse_number_part(p, n, &pos, &out->minor) || pos >= n ||
        p[pos++] != '.')
        return 0;
    if (!parse_number_part(p, n, &pos, &out->patch))
        return 0;

    out->prerelease.ptr = p + pos;
    out->prerelease.size = 0;
    if (pos < n && p[pos] == '-') {
        size_t start = ++pos;
        while (pos < n && p[pos] != '+')
            pos++;
        if (!valid_identifiers(p, start, pos, 1))
            return 0;
        out->prerelease.ptr = p + start;
        out->prerelease.size = pos - start;
    }
    if (pos < n && p[pos] == '+') {
        if (!valid_identifiers(p, pos + 1, n, 0))
            return 0;
        pos = n;
    }
    return pos == n;
}

/* Numbers without leading zeros order by length, then digit by digit. */
static int compare_numeric(const char *a, size_t na, const char *b, size_t nb)
{
    while (na > 1 && *a == '0') {
        a++;
        na--;
    }
    while (nb > 1 && *b == '0') {
        b++;
        nb--;
    }
    if (na != nb)
        return na < nb ? -1 : 1;
    int c = memcmp(a, b, na);
    return (c > 0) - (c < 0);
}

static int compare_text(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c)
        return c < 0 ? -1 : 1;
    return (na > nb) - (na < nb);
}

static int all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(p[i]))
            return 0;
    return 1;
}

int fs_semver_compare(const fs_semver *a, const fs_semver *b)
{
    int c = compare_numeric(a->major.ptr, a->major.size, b->major.ptr,
                            b->major.size);
    if (!c)
        c = compare_numeric(a->minor.ptr, a->minor.size, b->minor.ptr,
                            b->minor.size);
    if (!c)
        c = compare_numeric(a->patch.ptr, a->patch.size, b->patch.ptr,
                            b->patch.size);
    if (c)
        return c;

    /* A version with a pre-release ranks below the same version without. */
    size_t na = a->prerelease.size, nb = b->prerelease.size;
    if (!na || !nb)
        return (na == 0) - (nb == 0);

    const char *pa = a->prerelease.ptr, *pb = b->prerelease.ptr;
    size_t ia = 0, ib = 0;
    while (ia < na && ib < nb) {
        size_t ea = ia, eb = ib;
        while (ea < na && pa[ea] != '.')
            ea++;
        while (eb < nb && pb[eb] != '.')
            eb++;
        int da = all_digits(pa + ia, ea - ia), db = all_digits(pb + ib, eb - ib);
        /* Numeric identifiers rank below alphanumeric ones. */
        if (da && db)
            c = compare_numeric(pa + ia, ea - ia, pb + ib, eb - ib);
        else if (da != db)
            c = da ? -1 : 1;
        else
            c = compare_text(pa + ia, ea - ia, pb + ib, eb - ib);
        if (c)
            return c;
        ia = ea + 1;
        ib = eb + 1;
    }
    /* Equal so far: the version with identifiers left ranks higher (an
     * index past the end means that side was used up). */
    int more_a = ia <= na, more_b = ib <= nb;
    return more_a - more_b;
}

/* ---- JSON arrays of strings --------------------------------------------- */

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(const char *p, size_t n, size_t pos, uint32_t *out)
{
    if (pos + 4 > n)
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[pos + i]);
        if (h < 0)
            return 0;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return 1;
}

static size_t encode_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int fs_parse_string_array(fs_bytes text, fs_bytes *items, int max_items,
                          char *scratch, size_t scratch_size)
{
    const char *p = text.ptr;
    size_t n = text.size, pos = 0, used = 0;
    int count = 0, overflow = 0;

    while (pos < n && is_json_space(p[pos]))
        pos++;
    if (pos >= n || p[pos++] != '[')
        return -1;
    while (pos < n && is_json_space(p[pos]))
        pos++;
    if (pos < n && p[pos] == ']') {
        pos++;
        goto tail;
    }
    for (;;) {
        if (pos >= n || p[pos++] != '"')
            return -1;
        size_t start = used;
        for (;;) {
            if (pos >= n)
                return -1;
            unsigned char c = (unsigned char)p[pos++];
            char encoded[8];
            size_t len;
            if (c == '"')
                break;
            if (c < 0x20)           /* strict JSON: no raw control chars */
                return -1;
            if (c != '\\') {
                encoded[0] = (char)c;
                len = 1;
            } else {
                if (pos >= n)
                    return -1;
                char e = p[pos++];
                uint32_t cp;
                switch (e) {
                case '"': cp = '"'; break;
                case '\\': cp = '\\'; break;
                case '/': cp = '/'; break;
                case 'b': cp = '\b'; break;
                case 'f': cp = '\f'; break;
                case 'n': cp = '\n'; break;
                case 'r': cp = '\r'; break;
                case 't': cp = '\t'; break;
                case 'u':
                    if (!read_hex4(p, n, pos, &cp))
                        return -1;
                    pos += 4;
                    /* A surrogate pair joins into one code point; a lone
                     * surrogate stays as its own (never equal to valid
                     * UTF-8 text, as in Python). */
                    if (cp >= 0xd800 && cp <= 0xdbff && pos + 6 <= n &&
                        p[pos] == '\\' && p[pos + 1] == 'u') {
                        uint32_t low;
                        if (read_hex4(p, n, pos + 2, &low) && low >= 0xdc00 &&
                            low <= 0xdfff) {
                            cp = 0x10000 + ((cp - 0xd800) << 10) +
                                 (low - 0xdc00);
                            pos += 6;
                        }
                    }
                    break;
                default:
                    return -1;
                }
                len = encode_utf8(cp, encoded);
            }
            if (used + len <= scratch_size)
                memcpy(scratch + used, encoded, len);
            else
                overflow = 1;
            used += len;
        }
        if (count < max_items && !overflow) {
            items[count].ptr = scratch + start;
            items[count].size = used - start;
        } else {
            overflow = 1;
        }
        count++;
        while (pos < n && is_json_space(p[pos]))
            pos++;
        if (pos < n && p[pos] == ',') {
            pos++;
            while (pos < n && is_json_space(p[pos]))
                pos++;
            continue;
        }
        if (pos < n && p[pos] == ']') {
            pos++;
            break;
        }
        return -1;
    }
tail:
    while (pos < n && is_json_space(p[pos]))
        pos++;
    if (pos != n)
        return -1;
    return overflow ? -2 : count;
}

/* ---- Canonical strings ------------------------------------------------- */

/* Whether 0.DIGITS x 10^exponent reads back as `value`. */
static int round_trips(const char *digits, int count, int exponent,
                       double value)
{
    char buf[48];
    snprintf(buf, sizeof buf, "0.%.*se%d", count, digits, exponent);
    char *end;
    return c_strtod(buf, &end) == value;
}

/* Adds `step` (+1 or -1) to the last of `count` digits, carrying; keeps
 * `count` digits by moving the exponent. */
static void step_digits(char *digits, int count, int *exponent, int step)
{
    int i = count - 1;
    while (i >= 0) {
        int d = digits[i] - '0' + step;
        if (d >= 0 && d <= 9) {
            digits[i] = (char)('0' + d);
            break;
        }
        digits[i--] = step > 0 ? '0' : '9';
    }
    if (i < 0 && step > 0) {            /* 99..9 + 1 = 100..0 */
        memmove(digits + 1, digits, (size_t)count - 1);
        digits[0] = '1';
        (*exponent)++;
    } else if (digits[0] == '0') {      /* 100..0 - 1 = 099..9 */
        memmove(digits, digits + 1, (size_t)count - 1);
        digits[count - 1] = '9';
        (*exponent)--;
    }
}

/* The shortest digits that read back as the same double, the closest to
 * it among those (ECMAScript's Number::toString). At each precision the
 * correctly rounded digits are tried first, then their neighbours: next to
 * a power of two the rounding interval is lopsided, and a neighbour may
 * read back where the rounded digits do not. Digits go to `digits`, the
 * decimal exponent (value = 0.d1d2... x 10^exponent) to *exponent. */
static int shortest_digits(double value, char *digits, int *exponent)
{
    char buf[40];
    for (int precision = 0; precision < 17; precision++) {
        snprintf(buf, sizeof buf, "%.*e", precision, value);
        int count = 0;
        char *p = buf;
        for (; *p && *p != 'e' && *p != 'E'; p++)
            if (is_digit(*p))
                digits[count++] = *p;
        int e = atoi(p + 1) + 1;

        int found = round_trips(digits, count, e, value) || precision == 16;
        for (int step = -1; !found && step <= 1; step += 2) {
            char near[24];
            int near_e = e;
            memcpy(near, digits, (size_t)count);
            step_digits(near, count, &near_e, step);
            if (round_trips(near, count, near_e, value)) {
                memcpy(digits, near, (size_t)count);
                e = near_e;
                found = 1;
            }
        }
        if (found) {
            while (count > 1 && digits[count - 1] == '0')
                count--;
            *exponent = e;
            return count;
        }
    }
    return 0;
}

int fs_format_double(double value, char *out)
{
    if (isnan(value))
        return sprintf(out, "NaN");
    if (isinf(value))
        return sprintf(out, value > 0 ? "Infinity" : "-Infinity");
    if (value == 0)
        return sprintf(out, "0");

    char digits[24];
    int n, k, len = 0;
    if (value < 0) {
        out[len++] = '-';
        value = -value;
    }
    k = shortest_digits(value, digits, &n);

    if (k <= n && n <= 21) {
        memcpy(out + len, digits, k);
        len += k;
        for (int i = k; i < n; i++)
            out[len++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + len, digits, n);
        len += n;
        out[len++] = '.';
        memcpy(out + len, digits + n, k - n);
        len += k - n;
    } else if (-6 < n && n <= 0) {
        out[len++] = '0';
        out[len++] = '.';
        for (int i = 0; i < -n; i++)
            out[len++] = '0';
        memcpy(out + len, digits, k);
        len += k;
    } else {
        out[len++] = digits[0];
        if (k > 1) {
            out[len++] = '.';
            memcpy(out + len, digits + 1, k - 1);
            len += k - 1;
        }
        len += sprintf(out + len, "e%c%d", n - 1 >= 0 ? '+' : '-',
                       abs(n - 1));
    }
    out[len] = '\0';
    return len;
}

static size_t put(char *out, size_t size, size_t at, const char *s, size_t n)
{
    if (at + n <= size)
        memcpy(out + at, s, n);
    return at + n;
}

size_t fs_format_string_list(const fs_bytes *items, int count, char *out,
                             size_t out_size)
{
    static const char hex[] = "0123456789abcdef";
    size_t at = put(out, out_size, 0, "[", 1);
    for (int i = 0; i < count; i++) {
        if (i)
            at = put(out, out_size, at, ",", 1);
        at = put(out, out_size, at, "\"", 1);
        for (size_t j = 0; j < items[i].size; j++) {
            unsigned char c = (unsigned char)items[i].ptr[j];
            char esc[6];
            switch (c) {
            case '"': at = put(out, out_size, at, "\\\"", 2); break;
            case '\\': at = put(out, out_size, at, "\\\\", 2); break;
            case '\n': at = put(out, out_size, at, "\\n", 2); break;
            case '\r': at = put(out, out_size, at, "\\r", 2); break;
            case '\t': at = put(out, out_size, at, "\\t", 2); break;
            case '\b': at = put(out, out_size, at, "\\b", 2); break;
            case '\f': at = put(out, out_size, at, "\\f", 2); break;
            default:
                if (c < 0x20) {
                    esc[0] = '\\';
                    esc[1] = 'u';
                    esc[2] = '0';
                    esc[3] = '0';
                    esc[4] = hex[c >> 4];
                    esc[5] = hex[c & 15];
                    at = put(out, out_size, at, esc, 6);
                } else {
                    at = put(out, out_size, at, (const char *)&c, 1);
                }
            }
        }
        at = put(out, out_size, at, "\"", 1);
    }
    return put(out, out_size, at, "]", 1);
}

/* ---- Timestamps -----------------------------------------------------------
 * Seconds since the epoch from a count of `per_second` ticks, rounded once,
 * as Python's timedelta.total_seconds() rounds microseconds / 10**6. Up to
 * 2**53 ticks both numbers are exact doubles and one division rounds
 * correctly; beyond, the neighbours of an estimate are compared exactly. */
double fs_ticks_to_seconds(int64_t ticks, int64_t per_second)
{
    if (ticks > -(INT64_C(1) << 53) && ticks < (INT64_C(1) << 53))
        return (double)ticks / (double)per_second;

    double estimate = (double)(ticks / per_second) +
                      (double)(ticks % per_second) / (double)per_second;
    double best = estimate;
    __int128 best_error = -1;
    double candidates[3] = {nextafter(estimate, -INFINITY), estimate,
                            nextafter(estimate, INFINITY)};
    for (int i = 0; i < 3; i++) {
        /* candidate = m * 2^e exactly; compare candidate * per_second with
         * ticks, both scaled by 2^-e' to integers. */
        int e;
        double m = frexp(candidates[i], &e);
        int64_t mantissa = (int64_t)ldexp(m, 53);
        int shift = e - 53;                 /* candidate = mantissa * 2^shift */
        __int128 lhs, rhs;
        if (shift >= 0) {
            lhs = (__int128)mantissa * per_second * ((__int128)1 << shift);
            rhs = ticks;
        } else {
            lhs = (__int128)mantissa * per_second;
            rhs = (__int128)ticks * ((__int128)1 << -shift);
        }
        __int128 error = lhs > rhs ? lhs - rhs : rhs - lhs;
        /* Ties go to the even mantissa, as IEEE rounding does. */
        if (best_error < 0 || error < best_error ||
            (error == best_error && (mantissa & 1) == 0)) {
            best = candidates[i];
            best_error = error;
        }
    }
    return best;
}

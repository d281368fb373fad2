/* ConfigCat's evaluation algorithm over the compiled structures of
 * evaluate.h. The order of the checks follows ConfigCat's Python SDK, the
 * compatibility reference, so that a defective config fails (or does not)
 * at the same point as there. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"

/* A condition's outcome. CANNOT means "cannot evaluate": a missing user,
 * a missing or unusable attribute. It skips the targeting rule but is not
 * an error, and no NOT comparator turns it into a match. */
enum { COND_FALSE = 0, COND_TRUE = 1, COND_CANNOT = 2, COND_FAILED = -1 };

/* ---- Scratch memory ----------------------------------------------------- */

struct fs_scratch_block {
    fs_scratch_block *next;
    char data[];
};

void fs_scratch_init(fs_scratch *scratch)
{
    scratch->inline_used = 0;
    scratch->blocks = NULL;
}

void *fs_scratch_alloc(fs_scratch *scratch, size_t size)
{
    size_t aligned = (size + 15) & ~(size_t)15;
    if (aligned <= sizeof scratch->inline_block - scratch->inline_used) {
        void *p = scratch->inline_block + scratch->inline_used;
        scratch->inline_used += aligned;
        return p;
    }
    fs_scratch_block *block = malloc(sizeof *block + aligned);
    if (!block)
        return NULL;
    block->next = scratch->blocks;
    scratch->blocks = block;
    return block->data;
}

void fs_scratch_release(fs_scratch *scratch)
{
    while (scratch->blocks) {
        fs_scratch_block *next = scratch->blocks->next;
        free(scratch->blocks);
        scratch->blocks = next;
    }
    scratch->inline_used = 0;
}

/* ---- Context ------------------------------------------------------------ */

void fs_context_init(fs_context *ctx, const fs_config *config, int has_user,
                     fs_resolver resolve, void *source, fs_attr *attrs,
                     uint8_t *resolved)
{
    ctx->config = config;
    ctx->has_user = has_user;
    ctx->resolve = resolve;
    ctx->source = source;
    ctx->attrs = attrs;
    ctx->resolved = resolved;
    memset(resolved, 0, (size_t)config->attribute_count);
    fs_scratch_init(&ctx->scratch);
    ctx->depth = 0;
    ctx->peak = 0;
    ctx->memo = NULL;
    ctx->trace = NULL;
    ctx->trace_sink = NULL;
    ctx->resolver_failed = 0;
    ctx->message[0] = '\0';
}

void fs_context_release(fs_context *ctx)
{
    fs_scratch_release(&ctx->scratch);
}

#define TRACE(ctx, event, a, b, c)                                        \
    do {                                                                   \
        if ((ctx)->trace)                                                  \
            (ctx)->trace((ctx)->trace_sink, (event), (a), (b), (c));       \
    } while (0)

static int fail(fs_context *ctx, const char *message)
{
    snprintf(ctx->message, sizeof ctx->message, "%s", message);
    return COND_FAILED;
}

/* The attribute, converted once per context; NULL when the resolver
 * failed (ctx->message then says so). */
static const fs_attr *attribute(fs_context *ctx, int32_t index)
{
    if (!ctx->resolved[index]) {
        fs_attr *attr = &ctx->attrs[index];
        memset(attr, 0, sizeof *attr);
        if (ctx->resolve(ctx->source, index, attr, &ctx->scratch) < 0) {
            ctx->resolver_failed = 1;
            fail(ctx, "a user attribute could not be read");
            return NULL;
        }
        ctx->resolved[index] = 1;
    }
    return &ctx->attrs[index];
}

/* ---- Hashing for confidential comparators --------------------------------
 * ConfigCat hashes SHA-256(value ‖ config salt ‖ context salt), where the
 * context salt is the key of the setting being evaluated, or the segment's
 * name for conditions inside a segment. */
static void salted_digest(const char *value, size_t size, fs_bytes salt,
                          fs_bytes context_salt, uint8_t digest[32])
{
    fs_sha256 sha;
    fs_sha256_init(&sha);
    fs_sha256_update(&sha, value, size);
    fs_sha256_update(&sha, salt.ptr, salt.size);
    fs_sha256_update(&sha, context_salt.ptr, context_salt.size);
    fs_sha256_final(&sha, digest);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;      /* the SDKs compare lowercase hex text: 'A' never equals */
}

int fs_decode_digest(fs_bytes hex, uint8_t digest[32])
{
    if (hex.size != 64)
        return 0;
    for (int i = 0; i < 32; i++) {
        int hi = hex_digit(hex.ptr[2 * i]), lo = hex_digit(hex.ptr[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        digest[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

static int digest_in(const uint8_t digest[32], const fs_condition *c)
{
    for (int i = 0; i < c->item_count; i++)
        if (c->items[i].valid && memcmp(c->digests[i], digest, 32) == 0)
            return 1;
    return 0;
}

/* ---- Text comparisons (code-point exact, no trimming) -------------------- */

static int bytes_equal(fs_bytes a, fs_bytes b)
{
    return a.size == b.size && memcmp(a.ptr, b.ptr, a.size) == 0;
}

static int text_in(fs_bytes text, const fs_item *items, int n)
{
    for (int i = 0; i < n; i++)
        if (bytes_equal(text, items[i].text))
            return 1;
    return 0;
}

static int contains(fs_bytes text, fs_bytes part)
{
    if (part.size == 0)
        return 1;
    if (part.size > text.size)
        return 0;
    return memmem(text.ptr, text.size, part.ptr, part.size) != NULL;
}

static int starts_with(fs_bytes text, fs_bytes part)
{
    return part.size <= text.size && memcmp(text.ptr, part.ptr, part.size) == 0;
}

static int ends_with(fs_bytes text, fs_bytes part)
{
    return part.size <= text.size &&
           memcmp(text.ptr + text.size - part.size, part.ptr, part.size) == 0;
}

/* ---- Conversions of the attribute per comparator family ------------------ */

/* Number comparators: numbers as they are, text parsed as a decimal
 * (',' read as '.'). Dates and lists cannot be compared as numbers. */
static int as_number(const fs_attr *attr, double *out)
{
    if (attr->is_string)
        return fs_parse_number(attr->text, out);
    if (attr->has_number) {
        *out = attr->number;
        return 1;
    }
    return 0;
}

/* Date comparators: seconds since the Unix epoch, from a datetime, a number
 * or text holding a number. */
static int as_seconds(const fs_attr *attr, double *out)
{
    if (attr->is_string)
        return fs_parse_number(attr->text, out);
    if (attr->has_seconds) {
        *out = attr->seconds;
        return 1;
    }
    return 0;
}

/* Array comparators: a list of strings, or text holding a JSON array of
 * strings. Returns the item count, or -1 when the value is not an array. */
static int as_list(fs_context *ctx, const fs_attr *attr, const fs_bytes **out)
{
    if (attr->has_list) {
        *out = attr->items;
        return attr->item_count;
    }
    if (!attr->is_string)
        return -1;
    /* A JSON array of n strings holds at most n + 1 quote pairs in its text
     * and decodes to no more bytes than it has. */
    int max_items = (int)(attr->text.size / 2) + 1;
    fs_bytes *items = fs_scratch_alloc(&ctx->scratch,
                                       sizeof *items * (size_t)max_items);
    char *bytes = fs_scratch_alloc(&ctx->scratch, attr->text.size + 1);
    if (!items || !bytes)
        return -1;
    int n = fs_parse_string_array(attr->text, items, max_items, bytes,
                                  attr->text.size + 1);
    if (n < 0)
        return -1;
    *out = items;
    return n;
}

/* ---- Semantic versions ---------------------------------------------------- */

static int semver_one_of(const fs_condition *c, const fs_attr *attr)
{
    int is_one_of = c->comparator == 4, any = 0, match = 0;
    for (int i = 0; i < c->item_count; i++)
        if (!c->items[i].skip)
            any = 1;
    /* With no version listed the user's version is never parsed: IS ONE OF
     * is false and IS NOT ONE OF true, as in ConfigCat's Python SDK. */
    if (!any)
        return is_one_of ? COND_FALSE : COND_TRUE;

    fs_semver version;
    if (!fs_semver_parse(fs_strip(attr->text), &version))
        return COND_CANNOT;
    for (int i = 0; i < c->item_count; i++) {
        const fs_item *item = &c->items[i];
        if (item->skip)
            continue;
        /* An item that is no version spoils the whole list. */
        if (!item->valid)
            return COND_CANNOT;
        if (fs_semver_compare(&version, &c->versions[i]) == 0)
            match = 1;
    }
    return match == is_one_of ? COND_TRUE : COND_FALSE;
}

static int semver_relation(const fs_condition *c, const fs_attr *attr)
{
    fs_semver version;
    if (!fs_semver_parse(fs_strip(attr->text), &version) || !c->item_count ||
        !c->items[0].valid)
        return COND_CANNOT;
    int order = fs_semver_compare(&version, &c->versions[0]);
    switch (c->comparator) {
    case 6: return order < 0;
    case 7: return order <= 0;
    case 8: return order > 0;
    default: return order >= 0;
    }
}

/* ---- User conditions ----------------------------------------------------- */

/* The byte range of `text` that a hashed starts/ends-with item of length n
 * hashes: the first or last n bytes, even mid-character. The SDK slices
 * with Python's rules, which a hand-written config can reach with n <= 0:
 * text[:n] and text[-n:] (so an ends-with of 0 bytes hashes everything). */
static int affix_range(int32_t n, size_t size, int ends, size_t *start,
                       size_t *length)
{
    if (n > 0 && (size_t)n > size)
        return 0;
    if (n >= 0) {
        *length = ends && n == 0 ? size : (size_t)n;
        *start = ends ? size - *length : 0;
        return 1;
    }
    size_t cut = (size_t)(-(int64_t)n) < size ? (size_t)(-(int64_t)n) : size;
    *start = ends ? cut : 0;
    *length = size - cut;
    return 1;
}

static int hashed_affix(const fs_condition *c, fs_bytes text, fs_bytes salt,
                        fs_bytes context_salt, int ends)
{
    for (int i = 0; i < c->item_count; i++) {
        const fs_item *item = &c->items[i];
        size_t start, length;
        if (!affix_range(item->length, text.size, ends, &start, &length))
            continue;
        uint8_t digest[32];
        salted_digest(text.ptr + start, length, salt, context_salt, digest);
        if (item->valid && memcmp(c->digests[i], digest, 32) == 0)
            return 1;
    }
    return 0;
}

static int user_condition(fs_context *ctx, const fs_condition *c,
                          fs_bytes salt, fs_bytes context_salt)
{
    if (c->early_error)
        return fail(ctx, c->early_error);
    if (!ctx->has_user)
        return COND_CANNOT;

    const fs_attr *attr = attribute(ctx, c->attribute);
    if (!attr)
        return COND_FAILED;
    /* A condition treats None and the empty string alike: missing. */
    if (!attr->present || (attr->is_string && attr->text.size == 0))
        return COND_CANNOT;

    int op = c->comparator;
    /* A missing comparison value fails the evaluation; the comparators that
     * convert the attribute first notice only once the conversion worked. */
    int converts = (op >= 10 && op <= 15) || op == 18 || op == 19 ||
                   op == 26 || op == 27 || op == 34 || op == 35;
    if (c->late_error && !converts)
        return fail(ctx, c->late_error);

    fs_bytes text = attr->text;
    uint8_t digest[32];
    double number;
    const fs_bytes *list;
    int n;

    switch (op) {
    case 0: return text_in(text, c->items, c->item_count);
    case 1: return !text_in(text, c->items, c->item_count);
    case 2:
    case 3:
        for (int i = 0; i < c->item_count; i++)
            if (contains(text, c->items[i].text))
                return op == 2;
        return op == 3;
    case 4:
    case 5: return semver_one_of(c, attr);
    case 6: case 7: case 8: case 9: return semver_relation(c, attr);
    case 10: case 11: case 12: case 13: case 14: case 15:
        if (!as_number(attr, &number))
            return COND_CANNOT;
        if (c->late_error)
            return fail(ctx, c->late_error);
        /* C's relations give NaN the same answers as Python's. */
        switch (op) {
        case 10: return number == c->number;
        case 11: return number != c->number;
        case 12: return number < c->number;
        case 13: return number <= c->number;
        case 14: return number > c->number;
        default: return number >= c->number;
        }
    case 16:
    case 17:
        salted_digest(text.ptr, text.size, salt, context_salt, digest);
        return digest_in(digest, c) == (op == 16);
    case 18:
    case 19:
        /* BEFORE and AFTER are strict. */
        if (!as_seconds(attr, &number))
            return COND_CANNOT;
        if (c->late_error)
            return fail(ctx, c->late_error);
        return op == 18 ? number < c->number : number > c->number;
    case 20:
    case 21:
        salted_digest(text.ptr, text.size, salt, context_salt, digest);
        return digest_in(digest, c) == (op == 20);
    case 22:
    case 23: return hashed_affix(c, text, salt, context_salt, 0) == (op == 22);
    case 24:
    case 25: return hashed_affix(c, text, salt, context_salt, 1) == (op == 24);
    case 26:
    case 27:
        if ((n = as_list(ctx, attr, &list)) < 0)
            return COND_CANNOT;
        if (c->late_error)
            return fail(ctx, c->late_error);
        for (int i = 0; i < n; i++) {
            salted_digest(list[i].ptr, list[i].size, salt, context_salt,
                          digest);
            if (digest_in(digest, c))
                return op == 26;
        }
        return op == 27;
    case 28:
    case 29:
        /* Without a comparison value nothing is equal, as in the SDK. */
        return (c->item_count && bytes_equal(text, c->items[0].text)) ==
               (op == 28);
    case 30:
    case 31:
        for (int i = 0; i < c->item_count; i++)
            if (starts_with(text, c->items[i].text))
                return op == 30;
        return op == 31;
    case 32:
    case 33:
        for (int i = 0; i < c->item_count; i++)
            if (ends_with(text, c->items[i].text))
                return op == 32;
        return op == 33;
    case 34:
    case 35:
        if ((n = as_list(ctx, attr, &list)) < 0)
            return COND_CANNOT;
        if (c->late_error)
            return fail(ctx, c->late_error);
        for (int i = 0; i < n; i++)
            if (text_in(list[i], c->items, c->item_count))
                return op == 34;
        return op == 35;
    }
    return fail(ctx, "Comparison operator is missing or invalid.");
}

/* ---- Segments ------------------------------------------------------------ */

static int segment_condition(fs_context *ctx, const fs_setting *setting,
                             const fs_condition *c)
{
    if (c->early_error)
        return fail(ctx, c->early_error);
    if (!ctx->has_user)
        return COND_CANNOT;
    if (c->comparator > 1)
        return fail(ctx, "Comparison operator is missing or invalid.");

    const fs_segment *segment = &setting->segments[c->target];
    int in_segment = 1;
    for (int i = 0; i < segment->condition_count; i++) {
        int r = user_condition(ctx, &segment->conditions[i], setting->salt,
                               segment->name);
        TRACE(ctx, FS_TRACE_SEGMENT_CONDITION, c->target, i, r);
        /* An unevaluable condition leaves membership unknown either way. */
        if (r == COND_FAILED || r == COND_CANNOT)
            return r;
        if (r == COND_FALSE) {
            in_segment = 0;
            break;
        }
    }
    return c->comparator == 0 ? in_segment : !in_segment;
}

/* ---- Prerequisite flags --------------------------------------------------- */

static int evaluate_setting(fs_context *ctx, int32_t index, fs_result *out);

struct fs_memo {
    uint8_t known;
    int32_t height;             /* how much deeper its evaluation went */
    fs_result result;
};

static void describe_cycle(fs_context *ctx, int32_t repeated)
{
    const fs_setting *settings = ctx->config->settings;
    size_t used = (size_t)snprintf(
        ctx->message, sizeof ctx->message,
        "Circular dependency detected between the following depending "
        "flags: ");
    for (int i = 0; i <= ctx->depth && used < sizeof ctx->message; i++) {
        const fs_setting *s = i < ctx->depth ? &settings[ctx->stack[i]]
                                             : &settings[repeated];
        used += (size_t)snprintf(ctx->message + used,
                                 sizeof ctx->message - used, "%s'%.*s'",
                                 i ? " -> " : "", (int)s->key.size,
                                 s->key.ptr);
    }
    if (used < sizeof ctx->message)
        snprintf(ctx->message + used, sizeof ctx->message - used, ".");
}

static int prerequisite_condition(fs_context *ctx, const fs_condition *c)
{
    if (c->early_error)
        return fail(ctx, c->early_error);
    for (int i = 0; i < ctx->depth; i++) {
        if (ctx->stack[i] == c->target) {
            describe_cycle(ctx, c->target);
            return COND_FAILED;
        }
    }
    if (ctx->depth >= FS_MAX_DEPTH)
        return fail(ctx, "Prerequisite flags are nested too deeply.");
    if (!ctx->memo) {
        size_t size = sizeof(fs_memo) * (size_t)ctx->config->setting_count;
        ctx->memo = fs_scratch_alloc(&ctx->scratch, size);
        if (!ctx->memo)
            return fail(ctx, "out of memory");
        memset(ctx->memo, 0, size);
    }

    /* The prerequisite is evaluated in full, with the same user. */
    fs_result result;
    if (evaluate_setting(ctx, c->target, &result) < 0)
        return COND_FAILED;
    int equal = result.served.equality == c->equality;
    if (c->comparator == 0)
        return equal;
    if (c->comparator == 1)
        return !equal;
    return fail(ctx, "Comparison operator is missing or invalid.");
}

/* ---- Rules and percentage options ---------------------------------------- */

/* All conditions of a rule must hold; the first that does not ends it. */
static int conditions_hold(fs_context *ctx, const fs_setting *setting,
                           int32_t rule, const fs_condition *conditions,
                           int count)
{
    for (int i = 0; i < count; i++) {
        const fs_condition *c = &conditions[i];
        int r;
        switch (c->kind) {
        case FS_COND_USER:
            r = user_condition(ctx, c, setting->salt, setting->key);
            break;
        case FS_COND_SEGMENT:
            r = segment_condition(ctx, setting, c);
            break;
        case FS_COND_PREREQUISITE:
            r = prerequisite_condition(ctx, c);
            break;
        default:
            /* A condition of no known kind is passed over, as there. */
            continue;
        }
        TRACE(ctx, FS_TRACE_CONDITION, rule, i, r);
        if (r != COND_TRUE)
            return r;
    }
    return COND_TRUE;
}

static int serve(fs_context *ctx, const fs_served *served, int32_t rule,
                 int32_t option, fs_result *out)
{
    if (served->error)
        return fail(ctx, served->error);
    TRACE(ctx, FS_TRACE_SERVED, rule, option, 0);
    out->served = *served;
    out->rule = rule;
    out->option = option;
    return 0;
}

/* Picks the option whose cumulative percentage first exceeds the user's
 * bucket: SHA-1 of the setting key followed by the attribute's text. Returns
 * the option index, -1 when the options do not apply (no user, attribute
 * missing, percentages summing below the bucket), or -2 on failure. */
static int pick_option(fs_context *ctx, const fs_setting *setting,
                       int32_t rule, const fs_option *options, int count)
{
    if (count == 0 || !ctx->has_user)
        return -1;

    fs_bytes text = {"", 0};
    if (setting->percentage_attribute < 0) {
        /* By default the identifier is hashed, None counting as "". */
        const fs_attr *id = attribute(ctx, FS_ATTR_IDENTIFIER);
        if (!id)
            return -2;
        if (id->present)
            text = id->text;
    } else {
        /* A named attribute must be set; the empty string is hashed. */
        const fs_attr *attr = attribute(ctx, setting->percentage_attribute);
        if (!attr)
            return -2;
        if (!attr->present)
            return -1;
        text = attr->text;
    }

    int bucket = fs_bucket(setting->key.ptr, setting->key.size, text.ptr,
                           text.size);
    TRACE(ctx, FS_TRACE_BUCKET, bucket, rule, count);
    int64_t cumulative = 0;
    for (int i = 0; i < count; i++) {
        cumulative += options[i].percentage;
        if (bucket < cumulative)
            return i;
    }
    return -1;
}

static int evaluate_rules(fs_context *ctx, int32_t index, fs_result *out)
{
    const fs_setting *setting = &ctx->config->settings[index];
    if (setting->error)
        return fail(ctx, setting->error);

    ctx->stack[ctx->depth++] = index;
    if (ctx->depth > ctx->peak)
        ctx->peak = ctx->depth;
    TRACE(ctx, FS_TRACE_SETTING, index, ctx->depth, 0);
    int status = -1;
    for (int r = 0; r < setting->rule_count; r++) {
        const fs_rule *rule = &setting->rules[r];
        if (rule->condition_count > 0) {
            /* The served value is checked before the conditions. */
            if (rule->has_served && rule->served.error) {
                fail(ctx, rule->served.error);
                goto done;
            }
            int held = conditions_hold(ctx, setting, r, rule->conditions,
                                       rule->condition_count);
            if (held == COND_FAILED)
                goto done;
            if (held != COND_TRUE)
                continue;
            if (rule->has_served) {
                status = serve(ctx, &rule->served, r, -1, out);
                goto done;
            }
        }
        /* A rule that serves percentage options, or one without conditions,
         * applies its options; if they do not apply, the next rule goes. */
        int option = pick_option(ctx, setting, r, rule->options,
                                 rule->option_count);
        if (option == -2)
            goto done;
        if (option >= 0) {
            status = serve(ctx, &rule->options[option].served, r, option, out);
            goto done;
        }
    }

    int option = pick_option(ctx, setting, -1, setting->options,
                             setting->option_count);
    if (option == -2)
        goto done;
    if (option >= 0)
        status = serve(ctx, &setting->options[option].served, -1, option, out);
    else
        status = serve(ctx, &setting->value, -1, -1, out);
done:
    if (status < 0)
        TRACE(ctx, FS_TRACE_FAILED, index, 0, 0);
    ctx->depth--;
    return status;
}

/* A setting on no prerequisite cycle gives one user the same result
 * whoever asks for it, so once prerequisites are in play its result is
 * remembered: a flag that many others depend on is evaluated once, and a
 * config that asks for one prerequisite twice per level stays linear.
 * A remembered result also remembers how deep its evaluation went, so the
 * depth limit cuts in exactly where evaluating it again would. */
static int evaluate_setting(fs_context *ctx, int32_t index, fs_result *out)
{
    int acyclic = ctx->config->settings[index].acyclic;
    if (acyclic && ctx->memo && !ctx->trace && ctx->memo[index].known) {
        const fs_memo *memo = &ctx->memo[index];
        if (ctx->depth + memo->height > FS_MAX_DEPTH)
            return fail(ctx, "Prerequisite flags are nested too deeply.");
        *out = memo->result;
        return 0;
    }

    int outer_peak = ctx->peak;
    ctx->peak = ctx->depth;
    int status = evaluate_rules(ctx, index, out);
    int32_t height = ctx->peak - ctx->depth;
    if (outer_peak > ctx->peak)
        ctx->peak = outer_peak;

    if (status == 0 && acyclic && ctx->memo) {
        fs_memo *memo = &ctx->memo[index];
        memo->known = 1;
        memo->height = height;
        memo->result = *out;
    }
    return status;
}

int fs_evaluate(fs_context *ctx, int32_t index, fs_result *out)
{
    ctx->message[0] = '\0';
    ctx->depth = 0;
    ctx->peak = 0;
    return evaluate_setting(ctx, index, out) < 0 ? -1 : 0;
}

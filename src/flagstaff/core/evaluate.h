/* The compiled form of a ConfigCat config_v6 document and its evaluator.
 *
 * The Cython layer decodes the JSON, then lays every setting out in these
 * structures once; evaluating a setting for a user walks them without any
 * Python object. User attributes are fetched on demand through a resolver
 * callback, so the same evaluator serves one user from a Python object and
 * millions of users from Arrow columns.
 */
#ifndef FLAGSTAFF_EVALUATE_H
#define FLAGSTAFF_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "hashing.h"
#include "textual.h"

/* Setting types, the config's "t". */
enum { FS_BOOL = 0, FS_STRING = 1, FS_INT = 2, FS_DOUBLE = 3 };

/* Condition kinds: the key of the condition wrapper. */
enum { FS_COND_NONE, FS_COND_USER, FS_COND_SEGMENT, FS_COND_PREREQUISITE };

/* Attribute indexes fixed in every config; custom names follow. */
enum { FS_ATTR_IDENTIFIER = 0, FS_ATTR_EMAIL = 1, FS_ATTR_COUNTRY = 2 };

/* A value the evaluator may serve. `slot` indexes the Python-side table of
 * value objects (so serving allocates nothing), `variation` the table of
 * variation ids (-1: none), `equality` a class shared by values that
 * compare equal as typed values (prerequisite conditions compare these).
 * `error` is set when the JSON value does not fit the setting type: serving
 * it fails the evaluation, as in ConfigCat's SDKs. */
typedef struct {
    int32_t slot;
    int32_t variation;
    int32_t equality;
    const char *error;
} fs_served;

/* One comparison value of a user condition, prepared at compile time. A
 * single "s" value is stored as the only item. */
typedef struct {
    fs_bytes text;          /* as written in the config */
    int32_t length;         /* hashed starts/ends with: the "n" of n_hash */
    uint8_t valid;          /* hashed: 64 lowercase hex digits; semver: parses */
    uint8_t skip;           /* semver lists: the item is only white space */
} fs_item;

typedef struct {
    uint8_t kind;           /* FS_COND_* */
    uint8_t comparator;     /* user 0..35, segment and prerequisite 0..1 */
    int32_t attribute;      /* user: index into the attribute table */
    int32_t target;         /* segment index, or prerequisite setting index */
    int32_t equality;       /* prerequisite: equality class of "v" */
    int32_t item_count;
    double number;          /* the "d" comparison value */
    fs_item *items;         /* the "l" values, or the "s" value */
    fs_semver *versions;    /* semver comparators: each item parsed */
    uint8_t (*digests)[32]; /* hashed comparators: each item's SHA-256 */
    /* A defect found at compile time fails the evaluation when the
     * condition is reached: `early_error` before the user is looked at
     * (unknown comparator, missing attribute name, bad segment index),
     * `late_error` once the attribute is known to be present (a missing or
     * malformed comparison value), mirroring where ConfigCat fails. */
    const char *early_error;
    const char *late_error;
} fs_condition;

typedef struct {
    fs_bytes name;          /* the context salt of its hashed conditions */
    fs_condition *conditions;
    int32_t condition_count;
} fs_segment;

typedef struct {
    int64_t percentage;
    fs_served served;
} fs_option;

typedef struct {
    fs_condition *conditions;
    int32_t condition_count;
    uint8_t has_served;
    fs_served served;
    fs_option *options;
    int32_t option_count;
} fs_rule;

typedef struct {
    fs_bytes key;
    int32_t percentage_attribute;   /* -1: the identifier, "" when None */
    fs_rule *rules;
    int32_t rule_count;
    fs_option *options;
    int32_t option_count;
    fs_served value;
    fs_bytes salt;                  /* p.s of the config it came from */
    const fs_segment *segments;     /* the segments of that config */
    int32_t segment_count;
    uint8_t acyclic;                /* on no prerequisite cycle: its result
                                     * does not depend on who asked for it */
    const char *error;              /* the setting could not be decoded */
} fs_setting;

typedef struct {
    fs_setting *settings;
    int32_t setting_count;
    int32_t attribute_count;
} fs_config;

/* One user attribute as the comparators see it. */
typedef struct {
    uint8_t present;        /* not None (an empty string is present) */
    uint8_t is_string;      /* numbers, versions and arrays parse from text */
    uint8_t has_number;     /* number comparators use `number` */
    uint8_t has_seconds;    /* date comparators use `seconds` */
    uint8_t has_list;       /* array comparators use `items` */
    fs_bytes text;          /* the string, or a canonical string form */
    double number;
    double seconds;
    const fs_bytes *items;
    int32_t item_count;
} fs_attr;

/* Memory for one evaluation's converted attributes: a small inline block,
 * then heap blocks that are freed together by fs_scratch_release. */
typedef struct fs_scratch_block fs_scratch_block;
typedef struct {
    char inline_block[512];
    size_t inline_used;
    fs_scratch_block *blocks;
} fs_scratch;

void fs_scratch_init(fs_scratch *scratch);
void *fs_scratch_alloc(fs_scratch *scratch, size_t size);
void fs_scratch_release(fs_scratch *scratch);

/* Fills `out` with attribute `index` of the user in `source`. Returns 0,
 * or -1 when the attribute could not be read (the caller's error). */
typedef int (*fs_resolver)(void *source, int32_t index, fs_attr *out,
                           fs_scratch *scratch);

/* How deep prerequisite flags may nest: configcat-client follows chains
 * until Python's recursion limit, a few hundred flags. */
#define FS_MAX_DEPTH 256

/* What a trace reports, in evaluation order (see fs_context.trace):
 * SETTING (setting, depth) as a setting's evaluation starts; CONDITION
 * (rule, condition, outcome) and SEGMENT_CONDITION (segment, condition,
 * outcome) with outcome 1 true, 0 false, 2 cannot evaluate; BUCKET (bucket,
 * rule or -1, option count) when a percentage bucket is computed; SERVED
 * (rule, option) and FAILED as it ends. */
enum {
    FS_TRACE_SETTING = 1,
    FS_TRACE_CONDITION,
    FS_TRACE_SEGMENT_CONDITION,
    FS_TRACE_BUCKET,
    FS_TRACE_SERVED,
    FS_TRACE_FAILED,
};
typedef void (*fs_tracer)(void *sink, int event, int32_t a, int32_t b,
                          int32_t c);

/* A setting's result remembered within one user's evaluation, so that a
 * prerequisite asked for many times is evaluated once. */
typedef struct fs_result fs_result;
typedef struct fs_memo fs_memo;

/* The state of one user's evaluation, reusable across settings. */
typedef struct {
    const fs_config *config;
    int has_user;
    fs_resolver resolve;
    void *source;
    fs_attr *attrs;             /* attribute_count entries */
    uint8_t *resolved;          /* attribute_count flags */
    fs_scratch scratch;
    int32_t stack[FS_MAX_DEPTH];
    int depth;
    int peak;                   /* the deepest `depth` reached */
    fs_memo *memo;              /* allocated at the first prerequisite */
    fs_tracer trace;            /* NULL (the default): no trace, no cost */
    void *trace_sink;
    int resolver_failed;        /* the resolver reported an error */
    char message[512];          /* why the last evaluation failed */
} fs_context;

/* `attrs` and `resolved` must hold config->attribute_count entries. */
void fs_context_init(fs_context *ctx, const fs_config *config, int has_user,
                     fs_resolver resolve, void *source, fs_attr *attrs,
                     uint8_t *resolved);
void fs_context_release(fs_context *ctx);

struct fs_result {
    fs_served served;
    int32_t rule;               /* matched targeting rule, or -1 */
    int32_t option;             /* matched percentage option, or -1 */
};

/* Evaluates setting `index`. Returns 0 with `out` filled, or -1 when the
 * evaluation failed: ctx->message says why, and ctx->resolver_failed tells
 * whether the resolver raised. */
int fs_evaluate(fs_context *ctx, int32_t index, fs_result *out);

/* Decodes 64 lowercase hex digits into 32 bytes; 1 on success. */
int fs_decode_digest(fs_bytes hex, uint8_t digest[32]);

#endif

# The C side of flagstaff's evaluation core, as Cython sees it.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t


cdef extern from "textual.h" nogil:
    ctypedef struct fs_bytes:
        const char *ptr
        size_t size

    ctypedef struct fs_semver:
        fs_bytes major, minor, patch, prerelease

    fs_bytes fs_strip(fs_bytes text)
    int fs_parse_number(fs_bytes text, double *out)
    int fs_semver_parse(fs_bytes text, fs_semver *out)
    int fs_semver_compare(const fs_semver *a, const fs_semver *b)
    int fs_format_double(double value, char *out)
    size_t fs_format_string_list(const fs_bytes *items, int count, char *out,
                                 size_t out_size)
    double fs_ticks_to_seconds(int64_t ticks, int64_t per_second)
    void fs_textual_init()


cdef extern from "hashing.h" nogil:
    ctypedef struct fs_sha1:
        pass

    ctypedef struct fs_sha256:
        pass

    void fs_sha1_init(fs_sha1 *ctx)
    void fs_sha1_update(fs_sha1 *ctx, const void *data, size_t size)
    void fs_sha1_final(fs_sha1 *ctx, uint8_t *digest)
    void fs_sha256_init(fs_sha256 *ctx)
    void fs_sha256_update(fs_sha256 *ctx, const void *data, size_t size)
    void fs_sha256_final(fs_sha256 *ctx, uint8_t *digest)
    const char *fs_sha1_implementation()
    int fs_bucket(const char *prefix, size_t prefix_size, const char *text,
                  size_t text_size)


cdef extern from "evaluate.h" nogil:
    enum:
        FS_BOOL, FS_STRING, FS_INT, FS_DOUBLE
        FS_COND_NONE, FS_COND_USER, FS_COND_SEGMENT, FS_COND_PREREQUISITE
        FS_ATTR_IDENTIFIER, FS_ATTR_EMAIL, FS_ATTR_COUNTRY
        FS_MAX_DEPTH

    ctypedef struct fs_served:
        int32_t slot
        int32_t variation
        int32_t equality
        const char *error

    ctypedef struct fs_item:
        fs_bytes text
        int32_t length
        uint8_t valid
        uint8_t skip

    ctypedef struct fs_condition:
        uint8_t kind
        uint8_t comparator
        int32_t attribute
        int32_t target
        int32_t equality
        int32_t item_count
        double number
        fs_item *items
        fs_semver *versions
        uint8_t (*digests)[32]
        const char *early_error
        const char *late_error

    ctypedef struct fs_segment:
        fs_bytes name
        fs_condition *conditions
        int32_t condition_count

    ctypedef struct fs_option:
        int64_t percentage
        fs_served served

    ctypedef struct fs_rule:
        fs_condition *conditions
        int32_t condition_count
        uint8_t has_served
        fs_served served
        fs_option *options
        int32_t option_count

    ctypedef struct fs_setting:
        fs_bytes key
        int32_t percentage_attribute
        fs_rule *rules
        int32_t rule_count
        fs_option *options
        int32_t option_count
        fs_served value
        fs_bytes salt
        const fs_segment *segments
        int32_t segment_count
        uint8_t acyclic
        const char *error

    ctypedef struct fs_config:
        fs_setting *settings
        int32_t setting_count
        int32_t attribute_count

    ctypedef struct fs_attr:
        uint8_t present
        uint8_t is_string
        uint8_t has_number
        uint8_t has_seconds
        uint8_t has_list
        fs_bytes text
        double number
        double seconds
        const fs_bytes *items
        int32_t item_count

    ctypedef struct fs_scratch:
        pass

    void fs_scratch_init(fs_scratch *scratch)
    void *fs_scratch_alloc(fs_scratch *scratch, size_t size)
    void fs_scratch_release(fs_scratch *scratch)

    ctypedef int (*fs_resolver)(void *source, int32_t index, fs_attr *out,
                                fs_scratch *scratch) noexcept

    enum:
        FS_TRACE_SETTING, FS_TRACE_CONDITION, FS_TRACE_SEGMENT_CONDITION
        FS_TRACE_BUCKET, FS_TRACE_SERVED, FS_TRACE_FAILED

    ctypedef void (*fs_tracer)(void *sink, int event, int32_t a, int32_t b,
                               int32_t c) noexcept

    ctypedef struct fs_context:
        fs_scratch scratch
        int resolver_failed
        char message[512]
        fs_tracer trace
        void *trace_sink

    void fs_context_init(fs_context *ctx, const fs_config *config,
                         int has_user, fs_resolver resolve, void *source,
                         fs_attr *attrs, uint8_t *resolved)
    void fs_context_release(fs_context *ctx)

    ctypedef struct fs_result:
        fs_served served
        int32_t rule
        int32_t option

    int fs_evaluate(fs_context *ctx, int32_t index, fs_result *out)
    int fs_decode_digest(fs_bytes hex, uint8_t *digest)

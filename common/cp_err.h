/*
 * cp_err.h - the one error type of custpulse.
 *
 * Every fallible function returns cp_err_t: CP_OK (0) or a negative code.
 * Codes and their messages come from one X-macro so they cannot drift.
 */
#ifndef CP_ERR_H
#define CP_ERR_H

#define CP_ERR_MAP(XX)                                                         \
    XX(OK, 0, "success")                                                       \
    XX(EINVAL, -1, "invalid argument")                                         \
    XX(ENOMEM, -2, "out of memory")                                            \
    XX(EPARSE, -3, "parse error")                                              \
    XX(ERANGE, -4, "value out of range")                                       \
    XX(ENOTFOUND, -5, "not found")                                             \
    XX(EIO, -6, "I/O error")                                                   \
    XX(EREDIS, -7, "redis error")                                              \
    XX(EKAFKA, -8, "kafka error")                                              \
    XX(ETIMEDOUT, -9, "timed out")                                             \
    XX(ECONFLICT, -10, "version conflict")                                     \
    XX(EUNKNOWNKEY, -11, "unknown configuration key")                          \
    XX(EPRECISION, -12, "more decimals than the currency allows")

typedef enum {
#define CP__ERR_ENUM(name, val, msg) CP_##name = (val),
    CP_ERR_MAP(CP__ERR_ENUM)
#undef CP__ERR_ENUM
} cp_err_t;

/* Static message for err; "unknown error" for a value outside the map. */
const char *cp_err_str(cp_err_t err);

/* Name of err without the CP_ prefix ("EPARSE"); "UNKNOWN" outside the map. */
const char *cp_err_name(cp_err_t err);

#endif

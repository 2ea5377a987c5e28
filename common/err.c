/*
 * err.c - messages and names of cp_err_t, generated from CP_ERR_MAP so the
 * enum and its strings cannot drift apart.
 */
#include "cp_err.h"

const char *cp_err_str(cp_err_t err)
{
    switch (err) {
#define CP__ERR_STR(name, val, msg)                                            \
    case CP_##name:                                                            \
        return msg;
        CP_ERR_MAP(CP__ERR_STR)
#undef CP__ERR_STR
    }
    return "unknown error";
}

const char *cp_err_name(cp_err_t err)
{
    switch (err) {
#define CP__ERR_NAME(name, val, msg)                                           \
    case CP_##name:                                                            \
        return #name;
        CP_ERR_MAP(CP__ERR_NAME)
#undef CP__ERR_NAME
    }
    return "UNKNOWN";
}

/*
 * app.h - `custpulse run`: the daemon.
 */
#ifndef CP_APP_H
#define CP_APP_H

#include "config.h"

/* Runs the pipeline until SIGTERM/SIGINT (or, with exit_at_end, until every
 * assigned partition reached its end). Takes ownership of cfg. Returns the
 * process exit code. */
int cp_app_run(cp_config_t *cfg, int exit_at_end);

#endif

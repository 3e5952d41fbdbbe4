/*
 * api.h - the REST API on port 9479 (libmicrohttpd + jansson): the /api/v2 routes,
 * /metrics (Prometheus text 0.0.4) and /api/v2/health.
 *
 * Runs in libmicrohttpd's own thread(s) and reads the other subsystems
 * through struct hp_daemon. Authentication is by bearer tokens from the
 * tokens file (SHA-256 hashes with scopes), compared in constant time.
 */
#ifndef HOTPATH_API_H
#define HOTPATH_API_H

#include <stdint.h>
#include "hotpath/common.h"
#include "hotpath/config.h"
#include "hotpath/daemon.h"

struct api;

/* Load the tokens file and start listening on cfg->api_listen. NULL on
 * failure, after logging why (bad tokens file, port in use, ...). */
struct api *api_start(struct hp_daemon *d);
/* Re-read the tokens file named in cfg. On failure the old tokens stay and
 * -errno is returned after logging why. */
int api_reload(struct api *a, const struct hp_config *cfg) HP_MUST_CHECK;
/* Port actually bound (for :0 in tests). */
uint16_t api_port(const struct api *a);
/* Stop serving and free. NULL is a no-op. */
void api_stop(struct api *a);

#endif

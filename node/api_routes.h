/*
 * api_routes.h - routing and the handlers of the local API (api_routes.c).
 * Private to tm_api. A handler sees what it needs and no more: the backend
 * (the node's functions and the store, tm_api.h), the log and the body
 * limit; not the MHD daemon nor the connection table (struct tm_api), so
 * api_routes.c never calls back into api.c.
 */
#ifndef TM_API_ROUTES_H
#define TM_API_ROUTES_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "api_reply.h"
#include "tm_api.h"

/* What the routes are given; owned by the tm_api that made it. */
typedef struct {
    const tm_api_backend_t *be;
    const tm_log_t *log;
    size_t max_body;
} tm_api_routes_t;

/* Maps a decoded path to a route (R_NONE if none) and copies its id, if
 * any, into req. */
tm_api_route_t tm_api__route(const char *url, tm_api_req_t *req);
/* NULL if the route takes method, else the value of the Allow header. */
const char *tm_api__allow(tm_api_route_t route, const char *method);
/* GET or HEAD (a GET whose body MHD leaves out). */
bool tm_api__is_get(const char *method);
/* Answers a complete request. */
enum MHD_Result tm_api__dispatch(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                 tm_api_req_t *req, const char *method);

#endif

/*
 * tm_config.h - tillmeshd's configuration file (INI, read with inih).
 *
 * Parse everything, validate everything, then apply: tm_config_load either
 * returns a complete, checked configuration or an error with every problem
 * logged as "FILE:LINE: message". deploy/tillmeshd.conf documents each key.
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <stdint.h>

#include "tm_common.h"

#define TM_CFG_MAX_PEERS 64
#define TM_CFG_STR       256

typedef struct {
    char name[64];
    char endpoint[128];
} tm_cfg_peer_t;

typedef struct {
    /* [node] */
    char name[64];
    char store_id[64];
    char data_dir[TM_CFG_STR];
    char api_listen[64];     /* HOST:PORT, numeric host */
    char metrics_listen[64]; /* HOST:PORT for GET /metrics only; "" = off */
    uint32_t priority;
    tm_log_level_t log_level;
    int api_allow_remote;            /* refuse a non-loopback API address unless set */
    char api_token_file[TM_CFG_STR]; /* required with api_allow_remote */
    uint32_t api_request_timeout_s;  /* whole-request deadline of the local API */
    uint32_t retention_days;         /* forget ERP-acknowledged sales older than this; 0: never */
    uint32_t min_free_mb;            /* below this much free disk, stop taking peers' ops */
    uint32_t catalogue_max_age_h;    /* status warns when the catalogue is older (default 24) */
    /* [mesh] */
    char listen[128];
    char advertise[128];
    char secret_key[TM_CFG_STR];
    char public_key[TM_CFG_STR];
    char trusted_keys[TM_CFG_STR];
    uint32_t heartbeat_ms;
    uint32_t peer_timeout_ms;
    uint32_t batch_max_ops;
    uint32_t clock_warn_ms;             /* report a clock this far from the store's; 0: default */
    uint32_t origin_quota_ops_per_hour; /* new ops one origin may make us store an hour */
    /* [erp] (no url: this till never forwards; its uplink stays unknown) */
    char erp_url[256];
    char erp_token_file[TM_CFG_STR];
    uint32_t erp_probe_interval_ms, erp_probe_timeout_ms, erp_rise, erp_fall;
    uint32_t erp_probe_slow_interval_ms, erp_probe_suspect_ms, erp_silent_fall;
    uint32_t erp_request_timeout_ms, erp_batch_max, erp_backoff_min_ms, erp_backoff_max_ms;
    uint32_t erp_max_in_flight; /* sales batches in flight, 0: the forwarder's default */
    /* A forwarder that leaves the backlog as it is this long is passed
     * over; reconcile: how often, and how many acknowledged sales a time. */
    uint32_t erp_forwarder_stall_ms, erp_reconcile_interval_ms, erp_reconcile_batch;
    uint32_t erp_catalogue_interval_s, erp_catalogue_page; /* GET /catalogue: how often, how many */
    int erp_tls_verify;
    int erp_allow_insecure_http; /* a token over http:// (tests only) */
    /* [discovery] */
    int mdns; /* publish and browse _tillmesh._tcp through avahi-daemon */
    /* [peers] NAME = ENDPOINT */
    tm_cfg_peer_t peers[TM_CFG_MAX_PEERS];
    int n_peers;
} tm_config_t;

/* Loads and validates path. Relative paths in the file are taken relative
 * to the file's directory. Problems are logged; TM_ECONFIG if any. */
int tm_config_load(const char *path, const tm_log_t *log, tm_config_t *out);

/* As tm_config_load, from len bytes of text (a file's contents, e.g. for
 * the fuzzer); name stands for the path in messages and relative paths. */
int tm_config_parse(const char *text, size_t len, const char *name, const tm_log_t *log,
                    tm_config_t *out);

/* Splits "HOST:PORT" or "[V6]:PORT"; TM_EINVAL if malformed. */
int tm_config_split_hostport(const char *s, char *host, size_t hostsz, uint16_t *port);

#endif

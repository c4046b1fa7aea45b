/*
 * tillmesh.c - the ops CLI: argument parsing and the commands.
 *
 * Every command but keygen is a client of tillmeshd's local HTTP API; the
 * rendering lives in render.c (pure, unit tested), the HTTP and config
 * reading in client.c. Exit codes are in cli_int.h and `tillmesh --help`.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_int.h"

/* The one piece of mutable global state: set by SIGINT/SIGTERM in watch. */
static volatile sig_atomic_t g_stop;

#define MAX_SETS 32

/* Options, as bits of the set a command accepts. */
enum {
    O_JSON = 1 << 0,
    O_SINCE = 1 << 1,
    O_LIMIT = 1 << 2,
    O_IDTYPE = 1 << 3,
    O_SET = 1 << 4,
    O_OUT = 1 << 5,
    O_NAME = 1 << 6,
    O_INTERVAL = 1 << 7,
    O_FROM = 1 << 8,
    O_CSV = 1 << 9,
    O_INIT = 1 << 10, /* --store --dir --data --erp-url --user --force */
    O_FILE = 1 << 11
};

typedef struct {
    tm_cli_t cli;
    const char *api_flag, *config; /* global options */
} ctx_t;

typedef struct {
    int json, csv;
    const char *since, *limit, *id_type, *out, *name, *interval, *from;
    const char *store, *dir, *data, *erp_url, *user, *file;
    int force;
    const char *sets[MAX_SETS];
    size_t n_sets;
    char **pos; /* positional arguments */
    int npos;
} opts_t;

typedef int (*render_fn)(const char *json, size_t len, char **out);

static const struct option LONGOPTS[] = {
    {"api", required_argument, NULL, 'A'},   {"config", required_argument, NULL, 'C'},
    {"help", no_argument, NULL, 'h'},        {"version", no_argument, NULL, 'V'},
    {"json", no_argument, NULL, 'j'},        {"since", required_argument, NULL, 's'},
    {"limit", required_argument, NULL, 'l'}, {"id-type", required_argument, NULL, 'i'},
    {"set", required_argument, NULL, 'S'},   {"out", required_argument, NULL, 'o'},
    {"name", required_argument, NULL, 'N'},  {"interval", required_argument, NULL, 'n'},
    {"from", required_argument, NULL, 'F'},  {"csv", no_argument, NULL, 'c'},
    {"store", required_argument, NULL, 'T'}, {"dir", required_argument, NULL, 'D'},
    {"data", required_argument, NULL, 'a'},  {"erp-url", required_argument, NULL, 'E'},
    {"user", required_argument, NULL, 'U'},  {"force", no_argument, NULL, 'f'},
    {"file", required_argument, NULL, 'L'},  {NULL, 0, NULL, 0},
};

static int opt_bit(int val)
{
    switch (val) {
    case 'j': return O_JSON;
    case 's': return O_SINCE;
    case 'l': return O_LIMIT;
    case 'i': return O_IDTYPE;
    case 'S': return O_SET;
    case 'o': return O_OUT;
    case 'N': return O_NAME;
    case 'n': return O_INTERVAL;
    case 'F': return O_FROM;
    case 'c': return O_CSV;
    case 'T':
    case 'D':
    case 'a':
    case 'E':
    case 'U':
    case 'f': return O_INIT;
    case 'L': return O_FILE;
    default: return 0;
    }
}

static void store_opt(ctx_t *c, opts_t *o, int val, const char *arg)
{
    switch (val) {
    case 'A': c->api_flag = arg; break;
    case 'C': c->config = arg; break;
    case 'j': o->json = 1; break;
    case 's': o->since = arg; break;
    case 'l': o->limit = arg; break;
    case 'i': o->id_type = arg; break;
    case 'S': o->sets[o->n_sets++] = arg; break;
    case 'o': o->out = arg; break;
    case 'N': o->name = arg; break;
    case 'n': o->interval = arg; break;
    case 'F': o->from = arg; break;
    case 'c': o->csv = 1; break;
    case 'T': o->store = arg; break;
    case 'D': o->dir = arg; break;
    case 'a': o->data = arg; break;
    case 'E': o->erp_url = arg; break;
    case 'U': o->user = arg; break;
    case 'f': o->force = 1; break;
    case 'L': o->file = arg; break;
    default: break;
    }
}

/*
 * Parses the options of a command (argv[0] is its name) into *o. Returns -1
 * when all is well, else an exit code (help printed: 0; usage error: 2).
 */
static int parse_opts(ctx_t *c, const char *cmd, const char *topic, int allowed, int argc,
                      char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    optind = 0; /* glibc: full re-initialisation */
    opterr = 0;
    int val, li = -1;
    while ((val = getopt_long(argc, argv, ":hn:", LONGOPTS, &li)) != -1) {
        char opt[64];
        if (li >= 0)
            snprintf(opt, sizeof opt, "--%s", LONGOPTS[li].name);
        else if (val != '?' && val != ':')
            snprintf(opt, sizeof opt, "-%c", val);
        else if (optopt)
            snprintf(opt, sizeof opt, "-%c", optopt);
        else
            snprintf(opt, sizeof opt, "%s", argv[optind - 1]);
        li = -1;
        if (val == 'h') {
            tm_cli_help(topic);
            return TM_CLI_EXIT_OK;
        }
        if (val == '?' || val == 'V' || (opt_bit(val) && !(opt_bit(val) & allowed)))
            return tm_cli_usage_error(topic, "%s: unknown option '%s'", cmd, opt);
        if (val == ':')
            return tm_cli_usage_error(topic, "%s: option '%s' needs a value", cmd, opt);
        if (val == 'S' && o->n_sets == MAX_SETS)
            return tm_cli_usage_error(topic, "%s: at most %d --set options", cmd, MAX_SETS);
        if (val == 'S' && (!strchr(optarg, '=') || optarg[0] == '='))
            return tm_cli_usage_error(topic, "%s: --set needs FIELD=VALUE, not '%s'", cmd, optarg);
        store_opt(c, o, val, optarg);
    }
    o->pos = argv + optind;
    o->npos = argc - optind;
    return -1;
}

/* Positional argument count check. */
static int want_args(const char *cmd, const char *topic, const opts_t *o, int min, int max)
{
    if (o->npos < min)
        return tm_cli_usage_error(topic, "%s: missing argument", cmd);
    if (o->npos > max)
        return tm_cli_usage_error(topic, "%s: unexpected argument '%s'", cmd, o->pos[max]);
    return -1;
}

/* ---- talking to the daemon ------------------------------------------------ */

static int resolve(ctx_t *c)
{
    return tm_cli_resolve_api(&c->cli, c->api_flag, c->config);
}

/* Prints a 2xx answer (rendered by fn, or as received when fn is NULL) on
 * stdout, or the error on stderr; returns the exit code. */
static int print_answer(const tm_cli_resp_t *r, render_fn fn)
{
    char *text = NULL;
    int rc;
    if (r->status < 200 || r->status > 299) {
        text = tm_cli_render_error(r->status, r->body, r->len);
        fputs(text ? text : "tillmesh: tillmeshd answered with an error\n", stderr);
        free(text);
        return TM_CLI_EXIT_API;
    }
    if (fn) {
        rc = fn(r->body, r->len, &text);
    } else {
        text = tm_cli_json_passthrough(r->body, r->len);
        rc = text ? TM_CLI_R_OK : TM_CLI_R_NOMEM;
    }
    if (rc == TM_CLI_R_OK)
        fputs(text, stdout);
    else if (rc == TM_CLI_R_BADJSON)
        fprintf(stderr, "tillmesh: %s\n", text);
    else
        fprintf(stderr, "tillmesh: out of memory\n");
    free(text);
    return rc == TM_CLI_R_OK        ? TM_CLI_EXIT_OK
           : rc == TM_CLI_R_BADJSON ? TM_CLI_EXIT_API
                                    : TM_CLI_EXIT_LOCAL;
}

/* One call and its answer printed. */
static int call(ctx_t *c, const char *method, const char *path, const char *body, size_t len,
                render_fn fn)
{
    tm_cli_resp_t r;
    int rc = resolve(c);
    if (rc == TM_CLI_EXIT_OK)
        rc = tm_cli_http(&c->cli, method, path, body, len, &r, NULL, 0);
    if (rc != TM_CLI_EXIT_OK)
        return rc;
    if (r.status == 200 && strcmp(method, "POST") == 0 && strcmp(path, "/v1/sales") == 0)
        fprintf(stderr, "tillmesh: this sale was already stored (same sale_id and content); "
                        "nothing changed\n");
    rc = print_answer(&r, fn);
    tm_cli_resp_free(&r);
    return rc;
}

/* "/v1/<what>/<escaped id><suffix>", malloc'd; NULL on out of memory. */
static char *id_path(const char *what, const char *id, const char *suffix)
{
    char *esc = tm_cli_escape(id);
    char *path = NULL;
    size_t n = esc ? strlen(what) + strlen(esc) + strlen(suffix) + 8 : 0;
    if (esc && (path = malloc(n)) != NULL)
        snprintf(path, n, "/v1/%s/%s%s", what, esc, suffix);
    free(esc);
    if (!path)
        fprintf(stderr, "tillmesh: out of memory\n");
    return path;
}

/* ---- status, peers, watch -------------------------------------------------- */

static int cmd_status(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts(c, "status", "status", O_JSON, argc, argv, &o);
    if (rc < 0)
        rc = want_args("status", "status", &o, 0, 0);
    if (rc >= 0)
        return rc;
    return call(c, "GET", "/v1/status", NULL, 0, o.json ? NULL : tm_cli_render_status);
}

static int cmd_peers(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts(c, "peers", "peers", O_JSON, argc, argv, &o);
    if (rc < 0)
        rc = want_args("peers", "peers", &o, 0, 0);
    if (rc >= 0)
        return rc;
    return call(c, "GET", "/v1/status", NULL, 0, o.json ? NULL : tm_cli_render_peers);
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* One frame of watch: the screen's text, malloc'd; NULL on out of memory. */
static char *watch_frame(ctx_t *c, double interval)
{
    char *frame = NULL, *text = NULL, when[64], err[1024] = "";
    size_t size = 0;
    tm_cli_resp_t r = {0};
    time_t now = time(NULL);
    struct tm lt;
    if (!localtime_r(&now, &lt) || !strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &lt))
        snprintf(when, sizeof when, "?");
    FILE *f = open_memstream(&frame, &size);
    if (!f)
        return NULL;
    fprintf(f, "\033[H\033[2J");
    fprintf(f, "Every %.1fs: tillmesh status (%s)    %s\n\n", interval, c->cli.api, when);
    if (tm_cli_http(&c->cli, "GET", "/v1/status", NULL, 0, &r, err, sizeof err) != 0) {
        fprintf(f, "%s\n(retrying every %.1fs; Ctrl-C to stop)\n", err, interval);
    } else if (r.status != 200) {
        text = tm_cli_render_error(r.status, r.body, r.len);
        fputs(text ? text : "tillmeshd answered with an error\n", f);
    } else if (tm_cli_render_status(r.body, r.len, &text) == TM_CLI_R_BADJSON) {
        fprintf(f, "tillmesh: %s\n", text);
    } else {
        fputs(text ? text : "tillmesh: out of memory\n", f);
    }
    free(text);
    tm_cli_resp_free(&r);
    if (fclose(f) != 0) {
        free(frame);
        return NULL;
    }
    return frame;
}

/* Sleeps up to seconds, returning early when a signal sets g_stop. */
static void nap(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};
    while (!g_stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int cmd_watch(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    double interval = 2.0;
    int rc = parse_opts(c, "watch", "watch", O_INTERVAL, argc, argv, &o);
    if (rc < 0)
        rc = want_args("watch", "watch", &o, 0, 0);
    if (rc >= 0)
        return rc;
    if (o.interval) {
        char *end;
        interval = strtod(o.interval, &end);
        if (end == o.interval || *end || !(interval >= 0.1 && interval <= 3600))
            return tm_cli_usage_error("watch", "watch: --interval must be 0.1 to 3600 seconds");
    }
    if ((rc = resolve(c)) != TM_CLI_EXIT_OK)
        return rc;
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: sleeps end */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    c->cli.stop = &g_stop;
    while (!g_stop) {
        char *frame = watch_frame(c, interval);
        if (!frame) {
            fprintf(stderr, "tillmesh: out of memory\n");
            return TM_CLI_EXIT_LOCAL;
        }
        if (!g_stop) {
            fputs(frame, stdout);
            fflush(stdout);
        }
        free(frame);
        nap(interval);
    }
    return TM_CLI_EXIT_OK;
}

/* ---- sale ------------------------------------------------------------------ */

static int sale_add(ctx_t *c, const opts_t *o)
{
    char *body = NULL;
    size_t len = 0;
    const char *file = o->npos > 0 ? o->pos[0] : NULL;
    if ((!file || strcmp(file, "-") == 0) && isatty(STDIN_FILENO))
        fprintf(stderr, "tillmesh: reading the sale JSON from standard input "
                        "(end it with Ctrl-D)\n");
    int rc = tm_cli_read_input(file, &body, &len);
    if (rc == TM_CLI_EXIT_OK)
        rc = call(c, "POST", "/v1/sales", body, len, NULL);
    free(body);
    return rc;
}

static int sale_list(ctx_t *c, const opts_t *o)
{
    char path[512], *since = NULL;
    int rc = TM_CLI_EXIT_LOCAL;
    if (o->limit) {
        char *end;
        errno = 0;
        long long n = strtoll(o->limit, &end, 10);
        if (end == o->limit || *end || errno || n < 1)
            return tm_cli_usage_error("sale",
                                      "sale list: --limit must be a whole number, 1 or more");
    }
    if (o->since && (!*o->since || strlen(o->since) > 200))
        return tm_cli_usage_error("sale", "sale list: --since needs a cursor");
    if (o->since && !(since = tm_cli_escape(o->since))) {
        fprintf(stderr, "tillmesh: out of memory\n");
        goto cleanup;
    }
    snprintf(path, sizeof path, "/v1/sales%s%s%s%s%s", since || o->limit ? "?" : "",
             since ? "since=" : "", since ? since : "", since && o->limit ? "&" : "",
             o->limit ? "limit=" : "");
    if (o->limit)
        strncat(path, o->limit, sizeof path - strlen(path) - 1);
    rc = call(c, "GET", path, NULL, 0, o->json ? NULL : tm_cli_render_sales);
cleanup:
    free(since);
    return rc;
}

static int cmd_sale(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    const char *act = argc > 1 ? argv[1] : NULL;
    int rc, allowed = 0;
    if (act && strcmp(act, "list") == 0)
        allowed = O_SINCE | O_LIMIT | O_JSON;
    if (act && act[0] != '-' && strcmp(act, "add") != 0 && strcmp(act, "get") != 0 &&
        strcmp(act, "list") != 0)
        return tm_cli_usage_error("sale", "sale: unknown action '%s' (expected add, get or list)",
                                  act);
    if (act && act[0] != '-') {
        argc--;
        argv++;
    }
    char label[32];
    snprintf(label, sizeof label, "sale%s%s", act && act[0] != '-' ? " " : "",
             act && act[0] != '-' ? act : "");
    rc = parse_opts(c, label, "sale", allowed, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (!act || act[0] == '-')
        return tm_cli_usage_error("sale", "sale: missing action (add, get or list)");
    if (strcmp(act, "add") == 0) {
        rc = want_args("sale add", "sale", &o, 0, 1);
        return rc >= 0 ? rc : sale_add(c, &o);
    }
    if (strcmp(act, "list") == 0) {
        rc = want_args("sale list", "sale", &o, 0, 0);
        return rc >= 0 ? rc : sale_list(c, &o);
    }
    if ((rc = want_args("sale get", "sale", &o, 1, 1)) >= 0)
        return rc;
    char *path = id_path("sales", o.pos[0], "");
    rc = path ? call(c, "GET", path, NULL, 0, NULL) : TM_CLI_EXIT_LOCAL;
    free(path);
    return rc;
}

/* ---- customer -------------------------------------------------------------- */

/* Adds the --set fields and --id-type to obj. */
static int apply_sets(const opts_t *o, json_t *obj)
{
    for (size_t i = 0; i < o->n_sets; i++) {
        const char *eq = strchr(o->sets[i], '=');
        char key[128];
        if ((size_t)(eq - o->sets[i]) >= sizeof key)
            return tm_cli_usage_error("customer", "customer put: --set: field name too long");
        snprintf(key, sizeof key, "%.*s", (int)(eq - o->sets[i]), o->sets[i]);
        const char *v = eq + 1;
        json_t *jv = strcmp(v, "true") == 0    ? json_true()
                     : strcmp(v, "false") == 0 ? json_false()
                                               : json_string(v);
        if (!jv)
            return tm_cli_usage_error("customer",
                                      "customer put: --set %s: value is not valid UTF-8", key);
        if (json_object_set_new(obj, key, jv) != 0)
            return tm_cli_usage_error("customer", "customer put: --set %s: bad field name", key);
    }
    if (o->id_type && json_object_set_new(obj, "id_type", json_string(o->id_type)) != 0)
        return TM_CLI_EXIT_LOCAL;
    return TM_CLI_EXIT_OK;
}

/* The PUT body: the file as is, or the file's object with the options added. */
static int customer_body(const opts_t *o, char **body, size_t *len)
{
    const char *file = o->npos > 1 ? o->pos[1] : NULL;
    char *raw = NULL;
    size_t rlen = 0;
    json_t *obj = NULL;
    json_error_t jerr;
    int rc = TM_CLI_EXIT_OK;
    if ((file || o->n_sets == 0) && (rc = tm_cli_read_input(file, &raw, &rlen)) != 0)
        goto cleanup;
    if (o->n_sets == 0 && !o->id_type) {
        *body = raw, *len = rlen, raw = NULL;
        goto cleanup;
    }
    obj = raw ? json_loadb(raw, rlen, 0, &jerr) : json_object();
    if (!json_is_object(obj)) {
        fprintf(stderr, "tillmesh: %s: not a JSON object%s%s\n", file ? file : "standard input",
                obj ? "" : ": ", obj ? "" : jerr.text);
        rc = TM_CLI_EXIT_LOCAL;
        goto cleanup;
    }
    if ((rc = apply_sets(o, obj)) != TM_CLI_EXIT_OK)
        goto cleanup;
    if ((*body = json_dumps(obj, JSON_COMPACT)) == NULL) {
        fprintf(stderr, "tillmesh: out of memory\n");
        rc = TM_CLI_EXIT_LOCAL;
        goto cleanup;
    }
    *len = strlen(*body);
cleanup:
    json_decref(obj);
    free(raw);
    return rc;
}

static int customer_run(ctx_t *c, const char *act, const opts_t *o)
{
    char *body = NULL, *path = NULL;
    size_t len = 0;
    int rc;
    if (o->id_type && strcmp(o->id_type, "rut") != 0 && strcmp(o->id_type, "dni") != 0)
        return tm_cli_usage_error("customer", "customer: --id-type must be rut or dni");
    if (strcmp(act, "get") == 0) {
        char q[32] = "";
        if (o->id_type)
            snprintf(q, sizeof q, "?id_type=%s", o->id_type);
        path = id_path("customers", o->pos[0], q);
        rc = path ? call(c, "GET", path, NULL, 0, NULL) : TM_CLI_EXIT_LOCAL;
        free(path);
        return rc;
    }
    if ((rc = customer_body(o, &body, &len)) != TM_CLI_EXIT_OK)
        goto cleanup;
    rc = TM_CLI_EXIT_LOCAL;
    if ((path = id_path("customers", o->pos[0], "")) != NULL)
        rc = call(c, "PUT", path, body, len, NULL);
cleanup:
    free(body);
    free(path);
    return rc;
}

static int cmd_customer(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    const char *act = argc > 1 ? argv[1] : NULL;
    int has_act = act && act[0] != '-';
    if (has_act && strcmp(act, "put") != 0 && strcmp(act, "get") != 0)
        return tm_cli_usage_error("customer", "customer: unknown action '%s' (expected put or get)",
                                  act);
    int put = has_act && strcmp(act, "put") == 0;
    int rc =
        parse_opts(c,
                   !has_act ? "customer"
                   : put    ? "customer put"
                            : "customer get",
                   "customer", O_IDTYPE | (put ? O_SET : 0), argc - has_act, argv + has_act, &o);
    if (rc >= 0)
        return rc;
    if (!has_act)
        return tm_cli_usage_error("customer", "customer: missing action (put or get)");
    rc = want_args(put ? "customer put" : "customer get", "customer", &o, 1, put ? 2 : 1);
    if (rc >= 0)
        return rc;
    int from_stdin =
        put && ((o.npos == 2 && strcmp(o.pos[1], "-") == 0) || (o.npos == 1 && o.n_sets == 0));
    if (from_stdin && isatty(STDIN_FILENO))
        fprintf(stderr, "tillmesh: reading the customer JSON from standard input "
                        "(end it with Ctrl-D)\n");
    return customer_run(c, act, &o);
}

/* ---- keygen, help, main ---------------------------------------------------- */

static int cmd_keygen(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts(c, "keygen", "keygen", O_OUT | O_NAME | O_FROM, argc, argv, &o);
    if (rc < 0)
        rc = want_args("keygen", "keygen", &o, 0, 0);
    if (rc < 0 && o.from && o.out)
        rc = tm_cli_usage_error("keygen", "keygen: --from and --out do not go together");
    if (rc >= 0)
        return rc;
    return o.from ? tm_cli_keygen_line(o.from, o.name) : tm_cli_keygen(o.out, o.name);
}

/* ---- init, trust ---------------------------------------------------------- */

static int cmd_init(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts(c, "init", "init", O_INIT | O_NAME, argc, argv, &o);
    if (rc < 0)
        rc = want_args("init", "init", &o, 0, 0);
    if (rc >= 0)
        return rc;
    tm_cli_init_t io = {.store = o.store,
                        .name = o.name,
                        .dir = o.dir,
                        .data = o.data,
                        .erp_url = o.erp_url,
                        .user = o.user,
                        .force = o.force};
    return tm_cli_init(&io);
}

static int cmd_trust(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    const char *act = argc > 1 ? argv[1] : NULL;
    if (!act || act[0] == '-')
        return tm_cli_usage_error("trust", "trust: missing action (add, remove or list)");
    int add = !strcmp(act, "add"), rm = !strcmp(act, "remove"), ls = !strcmp(act, "list");
    if (!add && !rm && !ls)
        return tm_cli_usage_error("trust",
                                  "trust: unknown action '%s' (expected add, remove or list)", act);
    const char *cmd = add ? "trust add" : rm ? "trust remove" : "trust list";
    int rc = parse_opts(c, cmd, "trust", O_FILE, argc - 1, argv + 1, &o);
    if (rc < 0)
        rc = want_args(cmd, "trust", &o, add ? 2 : rm ? 1 : 0, add ? 3 : rm ? 1 : 0);
    if (rc >= 0)
        return rc;
    char path[4096];
    if ((rc = tm_cli_trusted_path(o.file, c->config, path, sizeof path)) != TM_CLI_EXIT_OK)
        return rc;
    if (add)
        return tm_cli_trust_add(path, o.pos[0], o.pos[1], o.npos > 2 ? o.pos[2] : NULL, 0);
    return rm ? tm_cli_trust_remove(path, o.pos[0], 0) : tm_cli_trust_list(path);
}

/* ---- erp ----------------------------------------------------------------- */

static int cmd_erp(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    const char *act = argc > 1 ? argv[1] : NULL;
    if (!act || act[0] == '-')
        return tm_cli_usage_error("erp", "erp: missing action (parked or retry)");
    int retry = strcmp(act, "retry") == 0;
    if (!retry && strcmp(act, "parked") != 0)
        return tm_cli_usage_error("erp", "erp: unknown action '%s' (expected parked or retry)",
                                  act);
    int rc = parse_opts(c, retry ? "erp retry" : "erp parked", "erp", retry ? 0 : O_JSON, argc - 1,
                        argv + 1, &o);
    if (rc < 0)
        rc = want_args(retry ? "erp retry" : "erp parked", "erp", &o, retry ? 1 : 0, retry ? 1 : 0);
    if (rc >= 0)
        return rc;
    if (!retry)
        return call(c, "GET", "/v1/erp/parked", NULL, 0, o.json ? NULL : tm_cli_render_parked);
    char *path = id_path("erp/parked", o.pos[0], "/retry");
    rc = path ? call(c, "POST", path, "{}", 2, NULL) : TM_CLI_EXIT_LOCAL;
    free(path);
    return rc;
}

/* ---- catalogue ------------------------------------------------------------ */

/* The table starts with what the till holds and how old it is, so that a
 * printed list says when it was true. */
static void catalogue_banner(ctx_t *c)
{
    tm_cli_resp_t r;
    if (tm_cli_http(&c->cli, "GET", "/v1/status", NULL, 0, &r, NULL, 0) != TM_CLI_EXIT_OK)
        return;
    json_t *root = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    const json_t *cat = json_object_get(root, "catalogue");
    const json_t *node = json_object_get(root, "node");
    if (json_is_object(cat)) {
        char age[32] = "never";
        const json_t *a = json_object_get(cat, "age_s");
        if (json_is_integer(a))
            tm_cli_fmt_duration((double)json_integer_value(a), age, sizeof age);
        printf("Catalogue of %s: version %lld, %lld products, synced %s%s\n",
               json_string_value(json_object_get(node, "name"))
                   ? json_string_value(json_object_get(node, "name"))
                   : "?",
               (long long)json_integer_value(json_object_get(cat, "version")),
               (long long)json_integer_value(json_object_get(cat, "products")), age,
               json_is_integer(a) ? " ago" : "");
        if (json_is_true(json_object_get(cat, "stale")))
            printf("WARNING: older than catalogue_max_age_h (%lld h): prices may be out of date\n",
                   (long long)json_integer_value(json_object_get(cat, "max_age_h")));
        printf("\n");
    }
    json_decref(root);
    tm_cli_resp_free(&r);
}

static int cmd_catalogue(ctx_t *c, int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts(c, "catalogue", "catalogue", O_CSV, argc, argv, &o);
    if (rc < 0)
        rc = want_args("catalogue", "catalogue", &o, 0, 0);
    if (rc >= 0)
        return rc;
    if ((rc = resolve(c)) != TM_CLI_EXIT_OK)
        return rc;
    if (!o.csv)
        catalogue_banner(c);
    tm_cli_catalogue_header(stdout, o.csv);
    char last[64] = "", path[256];
    size_t n = 0;
    do {
        tm_cli_resp_t r;
        char *esc = tm_cli_escape(last);
        if (!esc)
            return TM_CLI_EXIT_LOCAL;
        snprintf(path, sizeof path, "/v1/products?limit=1000&after=%s", esc);
        free(esc);
        if ((rc = tm_cli_http(&c->cli, "GET", path, NULL, 0, &r, NULL, 0)) != TM_CLI_EXIT_OK)
            return rc;
        if (r.status != 200) {
            rc = print_answer(&r, NULL);
            tm_cli_resp_free(&r);
            return rc;
        }
        rc = tm_cli_render_products(r.body, r.len, o.csv, stdout, last, sizeof last, &n);
        tm_cli_resp_free(&r);
        if (rc != TM_CLI_R_OK) {
            fprintf(stderr, "tillmesh: tillmeshd answered GET /v1/products with no product list\n");
            return TM_CLI_EXIT_API;
        }
    } while (n == 1000);
    return TM_CLI_EXIT_OK;
}

static int cmd_help(ctx_t *c, int argc, char **argv)
{
    (void)c;
    if (argc < 2)
        return tm_cli_help(NULL);
    if (tm_cli_help(argv[1]) != 0)
        return tm_cli_usage_error(NULL, "no help for '%s'", argv[1]);
    return TM_CLI_EXIT_OK;
}

static const struct {
    const char *name;
    int (*fn)(ctx_t *c, int argc, char **argv);
} COMMANDS[] = {
    {"status", cmd_status},       {"peers", cmd_peers},   {"watch", cmd_watch}, {"sale", cmd_sale},
    {"customer", cmd_customer},   {"keygen", cmd_keygen}, {"help", cmd_help},   {"erp", cmd_erp},
    {"catalogue", cmd_catalogue}, {"init", cmd_init},     {"trust", cmd_trust},
};

/* Global options; returns -1 and sets *cmd_at, or an exit code. */
static int parse_global(ctx_t *c, int argc, char **argv, int *cmd_at)
{
    int val;
    opterr = 0;
    while ((val = getopt_long(argc, argv, "+:hV", LONGOPTS, NULL)) != -1) {
        if (val == 'h')
            return tm_cli_help(NULL);
        if (val == 'V') {
            printf("tillmesh %s\n", TM_VERSION);
            return TM_CLI_EXIT_OK;
        }
        if (val == ':')
            return tm_cli_usage_error(NULL, "option '%s' needs a value", argv[optind - 1]);
        if (val != 'A' && val != 'C')
            return tm_cli_usage_error(NULL, "unknown option '%s' (before the command)",
                                      argv[optind - 1]);
        store_opt(c, NULL, val, optarg);
    }
    if (optind >= argc)
        return tm_cli_usage_error(NULL, "no command given (status, peers, watch, sale, "
                                        "customer, erp, catalogue, init, trust, keygen, help)");
    *cmd_at = optind;
    return -1;
}

int main(int argc, char **argv)
{
    ctx_t c = {.cli = {.api_source = NULL}};
    int at = 0, rc = parse_global(&c, argc, argv, &at);
    if (rc >= 0)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "tillmesh: cannot initialise libcurl\n");
        return TM_CLI_EXIT_LOCAL;
    }
    rc = -1;
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(COMMANDS[i].name, argv[at]) == 0)
            rc = COMMANDS[i].fn(&c, argc - at, argv + at);
    if (rc < 0)
        rc = tm_cli_usage_error(NULL, "unknown command '%s'", argv[at]);
    curl_global_cleanup();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tillmesh: cannot write to standard output: %s\n", strerror(errno));
        return TM_CLI_EXIT_LOCAL;
    }
    return rc;
}

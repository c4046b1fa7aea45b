/*
 * help.c - the help texts of tillmesh, written like manual pages.
 * `tillmesh help CMD` and `tillmesh CMD --help` print the same text.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli_int.h"

static const char HELP_TOOL[] =
    "NAME\n"
    "    tillmesh - watch and operate the tillmesh node of this till\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh [--api HOST:PORT] [--config FILE] COMMAND [ARGS...]\n"
    "    tillmesh help [COMMAND]\n"
    "    tillmesh --version\n"
    "\n"
    "DESCRIPTION\n"
    "    tillmesh talks to tillmeshd, the daemon that keeps this till's sales and\n"
    "    customers in step with the other tills of the store and forwards them to\n"
    "    the ERP. It is a client of the daemon's local HTTP API (/v1 on 127.0.0.1);\n"
    "    only `keygen` works without a running daemon.\n"
    "\n"
    "COMMANDS\n"
    "    status      node, replication state, peers, uplink, forwarder and ERP backlog\n"
    "    peers       only the table of peers\n"
    "    watch       redraw the status every few seconds until Ctrl-C\n"
    "    sale        add, get or list sales (sale add|get|list)\n"
    "    customer    create, update or show a customer (customer put|get)\n"
    "    erp         sales the ERP refused (erp parked|retry)\n"
    "    keygen      make a CurveZMQ keypair for a till\n"
    "    help        show the help of a command\n"
    "\n"
    "GLOBAL OPTIONS\n"
    "    --api HOST:PORT\n"
    "        Address of tillmeshd's local API, e.g. 127.0.0.1:7780 or [::1]:7780.\n"
    "        A bare PORT means 127.0.0.1:PORT.\n"
    "    --config FILE\n"
    "        Read api_listen from the [node] section of FILE (tillmeshd's config).\n"
    "    -h, --help\n"
    "        Show this help; after a command, the help of that command.\n"
    "    -V, --version\n"
    "        Show the version of tillmesh.\n"
    "    The global options are also accepted after the command.\n"
    "\n"
    "    The API address is taken from, in order: --api; the TILLMESH_API\n"
    "    environment variable; api_listen in the [node] section of the --config\n"
    "    file, or of /etc/tillmesh/tillmeshd.conf when that file is readable;\n"
    "    finally 127.0.0.1:7780. Every HTTP call gives up after 2 s without a\n"
    "    connection and after 10 s in total.\n"
    "\n"
    "EXIT STATUS\n"
    "    0   success\n"
    "    1   tillmeshd answered with an error (HTTP 4xx/5xx); its message, and for\n"
    "        a validation error (422) one \"field: message (rule)\" line per\n"
    "        field, is printed on standard error\n"
    "    2   usage error (unknown command or option, missing argument)\n"
    "    3   tillmeshd cannot be reached (not running, wrong address, timeout)\n"
    "    4   local error (file unreadable, key file exists, out of memory, ...)\n"
    "\n"
    "ENVIRONMENT\n"
    "    TILLMESH_API   API address (HOST:PORT) when --api is not given.\n"
    "\n"
    "FILES\n"
    "    /etc/tillmesh/tillmeshd.conf   default config; [node] api_listen is read\n"
    "\n"
    "EXAMPLES\n"
    "    tillmesh status\n"
    "    tillmesh --api 127.0.0.1:8081 status --json | jq .peers\n"
    "    tillmesh sale add sale.json\n"
    "    tillmesh customer put 12.345.678-5 --set name=Ana --set offers_opt_in=true\n"
    "    tillmesh keygen --out /etc/tillmesh/keys/till-1\n"
    "\n"
    "SEE ALSO\n"
    "    tillmeshd(8), docs/api.md (the local API)\n";

static const char HELP_STATUS[] =
    "NAME\n"
    "    tillmesh status - show the state of this till's tillmesh node\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh [--api HOST:PORT] [--config FILE] status [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks tillmeshd (GET /v1/status) and prints:\n"
    "    - the node: name, id (first 12 hex digits), store, version, uptime, mesh\n"
    "      endpoint and API address;\n"
    "    - its data: ops held, ops made on this till, sales, customers, sales the\n"
    "      ERP has acknowledged, and the state digest (first 16 hex digits).\n"
    "      Tills that hold the same data show the same digest;\n"
    "    - the peers table (see `tillmesh help peers`);\n"
    "    - Uplink: whether this till reaches the ERP (up, down or unknown) and\n"
    "      since when; Forwarder: the till currently sending data to the ERP\n"
    "      (\"none\" when no till has a working uplink); ERP: sales not yet\n"
    "      acknowledged by the ERP (backlog), sales the ERP refused (parked; they\n"
    "      need a person), the age of the oldest unsent one and the time of the\n"
    "      last successful forward (UTC).\n"
    "    A value tillmeshd did not send, or sent in an unexpected form, shows as\n"
    "    \"?\".\n"
    "\n"
    "OPTIONS\n"
    "    --json\n"
    "        Print the daemon's JSON exactly as received, byte for byte (plus a\n"
    "        final newline), for scripts and monitoring. Its schema is the stable,\n"
    "        versioned status API (\"api_version\": 1) described in docs/api.md;\n"
    "        pipe it to `jq -S .` for sorted, pretty-printed keys.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 ok, 1 daemon error, 2 usage error, 3 daemon unreachable, 4 local error.\n"
    "\n"
    "EXAMPLES\n"
    "    tillmesh status\n"
    "    tillmesh status --json | jq -r .state.digest\n";

static const char HELP_PEERS[] =
    "NAME\n"
    "    tillmesh peers - show the other tills this node knows\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh [--api HOST:PORT] peers [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints the peers table of the status (GET /v1/status):\n"
    "    NAME        the peer's node name (\"?\" before it has introduced itself)\n"
    "    SOURCE      how it was found: static (config), mdns (discovered on the\n"
    "                LAN) or learned (told by another peer)\n"
    "    ENDPOINT    its ZeroMQ mesh address\n"
    "    STATE       connecting, alive, down, untrusted (its key is not in the\n"
    "                trusted keys file), foreign (a till of another store) or\n"
    "                revoked (its key was removed from the trusted keys file)\n"
    "    LAST SEEN   time since its last message, e.g. \"0.4s ago\", or \"never\"\n"
    "    LAG         THEY/WE: ops this node holds that the peer lacks / ops the\n"
    "                peer holds that this node lacks; 0/0 means in step\n"
    "\n"
    "OPTIONS\n"
    "    --json\n"
    "        Print the whole status JSON exactly as received (see\n"
    "        `tillmesh help status`); the peers are under \"peers\".\n"
    "\n"
    "EXIT STATUS\n"
    "    0 ok, 1 daemon error, 2 usage error, 3 daemon unreachable, 4 local error.\n";

static const char HELP_WATCH[] =
    "NAME\n"
    "    tillmesh watch - redraw the status until interrupted\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh [--api HOST:PORT] watch [--interval SECONDS]\n"
    "\n"
    "DESCRIPTION\n"
    "    Clears the screen and prints `tillmesh status` every SECONDS, with the\n"
    "    local time of the last refresh, until Ctrl-C (SIGINT) or SIGTERM, which\n"
    "    end it cleanly with exit status 0. When tillmeshd cannot be reached the\n"
    "    screen says so and watch keeps trying, so it can be left running while\n"
    "    a till is restarted.\n"
    "\n"
    "OPTIONS\n"
    "    -n, --interval SECONDS\n"
    "        Time between refreshes, 0.1 to 3600 (decimals allowed); default 2.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 when interrupted, 2 usage error, 4 local error.\n";

static const char HELP_SALE[] =
    "NAME\n"
    "    tillmesh sale - add, show or list sales\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh sale add [FILE|-]\n"
    "    tillmesh sale get SALE_ID\n"
    "    tillmesh sale list [--since CURSOR] [--limit N] [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    sale add\n"
    "        Sends the sale JSON in FILE, or on standard input when FILE is - or\n"
    "        absent, to tillmeshd (POST /v1/sales) and prints the sale as stored,\n"
    "        with the fields the till fills in (sale_id, till, receipt_no,\n"
    "        created_at). The sale is on disk when this succeeds. Sending the same\n"
    "        sale again (same sale_id and content) is harmless: it is reported as\n"
    "        already stored. Money is in minor units (integer); qty in thousandths.\n"
    "        Example: {\"currency\":\"CLP\",\"lines\":[{\"sku\":\"A1\",\"name\":\"Pan\",\n"
    "        \"qty\":1000,\"unit_price\":1990,\"discount\":0,\"tax_rate\":1900}],\n"
    "        \"total\":1990,\"payments\":[{\"method\":\"cash\",\"amount\":2000}]}\n"
    "    sale get SALE_ID\n"
    "        Prints one sale's JSON (GET /v1/sales/SALE_ID).\n"
    "    sale list\n"
    "        Prints a table of sales (GET /v1/sales): id, till, receipt number,\n"
    "        time, total (shown in major units of its currency) and customer or\n"
    "        refunded sale. When more sales follow, the last line tells the\n"
    "        command that shows them.\n"
    "\n"
    "OPTIONS\n"
    "    --since CURSOR   list sales after this cursor (the \"next\" of a listing)\n"
    "    --limit N        list at most N sales (1 or more)\n"
    "    --json           sale list: print the daemon's JSON exactly as received\n"
    "\n"
    "EXIT STATUS\n"
    "    0 ok; 1 the daemon refused the sale or does not have it (a validation\n"
    "    error prints one \"field: message (rule)\" line per problem, e.g.\n"
    "    \"total: ... (sum)\"); 2 usage error; 3 daemon unreachable; 4 the file\n"
    "    cannot be read.\n"
    "\n"
    "EXAMPLES\n"
    "    tillmesh sale add sale.json\n"
    "    pos-export | tillmesh sale add -\n"
    "    tillmesh sale list --limit 20\n";

static const char HELP_ERP[] =
    "NAME\n"
    "    tillmesh erp - sales the ERP refused\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh erp parked [--json]\n"
    "    tillmesh erp retry SALE_ID\n"
    "\n"
    "DESCRIPTION\n"
    "    When the ERP refuses a sale for its content (a 4xx answer for that sale), the\n"
    "    forwarding till parks it: the sale stays stored on every till, but it is not sent\n"
    "    again on its own, so one bad sale never holds back the others.\n"
    "\n"
    "    parked  lists the sales parked on this till, with the ERP's status and reason.\n"
    "            Ask the till that forwards (see `tillmesh status`, Forwarder:).\n"
    "    retry   sends a parked sale again, as a new request to the ERP, once the cause\n"
    "            is fixed (usually on the ERP side).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 ok; 1 the daemon answered with an error (404: that sale is not parked here);\n"
    "    2 usage error; 3 cannot reach tillmeshd.\n";

static const char HELP_CUSTOMER[] =
    "NAME\n"
    "    tillmesh customer - create, update or show a customer\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh customer put ID [FILE|-] [--id-type rut|dni] [--set FIELD=VALUE]...\n"
    "    tillmesh customer get ID [--id-type rut|dni]\n"
    "\n"
    "DESCRIPTION\n"
    "    customer put\n"
    "        Sends a partial update (PUT /v1/customers/ID): only the fields given\n"
    "        change, and the merged customer is printed. The fields come from the\n"
    "        JSON object in FILE (or standard input with -), and/or from --set\n"
    "        options, which override the file. Without FILE and without --set the\n"
    "        JSON is read from standard input. Fields: name, email, phone,\n"
    "        offers_opt_in, loyalty_program, loyalty_number, erased.\n"
    "        A Chilean RUT may be written 12.345.678-5, 12345678-5 or 123456785;\n"
    "        its check digit is verified by tillmeshd.\n"
    "    customer get\n"
    "        Prints the customer's JSON (GET /v1/customers/ID).\n"
    "\n"
    "OPTIONS\n"
    "    --id-type rut|dni\n"
    "        Kind of ID: rut (Chilean RUT, the default) or dni (any other\n"
    "        national or foreign id, not checked). Sent as \"id_type\" (put) or as\n"
    "        the id_type query parameter (get).\n"
    "    --set FIELD=VALUE\n"
    "        Set one field; may be repeated. VALUE true or false becomes a JSON\n"
    "        boolean, anything else a string (--set phone= sets it empty).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 ok; 1 the daemon refused the update or does not know the customer\n"
    "    (field errors are printed as \"field: message (rule)\"); 2 usage error;\n"
    "    3 daemon unreachable; 4 the file cannot be read or is not a JSON object.\n"
    "\n"
    "EXAMPLES\n"
    "    tillmesh customer put 12.345.678-5 --set name='Ana Soto' --set email=ana@example.cl\n"
    "    tillmesh customer put X1234567 --id-type dni customer.json\n"
    "    tillmesh customer get 123456785\n";

static const char HELP_KEYGEN[] =
    "NAME\n"
    "    tillmesh keygen - make a CurveZMQ keypair for a till\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh keygen [--out PREFIX] [--name NAME]\n"
    "\n"
    "DESCRIPTION\n"
    "    Makes a new CurveZMQ keypair (the keys that let a till join the store's\n"
    "    encrypted mesh). Does not need tillmeshd.\n"
    "    With --out, writes the secret key to PREFIX.key (mode 0600, created so\n"
    "    that it is never readable by others, not even briefly) and the public\n"
    "    key to PREFIX.pub (mode 0644), each as one line of Z85 text; missing\n"
    "    directories are created with mode 0700. Existing files are never\n"
    "    overwritten. Then prints the public key and the line to add to the\n"
    "    store's trusted keys file on every till:  NAME PUBLIC-KEY\n"
    "    (the last line of the output).\n"
    "    Without --out, prints both keys on standard output as\n"
    "    \"public-key: ...\" and \"secret-key: ...\".\n"
    "\n"
    "OPTIONS\n"
    "    --out PREFIX   write PREFIX.key and PREFIX.pub\n"
    "    --name NAME    name in the trusted keys line; default: the last\n"
    "                   component of PREFIX (till-1 for /etc/tillmesh/keys/till-1)\n"
    "\n"
    "EXIT STATUS\n"
    "    0 ok, 2 usage error, 4 a key file exists or cannot be written.\n"
    "\n"
    "EXAMPLES\n"
    "    tillmesh keygen --out /etc/tillmesh/keys/till-1\n"
    "    tillmesh keygen --out /etc/tillmesh/keys/till-1 | tail -n 1 >> trusted_keys\n";

static const char HELP_HELP[] =
    "NAME\n"
    "    tillmesh help - show help\n"
    "\n"
    "SYNOPSIS\n"
    "    tillmesh help [COMMAND]\n"
    "\n"
    "DESCRIPTION\n"
    "    Without COMMAND, describes the tool; with it, that command. COMMAND is\n"
    "    one of status, peers, watch, sale, customer, keygen, help.\n";

static const struct {
    const char *topic;
    const char *text;
} TOPICS[] = {
    {"status", HELP_STATUS}, {"peers", HELP_PEERS},       {"watch", HELP_WATCH},
    {"sale", HELP_SALE},     {"customer", HELP_CUSTOMER}, {"keygen", HELP_KEYGEN},
    {"help", HELP_HELP},     {"erp", HELP_ERP},
};

int tm_cli_help(const char *topic)
{
    if (!topic) {
        fputs(HELP_TOOL, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof TOPICS / sizeof TOPICS[0]; i++) {
        if (strcmp(TOPICS[i].topic, topic) == 0) {
            fputs(TOPICS[i].text, stdout);
            return 0;
        }
    }
    return -1;
}

int tm_cli_usage_error(const char *topic, const char *fmt, ...)
{
    va_list ap;
    fputs("tillmesh: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'tillmesh help%s%s'.\n", topic ? " " : "", topic ? topic : "");
    return TM_CLI_EXIT_USAGE;
}

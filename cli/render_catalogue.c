/* render_catalogue.c - `tillmesh catalogue`: the printed price list of the
 * bad day, as a table or as CSV, from pages of GET /v1/products. Pure. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli_int.h"

/* Copies a string field, control characters as '?', so that a product
 * name cannot move the cursor of the terminal it is printed on. */
static void s_field(const json_t *o, const char *key, char *out, size_t n)
{
    const char *s = json_string_value(json_object_get(o, key));
    size_t i = 0;
    for (; s && *s && i + 1 < n; s++)
        out[i++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    out[i] = '\0';
}

/* RFC 4180: quoted when it holds a comma, quote or line break; a leading
 * = + - @ gets a ' so that a spreadsheet does not run it as a formula. */
static void s_csv(FILE *f, const char *s)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL || (s[0] && strchr("=+-@", s[0]) != NULL);
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    if (s[0] && strchr("=+-@", s[0]))
        fputc('\'', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void tm_cli_catalogue_header(FILE *f, int csv)
{
    if (csv)
        fputs("sku,name,uom,unit_price,tax_rate_bp,active,version,barcodes\n", f);
    else
        fprintf(f, "%-16s  %-32s  %-5s  %12s  %6s  %-3s  %8s  %s\n", "SKU", "NAME", "UOM", "PRICE",
                "TAX%", "ACT", "VERSION", "BARCODES");
}

int tm_cli_render_products(const char *json, size_t len, int csv, FILE *f, char *last,
                           size_t last_sz, size_t *n)
{
    json_error_t err;
    *n = 0;
    json_t *root = json_loadb(json, len, 0, &err);
    const json_t *arr = json_object_get(root, "products");
    if (!json_is_array(arr)) {
        json_decref(root);
        return TM_CLI_R_BADJSON;
    }
    size_t i;
    const json_t *p;
    json_array_foreach (arr, i, p) {
        char sku[64], name[128], uom[16], bc[8 * 48 + 8] = "";
        s_field(p, "sku", sku, sizeof sku);
        s_field(p, "name", name, sizeof name);
        s_field(p, "uom", uom, sizeof uom);
        size_t j;
        const json_t *b;
        json_array_foreach (json_object_get(p, "barcodes"), j, b) {
            char one[48];
            snprintf(one, sizeof one, "%s", json_string_value(b) ? json_string_value(b) : "");
            if (strlen(bc) + strlen(one) + 2 < sizeof bc) {
                if (bc[0])
                    strcat(bc, " ");
                strcat(bc, one);
            }
        }
        long long price = (long long)json_integer_value(json_object_get(p, "unit_price"));
        long long tax = (long long)json_integer_value(json_object_get(p, "tax_rate"));
        long long ver = (long long)json_integer_value(json_object_get(p, "version"));
        int active = json_is_true(json_object_get(p, "active"));
        if (csv) {
            s_csv(f, sku);
            fputc(',', f);
            s_csv(f, name);
            fputc(',', f);
            s_csv(f, uom);
            fprintf(f, ",%lld,%lld,%s,%lld,", price, tax, active ? "true" : "false", ver);
            s_csv(f, bc);
            fputc('\n', f);
        } else {
            fprintf(f, "%-16s  %-32.32s  %-5s  %12lld  %3lld.%02lld  %-3s  %8lld  %s\n", sku, name,
                    uom, price, tax / 100, tax % 100, active ? "yes" : "NO", ver, bc);
        }
        snprintf(last, last_sz, "%s", sku);
        (*n)++;
    }
    json_decref(root);
    return TM_CLI_R_OK;
}

/* libFuzzer target: JSON bodies from the local API (sales and customer
 * patches), validated, and a parsed sale round-tripped through JSON. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tm_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tm_sale_t s;
    tm_customer_t c;
    tm_field_errors_t errs;
    tm_field_errors_init(&errs);
    if (tm_sale_from_json((const char *)data, size, &s, &errs) == TM_OK) {
        tm_field_errors_init(&errs);
        (void)tm_sale_validate(&s, &errs);
        char *j = tm_sale_to_json(&s);
        if (j) {
            tm_sale_t again;
            tm_field_errors_init(&errs);
            if (tm_sale_from_json(j, __builtin_strlen(j), &again, &errs) == TM_OK)
                tm_sale_free(&again);
            free(j);
        }
        tm_sale_free(&s);
    }
    char *ej = tm_field_errors_to_json(&errs);
    free(ej);
    tm_field_errors_init(&errs);
    (void)tm_customer_patch_from_json("12.345.678-5", (const char *)data, size, &c, &errs);
    /* The ERP's catalogue page: a page taken is whole and valid. */
    tm_catalogue_page_t pg;
    if (tm_catalogue_page_from_json((const char *)data, size, 500, &pg, &errs) == TM_OK) {
        tm_field_errors_init(&errs);
        for (size_t i = 0; i < pg.n; i++)
            if (tm_product_validate(&pg.items[i], "p", &errs) != TM_OK)
                abort();
        tm_catalogue_page_free(&pg);
    }
    return 0;
}

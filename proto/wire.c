/* wire.c - record and envelope codecs over the generated protobuf-c code. */
#include "tm_wire.h"

#include <stdlib.h>
#include <string.h>

/* Copies a decoded string into a fixed buffer; a string that does not fit
 * (or is absent when required) makes the whole message invalid rather than
 * being truncated. */
static int copy_str(char *dst, size_t dstsz, const char *src, int required)
{
    if (!src) {
        dst[0] = '\0';
        return required ? TM_EPROTO : TM_OK;
    }
    if (strlen(src) >= dstsz)
        return TM_EPROTO;
    memcpy(dst, src, strlen(src) + 1);
    return TM_OK;
}

static int pack_msg(const ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return TM_ENOMEM;
    *len = protobuf_c_message_pack(m, b);
    *buf = b;
    return TM_OK;
}

/* ---- sales ------------------------------------------------------------ */

static Tillmesh__IdType id_type_to_pb(tm_id_type_t t)
{
    return t == TM_IDTYPE_RUT   ? TILLMESH__ID_TYPE__ID_RUT
           : t == TM_IDTYPE_DNI ? TILLMESH__ID_TYPE__ID_DNI
                                : TILLMESH__ID_TYPE__ID_NONE;
}

static int id_type_from_pb(Tillmesh__IdType t, tm_id_type_t *out)
{
    switch (t) {
    case TILLMESH__ID_TYPE__ID_NONE: *out = TM_IDTYPE_NONE; return TM_OK;
    case TILLMESH__ID_TYPE__ID_RUT: *out = TM_IDTYPE_RUT; return TM_OK;
    case TILLMESH__ID_TYPE__ID_DNI: *out = TM_IDTYPE_DNI; return TM_OK;
    default: return TM_EPROTO;
    }
}

int tm_wire_sale_encode(const tm_sale_t *s, uint8_t **buf, size_t *len)
{
    Tillmesh__Sale m = TILLMESH__SALE__INIT;
    Tillmesh__SaleLine *lines = NULL, **lp = NULL;
    Tillmesh__Payment *pays = NULL, **pp = NULL;
    int rc = TM_ENOMEM;

    *buf = NULL;
    *len = 0;
    if (s->n_lines) {
        lines = calloc(s->n_lines, sizeof *lines);
        lp = calloc(s->n_lines, sizeof *lp);
        if (!lines || !lp)
            goto cleanup;
    }
    if (s->n_payments) {
        pays = calloc(s->n_payments, sizeof *pays);
        pp = calloc(s->n_payments, sizeof *pp);
        if (!pays || !pp)
            goto cleanup;
    }
    /* protobuf-c's struct fields are not const, but packing only reads. */
    m.sale_id = (char *)(uintptr_t)s->sale_id;
    m.till = (char *)(uintptr_t)s->till;
    m.has_receipt_no = 1;
    m.receipt_no = s->receipt_no;
    m.created_at = (char *)(uintptr_t)s->created_at;
    m.currency = (char *)(uintptr_t)s->currency;
    m.has_total = 1;
    m.total = s->total;
    for (size_t i = 0; i < s->n_lines; i++) {
        const tm_sale_line_t *l = &s->lines[i];
        tillmesh__sale_line__init(&lines[i]);
        lines[i].sku = (char *)(uintptr_t)l->sku;
        lines[i].name = (char *)(uintptr_t)l->name;
        lines[i].has_qty = lines[i].has_unit_price = 1;
        lines[i].has_discount = lines[i].has_tax_rate = 1;
        lines[i].qty = l->qty;
        lines[i].unit_price = l->unit_price;
        lines[i].discount = l->discount;
        lines[i].tax_rate = l->tax_rate;
        /* Only when set, so a sale priced by the POS encodes as before. */
        lines[i].has_catalogue_version = l->catalogue_version != 0;
        lines[i].catalogue_version = l->catalogue_version;
        lp[i] = &lines[i];
    }
    m.n_lines = s->n_lines;
    m.lines = lp;
    for (size_t i = 0; i < s->n_payments; i++) {
        const tm_payment_t *p = &s->payments[i];
        tillmesh__payment__init(&pays[i]);
        pays[i].has_method = pays[i].has_amount = 1;
        pays[i].method = (Tillmesh__PayMethod)p->method;
        pays[i].amount = p->amount;
        pays[i].reference = p->reference[0] ? (char *)(uintptr_t)p->reference : NULL;
        pp[i] = &pays[i];
    }
    m.n_payments = s->n_payments;
    m.payments = pp;
    if (s->has_customer) {
        m.customer_id = (char *)(uintptr_t)s->customer_id;
        m.has_customer_id_type = 1;
        m.customer_id_type = id_type_to_pb(s->customer_id_type);
        if (s->customer_email[0])
            m.customer_email = (char *)(uintptr_t)s->customer_email;
    }
    if (s->refund_of[0])
        m.refund_of = (char *)(uintptr_t)s->refund_of;
    if (s->has_clock) {
        m.has_clock_offset_ms = m.has_clock_skewed = 1;
        m.clock_offset_ms = s->clock_offset_ms;
        m.clock_skewed = s->clock_skewed;
    }
    rc = pack_msg(&m.base, buf, len);
cleanup:
    free(lines);
    free(lp);
    free(pays);
    free(pp);
    return rc;
}

static int sale_lines_from_pb(const Tillmesh__Sale *m, tm_sale_t *out)
{
    if (m->n_lines > TM_SALE_MAX_LINES || m->n_payments > TM_SALE_MAX_PAYMENTS)
        return TM_EPROTO;
    if (m->n_lines && !(out->lines = calloc(m->n_lines, sizeof *out->lines)))
        return TM_ENOMEM;
    out->n_lines = m->n_lines;
    for (size_t i = 0; i < m->n_lines; i++) {
        const Tillmesh__SaleLine *l = m->lines[i];
        tm_sale_line_t *d = &out->lines[i];
        if (copy_str(d->sku, sizeof d->sku, l->sku, 0) ||
            copy_str(d->name, sizeof d->name, l->name, 0))
            return TM_EPROTO;
        d->qty = l->qty;
        d->unit_price = l->unit_price;
        d->discount = l->discount;
        d->tax_rate = l->tax_rate;
        d->catalogue_version = l->catalogue_version;
    }
    if (m->n_payments && !(out->payments = calloc(m->n_payments, sizeof *out->payments)))
        return TM_ENOMEM;
    out->n_payments = m->n_payments;
    for (size_t i = 0; i < m->n_payments; i++) {
        const Tillmesh__Payment *p = m->payments[i];
        if (p->method < TILLMESH__PAY_METHOD__PAY_CASH ||
            p->method > TILLMESH__PAY_METHOD__PAY_OTHER)
            return TM_EPROTO;
        out->payments[i].method = (tm_pay_method_t)p->method;
        out->payments[i].amount = p->amount;
        if (copy_str(out->payments[i].reference, sizeof out->payments[i].reference, p->reference,
                     0))
            return TM_EPROTO;
    }
    return TM_OK;
}

int tm_wire_sale_decode(const uint8_t *buf, size_t len, tm_sale_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > TM_WIRE_MAX_BODY)
        return TM_ETOOBIG;
    Tillmesh__Sale *m = tillmesh__sale__unpack(NULL, len, buf);
    if (!m)
        return TM_EPROTO;
    int rc = TM_EPROTO;
    if (copy_str(out->sale_id, sizeof out->sale_id, m->sale_id, 1) ||
        copy_str(out->till, sizeof out->till, m->till, 0) ||
        copy_str(out->created_at, sizeof out->created_at, m->created_at, 0) ||
        copy_str(out->currency, sizeof out->currency, m->currency, 0) ||
        copy_str(out->refund_of, sizeof out->refund_of, m->refund_of, 0))
        goto cleanup;
    out->receipt_no = m->receipt_no;
    out->total = m->total;
    out->has_clock = m->has_clock_offset_ms;
    out->clock_offset_ms = m->clock_offset_ms;
    out->clock_skewed = m->has_clock_offset_ms && m->clock_skewed;
    if (m->customer_id) {
        out->has_customer = true;
        if (copy_str(out->customer_id, sizeof out->customer_id, m->customer_id, 1) ||
            copy_str(out->customer_email, sizeof out->customer_email, m->customer_email, 0) ||
            id_type_from_pb(m->customer_id_type, &out->customer_id_type))
            goto cleanup;
    }
    rc = sale_lines_from_pb(m, out);
cleanup:
    tillmesh__sale__free_unpacked(m, NULL);
    if (rc)
        tm_sale_free(out);
    return rc;
}

/* ---- customers -------------------------------------------------------- */

int tm_wire_customer_encode(const tm_customer_t *p, uint8_t **buf, size_t *len)
{
    Tillmesh__CustomerPatch m = TILLMESH__CUSTOMER_PATCH__INIT;
    Tillmesh__CustomerField fields[TM_CF_COUNT];
    Tillmesh__CustomerField *fp[TM_CF_COUNT];
    size_t n = 0;

    *buf = NULL;
    *len = 0;
    m.id = (char *)(uintptr_t)p->id;
    m.has_id_type = 1;
    m.id_type = id_type_to_pb(p->id_type);
    for (int f = 0; f < TM_CF_COUNT; f++) {
        if (!p->f[f].set)
            continue;
        tillmesh__customer_field__init(&fields[n]);
        fields[n].has_field = 1;
        fields[n].field = (uint32_t)f;
        fields[n].value = (char *)(uintptr_t)p->f[f].value;
        fp[n] = &fields[n];
        n++;
    }
    m.n_fields = n;
    m.fields = fp;
    return pack_msg(&m.base, buf, len);
}

int tm_wire_customer_decode(const uint8_t *buf, size_t len, tm_customer_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > TM_WIRE_MAX_BODY)
        return TM_ETOOBIG;
    Tillmesh__CustomerPatch *m = tillmesh__customer_patch__unpack(NULL, len, buf);
    if (!m)
        return TM_EPROTO;
    int rc = TM_EPROTO;
    if (copy_str(out->id, sizeof out->id, m->id, 1) || !out->id[0] ||
        id_type_from_pb(m->id_type, &out->id_type) || m->n_fields > TM_CF_COUNT)
        goto cleanup;
    for (size_t i = 0; i < m->n_fields; i++) {
        const Tillmesh__CustomerField *f = m->fields[i];
        if (f->field >= TM_CF_COUNT || out->f[f->field].set)
            goto cleanup;
        tm_cust_value_t *v = &out->f[f->field];
        if (copy_str(v->value, sizeof v->value, f->value, 1))
            goto cleanup;
        v->set = true;
    }
    rc = TM_OK;
cleanup:
    tillmesh__customer_patch__free_unpacked(m, NULL);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- ERP acknowledgements --------------------------------------------- */

int tm_wire_ack_encode(const tm_erp_ack_t *a, uint8_t **buf, size_t *len)
{
    Tillmesh__ErpAck m = TILLMESH__ERP_ACK__INIT;
    char **ids = NULL;
    Tillmesh__CustomerVersion *cv = NULL, **cvp = NULL;
    int rc;

    *buf = NULL;
    *len = 0;
    char **rev = NULL;
    if (a->n > TM_ERP_ACK_MAX_IDS || a->n_customers > TM_ERP_ACK_MAX_IDS ||
        a->n_revoked > TM_ERP_ACK_MAX_IDS)
        return TM_EINVAL;
    if (a->n && !(ids = calloc(a->n, sizeof *ids)))
        return TM_ENOMEM;
    if (a->n_revoked && !(rev = calloc(a->n_revoked, sizeof *rev))) {
        free(ids);
        return TM_ENOMEM;
    }
    for (size_t i = 0; i < a->n_revoked; i++)
        rev[i] = (char *)(uintptr_t)a->revoked[i];
    m.n_revoked_ids = a->n_revoked;
    m.revoked_ids = rev;
    if (a->n_customers && (!(cv = calloc(a->n_customers, sizeof *cv)) ||
                           !(cvp = calloc(a->n_customers, sizeof *cvp)))) {
        free(ids);
        free(cv);
        return TM_ENOMEM;
    }
    for (size_t i = 0; i < a->n_customers; i++) {
        tillmesh__customer_version__init(&cv[i]);
        cv[i].id = (char *)(uintptr_t)a->customers[i].id;
        cv[i].has_version = 1;
        cv[i].version = a->customers[i].version;
        cvp[i] = &cv[i];
    }
    m.n_customers = a->n_customers;
    m.customers = cvp;
    for (size_t i = 0; i < a->n; i++)
        ids[i] = (char *)(uintptr_t)a->sale_ids[i];
    m.n_sale_ids = a->n;
    m.sale_ids = ids;
    m.has_epoch = 1;
    m.epoch = a->epoch;
    m.idempotency_key = a->idempotency_key[0] ? (char *)(uintptr_t)a->idempotency_key : NULL;
    rc = pack_msg(&m.base, buf, len);
    free(ids);
    free(rev);
    free(cv);
    free(cvp);
    return rc;
}

int tm_wire_ack_decode(const uint8_t *buf, size_t len, tm_erp_ack_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > TM_WIRE_MAX_BODY)
        return TM_ETOOBIG;
    Tillmesh__ErpAck *m = tillmesh__erp_ack__unpack(NULL, len, buf);
    if (!m)
        return TM_EPROTO;
    int rc = TM_EPROTO;
    if (m->n_sale_ids > TM_ERP_ACK_MAX_IDS)
        goto cleanup;
    if (m->n_sale_ids && !(out->sale_ids = calloc(m->n_sale_ids, sizeof *out->sale_ids))) {
        rc = TM_ENOMEM;
        goto cleanup;
    }
    out->n = m->n_sale_ids;
    for (size_t i = 0; i < m->n_sale_ids; i++) {
        if (!tm_uuid_valid(m->sale_ids[i]) ||
            copy_str(out->sale_ids[i], sizeof out->sale_ids[i], m->sale_ids[i], 1))
            goto cleanup;
    }
    out->epoch = m->epoch;
    if (copy_str(out->idempotency_key, sizeof out->idempotency_key, m->idempotency_key, 0))
        goto cleanup;
    if (m->n_customers > TM_ERP_ACK_MAX_IDS)
        goto cleanup;
    if (m->n_customers && !(out->customers = calloc(m->n_customers, sizeof *out->customers))) {
        rc = TM_ENOMEM;
        goto cleanup;
    }
    out->n_customers = m->n_customers;
    for (size_t i = 0; i < m->n_customers; i++) {
        if (copy_str(out->customers[i].id, sizeof out->customers[i].id, m->customers[i]->id, 1) ||
            !out->customers[i].id[0])
            goto cleanup;
        out->customers[i].version = m->customers[i]->version;
    }
    if (m->n_revoked_ids > TM_ERP_ACK_MAX_IDS)
        goto cleanup;
    if (m->n_revoked_ids && !(out->revoked = calloc(m->n_revoked_ids, sizeof *out->revoked))) {
        rc = TM_ENOMEM;
        goto cleanup;
    }
    out->n_revoked = m->n_revoked_ids;
    for (size_t i = 0; i < m->n_revoked_ids; i++) {
        if (!tm_uuid_valid(m->revoked_ids[i]) ||
            copy_str(out->revoked[i], sizeof out->revoked[i], m->revoked_ids[i], 1))
            goto cleanup;
    }
    rc = TM_OK;
cleanup:
    tillmesh__erp_ack__free_unpacked(m, NULL);
    if (rc)
        tm_erp_ack_free(out);
    return rc;
}

void tm_erp_ack_free(tm_erp_ack_t *a)
{
    if (!a)
        return;
    free(a->sale_ids);
    free(a->customers);
    free(a->revoked);
    memset(a, 0, sizeof *a);
}

/* ---- seals ------------------------------------------------------------ */

int tm_wire_seal_encode(const tm_seal_entry_t *e, size_t n, uint8_t **buf, size_t *len)
{
    if (n > TM_SEAL_MAX_ORIGINS)
        return TM_ETOOBIG;
    Tillmesh__Seal m = TILLMESH__SEAL__INIT;
    Tillmesh__VersionEntry *ents = calloc(n + 1, sizeof *ents);
    Tillmesh__VersionEntry **pp = calloc(n + 1, sizeof *pp);
    int rc = TM_ENOMEM;
    if (!ents || !pp)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        tillmesh__version_entry__init(&ents[i]);
        ents[i].has_origin = ents[i].has_seq = 1;
        ents[i].origin.data = (uint8_t *)(uintptr_t)e[i].origin;
        ents[i].origin.len = TM_NODE_ID_LEN;
        ents[i].seq = e[i].seq;
        pp[i] = &ents[i];
    }
    m.n_origins = n;
    m.origins = pp;
    rc = pack_msg(&m.base, buf, len);
cleanup:
    free(ents);
    free(pp);
    return rc;
}

int tm_wire_seal_decode(const uint8_t *buf, size_t len, tm_seal_entry_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (len > TM_WIRE_MAX_BODY)
        return TM_ETOOBIG;
    Tillmesh__Seal *m = tillmesh__seal__unpack(NULL, len, buf);
    if (!m)
        return TM_EPROTO;
    int rc = TM_EPROTO;
    if (m->n_origins > TM_SEAL_MAX_ORIGINS)
        goto cleanup;
    tm_seal_entry_t *e = calloc(m->n_origins + 1, sizeof *e);
    if (!e) {
        rc = TM_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < m->n_origins; i++) {
        const Tillmesh__VersionEntry *v = m->origins[i];
        if (!v->has_origin || v->origin.len != TM_NODE_ID_LEN || v->seq > INT64_MAX) {
            free(e);
            goto cleanup;
        }
        memcpy(e[i].origin, v->origin.data, TM_NODE_ID_LEN);
        e[i].seq = v->seq;
    }
    *out = e;
    *n = m->n_origins;
    rc = TM_OK;
cleanup:
    tillmesh__seal__free_unpacked(m, NULL);
    return rc;
}

/* ---- envelopes -------------------------------------------------------- */

static int id_ok(protobuf_c_boolean has, ProtobufCBinaryData d)
{
    return !has || d.len == TM_NODE_ID_LEN;
}

static int node_info_ok(const Tillmesh__NodeInfo *ni)
{
    if (!ni || !ni->has_node_id || ni->node_id.len != TM_NODE_ID_LEN)
        return 0;
    if (ni->has_digest && ni->digest.len != 32)
        return 0;
    if (ni->has_curve_public_key && ni->curve_public_key.len != 32)
        return 0;
    if (!id_ok(ni->has_forwarder, ni->forwarder))
        return 0;
    for (size_t i = 0; i < ni->n_vv; i++) {
        if (!ni->vv[i]->has_origin || ni->vv[i]->origin.len != TM_NODE_ID_LEN)
            return 0;
    }
    return 1;
}

static int envelope_ok(const Tillmesh__Envelope *e)
{
    if (!e->has_proto_min || !e->has_proto_max || e->proto_min > e->proto_max ||
        e->proto_max < TM_PROTO_VERSION_MIN || e->proto_min > TM_PROTO_VERSION_MAX)
        return 0;
    if (!e->has_sender || e->sender.len != TM_NODE_ID_LEN || !e->store_id)
        return 0;
    switch (e->msg_case) {
    case TILLMESH__ENVELOPE__MSG_HELLO: return node_info_ok(e->hello->info);
    case TILLMESH__ENVELOPE__MSG_HEARTBEAT: return node_info_ok(e->heartbeat->info);
    case TILLMESH__ENVELOPE__MSG_OPS:
        for (size_t i = 0; i < e->ops->n_ops; i++) {
            const Tillmesh__Op *op = e->ops->ops[i];
            if (!op->has_origin || op->origin.len != TM_NODE_ID_LEN || !op->has_seq || op->seq == 0)
                return 0;
            if ((op->has_sig && op->sig.len != 64) || (op->has_prev && op->prev.len != 32) ||
                op->has_sig != op->has_prev)
                return 0;
            /* Either a body, or (a compacted stub) a hash and no body. */
            if (op->has_hash ? op->hash.len != 32 || op->has_body
                             : !op->has_body || op->body.len > TM_WIRE_MAX_BODY)
                return 0;
        }
        return 1;
    case TILLMESH__ENVELOPE__MSG_PULL:
        for (size_t i = 0; i < e->pull->n_ranges; i++) {
            const Tillmesh__Range *r = e->pull->ranges[i];
            if (!r->has_origin || r->origin.len != TM_NODE_ID_LEN || r->from_seq == 0 ||
                r->to_seq < r->from_seq)
                return 0;
        }
        return 1;
    default: return 0; /* no message, or one from a newer version we cannot read */
    }
}

int tm_wire_envelope_decode(const uint8_t *buf, size_t len, Tillmesh__Envelope **env)
{
    *env = NULL;
    if (len > TM_WIRE_MAX_FRAME)
        return TM_ETOOBIG;
    Tillmesh__Envelope *e = tillmesh__envelope__unpack(NULL, len, buf);
    if (!e)
        return TM_EPROTO;
    if (!envelope_ok(e)) {
        tillmesh__envelope__free_unpacked(e, NULL);
        return TM_EPROTO;
    }
    *env = e;
    return TM_OK;
}

void tm_wire_envelope_free(Tillmesh__Envelope *env)
{
    if (env)
        tillmesh__envelope__free_unpacked(env, NULL);
}

int tm_wire_envelope_encode(Tillmesh__Envelope *env, uint8_t **buf, size_t *len)
{
    env->has_proto_min = env->has_proto_max = 1;
    env->proto_min = TM_PROTO_VERSION_MIN;
    env->proto_max = TM_PROTO_VERSION_MAX;
    int rc = pack_msg(&env->base, buf, len);
    if (rc == TM_OK && *len > TM_WIRE_MAX_FRAME) {
        free(*buf);
        *buf = NULL;
        return TM_ETOOBIG;
    }
    return rc;
}

/* ---- catalogue pages -------------------------------------------------- */

int tm_wire_catalogue_encode(const tm_catalogue_page_t *p, uint8_t **buf, size_t *len)
{
    Tillmesh__CataloguePage m = TILLMESH__CATALOGUE_PAGE__INIT;
    Tillmesh__Product *pr = NULL, **pp = NULL;
    char *bcs[TM_CATALOGUE_PAGE_MAX][TM_PRODUCT_BARCODES];
    int rc = TM_ENOMEM;
    *buf = NULL;
    *len = 0;
    if (p->n > TM_CATALOGUE_PAGE_MAX)
        return TM_EINVAL;
    if (p->n && (!(pr = calloc(p->n, sizeof *pr)) || !(pp = calloc(p->n, sizeof *pp))))
        goto cleanup;
    for (size_t i = 0; i < p->n; i++) {
        const tm_product_t *s = &p->items[i];
        tillmesh__product__init(&pr[i]);
        pr[i].sku = (char *)(uintptr_t)s->sku;
        pr[i].has_version = 1;
        pr[i].version = s->version;
        if (s->deleted) {
            pr[i].has_deleted = pr[i].deleted = 1;
        } else {
            pr[i].name = (char *)(uintptr_t)s->name;
            pr[i].uom = (char *)(uintptr_t)s->uom;
            pr[i].has_unit_price = pr[i].has_tax_rate = pr[i].has_active = 1;
            pr[i].unit_price = s->unit_price;
            pr[i].tax_rate = s->tax_rate;
            pr[i].active = s->active;
            for (size_t b = 0; b < s->n_barcodes && b < TM_PRODUCT_BARCODES; b++)
                bcs[i][b] = (char *)(uintptr_t)s->barcodes[b];
            pr[i].n_barcodes = s->n_barcodes;
            pr[i].barcodes = bcs[i];
        }
        pp[i] = &pr[i];
    }
    m.n_products = p->n;
    m.products = pp;
    m.cursor = (char *)(uintptr_t)p->cursor;
    m.has_version = 1;
    m.version = p->version;
    rc = pack_msg(&m.base, buf, len);
cleanup:
    free(pr);
    free(pp);
    return rc;
}

static int s_product_from_pb(const Tillmesh__Product *m, tm_product_t *d)
{
    memset(d, 0, sizeof *d);
    if (copy_str(d->sku, sizeof d->sku, m->sku, 1) ||
        copy_str(d->name, sizeof d->name, m->name, 0) ||
        copy_str(d->uom, sizeof d->uom, m->uom, 0) || m->n_barcodes > TM_PRODUCT_BARCODES ||
        m->tax_rate < INT32_MIN)
        return TM_EPROTO;
    d->unit_price = m->unit_price;
    d->tax_rate = m->tax_rate;
    d->active = m->active;
    d->deleted = m->deleted;
    d->version = m->version;
    for (size_t b = 0; b < m->n_barcodes; b++)
        if (copy_str(d->barcodes[b], sizeof d->barcodes[b], m->barcodes[b], 1))
            return TM_EPROTO;
    d->n_barcodes = m->n_barcodes;
    return TM_OK;
}

int tm_wire_catalogue_decode(const uint8_t *buf, size_t len, tm_catalogue_page_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > TM_WIRE_MAX_BODY)
        return TM_ETOOBIG;
    Tillmesh__CataloguePage *m = tillmesh__catalogue_page__unpack(NULL, len, buf);
    if (!m)
        return TM_EPROTO;
    int rc = TM_EPROTO;
    tm_field_errors_t errs;
    tm_field_errors_init(&errs);
    if (m->n_products > TM_CATALOGUE_PAGE_MAX ||
        copy_str(out->cursor, sizeof out->cursor, m->cursor, 0))
        goto cleanup;
    if (m->n_products && !(out->items = calloc(m->n_products, sizeof *out->items))) {
        rc = TM_ENOMEM;
        goto cleanup;
    }
    out->n = m->n_products;
    out->version = m->version;
    /* A peer's page obeys the same rules as the ERP's: a till never holds
     * a product the API could not have taken from the ERP. */
    for (size_t i = 0; i < m->n_products; i++)
        if (s_product_from_pb(m->products[i], &out->items[i]) ||
            tm_product_validate(&out->items[i], "p", &errs) || out->items[i].version > out->version)
            goto cleanup;
    rc = TM_OK;
cleanup:
    tillmesh__catalogue_page__free_unpacked(m, NULL);
    if (rc)
        tm_catalogue_page_free(out);
    return rc;
}

/*
 * tm_wire.h - encoding of records and mesh messages with protobuf-c.
 *
 * The schema is proto/tillmesh.proto; CMake runs protoc-c on it at build time
 * (the generated tillmesh.pb-c.[ch] live in the build tree only).
 *
 * Every decoder here takes outside bytes: it checks the length against a
 * maximum before unpacking, checks every field against the bounds in
 * tm_record.h after unpacking, and always frees the unpacked message. A
 * decoder never aborts; bad input gives TM_EPROTO or TM_ETOOBIG.
 */
#ifndef TM_WIRE_H
#define TM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "tillmesh.pb-c.h"
#include "tm_record.h"

/* Protocol versions this build speaks (Envelope.proto_min/max). */
#define TM_PROTO_VERSION_MIN 1
#define TM_PROTO_VERSION_MAX 1

/* Largest encoded record body and largest mesh frame we accept. */
#define TM_WIRE_MAX_BODY  (256 * 1024)
#define TM_WIRE_MAX_FRAME (4 * 1024 * 1024)

/* ---- record bodies: the bytes inside Op.body -------------------------- */

/* *buf is malloc'd; caller frees. */
int tm_wire_sale_encode(const tm_sale_t *s, uint8_t **buf, size_t *len);
/* Fills *out (caller tm_sale_free()s it on success). Checks bounds and
 * types, not the sale rules. */
int tm_wire_sale_decode(const uint8_t *buf, size_t len, tm_sale_t *out);

/* A patch carries only the set fields of p (stamps are not encoded: they
 * come from the op). */
int tm_wire_customer_encode(const tm_customer_t *p, uint8_t **buf, size_t *len);
int tm_wire_customer_decode(const uint8_t *buf, size_t len, tm_customer_t *out);

typedef struct {
    char (*sale_ids)[TM_UUID_LEN];
    size_t n;
    uint64_t epoch;
    char idempotency_key[64];
    tm_cust_version_t *customers;
    size_t n_customers;
    /* Reconcile: acknowledged sales the ERP does not hold (ErpAck field 5). */
    char (*revoked)[TM_UUID_LEN];
    size_t n_revoked;
} tm_erp_ack_t;

#define TM_ERP_ACK_MAX_IDS 10000

int tm_wire_ack_encode(const tm_erp_ack_t *a, uint8_t **buf, size_t *len);
/* Fills *out; release with tm_erp_ack_free(). */
int tm_wire_ack_decode(const uint8_t *buf, size_t len, tm_erp_ack_t *out);
void tm_erp_ack_free(tm_erp_ack_t *a);

/* A seal (OP_SEAL body): per origin, the unsigned ops up to seq that the
 * sealing till held when it started signing. */
typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    uint64_t seq;
} tm_seal_entry_t;

#define TM_SEAL_MAX_ORIGINS 10000

int tm_wire_seal_encode(const tm_seal_entry_t *e, size_t n, uint8_t **buf, size_t *len);
/* Fills a malloc'd *out (free()); TM_EPROTO for a malformed or oversized seal. */
int tm_wire_seal_decode(const uint8_t *buf, size_t len, tm_seal_entry_t **out, size_t *n);

/* A catalogue page (OP_CATALOGUE body). Decoding checks every product
 * with tm_product_validate and that no product's version exceeds the
 * page's; release with tm_catalogue_page_free(). */
int tm_wire_catalogue_encode(const tm_catalogue_page_t *p, uint8_t **buf, size_t *len);
int tm_wire_catalogue_decode(const uint8_t *buf, size_t len, tm_catalogue_page_t *out);

/* ---- mesh envelopes --------------------------------------------------- */

/* Unpacks a frame after checking its size; checks that ids have the right
 * length and that the version range overlaps ours. On success the caller
 * owns *env and frees it with tm_wire_envelope_free(). */
int tm_wire_envelope_decode(const uint8_t *buf, size_t len, Tillmesh__Envelope **env);
void tm_wire_envelope_free(Tillmesh__Envelope *env);
/* Packs env (setting the version range) into a malloc'd buffer. */
int tm_wire_envelope_encode(Tillmesh__Envelope *env, uint8_t **buf, size_t *len);

#endif

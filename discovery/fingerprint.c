/* fingerprint.c - short, printable identity of a till's CurveZMQ public key.
 *
 * Kept apart from avahi.c so that code which only needs the fingerprint
 * (keygen, status) does not pull in Avahi. Eight bytes of SHA-256 are plenty
 * to tell keys apart on one LAN and short enough for a TXT record; the mesh
 * still checks the full key in its ZAP handler, so this is a label, not a
 * proof. */
#include "tm_disc.h"

#include <sodium.h>

void tm_disc_fingerprint(const uint8_t pub[32], char out[TM_DISC_FP_HEX])
{
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, pub, 32);
    tm_hex(h, (TM_DISC_FP_HEX - 1) / 2, out);
}

// A validator's public key on the wire: 0x and 96 hex digits, the 48-byte compressed G1 point
// (consensus-specs phase0, BLSPubkey). pkm stores and answers it in lowercase; where a caller
// may send either case (a heartbeat, a CLI argument) it is lowered before use.

/** The pattern's text, for composite patterns (a file name that holds a pubkey). */
export const PUBKEY_HEX = '0x[0-9a-f]{96}';
/** A pubkey as pkm writes it: lowercase. */
export const PUBKEY = new RegExp(`^${PUBKEY_HEX}$`);
/**
 * A pubkey as a caller may send it: either case. Spelled out rather than with the `i` flag, which
 * a JSON Schema pattern (the OpenAPI document's) cannot carry.
 */
export const PUBKEY_ANY_CASE = /^0[xX][0-9a-fA-F]{96}$/;

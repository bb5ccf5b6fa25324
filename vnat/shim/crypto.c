// SPDX-License-Identifier: GPL-2.0
/*
 * VCMP's security key (paper 3.3.1.1): X25519 (RFC 7748) and HMAC-SHA256
 * (RFC 2104) from lib/crypto, and a constant-time comparison. Rust has no
 * binding for them: <crypto/curve25519.h> and <crypto/sha2.h> are not among
 * the kernel crate's headers, and hmac_sha256_update() and crypto_memneq()
 * are static inlines. vnat/ffi/crypto.rs.
 */

#include <crypto/curve25519.h>
#include <crypto/sha2.h>
#include <crypto/utils.h>

#include "shim.h"

static_assert(sizeof(struct hmac_sha256_ctx) == VNAT_HMAC_CTX_SIZE);
static_assert(__alignof__(struct hmac_sha256_ctx) <= 8);

/* @out = X25519(@scalar, @point); false if @out is zero (a low-order point). */
bool vnat_shim_x25519(u8 *out, const u8 *scalar, const u8 *point)
{
	return curve25519(out, scalar, point);
}

/* @pub = X25519(@secret, 9); false if @secret is zero. */
bool vnat_shim_x25519_public(u8 *pub, const u8 *secret)
{
	return curve25519_generate_public(pub, secret);
}

void vnat_shim_hmac_init(void *ctx, const u8 *key, size_t key_len)
{
	hmac_sha256_init_usingrawkey(ctx, key, key_len);
}

void vnat_shim_hmac_update(void *ctx, const u8 *data, size_t len)
{
	hmac_sha256_update(ctx, data, len);
}

/* Writes the MAC to @out and zeroizes @ctx. */
void vnat_shim_hmac_final(void *ctx, u8 *out)
{
	hmac_sha256_final(ctx, out);
}

/* Whether @a and @b are equal, in a time that depends only on @len. */
bool vnat_shim_memeq(const void *a, const void *b, size_t len)
{
	return !crypto_memneq(a, b, len);
}

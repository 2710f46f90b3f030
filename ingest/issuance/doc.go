// Package issuance owns the decoders of credential-issuer logs: today the
// HashiCorp Vault file audit device (format "vault_audit"). Every Vault
// request is an event of the identity that made it; token creation, logins
// and PKI certificate issuance also carry the Issuance fields, so use of a
// credential can later be linked to where and to whom it was minted.
package issuance

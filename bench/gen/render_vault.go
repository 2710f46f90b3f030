package gen

import "time"

func (rr *renderer) tokenSeeds(v *vaultClient, gen int32) (token, accessor uint64) {
	x := mix(v.seed ^ uint64(gen)*0x9e3779b97f4a7c15)
	return x, mix(x ^ 0xacce5504)
}

// vaultAuth writes the "auth" object describing the client's current
// Kubernetes-auth token.
func (rr *renderer) vaultAuth(w *jw, key string, v *vaultClient, gen int32, issued int64, lease bool) {
	tok, acc := rr.tokenSeeds(v, gen)
	w.open(key)
	w.valueStart("client_token")
	w.b = appendHMAC(w.b, tok)
	w.valueEnd()
	w.valueStart("accessor")
	w.b = appendHMAC(w.b, acc)
	w.valueEnd()
	w.str("display_name", v.display)
	policy := v.ns + "-secrets-read"
	if v.operator {
		policy = "vault-admin"
	}
	w.arr("policies")
	w.elem("default")
	w.elem(policy)
	w.endArr()
	w.arr("token_policies")
	w.elem("default")
	w.elem(policy)
	w.endArr()
	w.open("metadata")
	w.str("role", v.role)
	if !v.operator { // a person's OIDC login has no service account
		w.str("service_account_name", v.sa)
		w.str("service_account_namespace", v.ns)
		w.str("service_account_secret_name", "")
		w.str("service_account_uid", v.saUID)
	}
	w.close()
	w.str("entity_id", v.entityID)
	if lease {
		w.int("lease_duration", v.ttl)
		w.bool("renewable", true)
	}
	w.str("token_type", "service")
	if !lease {
		w.int("token_ttl", v.ttl)
		w.valueStart("token_issue_time")
		w.b = time.Unix(0, issued).UTC().AppendFormat(w.b, "2006-01-02T15:04:05Z")
		w.valueEnd()
	}
	w.close()
}

// vault writes one Vault audit entry: the request entry, or the response
// entry, of a request by a Kubernetes-authenticated client. Both entries of
// one request draw the same random values.
func (rr *renderer) vault(w *jw, ev *event) {
	r := rr.r
	v := &rr.g.pop.vault[ev.id]
	resp := ev.kind == kVaultResp
	op := ev.a
	reqHi, reqLo := r.Uint64(), r.Uint64()
	host := v.hosts[r.IntN(len(v.hosts))]
	port := int64(32768 + r.IntN(28000))
	path := v.paths[r.IntN(len(v.paths))]
	childTok, childAcc := r.Uint64(), r.Uint64()
	d1, d2, d3 := r.Uint64(), r.Uint64(), r.Uint64()
	version := 1 + r.Int64N(6)
	denied := ev.out == outDenied
	if denied && ev.mode == 0 {
		path = v.ns + "/admin"
	}
	gen, issued := ev.b, ev.c
	if ev.mode == modeRevoke {
		// The operator's own token, from an OIDC login minutes before;
		// ev.b and ev.c name the victim's token.
		gen, issued = 1, ev.t-int64(7*time.Minute)
	}
	tok, acc := rr.tokenSeeds(v, gen)
	remote := appendIP(rr.tmp[:0], v.net, host)
	if ev.mode == modeRevokedUse {
		remote = append(rr.tmp[:0], rr.g.revokedIP...)
	}
	rr.tmp = remote

	w.open("")
	w.valueStart("time")
	w.b = time.Unix(0, ev.t).UTC().AppendFormat(w.b, time.RFC3339Nano)
	w.valueEnd()
	if resp {
		w.str("type", "response")
	} else {
		w.str("type", "request")
	}
	switch {
	case op == vLogin && !resp:
		w.open("auth")
		w.str("token_type", "default")
		w.close()
	case op == vLogin:
		rr.vaultAuth(w, "auth", v, ev.b, ev.t, false)
	default:
		rr.vaultAuth(w, "auth", v, gen, issued, false)
	}

	w.open("request")
	w.valueStart("id")
	w.b = appendUUID(w.b, reqHi, reqLo)
	w.valueEnd()
	if op != vLogin {
		w.str("client_id", v.entityID)
	}
	mountPoint, mountType, mountClass, accessor, version2 := "secret/", "kv", "secret", "kv_5c1ac0a9", "v0.20.0+builtin"
	switch op {
	case vLogin:
		mountPoint, mountType, mountClass, accessor, version2 = "auth/kubernetes/", "kubernetes", "auth", "auth_kubernetes_8e2f3a41", "v0.19.0+builtin"
	case vRenew, vChild, vRevokeAccessor:
		mountPoint, mountType, mountClass, accessor, version2 = "auth/token/", "token", "auth", "auth_token_0f1d2c6e", "v1.17.2+builtin.vault"
	}
	switch op {
	case vRead:
		w.str("operation", "read")
	case vList:
		w.str("operation", "list")
	default:
		w.str("operation", "update")
	}
	w.str("mount_point", mountPoint)
	w.str("mount_type", mountType)
	w.str("mount_accessor", accessor)
	w.str("mount_running_version", version2)
	w.str("mount_class", mountClass)
	if op != vLogin {
		w.valueStart("client_token")
		w.b = appendHMAC(w.b, tok)
		w.valueEnd()
		w.valueStart("client_token_accessor")
		w.b = appendHMAC(w.b, acc)
		w.valueEnd()
	}
	w.open("namespace")
	w.str("id", "root")
	w.close()
	switch op {
	case vRead:
		w.str("path", "secret/data/"+path)
	case vList:
		w.str("path", "secret/metadata/"+v.ns+"/")
	case vLogin:
		w.str("path", "auth/kubernetes/login")
		w.open("data")
		w.valueStart("jwt")
		w.b = appendHMAC(w.b, d1)
		w.valueEnd()
		w.valueStart("role")
		w.b = appendHMAC(w.b, mix(v.seed^0x701e))
		w.valueEnd()
		w.close()
	case vRenew:
		w.str("path", "auth/token/renew-self")
	case vRevokeAccessor:
		// Vault logs the path as requested, with the raw accessor, which
		// matches the auth blocks of a device with hmac_accessor=false.
		// This generator's device HMACs accessors, so the path names the
		// accessor in that same form: the revocation and the later uses
		// then name one credential, as they would on such a device.
		_, victimAcc := rr.tokenSeeds(&rr.g.pop.vault[ev.c], ev.b)
		w.valueStart("path")
		w.b = append(w.b, "auth/token/revoke-accessor/"...)
		w.b = appendHMAC(w.b, victimAcc)
		w.valueEnd()
	case vChild:
		w.str("path", "auth/token/create")
		w.open("data")
		w.arr("policies")
		w.b = append(w.b, '"')
		w.b = appendHMAC(w.b, mix(v.seed^0x9011c1))
		w.b = append(w.b, '"')
		w.comma = true
		w.endArr()
		w.valueStart("ttl")
		if ev.mode == modeLongTTL {
			w.b = appendHMAC(w.b, mix(v.seed^0x772))
		} else {
			w.b = appendHMAC(w.b, mix(v.seed^0x771))
		}
		w.valueEnd()
		w.close()
	}
	w.bytesStr("remote_address", remote)
	w.int("remote_port", port)
	w.close()

	if resp {
		w.open("response")
		w.str("mount_point", mountPoint)
		w.str("mount_type", mountType)
		w.str("mount_accessor", accessor)
		w.str("mount_running_plugin_version", version2)
		w.str("mount_class", mountClass)
		switch {
		case denied:
		case op == vLogin:
			rr.vaultAuth(w, "auth", v, ev.b, ev.t, true)
		case op == vRenew:
			rr.vaultAuth(w, "auth", v, ev.b, ev.c, true)
		case op == vChild:
			lease, orphan := int64(900), false
			if ev.mode == modeLongTTL {
				lease, orphan = longTTL, true
			}
			w.open("auth")
			w.valueStart("client_token")
			w.b = appendHMAC(w.b, childTok)
			w.valueEnd()
			w.valueStart("accessor")
			w.b = appendHMAC(w.b, childAcc)
			w.valueEnd()
			w.str("display_name", "token")
			w.arr("policies")
			w.elem("default")
			w.elem(v.ns + "-secrets-read")
			w.endArr()
			w.arr("token_policies")
			w.elem("default")
			w.elem(v.ns + "-secrets-read")
			w.endArr()
			w.str("entity_id", v.entityID)
			w.int("lease_duration", lease)
			w.bool("renewable", true)
			w.str("token_type", "service")
			w.bool("orphan", orphan)
			w.close()
		case op == vRead:
			w.open("data")
			w.open("data")
			w.valueStart("password")
			w.b = appendHMAC(w.b, d2)
			w.valueEnd()
			w.valueStart("username")
			w.b = appendHMAC(w.b, d3)
			w.valueEnd()
			w.close()
			w.open("metadata")
			w.valueStart("created_time")
			w.b = appendHMAC(w.b, d1)
			w.valueEnd()
			w.null("custom_metadata")
			w.valueStart("deletion_time")
			w.b = appendHMAC(w.b, 0x5eed)
			w.valueEnd()
			w.bool("destroyed", false)
			w.int("version", version)
			w.close()
			w.close()
		case op == vList:
			w.open("data")
			w.arr("keys")
			for _, p := range v.paths {
				w.sep()
				w.b = append(w.b, '"')
				w.b = appendHMAC(w.b, mix(uint64(len(p))^v.seed^uint64(p[len(p)-1])))
				w.b = append(w.b, '"')
				w.comma = true
			}
			w.endArr()
			w.close()
		}
		w.close()
	}
	if denied {
		w.str("error", "1 error occurred:\n\t* permission denied\n\n")
	}
	w.close()
}

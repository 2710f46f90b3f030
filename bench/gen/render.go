package gen

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// renderer turns events into record bytes. The random details of an event
// (request ids, ports, sizes, latencies) come from a PCG reseeded with the
// event's seed, so a record's bytes depend only on its event.
type renderer struct {
	g   *generator
	pcg *rand.PCG
	r   *rand.Rand
	buf []byte
	tmp []byte
}

func newRenderer(g *generator) *renderer {
	pcg := rand.NewPCG(0, 0)
	return &renderer{g: g, pcg: pcg, r: rand.New(pcg), buf: make([]byte, 0, 4096)}
}

func (rr *renderer) key(ev *event) []byte {
	p := rr.g.pop
	switch ev.kind {
	case kMesh:
		return p.workloads[ev.id].key
	case kKong:
		return p.keys[ev.id].key
	case kCloudTrail:
		return p.roles[ev.id].key
	case kVaultReq, kVaultResp:
		return p.vault[ev.id].key
	default:
		return rr.platformKey(ev)
	}
}

// render returns the record bytes of ev in rr.buf's storage.
func (rr *renderer) render(ev *event) []byte {
	rr.pcg.Seed(ev.seed, ev.seed^0x5bd1e9955bd1e995)
	w := &jw{b: rr.buf[:0]}
	switch ev.kind {
	case kMesh:
		rr.envoy(w, ev)
	case kKong:
		rr.kong(w, ev)
	case kCloudTrail:
		rr.cloudTrail(w, ev)
	case kVaultReq, kVaultResp:
		rr.vault(w, ev)
	default:
		rr.renderPlatform(w, ev)
	}
	b := w.b
	if ev.mal != 0 {
		b = rr.corrupt(ev, b)
	}
	rr.buf = b[:0]
	return b
}

func (rr *renderer) emit(ev *event, fn func(Record) error) error {
	b := rr.render(ev)
	val := make([]byte, len(b))
	copy(val, b)
	return fn(Record{
		Format:    kindFormat[ev.kind],
		Key:       rr.key(ev),
		Value:     val,
		Time:      time.Unix(0, ev.t).UTC(),
		Malformed: ev.mal != 0,
	})
}

func (rr *renderer) lognormal(mean, sigma float64) int64 {
	return int64(mean * lognormal(rr.r, sigma))
}

// appendAddr appends "ip:port" to the scratch buffer and returns it as a
// string-free byte slice owned by rr.tmp.
func (rr *renderer) addr(net [3]byte, host byte, port int) []byte {
	rr.tmp = appendIP(rr.tmp[:0], net, host)
	rr.tmp = append(rr.tmp, ':')
	rr.tmp = strconv.AppendInt(rr.tmp, int64(port), 10)
	return rr.tmp
}

func (w *jw) bytesStr(k string, v []byte) {
	w.valueStart(k)
	w.b = append(w.b, v...)
	w.valueEnd()
}

// envoy writes an inbound Istio JSON access log at the called workload: the
// caller is the downstream peer, the called workload the local SAN.
func (rr *renderer) envoy(w *jw, ev *event) {
	p := rr.g.pop
	r := rr.r
	caller, srv := &p.workloads[ev.id], &p.workloads[ev.a]
	rt := &srv.routes[ev.b]
	reqHi, reqLo := r.Uint64(), r.Uint64()
	idNum := 10000 + r.Int64N(9990000)
	idHi, idLo := r.Uint64(), r.Uint64()
	srcHost := caller.hosts[r.IntN(len(caller.hosts))]
	dstHost := srv.hosts[r.IntN(len(srv.hosts))]
	srcPort := 32768 + r.IntN(28000)
	upPort := 32768 + r.IntN(28000)
	recv := int64(0)
	if rt.req > 0 {
		recv = rr.lognormal(rt.req, 0.3)
	}
	sent := rr.lognormal(rt.resp, 0.5)
	dur := rr.lognormal(rt.latency, 0.6)
	upTime := max(dur-r.Int64N(3), 0)
	code, details, flags := rt.statusCode, "via_upstream", "-"
	switch ev.out {
	case outNotFound:
		code, sent = 404, 40+r.Int64N(60)
	case outUnavailable:
		code, details, flags, sent = 503, "upstream_reset_before_response_started{connection_termination}", "UC", 95
	case outDenied:
		code, details, sent, dur = 403, "rbac_access_denied_matched_policy[none]", 19, r.Int64N(2)
	}
	if ev.mode == modeExfil {
		// A bulk export through the usual route: tens of megabytes per
		// response, streamed at about 40 MB/s. Derived from the seed
		// rather than drawn, so the draws above match a normal request.
		sent = 8<<20 + int64(mix(ev.seed)%(40<<20))
		dur = max(dur, sent/40_000)
		upTime = max(dur-2, 0)
	}
	ua := caller.httpUA
	proto := "HTTP/1.1"
	if srv.grpc {
		ua, proto = caller.grpcUA, "HTTP/2"
	}

	w.open("")
	w.valueStart("authority")
	w.b = append(w.b, srv.host...)
	w.b = append(w.b, ':')
	w.b = strconv.AppendInt(w.b, int64(srv.port), 10)
	w.valueEnd()
	w.int("bytes_received", recv)
	w.int("bytes_sent", sent)
	w.null("connection_termination_details")
	w.bytesStr("downstream_local_address", rr.addr(srv.net, dstHost, srv.port))
	w.str("downstream_local_uri_san", srv.spiffe)
	w.str("downstream_peer_uri_san", caller.spiffe)
	w.bytesStr("downstream_remote_address", rr.addr(caller.net, srcHost, srcPort))
	w.int("duration", dur)
	w.str("method", rt.method)
	w.valueStart("path")
	w.b = append(w.b, rt.prefix...)
	switch rt.id {
	case 1:
		w.b = strconv.AppendInt(w.b, idNum, 10)
	case 2:
		w.b = appendUUID(w.b, idHi, idLo)
	}
	w.b = append(w.b, rt.suffix...)
	w.b = append(w.b, rt.query...)
	w.valueEnd()
	w.str("protocol", proto)
	w.valueStart("request_id")
	w.b = appendUUID(w.b, reqHi, reqLo)
	w.valueEnd()
	w.valueStart("requested_server_name")
	w.b = append(w.b, "outbound_."...)
	w.b = strconv.AppendInt(w.b, int64(srv.port), 10)
	w.b = append(w.b, "_._."...)
	w.b = append(w.b, srv.host...)
	w.valueEnd()
	w.int("response_code", code)
	w.str("response_code_details", details)
	w.str("response_flags", flags)
	w.str("route_name", "default")
	w.valueStart("start_time")
	w.b = time.Unix(0, ev.t).UTC().AppendFormat(w.b, "2006-01-02T15:04:05.000Z")
	w.valueEnd()
	w.valueStart("upstream_cluster")
	w.b = append(w.b, "inbound|"...)
	w.b = strconv.AppendInt(w.b, int64(srv.port), 10)
	w.b = append(w.b, "||"...)
	w.valueEnd()
	if ev.out == outDenied {
		w.null("upstream_host")
		w.null("upstream_local_address")
		w.null("upstream_service_time")
	} else {
		w.bytesStr("upstream_host", rr.addr(srv.net, dstHost, srv.port))
		w.valueStart("upstream_local_address")
		w.b = append(w.b, "127.0.0.6:"...)
		w.b = strconv.AppendInt(w.b, int64(upPort), 10)
		w.valueEnd()
		if ev.out == outUnavailable {
			w.null("upstream_service_time")
		} else {
			w.valueStart("upstream_service_time")
			w.b = strconv.AppendInt(w.b, upTime, 10)
			w.valueEnd()
		}
	}
	w.null("upstream_transport_failure_reason")
	w.str("user_agent", ua)
	w.null("x_forwarded_for")
	w.close()
}

const httpDate = "Mon, 02 Jan 2006 15:04:05 GMT"

// kong writes a Kong log-plugin entry for a key-auth authenticated request.
func (rr *renderer) kong(w *jw, ev *event) {
	p := rr.g.pop
	r := rr.r
	k := &p.keys[ev.id]
	u := &k.uses[ev.a]
	kr := &p.kroutes[u.route]
	svc := &p.services[kr.service]
	idNum := 100000 + r.Int64N(8900000)
	page := 1 + r.Int64N(20)
	limit := int64(100)
	reqHi, reqLo := r.Uint64(), r.Uint64()
	clientHost := k.hosts[r.IntN(len(k.hosts))]
	upHost := byte(2 + r.IntN(60))
	reqSize := 180 + int64(len(k.ua)) + r.Int64N(120)
	if u.req > 0 {
		reqSize += rr.lognormal(u.req, 0.3)
	}
	respSize := 250 + rr.lognormal(u.resp, 0.5)
	kongLat := r.Int64N(4)
	proxy := rr.lognormal(u.latency, 0.5)
	status := u.statusCode
	if ev.mode == 1 { // scraping: big pages as fast as the API answers
		page, limit = int64(ev.b), 500
		respSize = 250_000 + r.Int64N(1_750_000)
		proxy = 150 + r.Int64N(900)
	}
	switch ev.out {
	case outNotFound:
		status, respSize = 404, 280+r.Int64N(40)
	case outUnavailable:
		status, respSize = 503, 300+r.Int64N(40)
	case outRateLimited:
		status, respSize, proxy = 429, 330+r.Int64N(20), -1
	}
	startMS := ev.t / int64(time.Millisecond)
	started := time.UnixMilli(startMS).UTC()

	rr.tmp = append(rr.tmp[:0], kr.path...)
	switch {
	case u.list || ev.mode == 1:
		rr.tmp = append(rr.tmp, "?page="...)
		rr.tmp = strconv.AppendInt(rr.tmp, page, 10)
		rr.tmp = append(rr.tmp, "&limit="...)
		rr.tmp = strconv.AppendInt(rr.tmp, limit, 10)
	case u.method == "POST" && u.sub == "":
	default:
		rr.tmp = append(rr.tmp, '/')
		rr.tmp = strconv.AppendInt(rr.tmp, idNum, 10)
		if u.sub != "" {
			rr.tmp = append(rr.tmp, '/')
			rr.tmp = append(rr.tmp, u.sub...)
		}
	}
	uri := rr.tmp

	w.open("")
	w.open("service")
	w.str("host", svc.host)
	w.int("created_at", svc.created)
	w.int("connect_timeout", 60000)
	w.str("id", svc.id)
	w.str("protocol", "http")
	w.int("read_timeout", 60000)
	w.int("port", svc.port)
	w.int("updated_at", svc.created)
	w.int("write_timeout", 60000)
	w.int("retries", 5)
	w.str("ws_id", p.wsID)
	w.str("name", svc.name)
	w.bool("enabled", true)
	w.close()
	w.open("route")
	w.str("id", kr.id)
	w.arr("paths")
	w.elem(kr.path)
	w.endArr()
	w.arr("protocols")
	w.elem("https")
	w.endArr()
	w.bool("strip_path", false)
	w.int("created_at", kr.created)
	w.str("ws_id", p.wsID)
	w.bool("request_buffering", true)
	w.int("updated_at", kr.created)
	w.bool("preserve_host", false)
	w.int("regex_priority", 0)
	w.bool("response_buffering", true)
	w.int("https_redirect_status_code", 426)
	w.str("path_handling", "v0")
	w.open("service")
	w.str("id", svc.id)
	w.close()
	w.str("name", kr.name)
	w.close()
	w.open("request")
	w.open("querystring")
	if u.list || ev.mode == 1 {
		w.key("page")
		w.b = append(w.b, '"')
		w.b = strconv.AppendInt(w.b, page, 10)
		w.valueEnd()
		w.key("limit")
		w.b = append(w.b, '"')
		w.b = strconv.AppendInt(w.b, limit, 10)
		w.valueEnd()
	}
	w.close()
	w.int("size", reqSize)
	w.bytesStr("uri", uri)
	w.valueStart("url")
	w.b = append(w.b, "https://api.example.com:8443"...)
	w.b = append(w.b, uri...)
	w.valueEnd()
	w.open("headers")
	w.str("host", "api.example.com")
	w.str("accept-encoding", "gzip, deflate")
	w.str("user-agent", k.ua)
	w.str("accept", "application/json")
	w.str("connection", "keep-alive")
	if u.method == "POST" {
		w.str("content-type", "application/json")
	}
	w.close()
	w.str("method", u.method)
	w.valueStart("id")
	w.b = appendHex(w.b, reqHi, 16)
	w.b = appendHex(w.b, reqLo, 16)
	w.valueEnd()
	w.close()
	w.open("response")
	w.open("headers")
	w.str("content-type", "application/json; charset=utf-8")
	w.valueStart("date")
	w.b = started.Add(time.Duration(proxy+kongLat)*time.Millisecond).AppendFormat(w.b, httpDate)
	w.valueEnd()
	w.str("connection", "keep-alive")
	w.valueStart("content-length")
	w.b = strconv.AppendInt(w.b, max(respSize-240, 0), 10)
	w.valueEnd()
	w.str("via", "1.1 kong/3.6.1")
	w.valueStart("x-kong-proxy-latency")
	w.b = strconv.AppendInt(w.b, kongLat, 10)
	w.valueEnd()
	if status == 429 {
		w.str("x-ratelimit-limit-minute", "600")
		w.str("x-ratelimit-remaining-minute", "0")
		w.valueStart("retry-after")
		w.b = strconv.AppendInt(w.b, 1+r.Int64N(59), 10)
		w.valueEnd()
	} else {
		w.valueStart("x-kong-upstream-latency")
		w.b = strconv.AppendInt(w.b, proxy, 10)
		w.valueEnd()
	}
	w.valueStart("x-kong-request-id")
	w.b = appendHex(w.b, reqHi, 16)
	w.b = appendHex(w.b, reqLo, 16)
	w.valueEnd()
	w.close()
	w.int("status", status)
	w.int("size", respSize)
	w.close()
	w.open("latencies")
	if proxy < 0 {
		w.int("request", kongLat+1)
	} else {
		w.int("request", proxy+kongLat)
	}
	w.int("kong", kongLat)
	w.int("proxy", proxy)
	w.close()
	w.arr("tries")
	if status != 429 {
		w.open("")
		w.int("balancer_latency", 0)
		w.int("port", svc.port)
		w.int("balancer_start", startMS+kongLat)
		w.bytesStr("ip", appendIP(nil, [3]byte{10, 30, byte(kr.service)}, upHost))
		w.close()
	}
	w.endArr()
	w.bytesStr("client_ip", appendIP(nil, k.net, clientHost))
	w.str("workspace", p.wsID)
	w.str("workspace_name", "default")
	w.bytesStr("upstream_uri", uri)
	w.open("authenticated_entity")
	w.str("id", k.credID)
	w.close()
	w.open("consumer")
	w.str("id", k.consumerID)
	w.int("created_at", k.consumerCreated)
	w.str("username_lower", k.username)
	w.str("username", k.username)
	w.int("type", 0)
	w.close()
	w.int("started_at", startMS)
	if status == 429 {
		w.str("source", "kong")
	} else {
		w.str("source", "upstream")
	}
	w.close()
}

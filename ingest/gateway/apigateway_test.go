package gateway

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestGoldenAPIGateway(t *testing.T) {
	ingesttest.InFormatDir(t, APIGatewayFormat)
	ingesttest.Golden(t, NewAPIGateway())
}

func TestAppendsAPIGateway(t *testing.T) {
	ingesttest.InFormatDir(t, APIGatewayFormat)
	ingesttest.Appends(t, NewAPIGateway(), ingesttest.Line(t, "elastic-apigateway-rest-access.ndjson", 4))
}

func FuzzDecodeAPIGateway(f *testing.F) {
	ingesttest.InFormatDir(f, APIGatewayFormat)
	ingesttest.Fuzz(f, NewAPIGateway(),
		[]byte(`{"requestId":"x","requestTimeEpoch":1,"httpMethod":"GET","path":"/a/1","identity":{"sourceIp":"::1"}}`),
		[]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"timestamp":1,"message":"{\"routeKey\":\"$connect\",\"ip\":\"10.0.0.1\"}"}]}`))
}

func BenchmarkDecodeAPIGateway(b *testing.B) {
	ingesttest.InFormatDir(b, APIGatewayFormat)
	ingesttest.Bench(b, NewAPIGateway())
}

func TestDecodeAPIGateway(t *testing.T) {
	src := schemas.Source{Family: schemas.FamilyGateway, Format: APIGatewayFormat, Provider: "aws"}
	withAcct := func(acct, region string) schemas.Source {
		s := src
		s.Account, s.Region = acct, region
		return s
	}
	checkDecode(t, NewAPIGateway(), []want{
		{
			name: "Elastic HTTP API line: routeKey, no caller", file: "elastic-apigateway-http-and-rest-access.ndjson", line: 1,
			id: "apigateway:GQIVriFLIAMEMsA=", source: src, time: "2023-06-09T12:54:08.000000Z",
			identity: schemas.Identity{ID: "ip:1.128.0.0", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "1.128.0.0"}, action: "GET /",
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesOut: 47140,
		},
		{
			name: "Elastic REST line with stage, apiId and domain", file: "elastic-apigateway-rest-access.ndjson", line: 4,
			id: "apigateway:c12d1542-b79e-4e79-a158-fdf36452a81b", source: withAcct("", "us-east-1"), time: "2023-07-26T12:07:03.000000Z",
			identity: schemas.Identity{ID: "ip:1.128.0.0", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "1.128.0.0"}, action: "GET /pets/{petId}",
			service: "asad15n3p0.execute-api.us-east-1.amazonaws.com",
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesOut: 48,
		},
		{
			name: "IAM assumed role on a greedy ANY route; query dropped", file: "apigateway-variants.ndjson", line: 1,
			id: "apigateway:b7e3c1d2-5f6a-4b8c-9d0e-1f2a3b4c5d6e", source: withAcct("123456789012", "eu-west-1"), time: "2024-06-10T06:13:20.123000Z",
			identity:   schemas.Identity{ID: "aws:role/123456789012/payments-worker", Kind: schemas.KindRole, Name: "payments-worker"},
			credential: schemas.Credential{ID: "ASIAIOSFODNN7EXAMPLE", Type: "aws_access_key"},
			actor:      schemas.Actor{IP: "10.0.12.34", UserAgent: "aws-sdk-go-v2/1.30.0", Session: "i-0abc12345def67890"},
			action:     "POST /v1/payments/{id}", service: "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
			target:  schemas.Target{Resource: "/v1/payments/8812"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 201}, bytesOut: 512, durationMS: 87,
		},
		{
			name: "API key id in a nested identity object, bare numbers", file: "apigateway-variants.ndjson", line: 2,
			id: "apigateway:0d9f3e55-8a41-4c70-9b7a-2c4e6f8a0b1c", source: withAcct("123456789012", ""), time: "2024-06-10T06:14:20.456000Z",
			identity:   schemas.Identity{ID: "apikey:apigateway:k7x9q2m4p1", Kind: schemas.KindAPIKey},
			credential: schemas.Credential{ID: "k7x9q2m4p1", Type: "apigateway_api_key"},
			actor:      schemas.Actor{IP: "198.51.100.23", UserAgent: "inventory-sync/2.1"},
			action:     "GET /orders/{orderId}", service: "q8w7e6r5t4/prod",
			target:  schemas.Target{Resource: "/prod/orders/5521"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesOut: 1024, durationMS: 12,
		},
		{
			name: "Lambda authorizer principalId (dotted keys)", file: "apigateway-variants.ndjson", line: 3,
			id: "apigateway:7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", source: src, time: "2024-06-10T06:15:02.000000Z",
			identity: schemas.Identity{ID: "apigateway:principal/z9y8x7w6v5/svc-cleanup-bot", Kind: schemas.KindUnknown, Name: "svc-cleanup-bot"},
			actor:    schemas.Actor{IP: "203.0.113.50", UserAgent: "python-requests/2.31.0"},
			action:   "DELETE /users/{userId}", service: "api.example.com",
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200},
		},
		{
			name: "403 without auth: IP identity named by the IAM principal id", file: "apigateway-variants.ndjson", line: 4,
			id: "apigateway:5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170", source: src, time: "2024-06-10T06:16:40.000000Z",
			identity: schemas.Identity{ID: "ip:192.0.2.77", Kind: schemas.KindUnknown, Name: "AIDAJQABLZS4A3QDU576Q"},
			actor:    schemas.Actor{IP: "192.0.2.77"}, action: "GET /admin/keys", service: "z9y8x7w6v5/prod",
			outcome: schemas.Outcome{Result: schemas.ResultDenied, Status: 403, ErrorCode: "Missing Authentication Token"}, bytesOut: 42,
		},
		{
			name: "401 with error.responseType", file: "apigateway-variants.ndjson", line: 5,
			id: "apigateway:9c8b7a69-5847-4362-a150-f9e8d7c6b5a4", source: src, time: "2024-06-10T06:16:41.000000Z",
			identity: schemas.Identity{ID: "ip:192.0.2.77", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "192.0.2.77"}, action: "GET /admin/keys", service: "z9y8x7w6v5/prod",
			outcome: schemas.Outcome{Result: schemas.ResultDenied, Status: 401, ErrorCode: "UNAUTHORIZED"}, bytesOut: 26,
		},
		{
			name: "collector wrapper with the access log in message", file: "apigateway-variants.ndjson", line: 6,
			id: "apigateway:3f2e1d0c-b9a8-4776-8554-433221100fed", source: src, time: "2024-06-10T06:17:00.000000Z",
			identity: schemas.Identity{ID: "ip:198.51.100.9", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "198.51.100.9"}, action: "GET /health",
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesOut: 2,
		},
		{
			name: "CloudWatch Logs payload, first event: IAM user", file: "apigateway-variants.ndjson", line: 7, events: 2,
			id: "apigateway:c1c2c3c4-d5d6-4e7e-8f9f-a0a1a2a3a4a5", source: withAcct("123456789012", ""), time: "2024-06-10T06:15:00.000000Z",
			identity: schemas.Identity{ID: "aws:user/123456789012/deployer", Kind: schemas.KindUser, Name: "deployer"},
			actor:    schemas.Actor{IP: "10.0.12.34"}, action: "GET /v1/payments/{id}",
			target:  schemas.Target{Resource: "/v1/payments/9001"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesOut: 300, durationMS: 15,
		},
		{
			name: "CloudWatch Logs payload, second event: $default route, time from the log event", file: "apigateway-variants.ndjson", line: 7, events: 2, index: 1,
			id: "apigateway:d1d2d3d4-e5e6-4f7f-8a9a-b0b1b2b3b4b5", source: withAcct("123456789012", ""), time: "2024-06-10T06:15:00.500000Z",
			identity: schemas.Identity{ID: "ip:10.0.12.35", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "10.0.12.35"}, action: "GET /unknown/route",
			target:  schemas.Target{Resource: "/unknown/route"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 404}, bytesOut: 23,
		},
		{
			name: "WebSocket $connect", file: "apigateway-variants.ndjson", line: 8,
			id: "apigateway:e4f5a6b7-c8d9-4e0f-a1b2-c3d4e5f6a7b8", source: src, time: "2024-06-10T06:16:40.000000Z",
			identity: schemas.Identity{ID: "ip:198.51.100.80", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "198.51.100.80"}, action: "$connect", service: "ws12345678/production",
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200},
		},
	})
}

func TestDecodeErrorsAPIGateway(t *testing.T) {
	ingesttest.InFormatDir(t, APIGatewayFormat)
	valid := string(ingesttest.Line(t, "apigateway-variants.ndjson", 1))
	bundle := string(ingesttest.Line(t, "apigateway-variants.ndjson", 7))
	ingesttest.Errors(t, NewAPIGateway(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonInvalidJSON},
		{Name: "truncated", In: valid[:len(valid)/2], Reason: ingest.ReasonInvalidJSON},
		{Name: "text line", In: `1.128.0.0 - - [10/Jun/2023:15:36:28 +0000] "GET /pets HTTP/1.1" 200 184`, Reason: ingest.ReasonInvalidJSON},
		{Name: "not an object", In: `["requestId"]`, Reason: ingest.ReasonNotAnEvent},
		{Name: "null", In: `null`, Reason: ingest.ReasonNotAnEvent},
		{Name: "invalid UTF-8", In: strings.Replace(valid, `aws-sdk-go-v2`, "aws-sdk-\xff", 1), Reason: ingest.ReasonInvalidUTF8},
		{Name: "too deep", In: `{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, Reason: ingest.ReasonTooDeep},
		{Name: "other JSON object", In: `{"level":"info","msg":"listening"}`, Reason: ingest.ReasonNotAnEvent},
		{Name: "status is an object", In: strings.Replace(valid, `"status":"201"`, `"status":{"code":201}`, 1), Reason: ingest.ReasonBadField},
		{Name: "status not a number", In: strings.Replace(valid, `"status":"201"`, `"status":"OK"`, 1), Reason: ingest.ReasonBadField},
		{Name: "status out of range", In: strings.Replace(valid, `"status":"201"`, `"status":1201`, 1), Reason: ingest.ReasonBadField},
		{Name: "huge responseLength", In: strings.Replace(valid, `"responseLength":"512"`, `"responseLength":"99999999999999999999999"`, 1), Reason: ingest.ReasonBadField},
		{Name: "negative latency", In: strings.Replace(valid, `"responseLatency":"87"`, `"responseLatency":"-1"`, 1), Reason: ingest.ReasonBadField},
		{Name: "epoch overflow", In: strings.Replace(valid, `"requestTimeEpoch":"1718000000123"`, `"requestTimeEpoch":"9223372036854775808"`, 1), Reason: ingest.ReasonBadField},
		{Name: "epoch past 9999", In: strings.Replace(valid, `"requestTimeEpoch":"1718000000123"`, `"requestTimeEpoch":253402300800000`, 1), Reason: ingest.ReasonBadField},
		{Name: "bad requestTime", In: `{"requestId":"x","ip":"10.0.0.1","requestTime":"yesterday","httpMethod":"GET"}`, Reason: ingest.ReasonBadField},
		{Name: "no time", In: `{"requestId":"x","ip":"10.0.0.1","httpMethod":"GET","resourcePath":"/"}`, Reason: ingest.ReasonMissingField},
		{Name: "bad ip", In: strings.Replace(valid, `"ip":"10.0.12.34"`, `"ip":"10.0.12"`, 1), Reason: ingest.ReasonBadField},
		{Name: "userArn not a principal", In: strings.Replace(valid, `assumed-role/payments-worker/i-0abc12345def67890`, `bucket/x`, 1), Reason: ingest.ReasonBadField},
		{Name: "nobody to blame", In: `{"requestId":"x","requestTimeEpoch":1718000000,"httpMethod":"GET","resourcePath":"/"}`, Reason: ingest.ReasonMissingField},
		{Name: "no method or route", In: `{"requestId":"x","ip":"10.0.0.1","requestTimeEpoch":1718000000}`, Reason: ingest.ReasonMissingField},
		{Name: "identity is a string", In: strings.Replace(valid, `"ip":`, `"identity":"x","ip":`, 1), Reason: ingest.ReasonBadField},
		{Name: "wrapper around an execution log line", In: `{"message":"(abc) Method completed with status: 200"}`, Reason: ingest.ReasonNotAnEvent},
		{Name: "wrapper around truncated JSON", In: `{"message":"{\"requestId\":"}`, Reason: ingest.ReasonInvalidJSON},
		{Name: "bundle with a bad event", In: strings.Replace(bundle, `\"status\":\"404\"`, `\"status\":\"4o4\"`, 1), Reason: ingest.ReasonBadField},
		{Name: "bundle without events", In: `{"messageType":"DATA_MESSAGE","owner":"1","logEvents":[]}`, Reason: ingest.ReasonMissingField},
		{Name: "control message", In: `{"messageType":"CONTROL_MESSAGE","logEvents":[{"message":"CWL CONTROL MESSAGE"}]}`, Reason: ingest.ReasonNotAnEvent},
	})
}

func TestMaxRecordBytesAPIGateway(t *testing.T) {
	ingesttest.InFormatDir(t, APIGatewayFormat)
	raw := ingesttest.Line(t, "apigateway-variants.ndjson", 1)
	d := &APIGatewayDecoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}

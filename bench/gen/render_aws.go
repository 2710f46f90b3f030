package gen

import (
	"strconv"
	"strings"
	"time"
)

// sessionName is the role session name of session k, as the role's SDK or
// EC2 instance profile names it.
func (g *generator) sessionName(ro *role, k int64) string {
	st := g.sessionStart(ro, k)
	switch ro.sessStyle {
	case 0:
		return "aws-go-sdk-" + strconv.FormatInt(st, 10)
	case 1:
		return "botocore-session-" + strconv.FormatInt(st/int64(time.Second), 10)
	case 2:
		return "aws-sdk-java-" + strconv.FormatInt(st/int64(time.Millisecond), 10)
	}
	return ro.instance
}

// accessKeyID is the temporary access key id of the role's session k.
func (g *generator) accessKeyID(ro *role, k int64) string {
	return awsID("ASIA", mix(ro.seed^uint64(k)*0x9e3779b97f4a7c15), 16)
}

func (w *jw) awsTime(k string, t time.Time) {
	w.valueStart(k)
	w.b = t.AppendFormat(w.b, "2006-01-02T15:04:05Z")
	w.valueEnd()
}

// cloudTrail writes one CloudTrail record of a call made with a role's STS
// session credentials.
func (rr *renderer) cloudTrail(w *jw, ev *event) {
	g := rr.g
	r := rr.r
	ro := &g.pop.roles[ev.id]
	a := &actions[ev.a]
	sess := g.sessionName(ro, ev.c)
	keyID := g.accessKeyID(ro, ev.c)
	created := time.Unix(0, g.sessionStart(ro, ev.c)).UTC()
	t := time.Unix(0, ev.t).UTC()
	region := ro.region
	if a.global {
		region = "us-east-1"
	}
	reqHi, reqLo := r.Uint64(), r.Uint64()
	evHi, evLo := r.Uint64(), r.Uint64()
	objN := r.Int64N(100000)
	bytesOut := rr.lognormal(20000, 1.2)
	bytesIn := rr.lognormal(8000, 1.0)
	host := ro.hosts[r.IntN(len(ro.hosts))]
	denied := ev.out == outDenied
	src := ro.via
	ua := ro.ua
	private := false
	switch {
	case ev.mode == 1:
		src, ua = g.stolenIP, g.stolenUA
	case ev.mode == modeCloned:
		src = g.cloneIP
	case ev.mode == modeCIOutside:
		src, ua = g.ciIP, ciOutsideUserAgent
	case src == "":
		src = ipString(ro.net, host)
		private = true
	default:
		ua = src
	}
	assumed := "arn:aws:sts::" + account + ":assumed-role/" + ro.name + "/" + sess
	secret := ro.secret
	if int(ev.b) != int(ev.id) && int(ev.b) < len(g.pop.roles) {
		secret = g.pop.roles[ev.b].secret
	}
	objKey := ro.prefix + "/" + t.Format("2006/01/02") + "/part-" + leftPad(objN, 5) + ".json.gz"

	w.open("")
	w.str("eventVersion", "1.09")
	w.open("userIdentity")
	w.str("type", "AssumedRole")
	w.str("principalId", ro.principalID+":"+sess)
	w.str("arn", assumed)
	w.str("accountId", account)
	w.str("accessKeyId", keyID)
	w.open("sessionContext")
	w.open("sessionIssuer")
	w.str("type", "Role")
	w.str("principalId", ro.principalID)
	w.str("arn", ro.arn)
	w.str("accountId", account)
	w.str("userName", ro.name)
	w.close()
	if ro.sessStyle != 3 {
		w.open("webIdFederationData")
		w.str("federatedProvider", "arn:aws:iam::"+account+":oidc-provider/oidc.eks."+ro.region+".amazonaws.com/id/"+eksID(ro.region))
		w.open("attributes")
		w.close()
		w.close()
	}
	w.open("attributes")
	w.awsTime("creationDate", created)
	w.str("mfaAuthenticated", "false")
	w.close()
	w.close()
	if ro.via != "" && ev.mode == 0 {
		w.str("invokedBy", ro.via)
	}
	w.close()
	w.awsTime("eventTime", t)
	w.str("eventSource", a.source+".amazonaws.com")
	w.str("eventName", a.name)
	w.str("awsRegion", region)
	w.str("sourceIPAddress", src)
	w.str("userAgent", ua)
	if denied {
		w.str("errorCode", a.errCode)
		w.str("errorMessage", deniedMessage(a, assumed, rr.resourceARN(ro, a, region, objKey, secret)))
	}
	rr.requestParameters(w, ro, a, region, objKey, secret)
	if denied {
		w.null("responseElements")
	} else {
		rr.responseElements(w, ro, a, t)
	}
	if a.source == "s3" && a.data {
		w.open("additionalEventData")
		w.str("SignatureVersion", "SigV4")
		w.str("CipherSuite", "TLS_AES_128_GCM_SHA256")
		if denied || a.name != "PutObject" {
			bytesIn = 0
		}
		if denied || a.name != "GetObject" {
			bytesOut = 0
		}
		w.int("bytesTransferredIn", bytesIn)
		w.str("AuthenticationMethod", "AuthHeader")
		w.valueStart("x-amz-id-2")
		w.b = appendHex(w.b, evHi^reqLo, 16)
		w.b = appendHex(w.b, evLo^reqHi, 16)
		w.valueEnd()
		w.int("bytesTransferredOut", bytesOut)
		w.close()
	}
	w.valueStart("requestID")
	if a.source == "s3" {
		w.b = appendHex(w.b, reqHi, 16)
		for i := len(w.b) - 16; i < len(w.b); i++ {
			if w.b[i] >= 'a' {
				w.b[i] -= 'a' - 'A'
			}
		}
	} else {
		w.b = appendUUID(w.b, reqHi, reqLo)
	}
	w.valueEnd()
	w.valueStart("eventID")
	w.b = appendUUID(w.b, evHi, evLo)
	w.valueEnd()
	w.bool("readOnly", a.readOnly)
	rr.resources(w, ro, a, region, objKey)
	w.str("eventType", "AwsApiCall")
	w.bool("managementEvent", !a.data)
	w.str("recipientAccountId", account)
	if private && !a.global {
		w.str("vpcEndpointId", ro.vpce)
	}
	if a.data {
		w.str("eventCategory", "Data")
	} else {
		w.str("eventCategory", "Management")
	}
	if ro.via == "" || ev.mode != 0 {
		w.open("tlsDetails")
		w.str("tlsVersion", "TLSv1.3")
		w.str("cipherSuite", "TLS_AES_128_GCM_SHA256")
		switch {
		case a.source == "s3" && a.data:
			w.str("clientProvidedHostHeader", ro.bucket+".s3."+region+".amazonaws.com")
		case a.global:
			w.str("clientProvidedHostHeader", a.source+".amazonaws.com")
		default:
			w.str("clientProvidedHostHeader", a.source+"."+region+".amazonaws.com")
		}
		w.close()
	}
	w.close()
}

func leftPad(n int64, width int) string {
	s := strconv.FormatInt(n, 10)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

func eksID(region string) string {
	return strings.ToUpper(string(appendHex(appendHex(nil, mix(uint64(len(region))*7919+uint64(region[3])), 16), mix(uint64(region[len(region)-1])), 16)))
}

func (rr *renderer) resourceARN(ro *role, a *awsAction, region, objKey, secret string) string {
	switch a.source + ":" + a.name {
	case "s3:GetObject", "s3:PutObject", "s3:HeadObject", "s3:DeleteObject":
		return "arn:aws:s3:::" + ro.bucket + "/" + objKey
	case "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:GetBucketAcl":
		return "arn:aws:s3:::" + ro.bucket
	case "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem":
		return "arn:aws:dynamodb:" + region + ":" + account + ":table/" + ro.table
	case "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage":
		return "arn:aws:sqs:" + region + ":" + account + ":" + ro.queueName
	case "kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant":
		return ro.kmsKey
	case "secretsmanager:GetSecretValue":
		return secret
	case "sts:AssumeRole":
		return "arn:aws:iam::" + account + ":role/" + ro.assumeTarget
	case "iam:ListAttachedRolePolicies", "iam:AttachRolePolicy", "iam:PutRolePolicy":
		return ro.arn
	case "iam:ListUsers", "iam:ListRoles", "iam:ListAccessKeys", "iam:CreateUser", "iam:CreateAccessKey":
		return "arn:aws:iam::" + account + ":user/"
	}
	return "*"
}

// deniedMessage is the errorMessage AWS logs with an authorization denial.
func deniedMessage(a *awsAction, principal, resource string) string {
	perm := a.source + ":" + a.name
	if a.source == "lambda" {
		perm = "lambda:ListFunctions"
	}
	switch a.source {
	case "s3":
		return "Access Denied"
	case "ec2":
		return "You are not authorized to perform this operation. User: " + principal + " is not authorized to perform: " + perm + " because no identity-based policy allows the " + perm + " action"
	}
	return "User: " + principal + " is not authorized to perform: " + perm + " on resource: " + resource + " because no identity-based policy allows the " + perm + " action"
}

func (rr *renderer) requestParameters(w *jw, ro *role, a *awsAction, region, objKey, secret string) {
	switch a.source + ":" + a.name {
	case "s3:GetObject", "s3:PutObject", "s3:HeadObject", "s3:DeleteObject":
		w.open("requestParameters")
		w.str("bucketName", ro.bucket)
		w.str("Host", ro.bucket+".s3."+region+".amazonaws.com")
		w.str("key", objKey)
		if a.name == "PutObject" {
			w.str("x-amz-server-side-encryption", "aws:kms")
		}
		w.close()
	case "s3:ListBuckets":
		w.open("requestParameters")
		w.str("Host", "s3.amazonaws.com")
		w.close()
	case "s3:GetBucketPolicy", "s3:GetBucketAcl", "s3:PutBucketPolicy":
		w.open("requestParameters")
		w.str("bucketName", ro.bucket)
		w.str("Host", ro.bucket+".s3."+region+".amazonaws.com")
		if a.name == "PutBucketPolicy" {
			w.str("bucketPolicy", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::`+ro.bucket+`/*"}]}`)
		} else if a.name == "GetBucketPolicy" {
			w.str("policy", "")
		} else {
			w.str("acl", "")
		}
		w.close()
	case "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem":
		w.open("requestParameters")
		w.str("tableName", ro.table)
		w.open("key")
		w.str("pk", "HIDDEN_DUE_TO_SECURITY_REASONS")
		w.close()
		if a.name == "UpdateItem" {
			w.str("updateExpression", "SET #s = :s, #u = :u")
		}
		if a.name == "GetItem" {
			w.bool("consistentRead", false)
		}
		w.close()
	case "dynamodb:Query":
		w.open("requestParameters")
		w.str("tableName", ro.table)
		w.str("keyConditionExpression", "pk = :pk")
		w.int("limit", 50)
		w.close()
	case "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage":
		w.open("requestParameters")
		w.str("queueUrl", "https://sqs."+region+".amazonaws.com/"+account+"/"+ro.queueName)
		if a.name == "ReceiveMessage" {
			w.int("maxNumberOfMessages", 10)
			w.int("waitTimeSeconds", 20)
		}
		w.close()
	case "kms:Decrypt":
		w.open("requestParameters")
		w.str("encryptionAlgorithm", "SYMMETRIC_DEFAULT")
		w.close()
	case "kms:GenerateDataKey":
		w.open("requestParameters")
		w.str("keyId", ro.kmsKey)
		w.str("keySpec", "AES_256")
		w.close()
	case "kms:CreateGrant":
		w.open("requestParameters")
		w.str("keyId", ro.kmsKey)
		w.str("granteePrincipal", ro.arn)
		w.arr("operations")
		w.elem("Decrypt")
		w.endArr()
		w.close()
	case "secretsmanager:GetSecretValue":
		w.open("requestParameters")
		w.str("secretId", secret)
		w.close()
	case "sts:AssumeRole":
		w.open("requestParameters")
		w.str("roleArn", "arn:aws:iam::"+account+":role/"+ro.assumeTarget)
		w.str("roleSessionName", ro.name)
		w.int("durationSeconds", 3600)
		w.close()
	case "iam:ListAttachedRolePolicies", "iam:PutRolePolicy":
		w.open("requestParameters")
		w.str("roleName", ro.name)
		if a.name == "PutRolePolicy" {
			w.str("policyName", "backup-access")
			w.str("policyDocument", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)
		}
		w.close()
	case "iam:AttachRolePolicy":
		w.open("requestParameters")
		w.str("roleName", ro.name)
		w.str("policyArn", "arn:aws:iam::aws:policy/AdministratorAccess")
		w.close()
	case "iam:CreateUser", "iam:CreateAccessKey", "iam:ListAccessKeys":
		w.open("requestParameters")
		w.str("userName", "svc-backup")
		w.close()
	case "ec2:RunInstances":
		w.open("requestParameters")
		w.open("instancesSet")
		w.arr("items")
		w.open("")
		w.str("imageId", "ami-0c7217cdde317cfec")
		w.int("minCount", 1)
		w.int("maxCount", 4)
		w.close()
		w.endArr()
		w.close()
		w.str("instanceType", "c5.4xlarge")
		w.close()
	case "ec2:CreateKeyPair":
		w.open("requestParameters")
		w.str("keyName", "ops-recovery")
		w.close()
	case "ssm:GetParameters":
		w.open("requestParameters")
		w.arr("names")
		w.elem("/prod/" + ro.app + "/db-password")
		w.endArr()
		w.bool("withDecryption", true)
		w.close()
	default:
		w.null("requestParameters")
	}
}

func (rr *renderer) responseElements(w *jw, ro *role, a *awsAction, t time.Time) {
	r := rr.r
	switch a.source + ":" + a.name {
	case "sts:AssumeRole":
		sess := ro.name
		target := ro.assumeTarget
		w.open("responseElements")
		w.open("credentials")
		w.str("accessKeyId", awsID("ASIA", r.Uint64(), 16))
		w.str("expiration", t.Add(time.Hour).Format("Jan 2, 2006, 3:04:05 PM"))
		w.close()
		w.open("assumedRoleUser")
		w.str("assumedRoleId", awsID("AROA", mix(uint64(len(target))<<32^uint64(target[0])<<8^uint64(target[len(target)-1])), 17)+":"+sess)
		w.str("arn", "arn:aws:sts::"+account+":assumed-role/"+target+"/"+sess)
		w.close()
		w.close()
	case "sts:GetCallerIdentity":
		w.null("responseElements")
	case "sqs:SendMessage":
		w.open("responseElements")
		w.valueStart("mD5OfMessageBody")
		w.b = appendHex(w.b, r.Uint64(), 16)
		w.b = appendHex(w.b, r.Uint64(), 16)
		w.valueEnd()
		w.valueStart("messageId")
		w.b = appendUUID(w.b, r.Uint64(), r.Uint64())
		w.valueEnd()
		w.close()
	case "s3:PutObject":
		w.open("responseElements")
		w.str("x-amz-server-side-encryption", "aws:kms")
		w.str("x-amz-server-side-encryption-aws-kms-key-id", ro.kmsKey)
		w.close()
	case "kms:Decrypt":
		w.open("responseElements")
		w.str("keyId", ro.kmsKey)
		w.str("encryptionAlgorithm", "SYMMETRIC_DEFAULT")
		w.close()
	case "kms:GenerateDataKey":
		w.open("responseElements")
		w.str("keyId", ro.kmsKey)
		w.close()
	default:
		w.null("responseElements")
	}
}

func (rr *renderer) resources(w *jw, ro *role, a *awsAction, region, objKey string) {
	typ := ""
	switch a.source + ":" + a.name {
	case "s3:GetObject", "s3:PutObject", "s3:HeadObject", "s3:DeleteObject":
		w.arr("resources")
		w.open("")
		w.str("type", "AWS::S3::Object")
		w.str("ARN", "arn:aws:s3:::"+ro.bucket+"/"+objKey)
		w.close()
		w.open("")
		w.str("accountId", account)
		w.str("type", "AWS::S3::Bucket")
		w.str("ARN", "arn:aws:s3:::"+ro.bucket)
		w.close()
		w.endArr()
		return
	case "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem":
		typ = "AWS::DynamoDB::Table"
	case "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage":
		typ = "AWS::SQS::Queue"
	case "kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant":
		typ = "AWS::KMS::Key"
	case "sts:AssumeRole":
		typ = "AWS::IAM::Role"
	default:
		return
	}
	w.arr("resources")
	w.open("")
	w.str("accountId", account)
	w.str("type", typ)
	w.str("ARN", rr.resourceARN(ro, a, region, objKey, ""))
	w.close()
	w.endArr()
}

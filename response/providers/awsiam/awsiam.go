// Package awsiam is the AWS IAM response provider: it sets an IAM user's
// access key Inactive (disable_identity) and cuts a role's sessions with the
// deny policy the AWS console's "Revoke active sessions" writes
// (isolate_workload, revoke_credential).
//
// API calls (IAM Query API through aws-sdk-go-v2, SigV4-signed, no retries
// of its own: the executor retries):
//
//	disable_identity on aws:user/<account>/<name> with an access key id (AKIA…):
//	  Do    ListAccessKeys(UserName)                 the key's status before
//	        UpdateAccessKey(UserName, AccessKeyId, Status=Inactive)
//	  Undo  UpdateAccessKey(…, Status=Active), unless the key was already
//	        Inactive before Do
//	isolate_workload or revoke_credential on aws:role/<account>/<name>
//	(with or without the session's ASIA… key: one session cannot be cut alone):
//	  Do    GetRolePolicy(RoleName, "AWSRevokeOlderSessions")
//	        PutRolePolicy(RoleName, "AWSRevokeOlderSessions", deny * when
//	        aws:TokenIssueTime < the request's time)
//	  Undo  GetRolePolicy, then DeleteRolePolicy, or PutRolePolicy of the
//	        policy that was there before, only while the policy is still
//	        the one Do wrote
//
// Permissions the credentials need, on the users and roles to act on:
// iam:ListAccessKeys, iam:UpdateAccessKey, iam:GetRolePolicy,
// iam:PutRolePolicy, iam:DeleteRolePolicy.
//
// Errors: NoSuchEntity, AccessDenied, InvalidInput, MalformedPolicyDocument,
// LimitExceeded, UnmodifiableEntity and any other 4xx are Permanent;
// Throttling, ServiceFailure, EntityTemporarilyUnmodifiable,
// ConcurrentModification, 5xx, network errors and timeouts are retryable.
package awsiam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response"
)

// Config configures one AWS account's IAM.
type Config struct {
	Name string `yaml:"name"` // provider name, default "aws_iam"
	// Account is the 12-digit account the credentials act in. Targets of
	// other accounts are not applicable: IAM names are unique only within
	// an account, so a role of the same name elsewhere must not be touched.
	Account string `yaml:"account"`
	Region  string `yaml:"region"` // signing region, default us-east-1 (IAM is global)
	// Endpoint replaces the IAM endpoint (a test server, a VPC endpoint).
	Endpoint string `yaml:"endpoint"`
	// AccessKeyID and SecretAccessKey are static credentials; without them
	// the SDK's default chain is used (environment, shared files, web
	// identity, container and instance roles).
	AccessKeyID     string        `yaml:"access_key_id"`
	SecretAccessKey secure.Secret `yaml:"secret_access_key"`
	Timeout         time.Duration `yaml:"timeout"` // per call, default 10s
}

const (
	defaultName    = "aws_iam"
	defaultRegion  = "us-east-1"
	defaultTimeout = 10 * time.Second

	// revokePolicyName is the inline policy the AWS console's "Revoke active
	// sessions" writes; using the same name means one revocation, whoever
	// made it, and an operator recognises it.
	revokePolicyName = "AWSRevokeOlderSessions"
)

var (
	accountRe   = regexp.MustCompile(`^[0-9]{12}$`)
	accessKeyRe = regexp.MustCompile(`^AKIA[A-Z0-9]{12,124}$`)
)

// Validate lists every problem, each prefixed with field (a YAML path).
func (c Config) Validate(field string) []error {
	var errs []error
	if !accountRe.MatchString(c.Account) {
		errs = append(errs, fmt.Errorf("%s.account: %q, want the 12-digit AWS account id", field, c.Account))
	}
	if strings.ContainsFunc(c.Region, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }) {
		errs = append(errs, fmt.Errorf("%s.region: %q is not a region name", field, c.Region))
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.endpoint: want an absolute http or https URL", field))
		}
	}
	switch {
	case c.AccessKeyID == "" && !c.SecretAccessKey.IsZero():
		errs = append(errs, fmt.Errorf("%s.access_key_id: required with secret_access_key", field))
	case c.AccessKeyID != "":
		errs = append(errs, c.SecretAccessKey.Validate(field+".secret_access_key", true)...)
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: %s is negative", field, c.Timeout))
	}
	return errs
}

type provider struct {
	name    string
	account string
	iam     *iam.Client
}

// New checks c and returns the provider. It reads the secret and the SDK's
// shared configuration but calls nothing.
func New(c Config) (response.Provider, error) {
	c.Name = cmp.Or(c.Name, defaultName)
	if errs := c.Validate(c.Name); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cmp.Or(c.Region, defaultRegion)),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(cmp.Or(c.Timeout, defaultTimeout))),
		// The executor owns retries, budgets and backoff.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if c.AccessKeyID != "" {
		secret, err := c.SecretAccessKey.Value()
		if err != nil {
			return nil, fmt.Errorf("%s: secret_access_key: %w", c.Name, err)
		}
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, secret, "")))
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: aws configuration: %w", c.Name, err)
	}
	client := iam.NewFromConfig(cfg, func(o *iam.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	return &provider{name: c.Name, account: c.Account, iam: client}, nil
}

func (p *provider) Name() string { return p.name }

// plan is what an action on a target comes to.
type plan struct {
	user, accessKey string // disable an access key
	role            string // revoke the role's sessions
}

func (p *provider) Check(action response.Action, target response.Target) error {
	_, err := p.plan(action, target)
	return err
}

func (p *provider) plan(action response.Action, t response.Target) (plan, error) {
	kind, account, name := principal(t)
	notApplicable := func(why string) (plan, error) {
		return plan{}, fmt.Errorf("%s: %s on %s: %s: %w", p.name, action, t.Identity.ID, why, response.ErrNotApplicable)
	}
	switch {
	case kind == "":
		return notApplicable("not an IAM user or role")
	case account != p.account:
		return notApplicable("account " + account + " is not this provider's " + p.account)
	}
	switch action {
	case response.ActionDisable:
		if kind != "user" {
			return notApplicable("only an IAM user's access key can be disabled")
		}
		if !accessKeyRe.MatchString(t.Credential) {
			return notApplicable("no access key id (AKIA…) in the evidence")
		}
		return plan{user: name, accessKey: t.Credential}, nil
	case response.ActionIsolate, response.ActionRevoke:
		if kind != "role" {
			return notApplicable("only a role's sessions can be revoked")
		}
		return plan{role: name}, nil
	}
	return notApplicable("unsupported action")
}

// principal reads the canonical id aws:user/<account>/<name> or
// aws:role/<account>/<name>, else the target's Account and Name with the
// identity's kind; kind is "" when neither locates an IAM user or role.
func principal(t response.Target) (kind, account, name string) {
	for _, k := range []string{"user", "role"} {
		if rest, ok := strings.CutPrefix(t.Identity.ID, "aws:"+k+"/"); ok {
			if account, name, ok := strings.Cut(rest, "/"); ok && account != "" && name != "" && !strings.Contains(name, "/") {
				return k, account, name
			}
			return "", "", ""
		}
	}
	if k := string(t.Identity.Kind); (k == "user" || k == "role") && t.Account != "" && t.Name != "" {
		return k, t.Account, t.Name
	}
	return "", "", ""
}

func (p *provider) Do(ctx context.Context, req response.Request) (response.Result, error) {
	pl, err := p.plan(req.Action, req.Target)
	if err != nil {
		return response.Result{}, err
	}
	if pl.role != "" {
		return p.revokeSessions(ctx, pl.role, req.At)
	}
	return p.disableKey(ctx, pl.user, pl.accessKey)
}

func (p *provider) Undo(ctx context.Context, req response.Request, done response.Result) (response.Result, error) {
	u := done.Undo
	switch {
	case u["access_key_id"] != "" && u["user"] != "":
		return p.enableKey(ctx, u)
	case u["role"] != "":
		return p.restoreSessions(ctx, u)
	}
	return response.Result{}, response.Permanent{Err: fmt.Errorf("%s: undo %s on %s: the result holds no undo state", p.name, req.Action, req.Target.Identity.ID)}
}

func (p *provider) disableKey(ctx context.Context, user, key string) (response.Result, error) {
	out, err := p.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		return response.Result{}, p.classify(err, "ListAccessKeys user %s", user)
	}
	var before types.StatusType
	for _, k := range out.AccessKeyMetadata {
		if aws.ToString(k.AccessKeyId) == key {
			before = k.Status
		}
	}
	if before == "" {
		return response.Result{}, response.Permanent{Err: fmt.Errorf("%s: access key %s is not a key of user %s", p.name, key, user)}
	}
	undo := map[string]string{"user": user, "access_key_id": key, "previous_status": string(before)}
	if before == types.StatusTypeInactive {
		return response.Result{Detail: fmt.Sprintf("access key %s of user %s was already Inactive", key, user), Undo: undo}, nil
	}
	if err := p.setKeyStatus(ctx, user, key, types.StatusTypeInactive); err != nil {
		return response.Result{}, err
	}
	return response.Result{Detail: fmt.Sprintf("access key %s of user %s set Inactive (was %s)", key, user, before), Undo: undo}, nil
}

func (p *provider) enableKey(ctx context.Context, u map[string]string) (response.Result, error) {
	user, key := u["user"], u["access_key_id"]
	if u["previous_status"] == string(types.StatusTypeInactive) {
		// Someone else had disabled it; undoing nhisentry must not enable it.
		return response.Result{Detail: fmt.Sprintf("access key %s of user %s left Inactive: it was Inactive before", key, user)}, nil
	}
	if err := p.setKeyStatus(ctx, user, key, types.StatusTypeActive); err != nil {
		return response.Result{}, err
	}
	return response.Result{Detail: fmt.Sprintf("access key %s of user %s set Active", key, user)}, nil
}

func (p *provider) setKeyStatus(ctx context.Context, user, key string, status types.StatusType) error {
	_, err := p.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(key), Status: status})
	if err != nil {
		return p.classify(err, "UpdateAccessKey %s of user %s to %s", key, user, status)
	}
	return nil
}

func (p *provider) revokeSessions(ctx context.Context, role string, at time.Time) (response.Result, error) {
	if at.IsZero() {
		return response.Result{}, response.Permanent{Err: fmt.Errorf("%s: revoke sessions of role %s: the request has no time to cut sessions at", p.name, role)}
	}
	doc := revokeDocument(at)
	cur, found, err := p.rolePolicy(ctx, role)
	if err != nil {
		return response.Result{}, err
	}
	undo := map[string]string{"role": role, "policy_document": doc}
	if found {
		if t, ok := revokeTime(cur); ok && !t.Before(at.UTC().Truncate(time.Second)) {
			if !t.Equal(at.UTC().Truncate(time.Second)) {
				// A later revocation (the console's, another finding's) cuts
				// more sessions than this one would: leave it.
				return response.Result{Detail: fmt.Sprintf("role %s: %s already denies sessions issued before %s", role, revokePolicyName, t.Format(time.RFC3339)),
					Undo: map[string]string{"role": role, "unchanged": "true"}}, nil
			}
			// This request's own policy, from an attempt whose reply was lost.
			return response.Result{Detail: fmt.Sprintf("role %s: sessions issued before %s denied (%s already in place)", role, t.Format(time.RFC3339), revokePolicyName), Undo: undo}, nil
		}
		undo["previous_policy_document"] = cur
	}
	if _, err := p.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(revokePolicyName), PolicyDocument: aws.String(doc)}); err != nil {
		return response.Result{}, p.classify(err, "PutRolePolicy %s on role %s", revokePolicyName, role)
	}
	detail := fmt.Sprintf("role %s: sessions issued before %s denied (inline policy %s)", role, at.UTC().Format(time.RFC3339), revokePolicyName)
	if found {
		detail += ", replacing an earlier one"
	}
	return response.Result{Detail: detail, Undo: undo}, nil
}

func (p *provider) restoreSessions(ctx context.Context, u map[string]string) (response.Result, error) {
	role := u["role"]
	if u["unchanged"] == "true" {
		return response.Result{Detail: fmt.Sprintf("role %s: nothing to undo, the policy in place was not nhisentry's", role)}, nil
	}
	cur, found, err := p.rolePolicy(ctx, role)
	if err != nil {
		return response.Result{}, err
	}
	if !found {
		return response.Result{Detail: fmt.Sprintf("role %s: %s already removed", role, revokePolicyName)}, nil
	}
	if !sameJSON(cur, u["policy_document"]) {
		return response.Result{}, response.Permanent{Err: fmt.Errorf("%s: undo on role %s: %s was changed since nhisentry wrote it; left in place", p.name, role, revokePolicyName)}
	}
	if prev := u["previous_policy_document"]; prev != "" {
		if _, err := p.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(revokePolicyName), PolicyDocument: aws.String(prev)}); err != nil {
			return response.Result{}, p.classify(err, "PutRolePolicy %s on role %s (restoring the earlier one)", revokePolicyName, role)
		}
		return response.Result{Detail: fmt.Sprintf("role %s: earlier %s restored", role, revokePolicyName)}, nil
	}
	_, err = p.iam.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(revokePolicyName)})
	if err != nil && !isCode(err, "NoSuchEntity") {
		return response.Result{}, p.classify(err, "DeleteRolePolicy %s on role %s", revokePolicyName, role)
	}
	return response.Result{Detail: fmt.Sprintf("role %s: %s removed, sessions allowed again", role, revokePolicyName)}, nil
}

// rolePolicy reads the role's revocation policy, decoded; found is false
// when there is none. IAM answers NoSuchEntity both for a missing policy
// and a missing role; for a missing role PutRolePolicy then fails as it
// should, and an undo has nothing left to undo.
func (p *provider) rolePolicy(ctx context.Context, role string) (doc string, found bool, err error) {
	out, err := p.iam.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(revokePolicyName)})
	if isCode(err, "NoSuchEntity") {
		return "", false, nil
	}
	if err != nil {
		return "", false, p.classify(err, "GetRolePolicy %s on role %s", revokePolicyName, role)
	}
	doc, err = decodePolicy(aws.ToString(out.PolicyDocument))
	if err != nil {
		return "", false, fmt.Errorf("%s: GetRolePolicy %s on role %s: %w", p.name, revokePolicyName, role, err)
	}
	return doc, true, nil
}

// decodePolicy undoes the URL encoding (RFC 3986) IAM returns policy
// documents in; a document already in JSON is returned as it is.
func decodePolicy(s string) (string, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		return s, nil
	}
	d, err := url.PathUnescape(s)
	if err != nil {
		return "", fmt.Errorf("policy document: %w", err)
	}
	return d, nil
}

// retryableCodes are IAM error codes that a later attempt can get past,
// whatever their HTTP status (IAM throttles with 400).
var retryableCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
	"ServiceFailure": true, "ServiceUnavailable": true, "InternalFailure": true,
	"EntityTemporarilyUnmodifiable": true, "ConcurrentModification": true,
}

// classify wraps an SDK error with what was being done, and marks it
// Permanent when repeating the call cannot help: a 4xx that is not
// throttling. Network errors, timeouts and missing credentials stay
// retryable.
func (p *provider) classify(err error, format string, args ...any) error {
	err = fmt.Errorf("%s: %s: %w", p.name, fmt.Sprintf(format, args...), err)
	var ae smithy.APIError
	if errors.As(err, &ae) && retryableCodes[ae.ErrorCode()] {
		return err
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		if s := re.HTTPStatusCode(); s >= 400 && s < 500 && s != 408 && s != 429 {
			return response.Permanent{Err: err}
		}
	}
	return err
}

func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

package objstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Class says what an error means for the run.
type Class int

const (
	// Final: this object cannot be stored (a 4xx about the object or the
	// request: a key too long, an object too large). Its line fails; the
	// run goes on.
	Final Class = iota + 1
	// Retryable: the server or the network failed for now (503 SlowDown,
	// 5xx, 408, 429, timeouts, connection errors, a digest the server saw
	// differ from the one sent, an upload that vanished). Try the same call
	// again after a backoff.
	Retryable
	// Fatal: nothing can be stored (missing bucket, bad or expired
	// credentials, access denied, wrong region, a clock far off). Stop the
	// run.
	Fatal
)

func (c Class) String() string {
	switch c {
	case Final:
		return "final"
	case Retryable:
		return "retryable"
	case Fatal:
		return "fatal"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Error is an S3 failure with its class. Its text never contains the
// credentials the Store uses.
type Error struct {
	Class  Class
	Op     string // "open", "stat", "put"
	URL    string // s3://BUCKET/KEY (or the destination, for open)
	Status int    // the HTTP status, 0 when no answer came
	Code   string // the S3 error code ("NoSuchBucket", "SlowDown"), if any
	msg    string
	err    error
	hide   []string
}

func (e *Error) Error() string {
	s := e.Op
	if e.URL != "" {
		s += " " + e.URL
	}
	s += ": " + e.msg
	for _, h := range e.hide {
		s = strings.ReplaceAll(s, h, "[REDACTED]")
	}
	return s
}

// Unwrap returns the SDK's error.
func (e *Error) Unwrap() error { return e.err }

// ClassOf returns the class of err, and false when err is no *Error (nil,
// or a cancelled context).
func ClassOf(err error) (Class, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Class, true
	}
	return 0, false
}

// IsFatal reports whether err means that nothing can be stored.
func IsFatal(err error) bool { c, _ := ClassOf(err); return c == Fatal }

// IsRetryable reports whether the call that returned err may succeed later.
func IsRetryable(err error) bool { c, _ := ClassOf(err); return c == Retryable }

func (s *Store) fatal(op, u, msg string) error {
	return &Error{Class: Fatal, Op: op, URL: u, msg: msg, hide: s.secrets}
}

// wrap classifies an SDK error. A cancelled or expired context is returned
// as such (wrapped), since it is the caller's own doing.
func (s *Store) wrap(op, u string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, u, contextErr(err))
	}
	e := &Error{Op: op, URL: u, err: err, hide: s.secrets}
	e.Status = status(err)
	var api smithy.APIError
	if errors.As(err, &api) {
		e.Code = api.ErrorCode()
	}
	e.Class = classify(e.Status, e.Code)
	switch {
	case e.Status == 0:
		// No answer: show the transport's reason without the SDK's
		// "operation error S3: PutObject, https response error" framing.
		var ue *url.Error
		var oe *smithy.OperationError
		switch {
		case errors.As(err, &ue):
			e.msg = ue.Err.Error()
		case errors.As(err, &oe):
			e.msg = oe.Err.Error()
		default:
			e.msg = err.Error()
		}
	default:
		e.msg = fmt.Sprintf("%d", e.Status)
		if e.Code != "" {
			e.msg += " " + e.Code
		}
		if api != nil && api.ErrorMessage() != "" {
			e.msg += " (" + strings.TrimRight(strings.TrimSpace(api.ErrorMessage()), ".") + ")"
		}
	}
	if a := s.advice(op, e); a != "" {
		e.msg += ": " + a
	}
	return e
}

func contextErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return context.Canceled
	}
	return context.DeadlineExceeded
}

// fatalCodes are the S3 error codes after which no object can be stored.
var fatalCodes = map[string]bool{
	"AccessDenied": true, "AllAccessDisabled": true, "AccountProblem": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "InvalidToken": true,
	"ExpiredToken": true, "TokenRefreshRequired": true, "InvalidSecurity": true,
	"MissingSecurityHeader": true, "NotSignedUp": true, "RequestTimeTooSkewed": true,
	"NoSuchBucket": true, "InvalidBucketName": true, "PermanentRedirect": true,
	"AuthorizationHeaderMalformed": true, "IllegalLocationConstraintException": true,
}

// retryableCodes are 4xx codes that a later attempt can get past.
var retryableCodes = map[string]bool{
	"SlowDown": true, "RequestTimeout": true, "OperationAborted": true,
	// The server computed another MD5 than the one sent: the bytes
	// changed on the way; sending them again fixes that.
	"BadDigest": true, "XAmzContentSHA256Mismatch": true,
	// The multipart upload is gone (aborted elsewhere, or expired): the
	// next Put starts a new one.
	"NoSuchUpload":   true,
	"IncompleteBody": true,
}

func classify(status int, code string) Class {
	switch {
	case fatalCodes[code], status == 401, status == 403, status == 301, status == 307:
		return Fatal
	case status == 0, status >= 500, status == 408, status == 429, retryableCodes[code]:
		return Retryable
	default:
		return Final
	}
}

// advice says what to do about an error, when there is something to say.
func (s *Store) advice(op string, e *Error) string {
	switch {
	case e.Code == "NoSuchBucket" || (op == "open" && e.Status == 404):
		return fmt.Sprintf("bucket %q does not exist at %s: create it, or check the bucket name and the endpoint", s.bucket, s.endpoint)
	case e.Code == "InvalidAccessKeyId":
		return fmt.Sprintf("%s does not know this access key: check AWS_ACCESS_KEY_ID (or the profile in ~/.aws/credentials) and the endpoint", s.endpoint)
	case e.Code == "SignatureDoesNotMatch":
		return "the secret key does not fit the access key: check AWS_SECRET_ACCESS_KEY (or the profile in ~/.aws/credentials)"
	case e.Code == "ExpiredToken" || e.Code == "InvalidToken" || e.Code == "TokenRefreshRequired":
		return "the session credentials have expired or are invalid: renew them (AWS_SESSION_TOKEN, aws sso login)"
	case e.Code == "RequestTimeTooSkewed":
		return "this machine's clock is too far from the server's: set the clock"
	case e.Status == 301 || e.Status == 307 || e.Code == "PermanentRedirect" || e.Code == "AuthorizationHeaderMalformed":
		return fmt.Sprintf("bucket %q is in another region or at another endpoint: set AWS_REGION to its region", s.bucket)
	case e.Status == 401 || e.Status == 403:
		return "access denied: the credentials need s3:ListBucket, s3:GetObject, s3:PutObject, s3:ListBucketMultipartUploads, s3:ListMultipartUploadParts and s3:AbortMultipartUpload on this bucket"
	}
	return ""
}

// status returns the HTTP status of an SDK error, 0 when no answer came.
func status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// bucketRegion returns the region named by a wrong-region answer's
// x-amz-bucket-region header, "" when err is not such an answer.
func bucketRegion(err error) string {
	var re *smithyhttp.ResponseError
	if err == nil || !errors.As(err, &re) || re.Response == nil {
		return ""
	}
	if c := re.HTTPStatusCode(); c != 301 && c != 400 {
		return ""
	}
	return re.Response.Header.Get("X-Amz-Bucket-Region")
}

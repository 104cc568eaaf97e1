// Package objstore stores finished files as objects in an S3 bucket (AWS S3
// or an S3-compatible server), with the same promise ckfetch makes on disk:
// an object is visible under its name only once it is whole, and only after
// the server has verified the bytes it received.
//
// A Store is opened on a destination "s3://BUCKET/PREFIX" and writes the file
// NAME as the object PREFIX/NAME. Put sends a file below the multipart
// threshold as one PUT with Content-MD5, which the server checks before it
// stores the object; a larger file goes up as a multipart upload whose parts
// are read from the file as they are sent (memory does not grow with the
// file), each part with its own Content-MD5, and the object appears only
// when CompleteMultipartUpload answers. A multipart upload left open by a
// crash is found on the next Put of its name (ListMultipartUploads), resumed
// where its parts still match the file, and the others for that name are
// aborted; AbortOpenUploads aborts the uploads this process still has open,
// for a clean shutdown. Stat is one HEAD.
//
// Errors carry a Class: Fatal (nothing can be stored: bucket, credentials,
// region), Retryable (503 SlowDown, 5xx, timeouts, connection errors) or
// Final (this object cannot be stored: any other 4xx). The package retries
// nothing itself (the SDK's retryer is off): the caller's backoff decides,
// and a retried Put of a multipart file resumes its upload, so a retry only
// resends the parts that did not arrive. No error text contains the
// credentials.
package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
)

// Defaults of Options.
const (
	DefaultMultipartThreshold = 64 << 20
	DefaultPartSize           = 16 << 20
	// MinPartSize is S3's smallest part (except the last one).
	MinPartSize = 5 << 20
	// maxParts is S3's largest part number.
	maxParts = 10000
	// ownerMeta is the user metadata key (x-amz-meta-ck-url) that records
	// the URL a file was downloaded from.
	ownerMeta = "ck-url"
	// maxOwner is the longest owner recorded as it is; a longer one is
	// recorded as its digest (S3 allows 2 KiB of user metadata in all).
	maxOwner = 1024
)

// Options say where the bucket is and how files are sent. The zero value
// takes everything from the environment and the AWS configuration files.
type Options struct {
	// Endpoint is the URL of an S3-compatible server
	// ("http://127.0.0.1:8333"). Empty: AWS_ENDPOINT_URL_S3,
	// AWS_ENDPOINT_URL or endpoint_url in the profile, else AWS S3 itself.
	Endpoint string
	// Region is the bucket's region. Empty: AWS_REGION, AWS_DEFAULT_REGION
	// or region in the profile; else us-east-1, and on AWS the bucket's own
	// region as the first answer names it.
	Region string
	// Profile is the profile of ~/.aws/config and ~/.aws/credentials.
	// Empty: AWS_PROFILE, else "default".
	Profile string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY. It is on anyway when the endpoint's host is an
	// IP address, localhost or a name without a dot, where virtual hosts
	// cannot work.
	PathStyle bool
	// MultipartThreshold is the size from which a file goes up as a
	// multipart upload (default DefaultMultipartThreshold).
	MultipartThreshold int64
	// PartSize is the size of each part but the last (default
	// DefaultPartSize, at least MinPartSize; larger when the file would
	// need more than 10,000 parts).
	PartSize int64
}

// Store is an open bucket and prefix. Its methods may be called from many
// goroutines, but not for the same name at once.
type Store struct {
	client    *s3.Client
	bucket    string
	prefix    string // "" or ending in "/"
	endpoint  string // for messages: "AWS S3" or the endpoint URL
	threshold int64
	partSize  int64
	secrets   []string // credential strings no message may contain

	mu        sync.Mutex
	open      map[string]openUpload // upload ID -> the uploads this process has open
	leftovers map[string][]leftover // key -> uploads open when the Store was opened
}

// ParseURL splits "s3://BUCKET/PREFIX" into the bucket and the prefix
// (without leading or trailing slashes; it may be empty).
func ParseURL(dest string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(dest, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not an s3:// URL (want s3://BUCKET/PREFIX)", dest)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%q names no bucket (want s3://BUCKET/PREFIX)", dest)
	}
	prefix = strings.Trim(prefix, "/")
	return bucket, prefix, nil
}

// Open connects to the bucket of dest ("s3://BUCKET/PREFIX") and checks at
// once that it exists and that the credentials may list it (one
// ListObjectsV2 of at most one key under PREFIX), so that a wrong bucket,
// region or key stops a run before it downloads anything. Every error it
// returns is Fatal and says what to do.
func Open(ctx context.Context, dest string, o Options) (*Store, error) {
	bucket, prefix, err := ParseURL(dest)
	if err != nil {
		return nil, &Error{Class: Fatal, Op: "open", msg: err.Error()}
	}
	if o.Endpoint != "" {
		if err := checkEndpoint(o.Endpoint); err != nil {
			return nil, &Error{Class: Fatal, Op: "open", URL: dest, msg: err.Error()}
		}
	}
	s := &Store{
		bucket:    bucket,
		threshold: o.MultipartThreshold,
		partSize:  o.PartSize,
		open:      map[string]openUpload{},
	}
	if prefix != "" {
		s.prefix = prefix + "/"
	}
	if s.threshold <= 0 {
		s.threshold = DefaultMultipartThreshold
	}
	if s.partSize <= 0 {
		s.partSize = DefaultPartSize
	}
	if s.partSize < MinPartSize {
		return nil, &Error{Class: Fatal, Op: "open", URL: dest,
			msg: fmt.Sprintf("part size %d is below S3's minimum of %d bytes", s.partSize, MinPartSize)}
	}
	s.secrets = envSecrets()

	load := []func(*config.LoadOptions) error{
		// Only what the caller gives is checked: Content-MD5. The SDK's
		// own CRC32 trailer (aws-chunked bodies) is not sent, since many
		// S3-compatible servers refuse it.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithLogger(logging.Nop{}),
	}
	if o.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, s.fatal("open", dest, fmt.Sprintf("read the AWS configuration: %v (check AWS_PROFILE, ~/.aws/config and ~/.aws/credentials)", err))
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, s.fatal("open", dest, fmt.Sprintf("no S3 credentials found (%v): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (AWS_PROFILE)", err))
	}
	s.secrets = appendSecrets(s.secrets, creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)

	guessRegion := cfg.Region == ""
	if guessRegion {
		cfg.Region = "us-east-1"
	}
	var endpointErr error
	s.client = s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		s.endpoint = "AWS S3"
		if so.BaseEndpoint != nil {
			s.endpoint = *so.BaseEndpoint
			endpointErr = checkEndpoint(s.endpoint)
			so.UsePathStyle = o.PathStyle || needsPathStyle(s.endpoint)
		}
		so.Retryer = aws.NopRetryer{}
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	if endpointErr != nil {
		return nil, s.fatal("open", dest, endpointErr.Error())
	}
	err = s.checkBucket(ctx)
	if region := bucketRegion(err); region != "" && guessRegion && region != cfg.Region {
		// AWS answers a request sent to the wrong region with a redirect
		// that names the bucket's region: ask again there.
		s.client = s3.New(s.client.Options(), func(so *s3.Options) { so.Region = region })
		err = s.checkBucket(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := s.listLeftovers(ctx); err != nil {
		e := s.wrap("open", "s3://"+s.bucket+"/"+s.prefix, err)
		if oe, ok := e.(*Error); ok {
			oe.Class = Fatal
			oe.msg = "list the open multipart uploads: " + oe.msg
		}
		return nil, e
	}
	return s, nil
}

// checkBucket lists at most one key under the prefix.
func (s *Store) checkBucket(ctx context.Context) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(s.prefix),
		MaxKeys: aws.Int32(1),
	})
	if err == nil {
		return nil
	}
	e := s.wrap("open", "s3://"+s.bucket+"/"+s.prefix, err)
	var oe *Error
	if errors.As(e, &oe) && oe.Class != Fatal {
		// At the start, anything that keeps the bucket from answering
		// (an unreachable endpoint, a 5xx) stops the run too.
		oe.Class = Fatal
		if oe.Status == 0 {
			oe.msg += fmt.Sprintf(" (is %s the right endpoint, and is it up?)", s.endpoint)
		}
	}
	return e
}

// Bucket returns the bucket's name.
func (s *Store) Bucket() string { return s.bucket }

// Key returns the object key of the file name: PREFIX/NAME.
func (s *Store) Key(name string) string { return s.prefix + name }

// URL returns "s3://BUCKET/PREFIX/NAME", for messages and reports.
func (s *Store) URL(name string) string { return "s3://" + s.bucket + "/" + s.Key(name) }

// Stat reports whether the object of name exists (one HEAD) and the owner
// recorded by the Put that stored it (Owner of the URL it was given), ""
// when it has none. When the object exists, the multipart uploads of its
// name that were open when the Store was opened (left by a run that was
// storing it again, with --force, when it was killed) are aborted: no Put
// of that name will come to resume them.
func (s *Store) Stat(ctx context.Context, name string) (found bool, owner string, err error) {
	key := s.Key(name)
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if status(err) == 404 {
			return false, "", nil
		}
		return false, "", s.wrap("stat", s.URL(name), err)
	}
	s.mu.Lock()
	old := s.leftovers[key]
	delete(s.leftovers, key)
	s.mu.Unlock()
	for _, l := range old {
		if err := s.abort(ctx, key, l.id); err != nil {
			return false, "", err
		}
	}
	return true, decodeOwner(out.Metadata[ownerMeta]), nil
}

// Owner returns what Put records, and Stat returns, for the owner u: u
// itself, or "sha256:HEX" of it when u is longer than 1 KiB once escaped.
func Owner(u string) string {
	if len(encodeOwner(u)) > maxOwner {
		return digestOwner(u)
	}
	return u
}

// encodeOwner escapes what S3 user metadata cannot hold (it must be
// printable US-ASCII): every byte outside '!'..'~', and '%' itself, as %XX.
func encodeOwner(u string) string {
	var b strings.Builder
	for i := 0; i < len(u); i++ {
		c := u[i]
		if c <= ' ' || c > '~' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func digestOwner(u string) string {
	sum := sha256.Sum256([]byte(u))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func decodeOwner(v string) string {
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}

// checkEndpoint refuses an endpoint that is not an http(s) URL with a host.
func checkEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("S3 endpoint %q is not an http:// or https:// URL", e)
	}
	return nil
}

// needsPathStyle reports whether the endpoint's host cannot carry the bucket
// as a subdomain: an IP address, localhost, or a name without a dot.
func needsPathStyle(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return true
	}
	h := u.Hostname()
	return net.ParseIP(h) != nil || h == "localhost" || !strings.Contains(h, ".")
}

// envSecrets returns the credentials given in the environment, so that they
// are kept out of messages even before the SDK has read them.
func envSecrets() []string {
	return appendSecrets(nil, os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN"))
}

func appendSecrets(list []string, vs ...string) []string {
	for _, v := range vs {
		// A string this short would blank ordinary words of a message,
		// and is no secret anyway.
		if len(v) >= 8 {
			list = append(list, v)
		}
	}
	return list
}

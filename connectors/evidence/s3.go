package evidence

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// DefaultS3Endpoint is AWS S3's global endpoint.
const DefaultS3Endpoint = "s3.amazonaws.com"

// S3Config says where and how to reach an S3-compatible bucket.
type S3Config struct {
	// Endpoint is host[:port] (or a http:// or https:// URL); empty means
	// DefaultS3Endpoint.
	Endpoint string
	// Region is the bucket's region; empty lets the client ask the endpoint.
	Region string
	Bucket string
	// Prefix is prepended to every key, e.g. "soar/".
	Prefix string
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials.
	// When AccessKeyID is empty, credentials come from the environment
	// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, then
	// MINIO_ACCESS_KEY/MINIO_SECRET_KEY), then ~/.aws/credentials, then the
	// IAM chain: a web identity token (IRSA), the container credentials
	// endpoint (ECS, EKS Pod Identity), the EC2 instance role.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Insecure reaches the endpoint over plain HTTP.
	Insecure bool
	// PathStyle addresses the bucket as endpoint/bucket instead of
	// bucket.endpoint (MinIO and most self-hosted stores need it).
	PathStyle bool
	// Retention, when positive, locks every object for that long from its
	// upload (S3 Object Lock: the bucket must have it enabled, or the
	// upload is refused); nobody can delete or overwrite it meanwhile.
	// RetentionMode is COMPLIANCE (the default: not even the account's
	// root can shorten it) or GOVERNANCE (users with
	// s3:BypassGovernanceRetention can).
	Retention     time.Duration
	RetentionMode string
}

// S3 stores evidence as objects in an S3-compatible bucket. An object PUT is
// atomic, and each carries its Content-MD5 so that buckets with Object Lock
// (write-once retention, the natural home of evidence) accept it.
type S3 struct {
	client    *minio.Client
	bucket    string
	prefix    string
	retention time.Duration
	mode      minio.RetentionMode
}

// NewS3 returns an S3 store for cfg. It does not contact the endpoint; the
// first Put or Get does. Errors wrap ErrPermanent (an invalid configuration).
func NewS3(cfg S3Config) (*S3, error) {
	if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("%w: evidence: S3 bucket %q: %w", ErrPermanent, cfg.Bucket, err)
	}
	mode := minio.RetentionMode(strings.ToUpper(cmp.Or(cfg.RetentionMode, string(minio.Compliance))))
	if cfg.Retention < 0 || (cfg.Retention > 0 && !mode.IsValid()) {
		return nil, fmt.Errorf("%w: evidence: S3 retention %s %q: want a positive duration and COMPLIANCE or GOVERNANCE", ErrPermanent, cfg.Retention, cfg.RetentionMode)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("evidence: S3 prefix: %w", err)
		}
		prefix += "/"
	}
	endpoint, secure := cfg.Endpoint, !cfg.Insecure
	if endpoint == "" {
		endpoint = DefaultS3Endpoint
	}
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || strings.Trim(u.Path, "/") != "" {
			return nil, fmt.Errorf("%w: evidence: S3 endpoint %q is not host[:port] or http(s)://host[:port]", ErrPermanent, cfg.Endpoint)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	creds := credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)
	if cfg.AccessKeyID == "" {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.EnvMinio{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		// The activity calling the store is retried as a whole; a few quick
		// retries here ride out a dropped connection.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: evidence: S3 client for %s: %w", ErrPermanent, endpoint, err)
	}
	s := &S3{client: client, bucket: cfg.Bucket, prefix: prefix, retention: cfg.Retention}
	if cfg.Retention > 0 {
		s.mode = mode
	}
	return s, nil
}

// Put uploads data as the object prefix+key. Errors wrap ErrInvalidKey,
// ErrPermanent (no such bucket, access denied, invalid credentials), or are
// transient.
func (s *S3) Put(ctx context.Context, key string, data []byte, contentType string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	opts := minio.PutObjectOptions{
		ContentType:    contentType,
		SendContentMd5: true,
		// The signed Content-MD5 already protects the body. Without this,
		// over plain HTTP minio-go signs the body in chunks and sends an empty
		// one without a Content-Length, which S3 refuses.
		DisableContentSha256: true,
	}
	// If-None-Match: * — evidence is written once; S3 refuses to replace an
	// object that exists (412).
	opts.SetMatchETagExcept("*")
	if s.retention > 0 {
		// Object Lock: the object cannot be deleted or overwritten until
		// then, whoever holds the bucket's credentials.
		opts.Mode, opts.RetainUntilDate = s.mode, time.Now().Add(s.retention).UTC()
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, bytes.NewReader(data), int64(len(data)), opts)
	if resp := minio.ToErrorResponse(err); err != nil && (resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed") {
		return fmt.Errorf("%w: %s", ErrExists, s.Location(key))
	}
	if err != nil {
		return s.error("store", key, err)
	}
	return nil
}

// Get downloads the object prefix+key. Errors wrap ErrNotFound,
// ErrInvalidKey, ErrPermanent, or are transient.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.error("read", key, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		return nil, s.error("read", key, err)
	}
	return data, nil
}

// List returns the keys of the objects under dir, in S3's order (sorted).
func (s *S3) List(ctx context.Context, dir string, limit int) ([]string, bool, error) {
	if err := ValidateKey(dir); err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when we stop reading early
	var keys []string
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + dir + "/", Recursive: true}) {
		if obj.Err != nil {
			return nil, false, s.error("list", dir, obj.Err)
		}
		if len(keys) == limit {
			return keys, true, nil
		}
		keys = append(keys, strings.TrimPrefix(obj.Key, s.prefix))
	}
	return keys, false, nil
}

// Location returns s3://<bucket>/<prefix><key>.
func (s *S3) Location(key string) string {
	return "s3://" + s.bucket + "/" + s.prefix + key
}

// permanentS3Codes are S3 error codes that the same request will get again.
var permanentS3Codes = map[string]bool{
	minio.NoSuchBucket:      true,
	minio.AccessDenied:      true,
	"InvalidAccessKeyId":    true,
	"SignatureDoesNotMatch": true,
	"InvalidBucketName":     true,
	"AllAccessDisabled":     true,
	"AccountProblem":        true,
	"InvalidObjectState":    true,
}

func (s *S3) error(what, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchKey:
		return fmt.Errorf("%w: %s", ErrNotFound, s.Location(key))
	case permanentS3Codes[resp.Code], resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: evidence: %s %s: %w", ErrPermanent, what, s.Location(key), err)
	}
	return fmt.Errorf("evidence: %s %s: %w", what, s.Location(key), err)
}

package fileserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// S3Config names an S3-compatible bucket.
type S3Config struct {
	// Endpoint is the service's base URL, e.g. https://s3.eu-west-1.amazonaws.com
	// or http://minio:9000. Buckets are addressed path-style
	// (Endpoint/bucket/key), which every S3-compatible server accepts.
	Endpoint string
	Bucket   string
	// Prefix is prepended to every key ("clearml/" keeps the files in a
	// folder of a shared bucket).
	Prefix    string
	Region    string // us-east-1 when empty
	AccessKey string
	SecretKey string
	// TempDir spools uploads before they are sent (S3 needs the length
	// and, for the signature, the hash first); the system default when empty.
	TempDir string
	// Client sends the requests; http.DefaultClient when nil.
	Client *http.Client
	// Now is the clock for signatures; time.Now when nil.
	Now func() time.Time
}

// S3 keeps files in an S3-compatible bucket.
type S3 struct {
	cfg  S3Config
	base *url.URL
}

// maxS3Put is S3's limit for one PUT.
const maxS3Put = 5 << 30

// NewS3 checks the configuration; it does not contact the service (Check does).
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" || strings.Contains(cfg.Bucket, "/") {
		return nil, fmt.Errorf("s3 bucket name %q is not valid", cfg.Bucket)
	}
	u, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("s3 endpoint %q is not an http(s) URL", cfg.Endpoint)
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("s3 credentials missing (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if cfg.Prefix != "" {
		cfg.Prefix += "/"
	}
	return &S3{cfg: cfg, base: u}, nil
}

// objectURL is the path-style URL of key, encoded as the signature expects.
func (s *S3) objectURL(key string) *url.URL {
	u := *s.base
	p := "/" + s.cfg.Bucket
	if key != "" {
		p += "/" + s.cfg.Prefix + key
	}
	u.Path = strings.TrimRight(s.base.Path, "/") + p
	u.RawPath = awsEscapePath(u.Path)
	return &u
}

func (s *S3) do(ctx context.Context, method, key string, body io.Reader, size int64, payloadHash string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.objectURL(key).String(), body)
	if err != nil {
		return nil, fmt.Errorf("building s3 request: %w", err)
	}
	req.URL = s.objectURL(key) // keep the exact encoding that is signed
	if body != nil {
		req.ContentLength = size
	}
	signV4(req, s.cfg.AccessKey, s.cfg.SecretKey, s.cfg.Region, "s3", payloadHash, s.cfg.Now())
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", method, err)
	}
	return resp, nil
}

// s3Error reads an error response: the S3 XML error's code and message.
func s3Error(doing string, resp *http.Response) error {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ErrNotExist
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(raw, &e) == nil && e.Code != "" {
		return fmt.Errorf("%s: s3 answered %d %s: %s", doing, resp.StatusCode, e.Code, e.Message)
	}
	return fmt.Errorf("%s: s3 answered %d", doing, resp.StatusCode)
}

// Check makes sure the bucket exists and the credentials are accepted.
func (s *S3) Check(ctx context.Context) error {
	resp, err := s.do(ctx, http.MethodHead, "", nil, 0, emptySHA256)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		if err := s3Error("checking bucket "+s.cfg.Bucket, resp); errors.Is(err, ErrNotExist) {
			return fmt.Errorf("s3 bucket %s does not exist", s.cfg.Bucket)
		} else {
			return err
		}
	}
	resp.Body.Close()
	return nil
}

func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	// Spool to a temporary file while hashing: the PUT needs its length
	// and the signed payload hash before the first byte is sent.
	tmp, err := os.CreateTemp(s.cfg.TempDir, "clearml-upload-*")
	if err != nil {
		return 0, fmt.Errorf("spooling upload: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return n, fmt.Errorf("spooling upload: %w", err)
	}
	if n > maxS3Put {
		return n, fmt.Errorf("file of %d bytes is over the single-upload limit of S3 (5 GiB)", n)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return n, fmt.Errorf("spooling upload: %w", err)
	}
	var body io.Reader = tmp
	if n == 0 {
		body = http.NoBody
	}
	resp, err := s.do(ctx, http.MethodPut, key, body, n, hex.EncodeToString(h.Sum(nil)))
	if err != nil {
		return n, err
	}
	if resp.StatusCode/100 != 2 {
		return n, s3Error("storing "+key, resp)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return n, nil
}

func infoOf(resp *http.Response) Info {
	var info Info
	info.Size, _ = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		info.ModTime = t
	}
	return info
}

func (s *S3) Open(ctx context.Context, key string) (*Object, error) {
	resp, err := s.do(ctx, http.MethodGet, key, nil, 0, emptySHA256)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, s3Error("reading "+key, resp)
	}
	return &Object{Info: infoOf(resp), Body: resp.Body}, nil
}

func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	resp, err := s.do(ctx, http.MethodHead, key, nil, 0, emptySHA256)
	if err != nil {
		return Info{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Info{}, s3Error("reading "+key, resp)
	}
	resp.Body.Close()
	return infoOf(resp), nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	// S3 deletes succeed for missing keys; a HEAD first keeps the file
	// server's 404 for them.
	if _, err := s.Stat(ctx, key); err != nil {
		return err
	}
	resp, err := s.do(ctx, http.MethodDelete, key, nil, 0, emptySHA256)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return s3Error("deleting "+key, resp)
	}
	resp.Body.Close()
	return nil
}

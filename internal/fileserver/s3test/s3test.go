// Package s3test runs an S3-compatible server in process, for tests of the
// file server's S3 back end. The server is gofakes3 (an independent
// implementation of the S3 protocol) behind a gate that checks every
// request's SigV4 signature with the AWS SDK's own signer, and the payload
// hash against the body, so a test passes only if real S3 would accept the
// requests too. It is imported by tests only.
package s3test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/encoding/httpbinding"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Credentials the server accepts.
const (
	AccessKey = "AKIATESTFILESERVER01"
	SecretKey = "test/secret+key/of/the/file/server/0123"
	Region    = "eu-central-1"
)

// Server is a running fake S3.
type Server struct {
	URL string
	// Verified counts requests whose signature checked out; Rejected those
	// refused.
	Verified, Rejected atomic.Int64
}

// Start runs a server with the given buckets until the test ends.
func Start(t testing.TB, buckets ...string) *Server {
	t.Helper()
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			t.Fatalf("creating bucket %s: %v", b, err)
		}
	}
	s := &Server{}
	fake := gofakes3.New(backend).Server()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := verify(r); err != nil {
			s.Rejected.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "<Error><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error>", err)
			return
		}
		s.Verified.Add(1)
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

var authExp = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// verify recomputes the request's signature with the AWS SDK signer.
func verify(r *http.Request) error {
	m := authExp.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return fmt.Errorf("malformed Authorization %q", r.Header.Get("Authorization"))
	}
	if m[1] != AccessKey {
		return fmt.Errorf("unknown access key %s", m[1])
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("bad X-Amz-Date: %v", err)
	}
	if d := time.Since(when); d > 15*time.Minute || d < -15*time.Minute {
		return fmt.Errorf("request time %s too far from now", when)
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if r.Body != nil && r.Method == http.MethodPut {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != payload {
			return fmt.Errorf("payload hash %s does not match the body", payload)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	// The canonical path is the decoded path encoded the AWS way; the
	// client must have sent exactly that.
	canonPath := httpbinding.EscapePath(r.URL.Path, false)
	if sent := strings.SplitN(r.RequestURI, "?", 2)[0]; sent != canonPath {
		return fmt.Errorf("path sent as %s, AWS encoding is %s", sent, canonPath)
	}
	check, _ := http.NewRequest(r.Method, "http://"+r.Host, nil)
	check.URL = &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: canonPath, RawQuery: r.URL.RawQuery}
	check.Host = r.Host
	for _, h := range strings.Split(m[4], ";") {
		if h != "host" {
			check.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	check.Header.Del("X-Amz-Date") // the signer sets it from when
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	err = signer.SignHTTP(r.Context(), aws.Credentials{AccessKeyID: AccessKey, SecretAccessKey: SecretKey}, check, payload, "s3", m[3], when)
	if err != nil {
		return err
	}
	if got, want := r.Header.Get("Authorization"), check.Header.Get("Authorization"); got != want {
		return fmt.Errorf("signature mismatch: sent %s, expected %s", got, want)
	}
	return nil
}

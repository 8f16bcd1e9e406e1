package fileserver

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSignV4AWSExamples checks the signer against the worked examples of
// AWS's "Signature Calculations for the Authorization Header: Transferring
// Payload in a Single Chunk" (Amazon S3 API reference).
func TestSignV4AWSExamples(t *testing.T) {
	t.Parallel()
	const (
		access = "AKIAIOSFODNN7EXAMPLE"
		secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	)
	when := time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, method, url, payload string
		headers                    map[string]string
		signed, signature          string
	}{
		{"GET object", "GET", "https://examplebucket.s3.amazonaws.com/test.txt", emptySHA256,
			map[string]string{"Range": "bytes=0-9"},
			"host;range;x-amz-content-sha256;x-amz-date",
			"f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
		{"PUT object", "PUT", "https://examplebucket.s3.amazonaws.com/test$file.text",
			"44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
			map[string]string{"Date": "Fri, 24 May 2013 00:00:00 GMT", "X-Amz-Storage-Class": "REDUCED_REDUNDANCY"},
			"date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
			"98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
		{"GET bucket lifecycle", "GET", "https://examplebucket.s3.amazonaws.com/?lifecycle", emptySHA256, nil,
			"host;x-amz-content-sha256;x-amz-date",
			"fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
		{"GET bucket list objects", "GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", emptySHA256, nil,
			"host;x-amz-content-sha256;x-amz-date",
			"34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tc.method, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.RawPath = awsEscapePath(req.URL.Path)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			signV4(req, access, secret, "us-east-1", "s3", tc.payload, when)
			want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=" +
				tc.signed + ", Signature=" + tc.signature
			if got := req.Header.Get("Authorization"); got != want {
				t.Errorf("Authorization\n got %s\nwant %s", got, want)
			}
			if got := req.Header.Get("X-Amz-Date"); got != "20130524T000000Z" {
				t.Errorf("X-Amz-Date = %s", got)
			}
		})
	}
}

func TestAWSEscape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, path, query string }{
		{"a/b c", "a/b%20c", "a%2Fb%20c"},
		{"x+y=z&w", "x%2By%3Dz%26w", "x%2By%3Dz%26w"},
		{"ünï~._-", "%C3%BCn%C3%AF~._-", "%C3%BCn%C3%AF~._-"},
		{"$(!*')", "%24%28%21%2A%27%29", "%24%28%21%2A%27%29"},
	} {
		if got := awsEscapePath(tc.in); got != tc.path {
			t.Errorf("awsEscapePath(%q) = %q, want %q", tc.in, got, tc.path)
		}
		if got := awsEscape(tc.in, true); got != tc.query {
			t.Errorf("awsEscape(%q, true) = %q, want %q", tc.in, got, tc.query)
		}
	}
}

func TestCleanKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, err string }{
		{"/proj/task.abc/artifacts/a/a.pkl", "proj/task.abc/artifacts/a/a.pkl", ""},
		{"a//b///c", "a/b/c", ""},
		{"with space/ünicode (1).png", "with space/ünicode (1).png", ""},
		{"../etc/passwd", "", "segments"},
		{"a/../../b", "", "segments"},
		{"a/./b", "", "segments"},
		{"a\\..\\b", "", "backslash"},
		{"a\x00b", "", "control"},
		{"/", "", "names no file"},
		{"", "", "names no file"},
		{strings.Repeat("x", 256), "", "longer than 255"},
		{strings.Repeat("abcdefgh/", 120), "", "longer than 1024"},
	} {
		got, err := CleanKey(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("CleanKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CleanKey(%q) = %q, %v; want an error about %q", tc.in, got, err, tc.err)
		}
	}
}

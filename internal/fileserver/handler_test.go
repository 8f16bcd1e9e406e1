package fileserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/fileserver"
	"github.com/goclearml/agent/internal/fileserver/s3test"
)

// backends are the stores every file server test runs against: a local
// folder and an S3-compatible bucket (in process, signatures checked).
var backends = []struct {
	name string
	open func(t *testing.T) fileserver.Blobs
}{
	{"local", func(t *testing.T) fileserver.Blobs {
		l, err := fileserver.OpenLocal(filepath.Join(t.TempDir(), "files"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}},
	{"s3", func(t *testing.T) fileserver.Blobs {
		fake := s3test.Start(t, "clearml-files")
		s3, err := fileserver.NewS3(fileserver.S3Config{Endpoint: fake.URL, Bucket: "clearml-files", Prefix: "replicas/",
			Region: s3test.Region, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s3.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if n := fake.Rejected.Load(); n > 0 {
				t.Errorf("the S3 server refused %d requests' signatures", n)
			}
		})
		return s3
	}},
}

const token = "Bearer good-token"

func startFiles(t *testing.T, blobs fileserver.Blobs, maxUpload int64) string {
	h := fileserver.New(fileserver.Config{Blobs: blobs, MaxUploadBytes: maxUpload, Authorize: func(r *http.Request) error {
		if r.Header.Get("Authorization") != token {
			return fmt.Errorf("no valid token")
		}
		return nil
	}})
	ts := httptest.NewServer(http.StripPrefix("/files", h))
	t.Cleanup(ts.Close)
	return ts.URL + "/files"
}

// multipartBody builds an upload as the SDK sends it: one file field per
// file, named with the file's path.
func multipartBody(files map[string][]byte) (*bytes.Buffer, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for name, data := range files {
		w, _ := mw.CreateFormFile(name, name)
		w.Write(data)
	}
	mw.WriteField("note", "plain fields are ignored")
	mw.Close()
	return &b, mw.FormDataContentType()
}

type result struct {
	code int
	body string
	hdr  http.Header
}

func send(t *testing.T, method, url string, body io.Reader, hdr map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", token)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, string(raw), resp.Header}
}

func upload(t *testing.T, url string, files map[string][]byte, hdr map[string]string) result {
	t.Helper()
	body, ct := multipartBody(files)
	h := map[string]string{"Content-Type": ct}
	for k, v := range hdr {
		h[k] = v
	}
	return send(t, "POST", url, body, h)
}

func TestFileServerRoundTrip(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			base := startFiles(t, b.open(t), 1<<20)
			pkl := bytes.Repeat([]byte("pickled artifact "), 1000)
			odd := "/My Project/exp één.0123abcd/metrics/loss+acc/val (1)/img_00000003.png"
			r := upload(t, base, map[string][]byte{"/My Project/exp.0123abcd/artifacts/obj/obj.pkl": pkl, odd: []byte("\x89PNG")}, nil)
			var stored []string
			if r.code != 200 || json.Unmarshal([]byte(r.body), &stored) != nil || len(stored) != 2 {
				t.Fatalf("upload: %d %s", r.code, r.body)
			}
			// The SDK downloads the URL it built: the path, URL-quoted.
			got := send(t, "GET", base+"/My%20Project/exp.0123abcd/artifacts/obj/obj.pkl", nil, nil)
			if got.code != 200 || got.body != string(pkl) || got.hdr.Get("Content-Length") != fmt.Sprint(len(pkl)) {
				t.Fatalf("download: %d, %d bytes, Content-Length %s", got.code, len(got.body), got.hdr.Get("Content-Length"))
			}
			png := send(t, "GET", base+"/My%20Project/exp%20%C3%A9%C3%A9n.0123abcd/metrics/loss+acc/val%20%281%29/img_00000003.png", nil, nil)
			if png.code != 200 || png.body != "\x89PNG" || png.hdr.Get("Content-Type") != "image/png" {
				t.Fatalf("odd path: %d %q %s", png.code, png.body, png.hdr.Get("Content-Type"))
			}
			head := send(t, "HEAD", base+"/My%20Project/exp.0123abcd/artifacts/obj/obj.pkl", nil, nil)
			if head.code != 200 || head.hdr.Get("Content-Length") != fmt.Sprint(len(pkl)) {
				t.Fatalf("HEAD: %d, Content-Length %s", head.code, head.hdr.Get("Content-Length"))
			}
			// A part of a file: 206 where the store seeks, else the whole file.
			part := send(t, "GET", base+"/My%20Project/exp.0123abcd/artifacts/obj/obj.pkl", nil, map[string]string{"Range": "bytes=7-15"})
			if !(part.code == 206 && part.body == string(pkl[7:16])) && !(part.code == 200 && part.body == string(pkl)) {
				t.Fatalf("range: %d %q", part.code, part.body)
			}
			// Upload into a folder named by the POST path; replace a file.
			if r := upload(t, base+"/sub/dir", map[string][]byte{"f.bin": []byte("one")}, nil); r.code != 200 {
				t.Fatalf("upload to a folder: %d %s", r.code, r.body)
			}
			if r := upload(t, base+"/sub/dir/", map[string][]byte{"f.bin": []byte("two")}, nil); r.code != 200 {
				t.Fatalf("replacing: %d %s", r.code, r.body)
			}
			if got := send(t, "GET", base+"/sub/dir/f.bin", nil, nil); got.body != "two" {
				t.Fatalf("after replace: %q", got.body)
			}
			// DELETE, then the file is gone; a second DELETE is a 404.
			if r := send(t, "DELETE", base+"/sub/dir/f.bin", nil, nil); r.code != 200 {
				t.Fatalf("delete: %d %s", r.code, r.body)
			}
			for _, m := range []string{"GET", "DELETE"} {
				if r := send(t, m, base+"/sub/dir/f.bin", nil, nil); r.code != 404 {
					t.Fatalf("%s after delete: %d %s", m, r.code, r.body)
				}
			}
			// delete_many, as the reference server's cleanup calls it.
			r = send(t, "POST", base+"/delete_many", strings.NewReader(`{"files": ["My Project/exp.0123abcd/artifacts/obj/obj.pkl", "nothing/here"]}`),
				map[string]string{"Content-Type": "application/json"})
			var many struct {
				Deleted map[string]bool   `json:"deleted"`
				Errors  map[string]string `json:"errors"`
			}
			if r.code != 200 || json.Unmarshal([]byte(r.body), &many) != nil || len(many.Deleted) != 1 || len(many.Errors) != 1 {
				t.Fatalf("delete_many: %d %s", r.code, r.body)
			}
			if r := send(t, "GET", base+"/My%20Project/exp.0123abcd/artifacts/obj/obj.pkl", nil, nil); r.code != 404 {
				t.Fatalf("after delete_many: %d", r.code)
			}
		})
	}
}

// TestFileServerBadInput: every client mistake gets a clear 4xx and
// stores nothing.
func TestFileServerBadInput(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			blobs := b.open(t)
			base := startFiles(t, blobs, 4096)
			if r := upload(t, base, map[string][]byte{"keep/me.txt": []byte("kept")}, nil); r.code != 200 {
				t.Fatalf("seed upload: %d %s", r.code, r.body)
			}
			big := bytes.Repeat([]byte("x"), 8192)
			cases := []struct {
				name string
				do   func() result
				code int
				msg  string
			}{
				{"no credentials", func() result {
					return upload(t, base, map[string][]byte{"a.txt": []byte("x")}, map[string]string{"Authorization": ""})
				}, 401, "Unauthorized"},
				{"wrong token on download", func() result {
					return send(t, "GET", base+"/keep/me.txt", nil, map[string]string{"Authorization": "Bearer nope"})
				}, 401, "Unauthorized"},
				{"traversal in field name", func() result { return upload(t, base, map[string][]byte{"../../escape.txt": []byte("x")}, nil) }, 400, "segments"},
				{"traversal in the middle", func() result { return upload(t, base, map[string][]byte{"a/../../escape.txt": []byte("x")}, nil) }, 400, "segments"},
				{"traversal via POST path", func() result { return upload(t, base+"/%2e%2e", map[string][]byte{"escape.txt": []byte("x")}, nil) }, 400, "segments"},
				{"backslash path", func() result { return upload(t, base, map[string][]byte{`..\escape.txt`: []byte("x")}, nil) }, 400, "backslash"},
				{"reserved temp name", func() result { return upload(t, base, map[string][]byte{"a/.upload-1": []byte("x")}, nil) }, 400, "reserved"},
				{"download traversal", func() result { return send(t, "GET", base+"/keep/%2e%2e/%2e%2e/etc/passwd", nil, nil) }, 400, "segments"},
				{"download the root", func() result { return send(t, "GET", base+"/", nil, nil) }, 400, "names no file"},
				{"over the size limit (declared)", func() result { return upload(t, base, map[string][]byte{"big.bin": big}, nil) }, 413, "limit"},
				{"over the size limit (chunked)", func() result {
					body, ct := multipartBody(map[string][]byte{"big.bin": big})
					return send(t, "POST", base, io.MultiReader(body), map[string]string{"Content-Type": ct})
				}, 413, "limit"},
				{"not multipart", func() result {
					return send(t, "POST", base+"/x.txt", strings.NewReader("raw"), map[string]string{"Content-Type": "text/plain"})
				}, 400, "multipart"},
				{"no file in the form", func() result { return upload(t, base, nil, nil) }, 400, "No file"},
				{"body cut in the closing boundary", func() result {
					body, ct := multipartBody(map[string][]byte{"whole.bin": []byte("data")})
					return send(t, "POST", base, bytes.NewReader(body.Bytes()[:body.Len()-20]), map[string]string{"Content-Type": ct})
				}, 400, "Malformed"},
				{"body cut in a file", func() result {
					var b bytes.Buffer
					mw := multipart.NewWriter(&b)
					w, _ := mw.CreateFormFile("cut.bin", "cut.bin")
					w.Write(bytes.Repeat([]byte("d"), 200))
					mw.Close()
					return send(t, "POST", base, bytes.NewReader(b.Bytes()[:b.Len()-120]), map[string]string{"Content-Type": mw.FormDataContentType()})
				}, 400, "Malformed"},
				{"delete_many not JSON", func() result {
					return send(t, "POST", base+"/delete_many", strings.NewReader("files=a"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
				}, 400, "JSON"},
				{"missing file", func() result { return send(t, "GET", base+"/no/such.file", nil, nil) }, 404, "not found"},
				{"folder is no file", func() result { return send(t, "GET", base+"/keep", nil, nil) }, 404, "not found"},
				{"file in the way of a folder", func() result { return upload(t, base, map[string][]byte{"keep/me.txt/inner": []byte("x")}, nil) }, 409, "conflicts"},
				{"method", func() result { return send(t, "PATCH", base+"/keep/me.txt", nil, nil) }, 405, "not allowed"},
			}
			for _, tc := range cases {
				// S3 has no folders: a key may run through another.
				if tc.name == "file in the way of a folder" && b.name != "local" {
					continue
				}
				r := tc.do()
				if r.code != tc.code || !strings.Contains(r.body, tc.msg) {
					t.Errorf("%s: %d %q, want %d containing %q", tc.name, r.code, r.body, tc.code, tc.msg)
				}
			}
			// Nothing but the seed file was stored.
			for _, key := range []string{"escape.txt", "big.bin", "x.txt", "cut.bin", "a.txt"} {
				if _, err := blobs.Stat(context.Background(), key); err == nil {
					t.Errorf("%s was stored by a refused upload", key)
				}
			}
			if r := send(t, "GET", base+"/keep/me.txt", nil, nil); r.code != 200 || r.body != "kept" {
				t.Errorf("seed file after the bad requests: %d %q", r.code, r.body)
			}
		})
	}
}

// TestLocalSymlinkEscape: a symbolic link planted in the files folder does
// not lead outside it.
func TestLocalSymlinkEscape(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("secret"), 0o600)
	l, err := fileserver.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Skipf("symlinks: %v", err)
	}
	base := startFiles(t, l, 1<<20)
	if r := send(t, "GET", base+"/link/secret.txt", nil, nil); r.code != 404 {
		t.Fatalf("GET through a symlink: %d %q, want 404", r.code, r.body)
	}
	if r := upload(t, base, map[string][]byte{"link/planted.txt": []byte("x")}, nil); r.code == 200 {
		t.Fatalf("upload through a symlink succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted.txt")); err == nil {
		t.Fatal("a file was written outside the folder")
	}
}

// TestS3Refusals: the fake refuses a wrong signature (so the round trips
// above prove the signer right), and Check names a missing bucket.
func TestS3Refusals(t *testing.T) {
	t.Parallel()
	fake := s3test.Start(t, "present")
	for _, tc := range []struct{ name, bucket, secret, want string }{
		{"wrong secret", "present", "not-the-secret", "answered 403"},
		{"missing bucket", "absent", s3test.SecretKey, "does not exist"},
	} {
		s3, err := fileserver.NewS3(fileserver.S3Config{Endpoint: fake.URL, Bucket: tc.bucket, Region: s3test.Region,
			AccessKey: s3test.AccessKey, SecretKey: tc.secret})
		if err != nil {
			t.Fatal(err)
		}
		if err := s3.Check(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Check = %v, want an error about %s", tc.name, err, tc.want)
		}
	}
	if fake.Rejected.Load() != 1 {
		t.Errorf("the fake refused %d requests, want the one with the wrong secret", fake.Rejected.Load())
	}
}

package fileserver_test

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/goclearml/agent/internal/fileserver"
)

// FuzzCleanKey: a key CleanKey accepts has no empty, "." or ".." segment,
// no backslash or control character, is UTF-8, and is its own cleaned
// form.
func FuzzCleanKey(f *testing.F) {
	for _, s := range []string{"a/b.txt", "/a//b/", "../etc/passwd", "a/./b", "a\\b", "a\x00b", "", "/", strings.Repeat("x", 300),
		"p/t.1/artifacts/data.csv", "é/ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		key, err := fileserver.CleanKey(p)
		if err != nil {
			if key != "" {
				t.Fatalf("CleanKey(%q) = %q with error %v", p, key, err)
			}
			return
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\") ||
				strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("CleanKey(%q) = %q has segment %q", p, key, seg)
			}
		}
		if !utf8.ValidString(key) {
			t.Fatalf("CleanKey(%q) = %q, not UTF-8", p, key)
		}
		if again, err := fileserver.CleanKey(key); err != nil || again != key {
			t.Fatalf("CleanKey(%q) = %q, but CleanKey of that = %q, %v", p, key, again, err)
		}
	})
}

// Request kinds of FuzzHandler (the method argument, modulo).
const (
	fuzzGet = iota
	fuzzHead
	fuzzDelete
	fuzzUpload     // body is multipart with the fuzzed boundary and parts
	fuzzRawPost    // body as given, with the given content type
	fuzzDeleteMany // POST /delete_many with body as given
	fuzzKinds
)

// FuzzHandler sends arbitrary paths and bodies (multipart uploads, raw
// posts, delete_many lists) to a file server over a local folder. Every
// answer is a 2xx or a 4xx, never a 5xx (the folder does not fail); an
// upload answered 200 stored each file it names, readable with the
// uploaded content; no temporary file stays behind, and nothing is
// written outside the folder.
func FuzzHandler(f *testing.F) {
	base := f.TempDir()
	var n atomic.Int64
	f.Add(uint8(fuzzUpload), "/task/artifacts", "data.csv", "a,b\n1,2\n", "", []byte(nil))
	f.Add(uint8(fuzzUpload), "/", "../../escape", "x", "", []byte(nil))
	f.Add(uint8(fuzzUpload), "/a/b", "c/../../d", "x", "bnd", []byte(nil))
	f.Add(uint8(fuzzUpload), "/d", "f\x00g", "", "", []byte(nil))
	f.Add(uint8(fuzzUpload), "/.upload-x", "y", "z", "", []byte(nil))
	f.Add(uint8(fuzzGet), "/task/artifacts/data.csv", "", "", "", []byte(nil))
	f.Add(uint8(fuzzGet), "/../../etc/passwd", "", "", "", []byte(nil))
	f.Add(uint8(fuzzHead), "/%2e%2e/x", "", "", "", []byte(nil))
	f.Add(uint8(fuzzDelete), "/a", "", "", "", []byte(nil))
	f.Add(uint8(fuzzDeleteMany), "/delete_many", "", "", "", []byte(`{"files": ["a", "../b", "", "c/d"]}`))
	f.Add(uint8(fuzzDeleteMany), "/delete_many", "", "", "", []byte(`{"files": "a"}`))
	f.Add(uint8(fuzzRawPost), "/x", "multipart/form-data; boundary=zz", "", "", []byte("--zz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\nabc"))
	f.Add(uint8(fuzzRawPost), "/x", "multipart/form-data", "", "", []byte("--\r\n"))
	f.Add(uint8(fuzzRawPost), "/x", "text/plain", "", "", []byte("hello"))
	f.Fuzz(func(t *testing.T, kind uint8, path, name, content, boundary string, body []byte) {
		dir := filepath.Join(base, strconv.FormatInt(n.Add(1), 10))
		root := filepath.Join(dir, "files")
		local, err := fileserver.OpenLocal(root)
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		defer local.Close()
		h := fileserver.New(fileserver.Config{Blobs: local, MaxUploadBytes: 1 << 20})
		// A file to read, delete and write over.
		seed := httptest.NewRequest("POST", "/task/artifacts", nil)
		seedBody, seedType := multipartUpload("data.csv", "seeded", "")
		seed.Body, seed.ContentLength = io.NopCloser(seedBody), int64(seedBody.Len())
		seed.Header.Set("Content-Type", seedType)
		if rec := serveFiles(h, seed); rec.Code != 200 {
			t.Fatalf("seeding a file: %d %s", rec.Code, rec.Body)
		}

		var req *http.Request
		switch kind % fuzzKinds {
		case fuzzGet, fuzzHead, fuzzDelete:
			req = httptest.NewRequest([]string{"GET", "HEAD", "DELETE"}[kind%fuzzKinds], "/", nil)
		case fuzzUpload:
			b, ct := multipartUpload(name, content, boundary)
			req = httptest.NewRequest("POST", "/", b)
			req.Header.Set("Content-Type", ct)
		case fuzzRawPost:
			req = httptest.NewRequest("POST", "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", name)
		default:
			req = httptest.NewRequest("POST", "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		}
		req.URL.Path = path
		rec := serveFiles(h, req)
		if rec.Code >= 500 || rec.Code < 200 || (rec.Code >= 300 && rec.Code < 400 && rec.Code != 304) {
			t.Fatalf("%s %q: %d %s", req.Method, path, rec.Code, rec.Body)
		}
		if kind%fuzzKinds == fuzzUpload && rec.Code == 200 {
			var stored []string
			if err := json.Unmarshal(rec.Body.Bytes(), &stored); err != nil || len(stored) != 1 {
				t.Fatalf("upload answer %s (%v), want one path", rec.Body, err)
			}
			get := httptest.NewRequest("GET", "/", nil)
			get.URL.Path = "/" + stored[0]
			if got := serveFiles(h, get); got.Code != 200 || got.Body.String() != content {
				t.Fatalf("uploaded %q to %q, reading it back: %d %q", content, stored[0], got.Code, got.Body)
			}
		}
		// Nothing outside the folder, and no temporary file left in it.
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != "files" {
			t.Fatalf("the folder's parent holds %v", entries)
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), ".upload-") {
				t.Fatalf("temporary file %s left after %s %q (%d)", p, req.Method, path, rec.Code)
			}
			return nil
		})
	})
}

// multipartUpload builds an upload of one file as the SDK does, with the
// given boundary when it is a valid one.
func multipartUpload(name, content, boundary string) (*bytes.Buffer, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if boundary != "" {
		mw.SetBoundary(boundary) // an invalid boundary keeps the random one
	}
	w, err := mw.CreateFormFile(name, name)
	if err == nil {
		w.Write([]byte(content))
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

func serveFiles(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

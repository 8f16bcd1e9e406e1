package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/goclearml/agent/internal/fileserver"
)

// DefaultFilesPrefix is where the file server lives on the API listener.
const DefaultFilesPrefix = "/files"

// Authorize checks a file-server request's credentials as the API does:
// a Bearer token from auth.login (or the clearml_token_basic cookie) or a
// Basic key pair. The SDK sends its token to the configured files_server.
// A guest may only download (fileserver.ErrForbidden otherwise).
func (s *Server) Authorize(r *http.Request) error {
	ident, _, err := s.authenticate(r.Context(), r)
	if err != nil {
		return err
	}
	return fileMethodAllowed(ident, r.Method)
}

// WithFiles serves files under prefix and everything else as the API.
// (A ServeMux would clean and redirect paths, which the API must see raw.)
func (s *Server) WithFiles(prefix string, files http.Handler) http.Handler {
	prefix = "/" + strings.Trim(prefix, "/")
	strip := http.StripPrefix(prefix, files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == prefix || strings.HasPrefix(r.URL.Path, prefix+"/") {
			strip.ServeHTTP(w, r)
			return
		}
		s.ServeHTTP(w, r)
	})
}

// FilesConfig configures the file server of a server process.
type FilesConfig struct {
	// Disabled turns the file server off (files_server then points at the
	// API address, as before there was one).
	Disabled bool
	// Dir holds the files (DataDir/files). Ignored with S3.
	Dir string
	// S3, when set, keeps the files in an S3-compatible bucket, which
	// several replicas share.
	S3 *fileserver.S3Config
	// MaxUploadBytes limits one upload (5 GiB).
	MaxUploadBytes int64
	// NoAuth serves files without credentials (the reference file
	// server's default; ours checks the API's tokens unless told not to).
	NoAuth bool
	// Listen, when set, serves the files on their own address (at its
	// root) instead of under /files on the API listener.
	Listen string
}

// openBlobs opens the configured store; close releases it.
func (fc FilesConfig) openBlobs(ctx context.Context, dataDir string) (blobs fileserver.Blobs, close func(), err error) {
	if fc.S3 != nil {
		s3, err := fileserver.NewS3(*fc.S3)
		if err != nil {
			return nil, nil, err
		}
		if err := s3.Check(ctx); err != nil {
			return nil, nil, fmt.Errorf("checking the file server's bucket: %w", err)
		}
		return s3, func() {}, nil
	}
	dir := fc.Dir
	if dir == "" {
		dir = filepath.Join(dataDir, "files")
	}
	local, err := fileserver.OpenLocal(dir)
	if err != nil {
		return nil, nil, err
	}
	return local, func() { local.Close() }, nil
}

package fileserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/goclearml/agent/internal/httpguard"
)

// Config configures a Handler.
type Config struct {
	Blobs Blobs
	// Authorize checks a request's credentials (the API server's tokens,
	// as the reference file server does when its auth is on); it returns
	// an error for a request to refuse: 403 when it wraps ErrForbidden
	// (signed in, not allowed), else 401. nil lets every request through.
	Authorize func(r *http.Request) error
	// MaxUploadBytes limits one upload request's body (5 GiB when 0).
	MaxUploadBytes int64
	Log            *slog.Logger
}

// Handler serves the file server's HTTP protocol on paths relative to
// where it is mounted (wrap it in http.StripPrefix under a prefix):
//
//	POST /[dir]           multipart/form-data: every file field is stored
//	                      at dir/<field name> (the SDK names the field with
//	                      the file's path); answers the JSON list of paths
//	POST /delete_many     JSON {"files": [path, ...]}: answers
//	                      {"deleted": {path: true}, "errors": {path: msg}}
//	GET, HEAD /path       the file (ranges served where the store can seek)
//	DELETE /path          removes the file; 404 when there is none
//
// Errors are plain text with a 4xx status for a client's mistake (bad
// path, too large, not found, no credentials) and 500 only for a storage
// failure.
type Handler struct {
	cfg Config
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.MaxUploadBytes == 0 {
		cfg.MaxUploadBytes = 5 << 30
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}
}

// ErrForbidden is an Authorize error for a caller who may not make the
// request (a guest deleting a file).
var ErrForbidden = errors.New("forbidden")

// maxFilesPerUpload bounds the parts of one multipart request.
const maxFilesPerUpload = 1000

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "*")
		w.WriteHeader(http.StatusOK)
		return
	}
	if why := httpguard.CrossSite(r); why != "" {
		// A web page on another origin (a form upload, an img tag).
		w.Header().Set("Connection", "close")
		http.Error(w, "Forbidden: "+why, http.StatusForbidden)
		return
	}
	if h.cfg.Authorize != nil {
		if err := h.cfg.Authorize(r); errors.Is(err, ErrForbidden) {
			http.Error(w, "Forbidden: "+err.Error(), http.StatusForbidden)
			return
		} else if err != nil {
			http.Error(w, "Unauthorized: "+err.Error(), http.StatusUnauthorized)
			return
		}
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut:
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if strings.Trim(r.URL.Path, "/") == "delete_many" && mt != "multipart/form-data" {
			h.deleteMany(w, r)
			return
		}
		h.upload(w, r, mt)
	case http.MethodGet, http.MethodHead:
		h.download(w, r)
	case http.MethodDelete:
		h.delete(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE, OPTIONS")
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
	}
}

// cleanUserKey is CleanKey for a path a client names: a segment with the
// prefix of files being uploaded is refused too, so that no client reads,
// deletes or writes into an upload in progress (a folder of that name
// was accepted before, and a file in it was not).
func cleanUserKey(p string) (string, error) {
	key, err := CleanKey(p)
	if err != nil {
		return "", err
	}
	for _, seg := range strings.Split(key, "/") {
		if strings.HasPrefix(seg, tempPrefix) {
			return "", fmt.Errorf("path %q: names starting with %s are reserved", p, tempPrefix)
		}
	}
	return key, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// fail answers a storage error: 404 and 409 are the client's, the rest ours.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, key string, err error) {
	switch {
	case errors.Is(err, ErrNotExist):
		http.Error(w, fmt.Sprintf("File %s not found", key), http.StatusNotFound)
	case errors.Is(err, ErrConflict):
		http.Error(w, fmt.Sprintf("Cannot store %s: %v", key, ErrConflict), http.StatusConflict)
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
	default:
		h.cfg.Log.Error("file server storage failure", "method", r.Method, "path", key, "err", err)
		http.Error(w, "Storage failure", http.StatusInternalServerError)
	}
}

func (h *Handler) upload(w http.ResponseWriter, r *http.Request, mediaType string) {
	if mediaType != "multipart/form-data" {
		http.Error(w, "Upload with a multipart/form-data POST", http.StatusBadRequest)
		return
	}
	if r.ContentLength > h.cfg.MaxUploadBytes {
		http.Error(w, fmt.Sprintf("Upload of %d bytes is over the limit of %d", r.ContentLength, h.cfg.MaxUploadBytes), http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxUploadBytes)
	dir := strings.Trim(r.URL.Path, "/")
	mr, err := r.MultipartReader()
	if err != nil {
		http.Error(w, "Malformed multipart body: "+err.Error(), http.StatusBadRequest)
		return
	}
	stored := []string{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF { // the closing boundary; a wrapped EOF is a body cut short
			break
		}
		if err != nil {
			h.uploadReadError(w, err, stored)
			return
		}
		if part.FileName() == "" {
			part.Close()
			continue // a plain form field, not a file
		}
		name := part.FormName()
		if name == "" {
			name = part.FileName()
		}
		if len(stored) == maxFilesPerUpload {
			http.Error(w, fmt.Sprintf("More than %d files in one upload", maxFilesPerUpload), http.StatusRequestEntityTooLarge)
			return
		}
		key, err := cleanUserKey(path.Join(dir, name))
		if err != nil {
			http.Error(w, "Invalid path: "+err.Error(), http.StatusBadRequest)
			return
		}
		n, err := h.cfg.Blobs.Put(r.Context(), key, part)
		part.Close()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || isReadError(err) {
			h.uploadReadError(w, err, stored)
			return
		}
		if err != nil {
			h.fail(w, r, key, err)
			return
		}
		h.cfg.Log.Debug("file stored", "path", key, "bytes", n)
		stored = append(stored, key)
	}
	if len(stored) == 0 {
		http.Error(w, "No file in the upload", http.StatusBadRequest)
		return
	}
	writeJSON(w, stored)
}

// isReadError tells a failure reading the client's body (cut short,
// malformed) from a storage failure.
func isReadError(err error) bool {
	return err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "multipart"))
}

func (h *Handler) uploadReadError(w http.ResponseWriter, err error, stored []string) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		http.Error(w, fmt.Sprintf("Upload is over the limit of %d bytes (stored before the limit: %v)", tooBig.Limit, stored), http.StatusRequestEntityTooLarge)
		return
	}
	http.Error(w, "Malformed multipart body: "+err.Error(), http.StatusBadRequest)
}

func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	key, err := cleanUserKey(r.URL.Path)
	if err != nil {
		http.Error(w, "Invalid path: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodHead {
		info, err := h.cfg.Blobs.Stat(r.Context(), key)
		if err != nil {
			h.fail(w, r, key, err)
			return
		}
		setContentType(w, key)
		w.Header().Set("Content-Length", fmt.Sprint(info.Size))
		if !info.ModTime.IsZero() {
			w.Header().Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	obj, err := h.cfg.Blobs.Open(r.Context(), key)
	if err != nil {
		h.fail(w, r, key, err)
		return
	}
	defer obj.Body.Close()
	setContentType(w, key)
	if rs, ok := obj.Body.(io.ReadSeeker); ok {
		http.ServeContent(w, r, path.Base(key), obj.ModTime, rs)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(obj.Size))
	if !obj.ModTime.IsZero() {
		w.Header().Set("Last-Modified", obj.ModTime.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, obj.Body); err != nil && r.Context().Err() == nil {
		h.cfg.Log.Warn("file server: sending file", "path", key, "err", err)
	}
}

func setContentType(w http.ResponseWriter, key string) {
	ct := mime.TypeByExtension(path.Ext(key))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	key, err := cleanUserKey(r.URL.Path)
	if err != nil {
		http.Error(w, "Invalid path: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := h.cfg.Blobs.Delete(r.Context(), key); err != nil {
		h.fail(w, r, key, err)
		return
	}
	writeJSON(w, key)
}

func (h *Handler) deleteMany(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Files []string `json:"files"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&req); err != nil {
		http.Error(w, "Expected a JSON body {\"files\": [...]}: "+err.Error(), http.StatusBadRequest)
		return
	}
	deleted, failed := map[string]bool{}, map[string]string{}
	for _, f := range req.Files {
		key, err := cleanUserKey(f)
		if err == nil {
			err = h.cfg.Blobs.Delete(r.Context(), key)
		}
		switch {
		case err == nil:
			deleted[f] = true
		case errors.Is(err, ErrNotExist):
			failed[f] = "not found"
		default:
			if !strings.HasPrefix(err.Error(), "path") {
				h.cfg.Log.Error("file server storage failure", "method", "delete_many", "path", f, "err", err)
			}
			failed[f] = err.Error()
		}
	}
	writeJSON(w, map[string]any{"deleted": deleted, "errors": failed})
}

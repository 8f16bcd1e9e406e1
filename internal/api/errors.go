package api

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error is an API error as carried in the envelope: HTTP status = Code.
type Error struct {
	Code    int
	Subcode int
	Msg     string
	Data    map[string]any
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d/%d)", e.Msg, e.Code, e.Subcode)
}

// ErrorCode describes one entry of the reference server's error table.
type ErrorCode struct {
	Code    int
	Subcode int
	Default string
}

// The error codes this API subset produces (reference apierrors/errors.conf).
var (
	ErrBadRequest            = ErrorCode{400, 0, "bad request"}
	ErrInvalidVersion        = ErrorCode{400, 2, "request path has invalid version"}
	ErrInvalidHeaders        = ErrorCode{400, 5, "invalid headers"}
	ErrImpersonation         = ErrorCode{400, 6, "impersonation error"}
	ErrInvalidID             = ErrorCode{400, 10, "invalid object id"}
	ErrMissingRequiredFields = ErrorCode{400, 11, "missing required fields"}
	ErrValidation            = ErrorCode{400, 12, "validation error"}
	ErrFieldsValue           = ErrorCode{400, 16, "invalid fields value"}
	ErrBatchNoItems          = ErrorCode{400, 17, "batch request contains no items"}
	ErrInvalidRegex          = ErrorCode{400, 21, "malformed regular expression specified"}
	ErrInvalidTaskID         = ErrorCode{400, 101, "invalid task id"}
	ErrInvalidTaskStatus     = ErrorCode{400, 110, "invalid task status"}
	ErrFailedChangingStatus  = ErrorCode{400, 121, "failed changing task status. probably someone changed it before you"}
	ErrMissingTaskFields     = ErrorCode{400, 122, "task is missing expected fields"}
	ErrTaskCannotBeDeleted   = ErrorCode{400, 123, "task cannot be deleted"}
	ErrEventsNotAdded        = ErrorCode{400, 131, "events not added"}
	ErrInvalidModelID        = ErrorCode{400, 201, "invalid model id"}
	ErrModelNotReady         = ErrorCode{400, 202, "model is not ready"}
	ErrModelIsReady          = ErrorCode{400, 203, "model is ready"}
	ErrInvalidModelURI       = ErrorCode{400, 204, "invalid model uri"}
	ErrModelInUse            = ErrorCode{400, 205, "model is used by tasks"}
	ErrModelCreatingTask     = ErrorCode{400, 206, "task that created this model exists"}
	ErrInvalidUserID         = ErrorCode{400, 301, "invalid user id"}
	ErrInvalidProjectID      = ErrorCode{400, 401, "invalid project id"}
	ErrInvalidProjectName    = ErrorCode{400, 407, "invalid project name"}
	ErrInvalidQueueID        = ErrorCode{400, 701, "invalid queue id"}
	ErrQueueNotEmpty         = ErrorCode{400, 702, "queue is not empty"}
	ErrTaskNotQueued         = ErrorCode{400, 703, "invalid queue id or task not in queue"}
	ErrTaskAlreadyQueued     = ErrorCode{400, 706, "task already in queue"}
	ErrNoDefaultQueue        = ErrorCode{400, 707, "no queue is tagged as the default queue for this company"}
	ErrMultipleDefaultQueues = ErrorCode{400, 708, "more than one queue is tagged as the default queue for this company"}
	// ErrLeaseLost is our extension: a tasks.started naming a hand-out
	// that expired, after which the task went back to its queue.
	ErrLeaseLost           = ErrorCode{400, 790, "the task's hand-out expired before it was acknowledged"}
	ErrDataValidation      = ErrorCode{400, 800, "data validation error"}
	ErrExpectedUniqueData  = ErrorCode{400, 801, "value combination already exists (unique field already contains this value)"}
	ErrInvalidWorkerID     = ErrorCode{400, 1001, "invalid worker id"}
	ErrWorkerRegistration  = ErrorCode{400, 1002, "worker registration failed"}
	ErrWorkerNotRegistered = ErrorCode{400, 1004, "worker is not registered"}
	ErrBadAuthType         = ErrorCode{401, 10, "authorization type not supported"}
	ErrNoCredentials       = ErrorCode{401, 20, "missing credentials"}
	ErrBadCredentials      = ErrorCode{401, 21, "malformed credentials"}
	ErrInvalidCredentials  = ErrorCode{401, 22, "invalid user credentials"}
	ErrInvalidToken        = ErrorCode{401, 30, "invalid token"}
	ErrRoleNotAllowed      = ErrorCode{403, 20, "role not allowed"}
	ErrNoWritePermission   = ErrorCode{403, 21, "no write permission"}
	ErrNotFound            = ErrorCode{404, 0, "not found"}
	ErrTooLarge            = ErrorCode{413, 0, "request entity too large"}
	ErrGeneral             = ErrorCode{500, 0, "general error"}
)

// New builds an error with the reference message format: the default message
// capitalised, " (extra)" when extra is given, then ": k1=v1, k2=v2" for the
// key/value pairs, which also become the error data.
func (c ErrorCode) New(extra string, kv ...any) *Error {
	var b strings.Builder
	if c.Default != "" {
		b.WriteString(strings.ToUpper(c.Default[:1]) + c.Default[1:])
	}
	if extra != "" {
		if b.Len() > 0 {
			b.WriteString(" (" + extra + ")")
		} else {
			b.WriteString(extra)
		}
	}
	data := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		data[fmt.Sprint(kv[i])] = kv[i+1]
	}
	if len(data) > 0 {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+formatValue(data[k]))
		}
		b.WriteString(": " + strings.Join(parts, ", "))
	}
	return &Error{Code: c.Code, Subcode: c.Subcode, Msg: b.String(), Data: data}
}

// Is reports whether err is an *Error with this code and subcode.
func (c ErrorCode) Is(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c.Code && e.Subcode == c.Subcode
}

func formatValue(v any) string {
	switch x := v.(type) {
	case []string:
		return "(" + strings.Join(x, ", ") + ")"
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = fmt.Sprint(p)
		}
		return "(" + strings.Join(parts, ", ") + ")"
	default:
		return fmt.Sprint(v)
	}
}

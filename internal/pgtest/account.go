package pgtest

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// serverUserName is the system user the server binaries run as when the
// test runs as root (initdb and postgres refuse to run as root).
const serverUserName = "postgres"

// account is a system user other than the current one to run the server
// binaries as. A nil *account means "the current user".
type account struct {
	name     string
	uid, gid uint32
}

func (a *account) String() string {
	if a == nil {
		return "the current user"
	}
	return fmt.Sprintf("%s (uid %d)", a.name, a.uid)
}

// serverUser returns nil when the server binaries can run as the current
// user, or the postgres system user when we are root.
func serverUser() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and initdb refuses to run as root, "+
			"but there is no %q system user to run it as (%v); create it (useradd --system %s) or run the tests as a normal user",
			serverUserName, err, serverUserName)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: user %s has non-numeric uid/gid %q/%q", u.Username, u.Uid, u.Gid)
	}
	return &account{name: u.Username, uid: uint32(uid), gid: uint32(gid)}, nil
}

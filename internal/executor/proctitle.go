package executor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// A spare supervisor (spare.go) starts before its run is known, so its
// command line and environment, what `ps` and /proc/PID/cmdline and
// /proc/PID/environ show, name no run. Once it has one, it writes the
// run's over them, in the space it started with: the command line a
// supervisor started for the run would have had (truncated to fit), and
// the run's marker, which Usage finds a run's processes by.

// procAreas are the addresses of this process's command line and
// environment (fields 48 to 51 of /proc/self/stat).
type procAreas struct {
	argStart, argEnd, envStart, envEnd int64
}

func readProcAreas() (procAreas, error) {
	f, err := statFields("self")
	if err != nil {
		return procAreas{}, err
	}
	const first = 3 // statFields starts at field 3
	if len(f) < 51-first+1 {
		return procAreas{}, errors.New("/proc/self/stat has too few fields")
	}
	var v [4]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[48+i-first], 10, 64); err != nil {
			return procAreas{}, fmt.Errorf("reading /proc/self/stat: %w", err)
		}
	}
	a := procAreas{v[0], v[1], v[2], v[3]}
	if a.argEnd <= a.argStart || a.envEnd < a.envStart {
		return procAreas{}, errors.New("/proc/self/stat gives no command line")
	}
	return a, nil
}

// packStrings lays items out as the kernel keeps argv and envp: each
// followed by a NUL, in n bytes; what does not fit is cut, the rest of the
// space is NULs, and the last byte is always a NUL (else the kernel reads
// on into the environment).
func packStrings(items []string, n int) []byte {
	buf := make([]byte, n)
	i := 0
	for _, s := range items {
		if i >= n-1 {
			break
		}
		i += copy(buf[i:n-1], s) + 1
	}
	return buf
}

// setProcTitle writes args over this process's command line and env over
// its environment, as the kernel shows them. Go's os.Args point into the
// command line's memory: they change with it.
func setProcTitle(args, env []string) error {
	a, err := readProcAreas()
	if err != nil {
		return fmt.Errorf("finding the command line: %w", err)
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("rewriting the command line: %w", err)
	}
	defer mem.Close()
	if _, err := mem.WriteAt(packStrings(args, int(a.argEnd-a.argStart)), a.argStart); err != nil {
		return fmt.Errorf("rewriting the command line: %w", err)
	}
	if a.envEnd > a.envStart {
		if _, err := mem.WriteAt(packStrings(env, int(a.envEnd-a.envStart)), a.envStart); err != nil {
			return fmt.Errorf("rewriting the environment: %w", err)
		}
	}
	return nil
}

package kubetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/goclearml/agent/internal/localimage"
)

// AgentImage makes the pods' init container image: the agent binary at
// /usr/local/bin/clearml-agent, nothing else (docker import, no registry).
// It is tagged by the binary's content and reused.
func AgentImage(ctx context.Context, bin string) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("reading the agent binary: %w", err)
	}
	sum := sha256.Sum256(data)
	ref := "clearml-agent-test/agent:" + hex.EncodeToString(sum[:])[:16]
	if localimage.Exists(ctx, ref) {
		return ref, nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"usr/", "usr/local/", "usr/local/bin/"} {
		tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir})
	}
	tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir})
	tw.WriteHeader(&tar.Header{Name: "usr/local/bin/clearml-agent", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg})
	tw.Write(data)
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := localimage.Import(ctx, ref, &buf); err != nil {
		return "", err
	}
	return ref, nil
}

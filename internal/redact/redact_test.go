package redact

import (
	"bytes"
	"strings"
	"testing"
)

func TestSecretName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{"HF_TOKEN": true, "AWS_SECRET_ACCESS_KEY": true, "GIT_PASS": true, "OPENAI_API_KEY": true,
		"DB_PASSWORD": true, "my_api_key": true, "PATH": false, "SSH_AUTH_SOCK": false, "KEYBOARD": false, "PASSWORD": true} {
		if SecretName(name) != want {
			t.Errorf("SecretName(%s) = %v", name, !want)
		}
	}
	got := EnvSecrets([]string{"HF_TOKEN=hf_abcdef", "PATH=/bin", "SHORT_KEY=ab", "DB_PASSWORD=pw-1234", "bad"})
	if strings.Join(got, ",") != "hf_abcdef,pw-1234" {
		t.Fatalf("EnvSecrets = %v", got)
	}
}

func TestWriterMasksAcrossWrites(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out, []string{"s3cr3t-value", "s3cr3t"})
	for _, chunk := range []string{"clone https://u:s3cr", "3t-value@host\npass=s3", "cr3t and ", "no newline s3cr3t-va", "lue"} {
		w.Write([]byte(chunk))
	}
	w.Close()
	if got := out.String(); strings.Contains(got, "s3cr3t") || got != "clone https://u:********@host\npass=******** and no newline ********" {
		t.Fatalf("masked output %q", got)
	}
	var plain bytes.Buffer
	NewWriter(&plain, nil).Write([]byte("as is"))
	if plain.String() != "as is" {
		t.Fatal("no secrets: output changed")
	}
}

package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/clientconf"
	"github.com/goclearml/agent/internal/hocon"
)

const initHead = `Usage: clearml-agent init [flags]

Writes ~/clearml.conf (or --config-file) for a ClearML server, as upstream's
"clearml-agent init" does: paste the credentials block the web app's "Create
new credentials" shows (or give the flags), the server addresses are derived
from the one given (8080 web, 8008 API, 8081 files; app./api./files. names),
the credentials are checked by logging in, and the file is written with mode
0600. Every question has a flag, so it also runs unattended; the secret key
and git password come from CLEARML_API_SECRET_KEY and CLEARML_AGENT_GIT_PASS
rather than flags, which other users can read in the process list.
`

type initOptions struct {
	apiServer, webServer, filesServer, accessKey string
	gitUser                                      string
	extraIndex                                   []string
	force, noVerify                              bool
}

func runInit(g args.Global, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o initOptions
	f := newFlags("init", initHead)
	f.fs.StringVar(&o.apiServer, "api-server", "", "the API server's `URL` (the web app's address works too)")
	f.fs.StringVar(&o.webServer, "web-server", "", "the web app's `URL` (default: derived from the API server)")
	f.fs.StringVar(&o.filesServer, "files-server", "", "the file server's `URL` (default: derived from the API server)")
	f.fs.StringVar(&o.accessKey, "access-key", "", "the access `KEY` (the secret comes from CLEARML_API_SECRET_KEY or the prompt)")
	f.fs.StringVar(&o.gitUser, "git-user", "", "git `USER` for cloning over https (the password comes from CLEARML_AGENT_GIT_PASS or the prompt)")
	f.list(&o.extraIndex, "extra-index-url", "extra pip package index `URL`s")
	f.fs.BoolVar(&o.force, "force", false, "replace an existing configuration file (the old one is kept as FILE.bak)")
	f.fs.BoolVar(&o.noVerify, "no-verify", false, "write the file without logging in to check the credentials")
	pos, err := f.parseArgs(argv, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &UsageError{Msg: fmt.Sprintf("init: unexpected argument %q", pos[0])}
	}
	path := g.ConfigFile
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("finding the home folder: %w", err)
		}
		path = filepath.Join(home, "clearml.conf")
	}
	if st, err := os.Stat(path); err == nil && st.Size() > 0 && !o.force {
		fmt.Fprintf(stdout, "Configuration file already exists: %s\nLeaving setup, feel free to edit the configuration file (or run init --force to replace it).\n", path)
		return nil
	}
	in := &prompter{r: bufio.NewReader(stdin), w: stdout}
	fmt.Fprintln(stdout, "CLEARML-AGENT setup process")
	c, err := o.client(in)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ClearML hosts:\n  Web App:    %s\n  API:        %s\n  File Store: %s\n", c.WebServer, c.APIServer, c.FilesServer)
	if !o.noVerify {
		fmt.Fprintln(stdout, "Verifying credentials ...")
		if err := verifyCredentials(c); err != nil {
			return fmt.Errorf("the credentials do not work with %s: %w (nothing was written)", c.APIServer, err)
		}
		fmt.Fprintln(stdout, "Credentials verified!")
	}
	agent := clientconf.Agent{GitUser: o.gitUser, ExtraIndexURLs: o.extraIndex}
	if agent.GitUser == "" && in.interactive() {
		agent.GitUser = in.ask("Enter git username for repository cloning (leave blank for SSH key authentication): []")
	}
	if agent.GitUser != "" {
		agent.GitPass = os.Getenv("CLEARML_AGENT_GIT_PASS")
		if agent.GitPass == "" && in.interactive() {
			agent.GitPass = in.ask(fmt.Sprintf("Enter password for user '%s':", agent.GitUser))
		}
	}
	if len(agent.ExtraIndexURLs) == 0 && in.interactive() {
		for u := in.ask("Enter additional artifact repository (extra-index-url) to use when installing python packages (leave blank if not required):"); u != ""; u = in.ask("Another artifact repository? (enter another url or leave blank if done):") {
			agent.ExtraIndexURLs = append(agent.ExtraIndexURLs, u)
		}
	}
	if o.force {
		if old, err := os.ReadFile(path); err == nil {
			if err := os.WriteFile(path+".bak", old, 0o600); err != nil {
				return fmt.Errorf("keeping the old configuration: %w", err)
			}
		}
	}
	if err := clientconf.WriteAgent(path, c, agent); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nNew configuration stored in %s\nCLEARML-AGENT setup completed successfully.\n", path)
	return nil
}

// client gathers the server addresses and the credentials: flags first,
// then a pasted credentials block, then questions.
func (o *initOptions) client(in *prompter) (clientconf.Client, error) {
	c := clientconf.Client{APIServer: o.apiServer, WebServer: o.webServer, FilesServer: o.filesServer,
		AccessKey: o.accessKey, SecretKey: os.Getenv("CLEARML_API_SECRET_KEY")}
	if (c.AccessKey == "" || c.SecretKey == "") && in.interactive() {
		fmt.Fprint(in.w, "\nPlease create new clearml credentials through the settings page in your ClearML web app\n"+
			"(\"Create new credentials\", then \"Copy to clipboard\"), or run \"clearml-agent server\" here.\n\nPaste copied configuration here:\n")
		pasted := in.block()
		if t, err := hocon.Parse("pasted configuration", []byte(pasted)); err == nil {
			pick := func(dst *string, keys ...string) {
				for _, k := range keys {
					if *dst == "" {
						*dst = t.String(k, "")
					}
				}
			}
			pick(&c.AccessKey, "api.credentials.access_key", "credentials.access_key")
			pick(&c.SecretKey, "api.credentials.secret_key", "credentials.secret_key")
			pick(&c.APIServer, "api.api_server", "api.host", "api_server", "host")
			pick(&c.WebServer, "api.web_server", "web_server")
			pick(&c.FilesServer, "api.files_server", "files_server")
		}
		if c.AccessKey == "" || c.SecretKey == "" {
			fmt.Fprintln(in.w, "Could not parse credentials, please try entering them manually.")
			c.AccessKey = in.ask("Enter user access key:")
			c.SecretKey = in.ask("Enter user secret:")
		}
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return c, &UsageError{Msg: "init: no credentials: give --access-key and CLEARML_API_SECRET_KEY, or paste them when asked"}
	}
	if c.APIServer == "" && c.WebServer == "" && in.interactive() {
		c.WebServer = in.ask("Enter the url of the ClearML server's web app (or its API server), for example http://localhost:8080:")
	}
	host := cmp.Or(c.APIServer, c.WebServer)
	if host == "" {
		return c, &UsageError{Msg: "init: no server: give --api-server URL"}
	}
	api, web, files, err := deriveHosts(host)
	if err != nil {
		return c, &UsageError{Msg: "init: " + err.Error()}
	}
	if c.APIServer == "" || c.APIServer == c.WebServer {
		c.APIServer = api
	}
	c.WebServer = cmp.Or(c.WebServer, web)
	c.FilesServer = cmp.Or(c.FilesServer, files)
	return c, nil
}

// deriveHosts turns one server address into the API, web and file
// server addresses, as upstream's init does: ports 8008/8080/8081, or
// api./app./files. host names; anything else is the API server itself
// (ours serves the web app and the files on the API's port).
func deriveHosts(raw string) (api, web, files string, err error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", "", fmt.Errorf("%q is not an http(s) URL", raw)
	}
	base := func(host string) string { return u.Scheme + "://" + host + strings.TrimRight(u.Path, "/") }
	h, port := u.Hostname(), u.Port()
	swapPort := func(p string) string { return base(strings.TrimSuffix(u.Host, ":"+port) + ":" + p) }
	switch {
	case port == "8080" || port == "8008":
		return swapPort("8008"), swapPort("8080"), swapPort("8081"), nil
	case strings.HasPrefix(h, "app.") || strings.HasPrefix(h, "api."):
		rest := u.Host[4:]
		return base("api." + rest), base("app." + rest), base("files." + rest), nil
	}
	// One address for everything, as our server serves it.
	return base(u.Host), base(u.Host), base(u.Host) + "/files", nil
}

// verifyCredentials logs in once.
func verifyCredentials(c clientconf.Client) error {
	client, err := apiclient.New(apiclient.Config{Server: c.APIServer, AccessKey: c.AccessKey, SecretKey: c.SecretKey})
	if err != nil {
		return err
	}
	if err := client.LoginWith(context.Background(), cliLogin); err != nil {
		if apiclient.IsRetryable(err) {
			return errors.New("cannot reach the server: " + rootCause(err))
		}
		return err
	}
	return nil
}

// prompter asks questions on a terminal (or a pipe).
type prompter struct {
	r   *bufio.Reader
	w   io.Writer
	eof bool
}

func (p *prompter) interactive() bool { return !p.eof }

// ask prints a question and reads one answer line.
func (p *prompter) ask(q string) string {
	if p.eof {
		return ""
	}
	fmt.Fprint(p.w, q+" ")
	line, err := p.r.ReadString('\n')
	if err != nil {
		p.eof = true
	}
	return strings.TrimSpace(line)
}

// block reads a pasted configuration block: up to a line that closes the
// outermost brace, or an empty line.
func (p *prompter) block() string {
	var b strings.Builder
	depth := 0
	for !p.eof {
		line, err := p.r.ReadString('\n')
		if err != nil {
			p.eof = true
		}
		if strings.TrimSpace(line) == "" && depth <= 0 {
			break
		}
		b.WriteString(line)
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth <= 0 && strings.Contains(line, "}") {
			break
		}
	}
	return b.String()
}

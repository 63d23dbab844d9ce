package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/incidents"
)

// envAPIToken is the CLI's API token (or SOAR_API_TOKEN_FILE names a file
// holding it): one of the tokens serve's SOAR_API_TOKENS lists.
const envAPIToken = "SOAR_API_TOKEN"

// devTokenFile is where soar dev writes a token for the CLI, under its data
// directory; the CLI reads .soar/api-token when no token is set.
const devTokenFile = "api-token"

// apiFlags say how the CLI reaches soar's HTTP API. Votes, closes and
// releases go through it, never straight to Temporal: serve checks the
// token, names the voter after it and proves the request to the incident.
type apiFlags struct {
	url string
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "api-url", "http://127.0.0.1:8080", "soar's HTTP API (soar serve, or soar dev). The token comes from "+envAPIToken+" or "+envAPIToken+"_FILE, else from .soar/"+devTokenFile+", which soar dev writes")
}

// token returns the CLI's API token.
func (f *apiFlags) token() (string, error) {
	tok, err := app.Secret(envAPIToken)
	if err != nil || tok != "" {
		return tok, err
	}
	b, err := os.ReadFile(filepath.Join(".soar", devTokenFile))
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	return "", fmt.Errorf("no API token: set %s (or %s_FILE) to one of the tokens in serve's %s; soar dev writes one to .soar/%s", envAPIToken, envAPIToken, app.EnvAPITokens, devTokenFile)
}

// post sends body to the API at path and decodes a 200 answer into out. A
// refusal (409) is an *incidents.Refused with the reason.
func (f *apiFlags) post(ctx context.Context, path string, body, out any) error {
	tok, err := f.token()
	if err != nil {
		return err
	}
	u, err := url.JoinPath(f.url, path)
	if err != nil {
		return fmt.Errorf("--api-url: %w", err)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach soar's API (--api-url %s): %w", f.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the API's answer: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return json.Unmarshal(raw, out)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(raw))
	}
	switch resp.StatusCode {
	case http.StatusConflict:
		return &incidents.Refused{Reason: e.Error}
	case http.StatusUnauthorized:
		return errors.New("the API refused the token: " + e.Error)
	case http.StatusNotFound:
		return fmt.Errorf("%s has no soar API here (is it soar serve with %s set?): %s", u, app.EnvAPITokens, resp.Status)
	}
	return fmt.Errorf("the API answered %s: %s", resp.Status, e.Error)
}

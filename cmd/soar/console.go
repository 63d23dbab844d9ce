package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/connectors/evidence"
	"github.com/soar-dev/soar/console"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/httpserver"
)

// consoleFlags configure the analysts' console (docs/console.md).
type consoleFlags struct {
	auth                                   string
	proxyFrom                              []string
	userHeader, emailHeader, groupsHeader  string
	groupMap                               string
	viewers                                []string
	oidcIssuer, oidcClientID, oidcRedirect string
	oidcUserClaim, oidcGroupsClaim         string
	oidcScopes                             []string
	people                                 string
	downloadsPerMinute                     int
}

// Secrets of the console's OIDC sign-in (each also as <name>_FILE).
const (
	envOIDCClientSecret = "SOAR_CONSOLE_OIDC_CLIENT_SECRET"
	envSessionKey       = "SOAR_CONSOLE_SESSION_KEY"
)

func (f *consoleFlags) register(fs *pflag.FlagSet, dev bool) {
	def, usage := "", `how people sign in to the console at /console/: "oidc" (an OpenID Connect provider, see --console-oidc-issuer), "proxy" (an authenticating proxy's identity headers, see --console-proxy-from) or "" (no console)`
	if dev {
		def, usage = "local", `how people sign in to the console at /console/: "local" (you, without a password: soar dev listens on loopback only), "oidc", "proxy" or "" (no console)`
	}
	fs.StringVar(&f.auth, "console-auth", def, usage)
	fs.StringSliceVar(&f.proxyFrom, "console-proxy-from", nil, "addresses (CIDR) of the authenticating proxy (oauth2-proxy) whose identity headers the console believes; requests from anywhere else are refused")
	fs.StringVar(&f.userHeader, "console-user-header", console.DefaultUserHeader, "the proxy's header naming the user")
	fs.StringVar(&f.emailHeader, "console-email-header", console.DefaultEmailHeader, "the proxy's header holding the user's e-mail")
	fs.StringVar(&f.groupsHeader, "console-groups-header", console.DefaultGroupsHeader, "the proxy's header listing the user's groups, comma-separated")
	fs.StringVar(&f.groupMap, "console-group-map", "", "identity-provider groups that are approver groups: group=S0SLACKGROUP,… (a member votes as that Slack user group's member)")
	fs.StringVar(&f.people, "console-people", "", "who each console login is in Slack: login=U0SLACKUSER,… (their votes then count once with their Slack votes)")
	fs.IntVar(&f.downloadsPerMinute, "console-downloads-per-minute", console.DefaultDownloadsPerMinute, "evidence downloads one person may start a minute, and at once; more are refused (429, Retry-After) until their pace allows; 0: no limit")
	fs.StringSliceVar(&f.viewers, "console-viewers", nil, "identity-provider groups whose members may view incidents without acting")
	fs.StringVar(&f.oidcIssuer, "console-oidc-issuer", "", "the OpenID Connect provider's issuer URL (client secret in "+envOIDCClientSecret+")")
	fs.StringVar(&f.oidcClientID, "console-oidc-client-id", "", "the console's client ID at the provider")
	fs.StringVar(&f.oidcRedirect, "console-oidc-redirect-url", "", "the console's callback as browsers reach it, registered at the provider: https://<host>/console/auth/callback")
	fs.StringVar(&f.oidcUserClaim, "console-oidc-user-claim", "email", "the ID token claim that names the person (they vote as user:<value>)")
	fs.StringVar(&f.oidcGroupsClaim, "console-oidc-groups-claim", "groups", "the ID token claim listing the person's groups")
	fs.StringSliceVar(&f.oidcScopes, "console-oidc-scopes", []string{"openid", "email", "profile", "groups"}, "scopes to ask the provider for")
}

// authenticator builds the sign-in the flags describe for a console served
// on addr; nil when the console is off. local is soar dev's user; nil for
// serve, which has no local user.
func (f *consoleFlags) authenticator(ctx context.Context, addr string, local *console.Local, wait time.Duration, log zerolog.Logger) (console.Authenticator, error) {
	if f.downloadsPerMinute < 0 {
		return nil, fmt.Errorf("--console-downloads-per-minute %d: want 0 (no limit) or more", f.downloadsPerMinute)
	}
	if f.auth != "" {
		// A short key fails here, before serve connects anywhere.
		if _, err := sharedKey(); err != nil {
			return nil, err
		}
	}
	switch f.auth {
	case "":
		return nil, nil
	case "oidc":
		return f.oidc(ctx, wait, log)
	case "local":
		if local == nil {
			return nil, errors.New(`--console-auth local is soar dev's: serve signs people in through an authenticating proxy (--console-auth proxy)`)
		}
		if !loopbackListen(addr) {
			return nil, fmt.Errorf("--console-auth local signs people in without a password, so it needs a loopback listen address, not %q: put the console behind an authenticating proxy (--console-auth proxy)", addr)
		}
		return *local, nil
	case "proxy":
		if len(f.proxyFrom) == 0 {
			return nil, errors.New("--console-auth proxy needs --console-proxy-from: the addresses of the proxy whose identity headers the console may believe")
		}
		p := console.Proxy{UserHeader: f.userHeader, EmailHeader: f.emailHeader, GroupsHeader: f.groupsHeader, Viewers: f.viewers}
		for _, s := range f.proxyFrom {
			pf, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				a, aerr := netip.ParseAddr(strings.TrimSpace(s))
				if aerr != nil {
					return nil, fmt.Errorf("--console-proxy-from %q: want an address or a CIDR prefix", s)
				}
				pf = netip.PrefixFrom(a, a.BitLen())
			}
			p.From = append(p.From, pf.Masked())
		}
		var err error
		if p.GroupMap, err = console.ParseGroupMap(f.groupMap); err != nil {
			return nil, fmt.Errorf("--console-group-map: %w", err)
		}
		return p, nil
	}
	if local != nil {
		return nil, fmt.Errorf(`--console-auth %q: want "local", "oidc", "proxy" or ""`, f.auth)
	}
	return nil, fmt.Errorf(`--console-auth %q: want "oidc", "proxy" or ""`, f.auth)
}

// peopleMap is --console-people, parsed.
func (f *consoleFlags) peopleMap() (map[string]string, error) {
	m, err := console.ParsePeople(f.people)
	if err != nil {
		return nil, fmt.Errorf("--console-people: %w", err)
	}
	return m, nil
}

// oidc discovers the provider the flags name: it reads the provider's
// discovery document, trying again for up to wait
// (--startup-wait) while the provider cannot be read; a configuration error
// fails at once.
func (f *consoleFlags) oidc(ctx context.Context, wait time.Duration, log zerolog.Logger) (console.Authenticator, error) {
	if f.oidcIssuer == "" || f.oidcClientID == "" || f.oidcRedirect == "" {
		return nil, errors.New("--console-auth oidc needs --console-oidc-issuer, --console-oidc-client-id and --console-oidc-redirect-url")
	}
	secret, err := app.Secret(envOIDCClientSecret)
	if err != nil {
		return nil, err
	}
	key, err := sharedKey()
	if err != nil {
		return nil, err
	}
	gm, err := console.ParseGroupMap(f.groupMap)
	if err != nil {
		return nil, fmt.Errorf("--console-group-map: %w", err)
	}
	cfg := console.OIDCConfig{
		Issuer: f.oidcIssuer, ClientID: f.oidcClientID, ClientSecret: secret, RedirectURL: f.oidcRedirect,
		Scopes: f.oidcScopes, UserClaim: f.oidcUserClaim, GroupsClaim: f.oidcGroupsClaim,
		GroupMap: gm, Viewers: f.viewers, Log: log.With().Str("component", "console").Logger(),
	}
	if key != nil {
		cfg.SessionKey = key
	} else {
		log.Info().Msgf("console sessions are signed with a key drawn at start: a restart signs everyone out (set %s to keep them, and to share them between replicas)", envSessionKey)
	}
	var a *console.OIDC
	err = app.StartupRetry(ctx, wait, "OIDC provider "+f.oidcIssuer, log, func(ctx context.Context) (err error) {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		a, err = console.NewOIDC(dctx, cfg)
		var discovery *console.DiscoveryError
		if err != nil && !errors.As(err, &discovery) {
			return app.NoRetry(err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// loopbackListen reports whether a listen address accepts loopback
// connections only.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// sharedKey is SOAR_CONSOLE_SESSION_KEY (or the file SOAR_CONSOLE_SESSION_KEY_FILE
// names): the key every serve replica shares, which signs OIDC sessions
// and keys the forms' CSRF tokens (console.Config.Key); nil when unset.
func sharedKey() ([]byte, error) {
	key, err := app.Secret(envSessionKey)
	if err != nil || key == "" {
		return nil, err
	}
	if len(key) < console.MinKeyBytes {
		return nil, fmt.Errorf("%s: %d bytes, want at least %d (head -c 32 /dev/urandom | base64)", envSessionKey, len(key), console.MinKeyBytes)
	}
	return []byte(key), nil
}

// startConsole mounts the console on hs when a sign-in is configured, and
// says where it is (or why it is off) for the banner and the log.
func startConsole(hs *httpserver.Server, auth console.Authenticator, people map[string]string, downloadsPerMinute int, tc client.Client, namespace string, svc *incidents.Service, store evidence.Store, log zerolog.Logger) (string, error) {
	if auth == nil {
		log.Info().Msg("console off: no sign-in configured (--console-auth)")
		return "", nil
	}
	if downloadsPerMinute == 0 {
		downloadsPerMinute = -1 // console.Config's "no limit"
	}
	key, err := sharedKey()
	if err != nil {
		return "", err
	}
	if _, local := auth.(console.Local); key == nil && !local {
		log.Info().Msgf("console forms are signed with a key drawn at start: a page served before a restart, or by another replica, must be reloaded before it posts (set %s to share the key)", envSessionKey)
	}
	c, err := console.New(console.Config{
		Temporal: tc, Namespace: namespace, Service: svc, Auth: auth, People: people, Evidence: store,
		DownloadsPerMinute: downloadsPerMinute, Key: key,
		Log: log.With().Str("component", "console").Logger(),
	})
	if err != nil {
		return "", err
	}
	c.Register(hs)
	log.Info().Str("sign_in", auth.Describe()).Msg("console at /console/")
	return auth.Describe(), nil
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/soar-dev/soar/cmd/soar/app"
)

// temporalFlags say how to reach an external Temporal cluster.
type temporalFlags struct {
	address       string
	namespace     string
	tlsCert       string
	tlsKey        string
	tlsCA         string
	tlsServerName string
	tls           bool
	apiKeyFile    string
	compression   string
}

func (f *temporalFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.address, "temporal-address", "127.0.0.1:7233", "Temporal frontend host:port")
	fs.StringVar(&f.namespace, "temporal-namespace", "default", "Temporal namespace")
	fs.BoolVar(&f.tls, "temporal-tls", false, "use TLS to Temporal (implied by the other --temporal-tls-* flags and by an API key)")
	fs.StringVar(&f.tlsCert, "temporal-tls-cert", "", "client certificate file for mTLS to Temporal")
	fs.StringVar(&f.tlsKey, "temporal-tls-key", "", "client private key file for mTLS to Temporal")
	fs.StringVar(&f.tlsCA, "temporal-tls-ca", "", "CA bundle that signs Temporal's server certificate (default: system roots)")
	fs.StringVar(&f.tlsServerName, "temporal-tls-server-name", "", "server name to verify in Temporal's certificate")
	fs.StringVar(&f.apiKeyFile, "temporal-api-key-file", "", "file holding a Temporal Cloud API key (or set SOAR_TEMPORAL_API_KEY)")
	fs.StringVar(&f.compression, "temporal-grpc-compression", app.CompressionAuto, "compression of requests to Temporal and its answers: gzip, none, or auto (none for a loopback --temporal-address, where gzip only costs CPU; gzip otherwise)")
}

func (f *temporalFlags) options(identity string) (app.TemporalOptions, error) {
	opts := app.TemporalOptions{Address: f.address, Namespace: f.namespace, Identity: identity, Compression: f.compression}
	if _, err := app.GrpcCompression(f.compression, f.address); err != nil {
		return opts, fmt.Errorf("--temporal-grpc-compression: %w", err)
	}
	key := os.Getenv("SOAR_TEMPORAL_API_KEY")
	if f.apiKeyFile != "" {
		b, err := os.ReadFile(f.apiKeyFile)
		if err != nil {
			return opts, fmt.Errorf("temporal API key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(key)
	}
	if f.tls || f.tlsCert != "" || f.tlsKey != "" || f.tlsCA != "" || f.tlsServerName != "" || key != "" {
		cfg, err := tlsConfig(f.tlsCert, f.tlsKey, f.tlsCA, f.tlsServerName)
		if err != nil {
			return opts, fmt.Errorf("temporal TLS: %w", err)
		}
		opts.ConnectionOptions.TLS = cfg
	}
	return opts, nil
}

// dial connects to Temporal, trying again for up to wait while it cannot be
// reached (app.StartupRetry); a configuration that cannot work (a TLS file
// that does not load) fails at once.
func (f *temporalFlags) dial(ctx context.Context, identity string, wait time.Duration, log zerolog.Logger) (client.Client, error) {
	opts, err := f.options(identity)
	if err != nil {
		return nil, err
	}
	var c client.Client
	err = app.StartupRetry(ctx, wait, "Temporal at "+f.address, log, func(ctx context.Context) (err error) {
		c, err = app.DialTemporal(ctx, opts, log)
		return err
	})
	return c, err
}

// registerStartupWait adds --startup-wait to a long-running part.
func registerStartupWait(fs *pflag.FlagSet, wait *time.Duration) {
	fs.DurationVar(wait, "startup-wait", app.DefaultStartupWait, "how long to keep trying, at start, to reach Temporal and NATS (and for the dispatcher, JetStream) before exiting with the reason; 0 tries once")
}

// withClient adapts a one-shot CLI command to run with a Temporal client that
// is closed when it returns.
func (f *temporalFlags) withClient(fn func(cmd *cobra.Command, args []string, tc client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		tc, err := f.dial(cmd.Context(), "soar-cli", 0, zerolog.Nop())
		if err != nil {
			return err
		}
		defer tc.Close()
		return fn(cmd, args, tc)
	}
}

// natsFlags say how to reach an external NATS cluster.
type natsFlags struct {
	urls    string
	creds   string
	tlsCert string
	tlsKey  string
	tlsCA   string
}

func (f *natsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.urls, "nats-url", nats.DefaultURL, "NATS server URLs, comma-separated")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials file (JWT and NKey seed)")
	fs.StringVar(&f.tlsCert, "nats-tls-cert", "", "client certificate file for mTLS to NATS")
	fs.StringVar(&f.tlsKey, "nats-tls-key", "", "client private key file for mTLS to NATS")
	fs.StringVar(&f.tlsCA, "nats-tls-ca", "", "CA bundle that signs the NATS servers' certificates")
}

// connect connects to NATS, trying again for up to wait while no server can
// be reached (app.StartupRetry). Once connected, the connection reconnects
// for ever on its own.
func (f *natsFlags) connect(ctx context.Context, name string, wait time.Duration, log zerolog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("disconnected from NATS; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
		natsErrorLog(log),
	}
	if f.creds != "" {
		// Read now, not at each attempt: a wrong path is not worth waiting for.
		if _, err := os.Stat(f.creds); err != nil {
			return nil, fmt.Errorf("nats credentials: %w", err)
		}
		opts = append(opts, nats.UserCredentials(f.creds))
	}
	if f.tlsCert != "" || f.tlsKey != "" || f.tlsCA != "" {
		cfg, err := tlsConfig(f.tlsCert, f.tlsKey, f.tlsCA, "")
		if err != nil {
			return nil, fmt.Errorf("nats TLS: %w", err)
		}
		opts = append(opts, nats.Secure(cfg))
	}
	var nc *nats.Conn
	err := app.StartupRetry(ctx, wait, "NATS at "+redactURLs(f.urls), log, func(context.Context) (err error) {
		if nc, err = nats.Connect(f.urls, opts...); err != nil {
			return fmt.Errorf("connect to NATS at %s: %w", redactURLs(f.urls), err)
		}
		return nil
	})
	return nc, err
}

// natsErrorLog logs the errors NATS reports on a connection's own
// schedule, in soar's log instead of nats.go's default (a plain line on
// standard error that an operator reading soar's JSON log never sees).
//
// A permission the server refused (an account that may not publish dead
// letters or park alerts) leaves alerts stuck: an error, every time.
//
// A subscription that dropped messages is a warning, once a minute at
// most (the count so far rides along). soar's one subscription, the
// dispatcher's pull of the alert stream, queues what a pull brings without
// a limit of its own (dispatch.Run uses Consume), so it should never drop;
// an alert dropped anyway is delivered again after the ack wait: late, not
// lost. (With the Messages iterator it used before, a burst dropped a
// message in most runs: the server's "409 Batch Completed" note, or now
// and then an alert.)
func natsErrorLog(log zerolog.Logger) nats.Option {
	slow := log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
			dropped, _ := sub.Dropped()
			slow.Warn().Str("subject", sub.Subject).Int("dropped", dropped).
				Msg("a NATS subscription dropped messages it could not take in time")
			return
		}
		ev := log.Error().Err(err)
		if sub != nil {
			ev = ev.Str("subject", sub.Subject)
		}
		ev.Msg("NATS reported an error on the connection")
	})
}

// redactURLs hides passwords and tokens in comma-separated URLs, so that an
// error message never carries a credential.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "<unparsable URL>"
			continue
		}
		if u.User != nil {
			u.User = url.User("redacted")
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

func tlsConfig(certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate found in %s", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

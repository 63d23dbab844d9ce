package devstack

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSOptions configures an embedded NATS server.
type NATSOptions struct {
	// Host is the client listen address; default 127.0.0.1.
	Host string
	// Port is the client port; -1 picks a free one.
	Port int
	// StoreDir holds JetStream's file storage; it survives restarts.
	StoreDir string
	// MaxPayload is the largest message the server accepts. It must exceed the
	// dispatcher's alert size limit, or oversized alerts would be refused at
	// publish instead of reaching the dead-letter subject. Default 8 MiB.
	MaxPayload int32
}

// StartNATS starts a NATS server with JetStream and waits until it accepts
// clients. Call Shutdown on the result to stop it.
func StartNATS(opts NATSOptions) (*server.Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "soar-dev",
		Host:       opts.Host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		MaxPayload: opts.MaxPayload,
		// A dev server on a laptop: no HTTP monitoring, no noisy logs.
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: configure server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats: server on %s:%d not ready after 15s", opts.Host, opts.Port)
	}
	return s, nil
}

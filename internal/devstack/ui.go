package devstack

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// UI is the Temporal Web UI served from the assets embedded in ui-server.
type UI struct {
	srv  *uiserver.Server
	addr string
}

// StartUI serves the Temporal Web UI on host:port for the Temporal frontend at
// temporalAddr. It returns once the port is bound.
func StartUI(temporalAddr, host string, port int, namespace string) (*UI, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	// Bind first so that a port in use is an error now, not a log line later.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("temporal ui: %w", err)
	}
	l.Close()
	srv := uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
		TemporalGRPCAddress: temporalAddr,
		Host:                host,
		Port:                port,
		EnableUI:            true,
		HideLogs:            true,
		DefaultNamespace:    namespace,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		DisableNewsFetch:    true,
	}))
	ui := &UI{srv: srv, addr: addr}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return nil, fmt.Errorf("temporal ui: %w", err)
		}
	default:
	}
	return ui, nil
}

// URL is where a browser finds the UI.
func (u *UI) URL() string { return "http://" + u.addr }

// Stop shuts the UI server down.
func (u *UI) Stop() { u.srv.Stop() }

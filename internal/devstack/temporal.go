package devstack

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

// TemporalOptions configures an embedded Temporal server.
type TemporalOptions struct {
	// DBPath is the SQLite file holding every workflow. Empty means in memory,
	// which tests use; state is then lost when the server stops.
	DBPath string
	// Host is the address the frontend binds to; default 127.0.0.1.
	Host string
	// Port is the frontend's gRPC port; 0 picks a free one.
	Port int
	// Namespaces are created when missing. Search attributes are not set here:
	// soar registers them through the operator API like it does on any cluster.
	Namespaces []string
	// Logger receives the server's own logs; nil discards them.
	Logger tlog.Logger
	// TLS, when set, makes the frontend speak TLS and require a client
	// certificate (mTLS), as a production cluster should.
	TLS *TemporalTLS
}

// TemporalTLS is the frontend's mTLS setup. The server's own system workers
// present the server certificate as their client certificate, so it must be
// good for client authentication too.
type TemporalTLS struct {
	// CertFile and KeyFile are the frontend's certificate and key.
	CertFile, KeyFile string
	// CAFile signs the server certificate and every client certificate the
	// frontend accepts.
	CAFile string
	// ServerName is a name in the server certificate; default Host.
	ServerName string
}

// Temporal is a complete single-process Temporal server (frontend, history,
// matching and internal worker services) persisting to SQLite.
type Temporal struct {
	srv  temporal.Server
	addr string
}

// sqlitePragmas make a file-backed SQLite fast enough to be useful: with the
// defaults (rollback journal, synchronous=FULL) Temporal manages about one
// workflow per second; WAL with synchronous=NORMAL stays durable across process
// crashes and only risks the last transactions on power loss.
var sqlitePragmas = map[string]string{
	"journal_mode": "wal",
	"synchronous":  "normal",
}

// StartTemporal creates the schema when the database is new, creates the
// namespaces, and starts the server. It returns once the frontend accepts
// connections or the server failed to start.
func StartTemporal(opts TemporalOptions) (*Temporal, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Logger == nil {
		opts.Logger = tlog.NewNoopLogger()
	}
	if opts.Port == 0 {
		p, err := FreePort(opts.Host)
		if err != nil {
			return nil, err
		}
		opts.Port = p
	}

	sqlCfg := &config.SQL{
		PluginName:        sqliteplugin.PluginName,
		ConnectAttributes: map[string]string{},
		DatabaseName:      opts.DBPath,
	}
	if opts.DBPath == "" {
		// A shared in-memory database needs a unique name per server so that two
		// test servers in one process do not share state.
		sqlCfg.ConnectAttributes["mode"] = "memory"
		sqlCfg.ConnectAttributes["cache"] = "shared"
		sqlCfg.DatabaseName = "soar-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	} else {
		sqlCfg.ConnectAttributes["mode"] = "rwc"
		// The plugin passes every attribute it does not know as
		// _pragma=<name>=<value>: the names go in bare. (Prefixed with "_",
		// as before, they became pragmas SQLite does not know and ignored
		// without a word: no WAL, a sync to disk on every commit.)
		maps.Copy(sqlCfg.ConnectAttributes, sqlitePragmas)
		if err := os.MkdirAll(filepath.Dir(opts.DBPath), 0o750); err != nil {
			return nil, fmt.Errorf("temporal: create data directory: %w", err)
		}
	}

	// The schema is created for a new file only: the SQLite plugin runs the
	// same setup for an in-memory database on its own.
	if opts.DBPath != "" {
		if _, err := os.Stat(opts.DBPath); errors.Is(err, os.ErrNotExist) {
			if err := sqlite.SetupSchema(sqlCfg); err != nil {
				return nil, fmt.Errorf("temporal: set up SQLite schema: %w", err)
			}
		}
	}

	cfg, err := serverConfig(opts, sqlCfg)
	if err != nil {
		return nil, err
	}

	var nss []*sqlite.NamespaceConfig
	for _, name := range opts.Namespaces {
		ns, err := sqlite.NewNamespaceConfig(cfg.ClusterMetadata.CurrentClusterName, name, false, nil)
		if err != nil {
			return nil, fmt.Errorf("temporal: namespace %q: %w", name, err)
		}
		nss = append(nss, ns)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, nss...); err != nil {
		return nil, fmt.Errorf("temporal: create namespaces: %w", err)
	}

	// Membership is static: every service lives in this process. Ringpop
	// would remember the previous run's ports in the database and, after a
	// restart, route requests to hosts that no longer exist.
	hosts := map[primitives.ServiceName]static.Hosts{}
	for name, svc := range cfg.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(net.JoinHostPort(opts.Host, strconv.Itoa(svc.RPC.GRPCPort)))
	}

	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(opts.Logger),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			// Visibility reads right after an upsert must see the new search
			// attributes; the cache would otherwise lag by up to a minute.
			// It costs about a tenth of the CPU at rest (namespace and search
			// attribute reads from SQLite on every start and task), but
			// turning it off (forcing it only for 90 s after an attribute was
			// added) halved the incidents opened per second under
			// BenchmarkPhantomFlood, 2026-12-03: 31-43/s against 76-89/s,
			// with SQLite visibility writes taking seven times the CPU, for a
			// reason not found. Measured again on 2026-12-04 with soar's
			// search attributes registered on the namespace at its creation,
			// so that no cache could lag: 44-49/s without it against 102-111/s
			// with it, and no difference at rest (AlertToQuarantine p50 15.0
			// and 16.6 ms without, 15.4 and 16.0 ms with). One visibility
			// worker instead of 512 did not bring the rate back (44/s), nor
			// did a separate SQLite file for visibility (83/s). Measure that
			// benchmark before changing it.
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			// One partition per task queue: with the default four, the few
			// pollers of a single worker sit on some partitions while tasks
			// wait on the others until they are forwarded. In one run each of
			// the alert-storm test, a new incident's first workflow task
			// waited 3.1 s to start with four partitions and 1.9 s with one
			// (from the incident's history). A production cluster with many
			// workers keeps its partitions.
			dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  []dynamicconfig.ConstrainedValue{{Value: 1}},
			dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): []dynamicconfig.ConstrainedValue{{Value: 1}},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("temporal: create server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("temporal: start server: %w", err)
	}
	return &Temporal{srv: srv, addr: cfg.PublicClient.HostPort}, nil
}

// Address is the frontend's host:port for SDK clients and the Temporal CLI.
func (t *Temporal) Address() string { return t.addr }

// Stop shuts the server down; workflows resume where they were on the next start.
func (t *Temporal) Stop() error { return t.srv.Stop() }

func serverConfig(opts TemporalOptions, sqlCfg *config.SQL) (*config.Config, error) {
	frontend := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
	services := map[string]config.Service{}
	// Three gRPC ports besides the frontend's and four membership ports,
	// distinct from each other and from the frontend's.
	ports, err := FreePorts(opts.Host, 7, opts.Port)
	if err != nil {
		return nil, err
	}
	for i, name := range []string{"frontend", "history", "matching", "worker"} {
		grpcPort := opts.Port
		if name != "frontend" {
			grpcPort = ports[3+i]
		}
		memberPort := ports[i]
		services[name] = config.Service{RPC: config.RPC{
			GRPCPort:       grpcPort,
			MembershipPort: memberPort,
			BindOnIP:       opts.Host,
		}}
	}
	cfg := &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: opts.Host},
			// Port 0 leaves pprof off: a dev server needs no extra listener.
			PProf: config.PProf{Port: 0},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        "active",
			CurrentClusterName:       "active",
			ClusterInformation: map[string]cluster.ClusterInformation{
				"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontend},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services:            services,
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		// The server's own system workers dial the frontend through this address.
		PublicClient: config.PublicClient{HostPort: frontend},
	}
	if t := opts.TLS; t != nil {
		name := t.ServerName
		if name == "" {
			name = opts.Host
		}
		cfg.Global.TLS = config.RootTLS{
			Frontend: config.GroupTLS{Server: config.ServerTLS{
				CertFile:          t.CertFile,
				KeyFile:           t.KeyFile,
				ClientCAFiles:     []string{t.CAFile},
				RequireClientAuth: true,
			}},
			SystemWorker: config.WorkerTLS{
				CertFile: t.CertFile,
				KeyFile:  t.KeyFile,
				Client:   config.ClientTLS{ServerName: name, RootCAFiles: []string{t.CAFile}},
			},
		}
	}
	return cfg, nil
}
